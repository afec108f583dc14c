//! Starts the real `tokenginx-host` binary with a real guest on an ephemeral port, and
//! talks to it with a real HTTP client.

use base64::Engine as _;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub const DEMO_ID: &str = "demo";
pub const DEMO_SECRET: &str = "demo-secret-0123456789";
pub const OTHER_ID: &str = "other";
pub const OTHER_SECRET: &str = "other-secret-0123456789";
/// A client whose id and secret need the form-encoding of RFC 6749 section 2.3.1.
pub const ODD_ID: &str = "odd id:+%";
pub const ODD_SECRET: &str = "s\u{e9}cret & more+more:";
/// Clients with a budget of 2 requests at once and 1 an hour after that.
pub const LIMITED_ID: &str = "limited";
pub const SHARED_LIMIT_ID: &str = "limited-shared";
pub const LIMITED_SECRET: &str = "limited-secret-0123456789";

/// How long the harness waits for the host to say it listens.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// The workspace's `target/` (or `CARGO_TARGET_DIR`).
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"))
}

/// A guest component built by `make guests` for `target`.
pub fn guest_path(target: &str, crate_name: &str) -> PathBuf {
    let path = target_dir().join(format!("{target}/release/{crate_name}.wasm"));
    assert!(
        path.exists(),
        "{} is missing: build the guests first (`make guests`)",
        path.display()
    );
    path
}

/// The guest under test: the default Rust guest, or the component named by
/// `TOKENGINX_TEST_GUEST` (to run the e2e suites on another guest by hand).
pub fn default_guest() -> PathBuf {
    match std::env::var_os("TOKENGINX_TEST_GUEST") {
        Some(path) => {
            let path = PathBuf::from(path);
            assert!(
                path.exists(),
                "TOKENGINX_TEST_GUEST={} is missing",
                path.display()
            );
            path
        }
        None => guest_path("wasm32-unknown-unknown", "tokenginx_guest"),
    }
}

pub fn misbehaving_guest() -> PathBuf {
    guest_path("wasm32-wasip2", "tokenginx_test_guest")
}

/// Runs `serve` with the config `text`, which must fail at start (exit code 1); returns
/// what it printed on stderr.
pub fn start_error(text: &str) -> String {
    let file = scratch_dir().join("config.yaml");
    std::fs::write(&file, text).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_tokenginx-host"))
        .args(["serve", "--config"])
        .arg(&file)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    stderr
}

/// Prometheus text exposition, parsed; it must parse.
pub fn scrape(text: &str) -> prometheus_parse::Scrape {
    prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned())))
        .expect("valid exposition format")
}

/// The sum of the counter or gauge samples of `name` whose labels include `labels`, or
/// `None` if there is none.
pub fn metric(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    scrape(text)
        .samples
        .iter()
        .filter(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            ref other => panic!("{name} is not a counter or gauge: {other:?}"),
        })
        .reduce(|a, b| a + b)
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// A fresh directory for one test's files.
pub fn scratch_dir() -> PathBuf {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "tokenginx-e2e-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A config with the test clients and short limits, serving `guest` from the store under
/// test (see [`crate::redis::shared_store`]). `server_extra` is appended to the `server`
/// section.
pub fn config(guest: &Path, server_extra: &str) -> String {
    config_with_store(guest, server_extra, &crate::redis::shared_store())
}

/// [`config`] with the `tokenginx` section `store`.
pub fn config_with_store(guest: &Path, server_extra: &str, store: &str) -> String {
    format!(
        r#"{store}server:
  port: 0
  shutdown_timeout: 10s
{server_extra}
keys:
  secret: {KEYS_SECRET}
guest:
  path: {guest}
  memory_limit: 16MiB
  deadline: 500ms
  max_instances: 64
oauth:
  issuer: http://issuer.test
  # Far above what any test asks for, but for the clients made to run out.
  rate_limit: {{requests: 1000000, per: 1s, burst: 1000000}}
  clients:
    - client_id: {DEMO_ID}
      client_secret: {DEMO_SECRET}
      scopes: [read, write]
      default_scopes: [read]
    - client_id: {OTHER_ID}
      client_secret: {OTHER_SECRET}
      scopes: [read]
      default_scopes: [read]
    - client_id: "{ODD_ID}"
      client_secret: "{ODD_SECRET}"
      scopes: [read, admin]
    - client_id: short-lived
      client_secret: short-lived-secret-0123
      scopes: [read]
      default_scopes: [read]
      access_token_ttl: 1s
    - client_id: resource-server
      client_secret: resource-server-secret-0123
      scopes: [read]
      grant_types: []
    - client_id: {LIMITED_ID}
      client_secret: {LIMITED_SECRET}
      scopes: [read]
      default_scopes: [read]
      rate_limit: {{requests: 1, per: 1h, burst: 2}}
    - client_id: {SHARED_LIMIT_ID}
      client_secret: {LIMITED_SECRET}
      scopes: [read]
      default_scopes: [read]
      rate_limit: {{requests: 1, per: 1h, burst: 2}}
log:
  level: info
  format: json
  output: stdout
"#,
        guest = guest.display(),
    )
}

/// The `keys.secret` of the test configs: every host of a test run shares it, as replicas do.
pub const KEYS_SECRET: &str = "the e2e suite's keys secret, 32 characters or more";

/// A running host process; killed on drop.
pub struct Host {
    child: Child,
    pub base: String,
    pub addr: String,
    logs: Arc<Mutex<Vec<String>>>,
    log_lines: Mutex<mpsc::Receiver<String>>,
    pub http: reqwest::Client,
}

impl Host {
    /// The default guest with the test clients.
    pub fn start() -> Host {
        Host::with_config(&config(&default_guest(), ""))
    }

    pub fn with_config(config: &str) -> Host {
        let dir = scratch_dir();
        let file = dir.join("config.yaml");
        std::fs::write(&file, config).unwrap();
        Host::with_config_file(&file)
    }

    pub fn with_config_file(file: &Path) -> Host {
        let mut child = Command::new(env!("CARGO_BIN_EXE_tokenginx-host"))
            .args(["serve", "--config"])
            .arg(file)
            .env_remove("RUST_LOG")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starting tokenginx-host");
        let logs = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        let sink = logs.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                sink.lock().unwrap().push(line.clone());
                let _ = tx.send(line);
            }
        });
        let mut host = Host {
            child,
            base: String::new(),
            addr: String::new(),
            logs,
            log_lines: Mutex::new(rx),
            http: reqwest::Client::builder().build().unwrap(),
        };
        let listening = host.wait_for_log("listening", START_TIMEOUT);
        let line: serde_json::Value = serde_json::from_str(&listening).unwrap();
        host.addr = line["addr"]
            .as_str()
            .expect("listening line has addr")
            .to_owned();
        let scheme = if line["tls"] == true { "https" } else { "http" };
        host.base = format!("{scheme}://{}", host.addr);
        host
    }

    /// Blocks until a log line contains `needle`; panics with the log so far if none
    /// does within `timeout` or the process ends.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) -> String {
        let rx = self.log_lines.lock().unwrap();
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return line,
                Ok(_) => continue,
                Err(e) => panic!("no log line with {needle:?} ({e}); log:\n{}", self.log()),
            }
        }
    }

    /// Everything the host has logged so far.
    pub fn log(&self) -> String {
        self.logs.lock().unwrap().join("\n")
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// POSTs a form with optional Basic credentials (form-encoded per RFC 6749 2.3.1).
    pub async fn post(
        &self,
        path: &str,
        params: &[(&str, &str)],
        basic: Option<(&str, &str)>,
    ) -> Reply {
        let mut request = self
            .http
            .post(self.url(path))
            .header("Content-Type", "application/x-www-form-urlencoded");
        if let Some((id, secret)) = basic {
            request = request.header("Authorization", basic_header(id, secret));
        }
        let body = form_encode(params);
        Reply::from(request.body(body).send().await.expect("request")).await
    }

    pub async fn get(&self, path: &str) -> Reply {
        Reply::from(self.http.get(self.url(path)).send().await.expect("request")).await
    }

    /// Asks for a token for `client` with `scope` (or the default scope).
    pub async fn request_token(&self, client: (&str, &str), scope: Option<&str>) -> Reply {
        let mut params = vec![("grant_type", "client_credentials")];
        if let Some(scope) = scope {
            params.push(("scope", scope));
        }
        self.post("/api/v1/oauth/token", &params, Some(client))
            .await
    }

    /// Issues a token to `client` with `scope` (or the default scope) and returns it.
    pub async fn issue(&self, client: (&str, &str), scope: Option<&str>) -> String {
        let reply = self.request_token(client, scope).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        reply.json()["access_token"].as_str().unwrap().to_owned()
    }

    pub async fn introspect(&self, token: &str) -> serde_json::Value {
        let reply = self
            .post(
                "/api/v1/oauth/introspect",
                &[("token", token)],
                Some((DEMO_ID, DEMO_SECRET)),
            )
            .await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        reply.json()
    }

    /// A whole token lifetime for the demo client: issue, introspect, revoke; returns the
    /// token.
    pub async fn session(&self) -> String {
        let token = self.issue((DEMO_ID, DEMO_SECRET), None).await;
        self.introspect(&token).await;
        let revoked = self
            .post(
                "/api/v1/oauth/revoke",
                &[("token", &token)],
                Some((DEMO_ID, DEMO_SECRET)),
            )
            .await;
        assert_eq!(revoked.status, 200, "{}", revoked.body);
        token
    }

    /// The process's resident memory now, in bytes.
    pub fn rss_bytes(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let kib: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS in /proc/<pid>/status");
        kib * 1024
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        self.signal("TERM");
    }

    /// Sends the signal `name` (`TERM`, `HUP`, ...).
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for the process to exit, at most `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "host did not exit within {timeout:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A response, read whole.
pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: String,
}

impl Reply {
    pub async fn from(response: reqwest::Response) -> Reply {
        Reply {
            status: response.status().as_u16(),
            headers: response.headers().clone(),
            body: response.text().await.expect("body"),
        }
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }

    /// Asserts an OAuth error response with `status` and `error`.
    pub fn assert_error(&self, status: u16, error: &str) {
        assert_eq!(self.status, status, "{}", self.body);
        assert_eq!(self.json()["error"], error, "{}", self.body);
    }
}

/// `application/x-www-form-urlencoded` encoding.
pub fn form_encode(params: &[(&str, &str)]) -> String {
    params
        .iter()
        .map(|(n, v)| format!("{}={}", encode_component(n), encode_component(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn encode_component(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => {
                (b as char).to_string()
            }
            b' ' => "+".into(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

pub fn basic_header(id: &str, secret: &str) -> String {
    let raw = format!("{}:{}", encode_component(id), encode_component(secret));
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(raw)
    )
}

/// Sends raw bytes on a new connection and returns everything the server answered until it
/// closed or `read_limit` passed.
pub fn raw_exchange(addr: &str, request: &[u8], read_limit: Duration) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(read_limit)).unwrap();
    let _ = stream.write_all(request);
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}
