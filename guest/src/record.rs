//! How an access token is kept in the store: never the token itself, only a record at a key
//! derived from its SHA-256 digest.
//!
//! Key: `oauth:access_token:{<hex sha256(token)>}`. A token is 256 random bits, so its
//! digest cannot be reversed or guessed; someone who reads the store learns nothing they can
//! present. The digest is a Redis Cluster hash tag (`{...}`): any further key about the same
//! token (`...:{<digest>}:<suffix>`) lands in the same slot, so one transaction or script can
//! change them together.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The key family of access tokens (the Go guide's `oauth:access_token:`).
pub(crate) const ACCESS_TOKEN_PREFIX: &str = "oauth:access_token:";

/// Tokens are 43 base64url characters; anything much longer is not one of ours and is not
/// worth a store round trip.
const MAX_TOKEN_LEN: usize = 512;

/// The stored record of an access token: the Go guide's fields plus what introspection needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenRecord {
    /// The resource owner; for `client_credentials`, the client itself.
    pub user_id: String,
    /// Granted scopes, space-separated.
    pub scope: String,
    /// Issue time, Unix seconds.
    pub created_at: u64,
    pub client_ip: String,
    pub client_id: String,
    /// Expiry time, Unix seconds.
    pub expires_at: u64,
    pub token_type: String,
    /// Claims the consent app put in the session's access token (Hydra's `ext`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ext: Option<serde_json::Value>,
    /// The audiences (resource servers) it is for; none: any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aud: Vec<String>,
    /// For a client registered at runtime, when it was (Unix seconds): the token is live
    /// only while that very registration is. None: a configured client's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_registered_at: Option<u64>,
    /// The key it is bound to (RFC 7800 `cnf`); none: a bearer token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cnf: Option<Confirmation>,
}

/// What a token is bound to (RFC 7800's `cnf`, as introspection and a JWT show it): a
/// DPoP key, a TLS client certificate, or both.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Confirmation {
    /// The RFC 7638 thumbprint of a DPoP key (RFC 9449 section 6).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jkt: Option<String>,
    /// The SHA-256 of a TLS client certificate (RFC 8705 section 3.1).
    #[serde(rename = "x5t#S256", default, skip_serializing_if = "Option::is_none")]
    pub x5t_s256: Option<String>,
}

impl Confirmation {
    /// A token bound to DPoP key `jkt` and certificate `x5t_s256`; none: to neither.
    pub fn of(jkt: Option<&String>, x5t_s256: Option<&String>) -> Option<Self> {
        (jkt.is_some() || x5t_s256.is_some()).then(|| Confirmation {
            jkt: jkt.cloned(),
            x5t_s256: x5t_s256.cloned(),
        })
    }

    /// The DPoP key, if bound to one.
    pub fn jkt(cnf: Option<&Confirmation>) -> Option<&str> {
        cnf.and_then(|c| c.jkt.as_deref())
    }
}

/// The `token_type` of an access token bound to `cnf` (RFC 9449 section 5): `DPoP` for one
/// bound to a DPoP key, else `Bearer` (a certificate-bound one too, RFC 8705 section 3).
pub fn token_type(cnf: &Option<Confirmation>) -> &'static str {
    match Confirmation::jkt(cnf.as_ref()) {
        Some(_) => "DPoP",
        None => "Bearer",
    }
}

/// The store key of `token`, or `None` when `token` cannot be one this service issued.
pub fn access_token_key(token: &str) -> Option<String> {
    secret_key(ACCESS_TOKEN_PREFIX, token)
}

/// The store key of a secret the service handed out (a token, a code, a challenge, a
/// verifier, a session id): `<prefix>{<hex sha256(secret)>}`, or `None` when `secret`
/// cannot be one of ours. The store never holds the secret itself.
pub fn secret_key(prefix: &str, secret: &str) -> Option<String> {
    let plausible = !secret.is_empty()
        && secret.len() <= MAX_TOKEN_LEN
        && secret
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    plausible.then(|| format!("{prefix}{{{}}}", hex_sha256(secret.as_bytes())))
}

/// The SHA-256 of `bytes`, in lowercase hex.
pub fn hex_sha256(bytes: &[u8]) -> String {
    let mut hex = String::with_capacity(64);
    for byte in Sha256::digest(bytes) {
        hex.push(char::from(b"0123456789abcdef"[usize::from(byte >> 4)]));
        hex.push(char::from(b"0123456789abcdef"[usize::from(byte & 15)]));
    }
    hex
}

/// 256 random bits from the host, base64url: a token, a code, a challenge or a verifier.
pub fn new_secret(host: &impl crate::Host) -> String {
    use base64::Engine as _;
    let bytes = host.random_bytes(SECRET_BYTES);
    assert_eq!(
        bytes.len(),
        SECRET_BYTES as usize,
        "host returned short randomness"
    );
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Whether `value` has the shape of a [`new_secret`]: 43 base64url characters.
pub fn is_secret(value: &str) -> bool {
    value.len() == 43
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// 256 bits of randomness per secret.
const SECRET_BYTES: u32 = 32;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_is_the_digest_not_the_token() {
        let key = access_token_key("abc").unwrap();
        assert_eq!(
            key,
            "oauth:access_token:{ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad}"
        );
        assert!(!key.contains("abc"));
    }

    #[test]
    fn strings_that_cannot_be_tokens_have_no_key() {
        assert_eq!(access_token_key(""), None);
        assert_eq!(access_token_key("a b"), None);
        assert_eq!(access_token_key(&"a".repeat(MAX_TOKEN_LEN + 1)), None);
    }
}
