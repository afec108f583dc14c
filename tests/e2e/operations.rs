//! What operators rely on: every metric family, valid for Prometheus and scraped by a real
//! Prometheus server; request log lines with request and client ids; text logs to a file.

use crate::harness::*;
use crate::redis::{free_port, require};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[tokio::test]
async fn every_metric_family_is_exposed_and_promtool_finds_it_valid() {
    let host = Host::start();
    let token = host.session().await;
    let text = host.get("/metrics").await.body;
    let scrape = scrape(&text);
    let has = |name: &str| scrape.samples.iter().any(|s| s.metric == name);
    for family in [
        "tokenginx_token_created_total",
        "tokenginx_token_retrieved_total",
        "tokenginx_token_revoked_total",
        "tokenginx_operation_duration_seconds",
        "tokenginx_connection_pool_size",
        "tokenginx_connection_pool_idle",
        "tokenginx_store_errors_total",
        "tokenginx_http_requests_total",
        "tokenginx_http_request_duration_seconds",
        "tokenginx_guest_calls_total",
        "tokenginx_guest_failures_total",
        "tokenginx_guest_call_duration_seconds",
        "tokenginx_guest_instances_active",
        "tokenginx_guest_instances_limit",
        "tokenginx_guest_instances_started_total",
        "tokenginx_guest_info",
        "tokenginx_guest_reloads_total",
        "tokenginx_build_info",
    ] {
        assert!(has(family), "{family} is missing:\n{text}");
    }
    let sample = |name: &str, label: (&str, &str)| {
        scrape
            .samples
            .iter()
            .find(|s| s.metric == name && s.labels.get(label.0) == Some(label.1))
            .unwrap_or_else(|| panic!("no {name}{{{}={:?}}}:\n{text}", label.0, label.1))
    };
    assert_eq!(
        metric(&text, "tokenginx_token_revoked_total", &[]),
        Some(1.0)
    );
    let calls = sample("tokenginx_guest_calls_total", ("export", "introspect"));
    assert_eq!(calls.labels.get("guest"), Some("tokenginx-guest"));
    let guest_bytes = std::fs::read(default_guest()).unwrap();
    let sha256 = sha256_hex(&guest_bytes);
    sample("tokenginx_guest_info", ("sha256", &sha256));
    assert!(
        !text.contains(&token) && !text.contains(DEMO_SECRET),
        "no token or secret in metrics"
    );

    let file = scratch_dir().join("metrics.txt");
    std::fs::write(&file, &text).unwrap();
    let out = Command::new(require("promtool"))
        .args(["check", "metrics"])
        .stdin(std::fs::File::open(&file).unwrap())
        .output()
        .unwrap();
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A Prometheus server scraping one target every second; killed on drop.
struct Prometheus {
    child: Child,
    api: String,
}

impl Prometheus {
    fn scraping(target: &str) -> Prometheus {
        let dir = scratch_dir();
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: tokenginx\n    \
                 static_configs:\n      - targets: ['{target}']\n"
            ),
        )
        .unwrap();
        let port = free_port();
        let child = Command::new(require("prometheus"))
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting prometheus");
        Prometheus {
            child,
            api: format!("http://127.0.0.1:{port}/api/v1/query"),
        }
    }

    /// The value of the instant query `query`, once it has one within `timeout`.
    async fn value(&self, query: &str, wanted: impl Fn(f64) -> bool) -> f64 {
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut last = String::new();
        while Instant::now() < deadline {
            if let Ok(reply) = http.get(&self.api).query(&[("query", query)]).send().await {
                last = reply.text().await.unwrap_or_default();
                let json: serde_json::Value = serde_json::from_str(&last).unwrap_or_default();
                if let Some(v) = json["data"]["result"][0]["value"][1]
                    .as_str()
                    .and_then(|v| v.parse::<f64>().ok())
                    .filter(|v| wanted(*v))
                {
                    return v;
                }
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        panic!("Prometheus never answered {query} as wanted; last answer: {last}");
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn a_real_prometheus_scrapes_the_seed_series() {
    let host = Host::start();
    let prometheus = Prometheus::scraping(&host.addr);
    for _ in 0..3 {
        let token = host.issue((DEMO_ID, DEMO_SECRET), None).await;
        host.introspect(&token).await;
    }
    let up = prometheus
        .value("up{job=\"tokenginx\"}", |v| v == 1.0)
        .await;
    assert_eq!(up, 1.0);
    let created = prometheus
        .value("tokenginx_token_created_total", |v| v >= 3.0)
        .await;
    assert_eq!(created, 3.0);
    prometheus
        .value("tokenginx_token_retrieved_total", |v| v >= 3.0)
        .await;
    prometheus
        .value(
            "sum(tokenginx_operation_duration_seconds_count{operation=\"insert\"})",
            |v| v >= 3.0,
        )
        .await;
    prometheus
        .value("tokenginx_connection_pool_size", |_| true)
        .await;
    prometheus
        .value("tokenginx_connection_pool_idle", |_| true)
        .await;
    prometheus
        .value(
            "tokenginx_http_requests_total{route=\"token\",status=\"200\"}",
            |v| v >= 3.0,
        )
        .await;
}

fn request_line(host: &Host, request_id: &str) -> serde_json::Value {
    let line = host.wait_for_log(
        &format!("\"request_id\":\"{request_id}\",\"method\""),
        Duration::from_secs(10),
    );
    serde_json::from_str(&line).unwrap()
}

#[tokio::test]
async fn each_request_is_one_log_line_with_its_request_id_and_client() {
    let host = Host::start();
    let form = form_encode(&[("grant_type", "client_credentials")]);
    let reply = host
        .http
        .post(host.url("/api/v1/oauth/token"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .header("Authorization", basic_header(DEMO_ID, DEMO_SECRET))
        .header("X-Request-Id", "edge-7f3a.42")
        .body(form)
        .send()
        .await
        .unwrap();
    assert_eq!(reply.headers()["x-request-id"], "edge-7f3a.42");
    let line = request_line(&host, "edge-7f3a.42");
    assert_eq!(line["method"], "POST");
    assert_eq!(line["route"], "token");
    assert_eq!(line["status"], 200);
    assert_eq!(line["client_id"], DEMO_ID);
    assert!(line["duration_us"].as_u64().is_some());

    // An id that could forge or flood the log is replaced by a fresh one.
    let reply = host
        .http
        .post(host.url("/api/v1/oauth/token"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .header("X-Request-Id", "x\" injected {")
        .body("grant_type=client_credentials&client_id=nobody&client_secret=guess-guess-guess")
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 401);
    let id = reply.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert!(
        id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()),
        "{id}"
    );
    let line = request_line(&host, &id);
    assert_eq!(line["status"], 401);
    assert!(
        line.get("client_id").is_none(),
        "an unknown client id is not logged: {line}"
    );

    // A registered id with a wrong secret did not authenticate: the line names no client.
    let reply = host
        .http
        .post(host.url("/api/v1/oauth/token"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .header("X-Request-Id", "wrong-secret")
        .basic_auth(DEMO_ID, Some("not-the-secret"))
        .body("grant_type=client_credentials")
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), 401);
    let line = request_line(&host, "wrong-secret");
    assert!(
        line.get("client_id").is_none(),
        "a client that failed to authenticate is not named: {line}"
    );
}

#[tokio::test]
async fn text_logs_go_to_the_configured_file() {
    let dir = scratch_dir();
    let log_file = dir.join("host.log");
    let text = config(&default_guest(), "").replace(
        "log:\n  level: info\n  format: json\n  output: stdout\n",
        &format!(
            "log:\n  level: info\n  format: text\n  output: {}\n",
            log_file.display()
        ),
    );
    let file = dir.join("config.yaml");
    std::fs::write(&file, text).unwrap();
    // The harness reads the address from a JSON line on stdout; with logs in a file, ask
    // the file instead.
    let mut child = Command::new(env!("CARGO_BIN_EXE_tokenginx-host"))
        .args(["serve", "--config"])
        .arg(&file)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let addr = loop {
        let log = std::fs::read_to_string(&log_file).unwrap_or_default();
        if let Some(rest) = log.split("addr=").nth(1) {
            break rest.split_whitespace().next().unwrap().to_owned();
        }
        assert!(Instant::now() < deadline, "no listening line in {log}");
        std::thread::sleep(Duration::from_millis(50));
    };
    let reply = reqwest::get(format!("http://{addr}/health/live"))
        .await
        .unwrap();
    assert_eq!(reply.status(), 200);
    let deadline = Instant::now() + Duration::from_secs(10);
    let log = loop {
        let log = std::fs::read_to_string(&log_file).unwrap();
        if log.contains("route=\"live\"") || log.contains("route=live") {
            break log;
        }
        assert!(Instant::now() < deadline, "no request line in {log}");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        log.lines().all(|l| !l.starts_with('{')),
        "text, not JSON: {log}"
    );
    let _ = child.kill();
    let _ = child.wait();
}

#[tokio::test]
async fn with_metrics_port_set_metrics_and_health_leave_the_public_port() {
    let config = config(&default_guest(), "") + "metrics:\n  port: 0\n";
    let host = Host::with_config(&config);
    let line = host.wait_for_log("metrics and health listening", Duration::from_secs(10));
    let line: serde_json::Value = serde_json::from_str(&line).unwrap();
    let management = format!("http://{}", line["addr"].as_str().unwrap());
    let get = |url: String| {
        let http = host.http.clone();
        async move { http.get(url).send().await.unwrap().status().as_u16() }
    };

    for path in ["/metrics", "/health/live", "/health/ready"] {
        assert_eq!(host.get(path).await.status, 404, "public {path}");
        assert_eq!(get(format!("{management}{path}")).await, 200, "{path}");
    }
    host.session().await;
    assert_eq!(
        get(format!(
            "{management}/.well-known/oauth-authorization-server"
        ))
        .await,
        404,
        "no OAuth on the management listener"
    );
    let text = host
        .http
        .get(format!("{management}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(
        metric(&text, "tokenginx_token_created_total", &[]),
        Some(1.0),
        "the management listener reports the public listener's traffic"
    );
}

/// `log.level: debug` shows the service's and the guest's debug lines, not those of the
/// libraries beneath: with Cranelift's and wasmtime's debug output on, compiling the guest
/// alone wrote hundreds of megabytes.
#[tokio::test]
async fn debug_logging_is_the_services_own_not_its_libraries() {
    let text = config(&default_guest(), "").replace("  level: info\n", "  level: debug\n");
    let host = Host::with_config(&text);
    for _ in 0..10 {
        host.issue((DEMO_ID, DEMO_SECRET), None).await;
    }
    let log = host.log();
    assert!(
        log.contains("issued access token"),
        "the guest's lines are there"
    );
    let lines = log.lines().count();
    assert!(lines < 200, "{lines} lines for a start and 10 requests");
}
