//! The checked configuration: typed values that the rest of the host uses as they are.

use super::cidr::Cidr;
use super::oauth::{check_oauth, OAuthSettings};
use super::raw::*;
use crate::contract::settings;
use crate::store::RateLimit;
use sha2::{Digest, Sha256};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A loaded, checked configuration.
#[derive(Debug)]
pub struct Loaded {
    pub server: Server,
    pub store: Store,
    pub log: LogConfig,
    pub metrics: Metrics,
    pub guest: GuestConfig,
    pub oauth: OAuthSettings,
    /// The admin API's listener: on with browser flows (`oauth.login_url`) or an `admin`
    /// section; none otherwise.
    pub admin: Option<Admin>,
    pub keys: Keys,
    /// Keys that were accepted but do nothing, each with why: `check-config` prints them and
    /// `serve` logs them.
    pub warnings: Vec<String>,
}

/// The host's keys (`keys`).
#[derive(Debug)]
pub struct Keys {
    /// The secret the keyring is kept under; none: no keys (a Redis store without a login
    /// app and without `keys.secret`). On the embedded store without a secret, one made up at
    /// start.
    pub secret: Option<Vec<u8>>,
    pub rotate_after: Duration,
    /// When the signing keys change; none when nothing is signed (no client can get an ID
    /// token or a JWT access token).
    pub signing: Option<crate::keys::sign::Schedule>,
}

/// The public listener (`server`).
#[derive(Debug)]
pub struct Server {
    pub addr: SocketAddr,
    pub read_timeout: Duration,
    pub write_timeout: Duration,
    pub idle_timeout: Duration,
    pub shutdown_timeout: Duration,
    pub max_body_size: u64,
    /// None: plain HTTP.
    pub tls: Option<ServerTls>,
    /// The guest routes, by name, only a client that presented a verified certificate
    /// reaches; only with client certificates asked for. The one key for it,
    /// `server.tls.introspect_requires_client_cert`, names the route `introspect`.
    pub client_cert_routes: Vec<String>,
    /// Each client address's budget on the anonymous endpoints; none: `unlimited`.
    pub address_rate_limit: Option<RateLimit>,
    /// Whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<Cidr>,
}

/// HTTPS on the public listener (`server.tls`).
#[derive(Debug)]
pub struct ServerTls {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    /// None: no client certificates asked for.
    pub client_certs: Option<ClientCerts>,
}

/// Client certificates (mTLS): verified against `ca_file` when sent.
#[derive(Debug)]
pub struct ClientCerts {
    /// The CAs a certificate may chain to; none: it may chain to none (only with
    /// `self_signed`).
    pub ca_file: Option<PathBuf>,
    /// Every connection must present one (`client_auth: required`).
    pub required: bool,
    /// A certificate that chains to no CA is taken too, its handshake signature checked
    /// (`self_signed_client_certs`, RFC 8705 section 2.2).
    pub self_signed: bool,
}

/// Where tokens are kept (`tokenginx`).
#[derive(Debug)]
pub enum Store {
    /// The embedded store, holding at most `max_entries`.
    Memory {
        max_entries: usize,
    },
    Redis(Box<Redis>),
}

/// A Redis server or cluster.
#[derive(Debug)]
pub struct Redis {
    pub cluster: bool,
    /// At least one; exactly one when not a cluster.
    pub addrs: Vec<String>,
    pub username: Option<String>,
    pub password: Option<String>,
    pub pool_size: u32,
    pub dial_timeout: Duration,
    pub read_timeout: Duration,
    pub pool_timeout: Duration,
    pub wait_replicas: u32,
    pub wait_aof: bool,
    pub wait_timeout: Duration,
    /// None: plain TCP.
    pub tls: Option<RedisTls>,
}

/// TLS to Redis (`tokenginx.tls`).
#[derive(Debug)]
pub struct RedisTls {
    /// The CA the servers' certificates chain to; none for the system's roots.
    pub ca_file: Option<PathBuf>,
    /// A client certificate and its key, for servers that ask for one.
    pub client: Option<(PathBuf, PathBuf)>,
}

/// The admin API's listener (`admin`).
#[derive(Debug)]
pub struct Admin {
    pub addr: SocketAddr,
    /// SHA-256 of `admin.api_key`, compared in constant time; none: no key asked for.
    pub api_key_sha256: Option<[u8; 32]>,
    /// mTLS: every connection presents a certificate that chains to `client_ca_file`.
    pub tls: Option<ServerTls>,
}

/// Metrics and health (`metrics`).
#[derive(Debug)]
pub struct Metrics {
    /// Where metrics are served; none when disabled.
    pub path: Option<String>,
    /// The management listener for metrics and health; none when they share the public one.
    pub management: Option<SocketAddr>,
}

/// Checks `config`, whose relative paths are relative to `base`, into typed values; an
/// error names the key.
pub fn check(config: Config, base: &Path) -> Result<Loaded, (String, String)> {
    let Config {
        server,
        tokenginx: store,
        log,
        metrics,
        guest,
        oauth,
        admin,
        keys,
    } = config;
    let mut warnings = Vec::new();
    let server = check_server(server, base)?;
    let metrics = check_metrics(metrics, &server)?;
    let oauth = check_oauth(oauth)?;
    let admin = match (oauth.flow.is_some(), admin) {
        (true, admin) => Some(check_admin(
            admin.unwrap_or_default(),
            base,
            &server,
            &metrics,
        )?),
        (false, Some(admin)) => Some(check_admin(admin, base, &server, &metrics)?),
        (false, None) => None,
    };
    let store = check_store(store, base, &mut warnings)?;
    let keys = check_keys(keys, &store, &oauth, admin.is_some())?;
    let mut oauth = oauth;
    oauth.defaults.signs_up_to = keys.signing.map(|s| s.longest_token.as_secs());
    if let Some(certs) = server
        .tls
        .as_ref()
        .and_then(|tls| tls.client_certs.as_ref())
    {
        oauth.mtls = settings::MtlsPolicy {
            chained: certs.ca_file.is_some(),
            self_signed: certs.self_signed,
        };
    }
    Ok(Loaded {
        store,
        keys,
        log: check_log(log, base)?,
        metrics,
        server,
        guest: check_guest(guest, base)?,
        oauth,
        admin,
        warnings,
    })
}

pub(super) fn bad<T>(
    key: impl Into<String>,
    message: impl Into<String>,
) -> Result<T, (String, String)> {
    Err((key.into(), message.into()))
}

fn ip(key: &str, host: &str) -> Result<IpAddr, (String, String)> {
    host.parse()
        .or_else(|_| bad(key, format!("{host:?} is not an IP address")))
}

fn check_server(server: ServerConfig, base: &Path) -> Result<Server, (String, String)> {
    let addr = SocketAddr::new(ip("server.host", &server.host)?, server.port);
    for (key, d) in [
        ("server.read_timeout", server.read_timeout),
        ("server.write_timeout", server.write_timeout),
        ("server.idle_timeout", server.idle_timeout),
    ] {
        if d.is_zero() {
            return bad(key, "must be greater than zero");
        }
    }
    if server.max_body_size == 0 {
        return bad("server.max_body_size", "must be greater than zero");
    }
    let introspect_requires_client_cert = server.tls.introspect_requires_client_cert;
    let tls = check_server_tls(server.tls, base)?;
    let chained = tls
        .as_ref()
        .and_then(|tls| tls.client_certs.as_ref())
        .is_some_and(|certs| certs.ca_file.is_some());
    if introspect_requires_client_cert && !chained {
        return bad(
            "server.tls.introspect_requires_client_cert",
            "needs server.tls.enabled, client_auth optional or required, and client_ca_file",
        );
    }
    let address_rate_limit = check_rate_limit(server.address_rate_limit)
        .map_err(|m| ("server.address_rate_limit".to_owned(), m))?;
    let trusted_proxies = server
        .trusted_proxies
        .iter()
        .map(|text| {
            Cidr::parse(text).ok_or_else(|| {
                (
                    "server.trusted_proxies".to_owned(),
                    format!("{text:?} is not an IP address or a CIDR block (10.0.0.0/8)"),
                )
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Server {
        addr,
        address_rate_limit,
        trusted_proxies,
        read_timeout: server.read_timeout,
        write_timeout: server.write_timeout,
        idle_timeout: server.idle_timeout,
        shutdown_timeout: server.shutdown_timeout,
        max_body_size: server.max_body_size,
        tls,
        client_cert_routes: match introspect_requires_client_cert {
            true => vec!["introspect".to_owned()],
            false => Vec::new(),
        },
    })
}

fn check_server_tls(
    tls: ServerTlsConfig,
    base: &Path,
) -> Result<Option<ServerTls>, (String, String)> {
    if !tls.enabled {
        return Ok(None);
    }
    let required = |file: Option<PathBuf>, key: &str, why: &str| match file {
        Some(file) => Ok(base.join(file)),
        None => bad(format!("server.tls.{key}"), format!("is required {why}")),
    };
    let when_enabled = "when server.tls.enabled is true";
    let cert_file = required(tls.cert_file, "cert_file", when_enabled)?;
    let key_file = required(tls.key_file, "key_file", when_enabled)?;
    let client_certs = match tls.client_auth {
        ClientAuth::None if tls.self_signed_client_certs => {
            return bad(
                "server.tls.self_signed_client_certs",
                "needs client_auth optional or required",
            )
        }
        ClientAuth::None => None,
        auth => Some(ClientCerts {
            ca_file: match tls.self_signed_client_certs {
                true => tls.client_ca_file.map(|file| base.join(file)),
                false => Some(required(
                    tls.client_ca_file,
                    "client_ca_file",
                    "to verify client certificates (or self_signed_client_certs: true)",
                )?),
            },
            required: auth == ClientAuth::Required,
            self_signed: tls.self_signed_client_certs,
        }),
    };
    Ok(Some(ServerTls {
        cert_file,
        key_file,
        client_certs,
    }))
}

fn check_store(
    store: StoreConfig,
    base: &Path,
    warnings: &mut Vec<String>,
) -> Result<Store, (String, String)> {
    let defaults = StoreConfig::default();
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
    if store.pool_size == 0 {
        return bad("tokenginx.pool_size", "must be greater than zero");
    }
    if store.min_idle_conns > store.pool_size {
        return bad("tokenginx.min_idle_conns", "must not exceed pool_size");
    }
    let tls = &store.tls;
    let client = match (&tls.cert_file, &tls.key_file) {
        (Some(cert), Some(key)) => Some((base.join(cert), base.join(key))),
        (Some(_), None) => return bad("tokenginx.tls.key_file", "is required with cert_file"),
        (None, Some(_)) => return bad("tokenginx.tls.cert_file", "is required with key_file"),
        (None, None) => None,
    };
    let tls = tls.enabled.then(|| RedisTls {
        ca_file: tls.ca_file.as_ref().map(|f| base.join(f)),
        client,
    });
    let cluster = match store.mode {
        StoreMode::Memory => {
            if store.max_entries == 0 {
                return bad("tokenginx.max_entries", "must be greater than zero");
            }
            let max_entries = usize::try_from(store.max_entries).unwrap_or(usize::MAX);
            return Ok(Store::Memory { max_entries });
        }
        StoreMode::Standalone => false,
        StoreMode::Cluster => true,
    };
    if store.addrs.is_empty() {
        return bad(
            "tokenginx.addrs",
            "at least one address is needed for standalone and cluster modes",
        );
    }
    if !cluster && store.addrs.len() > 1 {
        return bad(
            "tokenginx.addrs",
            "standalone mode takes exactly one address",
        );
    }
    Ok(Store::Redis(Box::new(Redis {
        cluster,
        addrs: store.addrs,
        username: store.username,
        password: store.password,
        pool_size: store.pool_size,
        dial_timeout: store.dial_timeout,
        read_timeout: store.read_timeout,
        pool_timeout: store.pool_timeout,
        wait_replicas: store.wait_replicas,
        wait_aof: store.wait_aof,
        wait_timeout: store.wait_timeout,
        tls,
    })))
}

fn check_log(mut log: LogConfig, base: &Path) -> Result<LogConfig, (String, String)> {
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
    Ok(log)
}

fn check_metrics(metrics: MetricsConfig, server: &Server) -> Result<Metrics, (String, String)> {
    if !metrics.path.starts_with('/') {
        return bad(
            "metrics.path",
            format!("{:?} must start with /", metrics.path),
        );
    }
    let host = ip("metrics.host", &metrics.host)?;
    let management = match metrics.port {
        Some(port) if port != 0 && port == server.addr.port() => {
            return bad(
                "metrics.port",
                "must differ from server.port: it is a listener of its own",
            )
        }
        Some(port) => Some(SocketAddr::new(host, port)),
        None => None,
    };
    Ok(Metrics {
        path: metrics.enabled.then_some(metrics.path),
        management,
    })
}

pub(super) fn check_guest(
    mut guest: GuestConfig,
    base: &Path,
) -> Result<GuestConfig, (String, String)> {
    guest.path = base.join(&guest.path);
    if guest.memory_limit < 1024 * 1024 {
        return bad("guest.memory_limit", "must be at least 1MiB");
    }
    if guest.deadline.is_zero() {
        return bad("guest.deadline", "must be greater than zero");
    }
    if guest.max_instances == 0 {
        return bad("guest.max_instances", "must be greater than zero");
    }
    if guest.fuel == Some(0) {
        return bad("guest.fuel", "must be greater than zero, or left out");
    }
    if let Some(dir) = &mut guest.cache_dir {
        *dir = base.join(&*dir);
    }
    if let Some(reuse) = guest.reuse {
        if !(2..=1_000_000).contains(&reuse.requests) {
            return bad(
                "guest.reuse.requests",
                "must be between 2 and 1000000 (leave guest.reuse out for a fresh instance \
                 per request)",
            );
        }
        if reuse.max_age < Duration::from_secs(1) || reuse.max_age > Duration::from_secs(3600) {
            return bad("guest.reuse.max_age", "must be between 1s and 1h");
        }
    }
    if guest.failure_policy.consecutive == 0 {
        return bad(
            "guest.failure_policy.consecutive",
            "must be greater than zero",
        );
    }
    Ok(guest)
}

fn check_admin(
    admin: AdminConfig,
    base: &Path,
    server: &Server,
    metrics: &Metrics,
) -> Result<Admin, (String, String)> {
    let addr = SocketAddr::new(ip("admin.host", &admin.host)?, admin.port);
    let taken = [Some(server.addr), metrics.management];
    if admin.port != 0 && taken.iter().flatten().any(|a| a.port() == admin.port) {
        return bad(
            "admin.port",
            "must differ from server.port and metrics.port: the admin API never shares a port",
        );
    }
    let api_key_sha256 = match admin.api_key {
        Some(key) if key.len() < 32 => {
            return bad(
                "admin.api_key",
                "must be at least 32 characters (is its variable set?)",
            )
        }
        Some(key) => Some(Sha256::digest(key.as_bytes()).into()),
        None => None,
    };
    let tls = match (
        admin.tls.cert_file,
        admin.tls.key_file,
        admin.tls.client_ca_file,
    ) {
        (None, None, None) => None,
        (Some(cert), Some(key), Some(ca)) => Some(ServerTls {
            cert_file: base.join(cert),
            key_file: base.join(key),
            client_certs: Some(ClientCerts {
                ca_file: Some(base.join(ca)),
                required: true,
                self_signed: false,
            }),
        }),
        _ => {
            return bad(
                "admin.tls",
                "set cert_file, key_file and client_ca_file together (mTLS)",
            )
        }
    };
    if !addr.ip().is_loopback() && api_key_sha256.is_none() && tls.is_none() {
        return bad(
            "admin.host",
            format!(
                "{} is not a loopback address: set admin.api_key or admin.tls, or the admin \
                 API is open to anyone who can reach it",
                addr.ip()
            ),
        );
    }
    Ok(Admin {
        addr,
        api_key_sha256,
        tls,
    })
}

/// The keys: a secret of at least 32 characters; required where replicas share a store and
/// something needs sealing (a login app) or signing (ID tokens, JWT access tokens); made up
/// at start on the embedded store. The signing schedule must keep a bounded number of keys.
///
/// With the admin API on (`admin_api`), a client registered at runtime may ask for signed
/// tokens: the host then signs wherever it has key material (the embedded store, or
/// `keys.secret`), its tokens living at most as long as the configured clients' or
/// `oauth.id_token_ttl`.
fn check_keys(
    keys: KeysConfig,
    store: &Store,
    oauth: &OAuthSettings,
    admin_api: bool,
) -> Result<Keys, (String, String)> {
    use crate::keys::sign::{Schedule, MAX_KEYS_PER_ALGORITHM};
    let day = Duration::from_secs(24 * 3600);
    if keys.rotate_after < Duration::from_secs(3600) || keys.rotate_after > 7 * day {
        return bad("keys.rotate_after", "must be between 1h and 7d");
    }
    if keys.publish_ahead < Duration::from_secs(4) || keys.publish_ahead > 7 * day {
        return bad("keys.publish_ahead", "must be between 4s and 7d");
    }
    if keys.rotate_every <= keys.publish_ahead || keys.rotate_every > 365 * day {
        return bad(
            "keys.rotate_every",
            "must be longer than keys.publish_ahead and at most 365d",
        );
    }
    let has_material = keys.secret.is_some() || matches!(store, Store::Memory { .. });
    let runtime_clients =
        (admin_api && has_material).then(|| Duration::from_secs(oauth.defaults.id_token_ttl));
    let signing = oauth
        .longest_signed
        .or(runtime_clients)
        .map(|longest_token| Schedule {
            rotate_every: keys.rotate_every,
            publish_ahead: keys.publish_ahead,
            longest_token,
        });
    if let Some(schedule) = signing.filter(|s| s.keys_held() > MAX_KEYS_PER_ALGORITHM) {
        return bad(
            "keys.rotate_every",
            format!(
                "{:?} would keep {} keys of each algorithm published (a retired key stays \
                 until the longest signed token, {}s, has expired): at most \
                 {MAX_KEYS_PER_ALGORITHM}; rotate less often or shorten the token lifetimes",
                schedule.rotate_every,
                schedule.keys_held(),
                schedule.longest_token.as_secs()
            ),
        );
    }
    let flow = oauth.flow.is_some();
    let needs = match (flow, signing.is_some()) {
        (true, _) => Some(
            "oauth.login_url is set: every replica seals and opens the sign-in \
                           flow's challenges",
        ),
        _ if oauth.dpop.require_nonce => Some(
            "oauth.dpop.require_nonce is set: every replica seals and opens the DPoP \
             nonces",
        ),
        (false, true) => Some(
            "a client can get signed tokens (openid in its scopes, or the \
                               JWT access token strategy): every replica signs them",
        ),
        (false, false) => None,
    };
    let secret = match (keys.secret, store) {
        (Some(secret), _) if secret.chars().count() < 32 => {
            return bad(
                "keys.secret",
                "must be at least 32 characters (is its variable set?)",
            )
        }
        (Some(secret), _) => Some(secret.into_bytes()),
        (None, Store::Redis(_)) if needs.is_some() => {
            return bad(
                "keys.secret",
                format!(
                    "is required on a Redis store once {} with keys kept in the store under \
                     it (at least 32 characters, the same on every replica, e.g. \
                     ${{KEYS_SECRET}})",
                    needs.unwrap_or_default()
                ),
            )
        }
        (None, Store::Redis(_)) => None,
        (None, Store::Memory { .. }) => {
            let mut secret = vec![0u8; 32];
            getrandom::fill(&mut secret)
                .map_err(|e| ("keys.secret".to_owned(), format!("cannot make one up: {e}")))?;
            Some(secret)
        }
    };
    Ok(Keys {
        secret,
        rotate_after: keys.rotate_after,
        signing,
    })
}

/// The budget `limit` describes (none for `unlimited`), if it is one.
pub(super) fn check_rate_limit(limit: RateLimitConfig) -> Result<Option<RateLimit>, String> {
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
