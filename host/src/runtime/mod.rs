//! The Wasm runtime: one `Engine`, the pooling allocator, the active guest (swappable while
//! serving), and a fresh instance for every call.
//!
//! A fresh instance per call is the isolation guarantee: nothing one request leaves in guest
//! memory can be seen by the next, and a trapped instance is simply dropped. An operator may
//! trade it for speed with `guest.reuse` (a slow guest's instantiation can cost milliseconds):
//! an instance then serves several calls, one at a time, until its count, its age or half
//! its memory limit is reached; one that traps or overruns is still dropped. Each call runs
//! under the configured memory cap, optional fuel, and a wall-clock deadline: epoch
//! interruption stops a guest that computes too long, and a timer around the call stops one
//! that waits too long on an import.
//!
//! Hot swap: [`Runtime::reload`] loads and checks the new guest off to the side, then
//! replaces the active one. A call holds the guest it started on until it ends, so in-flight
//! requests finish on the old guest while new ones start on the new.

mod bench;
mod call;
mod counters;
mod imports;
mod loader;
mod routes;
/// Guests of contract 0.1.x: the one adapter (outside `src/`: see its module doc).
#[path = "../../adapter/v0_1/mod.rs"]
mod v0_1;

pub use crate::contract::server::{Request, Response};
pub use bench::{bench_guest, Phase};
pub use call::{Answer, CallError};
pub use loader::precompile;
pub use routes::{contract_method, http_method, Body, Found, Route, Routes, Side};

use crate::config::{FailureAction, GuestConfig};
use crate::contract as bindings;
use crate::services::Services;
use anyhow::Context as _;
use counters::Counters;
use imports::InstanceState;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;
use wasmtime::component::{ComponentExportIndex, Linker};
use wasmtime::{Engine, Store, Trap};

/// `server.handle`'s parameters: the route's name and the request.
type HandleParams<'a> = (&'a str, &'a Request);
/// `server.handle`, typed.
type Handle<'a> = wasmtime::component::TypedFunc<HandleParams<'a>, (Response,)>;

/// How often the epoch advances: the granularity of guest deadlines.
const EPOCH_TICK: Duration = Duration::from_millis(5);

/// A loaded guest: its linked code, who it says it is, and what it serves.
pub struct Guest {
    exports: Exports,
    pub name: String,
    pub version: String,
    pub sha256: String,
    /// `name@version`, for log lines.
    pub label: Arc<str>,
    /// The routes it answers.
    pub routes: Routes,
    /// The counters it keeps.
    counters: Arc<Counters>,
    /// Failed calls in a row; a success resets it.
    consecutive_failures: AtomicU32,
    /// With `guest.reuse`: its instances between calls. Emptied, and kept empty, once
    /// another guest replaces it, so that they give their pool slots back.
    idle: Mutex<Vec<Live>>,
    retired: AtomicBool,
}

/// An instance and its store: made for one call, or kept between calls (`guest.reuse`).
struct Live {
    store: Store<InstanceState>,
    entry: Entry,
    served: u32,
    born: Instant,
}

/// Where a call enters an instance, by the contract its guest was built against.
enum Entry {
    /// `server.handle`.
    Current(wasmtime::component::Func),
    /// The instance, for the adapter's exports.
    Legacy(wasmtime::component::Instance),
}

/// `guest.reuse`, and when an instance has grown too much to keep.
#[derive(Clone, Copy)]
struct Reuse {
    requests: u32,
    max_age: Duration,
    /// Half the memory limit, in bytes.
    recycle_at: usize,
}

impl Reuse {
    /// Whether `instance` may serve another call.
    fn keeps(&self, instance: &Live) -> bool {
        instance.served < self.requests
            && instance.born.elapsed() < self.max_age
            && instance.store.data().memory_peak <= self.recycle_at
    }
}

impl Guest {
    /// The instance that served last, if one is idle and not past `max_age`; older ones go.
    fn take_idle(&self, max_age: Duration) -> Option<Live> {
        let mut idle = self.idle.lock().unwrap();
        while let Some(live) = idle.pop() {
            if live.born.elapsed() < max_age {
                return Some(live);
            }
        }
        None
    }

    fn put_idle(&self, instance: Live) {
        // Under the lock: a retirement between the check and the push would miss it.
        let mut idle = self.idle.lock().unwrap();
        if !self.retired.load(Ordering::Acquire) {
            idle.push(instance);
        }
    }

    /// Another guest serves now: its idle instances go.
    fn retire(&self) {
        self.retired.store(true, Ordering::Release);
        self.idle.lock().unwrap().clear();
    }
}

/// A guest's exports, by the contract it was built against.
enum Exports {
    /// `tokenginx:oauth@0.2.x`: the `server` export, and where its `handle` is.
    Current(bindings::GuestPre<InstanceState>, ComponentExportIndex),
    /// `0.1.x`, through the adapter.
    Legacy(v0_1::Guest),
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
    /// Bounds the instances of calls to routes that use the store ([`Route::uses_store`]).
    store_bound: Semaphore,
    /// `guest.reuse`; none: a fresh instance per call.
    reuse: Option<Reuse>,
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
            reuse: config.reuse.map(|reuse| Reuse {
                requests: reuse.requests,
                max_age: reuse.max_age,
                recycle_at: (config.memory_limit / 2) as usize,
            }),
            slots: RwLock::new(Slots {
                active: guest.clone(),
                previous: None,
            }),
            reloading: tokio::sync::Mutex::new(()),
        };
        guest.counters.register(&runtime.sandbox.services.metrics);
        runtime.set_info(None, &guest);
        Ok(runtime)
    }

    /// The guest serving new calls.
    pub fn active(&self) -> Arc<Guest> {
        self.slots.read().unwrap().active.clone()
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
                guest.counters.register(metrics);
                let old = {
                    let mut slots = self.slots.write().unwrap();
                    let old = std::mem::replace(&mut slots.active, guest.clone());
                    slots.previous = Some(old.clone());
                    // Under the lock, so the gauge always names the guest serving.
                    self.set_info(Some(&old), &guest);
                    old
                };
                old.retire();
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

    /// Answers `request` to `route` (one of `guest`'s) in a fresh instance of `guest`,
    /// after waiting for a free one; the deadline covers the wait and the call. `accept`
    /// turns the guest's answer into what the caller needs, or says why it cannot be sent;
    /// that counts as a guest failure like a trap. `presented_cert` is the client's TLS
    /// certificate, chained or not (`caller.presented-cert`).
    pub async fn call<T>(
        &self,
        guest: &Arc<Guest>,
        route: &Route,
        request: Request,
        presented_cert: Option<Arc<[u8]>>,
        accept: impl FnOnce(Answer) -> Result<T, String>,
    ) -> Result<T, CallError> {
        let metrics = &self.sandbox.services.metrics;
        metrics
            .guest_calls
            .with_label_values(&[&guest.name, &guest.version, &route.name])
            .inc();
        let start = Instant::now();
        let result = match self.run(guest, route, request, presented_cert).await {
            Ok(response) => accept(response).map_err(CallError::InvalidResponse),
            Err(e) => Err(e),
        };
        metrics
            .guest_duration
            .with_label_values(&[&route.name])
            .observe(start.elapsed().as_secs_f64());
        match &result {
            Ok(_) => guest.consecutive_failures.store(0, Ordering::Relaxed),
            Err(error) => self.failed(guest, &route.name, error),
        }
        result
    }

    async fn run(
        &self,
        guest: &Guest,
        route: &Route,
        request: Request,
        presented_cert: Option<Arc<[u8]>>,
    ) -> Result<Answer, CallError> {
        let start = Instant::now();
        let permits = async {
            let never_closed = "the runtime's semaphores are never closed";
            let store_bound = match route.uses_store {
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
        let started = &self.sandbox.services.metrics.instances_started;
        let run = async {
            let mut instance = match self.reuse.and_then(|r| guest.take_idle(r.max_age)) {
                Some(mut idle) => {
                    idle.store.data_mut().begin_call(remaining);
                    self.sandbox.arm(&mut idle.store, remaining);
                    idle
                }
                None => {
                    let fresh = self
                        .sandbox
                        .instantiate(guest, remaining, self.reuse.is_some())
                        .await?;
                    started.inc();
                    fresh
                }
            };
            let store = &mut instance.store;
            store.data_mut().presented_cert = presented_cert;
            let response = match (&instance.entry, &guest.exports) {
                (Entry::Current(handle), _) => {
                    // SAFETY: the type of `handle` was checked when the guest loaded
                    // (`load_guest`), in an instance of this same component. Looking up the
                    // whole `server` interface and checking its types again on every call
                    // cost 1,250 instructions of each request.
                    let handle = unsafe { Handle::new_unchecked(*handle) };
                    handle
                        .call_async(&mut *store, (&route.name, &request))
                        .await?
                        .0
                }
                (Entry::Legacy(entry), Exports::Legacy(legacy)) => {
                    legacy.handle(store, entry, route, &request).await?
                }
                (Entry::Legacy(_), Exports::Current(..)) => {
                    wasmtime::bail!("an instance of a 0.1 guest kept for a 0.2 one")
                }
            };
            let client_id = store.data_mut().authenticated.take();
            if let Some(reuse) = &self.reuse {
                instance.served += 1;
                if reuse.keeps(&instance) {
                    guest.put_idle(instance);
                }
            }
            wasmtime::Result::Ok(Answer {
                response,
                client_id,
            })
        };
        self.sandbox
            .outcome(tokio::time::timeout(remaining, run).await)
    }

    /// Logs and counts a failed call, and applies `guest.failure_policy` once a guest has
    /// failed that many calls in a row. Busy is the host's limit, not the guest's failure.
    fn failed(&self, guest: &Arc<Guest>, route: &str, error: &CallError) {
        tracing::error!(
            guest = %guest.name,
            version = %guest.version,
            // The metrics' label and the log's field keep the 0.1 name.
            export = route,
            reason = error.reason(),
            "{error}"
        );
        self.sandbox
            .services
            .metrics
            .guest_failures
            .with_label_values(&[&guest.name, &guest.version, route, error.reason()])
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
        previous.retired.store(false, Ordering::Release);
        failing.retire();
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
        let metrics = &self.sandbox.services.metrics;
        for route in new.routes.names() {
            for reason in ["trap", "deadline", "fuel", "busy", "invalid_response"] {
                let labels = [&new.name, &new.version, route, reason];
                metrics.guest_failures.with_label_values(&labels);
            }
        }
        for route in new.routes.iter().filter(|r| r.anonymous) {
            metrics
                .address_rate_limited
                .with_label_values(&[&route.name]);
        }
    }
}

impl Sandbox {
    /// A store for one instance of `guest`, whose execution stops (traps) after `deadline`
    /// or when its fuel runs out.
    fn store(&self, guest: &Guest, deadline: Duration) -> Store<InstanceState> {
        self.store_for(guest.label.clone(), guest.counters.clone(), deadline)
    }

    fn store_for(
        &self,
        label: Arc<str>,
        counters: Arc<Counters>,
        deadline: Duration,
    ) -> Store<InstanceState> {
        let state = InstanceState::new(self.services.clone(), label, counters, deadline);
        let mut store = Store::new(&self.engine, state);
        store.epoch_deadline_trap();
        self.arm(&mut store, deadline);
        store
    }

    /// A fresh instance of `guest` whose call stops after `deadline`. `watched`: its memory
    /// is watched, as one grown past half the limit is not kept (`guest.reuse`).
    async fn instantiate(
        &self,
        guest: &Guest,
        deadline: Duration,
        watched: bool,
    ) -> wasmtime::Result<Live> {
        let mut store = self.store(guest, deadline);
        if watched {
            store.limiter(|state| state);
        }
        let entry = match &guest.exports {
            Exports::Current(pre, handle) => {
                let instance = pre.instance_pre().instantiate_async(&mut store).await?;
                let handle = instance
                    .get_func(&mut store, handle)
                    .expect("a component's export is in each of its instances");
                Entry::Current(handle)
            }
            Exports::Legacy(legacy) => Entry::Legacy(legacy.instantiate(&mut store).await?),
        };
        Ok(Live {
            store,
            entry,
            served: 0,
            born: Instant::now(),
        })
    }

    /// Gives `store`'s next call `deadline` and, with `guest.fuel`, a full tank.
    fn arm(&self, store: &mut Store<InstanceState>, deadline: Duration) {
        store.set_epoch_deadline(deadline.as_nanos().div_ceil(EPOCH_TICK.as_nanos()) as u64);
        if let Some(fuel) = self.fuel {
            store
                .set_fuel(fuel)
                .expect("fuel is enabled with guest.fuel");
        }
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
    let oauth = &sandbox.services.oauth;
    let describe = async {
        // Counters are declared before any call can count: none here.
        let mut store = sandbox.store_for(Arc::from(""), Arc::default(), sandbox.deadline);
        match &compiled.exports {
            Exports::Current(pre, handle) => {
                let instance = pre.instance_pre().instantiate_async(&mut store).await?;
                // The check that makes `run`'s unchecked call sound.
                instance.get_typed_func::<HandleParams, (Response,)>(&mut store, handle)?;
                let server = bindings::Guest::new(&mut store, &instance)?;
                let server = server.tokenginx_oauth_server();
                let info = server.call_info(&mut store).await?;
                let routes = server.call_routes(&mut store).await?;
                let counters = server.call_counters(&mut store).await?;
                // The first client refused is the one the error names.
                let mut refused = None;
                for client in oauth.clients_in_order() {
                    let checked = server.call_check_client(&mut store, &client.configured);
                    if let Err(problem) = checked.await? {
                        refused = Some(refused_client(client, &problem.key, &problem.message));
                        break;
                    }
                }
                wasmtime::Result::Ok((info, Ok((routes, counters)), refused))
            }
            Exports::Legacy(legacy) => {
                let described = legacy.describe(&mut store).await?;
                let refused = v0_1::check_clients(&described.grant_types, oauth).err();
                Ok((described.info, legacy.routes(&described.endpoints), refused))
            }
        }
    };
    let (info, declared, refused) = sandbox
        .outcome(tokio::time::timeout(sandbox.deadline, describe).await)
        .with_context(|| format!("guest {} failed to describe itself", path.display()))?;
    let checked = || -> anyhow::Result<(Routes, Counters)> {
        let (routes, counters) = declared?;
        if let Some(refused) = refused {
            return Err(refused);
        }
        let routes = Routes::declared(routes)?;
        let counters = Counters::declared(counters, &sandbox.services.metrics)?;
        Ok((routes, counters))
    };
    let (routes, counters) = checked().with_context(|| format!("guest {}", path.display()))?;
    let name = imports::sanitize(&info.name);
    let version = imports::sanitize(&info.version);
    if !(1..=64).contains(&name.len()) || !(1..=64).contains(&version.len()) {
        anyhow::bail!(
            "guest {} names itself {name:?} version {version:?}: each must be 1 to 64 bytes",
            path.display()
        );
    }
    let label = Arc::from(format!("{name}@{version}"));
    let limited = oauth
        .clients_in_order()
        .into_iter()
        .find(|c| c.rate_limit.is_some());
    if let (false, Some(client)) = (compiled.charges_rate_limits, limited) {
        tracing::warn!(
            guest = %label,
            "the guest does not import tokenginx:oauth/rate-limit, so no client's budget is \
             charged: oauth.rate_limit (client {:?} and any other) is not enforced while it \
             serves",
            client.record.client_id
        );
    }
    if let (false, Some(_)) = (compiled.signs, oauth.longest_signed) {
        tracing::warn!(
            guest = %label,
            "the guest does not import tokenginx:oauth/keys, so it signs nothing: a client \
             with openid in its scopes gets no ID token, and one with the JWT strategy gets \
             opaque access tokens, while it serves"
        );
    }
    tracing::info!(
        guest = %label,
        sha256 = %compiled.sha256,
        source = compiled.source,
        load_ms = started.elapsed().as_secs_f64() * 1e3,
        "guest loaded"
    );
    Ok(Arc::new(Guest {
        exports: compiled.exports,
        name,
        version,
        sha256: compiled.sha256,
        label,
        routes,
        counters: Arc::new(counters),
        consecutive_failures: AtomicU32::new(0),
        idle: Mutex::new(Vec::new()),
        retired: AtomicBool::new(false),
    }))
}

/// The error of a guest that refuses a configured client: the client, the key at fault
/// and the guest's reason.
fn refused_client(client: &crate::config::Client, key: &str, message: &str) -> anyhow::Error {
    anyhow::anyhow!(
        "it refuses client {:?}: oauth.clients[{}].{}: {}",
        client.record.client_id,
        client.index,
        imports::sanitize(key),
        imports::sanitize(message)
    )
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
