//! Clients registered at runtime (Ory Hydra's client admin API), kept in the store beside
//! the operator's configured ones, and the one lookup every endpoint uses for both.
//!
//! A configured client (`oauth.clients`, `settings.find-client`) wins: its id cannot be
//! taken at runtime, and finding it costs no store round trip. Any other id is read from
//! the store, once a request: the [`Client`] found carries what the host's settings would
//! answer of a configured one (its registration, refresh policy and token format), so the
//! rest of the request asks nothing more.
//!
//! | key | holds |
//! |---|---|
//! | `oauth:client:{client-<b>}:<hex sha256(client_id)>` | the client ([`Stored`]) |
//! | `oauth:client_index:{client-<b>}` | the ids of the bucket's clients, sorted (JSON array) |
//!
//! `<b>` is the first hex digit of the id's SHA-256: 16 buckets, each a hash tag, so a
//! client and its bucket's index change together in one `store.apply`, and a listing reads
//! the 16 indexes in one round trip. A record lives ten years from its last change (the
//! store expires everything).

pub mod admin;
mod build;
mod patch;
mod record;
pub mod register;
mod show;
#[cfg(test)]
mod tests;

pub use record::Stored;

use crate::{Client, Host, Level, RefreshPolicy, Registration, StoreError, TokenFormat};
use sha2::{Digest, Sha256};

/// What a client registered at runtime carries that a configured one's lookups answer.
#[derive(Clone, Debug)]
pub struct RuntimeParts {
    pub registration: Registration,
    pub refresh: RefreshPolicy,
    pub format: TokenFormat,
    /// When it was registered, Unix seconds: its tokens record it, and are live only
    /// while this very registration is.
    pub registered_at: u64,
    /// `dpop_bound_access_tokens`: its token requests must carry a DPoP proof.
    pub dpop_bound: bool,
    /// Its public keys (`jwks`), a JWK set as JSON, for `private_key_jwt` (and their
    /// certificates, for `self_signed_tls_client_auth`).
    pub jwks: Option<String>,
    /// What it registered for mutual TLS.
    pub mtls: Option<crate::MtlsClient>,
}

/// How long a client's record lives after its last change, in ms (ten years).
const RECORD_TTL_MS: u64 = 10 * 365 * 24 * 3600 * 1000;
/// The longest client id this guest registers (the host takes up to 255 bytes).
pub const MAX_ID_BYTES: usize = 255;

fn bucket(client_id: &str) -> char {
    let digest = Sha256::digest(client_id.as_bytes());
    char::from_digit(u32::from(digest[0] >> 4), 16).unwrap_or('0')
}

/// Where client `client_id`'s record is.
pub(crate) fn record_key(client_id: &str) -> String {
    format!(
        "oauth:client:{{client-{}}}:{}",
        bucket(client_id),
        crate::record::hex_sha256(client_id.as_bytes())
    )
}

/// Where the index of the bucket of `client_id` is.
fn index_key(client_id: &str) -> String {
    index_key_of(bucket(client_id))
}

fn index_key_of(bucket: char) -> String {
    format!("oauth:client_index:{{client-{bucket}}}")
}

/// The client registered under `client_id`, configured or at runtime; none if neither.
pub fn find(host: &impl Host, client_id: &str) -> Result<Option<Client>, StoreError> {
    if let Some(client) = host.client(client_id) {
        return Ok(Some(client));
    }
    let stored = read(host, client_id)?;
    Ok(stored.map(|(stored, _)| stored.client(&host.client_defaults())))
}

/// The record of client `client_id` registered at runtime, and its bytes as stored (for a
/// compare-and-set); none when there is none, or none readable.
pub(crate) fn read(
    host: &impl Host,
    client_id: &str,
) -> Result<Option<(Stored, Vec<u8>)>, StoreError> {
    if client_id.is_empty() || client_id.len() > MAX_ID_BYTES {
        return Ok(None);
    }
    let Some(bytes) = host.store_get(&record_key(client_id))? else {
        return Ok(None);
    };
    match serde_json::from_slice::<Stored>(&bytes) {
        Ok(stored) if stored.client_id == client_id => Ok(Some((stored, bytes))),
        _ => {
            host.log(
                Level::Warn,
                "a client record in the store is unreadable: the client is treated as absent",
            );
            Ok(None)
        }
    }
}

/// When `client` was registered, if at runtime: what its tokens' records keep
/// (`client_registered_at`), so that only they cost a lookup to check it is still there.
pub fn registered_at(client: &Client) -> Option<u64> {
    client.runtime.as_ref().map(|parts| parts.registered_at)
}

/// Whether the client a token was issued to (`client_id`, registered at runtime at
/// `registered_at`; none: configured) is that same registration still: a deleted client's
/// tokens are dead, and stay so if another client takes its id.
pub fn still_registered(
    host: &impl Host,
    client_id: &str,
    registered_at: Option<u64>,
) -> Result<bool, StoreError> {
    let Some(registered_at) = registered_at else {
        return Ok(true);
    };
    let client = find(host, client_id)?;
    Ok(client.is_some_and(|c| self::registered_at(&c) == Some(registered_at)))
}

/// The browser-flow registration of `client`.
pub fn registration(host: &impl Host, client: &Client) -> Option<Registration> {
    match &client.runtime {
        Some(parts) => Some(parts.registration.clone()),
        None => host.registration(&client.client_id),
    }
}

/// How the refresh tokens of `client`'s grants live.
pub fn refresh_policy(host: &impl Host, client: &Client) -> Option<RefreshPolicy> {
    match &client.runtime {
        Some(parts) => Some(parts.refresh),
        None => host.refresh_policy(&client.client_id),
    }
}

/// How `client`'s tokens are made.
pub fn token_format(host: &impl Host, client: &Client) -> Option<TokenFormat> {
    match &client.runtime {
        Some(parts) => Some(parts.format.clone()),
        None => host.token_format(&client.client_id),
    }
}
