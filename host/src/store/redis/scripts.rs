//! The store's scripts: the rate limit's GCRA step and a transaction's compare-and-set,
//! each one atomic step on one master.

use crate::store::Transaction;
use std::sync::LazyLock;

/// One GCRA step, as [`RateLimit::charge`]: `KEYS[1]` holds the bucket's theoretical arrival
/// time in microseconds of the server's clock (one clock for every host sharing the store);
/// `ARGV` are the interval in microseconds and the burst. Returns 0 when the request is
/// admitted, else the microseconds to wait. The bucket expires once it is full again.
///
/// Buckets are not replicated (`REPL_NONE`): a failover only gives each client a fresh burst,
/// and replicas and `WAIT` are spared a write for every request.
pub(super) static CHARGE: LazyLock<redis::Script> = LazyLock::new(|| {
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
pub(super) fn apply_command(tx: &Transaction) -> redis::Cmd {
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
