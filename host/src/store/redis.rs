//! The Redis store: one server (`tokenginx.mode: standalone`) or a Redis Cluster
//! (`cluster`), over the `redis` crate, optionally over TLS 1.3 with client certificates.
//!
//! - A pool of `pool_size` multiplexed connections, filled in order (see `pick`).
//!   Standalone connections are `ConnectionManager`s, which reconnect by themselves;
//!   cluster connections follow MOVED/ASK and refresh the slot map after a failover.
//! - Every operation is bounded: a failed attempt is retried 3 times with backoff from 8 ms
//!   to 512 ms (the Go guide's policy), and the whole operation is abandoned after
//!   `pool_timeout`, answering `Unavailable` (HTTP 503) rather than hanging.
//! - Batched reads are one MGET per hash tag (a GET for a lone key), all sent at once, each
//!   routed to its slot, so keys from different slots never meet in one command (no
//!   CROSSSLOT).
//! - Every change (a write, a delete) is pipelined with `WAIT` (`wait_replicas`) or
//!   `WAITAOF` (`wait_aof`) on the same connection to the key's master, and is acknowledged
//!   only once enough replicas (and append-only files) have it: a change that would vanish
//!   in a failover answers `Unavailable` (HTTP 503) instead, and the client retries.
//! - A transaction (`apply`) is one script, sent with `EVAL` so that it pipelines with the
//!   durability wait like any change; its keys share a hash tag, so the script runs on one
//!   master in one atomic step.
//! - Rate-limit buckets are one key each, charged by a script in one atomic step.

use super::{
    check_batch, check_key, check_transaction, check_write, RateLimit, StoreError, StoreResult,
    TokenStore, Transaction,
};
use crate::config::Redis as Config;
use async_trait::async_trait;
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::{AsyncCommands, Client, IntoConnectionInfo, RedisError, TlsCertificates, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::LazyLock;
use std::time::Duration;

/// The Go guide's retry policy: 3 retries, backoff from 8 ms doubling to at most 512 ms.
const RETRIES: u32 = 3;
const MIN_BACKOFF: Duration = Duration::from_millis(8);
const MAX_BACKOFF: Duration = Duration::from_millis(512);
/// Operations in flight on one connection before the next connection of the pool is used.
const PIPELINE_DEPTH: usize = 64;

/// One connection of the pool.
#[derive(Clone)]
enum Connection {
    Standalone(ConnectionManager),
    Cluster(ClusterConnection),
}

/// A pooled connection with the number of operations using it right now.
struct Pooled {
    connection: Connection,
    in_flight: AtomicUsize,
}

/// What a change waits for before it is acknowledged.
#[derive(Clone, Copy)]
struct Durability {
    /// `tokenginx.wait_replicas`: replicas that must have the change.
    replicas: u32,
    /// `tokenginx.wait_aof`: the master's append-only file, and each of those replicas',
    /// must have it on disk.
    aof: bool,
    timeout: Duration,
}

impl Durability {
    /// The command that waits (`WAIT` or `WAITAOF`), if any.
    fn command(&self) -> Option<redis::Cmd> {
        let ms = self.timeout.as_millis() as u64;
        if self.aof {
            let mut wait = redis::cmd("WAITAOF");
            wait.arg(1).arg(self.replicas).arg(ms);
            Some(wait)
        } else if self.replicas > 0 {
            let mut wait = redis::cmd("WAIT");
            wait.arg(self.replicas).arg(ms);
            Some(wait)
        } else {
            None
        }
    }

    /// Whether the reply of [`Self::command`] acknowledges the change; why not if it does not.
    fn check(&self, reply: Option<&Value>) -> Result<(), String> {
        let counts = match reply {
            None => return Ok(()),
            Some(Value::Int(replicas)) => (1, *replicas),
            Some(Value::Array(counts)) => match counts.as_slice() {
                [Value::Int(local), Value::Int(replicas)] => (*local, *replicas),
                _ => return Err(format!("unexpected WAITAOF reply {counts:?}")),
            },
            Some(other) => return Err(format!("unexpected WAIT reply {other:?}")),
        };
        let (local, replicas) = counts;
        if local >= 1 && replicas >= i64::from(self.replicas) {
            return Ok(());
        }
        let wanted = self.replicas;
        let what = match self.aof {
            true => format!(
                "the change reached the append-only file of {local} of 1 master and \
                 {replicas} of {wanted} replicas"
            ),
            false => format!("only {replicas} of {wanted} replicas acknowledged the change"),
        };
        Err(format!("{what} within {:?}", self.timeout))
    }
}

pub struct RedisStore {
    pool: Vec<Pooled>,
    /// Upper bound of one operation, retries and reconnects included.
    op_timeout: Duration,
    durability: Durability,
    /// Called with (pool size, idle connections) whenever the idle count may have changed.
    on_pool_change: Box<dyn Fn(usize, usize) + Send + Sync>,
}

impl RedisStore {
    /// Connects every pooled connection; a node that refuses our password or TLS
    /// credentials is an error naming it.
    pub async fn connect(
        config: &Config,
        on_pool_change: Box<dyn Fn(usize, usize) + Send + Sync>,
    ) -> anyhow::Result<RedisStore> {
        let tls = tls_certificates(config)?;
        preflight(config, tls.as_ref()).await?;
        let mut pool = Vec::with_capacity(config.pool_size as usize);
        for _ in 0..config.pool_size {
            let connection = match config.cluster {
                false => Connection::Standalone(standalone(config, tls.clone()).await?),
                true => Connection::Cluster(cluster(config, tls.clone()).await?),
            };
            pool.push(Pooled {
                connection,
                in_flight: AtomicUsize::new(0),
            });
        }
        let store = RedisStore {
            pool,
            op_timeout: config.pool_timeout,
            durability: Durability {
                replicas: config.wait_replicas,
                aof: config.wait_aof,
                timeout: config.wait_timeout,
            },
            on_pool_change,
        };
        (store.on_pool_change)(store.pool.len(), store.pool.len());
        Ok(store)
    }

    /// Runs `op` on a pooled connection, with the Go guide's retries, within the op timeout.
    async fn run<T, F, Fut>(&self, what: &'static str, op: F) -> StoreResult<T>
    where
        F: Fn(Connection) -> Fut,
        Fut: std::future::Future<Output = Result<T, RedisError>>,
    {
        let pooled = self.pick();
        pooled.in_flight.fetch_add(1, Ordering::Relaxed);
        self.report_pool();
        let attempts = async {
            let mut backoff = MIN_BACKOFF;
            let mut attempt = 0;
            loop {
                match op(pooled.connection.clone()).await {
                    Ok(value) => return Ok(value),
                    Err(e) if attempt < RETRIES && retriable(&e) => {
                        tracing::debug!("redis {what} failed, retrying in {backoff:?}: {e}");
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(MAX_BACKOFF);
                        attempt += 1;
                    }
                    Err(e) => return Err(e),
                }
            }
        };
        let result = tokio::time::timeout(self.op_timeout, attempts).await;
        pooled.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.report_pool();
        match result {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) if retriable(&e) => {
                Err(StoreError::Unavailable(format!("redis {what}: {e}")))
            }
            Ok(Err(e)) => Err(StoreError::Unavailable(format!(
                "redis {what} refused: {e}"
            ))),
            Err(_) => Err(StoreError::Unavailable(format!(
                "redis {what} did not complete within {:?}",
                self.op_timeout
            ))),
        }
    }

    /// The first connection with fewer than `PIPELINE_DEPTH` operations in flight, or when
    /// every one is that busy, the least busy. Filling connections in order keeps commands
    /// together, and the client pipelines what is queued on one connection into one write
    /// and one read: on 2 cores that measured 17% more introspections a second, and Redis
    /// spent a third of the CPU a command, against spreading them round robin over 10.
    fn pick(&self) -> &Pooled {
        let depth = |p: &Pooled| p.in_flight.load(Ordering::Relaxed);
        self.pool
            .iter()
            .find(|p| depth(p) < PIPELINE_DEPTH)
            .or_else(|| self.pool.iter().min_by_key(|p| depth(p)))
            .expect("the pool has at least one connection")
    }

    fn report_pool(&self) {
        let idle = self
            .pool
            .iter()
            .filter(|p| p.in_flight.load(Ordering::Relaxed) == 0)
            .count();
        (self.on_pool_change)(self.pool.len(), idle);
    }

    /// Runs `command`, which changes the store, pipelined with the durability wait on the
    /// same connection (so it reaches the key's master), and returns its reply. Every change
    /// waits, whatever its reply: a delete that found nothing may follow another request's
    /// delete that is not yet replicated.
    async fn change(&self, what: &'static str, command: redis::Cmd) -> StoreResult<Value> {
        let durability = self.durability;
        let (reply, ack) = self
            .run(what, |mut c| {
                let mut pipe = redis::pipe();
                pipe.add_command(command.clone());
                if let Some(wait) = durability.command() {
                    pipe.add_command(wait);
                }
                async move {
                    let mut replies: Vec<Value> = pipe.query_async(&mut c).await?;
                    let ack = replies.get(1).cloned();
                    Ok((replies.swap_remove(0), ack))
                }
            })
            .await?;
        durability
            .check(ack.as_ref())
            .map_err(|why| StoreError::Unavailable(format!("redis {what}: {why}")))?;
        Ok(reply)
    }

    /// SET with PX (and NX when `only_if_absent`); whether the value was written.
    async fn write(
        &self,
        key: &str,
        value: &[u8],
        ttl_ms: u64,
        only_if_absent: bool,
    ) -> StoreResult<bool> {
        let mut set = redis::cmd("SET");
        set.arg(key).arg(value).arg("PX").arg(ttl_ms);
        if only_if_absent {
            set.arg("NX");
        }
        let reply = self.change("set", set).await?;
        Ok(!matches!(reply, Value::Nil))
    }
}

/// One GCRA step, as [`RateLimit::charge`]: `KEYS[1]` holds the bucket's theoretical arrival
/// time in microseconds of the server's clock (one clock for every host sharing the store);
/// `ARGV` are the interval in microseconds and the burst. Returns 0 when the request is
/// admitted, else the microseconds to wait. The bucket expires once it is full again.
///
/// Buckets are not replicated (`REPL_NONE`): a failover only gives each client a fresh burst,
/// and replicas and `WAIT` are spared a write for every request.
static CHARGE: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
redis.set_repl(redis.REPL_NONE)
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local interval = tonumber(ARGV[1])
local tolerance = interval * tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
local ahead = tat + interval - now
if ahead > tolerance then return ahead - tolerance end
redis.call('SET', KEYS[1], string.format('%d', tat + interval), 'PX', math.ceil(ahead / 1000))
return 0
",
    )
});

/// A transaction (see `store.apply` in `wit/oauth.wit`): `KEYS` are the expected keys, then
/// the changed ones; `ARGV[1]` is the number of expected keys; then for each expected key
/// `1` and the value it must hold, or `0` for absent; then for each change `1`, the value
/// and its TTL in ms, or `0`, `''`, `''` for a removal. Returns 1 when the changes were made,
/// 0 (changing nothing) when an expectation failed. Redis runs a script alone, so nothing
/// comes between the reads and the writes.
const APPLY: &str = r"
local expected = tonumber(ARGV[1])
local a = 2
for i = 1, expected do
  local value = redis.call('GET', KEYS[i])
  if ARGV[a] == '1' then
    if value ~= ARGV[a + 1] then return 0 end
  elseif value then
    return 0
  end
  a = a + 2
end
for i = expected + 1, #KEYS do
  if ARGV[a] == '1' then
    redis.call('SET', KEYS[i], ARGV[a + 1], 'PX', ARGV[a + 2])
  else
    redis.call('DEL', KEYS[i])
  end
  a = a + 3
end
return 1
";

/// The `EVAL` of [`APPLY`] for `tx`.
fn apply_command(tx: &Transaction) -> redis::Cmd {
    let mut eval = redis::cmd("EVAL");
    eval.arg(APPLY).arg(tx.expect.len() + tx.changes.len());
    for key in tx
        .expect
        .iter()
        .map(|e| &e.key)
        .chain(tx.changes.iter().map(|c| &c.key))
    {
        eval.arg(key);
    }
    eval.arg(tx.expect.len());
    for expect in &tx.expect {
        match &expect.value {
            Some(value) => eval.arg(1).arg(value.as_slice()),
            None => eval.arg(0).arg(""),
        };
    }
    for change in &tx.changes {
        match &change.value {
            Some(value) => eval.arg(1).arg(value.as_slice()).arg(change.ttl_ms),
            None => eval.arg(0).arg("").arg(""),
        };
    }
    eval
}

#[async_trait]
impl TokenStore for RedisStore {
    async fn get(&self, key: String) -> StoreResult<Option<Vec<u8>>> {
        check_key(&key)?;
        let key = &key;
        self.run("get", |mut c| async move { c.get(key).await })
            .await
    }

    async fn get_many(&self, keys: Vec<String>) -> StoreResult<Vec<Option<Vec<u8>>>> {
        check_batch(&keys)?;
        // One MGET per hash tag (one slot each), all at once; answers put back in order.
        let mut groups: Vec<Vec<usize>> = Vec::new();
        let mut by_tag: std::collections::HashMap<&str, usize> = Default::default();
        for (i, key) in keys.iter().enumerate() {
            let group = *by_tag
                .entry(tokenginx_syntax::hash_tag(key))
                .or_insert_with(|| {
                    groups.push(Vec::new());
                    groups.len() - 1
                });
            groups[group].push(i);
        }
        let reads = groups.iter().map(|members| {
            let group: Vec<&String> = members.iter().map(|&i| &keys[i]).collect();
            self.run("get", move |mut c| {
                let group = group.clone();
                async move {
                    match group.as_slice() {
                        [key] => c.get(*key).await.map(|v| vec![v]),
                        _ => c.mget(group).await,
                    }
                }
            })
        });
        let answers = futures_util::future::try_join_all(reads).await?;
        let mut values = vec![None; keys.len()];
        for (members, answer) in groups.iter().zip(answers) {
            for (&i, value) in members.iter().zip(answer) {
                values[i] = value;
            }
        }
        Ok(values)
    }

    async fn set(&self, key: String, value: Vec<u8>, ttl_ms: u64) -> StoreResult<()> {
        check_write(&key, &value, ttl_ms)?;
        self.write(&key, &value, ttl_ms, false).await.map(|_| ())
    }

    async fn insert(&self, key: String, value: Vec<u8>, ttl_ms: u64) -> StoreResult<bool> {
        check_write(&key, &value, ttl_ms)?;
        self.write(&key, &value, ttl_ms, true).await
    }

    async fn delete(&self, key: String) -> StoreResult<bool> {
        check_key(&key)?;
        let mut del = redis::cmd("DEL");
        del.arg(key);
        let reply = self.change("delete", del).await?;
        Ok(matches!(reply, Value::Int(n) if n > 0))
    }

    async fn ttl(&self, key: String) -> StoreResult<Option<u64>> {
        check_key(&key)?;
        let key = &key;
        let ms: i64 = self
            .run("ttl", |mut c| async move { c.pttl(key).await })
            .await?;
        // -2: absent; -1: no expiry (never written by us; report it as absent of a TTL).
        Ok((ms >= 0).then_some(ms as u64))
    }

    async fn take(&self, key: String) -> StoreResult<Option<Vec<u8>>> {
        check_key(&key)?;
        let mut getdel = redis::cmd("GETDEL");
        getdel.arg(key);
        match self.change("take", getdel).await? {
            Value::BulkString(value) => Ok(Some(value)),
            _ => Ok(None),
        }
    }

    async fn apply(&self, tx: Transaction) -> StoreResult<bool> {
        check_transaction(&tx)?;
        match self.change("apply", apply_command(&tx)).await? {
            Value::Int(applied) => Ok(applied == 1),
            other => Err(StoreError::Unavailable(format!(
                "redis apply: unexpected reply {other:?}"
            ))),
        }
    }

    async fn charge(&self, key: &str, limit: RateLimit) -> StoreResult<Option<Duration>> {
        check_key(key)?;
        let interval_us = limit.interval.as_micros() as u64;
        let wait_us: u64 = self
            .run("charge", |mut c| async move {
                CHARGE
                    .key(key)
                    .arg(interval_us)
                    .arg(limit.burst)
                    .invoke_async(&mut c)
                    .await
            })
            .await?;
        Ok((wait_us > 0).then(|| Duration::from_micros(wait_us)))
    }

    async fn ping(&self) -> StoreResult<()> {
        self.run("ping", |mut c| async move {
            let _: String = redis::cmd("PING").query_async(&mut c).await?;
            Ok(())
        })
        .await
    }
}

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a redis::Cmd) -> redis::RedisFuture<'a, Value> {
        match self {
            Connection::Standalone(c) => c.req_packed_command(cmd),
            Connection::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> redis::RedisFuture<'a, Vec<Value>> {
        match self {
            Connection::Standalone(c) => c.req_packed_commands(cmd, offset, count),
            Connection::Cluster(c) => c.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        0
    }
}

/// Errors worth another attempt: the connection, not the command, failed.
fn retriable(e: &RedisError) -> bool {
    e.is_io_error() || e.is_timeout() || e.is_connection_dropped() || e.is_connection_refusal()
}

/// PEM material for TLS, when `tokenginx.tls` is enabled.
fn tls_certificates(config: &Config) -> anyhow::Result<Option<TlsCertificates>> {
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
async fn preflight(config: &Config, tls: Option<&TlsCertificates>) -> anyhow::Result<()> {
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

async fn standalone(
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

async fn cluster(
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::store::{Change, Expect};
    use std::process::{Child, Command, Stdio};
    use std::sync::Arc;

    /// A redis-server of its own on a free loopback port, killed when dropped.
    struct Server {
        child: Child,
        port: u16,
    }

    impl Drop for Server {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    fn server() -> Server {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap()
            .port();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server (`make test-setup` installs it)");
        let server = Server { child, port };
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "redis-server did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        server
    }

    fn config(port: u16) -> Config {
        Config {
            cluster: false,
            addrs: vec![format!("127.0.0.1:{port}")],
            username: None,
            password: None,
            pool_size: 4,
            dial_timeout: Duration::from_secs(1),
            read_timeout: Duration::from_secs(1),
            pool_timeout: Duration::from_secs(5),
            wait_replicas: 0,
            wait_aof: false,
            wait_timeout: Duration::from_secs(1),
            tls: None,
        }
    }

    fn change(key: &str, value: Option<&str>) -> Change {
        Change {
            key: key.into(),
            value: value.map(|v| v.as_bytes().to_vec()),
            ttl_ms: 60_000,
        }
    }

    fn expect(key: &str, value: Option<&str>) -> Expect {
        Expect {
            key: key.into(),
            value: value.map(|v| v.as_bytes().to_vec()),
        }
    }

    /// The script, not the guest, is what makes a rotation atomic: 64 transactions at once,
    /// pipelined on the pool's connections, each expecting the same value; one applies, and
    /// only its changes are made. Twenty rounds.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn of_concurrent_compare_and_sets_on_one_value_exactly_one_applies() {
        let server = server();
        let store = RedisStore::connect(&config(server.port), Box::new(|_, _| {}))
            .await
            .unwrap();
        let store = Arc::new(store);
        store
            .set("g:{t}".into(), b"0".to_vec(), 60_000)
            .await
            .unwrap();
        for round in 0..20 {
            let (now, next) = (round.to_string(), (round + 1).to_string());
            let attempts = (0..64).map(|i| {
                let store = store.clone();
                let tx = Transaction {
                    expect: vec![expect("g:{t}", Some(&now))],
                    changes: vec![
                        change("g:{t}", Some(&next)),
                        change(&format!("w:{{t}}:{round}"), Some(&i.to_string())),
                    ],
                };
                tokio::spawn(async move { store.apply(tx).await })
            });
            let mut winners = Vec::new();
            for (i, attempt) in futures_util::future::join_all(attempts)
                .await
                .into_iter()
                .enumerate()
            {
                if attempt.unwrap().unwrap() {
                    winners.push(i.to_string().into_bytes());
                }
            }
            assert_eq!(winners.len(), 1, "round {round}");
            let written = store.get(format!("w:{{t}}:{round}")).await.unwrap();
            assert_eq!(written, winners.pop(), "the winner's changes, and only its");
        }
    }

    #[tokio::test]
    async fn a_transaction_checks_absence_and_removes_keys() {
        let server = server();
        let store = RedisStore::connect(&config(server.port), Box::new(|_, _| {}))
            .await
            .unwrap();
        let start = Transaction {
            expect: vec![expect("g:{t}", None)],
            changes: vec![change("g:{t}", Some("1")), change("a:{t}", Some("x"))],
        };
        assert!(store.apply(start.clone()).await.unwrap());
        assert!(!store.apply(start).await.unwrap(), "g:{{t}} exists now");
        let end = Transaction {
            expect: vec![expect("g:{t}", Some("1"))],
            changes: vec![change("g:{t}", None)],
        };
        assert!(store.apply(end).await.unwrap());
        assert_eq!(store.get("g:{t}".into()).await.unwrap(), None);
        assert_eq!(
            store
                .ttl("a:{t}".into())
                .await
                .unwrap()
                .map(|ms| ms > 50_000),
            Some(true)
        );
        let mixed = Transaction {
            expect: vec![],
            changes: vec![change("g:{t}", Some("1")), change("other", Some("1"))],
        };
        assert!(matches!(
            store.apply(mixed).await,
            Err(StoreError::Rejected(_))
        ));
    }
}
