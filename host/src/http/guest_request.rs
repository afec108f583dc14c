//! A request to one of the guest's routes, checked and made into the contract's
//! `server.request`: the host reads and checks the HTTP (the body's kind, size and read
//! time, the form's and the JSON's well-formedness, the headers the route reads); the guest
//! decides everything else.

use super::form;
use super::responses::{oauth_error, Body};
use super::routes::{read_body, App, Peer};
use crate::runtime::{contract_method, Body as BodyKind, Request as GuestRequest, Route};
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, COOKIE, HOST};
use hyper::{Method, Request, Response, StatusCode};

/// `req` as the guest's request to `route`, or the 400 (413, 408) that says why it cannot
/// be.
pub(super) async fn build(
    app: &App,
    route: &Route,
    path_params: Vec<(String, String)>,
    peer: &Peer,
    req: Request<Incoming>,
) -> Result<GuestRequest, Response<Body>> {
    let query = form::parse(req.uri().query().unwrap_or("").as_bytes())
        .map_err(|e| invalid(&format!("the query: {e}")))?;
    let mut headers = Vec::with_capacity(route.headers.len());
    for name in &route.headers {
        let mut values = req.headers().get_all(name).iter();
        headers.push(match (values.next(), values.next()) {
            (None, _) => None,
            (Some(value), None) => match value.to_str() {
                Ok(value) => Some(value.to_owned()),
                Err(_) => return Err(invalid(&format!("the {name} header is not visible ASCII"))),
            },
            (Some(_), Some(_)) => return Err(invalid(&format!("more than one {name} header"))),
        });
    }
    let url = url(peer, &req);
    let method = req.method().clone();
    let contract_method =
        contract_method(&method).expect("the route answers the method, so the contract has it");
    let cookies = cookies(&req);
    let has_body = !matches!(method, Method::GET | Method::HEAD);
    let (form, json) = match route.body {
        BodyKind::Form if has_body => {
            if !is_form(&req) {
                return Err(invalid(
                    "Content-Type must be application/x-www-form-urlencoded",
                ));
            }
            let body = read_body(app, req).await?;
            let form = form::parse(&body).map_err(|e| invalid(&e.to_string()))?;
            (form, None)
        }
        BodyKind::Json => {
            let body = read_body(app, req).await?;
            (Vec::new(), json(&body).map_err(|e| invalid(&e))?)
        }
        _ => (Vec::new(), None),
    };
    Ok(GuestRequest {
        method: contract_method,
        url,
        path_params,
        query,
        form,
        json,
        cookies,
        headers,
        client_ip: peer.addr.ip().to_string(),
        client_cert: peer
            .client_cert
            .as_ref()
            .filter(|cert| cert.chained)
            .map(|cert| cert.der.to_vec()),
    })
}

/// A JSON body as text: none when empty, else it must be UTF-8 JSON.
fn json(body: &[u8]) -> Result<Option<String>, String> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let text = std::str::from_utf8(body).map_err(|_| "the request body is not UTF-8")?;
    serde_json::from_str::<serde::de::IgnoredAny>(text)
        .map_err(|e| format!("the request body is not JSON: {e}"))?;
    Ok(Some(text.to_owned()))
}

/// The URL as the client addressed it: the scheme of the connection, the `Host` (or, on
/// HTTP/2, the `:authority`), the path and the query.
fn url(peer: &Peer, req: &Request<Incoming>) -> String {
    let scheme = if peer.tls { "https" } else { "http" };
    let host = req
        .headers()
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| req.uri().authority().map(|a| a.as_str()))
        .unwrap_or("");
    let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
    // Not `format!`: on every request, its machinery cost 5,000 instructions.
    let mut url = String::with_capacity(scheme.len() + 3 + host.len() + path.len());
    for part in [scheme, "://", host, path] {
        url.push_str(part);
    }
    url
}

/// Whether `req`'s body is `application/x-www-form-urlencoded`.
fn is_form(req: &Request<Incoming>) -> bool {
    req.headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|media| {
            media
                .trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
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

fn invalid(description: &str) -> Response<Body> {
    oauth_error(StatusCode::BAD_REQUEST, "invalid_request", description)
}
