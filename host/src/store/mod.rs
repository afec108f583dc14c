//! The token store: what the guest's `store` import reaches. One trait, implemented by the
//! embedded [`memory::MemoryStore`] and by [`redis::RedisStore`] (standalone or cluster).
//!
//! Every value has a time to live: nothing is written forever, so nothing piles up. Besides
//! values, a store keeps the per-client request budgets of [`RateLimit`].

pub mod memory;
pub mod redis;

use async_trait::async_trait;
use std::time::Duration;

pub use crate::contract::store::{Expect, Transaction};

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

/// A request budget, as the generic cell rate algorithm (GCRA) keeps it: up to `burst`
/// requests at once, then one every `interval`. A bucket is one instant, its theoretical
/// arrival time (TAT): the store keeps nothing else per client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimit {
    pub interval: Duration,
    pub burst: u32,
}

impl RateLimit {
    /// Charges one request at `now` to a bucket whose TAT is `tat` (none for a new or
    /// expired bucket): the new TAT when the request is admitted, or how long to wait.
    /// The Redis store runs the same steps in a script (`redis.rs`).
    pub fn charge<I>(&self, tat: Option<I>, now: I) -> Result<I, Duration>
    where
        I: Copy + Ord + std::ops::Add<Duration, Output = I> + std::ops::Sub<I, Output = Duration>,
    {
        let tat = tat.map_or(now, |t| t.max(now));
        let next = tat + self.interval;
        let tolerance = self.interval * self.burst;
        let ahead = next - now;
        if ahead > tolerance {
            Err(ahead - tolerance)
        } else {
            Ok(next)
        }
    }
}

/// The store key of `client_id`'s rate-limit bucket: `oauth:rate_limit:{<hex SHA-256 of the
/// client id>}`, a cluster slot of its own whatever the id holds.
pub fn rate_limit_key(client_id: &str) -> String {
    use sha2::Digest as _;
    format!(
        "oauth:rate_limit:{{{}}}",
        hex::encode(sha2::Sha256::digest(client_id.as_bytes()))
    )
}

/// The operations of the contract's `store` interface (`wit/oauth.wit`), defined once: each
/// line is one WIT function, with the contract's own Rust types. `store_operations!(m)` hands
/// the list to macro `m`; from it come the methods of [`TokenStore`] (below) and the guest's
/// imports (`runtime/imports.rs`), which bound each call by the guest's deadline and time
/// and count it. A new operation is one WIT line, one line here, and its two
/// implementations.
macro_rules! store_operations {
    ($then:ident) => {
        $then! {
            /// The value at `key`, unless absent or expired.
            fn get(key: String) -> Option<Vec<u8>>;
            /// The values at `keys`, in order.
            fn get_many(keys: Vec<String>) -> Vec<Option<Vec<u8>>>;
            /// Writes `value` at `key`, expiring after `ttl_ms`, replacing what was there.
            fn set(key: String, value: Vec<u8>, ttl_ms: u64) -> ();
            /// Writes only if `key` is absent, atomically; false when it exists.
            fn insert(key: String, value: Vec<u8>, ttl_ms: u64) -> bool;
            /// Removes `key`; true if it existed.
            fn delete(key: String) -> bool;
            /// Milliseconds left before `key` expires; none if absent.
            fn ttl(key: String) -> Option<u64>;
            /// Removes `key` and returns its value, atomically.
            fn take(key: String) -> Option<Vec<u8>>;
            /// Makes `tx`'s changes if its expectations hold, atomically; whether it did.
            fn apply(tx: crate::store::Transaction) -> bool;
        }
    };
}
pub(crate) use store_operations;

/// Declares [`TokenStore`]: the contract's operations, and the host's own.
macro_rules! token_store {
    ($( $(#[$doc:meta])* fn $op:ident($($arg:ident: $ty:ty),*) -> $ret:ty; )*) => {
        /// A key-value store with mandatory expiry, shared by all requests.
        #[async_trait]
        pub trait TokenStore: Send + Sync + 'static {
            $( $(#[$doc])* async fn $op(&self, $($arg: $ty),*) -> StoreResult<$ret>; )*

            /// Charges one request to the budget at `key` (see [`RateLimit::charge`]),
            /// atomically across every host sharing the store; `Some(wait)` when the budget
            /// is spent.
            async fn charge(&self, key: &str, limit: RateLimit) -> StoreResult<Option<Duration>>;
            /// Whether the store answers, for `/health/ready`.
            async fn ping(&self) -> StoreResult<()>;
            /// Whether the store refuses new entries for lack of room (the embedded store's
            /// cap).
            fn is_full(&self) -> bool {
                false
            }
        }
    };
}
store_operations!(token_store);

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

pub fn check_write(key: &str, value: &[u8], ttl_ms: u64) -> StoreResult<()> {
    check_key(key)?;
    if value.len() > MAX_VALUE_BYTES {
        return Err(StoreError::Rejected(format!(
            "value of {} bytes exceeds {MAX_VALUE_BYTES} bytes",
            value.len()
        )));
    }
    if ttl_ms == 0 {
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

/// Checks a transaction before any I/O: at least one change, at most [`MAX_BATCH_KEYS`]
/// keys, each within the limits, and all with one hash tag (one cluster slot), which every
/// store requires so that a guest behaves alike on each.
pub fn check_transaction(tx: &Transaction) -> StoreResult<()> {
    if tx.changes.is_empty() {
        return Err(StoreError::Rejected("a transaction without changes".into()));
    }
    let keys = tx.expect.len() + tx.changes.len();
    if keys > MAX_BATCH_KEYS {
        return Err(StoreError::Rejected(format!(
            "a transaction of {keys} keys exceeds {MAX_BATCH_KEYS}"
        )));
    }
    for expect in &tx.expect {
        check_key(&expect.key)?;
    }
    for change in &tx.changes {
        match &change.value {
            Some(value) => check_write(&change.key, value, change.ttl_ms)?,
            None => check_key(&change.key)?,
        }
    }
    let mut keys = tx
        .expect
        .iter()
        .map(|e| &e.key)
        .chain(tx.changes.iter().map(|c| &c.key));
    let first = tokenginx_syntax::hash_tag(keys.next().expect("a change at least"));
    if let Some(other) = keys.find(|k| tokenginx_syntax::hash_tag(k) != first) {
        return Err(StoreError::Rejected(format!(
            "a transaction's keys must share one hash tag: {other:?} is not in {{{first}}}"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::RateLimit;
    use std::time::Duration;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// Instants as durations since an origin: the algorithm only needs order and arithmetic.
    #[test]
    fn a_burst_is_admitted_then_one_request_per_interval() {
        let limit = RateLimit {
            interval: ms(100),
            burst: 3,
        };
        let now = ms(1_000);
        let mut tat = None;
        for _ in 0..3 {
            tat = Some(limit.charge(tat, now).expect("within the burst"));
        }
        assert_eq!(limit.charge(tat, now), Err(ms(100)), "the fourth waits");
        assert_eq!(limit.charge(tat, now + ms(60)), Err(ms(40)));
        let after = limit
            .charge(tat, now + ms(100))
            .expect("one interval later");
        assert_eq!(limit.charge(Some(after), now + ms(100)), Err(ms(100)));
    }

    #[test]
    fn a_transaction_spans_one_hash_tag() {
        use super::{check_transaction, Expect, StoreError, Transaction};
        use crate::contract::store::Change;
        let change = |key: &str| Change {
            key: key.into(),
            value: Some(b"v".to_vec()),
            ttl_ms: 1000,
        };
        let expect = |key: &str| Expect {
            key: key.into(),
            value: None,
        };
        let tx = |expect: Vec<Expect>, changes: Vec<Change>| Transaction { expect, changes };
        assert!(check_transaction(&tx(vec![expect("g:{a}")], vec![change("x:{a}:1")])).is_ok());
        let mixed = check_transaction(&tx(vec![expect("g:{a}")], vec![change("x:{b}")]));
        assert!(matches!(mixed, Err(StoreError::Rejected(why)) if why.contains("\"x:{b}\"")));
        let empty = check_transaction(&tx(vec![expect("g:{a}")], vec![]));
        assert!(matches!(empty, Err(StoreError::Rejected(_))));
        let zero_ttl = Change {
            ttl_ms: 0,
            ..change("g:{a}")
        };
        assert!(check_transaction(&tx(vec![], vec![zero_ttl])).is_err());
        let delete = Change {
            value: None,
            ttl_ms: 0,
            ..change("g:{a}")
        };
        assert!(
            check_transaction(&tx(vec![], vec![delete])).is_ok(),
            "a removal has no TTL"
        );
    }

    #[test]
    fn an_idle_bucket_refills_to_the_burst_and_no_further() {
        let limit = RateLimit {
            interval: ms(100),
            burst: 2,
        };
        let mut tat = Some(ms(1_000));
        let later = ms(60_000);
        tat = Some(limit.charge(tat, later).unwrap());
        tat = Some(limit.charge(tat, later).unwrap());
        assert!(limit.charge(tat, later).is_err());
    }
}
