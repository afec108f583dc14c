//! The authorization code: issued at the end of the flow, redeemed once at the token
//! endpoint (RFC 6749 section 4.1.3) with its PKCE verifier (RFC 7636 section 4.6).
//!
//! A code is taken from the store atomically, so of concurrent redemptions one succeeds.
//! A redeemed code starts a grant ([`crate::grant`]) and leaves a marker naming it, its
//! client and the code's challenge: a replay is refused and, from that client with the
//! code's verifier within the access token's lifetime, ends the grant, with every token
//! issued from it (section 4.1.2).

use super::Flow;
use crate::issue::{charge, Claims, Sender};
use crate::params::param;
use crate::record::{new_secret, secret_key};
use crate::response::{store_failure, OAuthError};
use crate::{Client, Host, Level, Request, Response};
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

const CODE_PREFIX: &str = "oauth:code:";
const REDEEMED_PREFIX: &str = "oauth:code_redeemed:";

/// What a code stands for.
#[derive(Serialize, Deserialize)]
struct CodeRecord {
    client_id: String,
    redirect_uri: String,
    /// The authorization request named it, so the token request must too.
    redirect_uri_sent: bool,
    code_challenge: String,
    subject: String,
    /// Granted scopes, space-separated.
    scope: String,
    ext: Option<serde_json::Value>,
    /// The audiences the authorization request asked for; none: the client's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    audience: Vec<String>,
    /// The OpenID Connect sign-in, when `openid` was granted, and the request's `nonce`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    session: Option<crate::signed::Session>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    nonce: Option<String>,
    /// When it was issued, ms (0 in a code from before 0.2.2): a revocation of the consent
    /// after it keeps it from starting a grant.
    #[serde(default)]
    issued_at_ms: u64,
    /// The DPoP key the authorization request bound it to (`dpop_jkt`, RFC 9449 section
    /// 10): only a token request with a proof by that key redeems it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    dpop_jkt: Option<String>,
}

/// A new code for the flow's consented grant, valid `ttl_s` seconds.
pub(super) fn issue(host: &impl Host, flow: &Flow, ttl_s: u64) -> Result<String, OAuthError> {
    let (Some(login), Some(consent)) = (&flow.login, &flow.consent) else {
        return Err(OAuthError::server_error(
            "a code for a flow without consent",
        ));
    };
    let record = CodeRecord {
        client_id: flow.request.client_id.clone(),
        redirect_uri: flow.request.redirect_uri.clone(),
        redirect_uri_sent: flow.request.redirect_uri_sent,
        code_challenge: flow.request.code_challenge.clone(),
        subject: login.subject.clone(),
        scope: consent.grant_scope.join(" "),
        ext: consent.access_token.clone(),
        audience: flow.request.audience.clone(),
        session: consent
            .grant_scope
            .iter()
            .any(|s| s == crate::signed::OPENID)
            .then(|| crate::signed::Session {
                auth_time: login.auth_time,
                acr: login.acr.clone(),
                amr: login.amr.clone(),
                claims: consent.id_token.clone(),
            }),
        nonce: flow.request.param("nonce"),
        issued_at_ms: host.now_ms(),
        dpop_jkt: flow.request.param("dpop_jkt"),
    };
    let code = new_secret(host);
    let key = secret_key(CODE_PREFIX, &code).expect("our secrets are well formed");
    let value = serde_json::to_vec(&record).expect("codes serialize");
    match host.store_insert(&key, &value, ttl_s * 1000) {
        Ok(true) => Ok(code),
        Ok(false) => Err(OAuthError::server_error("a new code collided")),
        Err(e) => Err(store_failure(host, e)),
    }
}

/// `grant_type=authorization_code`: the code, taken once, for an access token.
///
/// The code is checked before it is taken: a request that fails a check (another client, a
/// wrong `redirect_uri` or PKCE verifier) is refused and leaves the code to the client it
/// was issued to, who alone holds the verifier. Of concurrent redemptions that pass, the
/// one that takes the code goes on.
pub fn redeem(
    host: &impl Host,
    client: &Client,
    req: &Request,
    sender: Sender,
) -> Result<Response, OAuthError> {
    let code =
        param(req, "code").ok_or_else(|| OAuthError::invalid_request("missing parameter code"))?;
    let verifier = param(req, "code_verifier")
        .ok_or_else(|| OAuthError::invalid_request("missing parameter code_verifier"))?;
    let key = secret_key(CODE_PREFIX, code).ok_or_else(invalid)?;
    // Charged before the code is taken: a client over its limit keeps its code for a retry.
    charge(host, client, sender)?;
    let found = host.store_get(&key).map_err(|e| store_failure(host, e))?;
    let Some(bytes) = found else {
        let replayed = revoke_replayed(host, client, code, verifier)?;
        crate::counters::step(
            host,
            "code-redeemed",
            if replayed {
                "replayed"
            } else {
                "invalid_grant"
            },
        );
        return Err(invalid());
    };
    let redeemed = check_record(client, req, &bytes, verifier, sender).and_then(|record| {
        match host.store_take(&key).map_err(|e| store_failure(host, e))? {
            Some(_) => issue_tokens(host, (client, sender), req, record, code),
            // Another redemption took it in between: the same code and verifier twice, a
            // replay like any other.
            None => {
                revoke_replayed(host, client, code, verifier)?;
                Err(invalid())
            }
        }
    });
    crate::counters::step(
        host,
        "code-redeemed",
        match &redeemed {
            Ok(_) => "ok",
            Err(e) if e.error == "invalid_grant" => "invalid_grant",
            Err(_) => "error",
        },
    );
    redeemed
}

fn invalid() -> OAuthError {
    OAuthError::invalid_grant("the code is invalid, expired or used")
}

/// A code's record, if the request may redeem it: the client it was issued to, the same
/// `redirect_uri`, the PKCE verifier of its challenge, and a DPoP proof by the key it is
/// bound to, if it is.
fn check_record(
    client: &Client,
    req: &Request,
    bytes: &[u8],
    verifier: &str,
    sender: Sender,
) -> Result<CodeRecord, OAuthError> {
    let record: CodeRecord = serde_json::from_slice(bytes).map_err(|_| invalid())?;
    if record.client_id != client.client_id {
        return Err(invalid());
    }
    let sent = param(req, "redirect_uri");
    if sent != Some(record.redirect_uri.as_str()) && (record.redirect_uri_sent || sent.is_some()) {
        return Err(OAuthError::invalid_grant(
            "redirect_uri differs from the authorization request's",
        ));
    }
    if !pkce_matches(verifier, &record.code_challenge) {
        return Err(OAuthError::invalid_grant(
            "the code_verifier does not match",
        ));
    }
    match (&record.dpop_jkt, sender.proof) {
        (None, _) => {}
        (Some(_), None) => {
            return Err(crate::dpop::invalid_proof(
                "the code is bound to a DPoP key (dpop_jkt): send a proof by that key",
            ))
        }
        (Some(jkt), Some(proof)) if *jkt != proof.jkt => {
            return Err(OAuthError::invalid_grant(
                "the code is bound to another DPoP key (dpop_jkt)",
            ))
        }
        _ => {}
    }
    Ok(record)
}

/// Starts the grant a taken code stands for, and leaves the marker a replay finds.
fn issue_tokens(
    host: &impl Host,
    (client, sender): (&Client, Sender),
    req: &Request,
    record: CodeRecord,
    code: &str,
) -> Result<Response, OAuthError> {
    let subject = record.subject.clone();
    let claims = Claims {
        user_id: record.subject,
        scope: record.scope,
        ext: record.ext,
        audience: record.audience,
        session: record.session,
        cnf: sender.cnf(),
    };
    let started = crate::grant::start(
        host,
        client,
        claims,
        sender.refresh_bound(),
        &req.client_ip,
        record.nonce.as_deref(),
    )?;
    // Recorded under the subject until the grant's hard end (refreshes carry it on that
    // long), for a revocation of the consent to end it; a revocation since the code was
    // issued ends it now.
    let recorded = super::sessions::grant_started(
        host,
        &subject,
        &client.client_id,
        &started.grant_key,
        started.ends_at_ms,
        record.issued_at_ms,
    )
    .map_err(|e| store_failure(host, e))?;
    if !recorded {
        host.store_delete(&started.grant_key)
            .map_err(|e| store_failure(host, e))?;
        return Err(OAuthError::invalid_grant(
            "the user revoked the consent this code stands for",
        ));
    }
    // Kept as long as the access token lives: a replay soon after the redemption is a sign
    // the code leaked; a replay days later is more likely someone wanting the user signed
    // out, which a used code from a browser's history must not allow.
    let marker = secret_key(REDEEMED_PREFIX, code).expect("checked above");
    let redeemed = Redeemed {
        grant: started.grant_key,
        client_id: client.client_id.clone(),
        code_challenge: record.code_challenge,
    };
    let value = serde_json::to_vec(&redeemed).expect("markers serialize");
    let ttl_ms = started.ttl_ms.min(client.access_token_ttl * 1000);
    host.store_set(&marker, &value, ttl_ms)
        .map_err(|e| store_failure(host, e))?;
    Ok(started.response)
}

/// What a redeemed code leaves behind: the grant it started, for which client, and the
/// code's PKCE challenge.
#[derive(Serialize, Deserialize)]
struct Redeemed {
    grant: String,
    client_id: String,
    code_challenge: String,
}

/// A code presented again with its own client and its PKCE verifier: someone holds both
/// the code and the verifier, which never travels in a URL, so the code leaked. Ends the
/// grant the code started. A used code alone (from a browser's history, a log) ends
/// nothing. Whether it ended the grant; of concurrent replays, one does.
fn revoke_replayed(
    host: &impl Host,
    client: &Client,
    code: &str,
    verifier: &str,
) -> Result<bool, OAuthError> {
    let Some(marker) = secret_key(REDEEMED_PREFIX, code) else {
        return Ok(false);
    };
    let Some(found) = host
        .store_get(&marker)
        .map_err(|e| store_failure(host, e))?
    else {
        return Ok(false);
    };
    let key = match serde_json::from_slice::<Redeemed>(&found) {
        Ok(redeemed)
            if redeemed.client_id == client.client_id
                && pkce_matches(verifier, &redeemed.code_challenge) =>
        {
            redeemed.grant
        }
        Ok(_) => return Ok(false),
        // The previous guest's marker: the key of the access token the code bought.
        Err(_) => match String::from_utf8(found) {
            Ok(key) if key.starts_with(crate::record::ACCESS_TOKEN_PREFIX) => key,
            _ => return Ok(false),
        },
    };
    if !host
        .store_delete(&marker)
        .map_err(|e| store_failure(host, e))?
    {
        return Ok(false);
    }
    host.store_delete(&key)
        .map_err(|e| store_failure(host, e))?;
    host.log(
        Level::Warn,
        "an authorization code was presented again with its verifier; the grant it started \
         is ended, with every token issued from it",
    );
    Ok(true)
}

/// RFC 7636 section 4.6: `BASE64URL(SHA256(verifier)) == challenge`, the verifier 43 to
/// 128 unreserved characters.
fn pkce_matches(verifier: &str, challenge: &str) -> bool {
    let well_formed = (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b));
    let computed =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(verifier));
    well_formed && crate::client_auth::constant_time_eq(computed.as_bytes(), challenge.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::access_token_key;
    use crate::testing::{basic, body, form, issue, TestHost, WEB_ID, WEB_SECRET};
    use crate::{introspect, token};

    /// A guest swapped in keeps honouring what the one before it wrote.
    #[test]
    fn a_marker_the_previous_guest_left_still_revokes_the_token_it_names() {
        let host = TestHost::new();
        let access_token = issue(&host, "read");
        let code = "c".repeat(43);
        let marker = secret_key(REDEEMED_PREFIX, &code).unwrap();
        let token_key = access_token_key(&access_token).unwrap();
        host.store_set(&marker, token_key.as_bytes(), 3_600_000)
            .unwrap();
        let replay = form(
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("code_verifier", &"v".repeat(43)),
            ],
            Some(basic(WEB_ID, WEB_SECRET)),
        );
        assert_eq!(body(&token(&host, &replay))["error"], "invalid_grant");
        let seen = introspect(
            &host,
            &form(&[("token", &access_token)], Some(basic(WEB_ID, WEB_SECRET))),
        );
        assert_eq!(body(&seen)["active"], false);
        assert_eq!(host.outcomes(), ["code-redeemed:replayed"]);
    }
}
