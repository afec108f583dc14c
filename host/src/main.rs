//! `tokenginx-host`: the native host of the TokenginX OAuth 2.0 token service.
//!
//! ```text
//! tokenginx-host serve --config FILE         run the service
//! tokenginx-host check-config --config FILE  check a config file and exit
//! tokenginx-host compile-guest IN.wasm -o OUT.cwasm [--config FILE]
//! tokenginx-host bench-guest GUEST [--config FILE] [--calls N] [--phases LIST]
//! tokenginx-host test-guest GUEST [--store STORE] [--only TEXT] [--judge all|rfc]
//! ```

/// jemalloc rather than the C library's malloc. A request is served across tokio's worker
/// threads, and its instance's store freed on another thread than allocated it: glibc then
/// waits on the other thread's arena lock, and musl's allocator (the container image) has
/// one lock for all. Measured on 2 cores (introspection, one Redis, 64 connections):
/// 20-22k req/s with glibc malloc, 26-27k with jemalloc, peak RSS 44 against 51 MiB.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

mod config;
mod contract;
mod http;
mod keys;
mod logging;
mod metrics;
mod runtime;
mod services;
mod store;

use anyhow::Context as _;
use config::Loaded;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use tokenginx_kit as testkit;

const USAGE: &str = "usage:
  tokenginx-host serve --config FILE         run the service; SIGHUP reloads guest.path
  tokenginx-host check-config --config FILE  check a config file and exit
  tokenginx-host compile-guest IN.wasm -o OUT.cwasm [--config FILE]
                                             precompile a guest for this host (and for the
                                             guest limits in FILE's guest section, if given)
  tokenginx-host bench-guest GUEST [--config FILE] [--calls N] [--phases LIST]
                                             time calls into a guest (embedded store; the
                                             limits of FILE's guest section, if given);
                                             N calls a phase (20000); LIST of token,
                                             introspect (each call a fresh instance, as
                                             `serve` runs) and reused (one instance, replaced
                                             at half the memory limit); all by default
  tokenginx-host test-guest GUEST [--store STORE] [--only TEXT] [--judge all|rfc]
                                             run the endpoint suite of docs/behaviour.md on
                                             a guest, in this process on a loopback port;
                                             STORE: memory (the default),
                                             redis://[user:password@]host:port or
                                             redis-cluster://host:port,host:port,...;
                                             --only: the cases whose name or endpoint has TEXT;
                                             --judge rfc: only the RFCs' MUSTs and SHOULDs
                                             fail; this service's profile cases that fail
                                             are printed as differences;
                                             on Redis it writes tokens for its test clients:
                                             use a scratch Redis
  tokenginx-host --version";

enum Command {
    Serve(PathBuf),
    CheckConfig(PathBuf),
    CompileGuest {
        input: PathBuf,
        output: PathBuf,
        config: Option<PathBuf>,
    },
    BenchGuest {
        guest: PathBuf,
        config: Option<PathBuf>,
        calls: usize,
        phases: Vec<runtime::Phase>,
    },
    TestGuest {
        guest: PathBuf,
        store: testkit::Store,
        only: Option<String>,
        judge: testkit::Judge,
    },
}

fn parse_args(args: &[String]) -> Result<Command, String> {
    let config = |rest: &[String]| match rest {
        [flag, path] if flag == "--config" || flag == "-c" => Ok(PathBuf::from(path)),
        _ => Err("expected --config FILE".to_owned()),
    };
    match args {
        [cmd, rest @ ..] if cmd == "serve" => config(rest).map(Command::Serve),
        [cmd, rest @ ..] if cmd == "check-config" => config(rest).map(Command::CheckConfig),
        [cmd, input, o, output, rest @ ..] if cmd == "compile-guest" && o == "-o" => {
            Ok(Command::CompileGuest {
                input: input.into(),
                output: output.into(),
                config: match rest {
                    [] => None,
                    rest => Some(config(rest)?),
                },
            })
        }
        [cmd, ..] if cmd == "compile-guest" => Err("expected IN.wasm -o OUT.cwasm".to_owned()),
        [cmd, guest, rest @ ..] if cmd == "bench-guest" => {
            let (mut config, mut calls, mut phases) = (None, 20_000, runtime::Phase::ALL.to_vec());
            for pair in rest.chunks(2) {
                match pair {
                    [flag, path] if flag == "--config" || flag == "-c" => {
                        config = Some(PathBuf::from(path))
                    }
                    [flag, n] if flag == "--calls" => {
                        calls =
                            n.parse().ok().filter(|&n: &usize| n > 0).ok_or_else(|| {
                                format!("--calls {n:?}: expected a positive number")
                            })?
                    }
                    [flag, list] if flag == "--phases" => {
                        phases = list.split(',').map(str::parse).collect::<Result<_, _>>()?
                    }
                    _ => return Err(format!("bench-guest: unexpected {:?}", pair.join(" "))),
                }
            }
            Ok(Command::BenchGuest {
                guest: guest.into(),
                config,
                calls,
                phases,
            })
        }
        [cmd, guest, rest @ ..] if cmd == "test-guest" => {
            let mut command = Command::TestGuest {
                guest: guest.into(),
                store: testkit::Store::Memory,
                only: None,
                judge: testkit::Judge::All,
            };
            let Command::TestGuest {
                store, only, judge, ..
            } = &mut command
            else {
                unreachable!()
            };
            for pair in rest.chunks(2) {
                match pair {
                    [flag, value] if flag == "--store" => *store = value.parse()?,
                    [flag, value] if flag == "--only" => *only = Some(value.clone()),
                    [flag, value] if flag == "--judge" => *judge = value.parse()?,
                    _ => return Err(format!("test-guest: unexpected {:?}", pair.join(" "))),
                }
            }
            Ok(command)
        }
        [] => Err("no command given".to_owned()),
        [cmd, ..] => Err(format!("unknown command {cmd:?}")),
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // `--help` anywhere: `tokenginx-host bench-guest --help` is as good as `--help`.
    if args.first().is_some_and(|a| a == "help") || args.iter().any(|a| a == "--help" || a == "-h")
    {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    if matches!(args.first().map(String::as_str), Some("--version" | "-V")) {
        println!("tokenginx-host {}", env!("CARGO_PKG_VERSION"));
        return ExitCode::SUCCESS;
    }
    let command = match parse_args(&args) {
        Ok(command) => command,
        Err(e) => {
            eprintln!("tokenginx-host: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match command {
        Command::CheckConfig(path) => match config::load(&path) {
            Ok(config) => {
                for warning in &config.warnings {
                    eprintln!("tokenginx-host: warning: {}: {warning}", path.display());
                }
                println!("{}: ok", path.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("tokenginx-host: {e}");
                ExitCode::FAILURE
            }
        },
        Command::CompileGuest {
            input,
            output,
            config,
        } => match compile_guest(&input, &output, config.as_deref()) {
            Ok(()) => {
                println!("{}: ok", output.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("tokenginx-host: {e:#}");
                ExitCode::FAILURE
            }
        },
        Command::BenchGuest {
            guest,
            config,
            calls,
            phases,
        } => {
            let run = async {
                let mut limits = match &config {
                    Some(file) => config::load_guest(file)?,
                    None => config::GuestConfig::with_defaults(&guest),
                };
                limits.path = guest.clone();
                runtime::bench_guest(&limits, &phases, calls).await
            };
            run_tool(run)
        }
        Command::TestGuest {
            guest,
            store,
            only,
            judge,
        } => run_tool(testkit::run(
            &guest,
            &store,
            only.as_deref(),
            judge,
            |text| async move {
                let config = config::parse(Path::new("test-guest"), &text, &|_| None)?;
                let started = start(config).await?;
                let guest = started.app.runtime.active().label.to_string();
                tokio::spawn(started.serving);
                Ok(testkit::Service {
                    addr: started.public,
                    guest,
                })
            },
        )),
        Command::Serve(path) => {
            let config = match config::load(&path) {
                Ok(config) => config,
                Err(e) => {
                    eprintln!("tokenginx-host: {e}");
                    return ExitCode::FAILURE;
                }
            };
            if let Err(e) = logging::init(&config.log) {
                eprintln!("tokenginx-host: {}: {e:#}", path.display());
                return ExitCode::FAILURE;
            }
            for warning in &config.warnings {
                tracing::warn!("{}: {warning}", path.display());
            }
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .expect("building the tokio runtime");
            match runtime.block_on(serve(config)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!("{e:#}");
                    eprintln!("tokenginx-host: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

/// Runs a tool command (`bench-guest`, `test-guest`) that prints its report on stdout:
/// warnings and errors, the guest's (its `log` import, a trap's backtrace) among them, go to
/// stderr, but not each call's info line, which would drown the report. Exit status 0 when
/// `work` answers true.
fn run_tool(work: impl std::future::Future<Output = anyhow::Result<bool>>) -> ExitCode {
    if let Err(e) = logging::init_stderr("warn") {
        eprintln!("tokenginx-host: {e:#}");
        return ExitCode::FAILURE;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("building the tokio runtime");
    match runtime.block_on(work) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("tokenginx-host: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Precompiles `input` for the engine `serve` would build from `config` (its guest section
/// sets fuel and the memory pool, which the compiled code depends on).
fn compile_guest(
    input: &std::path::Path,
    output: &std::path::Path,
    config: Option<&std::path::Path>,
) -> anyhow::Result<()> {
    let guest = match config {
        Some(file) => config::load_guest(file)?,
        None => config::GuestConfig::with_defaults(input),
    };
    runtime::precompile(&guest, input, output)
}

async fn serve(config: Loaded) -> anyhow::Result<()> {
    // Before anything slow: SIGHUP's default action would end the process.
    let hangups = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .context("installing the SIGHUP handler")?;
    let started = start(config).await?;
    spawn_reloader(started.app.clone(), hangups);
    started.serving.await;
    tracing::info!("stopped");
    Ok(())
}

/// A service listening on its ports.
struct Started {
    /// The public listener's address.
    public: std::net::SocketAddr,
    app: Arc<http::App>,
    /// Serves every listener until SIGINT or SIGTERM, then drains.
    serving: futures_util::future::BoxFuture<'static, ()>,
}

/// Connects the store, loads the guest and binds every listener of `config`.
async fn start(config: Loaded) -> anyhow::Result<Started> {
    let metrics = Arc::new(metrics::Metrics::new());
    let store: Arc<dyn store::TokenStore> = match &config.store {
        config::Store::Memory { max_entries } => {
            Arc::new(store::memory::MemoryStore::new(*max_entries))
        }
        config::Store::Redis(redis) => {
            install_tls13_only_provider();
            let gauges = metrics.clone();
            let on_pool_change = Box::new(move |size: usize, idle: usize| {
                gauges.pool_size.set(size as i64);
                gauges.pool_idle.set(idle as i64);
            });
            Arc::new(store::redis::RedisStore::connect(redis, on_pool_change).await?)
        }
    };
    let keys = match &config.keys.secret {
        Some(secret) => {
            let ring = keys::Keyring::load(store.clone(), secret, config.keys.rotate_after)
                .await
                .context("keys.secret")?;
            keys::spawn_refresh(&ring);
            Some(ring)
        }
        None => None,
    };
    let signing = match (&config.keys.secret, config.keys.signing) {
        (Some(secret), Some(schedule)) => {
            let signing = keys::sign::SigningKeys::load(
                store.clone(),
                secret,
                config.oauth.issuer.clone(),
                schedule,
            )
            .await
            .context("keys.secret")?;
            metrics.set_signing_keys(&signing);
            keys::sign::spawn_refresh(&signing, metrics.clone());
            Some(signing)
        }
        _ => None,
    };
    let services = Arc::new(services::Services {
        store,
        oauth: Arc::new(config.oauth),
        metrics,
        keys,
        signing,
    });
    let runtime = runtime::Runtime::load(&config.guest, services.clone()).await?;
    let tls = config
        .server
        .tls
        .as_ref()
        .map(http::tls_config)
        .transpose()?;

    let addr = config.server.addr;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("server.port: cannot listen on {addr}"))?;
    let local = listener.local_addr()?;
    tracing::info!(
        addr = %local,
        tls = tls.is_some(),
        guest = %runtime.active().label,
        "listening"
    );
    let mut listeners = vec![(
        listener,
        match config.metrics.management {
            Some(_) => http::Listener::Public,
            None => http::Listener::Combined,
        },
        tls,
    )];
    if let Some(addr) = config.metrics.management {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("metrics.port: cannot listen on {addr}"))?;
        tracing::info!(addr = %listener.local_addr()?, "metrics and health listening");
        listeners.push((listener, http::Listener::Management, None));
    }
    if let Some(admin) = &config.admin {
        let tls = admin.tls.as_ref().map(http::tls_config).transpose()?;
        let listener = tokio::net::TcpListener::bind(admin.addr)
            .await
            .with_context(|| format!("admin.port: cannot listen on {}", admin.addr))?;
        tracing::info!(
            addr = %listener.local_addr()?,
            mtls = tls.is_some(),
            api_key = admin.api_key_sha256.is_some(),
            "admin API listening"
        );
        listeners.push((listener, http::Listener::Admin, tls));
    }

    let app = Arc::new(http::App {
        runtime,
        services,
        max_body_size: config.server.max_body_size,
        read_timeout: config.server.read_timeout,
        metrics_path: config.metrics.path,
        client_cert_routes: config.server.client_cert_routes.clone(),
        admin_api_key_sha256: config.admin.as_ref().and_then(|a| a.api_key_sha256),
        address_budget: config
            .server
            .address_rate_limit
            .map(http::AddressBudget::new),
        trusted_proxies: config.server.trusted_proxies.clone(),
    });
    spawn_budget_purge(&app);
    let timeouts = http::Timeouts {
        read: config.server.read_timeout,
        write: config.server.write_timeout,
        idle: config.server.idle_timeout,
    };
    let drain = config.server.shutdown_timeout;
    let serving = listeners.into_iter().map(|(listener, kind, tls)| {
        let shutdown = http::signal();
        http::serve(listener, kind, app.clone(), tls, timeouts, shutdown, drain)
    });
    let serving = futures_util::future::join_all(serving);
    Ok(Started {
        public: local,
        app,
        serving: Box::pin(async move {
            serving.await;
        }),
    })
}

/// Forgets the address budgets that have refilled, every 10 s, while the app lives.
fn spawn_budget_purge(app: &Arc<http::App>) {
    let app = Arc::downgrade(app);
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(std::time::Duration::from_secs(10));
        loop {
            ticks.tick().await;
            let Some(app) = app.upgrade() else { return };
            if let Some(budget) = &app.address_budget {
                budget.purge(std::time::Instant::now());
            }
        }
    });
}

/// Reloads the guest on every SIGHUP; a guest that fails to load is refused and the
/// current one keeps serving (the runtime logs either way).
fn spawn_reloader(app: Arc<http::App>, mut hangups: tokio::signal::unix::Signal) {
    tokio::spawn(async move {
        while hangups.recv().await.is_some() {
            tracing::info!("received SIGHUP: reloading the guest");
            let _ = app.runtime.reload().await;
        }
    });
}

/// The process-wide rustls provider, which the Redis client's TLS uses: ring, offering
/// TLS 1.3 cipher suites only, so no connection to the store can fall back to TLS 1.2.
fn install_tls13_only_provider() {
    let mut provider = rustls::crypto::ring::default_provider();
    provider
        .cipher_suites
        .retain(|suite| matches!(suite, rustls::SupportedCipherSuite::Tls13(_)));
    // Fails only if a provider is installed already, which is then the one in use.
    let _ = provider.install_default();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn commands_need_a_config_file() {
        assert!(
            matches!(parse_args(&args("serve --config a.yaml")), Ok(Command::Serve(p)) if p == std::path::Path::new("a.yaml"))
        );
        assert!(matches!(
            parse_args(&args("check-config -c a.yaml")),
            Ok(Command::CheckConfig(_))
        ));
        assert!(parse_args(&args("serve")).is_err());
        assert!(parse_args(&args("frobnicate --config a.yaml")).is_err());
        assert!(matches!(
            parse_args(&args("compile-guest g.wasm -o g.cwasm")),
            Ok(Command::CompileGuest { config: None, .. })
        ));
        assert!(matches!(
            parse_args(&args("compile-guest g.wasm -o g.cwasm --config a.yaml")),
            Ok(Command::CompileGuest {
                config: Some(_),
                ..
            })
        ));
        assert!(parse_args(&args("compile-guest g.wasm")).is_err());
        assert!(matches!(
            parse_args(&args(
                "test-guest g.wasm --store redis://:pw@127.0.0.1:6379 --only token"
            )),
            Ok(Command::TestGuest {
                store: testkit::Store::Redis(_),
                only: Some(_),
                ..
            })
        ));
        let refused = parse_args(&args("test-guest g.wasm --store mysql://x")).err();
        assert!(refused.is_some_and(|e| e.contains("expected memory, redis://")));
    }
}
