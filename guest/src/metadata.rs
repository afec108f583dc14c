//! Authorization server metadata (RFC 8414), which is also the OpenID Provider's
//! (OpenID Connect Discovery 1.0), and the public keys its `jwks_uri` names.

use crate::{Algorithm, Host, MtlsPolicy, Response, GRANT_TYPES, RESPONSE_TYPES};
use serde::Serialize;
use tokenginx_syntax::registration::{SELF_SIGNED_TLS_CLIENT_AUTH, TLS_CLIENT_AUTH};

/// How clients authenticate (`client_rules::AUTH_METHODS`): RFC 8705's only where the
/// listener takes their certificates, and `none` only where public clients are let in
/// (the token and revocation endpoints, with the flow: they redeem codes with PKCE).
fn auth_methods(listener: MtlsPolicy, public: bool) -> Vec<&'static str> {
    crate::client_rules::AUTH_METHODS
        .into_iter()
        .filter(|method| match *method {
            TLS_CLIENT_AUTH => listener.chained,
            SELF_SIGNED_TLS_CLIENT_AUTH => listener.self_signed,
            "none" => public,
            _ => true,
        })
        .collect()
}

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
    token_endpoint_auth_methods_supported: Vec<&'static str>,
    introspection_endpoint_auth_methods_supported: Vec<&'static str>,
    revocation_endpoint_auth_methods_supported: Vec<&'static str>,
    /// RFC 8705 section 3.3: access tokens may be bound to the client's TLS certificate.
    #[serde(skip_serializing_if = "Option::is_none")]
    tls_client_certificate_bound_access_tokens: Option<bool>,
    /// RFC 9449 section 5.1: the token endpoint takes DPoP proofs by these algorithms.
    dpop_signing_alg_values_supported: [&'static str; 5],
    /// What a client assertion may be signed with (`client_secret_jwt`, `private_key_jwt`).
    token_endpoint_auth_signing_alg_values_supported: [&'static str; 6],
    introspection_endpoint_auth_signing_alg_values_supported: [&'static str; 6],
    revocation_endpoint_auth_signing_alg_values_supported: [&'static str; 6],
    scopes_supported: Vec<String>,
    jwks_uri: Option<String>,
    /// OpenID Connect, with the authorization code flow.
    #[serde(skip_serializing_if = "Option::is_none")]
    userinfo_endpoint: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    id_token_signing_alg_values_supported: Option<[&'static str; 3]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    subject_types_supported: Option<[&'static str; 1]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    claims_supported: Option<[&'static str; 10]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    prompt_values_supported: Option<[&'static str; 4]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_modes_supported: Option<[&'static str; 1]>,
    /// RFC 7591, when the operator allows dynamic registration.
    #[serde(skip_serializing_if = "Option::is_none")]
    registration_endpoint: Option<String>,
}

/// What signs ID tokens and JWT access tokens; RS256 first, as OpenID Connect requires it.
const SIGNING_ALGS: [&str; 3] = [
    Algorithm::Rs256.name(),
    Algorithm::Es256.name(),
    Algorithm::EdDsa.name(),
];
/// The claims an ID token carries of its own (the consent app may add others).
const CLAIMS: [&str; 10] = [
    "iss",
    "sub",
    "aud",
    "exp",
    "iat",
    "auth_time",
    "nonce",
    "at_hash",
    "acr",
    "amr",
];

/// The document; the authorization code flow appears in it only when the operator set a
/// login app (`oauth.login_url`).
pub fn metadata(host: &impl Host) -> Response {
    let flow = host.login_flow().is_some();
    let listener = host.mtls();
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
        dpop_signing_alg_values_supported: crate::jose::ASYMMETRIC,
        token_endpoint_auth_signing_alg_values_supported: crate::jose::CLIENT_ASSERTION,
        introspection_endpoint_auth_signing_alg_values_supported: crate::jose::CLIENT_ASSERTION,
        revocation_endpoint_auth_signing_alg_values_supported: crate::jose::CLIENT_ASSERTION,
        authorization_response_iss_parameter_supported: flow.then_some(true),
        token_endpoint_auth_methods_supported: auth_methods(listener, flow),
        introspection_endpoint_auth_methods_supported: auth_methods(listener, false),
        revocation_endpoint_auth_methods_supported: auth_methods(listener, flow),
        tls_client_certificate_bound_access_tokens: (listener.chained || listener.self_signed)
            .then_some(true),
        scopes_supported: host.scopes_supported(),
        jwks_uri: crate::routes::endpoint_url(host, "jwks"),
        userinfo_endpoint: flow
            .then(|| crate::routes::endpoint_url(host, "userinfo"))
            .flatten(),
        id_token_signing_alg_values_supported: flow.then_some(SIGNING_ALGS),
        subject_types_supported: flow.then_some(["public"]),
        claims_supported: flow.then_some(CLAIMS),
        prompt_values_supported: flow.then_some(["none", "login", "consent", "select_account"]),
        response_modes_supported: flow.then_some(["query"]),
        registration_endpoint: host
            .dynamic_registration()
            .and_then(|_| crate::routes::endpoint_url(host, "register")),
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

/// The host's public keys (RFC 7517), cacheable for as long as the host says a verifier
/// may keep them.
pub fn jwks(host: &impl Host) -> Response {
    let keys = host.public_keys();
    Response {
        status: 200,
        headers: vec![
            ("Content-Type".into(), "application/jwk-set+json".into()),
            (
                "Cache-Control".into(),
                format!("public, max-age={}", keys.max_age),
            ),
        ],
        body: keys.json,
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
            doc["dpop_signing_alg_values_supported"],
            serde_json::json!(["ES256", "EdDSA", "Ed25519", "RS256", "PS256"])
        );
        let confidential = [
            "client_secret_basic",
            "client_secret_post",
            "client_secret_jwt",
            "private_key_jwt",
            "tls_client_auth",
            "self_signed_tls_client_auth",
        ];
        let with_public = [confidential.as_slice(), &["none"]].concat();
        assert_eq!(
            doc["token_endpoint_auth_methods_supported"],
            serde_json::json!(with_public)
        );
        assert_eq!(doc["tls_client_certificate_bound_access_tokens"], true);
        assert_eq!(
            doc["introspection_endpoint_auth_methods_supported"],
            serde_json::json!(confidential)
        );
        assert_eq!(
            doc["token_endpoint_auth_signing_alg_values_supported"],
            serde_json::json!(["ES256", "EdDSA", "Ed25519", "RS256", "PS256", "HS256"])
        );
        assert_eq!(
            doc["scopes_supported"],
            serde_json::json!(["admin", "offline_access", "openid", "read", "write"])
        );
        // OpenID Connect Discovery's required fields, RS256 first.
        assert_eq!(doc["jwks_uri"], "http://issuer.test/.well-known/jwks.json");
        assert_eq!(
            doc["userinfo_endpoint"],
            "http://issuer.test/api/v1/oauth/userinfo"
        );
        assert_eq!(
            doc["id_token_signing_alg_values_supported"],
            serde_json::json!(["RS256", "ES256", "EdDSA"])
        );
        assert_eq!(
            doc["subject_types_supported"],
            serde_json::json!(["public"])
        );
    }

    #[test]
    fn the_jwks_is_the_hosts_and_cached_as_long_as_it_says() {
        let response = jwks(&TestHost::new());
        assert_eq!(response.status, 200);
        assert_eq!(
            response.header("Cache-Control"),
            Some("public, max-age=120")
        );
        assert_eq!(body(&response)["keys"][0]["kid"], "test");
    }
}
