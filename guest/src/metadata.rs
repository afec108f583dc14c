//! Authorization server metadata (RFC 8414).

use crate::{Host, Response, GRANT_TYPES, RESPONSE_TYPES};
use serde::Serialize;

const AUTH_METHODS: [&str; 2] = ["client_secret_basic", "client_secret_post"];

#[derive(Serialize)]
struct Metadata {
    issuer: String,
    /// The URLs are the host's: it owns the paths (`settings.endpoint-url`).
    #[serde(skip_serializing_if = "Option::is_none")]
    token_endpoint: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    introspection_endpoint: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    revocation_endpoint: Option<String>,
    grant_types_supported: &'static [&'static str],
    response_types_supported: &'static [&'static str],
    token_endpoint_auth_methods_supported: [&'static str; 2],
    introspection_endpoint_auth_methods_supported: [&'static str; 2],
    revocation_endpoint_auth_methods_supported: [&'static str; 2],
    scopes_supported: Vec<String>,
}

pub fn metadata(host: &impl Host) -> Response {
    let document = Metadata {
        issuer: host.issuer(),
        token_endpoint: host.endpoint_url("token"),
        introspection_endpoint: host.endpoint_url("introspect"),
        revocation_endpoint: host.endpoint_url("revoke"),
        grant_types_supported: &GRANT_TYPES,
        response_types_supported: &RESPONSE_TYPES,
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
        assert_eq!(doc["token_endpoint"], "http://issuer.test/endpoints/token");
        assert_eq!(
            doc["introspection_endpoint"],
            "http://issuer.test/endpoints/introspect"
        );
        assert_eq!(
            doc["revocation_endpoint"],
            "http://issuer.test/endpoints/revoke"
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
