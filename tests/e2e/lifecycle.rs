//! Health, metrics, logs, timeouts and graceful shutdown.

use crate::h2;
use crate::harness::*;
use std::io::{Read, Write};
use std::time::{Duration, Instant};

#[tokio::test]
async fn health_probes_answer() {
    let host = Host::start();
    let live = host.get("/health/live").await;
    assert_eq!(
        (live.status, live.json()["status"].as_str()),
        (200, Some("ok"))
    );
    let ready = host.get("/health/ready").await;
    assert_eq!(ready.status, 200);
    assert_eq!(ready.json()["guest"], "tokenginx-guest@0.1.0");
}

#[tokio::test]
async fn the_seed_metrics_count_tokens_and_store_operations() {
    let host = Host::start();
    let token = host.issue((DEMO_ID, DEMO_SECRET), None).await;
    host.issue((DEMO_ID, DEMO_SECRET), None).await;
    host.introspect(&token).await;
    host.introspect("unknown").await;
    let reply = host.get("/metrics").await;
    assert!(reply
        .header("content-type")
        .unwrap()
        .starts_with("text/plain; version=0.0.4"));
    let metrics = scrape(&reply.body);
    assert_eq!(
        metric(&reply.body, "tokenginx_token_created_total", &[]),
        Some(2.0)
    );
    assert_eq!(
        metric(&reply.body, "tokenginx_token_retrieved_total", &[]),
        Some(1.0)
    );
    let inserts = metrics
        .samples
        .iter()
        .find(|s| {
            s.metric == "tokenginx_operation_duration_seconds"
                && s.labels.get("operation") == Some("insert")
        })
        .expect("insert latency");
    match &inserts.value {
        prometheus_parse::Value::Histogram(buckets) => {
            let bounds: Vec<f64> = buckets.iter().map(|b| b.less_than).collect();
            assert_eq!(bounds[0], 0.001, "buckets start at 1 ms");
            assert_eq!(bounds.len(), 11, "10 buckets and +Inf");
            assert_eq!(buckets.last().unwrap().count, 2.0);
        }
        other => panic!("not a histogram: {other:?}"),
    }
    // Nothing secret in any label or value.
    assert!(!reply.body.contains(&token) && !reply.body.contains(DEMO_SECRET));
}

#[tokio::test]
async fn metrics_can_move_or_be_disabled() {
    let host = Host::with_config(&format!(
        "{}metrics:\n  path: /internal/metrics\n",
        config(&default_guest(), "")
    ));
    assert_eq!(host.get("/internal/metrics").await.status, 200);
    assert_eq!(host.get("/metrics").await.status, 404);
    let host = Host::with_config(&format!(
        "{}metrics:\n  enabled: false\n",
        config(&default_guest(), "")
    ));
    assert_eq!(host.get("/metrics").await.status, 404);
}

#[tokio::test]
async fn no_token_or_secret_reaches_the_log() {
    let host = Host::start();
    let token = host.session().await;
    host.post(
        "/api/v1/oauth/token",
        &[
            ("grant_type", "client_credentials"),
            ("client_id", DEMO_ID),
            ("client_secret", "wrong-secret-xyz"),
        ],
        None,
    )
    .await;
    // The last request's log line: everything before it has been read too.
    host.wait_for_log("\"status\":401", Duration::from_secs(10));
    let log = host.log();
    assert!(
        log.contains("\"route\":\"revoke\""),
        "requests are logged: {log}"
    );
    for secret in [
        token.as_str(),
        DEMO_SECRET,
        "wrong-secret-xyz",
        OTHER_SECRET,
    ] {
        assert!(!log.contains(secret), "{secret} is in the log");
    }
}

#[tokio::test]
async fn an_incomplete_request_head_is_cut_off_at_the_read_timeout() {
    let host = Host::with_config(&config(&default_guest(), "  read_timeout: 300ms"));
    let addr = host.addr.clone();
    let (closed_after, answer) = tokio::task::spawn_blocking(move || {
        let start = Instant::now();
        let answer = raw_exchange(
            &addr,
            b"POST /api/v1/oauth/token HTTP/1.1\r\nHost: x\r\n",
            Duration::from_secs(20),
        );
        (start.elapsed(), answer)
    })
    .await
    .unwrap();
    assert!(
        closed_after < Duration::from_secs(20),
        "the server closed the connection itself"
    );
    assert!(!answer.contains("200 OK"), "{answer}");
    host.issue((DEMO_ID, DEMO_SECRET), None).await;
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_at_the_idle_timeout() {
    let host = Host::with_config(&config(&default_guest(), "  idle_timeout: 300ms"));
    let addr = host.addr.clone();
    let closed = tokio::task::spawn_blocking(move || {
        let mut stream = std::net::TcpStream::connect(&addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        stream
            .write_all(b"GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let mut buf = [0u8; 4096];
        let n = stream.read(&mut buf).unwrap();
        assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
        let start = Instant::now();
        // Now idle: the server must close (read returns 0) well before our 20 s guard.
        let n = stream.read(&mut buf).unwrap_or(0);
        (n, start.elapsed())
    })
    .await
    .unwrap();
    assert_eq!(closed.0, 0, "connection closed by the server");
    assert!(closed.1 < Duration::from_secs(20));
}

#[test]
fn sigterm_drains_an_in_flight_request_then_exits_cleanly() {
    let mut host = Host::start();
    let mut stream = std::net::TcpStream::connect(&host.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let body = form_encode(&[("grant_type", "client_credentials")]);
    let head = format!(
        "POST /api/v1/oauth/token HTTP/1.1\r\nHost: x\r\nAuthorization: {}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n",
        basic_header(DEMO_ID, DEMO_SECRET),
        body.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    // `100 Continue` means the handler is running and waiting for the body: in flight.
    let mut buf = [0u8; 1024];
    let n = stream.read(&mut buf).unwrap();
    assert!(
        String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 100"),
        "{}",
        String::from_utf8_lossy(&buf[..n])
    );

    host.terminate();
    host.wait_for_log("shutting down", Duration::from_secs(10));
    // New connections are no longer accepted...
    assert!(
        std::net::TcpStream::connect(&host.addr).is_err(),
        "the listener is closed"
    );
    // ...but the request in flight completes.
    stream.write_all(body.as_bytes()).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("access_token"));
    let status = host.wait_exit(Duration::from_secs(15));
    assert!(status.success(), "{status:?}");
}

#[tokio::test]
async fn an_idle_h2c_connection_lives_past_the_read_timeout_and_closes_with_a_goaway() {
    let host = Host::with_config(&config(
        &default_guest(),
        "  read_timeout: 300ms\n  idle_timeout: 5s",
    ));
    let addr = host.addr.clone();
    let frames_after_idle = tokio::task::spawn_blocking(move || {
        let mut client = h2::Client::connect(h2::plain(&addr));
        client.get(1, true);
        client.response(1);
        // What a healthy client sends while idle, for four read timeouts: none begins a
        // request head.
        client.send(h2::SETTINGS, 0x1, 0, &[]);
        for _ in 0..12 {
            client.send(h2::PING, 0, 0, &[0; 8]);
            client.send(h2::WINDOW_UPDATE, 0, 0, &1024u32.to_be_bytes());
            std::thread::sleep(Duration::from_millis(100));
        }
        client.get(3, true);
        client.response(3);
        // Idle now: the server closes at the idle timeout, saying so.
        let mut kinds = Vec::new();
        while let Some(frame) = client.next() {
            kinds.push(frame.kind);
        }
        kinds
    })
    .await
    .unwrap();
    assert!(
        frames_after_idle.contains(&h2::GOAWAY),
        "no GOAWAY before the close: {frames_after_idle:?}"
    );
}

#[tokio::test]
async fn a_stalled_h2c_head_after_the_first_request_is_cut_at_the_read_timeout() {
    let host = Host::with_config(&config(
        &default_guest(),
        "  read_timeout: 300ms\n  idle_timeout: 60s",
    ));
    let addr = host.addr.clone();
    let closed = tokio::task::spawn_blocking(move || {
        let mut client = h2::Client::connect(h2::plain(&addr));
        client.get(1, true);
        client.response(1);
        client.get(3, false);
        let start = Instant::now();
        while client.next().is_some() {}
        start.elapsed()
    })
    .await
    .unwrap();
    assert!(
        closed < Duration::from_secs(20),
        "the unfinished head was allowed to wait for the idle timeout"
    );
}
