//! A client that authenticates with a JWT it signed (RFC 7523 section 2.2, OpenID Connect
//! Core section 9): `private_key_jwt`, signed by a key of its registered `jwks` (picked here,
//! the signature checked by the host: `jose`), or `client_secret_jwt`, HS256 under its
//! secret, verified by the host, which alone keeps that secret.
//!
//! The assertion names the client as `iss` and `sub`, this service as `aud` (the issuer,
//! or the URL of the token, introspection or revocation endpoint below it: never a URL
//! built from the request's `Host`), expires within five minutes, and
//! is taken once: its `jti` is written with `store.insert` until it expires, so a replay at
//! any replica is refused. Every failure is 401 `invalid_client`.

use super::Authenticated;
use crate::jose::{self, Alg};
use crate::params::param;
use crate::record::hex_sha256;
use crate::response::{store_failure, OAuthError};
use crate::{Host, Request};
use serde_json::Value;

/// The one assertion type taken (RFC 7523 section 2.2).
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// The longest an assertion may live from now, seconds: it is made for one request.
const MAX_LIFETIME_S: u64 = 300;
/// Clock skew allowed either way, seconds.
const SKEW_S: u64 = 60;
const JTI_PREFIX: &str = "oauth:client_assertion_jti:";
const MAX_JTI_LEN: usize = 256;

fn refused(why: &str) -> OAuthError {
    OAuthError::invalid_client(format!("the client assertion: {why}"), false)
}

/// The client whose assertion (`client_assertion`) this request carries, or the error.
pub(super) fn authenticate(
    host: &impl Host,
    req: &Request,
    assertion_type: &str,
) -> Result<Authenticated, OAuthError> {
    if assertion_type != JWT_BEARER {
        return Err(refused(&format!(
            "client_assertion_type must be {JWT_BEARER}"
        )));
    }
    if req.authorization.is_some() || param(req, "client_secret").is_some() {
        return Err(OAuthError::invalid_request(
            "the client used more than one authentication method",
        ));
    }
    let assertion = param(req, "client_assertion")
        .ok_or_else(|| OAuthError::invalid_request("missing parameter client_assertion"))?;
    let jws = jose::parse(assertion).map_err(refused)?;
    let client_id = jws.claim_str("iss").ok_or_else(|| refused("no iss"))?;
    if jws.claim_str("sub") != Some(client_id) {
        return Err(refused("sub must be the client, as iss is"));
    }
    if param(req, "client_id").is_some_and(|id| id != client_id) {
        return Err(OAuthError::invalid_request(
            "client_id does not match the authenticated client",
        ));
    }
    // The claims first: an assertion for another audience, or stale, costs no lookup and no
    // signature check.
    let now = host.now_ms() / 1000;
    check_claims(host, &jws.claims, now)?;
    let client = crate::clients::find(host, client_id)
        .map_err(|e| store_failure(host, e))?
        .ok_or_else(|| refused("the client is unknown or did not sign it"))?;
    let signed = match jws.alg {
        // Only a configured client's secret is kept whole, and only by the host.
        Alg::Hs256 => {
            client.runtime.is_none() && host.verify_client_secret_jwt(client_id, assertion)
        }
        _ => super::jwks_of(host, &client).is_some_and(|jwks| jws.verified_by_one_of(host, &jwks)),
    };
    if !signed {
        return Err(refused("the client is unknown or did not sign it"));
    }
    let jti = jws
        .claim_str("jti")
        .filter(|j| !j.is_empty() && j.len() <= MAX_JTI_LEN)
        .ok_or_else(|| refused("no jti"))?;
    let exp = jws.claims.get("exp").and_then(Value::as_u64).unwrap_or(now);
    let key = format!(
        "{JTI_PREFIX}{{{}}}",
        hex_sha256(format!("{client_id}.{jti}").as_bytes())
    );
    let ttl_ms = (exp + SKEW_S).saturating_sub(now).max(1) * 1000;
    match host.store_insert(&key, b"1", ttl_ms) {
        Ok(true) => {}
        Ok(false) => return Err(refused("it was used before")),
        Err(e) => return Err(store_failure(host, e)),
    }
    host.authenticated(&client.client_id);
    Ok(Authenticated {
        client,
        public: false,
    })
}

/// `aud` names this service; `exp` is ahead, by at most [`MAX_LIFETIME_S`]; `nbf` and
/// `iat`, if given, are not ahead.
fn check_claims(
    host: &impl Host,
    claims: &serde_json::Map<String, Value>,
    now: u64,
) -> Result<(), OAuthError> {
    let issuer = host.issuer();
    let endpoints = ["token", "introspect", "revoke"]
        .map(|name| crate::routes::endpoint_url(host, name).unwrap_or_default());
    let ours = |aud: &str| aud == issuer || endpoints.iter().any(|e| e == aud);
    let named = match claims.get("aud") {
        Some(Value::String(aud)) => ours(aud),
        Some(Value::Array(auds)) => auds.iter().filter_map(Value::as_str).any(ours),
        _ => false,
    };
    if !named {
        return Err(refused("aud must name the issuer or the endpoint below it"));
    }
    let time = |name: &str| claims.get(name).map(|v| v.as_u64().ok_or(()));
    match time("exp") {
        None => return Err(refused("no exp")),
        Some(Err(_)) => return Err(refused("exp is not a number of seconds")),
        Some(Ok(exp)) if exp + SKEW_S <= now => return Err(refused("it expired")),
        Some(Ok(exp)) if exp > now + MAX_LIFETIME_S + SKEW_S => {
            return Err(refused(&format!(
                "it lives longer than {MAX_LIFETIME_S} seconds"
            )))
        }
        Some(Ok(_)) => {}
    }
    for name in ["nbf", "iat"] {
        match time(name) {
            Some(Err(_)) => return Err(refused(&format!("{name} is not a number of seconds"))),
            Some(Ok(t)) if t > now + SKEW_S => return Err(refused(&format!("{name} is ahead"))),
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
