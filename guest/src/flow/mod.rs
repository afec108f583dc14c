//! The authorization code flow (RFC 6749 section 4.1, PKCE of RFC 7636, the `iss` of RFC
//! 9207), with sign-in and consent delegated to the operator's app over Ory Hydra v2's login
//! and consent API.
//!
//! A flow moves through what the service hands out: a login challenge (to the login app),
//! a login verifier (back through the browser), a consent challenge and verifier, and the
//! code.
//!
//! - A challenge is the flow itself, sealed by the host (`seal`): anyone may start a flow,
//!   so starting one writes nothing to the store. Answering a challenge (the login or
//!   consent app, behind the admin credential) writes a marker under the challenge's
//!   SHA-256, so a challenge is answered once.
//! - A verifier and a code are 256 random bits; the store keeps the flow under the SHA-256
//!   of each, never the secret itself, and takes it atomically, so each is used once, and
//!   only by its own browser or client: a wrong one's attempt leaves it for its owner.
//! - The browser that began a flow gets a cookie, a random id sealed by the host, whose
//!   digest the flow keeps: a verifier brought back by another browser is refused, and a
//!   cookie the service did not seal is replaced, never adopted.
//!
//! - [`authorize`]: the authorization endpoint, where the flow begins and where the browser
//!   returns with each verifier;
//! - [`admin`]: the login and consent requests, and their acceptance or rejection;
//! - [`code`]: the code's redemption at the token endpoint.

pub mod admin;
pub mod authorize;
pub mod code;
pub mod sessions;

use crate::params::form_decode;
use crate::record::secret_key;
use crate::response::{store_failure, OAuthError};
use crate::{Host, Response};
use serde::{Deserialize, Serialize};

/// How long a challenge and its verifier stay valid: 10 minutes, as Hydra's default.
const FLOW_TTL_MS: u64 = 10 * 60 * 1000;

/// The limits of an authorization request (docs/behaviour.md): over any, it is answered
/// `invalid_request`. A sealed challenge carries the request, its state twice: these keep
/// the largest under 8 KiB of URL (a test measures it), a typical one about 1 KiB.
pub const MAX_QUERY_BYTES: usize = 3072;
pub const MAX_STATE_BYTES: usize = 2048;
pub const MAX_SCOPE_BYTES: usize = 1024;
pub const MAX_NONCE_BYTES: usize = 512;

/// What a browser asked for at the authorization endpoint, checked.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct AuthRequest {
    client_id: String,
    redirect_uri: String,
    /// The request named its redirect URI: the token request must name the same (RFC 6749
    /// section 4.1.3).
    redirect_uri_sent: bool,
    /// Requested scopes, checked against the client's.
    scope: Vec<String>,
    state: Option<String>,
    code_challenge: String,
    /// The authorization URL as the browser sent it, for the login app.
    request_url: String,
    /// The audiences asked for (RFC 8707 `resource`, Hydra's `audience`), each the
    /// client's; none: every one of the client's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    audience: Vec<String>,
    /// OpenID Connect's `prompt` (checked: `none`, `login`, `consent`, `select_account`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    prompt: Option<String>,
    /// OpenID Connect's `max_age`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max_age: Option<u64>,
}

impl AuthRequest {
    /// Parameter `name` of the request as the browser sent it (OpenID Connect's `nonce`,
    /// `login_hint`, ...): read from `request_url`, so that what only passes through is not
    /// kept twice in a sealed challenge.
    fn param(&self, name: &str) -> Option<String> {
        let (_, query) = self.request_url.split_once('?')?;
        query.split('&').find_map(|pair| {
            let (n, v) = pair.split_once('=')?;
            // A parameter sent without a value is omitted (RFC 6749 section 3.1).
            (form_decode(n)? == name)
                .then(|| form_decode(v))
                .flatten()
                .filter(|v| !v.is_empty())
        })
    }

    fn prompts(&self, value: &str) -> bool {
        self.prompt
            .as_deref()
            .is_some_and(|p| p.split(' ').any(|v| v == value))
    }
}

/// A flow's state, stored under the digest of its current challenge or verifier.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Flow {
    request: AuthRequest,
    /// Hex SHA-256 of the cookie that binds the flow to its browser.
    browser: String,
    /// Always false now that an answered challenge is marked in the store; kept so that the
    /// record keeps the shape docs/storage.schema.json gives it.
    handled: bool,
    /// The browser had a remembered login: the login app may skip asking.
    login_skip: bool,
    /// Who signed in, once the login app said so.
    login: Option<Login>,
    /// The subject had consented to these scopes for this client before.
    consent_skip: bool,
    consent: Option<Consent>,
    /// The login or consent app refused: `(error, error_description)` for the client.
    rejected: Option<(String, String)>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Login {
    subject: String,
    remember: bool,
    /// Seconds; 0 for as long as the service keeps sessions.
    remember_for: u64,
    /// When the login app accepted the sign-in, Unix seconds.
    #[serde(default)]
    auth_time: u64,
    /// Hydra's `acr` and `amr` of the acceptance, for the ID token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    acr: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    amr: Vec<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Consent {
    grant_scope: Vec<String>,
    remember: bool,
    remember_for: u64,
    /// Claims for the access token (Hydra's `session.access_token`).
    access_token: Option<serde_json::Value>,
    /// Claims for the ID token and userinfo (Hydra's `session.id_token`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    id_token: Option<serde_json::Value>,
}

/// The stages a flow's secrets name, and their key prefixes.
#[derive(Clone, Copy)]
enum Stage {
    LoginChallenge,
    LoginVerifier,
    ConsentChallenge,
    ConsentVerifier,
}

impl Stage {
    /// For a challenge, the key prefix of its answered marker; for a verifier, of its flow.
    fn prefix(self) -> &'static str {
        match self {
            Stage::LoginChallenge => "oauth:login_challenge:",
            Stage::LoginVerifier => "oauth:login_verifier:",
            Stage::ConsentChallenge => "oauth:consent_challenge:",
            Stage::ConsentVerifier => "oauth:consent_verifier:",
        }
    }
}

/// A new challenge at `stage` (a login or consent challenge): `flow`, sealed for the flow's
/// lifetime. Nothing is stored.
fn seal_challenge(host: &impl Host, stage: Stage, flow: &Flow) -> Result<String, OAuthError> {
    let value = serde_json::to_vec(flow).expect("flows serialize");
    host.seal(stage.prefix(), &value, FLOW_TTL_MS)
        .map_err(|e| store_failure(host, e))
}

/// The flow `challenge` holds, if it is a challenge of `stage` the host sealed and its time
/// has not run out.
fn open_challenge(host: &impl Host, stage: Stage, challenge: &str) -> Option<Flow> {
    let value = host.open(stage.prefix(), challenge)?;
    serde_json::from_slice(&value).ok()
}

/// Where the marker of an answered challenge is kept: under its SHA-256.
fn answered_key(stage: Stage, challenge: &str) -> String {
    format!(
        "{}{{{}}}",
        stage.prefix(),
        crate::record::hex_sha256(challenge.as_bytes())
    )
}

/// Stores `flow` under `secret` at `stage`, for the flow's lifetime.
fn put(host: &impl Host, stage: Stage, secret: &str, flow: &Flow) -> Result<(), OAuthError> {
    let key = secret_key(stage.prefix(), secret).expect("our secrets are well formed");
    let value = serde_json::to_vec(flow).expect("flows serialize");
    host.store_set(&key, &value, FLOW_TTL_MS)
        .map_err(|e| store_failure(host, e))
}

/// The flow at `secret`, read (`take: false`) or taken once (`take: true`); none when the
/// secret is unknown, expired or used.
fn find(
    host: &impl Host,
    stage: Stage,
    secret: &str,
    take: bool,
) -> Result<Option<Flow>, OAuthError> {
    let Some(key) = secret_key(stage.prefix(), secret) else {
        return Ok(None);
    };
    let found = match take {
        true => host.store_take(&key),
        false => host.store_get(&key),
    };
    let found = found.map_err(|e| store_failure(host, e))?;
    Ok(found.and_then(|bytes| serde_json::from_slice(&bytes).ok()))
}

/// `url` with `params` appended to its query, form-encoded.
fn with_query(url: &str, params: &[(&str, &str)]) -> String {
    let mut out = url.to_owned();
    let mut separator = if url.contains('?') { '&' } else { '?' };
    for (name, value) in params {
        out.push(separator);
        out.push_str(&crate::params::percent_encode(name));
        out.push('=');
        out.push_str(&crate::params::percent_encode(value));
        separator = '&';
    }
    out
}

/// A redirect (302) to `location`, no cache may keep.
fn redirect(location: String, cookies: Vec<String>) -> Response {
    let mut headers = vec![
        ("Location".into(), location),
        ("Cache-Control".into(), "no-store".into()),
    ];
    headers.extend(cookies.into_iter().map(|c| ("Set-Cookie".into(), c)));
    Response {
        status: 302,
        headers,
        body: String::new(),
    }
}

#[cfg(test)]
mod tests;
