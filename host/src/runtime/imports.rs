//! What a guest instance can reach: the implementations of the imports of `wit/oauth.wit`,
//! and WASI linked empty (no preopens, environment, arguments, sockets or stdio).

use super::counters::Counters;
use crate::contract::{
    caller, clock, keys, log, metrics, random, rate_limit, seal, settings, store,
};
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
    /// The counters it declared (`metrics.count`).
    pub counters: Arc<Counters>,
    /// The registered client the guest said the request authenticated as (`caller`).
    pub authenticated: Option<String>,
    /// The certificate the request's client presented on its TLS connection, chained or
    /// not (`caller.presented-cert`).
    pub presented_cert: Option<Arc<[u8]>>,
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
    pub fn new(
        services: Arc<Services>,
        guest: Arc<str>,
        counters: Arc<Counters>,
        call_deadline: Duration,
    ) -> Self {
        let mut state = InstanceState {
            services,
            guest,
            counters,
            authenticated: None,
            presented_cert: None,
            store_deadline: tokio::time::Instant::now(),
            wasi: None,
            table: ResourceTable::new(),
            memory_peak: 0,
        };
        state.begin_call(call_deadline);
        state
    }

    /// Readies the state for a call that must end within `call_deadline`: what an earlier
    /// call on a reused instance left of the request is gone.
    pub fn begin_call(&mut self, call_deadline: Duration) {
        let margin = (call_deadline / 10).min(Duration::from_millis(50));
        self.store_deadline = tokio::time::Instant::now() + call_deadline - margin;
        self.authenticated = None;
        self.presented_cert = None;
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

/// A key of the host's own (its rate limits, its keyring) among an operation's keys: a
/// guest may not read or write those.
pub(super) trait HostOwned {
    fn host_owned(&self) -> Option<&str>;
}

/// The key families the host keeps for itself in the store.
const HOST_OWNED: [&str; 2] = ["oauth:rate_limit:", "oauth:keyring:"];

fn host_owned(key: &str) -> bool {
    HOST_OWNED.iter().any(|prefix| key.starts_with(prefix))
}

impl HostOwned for String {
    fn host_owned(&self) -> Option<&str> {
        host_owned(self).then_some(self.as_str())
    }
}

impl HostOwned for Vec<String> {
    fn host_owned(&self) -> Option<&str> {
        self.iter().find(|k| host_owned(k)).map(String::as_str)
    }
}

impl HostOwned for store::Transaction {
    fn host_owned(&self) -> Option<&str> {
        let expected = self.expect.iter().map(|e| e.key.as_str());
        let changed = self.changes.iter().map(|c| c.key.as_str());
        expected.chain(changed).find(|k| host_owned(k))
    }
}

/// The guest's `store` imports, one for each of [`crate::store::store_operations`]: each
/// refuses the host's own keys, then calls the store's method of the same name through
/// [`timed`]. Every operation's first argument is its key, keys or transaction.
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
                    let call = services.store.$op($key $(, $arg)*);
                    timed(&services.metrics, self.store_deadline, stringify!($op), call).await
                }
            )*
        }
    };
}
crate::store::store_operations!(store_imports);

/// The longest client id `rate-limit.charge` and `caller.authenticated` take.
const MAX_CLIENT_ID_BYTES: usize = 255;

impl rate_limit::Host for InstanceState {
    async fn charge(&mut self, client_id: String) -> StoreResult<Option<u64>> {
        let services = self.services.clone();
        if client_id.is_empty() || client_id.len() > MAX_CLIENT_ID_BYTES {
            return Err(StoreError::Rejected(format!(
                "rate-limit.charge: a client id is 1 to {MAX_CLIENT_ID_BYTES} bytes"
            )));
        }
        // A configured client's budget, or for one the guest registered at runtime
        // `oauth.rate_limit` in a bucket of its own.
        match services.oauth.clients.get(&client_id) {
            Some(client) => {
                let label = &client.record.client_id;
                self.charge_bucket(&client.rate_limit_key, client.rate_limit, label)
                    .await
            }
            // Runtime clients are not the operator's fixed set: one series for all.
            None => {
                let bucket = crate::store::rate_limit_key(&client_id);
                let limit = services.oauth.rate_limit;
                self.charge_bucket(&bucket, limit, RUNTIME_CLIENTS_LABEL)
                    .await
            }
        }
    }

    async fn charge_registration(&mut self, key: String) -> StoreResult<Option<u64>> {
        if key.is_empty() || key.len() > MAX_CLIENT_ID_BYTES {
            return Err(StoreError::Rejected(format!(
                "rate-limit.charge-registration: a key is 1 to {MAX_CLIENT_ID_BYTES} bytes"
            )));
        }
        let Some((_, limit)) = self.services.oauth.registration.clone() else {
            return Err(StoreError::Rejected(
                "rate-limit.charge-registration: oauth.registration is off".into(),
            ));
        };
        // Apart from the clients' buckets: a key that is a client id charges another one.
        let bucket = crate::store::rate_limit_key(&format!("registration\0{key}"));
        self.charge_bucket(&bucket, limit, REGISTRATION_LABEL).await
    }
}

impl InstanceState {
    /// Charges `key` in the bucket at `bucket` against `limit` (none: unlimited), counting
    /// a refusal under `label`.
    async fn charge_bucket(
        &mut self,
        bucket: &str,
        limit: Option<crate::store::RateLimit>,
        label: &str,
    ) -> StoreResult<Option<u64>> {
        let services = self.services.clone();
        let Some(limit) = limit else {
            return Ok(None);
        };
        let wait = timed(
            &services.metrics,
            self.store_deadline,
            "charge",
            services.store.charge(bucket, limit),
        )
        .await?;
        if wait.is_some() {
            services
                .metrics
                .rate_limited
                .with_label_values(&[label])
                .inc();
        }
        // Whole milliseconds, rounded up: a client that waits that long is admitted.
        Ok(wait.map(|w| w.as_micros().div_ceil(1000) as u64))
    }
}

/// The `client_id` label of `tokenginx_rate_limited_total` for every client the guest
/// registered at runtime (the configured ones are labelled by their ids).
pub const RUNTIME_CLIENTS_LABEL: &str = "(registered at runtime)";
/// Its label for dynamic client registrations over `oauth.registration.rate_limit`.
pub const REGISTRATION_LABEL: &str = "(registration)";

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

impl keys::Host for InstanceState {
    fn sign(
        &mut self,
        purpose: keys::Purpose,
        algorithm: keys::Algorithm,
        claims: String,
    ) -> StoreResult<String> {
        let Some(keys) = &self.services.signing else {
            return Err(StoreError::Unavailable(
                "keys.sign: the host has no signing keys (no client can get a signed token, \
                 or keys.secret is not set)"
                    .into(),
            ));
        };
        keys.sign(purpose, algorithm, &claims)
    }

    fn verify(&mut self, purpose: keys::Purpose, token: String) -> Option<String> {
        self.services.signing.as_ref()?.verify(purpose, &token)
    }

    fn verify_with_key(&mut self, jwk: String, token: String) -> bool {
        crate::keys::external::verify(&jwk, &token)
    }

    fn verify_client_secret_jwt(&mut self, client_id: String, token: String) -> bool {
        let client = self.services.oauth.clients.get(&client_id);
        client
            .and_then(|c| c.mac_key.as_ref())
            .is_some_and(|key| crate::keys::external::verify_hs256(key, &token))
    }

    fn public_keys(&mut self) -> keys::KeySet {
        match &self.services.signing {
            Some(keys) => keys::KeySet {
                json: keys.jwks().to_string(),
                max_age: keys.schedule().max_age(),
            },
            None => keys::KeySet {
                json: r#"{"keys":[]}"#.into(),
                max_age: 3600,
            },
        }
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

    fn find_token_format(&mut self, client_id: String) -> Option<settings::TokenFormat> {
        let client = self.services.oauth.clients.get(&client_id)?;
        Some(client.tokens.clone())
    }

    fn client_defaults(&mut self) -> settings::Inherited {
        self.services.oauth.defaults
    }

    fn dynamic_registration(&mut self) -> Option<settings::RegistrationPolicy> {
        self.services
            .oauth
            .registration
            .clone()
            .map(|(policy, _)| policy)
    }

    fn configured_clients(&mut self) -> Vec<String> {
        let clients = self.services.oauth.clients_in_order().into_iter();
        clients.map(|c| c.record.client_id.clone()).collect()
    }

    fn dpop(&mut self) -> settings::DpopPolicy {
        self.services.oauth.dpop.clone()
    }

    fn find_client_jwks(&mut self, client_id: String) -> Option<String> {
        self.services.oauth.clients.get(&client_id)?.jwks.clone()
    }

    fn mtls(&mut self) -> settings::MtlsPolicy {
        self.services.oauth.mtls
    }

    fn find_client_mtls(&mut self, client_id: String) -> Option<settings::MtlsClient> {
        self.services.oauth.clients.get(&client_id)?.mtls.clone()
    }
}

impl caller::Host for InstanceState {
    fn authenticated(&mut self, client_id: String) {
        if !client_id.is_empty() && client_id.len() <= MAX_CLIENT_ID_BYTES {
            self.authenticated = Some(sanitize(&client_id));
        }
    }

    fn presented_cert(&mut self) -> Option<Vec<u8>> {
        self.presented_cert.as_ref().map(|der| der.to_vec())
    }
}

impl metrics::Host for InstanceState {
    fn count(&mut self, name: String, labels: Vec<String>, by: u64) {
        if let Err(why) = self.counters.count(&name, &labels, by) {
            self.refuse_count(&format!("metrics.count({name:?}, {labels:?})"), &why);
        }
    }
}

impl InstanceState {
    /// A count the guest may not make: warned about, naming it, and counted, never
    /// dropped without a word.
    pub(super) fn refuse_count(&self, what: &str, why: &str) {
        self.services.metrics.outcomes_refused.inc();
        tracing::warn!(
            target: "guest",
            guest = &*self.guest,
            "{}: not counted: {}",
            sanitize(what),
            sanitize(why)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::{sanitize, HostOwned as _};

    #[test]
    fn the_hosts_own_keys_are_named_in_any_operation() {
        let keyring = String::from(crate::keys::seal::KEYRING_KEY);
        assert_eq!(keyring.host_owned(), Some(crate::keys::seal::KEYRING_KEY));
        let signing = String::from(crate::keys::sign::SIGNING_KEYS_KEY);
        assert_eq!(
            signing.host_owned(),
            Some(crate::keys::sign::SIGNING_KEYS_KEY)
        );
        let limit = crate::store::rate_limit_key("demo");
        let keys = vec!["token:{x}".to_owned(), limit.clone()];
        assert_eq!(keys.host_owned(), Some(limit.as_str()));
        let tx = crate::contract::store::Transaction {
            expect: vec![crate::contract::store::Expect {
                key: limit.clone(),
                value: None,
            }],
            changes: Vec::new(),
        };
        assert_eq!(tx.host_owned(), Some(limit.as_str()));
        assert_eq!(String::from("grant:{g}").host_owned(), None);
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
