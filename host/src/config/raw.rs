//! The file as written: serde structs with the Go guide's sections and keys, and their
//! defaults. Nothing here is checked beyond its type; [`super::checked`] does that.
//!
//! Defaults follow one rule: a section whose every key is optional implements `Default`
//! and is `#[serde(default)]` as a whole; a struct with required keys (`guest`, a client, a
//! budget) names a default function for each optional key; an `Option` or `bool` key
//! defaults to none or false.

use serde::de::{self, Deserializer};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

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
    #[serde(default)]
    pub admin: AdminConfig,
}

/// The admin API (Ory Hydra's login and consent endpoints), on a listener of its own.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    pub host: String,
    pub port: u16,
    /// When set, every admin request needs `Authorization: Bearer <key>`.
    pub api_key: Option<String>,
    /// mTLS on the admin listener: PEM certificate and key, and the CA client certificates
    /// must chain to.
    pub tls: AdminTlsConfig,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            host: "127.0.0.1".into(),
            port: 4445,
            api_key: None,
            tls: AdminTlsConfig::default(),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminTlsConfig {
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    pub client_ca_file: Option<PathBuf>,
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
    /// Where the operator's login app takes the browser (`?login_challenge=`); with
    /// `consent_url`, it turns on the authorization endpoint.
    #[serde(default)]
    pub login_url: Option<String>,
    #[serde(default)]
    pub consent_url: Option<String>,
    /// How long an authorization code may wait to be redeemed.
    #[serde(default = "default_code_ttl", deserialize_with = "duration")]
    pub authorization_code_ttl: Duration,
    /// How long a refresh token may wait to be used, unless the client sets its own.
    #[serde(default = "default_refresh_ttl", deserialize_with = "duration")]
    pub refresh_token_ttl: Duration,
    /// How long a grant lives at most, however often its refresh token is rotated.
    #[serde(default = "default_grant_lifetime", deserialize_with = "duration")]
    pub grant_max_lifetime: Duration,
    /// For how long a rotated refresh token may come back for the answer it missed; zero:
    /// never (a rotated token that comes back ends its grant).
    #[serde(default, deserialize_with = "duration")]
    pub refresh_token_reuse_grace: Duration,
}

fn default_code_ttl() -> Duration {
    Duration::from_secs(60)
}
fn default_refresh_ttl() -> Duration {
    Duration::from_secs(30 * DAY)
}
fn default_grant_lifetime() -> Duration {
    Duration::from_secs(90 * DAY)
}
const DAY: u64 = 24 * 3600;

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
    /// How the client authenticates at the token endpoint: `client_secret_basic`,
    /// `client_secret_post` (either, for a client with a secret) or `none` (a public client).
    #[serde(default)]
    pub token_endpoint_auth_method: Option<String>,
    /// Where the authorization endpoint may send the browser back, compared exactly.
    #[serde(default)]
    pub redirect_uris: Vec<String>,
    /// The name the consent page shows.
    #[serde(default)]
    pub client_name: String,
    /// The consent app may skip asking (it is told `skip_consent`).
    #[serde(default)]
    pub skip_consent: bool,
    /// This client's `oauth.refresh_token_ttl`.
    #[serde(default, deserialize_with = "optional_duration")]
    pub refresh_token_ttl: Option<Duration>,
}

fn default_grant_types() -> Vec<String> {
    vec!["client_credentials".into()]
}
fn default_token_ttl() -> Duration {
    Duration::from_secs(3600)
}

/// `10s`, `500ms`, `1m30s`, `2h`, `30d`: a duration with units; a bare number is refused
/// as ambiguous.
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
            .map_err(|_| format!("{s:?} is not a duration like 10s, 500ms, 1m30s, 2h or 30d"))?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = match &rest[..unit_len] {
            "ms" => Duration::from_millis(1),
            "s" => Duration::from_secs(1),
            "m" => Duration::from_secs(60),
            "h" => Duration::from_secs(3600),
            "d" => Duration::from_secs(DAY),
            _ => {
                return Err(format!(
                    "{s:?} is not a duration like 10s, 500ms, 1m30s, 2h or 30d"
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

fn optional_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    duration(d).map(Some)
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
