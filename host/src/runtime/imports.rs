//! What a guest instance can reach: the implementations of the imports of `wit/oauth.wit`,
//! and WASI linked empty (no preopens, environment, arguments, sockets or stdio).

use super::Export;
use crate::contract::{caller, clock, log, random, rate_limit, seal, settings, store};
use crate::metrics::Metrics;
use crate::services::Services;
use crate::store::{StoreError, StoreResult};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

/// The most random bytes one call may ask for.
const MAX_RANDOM_BYTES: u32 = 1024;
/// Guest log messages are cut to this many bytes.
const MAX_LOG_BYTES: usize = 2048;

/// The data of one instance's `wasmtime::Store`.
pub struct InstanceState {
    pub services: Arc<Services>,
    /// The guest's name, for its log lines.
    pub guest: Arc<str>,
    /// The registered client the guest said the request authenticated as (`caller`).
    pub authenticated: Option<String>,
    /// When store operations must give up, a little before the call's own deadline, so the
    /// guest can still answer 503 instead of being cut off with a 500.
    store_deadline: tokio::time::Instant,
    /// Built on the guest's first WASI call: most calls make none, and building one costs
    /// about 2,500 instructions (seeding its random generators), 1.3% of a fresh call.
    wasi: Option<WasiCtx>,
    table: ResourceTable,
    /// The most bytes any of its linear memories asked to grow to, where the store watches
    /// (`bench-guest`'s reused instance, via [`wasmtime::ResourceLimiter`]).
    pub memory_peak: usize,
}

/// Watches memory growth only; the pooling allocator enforces `guest.memory_limit`.
impl wasmtime::ResourceLimiter for InstanceState {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.memory_peak = self.memory_peak.max(desired);
        Ok(maximum.is_none_or(|max| desired <= max))
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(maximum.is_none_or(|max| desired <= max))
    }
}

impl InstanceState {
    pub fn new(services: Arc<Services>, guest: Arc<str>, call_deadline: Duration) -> Self {
        let margin = (call_deadline / 10).min(Duration::from_millis(50));
        InstanceState {
            services,
            guest,
            authenticated: None,
            store_deadline: tokio::time::Instant::now() + call_deadline - margin,
            wasi: None,
            table: ResourceTable::new(),
            memory_peak: 0,
        }
    }
}

impl WasiView for InstanceState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        // Nothing inherited: no env, args, preopens, stdio or network.
        let ctx = self.wasi.get_or_insert_with(|| {
            WasiCtx::builder()
                .allow_tcp(false)
                .allow_udp(false)
                .allow_ip_name_lookup(false)
                .build()
        });
        WasiCtxView {
            ctx,
            table: &mut self.table,
        }
    }
}

/// Awaits a store operation until `deadline`, timing it under `operation` and counting its
/// failures: every store call a guest makes goes through here.
async fn timed<T>(
    metrics: &Metrics,
    deadline: tokio::time::Instant,
    operation: &'static str,
    op: impl std::future::Future<Output = StoreResult<T>>,
) -> StoreResult<T> {
    let start = Instant::now();
    let result = tokio::time::timeout_at(deadline, op)
        .await
        .unwrap_or_else(|_| {
            Err(StoreError::Unavailable(format!(
                "{operation} did not complete before the guest's deadline"
            )))
        });
    metrics
        .operation_duration
        .with_label_values(&[operation])
        .observe(start.elapsed().as_secs_f64());
    if let Err(e) = &result {
        let kind = match e {
            StoreError::Unavailable(_) => "unavailable",
            StoreError::Rejected(_) => "rejected",
        };
        metrics.store_errors.with_label_values(&[kind]).inc();
    }
    result
}

/// What a store key holds, for the Go guide's token counters: an access token (the key
/// family `oauth:access_token:`, which a guest keeps to for its tokens to be counted), a
/// grant (`oauth:grant:`, whose removal revokes its tokens), or neither (a flow's
/// challenges and codes, rate-limit buckets, ...).
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    AccessToken,
    Grant,
    Other,
}

impl Kind {
    fn of(key: &str) -> Kind {
        if key.starts_with("oauth:access_token:") {
            Kind::AccessToken
        } else if key.starts_with("oauth:grant:") {
            Kind::Grant
        } else {
            Kind::Other
        }
    }
}

/// The kinds of a store operation's keys, taken before the call (which consumes them).
enum Keys {
    One(Kind),
    Many(Vec<Kind>),
    /// A transaction: the access tokens it writes, and the tokens and grants it removes.
    Transaction {
        created: u64,
        revoked: u64,
    },
}

trait KeysOf {
    fn kinds(&self) -> Keys;
    /// A key of the host's own (its rate limits, its keyring) among them: a guest may not
    /// read or write those.
    fn host_owned(&self) -> Option<&str>;
}

/// The key families the host keeps for itself in the store.
const HOST_OWNED: [&str; 2] = ["oauth:rate_limit:", "oauth:keyring:"];

fn host_owned(key: &str) -> bool {
    HOST_OWNED.iter().any(|prefix| key.starts_with(prefix))
}

impl KeysOf for String {
    fn kinds(&self) -> Keys {
        Keys::One(Kind::of(self))
    }
    fn host_owned(&self) -> Option<&str> {
        host_owned(self).then_some(self.as_str())
    }
}

impl KeysOf for Vec<String> {
    fn kinds(&self) -> Keys {
        Keys::Many(self.iter().map(|k| Kind::of(k)).collect())
    }
    fn host_owned(&self) -> Option<&str> {
        self.iter().find(|k| host_owned(k)).map(String::as_str)
    }
}

impl KeysOf for store::Transaction {
    fn host_owned(&self) -> Option<&str> {
        let expected = self.expect.iter().map(|e| e.key.as_str());
        let changed = self.changes.iter().map(|c| c.key.as_str());
        expected.chain(changed).find(|k| host_owned(k))
    }

    fn kinds(&self) -> Keys {
        let count = |written: bool, kinds: &[Kind]| {
            self.changes
                .iter()
                .filter(|c| c.value.is_some() == written && kinds.contains(&Kind::of(&c.key)))
                .count() as u64
        };
        Keys::Transaction {
            created: count(true, &[Kind::AccessToken]),
            revoked: count(false, &[Kind::AccessToken, Kind::Grant]),
        }
    }
}

/// Which keys of a store operation's result were found, written or removed.
trait Hits {
    fn hits(&self) -> Vec<bool>;
}

impl Hits for () {
    fn hits(&self) -> Vec<bool> {
        vec![true]
    }
}

impl Hits for bool {
    fn hits(&self) -> Vec<bool> {
        vec![*self]
    }
}

impl<T> Hits for Option<T> {
    fn hits(&self) -> Vec<bool> {
        vec![self.is_some()]
    }
}

impl<T> Hits for Vec<Option<T>> {
    fn hits(&self) -> Vec<bool> {
        self.iter().map(Option::is_some).collect()
    }
}

/// Feeds the Go guide's token counters from a store operation: `set`, `insert` and `apply`
/// create access tokens, `get` and `get_many` retrieve them, and `delete` (or an `apply`'s
/// removal) revokes an access token or a grant.
fn count_tokens(metrics: &Metrics, operation: &str, keys: Keys, result: &impl Hits) {
    let hits = result.hits();
    let of_kind = |kinds: &[Kind], wanted: &[Kind]| {
        kinds
            .iter()
            .zip(&hits)
            .filter(|(kind, hit)| **hit && wanted.contains(kind))
            .count() as u64
    };
    let (created, retrieved, revoked) = match (operation, keys) {
        ("set" | "insert", Keys::One(kind)) => (of_kind(&[kind], &[Kind::AccessToken]), 0, 0),
        ("get", Keys::One(kind)) => (0, of_kind(&[kind], &[Kind::AccessToken]), 0),
        ("get_many", Keys::Many(kinds)) => (0, of_kind(&kinds, &[Kind::AccessToken]), 0),
        ("delete", Keys::One(kind)) => (0, 0, of_kind(&[kind], &[Kind::AccessToken, Kind::Grant])),
        ("apply", Keys::Transaction { created, revoked }) if hits == [true] => {
            (created, 0, revoked)
        }
        _ => (0, 0, 0),
    };
    metrics.token_created.inc_by(created);
    metrics.token_retrieved.inc_by(retrieved);
    metrics.token_revoked.inc_by(revoked);
}

/// The guest's `store` imports, one for each of [`crate::store::store_operations`]: each
/// calls the store's method of the same name through [`timed`], then feeds the token
/// counters ([`count_tokens`]). Every operation's first argument is its key, keys or
/// transaction.
macro_rules! store_imports {
    ($( $(#[$doc:meta])* fn $op:ident($key:ident: $kty:ty $(, $arg:ident: $ty:ty)*) -> $ret:ty; )*) => {
        // Each method clones the `Arc` first: a future holding `&self` across an await would
        // not be `Send`, as the WASI context inside the instance state is not `Sync`.
        impl store::Host for InstanceState {
            /// The host's store error as the guest sees it; never a trap.
            fn convert_store_error(
                &mut self,
                error: StoreError,
            ) -> wasmtime::Result<store::StoreError> {
                Ok(match error {
                    StoreError::Unavailable(why) => store::StoreError::Unavailable(why),
                    StoreError::Rejected(why) => store::StoreError::Rejected(why),
                })
            }

            $(
                async fn $op(&mut self, $key: $kty $(, $arg: $ty)*) -> StoreResult<$ret> {
                    if let Some(key) = $key.host_owned() {
                        return Err(StoreError::Rejected(format!(
                            "{}: {key:?} is the host's own key", stringify!($op)
                        )));
                    }
                    let services = self.services.clone();
                    let operation = stringify!($op);
                    let keys = $key.kinds();
                    let call = services.store.$op($key $(, $arg)*);
                    let result = timed(&services.metrics, self.store_deadline, operation, call)
                        .await?;
                    count_tokens(&services.metrics, operation, keys, &result);
                    Ok(result)
                }
            )*
        }
    };
}
crate::store::store_operations!(store_imports);

impl rate_limit::Host for InstanceState {
    async fn charge(&mut self, client_id: String) -> StoreResult<Option<u64>> {
        let services = self.services.clone();
        let Some(client) = services.oauth.clients.get(&client_id) else {
            return Err(StoreError::Rejected(
                "rate-limit.charge: no registered client has that id".into(),
            ));
        };
        let Some(limit) = client.rate_limit else {
            return Ok(None);
        };
        let wait = timed(
            &services.metrics,
            self.store_deadline,
            "charge",
            services.store.charge(&client.rate_limit_key, limit),
        )
        .await?;
        if wait.is_some() {
            services
                .metrics
                .rate_limited
                .with_label_values(&[&client.record.client_id])
                .inc();
        }
        // Whole milliseconds, rounded up: a client that waits that long is admitted.
        Ok(wait.map(|w| w.as_micros().div_ceil(1000) as u64))
    }
}

impl seal::Host for InstanceState {
    fn seal(&mut self, purpose: String, value: Vec<u8>, ttl_ms: u64) -> StoreResult<String> {
        let Some(keys) = &self.services.keys else {
            return Err(StoreError::Unavailable(
                "seal: the host has no sealing keys (keys.secret is not set)".into(),
            ));
        };
        keys.seal(&purpose, &value, Duration::from_millis(ttl_ms))
    }

    fn open(&mut self, purpose: String, sealed: String) -> Option<Vec<u8>> {
        self.services.keys.as_ref()?.open(&purpose, &sealed)
    }
}

impl clock::Host for InstanceState {
    fn now_ms(&mut self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0)
    }
}

impl random::Host for InstanceState {
    fn bytes(&mut self, len: u32) -> wasmtime::Result<Vec<u8>> {
        if len > MAX_RANDOM_BYTES {
            wasmtime::bail!("random.bytes asked for {len} bytes; the limit is {MAX_RANDOM_BYTES}");
        }
        let mut bytes = vec![0u8; len as usize];
        getrandom::fill(&mut bytes)
            .map_err(|e| wasmtime::format_err!("the OS random source failed: {e}"))?;
        Ok(bytes)
    }
}

impl log::Host for InstanceState {
    fn log(&mut self, level: log::Level, message: String) {
        let message = sanitize(&message);
        let guest = &*self.guest;
        // Target `guest`: `log.level` and `RUST_LOG` (`guest=debug`) reach the guest's lines
        // apart from the host's and the libraries'.
        match level {
            log::Level::Trace => tracing::trace!(target: "guest", guest, "{message}"),
            log::Level::Debug => tracing::debug!(target: "guest", guest, "{message}"),
            log::Level::Info => tracing::info!(target: "guest", guest, "{message}"),
            log::Level::Warn => tracing::warn!(target: "guest", guest, "{message}"),
            log::Level::Error => tracing::error!(target: "guest", guest, "{message}"),
        }
    }
}

/// Cuts a guest's message and escapes control characters, so a guest (or a client id it
/// quotes) cannot forge log lines.
pub fn sanitize(message: &str) -> String {
    escape_controls(message, MAX_LOG_BYTES)
}

/// A trap report (a backtrace: several lines of frames the guest named), escaped the same
/// way; cut at 16 KiB.
pub fn sanitize_multiline(text: &str) -> String {
    escape_controls(text, 16 * 1024)
}

/// `text` cut to at most `max_bytes` on a char boundary, control characters escaped.
fn escape_controls(text: &str, max_bytes: usize) -> String {
    let mut end = text.len().min(max_bytes);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let mut out = String::with_capacity(end);
    for c in text[..end].chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

impl settings::Host for InstanceState {
    fn issuer(&mut self) -> String {
        self.services.oauth.issuer.clone()
    }

    fn find_client(&mut self, client_id: String) -> Option<settings::Client> {
        self.services
            .oauth
            .clients
            .get(&client_id)
            .map(|client| client.record.clone())
    }

    fn scopes_supported(&mut self) -> Vec<String> {
        self.services.oauth.scopes_supported.clone()
    }

    fn endpoint_url(&mut self, endpoint: String) -> Option<String> {
        let path = Export::named(&endpoint)?.path()?;
        Some(format!("{}{path}", self.services.oauth.issuer))
    }

    fn find_registration(&mut self, client_id: String) -> Option<settings::Registration> {
        let client = self.services.oauth.clients.get(&client_id)?;
        Some(client.registration.clone())
    }

    fn login_flow(&mut self) -> Option<settings::Flow> {
        self.services.oauth.flow.clone()
    }

    fn find_refresh_policy(&mut self, client_id: String) -> Option<settings::RefreshPolicy> {
        let client = self.services.oauth.clients.get(&client_id)?;
        Some(client.refresh)
    }
}

impl caller::Host for InstanceState {
    fn authenticated(&mut self, client_id: String) {
        if self.services.oauth.clients.contains_key(&client_id) {
            self.authenticated = Some(client_id);
        }
    }

    fn outcome(&mut self, event: String, status: String) {
        count_outcome(&self.services.metrics, &self.guest, &event, &status);
    }
}

/// Counts a step the guest reports (`caller.outcome`) in its metric, or, for an event and
/// status the contract does not list, refuses it with a warning naming them and a count:
/// a guest's typo must not vanish.
fn count_outcome(metrics: &Metrics, guest: &str, event: &str, status: &str) {
    use crate::metrics::{AUTHORIZATION_RESULTS, REDEMPTION_RESULTS, REFRESH_RESULTS};
    let counter = match event {
        "authorization-started" => Some(metrics.authorizations_started.clone()),
        "authorization-ended" if AUTHORIZATION_RESULTS.contains(&status) => {
            Some(metrics.authorizations_ended.with_label_values(&[status]))
        }
        "code-redeemed" if REDEMPTION_RESULTS.contains(&status) => {
            Some(metrics.code_redemptions.with_label_values(&[status]))
        }
        "refresh" if REFRESH_RESULTS.contains(&status) => {
            Some(metrics.refreshes.with_label_values(&[status]))
        }
        _ => None,
    };
    match counter {
        Some(counter) => counter.inc(),
        None => {
            metrics.outcomes_refused.inc();
            tracing::warn!(
                target: "guest",
                guest,
                "caller.outcome({:?}, {:?}) is no event and status of the contract: not counted",
                sanitize(event),
                sanitize(status)
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{count_outcome, sanitize, KeysOf as _};
    use crate::metrics::Metrics;

    #[test]
    fn an_outcome_outside_the_contract_is_refused_and_counted_not_dropped() {
        let metrics = Metrics::new();
        count_outcome(&metrics, "g", "code-redeemed", "error");
        count_outcome(&metrics, "g", "authorization-started", "");
        count_outcome(&metrics, "g", "code-redeemed", "exploded");
        count_outcome(&metrics, "g", "no-such-event", "ok");
        let code = |result: &str| metrics.code_redemptions.with_label_values(&[result]).get();
        assert_eq!(code("error"), 1);
        assert_eq!(metrics.authorizations_started.get(), 1);
        assert_eq!(metrics.outcomes_refused.get(), 2);
        assert!(!metrics.render().contains("exploded"));
    }

    #[test]
    fn the_hosts_own_keys_are_named_in_any_operation() {
        let keyring = String::from(crate::keys::KEYRING_KEY);
        assert_eq!(keyring.host_owned(), Some(crate::keys::KEYRING_KEY));
        let limit = crate::store::rate_limit_key("demo");
        let keys = vec!["oauth:access_token:{x}".to_owned(), limit.clone()];
        assert_eq!(keys.host_owned(), Some(limit.as_str()));
        let tx = crate::contract::store::Transaction {
            expect: vec![crate::contract::store::Expect {
                key: limit.clone(),
                value: None,
            }],
            changes: Vec::new(),
        };
        assert_eq!(tx.host_owned(), Some(limit.as_str()));
        assert_eq!(String::from("oauth:grant:{g}").host_owned(), None);
    }

    #[test]
    fn guest_messages_cannot_forge_log_lines() {
        assert_eq!(sanitize("a\r\nfake line"), "a\\r\\nfake line");
    }

    #[test]
    fn long_messages_are_cut_on_a_char_boundary() {
        let long = "é".repeat(2000);
        let cut = sanitize(&long);
        assert!(cut.len() <= super::MAX_LOG_BYTES && cut.chars().all(|c| c == 'é'));
    }
}
