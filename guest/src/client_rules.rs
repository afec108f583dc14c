//! The rules a client registration must follow for this guest to serve it
//! (`server.check-client`), and the defaults of what the operator left out. The host asks
//! at start and on every reload, for every configured client, and refuses to load a guest
//! that refuses one.

use crate::GRANT_TYPES;
use tokenginx_syntax::registration::{self, Registration, DEFAULT_AUTH_METHOD};

/// How this guest's clients may authenticate: RFC 6749's methods, and RFC 7523's JWTs
/// (`client_auth`).
pub const AUTH_METHODS: [&str; 5] = [
    "client_secret_basic",
    "client_secret_post",
    registration::CLIENT_SECRET_JWT,
    registration::PRIVATE_KEY_JWT,
    "none",
];

/// A client registration as the operator configured it.
#[derive(Clone, Debug, Default)]
pub struct ClientConfig {
    pub token_endpoint_auth_method: Option<String>,
    pub has_secret: bool,
    /// The characters of `client_secret`, when it was given as such.
    pub secret_chars: Option<u32>,
    /// It registered public keys (`jwks`).
    pub has_jwks: bool,
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
        has_jwks: client.has_jwks,
        scopes: &client.scopes,
        default_scopes: &client.default_scopes,
        grant_types: &grant_types,
        redirect_uris: &client.redirect_uris,
        access_token_ttl: client.access_token_ttl,
    };
    registration::check(&registration, &GRANT_TYPES, &AUTH_METHODS).map_err(|p| (p.key, p.message))
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
