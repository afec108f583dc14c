//! Configuration: YAML with `${VAR}` expansion, the Go guide's sections and keys, and errors that
//! name the file and the key.
//!
//! `${VAR}` and `${VAR:-default}` are expanded inside string values after parsing, so a
//! secret containing `: ` or `#` cannot change the document's structure. A value that is
//! exactly one `${VAR}` is read again as a YAML scalar, so `port: ${PORT}` is a number.
//! An unset variable without a default is an error. Relative paths are relative to the
//! directory of the config file.

use crate::store::RateLimit;
use serde::de::{self, Deserializer};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A configuration problem: which file, which key, what is wrong.
#[derive(Debug)]
pub struct ConfigError {
    pub file: PathBuf,
    pub key: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            write!(f, "{}: {}", self.file.display(), self.message)
        } else {
            write!(f, "{}: {}: {}", self.file.display(), self.key, self.message)
        }
    }
}

impl std::error::Error for ConfigError {}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub server: ServerConfig,
    #[serde(default)]
    pub tokenginx: StoreConfig,
    #[serde(default)]
    pub log: LogConfig,
    #[serde(default)]
    pub metrics: MetricsConfig,
    pub guest: GuestConfig,
    pub oauth: OAuthConfig,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address to listen on. Loopback by default: exposing the service is a decision.
    pub host: String,
    /// 0 picks a free port (tests use it; the bound address is logged).
    pub port: u16,
    /// Time to receive a whole request, headers and body.
    #[serde(deserialize_with = "duration")]
    pub read_timeout: Duration,
    /// Time a response write may stall.
    #[serde(deserialize_with = "duration")]
    pub write_timeout: Duration,
    /// Time a keep-alive connection may wait for its next request.
    #[serde(deserialize_with = "duration")]
    pub idle_timeout: Duration,
    /// Time in-flight requests get to finish on SIGINT/SIGTERM.
    #[serde(deserialize_with = "duration")]
    pub shutdown_timeout: Duration,
    /// Largest request body; larger ones answer 413.
    #[serde(deserialize_with = "byte_size")]
    pub max_body_size: u64,
    /// HTTPS on the listener.
    pub tls: ServerTlsConfig,
}

/// The listener's TLS: rustls, TLS 1.2 and 1.3, HTTP/2 and HTTP/1.1 by ALPN.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerTlsConfig {
    pub enabled: bool,
    /// PEM certificate chain, leaf first.
    pub cert_file: Option<PathBuf>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: Option<PathBuf>,
    /// PEM CA certificates that client certificates must chain to.
    pub client_ca_file: Option<PathBuf>,
    pub client_auth: ClientAuth,
    /// Introspection only for clients that presented a verified certificate (resource
    /// servers), with `client_auth: optional` letting OAuth clients in without one.
    pub introspect_requires_client_cert: bool,
}

#[derive(Debug, Default, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ClientAuth {
    /// No client certificates asked for.
    #[default]
    None,
    /// Asked for and verified if sent.
    Optional,
    /// Every connection must present a verified certificate.
    Required,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            host: "127.0.0.1".into(),
            port: 8080,
            read_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(120),
            shutdown_timeout: Duration::from_secs(30),
            max_body_size: 64 * 1024,
            tls: ServerTlsConfig::default(),
        }
    }
}

#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum StoreMode {
    /// The embedded in-memory store.
    Memory,
    /// One Redis server.
    Standalone,
    /// A Redis Cluster.
    Cluster,
}

/// The Go guide's `tokenginx` section: where tokens are kept.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    pub mode: StoreMode,
    pub addrs: Vec<String>,
    pub username: Option<String>,
    pub password: Option<String>,
    pub pool_size: u32,
    /// Accepted for configs written for the Go guide; has no effect, as every pooled
    /// connection stays open (a warning says so when set).
    pub min_idle_conns: u32,
    #[serde(deserialize_with = "duration")]
    pub dial_timeout: Duration,
    #[serde(deserialize_with = "duration")]
    pub read_timeout: Duration,
    /// Accepted for configs written for the Go guide; has no effect, as writes are bounded by
    /// `read_timeout` and `pool_timeout` (a warning says so when set).
    #[serde(deserialize_with = "duration")]
    pub write_timeout: Duration,
    /// Upper bound of one store operation, waiting for a (re)connection and retries
    /// included; past it the request answers 503.
    #[serde(deserialize_with = "duration")]
    pub pool_timeout: Duration,
    /// Durability: after each write, wait until this many replicas have it (Redis `WAIT`);
    /// 0 turns it off.
    pub wait_replicas: u32,
    /// Durability on disk: each change also waits until the append-only file of the master
    /// (and of each of the `wait_replicas` replicas) has it (Redis 7.2 `WAITAOF`).
    pub wait_aof: bool,
    /// How long a change waits for `wait_replicas` (and `wait_aof`) acknowledgements.
    #[serde(deserialize_with = "duration")]
    pub wait_timeout: Duration,
    /// The most entries the embedded store holds; past it, new entries answer 503.
    pub max_entries: u64,
    pub tls: TlsConfig,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            mode: StoreMode::Memory,
            addrs: Vec::new(),
            username: None,
            password: None,
            pool_size: 10,
            min_idle_conns: 0,
            dial_timeout: Duration::from_secs(5),
            read_timeout: Duration::from_secs(3),
            write_timeout: Duration::from_secs(3),
            pool_timeout: Duration::from_secs(4),
            wait_replicas: 0,
            wait_aof: false,
            wait_timeout: Duration::from_millis(500),
            max_entries: 1_000_000,
            tls: TlsConfig::default(),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    pub enabled: bool,
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    pub ca_file: Option<PathBuf>,
}

#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Json,
    Text,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// trace, debug, info, warn or error.
    pub level: String,
    pub format: LogFormat,
    /// `stdout`, `stderr`, or a file path (appended to).
    pub output: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: "info".into(),
            format: LogFormat::Json,
            output: "stdout".into(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    pub enabled: bool,
    pub path: String,
    /// Where the management listener (metrics and health) listens, when `port` is set.
    pub host: String,
    /// A listener of its own for metrics and health, so the public port serves OAuth only;
    /// unset, they share the public listener (the Go guide's layout).
    pub port: Option<u16>,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            enabled: true,
            path: "/metrics".into(),
            host: "127.0.0.1".into(),
            port: None,
        }
    }
}

/// The Wasm guest and the limits it runs under.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GuestConfig {
    /// The guest component (`.wasm`).
    pub path: PathBuf,
    /// Linear memory one instance may grow to.
    #[serde(default = "default_memory_limit", deserialize_with = "byte_size")]
    pub memory_limit: u64,
    /// Wall-clock limit of one guest call, store waits included.
    #[serde(default = "default_deadline", deserialize_with = "duration")]
    pub deadline: Duration,
    /// Guest instances alive at once; further requests wait for a free one.
    #[serde(default = "default_max_instances")]
    pub max_instances: u32,
    /// Fuel (roughly, Wasm instructions) one call may use; unset, calls are bounded by the
    /// deadline alone.
    #[serde(default)]
    pub fuel: Option<u64>,
    /// Where compiled guests are kept, so a restart with the same guest skips compiling;
    /// unset, no cache. Must be writable by this user only.
    #[serde(default)]
    pub cache_dir: Option<PathBuf>,
    #[serde(default)]
    pub failure_policy: FailurePolicy,
}

/// What happens when a guest fails (traps, overruns its deadline or fuel, or answers
/// garbage) `consecutive` calls in a row.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FailurePolicy {
    pub consecutive: u32,
    pub action: FailureAction,
}

impl Default for FailurePolicy {
    fn default() -> Self {
        FailurePolicy {
            consecutive: 5,
            action: FailureAction::KeepServing,
        }
    }
}

#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum FailureAction {
    /// Log it and keep the guest: each failure still costs only its own request.
    KeepServing,
    /// Make the guest that served before the last reload active again.
    RollBack,
}

impl GuestConfig {
    /// The guest at `path` under the default limits.
    pub fn with_defaults(path: &Path) -> Self {
        GuestConfig {
            path: path.to_owned(),
            memory_limit: default_memory_limit(),
            deadline: default_deadline(),
            max_instances: default_max_instances(),
            fuel: None,
            cache_dir: None,
            failure_policy: FailurePolicy::default(),
        }
    }
}

fn default_memory_limit() -> u64 {
    32 * 1024 * 1024
}
fn default_deadline() -> Duration {
    Duration::from_secs(1)
}
fn default_max_instances() -> u32 {
    256
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OAuthConfig {
    /// The issuer identifier: an `http(s)` URL without query, fragment or trailing slash.
    pub issuer: String,
    /// Every client's request budget, unless the client sets its own.
    #[serde(default)]
    pub rate_limit: RateLimitConfig,
    #[serde(default)]
    pub clients: Vec<ClientConfig>,
}

/// A client's request budget on the endpoints that issue tokens, or `unlimited`.
#[derive(Debug, Deserialize, Clone, Copy)]
#[serde(untagged)]
pub enum RateLimitConfig {
    Unlimited(Unlimited),
    Budget(Budget),
}

/// `unlimited`: no budget, and no store operation for it (for trusted clients).
#[derive(Debug, Deserialize, Clone, Copy)]
#[serde(rename_all = "lowercase")]
pub enum Unlimited {
    Unlimited,
}

/// `requests` per `per` on average, and up to `burst` at once.
#[derive(Debug, Deserialize, Clone, Copy)]
#[serde(deny_unknown_fields)]
pub struct Budget {
    pub requests: u32,
    #[serde(default = "one_second", deserialize_with = "duration")]
    pub per: Duration,
    pub burst: u32,
}

impl Default for RateLimitConfig {
    /// 20 a second with bursts of 40: far above what a client that reuses its tokens needs,
    /// and with 1 h tokens at most 72,000 live tokens a client.
    fn default() -> Self {
        RateLimitConfig::Budget(Budget {
            requests: 20,
            per: one_second(),
            burst: 40,
        })
    }
}

fn one_second() -> Duration {
    Duration::from_secs(1)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientConfig {
    pub client_id: String,
    /// The secret itself (usually `${ENV}`); hashed at load and then forgotten.
    pub client_secret: Option<String>,
    /// Or its SHA-256, in hex, so the config never holds the secret.
    pub client_secret_sha256: Option<String>,
    pub scopes: Vec<String>,
    #[serde(default)]
    pub default_scopes: Vec<String>,
    #[serde(default = "default_grant_types")]
    pub grant_types: Vec<String>,
    #[serde(default = "default_token_ttl", deserialize_with = "duration")]
    pub access_token_ttl: Duration,
    /// This client's budget instead of `oauth.rate_limit`.
    #[serde(default)]
    pub rate_limit: Option<RateLimitConfig>,
}

fn default_grant_types() -> Vec<String> {
    vec!["client_credentials".into()]
}
fn default_token_ttl() -> Duration {
    Duration::from_secs(3600)
}

/// A client as the guest sees it: the secret reduced to its digest.
#[derive(Debug, Clone)]
pub struct Client {
    pub client_id: String,
    pub secret_sha256: [u8; 32],
    pub scopes: Vec<String>,
    pub default_scopes: Vec<String>,
    pub grant_types: Vec<String>,
    pub access_token_ttl: Duration,
    /// None: `unlimited`.
    pub rate_limit: Option<RateLimit>,
    /// The store key of this client's rate-limit bucket, computed once at load
    /// ([`crate::store::rate_limit_key`]).
    pub rate_limit_key: String,
}

/// The OAuth settings the guest reads through its `settings` import.
#[derive(Debug)]
pub struct OAuthSettings {
    pub issuer: String,
    pub clients: HashMap<String, Client>,
    pub scopes_supported: Vec<String>,
}

/// A loaded, checked configuration.
#[derive(Debug)]
pub struct Loaded {
    pub server: ServerConfig,
    pub store: StoreConfig,
    pub log: LogConfig,
    pub metrics: MetricsConfig,
    pub guest: GuestConfig,
    pub oauth: OAuthSettings,
    /// Keys that were accepted but do nothing, each with why: `check-config` prints them and
    /// `serve` logs them.
    pub warnings: Vec<String>,
}

const GRANT_TYPES: [&str; 1] = ["client_credentials"];
const MIN_SECRET_LEN: usize = 16;
const MAX_TOKEN_TTL: Duration = Duration::from_secs(24 * 3600);

/// Reads, expands, parses and checks the config file at `file`.
pub fn load(file: &Path) -> Result<Loaded, ConfigError> {
    let text = std::fs::read_to_string(file).map_err(|e| ConfigError {
        file: file.to_owned(),
        key: String::new(),
        message: format!("cannot read: {e}"),
    })?;
    parse(file, &text, &|name| std::env::var(name).ok())
}

/// Parses config `text` that came from `file`, reading variables through `env`.
pub fn parse(
    file: &Path,
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Loaded, ConfigError> {
    let err = |key: &str, message: String| ConfigError {
        file: file.to_owned(),
        key: key.to_owned(),
        message,
    };
    let mut doc: serde_yaml::Value =
        serde_yaml::from_str(text).map_err(|e| err("", format!("invalid YAML: {e}")))?;
    expand(&mut doc, "", env).map_err(|(key, message)| err(&key, message))?;
    let config: Config = serde_path_to_error::deserialize(doc).map_err(|e| {
        let key = e.path().to_string();
        err(
            if key == "." { "" } else { &key },
            e.into_inner().to_string(),
        )
    })?;
    let base = file.parent().unwrap_or(Path::new("."));
    check(config, base).map_err(|(key, message)| err(&key, message))
}

/// Replaces `${VAR}` in every string of `value`; errors carry the key path.
fn expand(
    value: &mut serde_yaml::Value,
    path: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(), (String, String)> {
    use serde_yaml::Value;
    match value {
        Value::String(s) if s.contains("${") => {
            let whole = s.starts_with("${") && s.ends_with('}') && s.matches("${").count() == 1;
            let expanded = expand_str(s, env).map_err(|m| (path.to_owned(), m))?;
            *value = if whole {
                // `port: ${PORT}` should give a number; an unparsable value stays a string.
                match serde_yaml::from_str::<Value>(&expanded) {
                    Ok(v @ (Value::Number(_) | Value::Bool(_))) => v,
                    _ => Value::String(expanded),
                }
            } else {
                Value::String(expanded)
            };
        }
        Value::Sequence(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                expand(item, &format!("{path}[{i}]"), env)?;
            }
        }
        Value::Mapping(map) => {
            for (k, v) in map.iter_mut() {
                let name = k.as_str().unwrap_or("?");
                let key = if path.is_empty() {
                    name.to_owned()
                } else {
                    format!("{path}.{name}")
                };
                expand(v, &key, env)?;
            }
        }
        _ => {}
    }
    Ok(())
}

fn expand_str(s: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| "unterminated ${ in value".to_owned())?;
        let inner = &after[..end];
        let (name, default) = match inner.split_once(":-") {
            Some((name, default)) => (name, Some(default)),
            None => (inner, None),
        };
        let valid =
            !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !valid {
            return Err(format!("invalid variable name {name:?} in ${{...}}"));
        }
        match env(name).or_else(|| default.map(str::to_owned)) {
            Some(value) => out.push_str(&value),
            None => return Err(format!("environment variable {name} is not set")),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

fn check(config: Config, base: &Path) -> Result<Loaded, (String, String)> {
    let bad = |key: &str, message: String| Err((key.to_owned(), message));
    let Config {
        mut server,
        tokenginx: mut store,
        mut log,
        metrics,
        mut guest,
        oauth,
    } = config;

    if server.host.parse::<std::net::IpAddr>().is_err() {
        return bad(
            "server.host",
            format!("{:?} is not an IP address", server.host),
        );
    }
    for (key, d) in [
        ("server.read_timeout", server.read_timeout),
        ("server.write_timeout", server.write_timeout),
        ("server.idle_timeout", server.idle_timeout),
    ] {
        if d.is_zero() {
            return bad(key, "must be greater than zero".into());
        }
    }
    if server.max_body_size == 0 {
        return bad("server.max_body_size", "must be greater than zero".into());
    }
    check_server_tls(&mut server.tls, base)?;
    if store.mode != StoreMode::Memory && store.addrs.is_empty() {
        return bad(
            "tokenginx.addrs",
            "at least one address is needed for standalone and cluster modes".into(),
        );
    }
    if store.mode == StoreMode::Standalone && store.addrs.len() > 1 {
        return bad(
            "tokenginx.addrs",
            "standalone mode takes exactly one address".into(),
        );
    }
    if store.pool_size == 0 {
        return bad("tokenginx.pool_size", "must be greater than zero".into());
    }
    if store.max_entries == 0 {
        return bad("tokenginx.max_entries", "must be greater than zero".into());
    }
    if store.min_idle_conns > store.pool_size {
        return bad(
            "tokenginx.min_idle_conns",
            "must not exceed pool_size".into(),
        );
    }
    match (&store.tls.cert_file, &store.tls.key_file) {
        (Some(_), None) => {
            return bad(
                "tokenginx.tls.key_file",
                "is required with cert_file".into(),
            )
        }
        (None, Some(_)) => {
            return bad(
                "tokenginx.tls.cert_file",
                "is required with key_file".into(),
            )
        }
        _ => {}
    }
    for file in [
        &mut store.tls.cert_file,
        &mut store.tls.key_file,
        &mut store.tls.ca_file,
    ]
    .into_iter()
    .flatten()
    {
        *file = base.join(&*file);
    }
    let defaults = StoreConfig::default();
    let mut warnings = Vec::new();
    if store.min_idle_conns != defaults.min_idle_conns {
        warnings.push(
            "tokenginx.min_idle_conns: has no effect: every pooled connection stays open".into(),
        );
    }
    if store.write_timeout != defaults.write_timeout {
        warnings.push(
            "tokenginx.write_timeout: has no effect: writes are bounded by read_timeout and \
             pool_timeout"
                .into(),
        );
    }
    if !["trace", "debug", "info", "warn", "error"].contains(&log.level.as_str()) {
        return bad(
            "log.level",
            format!(
                "{:?} is not one of trace, debug, info, warn, error",
                log.level
            ),
        );
    }
    if !matches!(log.output.as_str(), "stdout" | "stderr") {
        log.output = base.join(&log.output).to_string_lossy().into_owned();
    }
    if metrics.host.parse::<std::net::IpAddr>().is_err() {
        return bad(
            "metrics.host",
            format!("{:?} is not an IP address", metrics.host),
        );
    }
    if metrics
        .port
        .is_some_and(|port| port != 0 && port == server.port)
    {
        return bad(
            "metrics.port",
            "must differ from server.port: it is a listener of its own".into(),
        );
    }
    if !metrics.path.starts_with('/') {
        return bad(
            "metrics.path",
            format!("{:?} must start with /", metrics.path),
        );
    }
    guest.path = base.join(&guest.path);
    if guest.memory_limit < 1024 * 1024 {
        return bad("guest.memory_limit", "must be at least 1MiB".into());
    }
    if guest.deadline.is_zero() {
        return bad("guest.deadline", "must be greater than zero".into());
    }
    if guest.max_instances == 0 {
        return bad("guest.max_instances", "must be greater than zero".into());
    }
    if guest.fuel == Some(0) {
        return bad(
            "guest.fuel",
            "must be greater than zero, or left out".into(),
        );
    }
    if let Some(dir) = &mut guest.cache_dir {
        *dir = base.join(&*dir);
    }
    if guest.failure_policy.consecutive == 0 {
        return bad(
            "guest.failure_policy.consecutive",
            "must be greater than zero".into(),
        );
    }

    let oauth = check_oauth(oauth)?;
    Ok(Loaded {
        server,
        store,
        log,
        metrics,
        guest,
        oauth,
        warnings,
    })
}

fn check_server_tls(tls: &mut ServerTlsConfig, base: &Path) -> Result<(), (String, String)> {
    let bad = |key: &str, message: &str| Err((format!("server.tls.{key}"), message.to_owned()));
    for file in [
        &mut tls.cert_file,
        &mut tls.key_file,
        &mut tls.client_ca_file,
    ]
    .into_iter()
    .flatten()
    {
        *file = base.join(&*file);
    }
    if tls.introspect_requires_client_cert && (!tls.enabled || tls.client_auth == ClientAuth::None)
    {
        return bad(
            "introspect_requires_client_cert",
            "needs server.tls.enabled and client_auth optional or required",
        );
    }
    if !tls.enabled {
        return Ok(());
    }
    if tls.cert_file.is_none() {
        return bad("cert_file", "is required when server.tls.enabled is true");
    }
    if tls.key_file.is_none() {
        return bad("key_file", "is required when server.tls.enabled is true");
    }
    if tls.client_auth != ClientAuth::None && tls.client_ca_file.is_none() {
        return bad(
            "client_ca_file",
            "is required to verify client certificates",
        );
    }
    Ok(())
}

fn check_oauth(oauth: OAuthConfig) -> Result<OAuthSettings, (String, String)> {
    let bad = |key: String, message: String| Err((key, message));
    let issuer = oauth.issuer;
    let scheme_ok = issuer.starts_with("https://") || issuer.starts_with("http://");
    if !scheme_ok
        || issuer.ends_with('/')
        || issuer.contains(['?', '#'])
        || issuer.contains(char::is_whitespace)
    {
        return bad(
            "oauth.issuer".into(),
            format!("{issuer:?} must be an http(s) URL without query, fragment or trailing slash"),
        );
    }
    let default_limit =
        check_rate_limit(oauth.rate_limit).map_err(|m| ("oauth.rate_limit".into(), m))?;
    let mut clients = HashMap::new();
    let mut all_scopes = BTreeSet::new();
    for (i, c) in oauth.clients.into_iter().enumerate() {
        let key = |field: &str| format!("oauth.clients[{i}].{field}");
        if c.client_id.is_empty() || c.client_id.chars().any(char::is_control) {
            return bad(
                key("client_id"),
                "must be non-empty without control characters".into(),
            );
        }
        let secret_sha256 = match (&c.client_secret, &c.client_secret_sha256) {
            (Some(secret), None) => {
                if secret.len() < MIN_SECRET_LEN {
                    return bad(
                        key("client_secret"),
                        format!(
                            "must be at least {MIN_SECRET_LEN} characters (is its variable set?)"
                        ),
                    );
                }
                Sha256::digest(secret.as_bytes()).into()
            }
            (None, Some(hex_digest)) => {
                let mut digest = [0u8; 32];
                if hex::decode_to_slice(hex_digest, &mut digest).is_err() {
                    return bad(key("client_secret_sha256"), "must be 64 hex digits".into());
                }
                digest
            }
            _ => {
                return bad(
                    key("client_secret"),
                    "set exactly one of client_secret and client_secret_sha256".into(),
                )
            }
        };
        for scope in &c.scopes {
            let valid = !scope.is_empty()
                && scope
                    .bytes()
                    .all(|b| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b));
            if !valid {
                return bad(
                    key("scopes"),
                    format!("{scope:?} is not a valid scope token (RFC 6749 section 3.3)"),
                );
            }
        }
        if let Some(extra) = c.default_scopes.iter().find(|s| !c.scopes.contains(s)) {
            return bad(key("default_scopes"), format!("{extra:?} is not in scopes"));
        }
        if let Some(unknown) = c
            .grant_types
            .iter()
            .find(|g| !GRANT_TYPES.contains(&g.as_str()))
        {
            return bad(
                key("grant_types"),
                format!("{unknown:?} is not supported (supported: {GRANT_TYPES:?})"),
            );
        }
        if c.access_token_ttl < Duration::from_secs(1) || c.access_token_ttl > MAX_TOKEN_TTL {
            return bad(key("access_token_ttl"), "must be between 1s and 24h".into());
        }
        let rate_limit = match c.rate_limit {
            Some(limit) => check_rate_limit(limit).map_err(|m| (key("rate_limit"), m))?,
            None => default_limit,
        };
        all_scopes.extend(c.scopes.iter().cloned());
        let client = Client {
            rate_limit,
            rate_limit_key: crate::store::rate_limit_key(&c.client_id),
            client_id: c.client_id.clone(),
            secret_sha256,
            scopes: c.scopes,
            default_scopes: c.default_scopes,
            grant_types: c.grant_types,
            access_token_ttl: c.access_token_ttl,
        };
        if clients.insert(c.client_id.clone(), client).is_some() {
            return bad(
                key("client_id"),
                format!("{:?} is registered twice", c.client_id),
            );
        }
    }
    Ok(OAuthSettings {
        issuer,
        clients,
        scopes_supported: all_scopes.into_iter().collect(),
    })
}

/// The budget `limit` describes (none for `unlimited`), if it is one.
fn check_rate_limit(limit: RateLimitConfig) -> Result<Option<RateLimit>, String> {
    let limit = match limit {
        RateLimitConfig::Unlimited(_) => return Ok(None),
        RateLimitConfig::Budget(budget) => budget,
    };
    if limit.requests == 0 || limit.per.is_zero() || limit.burst == 0 {
        return Err("requests, per and burst must be greater than zero".into());
    }
    let interval = limit.per / limit.requests;
    if interval < Duration::from_micros(1) {
        return Err("more than one request a microsecond is not a limit".into());
    }
    Ok(Some(RateLimit {
        interval,
        burst: limit.burst,
    }))
}

/// `10s`, `500ms`, `1m30s`, `2h`: a duration with units; a bare number is refused as
/// ambiguous.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let mut total = Duration::ZERO;
    let mut rest = s;
    if rest.is_empty() {
        return Err("empty duration".into());
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let number: u64 = rest[..digits]
            .parse()
            .map_err(|_| format!("{s:?} is not a duration like 10s, 500ms, 1m30s or 2h"))?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = match &rest[..unit_len] {
            "ms" => Duration::from_millis(1),
            "s" => Duration::from_secs(1),
            "m" => Duration::from_secs(60),
            "h" => Duration::from_secs(3600),
            _ => {
                return Err(format!(
                    "{s:?} is not a duration like 10s, 500ms, 1m30s or 2h"
                ))
            }
        };
        total += unit * u32::try_from(number).map_err(|_| format!("{s:?} is too large"))?;
        rest = &rest[unit_len..];
    }
    Ok(total)
}

/// `65536`, `64KiB`, `16MiB`, `1GiB`.
pub fn parse_byte_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let digits = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let number: u64 = s[..digits]
        .parse()
        .map_err(|_| format!("{s:?} is not a size like 65536, 64KiB or 16MiB"))?;
    let unit: u64 = match s[digits..].trim() {
        "" | "B" => 1,
        "KiB" | "KB" | "K" => 1 << 10,
        "MiB" | "MB" | "M" => 1 << 20,
        "GiB" | "GB" | "G" => 1 << 30,
        _ => return Err(format!("{s:?} is not a size like 65536, 64KiB or 16MiB")),
    };
    number
        .checked_mul(unit)
        .ok_or_else(|| format!("{s:?} is too large"))
}

fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = String::deserialize(d)?;
    parse_duration(&s).map_err(de::Error::custom)
}

fn byte_size<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Size {
        Bytes(u64),
        Text(String),
    }
    match Size::deserialize(d)? {
        Size::Bytes(n) => Ok(n),
        Size::Text(s) => parse_byte_size(&s).map_err(de::Error::custom),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = "
guest:
  path: guest.wasm
oauth:
  issuer: http://127.0.0.1:8080
  clients:
    - client_id: demo
      client_secret: ${SECRET}
      scopes: [read, write]
      default_scopes: [read]
";

    fn env(name: &str) -> Option<String> {
        match name {
            "SECRET" => Some("a-secret-of-enough-length".into()),
            "PORT" => Some("9090".into()),
            "TRICKY" => Some("pa: ss # word".into()),
            _ => None,
        }
    }

    fn parse_str(text: &str) -> Result<Loaded, ConfigError> {
        parse(Path::new("conf/test.yaml"), text, &env)
    }

    fn error(text: &str) -> String {
        parse_str(text).unwrap_err().to_string()
    }

    #[test]
    fn a_minimal_file_gets_safe_defaults() {
        let c = parse_str(MINIMAL).unwrap();
        assert_eq!(c.server.host, "127.0.0.1");
        assert_eq!(c.server.port, 8080);
        assert_eq!(c.server.max_body_size, 65536);
        assert_eq!(c.store.mode, StoreMode::Memory);
        assert_eq!(
            c.guest.path,
            Path::new("conf/guest.wasm"),
            "relative to the config file"
        );
        let demo = &c.oauth.clients["demo"];
        assert_eq!(
            demo.secret_sha256,
            <[u8; 32]>::from(Sha256::digest(b"a-secret-of-enough-length"))
        );
        assert_eq!(demo.access_token_ttl, Duration::from_secs(3600));
        assert_eq!(c.oauth.scopes_supported, ["read", "write"]);
        assert!(!c.server.tls.enabled);
        assert_eq!(c.guest.fuel, None);
        assert_eq!(c.guest.cache_dir, None);
        assert_eq!(c.guest.failure_policy.action, FailureAction::KeepServing);
    }

    #[test]
    fn https_settings_are_checked_together() {
        let with = |tls: &str| format!("server:\n  tls:\n{tls}{MINIMAL}");
        let e = error(&with("    enabled: true\n    cert_file: c.pem\n"));
        assert!(e.contains("server.tls.key_file: is required"), "{e}");
        let e = error(&with(
            "    enabled: true\n    cert_file: c.pem\n    key_file: k.pem\n    client_auth: required\n",
        ));
        assert!(e.contains("server.tls.client_ca_file"), "{e}");
        let e = error(&with("    introspect_requires_client_cert: true\n"));
        assert!(
            e.contains("server.tls.introspect_requires_client_cert"),
            "TLS off: {e}"
        );
        let e = error(&with("    client_auth: sometimes\n"));
        assert!(e.contains("server.tls.client_auth"), "{e}");
        let c = parse_str(&with(
            "    enabled: true\n    cert_file: c.pem\n    key_file: k.pem\n",
        ))
        .unwrap();
        assert_eq!(
            c.server.tls.cert_file.as_deref(),
            Some(Path::new("conf/c.pem"))
        );
    }

    #[test]
    fn guest_limits_and_policy_are_checked() {
        let e = error(&MINIMAL.replace("guest:\n", "guest:\n  fuel: 0\n"));
        assert!(e.contains("guest.fuel"), "{e}");
        let e =
            error(&MINIMAL.replace("guest:\n", "guest:\n  failure_policy:\n    action: panic\n"));
        assert!(e.contains("guest.failure_policy.action"), "{e}");
        let c = parse_str(&MINIMAL.replace(
            "guest:\n",
            "guest:\n  cache_dir: cache\n  failure_policy:\n    consecutive: 3\n    action: roll_back\n",
        ))
        .unwrap();
        assert_eq!(c.guest.cache_dir.as_deref(), Some(Path::new("conf/cache")));
        assert_eq!(c.guest.failure_policy.consecutive, 3);
        assert_eq!(c.guest.failure_policy.action, FailureAction::RollBack);
    }

    #[test]
    fn rate_limits_default_for_the_service_and_may_be_set_per_client() {
        let c = parse_str(MINIMAL).unwrap();
        let default = RateLimit {
            interval: Duration::from_millis(50),
            burst: 40,
        };
        assert_eq!(c.oauth.clients["demo"].rate_limit, Some(default));
        let c = parse_str(&MINIMAL.replace(
            "      default_scopes: [read]\n",
            "      default_scopes: [read]\n      rate_limit: {requests: 100, per: 1m, burst: 5}\n",
        ))
        .unwrap();
        let demo = &c.oauth.clients["demo"];
        let limit = demo.rate_limit.unwrap();
        assert_eq!(limit.interval, Duration::from_millis(600));
        assert_eq!(limit.burst, 5);
        assert_eq!(
            demo.rate_limit_key,
            format!(
                "oauth:rate_limit:{{{}}}",
                hex::encode(Sha256::digest(b"demo"))
            )
        );
        let e = error(&MINIMAL.replace(
            "  clients:\n",
            "  rate_limit: {requests: 0, burst: 1}\n  clients:\n",
        ));
        assert!(
            e.contains("oauth.rate_limit: requests, per and burst"),
            "{e}"
        );
        let e = error(&MINIMAL.replace(
            "      default_scopes: [read]\n",
            "      default_scopes: [read]\n      rate_limit: {requests: 2000000, burst: 1}\n",
        ));
        assert!(e.contains("oauth.clients[0].rate_limit"), "{e}");
        let c = parse_str(&MINIMAL.replace(
            "      default_scopes: [read]\n",
            "      default_scopes: [read]\n      rate_limit: unlimited\n",
        ))
        .unwrap();
        assert_eq!(c.oauth.clients["demo"].rate_limit, None);
        let e = error(&MINIMAL.replace(
            "      default_scopes: [read]\n",
            "      default_scopes: [read]\n      rate_limit: endless\n",
        ));
        assert!(e.contains("oauth.clients[0].rate_limit"), "{e}");
    }

    #[test]
    fn the_embedded_store_is_capped_by_default() {
        assert_eq!(parse_str(MINIMAL).unwrap().store.max_entries, 1_000_000);
        let e = error(&format!("tokenginx:\n  max_entries: 0\n{MINIMAL}"));
        assert!(e.contains("tokenginx.max_entries"), "{e}");
    }

    #[test]
    fn the_management_listener_is_optional_and_apart_from_the_public_one() {
        let c = parse_str(MINIMAL).unwrap();
        assert_eq!(
            c.metrics.port, None,
            "metrics share the public port by default"
        );
        let e = error(&format!("metrics:\n  port: 8080\n{MINIMAL}"));
        assert!(e.contains("metrics.port: must differ"), "{e}");
        let e = error(&format!(
            "metrics:\n  host: everywhere\n  port: 9090\n{MINIMAL}"
        ));
        assert!(e.contains("metrics.host"), "{e}");
        let c = parse_str(&format!(
            "metrics:\n  host: 0.0.0.0\n  port: 9090\n{MINIMAL}"
        ))
        .unwrap();
        assert_eq!(
            (c.metrics.host.as_str(), c.metrics.port),
            ("0.0.0.0", Some(9090))
        );
    }

    #[test]
    fn unknown_keys_are_named() {
        let e = error(&format!("server:\n  prot: 1\n{MINIMAL}"));
        assert!(
            e.starts_with("conf/test.yaml: server.prot: unknown field `prot`"),
            "{e}"
        );
    }

    #[test]
    fn wrong_types_name_the_key() {
        let e = error(&format!("server:\n  read_timeout: soon\n{MINIMAL}"));
        assert!(
            e.starts_with("conf/test.yaml: server.read_timeout: \"soon\" is not a duration"),
            "{e}"
        );
    }

    #[test]
    fn a_whole_variable_becomes_a_number_where_one_is_expected() {
        let c = parse_str(&format!("server:\n  port: ${{PORT}}\n{MINIMAL}")).unwrap();
        assert_eq!(c.server.port, 9090);
    }

    #[test]
    fn variables_cannot_change_the_document_structure() {
        let c = parse_str(&format!("tokenginx:\n  password: ${{TRICKY}}\n{MINIMAL}")).unwrap();
        assert_eq!(c.store.password.as_deref(), Some("pa: ss # word"));
    }

    #[test]
    fn an_unset_variable_is_an_error_naming_it_and_the_key() {
        let e = error(&MINIMAL.replace("${SECRET}", "${MISSING}"));
        assert_eq!(e, "conf/test.yaml: oauth.clients[0].client_secret: environment variable MISSING is not set");
    }

    #[test]
    fn a_default_applies_when_the_variable_is_unset() {
        let c =
            parse_str(&MINIMAL.replace("${SECRET}", "${MISSING:-another-long-secret}")).unwrap();
        assert_eq!(
            c.oauth.clients["demo"].secret_sha256,
            <[u8; 32]>::from(Sha256::digest(b"another-long-secret"))
        );
    }

    #[test]
    fn short_secrets_and_foreign_default_scopes_are_refused() {
        let e = error(&MINIMAL.replace("${SECRET}", "short"));
        assert!(
            e.contains("oauth.clients[0].client_secret: must be at least 16"),
            "{e}"
        );
        let e = error(&MINIMAL.replace("default_scopes: [read]", "default_scopes: [admin]"));
        assert!(
            e.contains("oauth.clients[0].default_scopes: \"admin\" is not in scopes"),
            "{e}"
        );
    }

    #[test]
    fn a_client_id_registered_twice_is_refused() {
        let twice = format!("{MINIMAL}    - client_id: demo\n      client_secret: another-long-secret\n      scopes: [read]\n");
        assert!(error(&twice).contains("oauth.clients[1].client_id: \"demo\" is registered twice"));
    }

    #[test]
    fn the_issuer_must_be_a_clean_url() {
        for issuer in ["127.0.0.1:8080", "http://x/", "http://x?a=b"] {
            let e = error(&MINIMAL.replace("http://127.0.0.1:8080", issuer));
            assert!(e.contains("oauth.issuer"), "{e}");
        }
    }

    #[test]
    fn missing_sections_are_named() {
        assert!(error("guest:\n  path: x.wasm\n").contains("missing field `oauth`"));
    }

    #[test]
    fn durations_and_sizes_parse_with_units() {
        assert_eq!(parse_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert!(parse_duration("10").is_err());
        assert!(parse_duration("10 s").is_err());
        assert_eq!(parse_byte_size("64KiB").unwrap(), 65536);
        assert_eq!(parse_byte_size("16MiB").unwrap(), 16 << 20);
        assert!(parse_byte_size("lots").is_err());
    }
}
