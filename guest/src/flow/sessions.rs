//! What a user granted, and taking it back: Ory Hydra v2's consent and login sessions.
//!
//! - `GET /admin/oauth2/auth/sessions/consent?subject=` lists the subject's consents;
//! - `DELETE /admin/oauth2/auth/sessions/consent?subject=&client=` (or `&all=true`) revokes
//!   them: the remembered consent, and every grant they started, so each grant's access
//!   and refresh tokens end at once on every replica;
//! - `DELETE /admin/oauth2/auth/sessions/login?subject=` forgets the remembered logins.
//!
//! Each subject has one record, `oauth:subject:{<hex sha256(subject)>}`, changed by
//! compare-and-set: its consents by client (with the grants each started, by key) and its
//! remembered logins (by key). Whatever it names is created first and recorded after; a
//! revocation marks the time it happened, and a code issued before it cannot start a grant
//! after it: the grant made meanwhile is ended again. The record is bounded: at most
//! [`MAX_GRANTS`] live grants and [`MAX_LOGINS`] remembered logins a subject (a new one past
//! the cap ends the oldest), each entry dropped once it has expired.

use super::{AuthRequest, Consent};
use crate::record::hex_sha256;
use crate::response::{json, store_failure, OAuthError};
use crate::{Change, Host, Level, Response, StoreError, Transaction};
use serde::{Deserialize, Serialize};
use serde_json::{json as value, Value};
use std::collections::BTreeMap;

/// The most live grants a subject keeps recorded (all clients together).
pub const MAX_GRANTS: usize = 128;
/// The most remembered logins a subject keeps recorded.
pub const MAX_LOGINS: usize = 32;
/// How long a revocation is remembered, and a consent that started no grant yet is kept:
/// longer than any code lives (10 minutes at most).
const REVOKED_FOR_MS: u64 = 15 * 60 * 1000;
const ATTEMPTS: usize = 8;

/// A subject's record.
#[derive(Default, Serialize, Deserialize)]
struct Subject {
    /// What the subject consented to, by client id.
    #[serde(default)]
    consents: BTreeMap<String, ConsentSession>,
    /// When the subject's consent to a client was last revoked (ms), by client id: a code
    /// issued before cannot start a grant.
    #[serde(default)]
    revoked: BTreeMap<String, u64>,
    /// The remembered logins: their store keys, and when each expires (ms).
    #[serde(default)]
    logins: Vec<(String, u64)>,
}

#[derive(Clone, Serialize, Deserialize)]
struct ConsentSession {
    grant_scope: Vec<String>,
    #[serde(default)]
    grant_audience: Vec<String>,
    remember: bool,
    /// Seconds.
    remember_for: u64,
    /// When the consent app answered, Unix seconds.
    handled_at: u64,
    /// When a remembered consent lapses, ms.
    remembered_until_ms: u64,
    /// The grants it started: their keys, and when each expires (ms).
    #[serde(default)]
    grants: Vec<(String, u64)>,
}

fn key(subject: &str) -> String {
    format!("oauth:subject:{{{}}}", hex_sha256(subject.as_bytes()))
}

impl Subject {
    /// Drops what has expired, and a consent with nothing live.
    fn prune(&mut self, now_ms: u64) {
        for consent in self.consents.values_mut() {
            consent.grants.retain(|(_, until)| *until > now_ms);
        }
        // A consent whose code is still out is kept, for a revocation to reach the grant the
        // code would start.
        self.consents.retain(|_, c| {
            !c.grants.is_empty()
                || c.remembered_until_ms > now_ms
                || c.handled_at * 1000 + REVOKED_FOR_MS > now_ms
        });
        self.revoked.retain(|_, at| *at + REVOKED_FOR_MS > now_ms);
        self.logins.retain(|(_, until)| *until > now_ms);
    }

    /// When the record may go: once everything it names has expired.
    fn ttl_ms(&self, now_ms: u64) -> u64 {
        let last = self
            .consents
            .values()
            .flat_map(|c| {
                c.grants
                    .iter()
                    .map(|(_, until)| *until)
                    .chain([c.remembered_until_ms, c.handled_at * 1000 + REVOKED_FOR_MS])
            })
            .chain(self.revoked.values().map(|at| at + REVOKED_FOR_MS))
            .chain(self.logins.iter().map(|(_, until)| *until))
            .max()
            .unwrap_or(now_ms);
        last.saturating_sub(now_ms).max(1000)
    }

    /// The keys past the caps, oldest first, removed from the record: what to end.
    fn over_caps(&mut self) -> Vec<String> {
        let mut ended = Vec::new();
        loop {
            let oldest = self
                .consents
                .iter()
                .flat_map(|(client, c)| {
                    c.grants
                        .iter()
                        .map(move |(k, until)| (*until, client.clone(), k.clone()))
                })
                .min();
            let count: usize = self.consents.values().map(|c| c.grants.len()).sum();
            match oldest {
                Some((_, client, grant)) if count > MAX_GRANTS => {
                    if let Some(c) = self.consents.get_mut(&client) {
                        c.grants.retain(|(k, _)| *k != grant);
                    }
                    ended.push(grant);
                }
                _ => break,
            }
        }
        self.logins.sort_by_key(|(_, until)| *until);
        while self.logins.len() > MAX_LOGINS {
            ended.push(self.logins.remove(0).0);
        }
        ended
    }
}

/// Changes `subject`'s record with `edit` (which may refuse, changing nothing), by
/// compare-and-set; what `edit` answered, and the keys to end that went past the caps.
fn update<T>(
    host: &impl Host,
    subject: &str,
    mut edit: impl FnMut(&mut Subject, u64) -> T,
) -> Result<(T, Vec<String>), StoreError> {
    let key = key(subject);
    for _ in 0..ATTEMPTS {
        let current = host.store_get(&key)?;
        let mut record: Subject = current
            .as_deref()
            .and_then(|bytes| serde_json::from_slice(bytes).ok())
            .unwrap_or_default();
        let now = host.now_ms();
        record.prune(now);
        let answer = edit(&mut record, now);
        let ended = record.over_caps();
        let change = match record.consents.is_empty()
            && record.revoked.is_empty()
            && record.logins.is_empty()
        {
            true => None,
            false => Some(serde_json::to_vec(&record).expect("a subject serializes")),
        };
        if change.is_none() && current.is_none() {
            return Ok((answer, ended));
        }
        let tx = Transaction {
            expect: vec![(key.clone(), current)],
            changes: vec![Change {
                key: key.clone(),
                value: change,
                ttl_ms: record.ttl_ms(now),
            }],
        };
        if host.store_apply(tx)? {
            return Ok((answer, ended));
        }
    }
    Err(StoreError::Unavailable(
        "other changes to the subject's sessions kept landing first".into(),
    ))
}

/// Ends what went past a subject's caps: grants (and so their tokens) and logins.
fn end(host: &impl Host, keys: &[String]) -> Result<(), StoreError> {
    for key in keys {
        host.store_delete(key)?;
    }
    Ok(())
}

/// Records that `subject` consented to the request's client (the consent app accepted).
pub(super) fn consented(
    host: &impl Host,
    subject: &str,
    request: &AuthRequest,
    consent: &Consent,
) -> Result<(), OAuthError> {
    let remembered_for_s = super::admin::remembered_for(consent);
    let ((), ended) = update(host, subject, |record, now| {
        let grants = record
            .consents
            .remove(&request.client_id)
            .map(|c| c.grants)
            .unwrap_or_default();
        record.consents.insert(
            request.client_id.clone(),
            ConsentSession {
                grant_scope: consent.grant_scope.clone(),
                grant_audience: request.audience.clone(),
                remember: consent.remember,
                remember_for: consent.remember_for,
                handled_at: now / 1000,
                remembered_until_ms: match consent.remember {
                    true => now + remembered_for_s * 1000,
                    false => 0,
                },
                grants,
            },
        );
    })
    .map_err(|e| store_failure(host, e))?;
    end(host, &ended).map_err(|e| store_failure(host, e))
}

/// Records the grant at `grant_key` (expiring at `expires_at_ms`) that a code of
/// `subject`'s consent to `client_id`, issued at `code_issued_ms`, started. False when the
/// consent was revoked since the code was issued: the caller ends the grant.
pub(crate) fn grant_started(
    host: &impl Host,
    subject: &str,
    client_id: &str,
    grant_key: &str,
    expires_at_ms: u64,
    code_issued_ms: u64,
) -> Result<bool, StoreError> {
    let (recorded, ended) = update(host, subject, |record, _| {
        if record
            .revoked
            .get(client_id)
            .is_some_and(|at| *at >= code_issued_ms)
        {
            return false;
        }
        let Some(consent) = record.consents.get_mut(client_id) else {
            // A consent from before this record existed (a guest before 0.2.2): recorded
            // from the grant.
            record.consents.insert(
                client_id.to_owned(),
                ConsentSession {
                    grant_scope: Vec::new(),
                    grant_audience: Vec::new(),
                    remember: false,
                    remember_for: 0,
                    handled_at: code_issued_ms / 1000,
                    remembered_until_ms: 0,
                    grants: vec![(grant_key.to_owned(), expires_at_ms)],
                },
            );
            return true;
        };
        consent.grants.push((grant_key.to_owned(), expires_at_ms));
        true
    })?;
    end(host, &ended)?;
    Ok(recorded)
}

/// Records a remembered login of `subject` at `session_key`, expiring at `expires_at_ms`.
pub(super) fn login_remembered(
    host: &impl Host,
    subject: &str,
    session_key: &str,
    expires_at_ms: u64,
) -> Result<(), OAuthError> {
    let (_, ended) = update(host, subject, |record, _| {
        record.logins.push((session_key.to_owned(), expires_at_ms));
    })
    .map_err(|e| store_failure(host, e))?;
    end(host, &ended).map_err(|e| store_failure(host, e))
}

/// Answers `GET`/`DELETE /admin/oauth2/auth/sessions/{which}` (`consent` or `login`).
pub fn handle(host: &impl Host, method: &str, which: &str, query: &[(String, String)]) -> Response {
    let param = |name: &str| {
        query
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    };
    let answer = match (which, method, param("subject")) {
        (_, _, None) => Err(bad("the query parameter subject is required")),
        ("consent", "GET" | "HEAD", Some(subject)) => list(host, subject),
        ("consent", "DELETE", Some(subject)) => match (param("client"), param("all")) {
            (Some(client), None | Some("false")) => revoke(host, subject, Some(client)),
            (None, Some("true")) => revoke(host, subject, None),
            _ => Err(bad("give client, or all=true, with subject")),
        },
        ("login", "DELETE", Some(subject)) => forget_logins(host, subject),
        ("consent" | "login", ..) => Err(OAuthError::new(
            405,
            "method_not_allowed",
            "not on this path",
        )),
        _ => Err(OAuthError::new(404, "not_found", "no such sessions")),
    };
    answer.unwrap_or_else(OAuthError::into_response)
}

fn bad(why: &str) -> OAuthError {
    OAuthError::invalid_request(why)
}

fn no_content() -> Response {
    Response {
        status: 204,
        headers: Vec::new(),
        body: String::new(),
    }
}

/// The subject's consents, as Hydra's `OAuth2ConsentSession`s.
fn list(host: &impl Host, subject: &str) -> Result<Response, OAuthError> {
    let found = host
        .store_get(&key(subject))
        .map_err(|e| store_failure(host, e))?;
    let mut record: Subject = found
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_default();
    record.prune(host.now_ms());
    let sessions: Vec<Value> = record
        .consents
        .iter()
        .map(|(client_id, c)| {
            let client = crate::clients::admin::shown(host, client_id)
                .unwrap_or_else(|| value!({"client_id": client_id}));
            let handled_at = crate::clients::admin::rfc3339(c.handled_at);
            value!({
                "consent_request_id": "",
                "grant_scope": c.grant_scope,
                "grant_access_token_audience": c.grant_audience,
                "session": {"access_token": {}, "id_token": {}},
                "remember": c.remember,
                "remember_for": c.remember_for,
                "handled_at": handled_at,
                "context": {},
                "consent_request": {
                    "challenge": "",
                    "consent_request_id": "",
                    "requested_scope": c.grant_scope,
                    "requested_access_token_audience": c.grant_audience,
                    "skip": false,
                    "subject": subject,
                    "oidc_context": {"acr_values": [], "ui_locales": [], "id_token_hint_claims": {}},
                    "client": client,
                    "request_url": "",
                    "login_challenge": "",
                    "login_session_id": "",
                    "acr": "",
                    "amr": [],
                    "context": {},
                },
            })
        })
        .collect();
    Ok(json(200, &sessions))
}

/// Revokes `subject`'s consent to `client` (every client's when none): forgets it and ends
/// every grant it started.
fn revoke(host: &impl Host, subject: &str, client: Option<&str>) -> Result<Response, OAuthError> {
    let (removed, ended) = update(host, subject, |record, now| {
        let clients: Vec<String> = match client {
            Some(client) => vec![client.to_owned()],
            None => record.consents.keys().cloned().collect(),
        };
        let mut removed = Vec::new();
        for client in clients {
            record.revoked.insert(client.clone(), now);
            if let Some(consent) = record.consents.remove(&client) {
                removed.extend(consent.grants.into_iter().map(|(key, _)| key));
            }
            removed.push(super::admin::consent_key(subject, &client));
        }
        removed
    })
    .map_err(|e| store_failure(host, e))?;
    end(host, &removed)
        .and_then(|()| end(host, &ended))
        .map_err(|e| store_failure(host, e))?;
    host.log(
        Level::Info,
        &format!(
            "revoked a subject's consent to {} and ended its grants",
            client.map_or("every client".to_owned(), |c| format!("client {c:?}"))
        ),
    );
    Ok(no_content())
}

/// Forgets `subject`'s remembered logins: its next sign-in asks again.
fn forget_logins(host: &impl Host, subject: &str) -> Result<Response, OAuthError> {
    let (logins, _) = update(host, subject, |record, _| {
        std::mem::take(&mut record.logins)
            .into_iter()
            .map(|(key, _)| key)
            .collect::<Vec<_>>()
    })
    .map_err(|e| store_failure(host, e))?;
    end(host, &logins).map_err(|e| store_failure(host, e))?;
    Ok(no_content())
}
