//! What a guest instance can reach: the implementations of the imports of `wit/oauth.wit`,
//! and WASI linked empty (no preopens, environment, arguments, sockets or stdio).

use super::Export;
use crate::contract::{caller, clock, log, random, rate_limit, settings, store};
use crate::metrics::Metrics;
use crate::services::Services;
use crate::store::{StoreError, StoreResult};
use prometheus::IntCounter;
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
    wasi: WasiCtx,
    table: ResourceTable,
}

impl InstanceState {
    pub fn new(services: Arc<Services>, guest: Arc<str>, call_deadline: Duration) -> Self {
        // Nothing inherited: no env, args, preopens, stdio or network.
        let wasi = WasiCtx::builder()
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        let margin = (call_deadline / 10).min(Duration::from_millis(50));
        InstanceState {
            services,
            guest,
            authenticated: None,
            store_deadline: tokio::time::Instant::now() + call_deadline - margin,
            wasi,
            table: ResourceTable::new(),
        }
    }
}

impl WasiView for InstanceState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
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

/// The Go guide's token counters a store operation feeds, by the operation's name: `set` and
/// `insert` create tokens, `get` and `get_many` retrieve them, `delete` revokes them. Only
/// operations on access tokens count (see [`TokenKeys`]): not a flow's challenges or codes.
fn token_counter<'m>(metrics: &'m Metrics, operation: &str) -> Option<&'m IntCounter> {
    match operation {
        "set" | "insert" => Some(&metrics.token_created),
        "get" | "get_many" => Some(&metrics.token_retrieved),
        "delete" => Some(&metrics.token_revoked),
        _ => None,
    }
}

/// Whether a store operation's key (or keys) are access tokens': the Go guide's key family
/// `oauth:access_token:`, which a guest keeps to for its tokens to be counted.
trait TokenKeys {
    fn are_tokens(&self) -> bool;
}

const ACCESS_TOKEN_PREFIX: &str = "oauth:access_token:";

impl TokenKeys for String {
    fn are_tokens(&self) -> bool {
        self.starts_with(ACCESS_TOKEN_PREFIX)
    }
}

impl TokenKeys for Vec<String> {
    fn are_tokens(&self) -> bool {
        !self.is_empty() && self.iter().all(String::are_tokens)
    }
}

/// How many tokens a store operation's result stands for: one written, found or deleted, or
/// each found in a batch.
trait Tally {
    fn tally(&self) -> u64;
}

impl Tally for () {
    fn tally(&self) -> u64 {
        1
    }
}

impl Tally for bool {
    fn tally(&self) -> u64 {
        u64::from(*self)
    }
}

impl<T> Tally for Option<T> {
    fn tally(&self) -> u64 {
        u64::from(self.is_some())
    }
}

impl<T> Tally for Vec<Option<T>> {
    fn tally(&self) -> u64 {
        self.iter().filter(|v| v.is_some()).count() as u64
    }
}

/// The guest's `store` imports, one for each of [`crate::store::store_operations`]: each
/// calls the store's method of the same name through [`timed`], then feeds the token
/// counters. Every operation's first argument is its key or keys.
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
                    let services = self.services.clone();
                    let operation = stringify!($op);
                    let tokens = $key.are_tokens();
                    let call = services.store.$op($key $(, $arg)*);
                    let result = timed(&services.metrics, self.store_deadline, operation, call)
                        .await?;
                    match token_counter(&services.metrics, operation) {
                        Some(counter) if tokens => counter.inc_by(result.tally()),
                        _ => {}
                    }
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
        match level {
            log::Level::Trace => tracing::trace!(guest, "{message}"),
            log::Level::Debug => tracing::debug!(guest, "{message}"),
            log::Level::Info => tracing::info!(guest, "{message}"),
            log::Level::Warn => tracing::warn!(guest, "{message}"),
            log::Level::Error => tracing::error!(guest, "{message}"),
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
}

impl caller::Host for InstanceState {
    fn authenticated(&mut self, client_id: String) {
        if self.services.oauth.clients.contains_key(&client_id) {
            self.authenticated = Some(client_id);
        }
    }

    fn outcome(&mut self, event: String, status: String) {
        use crate::metrics::{AUTHORIZATION_RESULTS, REDEMPTION_RESULTS};
        let metrics = &self.services.metrics;
        match event.as_str() {
            "authorization-started" => metrics.authorizations_started.inc(),
            "authorization-ended" if AUTHORIZATION_RESULTS.contains(&status.as_str()) => metrics
                .authorizations_ended
                .with_label_values(&[&status])
                .inc(),
            "code-redeemed" if REDEMPTION_RESULTS.contains(&status.as_str()) => {
                metrics.code_redemptions.with_label_values(&[&status]).inc()
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::sanitize;

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
