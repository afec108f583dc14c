//! Access tokens bound to a TLS client certificate (RFC 8705 section 3) on the flow: the
//! code redeemed over a connection with a certificate binds the access token to it, a
//! refresh binds the next one to the certificate presented then, and userinfo takes a
//! bound token only over a connection that presents that certificate.

use super::*;
use crate::testing::{refusal, CLIENT_CERT, NATIVE_ID, NATIVE_REDIRECT, OTHER_CERT};
use crate::MtlsClient;

/// A certificate the CA issued (`request.client-cert`).
fn chained(der: &[u8]) -> Option<Vec<u8>> {
    Some(der.to_vec())
}

fn userinfo(host: &TestHost, token: &str, client_cert: Option<Vec<u8>>) -> Response {
    crate::userinfo::userinfo(
        host,
        &crate::userinfo::Presented {
            authorization: Some(&format!("Bearer {token}")),
            form_token: None,
            dpop: None,
            method: "GET",
            client_cert: client_cert.as_deref(),
        },
    )
}

/// A token request of `client` (the web app with its secret, the native app by its id
/// alone) over a connection with the certificate `cert`.
fn token_with(
    host: &TestHost,
    client: &str,
    params: &[(&str, &str)],
    cert: Option<Vec<u8>>,
) -> Response {
    let mut req = token_form(client, params);
    req.client_cert = cert;
    token(host, &req)
}

/// Binds `client`'s access tokens to its certificate, and signs alice in to it asking
/// `scope`: the code.
fn bound_code(host: &TestHost, client: &str, scope: &str) -> String {
    let bound = MtlsClient {
        certificate_name: None,
        bound_access_tokens: true,
    };
    host.mtls_clients.borrow_mut().insert(client.into(), bound);
    code_for(host, client, scope, &[])
}

/// The redemption of `code`, sent back to `redirect`.
fn redemption<'a>(code: &'a str, redirect: &'a str) -> [(&'a str, &'a str); 4] {
    [
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", redirect),
        ("code_verifier", VERIFIER),
    ]
}

#[test]
fn a_bound_clients_tokens_work_only_over_a_connection_with_its_certificate() {
    let host = TestHost::new();
    let code = bound_code(&host, WEB_ID, "openid read offline_access");
    let redeem = redemption(&code, WEB_REDIRECT);
    let refused = token_with(&host, WEB_ID, &redeem, None);
    assert_eq!(refusal(&refused), (400, "invalid_request".into()));
    let answer = token_with(&host, WEB_ID, &redeem, chained(CLIENT_CERT));
    assert_eq!(answer.status, 200, "{}", answer.body);
    let answer = body(&answer);
    assert_eq!(
        answer["token_type"], "Bearer",
        "RFC 8705 tokens are Bearer tokens"
    );
    let access = answer["access_token"].as_str().unwrap();

    let ok = userinfo(&host, access, chained(CLIENT_CERT));
    assert_eq!((ok.status, body(&ok)["sub"].clone()), (200, "alice".into()));
    for wrong in [None, chained(OTHER_CERT)] {
        let refused = userinfo(&host, access, wrong);
        assert_eq!(refusal(&refused), (401, "invalid_token".into()));
        let challenge = refused.header("WWW-Authenticate").unwrap();
        assert!(challenge.contains("invalid_token"), "{challenge}");
    }

    // A refresh binds the next access token to the certificate presented then.
    let refresh = answer["refresh_token"].as_str().unwrap();
    let rotate = [("grant_type", "refresh_token"), ("refresh_token", refresh)];
    let refused = token_with(&host, WEB_ID, &rotate, None);
    assert_eq!(refusal(&refused), (400, "invalid_request".into()));
    let next = token_with(&host, WEB_ID, &rotate, chained(OTHER_CERT));
    assert_eq!(next.status, 200, "{}", next.body);
    let next = body(&next)["access_token"].as_str().unwrap().to_owned();
    assert_eq!(userinfo(&host, &next, chained(OTHER_CERT)).status, 200);
    assert_eq!(userinfo(&host, &next, chained(CLIENT_CERT)).status, 401);
}

#[test]
fn a_bound_jwt_access_token_carries_the_certificates_thumbprint() {
    let host = TestHost::new();
    host.use_jwt_access_tokens(WEB_ID);
    let code = bound_code(&host, WEB_ID, "read");
    let redeem = redemption(&code, WEB_REDIRECT);
    let answer = token_with(&host, WEB_ID, &redeem, chained(CLIENT_CERT));
    assert_eq!(answer.status, 200, "{}", answer.body);
    let access = body(&answer)["access_token"].as_str().unwrap().to_owned();
    let (_, claims) = super::openid::jws(&access);
    let thumbprint = crate::Certificate {
        der: CLIENT_CERT.to_vec(),
        chained: true,
    }
    .thumbprint();
    assert_eq!(claims["cnf"], serde_json::json!({ "x5t#S256": thumbprint }));
}

/// RFC 8705 section 4: a public client proves nothing but its certificate, so its refresh
/// tokens are bound to the one it redeemed the code with.
#[test]
fn a_public_clients_refresh_tokens_are_bound_to_its_certificate() {
    let host = TestHost::new();
    let code = bound_code(&host, NATIVE_ID, "offline_access read");
    let public = |params: &[(&str, &str)], cert| token_with(&host, NATIVE_ID, params, cert);
    let redeemed = public(&redemption(&code, NATIVE_REDIRECT), chained(CLIENT_CERT));
    assert_eq!(redeemed.status, 200, "{}", redeemed.body);
    let refresh = body(&redeemed)["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let rotate = [
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh.as_str()),
    ];
    let stolen = public(&rotate, chained(OTHER_CERT));
    assert_eq!(refusal(&stolen), (400, "invalid_grant".into()));
    let refreshed = public(&rotate, chained(CLIENT_CERT));
    assert_eq!(refreshed.status, 200, "{}", refreshed.body);
}
