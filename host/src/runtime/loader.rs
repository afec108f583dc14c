//! From a file to a linked guest: the engine, the AOT cache, the contract check, linking.
//!
//! A guest is a component (`.wasm`), compiled by Cranelift, or a component precompiled by
//! `tokenginx-host compile-guest` (`.cwasm`). Precompiled code is native code: it is only
//! deserialised from files the host trusts, which are the `guest.path` the operator
//! configured and the host's own cache, and only when no other user can have written them.

use super::imports::InstanceState;
use super::{v0_1, Exports};
use crate::config::GuestConfig;
use crate::contract as bindings;
use anyhow::{anyhow, bail, Context as _};
use sha2::{Digest, Sha256};
use std::hash::{Hash, Hasher};
use std::io::Write as _;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

/// The version of `wit/oauth.wit` this host implements.
pub const CONTRACT_VERSION: &str = "0.2.4";
const PACKAGE: &str = "tokenginx:oauth";
/// The interfaces a guest may import from the host.
const HOST_INTERFACES: [&str; 10] = [
    "store",
    "rate-limit",
    "clock",
    "random",
    "log",
    "settings",
    "caller",
    "seal",
    "keys",
    "metrics",
];

/// Bytes of each memory and table slot reset in place (only the dirtied pages) rather than
/// returned to the kernel.
const KEEP_RESIDENT: usize = 16 << 20;
const DECOMMIT_BATCH: usize = 16;
/// Core instances one guest instance may be made of.
const MAX_CORE_INSTANCES: u32 = 16;

/// One engine for the process: async (store imports await), epoch deadlines, fuel when
/// configured, and a pool sized for `max_instances` guests of at most `memory_limit` each.
/// `compile-guest` builds the same engine, so its output fits `serve`.
pub fn engine(config: &GuestConfig) -> anyhow::Result<Engine> {
    // One more than the calls allowed at once: a reload's `info` call runs beside them.
    let instances = config.max_instances + 1;
    let mut pool = PoolingAllocationConfig::default();
    pool.total_component_instances(instances)
        .total_stacks(instances)
        // A Rust `wasm32-wasip2` component is 3 core instances (its code, the lowering shims), a
        // componentize-py one 14; each has one linear memory and a couple of tables. A
        // guest with more core instances than this is refused at load.
        .max_core_instances_per_component(MAX_CORE_INSTANCES)
        .total_core_instances(instances * MAX_CORE_INSTANCES)
        .max_memories_per_component(2)
        .total_memories(instances * 2)
        .max_tables_per_component(4)
        .total_tables(instances * 4)
        .max_memory_size(config.memory_limit as usize);
    // Resetting a slot for the next instance: where the kernel can say which pages the last
    // instance dirtied (PAGEMAP_SCAN, Linux 6.7+), memset those instead of madvise, which
    // costs a TLB shootdown on every core and page faults on the next use; the profile of
    // an introspection load put a third of the host's time there. Without it, a memset
    // would cover the whole kept region every time, so madvise stays.
    if PoolingAllocationConfig::is_pagemap_scan_available() {
        let keep = (config.memory_limit as usize).min(KEEP_RESIDENT);
        pool.pagemap_scan(Enabled::Yes)
            .linear_memory_keep_resident(keep)
            .table_keep_resident(keep);
    } else {
        // What needs madvise is done in batches: one TLB shootdown for many slots. Not with
        // PAGEMAP_SCAN: there the queue mostly holds empty regions (what a guest grows
        // past the kept size is the exception), and batching them kept slots from the free
        // list behind a shared lock and a `process_madvise` every 16 instances: instance
        // teardown took 12.2% of the host's time under load, 8.9% without.
        pool.decommit_batch_size(DECOMMIT_BATCH);
    }
    let mut wasm = Config::new();
    wasm.epoch_interruption(true)
        .consume_fuel(config.fuel.is_some())
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    Engine::new(&wasm).map_err(|e| anyhow!("cannot create the Wasm engine: {e:?}"))
}

/// A guest's code, compiled and checked against the contract, not yet asked who it is.
pub struct Compiled {
    pub(super) exports: Exports,
    /// It imports `rate-limit`: without it, no client's budget is charged.
    pub charges_rate_limits: bool,
    /// It imports `keys`: without it, it signs no token (no ID token, no JWT access token).
    pub signs: bool,
    /// SHA-256 of the file's bytes, hex.
    pub sha256: String,
    /// How the code was obtained, for the log: compiled, from the cache, precompiled.
    pub source: &'static str,
}

/// Reads, compiles (or deserialises) and links the guest at `path`. CPU-heavy: call it on
/// a blocking thread.
pub fn load(
    engine: &Engine,
    linker: &Linker<InstanceState>,
    path: &Path,
    cache_dir: Option<&Path>,
) -> anyhow::Result<Compiled> {
    let (bytes, meta) =
        read_once(path).with_context(|| format!("cannot load guest {}", path.display()))?;
    let sha256 = hex::encode(Sha256::digest(&bytes));
    let (component, source) = if Engine::detect_precompiled(&bytes).is_some() {
        check_trusted(path, &meta)?;
        // SAFETY: the operator named this file in guest.path; these bytes were read from
        // the handle whose owner and mode were checked, in a directory no other user can
        // write to; and wasmtime checks they were built for this engine.
        let component = unsafe { Component::deserialize(engine, &bytes) }.map_err(|e| {
            anyhow!(
                "cannot load precompiled guest {}: {e}; precompile it again with \
                 `tokenginx-host compile-guest` for this host and config",
                path.display()
            )
        })?;
        (component, "precompiled")
    } else {
        match cache_dir {
            Some(dir) => cached(engine, &bytes, &sha256, dir)
                .with_context(|| format!("guest {}", path.display()))?,
            None => (compile(engine, &bytes, path)?, "compiled"),
        }
    };
    let line =
        check_contract(engine, &component).with_context(|| format!("guest {}", path.display()))?;
    let pre = linker.instantiate_pre(&component).map_err(|e| {
        anyhow!(
            "guest {} does not fit this host's {PACKAGE}@{} contract: {e:#}",
            path.display(),
            line.version()
        )
    })?;
    let exports = match line {
        Line::Current => {
            let expected = |e: &dyn std::fmt::Display| {
                anyhow!(
                    "guest {} does not export {PACKAGE}/server as this host expects: {e:#}",
                    path.display()
                )
            };
            let handle = handle_index(engine, &component).ok_or_else(|| expected(&"no handle"))?;
            let pre = bindings::GuestPre::new(pre).map_err(|e| expected(&e))?;
            Exports::Current(pre, handle)
        }
        Line::Legacy => Exports::Legacy(
            v0_1::Guest::new(pre, |i| exports_interface(engine, &component, i))
                .with_context(|| format!("guest {}", path.display()))?,
        ),
    };
    let imports = |wanted: &str| {
        component
            .component_type()
            .imports(engine)
            .any(|(name, _)| ours(name).is_some_and(|(interface, _)| interface == wanted))
    };
    Ok(Compiled {
        exports,
        charges_rate_limits: imports("rate-limit"),
        signs: imports("keys"),
        sha256,
        source,
    })
}
/// The linker every guest is checked and instantiated against: the host's imports and an
/// empty WASI.
pub fn linker(engine: &Engine) -> anyhow::Result<Linker<InstanceState>> {
    let mut linker = Linker::<InstanceState>::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)
        .map_err(|e| anyhow!("cannot link WASI: {e:?}"))?;
    bindings::Guest::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s)
        .map_err(|e| anyhow!("cannot link the host imports: {e:?}"))?;
    v0_1::add_to_linker(&mut linker).map_err(|e| anyhow!("cannot link the 0.1 imports: {e:?}"))?;
    Ok(linker)
}

fn compile(engine: &Engine, bytes: &[u8], path: &Path) -> anyhow::Result<Component> {
    Component::new(engine, bytes).map_err(|e| {
        anyhow!(
            "guest {} is not a valid WebAssembly component: {e:#}",
            path.display()
        )
    })
}

/// The `tokenginx-host compile-guest` command: `input` precompiled for the engine that
/// `config` describes, written to `output`.
pub fn precompile(config: &GuestConfig, input: &Path, output: &Path) -> anyhow::Result<()> {
    let engine = engine(config)?;
    let bytes = std::fs::read(input).with_context(|| format!("cannot read {}", input.display()))?;
    let component = compile(&engine, &bytes, input)?;
    let line = check_contract(&engine, &component)
        .with_context(|| format!("guest {}", input.display()))?;
    linker(&engine)?.instantiate_pre(&component).map_err(|e| {
        anyhow!(
            "guest {} does not fit this host's {PACKAGE}@{} contract: {e:#}",
            input.display(),
            line.version()
        )
    })?;
    let compiled = engine
        .precompile_component(&bytes)
        .map_err(|e| anyhow!("cannot precompile {}: {e:#}", input.display()))?;
    write_file(output, &compiled)
}

/// The cache file for `sha256` compiled by `engine`: a different wasmtime, CPU or engine
/// setting gives a different name, so a stale entry is never even opened.
fn cache_file(engine: &Engine, sha256: &str, dir: &Path) -> PathBuf {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    engine.precompile_compatibility_hash().hash(&mut hasher);
    dir.join(format!("{:016x}-{sha256}.cwasm", hasher.finish()))
}

/// Loads the guest from the cache, or compiles it and fills the cache.
fn cached(
    engine: &Engine,
    bytes: &[u8],
    sha256: &str,
    dir: &Path,
) -> anyhow::Result<(Component, &'static str)> {
    let file = cache_file(engine, sha256, dir);
    if file.exists() {
        let trusted = read_once(&file).and_then(|(bytes, meta)| {
            check_trusted(&file, &meta)?;
            check_trusted_dir(dir)?;
            Ok(bytes)
        });
        match trusted {
            // SAFETY: the host wrote this file into a directory only it (or root) can
            // write, under a name that encodes the engine and the source's hash; the bytes
            // come from the handle whose owner and mode were checked.
            Ok(bytes) => match unsafe { Component::deserialize(engine, &bytes) } {
                Ok(component) => return Ok((component, "cache")),
                Err(e) => tracing::warn!("guest cache {}: {e}; compiling again", file.display()),
            },
            Err(e) => tracing::warn!("guest cache not used: {e:#}"),
        }
    }
    let compiled = engine
        .precompile_component(bytes)
        .map_err(|e| anyhow!("not a valid WebAssembly component: {e:#}"))?;
    // SAFETY: these bytes were produced by this engine a moment ago.
    let component = unsafe { Component::deserialize(engine, &compiled) }
        .map_err(|e| anyhow!("cannot load the code just compiled: {e:#}"))?;
    let stored = std::fs::create_dir_all(dir)
        .map_err(anyhow::Error::from)
        .and_then(|()| check_trusted_dir(dir))
        .and_then(|()| write_file(&file, &compiled));
    match stored {
        Ok(()) => Ok((component, "compiled, cached")),
        Err(e) => {
            tracing::warn!("guest.cache_dir {}: not cached: {e:#}", dir.display());
            Ok((component, "compiled"))
        }
    }
}

/// Reads `path` through one handle, not following a symlink at its end, and returns the
/// bytes with that handle's metadata: what is checked is what was read.
fn read_once(path: &Path) -> anyhow::Result<(Vec<u8>, std::fs::Metadata)> {
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    let meta = file.metadata()?;
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    std::io::Read::read_to_end(&mut file, &mut bytes)?;
    Ok((bytes, meta))
}

/// Native code is loaded only from a file owned by this user or root and writable by no
/// one else, in a directory (and below directories) where no one else can replace it.
fn check_trusted(path: &Path, meta: &std::fs::Metadata) -> anyhow::Result<()> {
    owned_and_private(path, meta, false)?;
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    check_trusted_dir(dir)
}

/// `dir` and every directory above it: owned by this user or root, and writable by no
/// one else unless sticky (like /tmp, where others cannot rename what is ours).
fn check_trusted_dir(dir: &Path) -> anyhow::Result<()> {
    let dir = dir
        .canonicalize()
        .with_context(|| format!("cannot resolve {}", dir.display()))?;
    for ancestor in dir.ancestors() {
        let meta = std::fs::metadata(ancestor)
            .with_context(|| format!("cannot inspect {}", ancestor.display()))?;
        owned_and_private(ancestor, &meta, true)?;
    }
    Ok(())
}

fn owned_and_private(path: &Path, meta: &std::fs::Metadata, sticky_ok: bool) -> anyhow::Result<()> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    if meta.uid() != me && meta.uid() != 0 {
        bail!(
            "{} belongs to uid {}, not to this user ({me}) or root",
            path.display(),
            meta.uid()
        );
    }
    let sticky = meta.mode() & 0o1000 != 0;
    if meta.mode() & 0o022 != 0 && !(sticky_ok && sticky) {
        bail!(
            "{} is writable by group or others (mode {:o})",
            path.display(),
            meta.mode() & 0o7777
        );
    }
    Ok(())
}

/// Writes `bytes` to `path` atomically: a new temporary file (a random name, never an
/// existing file or a symlink), then a rename. Readable by all (the image's service user
/// must read a `.cwasm` root built), writable by the owner only.
fn write_file(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let mut suffix = [0u8; 8];
    getrandom::fill(&mut suffix).map_err(|e| anyhow!("the OS random source failed: {e}"))?;
    let tmp = path.with_extension(format!("tmp-{}", hex::encode(suffix)));
    let write = || -> std::io::Result<()> {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .custom_flags(libc::O_NOFOLLOW)
            .mode(0o644)
            .open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        anyhow!("cannot write {}: {e}", path.display())
    })
}

/// The line of the contract a guest was built against.
#[derive(Clone, Copy)]
enum Line {
    /// 0.2.x: it exports `server`.
    Current,
    /// 0.1.x: it exports `handler`, served through the adapter.
    Legacy,
}

impl Line {
    fn version(self) -> &'static str {
        match self {
            Line::Current => CONTRACT_VERSION,
            Line::Legacy => v0_1::VERSION,
        }
    }

    fn interfaces(self) -> &'static [&'static str] {
        match self {
            Line::Current => &HOST_INTERFACES,
            Line::Legacy => &v0_1::INTERFACES,
        }
    }
}

/// Checks the guest's imports and exports against the contract by name and version, so a
/// mismatch reads as what is wrong rather than as a type error deep in the linker: which
/// line it was built against (by its export: `server` or, from 0.1, `handler`), and that
/// every interface it names is of that line and no newer than the host's.
fn check_contract(engine: &Engine, component: &Component) -> anyhow::Result<Line> {
    let ty = component.component_type();
    let exports: Vec<&str> = ty.exports(engine).map(|(name, _)| name).collect();
    let exported = |wanted: &str| {
        exports
            .iter()
            .find_map(|name| ours(name).filter(|(interface, _)| *interface == wanted))
    };
    let line = match (exported("server"), exported("handler")) {
        (Some(_), _) => Line::Current,
        (None, Some(_)) => Line::Legacy,
        (None, None) => bail!(
            "it does not export {PACKAGE}/server@{CONTRACT_VERSION} (its exports: {})",
            if exports.is_empty() {
                "none".to_owned()
            } else {
                exports.join(", ")
            }
        ),
    };
    let host = semver::Version::parse(line.version()).expect("a valid version");
    for (name, _) in ty.imports(engine) {
        if name.starts_with("wasi:") {
            if !linked_wasi(name) {
                bail!(
                    "it imports {name}, which this host does not link; a guest may import \
                     wasi:{{{}}}@0.2.x, which give it nothing outside the instance (the \
                     guide's WASI section; a JavaScript guest needs componentize-js's \
                     --disable http fetch-event)",
                    LINKED_WASI.join(",")
                );
            }
            continue;
        }
        match ours(name) {
            Some((interface, version)) if line.interfaces().contains(&interface) => {
                compatible(&host, version).with_context(|| format!("it imports {name}"))?
            }
            _ => bail!(
                "it imports {name}, which this host does not provide; a guest may import \
                 {PACKAGE}/{{{}}}@{host} and wasi:{{{}}}@0.2.x",
                line.interfaces().join(","),
                LINKED_WASI.join(",")
            ),
        }
    }
    for name in &exports {
        if let Some((_, version)) = ours(name) {
            compatible(&host, version).with_context(|| format!("it exports {name}"))?;
        }
    }
    Ok(line)
}

/// Where `component`'s `server.handle` is, by index, so that a call need not look it up by
/// name.
fn handle_index(
    engine: &Engine,
    component: &Component,
) -> Option<wasmtime::component::ComponentExportIndex> {
    let ty = component.component_type();
    let (server, _) = ty
        .exports(engine)
        .find(|(name, _)| ours(name).is_some_and(|(interface, _)| interface == "server"))?;
    let server = component.get_export_index(None, server)?;
    component.get_export_index(Some(&server), "handle")
}

/// Whether `component` exports our interface `interface` (an optional one).
fn exports_interface(engine: &Engine, component: &Component, interface: &str) -> bool {
    component
        .component_type()
        .exports(engine)
        .any(|(name, _)| ours(name).is_some_and(|(i, _)| i == interface))
}

/// The WASI 0.2 packages `wasmtime_wasi::p2::add_to_linker_async` links (see
/// `InstanceState`'s `WasiView` for what each gives a guest: nothing outside the instance).
const LINKED_WASI: [&str; 6] = ["cli", "clocks", "filesystem", "io", "random", "sockets"];

/// Whether `name`, a `wasi:` import, is one of [`LINKED_WASI`] at a 0.2 version: the linker
/// matches any 0.2.x by semver.
fn linked_wasi(name: &str) -> bool {
    let Some((package, version)) = name
        .strip_prefix("wasi:")
        .and_then(|rest| rest.split_once('/'))
        .and_then(|(package, rest)| Some((package, rest.split_once('@')?.1)))
    else {
        return false;
    };
    LINKED_WASI.contains(&package) && version.starts_with("0.2.")
}

/// `tokenginx:oauth/store@0.1.0` as `("store", Some("0.1.0"))`.
fn ours(name: &str) -> Option<(&str, Option<&str>)> {
    let rest = name.strip_prefix(PACKAGE)?.strip_prefix('/')?;
    Some(match rest.split_once('@') {
        Some((interface, version)) => (interface, Some(version)),
        None => (rest, None),
    })
}

/// Semver compatibility as the component model reads it: the same major version, or for
/// 0.x the same minor; and no newer than the host, which may lack what a newer one added.
fn compatible(host: &semver::Version, guest: Option<&str>) -> anyhow::Result<()> {
    let Some(guest) = guest else {
        bail!("without a version; this host implements {PACKAGE}@{host}")
    };
    let version = semver::Version::parse(guest)
        .map_err(|e| anyhow!("its version {guest:?} is not semver: {e}"))?;
    let same_line = if host.major == 0 {
        version.major == 0 && version.minor == host.minor
    } else {
        version.major == host.major
    };
    if !same_line || version > *host {
        bail!(
            "version {version} is not compatible with this host's {PACKAGE}@{host} \
             (a guest built against {} works)",
            if host.major == 0 {
                format!("0.{}.x up to {host}", host.minor)
            } else {
                format!("{}.x up to {host}", host.major)
            }
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_contract_version_is_the_wit_package_version() {
        let wit = include_str!("../../../wit/oauth.wit");
        assert!(
            wit.contains(&format!("package {PACKAGE}@{CONTRACT_VERSION};")),
            "wit/oauth.wit and CONTRACT_VERSION disagree"
        );
    }

    #[test]
    fn versions_on_the_same_line_and_not_newer_are_compatible() {
        let host = semver::Version::parse("0.3.2").unwrap();
        assert!(compatible(&host, Some("0.3.0")).is_ok());
        assert!(compatible(&host, Some("0.3.2")).is_ok());
        let newer = compatible(&host, Some("0.3.3")).unwrap_err().to_string();
        assert!(newer.contains("0.3.x up to 0.3.2"), "{newer}");
        assert!(compatible(&host, Some("0.2.9")).is_err());
        assert!(compatible(&host, Some("1.3.0")).is_err());
        assert!(compatible(&host, None).is_err());
        assert!(compatible(&host, Some("three")).is_err());
        let one = semver::Version::parse("1.4.0").unwrap();
        assert!(compatible(&one, Some("1.0.7")).is_ok());
        assert!(compatible(&one, Some("2.0.0")).is_err());
    }

    #[test]
    fn interface_names_split_into_interface_and_version() {
        assert_eq!(
            ours("tokenginx:oauth/store@0.1.0"),
            Some(("store", Some("0.1.0")))
        );
        assert_eq!(ours("tokenginx:oauth/handler"), Some(("handler", None)));
        assert_eq!(ours("wasi:io/streams@0.2.0"), None);
        assert_eq!(ours("tokenginx:oauthx/store@0.1.0"), None);
    }

    #[test]
    fn only_the_wasi_0_2_packages_the_linker_has_are_accepted() {
        assert!(linked_wasi("wasi:io/streams@0.2.0"));
        assert!(linked_wasi("wasi:cli/environment@0.2.6"));
        assert!(linked_wasi("wasi:sockets/tcp@0.2.12"));
        assert!(!linked_wasi("wasi:http/types@0.2.0"));
        assert!(!linked_wasi("wasi:io/streams@0.3.0"));
        assert!(!linked_wasi("wasi:keyvalue/store@0.2.0"));
        assert!(!linked_wasi("wasi:io/streams"));
    }
}
