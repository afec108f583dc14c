//! The admin API: Ory Hydra v2's login and consent requests, with its paths (the host's)
//! and its JSON shapes, so a login and consent app written for Hydra works unchanged.
//!
//! A challenge is answered once: reading it again after an answer is 410, as is a second
//! answer; an unknown, altered or expired one is 404.

use super::authorize::rejection_code;
use super::{
    answered_key, open_challenge, put, with_query, AuthRequest, Consent, Flow, Login, Stage,
    FLOW_TTL_MS,
};
use crate::params::browser_param as param;
use crate::record::new_secret;
use crate::response::{json, store_failure, OAuthError};
use crate::{BrowserRequest, Host, Response};
use serde::Deserialize;
use serde_json::{json as value, Value};

/// How far apart the clocks of the replicas that seal and open a challenge may be.
const CLOCK_SKEW_MS: u64 = 5 * 60 * 1000;
/// A remembered consent lasts at most this long (30 days) when the app says 0 (for ever).
const LONGEST_CONSENT_S: u64 = 30 * 24 * 3600;
const CONSENT_PREFIX: &str = "oauth:consent_memory:";
/// The most JSON a consent's `session.access_token` or `session.id_token` may be.
const MAX_SESSION_CLAIMS_BYTES: usize = 8 * 1024;

/// Answers the admin call `call` (`login-request`, `login-accept`, ...).
pub fn admin(host: &impl Host, call: &str, req: &BrowserRequest) -> Response {
    let result = match call {
        "login-request" => describe(host, req, Stage::LoginChallenge),
        "consent-request" => describe(host, req, Stage::ConsentChallenge),
        "login-accept" => answer(host, req, Stage::LoginChallenge, accept_login),
        "consent-accept" => answer(host, req, Stage::ConsentChallenge, accept_consent),
        "login-reject" => answer(host, req, Stage::LoginChallenge, reject),
        "consent-reject" => answer(host, req, Stage::ConsentChallenge, reject),
        _ => Err(AdminError(404, "no such admin call".into())),
    };
    result.unwrap_or_else(|AdminError(status, description)| {
        let error = match status {
            400 => "invalid_request",
            404 => "not_found",
            410 => "request_handled",
            503 => "temporarily_unavailable",
            _ => "server_error",
        };
        json(
            status,
            &value!({ "error": error, "error_description": description, "status_code": status }),
        )
    })
}

/// An admin error: status and description (Hydra's `{error, error_description,
/// status_code}`).
struct AdminError(u16, String);

impl From<OAuthError> for AdminError {
    fn from(e: OAuthError) -> Self {
        AdminError(e.status, e.description)
    }
}

/// The challenge a request names, for `stage`.
fn challenge(req: &BrowserRequest, stage: Stage) -> Result<&str, AdminError> {
    let name = match stage {
        Stage::LoginChallenge => "login_challenge",
        _ => "consent_challenge",
    };
    param(req, name).ok_or_else(|| AdminError(400, format!("missing parameter {name}")))
}

/// `GET .../login?login_challenge=` or `.../consent?consent_challenge=`.
fn describe(host: &impl Host, req: &BrowserRequest, stage: Stage) -> Result<Response, AdminError> {
    let challenge = challenge(req, stage)?;
    let flow = open_challenge(host, stage, challenge).ok_or_else(unknown)?;
    let answered = host
        .store_get(&answered_key(stage, challenge))
        .map_err(|e| store_failure(host, e))?;
    if answered.is_some() {
        // As Hydra: where to send the browser (here, to begin again), with the error.
        let AdminError(status, description) = handled();
        return Ok(json(
            status,
            &value!({
                "redirect_to": flow.request.request_url,
                "error": "request_handled",
                "error_description": description,
                "status_code": status,
            }),
        ));
    }
    let request = &flow.request;
    let subject = flow.login.as_ref().map_or("", |l| l.subject.as_str());
    let mut body = value!({
        "challenge": challenge,
        "client": client(host, &request.client_id),
        "request_url": request.request_url,
        "requested_scope": request.scope,
        "requested_access_token_audience": request.audience,
        "subject": subject,
        "oidc_context": oidc_context(request),
    });
    body["skip"] = match stage {
        Stage::LoginChallenge => flow.login_skip,
        _ => flow.consent_skip,
    }
    .into();
    Ok(json(200, &body))
}

/// Hydra's `oidc_context`: what the authorization request asked of the sign-in.
fn oidc_context(request: &AuthRequest) -> Value {
    let list = |name: &str| {
        request
            .param(name)
            .map(|v| v.split(' ').map(str::to_owned).collect::<Vec<_>>())
    };
    let mut context = serde_json::Map::new();
    if let Some(acr_values) = list("acr_values") {
        context.insert("acr_values".into(), acr_values.into());
    }
    if let Some(ui_locales) = list("ui_locales") {
        context.insert("ui_locales".into(), ui_locales.into());
    }
    for name in ["login_hint", "display"] {
        if let Some(value) = request.param(name) {
            context.insert(name.into(), value.into());
        }
    }
    Value::Object(context)
}

/// `PUT .../accept` or `.../reject`: applies `apply` to the flow the challenge holds, marks
/// the challenge answered (atomically: of two answers, one wins; the other is 410), then
/// hands the app the URL to send the browser to, with a verifier that holds the result. An
/// answer the app got wrong (a bad body) leaves the challenge unanswered.
fn answer(
    host: &impl Host,
    req: &BrowserRequest,
    stage: Stage,
    apply: fn(&mut Flow, &str, u64) -> Result<(), AdminError>,
) -> Result<Response, AdminError> {
    let challenge = challenge(req, stage)?;
    let mut flow = open_challenge(host, stage, challenge).ok_or_else(unknown)?;
    apply(&mut flow, &req.body, host.now_ms() / 1000)?;
    let marker =
        serde_json::to_vec(&value!({ "answered_ms": host.now_ms() })).expect("markers serialize");
    // Kept past the challenge's own time by a margin for replicas' clocks, which judge it.
    let first = host
        .store_insert(
            &answered_key(stage, challenge),
            &marker,
            FLOW_TTL_MS + CLOCK_SKEW_MS,
        )
        .map_err(|e| store_failure(host, e))?;
    if !first {
        return Err(handled());
    }
    let (verifier_stage, name) = match stage {
        Stage::LoginChallenge => (Stage::LoginVerifier, "login_verifier"),
        _ => (Stage::ConsentVerifier, "consent_verifier"),
    };
    let verifier = new_secret(host);
    put(host, verifier_stage, &verifier, &flow)?;
    let redirect_to = with_query(&flow.request.request_url, &[(name, &verifier)]);
    Ok(json(200, &value!({ "redirect_to": redirect_to })))
}

/// Hydra's `AcceptOAuth2LoginRequest` (fields not listed are accepted and ignored).
#[derive(Deserialize)]
struct AcceptLogin {
    subject: String,
    #[serde(default)]
    remember: bool,
    #[serde(default)]
    remember_for: u64,
    #[serde(default)]
    acr: Option<String>,
    #[serde(default)]
    amr: Vec<String>,
}

fn accept_login(flow: &mut Flow, body: &str, now_s: u64) -> Result<(), AdminError> {
    let accept: AcceptLogin = parse(body)?;
    if accept.subject.is_empty() {
        return Err(AdminError(400, "subject must not be empty".into()));
    }
    if let Some(login) = &flow.login {
        if flow.login_skip && login.subject != accept.subject {
            return Err(AdminError(
                400,
                "the login was remembered for another subject: accept it with that subject".into(),
            ));
        }
    }
    flow.login = Some(Login {
        subject: accept.subject,
        remember: accept.remember,
        remember_for: accept.remember_for,
        auth_time: now_s,
        acr: accept.acr.filter(|a| !a.is_empty()),
        amr: accept.amr,
    });
    Ok(())
}

/// Hydra's `AcceptOAuth2ConsentRequest`.
#[derive(Deserialize)]
struct AcceptConsent {
    #[serde(default)]
    grant_scope: Vec<String>,
    #[serde(default)]
    remember: bool,
    #[serde(default)]
    remember_for: u64,
    #[serde(default)]
    session: Option<Session>,
}

#[derive(Deserialize)]
struct Session {
    #[serde(default)]
    access_token: Option<Value>,
    #[serde(default)]
    id_token: Option<Value>,
}

fn accept_consent(flow: &mut Flow, body: &str, _now_s: u64) -> Result<(), AdminError> {
    let accept: AcceptConsent = parse(body)?;
    if let Some(extra) = accept
        .grant_scope
        .iter()
        .find(|s| !flow.request.scope.contains(s))
    {
        return Err(AdminError(
            400,
            format!("grant_scope {extra:?} was not requested"),
        ));
    }
    let (access_token, id_token) = match accept.session {
        Some(session) => (session.access_token, session.id_token),
        None => (None, None),
    };
    // The claims end up in signed tokens, which the host signs up to 16 KiB of claims: too
    // many are refused here, where the app can answer again, not at the code's redemption.
    for (name, claims) in [("access_token", &access_token), ("id_token", &id_token)] {
        let bytes = claims.as_ref().map_or(0, |c| c.to_string().len());
        if bytes > MAX_SESSION_CLAIMS_BYTES {
            return Err(AdminError(
                400,
                format!(
                    "session.{name} is {bytes} bytes of JSON; at most {MAX_SESSION_CLAIMS_BYTES}"
                ),
            ));
        }
    }
    flow.consent = Some(Consent {
        grant_scope: accept.grant_scope,
        remember: accept.remember,
        remember_for: accept.remember_for,
        access_token: access_token.filter(Value::is_object),
        id_token: id_token.filter(Value::is_object),
    });
    Ok(())
}

/// Hydra's `RejectOAuth2Request`.
#[derive(Deserialize)]
struct Reject {
    #[serde(default)]
    error: String,
    #[serde(default)]
    error_description: String,
}

fn reject(flow: &mut Flow, body: &str, _now_s: u64) -> Result<(), AdminError> {
    let reject: Reject = parse(body)?;
    let description = match reject.error_description.is_empty() {
        true => "the user or the login app refused the request".to_owned(),
        false => reject.error_description,
    };
    flow.rejected = Some((rejection_code(reject.error).to_owned(), description));
    Ok(())
}

fn parse<T: for<'de> Deserialize<'de>>(body: &str) -> Result<T, AdminError> {
    serde_json::from_str(body).map_err(|e| AdminError(400, format!("invalid JSON body: {e}")))
}

fn unknown() -> AdminError {
    AdminError(404, "the challenge is unknown or expired".into())
}

fn handled() -> AdminError {
    AdminError(410, "the challenge was answered already".into())
}

/// The client as Hydra's `OAuth2Client` shows it to the login and consent apps.
fn client(host: &impl Host, client_id: &str) -> Value {
    // The store away: the app sees the id alone, and the flow goes on.
    let client = crate::clients::find(host, client_id).ok().flatten();
    let registration = client
        .as_ref()
        .and_then(|c| crate::clients::registration(host, c));
    value!({
        "client_id": client_id,
        "client_name": registration.as_ref().map_or("", |r| r.client_name.as_str()),
        "redirect_uris": registration.as_ref().map(|r| r.redirect_uris.clone()).unwrap_or_default(),
        "grant_types": client.as_ref().map(|c| c.grant_types.clone()).unwrap_or_default(),
        "response_types": ["code"],
        "scope": client.as_ref().map(|c| c.scopes.join(" ")).unwrap_or_default(),
        "token_endpoint_auth_method": registration.as_ref().map_or("", |r| r.token_endpoint_auth_method.as_str()),
        "skip_consent": registration.as_ref().is_some_and(|r| r.skip_consent),
    })
}

/// Where a subject's consent to a client is remembered.
pub(super) fn consent_key(subject: &str, client_id: &str) -> String {
    let who = crate::record::hex_sha256(format!("{subject}\0{client_id}").as_bytes());
    format!("{CONSENT_PREFIX}{{{who}}}")
}

/// Whether the flow's subject consented before to every scope the flow requests.
pub(super) fn remembered_consent(host: &impl Host, flow: &Flow) -> Result<bool, OAuthError> {
    let Some(login) = &flow.login else {
        return Ok(false);
    };
    let key = consent_key(&login.subject, &flow.request.client_id);
    let found = host.store_get(&key).map_err(|e| store_failure(host, e))?;
    let granted: Vec<String> = found
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_default();
    Ok(!granted.is_empty() && flow.request.scope.iter().all(|s| granted.contains(s)))
}

/// For how many seconds `consent` is remembered: as the app said, at most 30 days.
pub(super) fn remembered_for(consent: &Consent) -> u64 {
    match consent.remember_for {
        0 => LONGEST_CONSENT_S,
        s => s.min(LONGEST_CONSENT_S),
    }
}

/// Remembers `consent` of `subject` to the request's client.
pub(super) fn remember_consent(
    host: &impl Host,
    subject: &str,
    request: &AuthRequest,
    consent: &Consent,
) -> Result<(), OAuthError> {
    let ttl = remembered_for(consent);
    let value = serde_json::to_vec(&consent.grant_scope).expect("scopes serialize");
    host.store_set(
        &consent_key(subject, &request.client_id),
        &value,
        ttl * 1000,
    )
    .map_err(|e| store_failure(host, e))
}
