//! What a presented token names in the store, for introspection, revocation and userinfo.
//!
//! An opaque token names its own record: a grant's access or refresh token leads to its
//! grant's keys, a client's token to the key of its digest. A JWT access token (RFC 9068)
//! names the record its `jti` gives: the digest of the opaque token it stands for and, for
//! a grant's, the grant's access id. A `jti` is no secret (a resource server may log it),
//! so it is an address, never a credential: only a token whose signature the host verifies
//! (`keys.verify`) is looked up by it, and the `jti` presented as a token is nothing.

use crate::grant::GrantToken;
use crate::record::{access_token_key, hex_sha256, is_secret, ACCESS_TOKEN_PREFIX};
use crate::{Host, Purpose};

/// A presented token, as the store knows it.
pub(crate) enum Named<'t> {
    /// A grant's access or refresh token.
    Grant(GrantToken<'t>),
    /// The record key of a client's (`client_credentials`) access token.
    Client(String),
    /// Nothing this service issued.
    Nothing,
}

/// What `token` names.
pub(crate) fn named<'t>(host: &impl Host, token: &'t str) -> Named<'t> {
    if let Some(grant) = GrantToken::parse(token) {
        return Named::Grant(grant);
    }
    if token.bytes().filter(|&b| b == b'.').count() == 2 {
        return verified_jti(host, token).map_or(Named::Nothing, by_jti);
    }
    access_token_key(token).map_or(Named::Nothing, Named::Client)
}

/// The `jti` of the JWT access token that stands for `opaque`: where its record is.
pub(crate) fn jti(opaque: &str) -> String {
    let digest = hex_sha256(opaque.as_bytes());
    match opaque.split_once('.') {
        Some((access_id, _)) => format!("{access_id}.{digest}"),
        None => digest,
    }
}

/// The `jti` of `token` if the host signed it as an access token.
fn verified_jti(host: &impl Host, token: &str) -> Option<String> {
    let claims = host.verify(Purpose::AccessToken, token)?;
    let claims: serde_json::Value = serde_json::from_str(&claims).ok()?;
    claims["jti"].as_str().map(str::to_owned)
}

fn by_jti(jti: String) -> Named<'static> {
    let hex = |s: &str| s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit());
    match jti.split_once('.') {
        Some((access_id, digest)) if is_secret(access_id) && hex(digest) => {
            Named::Grant(GrantToken::recorded(access_id, digest))
        }
        None if hex(&jti) => Named::Client(format!("{ACCESS_TOKEN_PREFIX}{{{jti}}}")),
        _ => Named::Nothing,
    }
}
