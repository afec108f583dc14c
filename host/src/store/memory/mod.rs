//! The embedded store: an in-memory map with TTL expiry, for development and single-node
//! deployments.
//!
//! Shaped after mini-redis' `db.rs`: `std::sync::Mutex`es (critical sections are short and
//! never await, so a tokio mutex would only add cost), expirations in a `BTreeSet` ordered by
//! instant so the purge task finds due keys without scanning, and a drop guard that stops the
//! purge task when the store goes away.
//!
//! The entries are split into shards by hash tag, each behind its own lock: a transaction's
//! keys share a tag, so it locks one shard; and when a shard's map grows it rehashes its
//! entries under its lock, stalling a sixty-fourth of the store for a sixty-fourth of the
//! time. With one map, growing past a million entries held every request for tens of
//! milliseconds (a p99 of 267 ms issuing tokens, docs/benchmarks.md).
//!
//! It holds at most `tokenginx.max_entries` entries: past that, writes of new keys answer
//! `Unavailable` (HTTP 503) and `/health/ready` says the store is full, rather than the
//! process growing until it is killed.

use super::{
    check_batch, check_key, check_transaction, check_write, Expect, RateLimit, StoreError,
    StoreResult, TokenStore, Transaction,
};
use async_trait::async_trait;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::time::Instant;

const SHARDS: usize = 64;
/// The time between two passes of the purge task at least: each pass looks at every shard,
/// so under a steady stream of expiries (or of writes that expire before the rest of their
/// shard) it runs every 10 ms, not at each one. Meanwhile expired entries are hidden, and
/// count against `max_entries` until purged.
const PURGE_INTERVAL: Duration = Duration::from_millis(10);

/// A handle to the embedded store; clones share it. The purge task stops when the last
/// handle is dropped.
#[derive(Clone)]
pub struct MemoryStore {
    shared: Arc<Shared>,
    _guard: Arc<PurgeGuard>,
}

struct Shared {
    shards: Box<[Mutex<Shard>]>,
    /// Picks a key's shard from its hash tag.
    shard_of: RandomState,
    /// Entries held across the shards, expired or not. A new key takes its place here
    /// before it is written, so the store never holds more than `max_entries`.
    len: AtomicUsize,
    /// `tokenginx.max_entries`.
    max_entries: usize,
    /// Rate-limit buckets by key: their theoretical arrival times. One per registered client
    /// (the host charges no other), so they need no expiry.
    buckets: Mutex<HashMap<String, Instant>>,
    /// Wakes the purge task when an earlier expiry appears or the store shuts down.
    purge: Notify,
    shutdown: AtomicBool,
}

#[derive(Default)]
struct Shard {
    entries: HashMap<String, Entry>,
    /// (expiry, key), so the first element is always the shard's next key to expire.
    expirations: BTreeSet<(Instant, String)>,
}

struct Entry {
    value: Vec<u8>,
    expires_at: Instant,
}

impl Shard {
    /// The entry at `key`, unless absent or expired at `now`.
    fn live(&self, key: &str, now: Instant) -> Option<&Entry> {
        self.entries.get(key).filter(|e| e.expires_at > now)
    }

    /// Writes `value` at `key` until `expires_at`; a new key must have its place in
    /// `Shared::len` already. Whether the purge task must wake for the earlier expiry.
    fn put(&mut self, key: String, value: Vec<u8>, expires_at: Instant) -> bool {
        if let Some(old) = self.entries.get(&key) {
            let old_expiry = old.expires_at;
            self.expirations.remove(&(old_expiry, key.clone()));
        }
        let wake = self
            .expirations
            .first()
            .is_none_or(|(next, _)| expires_at < *next);
        self.expirations.insert((expires_at, key.clone()));
        self.entries.insert(key, Entry { value, expires_at });
        wake
    }

    /// Removes `key`, expired or not.
    fn remove(&mut self, key: &str) -> Option<Entry> {
        let entry = self.entries.remove(key)?;
        self.expirations.remove(&(entry.expires_at, key.to_owned()));
        Some(entry)
    }

    /// Removes the entries expired at `now`; how many.
    fn purge(&mut self, now: Instant) -> usize {
        let mut removed = 0;
        while let Some((when, _)) = self.expirations.first() {
            if *when > now {
                break;
            }
            let (_, key) = self.expirations.pop_first().expect("checked non-empty");
            self.entries.remove(&key);
            removed += 1;
        }
        removed
    }
}

impl Shared {
    /// The shard that holds `key`, locked.
    fn shard(&self, key: &str) -> MutexGuard<'_, Shard> {
        let tag = tokenginx_syntax::hash_tag(key);
        let index = self.shard_of.hash_one(tag) as usize % SHARDS;
        self.shards[index].lock().unwrap()
    }

    /// Takes the places of `new_keys` new entries, or refuses them all when the store would
    /// hold more than `max_entries`.
    fn reserve(&self, new_keys: usize) -> StoreResult<()> {
        self.len
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |len| {
                len.checked_add(new_keys)
                    .filter(|&after| after <= self.max_entries)
            })
            .map(|_| ())
            .map_err(|_| {
                StoreError::Unavailable(format!(
                    "the embedded store is full (tokenginx.max_entries: {})",
                    self.max_entries
                ))
            })
    }

    /// Gives back the places of `count` removed entries.
    fn release(&self, count: usize) {
        self.len.fetch_sub(count, Ordering::Relaxed);
    }

    /// Removes `key` from its locked `shard`, expired or not.
    fn remove(&self, shard: &mut Shard, key: &str) -> Option<Entry> {
        let entry = shard.remove(key)?;
        self.release(1);
        Some(entry)
    }
}

/// Stops the purge task when the last [`MemoryStore`] handle is dropped.
struct PurgeGuard(Arc<Shared>);

impl Drop for PurgeGuard {
    fn drop(&mut self) {
        self.0.shutdown.store(true, Ordering::Relaxed);
        self.0.purge.notify_one();
    }
}

impl MemoryStore {
    /// A new empty store holding at most `max_entries` entries; spawns its purge task on
    /// the current tokio runtime.
    pub fn new(max_entries: usize) -> Self {
        let shared = Arc::new(Shared {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            shard_of: RandomState::new(),
            len: AtomicUsize::new(0),
            max_entries,
            buckets: Mutex::default(),
            purge: Notify::new(),
            shutdown: AtomicBool::new(false),
        });
        tokio::spawn(purge_expired(shared.clone()));
        MemoryStore {
            _guard: Arc::new(PurgeGuard(shared.clone())),
            shared,
        }
    }

    /// How many entries are held, expired or not: lets tests see that nothing piles up, and
    /// that the count `max_entries` is checked against is the shards' own.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        let held: usize = self
            .shared
            .shards
            .iter()
            .map(|shard| shard.lock().unwrap().entries.len())
            .sum();
        assert_eq!(held, self.shared.len.load(Ordering::Relaxed));
        held
    }

    fn write(
        &self,
        key: String,
        value: Vec<u8>,
        ttl_ms: u64,
        only_if_absent: bool,
    ) -> StoreResult<bool> {
        let now = Instant::now();
        let mut shard = self.shared.shard(&key);
        if only_if_absent && shard.live(&key, now).is_some() {
            return Ok(false);
        }
        if !shard.entries.contains_key(&key) {
            self.shared.reserve(1)?;
        }
        let wake = shard.put(key, value, now + Duration::from_millis(ttl_ms));
        drop(shard);
        if wake {
            self.shared.purge.notify_one();
        }
        Ok(true)
    }

    fn live<T>(&self, key: &str, read: impl FnOnce(&Entry, Instant) -> T) -> Option<T> {
        let now = Instant::now();
        let shard = self.shared.shard(key);
        shard.live(key, now).map(|e| read(e, now))
    }
}

#[async_trait]
impl TokenStore for MemoryStore {
    async fn get(&self, key: String) -> StoreResult<Option<Vec<u8>>> {
        check_key(&key)?;
        Ok(self.live(&key, |e, _| e.value.clone()))
    }

    async fn get_many(&self, keys: Vec<String>) -> StoreResult<Vec<Option<Vec<u8>>>> {
        check_batch(&keys)?;
        Ok(keys
            .iter()
            .map(|k| self.live(k, |e, _| e.value.clone()))
            .collect())
    }

    async fn set(&self, key: String, value: Vec<u8>, ttl_ms: u64) -> StoreResult<()> {
        check_write(&key, &value, ttl_ms)?;
        self.write(key, value, ttl_ms, false).map(|_| ())
    }

    async fn insert(&self, key: String, value: Vec<u8>, ttl_ms: u64) -> StoreResult<bool> {
        check_write(&key, &value, ttl_ms)?;
        self.write(key, value, ttl_ms, true)
    }

    async fn delete(&self, key: String) -> StoreResult<bool> {
        check_key(&key)?;
        let now = Instant::now();
        let mut shard = self.shared.shard(&key);
        let entry = self.shared.remove(&mut shard, &key);
        Ok(entry.is_some_and(|e| e.expires_at > now))
    }

    async fn ttl(&self, key: String) -> StoreResult<Option<u64>> {
        check_key(&key)?;
        Ok(self.live(&key, |e, now| (e.expires_at - now).as_millis() as u64))
    }

    async fn take(&self, key: String) -> StoreResult<Option<Vec<u8>>> {
        check_key(&key)?;
        let now = Instant::now();
        let mut shard = self.shared.shard(&key);
        let entry = self.shared.remove(&mut shard, &key);
        Ok(entry.filter(|e| e.expires_at > now).map(|e| e.value))
    }

    async fn apply(&self, tx: Transaction) -> StoreResult<bool> {
        check_transaction(&tx)?;
        let now = Instant::now();
        // Every key of a transaction shares one hash tag, so one shard holds them all.
        let first = tx.changes.first().expect("checked: a change at least");
        let mut shard = self.shared.shard(&first.key);
        let holds =
            |e: &Expect| shard.live(&e.key, now).map(|entry| &entry.value) == e.value.as_ref();
        if !tx.expect.iter().all(holds) {
            return Ok(false);
        }
        // Room first, so that a full store refuses the whole transaction, not half of it: a
        // place for each key it writes that is not there yet (a key may come twice), and the
        // places it did not use back after.
        let absent: HashSet<&str> = tx
            .changes
            .iter()
            .filter(|c| c.value.is_some() && !shard.entries.contains_key(&c.key))
            .map(|c| c.key.as_str())
            .collect();
        let reserved = absent.len();
        self.shared.reserve(reserved)?;
        let before = shard.entries.len();
        let mut wake = false;
        for change in tx.changes {
            match change.value {
                Some(value) => {
                    let expires_at = now + Duration::from_millis(change.ttl_ms);
                    wake |= shard.put(change.key, value, expires_at);
                }
                None => {
                    shard.remove(&change.key);
                }
            }
        }
        self.shared.release(before + reserved - shard.entries.len());
        drop(shard);
        if wake {
            self.shared.purge.notify_one();
        }
        Ok(true)
    }

    async fn charge(&self, key: &str, limit: RateLimit) -> StoreResult<Option<Duration>> {
        check_key(key)?;
        let now = Instant::now();
        let mut buckets = self.shared.buckets.lock().unwrap();
        let tat = buckets.get(key).copied();
        match limit.charge(tat, now) {
            Ok(next) => {
                buckets.insert(key.to_owned(), next);
                Ok(None)
            }
            Err(wait) => Ok(Some(wait)),
        }
    }

    async fn ping(&self) -> StoreResult<()> {
        Ok(())
    }

    fn is_full(&self) -> bool {
        self.shared.len.load(Ordering::Relaxed) >= self.shared.max_entries
    }
}

/// Removes expired entries as they fall due, sleeping until the next expiry in any shard.
async fn purge_expired(shared: Arc<Shared>) {
    loop {
        if shared.shutdown.load(Ordering::Relaxed) {
            return;
        }
        let now = Instant::now();
        let mut next: Option<Instant> = None;
        for shard in shared.shards.iter() {
            let mut shard = shard.lock().unwrap();
            shared.release(shard.purge(now));
            if let Some((when, _)) = shard.expirations.first() {
                next = Some(next.map_or(*when, |next| next.min(*when)));
            }
        }
        let next_pass = now + PURGE_INTERVAL;
        match next {
            Some(when) => {
                tokio::select! {
                    _ = tokio::time::sleep_until(when.max(next_pass)) => {}
                    _ = shared.purge.notified() => tokio::time::sleep_until(next_pass).await,
                }
            }
            None => {
                shared.purge.notified().await;
                tokio::time::sleep_until(next_pass).await;
            }
        }
    }
}

#[cfg(test)]
mod tests;
