//! Routing: which path does what, and the HTTP checks in front of every guest call (method,
//! content type, body size and read time, strict form parsing).

use super::address_budget::AddressBudget;
use super::body::{self, BodyError};
use super::browser;
use super::client;
use super::form;
use super::responses::{json_response, oauth_error, server_error, text, Body};
use crate::config::Cidr;
use crate::runtime::{
    Answer, Call, CallError, Export, Request as GuestRequest, Response as GuestResponse, Runtime,
};
use crate::services::Services;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{
    HeaderName, HeaderValue, ALLOW, AUTHORIZATION, CONNECTION, CONTENT_LENGTH, CONTENT_TYPE, HOST,
};
use hyper::{Method, Request, Response, StatusCode, Version};
use serde_json::json;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use tracing::Instrument as _;

/// The header carrying a request's id, taken from the caller when it sends a sane one.
const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// How long `/health/ready` waits for the store.
const READY_TIMEOUT: Duration = Duration::from_secs(2);

/// Everything a request handler needs, shared by all connections.
pub struct App {
    pub runtime: Runtime,
    pub services: Arc<Services>,
    pub max_body_size: u64,
    pub read_timeout: Duration,
    /// `None` when metrics are disabled.
    pub metrics_path: Option<String>,
    /// `server.tls.introspect_requires_client_cert`.
    pub introspect_requires_client_cert: bool,
    /// SHA-256 of `admin.api_key`, when the admin API asks for one.
    pub admin_api_key_sha256: Option<[u8; 32]>,
    /// Each client address's budget on the anonymous endpoints; none: unlimited.
    pub address_budget: Option<AddressBudget>,
    /// `server.trusted_proxies`: whose `X-Forwarded-For` names the client.
    pub trusted_proxies: Vec<Cidr>,
}

/// The routes, as metric labels: a fixed set whatever the request says.
#[derive(Clone, Copy)]
enum Route {
    /// An OAuth endpoint the active guest serves.
    Guest(Export),
    /// An admin API call, by its name in `browser.admin`, on the admin listener.
    Admin(&'static str),
    Live,
    Ready,
    Metrics,
    NotFound,
}

impl Route {
    /// The route of `path` on `listener`: OAuth on the public side, metrics and health on
    /// the management side, both where one listener serves all.
    fn of(app: &App, listener: Listener, path: &str) -> Route {
        if listener == Listener::Admin {
            return match ADMIN_CALLS.iter().find(|(p, _, _)| *p == path) {
                Some((_, _, call)) if app.runtime.serves(Export::Admin) => Route::Admin(call),
                _ => Route::NotFound,
            };
        }
        let route = Route::of_path(app, path);
        let management = matches!(route, Route::Live | Route::Ready | Route::Metrics);
        match (listener, management) {
            (Listener::Public, true) | (Listener::Management, false) => Route::NotFound,
            (Listener::Admin, _) => Route::NotFound,
            _ => route,
        }
    }

    fn of_path(app: &App, path: &str) -> Route {
        if let Some(export) = Export::ALL.into_iter().find(|e| e.path() == Some(path)) {
            return match app.runtime.serves(export) {
                true => Route::Guest(export),
                false => Route::NotFound,
            };
        }
        match path {
            "/health/live" => Route::Live,
            "/health/ready" => Route::Ready,
            p if app.metrics_path.as_deref() == Some(p) => Route::Metrics,
            _ => Route::NotFound,
        }
    }

    fn label(self) -> &'static str {
        match self {
            Route::Guest(export) => export.name(),
            Route::Admin(_) => "admin",
            Route::Live => "live",
            Route::Ready => "ready",
            Route::Metrics => "metrics",
            Route::NotFound => "not_found",
        }
    }

    /// Whether the route answers `method` (a GET route answers HEAD too).
    fn allows(self, method: &Method) -> bool {
        let methods = self.methods();
        methods.contains(method) || (method == Method::HEAD && methods.contains(&Method::GET))
    }

    /// The methods the route answers.
    fn methods(self) -> &'static [Method] {
        match self {
            Route::Guest(export) => export.methods(),
            Route::Admin(call) => match ADMIN_CALLS.iter().find(|(_, _, c)| *c == call) {
                Some((_, method, _)) if *method == Method::PUT => &[Method::PUT],
                _ => &[Method::GET],
            },
            _ => &[Method::GET],
        }
    }
}

/// The admin API's paths (Ory Hydra v2's), their methods, and the call each is in
/// `browser.admin`.
const ADMIN_CALLS: [(&str, Method, &str); 6] = [
    (
        "/admin/oauth2/auth/requests/login",
        Method::GET,
        "login-request",
    ),
    (
        "/admin/oauth2/auth/requests/login/accept",
        Method::PUT,
        "login-accept",
    ),
    (
        "/admin/oauth2/auth/requests/login/reject",
        Method::PUT,
        "login-reject",
    ),
    (
        "/admin/oauth2/auth/requests/consent",
        Method::GET,
        "consent-request",
    ),
    (
        "/admin/oauth2/auth/requests/consent/accept",
        Method::PUT,
        "consent-accept",
    ),
    (
        "/admin/oauth2/auth/requests/consent/reject",
        Method::PUT,
        "consent-reject",
    ),
];

/// What a listener serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Listener {
    /// Everything: the OAuth endpoints, health and metrics (no `metrics.port`).
    Combined,
    /// The OAuth endpoints only (a `metrics.port` is set).
    Public,
    /// Health and metrics only, on `metrics.port`.
    Management,
    /// The admin API only, on `admin.port`.
    Admin,
}

/// Who is on the other end of a connection, and on which listener.
#[derive(Clone, Copy)]
pub struct Peer {
    pub addr: SocketAddr,
    /// A client certificate was presented and verified (mTLS).
    pub client_cert: bool,
    pub listener: Listener,
}

/// What the log line of a request says beyond method, route and status.
#[derive(Default)]
pub(super) struct Facts {
    /// The registered client the request authenticated as, as the guest said.
    client_id: Option<String>,
}

/// Answers one request; never fails, whatever the request or the guest does.
pub async fn handle(app: Arc<App>, peer: Peer, req: Request<Incoming>) -> Response<Body> {
    let start = Instant::now();
    let peer = Peer {
        addr: SocketAddr::new(client::address(&app, peer, &req), peer.addr.port()),
        ..peer
    };
    let route = Route::of(&app, peer.listener, req.uri().path());
    let method = req.method().clone();
    let request_id = request_id(&req);
    let span = tracing::info_span!("request", request_id = %request_id);
    let mut facts = Facts::default();
    let answer = respond(&app, route, peer, req, &mut facts).instrument(span);
    let mut response = answer.await;
    let metrics = &app.services.metrics;
    let status = response.status();
    metrics
        .http_requests
        .with_label_values(&[route.label(), status.as_str()])
        .inc();
    let elapsed = start.elapsed();
    metrics
        .http_duration
        .with_label_values(&[route.label()])
        .observe(elapsed.as_secs_f64());
    tracing::info!(
        request_id = %request_id,
        method = %method,
        route = route.label(),
        status = status.as_u16(),
        duration_us = elapsed.as_micros() as u64,
        client_id = facts.client_id.as_deref(),
        "request"
    );
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert(X_REQUEST_ID, value);
    }
    response
}

async fn respond(
    app: &App,
    route: Route,
    peer: Peer,
    req: Request<Incoming>,
    facts: &mut Facts,
) -> Response<Body> {
    let method = req.method();
    match route {
        // RFC 9112 section 3.2: an HTTP/1.1 request without exactly one Host is a 400.
        _ if req.version() == Version::HTTP_11
            && req.headers().get_all(HOST).iter().count() != 1 =>
        {
            oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "an HTTP/1.1 request needs exactly one Host header",
            )
        }
        // RFC 9110 section 7.2 and RFC 3986 section 3.2: a Host is an authority, no more.
        _ if req
            .headers()
            .get(HOST)
            .is_some_and(|host| !client::valid_host(host.as_bytes())) =>
        {
            oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "the Host header is not a valid host[:port]",
            )
        }
        Route::NotFound => oauth_error(StatusCode::NOT_FOUND, "not_found", "no such route"),
        _ if !route.allows(method) => {
            let mut allow: Vec<&str> = route.methods().iter().map(Method::as_str).collect();
            if allow.contains(&"GET") {
                allow.insert(1, "HEAD");
            }
            let allow = allow.join(", ");
            let mut response = oauth_error(
                StatusCode::METHOD_NOT_ALLOWED,
                "invalid_request",
                &format!("use {allow}"),
            );
            if let Ok(value) = HeaderValue::from_str(&allow) {
                response.headers_mut().insert(ALLOW, value);
            }
            response
        }
        Route::Admin(_) if !browser::admin_authorized(app, &req) => browser::unauthorized(),
        Route::Admin(call) => browser::admin_call(app, call, peer, req, facts).await,
        Route::Guest(Export::Authorize) => match client::over_budget(app, route.label(), peer) {
            Some(response) => response,
            None => browser::authorize_call(app, peer, req, facts).await,
        },
        Route::Guest(Export::Introspect)
            if app.introspect_requires_client_cert && !peer.client_cert =>
        {
            oauth_error(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "introspection requires a client certificate",
            )
        }
        Route::Guest(Export::Metadata) => {
            let call = Call::Handler(Export::Metadata, GuestRequest::default());
            guest_call(app, call, facts).await
        }
        Route::Guest(export) => oauth_call(app, export, peer, req, facts).await,
        Route::Live => json_response(StatusCode::OK, &json!({ "status": "ok" })),
        Route::Ready => ready(app).await,
        Route::Metrics => {
            let metrics = &app.services.metrics;
            metrics
                .store_full
                .set(i64::from(app.services.store.is_full()));
            if let Some(budget) = &app.address_budget {
                metrics.address_budgets.set(budget.len() as i64);
            }
            text(
                StatusCode::OK,
                "text/plain; version=0.0.4; charset=utf-8",
                metrics.render(),
            )
        }
    }
}

/// The caller's `X-Request-Id` if it is a plausible id (1 to 128 characters from
/// `[A-Za-z0-9._:-]`), or a new random one: ids reach logs, so they must be harmless.
fn request_id<B>(req: &Request<B>) -> String {
    let given = req
        .headers()
        .get(X_REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|id| {
            (1..=128).contains(&id.len())
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(&b))
        });
    match given {
        Some(id) => id.to_owned(),
        None => new_request_id(),
    }
}

/// 32 hex digits: a random number drawn once per process, then a counter. Ids need to be
/// unique, not secret, and this costs no system call per request (drawing 16 random bytes
/// each time did).
fn new_request_id() -> String {
    static PROCESS: OnceLock<u64> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let process = *PROCESS.get_or_init(|| {
        let mut bytes = [0u8; 8];
        // If the OS source fails, the clock will do.
        if getrandom::fill(&mut bytes).is_err() {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default();
            bytes = (now.as_nanos() as u64).to_le_bytes();
        }
        u64::from_le_bytes(bytes)
    });
    format!(
        "{process:016x}{:016x}",
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// The HTTP checks of an OAuth form endpoint, then the guest call.
async fn oauth_call(
    app: &App,
    export: Export,
    peer: Peer,
    req: Request<Incoming>,
    facts: &mut Facts,
) -> Response<Body> {
    let invalid =
        |description: &str| oauth_error(StatusCode::BAD_REQUEST, "invalid_request", description);
    if !is_form(&req) {
        return invalid("Content-Type must be application/x-www-form-urlencoded");
    }
    let mut authorizations = req.headers().get_all(AUTHORIZATION).iter();
    let authorization = match (authorizations.next(), authorizations.next()) {
        (None, _) => None,
        (Some(value), None) => match value.to_str() {
            Ok(value) => Some(value.to_owned()),
            Err(_) => return invalid("the Authorization header is not visible ASCII"),
        },
        (Some(_), Some(_)) => return invalid("more than one Authorization header"),
    };
    let body = match read_body(app, req).await {
        Ok(body) => body,
        Err(response) => return response,
    };
    let params = match form::parse(&body) {
        Ok(params) => params,
        Err(e) => return invalid(&e.to_string()),
    };
    let request = GuestRequest {
        params,
        authorization,
        client_ip: peer.addr.ip().to_string(),
    };
    guest_call(app, Call::Handler(export, request), facts).await
}

/// Whether `req`'s body is `application/x-www-form-urlencoded`.
pub(super) fn is_form(req: &Request<Incoming>) -> bool {
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

/// The body of `req`, within `server.max_body_size` and `server.read_timeout`, or the
/// response that says why not.
pub(super) async fn read_body(
    app: &App,
    req: Request<Incoming>,
) -> Result<bytes::Bytes, Response<Body>> {
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let read = body::read(
        req.into_body(),
        declared,
        app.max_body_size,
        app.read_timeout,
    );
    let body = match read.await {
        Ok(body) => body,
        Err(BodyError::TooLarge { drained }) => {
            let mut response = oauth_error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "invalid_request",
                &format!("the request body exceeds {} bytes", app.max_body_size),
            );
            if !drained {
                // The rest of the body is unread: the connection cannot carry another request.
                response
                    .headers_mut()
                    .insert(CONNECTION, HeaderValue::from_static("close"));
            }
            return Err(response);
        }
        Err(BodyError::Timeout) => {
            return Err(oauth_error(
                StatusCode::REQUEST_TIMEOUT,
                "invalid_request",
                "the request body was not received in time",
            ))
        }
        Err(BodyError::Broken) => {
            return Err(oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "the request body could not be read",
            ))
        }
    };
    Ok(body)
}

/// Calls the guest; a failing guest costs this request a 500 (or 503 when all instances are
/// busy), and nothing more. The runtime logs and counts the failure.
pub(super) async fn guest_call(app: &App, call: Call, facts: &mut Facts) -> Response<Body> {
    let accept = |answer: Answer| {
        facts.client_id = answer.client_id;
        into_http(answer.response)
    };
    match app.runtime.call(call, accept).await {
        Ok(response) => response,
        Err(CallError::Busy(_)) => oauth_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "temporarily_unavailable",
            "the service is overloaded; try again later",
        ),
        Err(_) => server_error(),
    }
}

/// Headers that belong to the connection, which the host manages and a guest may not set.
const HOST_HEADERS: [&str; 5] = [
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "upgrade",
];

fn into_http(guest: GuestResponse) -> Result<Response<Body>, String> {
    let status = StatusCode::from_u16(guest.status)
        .ok()
        .filter(|s| (200..600).contains(&s.as_u16()))
        .ok_or_else(|| format!("status {} is not a final HTTP status", guest.status))?;
    let mut response = Response::new(Full::new(guest.body.into()));
    *response.status_mut() = status;
    for (name, value) in guest.headers {
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| format!("invalid header name {name:?}"))?;
        if HOST_HEADERS.contains(&name.as_str()) {
            return Err(format!("header {name} is the host's to set"));
        }
        let value = HeaderValue::from_str(&value)
            .map_err(|_| format!("invalid value for header {name}"))?;
        response.headers_mut().append(name, value);
    }
    Ok(response)
}

/// Ready when the store answers within 2 s and a guest is loaded (it is, once serving).
///
/// A full embedded store is reported (`"store":"full"`) but stays ready: the replica still
/// introspects and revokes what it holds, and its tokens live only in it, so taking it out
/// of a Service would turn a partial outage (no new tokens until entries expire) into a
/// whole one. `tokenginx_store_full` is there to alert on. A store that does not answer
/// is not ready: then the replica cannot serve anything.
async fn ready(app: &App) -> Response<Body> {
    match tokio::time::timeout(READY_TIMEOUT, app.services.store.ping()).await {
        Ok(Ok(())) => {
            let store = match app.services.store.is_full() {
                true => {
                    tracing::warn!(
                        "readiness: the embedded store is full (tokenginx.max_entries): new \
                         tokens are refused until entries expire"
                    );
                    "full"
                }
                false => "ok",
            };
            json_response(
                StatusCode::OK,
                &json!({ "status": "ready", "store": store, "guest": &*app.runtime.active().label }),
            )
        }
        Ok(Err(e)) => {
            tracing::warn!("readiness: {e}");
            json_response(
                StatusCode::SERVICE_UNAVAILABLE,
                &json!({ "status": "unavailable", "store": "error" }),
            )
        }
        Err(_) => {
            tracing::warn!("readiness: the store did not answer within {READY_TIMEOUT:?}");
            json_response(
                StatusCode::SERVICE_UNAVAILABLE,
                &json!({ "status": "unavailable", "store": "timeout" }),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_request_ids_are_distinct_hex() {
        let ids: std::collections::HashSet<String> = (0..1000).map(|_| new_request_id()).collect();
        assert_eq!(ids.len(), 1000);
        assert!(ids
            .iter()
            .all(|id| id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit())));
    }
}
