//! Authorization server metadata, RFC 8414.

use crate::harness::*;
use serde_json::json;

#[tokio::test]
async fn metadata_describes_the_endpoints_and_their_auth_methods() {
    let host = Host::start();
    let reply = host.get("/.well-known/oauth-authorization-server").await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("content-type"), Some("application/json"));
    let doc = reply.json();
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
    assert_eq!(doc["grant_types_supported"], json!(["client_credentials"]));
    assert_eq!(doc["response_types_supported"], json!([]));
    let methods = json!(["client_secret_basic", "client_secret_post"]);
    assert_eq!(doc["token_endpoint_auth_methods_supported"], methods);
    assert_eq!(
        doc["introspection_endpoint_auth_methods_supported"],
        methods
    );
    assert_eq!(doc["revocation_endpoint_auth_methods_supported"], methods);
    assert_eq!(doc["scopes_supported"], json!(["admin", "read", "write"]));
}
