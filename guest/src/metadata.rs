//! Authorization server metadata (RFC 8414).

use crate::{Host, Response};
use serde::Serialize;

/// The routes the host serves the endpoints at, below the issuer.
const TOKEN_PATH: &str = "/api/v1/oauth/token";
const INTROSPECTION_PATH: &str = "/api/v1/oauth/introspect";
const REVOCATION_PATH: &str = "/api/v1/oauth/revoke";
const AUTH_METHODS: [&str; 2] = ["client_secret_basic", "client_secret_post"];

#[derive(Serialize)]
struct Metadata {
    issuer: String,
    token_endpoint: String,
    introspection_endpoint: String,
    revocation_endpoint: String,
    grant_types_supported: [&'static str; 1],
    /// No authorization endpoint, so no response type.
    response_types_supported: [&'static str; 0],
    token_endpoint_auth_methods_supported: [&'static str; 2],
    introspection_endpoint_auth_methods_supported: [&'static str; 2],
    revocation_endpoint_auth_methods_supported: [&'static str; 2],
    scopes_supported: Vec<String>,
}

pub fn metadata(host: &impl Host) -> Response {
    let issuer = host.issuer();
    let document = Metadata {
        token_endpoint: format!("{issuer}{TOKEN_PATH}"),
        introspection_endpoint: format!("{issuer}{INTROSPECTION_PATH}"),
        revocation_endpoint: format!("{issuer}{REVOCATION_PATH}"),
        issuer,
        grant_types_supported: ["client_credentials"],
        response_types_supported: [],
        token_endpoint_auth_methods_supported: AUTH_METHODS,
        introspection_endpoint_auth_methods_supported: AUTH_METHODS,
        revocation_endpoint_auth_methods_supported: AUTH_METHODS,
        scopes_supported: host.scopes_supported(),
    };
    Response {
        status: 200,
        headers: vec![
            ("Content-Type".into(), "application/json".into()),
            ("Cache-Control".into(), "public, max-age=300".into()),
        ],
        body: serde_json::to_string(&document).expect("metadata serializes"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{body, TestHost};

    #[test]
    fn metadata_names_the_issuer_endpoints_and_methods() {
        let response = metadata(&TestHost::new());
        assert_eq!(response.status, 200);
        let doc = body(&response);
        assert_eq!(doc["issuer"], "http://issuer.test");
        assert_eq!(
            doc["token_endpoint"],
            "http://issuer.test/api/v1/oauth/token"
        );
        assert_eq!(
            doc["introspection_endpoint"],
            "http://issuer.test/api/v1/oauth/introspect"
        );
        assert_eq!(
            doc["revocation_endpoint"],
            "http://issuer.test/api/v1/oauth/revoke"
        );
        assert_eq!(
            doc["grant_types_supported"],
            serde_json::json!(["client_credentials"])
        );
        assert_eq!(doc["response_types_supported"], serde_json::json!([]));
        assert_eq!(
            doc["token_endpoint_auth_methods_supported"],
            serde_json::json!(["client_secret_basic", "client_secret_post"])
        );
        assert_eq!(
            doc["scopes_supported"],
            serde_json::json!(["admin", "read", "write"])
        );
    }
}
