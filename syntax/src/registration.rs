//! The rules a client registration must follow (RFC 6749 section 2, RFC 9700 section 2.1):
//! how it authenticates and with what secret, where it may be sent back, which scopes and
//! grant types it has, how long its tokens live. The default guest holds the operator's
//! clients to them (`server.check-client`); the host's adapter holds the clients of a 0.1
//! guest to them, as the 0.1 host did. One definition for both.

use std::net::IpAddr;

/// How a client authenticates when its registration names no method.
pub const DEFAULT_AUTH_METHOD: &str = "client_secret_basic";
/// The token endpoint's client authentication methods of RFC 6749 (`none`: a public
/// client). A server may serve more (RFC 7523's, below).
pub const AUTH_METHODS: [&str; 3] = ["client_secret_basic", "client_secret_post", "none"];
/// RFC 7523 (OpenID Connect Core section 9): a JWT signed with the client's secret (HS256),
/// or with a key of its registered `jwks`.
pub const CLIENT_SECRET_JWT: &str = "client_secret_jwt";
pub const PRIVATE_KEY_JWT: &str = "private_key_jwt";
/// RFC 8705: mutual TLS with a certificate a CA issued, named by the registration
/// (section 2.1), or with one the client registered in its `jwks` (section 2.2).
pub const TLS_CLIENT_AUTH: &str = "tls_client_auth";
pub const SELF_SIGNED_TLS_CLIENT_AUTH: &str = "self_signed_tls_client_auth";
/// The registration keys that name the certificate of a `tls_client_auth` client (RFC 8705
/// section 2.1.2): it sets exactly one.
pub const CERTIFICATE_NAMES: [&str; 5] = [
    "tls_client_auth_subject_dn",
    "tls_client_auth_san_dns",
    "tls_client_auth_san_uri",
    "tls_client_auth_san_ip",
    "tls_client_auth_san_email",
];
/// JWK members that only a private or secret key has (RFC 7518 section 6): a client's
/// `jwks`, or a DPoP proof's `jwk`, with one of them is refused.
pub const PRIVATE_JWK_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];
/// The shortest `client_secret` taken.
pub const MIN_SECRET_CHARS: u32 = 16;
/// The shortest secret of `client_secret_jwt`: an HS256 key of 256 bits at least (RFC 7518
/// section 3.2).
pub const MIN_MAC_SECRET_CHARS: u32 = 32;
/// The longest access token lifetime, in seconds.
pub const MAX_ACCESS_TOKEN_TTL: u64 = 24 * 3600;

/// A client registration as the operator configured it.
#[derive(Clone, Copy, Debug)]
pub struct Registration<'a> {
    /// None: [`DEFAULT_AUTH_METHOD`].
    pub token_endpoint_auth_method: Option<&'a str>,
    /// A `client_secret` or `client_secret_sha256` is configured.
    pub has_secret: bool,
    /// The characters of `client_secret`, when it was given as such.
    pub secret_chars: Option<u32>,
    /// It registered public keys (`jwks`).
    pub has_jwks: bool,
    /// Which of [`CERTIFICATE_NAMES`] it set, if one.
    pub certificate_name: Option<&'a str>,
    pub scopes: &'a [String],
    pub default_scopes: &'a [String],
    /// As it applies (the default filled in).
    pub grant_types: &'a [String],
    pub redirect_uris: &'a [String],
    /// Seconds.
    pub access_token_ttl: u64,
}

/// What is wrong with a registration: the key at fault, below the client
/// (`redirect_uris[1]`), and why.
#[derive(Clone, Debug, PartialEq)]
pub struct Problem {
    pub key: String,
    pub message: String,
}

fn problem<T>(key: impl Into<String>, message: impl Into<String>) -> Result<T, Problem> {
    Err(Problem {
        key: key.into(),
        message: message.into(),
    })
}

/// Whether `client` follows the rules, for a server that serves the grant types `served`
/// and the authentication methods `methods`.
pub fn check(client: &Registration, served: &[&str], methods: &[&str]) -> Result<(), Problem> {
    let method = client
        .token_endpoint_auth_method
        .unwrap_or(DEFAULT_AUTH_METHOD);
    if !methods.contains(&method) {
        return problem(
            "token_endpoint_auth_method",
            format!("{method:?} is not one of {}", methods.join(", ")),
        );
    }
    // It proves itself with a key, not a secret.
    let keyed = [
        PRIVATE_KEY_JWT,
        TLS_CLIENT_AUTH,
        SELF_SIGNED_TLS_CLIENT_AUTH,
    ]
    .contains(&method);
    if let Some(name) = client
        .certificate_name
        .filter(|_| method != TLS_CLIENT_AUTH)
    {
        return problem(
            name,
            format!(
                "names the certificate of a {TLS_CLIENT_AUTH} client, and this one is {method}"
            ),
        );
    }
    match (method, client.has_secret, client.secret_chars) {
        ("none", true, _) => {
            return problem(
                "client_secret",
                "a public client (token_endpoint_auth_method: none) has no secret",
            )
        }
        (PRIVATE_KEY_JWT, true, _) => {
            return problem(
                "client_secret",
                "a private_key_jwt client authenticates with its keys (jwks): it has no secret",
            )
        }
        (TLS_CLIENT_AUTH | SELF_SIGNED_TLS_CLIENT_AUTH, true, _) => {
            return problem(
                "client_secret",
                format!("a {method} client authenticates with its TLS certificate: it has no secret"),
            )
        }
        (TLS_CLIENT_AUTH, false, _) if client.certificate_name.is_none() => {
            return problem(
                CERTIFICATE_NAMES[0],
                format!(
                    "{TLS_CLIENT_AUTH} needs what names the client's certificate: set one of {}",
                    CERTIFICATE_NAMES.join(", ")
                ),
            )
        }
        (SELF_SIGNED_TLS_CLIENT_AUTH, false, _) if !client.has_jwks => {
            return problem(
                "jwks",
                "self_signed_tls_client_auth needs the client's certificates: set jwks, each key with its x5c",
            )
        }
        (PRIVATE_KEY_JWT, false, _) if !client.has_jwks => {
            return problem(
                "jwks",
                "private_key_jwt needs the client's public keys: set jwks (inline: a jwks_uri is not fetched)",
            )
        }
        (CLIENT_SECRET_JWT, true, None) => {
            return problem(
                "client_secret",
                "client_secret_jwt signs with the secret itself: give client_secret, not its \
                 SHA-256",
            )
        }
        (CLIENT_SECRET_JWT, true, Some(chars)) if chars < MIN_MAC_SECRET_CHARS => {
            return problem(
                "client_secret",
                format!("must be at least {MIN_MAC_SECRET_CHARS} characters for client_secret_jwt (an HS256 key)"),
            )
        }
        (_, false, _) if method != "none" && !keyed => {
            return problem(
                "client_secret",
                "set one of client_secret and client_secret_sha256 (or \
                 token_endpoint_auth_method: none for a public client)",
            )
        }
        (_, true, Some(chars)) if chars < MIN_SECRET_CHARS => {
            return problem(
                "client_secret",
                format!("must be at least {MIN_SECRET_CHARS} characters (is its variable set?)"),
            )
        }
        _ => {}
    }
    for (i, uri) in client.redirect_uris.iter().enumerate() {
        check_redirect_uri(uri).or_else(|m| problem(format!("redirect_uris[{i}]"), m))?;
    }
    if let Some(extra) = client
        .default_scopes
        .iter()
        .find(|s| !client.scopes.contains(s))
    {
        return problem("default_scopes", format!("{extra:?} is not in scopes"));
    }
    if let Some(grant) = client
        .grant_types
        .iter()
        .find(|g| !served.contains(&g.as_str()))
    {
        return problem(
            "grant_types",
            format!(
                "{grant:?} is not a grant type this guest serves (it serves: {})",
                served.join(", ")
            ),
        );
    }
    if !(1..=MAX_ACCESS_TOKEN_TTL).contains(&client.access_token_ttl) {
        return problem("access_token_ttl", "must be between 1s and 24h");
    }
    Ok(())
}

/// A registered redirect URI: absolute, https or http on a loopback address (a native app,
/// RFC 8252 section 7.3), without a fragment.
pub fn check_redirect_uri(uri: &str) -> Result<(), String> {
    if uri.contains('#') {
        return Err(format!("{uri:?} has a fragment"));
    }
    let not_absolute = || format!("{uri:?} is not an absolute URI");
    if uri.bytes().any(|b| !b.is_ascii_graphic()) {
        return Err(not_absolute());
    }
    let (scheme, rest) = uri.split_once("://").ok_or_else(not_absolute)?;
    let scheme_ok = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b));
    let authority = rest.split(['/', '?']).next().unwrap_or("");
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = match host_port.strip_prefix('[') {
        Some(v6) => v6
            .split_once(']')
            .map(|(h, _)| h)
            .ok_or_else(not_absolute)?,
        None => host_port.split(':').next().unwrap_or(""),
    };
    if !scheme_ok || host.is_empty() {
        return Err(not_absolute());
    }
    let loopback = host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
    match scheme.to_ascii_lowercase().as_str() {
        "https" => Ok(()),
        "http" if loopback => Ok(()),
        _ => Err(format!(
            "{uri:?} must be https, or http on a loopback address (127.0.0.1, [::1])"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    fn key(
        method: Option<&str>,
        secret: Option<u32>,
        redirect: &str,
        grants: &[&str],
    ) -> Result<(), String> {
        let (scopes, defaults) = (strings(&["read"]), strings(&["read"]));
        let (grants, redirects) = (strings(grants), strings(&[redirect]));
        let client = Registration {
            token_endpoint_auth_method: method,
            has_secret: secret.is_some(),
            secret_chars: secret,
            has_jwks: false,
            certificate_name: None,
            scopes: &scopes,
            default_scopes: &defaults,
            grant_types: &grants,
            redirect_uris: &redirects,
            access_token_ttl: 3600,
        };
        check(
            &client,
            &["client_credentials", "authorization_code"],
            &AUTH_METHODS,
        )
        .map_err(|p| p.key)
    }

    #[test]
    fn a_registration_names_the_key_it_breaks() {
        let https = "https://app.example/cb";
        assert_eq!(key(None, Some(20), https, &["client_credentials"]), Ok(()));
        assert_eq!(
            key(Some("none"), None, https, &["authorization_code"]),
            Ok(())
        );
        let wrong = [
            (
                key(Some("private_key_jwt"), Some(20), https, &[]),
                "token_endpoint_auth_method",
            ),
            (key(Some("none"), Some(20), https, &[]), "client_secret"),
            (key(None, None, https, &[]), "client_secret"),
            (key(None, Some(8), https, &[]), "client_secret"),
            (
                key(None, Some(20), "http://app.example/cb", &[]),
                "redirect_uris[0]",
            ),
            (key(None, Some(20), https, &["password"]), "grant_types"),
        ];
        for (found, expected) in wrong {
            assert_eq!(found, Err(expected.to_owned()));
        }
    }

    #[test]
    fn redirect_uris_are_https_or_loopback_http_without_fragment() {
        for good in [
            "https://app.example/cb",
            "https://app.example:8443/cb?x=1",
            "http://127.0.0.1:5555/cb",
            "http://[::1]/cb",
            "HTTPS://app.example",
        ] {
            assert_eq!(check_redirect_uri(good), Ok(()), "{good}");
        }
        for (bad, why) in [
            ("http://app.example/cb", "loopback"),
            ("https://app.example/cb#x", "fragment"),
            ("/cb", "absolute"),
            ("https:///cb", "absolute"),
            ("https://a b/cb", "absolute"),
            ("com.example.app:/cb", "absolute"),
        ] {
            let e = check_redirect_uri(bad).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    /// The key a client of `method` that authenticates with key material breaks, if any.
    fn keyed(
        method: &str,
        secret: Option<u32>,
        has_secret: bool,
        has_jwks: bool,
        certificate_name: Option<&str>,
    ) -> Result<(), String> {
        let (scopes, none) = (strings(&["read"]), Vec::new());
        let methods = [
            AUTH_METHODS.as_slice(),
            &[CLIENT_SECRET_JWT, PRIVATE_KEY_JWT],
            &[TLS_CLIENT_AUTH, SELF_SIGNED_TLS_CLIENT_AUTH],
        ]
        .concat();
        let client = Registration {
            token_endpoint_auth_method: Some(method),
            has_secret,
            secret_chars: secret,
            has_jwks,
            certificate_name,
            scopes: &scopes,
            default_scopes: &none,
            grant_types: &none,
            redirect_uris: &none,
            access_token_ttl: 60,
        };
        check(&client, &[], &methods).map_err(|p| p.key)
    }

    #[test]
    fn jwt_methods_need_their_key_material() {
        let key = |method: &str, secret: Option<u32>, has_secret: bool, has_jwks: bool| {
            keyed(method, secret, has_secret, has_jwks, None)
        };
        assert_eq!(key(PRIVATE_KEY_JWT, None, false, true), Ok(()));
        assert_eq!(key(PRIVATE_KEY_JWT, None, false, false), Err("jwks".into()));
        assert_eq!(
            key(PRIVATE_KEY_JWT, Some(40), true, true),
            Err("client_secret".into())
        );
        assert_eq!(key(CLIENT_SECRET_JWT, Some(40), true, false), Ok(()));
        assert_eq!(
            key(CLIENT_SECRET_JWT, Some(20), true, false),
            Err("client_secret".into())
        );
        assert_eq!(
            key(CLIENT_SECRET_JWT, None, true, false),
            Err("client_secret".into()),
            "a digest"
        );
        assert_eq!(
            key(CLIENT_SECRET_JWT, None, false, false),
            Err("client_secret".into())
        );
    }

    #[test]
    fn mutual_tls_methods_need_a_certificate_name_or_registered_certificates() {
        let key = |method: &str, has_secret: bool, has_jwks: bool, name: Option<&str>| {
            keyed(method, has_secret.then_some(40), has_secret, has_jwks, name)
        };
        let dn = Some(CERTIFICATE_NAMES[0]);
        assert_eq!(key(TLS_CLIENT_AUTH, false, false, dn), Ok(()));
        assert_eq!(
            key(TLS_CLIENT_AUTH, false, false, None),
            Err(CERTIFICATE_NAMES[0].into())
        );
        assert_eq!(
            key(TLS_CLIENT_AUTH, true, false, dn),
            Err("client_secret".into())
        );
        assert_eq!(key(SELF_SIGNED_TLS_CLIENT_AUTH, false, true, None), Ok(()));
        assert_eq!(
            key(SELF_SIGNED_TLS_CLIENT_AUTH, false, false, None),
            Err("jwks".into())
        );
        assert_eq!(
            key(
                "client_secret_basic",
                true,
                false,
                Some("tls_client_auth_san_dns")
            ),
            Err("tls_client_auth_san_dns".into()),
            "a certificate name on a client that does not use it"
        );
    }
}
