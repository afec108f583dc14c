//! OpenID Connect's UserInfo endpoint (Core section 5.3): who signed in, for an access
//! token granted with `openid`. The token comes as a Bearer credential (RFC 6750 section
//! 2.1) or, on a POST, in the form (section 2.2); the answer is the subject and the claims
//! the consent app put in `session.id_token`.

use crate::grant::{self, Found};
use crate::presented::Named;
use crate::response::json;
use crate::signed::{session_claims, ID_TOKEN_REGISTERED, OPENID};
use crate::{Host, Response};
use serde_json::Value;

/// `GET` or `POST` with `authorization` (the header) or `access_token` (the form).
pub fn userinfo(
    host: &impl Host,
    authorization: Option<&str>,
    form_token: Option<&str>,
) -> Response {
    let bearer = authorization.and_then(|a| {
        let (scheme, token) = a.split_once(' ')?;
        scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
    });
    let token = match (bearer, form_token) {
        (Some(token), None) | (None, Some(token)) if !token.is_empty() => token,
        (Some(_), Some(_)) => {
            return challenge(
                400,
                "invalid_request",
                "send the token once (RFC 6750 section 2)",
            )
        }
        // No credentials: the challenge alone (RFC 6750 section 3.1).
        _ => return challenge(401, "", ""),
    };
    let found = match crate::presented::named(host, token) {
        Named::Grant(token) => grant::find(host, &token),
        Named::Client(_) | Named::Nothing => Ok(Found::None),
    };
    // A deleted runtime client's tokens are dead here as at introspection.
    let found = found.and_then(|found| match &found {
        Found::Access(record, _) => {
            let at = record.client_registered_at;
            match crate::clients::still_registered(host, &record.client_id, at) {
                Ok(true) => Ok(found),
                Ok(false) => Ok(Found::None),
                Err(e) => Err(crate::response::store_failure(host, e)),
            }
        }
        _ => Ok(found),
    });
    match found {
        // A grant started before this guest kept sign-ins has no session: its subject.
        Ok(Found::Access(record, session)) if record.scope.split(' ').any(|s| s == OPENID) => {
            let claims = session.as_ref().and_then(|s| s.claims.as_ref());
            let mut claims = session_claims(claims, &ID_TOKEN_REGISTERED);
            claims.insert("sub".into(), record.user_id.into());
            json(200, &Value::Object(claims))
        }
        Ok(Found::Access(..)) => challenge(
            403,
            "insufficient_scope",
            "the access token was not granted the openid scope",
        ),
        Ok(_) => challenge(
            401,
            "invalid_token",
            "the access token is unknown, expired or revoked",
        ),
        Err(e) => e.into_response(),
    }
}

/// An RFC 6750 section 3 answer: `WWW-Authenticate: Bearer` with the error, if any, in the
/// header and the body.
pub(crate) fn challenge(status: u16, error: &str, description: &str) -> Response {
    let (header, body) = match error {
        "" => ("Bearer".to_owned(), serde_json::json!({})),
        _ => {
            let scope = match error {
                "insufficient_scope" => ", scope=\"openid\"",
                _ => "",
            };
            (
                format!("Bearer error=\"{error}\", error_description=\"{description}\"{scope}"),
                serde_json::json!({"error": error, "error_description": description}),
            )
        }
    };
    let mut response = json(status, &body);
    response.headers.push(("WWW-Authenticate".into(), header));
    response
}
