//! Prometheus metrics: the Go guide's five families, then what an operator needs. Label values
//! come from fixed sets (routes, exports, store operations, failure reasons) or from the
//! loaded guest's own name and version or the configured client ids, never from a request,
//! so no token, secret or unbounded value can become a label.

use prometheus::core::Collector;
use prometheus::{
    exponential_buckets, Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};
use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

pub struct Metrics {
    registry: Registry,
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
    /// Guest instances made: one a call, or fewer with `guest.reuse`.
    pub instances_started: IntCounter,
    /// 1 for the guest serving requests, labelled with its name, version and SHA-256.
    pub guest_info: IntGaugeVec,
    /// Guest reloads by result (`ok`, `refused`, `rolled_back`).
    pub guest_reloads: IntCounterVec,
    /// How long a reload took, from taking the reload lock to the swap (or the refusal), by
    /// result.
    pub guest_reload_duration: HistogramVec,
    /// Counts the guest made of a counter or a value it did not declare: refused.
    pub outcomes_refused: IntCounter,
    /// Requests refused for being over their address's budget, by route.
    pub address_rate_limited: IntCounterVec,
    /// Addresses whose budget this replica holds now.
    pub address_budgets: IntGauge,
    /// 1 while the embedded store refuses new entries (`tokenginx.max_entries`).
    pub store_full: IntGauge,
    /// Signing keys by algorithm and state (`next`, `active`, `retired`).
    pub signing_keys: IntGaugeVec,
    /// Seconds until each algorithm's next signing key is due; negative while overdue,
    /// when rotation stalls.
    pub signing_key_rotation_due: IntGaugeVec,
    /// The names of the metrics above: a guest may not declare one.
    host_names: HashSet<String>,
    /// The counters guests declared (`server.counters`), by name, with their label names:
    /// registered while a guest that declares them serves, kept across swaps.
    guest_counters: Mutex<HashMap<String, (Vec<String>, IntCounterVec)>>,
}

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
    /// Sets the signing key gauges from `keys` as held now.
    pub fn set_signing_keys(&self, keys: &crate::keys::sign::SigningKeys) {
        use crate::keys::sign::{name, ALGORITHMS};
        for (alg, state, count) in keys.states() {
            self.signing_keys
                .with_label_values(&[name(alg), state.name()])
                .set(count as i64);
        }
        for alg in ALGORITHMS {
            self.signing_key_rotation_due
                .with_label_values(&[name(alg)])
                .set(keys.rotation_due_in(alg));
        }
    }

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
                "Guest instances in a call now.",
            ),
            instances_limit: gauge(
                "tokenginx_guest_instances_limit",
                "The most guest instances alive at once (guest.max_instances).",
            ),
            instances_started: IntCounter::new(
                "tokenginx_guest_instances_started_total",
                "Guest instances made: one a call, fewer with guest.reuse.",
            )
            .expect("a valid metric"),
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
            outcomes_refused: counter(
                "tokenginx_guest_outcomes_refused_total",
                "Counts the guest made (metrics.count, or caller.outcome of a 0.1 guest) of a \
                 counter or a value it did not declare: refused, with a warning naming them.",
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
            signing_keys: IntGaugeVec::new(
                Opts::new(
                    "tokenginx_signing_keys",
                    "Signing keys held, by algorithm and state (next: published, not \
                     signing; active: signing; retired: published until its tokens expire).",
                ),
                &["algorithm", "state"],
            )
            .expect("a valid metric"),
            signing_key_rotation_due: IntGaugeVec::new(
                Opts::new(
                    "tokenginx_signing_key_rotation_due_seconds",
                    "Seconds until the next signing key of an algorithm is due \
                     (keys.rotate_every); negative while it is overdue: rotation stalls.",
                ),
                &["algorithm"],
            )
            .expect("a valid metric"),
            host_names: HashSet::new(),
            guest_counters: Mutex::new(HashMap::new()),
        };
        let collectors: [Box<dyn Collector>; 23] = [
            Box::new(build_info),
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
            Box::new(metrics.instances_started.clone()),
            Box::new(metrics.instances_limit.clone()),
            Box::new(metrics.guest_info.clone()),
            Box::new(metrics.guest_reloads.clone()),
            Box::new(metrics.guest_reload_duration.clone()),
            Box::new(metrics.outcomes_refused.clone()),
            Box::new(metrics.address_rate_limited.clone()),
            Box::new(metrics.address_budgets.clone()),
            Box::new(metrics.store_full.clone()),
            Box::new(metrics.signing_keys.clone()),
            Box::new(metrics.signing_key_rotation_due.clone()),
        ];
        let mut metrics = metrics;
        for collector in collectors {
            metrics
                .host_names
                .extend(collector.desc().iter().map(|d| d.fq_name.clone()));
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
        metrics
    }

    /// Whether the host keeps a metric named `name`.
    pub fn is_hosts(&self, name: &str) -> bool {
        self.host_names.contains(name)
    }

    /// The guest counter named `name` if one with these labels was declared before.
    pub fn guest_counter(&self, name: &str, labels: &[&str]) -> Option<IntCounterVec> {
        let counters = self.guest_counters.lock().unwrap();
        let (known, series) = counters.get(name)?;
        (known == labels).then(|| series.clone())
    }

    /// Registers `series` as the guest counter `name`, in place of one of that name with
    /// other labels; a no-op for the one already registered.
    pub fn adopt_guest_counter(&self, name: &str, labels: &[&str], series: &IntCounterVec) {
        let mut counters = self.guest_counters.lock().unwrap();
        let labels: Vec<String> = labels.iter().map(|l| l.to_string()).collect();
        if let Some((known, old)) = counters.get(name) {
            if *known == labels {
                return;
            }
            let _ = self.registry.unregister(Box::new(old.clone()));
        }
        if let Err(e) = self.registry.register(Box::new(series.clone())) {
            tracing::error!("guest counter {name}: not registered: {e}");
            return;
        }
        counters.insert(name.to_owned(), (labels, series.clone()));
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
