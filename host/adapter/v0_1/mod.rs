//! The adapter that keeps guests built against `tokenginx:oauth@0.1.0` to `0.1.4`
//! (`wit/0.1/oauth.wit`) running unchanged on a host of contract 0.2.
//!
//! A 0.1 guest declares no routes, counters or client rules: that contract fixed them, and
//! the host of its day kept them. This file is where they live now, and the only place the
//! host speaks that contract's words: the paths of its endpoints, its admin API's calls, the
//! defaults it promised for a client's registration, the events of `caller.outcome`, and
//! the key prefixes whose store operations fed the token counters. It sits beside the
//! host's source rather than in it so that `host/src` names no OAuth path, grant or key: a
//! 0.2 guest brings all of those itself. Here each old export becomes a route; in
//! `imports.rs` each old import calls the 0.2 one.

use crate::contract::server::{self, Method};
use crate::runtime::imports::InstanceState;
use crate::runtime::routes::{Body, Route, Side};
use wasmtime::component::{HasSelf, InstancePre, Linker};
use wasmtime::Store;

pub(super) mod bindings {
    wasmtime::component::bindgen!({
        path: "../wit/0.1",
        world: "base",
        imports: {
            "tokenginx:oauth/store": async | trappable,
            "tokenginx:oauth/rate-limit": async | trappable,
            "tokenginx:oauth/random.bytes": trappable,
            "tokenginx:oauth/seal.seal": trappable,
        },
        exports: { default: async },
        trappable_error_type: {
            "tokenginx:oauth/store.store-error" => crate::store::StoreError,
        },
    });

    /// The exports added in 0.1.2, each looked up on its own: a 0.1.0 guest has neither.
    pub mod optional {
        wasmtime::component::bindgen!({
            path: "../wit/0.1",
            inline: "
                package tokenginx:host;
                world optional {
                    export tokenginx:oauth/capabilities@0.1.4;
                    export tokenginx:oauth/browser@0.1.4;
                }
            ",
            exports: { default: async },
        });
    }
}

mod imports;

use bindings::exports::tokenginx::oauth::handler;
use bindings::optional::exports::tokenginx::oauth::{browser, capabilities};

/// The newest contract of the 0.1 line.
pub const VERSION: &str = "0.1.4";
/// The interfaces a 0.1 guest may import.
pub const INTERFACES: [&str; 8] = [
    "store",
    "rate-limit",
    "clock",
    "random",
    "log",
    "settings",
    "caller",
    "seal",
];

/// The 0.1 exports' routes: the name (the endpoint's name in `capabilities.endpoints`), the
/// path, the methods and the body. The token, introspection and revocation endpoints read
/// `Authorization`; the authorization endpoint is anonymous; the admin API is on the admin
/// listener; all but the metadata wait on the store.
const ROUTES: [(&str, &str, &[Method], Body); 7] = [
    ("token", "/api/v1/oauth/token", &[POST], Body::Form),
    (
        "introspect",
        "/api/v1/oauth/introspect",
        &[POST],
        Body::Form,
    ),
    ("revoke", "/api/v1/oauth/revoke", &[POST], Body::Form),
    (
        "metadata",
        "/.well-known/oauth-authorization-server",
        &[GET],
        Body::None,
    ),
    (
        "authorize",
        "/api/v1/oauth/authorize",
        &[GET, POST],
        Body::Form,
    ),
    // Ory Hydra v2's login and consent admin API: `{flow}` is `login` or `consent`, and
    // the call `browser.admin` gets is `<flow>-request` or `<flow>-<decision>`.
    (
        "admin",
        "/admin/oauth2/auth/requests/{flow}",
        &[GET],
        Body::Json,
    ),
    (
        "admin",
        "/admin/oauth2/auth/requests/{flow}/{decision}",
        &[PUT],
        Body::Json,
    ),
];
const GET: Method = Method::Get;
const POST: Method = Method::Post;
const PUT: Method = Method::Put;

/// A row of [`ROUTES`] as the route a 0.2 guest would declare.
fn route(&(name, path, methods, body): &(&str, &str, &[Method], Body)) -> server::Route {
    server::Route {
        name: name.into(),
        path: path.into(),
        methods: methods.to_vec(),
        listener: if name == "admin" {
            Side::Admin
        } else {
            Side::Public
        },
        body,
        headers: match matches!(name, "token" | "introspect" | "revoke") {
            true => vec!["authorization".into()],
            false => Vec::new(),
        },
        anonymous: name == "authorize",
        uses_store: name != "metadata",
    }
}

/// The counters the 0.1 host kept for its guests, by key prefix and `caller.outcome`.
pub(super) const TOKEN_CREATED: &str = "tokenginx_token_created_total";
pub(super) const TOKEN_RETRIEVED: &str = "tokenginx_token_retrieved_total";
pub(super) const TOKEN_REVOKED: &str = "tokenginx_token_revoked_total";
/// `caller.outcome`'s events: the counter each feeds, and the statuses it takes (none:
/// the status is ignored).
pub(super) const OUTCOMES: [(&str, &str, &str, &[&str]); 4] = [
    (
        "authorization-started",
        "tokenginx_authorizations_started_total",
        "Authorization code flows begun at the authorization endpoint.",
        &[],
    ),
    (
        "authorization-ended",
        "tokenginx_authorizations_ended_total",
        "Authorization code flows ended, by result (code, access_denied, error).",
        &["code", "access_denied", "error"],
    ),
    (
        "code-redeemed",
        "tokenginx_code_redemptions_total",
        "Authorization code redemptions, by result (ok, invalid_grant, replayed, error).",
        &["ok", "invalid_grant", "replayed", "error"],
    ),
    (
        "refresh",
        "tokenginx_refreshes_total",
        "Refresh token grants, by result (ok; invalid_grant; reused: a rotated refresh token \
         came back and its grant was ended; replayed: it came back within the reuse grace \
         and got the answer it missed).",
        &["ok", "invalid_grant", "reused", "replayed"],
    ),
];

/// Links the 0.1 imports beside the 0.2 ones: a 0.1 guest imports them by its version.
pub fn add_to_linker(linker: &mut Linker<InstanceState>) -> wasmtime::Result<()> {
    bindings::Base::add_to_linker::<_, HasSelf<_>>(linker, |s| s)
}

/// A linked 0.1 guest's exports.
pub struct Guest {
    pre: bindings::BasePre<InstanceState>,
    capabilities: Option<capabilities::GuestIndices>,
    browser: Option<browser::GuestIndices>,
}

/// What a 0.1 guest says of itself.
pub struct Described {
    pub info: server::GuestInfo,
    /// The endpoints it serves, by name.
    pub endpoints: Vec<String>,
    /// The grant types it serves, for the check of the operator's clients.
    pub grant_types: Vec<String>,
}

impl Guest {
    /// The exports of `pre`; `has` says whether the component exports an interface.
    pub fn new(
        pre: InstancePre<InstanceState>,
        has: impl Fn(&str) -> bool,
    ) -> anyhow::Result<Guest> {
        let expected = |interface: &str, e: wasmtime::Error| {
            anyhow::anyhow!(
                "it does not export tokenginx:oauth/{interface} as this host expects: {e:#}"
            )
        };
        let capabilities = has("capabilities")
            .then(|| capabilities::GuestIndices::new(&pre))
            .transpose()
            .map_err(|e| expected("capabilities", e))?;
        let browser = has("browser")
            .then(|| browser::GuestIndices::new(&pre))
            .transpose()
            .map_err(|e| expected("browser", e))?;
        let pre = bindings::BasePre::new(pre).map_err(|e| expected("handler", e))?;
        Ok(Guest {
            pre,
            capabilities,
            browser,
        })
    }

    /// Asks the guest who it is and what it serves (without `capabilities`, a 0.1.0 or
    /// 0.1.1 guest: the `client_credentials` grant on the four `handler` endpoints).
    pub async fn describe(&self, store: &mut Store<InstanceState>) -> wasmtime::Result<Described> {
        let instance = self.instantiate(store).await?;
        let base = bindings::Base::new(&mut *store, &instance)?;
        let info = base
            .tokenginx_oauth_handler()
            .call_info(&mut *store)
            .await?;
        let (grant_types, endpoints) = match &self.capabilities {
            Some(indices) => {
                let described = indices
                    .load(&mut *store, &instance)?
                    .call_describe(&mut *store)
                    .await?;
                (described.grant_types, described.endpoints)
            }
            None => (
                vec!["client_credentials".to_owned()],
                ["token", "introspect", "revoke", "metadata"]
                    .map(String::from)
                    .to_vec(),
            ),
        };
        Ok(Described {
            info: server::GuestInfo {
                name: info.name,
                version: info.version,
            },
            endpoints,
            grant_types,
        })
    }

    /// The routes of the endpoints a 0.1 guest serves, as a 0.2 guest would declare them,
    /// and the counters the 0.1 host kept for it.
    pub fn routes(
        &self,
        endpoints: &[String],
    ) -> anyhow::Result<(Vec<server::Route>, Vec<server::Counter>)> {
        let mut routes: Vec<server::Route> = Vec::new();
        for name in endpoints {
            let mut known = ROUTES.iter().filter(|r| r.0 == name).peekable();
            if known.peek().is_none() {
                anyhow::bail!(
                    "it serves the endpoint {:?}, which this host does not route (it routes: {})",
                    crate::runtime::imports::sanitize(name),
                    "token, introspect, revoke, metadata, authorize, admin"
                );
            }
            if matches!(name.as_str(), "authorize" | "admin") && self.browser.is_none() {
                anyhow::bail!(
                    "it lists the endpoints authorize or admin without exporting \
                     tokenginx:oauth/browser"
                );
            }
            if !routes.iter().any(|r| r.name == *name) {
                routes.extend(known.map(route));
            }
        }
        Ok((routes, counters()))
    }

    /// A new instance of the guest in `store`, for [`Guest::handle`].
    pub async fn instantiate(
        &self,
        store: &mut Store<InstanceState>,
    ) -> wasmtime::Result<wasmtime::component::Instance> {
        self.pre.instance_pre().instantiate_async(store).await
    }

    /// Answers `request` to `route` through the old export it stands for, in `instance`.
    pub async fn handle(
        &self,
        store: &mut Store<InstanceState>,
        instance: &wasmtime::component::Instance,
        route: &Route,
        request: &server::Request,
    ) -> wasmtime::Result<server::Response> {
        let instance = *instance;
        let browser_request =
            |params: &[(String, String)], body: String, cookies: bool| browser::Request {
                method: crate::runtime::http_method(request.method).to_string(),
                params: params.to_vec(),
                cookies: if cookies {
                    request.cookies.clone()
                } else {
                    Vec::new()
                },
                body,
                client_ip: request.client_ip.clone(),
            };
        let response = match route.name.as_str() {
            "authorize" | "admin" => {
                let Some(indices) = &self.browser else {
                    wasmtime::bail!("the guest has no browser export");
                };
                let browser = indices.load(&mut *store, &instance)?;
                let response = if route.name == "authorize" {
                    let params = match request.method {
                        server::Method::Post => &request.form,
                        _ => &request.query,
                    };
                    let req = browser_request(params, String::new(), true);
                    browser.call_authorize(&mut *store, &req).await?
                } else {
                    let Some(call) = admin_call(&request.path_params) else {
                        return Ok(not_found());
                    };
                    let body = request.json.clone().unwrap_or_default();
                    let req = browser_request(&request.query, body, false);
                    browser.call_admin(&mut *store, &call, &req).await?
                };
                (response.status, response.headers, response.body)
            }
            name => {
                let handler = bindings::Base::new(&mut *store, &instance)?;
                let handler = handler.tokenginx_oauth_handler();
                let req = handler::Request {
                    params: request.form.clone(),
                    authorization: header(route, request, "authorization"),
                    client_ip: request.client_ip.clone(),
                };
                let response = match name {
                    "token" => handler.call_token(&mut *store, &req).await?,
                    "introspect" => handler.call_introspect(&mut *store, &req).await?,
                    "revoke" => handler.call_revoke(&mut *store, &req).await?,
                    _ => handler.call_metadata(&mut *store).await?,
                };
                (response.status, response.headers, response.body)
            }
        };
        Ok(server::Response {
            status: response.0,
            headers: response.1,
            body: response.2,
        })
    }
}

/// Whether the guest can serve every configured client: the rules the 0.1 host applied to
/// a registration (now `tokenginx_syntax::registration`'s), and the grant types the guest
/// serves.
pub fn check_clients(
    grant_types: &[String],
    oauth: &crate::config::OAuthSettings,
) -> anyhow::Result<()> {
    let served: Vec<&str> = grant_types.iter().map(String::as_str).collect();
    for client in oauth.clients_in_order() {
        let configured = &client.configured;
        let grants = client_grant_types(&configured.grant_types);
        let registration = tokenginx_syntax::registration::Registration {
            token_endpoint_auth_method: configured.token_endpoint_auth_method.as_deref(),
            has_secret: configured.has_secret,
            secret_chars: configured.secret_length,
            has_jwks: false,
            certificate_name: client
                .mtls
                .as_ref()
                .and_then(|m| m.certificate_name.as_ref())
                .map(crate::config::certificate_name_key),
            scopes: &configured.scopes,
            default_scopes: &configured.default_scopes,
            grant_types: &grants,
            redirect_uris: &configured.redirect_uris,
            access_token_ttl: configured.access_token_ttl,
        };
        let methods = tokenginx_syntax::registration::AUTH_METHODS;
        if let Err(problem) =
            tokenginx_syntax::registration::check(&registration, &served, &methods)
        {
            return Err(crate::runtime::refused_client(
                client,
                &problem.key,
                &problem.message,
            ));
        }
    }
    Ok(())
}

/// A client's grant types as the 0.1 contract gave them: `client_credentials` when the
/// operator named none.
pub(super) fn client_grant_types(configured: &Option<Vec<String>>) -> Vec<String> {
    match configured {
        Some(grants) => grants.clone(),
        None => vec!["client_credentials".to_owned()],
    }
}

/// `browser.admin`'s call for the path parameters of an admin route.
fn admin_call(params: &[(String, String)]) -> Option<String> {
    let param = |name: &str| {
        params
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    };
    let flow = param("flow").filter(|f| matches!(*f, "login" | "consent"))?;
    match param("decision") {
        None => Some(format!("{flow}-request")),
        Some(decision @ ("accept" | "reject")) => Some(format!("{flow}-{decision}")),
        Some(_) => None,
    }
}

fn header(route: &Route, request: &server::Request, name: &str) -> Option<String> {
    let at = route.headers.iter().position(|h| h == name)?;
    request.headers.get(at)?.clone()
}

/// The host's answer to a path no route has.
fn not_found() -> server::Response {
    server::Response {
        status: 404,
        headers: vec![("content-type".into(), "application/json".into())],
        body: r#"{"error":"not_found","error_description":"no such route"}"#.into(),
    }
}

/// The counters the 0.1 host kept: the token counters and those of `caller.outcome`.
fn counters() -> Vec<server::Counter> {
    let plain = |name: &str, help: &str| server::Counter {
        name: name.into(),
        help: help.into(),
        labels: Vec::new(),
    };
    let mut counters = vec![
        plain(TOKEN_CREATED, "Tokens written to the store."),
        plain(TOKEN_RETRIEVED, "Token records read back from the store."),
        plain(
            TOKEN_REVOKED,
            "Token records deleted from the store by revocation.",
        ),
    ];
    counters.extend(
        OUTCOMES
            .iter()
            .map(|(_, name, help, results)| server::Counter {
                name: (*name).into(),
                help: (*help).into(),
                labels: match results.is_empty() {
                    true => Vec::new(),
                    false => vec![server::Label {
                        name: "result".into(),
                        values: results.iter().map(|r| r.to_string()).collect(),
                    }],
                },
            }),
    );
    counters
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_admin_path_names_its_call_or_none() {
        let params = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect()
        };
        assert_eq!(
            admin_call(&params(&[("flow", "login")])).as_deref(),
            Some("login-request")
        );
        assert_eq!(
            admin_call(&params(&[("flow", "consent"), ("decision", "reject")])).as_deref(),
            Some("consent-reject")
        );
        assert_eq!(admin_call(&params(&[("flow", "logout")])), None);
        assert_eq!(
            admin_call(&params(&[("flow", "login"), ("decision", "maybe")])),
            None
        );
    }

    #[test]
    fn the_old_routes_and_counters_pass_the_hosts_checks() {
        let routes = ROUTES.iter().map(route).collect();
        crate::runtime::routes::Routes::declared(routes).expect("the 0.1 routes are valid");
        let metrics = crate::metrics::Metrics::new();
        crate::runtime::counters::Counters::declared(counters(), &metrics)
            .expect("the 0.1 counters are valid");
    }
}
