//! Prometheus metrics: the Go guide's five families, then what an operator needs. Label values
//! come from fixed sets (routes, exports, store operations, failure reasons) or from the
//! loaded guest's own name and version or the configured client ids, never from a request,
//! so no token, secret or unbounded value can become a label.

use prometheus::core::Collector;
use prometheus::{
    exponential_buckets, Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

pub struct Metrics {
    registry: Registry,
    /// Tokens written to the store (Go guide: `tokenginx_token_created_total`).
    pub token_created: IntCounter,
    /// Token records found on read (Go guide: `tokenginx_token_retrieved_total`).
    pub token_retrieved: IntCounter,
    /// Token records deleted, which is what a revocation does.
    pub token_revoked: IntCounter,
    /// Requests refused for being over their client's rate limit, by (configured) client.
    pub rate_limited: IntCounterVec,
    /// Store operation latency by operation (Go guide: buckets from 1 ms, x2, 10 of them).
    pub operation_duration: HistogramVec,
    /// Failed store operations by kind (`unavailable`, `rejected`).
    pub store_errors: IntCounterVec,
    /// Connections in the store's pool (Go guide: `tokenginx_connection_pool_size`); 0 for the
    /// embedded store.
    pub pool_size: IntGauge,
    /// Pooled connections with no operation in flight (Go guide: `tokenginx_connection_pool_idle`).
    pub pool_idle: IntGauge,
    /// Answered HTTP requests by route and status.
    pub http_requests: IntCounterVec,
    /// HTTP request latency by route.
    pub http_duration: HistogramVec,
    /// Guest calls by guest name, version and export.
    pub guest_calls: IntCounterVec,
    /// Guest calls that failed, by guest, version, export and reason (`trap`, `deadline`,
    /// `fuel`, `busy`, `invalid_response`).
    pub guest_failures: IntCounterVec,
    /// Guest call latency by export, instantiation included.
    pub guest_duration: HistogramVec,
    /// Guest instances alive now, and the most there may be.
    pub instances_active: IntGauge,
    pub instances_limit: IntGauge,
    /// 1 for the guest serving requests, labelled with its name, version and SHA-256.
    pub guest_info: IntGaugeVec,
    /// Guest reloads by result (`ok`, `refused`, `rolled_back`).
    pub guest_reloads: IntCounterVec,
    /// How long a reload took, from taking the reload lock to the swap (or the refusal), by
    /// result.
    pub guest_reload_duration: HistogramVec,
    /// Authorization code flows begun, and ended by result (`code`, `access_denied`,
    /// `error`), as the guest reports them.
    pub authorizations_started: IntCounter,
    pub authorizations_ended: IntCounterVec,
    /// Code redemptions by result (`ok`, `invalid_grant`, `replayed`).
    pub code_redemptions: IntCounterVec,
    /// Refresh token grants by result (`ok`, `invalid_grant`, `reused`, `replayed`).
    pub refreshes: IntCounterVec,
    /// `caller.outcome` reports outside the contract's events and statuses: refused.
    pub outcomes_refused: IntCounter,
    /// Requests refused for being over their address's budget, by route.
    pub address_rate_limited: IntCounterVec,
    /// Addresses whose budget this replica holds now.
    pub address_budgets: IntGauge,
    /// 1 while the embedded store refuses new entries (`tokenginx.max_entries`).
    pub store_full: IntGauge,
}

/// The results the flow's counters take; anything else a guest reports is not counted.
pub const AUTHORIZATION_RESULTS: [&str; 3] = ["code", "access_denied", "error"];
pub const REDEMPTION_RESULTS: [&str; 4] = ["ok", "invalid_grant", "replayed", "error"];
pub const REFRESH_RESULTS: [&str; 4] = ["ok", "invalid_grant", "reused", "replayed"];

fn counter(name: &str, help: &str) -> IntCounter {
    IntCounter::new(name, help).expect("a valid metric")
}

fn counters(name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    IntCounterVec::new(Opts::new(name, help), labels).expect("a valid metric")
}

fn gauge(name: &str, help: &str) -> IntGauge {
    IntGauge::new(name, help).expect("a valid metric")
}

fn histograms(name: &str, help: &str, buckets: Vec<f64>, labels: &[&str]) -> HistogramVec {
    HistogramVec::new(HistogramOpts::new(name, help).buckets(buckets), labels)
        .expect("a valid metric")
}

/// 100 µs to about 1.6 s: a request or guest call.
fn latency_buckets() -> Vec<f64> {
    exponential_buckets(0.0001, 2.0, 15).expect("valid buckets")
}

impl Metrics {
    pub fn new() -> Self {
        let build_info = IntGaugeVec::new(
            Opts::new(
                "tokenginx_build_info",
                "1, labelled with the host's version and its wasmtime version.",
            ),
            &["version", "wasmtime"],
        )
        .expect("a valid metric");
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION"), WASMTIME_VERSION])
            .set(1);
        let metrics = Metrics {
            registry: Registry::new(),
            token_created: counter(
                "tokenginx_token_created_total",
                "Tokens written to the store.",
            ),
            token_retrieved: counter(
                "tokenginx_token_retrieved_total",
                "Token records read back from the store.",
            ),
            token_revoked: counter(
                "tokenginx_token_revoked_total",
                "Token records deleted from the store by revocation.",
            ),
            rate_limited: counters(
                "tokenginx_rate_limited_total",
                "Requests refused (429) for being over their client's rate limit, by client.",
                &["client_id"],
            ),
            operation_duration: histograms(
                "tokenginx_operation_duration_seconds",
                "Token store operation latency.",
                exponential_buckets(0.001, 2.0, 10).expect("valid buckets"),
                &["operation"],
            ),
            store_errors: counters(
                "tokenginx_store_errors_total",
                "Token store operations that failed, by kind.",
                &["kind"],
            ),
            pool_size: gauge(
                "tokenginx_connection_pool_size",
                "Connections in the token store pool.",
            ),
            pool_idle: gauge(
                "tokenginx_connection_pool_idle",
                "Pooled token store connections with no operation in flight.",
            ),
            http_requests: counters(
                "tokenginx_http_requests_total",
                "HTTP requests answered, by route and status.",
                &["route", "status"],
            ),
            http_duration: histograms(
                "tokenginx_http_request_duration_seconds",
                "HTTP request latency, by route.",
                latency_buckets(),
                &["route"],
            ),
            guest_calls: counters(
                "tokenginx_guest_calls_total",
                "Guest calls, by guest, version and export.",
                &["guest", "version", "export"],
            ),
            guest_failures: counters(
                "tokenginx_guest_failures_total",
                "Guest calls that failed, by guest, version, export and reason.",
                &["guest", "version", "export", "reason"],
            ),
            guest_duration: histograms(
                "tokenginx_guest_call_duration_seconds",
                "Guest call latency, instantiation included, by export.",
                latency_buckets(),
                &["export"],
            ),
            instances_active: gauge(
                "tokenginx_guest_instances_active",
                "Guest instances alive now.",
            ),
            instances_limit: gauge(
                "tokenginx_guest_instances_limit",
                "The most guest instances alive at once (guest.max_instances).",
            ),
            guest_info: IntGaugeVec::new(
                Opts::new(
                    "tokenginx_guest_info",
                    "1 for the guest serving requests, with its name, version and SHA-256.",
                ),
                &["name", "version", "sha256"],
            )
            .expect("a valid metric"),
            guest_reloads: counters(
                "tokenginx_guest_reloads_total",
                "Guest reloads, by result (ok, refused, rolled_back).",
                &["result"],
            ),
            guest_reload_duration: histograms(
                "tokenginx_guest_reload_duration_seconds",
                "How long a guest reload took, reading, compiling and checking the guest \
                 included, by result (ok, refused).",
                exponential_buckets(0.001, 4.0, 9).expect("valid buckets"),
                &["result"],
            ),
            authorizations_started: counter(
                "tokenginx_authorizations_started_total",
                "Authorization code flows begun at the authorization endpoint.",
            ),
            authorizations_ended: counters(
                "tokenginx_authorizations_ended_total",
                "Authorization code flows ended, by result (code, access_denied, error).",
                &["result"],
            ),
            code_redemptions: counters(
                "tokenginx_code_redemptions_total",
                "Authorization code redemptions, by result (ok, invalid_grant, replayed, error).",
                &["result"],
            ),
            refreshes: counters(
                "tokenginx_refreshes_total",
                "Refresh token grants, by result (ok; invalid_grant; reused: a rotated refresh \
                 token came back and its grant was ended; replayed: it came back within the \
                 reuse grace and got the answer it missed).",
                &["result"],
            ),
            outcomes_refused: counter(
                "tokenginx_guest_outcomes_refused_total",
                "Outcomes the guest reported (caller.outcome) that are no event and status of \
                 the contract: refused, with a warning naming them.",
            ),
            address_rate_limited: counters(
                "tokenginx_address_rate_limited_total",
                "Requests refused (429) for being over their client address's budget on an \
                 endpoint that takes no credentials (server.address_rate_limit), by route.",
                &["route"],
            ),
            address_budgets: gauge(
                "tokenginx_address_budgets",
                "Client addresses whose budget this replica holds now (at most 65,536).",
            ),
            store_full: gauge(
                "tokenginx_store_full",
                "1 while the embedded store refuses new entries (tokenginx.max_entries).",
            ),
        };
        let collectors: [Box<dyn Collector>; 27] = [
            Box::new(build_info),
            Box::new(metrics.token_created.clone()),
            Box::new(metrics.token_retrieved.clone()),
            Box::new(metrics.token_revoked.clone()),
            Box::new(metrics.rate_limited.clone()),
            Box::new(metrics.operation_duration.clone()),
            Box::new(metrics.store_errors.clone()),
            Box::new(metrics.pool_size.clone()),
            Box::new(metrics.pool_idle.clone()),
            Box::new(metrics.http_requests.clone()),
            Box::new(metrics.http_duration.clone()),
            Box::new(metrics.guest_calls.clone()),
            Box::new(metrics.guest_failures.clone()),
            Box::new(metrics.guest_duration.clone()),
            Box::new(metrics.instances_active.clone()),
            Box::new(metrics.instances_limit.clone()),
            Box::new(metrics.guest_info.clone()),
            Box::new(metrics.guest_reloads.clone()),
            Box::new(metrics.guest_reload_duration.clone()),
            Box::new(metrics.authorizations_started.clone()),
            Box::new(metrics.authorizations_ended.clone()),
            Box::new(metrics.code_redemptions.clone()),
            Box::new(metrics.refreshes.clone()),
            Box::new(metrics.outcomes_refused.clone()),
            Box::new(metrics.address_rate_limited.clone()),
            Box::new(metrics.address_budgets.clone()),
            Box::new(metrics.store_full.clone()),
        ];
        for collector in collectors {
            metrics
                .registry
                .register(collector)
                .expect("metric names are unique");
        }
        // Series that exist from the start, so rates and alerts see a zero, not a gap.
        for kind in ["unavailable", "rejected"] {
            metrics.store_errors.with_label_values(&[kind]);
        }
        for result in ["ok", "refused", "rolled_back"] {
            metrics.guest_reloads.with_label_values(&[result]);
        }
        for result in ["ok", "refused"] {
            metrics.guest_reload_duration.with_label_values(&[result]);
        }
        for result in AUTHORIZATION_RESULTS {
            metrics.authorizations_ended.with_label_values(&[result]);
        }
        for result in REDEMPTION_RESULTS {
            metrics.code_redemptions.with_label_values(&[result]);
        }
        for result in REFRESH_RESULTS {
            metrics.refreshes.with_label_values(&[result]);
        }
        metrics
            .address_rate_limited
            .with_label_values(&["authorize"]);
        metrics
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .expect("encoding to a Vec cannot fail");
        String::from_utf8(out).expect("the text format is UTF-8")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// The wasmtime version this host was built with (kept in step with Cargo.toml's pin by
/// the build script).
const WASMTIME_VERSION: &str = env!("TOKENGINX_WASMTIME_VERSION");
