//! Refresh tokens over real HTTP (RFC 6749 section 6; RFC 9700 section 4.14): rotation,
//! reuse detection that ends the grant, concurrent refreshes, the reuse grace, scope,
//! revocation and lifetimes. Runs against each store (see `make test`).

use crate::authorization_code::{
    code_for, flow_host_with, redeem, ADMIN_KEY, OTHER_WEB_ID, WEB_ID, WEB_SECRET,
};
use crate::harness::*;
use crate::redis::shared_store_keys;
use std::time::Duration;

const WEB: (&str, &str) = (WEB_ID, WEB_SECRET);
const OFFLINE: [&str; 3] = ["offline_access", "read", "write"];

/// A host with the login app, the web clients, and `oauth_extra` in the `oauth` section.
fn refresh_host(oauth_extra: &str) -> (Host, String) {
    flow_host_with(
        oauth_extra,
        &format!("admin:\n  port: 0\n  api_key: {ADMIN_KEY}\n"),
    )
}

/// Alice's consent to `scope` for the web client, redeemed: the token response.
async fn tokens_for(host: &Host, admin: &str, scope: &[&str]) -> serde_json::Value {
    let code = code_for(host, admin, scope).await;
    let reply = redeem(host, &code).await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.json()
}

async fn refresh_as(
    host: &Host,
    client: (&str, &str),
    token: &str,
    extra: &[(&str, &str)],
) -> Reply {
    let mut params = vec![("grant_type", "refresh_token"), ("refresh_token", token)];
    params.extend_from_slice(extra);
    host.post("/api/v1/oauth/token", &params, Some(client))
        .await
}

async fn refresh(host: &Host, token: &str) -> Reply {
    refresh_as(host, WEB, token, &[]).await
}

/// The access token and refresh token of a successful token response.
fn pair(reply: &Reply) -> (String, String) {
    assert_eq!(reply.status, 200, "{}", reply.body);
    let body = reply.json();
    (
        body["access_token"].as_str().unwrap().to_owned(),
        body["refresh_token"].as_str().unwrap().to_owned(),
    )
}

fn field(body: &serde_json::Value, name: &str) -> String {
    body[name].as_str().unwrap().to_owned()
}

async fn active(host: &Host, token: &str) -> bool {
    host.introspect(token).await["active"] == true
}

async fn revoke(host: &Host, token: &str, hint: &str) {
    let reply = host
        .post(
            "/api/v1/oauth/revoke",
            &[("token", token), ("token_type_hint", hint)],
            Some(WEB),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
}

async fn refreshes(host: &Host, result: &str) -> Option<f64> {
    let metrics = host.get("/metrics").await.body;
    metric(&metrics, "tokenginx_refreshes_total", &[("result", result)])
}

#[tokio::test]
async fn a_refresh_rotates_both_tokens_and_a_rotated_token_coming_back_ends_the_grant() {
    let (host, admin) = refresh_host("");
    let online = tokens_for(&host, &admin, &["read"]).await;
    assert!(
        online.get("refresh_token").is_none(),
        "no offline_access, no refresh token: {online}"
    );
    let first = tokens_for(&host, &admin, &OFFLINE).await;
    let (access0, refresh0) = (
        field(&first, "access_token"),
        field(&first, "refresh_token"),
    );

    let (access1, refresh1) = pair(&refresh(&host, &refresh0).await);
    assert_ne!(refresh1, refresh0);
    let seen = host.introspect(&access1).await;
    assert_eq!(seen["active"], true);
    assert_eq!(seen["sub"], "alice");
    assert_eq!(seen["client_id"], WEB_ID);
    assert_eq!(seen["scope"], "offline_access read write");
    assert_eq!(
        seen["ext"]["team"], "blue",
        "the consent's claims carry over"
    );
    let seen = host.introspect(&refresh1).await;
    assert_eq!(seen["active"], true);
    assert_eq!(seen["token_type"], "refresh_token");
    assert_eq!(seen["token_use"], "refresh_token");
    assert_eq!(seen["sub"], "alice");
    assert_eq!(seen["client_id"], WEB_ID);
    assert!(!active(&host, &refresh0).await, "the used token is dead");
    assert!(
        active(&host, &access0).await,
        "earlier access tokens live on"
    );

    // The old token comes back: reuse, which ends the grant and every token of it.
    refresh(&host, &refresh0)
        .await
        .assert_error(400, "invalid_grant");
    for token in [&access0, &access1, &refresh1] {
        assert!(!active(&host, token).await);
    }
    refresh(&host, &refresh1)
        .await
        .assert_error(400, "invalid_grant");
    assert_eq!(refreshes(&host, "ok").await, Some(1.0));
    assert_eq!(refreshes(&host, "reused").await, Some(1.0));
    assert_eq!(refreshes(&host, "invalid_grant").await, Some(1.0));
    let line = host.wait_for_log("came back", Duration::from_secs(5));
    assert!(line.contains(WEB_ID) && line.contains("grant "), "{line}");
    let log = host.log();
    for token in [&refresh0, &refresh1, &access1] {
        let (_, secret) = token.rsplit_once('.').unwrap();
        assert!(!log.contains(secret), "a token in the log");
    }
}

#[tokio::test]
async fn of_32_concurrent_refreshes_with_one_token_exactly_one_succeeds() {
    let (host, admin) = refresh_host("");
    let first = tokens_for(&host, &admin, &OFFLINE).await;
    let token = field(&first, "refresh_token");
    let replies = futures_util::future::join_all((0..32).map(|_| refresh(&host, &token))).await;
    let winners: Vec<&Reply> = replies.iter().filter(|r| r.status == 200).collect();
    assert_eq!(
        winners.len(),
        1,
        "{:?}",
        replies.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    for loser in replies.iter().filter(|r| r.status != 200) {
        loser.assert_error(400, "invalid_grant");
    }
    // Without a grace, the losers presented a rotated token: a reuse, which ended the grant.
    let (_, refresh1) = pair(winners[0]);
    assert!(!active(&host, &refresh1).await);
    assert_eq!(refreshes(&host, "ok").await, Some(1.0));
}

#[tokio::test]
async fn within_the_grace_concurrent_refreshes_rotate_once_and_all_get_that_answer() {
    let (host, admin) = refresh_host("  refresh_token_reuse_grace: 1m\n");
    let first = tokens_for(&host, &admin, &OFFLINE).await;
    let token = field(&first, "refresh_token");
    let replies = futures_util::future::join_all((0..32).map(|_| refresh(&host, &token))).await;
    let answers: Vec<(String, String)> = replies.iter().map(pair).collect();
    assert!(
        answers.iter().all(|a| *a == answers[0]),
        "one rotation, one answer"
    );
    let (access1, refresh1) = answers[0].clone();
    assert!(active(&host, &access1).await && active(&host, &refresh1).await);
    assert_eq!(refreshes(&host, "ok").await, Some(1.0));
    assert_eq!(refreshes(&host, "replayed").await, Some(31.0));

    // Once the successor is rotated too, the old token is a reuse even within the grace.
    let (_, refresh2) = pair(&refresh(&host, &refresh1).await);
    refresh(&host, &token)
        .await
        .assert_error(400, "invalid_grant");
    assert!(!active(&host, &refresh2).await);
}

#[tokio::test]
async fn a_lost_response_is_answered_again_within_the_grace_and_ends_the_grant_without_one() {
    let (host, admin) = refresh_host("  refresh_token_reuse_grace: 1m\n");
    let first = tokens_for(&host, &admin, &OFFLINE).await;
    let token = field(&first, "refresh_token");
    let missed = pair(&refresh(&host, &token).await);
    assert_eq!(
        pair(&refresh(&host, &token).await),
        missed,
        "the answer it missed"
    );
    assert!(active(&host, &missed.1).await, "the grant lives on");
    // Off (the default): the same retry ends the grant.
    let (host, admin) = refresh_host("");
    let first = tokens_for(&host, &admin, &OFFLINE).await;
    let token = field(&first, "refresh_token");
    let (_, successor) = pair(&refresh(&host, &token).await);
    refresh(&host, &token)
        .await
        .assert_error(400, "invalid_grant");
    assert!(!active(&host, &successor).await);
}

#[tokio::test]
async fn scope_may_narrow_an_access_token_never_widen_it_and_the_grant_keeps_its_scope() {
    let (host, admin) = refresh_host("");
    let first = tokens_for(&host, &admin, &OFFLINE).await;
    let narrowed = refresh_as(
        &host,
        WEB,
        &field(&first, "refresh_token"),
        &[("scope", "read")],
    )
    .await;
    let (access, token) = pair(&narrowed);
    assert_eq!(narrowed.json()["scope"], "read");
    assert_eq!(host.introspect(&access).await["scope"], "read");
    refresh_as(&host, WEB, &token, &[("scope", "read admin")])
        .await
        .assert_error(400, "invalid_scope");
    let (access, _) = pair(&refresh(&host, &token).await);
    assert_eq!(
        host.introspect(&access).await["scope"],
        "offline_access read write"
    );
}

#[tokio::test]
async fn another_clients_refresh_token_is_invalid_grant_and_stays_usable_by_its_own() {
    let (host, admin) = refresh_host("");
    let first = tokens_for(&host, &admin, &OFFLINE).await;
    let token = field(&first, "refresh_token");
    refresh_as(&host, (OTHER_WEB_ID, WEB_SECRET), &token, &[])
        .await
        .assert_error(400, "invalid_grant");
    let other_revokes = host
        .post(
            "/api/v1/oauth/revoke",
            &[("token", &token)],
            Some((OTHER_WEB_ID, WEB_SECRET)),
        )
        .await;
    assert_eq!(other_revokes.status, 200, "RFC 7009 tells nothing");
    assert_eq!(refresh(&host, &token).await.status, 200);
}

#[tokio::test]
async fn revoking_a_refresh_token_ends_its_grant_and_an_access_token_only_itself() {
    let (host, admin) = refresh_host("");
    let first = tokens_for(&host, &admin, &OFFLINE).await;
    let (access1, refresh1) = pair(&refresh(&host, &field(&first, "refresh_token")).await);
    // A wrong hint still finds the token.
    revoke(&host, &access1, "refresh_token").await;
    assert!(!active(&host, &access1).await);
    assert!(active(&host, &refresh1).await, "the grant lives on");
    let (access2, refresh2) = pair(&refresh(&host, &refresh1).await);
    revoke(&host, &refresh2, "access_token").await;
    for token in [field(&first, "access_token"), access2, refresh2.clone()] {
        assert!(!active(&host, &token).await);
    }
    refresh(&host, &refresh2)
        .await
        .assert_error(400, "invalid_grant");
}

#[tokio::test]
async fn refresh_fails_after_the_grants_lifetime_and_the_store_then_holds_nothing_of_it() {
    // Lifetimes long enough for the refresh below to come well within them on a busy
    // machine; short enough to wait out.
    let (host, admin) = refresh_host("  refresh_token_ttl: 3s\n  grant_max_lifetime: 4s\n");
    let code = code_for(&host, &admin, &OFFLINE).await;
    let started = std::time::Instant::now();
    let reply = redeem(&host, &code).await;
    let (_, token) = pair(&reply);
    let (access, token) = pair(&refresh(&host, &token).await);
    assert!(
        reply.json()["expires_in"].as_u64().unwrap() <= 4,
        "capped by the grant's end"
    );
    // The grant's hash tag: the digest of the access id, its access tokens' first part.
    let access_id = access.split_once('.').unwrap().0;
    let tag = format!("*{{{}}}*", sha256_hex(access_id.as_bytes()));
    if let Some(keys) = shared_store_keys(&tag) {
        assert_eq!(
            keys.len(),
            3,
            "the grant and its two access tokens: {keys:?}"
        );
    }
    tokio::time::sleep(Duration::from_secs(5).saturating_sub(started.elapsed())).await;
    refresh(&host, &token)
        .await
        .assert_error(400, "invalid_grant");
    assert!(!active(&host, &access).await);
    // Everything the grant wrote expired through the store's TTL, with nothing to clean up:
    // its records, and the marker its code left.
    if let Some(keys) = shared_store_keys(&tag) {
        assert_eq!(keys, Vec::<String>::new());
        let marker = format!("oauth:code_redeemed:{{{}}}", sha256_hex(code.as_bytes()));
        assert_eq!(shared_store_keys(&marker), Some(vec![]));
    }
}
