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
const ACCESS_TOKEN_PREFIX: &str = "oauth:access_token:";

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
}

/// The store key of `token`, or `None` when `token` cannot be one this service issued.
pub fn access_token_key(token: &str) -> Option<String> {
    let plausible = !token.is_empty()
        && token.len() <= MAX_TOKEN_LEN
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    plausible.then(|| {
        let digest = Sha256::digest(token.as_bytes());
        let mut key = String::with_capacity(ACCESS_TOKEN_PREFIX.len() + 66);
        key.push_str(ACCESS_TOKEN_PREFIX);
        key.push('{');
        for byte in digest {
            key.push(char::from(b"0123456789abcdef"[usize::from(byte >> 4)]));
            key.push(char::from(b"0123456789abcdef"[usize::from(byte & 15)]));
        }
        key.push('}');
        key
    })
}

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
