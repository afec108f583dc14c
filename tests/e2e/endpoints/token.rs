//! The token endpoint: RFC 6749 sections 2.3, 3.2, 3.3, 4.4 and 5.

use crate::harness::*;

const TOKEN: &str = "/api/v1/oauth/token";

#[tokio::test]
async fn client_credentials_with_basic_auth_issues_a_bearer_token() {
    let host = Host::start();
    let reply = host
        .post(
            TOKEN,
            &[("grant_type", "client_credentials")],
            Some((DEMO_ID, DEMO_SECRET)),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.header("content-type"), Some("application/json"));
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    assert_eq!(reply.header("pragma"), Some("no-cache"));
    let body = reply.json();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3600);
    assert_eq!(
        body["scope"], "read",
        "omitted scope gives the default scopes"
    );
    let token = body["access_token"].as_str().unwrap();
    assert!(
        token.len() >= 43
            && token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    );
}

#[tokio::test]
async fn client_secret_post_works_too() {
    let host = Host::start();
    let reply = host
        .post(
            TOKEN,
            &[
                ("grant_type", "client_credentials"),
                ("client_id", DEMO_ID),
                ("client_secret", DEMO_SECRET),
                ("scope", "write read"),
            ],
            None,
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json()["scope"], "read write");
}

#[tokio::test]
async fn basic_credentials_are_form_decoded() {
    let host = Host::start();
    let reply = host
        .post(
            TOKEN,
            &[("grant_type", "client_credentials"), ("scope", "admin")],
            Some((ODD_ID, ODD_SECRET)),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
}

#[tokio::test]
async fn bad_credentials_are_invalid_client_with_a_challenge_when_basic_was_used() {
    let host = Host::start();
    let reply = host
        .post(
            TOKEN,
            &[("grant_type", "client_credentials")],
            Some((DEMO_ID, "wrong-secret")),
        )
        .await;
    reply.assert_error(401, "invalid_client");
    assert!(reply
        .header("www-authenticate")
        .unwrap()
        .starts_with("Basic "));

    let reply = host
        .post(
            TOKEN,
            &[
                ("grant_type", "client_credentials"),
                ("client_id", DEMO_ID),
                ("client_secret", "wrong"),
            ],
            None,
        )
        .await;
    reply.assert_error(401, "invalid_client");
    assert_eq!(reply.header("www-authenticate"), None);

    let reply = host
        .post(TOKEN, &[("grant_type", "client_credentials")], None)
        .await;
    reply.assert_error(401, "invalid_client");
    assert!(
        reply.header("www-authenticate").is_some(),
        "no authentication sent: challenge"
    );

    let reply = host
        .post(
            TOKEN,
            &[("grant_type", "client_credentials")],
            Some(("nobody", DEMO_SECRET)),
        )
        .await;
    reply.assert_error(401, "invalid_client");
}

#[tokio::test]
async fn request_errors_follow_section_5_2() {
    let host = Host::start();
    let demo = Some((DEMO_ID, DEMO_SECRET));
    host.post(TOKEN, &[], demo)
        .await
        .assert_error(400, "invalid_request");
    host.post(TOKEN, &[("grant_type", "password")], demo)
        .await
        .assert_error(400, "unsupported_grant_type");
    host.post(
        TOKEN,
        &[
            ("grant_type", "client_credentials"),
            ("scope", "read admin"),
        ],
        demo,
    )
    .await
    .assert_error(400, "invalid_scope");
    host.post(
        TOKEN,
        &[("grant_type", "client_credentials")],
        Some(("resource-server", "resource-server-secret-0123")),
    )
    .await
    .assert_error(400, "unauthorized_client");
    // A client without default scopes that asks for none.
    host.post(
        TOKEN,
        &[("grant_type", "client_credentials")],
        Some((ODD_ID, ODD_SECRET)),
    )
    .await
    .assert_error(400, "invalid_scope");
    // Two authentication methods at once.
    host.post(
        TOKEN,
        &[
            ("grant_type", "client_credentials"),
            ("client_secret", DEMO_SECRET),
        ],
        demo,
    )
    .await
    .assert_error(400, "invalid_request");
}

#[tokio::test]
async fn a_repeated_parameter_is_invalid_request() {
    let host = Host::start();
    let reply = host
        .post(
            TOKEN,
            &[
                ("grant_type", "client_credentials"),
                ("grant_type", "client_credentials"),
            ],
            Some((DEMO_ID, DEMO_SECRET)),
        )
        .await;
    reply.assert_error(400, "invalid_request");
    assert!(reply.json()["error_description"]
        .as_str()
        .unwrap()
        .contains("grant_type"));
}
