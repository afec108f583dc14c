//! Clients that authenticate with their TLS certificate, and tokens bound to it, at the
//! token and introspection endpoints.

use super::*;
use crate::testing::{
    body, form, refusal, TestHost, CLIENT_CERT, DEMO_ID, DEMO_SECRET, OTHER_CERT, SELF_SIGNED_ID,
    TLS_ID,
};
use crate::Request;

/// A certificate the CA issued (`request.client-cert`).
fn chained(der: &[u8]) -> Option<Vec<u8>> {
    Some(der.to_vec())
}

/// A `client_credentials` request of `client_id` (by its id alone) over a connection whose
/// certificate chains to the CA (`client_cert`). One that does not, the test host holds
/// ([`presenting`]).
fn request(client_id: &str, client_cert: Option<Vec<u8>>) -> Request {
    let mut req = form(
        &[
            ("grant_type", "client_credentials"),
            ("client_id", client_id),
        ],
        None,
    );
    req.client_cert = client_cert;
    req
}

/// `host`, whose client presented `der` without a chain (`caller.presented-cert`).
fn presenting(host: TestHost, der: &[u8]) -> TestHost {
    *host.presented.borrow_mut() = Some(der.to_vec());
    host
}

fn named(name: CertificateName) -> TestHost {
    let host = TestHost::new();
    host.mtls_clients.borrow_mut().insert(
        TLS_ID.into(),
        MtlsClient {
            certificate_name: Some(name),
            bound_access_tokens: false,
        },
    );
    host
}

#[test]
fn tls_client_auth_takes_a_chained_certificate_that_carries_the_registered_name() {
    use CertificateName::*;
    for name in [
        SanDns("CLIENT.example.com".into()),
        SanUri("spiffe://example.com/client".into()),
        SanIp("2001:DB8:0::1".into()),
        SanEmail("ops@example.com".into()),
        SubjectDn(r"CN=client one, OU=Payments+UID=42, O=Example\, AB, C=SE".into()),
    ] {
        let host = named(name.clone());
        let response = crate::token(&host, &request(TLS_ID, chained(CLIENT_CERT)));
        assert_eq!(response.status, 200, "{name:?}: {}", response.body);
        assert_eq!(host.take_authenticated().as_deref(), Some(TLS_ID));
        let other = crate::token(&host, &request(TLS_ID, chained(OTHER_CERT)));
        assert_eq!(refusal(&other), (401, "invalid_client".into()), "{name:?}");
    }
    for other_name in [
        SanDns("other.example.com".into()),
        SanUri("spiffe://example.com/other".into()),
        SanIp("192.0.2.8".into()),
        SanEmail("Ops@example.com".into()),
        SubjectDn("CN=client one,C=SE".into()),
    ] {
        let host = named(other_name.clone());
        let response = crate::token(&host, &request(TLS_ID, chained(CLIENT_CERT)));
        assert_eq!(
            refusal(&response),
            (401, "invalid_client".into()),
            "{other_name:?}"
        );
        assert_eq!(host.take_authenticated(), None);
    }
}

#[test]
fn tls_client_auth_refuses_a_certificate_no_ca_issued_or_none() {
    for host in [presenting(TestHost::new(), CLIENT_CERT), TestHost::new()] {
        let response = crate::token(&host, &request(TLS_ID, None));
        assert_eq!(refusal(&response), (401, "invalid_client".into()));
        assert!(
            response.header("WWW-Authenticate").is_none(),
            "no Basic challenge for a certificate"
        );
        assert!(host.keys().is_empty(), "a refusal writes nothing");
    }
}

#[test]
fn self_signed_tls_client_auth_takes_a_registered_certificate_and_binds_its_tokens() {
    // Presented without a chain: what the host hands over as `caller.presented-cert`.
    let host = presenting(TestHost::new(), CLIENT_CERT);
    let certificate = Certificate::of_request(&host, None);
    assert_eq!(certificate.as_ref().map(|c| c.chained), Some(false));
    let response = crate::token(&host, &request(SELF_SIGNED_ID, None));
    assert_eq!(response.status, 200, "{}", response.body);
    let answer = body(&response);
    assert_eq!(answer["token_type"], "Bearer");

    // Introspection tells a resource server what to check (section 3.2).
    let token = answer["access_token"].as_str().unwrap();
    let introspected = crate::introspect(
        &host,
        &form(
            &[("token", token)],
            Some(crate::testing::basic(DEMO_ID, DEMO_SECRET)),
        ),
    );
    let introspected = body(&introspected);
    assert_eq!(introspected["active"], true);
    let thumbprint = certificate.unwrap().thumbprint();
    assert_eq!(
        introspected["cnf"],
        serde_json::json!({ "x5t#S256": thumbprint })
    );
    assert_eq!(introspected["token_type"], "Bearer");
    assert_eq!(thumbprint.len(), 43, "base64url of 32 bytes");

    for (host, chained_cert) in [
        (presenting(TestHost::new(), OTHER_CERT), None),
        (TestHost::new(), chained(OTHER_CERT)),
        (TestHost::new(), None),
    ] {
        let response = crate::token(&host, &request(SELF_SIGNED_ID, chained_cert));
        assert_eq!(refusal(&response), (401, "invalid_client".into()));
    }
}

#[test]
fn a_registered_key_without_x5c_takes_any_certificate_of_that_key() {
    // CLIENT_CERT's key, as another reader makes a JWK of it (see x509/tests.rs).
    let key = serde_json::json!({"kty": "EC", "crv": "P-256",
        "x": "rCq3EQmSvnMkQl9xITC5C2G58vZo9OUXziT-BtpNURY",
        "y": "spMszfr7UIq9KKIbv4aGDcX1gxmD86Lz5MApic_t_aY"});
    let jwks = serde_json::json!({ "keys": [key] }).to_string();
    assert!(registers(&jwks, CLIENT_CERT));
    assert!(!registers(&jwks, OTHER_CERT));
    let x5c = base64::engine::general_purpose::STANDARD.encode(OTHER_CERT);
    let by_certificate = serde_json::json!({"keys": [{"kty": "OKP", "x5c": [x5c]}]});
    assert!(registers(&by_certificate.to_string(), OTHER_CERT));
    assert!(!registers(&by_certificate.to_string(), CLIENT_CERT));
    assert!(!registers("not JSON", CLIENT_CERT));
}

#[test]
fn a_certificate_does_not_authenticate_a_client_registered_otherwise() {
    let host = TestHost::new();
    let response = crate::token(&host, &request(DEMO_ID, chained(CLIENT_CERT)));
    assert_eq!(refusal(&response), (401, "invalid_client".into()));
}

fn refused_by_rules(config: crate::client_rules::ClientConfig) -> (String, String) {
    crate::client_rules::check(&config).unwrap_err()
}

#[test]
fn the_rules_name_what_a_mutual_tls_client_lacks() {
    use crate::client_rules::ClientConfig;
    let both = crate::MtlsPolicy {
        chained: true,
        self_signed: true,
    };
    let tls = ClientConfig {
        token_endpoint_auth_method: Some("tls_client_auth".into()),
        mtls: Some(MtlsClient {
            certificate_name: Some(CertificateName::SubjectDn("CN=a".into())),
            bound_access_tokens: true,
        }),
        listener: both,
        access_token_ttl: 60,
        ..ClientConfig::default()
    };
    assert_eq!(crate::client_rules::check(&tls), Ok(()));
    let (key, why) = refused_by_rules(ClientConfig {
        listener: crate::MtlsPolicy::default(),
        ..tls.clone()
    });
    assert_eq!(key, "token_endpoint_auth_method");
    assert!(why.contains("client_ca_file"), "{why}");
    let (key, why) = refused_by_rules(ClientConfig {
        mtls: Some(MtlsClient {
            certificate_name: Some(CertificateName::SubjectDn("CN".into())),
            bound_access_tokens: false,
        }),
        ..tls.clone()
    });
    assert_eq!(key, "tls_client_auth_subject_dn", "{why}");

    let x5c = base64::engine::general_purpose::STANDARD.encode(CLIENT_CERT);
    let self_signed = ClientConfig {
        token_endpoint_auth_method: Some("self_signed_tls_client_auth".into()),
        jwks: Some(serde_json::json!({"keys": [{"kty": "EC", "x5c": [x5c]}]}).to_string()),
        mtls: None,
        ..tls.clone()
    };
    assert_eq!(crate::client_rules::check(&self_signed), Ok(()));
    let (key, _) = refused_by_rules(ClientConfig {
        jwks: None,
        ..self_signed.clone()
    });
    assert_eq!(key, "jwks");
    let (key, why) = refused_by_rules(ClientConfig {
        listener: crate::MtlsPolicy {
            chained: true,
            self_signed: false,
        },
        ..self_signed
    });
    assert_eq!(key, "token_endpoint_auth_method");
    assert!(why.contains("self_signed_client_certs"), "{why}");

    let (key, _) = refused_by_rules(ClientConfig {
        token_endpoint_auth_method: None,
        has_secret: true,
        secret_chars: Some(40),
        mtls: Some(MtlsClient {
            certificate_name: None,
            bound_access_tokens: true,
        }),
        listener: crate::MtlsPolicy::default(),
        ..tls
    });
    assert_eq!(key, "tls_client_certificate_bound_access_tokens");
}
