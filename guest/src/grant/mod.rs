//! A user's grant: what a redeemed authorization code starts, and what its refresh tokens
//! carry on (RFC 6749 section 6), rotated at every use with reuse detection (RFC 9700
//! section 4.14).
//!
//! A grant has an id, 256 random bits, and its tokens lead to its records without a lookup:
//!
//! - a refresh token is `<grant id>.<generation>.<secret>`: the generation counts the
//!   grant's rotations, so a token of an earlier generation is one the grant rotated out;
//! - an access token is `<access id>.<secret>`, the access id the SHA-256 of the grant id
//!   (base64url): an access token names the grant's records but cannot make a refresh
//!   token, so a resource server that sees access tokens cannot end a grant.
//!
//! Secrets are 256 random bits (or, at a rotation, derived from the presented token and a
//! random nonce: see [`derive`]). Everything stored of a grant carries the hash tag `{g}`,
//! `g` the hex SHA-256 of the access id, so it lives in one cluster slot and every change to
//! it is one `store.apply`:
//!
//! | key | holds | expires |
//! |---|---|---|
//! | `oauth:grant:{g}` | the grant: client, subject, scope, claims, generation, its refresh token's digest and expiry | with the last of its tokens |
//! | `oauth:access_token:{g}:<digest>` | an access token issued from it | with the token |
//! | `oauth:refresh_grace:{g}` | with a reuse grace, how to rebuild the last rotation's answer | after the grace |
//!
//! `<digest>` is the token's hex SHA-256: no token is stored. A grant keeps no record of the
//! tokens it rotated out, however often it is refreshed: their generation tells them. Only
//! someone who held one of the grant's refresh tokens knows its id, and such a one could
//! present that token, so a stale generation is a reuse whoever wrote the rest. A grant's
//! access tokens are live only while its record is, so ending a grant (a rotated refresh
//! token presented again, its refresh token revoked, its code replayed) is one removal,
//! however many access tokens it issued.

use crate::issue::{Claims, TokenResponse};
use crate::record::{hex_sha256, is_secret, new_secret, token_type, Confirmation, TokenRecord};
use crate::response::{json, store_failure, OAuthError};
use crate::{scope, Change, Client, Host, Level, RefreshPolicy, Request, Response, Transaction};
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The scope that asks for a refresh token (OpenID Connect's and Hydra's convention).
pub const OFFLINE_ACCESS: &str = "offline_access";

/// The key family of grants.
pub(crate) const GRANT_PREFIX: &str = "oauth:grant:";

/// A grant as stored at `oauth:grant:{g}`.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct GrantRecord {
    client_id: String,
    /// The signed-in user.
    subject: String,
    /// Granted scopes, space-separated; a refresh may narrow an access token's, never this.
    scope: String,
    /// Claims the consent app added (Hydra's `session.access_token`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ext: Option<serde_json::Value>,
    /// The audiences its tokens are for (those asked for, else all the client's); none:
    /// any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    audience: Vec<String>,
    /// The OpenID Connect sign-in, when `openid` was granted: each refresh issues an ID
    /// token from it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    session: Option<crate::signed::Session>,
    /// When the grant ends however often it is refreshed, ms since the epoch.
    ends_at_ms: u64,
    /// The generation of its live refresh token: its rotations so far.
    generation: u64,
    /// The digest of its live refresh token; none for a grant without one.
    refresh: Option<String>,
    /// When that refresh token was issued and when it expires, ms since the epoch.
    refresh_issued_at_ms: u64,
    refresh_expires_at_ms: u64,
    /// When this record expires: once the last of its tokens has, ms since the epoch.
    expires_at_ms: u64,
    /// For a client registered at runtime, when it was (see `TokenRecord`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    client_registered_at: Option<u64>,
    /// The DPoP key its refresh tokens are bound to (a public client's, RFC 9449 section
    /// 5): only a request with a proof by that key refreshes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    jkt: Option<String>,
    /// The TLS client certificate its refresh tokens are bound to (a public client's whose
    /// access tokens are bound to it, RFC 8705 section 4): only a request over a
    /// connection with it refreshes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    x5t_s256: Option<String>,
}

/// With a reuse grace: what rebuilds the last rotation's answer, at `oauth:refresh_grace:{g}`.
/// Not the tokens: the nonce they were derived with, which yields them only with the rotated
/// token itself (see [`derive`]).
#[derive(Serialize, Deserialize)]
struct Grace {
    /// The digest of the refresh token that rotation took.
    rotated: String,
    nonce: String,
    scope: String,
    /// The access token's expiry, Unix seconds.
    expires_at: u64,
    /// The DPoP key the access token was bound to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    jkt: Option<String>,
    /// The TLS client certificate the access token was bound to (`x5t#S256`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    x5t_s256: Option<String>,
}

/// A token of a grant, as its keys see it.
pub(crate) struct GrantToken<'t> {
    token: &'t str,
    kind: Kind<'t>,
    /// The grant's access id, and its hex SHA-256: the grant's hash tag.
    access_id: String,
    tag: String,
    /// The hex SHA-256 of the whole token.
    digest: String,
}

enum Kind<'t> {
    Access,
    Refresh { grant_id: &'t str, generation: u64 },
}

impl<'t> GrantToken<'t> {
    /// `token` as a grant's, or none when it cannot be one.
    pub fn parse(token: &'t str) -> Option<Self> {
        let mut parts = token.split('.');
        let (kind, access_id) = match (parts.next()?, parts.next()?, parts.next(), parts.next()) {
            (access_id, secret, None, None) if is_secret(access_id) && is_secret(secret) => {
                (Kind::Access, access_id.to_owned())
            }
            (grant_id, generation, Some(secret), None)
                if is_secret(grant_id) && is_secret(secret) =>
            {
                let parsed: u64 = generation.parse().ok()?;
                if parsed.to_string() != generation {
                    return None;
                }
                let kind = Kind::Refresh {
                    grant_id,
                    generation: parsed,
                };
                (kind, access_id(grant_id))
            }
            _ => return None,
        };
        Some(GrantToken {
            token,
            kind,
            tag: hex_sha256(access_id.as_bytes()),
            access_id,
            digest: hex_sha256(token.as_bytes()),
        })
    }

    /// The access token of the grant of access id `access_id` whose digest is `digest`:
    /// what a JWT access token's `jti` names (`presented.rs`).
    pub fn recorded(access_id: &str, digest: &str) -> GrantToken<'static> {
        GrantToken {
            token: "",
            kind: Kind::Access,
            tag: hex_sha256(access_id.as_bytes()),
            access_id: access_id.to_owned(),
            digest: digest.to_owned(),
        }
    }

    fn grant_key(&self) -> String {
        grant_key(&self.tag)
    }
    fn access_key(&self) -> String {
        format!("oauth:access_token:{{{}}}:{}", self.tag, self.digest)
    }
    fn grace_key(&self) -> String {
        format!("oauth:refresh_grace:{{{}}}", self.tag)
    }
}

/// The access id of a grant: what its access tokens name it by.
fn access_id(grant_id: &str) -> String {
    let digest = Sha256::new()
        .chain_update(b"tokenginx access id v1\0")
        .chain_update(grant_id.as_bytes())
        .finalize();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest)
}

fn grant_key(tag: &str) -> String {
    format!("{GRANT_PREFIX}{{{tag}}}")
}

fn invalid() -> OAuthError {
    OAuthError::invalid_grant("the refresh token is invalid, expired or revoked")
}

/// The policy of a registered client; the host has one for each.
fn policy(host: &impl Host, client: &Client) -> Result<RefreshPolicy, OAuthError> {
    crate::clients::refresh_policy(host, client)
        .ok_or_else(|| OAuthError::server_error("the host has no refresh policy for the client"))
}

/// A grant started: the key that ends it, how long it may live, and the token response.
pub(crate) struct Started {
    pub grant_key: String,
    pub ttl_ms: u64,
    /// When the grant ends however often it is refreshed, ms since the epoch.
    pub ends_at_ms: u64,
    pub response: Response,
}

/// Starts a grant for `claims` (a redeemed code's): an access token, a refresh token when
/// the client may refresh and `offline_access` was granted (bound as `refresh_bound`, a
/// DPoP key or a certificate, if at all), and an ID token (echoing `nonce`) when `openid`
/// was.
pub(crate) fn start(
    host: &impl Host,
    client: &Client,
    claims: Claims,
    refresh_bound: Option<Confirmation>,
    client_ip: &str,
    nonce: Option<&str>,
) -> Result<Started, OAuthError> {
    let policy = policy(host, client)?;
    let format = crate::signed::format(host, client)?;
    let offline = client
        .grant_types
        .iter()
        .any(|g| g == crate::issue::REFRESH_TOKEN)
        && claims.scope.split(' ').any(|s| s == OFFLINE_ACCESS);
    let now = host.now_ms();
    let grant_id = new_secret(host);
    let access_id = access_id(&grant_id);
    let tag = hex_sha256(access_id.as_bytes());
    let ends_at_ms = now + policy.grant_max_lifetime * 1000;
    let access_token = format!("{access_id}.{}", new_secret(host));
    let access = GrantToken::parse(&access_token).expect("issued tokens are well formed");
    let access_expires_at_ms = (now + client.access_token_ttl * 1000).min(ends_at_ms);
    let refresh_token = offline.then(|| format!("{grant_id}.0.{}", new_secret(host)));
    let refresh_expires_at_ms = match offline {
        true => (now + policy.refresh_token_ttl * 1000).min(ends_at_ms),
        false => 0,
    };
    let grant = GrantRecord {
        client_id: client.client_id.clone(),
        subject: claims.user_id.clone(),
        scope: claims.scope.clone(),
        ext: claims.ext.clone(),
        audience: crate::signed::effective(&format, claims.audience.clone()),
        session: claims.session.clone(),
        ends_at_ms,
        generation: 0,
        refresh: refresh_token.as_deref().map(|t| hex_sha256(t.as_bytes())),
        refresh_issued_at_ms: now,
        refresh_expires_at_ms,
        expires_at_ms: access_expires_at_ms.max(refresh_expires_at_ms),
        client_registered_at: crate::clients::registered_at(client),
        jkt: refresh_bound.as_ref().and_then(|b| b.jkt.clone()),
        x5t_s256: refresh_bound.and_then(|b| b.x5t_s256),
    };
    let record = access_record(
        client,
        &claims,
        &grant.audience,
        client_ip,
        now,
        access_expires_at_ms,
    );
    let key = grant_key(&tag);
    let tx = Transaction {
        expect: vec![(key.clone(), None)],
        changes: vec![
            write(&key, &grant, grant.expires_at_ms - now),
            write(&access.access_key(), &record, access_expires_at_ms - now),
        ],
    };
    if !host.store_apply(tx).map_err(|e| store_failure(host, e))? {
        return Err(OAuthError::server_error("a new grant id collided"));
    }
    host.log(
        Level::Info,
        &format!(
            "started grant {} for client {:?} with scope {:?}{}",
            short(&tag),
            client.client_id,
            grant.scope,
            if offline {
                ", with a refresh token"
            } else {
                ""
            }
        ),
    );
    let response = token_response(
        host,
        (client, &format),
        &grant,
        &access_token,
        &record,
        refresh_token.as_deref(),
        now,
        nonce,
    )?;
    Ok(Started {
        grant_key: key,
        ttl_ms: grant.expires_at_ms - now,
        ends_at_ms: grant.ends_at_ms,
        response,
    })
}

/// The grant's record and, when `also` names one, another of its keys: one read.
type Read = (Option<Vec<u8>>, Option<Vec<u8>>);
fn read(host: &impl Host, token: &GrantToken, also: Option<String>) -> Result<Read, OAuthError> {
    let keys: Vec<String> = std::iter::once(token.grant_key()).chain(also).collect();
    let mut found = host
        .store_get_many(&keys)
        .map_err(|e| store_failure(host, e))?
        .into_iter();
    Ok((found.next().flatten(), found.next().flatten()))
}

/// What a grant's token is, as introspection and revocation see it.
pub(crate) enum Found {
    /// A live access token of a live grant, and the grant's OpenID Connect sign-in.
    Access(TokenRecord, Option<crate::signed::Session>),
    /// The grant's live refresh token.
    Refresh(TokenRecord),
    /// A refresh token of an earlier generation of a live grant.
    Rotated {
        client_id: String,
    },
    None,
}

/// Looks `token` up in one read of its grant's keys.
pub(crate) fn find(host: &impl Host, token: &GrantToken) -> Result<Found, OAuthError> {
    let access_key = matches!(token.kind, Kind::Access).then(|| token.access_key());
    let (grant, access) = read(host, token, access_key)?;
    let Some(grant) = grant.and_then(|g| serde_json::from_slice::<GrantRecord>(&g).ok()) else {
        return Ok(Found::None);
    };
    let now = host.now_ms();
    Ok(match token.kind {
        Kind::Access => match access.and_then(|a| serde_json::from_slice::<TokenRecord>(&a).ok()) {
            Some(record) if record.expires_at * 1000 > now => Found::Access(record, grant.session),
            _ => Found::None,
        },
        Kind::Refresh { generation, .. } if generation < grant.generation => Found::Rotated {
            client_id: grant.client_id,
        },
        Kind::Refresh { generation, .. }
            if generation == grant.generation
                && grant.refresh.as_deref() == Some(token.digest.as_str())
                && now < grant.refresh_expires_at_ms =>
        {
            Found::Refresh(TokenRecord {
                user_id: grant.subject,
                scope: grant.scope,
                created_at: grant.refresh_issued_at_ms / 1000,
                client_ip: String::new(),
                client_id: grant.client_id,
                expires_at: grant.refresh_expires_at_ms / 1000,
                token_type: crate::issue::REFRESH_TOKEN.into(),
                ext: grant.ext,
                aud: grant.audience,
                client_registered_at: grant.client_registered_at,
                cnf: Confirmation::of(grant.jkt.as_ref(), grant.x5t_s256.as_ref()),
            })
        }
        Kind::Refresh { .. } => Found::None,
    })
}

/// Revokes `token` for `client`: an access token alone, or for a refresh token (live or
/// rotated) the whole grant (RFC 7009 section 2.1). Another client's token is left alone.
/// Whether something was revoked.
pub(crate) fn revoke(
    host: &impl Host,
    client: &Client,
    token: &GrantToken,
) -> Result<bool, OAuthError> {
    let (owner, key, what) = match find(host, token)? {
        Found::Access(record, _) => (record.client_id, token.access_key(), "an access token"),
        Found::Refresh(record) => (record.client_id, token.grant_key(), "a grant"),
        Found::Rotated { client_id } => (client_id, token.grant_key(), "a grant"),
        Found::None => return Ok(false),
    };
    if owner != client.client_id {
        host.log(
            Level::Warn,
            &format!(
                "client {:?} tried to revoke a token of client {owner:?}",
                client.client_id
            ),
        );
        return Ok(false);
    }
    host.store_delete(&key)
        .map_err(|e| store_failure(host, e))?;
    host.log(
        Level::Info,
        &format!(
            "client {:?} revoked {what} of grant {}",
            client.client_id,
            short(&token.tag)
        ),
    );
    Ok(true)
}

/// The first 16 hex digits of a grant's tag: enough to follow it in the logs, nothing to
/// present.
fn short(tag: &str) -> &str {
    &tag[..16]
}

fn access_record(
    client: &Client,
    claims: &Claims,
    aud: &[String],
    client_ip: &str,
    now_ms: u64,
    expires_at_ms: u64,
) -> TokenRecord {
    let cnf = claims.cnf.clone();
    TokenRecord {
        aud: aud.to_vec(),
        user_id: claims.user_id.clone(),
        scope: claims.scope.clone(),
        created_at: now_ms / 1000,
        client_ip: client_ip.to_owned(),
        client_id: client.client_id.clone(),
        expires_at: expires_at_ms / 1000,
        token_type: token_type(&cnf).into(),
        ext: claims.ext.clone(),
        client_registered_at: crate::clients::registered_at(client),
        cnf,
    }
}

/// The token response for a grant's new tokens: the access token `record` describes in the
/// client's `format` (opaque, or a JWT that stands for it), and for an OpenID Connect
/// sign-in an ID token (with `nonce` at the code's redemption only: OpenID Connect Core
/// section 12.2).
#[allow(clippy::too_many_arguments)]
fn token_response(
    host: &impl Host,
    (client, format): (&Client, &crate::TokenFormat),
    grant: &GrantRecord,
    access_token: &str,
    record: &TokenRecord,
    refresh_token: Option<&str>,
    now_ms: u64,
    nonce: Option<&str>,
) -> Result<Response, OAuthError> {
    let access_token = crate::signed::access_token(host, format, access_token.to_owned(), record)?;
    let id_token = match &grant.session {
        Some(session) => Some(crate::signed::id_token(
            host,
            (&client.client_id, format),
            &grant.subject,
            session,
            &access_token,
            nonce,
        )?),
        None => None,
    };
    Ok(json(
        200,
        &TokenResponse {
            access_token: &access_token,
            token_type: &record.token_type,
            expires_in: record.expires_at.saturating_sub(now_ms / 1000),
            scope: &record.scope,
            refresh_token,
            id_token: id_token.as_deref(),
        },
    ))
}

fn write(key: &str, value: &impl Serialize, ttl_ms: u64) -> Change {
    Change {
        key: key.to_owned(),
        value: Some(serde_json::to_vec(value).expect("records serialize")),
        ttl_ms,
    }
}

pub mod refresh;
#[cfg(test)]
mod tests;
