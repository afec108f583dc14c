//! Routing: which path does what, and the HTTP checks in front of every guest call (method,
//! content type, body size and read time, strict form parsing).

use super::body::{self, BodyError};
use super::form;
use super::responses::{json_response, oauth_error, server_error, text, Body};
use crate::runtime::{
    CallError, Export, Request as GuestRequest, Response as GuestResponse, Runtime,
};
use crate::store::TokenStore;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{
    HeaderName, HeaderValue, ALLOW, AUTHORIZATION, CONNECTION, CONTENT_LENGTH, CONTENT_TYPE,
};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::json;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long `/health/ready` waits for the store.
const READY_TIMEOUT: Duration = Duration::from_secs(2);

/// Everything a request handler needs, shared by all connections.
pub struct App {
    pub runtime: Runtime,
    pub store: Arc<dyn TokenStore>,
    pub max_body_size: u64,
    pub read_timeout: Duration,
    /// `None` when metrics are disabled.
    pub metrics_path: Option<String>,
}

/// The routes, as metric labels: a fixed set whatever the request says.
#[derive(Clone, Copy)]
enum Route {
    Token,
    Introspect,
    Revoke,
    Metadata,
    Live,
    Ready,
    Metrics,
    NotFound,
}

impl Route {
    fn of(app: &App, path: &str) -> Route {
        match path {
            "/api/v1/oauth/token" => Route::Token,
            "/api/v1/oauth/introspect" => Route::Introspect,
            "/api/v1/oauth/revoke" => Route::Revoke,
            "/.well-known/oauth-authorization-server" => Route::Metadata,
            "/health/live" => Route::Live,
            "/health/ready" => Route::Ready,
            p if app.metrics_path.as_deref() == Some(p) => Route::Metrics,
            _ => Route::NotFound,
        }
    }

    fn label(self) -> &'static str {
        match self {
            Route::Token => "token",
            Route::Introspect => "introspect",
            Route::Revoke => "revoke",
            Route::Metadata => "metadata",
            Route::Live => "live",
            Route::Ready => "ready",
            Route::Metrics => "metrics",
            Route::NotFound => "not_found",
        }
    }

    fn method(self) -> Method {
        match self {
            Route::Token | Route::Introspect | Route::Revoke => Method::POST,
            _ => Method::GET,
        }
    }
}

/// Answers one request; never fails, whatever the request or the guest does.
pub async fn handle(app: Arc<App>, peer: SocketAddr, req: Request<Incoming>) -> Response<Body> {
    let start = Instant::now();
    let route = Route::of(&app, req.uri().path());
    let method = req.method().clone();
    let response = match route {
        Route::NotFound => oauth_error(StatusCode::NOT_FOUND, "not_found", "no such route"),
        _ if method != route.method()
            && !(method == Method::HEAD && route.method() == Method::GET) =>
        {
            let mut response = oauth_error(
                StatusCode::METHOD_NOT_ALLOWED,
                "invalid_request",
                &format!("use {}", route.method()),
            );
            let allow = if route.method() == Method::POST {
                "POST"
            } else {
                "GET, HEAD"
            };
            response
                .headers_mut()
                .insert(ALLOW, HeaderValue::from_static(allow));
            response
        }
        Route::Token => oauth_call(&app, Export::Token, peer, req).await,
        Route::Introspect => oauth_call(&app, Export::Introspect, peer, req).await,
        Route::Revoke => oauth_call(&app, Export::Revoke, peer, req).await,
        Route::Metadata => guest_call(&app, Export::Metadata, GuestRequest::default()).await,
        Route::Live => json_response(StatusCode::OK, &json!({ "status": "ok" })),
        Route::Ready => ready(&app).await,
        Route::Metrics => text(
            StatusCode::OK,
            "text/plain; version=0.0.4; charset=utf-8",
            app.runtime.services().metrics.render(),
        ),
    };
    let metrics = &app.runtime.services().metrics;
    let status = response.status();
    metrics
        .http_requests
        .with_label_values(&[route.label(), status.as_str()])
        .inc();
    let elapsed = start.elapsed();
    metrics.http_duration.observe(elapsed.as_secs_f64());
    tracing::info!(
        method = %method,
        route = route.label(),
        status = status.as_u16(),
        duration_us = elapsed.as_micros() as u64,
        "request"
    );
    response
}

/// The HTTP checks of an OAuth form endpoint, then the guest call.
async fn oauth_call(
    app: &App,
    export: Export,
    peer: SocketAddr,
    req: Request<Incoming>,
) -> Response<Body> {
    let invalid =
        |description: &str| oauth_error(StatusCode::BAD_REQUEST, "invalid_request", description);
    let is_form = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|media| {
            media
                .trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    if !is_form {
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
            return response;
        }
        Err(BodyError::Timeout) => {
            return oauth_error(
                StatusCode::REQUEST_TIMEOUT,
                "invalid_request",
                "the request body was not received in time",
            )
        }
        Err(BodyError::Broken) => return invalid("the request body could not be read"),
    };
    let params = match form::parse(&body) {
        Ok(params) => params,
        Err(e) => return invalid(&e.to_string()),
    };
    let request = GuestRequest {
        params,
        authorization,
        client_ip: peer.ip().to_string(),
    };
    guest_call(app, export, request).await
}

/// Calls the guest; a failing guest costs this request a 500 (or 503 when all instances are
/// busy), and nothing more.
async fn guest_call(app: &App, export: Export, request: GuestRequest) -> Response<Body> {
    let runtime = &app.runtime;
    match runtime.call(export, request).await {
        Ok(response) => into_http(response).unwrap_or_else(|why| {
            tracing::error!(guest = %runtime.guest, export = export.name(), "guest returned an invalid response: {why}");
            runtime.services().metrics.guest_failures.with_label_values(&[&runtime.guest, "invalid_response"]).inc();
            server_error()
        }),
        Err(error) => {
            tracing::error!(guest = %runtime.guest, export = export.name(), "{error}");
            runtime
                .services()
                .metrics
                .guest_failures
                .with_label_values(&[&runtime.guest, error.reason()])
                .inc();
            match error {
                CallError::Busy(_) => oauth_error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "temporarily_unavailable",
                    "the service is overloaded; try again later",
                ),
                CallError::Trap(_) | CallError::Deadline(_) => server_error(),
            }
        }
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
async fn ready(app: &App) -> Response<Body> {
    match tokio::time::timeout(READY_TIMEOUT, app.store.ping()).await {
        Ok(Ok(())) => json_response(
            StatusCode::OK,
            &json!({ "status": "ready", "store": "ok", "guest": &*app.runtime.guest }),
        ),
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
