//! Prometheus metrics: the seed's families plus the first operator set. Label values come
//! from fixed sets (route names, operation names, guest names from config), never from a
//! request, so no token, secret or unbounded value can become a label.

use prometheus::{
    exponential_buckets, Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter,
    IntCounterVec, IntGauge, Opts, Registry, TextEncoder,
};

pub struct Metrics {
    registry: Registry,
    /// Tokens written to the store (seed: `tokenginx_token_created_total`).
    pub token_created: IntCounter,
    /// Token records found on read (seed: `tokenginx_token_retrieved_total`).
    pub token_retrieved: IntCounter,
    /// Store operation latency by operation (seed: buckets from 1 ms, x2, 10 of them).
    pub operation_duration: HistogramVec,
    /// Connections in the store's pool (seed: `tokenginx_connection_pool_size`); 0 for the
    /// embedded store.
    pub pool_size: IntGauge,
    /// Pooled connections with no operation in flight (seed: `tokenginx_connection_pool_idle`).
    pub pool_idle: IntGauge,
    /// Answered HTTP requests by route and status.
    pub http_requests: IntCounterVec,
    pub http_duration: Histogram,
    /// Guest calls that failed, by guest and reason (`trap`, `deadline`, `busy`).
    pub guest_failures: IntCounterVec,
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let token_created = IntCounter::new(
            "tokenginx_token_created_total",
            "Tokens written to the store.",
        )
        .unwrap();
        let token_retrieved = IntCounter::new(
            "tokenginx_token_retrieved_total",
            "Token records read back from the store.",
        )
        .unwrap();
        let operation_duration = HistogramVec::new(
            HistogramOpts::new(
                "tokenginx_operation_duration_seconds",
                "Token store operation latency.",
            )
            .buckets(exponential_buckets(0.001, 2.0, 10).unwrap()),
            &["operation"],
        )
        .unwrap();
        let pool_size = IntGauge::new(
            "tokenginx_connection_pool_size",
            "Connections in the token store pool.",
        )
        .unwrap();
        let pool_idle = IntGauge::new(
            "tokenginx_connection_pool_idle",
            "Pooled token store connections with no operation in flight.",
        )
        .unwrap();
        let http_requests = IntCounterVec::new(
            Opts::new(
                "tokenginx_http_requests_total",
                "HTTP requests answered, by route and status.",
            ),
            &["route", "status"],
        )
        .unwrap();
        let http_duration = Histogram::with_opts(
            HistogramOpts::new(
                "tokenginx_http_request_duration_seconds",
                "HTTP request latency.",
            )
            .buckets(exponential_buckets(0.0001, 2.0, 14).unwrap()),
        )
        .unwrap();
        let guest_failures = IntCounterVec::new(
            Opts::new(
                "tokenginx_guest_failures_total",
                "Guest calls that failed, by guest and reason.",
            ),
            &["guest", "reason"],
        )
        .unwrap();
        for collector in [
            Box::new(token_created.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(token_retrieved.clone()),
            Box::new(operation_duration.clone()),
            Box::new(pool_size.clone()),
            Box::new(pool_idle.clone()),
            Box::new(http_requests.clone()),
            Box::new(http_duration.clone()),
            Box::new(guest_failures.clone()),
        ] {
            registry.register(collector).unwrap();
        }
        Metrics {
            registry,
            token_created,
            token_retrieved,
            operation_duration,
            pool_size,
            pool_idle,
            http_requests,
            http_duration,
            guest_failures,
        }
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
