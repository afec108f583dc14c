//! The routes this guest serves (`server.routes`), the one place its paths are written, and
//! the dispatch of a request to the module that answers it. A new endpoint is a row here
//! and its module.

use crate::host::{BrowserRequest, HttpRequest, Request, Response};
use crate::Host;

/// Which of the host's listeners serves a route.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Listener {
    Public,
    /// The admin listener, behind the operator's credential.
    Admin,
}

/// The body a route takes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Body {
    None,
    Form,
    Json,
}

/// A route, as declared to the host.
#[derive(Clone, Copy, Debug)]
pub struct Route {
    pub name: &'static str,
    pub path: &'static str,
    pub methods: &'static [&'static str],
    pub listener: Listener,
    pub body: Body,
    /// The request headers it reads.
    pub headers: &'static [&'static str],
    /// Anyone may call it without credentials: the host charges the address's budget.
    pub anonymous: bool,
    pub uses_store: bool,
}

/// A form endpoint that authenticates its client with `Authorization` or the form.
const fn client_endpoint(name: &'static str, path: &'static str) -> Route {
    Route {
        name,
        path,
        methods: &["POST"],
        listener: Listener::Public,
        body: Body::Form,
        headers: &["authorization"],
        anonymous: false,
        uses_store: true,
    }
}

/// Ory Hydra v2's login and consent admin API: `{flow}` is `login` or `consent`.
const fn admin(path: &'static str, method: &'static [&'static str]) -> Route {
    Route {
        name: "admin",
        path,
        methods: method,
        listener: Listener::Admin,
        body: Body::Json,
        headers: &[],
        anonymous: false,
        uses_store: true,
    }
}

/// A document anyone may read, answered from settings alone.
const fn document(name: &'static str, path: &'static str) -> Route {
    Route {
        name,
        path,
        methods: &["GET"],
        listener: Listener::Public,
        body: Body::None,
        headers: &[],
        anonymous: false,
        uses_store: false,
    }
}

/// Ory Hydra v2's client admin API (`clients/admin.rs`).
const fn clients(path: &'static str, methods: &'static [&'static str]) -> Route {
    Route {
        name: "clients",
        path,
        methods,
        listener: Listener::Admin,
        body: Body::Json,
        headers: &[],
        anonymous: false,
        uses_store: true,
    }
}

/// Dynamic client registration (RFC 7591, 7592; `clients/register.rs`), as Hydra serves
/// it: anyone may call it, so the address's budget is charged first.
const fn register(path: &'static str, methods: &'static [&'static str]) -> Route {
    Route {
        name: "register",
        path,
        methods,
        listener: Listener::Public,
        body: Body::Json,
        headers: &["authorization"],
        anonymous: true,
        uses_store: true,
    }
}

pub const ROUTES: [Route; 15] = [
    // RFC 6749 section 3.2, with DPoP proofs (RFC 9449).
    Route {
        headers: &["authorization", "dpop"],
        ..client_endpoint("token", "/api/v1/oauth/token")
    },
    // RFC 7662.
    client_endpoint("introspect", "/api/v1/oauth/introspect"),
    // RFC 7009.
    client_endpoint("revoke", "/api/v1/oauth/revoke"),
    // RFC 8414, and the same document as OpenID Connect Discovery 1.0's.
    document("metadata", "/.well-known/oauth-authorization-server"),
    document("metadata", "/.well-known/openid-configuration"),
    // The public keys (RFC 7517), the discovery documents' `jwks_uri`.
    document("jwks", "/.well-known/jwks.json"),
    // OpenID Connect Core section 5.3: GET, or POST with the token in the form. Anyone may
    // call it with any token: the address's budget bounds what that costs.
    Route {
        name: "userinfo",
        path: "/api/v1/oauth/userinfo",
        methods: &["GET", "POST"],
        listener: Listener::Public,
        body: Body::Form,
        headers: &["authorization", "dpop"],
        anonymous: true,
        uses_store: true,
    },
    // RFC 6749 section 3.1: GET, or POST with a form (OpenID Connect's form post).
    Route {
        name: "authorize",
        path: "/api/v1/oauth/authorize",
        methods: &["GET", "POST"],
        listener: Listener::Public,
        body: Body::Form,
        headers: &[],
        anonymous: true,
        uses_store: true,
    },
    register("/oauth2/register", &["POST"]),
    register("/oauth2/register/{id}", &["GET", "PUT", "DELETE"]),
    admin("/admin/oauth2/auth/requests/{flow}", &["GET"]),
    admin("/admin/oauth2/auth/requests/{flow}/{decision}", &["PUT"]),
    clients("/admin/clients", &["GET", "POST"]),
    clients("/admin/clients/{id}", &["GET", "PUT", "PATCH", "DELETE"]),
    // Hydra's consent and login sessions (`flow/sessions.rs`): `{which}` is `consent` or
    // `login`.
    Route {
        name: "sessions",
        body: Body::None,
        ..admin("/admin/oauth2/auth/sessions/{which}", &["GET", "DELETE"])
    },
];

/// The absolute URL of the public route `name`, below the issuer.
pub fn endpoint_url(host: &impl Host, name: &str) -> Option<String> {
    let route = ROUTES
        .iter()
        .find(|r| r.name == name && r.listener == Listener::Public)?;
    Some(format!("{}{}", host.issuer(), route.path))
}

/// The values of the headers route `route` declares, by name: the ones sent.
pub fn named_headers(route: &str, values: Vec<Option<String>>) -> Vec<(&'static str, String)> {
    let declared = ROUTES
        .iter()
        .find(|r| r.name == route)
        .map_or(&[][..], |r| r.headers);
    declared
        .iter()
        .zip(values)
        .filter_map(|(&name, value)| Some((name, value?)))
        .collect()
}

/// Answers `req` to the route named `route`. The request is taken apart, not copied: a call
/// allocates from the arena, and every byte moved into a fresh instance's memory is a page
/// the host resets after it.
pub fn handle(host: &impl Host, route: &str, req: HttpRequest) -> Response {
    let path_param = |name: &str| req.path_param(name).map(str::to_owned);
    let (flow, decision) = (path_param("flow"), path_param("decision"));
    let id = path_param("id");
    let which = path_param("which");
    let HttpRequest {
        method,
        query,
        form,
        json,
        cookies,
        headers,
        client_ip,
        client_cert,
        ..
    } = req;
    let (mut authorization, mut dpop) = (None, None);
    for (name, value) in headers {
        match name {
            "authorization" => authorization = Some(value),
            "dpop" => dpop = Some(value),
            _ => {}
        }
    }
    match route {
        "token" | "introspect" | "revoke" => {
            let req = Request {
                params: form,
                authorization,
                client_ip,
                dpop,
                client_cert,
                certificate: Default::default(),
            };
            match route {
                "token" => crate::token(host, &req),
                "introspect" => crate::introspect(host, &req),
                _ => crate::revoke(host, &req),
            }
        }
        "metadata" => crate::metadata(host),
        "jwks" => crate::metadata::jwks(host),
        "userinfo" => {
            let form_token = form
                .iter()
                .find(|(name, _)| name == "access_token")
                .map(|(_, value)| value.as_str());
            let presented = crate::userinfo::Presented {
                authorization: authorization.as_deref(),
                form_token,
                dpop: dpop.as_deref(),
                method: &method,
                client_cert: client_cert.as_deref(),
            };
            crate::userinfo::userinfo(host, &presented)
        }
        "authorize" => {
            let params = match method.as_str() {
                "POST" => form,
                _ => query,
            };
            let req = BrowserRequest {
                method,
                params,
                cookies,
                body: String::new(),
                client_ip,
            };
            crate::authorize(host, &req)
        }
        "clients" => {
            crate::clients::admin::handle(host, &method, id.as_deref(), &query, json.as_deref())
        }
        "register" => crate::clients::register::handle(
            host,
            &method,
            id.as_deref(),
            authorization.as_deref(),
            json.as_deref(),
        ),
        "sessions" => crate::flow::sessions::handle(
            host,
            &method,
            which.as_deref().unwrap_or_default(),
            &query,
        ),
        "admin" => {
            let call = match decision {
                None => format!("{}-request", flow.unwrap_or_default()),
                Some(decision) => format!("{}-{decision}", flow.unwrap_or_default()),
            };
            let req = BrowserRequest {
                method,
                params: query,
                cookies,
                body: json.unwrap_or_default(),
                client_ip,
            };
            crate::admin(host, &call, &req)
        }
        other => {
            host.log(
                crate::Level::Warn,
                &format!("the host called route {other:?}, which this guest does not declare"),
            );
            crate::response::json(404, &serde_json::json!({"error": "not_found"}))
        }
    }
}
