//! Routing: the host's own paths (health, metrics) and the guest's routes, and the HTTP
//! checks in front of every guest call (Host, method, the admin credential, the address
//! budget, the request's shape).

use super::address_budget::AddressBudget;
use super::body::{self, BodyError};
use super::responses::{json_response, oauth_error, server_error, text, Body};
use super::tls::ClientCert;
use super::{admin, client, guest_request};
use crate::config::Cidr;
use crate::runtime::{
    Answer, CallError, Found, Guest, Response as GuestResponse, Route, Runtime, Side,
};
use crate::services::Services;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderName, HeaderValue, ALLOW, CONNECTION, CONTENT_LENGTH, HOST};
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
    /// The guest routes, by name, that a client certificate must reach
    /// (`server.tls.introspect_requires_client_cert`: the route `introspect`).
    pub client_cert_routes: Vec<String>,
    /// SHA-256 of `admin.api_key`, when the admin API asks for one.
    pub admin_api_key_sha256: Option<[u8; 32]>,
    /// Each client address's budget on the anonymous routes; none: unlimited.
    pub address_budget: Option<AddressBudget>,
    /// `server.trusted_proxies`: whose `X-Forwarded-For` names the client.
    pub trusted_proxies: Vec<Cidr>,
}

/// Where a request goes: the host's own paths, or a route of the guest serving.
enum Target<'a> {
    /// A guest route, with its path parameters.
    Guest(&'a Route, Vec<(String, String)>),
    /// A guest route's path, with a method none of its routes answers.
    Method(&'a Route, Vec<Method>),
    Live,
    Ready,
    Metrics,
    NotFound,
}

impl<'a> Target<'a> {
    /// What `method` on `path` reaches on `listener`: metrics and health on the management
    /// side, the guest's public routes on the public side (both where one listener serves
    /// all), its admin routes on the admin listener.
    fn of(app: &App, guest: &'a Guest, listener: Listener, path: &str, method: &Method) -> Self {
        let own = match path {
            "/health/live" => Some(Target::Live),
            "/health/ready" => Some(Target::Ready),
            p if app.metrics_path.as_deref() == Some(p) => Some(Target::Metrics),
            _ => None,
        };
        let side = match (listener, own) {
            (Listener::Management, own) => return own.unwrap_or(Target::NotFound),
            (Listener::Combined, Some(own)) => return own,
            (Listener::Combined | Listener::Public, _) => Side::Public,
            (Listener::Admin, _) => Side::Admin,
        };
        match guest.routes.find(side, path, method) {
            Found::Route(route, params) => Target::Guest(route, params),
            Found::Method(route, allowed) => Target::Method(route, allowed),
            Found::Nothing => Target::NotFound,
        }
    }

    /// The metrics label: the guest route's name, or the host's own.
    fn label(&self) -> &'a str {
        match self {
            Target::Guest(route, _) | Target::Method(route, _) => route.name.as_str(),
            Target::Live => "live",
            Target::Ready => "ready",
            Target::Metrics => "metrics",
            Target::NotFound => "not_found",
        }
    }
}

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
#[derive(Clone)]
pub struct Peer {
    pub addr: SocketAddr,
    /// The connection is TLS.
    pub tls: bool,
    /// The client certificate presented (mTLS), if any, and whether it chains to the CA.
    pub client_cert: Option<ClientCert>,
    pub listener: Listener,
}

/// What the log line of a request says beyond method, route and status.
#[derive(Default)]
struct Facts {
    /// The registered client the request authenticated as, as the guest said.
    client_id: Option<String>,
}

/// Answers one request; never fails, whatever the request or the guest does.
pub async fn handle(app: Arc<App>, peer: Peer, req: Request<Incoming>) -> Response<Body> {
    let start = Instant::now();
    let peer = Peer {
        addr: SocketAddr::new(client::address(&app, &peer, &req), peer.addr.port()),
        ..peer
    };
    // The guest serving now serves this request to its end, whatever a reload does.
    let guest = app.runtime.active();
    let method = req.method().clone();
    let target = Target::of(&app, &guest, peer.listener, req.uri().path(), &method);
    let label = target.label();
    let request_id = request_id(&req);
    let span = tracing::info_span!("request", request_id = %request_id);
    let mut facts = Facts::default();
    let answer = respond(&app, &guest, target, &peer, req, &mut facts).instrument(span);
    let mut response = answer.await;
    let metrics = &app.services.metrics;
    let status = response.status();
    metrics
        .http_requests
        .with_label_values(&[label, status.as_str()])
        .inc();
    let elapsed = start.elapsed();
    metrics
        .http_duration
        .with_label_values(&[label])
        .observe(elapsed.as_secs_f64());
    tracing::info!(
        request_id = %request_id,
        method = %method,
        route = label,
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
    guest: &Arc<Guest>,
    target: Target<'_>,
    peer: &Peer,
    req: Request<Incoming>,
    facts: &mut Facts,
) -> Response<Body> {
    match target {
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
        Target::NotFound => oauth_error(StatusCode::NOT_FOUND, "not_found", "no such route"),
        Target::Method(_, methods) => method_not_allowed(methods),
        Target::Live | Target::Ready | Target::Metrics
            if req.method() != Method::GET && req.method() != Method::HEAD =>
        {
            method_not_allowed(vec![Method::GET])
        }
        Target::Guest(route, _)
            if route.side == Side::Admin && !admin::admin_authorized(app, &req) =>
        {
            admin::unauthorized()
        }
        Target::Guest(route, _)
            if !peer.client_cert.as_ref().is_some_and(|c| c.chained)
                && app.client_cert_routes.contains(&route.name) =>
        {
            oauth_error(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                &format!("{} requires a client certificate", route.name),
            )
        }
        Target::Guest(route, params) => {
            if route.anonymous {
                if let Some(response) = client::over_budget(app, &route.name, peer) {
                    return response;
                }
            }
            match guest_request::build(app, route, params, peer, req).await {
                Ok(request) => {
                    let presented = peer.client_cert.as_ref().map(|cert| cert.der.clone());
                    guest_call(app, guest, route, request, presented, facts).await
                }
                Err(response) => response,
            }
        }
        Target::Live => json_response(StatusCode::OK, &json!({ "status": "ok" })),
        Target::Ready => ready(app).await,
        Target::Metrics => {
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

/// 405 with `Allow` (a GET route answers HEAD too).
fn method_not_allowed(methods: Vec<Method>) -> Response<Body> {
    let mut allow: Vec<&str> = Vec::new();
    for method in &methods {
        if !allow.contains(&method.as_str()) {
            allow.push(method.as_str());
        }
        if *method == Method::GET && !allow.contains(&"HEAD") {
            allow.push("HEAD");
        }
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
async fn guest_call(
    app: &App,
    guest: &Arc<Guest>,
    route: &Route,
    request: crate::runtime::Request,
    presented_cert: Option<Arc<[u8]>>,
    facts: &mut Facts,
) -> Response<Body> {
    let accept = |answer: Answer| {
        facts.client_id = answer.client_id;
        into_http(answer.response)
    };
    match app
        .runtime
        .call(guest, route, request, presented_cert, accept)
        .await
    {
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
