//! The authorization code flow's HTTP side: the authorization endpoint on the public
//! listener, and the admin API (Ory Hydra v2's login and consent endpoints) on the admin
//! listener. The host checks the HTTP and the admin credential; the guest decides.

use super::form;
use super::responses::{json_response, oauth_error, Body};
use super::routes::{guest_call, is_form, read_body, App, Facts, Peer};
use crate::runtime::{BrowserRequest, Call};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, AUTHORIZATION, COOKIE, WWW_AUTHENTICATE};
use hyper::{Method, Request, Response, StatusCode};
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

/// `GET` or `POST /api/v1/oauth/authorize`: the parameters from the query string (or from a
/// form body), and the cookies, to the guest's `browser.authorize`.
pub(super) async fn authorize_call(
    app: &App,
    peer: Peer,
    req: Request<Incoming>,
    facts: &mut Facts,
) -> Response<Body> {
    let method = req.method().clone();
    let cookies = cookies(&req);
    let params = if method == Method::POST {
        if !is_form(&req) {
            return invalid("Content-Type must be application/x-www-form-urlencoded");
        }
        match read_body(app, req).await {
            Ok(body) => form::parse(&body),
            Err(response) => return response,
        }
    } else {
        form::parse(req.uri().query().unwrap_or("").as_bytes())
    };
    let params = match params {
        Ok(params) => params,
        Err(e) => return invalid(&e.to_string()),
    };
    let request = BrowserRequest {
        method: method.to_string(),
        params,
        cookies,
        body: String::new(),
        client_ip: peer.addr.ip().to_string(),
    };
    guest_call(app, Call::Authorize(request), facts).await
}

/// An admin API call: the query's parameters (`login_challenge`, ...) and the JSON body to
/// the guest's `browser.admin`.
pub(super) async fn admin_call(
    app: &App,
    call: &'static str,
    peer: Peer,
    req: Request<Incoming>,
    facts: &mut Facts,
) -> Response<Body> {
    let method = req.method().to_string();
    let params = match form::parse(req.uri().query().unwrap_or("").as_bytes()) {
        Ok(params) => params,
        Err(e) => return invalid(&e.to_string()),
    };
    let body = match read_body(app, req).await {
        Ok(body) => body,
        Err(response) => return response,
    };
    let Ok(body) = String::from_utf8(body.to_vec()) else {
        return invalid("the request body is not UTF-8");
    };
    let request = BrowserRequest {
        method,
        params,
        cookies: Vec::new(),
        body,
        client_ip: peer.addr.ip().to_string(),
    };
    guest_call(app, Call::Admin(call, request), facts).await
}

fn invalid(description: &str) -> Response<Body> {
    oauth_error(StatusCode::BAD_REQUEST, "invalid_request", description)
}

/// The request's cookies (RFC 6265 section 5.4), in order; pairs without `=` are dropped.
fn cookies(req: &Request<Incoming>) -> Vec<(String, String)> {
    req.headers()
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| {
            let (name, value) = pair.trim().split_once('=')?;
            Some((name.trim().to_owned(), value.trim().to_owned()))
        })
        .collect()
}
