//! The Wasm runtime: one `Engine`, the pooling allocator, the active guest (swappable while
//! serving), and a fresh instance for every call.
//!
//! A fresh instance per call is the isolation guarantee: nothing one request leaves in guest
//! memory can be seen by the next, and a trapped instance is simply dropped. Each call runs
//! under the configured memory cap, optional fuel, and a wall-clock deadline: epoch
//! interruption stops a guest that computes too long, and a timer around the call stops one
//! that waits too long on an import.
//!
//! Hot swap: [`Runtime::reload`] loads and checks the new guest off to the side, then
//! replaces the active one. A call holds the guest it started on until it ends, so in-flight
//! requests finish on the old guest while new ones start on the new.

mod bench;
mod call;
mod capabilities;
mod imports;
mod loader;

pub use crate::contract::optional::browser::Request as BrowserRequest;
pub use crate::contract::{Request, Response};
pub use bench::{bench_guest, Phase};
pub use call::{Answer, Call, CallError, Export};
pub use capabilities::Capabilities;
pub use loader::precompile;

use crate::config::{FailureAction, GuestConfig};
use crate::contract::{self as bindings, optional, BasePre};
use crate::services::Services;
use anyhow::Context as _;
use imports::InstanceState;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;
use wasmtime::component::Linker;
use wasmtime::{Engine, Store, Trap};

/// How often the epoch advances: the granularity of guest deadlines.
const EPOCH_TICK: Duration = Duration::from_millis(5);

/// A loaded guest: its linked code, who it says it is, and what it serves.
pub struct Guest {
    pre: BasePre<InstanceState>,
    pub name: String,
    pub version: String,
    pub sha256: String,
    /// `name@version`, for log lines.
    pub label: Arc<str>,
    pub capabilities: Capabilities,
    /// Where its `browser` export is, if it has one.
    browser: Option<optional::browser::GuestIndices>,
    /// Failed calls in a row; a success resets it.
    consecutive_failures: AtomicU32,
}

/// The guests: the one serving, and the one before it (for a roll back).
struct Slots {
    active: Arc<Guest>,
    previous: Option<Arc<Guest>>,
}

pub struct Runtime {
    sandbox: Sandbox,
    linker: Linker<InstanceState>,
    path: PathBuf,
    cache_dir: Option<PathBuf>,
    failure_threshold: u32,
    failure_action: FailureAction,
    /// Bounds live instances to what the pool was sized for; callers queue here.
    instances: Arc<Semaphore>,
    /// Bounds the instances of calls that use the store (see [`Export::uses_store`]).
    store_bound: Semaphore,
    slots: RwLock<Slots>,
    /// One reload at a time.
    reloading: tokio::sync::Mutex<()>,
}

/// The instances calls that use the store may hold at once: all but a sixteenth of
/// `max_instances` (at least one), which stay free for the calls that do not.
fn store_bound_budget(max_instances: u32) -> u32 {
    match max_instances {
        0 | 1 => max_instances,
        n => n - (n / 16).max(1),
    }
}

/// What every instance runs under: the engine, the host's services, and the limits.
struct Sandbox {
    engine: Engine,
    services: Arc<Services>,
    deadline: Duration,
    fuel: Option<u64>,
}

impl Runtime {
    /// Compiles (or loads from the cache) and links the guest at `config.path`, and asks it
    /// who it is.
    pub async fn load(config: &GuestConfig, services: Arc<Services>) -> anyhow::Result<Runtime> {
        let engine = loader::engine(config)?;
        let linker = loader::linker(&engine)?;
        spawn_epoch_ticker(engine.clone());
        services
            .metrics
            .instances_limit
            .set(config.max_instances.into());
        let sandbox = Sandbox {
            engine,
            services,
            deadline: config.deadline,
            fuel: config.fuel,
        };
        let guest =
            load_guest(&sandbox, &linker, &config.path, config.cache_dir.as_deref()).await?;
        let runtime = Runtime {
            sandbox,
            linker,
            path: config.path.clone(),
            cache_dir: config.cache_dir.clone(),
            failure_threshold: config.failure_policy.consecutive,
            failure_action: config.failure_policy.action,
            instances: Arc::new(Semaphore::new(config.max_instances as usize)),
            store_bound: Semaphore::new(store_bound_budget(config.max_instances) as usize),
            slots: RwLock::new(Slots {
                active: guest.clone(),
                previous: None,
            }),
            reloading: tokio::sync::Mutex::new(()),
        };
        runtime.set_info(None, &guest);
        Ok(runtime)
    }

    /// The guest serving new calls.
    pub fn active(&self) -> Arc<Guest> {
        self.slots.read().unwrap().active.clone()
    }

    /// Whether the active guest serves `export`, for routing: read under the lock, without
    /// taking a reference to the guest.
    pub fn serves(&self, export: Export) -> bool {
        self.slots
            .read()
            .unwrap()
            .active
            .capabilities
            .serves(export)
    }

    /// Loads `guest.path` again and, if it loads, links and describes itself, makes it the
    /// active guest. On failure the active guest stays and the error says why.
    pub async fn reload(&self) -> anyhow::Result<Arc<Guest>> {
        let _one_at_a_time = self.reloading.lock().await;
        let metrics = &self.sandbox.services.metrics;
        let started = std::time::Instant::now();
        let took = |result: &str| {
            metrics
                .guest_reload_duration
                .with_label_values(&[result])
                .observe(started.elapsed().as_secs_f64());
        };
        let loaded = load_guest(
            &self.sandbox,
            &self.linker,
            &self.path,
            self.cache_dir.as_deref(),
        );
        match loaded.await {
            Ok(guest) => {
                let old = {
                    let mut slots = self.slots.write().unwrap();
                    let old = std::mem::replace(&mut slots.active, guest.clone());
                    slots.previous = Some(old.clone());
                    // Under the lock, so the gauge always names the guest serving.
                    self.set_info(Some(&old), &guest);
                    old
                };
                metrics.guest_reloads.with_label_values(&["ok"]).inc();
                took("ok");
                tracing::info!(
                    guest = %guest.label,
                    sha256 = %guest.sha256,
                    previous = %old.label,
                    "guest reloaded"
                );
                Ok(guest)
            }
            Err(e) => {
                metrics.guest_reloads.with_label_values(&["refused"]).inc();
                took("refused");
                tracing::error!(
                    guest = %self.active().label,
                    "guest reload refused, the current guest keeps serving: {e:#}"
                );
                Err(e)
            }
        }
    }

    /// Makes `call` in a fresh instance of the active guest, after waiting for a free one;
    /// the deadline covers the wait and the call. `accept` turns the guest's answer into
    /// what the caller needs, or says why it cannot be sent; that counts as a guest failure
    /// like a trap.
    pub async fn call<T>(
        &self,
        call: Call,
        accept: impl FnOnce(Answer) -> Result<T, String>,
    ) -> Result<T, CallError> {
        let guest = self.active();
        let export = call.export();
        let metrics = &self.sandbox.services.metrics;
        metrics
            .guest_calls
            .with_label_values(&[&guest.name, &guest.version, export.name()])
            .inc();
        let start = Instant::now();
        let result = match self.run(&guest, call).await {
            Ok(response) => accept(response).map_err(CallError::InvalidResponse),
            Err(e) => Err(e),
        };
        metrics
            .guest_duration
            .with_label_values(&[export.name()])
            .observe(start.elapsed().as_secs_f64());
        match &result {
            Ok(_) => guest.consecutive_failures.store(0, Ordering::Relaxed),
            Err(error) => self.failed(&guest, export, error),
        }
        result
    }

    async fn run(&self, guest: &Guest, call: Call) -> Result<Answer, CallError> {
        let export = call.export();
        let start = Instant::now();
        let permits = async {
            let never_closed = "the runtime's semaphores are never closed";
            let store_bound = match export.uses_store() {
                true => Some(self.store_bound.acquire().await.expect(never_closed)),
                false => None,
            };
            let instance = self.instances.acquire().await.expect(never_closed);
            (store_bound, instance)
        };
        let _permits = tokio::time::timeout(self.sandbox.deadline, permits)
            .await
            .map_err(|_| CallError::Busy(self.sandbox.deadline))?;
        let _active = InstanceGauge::new(&self.sandbox.services.metrics.instances_active);
        let remaining = self.sandbox.deadline.saturating_sub(start.elapsed());
        // A slot that came free too late to run the call is overload (503), not a
        // failure of the guest (500, counted against it).
        if remaining < self.sandbox.deadline / 10 {
            return Err(CallError::Busy(self.sandbox.deadline));
        }
        let run = async {
            let mut store = self.sandbox.store(guest.label.clone(), remaining);
            let call_name = match &call {
                Call::Admin(name, _) => Some(*name),
                _ => None,
            };
            let response = match call {
                Call::Handler(export, request) => {
                    let instance = guest.pre.instantiate_async(&mut store).await?;
                    let handler = instance.tokenginx_oauth_handler();
                    match export {
                        Export::Token => handler.call_token(&mut store, &request).await,
                        Export::Introspect => handler.call_introspect(&mut store, &request).await,
                        Export::Revoke => handler.call_revoke(&mut store, &request).await,
                        _ => handler.call_metadata(&mut store).await,
                    }?
                }
                Call::Authorize(request) | Call::Admin(_, request) => {
                    let Some(indices) = &guest.browser else {
                        wasmtime::bail!("the guest has no browser export");
                    };
                    let instance = guest
                        .pre
                        .instance_pre()
                        .instantiate_async(&mut store)
                        .await?;
                    let browser = indices.load(&mut store, &instance)?;
                    let response = match &call_name {
                        None => browser.call_authorize(&mut store, &request).await,
                        Some(name) => browser.call_admin(&mut store, name, &request).await,
                    }?;
                    Response {
                        status: response.status,
                        headers: response.headers,
                        body: response.body,
                    }
                }
            };
            wasmtime::Result::Ok(Answer {
                response,
                client_id: store.data_mut().authenticated.take(),
            })
        };
        self.sandbox
            .outcome(tokio::time::timeout(remaining, run).await)
    }

    /// Logs and counts a failed call, and applies `guest.failure_policy` once a guest has
    /// failed that many calls in a row. Busy is the host's limit, not the guest's failure.
    fn failed(&self, guest: &Arc<Guest>, export: Export, error: &CallError) {
        tracing::error!(
            guest = %guest.name,
            version = %guest.version,
            export = export.name(),
            reason = error.reason(),
            "{error}"
        );
        self.sandbox
            .services
            .metrics
            .guest_failures
            .with_label_values(&[&guest.name, &guest.version, export.name(), error.reason()])
            .inc();
        if matches!(error, CallError::Busy(_)) {
            return;
        }
        let failures = guest.consecutive_failures.fetch_add(1, Ordering::Relaxed) + 1;
        if failures != self.failure_threshold {
            return;
        }
        match self.failure_action {
            FailureAction::KeepServing => tracing::error!(
                guest = %guest.label,
                "guest failed {failures} calls in a row; it keeps serving \
                 (guest.failure_policy.action: keep_serving)"
            ),
            FailureAction::RollBack => self.roll_back(guest, failures),
        }
    }

    /// Makes the previous guest active again, if `failing` is still the active one.
    fn roll_back(&self, failing: &Arc<Guest>, failures: u32) {
        let mut slots = self.slots.write().unwrap();
        if !Arc::ptr_eq(&slots.active, failing) {
            return;
        }
        let Some(previous) = slots.previous.take() else {
            tracing::error!(
                guest = %failing.label,
                "guest failed {failures} calls in a row, and there is no previous guest to \
                 roll back to; it keeps serving"
            );
            return;
        };
        previous.consecutive_failures.store(0, Ordering::Relaxed);
        slots.active = previous.clone();
        self.set_info(Some(failing), &previous);
        drop(slots);
        self.sandbox
            .services
            .metrics
            .guest_reloads
            .with_label_values(&["rolled_back"])
            .inc();
        tracing::error!(
            guest = %failing.label,
            restored = %previous.label,
            "guest failed {failures} calls in a row; rolled back to the previous guest"
        );
    }

    /// Points `tokenginx_guest_info` at `new`.
    fn set_info(&self, old: Option<&Guest>, new: &Guest) {
        let info = &self.sandbox.services.metrics.guest_info;
        if let Some(old) = old {
            let _ = info.remove_label_values(&[&old.name, &old.version, &old.sha256]);
        }
        info.with_label_values(&[&new.name, &new.version, &new.sha256])
            .set(1);
        // Failure series from zero, so the first failure shows in a rate.
        let failures = &self.sandbox.services.metrics.guest_failures;
        for export in Export::ALL {
            for reason in ["trap", "deadline", "fuel", "busy", "invalid_response"] {
                failures.with_label_values(&[&new.name, &new.version, export.name(), reason]);
            }
        }
    }
}

impl Sandbox {
    /// A store for one instance, whose execution stops (traps) after `deadline` or when its
    /// fuel runs out.
    fn store(&self, guest: Arc<str>, deadline: Duration) -> Store<InstanceState> {
        let mut store = Store::new(
            &self.engine,
            InstanceState::new(self.services.clone(), guest, deadline),
        );
        store.set_epoch_deadline(deadline.as_nanos().div_ceil(EPOCH_TICK.as_nanos()) as u64);
        store.epoch_deadline_trap();
        if let Some(fuel) = self.fuel {
            store
                .set_fuel(fuel)
                .expect("fuel is enabled with guest.fuel");
        }
        store
    }

    /// Names what went wrong with a call that ran under `tokio::time::timeout`.
    fn outcome<T>(
        &self,
        result: Result<wasmtime::Result<T>, tokio::time::error::Elapsed>,
    ) -> Result<T, CallError> {
        match result {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) => Err(match error.downcast_ref::<Trap>() {
                // The epoch deadline fired while the guest was computing.
                Some(Trap::Interrupt) => CallError::Deadline(self.deadline),
                Some(Trap::OutOfFuel) => CallError::Fuel(self.fuel.unwrap_or(0)),
                // The guest's backtrace where it has one, then the trap; not the host's stack.
                // Escaped: frame names are the guest's to choose, and must not forge lines.
                _ => CallError::Trap(imports::sanitize_multiline(&format!("{error:#}"))),
            }),
            // The timer fired while the guest waited on an import.
            Err(_elapsed) => Err(CallError::Deadline(self.deadline)),
        }
    }
}

/// Reads, compiles, checks and links the guest at `path` on a blocking thread (compiling
/// takes milliseconds to seconds of CPU), then calls its `info` export.
async fn load_guest(
    sandbox: &Sandbox,
    linker: &Linker<InstanceState>,
    path: &Path,
    cache_dir: Option<&Path>,
) -> anyhow::Result<Arc<Guest>> {
    let started = Instant::now();
    let (engine, linker) = (sandbox.engine.clone(), linker.clone());
    let (file, cache_dir) = (path.to_owned(), cache_dir.map(Path::to_owned));
    let compiled = tokio::task::spawn_blocking(move || {
        loader::load(&engine, &linker, &file, cache_dir.as_deref())
    })
    .await
    .context("the guest loader panicked")??;
    let describe = async {
        let mut store = sandbox.store(Arc::from(""), sandbox.deadline);
        let instance = compiled
            .pre
            .instance_pre()
            .instantiate_async(&mut store)
            .await?;
        let info = bindings::Base::new(&mut store, &instance)?
            .tokenginx_oauth_handler()
            .call_info(&mut store)
            .await?;
        let described = match &compiled.capabilities {
            Some(indices) => {
                let export = indices.load(&mut store, &instance)?;
                Some(export.call_describe(&mut store).await?)
            }
            None => None,
        };
        wasmtime::Result::Ok((info, described))
    };
    let (info, described) = sandbox
        .outcome(tokio::time::timeout(sandbox.deadline, describe).await)
        .with_context(|| format!("guest {} failed to describe itself", path.display()))?;
    let capabilities = match described {
        Some(described) => Capabilities::declared(described),
        None => Ok(Capabilities::of_a_base_guest()),
    };
    let capabilities = capabilities
        .and_then(|c| {
            c.check(&sandbox.services.oauth)?;
            let browser = [Export::Authorize, Export::Admin];
            if compiled.browser.is_none() && browser.into_iter().any(|e| c.serves(e)) {
                anyhow::bail!(
                    "it lists the endpoints authorize or admin without exporting \
                     tokenginx:oauth/browser"
                );
            }
            Ok(c)
        })
        .with_context(|| format!("guest {}", path.display()))?;
    let name = imports::sanitize(&info.name);
    let version = imports::sanitize(&info.version);
    if !(1..=64).contains(&name.len()) || !(1..=64).contains(&version.len()) {
        anyhow::bail!(
            "guest {} names itself {name:?} version {version:?}: each must be 1 to 64 bytes",
            path.display()
        );
    }
    let label = Arc::from(format!("{name}@{version}"));
    tracing::info!(
        guest = %label,
        sha256 = %compiled.sha256,
        source = compiled.source,
        load_ms = started.elapsed().as_secs_f64() * 1e3,
        "guest loaded"
    );
    Ok(Arc::new(Guest {
        pre: compiled.pre,
        name,
        version,
        sha256: compiled.sha256,
        label,
        capabilities,
        browser: compiled.browser,
        consecutive_failures: AtomicU32::new(0),
    }))
}

/// Counts an instance in `tokenginx_guest_instances_active` while it lives.
struct InstanceGauge<'a>(&'a prometheus::IntGauge);

impl<'a> InstanceGauge<'a> {
    fn new(gauge: &'a prometheus::IntGauge) -> Self {
        gauge.inc();
        InstanceGauge(gauge)
    }
}

impl Drop for InstanceGauge<'_> {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Advances the engine's epoch forever; deadlines are counted in these ticks.
fn spawn_epoch_ticker(engine: Engine) {
    std::thread::Builder::new()
        .name("epoch-ticker".into())
        .spawn(move || loop {
            std::thread::sleep(EPOCH_TICK);
            engine.increment_epoch();
        })
        .expect("spawning the epoch ticker thread");
}
