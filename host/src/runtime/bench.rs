//! `tokenginx-host bench-guest`: what a call into a guest costs in this host, on the
//! embedded store, with a client made up for the run.
//!
//! It times the real call path (a free instance slot, a fresh instance, the call,
//! teardown, metrics) for token issuance and introspection, and for comparison the same
//! introspection repeated in one reused instance, which the service never does. The
//! guest's logic alone, natively, is `cargo run --release -p tokenginx-guest --features
//! testing --example native_bench`.

use super::{Call, CallError, Export, Request, Runtime};
use crate::config::GuestConfig;
use crate::metrics::Metrics;
use crate::services::Services;
use crate::store::memory::MemoryStore;
use base64::Engine as _;
use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

const CLIENT_ID: &str = "bench";
const SECRET: &str = "bench-secret-0123456789";

/// Runs `calls` calls of each kind and returns the report.
pub async fn bench_guest(config: &GuestConfig, calls: usize) -> anyhow::Result<String> {
    // Checked as an operator's file would be. A budget never reached: the benchmark charges
    // it on every token call.
    let settings = format!(
        "guest: {{path: unused.wasm}}
oauth:
  issuer: http://bench.invalid
  clients:
    - client_id: {CLIENT_ID}
      client_secret: {SECRET}
      scopes: [read]
      default_scopes: [read]
      rate_limit: {{requests: 1000000, per: 1s, burst: 4294967295}}
"
    );
    let oauth = crate::config::parse(Path::new("bench-guest"), &settings, &|_| None)?.oauth;
    let services = Arc::new(Services {
        store: Arc::new(MemoryStore::new(usize::MAX)),
        oauth: Arc::new(oauth),
        metrics: Arc::new(Metrics::new()),
    });
    let runtime = Runtime::load(config, services).await?;
    let authorization = Some(format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{CLIENT_ID}:{SECRET}"))
    ));
    let request = |params: &[(&str, &str)]| Request {
        params: params
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect(),
        authorization: authorization.clone(),
        client_ip: "127.0.0.1".into(),
    };
    let issue = request(&[("grant_type", "client_credentials")]);
    let first = runtime
        .call(Call::Handler(Export::Token, issue.clone()), |a| {
            Ok(a.response.body)
        })
        .await?;
    let token: serde_json::Value = serde_json::from_str(&first)?;
    let token = token["access_token"]
        .as_str()
        .ok_or_else(|| anyhow::anyhow!("the guest issued no token: {first}"))?
        .to_owned();
    let introspect = request(&[("token", &token)]);

    let mut report = format!(
        "guest {} ({} calls each, embedded store)\n",
        runtime.active().label,
        calls
    );
    for (name, export, req) in [
        ("token, fresh instance", Export::Token, &issue),
        (
            "introspect, fresh instance",
            Export::Introspect,
            &introspect,
        ),
    ] {
        let mut times = Vec::with_capacity(calls);
        for _ in 0..calls {
            let start = Instant::now();
            runtime
                .call(Call::Handler(export, req.clone()), |a| {
                    match a.response.status {
                        200 => Ok(()),
                        status => Err(format!("status {status}: {}", a.response.body)),
                    }
                })
                .await?;
            times.push(start.elapsed());
        }
        line(&mut report, name, times);
    }
    let times = runtime.bench_reused(&introspect, calls).await?;
    line(&mut report, "introspect, one reused instance", times);
    Ok(report)
}

fn line(report: &mut String, name: &str, mut times: Vec<Duration>) {
    times.sort();
    let at = |q: f64| times[((times.len() as f64 * q) as usize).min(times.len() - 1)];
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    let _ = writeln!(
        report,
        "  {name:<32} median {:>7.2} us   p99 {:>7.2} us",
        us(at(0.5)),
        us(at(0.99))
    );
}

impl Runtime {
    /// For `bench-guest` only: `calls` introspections in one instance, each timed. The
    /// service never reuses an instance (see the module's isolation guarantee).
    async fn bench_reused(
        &self,
        request: &Request,
        calls: usize,
    ) -> Result<Vec<Duration>, CallError> {
        let guest = self.active();
        let mut store = self
            .sandbox
            .store(guest.label.clone(), Duration::from_secs(3600));
        let instance = guest
            .pre
            .instantiate_async(&mut store)
            .await
            .map_err(|e| CallError::Trap(format!("{e:#}")))?;
        let handler = instance.tokenginx_oauth_handler();
        let mut times = Vec::with_capacity(calls);
        for _ in 0..calls {
            let start = Instant::now();
            handler
                .call_introspect(&mut store, request)
                .await
                .map_err(|e| CallError::Trap(format!("{e:#}")))?;
            times.push(start.elapsed());
        }
        Ok(times)
    }
}
