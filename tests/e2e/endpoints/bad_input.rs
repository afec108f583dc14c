//! Hostile or broken requests: each gets a 4xx, and the service keeps serving.

use crate::harness::*;
use std::time::Duration;

const TOKEN: &str = "/api/v1/oauth/token";
const INTROSPECT: &str = "/api/v1/oauth/introspect";

/// POSTs a raw body to `path` with Basic demo credentials.
async fn post_raw(host: &Host, path: &str, content_type: &str, body: Vec<u8>) -> Reply {
    let response = host
        .http
        .post(host.url(path))
        .header("Content-Type", content_type)
        .header("Authorization", basic_header(DEMO_ID, DEMO_SECRET))
        .body(body)
        .send()
        .await
        .expect("request");
    Reply::from(response).await
}

/// The service still issues tokens.
async fn still_serving(host: &Host) {
    host.issue((DEMO_ID, DEMO_SECRET), None).await;
}

#[tokio::test]
async fn a_10_mb_body_is_413_without_being_read() {
    let host = Host::start();
    // Only the head is sent: the answer must come from the declared length alone, and the
    // server must close the connection rather than wait for 10 MB.
    let head = format!(
        "POST {TOKEN} HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n",
        10 * 1024 * 1024
    );
    let answer = exchange(&host, head.into_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(
        answer.to_ascii_lowercase().contains("connection: close"),
        "{answer}"
    );
    still_serving(&host).await;
}

#[tokio::test]
async fn a_chunked_body_over_the_limit_is_413() {
    let host = Host::with_config(&config(&default_guest(), "  max_body_size: 1KiB"));
    // No length is declared: the limit must be enforced while reading.
    let chunk = "a".repeat(2048);
    let request = format!(
        "POST {TOKEN} HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n{:x}\r\n{chunk}\r\n0\r\n\r\n",
        chunk.len()
    );
    let answer = exchange(&host, request.into_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    still_serving(&host).await;
}

/// Sends `request` on a new connection and returns what the server answered until it
/// closed the connection.
async fn exchange(host: &Host, request: Vec<u8>) -> String {
    let addr = host.addr.clone();
    tokio::task::spawn_blocking(move || raw_exchange(&addr, &request, Duration::from_secs(20)))
        .await
        .unwrap()
}

#[tokio::test]
async fn a_wrong_content_type_is_invalid_request() {
    let host = Host::start();
    for content_type in [
        "application/json",
        "text/plain",
        "multipart/form-data; boundary=x",
    ] {
        post_raw(
            &host,
            TOKEN,
            content_type,
            b"grant_type=client_credentials".to_vec(),
        )
        .await
        .assert_error(400, "invalid_request");
    }
    // Parameters on the media type are fine.
    let reply = post_raw(
        &host,
        TOKEN,
        "application/x-www-form-urlencoded; charset=UTF-8",
        b"grant_type=client_credentials".to_vec(),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
}

#[tokio::test]
async fn malformed_encoding_and_invalid_utf8_are_invalid_request() {
    let host = Host::start();
    for body in [
        &b"grant_type=client%ZZcredentials"[..],
        b"grant_type=%",
        b"grant_type=\xff\xfe",
        b"grant_type=%C3%28",
    ] {
        post_raw(
            &host,
            TOKEN,
            "application/x-www-form-urlencoded",
            body.to_vec(),
        )
        .await
        .assert_error(400, "invalid_request");
    }
    still_serving(&host).await;
}

#[tokio::test]
async fn a_thousand_parameters_are_invalid_request() {
    let host = Host::start();
    let body: Vec<String> = (0..1000).map(|i| format!("p{i}=v")).collect();
    let reply = post_raw(
        &host,
        TOKEN,
        "application/x-www-form-urlencoded",
        body.join("&").into_bytes(),
    )
    .await;
    reply.assert_error(400, "invalid_request");
    still_serving(&host).await;
}

#[tokio::test]
async fn a_100_kb_token_is_refused_and_a_60_kb_one_is_inactive() {
    let host = Host::start();
    let huge = format!("token={}", "A".repeat(100 * 1024));
    post_raw(
        &host,
        INTROSPECT,
        "application/x-www-form-urlencoded",
        huge.into_bytes(),
    )
    .await
    .assert_error(413, "invalid_request");
    let big = "A".repeat(60 * 1024);
    assert_eq!(
        host.introspect(&big).await,
        serde_json::json!({ "active": false })
    );
    still_serving(&host).await;
}

#[tokio::test]
async fn crlf_in_a_client_id_is_invalid_client_and_reaches_no_header_or_log_line() {
    let host = Host::start();
    let reply = host
        .post(
            TOKEN,
            &[("grant_type", "client_credentials")],
            Some(("demo\r\nX-Injected: yes", DEMO_SECRET)),
        )
        .await;
    reply.assert_error(401, "invalid_client");
    assert!(reply.headers.get("x-injected").is_none());
    let reply = host
        .post(
            TOKEN,
            &[
                ("grant_type", "client_credentials"),
                ("client_id", "demo\r\nfake log line"),
                ("client_secret", DEMO_SECRET),
            ],
            None,
        )
        .await;
    reply.assert_error(401, "invalid_client");
    // Wait for both 401s' request lines, then read the whole log: every line is one JSON
    // object, nothing was split or forged.
    host.wait_for_log("\"status\":401", Duration::from_secs(10));
    host.wait_for_log("\"status\":401", Duration::from_secs(10));
    for line in host.log().lines() {
        assert!(
            serde_json::from_str::<serde_json::Value>(line).is_ok(),
            "not a JSON log line: {line}"
        );
        assert!(!line.starts_with("fake log line"));
    }
    still_serving(&host).await;
}

#[tokio::test]
async fn two_authorization_headers_are_invalid_request() {
    let host = Host::start();
    let response = host
        .http
        .post(host.url(TOKEN))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .header("Authorization", basic_header(DEMO_ID, DEMO_SECRET))
        .header("Authorization", basic_header(OTHER_ID, OTHER_SECRET))
        .body("grant_type=client_credentials")
        .send()
        .await
        .unwrap();
    Reply::from(response)
        .await
        .assert_error(400, "invalid_request");
}

#[tokio::test]
async fn unknown_routes_are_404_and_wrong_methods_405() {
    let host = Host::start();
    assert_eq!(host.get("/nope").await.status, 404);
    let reply = host.get(TOKEN).await;
    assert_eq!(reply.status, 405);
    assert_eq!(reply.header("allow"), Some("POST"));
    let reply = host.post("/health/live", &[], None).await;
    assert_eq!(reply.status, 405);
}

#[tokio::test]
async fn garbage_on_the_socket_does_not_hurt_the_service() {
    let host = Host::start();
    let answer = exchange(&host, b"\x00\x01\x02 not http at all\r\n\r\n".to_vec()).await;
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 400"),
        "{answer}"
    );
    still_serving(&host).await;
}

#[tokio::test]
async fn an_http_1_1_request_without_exactly_one_host_is_400() {
    let host = Host::start();
    let no_host = "GET /health/live HTTP/1.1\r\nConnection: close\r\n\r\n";
    let answer = exchange(&host, no_host.into()).await;
    assert!(
        answer.starts_with("HTTP/1.1 400"),
        "RFC 9112 section 3.2: {answer}"
    );
    let two_hosts = "GET /health/live HTTP/1.1\r\nHost: a\r\nHost: b\r\nConnection: close\r\n\r\n";
    let answer = exchange(&host, two_hosts.into()).await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    // HTTP/1.0 has no Host requirement.
    let answer = exchange(&host, b"GET /health/live HTTP/1.0\r\n\r\n".to_vec()).await;
    assert!(
        answer.starts_with("HTTP/1.0 200") || answer.starts_with("HTTP/1.1 200"),
        "{answer}"
    );
    still_serving(&host).await;
}
