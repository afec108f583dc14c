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
use redis::aio::{ConnectionLike, ConnectionManager};
use redis::cluster_async::ClusterConnection;
use redis::{AsyncCommands, RedisError, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

mod connect;
mod scripts;

use connect::{cluster, preflight, standalone, tls_certificates};
use scripts::{apply_command, CHARGE};

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
