//! Log output per the `log` section: level, JSON or text, to stdout, stderr or a file.

use crate::config::{LogConfig, LogFormat};
use std::fs::OpenOptions;
use std::sync::Mutex;
use tracing_subscriber::fmt::writer::BoxMakeWriter;
use tracing_subscriber::EnvFilter;

/// Installs the global subscriber. `log.level` applies to the host's own lines and the
/// guest's (target `guest`); the libraries beneath (wasmtime and Cranelift, hyper, the Redis
/// client) log warnings and errors only, so `debug` shows the service's debug lines rather
/// than a compiler's. `RUST_LOG`, when set, overrides all of it.
pub fn init(config: &LogConfig) -> anyhow::Result<()> {
    let writer = match config.output.as_str() {
        "stdout" => BoxMakeWriter::new(std::io::stdout),
        "stderr" => BoxMakeWriter::new(std::io::stderr),
        path => {
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| anyhow::anyhow!("log.output: cannot open {path}: {e}"))?;
            BoxMakeWriter::new(Mutex::new(file))
        }
    };
    let level = &config.level;
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(format!("warn,tokenginx_host={level},guest={level}")));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_target(false);
    match config.format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_span_list(false)
            .init(),
        LogFormat::Text => builder.with_ansi(false).init(),
    }
    Ok(())
}

/// Text lines on stderr at `level`: for the commands a person runs at a terminal
/// (`bench-guest`, `test-guest`), whose own report goes to stdout.
pub fn init_stderr(level: &str) -> anyhow::Result<()> {
    init(&LogConfig {
        level: level.into(),
        format: LogFormat::Text,
        output: "stderr".into(),
    })
}
