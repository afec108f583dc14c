//! The rules a client registration must follow for this guest to serve it
//! (`server.check-client`), and the defaults of what the operator left out. The host asks
//! at start and on every reload, for every configured client, and refuses to load a guest
//! that refuses one.

use crate::GRANT_TYPES;

/// How a client authenticates when its registration names no method.
pub const DEFAULT_AUTH_METHOD: &str = "client_secret_basic";
/// The methods the token endpoint knows (`none`: a public client).
const AUTH_METHODS: [&str; 3] = ["client_secret_basic", "client_secret_post", "none"];

/// A client registration as the operator configured it.
#[derive(Clone, Debug, Default)]
pub struct ClientConfig {
    pub client_id: String,
    pub token_endpoint_auth_method: Option<String>,
    pub has_secret: bool,
    /// None: the operator named none.
    pub grant_types: Option<Vec<String>>,
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
pub fn check(client: &ClientConfig) -> Result<(), (&'static str, String)> {
    let method = auth_method(client.token_endpoint_auth_method.as_deref());
    if !AUTH_METHODS.contains(&method) {
        return Err((
            "token_endpoint_auth_method",
            format!("{method:?} is not {}", AUTH_METHODS.join(", ")),
        ));
    }
    match (method == "none", client.has_secret) {
        (true, true) => {
            return Err((
                "client_secret",
                "a public client (token_endpoint_auth_method: none) has no secret".into(),
            ))
        }
        (false, false) => {
            return Err((
                "client_secret",
                format!("{method} needs a client_secret or client_secret_sha256"),
            ))
        }
        _ => {}
    }
    if let Some(grant) = grant_types(client.grant_types.clone())
        .iter()
        .find(|g| !GRANT_TYPES.contains(&g.as_str()))
    {
        return Err((
            "grant_types",
            format!(
                "{grant:?} is not a grant type this guest serves (it serves: {})",
                GRANT_TYPES.join(", ")
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(method: Option<&str>, secret: bool, grants: &[&str]) -> ClientConfig {
        ClientConfig {
            client_id: "c".into(),
            token_endpoint_auth_method: method.map(str::to_owned),
            has_secret: secret,
            grant_types: Some(grants.iter().map(|g| g.to_string()).collect()),
        }
    }

    #[test]
    fn a_registration_is_checked_against_what_this_guest_serves() {
        assert!(check(&client(None, true, &[])).is_ok());
        assert!(check(&client(Some("none"), false, &["authorization_code"])).is_ok());
        let key = |c: ClientConfig| check(&c).unwrap_err().0;
        assert_eq!(
            key(client(Some("private_key_jwt"), true, &[])),
            "token_endpoint_auth_method"
        );
        assert_eq!(key(client(Some("none"), true, &[])), "client_secret");
        assert_eq!(key(client(None, false, &[])), "client_secret");
        let (key, why) = check(&client(None, true, &["password"])).unwrap_err();
        assert_eq!(key, "grant_types");
        assert!(why.contains("\"password\""), "{why}");
    }
}
