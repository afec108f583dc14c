//! Dynamic client registration (RFC 7591) at `POST /oauth2/register`, and its management
//! (RFC 7592) at `GET`, `PUT` and `DELETE /oauth2/register/{id}` with the registration
//! access token, on the public listener, as Ory Hydra serves them (its SDK's `OidcApi`).
//!
//! Off unless the operator allows it (`oauth.registration`): with an initial access token
//! (`Authorization: Bearer`, compared by digest in constant time), or for anyone when it is
//! open. Each registration is charged to its initial token's budget (the open ones share
//! one), after the address's budget the host charges every anonymous route; registration
//! stops at `max_clients` clients registered at runtime. A self-registered client gets a
//! fresh id, a secret of the server's making, and cannot set `skip_consent`, its access
//! token strategy, `metadata` or `client_secret` (as Hydra refuses them): the rules of every
//! client (`build`) apply beyond that.

use super::admin::{self, ApiError, Inserted};
use super::build::build;
use super::record::Stored;
use crate::client_auth::{constant_time_eq, strip_scheme};
use crate::record::{hex_sha256, new_secret};
use crate::response::{json, OAuthError};
use crate::{Host, Response};
use serde_json::{json as value, Map, Value};
use sha2::{Digest, Sha256};

/// The buckets of the client indexes (`clients/mod.rs`).
const BUCKETS: usize = 16;

/// What a client cannot set about itself (`owner` is the operator's, and its filter).
const REFUSED: [&str; 5] = [
    "client_secret",
    "metadata",
    "skip_consent",
    "access_token_strategy",
    "owner",
];

/// Answers a registration (`id` none) or a registered client's call.
pub fn handle(
    host: &impl Host,
    method: &str,
    id: Option<&str>,
    authorization: Option<&str>,
    body: Option<&str>,
) -> Response {
    let Some(policy) = host.dynamic_registration() else {
        return ApiError(
            404,
            "not_found",
            "dynamic client registration is off".into(),
        )
        .into_response();
    };
    let bearer = authorization.and_then(|h| strip_scheme(h, "Bearer"));
    let result = match (method, id) {
        ("POST", None) => register(host, &policy, bearer, body),
        (_, Some(id)) => manage(host, method, id, bearer, body),
        _ => Err(ApiError(
            405,
            "method_not_allowed",
            "not on this path".into(),
        )),
    };
    // A missing or wrong token: RFC 6750's answer, `WWW-Authenticate: Bearer` with it.
    result.unwrap_or_else(|e| match e.0 {
        401 => crate::userinfo::challenge(401, "invalid_token", &e.2),
        _ => e.into_response(),
    })
}

fn unauthorized(why: &str) -> ApiError {
    ApiError(401, "invalid_token", why.into())
}

fn register(
    host: &impl Host,
    policy: &crate::RegistrationPolicy,
    bearer: Option<&str>,
    body: Option<&str>,
) -> Result<Response, ApiError> {
    // Which budget: the initial token's, or the open registrations'.
    let key = match bearer {
        Some(token) => {
            let presented: [u8; 32] = Sha256::digest(token.as_bytes()).into();
            let known = policy
                .initial_access_tokens_sha256
                .iter()
                .fold(false, |found, d| found | constant_time_eq(&presented, d));
            if !known {
                return Err(unauthorized(
                    "the initial access token is not one of this server's",
                ));
            }
            hex_sha256(token.as_bytes())
        }
        None if policy.open => "open".to_owned(),
        None => return Err(unauthorized("registration needs an initial access token")),
    };
    if let Some(wait_ms) = host
        .charge_registration(&key)
        .map_err(|e| ApiError::store(host, e))?
    {
        // 429 with `Retry-After`, as a client over its budget at the token endpoint.
        return Ok(OAuthError::rate_limited(wait_ms).into_response());
    }
    let fields = checked_fields(body)?;
    allowed_targets(policy, &fields)?;
    let now = host.now_ms() / 1000;
    let token = new_secret(host);
    // The cap holds per bucket, where the insert compares and sets the index: of
    // concurrent registrations none goes past it. An id whose bucket is full tries another.
    let most_in_bucket = (policy.max_clients as usize).div_ceil(BUCKETS);
    let mut placed = None;
    for _ in 0..BUCKETS {
        let id = admin::new_id(host);
        let (mut stored, secret) = build(host, &fields, &id, None, now)?;
        stored.registration_access_token_sha256 = Some(hex_sha256(token.as_bytes()));
        match admin::insert(host, &stored, most_in_bucket).map_err(|e| ApiError::store(host, e))? {
            Inserted::Yes => {
                placed = Some((stored, secret));
                break;
            }
            Inserted::Taken | Inserted::Full => continue,
        }
    }
    let Some((stored, secret)) = placed else {
        return Err(ApiError(
            403,
            "access_denied",
            "this server registers no more clients (oauth.registration.max_clients)".into(),
        ));
    };
    let mut shown = registered_view(host, &stored, secret.as_deref());
    shown.insert("registration_access_token".into(), value!(token));
    shown.insert("client_id_issued_at".into(), value!(stored.created_at));
    Ok(json(201, &Value::Object(shown)))
}

/// A self-registered client's audiences and scopes: the audiences the operator allows
/// (`allowed_audiences`), and `openid`, `offline_access` (which grant nothing without a
/// user's consent) and the scopes the operator allows (`allowed_scopes`). Anything else
/// would let anyone who registers mint tokens a resource server trusts.
fn allowed_targets(
    policy: &crate::RegistrationPolicy,
    fields: &Map<String, Value>,
) -> Result<(), ApiError> {
    let audience = fields.get("audience").and_then(Value::as_array);
    let named = audience.into_iter().flatten().filter_map(Value::as_str);
    if let Some(other) = named
        .clone()
        .find(|a| !policy.allowed_audiences.iter().any(|allowed| allowed == a))
    {
        return Err(ApiError(
            400,
            "invalid_client_metadata",
            format!(
                "audience: {other:?} is not one a client may register itself with \
                 (oauth.registration.allowed_audiences)"
            ),
        ));
    }
    let Some(scope) = fields.get("scope").and_then(Value::as_str) else {
        return Ok(());
    };
    let free = [crate::signed::OPENID, crate::grant::OFFLINE_ACCESS];
    let refused = scope
        .split(' ')
        .filter(|s| !s.is_empty())
        .find(|s| !free.contains(s) && !policy.allowed_scopes.iter().any(|a| a == s));
    match refused {
        None => Ok(()),
        Some(scope) => Err(ApiError(
            400,
            "invalid_client_metadata",
            format!(
                "scope: {scope:?} is not one a client may register itself with \
                 (oauth.registration.allowed_scopes)"
            ),
        )),
    }
}

/// The body's client metadata, without what a client cannot set about itself.
fn checked_fields(body: Option<&str>) -> Result<Map<String, Value>, ApiError> {
    let Some(Ok(Value::Object(mut fields))) = body.map(serde_json::from_str::<Value>) else {
        return Err(ApiError(
            400,
            "invalid_client_metadata",
            "the body must be a JSON object of client metadata (RFC 7591)".into(),
        ));
    };
    if fields.contains_key("software_statement") {
        return Err(ApiError(
            400,
            "invalid_software_statement",
            "this server does not take software statements".into(),
        ));
    }
    let set = |v: &Value| !v.is_null() && *v != Value::Bool(false) && *v != value!("");
    if let Some(name) = REFUSED.iter().find(|n| fields.get(**n).is_some_and(set)) {
        return Err(ApiError(
            400,
            "invalid_client_metadata",
            format!("{name} cannot be set by a client that registers itself"),
        ));
    }
    // The id is the server's to give (RFC 7591 section 3.2.1).
    fields.remove("client_id");
    Ok(fields)
}

/// The client as RFC 7591 and 7592 show it to itself: no `metadata` (the operator's), and
/// where to manage it.
fn registered_view(host: &impl Host, stored: &Stored, secret: Option<&str>) -> Map<String, Value> {
    let Value::Object(mut shown) = super::show::show(stored, secret, host) else {
        unreachable!("a client shows as an object");
    };
    shown.remove("metadata");
    let uri = format!(
        "{}/oauth2/register/{}",
        host.issuer(),
        crate::params::percent_encode(&stored.client_id)
    );
    shown.insert("registration_client_uri".into(), value!(uri));
    shown
}

/// RFC 7592: the client's own calls, with its registration access token.
fn manage(
    host: &impl Host,
    method: &str,
    id: &str,
    bearer: Option<&str>,
    body: Option<&str>,
) -> Result<Response, ApiError> {
    let refused =
        || unauthorized("the registration access token is missing, wrong or of another client");
    let bearer = bearer.ok_or_else(refused)?;
    let (stored, bytes) = admin::read(host, id)?.ok_or_else(refused)?;
    let presented = hex_sha256(bearer.as_bytes());
    let expected = stored
        .registration_access_token_sha256
        .as_deref()
        .unwrap_or("");
    if expected.is_empty() || !constant_time_eq(presented.as_bytes(), expected.as_bytes()) {
        return Err(refused());
    }
    match method {
        "GET" | "HEAD" => Ok(json(
            200,
            &Value::Object(registered_view(host, &stored, None)),
        )),
        "DELETE" => admin::delete(host, id),
        "PUT" => {
            let mut fields = checked_fields(body)?;
            let policy = host.dynamic_registration().unwrap_or_default();
            allowed_targets(&policy, &fields)?;
            fields.insert("client_id".into(), value!(id));
            // What the client cannot change about itself keeps its value.
            if let Some(metadata) = stored.shown.get("metadata") {
                fields.insert("metadata".into(), metadata.clone());
            }
            fields.insert("skip_consent".into(), value!(stored.skip_consent));
            if let Some(strategy) = &stored.access_token_strategy {
                fields.insert("access_token_strategy".into(), value!(strategy));
            }
            let now = host.now_ms() / 1000;
            let (mut updated, secret) = build(host, &fields, id, Some(&stored), now)?;
            // A new registration access token each change, as Hydra: the old one ends.
            let token = new_secret(host);
            updated.registration_access_token_sha256 = Some(hex_sha256(token.as_bytes()));
            admin::write_over(host, bytes, &updated)?;
            // A secret the change made (a public client turned confidential) is shown once.
            let mut shown = registered_view(host, &updated, secret.as_deref());
            shown.insert("registration_access_token".into(), value!(token));
            Ok(json(200, &Value::Object(shown)))
        }
        _ => Err(ApiError(
            405,
            "method_not_allowed",
            "not on this path".into(),
        )),
    }
}
