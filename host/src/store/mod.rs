//! The token store: what the guest's `store` import reaches. One trait, implemented by the
//! embedded [`memory::MemoryStore`] and by [`redis::RedisStore`] (standalone or cluster).
//!
//! Every value has a time to live: nothing is written forever, so nothing piles up.

pub mod memory;
pub mod redis;

use async_trait::async_trait;
use std::time::Duration;

/// Why a store operation failed. Messages name the operation and the node, never a value.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Unreachable or too slow: the request may succeed later (HTTP 503).
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// Refused before reaching the store: a key or value over the limits, a zero TTL.
    #[error("store operation rejected: {0}")]
    Rejected(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// Keys longer than this are refused: ours are ~84 bytes.
pub const MAX_KEY_BYTES: usize = 512;
/// Values longer than this are refused: a token record is a few hundred bytes.
pub const MAX_VALUE_BYTES: usize = 64 * 1024;
/// A batched read asks for at most this many keys.
pub const MAX_BATCH_KEYS: usize = 1024;

/// A key-value store with mandatory expiry, shared by all requests.
#[async_trait]
pub trait TokenStore: Send + Sync + 'static {
    /// The value at `key`, unless absent or expired.
    async fn get(&self, key: &str) -> StoreResult<Option<Vec<u8>>>;
    /// The values at `keys`, in order.
    async fn get_many(&self, keys: &[String]) -> StoreResult<Vec<Option<Vec<u8>>>>;
    /// Writes `value` at `key` with time to live `ttl`, replacing what was there.
    async fn set(&self, key: &str, value: &[u8], ttl: Duration) -> StoreResult<()>;
    /// Writes only if `key` is absent, atomically; false when it exists.
    async fn insert(&self, key: &str, value: &[u8], ttl: Duration) -> StoreResult<bool>;
    /// Removes `key`; true if it existed.
    async fn delete(&self, key: &str) -> StoreResult<bool>;
    /// Time left before `key` expires; none if absent.
    async fn ttl(&self, key: &str) -> StoreResult<Option<Duration>>;
    /// Whether the store answers, for `/health/ready`.
    async fn ping(&self) -> StoreResult<()>;
}

/// Checks the limits every store enforces, before any I/O.
pub fn check_key(key: &str) -> StoreResult<()> {
    if key.is_empty() || key.len() > MAX_KEY_BYTES {
        return Err(StoreError::Rejected(format!(
            "key length {} is outside 1..={MAX_KEY_BYTES} bytes",
            key.len()
        )));
    }
    Ok(())
}

pub fn check_write(key: &str, value: &[u8], ttl: Duration) -> StoreResult<()> {
    check_key(key)?;
    if value.len() > MAX_VALUE_BYTES {
        return Err(StoreError::Rejected(format!(
            "value of {} bytes exceeds {MAX_VALUE_BYTES} bytes",
            value.len()
        )));
    }
    if ttl.is_zero() {
        return Err(StoreError::Rejected("a TTL of zero is not allowed".into()));
    }
    Ok(())
}

pub fn check_batch(keys: &[String]) -> StoreResult<()> {
    if keys.len() > MAX_BATCH_KEYS {
        return Err(StoreError::Rejected(format!(
            "a batch of {} keys exceeds {MAX_BATCH_KEYS}",
            keys.len()
        )));
    }
    keys.iter().try_for_each(|k| check_key(k))
}
