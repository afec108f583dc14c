//! Introspection, RFC 7662.

use crate::harness::*;
use std::time::Duration;

const INTROSPECT: &str = "/api/v1/oauth/introspect";

#[tokio::test]
async fn a_live_token_is_active_with_its_claims() {
    let host = Host::start();
    let token = host.issue((DEMO_ID, DEMO_SECRET), Some("read write")).await;
    let reply = host
        .post(
            INTROSPECT,
            &[("token", &token)],
            Some((OTHER_ID, OTHER_SECRET)),
        )
        .await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    let body = reply.json();
    assert_eq!(body["active"], true);
    assert_eq!(body["scope"], "read write");
    assert_eq!(body["client_id"], DEMO_ID);
    assert_eq!(body["sub"], DEMO_ID);
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["iss"], "http://issuer.test");
    let (iat, exp) = (body["iat"].as_u64().unwrap(), body["exp"].as_u64().unwrap());
    assert_eq!(exp, iat + 3600);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(iat <= now && now - iat < 60, "iat {iat} is now ({now})");
}

#[tokio::test]
async fn unknown_tokens_are_only_inactive() {
    let host = Host::start();
    for token in ["unknown", "a-b_c", "!!!"] {
        assert_eq!(
            host.introspect(token).await,
            serde_json::json!({ "active": false })
        );
    }
}

#[tokio::test]
async fn a_wrong_token_type_hint_still_finds_the_token() {
    let host = Host::start();
    let token = host.issue((DEMO_ID, DEMO_SECRET), None).await;
    let reply = host
        .post(
            INTROSPECT,
            &[("token", &token), ("token_type_hint", "refresh_token")],
            Some((DEMO_ID, DEMO_SECRET)),
        )
        .await;
    assert_eq!(reply.json()["active"], true);
}

#[tokio::test]
async fn introspection_needs_client_authentication() {
    let host = Host::start();
    let token = host.issue((DEMO_ID, DEMO_SECRET), None).await;
    let reply = host.post(INTROSPECT, &[("token", &token)], None).await;
    reply.assert_error(401, "invalid_client");
    let reply = host
        .post(INTROSPECT, &[("token", &token)], Some((DEMO_ID, "wrong")))
        .await;
    reply.assert_error(401, "invalid_client");
    host.post(INTROSPECT, &[], Some((DEMO_ID, DEMO_SECRET)))
        .await
        .assert_error(400, "invalid_request");
}

#[tokio::test]
async fn an_expired_token_is_inactive() {
    let host = Host::start();
    let token = host
        .issue(("short-lived", "short-lived-secret-0123"), None)
        .await;
    assert_eq!(host.introspect(&token).await["active"], true);
    // The token lives 1 s, counted in whole seconds: 2.1 s later it has expired for sure.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(
        host.introspect(&token).await,
        serde_json::json!({ "active": false })
    );
}
