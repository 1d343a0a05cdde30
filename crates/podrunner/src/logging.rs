//! Log setup: readable text on a terminal, JSON on request, and a copy in the state folder
//! for `podrunner logs` when no journal is at hand. Nothing secret is ever logged: the GitHub
//! client logs methods and paths only, and the podman helper never carries secrets in argv.

use std::path::Path;
use tracing_subscriber::{fmt, prelude::*, EnvFilter};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Default)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// The default filter: our own info lines, others' warnings.
pub const DEFAULT_FILTER: &str = "podrunner=info,warn";

/// A log file larger than this is started afresh when the manager starts.
const MAX_LOG_FILE_BYTES: u64 = 20 * 1024 * 1024;

fn filter(level: Option<&str>) -> EnvFilter {
    match level {
        Some(l) => EnvFilter::new(format!("podrunner={l},warn")),
        None => {
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER))
        }
    }
}

/// Logging for short CLI commands: warnings and errors on stderr.
pub fn init_cli(level: Option<&str>) {
    let _ = tracing_subscriber::registry()
        .with(
            fmt::layer()
                .with_writer(std::io::stderr)
                .with_target(false)
                .without_time(),
        )
        .with(filter(level.or(Some("warn"))))
        .try_init();
}

/// Logging for the manager: stderr in the chosen format, plus `file` if given.
pub fn init_manager(
    format: LogFormat,
    level: Option<&str>,
    file: Option<&Path>,
) -> anyhow::Result<()> {
    let file_layer = match file {
        Some(p) => {
            if let Some(dir) = p.parent() {
                std::fs::create_dir_all(dir)?;
            }
            if std::fs::metadata(p)
                .map(|m| m.len() > MAX_LOG_FILE_BYTES)
                .unwrap_or(false)
            {
                let _ = std::fs::rename(p, p.with_extension("log.1"));
            }
            let f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)?;
            Some(
                fmt::layer()
                    .with_ansi(false)
                    .with_writer(std::sync::Mutex::new(f)),
            )
        }
        None => None,
    };
    let (text, json) = match format {
        LogFormat::Text => (Some(fmt::layer().with_writer(std::io::stderr)), None),
        LogFormat::Json => (None, Some(fmt::layer().json().with_writer(std::io::stderr))),
    };
    tracing_subscriber::registry()
        .with(filter(level))
        .with(text)
        .with(json)
        .with(file_layer)
        .try_init()
        .map_err(|e| anyhow::anyhow!("cannot set up logging: {e}"))
}
