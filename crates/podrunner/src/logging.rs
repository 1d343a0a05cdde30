//! Log setup: readable text on a terminal, JSON on request, and a copy in the state folder
//! for `podrunner logs` when no journal is at hand. Nothing secret is ever logged: the GitHub
//! client logs methods and paths only, and the podman helper never carries secrets in argv.
//!
//! Under systemd (`JOURNAL_STREAM` names our stderr) log records go to journald natively, with
//! their fields as journal fields (`journalctl -u podrunner POOL=ci`). When the journal socket
//! cannot be reached, the text format drops the timestamp and colours, which journald adds
//! itself, and starts every line with its syslog priority (`<3>` error, `<4>` warning, `<6>`
//! info, `<7>` debug; sd-daemon(3)), so `journalctl -p warning` works.

use std::path::Path;
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::{FormatEvent, FormatFields, Writer};
use tracing_subscriber::fmt::FmtContext;
use tracing_subscriber::registry::LookupSpan;
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
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    // Under systemd: journald's native protocol keeps structured fields (POOL=, RUNNER=...);
    // if its socket cannot be reached, priority-prefixed text on stderr still reaches it.
    let under_journal = format == LogFormat::Text && stderr_is_journal();
    let native = under_journal
        .then(|| {
            tracing_journald::layer().ok().map(|l| {
                l.with_field_prefix(None)
                    .with_syslog_identifier("podrunner".into())
            })
        })
        .flatten();
    let (text, json, journal_text) = match format {
        LogFormat::Text if native.is_some() => (None, None, None),
        LogFormat::Text if under_journal => (None, None, Some(journal_layer(std::io::stderr))),
        LogFormat::Text => (
            Some(fmt::layer().with_ansi(ansi).with_writer(std::io::stderr)),
            None,
            None,
        ),
        LogFormat::Json => (
            None,
            Some(fmt::layer().json().with_writer(std::io::stderr)),
            None,
        ),
    };
    tracing_subscriber::registry()
        .with(filter(level))
        .with(text)
        .with(json)
        .with(journal_text)
        .with(native)
        .with(file_layer)
        .try_init()
        .map_err(|e| anyhow::anyhow!("cannot set up logging: {e}"))
}

/// Whether stderr is the journal: `JOURNAL_STREAM` is `DEVICE:INODE` of the stream systemd
/// connected, and must match stderr itself (a child that redirected stderr inherits the
/// variable too).
pub fn stderr_is_journal() -> bool {
    use std::os::fd::AsFd;
    use std::os::unix::fs::MetadataExt;
    let Some(v) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let Ok(fd) = std::io::stderr().as_fd().try_clone_to_owned() else {
        return false;
    };
    match std::fs::File::from(fd).metadata() {
        Ok(m) => journal_stream_matches(&v.to_string_lossy(), m.dev(), m.ino()),
        Err(_) => false,
    }
}

/// Compares `JOURNAL_STREAM`'s `DEVICE:INODE` with a file's.
pub fn journal_stream_matches(var: &str, dev: u64, ino: u64) -> bool {
    let mut it = var.trim().splitn(2, ':');
    let d = it.next().and_then(|d| d.parse::<u64>().ok());
    let i = it.next().and_then(|i| i.parse::<u64>().ok());
    d == Some(dev) && i == Some(ino)
}

/// The sd-daemon(3) priority prefix of a level.
pub fn syslog_priority(level: &Level) -> u8 {
    match *level {
        Level::ERROR => 3,
        Level::WARN => 4,
        Level::INFO => 6,
        _ => 7,
    }
}

/// The journald text format: `<PRIORITY>message key=value`, no time, no colour; each line of
/// a multi-line message gets the prefix, or journald would log the rest at info.
#[derive(Debug, Clone, Copy, Default)]
pub struct JournalFormat;

impl<S, N> FormatEvent<S, N> for JournalFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        let mut text = String::new();
        ctx.format_fields(Writer::new(&mut text), event)?;
        let prio = syslog_priority(event.metadata().level());
        for line in text.lines() {
            writeln!(writer, "<{prio}>{line}")?;
        }
        Ok(())
    }
}

/// A layer writing [`JournalFormat`] lines to `writer`.
pub fn journal_layer<S, W>(writer: W) -> impl tracing_subscriber::Layer<S>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'w> fmt::MakeWriter<'w> + 'static,
{
    fmt::layer()
        .with_ansi(false)
        .event_format(JournalFormat)
        .with_writer(writer)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn journal_lines_carry_priorities() {
        let buf = Buf::default();
        let w = buf.clone();
        let sub = tracing_subscriber::registry()
            .with(EnvFilter::new("trace"))
            .with(journal_layer(move || w.clone()));
        tracing::subscriber::with_default(sub, || {
            tracing::error!("boom");
            tracing::warn!(pool = "ci", "slow");
            tracing::info!("two\nlines");
            tracing::debug!("detail");
        });
        let out = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        assert_eq!(
            out,
            "<3>boom\n<4>slow pool=\"ci\"\n<6>two\n<6>lines\n<7>detail\n"
        );
    }

    #[test]
    fn journal_stream_var() {
        assert!(journal_stream_matches("8:12345", 8, 12345));
        assert!(!journal_stream_matches("8:12345", 8, 1));
        assert!(!journal_stream_matches("garbage", 8, 12345));
        assert!(!journal_stream_matches("", 0, 0));
    }
}
