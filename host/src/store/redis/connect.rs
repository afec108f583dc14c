//! Connecting to Redis: TLS material, the pool's standalone and cluster connections, and
//! the check at start that every configured node answers our credentials (and, with
//! `wait_aof`, can keep an append-only file).

use super::{MAX_BACKOFF, MIN_BACKOFF, RETRIES};
use crate::config::Redis as Config;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::{Client, IntoConnectionInfo, RedisError, TlsCertificates, Value};
use std::time::Duration;

/// PEM material for TLS, when `tokenginx.tls` is enabled.
pub(super) fn tls_certificates(config: &Config) -> anyhow::Result<Option<TlsCertificates>> {
    let Some(tls) = &config.tls else {
        return Ok(None);
    };
    let read = |key: &str, path: &std::path::Path| {
        std::fs::read(path).map_err(|e| {
            anyhow::anyhow!("tokenginx.tls.{key}: cannot read {}: {e}", path.display())
        })
    };
    let root_cert = tls
        .ca_file
        .as_deref()
        .map(|p| read("ca_file", p))
        .transpose()?;
    let client_tls = match &tls.client {
        Some((cert, key)) => Some(redis::ClientTlsConfig {
            client_cert: read("cert_file", cert)?,
            client_key: read("key_file", key)?,
        }),
        None => None,
    };
    Ok(Some(TlsCertificates {
        client_tls,
        root_cert,
    }))
}

/// How long a reply may take: the read timeout, plus the time `WAIT` or `WAITAOF` may block
/// when durability is on (its reply comes only then).
fn response_timeout(config: &Config) -> Duration {
    if config.wait_replicas > 0 || config.wait_aof {
        config.read_timeout + config.wait_timeout
    } else {
        config.read_timeout
    }
}

fn url(addr: &str, tls: bool) -> String {
    format!("{}://{addr}", if tls { "rediss" } else { "redis" })
}

/// A standalone client for `addr` with our credentials.
fn client(config: &Config, addr: &str, tls: Option<TlsCertificates>) -> Result<Client, RedisError> {
    let mut info = url(addr, tls.is_some()).into_connection_info()?;
    let mut settings = info.redis_settings().clone();
    if let Some(user) = &config.username {
        settings = settings.set_username(user);
    }
    if let Some(password) = &config.password {
        settings = settings.set_password(password);
    }
    info = info.set_redis_settings(settings);
    match tls {
        Some(certs) => Client::build_with_tls(info, certs),
        None => Client::open(info),
    }
}

/// Connects to every configured node once, so that a wrong password, CA or client
/// certificate is reported at start with the node's address. Unreachable nodes are only
/// fatal when none answers.
pub(super) async fn preflight(
    config: &Config,
    tls: Option<&TlsCertificates>,
) -> anyhow::Result<()> {
    let mut reachable = 0;
    let mut unreachable = Vec::new();
    for (i, addr) in config.addrs.iter().enumerate() {
        let attempt = async {
            let client = client(config, addr, tls.cloned())?;
            let connect = redis::AsyncConnectionConfig::new()
                .set_connection_timeout(Some(config.dial_timeout))
                .set_response_timeout(Some(config.read_timeout));
            let mut c = client
                .get_multiplexed_async_connection_with_config(&connect)
                .await?;
            redis::cmd("PING").query_async::<String>(&mut c).await?;
            match config.wait_aof {
                true => aof_problem(&mut c).await,
                false => Ok(None),
            }
        };
        match attempt.await {
            Ok(Some(problem)) => anyhow::bail!("tokenginx.wait_aof: {addr}: {problem}"),
            Ok(None) => reachable += 1,
            Err(e) if e.is_connection_refusal() || e.is_timeout() => {
                tracing::warn!("tokenginx.addrs[{i}] {addr}: unreachable: {e}");
                unreachable.push(format!("{addr}: {e}"));
            }
            Err(e) => anyhow::bail!("tokenginx.addrs[{i}] {addr}: {e}"),
        }
    }
    if reachable == 0 {
        anyhow::bail!(
            "tokenginx.addrs: no node is reachable ({})",
            unreachable.join("; ")
        );
    }
    Ok(())
}

/// Why the node behind `c` cannot serve `wait_aof`, if it cannot: `WAITAOF` needs Redis 7.2
/// (or Valkey) and `appendonly yes`.
async fn aof_problem(
    c: &mut redis::aio::MultiplexedConnection,
) -> Result<Option<String>, RedisError> {
    let info: Vec<Value> = redis::cmd("COMMAND")
        .arg("INFO")
        .arg("WAITAOF")
        .query_async(c)
        .await?;
    if matches!(info.first(), None | Some(Value::Nil)) {
        return Ok(Some(
            "the node has no WAITAOF command (it needs Redis 7.2 or later, or Valkey)".into(),
        ));
    }
    // CONFIG may be refused to our user (managed services): then WAITAOF itself will say.
    let appendonly: Result<Vec<String>, RedisError> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("appendonly")
        .query_async(c)
        .await;
    Ok(match appendonly {
        Ok(pair) if pair.get(1).is_some_and(|v| v != "yes") => {
            Some("the node runs with appendonly no; WAITAOF needs appendonly yes".into())
        }
        _ => None,
    })
}

pub(super) async fn standalone(
    config: &Config,
    tls: Option<TlsCertificates>,
) -> anyhow::Result<ConnectionManager> {
    let addr = &config.addrs[0];
    let client = client(config, addr, tls)?;
    let manager = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(config.dial_timeout))
        .set_response_timeout(Some(response_timeout(config)))
        .set_number_of_retries(RETRIES as usize)
        .set_min_delay(MIN_BACKOFF)
        .set_max_delay(MAX_BACKOFF);
    client
        .get_connection_manager_with_config(manager)
        .await
        .map_err(|e| anyhow::anyhow!("tokenginx.addrs[0] {addr}: {e}"))
}

pub(super) async fn cluster(
    config: &Config,
    tls: Option<TlsCertificates>,
) -> anyhow::Result<ClusterConnection> {
    let nodes: Vec<String> = config.addrs.iter().map(|a| url(a, tls.is_some())).collect();
    let mut builder = ClusterClientBuilder::new(nodes)
        .retries(RETRIES)
        .min_retry_wait(MIN_BACKOFF.as_millis() as u64)
        .max_retry_wait(MAX_BACKOFF.as_millis() as u64)
        // wait = 2^attempt * 8 ms, clamped to [8 ms, 512 ms].
        .retry_wait_formula(MIN_BACKOFF.as_millis() as u64, 2)
        .connection_timeout(config.dial_timeout)
        .response_timeout(response_timeout(config));
    if let Some(user) = &config.username {
        builder = builder.username(user);
    }
    if let Some(password) = &config.password {
        builder = builder.password(password);
    }
    if let Some(certs) = tls {
        builder = builder.certs(certs);
    }
    let client = builder.build()?;
    client.get_async_connection().await.map_err(|e| {
        anyhow::anyhow!(
            "tokenginx.addrs {:?}: cannot connect to the cluster: {e}",
            config.addrs
        )
    })
}
