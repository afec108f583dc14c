//! Authorization server metadata (RFC 8414).

use crate::{Host, Response, GRANT_TYPES, RESPONSE_TYPES};
use serde::Serialize;

const AUTH_METHODS: [&str; 2] = ["client_secret_basic", "client_secret_post"];
/// The token endpoint also takes public clients (`none`), which redeem codes with PKCE.
const TOKEN_AUTH_METHODS: [&str; 3] = ["client_secret_basic", "client_secret_post", "none"];

#[derive(Serialize)]
struct Metadata {
    issuer: String,
    /// Below the issuer, at this guest's own routes (`routes.rs`).
    #[serde(skip_serializing_if = "Option::is_none")]
    authorization_endpoint: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    token_endpoint: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    introspection_endpoint: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    revocation_endpoint: Option<String>,
    grant_types_supported: Vec<&'static str>,
    response_types_supported: &'static [&'static str],
    #[serde(skip_serializing_if = "Option::is_none")]
    code_challenge_methods_supported: Option<[&'static str; 1]>,
    /// RFC 9207: the authorization response carries `iss`.
    #[serde(skip_serializing_if = "Option::is_none")]
    authorization_response_iss_parameter_supported: Option<bool>,
    token_endpoint_auth_methods_supported: &'static [&'static str],
    introspection_endpoint_auth_methods_supported: [&'static str; 2],
    revocation_endpoint_auth_methods_supported: &'static [&'static str],
    scopes_supported: Vec<String>,
}

/// The document; the authorization code flow appears in it only when the operator set a
/// login app (`oauth.login_url`).
pub fn metadata(host: &impl Host) -> Response {
    let flow = host.login_flow().is_some();
    let document = Metadata {
        issuer: host.issuer(),
        authorization_endpoint: flow
            .then(|| crate::routes::endpoint_url(host, "authorize"))
            .flatten(),
        token_endpoint: crate::routes::endpoint_url(host, "token"),
        introspection_endpoint: crate::routes::endpoint_url(host, "introspect"),
        revocation_endpoint: crate::routes::endpoint_url(host, "revoke"),
        // Codes come from the flow, and refresh tokens from codes.
        grant_types_supported: GRANT_TYPES
            .into_iter()
            .filter(|g| flow || *g == crate::issue::CLIENT_CREDENTIALS)
            .collect(),
        response_types_supported: if flow { &RESPONSE_TYPES } else { &[] },
        code_challenge_methods_supported: flow.then_some(["S256"]),
        authorization_response_iss_parameter_supported: flow.then_some(true),
        token_endpoint_auth_methods_supported: if flow {
            &TOKEN_AUTH_METHODS
        } else {
            &AUTH_METHODS
        },
        introspection_endpoint_auth_methods_supported: AUTH_METHODS,
        revocation_endpoint_auth_methods_supported: if flow {
            &TOKEN_AUTH_METHODS
        } else {
            &AUTH_METHODS
        },
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
            doc["authorization_endpoint"],
            "http://issuer.test/api/v1/oauth/authorize"
        );
        assert_eq!(
            doc["grant_types_supported"],
            serde_json::json!(["client_credentials", "authorization_code", "refresh_token"])
        );
        assert_eq!(doc["response_types_supported"], serde_json::json!(["code"]));
        assert_eq!(
            doc["code_challenge_methods_supported"],
            serde_json::json!(["S256"])
        );
        assert_eq!(doc["authorization_response_iss_parameter_supported"], true);
        assert_eq!(
            doc["token_endpoint_auth_methods_supported"],
            serde_json::json!(["client_secret_basic", "client_secret_post", "none"])
        );
        assert_eq!(
            doc["introspection_endpoint_auth_methods_supported"],
            serde_json::json!(["client_secret_basic", "client_secret_post"])
        );
        assert_eq!(
            doc["scopes_supported"],
            serde_json::json!(["admin", "offline_access", "read", "write"])
        );
    }
}
