//! The admin listener's credential (`admin.api_key`): checked by the host before any of the
//! guest's admin routes is called.

use super::responses::{json_response, Body};
use super::routes::App;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, AUTHORIZATION, WWW_AUTHENTICATE};
use hyper::{Request, Response, StatusCode};
use serde_json::json;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq as _;

/// Whether `req` carries the admin API key (`Authorization: Bearer`), when one is set. The
/// key is compared as a SHA-256 digest, in constant time.
pub(super) fn admin_authorized(app: &App, req: &Request<Incoming>) -> bool {
    let Some(expected) = &app.admin_api_key_sha256 else {
        return true;
    };
    let presented = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        // RFC 6750 section 2.1 after RFC 9110 section 11.1: the scheme is case-insensitive.
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, key)| Sha256::digest(key.trim().as_bytes()));
    presented.is_some_and(|digest| bool::from(digest.as_slice().ct_eq(expected)))
}

/// The answer to an admin request without the key.
pub(super) fn unauthorized() -> Response<Body> {
    let mut response = json_response(
        StatusCode::UNAUTHORIZED,
        &json!({
            "error": "unauthorized",
            "error_description": "the admin API needs Authorization: Bearer <admin.api_key>",
        }),
    );
    response
        .headers_mut()
        .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    response
}
