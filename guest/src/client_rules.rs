//! The rules a client registration must follow for this guest to serve it
//! (`server.check-client`), and the defaults of what the operator left out. The host asks
//! at start and on every reload, for every configured client, and refuses to load a guest
//! that refuses one.

use crate::{CertificateName, MtlsClient, MtlsPolicy, GRANT_TYPES};
use tokenginx_syntax::registration::{
    self, Registration, CERTIFICATE_NAMES, DEFAULT_AUTH_METHOD, SELF_SIGNED_TLS_CLIENT_AUTH,
    TLS_CLIENT_AUTH,
};

/// How this guest's clients may authenticate: RFC 6749's methods, RFC 7523's JWTs
/// (`client_auth`), and RFC 8705's TLS certificates (`mtls`), those where the listener
/// takes client certificates.
pub const AUTH_METHODS: [&str; 7] = [
    "client_secret_basic",
    "client_secret_post",
    registration::CLIENT_SECRET_JWT,
    registration::PRIVATE_KEY_JWT,
    TLS_CLIENT_AUTH,
    SELF_SIGNED_TLS_CLIENT_AUTH,
    "none",
];

/// A client registration as the operator configured it.
#[derive(Clone, Debug, Default)]
pub struct ClientConfig {
    pub token_endpoint_auth_method: Option<String>,
    pub has_secret: bool,
    /// The characters of `client_secret`, when it was given as such.
    pub secret_chars: Option<u32>,
    /// Its public keys (`jwks`, JSON), if it registered some.
    pub jwks: Option<String>,
    /// What it registered for mutual TLS.
    pub mtls: Option<MtlsClient>,
    /// Which client certificates the listener takes.
    pub listener: MtlsPolicy,
    pub scopes: Vec<String>,
    pub default_scopes: Vec<String>,
    /// None: the operator named none.
    pub grant_types: Option<Vec<String>>,
    pub redirect_uris: Vec<String>,
    /// Seconds.
    pub access_token_ttl: u64,
}

/// The grant types of a registration: `client_credentials` when it names none.
pub fn grant_types(configured: Option<Vec<String>>) -> Vec<String> {
    configured.unwrap_or_else(|| vec![crate::issue::CLIENT_CREDENTIALS.to_owned()])
}

/// The auth method of a registration, [`DEFAULT_AUTH_METHOD`] when it names none.
pub fn auth_method(configured: Option<&str>) -> &str {
    configured.unwrap_or(DEFAULT_AUTH_METHOD)
}

/// Whether this guest serves `client`; if not, the key at fault and why.
pub fn check(client: &ClientConfig) -> Result<(), (String, String)> {
    let grant_types = grant_types(client.grant_types.clone());
    let registration = Registration {
        token_endpoint_auth_method: client.token_endpoint_auth_method.as_deref(),
        has_secret: client.has_secret,
        secret_chars: client.secret_chars,
        has_jwks: client.jwks.is_some(),
        certificate_name: client
            .mtls
            .as_ref()
            .and_then(|m| m.certificate_name.as_ref())
            .map(CertificateName::key),
        scopes: &client.scopes,
        default_scopes: &client.default_scopes,
        grant_types: &grant_types,
        redirect_uris: &client.redirect_uris,
        access_token_ttl: client.access_token_ttl,
    };
    registration::check(&registration, &GRANT_TYPES, &AUTH_METHODS)
        .map_err(|p| (p.key, p.message))?;
    check_mtls(client)
}

/// What mutual TLS needs of the listener and of the registration: certificates the
/// listener takes, and names this reads.
fn check_mtls(client: &ClientConfig) -> Result<(), (String, String)> {
    let problem = |key: &str, message: &str| Err((key.to_owned(), message.to_owned()));
    let listener = client.listener;
    match auth_method(client.token_endpoint_auth_method.as_deref()) {
        TLS_CLIENT_AUTH if !listener.chained => {
            return problem(
                "token_endpoint_auth_method",
                "tls_client_auth needs client certificates checked against a CA: \
                 server.tls.client_auth optional or required, with client_ca_file",
            )
        }
        SELF_SIGNED_TLS_CLIENT_AUTH if !listener.self_signed => {
            return problem(
                "token_endpoint_auth_method",
                "self_signed_tls_client_auth needs a listener that takes certificates no CA \
                 issued: server.tls.self_signed_client_certs: true",
            )
        }
        _ => {}
    }
    let mtls = client.mtls.clone().unwrap_or_default();
    match &mtls.certificate_name {
        Some(CertificateName::SubjectDn(dn)) => {
            crate::x509::parse_dn(dn).map_err(|why| (CERTIFICATE_NAMES[0].to_owned(), why))?;
        }
        Some(CertificateName::SanIp(ip)) if ip.parse::<std::net::IpAddr>().is_err() => {
            return problem(
                CERTIFICATE_NAMES[3],
                &format!("{ip:?} is not an IP address"),
            );
        }
        _ => {}
    }
    if mtls.bound_access_tokens && !(listener.chained || listener.self_signed) {
        return problem(
            "tls_client_certificate_bound_access_tokens",
            "needs a listener that asks for client certificates: server.tls.client_auth \
             optional or required",
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_registration_without_grant_types_gets_client_credentials_and_is_checked() {
        let client = ClientConfig {
            has_secret: true,
            access_token_ttl: 60,
            ..ClientConfig::default()
        };
        assert_eq!(check(&client), Ok(()));
        let none = ClientConfig {
            grant_types: Some(vec!["password".into()]),
            ..client.clone()
        };
        let (key, why) = check(&none).unwrap_err();
        assert_eq!(key, "grant_types");
        assert!(why.contains("\"password\""), "{why}");
    }
}
