//! The `refresh_token` grant (RFC 6749 section 6): the grant's live refresh token for a new
//! pair, rotated at every use; a rotated one presented again ends the grant (RFC 9700
//! section 4.14), or within the reuse grace gets the answer it missed.

use super::*;
use crate::issue::{charge, Sender};
use crate::params::param;

/// `grant_type=refresh_token` (RFC 6749 section 6): a new access token and a new refresh
/// token; the presented one is dead from then on.
pub fn refresh(
    host: &impl Host,
    client: &Client,
    req: &Request,
    sender: Sender,
) -> Result<Response, OAuthError> {
    let presented = param(req, "refresh_token")
        .ok_or_else(|| OAuthError::invalid_request("missing parameter refresh_token"))?;
    let answer = match GrantToken::parse(presented) {
        Some(
            token @ GrantToken {
                kind: Kind::Refresh { .. },
                ..
            },
        ) => {
            // Charged before anything is read or written: a client over its limit keeps
            // its token.
            charge(host, client, sender)?;
            let policy = policy(host, client)?;
            let refresh = Refresh {
                host,
                client,
                policy,
                token,
                req,
                sender,
            };
            refresh.answer()
        }
        _ => Err(invalid()),
    };
    let (result, outcome) = match answer {
        Ok(Answer::Rotated(response)) => (Ok(response), "ok"),
        Ok(Answer::Replayed(response)) => (Ok(response), "replayed"),
        Ok(Answer::Reused) => (Err(invalid()), "reused"),
        Err(e) if e.error == "invalid_grant" => (Err(e), "invalid_grant"),
        Err(e) => return Err(e),
    };
    crate::counters::step(host, "refresh", outcome);
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

/// A refresh request of an authenticated client, with a refresh token.
struct Refresh<'r, H> {
    host: &'r H,
    client: &'r Client,
    policy: RefreshPolicy,
    token: GrantToken<'r>,
    req: &'r Request,
    sender: Sender<'r>,
}

impl<H: Host> Refresh<'_, H> {
    fn answer(&self) -> Result<Answer, OAuthError> {
        let (host, token) = (self.host, &self.token);
        let Kind::Refresh { generation, .. } = token.kind else {
            return Err(invalid());
        };
        let mut attempt: Option<Attempt> = None;
        // Each lost compare-and-set means the grant changed; after one, the presented token
        // is of an earlier generation or the grant gone, so the second read decides.
        for _ in 0..3 {
            // The grace record only when there may be one: a read less per refresh.
            let grace_key = (self.policy.reuse_grace_ms > 0).then(|| token.grace_key());
            let (bytes, grace) = read(host, token, grace_key)?;
            let Some(bytes) = bytes else {
                return Err(invalid());
            };
            let grant: GrantRecord = serde_json::from_slice(&bytes).map_err(|_| invalid())?;
            // A client registered at runtime refreshes only its own registration's grants:
            // not those of a deleted client whose id it took.
            let registered_at = crate::clients::registered_at(self.client);
            if grant.client_id != self.client.client_id
                || grant.client_registered_at != registered_at
            {
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
            check_binding(&grant, self.sender)?;
            let now = host.now_ms();
            // Our own rotation, which the host's retry of a dropped connection found done.
            if let Some(tried) = attempt.take() {
                if grant.refresh.as_deref() == Some(tried.successor.as_str()) {
                    if !self.confirm(&bytes, &grant, now)? {
                        continue;
                    }
                    return Ok(Answer::Rotated(tried.response));
                }
            }
            if generation > grant.generation {
                return Err(invalid());
            }
            if generation == grant.generation {
                let live = grant.refresh.as_deref() == Some(token.digest.as_str());
                if !live || now >= grant.refresh_expires_at_ms {
                    return Err(invalid());
                }
                let (tx, tried) = self.rotation(&grant, &bytes, now)?;
                if host.store_apply(tx).map_err(|e| store_failure(host, e))? {
                    return Ok(Answer::Rotated(tried.response));
                }
                attempt = Some(tried);
                continue;
            }
            // An earlier generation: rotated out. Within the grace, the answer it missed.
            if generation + 1 == grant.generation {
                if let Some(response) =
                    grace.and_then(|g| replay(host, self.client, token, &g, &grant, now))
                {
                    let response = response?;
                    if !self.confirm(&bytes, &grant, now)? {
                        continue;
                    }
                    return Ok(Answer::Replayed(response));
                }
            }
            self.end()?;
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
        let (access_token, refresh_token) = successors(token, &nonce);
        let access = GrantToken::parse(&access_token).expect("derived tokens are well formed");
        let access_expires_at_ms = (now + client.access_token_ttl * 1000).min(grant.ends_at_ms);
        let refresh_expires_at_ms = (now + policy.refresh_token_ttl * 1000).min(grant.ends_at_ms);
        let successor = hex_sha256(refresh_token.as_bytes());
        let next = GrantRecord {
            generation: grant.generation + 1,
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
            audience: grant.audience.clone(),
            session: None,
            cnf: self.sender.cnf(),
        };
        let record = access_record(
            client,
            &claims,
            &next.audience,
            &self.req.client_ip,
            now,
            access_expires_at_ms,
        );
        let key = token.grant_key();
        let mut changes = vec![
            write(&key, &next, next.expires_at_ms - now),
            write(&access.access_key(), &record, access_expires_at_ms - now),
        ];
        if policy.reuse_grace_ms > 0 {
            let grace = Grace {
                rotated: token.digest.clone(),
                nonce,
                scope: record.scope.clone(),
                expires_at: record.expires_at,
                jkt: record.cnf.as_ref().and_then(|c| c.jkt.clone()),
                x5t_s256: record.cnf.as_ref().and_then(|c| c.x5t_s256.clone()),
            };
            let ttl = policy.reuse_grace_ms.min(next.expires_at_ms - now);
            changes.push(write(&token.grace_key(), &grace, ttl));
        }
        let tx = Transaction {
            expect: vec![(key, Some(bytes.to_vec()))],
            changes,
        };
        let format = crate::signed::format(self.host, client)?;
        let response = token_response(
            self.host,
            (client, &format),
            &next,
            &access_token,
            &record,
            Some(&refresh_token),
            now,
            None,
        )?;
        Ok((
            tx,
            Attempt {
                successor,
                response,
            },
        ))
    }

    /// Makes sure the grant, as read in `bytes`, is as durable as a change: a rotation is
    /// answered only once the store acknowledged it (with `wait_replicas`, once replicas
    /// have it), and one read back (the rotation a retry found done, or a grace's replay)
    /// may not have been. Rewriting the record unchanged is a change the store waits for,
    /// and replicas apply changes in order. False when the grant changed meanwhile.
    fn confirm(&self, bytes: &[u8], grant: &GrantRecord, now: u64) -> Result<bool, OAuthError> {
        let key = self.token.grant_key();
        let unchanged = Change {
            key: key.clone(),
            value: Some(bytes.to_vec()),
            ttl_ms: grant.expires_at_ms.saturating_sub(now).max(1),
        };
        let tx = Transaction {
            expect: vec![(key, Some(bytes.to_vec()))],
            changes: vec![unchanged],
        };
        self.host
            .store_apply(tx)
            .map_err(|e| store_failure(self.host, e))
    }

    /// Ends the grant: a rotated refresh token came back.
    fn end(&self) -> Result<(), OAuthError> {
        self.host
            .store_delete(&self.token.grant_key())
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

/// The answer of the grant's last rotation, rebuilt from the token it took and the nonce,
/// when `token` is that token, the grace record is still there (the grace has not run out)
/// and the rotation's refresh token is still the grant's live one.
fn replay(
    host: &impl Host,
    client: &Client,
    token: &GrantToken,
    grace: &[u8],
    grant: &GrantRecord,
    now: u64,
) -> Option<Result<Response, OAuthError>> {
    let grace: Grace = serde_json::from_slice(grace).ok()?;
    if grace.rotated != token.digest || grace.expires_at * 1000 <= now {
        return None;
    }
    let (access_token, refresh_token) = successors(token, &grace.nonce);
    if grant.refresh.as_deref() != Some(hex_sha256(refresh_token.as_bytes()).as_str()) {
        return None;
    }
    // The access token as that rotation recorded it (issued with the grant's refresh
    // token), signed again for a client with the JWT strategy: the same `jti`.
    let cnf = Confirmation::of(grace.jkt.as_ref(), grace.x5t_s256.as_ref());
    let record = TokenRecord {
        user_id: grant.subject.clone(),
        scope: grace.scope,
        created_at: grant.refresh_issued_at_ms / 1000,
        client_ip: String::new(),
        client_id: grant.client_id.clone(),
        expires_at: grace.expires_at,
        token_type: token_type(&cnf).into(),
        ext: grant.ext.clone(),
        aud: grant.audience.clone(),
        client_registered_at: grant.client_registered_at,
        cnf,
    };
    let format = match crate::signed::format(host, client) {
        Ok(format) => format,
        Err(e) => return Some(Err(e)),
    };
    Some(token_response(
        host,
        (client, &format),
        grant,
        &access_token,
        &record,
        Some(&refresh_token),
        now,
        None,
    ))
}

/// A grant whose refresh tokens are bound to a DPoP key is refreshed only with a proof by
/// that key (RFC 9449 section 5); one bound to a certificate only over a connection with
/// it (RFC 8705 section 4).
fn check_binding(grant: &GrantRecord, sender: Sender) -> Result<(), OAuthError> {
    if let Some(bound) = &grant.x5t_s256 {
        let presented = sender.certificate.map_or("", String::as_str);
        if !crate::client_auth::constant_time_eq(presented.as_bytes(), bound.as_bytes()) {
            return Err(OAuthError::invalid_grant(
                "the refresh token is bound to another TLS client certificate",
            ));
        }
    }
    match (&grant.jkt, sender.proof) {
        (None, _) => Ok(()),
        (Some(_), None) => Err(crate::dpop::invalid_proof(
            "the refresh token is bound to a DPoP key: send a proof by that key",
        )),
        (Some(jkt), Some(proof)) if *jkt != proof.jkt => Err(OAuthError::invalid_grant(
            "the refresh token is bound to another DPoP key",
        )),
        _ => Ok(()),
    }
}

/// The access token and the refresh token that succeed the refresh token `token` at a
/// rotation with `nonce`.
fn successors(token: &GrantToken, nonce: &str) -> (String, String) {
    let Kind::Refresh {
        grant_id,
        generation,
    } = token.kind
    else {
        unreachable!("only refresh tokens rotate");
    };
    (
        format!("{}.{}", token.access_id, derive(token, nonce, "access")),
        format!(
            "{grant_id}.{}.{}",
            generation + 1,
            derive(token, nonce, "refresh")
        ),
    )
}

/// A secret derived from `token` and a fresh `nonce`: the SHA-256 of both, base64url.
/// Random to anyone without both; with both (a client that presents its rotated token
/// within the grace, which keeps the nonce), the same again.
fn derive(token: &GrantToken, nonce: &str, label: &str) -> String {
    let digest = Sha256::new()
        .chain_update(b"tokenginx refresh rotation v1\0")
        .chain_update(label.as_bytes())
        .chain_update(b"\0")
        .chain_update(token.token.as_bytes())
        .chain_update(b"\0")
        .chain_update(nonce.as_bytes())
        .finalize();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest)
}
