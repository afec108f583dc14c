//! The routes a guest declares (`server.routes`), checked at load, and the match of a
//! request's listener, path and method against them. The host learns every path it serves
//! from the guest.

use crate::contract::server;
use anyhow::{bail, Context as _};
use hyper::header::HeaderName;
use hyper::Method;

pub use server::{Body, Listener as Side};

/// The most routes a guest may declare.
const MAX_ROUTES: usize = 64;
/// Headers a route may not ask for: the host's (the connection's, the body's framing) or
/// handed on in a field of their own (`cookie`).
const HOST_HEADERS: [&str; 8] = [
    "connection",
    "content-length",
    "cookie",
    "host",
    "keep-alive",
    "te",
    "transfer-encoding",
    "upgrade",
];

/// A route, checked.
#[derive(Debug)]
pub struct Route {
    /// What `handle` is called with, and the route's metrics label.
    pub name: String,
    pub path: String,
    segments: Vec<Segment>,
    /// The path up to its first parameter: a request's path starts with it, or it is not
    /// this route's (the whole path, for a route without parameters).
    literal_prefix: String,
    pub methods: Vec<Method>,
    pub side: Side,
    pub body: Body,
    /// Lowercase names of the headers the guest reads.
    pub headers: Vec<HeaderName>,
    pub anonymous: bool,
    pub uses_store: bool,
}

#[derive(Debug, PartialEq)]
enum Segment {
    Literal(String),
    Param(String),
}

/// What a request's listener, path and method find.
pub enum Found<'a> {
    /// The route, and its path parameters, decoded.
    Route(&'a Route, Vec<(String, String)>),
    /// Routes have the path, none the method: the first of them, and the methods they
    /// answer.
    Method(&'a Route, Vec<Method>),
    Nothing,
}

/// A guest's routes, in the order it declared them.
#[derive(Debug, Default)]
pub struct Routes(Vec<Route>);

impl Routes {
    /// The routes a guest declared, if each is well formed and no two overlap.
    pub fn declared(routes: Vec<server::Route>) -> anyhow::Result<Routes> {
        if routes.len() > MAX_ROUTES {
            bail!("it declares {} routes; at most {MAX_ROUTES}", routes.len());
        }
        let mut checked: Vec<Route> = Vec::with_capacity(routes.len());
        for route in routes {
            let name = super::imports::sanitize(&route.name);
            let path = super::imports::sanitize(&route.path);
            let route =
                Route::checked(route).with_context(|| format!("route {name:?} ({path:?})"))?;
            if let Some(other) = checked.iter().find(|r| r.overlaps(&route)) {
                bail!(
                    "routes {:?} and {:?} both answer {} {} on the {:?} listener",
                    other.name,
                    route.name,
                    route
                        .methods
                        .iter()
                        .find(|m| other.methods.contains(m))
                        .map_or("", Method::as_str),
                    route.path,
                    route.side
                );
            }
            checked.push(route);
        }
        Ok(Routes(checked))
    }

    /// The route `method` on `path` finds on the listener side `side`: the first that
    /// matches, in the order declared (`GET` routes answer `HEAD`).
    pub fn find(&self, side: Side, path: &str, method: &Method) -> Found<'_> {
        let mut first = None;
        let mut allowed: Vec<Method> = Vec::new();
        for route in self.0.iter().filter(|r| r.side == side) {
            let Some(params) = route.matches(path) else {
                continue;
            };
            if route.answers(method) {
                return Found::Route(route, params);
            }
            first.get_or_insert(route);
            allowed.extend(route.methods.iter().cloned());
        }
        match first {
            Some(route) => Found::Method(route, allowed),
            None => Found::Nothing,
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = &Route> {
        self.0.iter()
    }

    /// Each route name once, in the order declared.
    pub fn names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = Vec::new();
        for route in &self.0 {
            if !names.contains(&route.name.as_str()) {
                names.push(&route.name);
            }
        }
        names
    }
}

impl Route {
    fn checked(route: server::Route) -> anyhow::Result<Route> {
        let name_ok = (1..=32).contains(&route.name.len())
            && route
                .name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
        if !name_ok {
            bail!("a route name is 1 to 32 of a-z, 0-9, '_' and '-'");
        }
        let segments = segments(&route.path)?;
        if route.methods.is_empty() {
            bail!("it answers no method");
        }
        let mut methods = Vec::new();
        for method in route.methods.iter().map(|&m| http_method(m)) {
            if !methods.contains(&method) {
                methods.push(method);
            }
        }
        let mut headers = Vec::new();
        for header in &route.headers {
            let parsed = HeaderName::from_bytes(header.as_bytes())
                .ok()
                .filter(|h| h.as_str() == header);
            match parsed {
                Some(h) if HOST_HEADERS.contains(&h.as_str()) => {
                    bail!("header {h} is the host's, not the guest's to read")
                }
                Some(h) => headers.push(h),
                None => bail!("{header:?} is not a lowercase header name"),
            }
        }
        let literal_prefix = match route.path.find('{') {
            Some(at) => route.path[..at].to_owned(),
            None => route.path.clone(),
        };
        Ok(Route {
            name: route.name,
            path: route.path,
            segments,
            literal_prefix,
            methods,
            side: route.listener,
            body: route.body,
            headers,
            anonymous: route.anonymous,
            uses_store: route.uses_store,
        })
    }

    fn answers(&self, method: &Method) -> bool {
        self.methods.contains(method)
            || (method == Method::HEAD && self.methods.contains(&Method::GET))
    }

    /// Whether some path and method reach both routes.
    fn overlaps(&self, other: &Route) -> bool {
        self.side == other.side
            && self.segments.len() == other.segments.len()
            && self
                .segments
                .iter()
                .zip(&other.segments)
                .all(|pair| match pair {
                    (Segment::Literal(a), Segment::Literal(b)) => a == b,
                    _ => true,
                })
            && self.methods.iter().any(|m| other.methods.contains(m))
    }

    /// The path parameters, when `path` is this route's.
    fn matches(&self, path: &str) -> Option<Vec<(String, String)>> {
        // Most routes have no parameters, and most requests are for one of them: a
        // comparison decides (splitting every route's path cost 600 instructions each).
        if !path.starts_with(&self.literal_prefix) {
            return None;
        }
        if self.literal_prefix.len() == self.path.len() {
            return (path.len() == self.path.len()).then(Vec::new);
        }
        let parts = path.strip_prefix('/')?.split('/');
        let mut params = Vec::new();
        let mut count = 0;
        for (i, part) in parts.enumerate() {
            match self.segments.get(i)? {
                Segment::Literal(literal) if literal == part => {}
                Segment::Param(name) if !part.is_empty() => {
                    params.push((name.clone(), percent_decode(part)?));
                }
                _ => return None,
            }
            count = i + 1;
        }
        (count == self.segments.len()).then_some(params)
    }
}

/// The contract's method as HTTP's.
pub fn http_method(method: server::Method) -> Method {
    match method {
        server::Method::Get => Method::GET,
        server::Method::Head => Method::HEAD,
        server::Method::Post => Method::POST,
        server::Method::Put => Method::PUT,
        server::Method::Patch => Method::PATCH,
        server::Method::Delete => Method::DELETE,
    }
}

/// HTTP's method as the contract's, for a method some route answers.
pub fn contract_method(method: &Method) -> Option<server::Method> {
    Some(match *method {
        Method::GET => server::Method::Get,
        Method::HEAD => server::Method::Head,
        Method::POST => server::Method::Post,
        Method::PUT => server::Method::Put,
        Method::PATCH => server::Method::Patch,
        Method::DELETE => server::Method::Delete,
        _ => return None,
    })
}

/// `/a/{b}` as its segments; `/` is one empty literal.
fn segments(path: &str) -> anyhow::Result<Vec<Segment>> {
    let Some(rest) = path.strip_prefix('/') else {
        bail!("a path starts with '/'");
    };
    if path.len() > 256 {
        bail!("a path is at most 256 bytes");
    }
    let mut segments = Vec::new();
    for (i, part) in rest.split('/').enumerate() {
        let segment = match part.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
            Some(name) if is_param_name(name) => Segment::Param(name.to_owned()),
            Some(_) => bail!("a parameter's name is 1 to 32 of a-z, 0-9 and '_'"),
            None if part.is_empty() && !(i == 0 && rest.is_empty()) => {
                bail!("a path has no empty segment")
            }
            None if part.bytes().all(is_path_byte) => Segment::Literal(part.to_owned()),
            None => bail!("segment {part:?} is not made of unreserved characters"),
        };
        if segments.contains(&segment) && matches!(segment, Segment::Param(_)) {
            bail!("a parameter is named twice");
        }
        segments.push(segment);
    }
    Ok(segments)
}

fn is_param_name(name: &str) -> bool {
    (1..=32).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// RFC 3986's unreserved characters, and the sub-delimiters a path may hold literally.
fn is_path_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@".contains(&b)
}

/// A path segment percent-decoded, if it decodes to UTF-8.
fn percent_decode(segment: &str) -> Option<String> {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(name: &str, path: &str, methods: &[&str], listener: Side) -> server::Route {
        let method = |m: &&str| match *m {
            "GET" => server::Method::Get,
            "PUT" => server::Method::Put,
            "DELETE" => server::Method::Delete,
            _ => server::Method::Post,
        };
        server::Route {
            name: name.into(),
            path: path.into(),
            methods: methods.iter().map(method).collect(),
            listener,
            body: Body::None,
            headers: Vec::new(),
            anonymous: false,
            uses_store: true,
        }
    }

    fn found(routes: &Routes, side: Side, path: &str, method: Method) -> String {
        match routes.find(side, path, &method) {
            Found::Route(route, params) => format!("{} {params:?}", route.name),
            Found::Method(_, allowed) => format!("405 {allowed:?}"),
            Found::Nothing => "404".into(),
        }
    }

    #[test]
    fn a_request_finds_its_route_by_listener_path_and_method() {
        let routes = Routes::declared(vec![
            route("meta", "/.well-known/x", &["GET"], Side::Public),
            route("items", "/items/{id}", &["GET", "DELETE"], Side::Admin),
            route("items", "/items/{id}", &["PUT"], Side::Admin),
        ])
        .unwrap();
        assert_eq!(
            found(&routes, Side::Public, "/.well-known/x", Method::HEAD),
            "meta []"
        );
        assert_eq!(
            found(&routes, Side::Admin, "/.well-known/x", Method::GET),
            "404"
        );
        assert_eq!(
            found(&routes, Side::Admin, "/items/a%20b", Method::PUT),
            "items [(\"id\", \"a b\")]"
        );
        assert_eq!(
            found(&routes, Side::Admin, "/items/a", Method::POST),
            "405 [GET, DELETE, PUT]"
        );
        assert_eq!(found(&routes, Side::Admin, "/items/", Method::GET), "404");
        assert_eq!(
            found(&routes, Side::Admin, "/items/a/b", Method::GET),
            "404"
        );
        assert_eq!(
            found(&routes, Side::Admin, "/items/%FF", Method::GET),
            "404"
        );
        assert_eq!(routes.names(), ["meta", "items"]);
    }

    #[test]
    fn malformed_or_overlapping_routes_are_refused_with_the_route_named() {
        let refused =
            |routes: Vec<server::Route>| format!("{:#}", Routes::declared(routes).unwrap_err());
        let e = refused(vec![
            route("a", "/x/{id}", &["GET"], Side::Public),
            route("b", "/x/y", &["GET", "POST"], Side::Public),
        ]);
        assert!(e.contains("\"a\" and \"b\" both answer GET /x/y"), "{e}");
        assert!(Routes::declared(vec![
            route("a", "/x/{id}", &["GET"], Side::Public),
            route("b", "/x/y", &["GET"], Side::Admin),
        ])
        .is_ok());
        for (bad, why) in [
            (route("Token", "/t", &["POST"], Side::Public), "route name"),
            (route("t", "t", &["POST"], Side::Public), "starts with '/'"),
            (
                route("t", "/a//b", &["POST"], Side::Public),
                "empty segment",
            ),
            (
                route("t", "/a/{B}", &["POST"], Side::Public),
                "parameter's name",
            ),
            (route("t", "/a?b", &["POST"], Side::Public), "unreserved"),
            (route("t", "/a", &[], Side::Public), "no method"),
        ] {
            let e = refused(vec![bad]);
            assert!(e.contains(why), "{e}");
        }
        let mut cookie = route("t", "/a", &["GET"], Side::Public);
        cookie.headers = vec!["cookie".into()];
        assert!(refused(vec![cookie]).contains("host's"));
        let mut upper = route("t", "/a", &["GET"], Side::Public);
        upper.headers = vec!["DPoP".into()];
        assert!(refused(vec![upper]).contains("lowercase header"));
    }
}
