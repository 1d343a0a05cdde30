//! `podrunner start`: starts the manager in the background. With the unit installed it is
//! `systemctl start` (which returns once the manager sent READY=1); otherwise `podrunner run`
//! is started detached, its output going to the state folder, and this waits until its
//! control socket answers.

use super::exit::{Exit, Failed};
use super::Cli;
use crate::cmd;
use crate::config::Config;
use crate::control::{self, Request};
use crate::systemd::service::{self, Service};
use crate::systemd::unit::{self, UNIT_NAME};
use anyhow::Context;
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Give up waiting for the manager to answer after this many seconds
    #[arg(long, default_value_t = DEFAULT_START_WAIT_SECS)]
    pub timeout: u64,
}

/// Before answering, the manager checks podman and adopts existing containers; the first
/// rootless podman call after boot can take a while.
pub const DEFAULT_START_WAIT_SECS: u64 = 120;
/// How often to look for the control socket.
const POLL: Duration = Duration::from_millis(250);

pub async fn exec(cli: &Cli, args: &Args) -> anyhow::Result<Exit> {
    crate::logging::init_cli(cli.log_level.as_deref());
    let cfg = cli.load_config()?;
    let svc = service::detect().await;
    start(cli, &cfg, svc.as_ref(), args.timeout).await
}

/// Where a background manager's stdout and stderr go: its early errors and panics. With the
/// log file on, the log itself is in manager.log, so the output gets its own file.
pub fn output_path(cfg: &Config) -> PathBuf {
    if cfg.manager.log_file {
        crate::runner::paths::manager_out(cfg)
    } else {
        crate::runner::paths::manager_log(cfg)
    }
}

/// Starts the manager unless it answers already; through systemd if `svc` is installed.
pub async fn start(
    cli: &Cli,
    cfg: &Config,
    svc: Option<&Service>,
    wait_secs: u64,
) -> anyhow::Result<Exit> {
    let sock = cfg.control_socket();
    if let Ok(r) = control::request(&sock, &Request::Status).await {
        let pid = r.status.map(|s| s.pid.to_string()).unwrap_or_default();
        println!("podrunner is already running (pid {pid})");
        return Ok(Exit::Success);
    }
    if let Some(s) = svc {
        println!("starting {UNIT_NAME} (it reports ready after its first reconcile)...");
        let args = service::systemctl_args(s.instance, &["start", UNIT_NAME]);
        let wait = Duration::from_secs(unit::START_TIMEOUT_SEC + 30);
        let flag = s.instance.flags().join(" ");
        cmd::run("systemctl", &args, None, wait)
            .await
            .map_err(|e| {
                anyhow::anyhow!("{e}\n  see why: journalctl {flag} -u {UNIT_NAME} -n 50")
            })?;
        println!("podrunner started; see `podrunner status` and `podrunner logs -f`");
        return Ok(Exit::Success);
    }
    start_detached(cli, cfg, wait_secs).await
}

async fn start_detached(cli: &Cli, cfg: &Config, wait_secs: u64) -> anyhow::Result<Exit> {
    crate::manager::prepare_dirs(cfg)?;
    let exe = std::env::current_exe().context("cannot find the podrunner binary")?;
    let config = cfg.path.canonicalize().unwrap_or_else(|_| cfg.path.clone());
    let mut args = vec!["--config".to_string(), config.display().to_string()];
    if let Some(l) = &cli.log_level {
        args.extend(["--log-level".to_string(), l.clone()]);
    }
    if cli.log_format == crate::logging::LogFormat::Json {
        args.extend(["--log-format".to_string(), "json".to_string()]);
    }
    args.push("run".into());
    let out = output_path(cfg);
    let env_remove = [
        "NOTIFY_SOCKET",
        "WATCHDOG_USEC",
        "WATCHDOG_PID",
        "JOURNAL_STREAM",
        "LISTEN_FDS",
        "LISTEN_PID",
    ];
    let mut child = cmd::spawn_detached(&exe, &args, &out, &env_remove)?;
    println!(
        "starting podrunner in the background (pid {}, output in {})",
        child.id(),
        out.display()
    );
    let sock = cfg.control_socket();
    let started = Instant::now();
    let tty = std::io::IsTerminal::is_terminal(&std::io::stdout());
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            if tty {
                println!();
            }
            anyhow::bail!(
                "the manager exited during start ({status}); its last output:\n{}",
                tail_lines(&out, 15)
            );
        }
        if let Ok(r) = control::request(&sock, &Request::Status).await {
            if r.ok {
                if tty {
                    println!();
                }
                println!("podrunner started; see `podrunner status` and `podrunner logs -f`");
                return Ok(Exit::Success);
            }
        }
        if started.elapsed() >= Duration::from_secs(wait_secs) {
            if tty {
                println!();
            }
            return Err(Failed::Plain(format!(
                "the manager does not answer after {wait_secs}s; it goes on in the background\n  see: podrunner logs; stop it with `podrunner stop` or `kill {}`",
                child.id()
            ))
            .into());
        }
        if tty {
            print!(
                "\rwaiting for the manager's first reconcile, {}s\x1b[K",
                started.elapsed().as_secs()
            );
            let _ = std::io::stdout().flush();
        }
        tokio::time::sleep(POLL).await;
    }
}

/// The last `n` lines of a file, indented, for an error message.
fn tail_lines(path: &std::path::Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..]
        .iter()
        .map(|l| format!("  {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}
