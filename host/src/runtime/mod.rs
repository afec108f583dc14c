//! The Wasm runtime: one `Engine`, the pooling allocator, the guest component linked once
//! (`GuestPre`), and a fresh instance for every call.
//!
//! A fresh instance per call is the isolation guarantee: nothing one request leaves in guest
//! memory can be seen by the next, and a trapped instance is simply dropped. Each call runs
//! under the configured memory cap and a wall-clock deadline: epoch interruption stops a
//! guest that computes too long, and a timer around the call stops one that waits too long
//! on an import.

mod bindings;
mod imports;

pub use bindings::{Request, Response};
pub use imports::Services;

use crate::config::GuestConfig;
use anyhow::Context as _;
use bindings::{GuestInfo, GuestPre};
use imports::InstanceState;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use std::time::Instant;
use tokio::sync::Semaphore;
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store, Trap};

/// How often the epoch advances: the granularity of guest deadlines.
const EPOCH_TICK: Duration = Duration::from_millis(5);

/// The exports a request can call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Export {
    Token,
    Introspect,
    Revoke,
    Metadata,
}

impl Export {
    pub fn name(self) -> &'static str {
        match self {
            Export::Token => "token",
            Export::Introspect => "introspect",
            Export::Revoke => "revoke",
            Export::Metadata => "metadata",
        }
    }
}

/// Why a guest call produced no response.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The guest trapped (a panic, an out-of-bounds access, memory exhausted, ...).
    #[error("guest trapped: {0}")]
    Trap(String),
    /// The guest ran past its deadline.
    #[error("guest exceeded its deadline of {0:?}")]
    Deadline(Duration),
    /// No instance became free within the deadline.
    #[error("no guest instance free within {0:?}")]
    Busy(Duration),
}

impl CallError {
    /// The metrics label of this failure.
    pub fn reason(&self) -> &'static str {
        match self {
            CallError::Trap(_) => "trap",
            CallError::Deadline(_) => "deadline",
            CallError::Busy(_) => "busy",
        }
    }
}

/// A loaded guest, ready to serve calls.
pub struct Runtime {
    engine: Engine,
    pre: GuestPre<InstanceState>,
    services: Arc<Services>,
    /// Bounds live instances to what the pool was sized for; callers queue here.
    instances: Arc<Semaphore>,
    deadline: Duration,
    /// `name@version` as the guest reports it.
    pub guest: Arc<str>,
}

impl Runtime {
    /// Compiles and links the guest at `config.path`, and asks it who it is.
    pub async fn load(config: &GuestConfig, services: Arc<Services>) -> anyhow::Result<Runtime> {
        let engine = engine(config)?;
        let pre = link(&engine, &config.path)?;
        spawn_epoch_ticker(engine.clone());
        let mut runtime = Runtime {
            engine,
            pre,
            services,
            instances: Arc::new(Semaphore::new(config.max_instances as usize)),
            deadline: config.deadline,
            guest: Arc::from(config.path.display().to_string()),
        };
        let info = runtime.describe().await.with_context(|| {
            format!("guest {} failed to describe itself", config.path.display())
        })?;
        runtime.guest = Arc::from(format!("{}@{}", info.name, info.version));
        Ok(runtime)
    }

    /// Calls `export` with `request` (ignored by `metadata`) in a fresh instance, after
    /// waiting for a free one; the deadline covers the wait and the call.
    pub async fn call(&self, export: Export, request: Request) -> Result<Response, CallError> {
        let start = Instant::now();
        let _permit = tokio::time::timeout(self.deadline, self.instances.acquire())
            .await
            .map_err(|_| CallError::Busy(self.deadline))?
            .expect("the instance semaphore is never closed");
        let remaining = self.deadline.saturating_sub(start.elapsed());
        let run = async {
            let (guest, mut store) = self.instantiate(remaining).await?;
            let handler = guest.tokenginx_oauth_handler();
            match export {
                Export::Token => handler.call_token(&mut store, &request).await,
                Export::Introspect => handler.call_introspect(&mut store, &request).await,
                Export::Revoke => handler.call_revoke(&mut store, &request).await,
                Export::Metadata => handler.call_metadata(&mut store).await,
            }
        };
        self.outcome(tokio::time::timeout(remaining, run).await)
    }

    /// The guest's `info` export, called once at load.
    async fn describe(&self) -> Result<GuestInfo, CallError> {
        let run = async {
            let (guest, mut store) = self.instantiate(self.deadline).await?;
            guest.tokenginx_oauth_handler().call_info(&mut store).await
        };
        self.outcome(tokio::time::timeout(self.deadline, run).await)
    }

    /// A new instance whose execution stops (traps) after `deadline`.
    async fn instantiate(
        &self,
        deadline: Duration,
    ) -> wasmtime::Result<(bindings::Guest, Store<InstanceState>)> {
        let mut store = Store::new(
            &self.engine,
            InstanceState::new(self.services.clone(), self.guest.clone(), deadline),
        );
        store.set_epoch_deadline(deadline.as_nanos().div_ceil(EPOCH_TICK.as_nanos()) as u64);
        store.epoch_deadline_trap();
        let guest = self.pre.instantiate_async(&mut store).await?;
        Ok((guest, store))
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
                _ => CallError::Trap(format!("{error:?}")),
            }),
            // The timer fired while the guest waited on an import.
            Err(_elapsed) => Err(CallError::Deadline(self.deadline)),
        }
    }

    pub fn services(&self) -> &Services {
        &self.services
    }
}

/// One engine for the process: async (store imports await), epoch deadlines, and a pool
/// sized for `max_instances` guests of at most `memory_limit` each.
fn engine(config: &GuestConfig) -> anyhow::Result<Engine> {
    let instances = config.max_instances;
    let mut pool = PoolingAllocationConfig::default();
    pool.total_component_instances(instances)
        // A Rust wasip2 component is a few core modules (its code, the lowering shims)
        // with one linear memory and a couple of tables.
        .total_core_instances(instances * 8)
        .total_memories(instances * 2)
        .total_tables(instances * 4)
        .max_memory_size(config.memory_limit as usize);
    let mut wasm = Config::new();
    wasm.epoch_interruption(true)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    Engine::new(&wasm).map_err(|e| anyhow::anyhow!("cannot create the Wasm engine: {e:?}"))
}

fn link(engine: &Engine, path: &Path) -> anyhow::Result<GuestPre<InstanceState>> {
    let component = Component::from_file(engine, path)
        .map_err(|e| anyhow::anyhow!("cannot load guest {}: {e:?}", path.display()))?;
    let mut linker = Linker::<InstanceState>::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)
        .map_err(|e| anyhow::anyhow!("cannot link WASI: {e:?}"))?;
    bindings::Guest::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s)
        .map_err(|e| anyhow::anyhow!("cannot link the host imports: {e:?}"))?;
    let pre = linker
        .instantiate_pre(&component)
        .map_err(|e| anyhow::anyhow!("guest {} does not fit this host: {e:?}", path.display()))?;
    GuestPre::new(pre).map_err(|e| {
        anyhow::anyhow!(
            "guest {} does not export tokenginx:oauth/handler@0.1.0 as this host expects: {e:?}",
            path.display()
        )
    })
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
