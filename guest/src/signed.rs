//! Signed tokens: RFC 9068 JWT access tokens and OpenID Connect ID tokens. The guest builds
//! their claims; the host signs them (`keys.sign`) with keys the guest never holds.
//!
//! A JWT access token stands for an opaque one, recorded in the store as that one is (under
//! its digest) and never handed out: the JWT's `jti` says where the record is
//! (`presented.rs`), so introspection and revocation find a verified JWT by its `jti`, and
//! a revocation makes introspection answer inactive. A verifier that checks the signature
//! alone cannot see a revocation: JWT access tokens should live briefly.

use crate::record::TokenRecord;
use crate::response::{store_failure, OAuthError};
use crate::{Algorithm, Host, Purpose, TokenFormat};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256, Sha512};

/// The scope that asks for an ID token (OpenID Connect Core section 3.1.2.1).
pub(crate) const OPENID: &str = "openid";

/// Claims a consent app's session may not set in an access token: the registered ones and
/// what they are checked by.
const ACCESS_TOKEN_REGISTERED: [&str; 13] = [
    "iss",
    "exp",
    "aud",
    "sub",
    "client_id",
    "iat",
    "jti",
    "scope",
    "nbf",
    "cnf",
    "auth_time",
    "acr",
    "amr",
];
/// The same for an ID token (OpenID Connect Core section 2).
pub(crate) const ID_TOKEN_REGISTERED: [&str; 15] = [
    "iss",
    "sub",
    "aud",
    "exp",
    "iat",
    "nbf",
    "jti",
    "auth_time",
    "nonce",
    "at_hash",
    "c_hash",
    "azp",
    "acr",
    "amr",
    "sid",
];

/// The token format of a registered client; there is one for each.
pub(crate) fn format(host: &impl Host, client: &crate::Client) -> Result<TokenFormat, OAuthError> {
    crate::clients::token_format(host, client)
        .ok_or_else(|| OAuthError::server_error("the host has no token format for the client"))
}

/// The audiences a token request (or an authorization request) asks for: RFC 8707's
/// `resource` and Hydra's space-separated `audience`, each one the client was given, else
/// `invalid_target`. None asked: none (a token then names every audience of the client).
pub(crate) fn audience(
    format: &TokenFormat,
    resource: Option<&str>,
    audience: Option<&str>,
) -> Result<Vec<String>, OAuthError> {
    let requested: Vec<&str> = resource
        .into_iter()
        .chain(audience.into_iter().flat_map(|a| a.split(' ')))
        .filter(|a| !a.is_empty())
        .collect();
    if requested.is_empty() {
        return Ok(Vec::new());
    }
    let mut granted: Vec<String> = Vec::new();
    for target in requested {
        if !format.audience.iter().any(|a| a == target) {
            return Err(OAuthError::new(
                400,
                "invalid_target",
                format!(
                    "the resource {:?} is not one this client may ask for",
                    target.chars().take(256).collect::<String>()
                ),
            ));
        }
        if !granted.iter().any(|g| g == target) {
            granted.push(target.to_owned());
        }
    }
    Ok(granted)
}

/// The audiences a token is for: those `granted` (asked for), or when none were asked for,
/// every one of the client's.
pub(crate) fn effective(format: &TokenFormat, granted: Vec<String>) -> Vec<String> {
    match granted.is_empty() {
        true => format.audience.clone(),
        false => granted,
    }
}

/// The access token to hand out for `opaque`, a token just recorded as `record`: itself,
/// or for a client whose `format` is the JWT strategy a JWT that stands for it, naming the
/// record's audiences.
pub(crate) fn access_token(
    host: &impl Host,
    format: &TokenFormat,
    opaque: String,
    record: &TokenRecord,
) -> Result<String, OAuthError> {
    if !format.jwt_access_tokens {
        return Ok(opaque);
    }
    let mut payload = session_claims(record.ext.as_ref(), &ACCESS_TOKEN_REGISTERED);
    payload.insert("iss".into(), host.issuer().into());
    payload.insert("exp".into(), record.expires_at.into());
    payload.insert("aud".into(), record.aud.clone().into());
    payload.insert("sub".into(), record.user_id.clone().into());
    payload.insert("client_id".into(), record.client_id.clone().into());
    payload.insert("iat".into(), record.created_at.into());
    payload.insert("jti".into(), crate::presented::jti(&opaque).into());
    payload.insert("scope".into(), record.scope.clone().into());
    if let Some(cnf) = &record.cnf {
        payload.insert("cnf".into(), serde_json::json!(cnf));
    }
    sign(host, Purpose::AccessToken, format.access_token_alg, payload)
}

/// What an ID token says of the sign-in, kept with the code and the grant so that a
/// refresh can issue another (OpenID Connect Core section 12.2).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(crate) struct Session {
    /// When the user signed in, Unix seconds.
    pub auth_time: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acr: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub amr: Vec<String>,
    /// Claims the consent app put in `session.id_token` (Hydra's), for the ID token and
    /// userinfo.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claims: Option<Value>,
}

/// An ID token for `subject`, signed-in as `session` says, to `client_id` (of token
/// format `format`), issued with `access_token` (its `at_hash`), echoing `nonce` exactly.
pub(crate) fn id_token(
    host: &impl Host,
    (client_id, format): (&str, &TokenFormat),
    subject: &str,
    session: &Session,
    access_token: &str,
    nonce: Option<&str>,
) -> Result<String, OAuthError> {
    let now = host.now_ms() / 1000;
    let mut payload = session_claims(session.claims.as_ref(), &ID_TOKEN_REGISTERED);
    payload.insert("iss".into(), host.issuer().into());
    payload.insert("sub".into(), subject.into());
    payload.insert("aud".into(), client_id.into());
    payload.insert("exp".into(), (now + format.id_token_ttl).into());
    payload.insert("iat".into(), now.into());
    payload.insert("auth_time".into(), session.auth_time.into());
    if let Some(nonce) = nonce {
        payload.insert("nonce".into(), nonce.into());
    }
    payload.insert(
        "at_hash".into(),
        at_hash(format.id_token_alg, access_token).into(),
    );
    if let Some(acr) = &session.acr {
        payload.insert("acr".into(), acr.clone().into());
    }
    if !session.amr.is_empty() {
        payload.insert("amr".into(), session.amr.clone().into());
    }
    sign(host, Purpose::IdToken, format.id_token_alg, payload)
}

/// The claims a consent app put in a session, an object, without the registered ones.
pub(crate) fn session_claims(claims: Option<&Value>, registered: &[&str]) -> Map<String, Value> {
    let mut map = match claims {
        Some(Value::Object(map)) => map.clone(),
        _ => Map::new(),
    };
    map.retain(|name, _| !registered.contains(&name.as_str()));
    map
}

/// OpenID Connect Core section 3.1.3.6: the left half of the hash of the access token's
/// ASCII octets, with the hash of the ID token's `alg` (SHA-512 for EdDSA with Ed25519).
fn at_hash(alg: Algorithm, access_token: &str) -> String {
    let digest = match alg {
        Algorithm::Rs256 | Algorithm::Es256 => Sha256::digest(access_token.as_bytes()).to_vec(),
        Algorithm::EdDsa => Sha512::digest(access_token.as_bytes()).to_vec(),
    };
    URL_SAFE_NO_PAD.encode(&digest[..digest.len() / 2])
}

fn sign(
    host: &impl Host,
    purpose: Purpose,
    alg: Algorithm,
    payload: Map<String, Value>,
) -> Result<String, OAuthError> {
    let claims = Value::Object(payload).to_string();
    host.sign(purpose, alg, &claims)
        .map_err(|e| store_failure(host, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::TestHost;

    const SHA512_HALF: &str = "RkW42UZdFoyx4CJvwZrObpfXaNr5C62ZKD3ygveOxYg";

    #[test]
    fn at_hash_is_the_left_half_of_the_algorithms_hash() {
        // Computed apart, with Python's hashlib: base64url(sha256(token)[:16]) and
        // base64url(sha512(token)[:32]).
        assert_eq!(
            at_hash(Algorithm::Rs256, "jHkWEdUXMU1BwAsC4vtUsZwnNnKa"),
            "K18_NOufd74jN8hrYp6Dlg"
        );
        assert_eq!(
            at_hash(Algorithm::EdDsa, "jHkWEdUXMU1BwAsC4vtUsZwnNnKa"),
            SHA512_HALF
        );
    }

    #[test]
    fn a_resource_the_client_was_not_given_is_invalid_target() {
        let host = TestHost::new();
        let format = host.token_format(crate::testing::DEMO_ID).unwrap();
        assert!(audience(&format, None, None).unwrap().is_empty());
        assert_eq!(
            audience(&format, Some(crate::testing::AUDIENCE), None).unwrap(),
            [crate::testing::AUDIENCE]
        );
        let refused = audience(&format, Some("https://elsewhere.test"), None).unwrap_err();
        assert_eq!((refused.status, refused.error), (400, "invalid_target"));
        let refused = audience(&format, None, Some("https://api.test https://no.test"));
        assert!(refused.is_err());
    }

    #[test]
    fn a_session_cannot_set_registered_claims() {
        let session = serde_json::json!({"sub": "mallory", "exp": 1, "email": "a@b.test"});
        let kept = session_claims(Some(&session), &ID_TOKEN_REGISTERED);
        assert_eq!(
            Value::Object(kept),
            serde_json::json!({"email": "a@b.test"})
        );
    }
}
