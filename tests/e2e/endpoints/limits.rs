//! What one client can make the service hold: its rate limit on the token endpoint, shared
//! by every host on one store, and the embedded store's cap.

use crate::harness::*;

#[tokio::test]
async fn a_client_over_its_rate_limit_gets_429_with_retry_after_and_is_counted() {
    let host = Host::start();
    // Requests that fail to authenticate spend nothing: no one else can use up a budget.
    for _ in 0..3 {
        host.request_token((LIMITED_ID, "not-the-secret-0123456"), None)
            .await
            .assert_error(401, "invalid_client");
    }
    for _ in 0..2 {
        host.issue((LIMITED_ID, LIMITED_SECRET), None).await;
    }
    let refused = host.request_token((LIMITED_ID, LIMITED_SECRET), None).await;
    refused.assert_error(429, "temporarily_unavailable");
    let retry_after: u64 = refused
        .header("retry-after")
        .expect("a Retry-After header")
        .parse()
        .expect("whole seconds");
    assert!(
        (3000..=3600).contains(&retry_after),
        "one request an hour: {retry_after}"
    );
    // Other clients keep their own budgets.
    host.issue((DEMO_ID, DEMO_SECRET), None).await;
    let metrics = host.get("/metrics").await.body;
    assert_eq!(
        metric(
            &metrics,
            "tokenginx_rate_limited_total",
            &[("client_id", LIMITED_ID)]
        ),
        Some(1.0)
    );
    assert_eq!(
        metric(
            &metrics,
            "tokenginx_rate_limited_total",
            &[("client_id", DEMO_ID)]
        ),
        None,
        "a client never refused has no series"
    );
}

#[tokio::test]
async fn every_host_on_one_store_shares_a_clients_budget() {
    let store = std::env::var("TOKENGINX_TEST_STORE");
    if !matches!(store.as_deref(), Ok("standalone" | "cluster")) {
        // Each host's embedded store is its own: nothing is shared to test.
        return;
    }
    let first = Host::start();
    let second = Host::start();
    first.issue((SHARED_LIMIT_ID, LIMITED_SECRET), None).await;
    second.issue((SHARED_LIMIT_ID, LIMITED_SECRET), None).await;
    for host in [&first, &second] {
        host.request_token((SHARED_LIMIT_ID, LIMITED_SECRET), None)
            .await
            .assert_error(429, "temporarily_unavailable");
    }
}

#[tokio::test]
async fn a_full_embedded_store_refuses_new_tokens_with_503_and_stays_ready_saying_why() {
    let config = config_with_store(
        &default_guest(),
        "",
        // Three tokens, and the host's sealing keys.
        "tokenginx:\n  mode: memory\n  max_entries: 4\n",
    );
    let host = Host::with_config(&config);
    let tokens = [
        host.issue((DEMO_ID, DEMO_SECRET), None).await,
        host.issue((DEMO_ID, DEMO_SECRET), None).await,
        host.issue((DEMO_ID, DEMO_SECRET), None).await,
    ];
    host.request_token((DEMO_ID, DEMO_SECRET), None)
        .await
        .assert_error(503, "temporarily_unavailable");
    // Still ready: it introspects and revokes what it holds, and no other replica holds
    // its tokens. The store's state is in the answer and in a metric, for alerts.
    let ready = host.get("/health/ready").await;
    assert_eq!(ready.status, 200);
    assert_eq!(ready.json()["store"], "full");
    let metrics = host.get("/metrics").await.body;
    assert_eq!(metric(&metrics, "tokenginx_store_full", &[]), Some(1.0));
    // Nothing held is lost, and what is held can still be read and revoked.
    for token in &tokens {
        assert_eq!(host.introspect(token).await["active"], true);
    }
    let revoked = host
        .post(
            "/api/v1/oauth/revoke",
            &[("token", &tokens[0])],
            Some((DEMO_ID, DEMO_SECRET)),
        )
        .await;
    assert_eq!(revoked.status, 200);
    assert_eq!(host.get("/health/ready").await.json()["store"], "ok");
    host.issue((DEMO_ID, DEMO_SECRET), None).await;
}
