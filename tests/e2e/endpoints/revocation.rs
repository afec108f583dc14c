//! Revocation, RFC 7009.

use crate::harness::*;

const REVOKE: &str = "/api/v1/oauth/revoke";

#[tokio::test]
async fn a_client_revokes_its_own_token() {
    let host = Host::start();
    let token = host.issue((DEMO_ID, DEMO_SECRET), None).await;
    let reply = host
        .post(REVOKE, &[("token", &token)], Some((DEMO_ID, DEMO_SECRET)))
        .await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body, "");
    assert_eq!(
        host.introspect(&token).await,
        serde_json::json!({ "active": false })
    );
}

#[tokio::test]
async fn unknown_tokens_answer_200() {
    let host = Host::start();
    let reply = host
        .post(
            REVOKE,
            &[("token", "never-issued")],
            Some((DEMO_ID, DEMO_SECRET)),
        )
        .await;
    assert_eq!(reply.status, 200);
}

#[tokio::test]
async fn another_clients_token_stays_active_and_the_answer_is_still_200() {
    let host = Host::start();
    let token = host.issue((DEMO_ID, DEMO_SECRET), None).await;
    let reply = host
        .post(REVOKE, &[("token", &token)], Some((OTHER_ID, OTHER_SECRET)))
        .await;
    assert_eq!(reply.status, 200);
    assert_eq!(host.introspect(&token).await["active"], true);
}

#[tokio::test]
async fn revocation_needs_client_authentication() {
    let host = Host::start();
    let token = host.issue((DEMO_ID, DEMO_SECRET), None).await;
    host.post(REVOKE, &[("token", &token)], None)
        .await
        .assert_error(401, "invalid_client");
    host.post(REVOKE, &[], Some((DEMO_ID, DEMO_SECRET)))
        .await
        .assert_error(400, "invalid_request");
    assert_eq!(host.introspect(&token).await["active"], true);
}
