//! Who a request comes from: its address (the peer's, or the client's behind a trusted
//! proxy), that address's budget on the endpoints that take no credentials, and a `Host`
//! that is an authority.

use super::responses::{oauth_error, Body};
use super::routes::{App, Peer};
use hyper::header::{HeaderName, HeaderValue};
use hyper::{Request, Response, StatusCode};
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// Whether `host` is `host[:port]` as RFC 3986 writes an authority without user info: a
/// registered name, an IPv4 address or a bracketed IPv6 one, and digits for the port.
pub(super) fn valid_host(host: &[u8]) -> bool {
    let Ok(host) = std::str::from_utf8(host) else {
        return false;
    };
    let (name, port) = match host.rsplit_once(':') {
        Some((name, port)) if !name.starts_with('[') || name.ends_with(']') => (name, Some(port)),
        _ => (host, None),
    };
    let port_ok = port.is_none_or(|p| p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()));
    let name_ok = match name.strip_prefix('[').and_then(|n| n.strip_suffix(']')) {
        Some(v6) => v6.parse::<std::net::Ipv6Addr>().is_ok(),
        None => {
            !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=%".contains(&b))
        }
    };
    port_ok && name_ok
}

/// The client's address: the connection's peer, or where a trusted proxy
/// (`server.trusted_proxies`) says the request came from: the last address in
/// `X-Forwarded-For` that is not itself a trusted proxy, as each proxy appends the address it
/// received the request from.
pub(super) fn address<B>(app: &App, peer: &Peer, req: &Request<B>) -> IpAddr {
    let direct = peer.addr.ip().to_canonical();
    let trusted = |ip: IpAddr| app.trusted_proxies.iter().any(|c| c.contains(ip));
    let mut headers = req.headers().get_all(X_FORWARDED_FOR).iter().peekable();
    if !trusted(direct) {
        if headers.peek().is_some() {
            warn_untrusted_forwarding(direct);
        }
        return direct;
    }
    // From the last hop back: the nearest proxy appended last.
    let hops = headers
        .rev()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.rsplit(','));
    let mut client = direct;
    for hop in hops {
        match forwarded_address(hop.trim()) {
            Some(ip) => {
                client = ip.to_canonical();
                if !trusted(client) {
                    break;
                }
            }
            // A hop no trusted proxy wrote: stop at the last address one did.
            None => break,
        }
    }
    client
}

/// An address as proxies write it in `X-Forwarded-For`: `a.b.c.d`, an IPv6 address, or
/// either with a port (`a.b.c.d:p`, `[v6]:p`), as some load balancers add.
fn forwarded_address(hop: &str) -> Option<IpAddr> {
    hop.parse()
        .ok()
        .or_else(|| hop.parse::<SocketAddr>().ok().map(|a| a.ip()))
}

/// Says once, in the log, that `X-Forwarded-For` came from a peer not in
/// `server.trusted_proxies`: behind a proxy left out of it, every client shares the proxy's
/// budget.
fn warn_untrusted_forwarding(peer: IpAddr) {
    static WARNED: std::sync::Once = std::sync::Once::new();
    WARNED.call_once(|| {
        tracing::warn!(
            %peer,
            "X-Forwarded-For ignored: the peer is not in server.trusted_proxies, so the client \
             address is the peer's (behind a proxy, list it there, or every client shares its \
             address budget); said once"
        )
    });
}

/// The 429 for a request over its address's budget (`server.address_rate_limit`), if it is.
pub(super) fn over_budget(app: &App, route: &str, peer: &Peer) -> Option<Response<Body>> {
    let wait = app
        .address_budget
        .as_ref()?
        .charge(peer.addr.ip(), Instant::now())?;
    app.services
        .metrics
        .address_rate_limited
        .with_label_values(&[route])
        .inc();
    let mut response = oauth_error(
        StatusCode::TOO_MANY_REQUESTS,
        "temporarily_unavailable",
        "too many requests from this address; try again later",
    );
    let seconds = wait.as_millis().div_ceil(1000).max(1);
    if let Ok(value) = HeaderValue::from_str(&seconds.to_string()) {
        response
            .headers_mut()
            .insert(hyper::header::RETRY_AFTER, value);
    }
    Some(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_addresses_may_carry_a_port() {
        for (hop, ip) in [
            ("198.51.100.7", "198.51.100.7"),
            ("198.51.100.7:4711", "198.51.100.7"),
            ("2001:db8::1", "2001:db8::1"),
            ("[2001:db8::1]:4711", "2001:db8::1"),
        ] {
            assert_eq!(forwarded_address(hop), Some(ip.parse().unwrap()), "{hop}");
        }
        assert_eq!(forwarded_address("unknown"), None);
        assert_eq!(forwarded_address("_hidden"), None);
    }

    #[test]
    fn a_host_is_an_authority() {
        for good in [
            "issuer.test",
            "127.0.0.1:8080",
            "[::1]:8080",
            "[::1]",
            "a-b.example:1",
        ] {
            assert!(valid_host(good.as_bytes()), "{good}");
        }
        for bad in [
            "a b",
            "",
            "[::1",
            "host:80a",
            "host:123456",
            "a/b",
            "a@b",
            "[zz]:1",
        ] {
            assert!(!valid_host(bad.as_bytes()), "{bad}");
        }
    }
}
