//! DPoP (RFC 9449): tokens bound to a key the client proves it holds, so that a stolen
//! token is of no use without the key.
//!
//! A client sends a proof, a JWS it signed with its key (the public half in the proof's
//! header), naming the request's method and URL (and at a resource, the access token's
//! hash). The guest checks the proof's claims; the host its signature (`jose`). The token endpoint binds what it issues to the key's RFC 7638 thumbprint
//! (`cnf.jkt`); the userinfo endpoint takes such a token only with a fresh proof by that
//! key. Each proof is taken once: its `jti` is written with `store.insert` (Redis `SET NX`)
//! for as long as its `iat` is acceptable, so replicas share what they saw and of two
//! racing replays one passes.
//!
//! With `oauth.dpop.require_nonce`, a proof must also carry a nonce this service handed out
//! (section 8). A nonce is an empty value sealed by the host for a few minutes (`seal`):
//! every replica opens every other's, and no store round trip is needed.

use crate::jose;
use crate::record::hex_sha256;
use crate::response::{store_failure, OAuthError};
use crate::{Client, Host};
use serde_json::Value;

/// How far a proof's `iat` may lie from now, either way, seconds. A `jti` is kept twice as
/// long, so that no proof is accepted twice.
pub(crate) const IAT_WINDOW_S: u64 = 60;
/// How long a nonce is good for, ms.
const NONCE_TTL_MS: u64 = 5 * 60 * 1000;
const NONCE_PURPOSE: &str = "dpop-nonce";
const JTI_PREFIX: &str = "oauth:dpop_jti:";
/// The longest `jti` taken: a proof's is a random string, 22 to 43 characters.
const MAX_JTI_LEN: usize = 256;

/// A proof that checked: the thumbprint of its key, and its `jti` to spend.
#[derive(Debug)]
pub(crate) struct Proof {
    /// The key's RFC 7638 thumbprint, base64url: what a token is bound to (`cnf.jkt`).
    pub jkt: String,
    jti_key: String,
}

/// Why a proof was refused.
#[derive(Debug, PartialEq)]
pub(crate) enum Refusal {
    /// `invalid_dpop_proof`, and why.
    Invalid(String),
    /// `use_dpop_nonce`: try again with this nonce.
    UseNonce(String),
}

/// What the proof must name: the request's method, the endpoint's URL below the issuer
/// (what metadata advertises, whatever `Host` a request sends: a proof made for another
/// server is no good here), and at a resource the access token presented.
pub(crate) struct Expected<'a> {
    pub method: &'a str,
    pub url: &'a str,
    pub access_token: Option<&'a str>,
}

impl Proof {
    /// Spends the proof's `jti`: false, writing nothing, when it was spent already (a
    /// replay). Call it once the request has authenticated (a client, or a token bound to
    /// the proof's key) and been charged, so that no anonymous request writes.
    pub(crate) fn spend(&self, host: &impl Host) -> Result<bool, crate::StoreError> {
        host.store_insert(&self.jti_key, b"1", 2 * IAT_WINDOW_S * 1000)
    }
}

/// The proof `header` (the `DPoP` header's value), checked against `expected`: a JWS of type
/// `dpop+jwt` by an asymmetric key in its own `jwk` header, naming the method and URL, issued
/// within [`IAT_WINDOW_S`] of now, and with `require_nonce` carrying a nonce of ours.
pub(crate) fn check(
    host: &impl Host,
    require_nonce: bool,
    header: &str,
    expected: &Expected,
) -> Result<Proof, Refusal> {
    let invalid = |why: &str| Refusal::Invalid(why.to_owned());
    let jws = jose::parse(header).map_err(|e| invalid(&format!("the DPoP proof: {e}")))?;
    if jws.alg == jose::Alg::Hs256 {
        return Err(invalid(
            "the DPoP proof's alg is HS256: a proof is signed by a key pair",
        ));
    }
    if jws.header.get("typ").and_then(Value::as_str) != Some("dpop+jwt") {
        return Err(invalid("the DPoP proof's typ is not dpop+jwt"));
    }
    let jwk = jws
        .header
        .get("jwk")
        .and_then(Value::as_object)
        .ok_or_else(|| invalid("the DPoP proof has no jwk header"))?;
    jose::public_jwk(jwk).map_err(|e| invalid(&format!("the DPoP proof's jwk: {e}")))?;
    // The claims first: a proof that names the wrong request costs no signature check.
    let jti = jws
        .claim_str("jti")
        .filter(|j| !j.is_empty() && j.len() <= MAX_JTI_LEN)
        .ok_or_else(|| invalid("the DPoP proof has no jti"))?;
    if jws.claim_str("htm") != Some(expected.method) {
        return Err(invalid("the DPoP proof's htm is not the request's method"));
    }
    let htu = jws
        .claim_str("htu")
        .and_then(normalized)
        .ok_or_else(|| invalid("the DPoP proof's htu is not an http(s) URL"))?;
    if normalized(expected.url).as_deref() != Some(htu.as_str()) {
        return Err(invalid("the DPoP proof's htu is not this endpoint's URL"));
    }
    let now = host.now_ms() / 1000;
    let iat = jws.claims.get("iat").and_then(Value::as_u64);
    if iat.is_none_or(|iat| iat.abs_diff(now) > IAT_WINDOW_S) {
        return Err(invalid(&format!(
            "the DPoP proof's iat is not within {IAT_WINDOW_S} seconds of now"
        )));
    }
    if let Some(token) = expected.access_token {
        if jws.claim_str("ath") != Some(jose::sha256_b64(token).as_str()) {
            return Err(invalid(
                "the DPoP proof's ath is not the access token's hash",
            ));
        }
    }
    if !jws.verified_by(host, jwk) {
        return Err(invalid("the DPoP proof's signature does not verify"));
    }
    if require_nonce {
        let ours = jws
            .claim_str("nonce")
            .is_some_and(|n| host.open(NONCE_PURPOSE, n).is_some());
        if !ours {
            return Err(Refusal::UseNonce(nonce(host).map_err(|_| {
                invalid("the DPoP proof needs a nonce, and none can be made now")
            })?));
        }
    }
    let jkt = jose::thumbprint(jwk).map_err(|e| invalid(&format!("the DPoP proof's jwk: {e}")))?;
    let jti_key = format!(
        "{JTI_PREFIX}{{{}}}",
        hex_sha256(format!("{jkt}.{jti}").as_bytes())
    );
    Ok(Proof { jkt, jti_key })
}

/// A fresh nonce (section 8): an empty value sealed for [`NONCE_TTL_MS`].
pub(crate) fn nonce(host: &impl Host) -> Result<String, crate::StoreError> {
    host.seal(NONCE_PURPOSE, b"", NONCE_TTL_MS)
}

/// The token endpoint's proof, if the request sent one: checked, or the RFC's error. A
/// client with `dpop_bound_access_tokens` must send one (section 5.2).
pub(crate) fn at_token_endpoint(
    host: &impl Host,
    req: &crate::Request,
    client: &Client,
) -> Result<Option<Proof>, OAuthError> {
    let policy = host.dpop();
    let Some(header) = req.dpop.as_deref() else {
        if bound(client, &policy) {
            return Err(invalid_proof(
                "this client's tokens are DPoP-bound (dpop_bound_access_tokens): send a DPoP proof",
            ));
        }
        return Ok(None);
    };
    let endpoint = crate::routes::endpoint_url(host, "token").unwrap_or_default();
    let expected = Expected {
        method: "POST",
        url: &endpoint,
        access_token: None,
    };
    match check(host, policy.require_nonce, header, &expected) {
        Ok(proof) => Ok(Some(proof)),
        Err(Refusal::Invalid(why)) => Err(invalid_proof(why)),
        Err(Refusal::UseNonce(nonce)) => Err(OAuthError {
            dpop_nonce: Some(nonce),
            ..OAuthError::new(
                400,
                "use_dpop_nonce",
                "the DPoP proof must carry the nonce in the DPoP-Nonce header",
            )
        }),
    }
}

/// Spends `proof`'s `jti` at the token endpoint: a replayed proof is `invalid_dpop_proof`.
pub(crate) fn spend(host: &impl Host, proof: &Proof) -> Result<(), OAuthError> {
    match proof.spend(host) {
        Ok(true) => Ok(()),
        Ok(false) => Err(invalid_proof("the DPoP proof was used before")),
        Err(e) => Err(store_failure(host, e)),
    }
}

pub(crate) fn invalid_proof(description: impl Into<String>) -> OAuthError {
    OAuthError::new(400, "invalid_dpop_proof", description)
}

/// At a protected resource (userinfo), for a live token bound to `cnf` (none: a bearer
/// token) presented with `scheme`: nothing when the presentation fits the token, else the
/// answer (section 7). A bound token needs the DPoP scheme and a proof by its key naming
/// it (`ath`), spent once; a bearer token cannot be presented as DPoP.
pub(crate) fn at_resource(
    host: &impl Host,
    cnf: Option<&str>,
    scheme: crate::userinfo::Scheme,
    token: &str,
    presented: &crate::userinfo::Presented,
) -> Result<(), crate::Response> {
    use crate::userinfo::Scheme;
    let refuse = |error: &str, why: &str| resource_challenge(error, why, None);
    let jkt = match (cnf, scheme) {
        (None, Scheme::Bearer) => return Ok(()),
        (None, Scheme::Dpop) => {
            return Err(refuse(
                "invalid_token",
                "the access token is not DPoP-bound: present it as a Bearer token",
            ))
        }
        (Some(_), Scheme::Bearer) => {
            return Err(refuse(
                "invalid_token",
                "the access token is DPoP-bound: present it with the DPoP scheme and a proof",
            ))
        }
        (Some(jkt), Scheme::Dpop) => jkt,
    };
    let Some(header) = presented.dpop else {
        return Err(refuse("invalid_dpop_proof", "send a DPoP proof"));
    };
    let endpoint = crate::routes::endpoint_url(host, "userinfo").unwrap_or_default();
    let expected = Expected {
        method: presented.method,
        url: &endpoint,
        access_token: Some(token),
    };
    let proof = match check(host, host.dpop().require_nonce, header, &expected) {
        Ok(proof) => proof,
        Err(Refusal::Invalid(why)) => return Err(refuse("invalid_dpop_proof", &why)),
        Err(Refusal::UseNonce(nonce)) => {
            return Err(resource_challenge(
                "use_dpop_nonce",
                "the DPoP proof must carry the nonce in the DPoP-Nonce header",
                Some(nonce),
            ))
        }
    };
    if proof.jkt != jkt {
        return Err(refuse(
            "invalid_dpop_proof",
            "the DPoP proof's key is not the one the access token is bound to",
        ));
    }
    match proof.spend(host) {
        Ok(true) => Ok(()),
        Ok(false) => Err(refuse(
            "invalid_dpop_proof",
            "the DPoP proof was used before",
        )),
        Err(e) => Err(store_failure(host, e).into_response()),
    }
}

/// `WWW-Authenticate: DPoP` with the algorithms taken and the error, if any (section 7.1).
pub(crate) fn challenge_header(error: &str, description: &str) -> String {
    let algs = jose::ASYMMETRIC.join(" ");
    match error {
        "" => format!("DPoP algs=\"{algs}\""),
        _ => {
            format!("DPoP error=\"{error}\", error_description=\"{description}\", algs=\"{algs}\"")
        }
    }
}

/// A 401 with the DPoP challenge (and a nonce to use), the error in the body too.
fn resource_challenge(error: &str, description: &str, nonce: Option<String>) -> crate::Response {
    let body = serde_json::json!({"error": error, "error_description": description});
    let mut response = crate::response::json(401, &body);
    response.headers.push((
        "WWW-Authenticate".into(),
        challenge_header(error, description),
    ));
    if let Some(nonce) = nonce {
        response.headers.push(("DPoP-Nonce".into(), nonce));
    }
    response
}

/// Whether `client` must send a proof: its registration says `dpop_bound_access_tokens`.
fn bound(client: &Client, policy: &crate::DpopPolicy) -> bool {
    match &client.runtime {
        Some(runtime) => runtime.dpop_bound,
        None => policy.bound_clients.contains(&client.client_id),
    }
}

/// `url` without its query and fragment, compared as RFC 9449 section 4.3 says (RFC 3986
/// sections 6.2.2 and 6.2.3): the scheme and host in lowercase, no default port, an empty
/// path as `/`, and percent-encodings in uppercase, those of unreserved characters decoded.
/// None for a URL that is not `http(s)`.
fn normalized(url: &str) -> Option<String> {
    let url = url.split(['?', '#']).next().unwrap_or_default();
    let (scheme, rest) = url.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "https" => ":443",
        "http" => ":80",
        _ => return None,
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    if authority.is_empty() || authority.contains('@') {
        return None;
    }
    let authority = authority.to_ascii_lowercase();
    let authority = authority.strip_suffix(default_port).unwrap_or(&authority);
    let mut out = format!("{scheme}://{authority}");
    if path.is_empty() {
        out.push('/');
    }
    let bytes = path.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| char::from(b).to_digit(16);
        match (
            bytes[i],
            bytes.get(i + 1).copied(),
            bytes.get(i + 2).copied(),
        ) {
            (b'%', Some(h), Some(l)) if hex(h).is_some() && hex(l).is_some() => {
                let byte = (hex(h)? * 16 + hex(l)?) as u8;
                if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
                    out.push(char::from(byte));
                } else {
                    out.push('%');
                    out.push(char::from(h.to_ascii_uppercase()));
                    out.push(char::from(l.to_ascii_uppercase()));
                }
                i += 3;
            }
            _ => {
                // A multi-byte character stays as it is.
                let c = path[i..].chars().next()?;
                out.push(c);
                i += c.len_utf8();
            }
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests;
