//! `tokenginx-host bench-guest`: what a call into a guest costs in this host, on the
//! embedded store, with a client made up for the run.
//!
//! Phases (see [`Phase`]): token issuance and introspection through the real call path (a
//! free instance slot, a fresh instance, the call, teardown, metrics), as `serve` makes
//! every call; then, for comparison, introspection repeated in one reused instance, which
//! the service never does. The guest's logic alone, natively, is `cargo run --release -p
//! tokenginx-guest --features testing --example native_bench`.

use super::{CallError, Exports, Guest, Request, Route, Runtime};
use crate::config::GuestConfig;
use crate::metrics::Metrics;
use crate::services::Services;
use crate::store::memory::MemoryStore;
use base64::Engine as _;
use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokenginx_kit::bench as kit;

/// What `bench-guest` measures, in this order by default.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Phase {
    /// Token issuance, each call in a fresh instance: how `serve` runs every call.
    Token,
    /// Introspection, each call in a fresh instance.
    Introspect,
    /// Introspection repeated in one instance, which the service never does: the guest's
    /// own cost without instantiation. The instance is replaced once its memory has grown
    /// past half of `guest.memory_limit`, so a guest whose heap grows call after call (a
    /// garbage-collected runtime) completes it.
    Reused,
}

impl Phase {
    pub const ALL: [Phase; 3] = [Phase::Token, Phase::Introspect, Phase::Reused];

    fn name(self) -> &'static str {
        match self {
            Phase::Token => "token, fresh instance",
            Phase::Introspect => "introspect, fresh instance",
            Phase::Reused => "introspect, one reused instance",
        }
    }
}

impl std::str::FromStr for Phase {
    type Err = String;
    fn from_str(s: &str) -> Result<Phase, String> {
        match s {
            "token" => Ok(Phase::Token),
            "introspect" => Ok(Phase::Introspect),
            "reused" => Ok(Phase::Reused),
            other => Err(format!(
                "unknown phase {other:?}: expected token, introspect or reused"
            )),
        }
    }
}

/// Runs `calls` calls of each of `phases`, printing each phase's line as it finishes (a
/// phase that fails prints how far it got and why, and the next one runs). True when every
/// phase completed.
pub async fn bench_guest(
    config: &GuestConfig,
    phases: &[Phase],
    calls: usize,
) -> anyhow::Result<bool> {
    // Checked as an operator's file would be.
    let settings = kit::config_text();
    let oauth = crate::config::parse(Path::new("bench-guest"), &settings, &|_| None)?.oauth;
    let services = Arc::new(Services {
        store: Arc::new(MemoryStore::new(usize::MAX)),
        oauth: Arc::new(oauth),
        metrics: Arc::new(Metrics::new()),
        keys: None,
        signing: None,
    });
    let runtime = Runtime::load(config, services).await?;
    let guest = runtime.active();
    let route = |name: &str| {
        guest
            .routes
            .iter()
            .find(|r| r.name == name)
            .ok_or_else(|| anyhow::anyhow!("the guest has no route named {name:?}"))
    };
    let (token_route, introspect_route) = (route(kit::TOKEN_ROUTE)?, route(kit::INTROSPECT_ROUTE)?);
    let authorization = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!(
            "{}:{}",
            kit::CLIENT_ID,
            kit::SECRET
        ))
    );
    let request = |route: &Route, params: &[(&str, &str)]| Request {
        method: crate::contract::server::Method::Post,
        url: format!("http://bench.invalid{}", route.path),
        path_params: Vec::new(),
        query: Vec::new(),
        form: params
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect(),
        json: None,
        cookies: Vec::new(),
        headers: route
            .headers
            .iter()
            .map(|h| (h == "authorization").then(|| authorization.clone()))
            .collect(),
        client_ip: "127.0.0.1".into(),
        client_cert: None,
    };
    let issue = request(token_route, &kit::TOKEN_FORM);
    let first = runtime
        .call(&guest, token_route, issue.clone(), None, |a| {
            Ok(a.response.body)
        })
        .await
        .map_err(|e| anyhow::anyhow!("the first token call failed: {e}"))?;
    let token: serde_json::Value = serde_json::from_str(&first)
        .map_err(|e| anyhow::anyhow!("the first token call answered no JSON ({e}): {first}"))?;
    let token = token["access_token"]
        .as_str()
        .ok_or_else(|| anyhow::anyhow!("the guest issued no token: {first}"))?
        .to_owned();
    let introspect = request(introspect_route, &kit::introspect_form(&token));

    println!(
        "guest {} ({calls} calls a phase, embedded store, memory limit {} MiB)",
        runtime.active().label,
        config.memory_limit >> 20
    );
    let mut completed = true;
    for &phase in phases {
        let run = match phase {
            Phase::Token => {
                runtime
                    .bench_fresh(&guest, token_route, &issue, calls)
                    .await
            }
            Phase::Introspect => {
                runtime
                    .bench_fresh(&guest, introspect_route, &introspect, calls)
                    .await
            }
            Phase::Reused => {
                let recycle_at = (config.memory_limit / 2) as usize;
                let route = introspect_route;
                runtime
                    .bench_reused(&guest, route, &introspect, calls, recycle_at)
                    .await
            }
        };
        print!("{}", line(phase.name(), &run));
        completed &= run.failure.is_none();
    }
    Ok(completed)
}

/// A phase's timings, how often its instance was replaced, and why it stopped early.
struct Run {
    times: Vec<Duration>,
    recycled: usize,
    failure: Option<CallError>,
}

impl Run {
    fn new(calls: usize) -> Run {
        Run {
            times: Vec::with_capacity(calls),
            recycled: 0,
            failure: None,
        }
    }
}

fn line(name: &str, run: &Run) -> String {
    let mut out = String::new();
    if !run.times.is_empty() {
        let mut times = run.times.clone();
        times.sort();
        let at = |q: f64| times[((times.len() as f64 * q) as usize).min(times.len() - 1)];
        let us = |d: Duration| d.as_secs_f64() * 1e6;
        let _ = write!(
            out,
            "  {name:<32} median {:>7.2} us   p99 {:>7.2} us",
            us(at(0.5)),
            us(at(0.99))
        );
        if run.recycled > 0 {
            let _ = write!(out, "   (instance replaced {} times)", run.recycled);
        }
        out.push('\n');
    }
    if let Some(failure) = &run.failure {
        let _ = writeln!(
            out,
            "  {name:<32} FAILED after {} calls: {failure}",
            run.times.len()
        );
    }
    out
}

impl Runtime {
    /// `calls` calls of `route`, each through the real call path: a free slot, a fresh
    /// instance, the call, teardown and metrics.
    async fn bench_fresh(
        &self,
        guest: &Arc<Guest>,
        route: &Route,
        request: &Request,
        calls: usize,
    ) -> Run {
        let mut run = Run::new(calls);
        for _ in 0..calls {
            let start = Instant::now();
            let answered = self
                .call(guest, route, request.clone(), None, |a| {
                    match a.response.status {
                        200 => Ok(()),
                        status => Err(format!("status {status}: {}", a.response.body)),
                    }
                })
                .await;
            if let Err(e) = answered {
                run.failure = Some(e);
                break;
            }
            run.times.push(start.elapsed());
        }
        run
    }

    /// For `bench-guest`: `calls` introspections in one instance, each timed; a new
    /// instance replaces it once its memory has grown past `recycle_at` bytes. What a call
    /// costs with `guest.reuse`, without the queue and the metrics around it.
    /// A 0.1 guest is not measured here: its calls go through the adapter.
    async fn bench_reused(
        &self,
        guest: &Guest,
        route: &Route,
        request: &Request,
        calls: usize,
        recycle_at: usize,
    ) -> Run {
        let mut run = Run::new(calls);
        let trap = |e: wasmtime::Error| CallError::Trap(format!("{e:#}"));
        let Exports::Current(pre, _) = &guest.exports else {
            run.failure = Some(CallError::Trap("a 0.1 guest: not measured reused".into()));
            return run;
        };
        let mut instance = None;
        while run.times.len() < calls {
            let (store, server) = match &mut instance {
                Some(live) => live,
                None => {
                    let mut store = self.sandbox.store(guest, Duration::from_secs(3600));
                    store.limiter(|state| state);
                    match pre.instantiate_async(&mut store).await {
                        Ok(new) => instance.insert((store, new.tokenginx_oauth_server().clone())),
                        Err(e) => {
                            run.failure = Some(trap(e));
                            break;
                        }
                    }
                }
            };
            let start = Instant::now();
            if let Err(e) = server.call_handle(&mut *store, &route.name, request).await {
                run.failure = Some(trap(e));
                break;
            }
            run.times.push(start.elapsed());
            if store.data().memory_peak > recycle_at {
                instance = None;
                run.recycled += 1;
            }
        }
        run
    }
}
