//! The authorization endpoint (RFC 6749 section 4.1.1): it checks the request, sends the
//! browser to the login app, then to the consent app, then back to the client with a code.
//!
//! Until the client and its redirect URI are known good, an error is a page of the
//! service's own and never a redirect (section 4.1.2.1); after, it goes to the redirect URI
//! with `error`, `state` and `iss`.

use super::{
    find, redirect, seal_challenge, with_query, AuthRequest, Flow, Stage, FLOW_TTL_MS,
    MAX_NONCE_BYTES, MAX_QUERY_BYTES, MAX_SCOPE_BYTES, MAX_STATE_BYTES,
};
use crate::params::browser_param as param;
use crate::record::{hex_sha256, new_secret, secret_key};
use crate::response::{store_failure, OAuthError};
use crate::{BrowserRequest, Host, Level, LoginFlow, Response};

/// The cookie that binds a flow to its browser (a random id, sealed for
/// [`BROWSER_PURPOSE`]), and the one of a remembered login.
const BROWSER_COOKIE: &str = "tokenginx_flow";
const BROWSER_PURPOSE: &str = "browser";
/// The bytes of a browser's id.
const BROWSER_ID_BYTES: u32 = 32;
const SESSION_COOKIE: &str = "tokenginx_session";
/// How long a remembered login lasts when the login app says 0 (for ever, in Hydra).
const LONGEST_SESSION_S: u64 = 30 * 24 * 3600;
/// PKCE's code verifier, and so its S256 challenge, is 43 to 128 characters (RFC 7636
/// section 4.1); an S256 challenge is always 43.
const S256_CHALLENGE_LEN: usize = 43;

/// `GET` or `POST /api/v1/oauth/authorize`.
pub fn authorize(host: &impl Host, req: &BrowserRequest) -> Response {
    let Some(flow) = host.login_flow() else {
        return page(
            404,
            "The authorization endpoint is off: the operator set no login app (oauth.login_url).",
        );
    };
    let result = if let Some(verifier) = param(req, "login_verifier") {
        after_login(host, req, &flow, verifier)
    } else if let Some(verifier) = param(req, "consent_verifier") {
        after_consent(host, req, &flow, verifier)
    } else {
        crate::counters::step(host, "authorization-started", "");
        begin(host, req, &flow)
    };
    result.unwrap_or_else(|failure| match failure {
        Failure::Page(status, message) => {
            crate::counters::step(host, "authorization-ended", "error");
            page(status, &message)
        }
        Failure::Client(request, error) => to_client(host, &request, Err(error)),
    })
}

/// Why the endpoint cannot go on: a page of its own, or an error for the client.
enum Failure {
    Page(u16, String),
    Client(Box<AuthRequest>, OAuthError),
}

impl From<OAuthError> for Failure {
    fn from(e: OAuthError) -> Self {
        Failure::Page(e.status, e.description)
    }
}

fn begin(host: &impl Host, req: &BrowserRequest, flow: &LoginFlow) -> Result<Response, Failure> {
    let client_id = param(req, "client_id")
        .ok_or_else(|| Failure::Page(400, "The request names no client (client_id).".into()))?;
    let unknown = || Failure::Page(400, "The client is not registered.".into());
    let client = crate::clients::find(host, client_id)
        .map_err(|e| Failure::from(store_failure(host, e)))?
        .ok_or_else(unknown)?;
    let registration = crate::clients::registration(host, &client).ok_or_else(unknown)?;
    let redirect_uri = match (param(req, "redirect_uri"), &registration.redirect_uris[..]) {
        (Some(uri), registered) if registered.iter().any(|r| redirect_matches(r, uri)) => {
            uri.to_owned()
        }
        (None, [only]) => only.clone(),
        (Some(_), _) => {
            return Err(Failure::Page(
                400,
                "The redirect_uri is not one registered for this client.".into(),
            ))
        }
        (None, _) => {
            return Err(Failure::Page(
                400,
                "The request must name its redirect_uri (the client has several or none).".into(),
            ))
        }
    };
    let endpoint = crate::routes::endpoint_url(host, "authorize").unwrap_or_default();
    let request_url = with_query(
        &endpoint,
        &req.params
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect::<Vec<_>>(),
    );
    // Without the `?`.
    let query_bytes = (request_url.len() - endpoint.len()).saturating_sub(1);
    let state = param(req, "state");
    let mut request = AuthRequest {
        client_id: client.client_id.clone(),
        redirect_uri,
        redirect_uri_sent: param(req, "redirect_uri").is_some(),
        scope: Vec::new(),
        // A state that is not one (RFC 6749 appendix A.5) is not sent back.
        state: state.filter(|s| valid_state(s)).map(str::to_owned),
        code_challenge: String::new(),
        request_url,
        audience: Vec::new(),
        prompt: None,
        max_age: None,
    };
    let checked = within_limits(req, query_bytes, state)
        .and_then(|()| check(&client, req))
        .and_then(|checked| {
            let format = crate::signed::format(host, &client)?;
            let audience =
                crate::signed::audience(&format, param(req, "resource"), param(req, "audience"))?;
            Ok((checked, audience))
        })
        .and_then(|checked| Ok((checked, check_oidc(req)?)));
    match checked {
        Ok((((scope, challenge), audience), (prompt, max_age))) => {
            request.scope = scope;
            request.code_challenge = challenge;
            request.prompt = prompt;
            request.max_age = max_age;
            // Every audience of the client is what none asked for means.
            if param(req, "resource").is_some() || param(req, "audience").is_some() {
                request.audience = audience;
            }
        }
        Err(error) => return Err(Failure::Client(Box::new(request), error)),
    }

    // A sign-in the request asks to be fresh (`prompt=login`, or `max_age`, as the time of a
    // remembered login is not kept) does not use the remembered one.
    let fresh = request.prompts("login") || request.max_age.is_some();
    let subject = match fresh {
        true => None,
        false => remembered_subject(host, req)?,
    };
    if subject.is_none() && request.prompts("none") {
        return Err(Failure::Client(
            Box::new(request),
            OAuthError::new(
                400,
                "login_required",
                "prompt=none, and no one is signed in",
            ),
        ));
    }
    let browser = browser_id(host, req).unwrap_or_else(|| host.random_bytes(BROWSER_ID_BYTES));
    let browser_cookie = browser_cookie(host, &browser)?;
    let state = Flow {
        request,
        browser: hex_sha256(&browser),
        handled: false,
        login_skip: subject.is_some(),
        login: subject.map(|subject| super::Login {
            subject,
            remember: false,
            remember_for: 0,
            auth_time: 0,
            acr: None,
            amr: Vec::new(),
        }),
        consent_skip: false,
        consent: None,
        rejected: None,
    };
    let challenge = seal_challenge(host, Stage::LoginChallenge, &state)?;
    Ok(redirect(
        with_query(&flow.login_url, &[("login_challenge", &challenge)]),
        vec![browser_cookie],
    ))
}

/// OpenID Connect's `prompt` (`none`, `login`, `consent` or `select_account`; `none`
/// alone) and `max_age` (seconds) of an authorization request (Core section 3.1.2.1).
type OidcParams = (Option<String>, Option<u64>);
fn check_oidc(req: &BrowserRequest) -> Result<OidcParams, OAuthError> {
    let max_age = match param(req, "max_age") {
        None => None,
        Some(age) => Some(
            age.parse()
                .map_err(|_| OAuthError::invalid_request("max_age must be a number of seconds"))?,
        ),
    };
    let Some(prompt) = param(req, "prompt") else {
        return Ok((None, max_age));
    };
    let values: Vec<&str> = prompt.split(' ').collect();
    if let Some(unknown) = values
        .iter()
        .find(|v| !matches!(**v, "none" | "login" | "consent" | "select_account"))
    {
        return Err(OAuthError::invalid_request(format!(
            "prompt {:?} is not one of none, login, consent and select_account",
            unknown.chars().take(32).collect::<String>()
        )));
    }
    if values.contains(&"none") && values.len() > 1 {
        return Err(OAuthError::invalid_request("prompt=none goes alone"));
    }
    Ok((Some(prompt.to_owned()), max_age))
}

/// The browser's id, if its cookie holds one the service sealed: flows in two tabs share
/// it. A value the browser (or someone who set its cookie) chose is never adopted.
fn browser_id(host: &impl Host, req: &BrowserRequest) -> Option<Vec<u8>> {
    cookie_value(req, BROWSER_COOKIE)
        .and_then(|c| host.open(BROWSER_PURPOSE, c))
        .filter(|id| id.len() == BROWSER_ID_BYTES as usize)
}

/// The cookie that carries browser id `id`, sealed anew for the flow's lifetime.
fn browser_cookie(host: &impl Host, id: &[u8]) -> Result<String, OAuthError> {
    let sealed = host
        .seal(BROWSER_PURPOSE, id, FLOW_TTL_MS)
        .map_err(|e| store_failure(host, e))?;
    Ok(cookie(host, BROWSER_COOKIE, &sealed, FLOW_TTL_MS / 1000))
}

/// RFC 6749 appendix A.5: `state` is one or more visible ASCII characters or spaces.
fn valid_state(state: &str) -> bool {
    state.len() <= MAX_STATE_BYTES && state.bytes().all(|b| (0x20..=0x7e).contains(&b))
}

/// The sizes docs/behaviour.md allows an authorization request: the whole query (as the
/// service writes it again) and its `state`, `scope` and `nonce`.
fn within_limits(
    req: &BrowserRequest,
    query_bytes: usize,
    state: Option<&str>,
) -> Result<(), OAuthError> {
    if query_bytes > MAX_QUERY_BYTES {
        return Err(OAuthError::invalid_request(format!(
            "the request's parameters exceed {MAX_QUERY_BYTES} bytes"
        )));
    }
    if state.is_some_and(|s| !valid_state(s)) {
        return Err(OAuthError::invalid_request(format!(
            "state must be at most {MAX_STATE_BYTES} visible ASCII characters"
        )));
    }
    for (name, max) in [("scope", MAX_SCOPE_BYTES), ("nonce", MAX_NONCE_BYTES)] {
        if param(req, name).is_some_and(|v| v.len() > max) {
            return Err(OAuthError::invalid_request(format!(
                "{name} exceeds {max} bytes"
            )));
        }
    }
    Ok(())
}

/// Whether the redirect URI a request sent matches a registered one: exactly, except that a
/// loopback one may use any port (RFC 8252 section 7.3: a native app listens on a port the
/// system hands it).
fn redirect_matches(registered: &str, sent: &str) -> bool {
    if registered == sent {
        return true;
    }
    let without_port = |uri: &str| -> Option<String> {
        let rest = uri.strip_prefix("http://")?;
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let host = match authority.rsplit_once(':') {
            // A port is digits, 1 to 65535 (RFC 6335 section 6); anything else after the
            // colon (nothing, a sign, a number out of range) matches nothing.
            Some((host, port))
                if port.bytes().all(|b| b.is_ascii_digit())
                    && port.parse::<u16>().is_ok_and(|p| p > 0) =>
            {
                host
            }
            Some(_) if !authority.ends_with(']') => return None,
            _ => authority,
        };
        matches!(host, "127.0.0.1" | "[::1]").then(|| format!("http://{host}{path}"))
    };
    matches!((without_port(registered), without_port(sent)), (Some(a), Some(b)) if a == b)
}

/// The request's checks once its client and redirect URI are known: the response type, the
/// grant, PKCE (S256 only, as RFC 9700 section 2.1.1 advises) and the scope. The scope and
/// the code challenge, or the error for the client.
fn check(
    client: &crate::Client,
    req: &BrowserRequest,
) -> Result<(Vec<String>, String), OAuthError> {
    match param(req, "response_type") {
        Some("code") => {}
        Some(_) => {
            return Err(OAuthError::new(
                400,
                "unsupported_response_type",
                "response_type must be code",
            ))
        }
        None => {
            return Err(OAuthError::invalid_request(
                "missing parameter response_type",
            ))
        }
    }
    if !client
        .grant_types
        .iter()
        .any(|g| g == crate::issue::AUTHORIZATION_CODE)
    {
        return Err(OAuthError::unauthorized_client(
            "this client may not use the authorization_code grant",
        ));
    }
    let challenge = param(req, "code_challenge")
        .ok_or_else(|| OAuthError::invalid_request("PKCE is required: send code_challenge"))?;
    if param(req, "code_challenge_method") != Some("S256") {
        return Err(OAuthError::invalid_request(
            "code_challenge_method must be S256",
        ));
    }
    let sha256_b64 = |value: &str| {
        value.len() == S256_CHALLENGE_LEN
            && value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    if !sha256_b64(challenge) {
        return Err(OAuthError::invalid_request(
            "code_challenge is not a base64url SHA-256 digest",
        ));
    }
    // RFC 9449 section 10: the code goes only to a proof by this key.
    if param(req, "dpop_jkt").is_some_and(|jkt| !sha256_b64(jkt)) {
        return Err(OAuthError::invalid_request(
            "dpop_jkt is not a base64url SHA-256 JWK thumbprint",
        ));
    }
    let scope = crate::scope::grant(client, param(req, "scope"))?;
    Ok((
        scope.split(' ').map(str::to_owned).collect(),
        challenge.to_owned(),
    ))
}

/// The subject of the browser's remembered login, if it has one.
fn remembered_subject(host: &impl Host, req: &BrowserRequest) -> Result<Option<String>, Failure> {
    let Some(key) = cookie_value(req, SESSION_COOKIE).and_then(|s| secret_key(SESSION_PREFIX, s))
    else {
        return Ok(None);
    };
    let found = host.store_get(&key).map_err(|e| store_failure(host, e))?;
    Ok(found.and_then(|bytes| String::from_utf8(bytes).ok()))
}

const SESSION_PREFIX: &str = "oauth:login_session:";

/// The browser came back from the login app with its verifier: on to the consent app.
fn after_login(
    host: &impl Host,
    req: &BrowserRequest,
    flow: &LoginFlow,
    verifier: &str,
) -> Result<Response, Failure> {
    let (mut state, browser) = this_browsers(host, req, Stage::LoginVerifier, verifier)?;
    let Some(login) = &state.login else {
        return Err(Failure::Page(400, "The login was not accepted.".into()));
    };
    // The binding cookie lives on for the consent step.
    let mut cookies = vec![browser_cookie(host, &browser)?];
    if login.remember {
        let session = new_secret(host);
        let ttl = match login.remember_for {
            0 => LONGEST_SESSION_S,
            s => s.min(LONGEST_SESSION_S),
        };
        let key = secret_key(SESSION_PREFIX, &session).expect("our secrets are well formed");
        host.store_set(&key, login.subject.as_bytes(), ttl * 1000)
            .map_err(|e| store_failure(host, e))?;
        let expires_at_ms = host.now_ms() + ttl * 1000;
        super::sessions::login_remembered(host, &login.subject, &key, expires_at_ms)?;
        cookies.push(cookie(host, SESSION_COOKIE, &session, ttl));
    }
    // `prompt=consent`: the consent app asks again, whatever was remembered.
    state.consent_skip =
        !state.request.prompts("consent") && super::admin::remembered_consent(host, &state)?;
    if !state.consent_skip && state.request.prompts("none") {
        return Err(Failure::Client(
            Box::new(state.request),
            OAuthError::new(
                400,
                "consent_required",
                "prompt=none, and consent was not given before",
            ),
        ));
    }
    let challenge = seal_challenge(host, Stage::ConsentChallenge, &state)?;
    Ok(redirect(
        with_query(&flow.consent_url, &[("consent_challenge", &challenge)]),
        cookies,
    ))
}

/// The browser came back from the consent app with its verifier: the code, to the client.
fn after_consent(
    host: &impl Host,
    req: &BrowserRequest,
    flow: &LoginFlow,
    verifier: &str,
) -> Result<Response, Failure> {
    let (state, _) = this_browsers(host, req, Stage::ConsentVerifier, verifier)?;
    let (Some(login), Some(consent)) = (&state.login, &state.consent) else {
        return Err(Failure::Page(400, "The consent was not given.".into()));
    };
    if consent.remember {
        super::admin::remember_consent(host, &login.subject, &state.request, consent)?;
    }
    super::sessions::consented(host, &login.subject, &state.request, consent)?;
    let code = super::code::issue(host, &state, flow.authorization_code_ttl)?;
    host.log(
        Level::Info,
        &format!(
            "issued an authorization code to client {:?}",
            state.request.client_id
        ),
    );
    Ok(to_client(host, &state.request, Ok(&code)))
}

/// The flow a verifier names, taken (so used once), and the browser's id, if this browser
/// began it and neither app refused it; a refusal goes to the client. Another browser's
/// attempt is refused before anything is taken: the verifier stays for its own browser.
fn this_browsers(
    host: &impl Host,
    req: &BrowserRequest,
    stage: Stage,
    verifier: &str,
) -> Result<(Flow, Vec<u8>), Failure> {
    let unknown = || {
        Failure::Page(
            400,
            "This sign-in link is unknown, used or expired: start again from the app.".into(),
        )
    };
    let state = find(host, stage, verifier, false)?.ok_or_else(unknown)?;
    let browser = browser_id(host, req).filter(|id| {
        crate::client_auth::constant_time_eq(hex_sha256(id).as_bytes(), state.browser.as_bytes())
    });
    let Some(browser) = browser else {
        return Err(Failure::Page(
            403,
            "This sign-in was started in another browser: start again from the app.".into(),
        ));
    };
    // Of two uses of the verifier by its browser (a double submit), one goes on.
    let state = find(host, stage, verifier, true)?.ok_or_else(unknown)?;
    match state.rejected {
        Some((error, description)) => Err(Failure::Client(
            Box::new(state.request),
            OAuthError::new(400, rejection_code(error), description),
        )),
        None => Ok((state, browser)),
    }
}

/// The redirect to the client: the code, or the error; with `state` and `iss` (RFC 9207).
fn to_client(
    host: &impl Host,
    request: &AuthRequest,
    result: Result<&str, OAuthError>,
) -> Response {
    let result_name = match &result {
        Ok(_) => "code",
        Err(e) if e.error == "access_denied" => "access_denied",
        Err(_) => "error",
    };
    crate::counters::step(host, "authorization-ended", result_name);
    let issuer = host.issuer();
    let mut params: Vec<(&str, &str)> = Vec::new();
    let error;
    match &result {
        Ok(code) => params.push(("code", code)),
        Err(e) => {
            error = e;
            params.push(("error", error.error));
            params.push(("error_description", &error.description));
        }
    }
    if let Some(state) = &request.state {
        params.push(("state", state));
    }
    params.push(("iss", &issuer));
    redirect(with_query(&request.redirect_uri, &params), Vec::new())
}

/// A cookie for the authorization endpoint's path: not readable by scripts, sent on the
/// top-level navigation back from the login app (`SameSite=Lax`), `Secure` on https.
fn cookie(host: &impl Host, name: &str, value: &str, max_age_s: u64) -> String {
    let secure = if host.issuer().starts_with("https://") {
        "; Secure"
    } else {
        ""
    };
    format!("{name}={value}; Path=/; Max-Age={max_age_s}; HttpOnly; SameSite=Lax{secure}")
}

fn cookie_value<'a>(req: &'a BrowserRequest, name: &str) -> Option<&'a str> {
    req.cookies
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// The error code of a rejection, if it is one of RFC 6749 section 4.1.2.1's; else
/// `access_denied`.
pub(super) fn rejection_code(error: String) -> &'static str {
    const CODES: [&str; 7] = [
        "access_denied",
        "invalid_request",
        "unauthorized_client",
        "unsupported_response_type",
        "invalid_scope",
        "server_error",
        "temporarily_unavailable",
    ];
    CODES
        .into_iter()
        .find(|c| *c == error)
        .unwrap_or("access_denied")
}

/// The service's own page for an error it cannot send to the client.
fn page(status: u16, message: &str) -> Response {
    let escaped = message
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    Response {
        status,
        headers: vec![
            ("Content-Type".into(), "text/html; charset=utf-8".into()),
            ("Cache-Control".into(), "no-store".into()),
            // A page of text: no script, style, frame or form of anyone's.
            (
                "Content-Security-Policy".into(),
                "default-src 'none'; frame-ancestors 'none'; form-action 'none'; base-uri 'none'"
                    .into(),
            ),
            ("X-Content-Type-Options".into(), "nosniff".into()),
        ],
        body: format!(
            "<!doctype html><title>Sign-in error</title><h1>Sign-in error</h1><p>{escaped}</p>"
        ),
    }
}
