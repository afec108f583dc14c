//! OpenID Connect's UserInfo endpoint (Core section 5.3): who signed in, for an access
//! token granted with `openid`. The token comes as a Bearer credential (RFC 6750 section
//! 2.1) or, on a POST, in the form (section 2.2); the answer is the subject and the claims
//! the consent app put in `session.id_token`. A DPoP-bound token (RFC 9449) comes only as a
//! DPoP credential (`Authorization: DPoP`), with a proof by its key (section 7); one bound
//! to a TLS client certificate (RFC 8705 section 3) only over a connection that presented
//! that certificate.

use crate::grant::{self, Found};
use crate::presented::Named;
use crate::response::json;
use crate::signed::{session_claims, ID_TOKEN_REGISTERED, OPENID};
use crate::{Host, Response};
use serde_json::Value;

/// What a request to the endpoint presented.
pub struct Presented<'a> {
    /// The `Authorization` header.
    pub authorization: Option<&'a str>,
    /// The form's `access_token` (a POST).
    pub form_token: Option<&'a str>,
    /// The `DPoP` header.
    pub dpop: Option<&'a str>,
    pub method: &'a str,
    /// The connection's TLS client certificate, if it chains to the listener's CA
    /// (`request.client-cert`); one that does not is asked of the host when needed.
    pub client_cert: Option<&'a [u8]>,
}

/// `GET` or `POST` with `authorization` (the header) or `access_token` (the form).
pub fn userinfo(host: &impl Host, presented: &Presented) -> Response {
    let (scheme, header_token) = match presented.authorization.and_then(|a| a.split_once(' ')) {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => {
            (Scheme::Bearer, Some(token.trim()))
        }
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("dpop") => {
            (Scheme::Dpop, Some(token.trim()))
        }
        _ => (Scheme::Bearer, None),
    };
    let token = match (header_token, presented.form_token) {
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
    if let Ok(Found::Access(record, _)) = &found {
        let jkt = crate::record::Confirmation::jkt(record.cnf.as_ref());
        if let Err(refused) = crate::dpop::at_resource(host, jkt, scheme, token, presented) {
            return refused;
        }
        if !crate::mtls::holds(host, record.cnf.as_ref(), presented.client_cert) {
            return challenge(
                401,
                "invalid_token",
                "the access token is bound to a TLS client certificate this connection did not present",
            );
        }
    }
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

/// How the token was presented (RFC 6750, RFC 9449 section 7).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Scheme {
    /// `Authorization: Bearer`, or the form.
    Bearer,
    /// `Authorization: DPoP`.
    Dpop,
}

/// An RFC 6750 section 3 answer: `WWW-Authenticate: Bearer` with the error, if any, in the
/// header and the body; with no error, a DPoP challenge too (RFC 9449 section 7.1).
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
    if error.is_empty() {
        response.headers.push((
            "WWW-Authenticate".into(),
            crate::dpop::challenge_header("", ""),
        ));
    }
    response
}
