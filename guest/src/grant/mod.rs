//! A user's grant: what a redeemed authorization code starts, and what its refresh tokens
//! carry on (RFC 6749 section 6), rotated at every use with reuse detection (RFC 9700
//! section 4.14).
//!
//! A grant's tokens are `<grant id>.<secret>`, each half 256 random bits in base64url: the
//! id names the grant, so a token leads to its grant's keys without a lookup. Everything
//! stored of a grant carries the hash tag `{g}`, `g` the hex SHA-256 of the grant id, so
//! it lives in one cluster slot and every change to it is one `store.apply`:
//!
//! | key | holds | expires |
//! |---|---|---|
//! | `oauth:grant:{g}` | the grant: client, subject, scope, claims, its refresh token's digest and expiry | with the last of its tokens |
//! | `oauth:access_token:{g}:<digest>` | an access token issued from it | with the token |
//! | `oauth:refresh_token:{g}:<digest>` | a refresh token rotated out, and what replaced it | when it would have expired |
//! | `oauth:refresh_grace:{g}:<digest>` | with a reuse grace, how to rebuild the answer that replaced it | after the grace |
//!
//! `<digest>` is the token's hex SHA-256: no token is stored. A grant's access tokens are
//! live only while its record is, so ending a grant (a rotated refresh token presented
//! again, its refresh token revoked, its code replayed) is one removal, however many access
//! tokens it issued.

use crate::params::param;
use crate::record::{hex_sha256, is_secret, new_secret, TokenRecord};
use crate::response::{json, store_failure, OAuthError};
use crate::token::{charge, Claims, TokenResponse};
use crate::{scope, Change, Client, Host, Level, RefreshPolicy, Request, Response, Transaction};
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The scope that asks for a refresh token (OpenID Connect's and Hydra's convention).
pub const OFFLINE_ACCESS: &str = "offline_access";

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
    /// When the grant ends however often it is refreshed, ms since the epoch.
    ends_at_ms: u64,
    /// The digest of its live refresh token; none for a grant without one.
    refresh: Option<String>,
    /// When that refresh token was issued and when it expires, ms since the epoch.
    refresh_issued_at_ms: u64,
    refresh_expires_at_ms: u64,
    /// When this record expires: once the last of its tokens has, ms since the epoch.
    expires_at_ms: u64,
}

/// What a rotated refresh token left behind at `oauth:refresh_token:{g}:<digest>`.
#[derive(Serialize, Deserialize)]
struct Rotated {
    /// The digest of the refresh token that replaced it.
    successor: String,
    rotated_at_ms: u64,
}

/// With a reuse grace: what rebuilds the answer a rotation gave, at
/// `oauth:refresh_grace:{g}:<digest>`. Not the tokens: the nonce they were derived with,
/// which yields them only with the rotated token itself (see [`derive`]).
#[derive(Serialize, Deserialize)]
struct Grace {
    nonce: String,
    scope: String,
    /// The access token's expiry, Unix seconds.
    expires_at: u64,
}

/// A token of a grant, as its keys see it.
pub(crate) struct GrantToken<'t> {
    token: &'t str,
    /// The grant id: the token up to its `.`.
    id: &'t str,
    /// The hex SHA-256 of the grant id: the grant's hash tag.
    tag: String,
    /// The hex SHA-256 of the whole token.
    digest: String,
}

impl<'t> GrantToken<'t> {
    /// `token` as a grant's, or none when it cannot be one.
    pub fn parse(token: &'t str) -> Option<Self> {
        let (id, secret) = token.split_once('.')?;
        (is_secret(id) && is_secret(secret)).then(|| GrantToken {
            token,
            id,
            tag: hex_sha256(id.as_bytes()),
            digest: hex_sha256(token.as_bytes()),
        })
    }

    fn grant_key(&self) -> String {
        grant_key(&self.tag)
    }
    fn access_key(&self) -> String {
        format!("oauth:access_token:{{{}}}:{}", self.tag, self.digest)
    }
    fn rotated_key(&self) -> String {
        format!("oauth:refresh_token:{{{}}}:{}", self.tag, self.digest)
    }
    fn grace_key(&self) -> String {
        format!("oauth:refresh_grace:{{{}}}:{}", self.tag, self.digest)
    }
}

fn grant_key(tag: &str) -> String {
    format!("oauth:grant:{{{tag}}}")
}

fn invalid() -> OAuthError {
    OAuthError::invalid_grant("the refresh token is invalid, expired or revoked")
}

/// The policy of a registered client; the host has one for each.
fn policy(host: &impl Host, client: &Client) -> Result<RefreshPolicy, OAuthError> {
    host.refresh_policy(&client.client_id)
        .ok_or_else(|| OAuthError::server_error("the host has no refresh policy for the client"))
}

/// A grant started: the key that ends it, how long it may live, and the token response.
pub(crate) struct Started {
    pub grant_key: String,
    pub ttl_ms: u64,
    pub response: Response,
}

/// Starts a grant for `claims` (a redeemed code's): an access token, and a refresh token
/// when the client may refresh and `offline_access` was granted.
pub(crate) fn start(
    host: &impl Host,
    client: &Client,
    claims: Claims,
    client_ip: &str,
) -> Result<Started, OAuthError> {
    let policy = policy(host, client)?;
    let offline = client
        .grant_types
        .iter()
        .any(|g| g == crate::token::REFRESH_TOKEN)
        && claims.scope.split(' ').any(|s| s == OFFLINE_ACCESS);
    let now = host.now_ms();
    let id = new_secret(host);
    let tag = hex_sha256(id.as_bytes());
    let ends_at_ms = now + policy.grant_max_lifetime * 1000;
    let access_token = format!("{id}.{}", new_secret(host));
    let access = GrantToken::parse(&access_token).expect("issued tokens are well formed");
    let access_expires_at_ms = (now + client.access_token_ttl * 1000).min(ends_at_ms);
    let refresh_token = offline.then(|| format!("{id}.{}", new_secret(host)));
    let refresh_expires_at_ms = match offline {
        true => (now + policy.refresh_token_ttl * 1000).min(ends_at_ms),
        false => 0,
    };
    let grant = GrantRecord {
        client_id: client.client_id.clone(),
        subject: claims.user_id.clone(),
        scope: claims.scope.clone(),
        ext: claims.ext.clone(),
        ends_at_ms,
        refresh: refresh_token.as_deref().map(|t| hex_sha256(t.as_bytes())),
        refresh_issued_at_ms: now,
        refresh_expires_at_ms,
        expires_at_ms: access_expires_at_ms.max(refresh_expires_at_ms),
    };
    let record = access_record(client, &claims, client_ip, now, access_expires_at_ms);
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
    Ok(Started {
        grant_key: key,
        ttl_ms: grant.expires_at_ms - now,
        response: token_response(&access_token, &record, refresh_token.as_deref(), now),
    })
}

/// `grant_type=refresh_token` (RFC 6749 section 6): a new access token and a new refresh
/// token; the presented one is dead from then on.
pub fn refresh(host: &impl Host, client: &Client, req: &Request) -> Result<Response, OAuthError> {
    let presented = param(req, "refresh_token")
        .ok_or_else(|| OAuthError::invalid_request("missing parameter refresh_token"))?;
    let answer = match GrantToken::parse(presented) {
        None => Err(invalid()),
        Some(token) => {
            // Charged before anything is read or written: a client over its limit keeps
            // its token.
            charge(host, client)?;
            let policy = policy(host, client)?;
            let refresh = Refresh {
                host,
                client,
                policy,
                token,
                req,
            };
            refresh.answer()
        }
    };
    let (result, outcome) = match answer {
        Ok(Answer::Rotated(response)) => (Ok(response), "ok"),
        Ok(Answer::Replayed(response)) => (Ok(response), "replayed"),
        Ok(Answer::Reused) => (Err(invalid()), "reused"),
        Err(e) if e.error == "invalid_grant" => (Err(e), "invalid_grant"),
        Err(e) => return Err(e),
    };
    host.outcome("refresh", outcome);
    result
}

enum Answer {
    /// The token was the grant's live one: here are its successors.
    Rotated(Response),
    /// The token was rotated within the reuse grace: the answer it got then.
    Replayed(Response),
    /// The token was rotated before: the grant is ended.
    Reused,
}

/// A rotation this request tried: what it wrote, and what it answers if that landed.
struct Attempt {
    successor: String,
    response: Response,
}

/// A refresh request of an authenticated client.
struct Refresh<'r, H> {
    host: &'r H,
    client: &'r Client,
    policy: RefreshPolicy,
    token: GrantToken<'r>,
    req: &'r Request,
}

impl<H: Host> Refresh<'_, H> {
    fn answer(&self) -> Result<Answer, OAuthError> {
        let (host, token) = (self.host, &self.token);
        let mut attempt: Option<Attempt> = None;
        // Each lost compare-and-set means the grant changed; after one, the presented token
        // is rotated or the grant gone, so the second read decides.
        for _ in 0..3 {
            // The grace record only when there may be one: a read less per refresh.
            let mut keys = vec![token.grant_key(), token.rotated_key()];
            if self.policy.reuse_grace_ms > 0 {
                keys.push(token.grace_key());
            }
            let mut found = host
                .store_get_many(&keys)
                .map_err(|e| store_failure(host, e))?
                .into_iter();
            let (bytes, rotated, grace) = (
                found.next().flatten(),
                found.next().flatten(),
                found.next().flatten(),
            );
            let Some(bytes) = bytes else {
                return Err(invalid());
            };
            let grant: GrantRecord = serde_json::from_slice(&bytes).map_err(|_| invalid())?;
            if grant.client_id != self.client.client_id {
                host.log(
                    Level::Warn,
                    &format!(
                        "client {:?} presented a refresh token of another client's grant {}",
                        self.client.client_id,
                        short(&token.tag)
                    ),
                );
                return Err(invalid());
            }
            let now = host.now_ms();
            if grant.refresh.as_deref() == Some(token.digest.as_str()) {
                if now >= grant.refresh_expires_at_ms {
                    return Err(invalid());
                }
                let (tx, tried) = self.rotation(&grant, &bytes, now)?;
                if host.store_apply(tx).map_err(|e| store_failure(host, e))? {
                    return Ok(Answer::Rotated(tried.response));
                }
                attempt = Some(tried);
                continue;
            }
            let rotated = rotated.and_then(|r| serde_json::from_slice::<Rotated>(&r).ok());
            let Some(rotated) = rotated else {
                return Err(invalid());
            };
            // Our own rotation, which the host's retry of a dropped connection found done.
            if let Some(tried) = attempt.take() {
                if tried.successor == rotated.successor {
                    return Ok(Answer::Rotated(tried.response));
                }
            }
            let successor_is_live = grant.refresh.as_deref() == Some(rotated.successor.as_str());
            let within_grace = now < rotated.rotated_at_ms + self.policy.reuse_grace_ms;
            if let (true, true, Some(grace)) = (successor_is_live, within_grace, grace) {
                if let Some(response) = replay(token, &grace, &rotated, now) {
                    return Ok(Answer::Replayed(response));
                }
            }
            self.end(&token.grant_key())?;
            return Ok(Answer::Reused);
        }
        Err(OAuthError::temporarily_unavailable())
    }

    /// The transaction that rotates the grant's live refresh token, the grant read as
    /// `bytes`, and what it answers.
    fn rotation(
        &self,
        grant: &GrantRecord,
        bytes: &[u8],
        now: u64,
    ) -> Result<(Transaction, Attempt), OAuthError> {
        let (client, policy, token) = (self.client, &self.policy, &self.token);
        let scope = scope::narrow(&grant.scope, param(self.req, "scope"))?;
        let nonce = new_secret(self.host);
        let refresh_token = derive(token, &nonce, "refresh");
        let access_token = derive(token, &nonce, "access");
        let access = GrantToken::parse(&access_token).expect("derived tokens are well formed");
        let access_expires_at_ms = (now + client.access_token_ttl * 1000).min(grant.ends_at_ms);
        let refresh_expires_at_ms = (now + policy.refresh_token_ttl * 1000).min(grant.ends_at_ms);
        let successor = hex_sha256(refresh_token.as_bytes());
        let next = GrantRecord {
            refresh: Some(successor.clone()),
            refresh_issued_at_ms: now,
            refresh_expires_at_ms,
            expires_at_ms: grant
                .expires_at_ms
                .max(access_expires_at_ms)
                .max(refresh_expires_at_ms),
            ..grant.clone()
        };
        let claims = Claims {
            user_id: grant.subject.clone(),
            scope,
            ext: grant.ext.clone(),
        };
        let record = access_record(
            client,
            &claims,
            &self.req.client_ip,
            now,
            access_expires_at_ms,
        );
        let rotated = Rotated {
            successor: successor.clone(),
            rotated_at_ms: now,
        };
        let key = token.grant_key();
        let mut changes = vec![
            write(&key, &next, next.expires_at_ms - now),
            write(
                &token.rotated_key(),
                &rotated,
                grant.refresh_expires_at_ms - now,
            ),
            write(&access.access_key(), &record, access_expires_at_ms - now),
        ];
        if policy.reuse_grace_ms > 0 {
            let grace = Grace {
                nonce,
                scope: record.scope.clone(),
                expires_at: record.expires_at,
            };
            changes.push(write(&token.grace_key(), &grace, policy.reuse_grace_ms));
        }
        let tx = Transaction {
            expect: vec![(key, Some(bytes.to_vec()))],
            changes,
        };
        let response = token_response(&access_token, &record, Some(&refresh_token), now);
        Ok((
            tx,
            Attempt {
                successor,
                response,
            },
        ))
    }

    /// Ends the grant at `key`: a rotated refresh token came back.
    fn end(&self, key: &str) -> Result<(), OAuthError> {
        self.host
            .store_delete(key)
            .map_err(|e| store_failure(self.host, e))?;
        self.host.log(
            Level::Warn,
            &format!(
                "a rotated refresh token of client {:?} came back: grant {} is ended, with \
                 its refresh token and access tokens",
                self.client.client_id,
                short(&self.token.tag)
            ),
        );
        Ok(())
    }
}

/// The answer a rotation within the grace gave, rebuilt from the rotated token and the
/// nonce; none if it no longer holds (its access token has expired).
fn replay(token: &GrantToken, grace: &[u8], rotated: &Rotated, now: u64) -> Option<Response> {
    let grace: Grace = serde_json::from_slice(grace).ok()?;
    let refresh_token = derive(token, &grace.nonce, "refresh");
    if hex_sha256(refresh_token.as_bytes()) != rotated.successor || grace.expires_at * 1000 <= now {
        return None;
    }
    let access_token = derive(token, &grace.nonce, "access");
    Some(json(
        200,
        &TokenResponse {
            access_token: &access_token,
            token_type: "Bearer",
            expires_in: grace.expires_at - now / 1000,
            scope: &grace.scope,
            refresh_token: Some(&refresh_token),
        },
    ))
}

/// A successor of `token`, of its grant: `<grant id>.<secret>`, the secret the SHA-256 of
/// the token and a fresh `nonce`. Random to anyone without both; with both (a client that
/// presents its rotated token within the grace, which keeps the nonce), the same again.
fn derive(token: &GrantToken, nonce: &str, label: &str) -> String {
    let mut hash = Sha256::new();
    hash.update(b"tokenginx refresh rotation v1\0");
    hash.update(label.as_bytes());
    hash.update(b"\0");
    hash.update(token.token.as_bytes());
    hash.update(b"\0");
    hash.update(nonce.as_bytes());
    let secret = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(hash.finalize());
    format!("{}.{secret}", token.id)
}

/// What a grant's token is, as introspection and revocation see it.
pub(crate) enum Found {
    /// A live access token of a live grant.
    Access(TokenRecord),
    /// The grant's live refresh token.
    Refresh(TokenRecord),
    /// A refresh token the grant rotated out.
    Rotated {
        client_id: String,
    },
    None,
}

/// Looks `token` up in one read of its grant's keys.
pub(crate) fn find(host: &impl Host, token: &GrantToken) -> Result<Found, OAuthError> {
    let keys = [token.grant_key(), token.access_key(), token.rotated_key()];
    let found = host
        .store_get_many(&keys)
        .map_err(|e| store_failure(host, e))?;
    let [grant, access, rotated] = <[_; 3]>::try_from(found)
        .map_err(|_| OAuthError::server_error("get-many answered the wrong count"))?;
    let Some(grant) = grant.and_then(|g| serde_json::from_slice::<GrantRecord>(&g).ok()) else {
        return Ok(Found::None);
    };
    let now = host.now_ms();
    if let Some(access) = access.and_then(|a| serde_json::from_slice::<TokenRecord>(&a).ok()) {
        return Ok(match access.expires_at * 1000 > now {
            true => Found::Access(access),
            false => Found::None,
        });
    }
    if grant.refresh.as_deref() == Some(token.digest.as_str()) && now < grant.refresh_expires_at_ms
    {
        return Ok(Found::Refresh(TokenRecord {
            user_id: grant.subject,
            scope: grant.scope,
            created_at: grant.refresh_issued_at_ms / 1000,
            client_ip: String::new(),
            client_id: grant.client_id,
            expires_at: grant.refresh_expires_at_ms / 1000,
            token_type: crate::token::REFRESH_TOKEN.into(),
            ext: grant.ext,
        }));
    }
    Ok(match rotated {
        Some(_) => Found::Rotated {
            client_id: grant.client_id,
        },
        None => Found::None,
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
        Found::Access(record) => (record.client_id, token.access_key(), "an access token"),
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
    client_ip: &str,
    now_ms: u64,
    expires_at_ms: u64,
) -> TokenRecord {
    TokenRecord {
        user_id: claims.user_id.clone(),
        scope: claims.scope.clone(),
        created_at: now_ms / 1000,
        client_ip: client_ip.to_owned(),
        client_id: client.client_id.clone(),
        expires_at: expires_at_ms / 1000,
        token_type: "Bearer".into(),
        ext: claims.ext.clone(),
    }
}

fn token_response(
    access_token: &str,
    record: &TokenRecord,
    refresh_token: Option<&str>,
    now_ms: u64,
) -> Response {
    json(
        200,
        &TokenResponse {
            access_token,
            token_type: "Bearer",
            expires_in: record.expires_at.saturating_sub(now_ms / 1000),
            scope: &record.scope,
            refresh_token,
        },
    )
}

fn write(key: &str, value: &impl Serialize, ttl_ms: u64) -> Change {
    Change {
        key: key.to_owned(),
        value: Some(serde_json::to_vec(value).expect("records serialize")),
        ttl_ms,
    }
}

#[cfg(test)]
mod tests;
