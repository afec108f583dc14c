//! A failing guest costs one request a 500 and nothing more: traps, endless loops, unbounded
//! allocation and invalid responses are contained, logged with the guest's name, counted,
//! and the next request is served.

use crate::harness::*;
use std::time::{Duration, Instant};

const GUEST: &str = "misbehaving-test-guest";
/// How a failure's log line names the guest: its name and version as fields.
const GUEST_FIELDS: &str = r#""guest":"misbehaving-test-guest","version":"0.1.0""#;

fn misbehaving_host() -> Host {
    Host::with_config(&config(&misbehaving_guest(), ""))
}

async fn behave(host: &Host, how: &str) -> Reply {
    host.post("/api/v1/oauth/token", &[("behave", how)], None)
        .await
}

async fn next_request_is_served(host: &Host) {
    let reply = behave(host, "ok").await;
    assert_eq!((reply.status, reply.body.as_str()), (200, r#"{"ok":true}"#));
}

#[tokio::test]
async fn a_trap_is_a_500_logged_with_the_guest_name_and_the_trap() {
    let host = misbehaving_host();
    let reply = behave(&host, "trap").await;
    reply.assert_error(500, "server_error");
    assert!(
        !reply.body.contains("unreachable"),
        "trap details stay in the log: {}",
        reply.body
    );
    let line = host.wait_for_log("guest trapped", Duration::from_secs(5));
    assert!(
        line.contains(GUEST_FIELDS) && line.contains("\"export\":\"token\""),
        "{line}"
    );
    assert!(
        line.contains("unreachable"),
        "the trap itself is named: {line}"
    );
    next_request_is_served(&host).await;
}

#[tokio::test]
async fn an_endless_loop_is_stopped_at_the_deadline() {
    let host = misbehaving_host();
    let start = Instant::now();
    behave(&host, "loop")
        .await
        .assert_error(500, "server_error");
    // The deadline is 500 ms; the bound only guards against a hang.
    assert!(start.elapsed() < Duration::from_secs(10));
    let line = host.wait_for_log("deadline", Duration::from_secs(5));
    assert!(line.contains(GUEST_FIELDS), "{line}");
    next_request_is_served(&host).await;
}

#[tokio::test]
async fn a_loop_over_store_calls_is_stopped_at_the_deadline() {
    let host = misbehaving_host();
    behave(&host, "store-loop")
        .await
        .assert_error(500, "server_error");
    next_request_is_served(&host).await;
}

#[tokio::test]
async fn unbounded_allocation_hits_the_memory_cap() {
    let host = misbehaving_host();
    behave(&host, "alloc")
        .await
        .assert_error(500, "server_error");
    host.wait_for_log("guest trapped", Duration::from_secs(5));
    next_request_is_served(&host).await;
}

#[tokio::test]
async fn an_invalid_guest_response_is_a_500_not_a_forged_header() {
    let host = misbehaving_host();
    let reply = behave(&host, "bad-header").await;
    reply.assert_error(500, "server_error");
    assert!(reply.headers.get("injected").is_none());
    host.wait_for_log("invalid response", Duration::from_secs(5));
    next_request_is_served(&host).await;
}

#[tokio::test]
async fn a_guest_asking_for_too_much_randomness_is_trapped_by_the_host() {
    let host = misbehaving_host();
    behave(&host, "big-random")
        .await
        .assert_error(500, "server_error");
    let line = host.wait_for_log("guest trapped", Duration::from_secs(5));
    assert!(
        line.contains("random.bytes asked for 1048576 bytes"),
        "{line}"
    );
    next_request_is_served(&host).await;
}

#[tokio::test]
async fn a_guest_sees_no_environment_arguments_or_files() {
    // The host's own environment is not empty, so an inherited one would show.
    let host = misbehaving_host();
    let reply = behave(&host, "probe-sandbox").await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(
        reply.json(),
        serde_json::json!({ "env": 0, "args": 0, "root_listing": false, "read_file": false })
    );
}

#[tokio::test]
async fn batched_reads_and_ttls_work_across_keys_of_any_slot() {
    let host = misbehaving_host();
    let reply = behave(&host, "batch").await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(
        reply.json(),
        serde_json::json!({ "intact": 50, "ttl_ok": true, "absent": true })
    );
}

#[tokio::test]
async fn failures_are_counted_by_guest_and_reason() {
    let host = misbehaving_host();
    behave(&host, "trap").await;
    behave(&host, "trap").await;
    behave(&host, "loop").await;
    let metrics = host.get("/metrics").await;
    let count = |reason: &str| {
        metric(
            &metrics.body,
            "tokenginx_guest_failures_total",
            &[("guest", GUEST), ("version", "0.1.0"), ("reason", reason)],
        )
    };
    assert_eq!(count("trap"), Some(2.0));
    assert_eq!(count("deadline"), Some(1.0));
}

/// The isolation guarantee: every request runs in a fresh instance, so what one request
/// leaves in guest memory (a static, a leaked heap buffer) is not there for the next.
#[tokio::test]
async fn nothing_a_request_leaves_in_guest_memory_reaches_the_next() {
    let host = misbehaving_host();
    for secret in ["first-request-secret", "second-request-secret", "third"] {
        assert_eq!(remember(&host, secret).await, serde_json::Value::Null);
    }
}

/// Leaves `secret` in the misbehaving guest's memory; what an earlier request left there.
pub async fn remember(host: &Host, secret: &str) -> serde_json::Value {
    let reply = host
        .post(
            "/api/v1/oauth/token",
            &[("behave", "remember"), ("secret", secret)],
            None,
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.json()["found"].clone()
}

/// The same for the guest's shadow stack: a secret one request left in a stack frame is not
/// below the next request's frames, though the guest finds its own there (the search works).
#[tokio::test]
async fn nothing_a_request_leaves_on_the_guest_stack_reaches_the_next() {
    let host = misbehaving_host();
    // The last request's secret is only searched for.
    let secrets = [
        "stack-secret-one-0123456789",
        "stack-secret-two-0123456789",
        "stack-three",
        "",
    ];
    let mut probe = "";
    for secret in secrets {
        let reply = host
            .post(
                "/api/v1/oauth/token",
                &[("behave", "stack"), ("secret", secret), ("probe", probe)],
                None,
            )
            .await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        let found = reply.json();
        assert_eq!(
            found["found_own"],
            !secret.is_empty(),
            "the search must find this call's own secret"
        );
        assert_eq!(
            found["found_probe"], false,
            "{probe:?} survived its request"
        );
        probe = secret;
    }
}

/// And for the guest's table: a function reference one request stores in it, and the slot it
/// grows it by, are gone for the next, though the guest sees its own (the check works).
#[tokio::test]
async fn nothing_a_request_leaves_in_the_guest_table_reaches_the_next() {
    let guest = crate::table_guest::table_guest(&scratch_dir());
    // One call at a time (the pool keeps one more slot, for a reload's `info`), so later
    // requests take slots earlier ones used.
    let one_slot = config(&guest, "").replace("max_instances: 64", "max_instances: 1");
    assert!(one_slot.contains("max_instances: 1\n"));
    let host = Host::with_config(&one_slot);
    for path in ["token", "introspect", "revoke", "introspect"] {
        let reply = host
            .post(&format!("/api/v1/oauth/{path}"), &[("token", "x")], None)
            .await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        assert_eq!(
            reply.json(),
            serde_json::json!({ "size": 1, "slot": 0, "size_after": 2, "slot_after": 1 }),
            "{path}: on entry, the table must be as the module declares it"
        );
    }
}

#[tokio::test]
async fn a_huge_value_is_refused_by_the_store_limits_and_the_host_serves_on() {
    let host = misbehaving_host();
    let reply = behave(&host, "huge-value").await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let answer = reply.json()["store"].as_str().unwrap().to_owned();
    assert!(answer.starts_with("rejected:"), "{answer}");
    next_request_is_served(&host).await;
    let metrics = host.get("/metrics").await.body;
    assert!(
        metrics.contains("tokenginx_store_errors_total{kind=\"rejected\"} 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_guest_that_cannot_charge_rate_limits_is_warned_about_at_load() {
    // The misbehaving guest is built against 0.1.0, before `rate-limit`; the harness's
    // config gives every client a budget.
    let host = misbehaving_host();
    let log = host.log();
    let warning = log
        .lines()
        .find(|l| l.contains("does not import tokenginx:oauth/rate-limit"));
    assert!(
        warning.is_some_and(|l| l.contains("\"level\":\"WARN\"") && l.contains("is not enforced")),
        "{log}"
    );
    // The default guest charges budgets: no such warning.
    let default = Host::with_config(&config(&default_guest(), ""));
    assert!(!default
        .log()
        .contains("does not import tokenginx:oauth/rate-limit"));
}
