//! `podrunner logs [RUNNER] [-f]`: a runner's container output (kept after the container is
//! gone), or without RUNNER the manager's own log: the journal when systemd runs it.

use super::exit::Exit;
use super::Cli;
use crate::control::{self, Request};
use crate::runner::logs::{parse_k8s_log_line, KEPT_LOGS};
use crate::runner::Paths;
use crate::systemd::service;
use anyhow::Context;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How often `-f` looks for new lines.
const FOLLOW_POLL: Duration = Duration::from_millis(250);

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The runner's name (see `podrunner status`); without it, the manager's log
    pub runner: Option<String>,
    /// Keep printing new lines as they come
    #[arg(short, long)]
    pub follow: bool,
    /// Show only the last N lines
    #[arg(short = 'n', long)]
    pub lines: Option<usize>,
}

pub async fn exec(cli: &Cli, args: &Args) -> anyhow::Result<Exit> {
    crate::logging::init_cli(cli.log_level.as_deref());
    let cfg = cli.load_config()?;
    if args.runner.is_none() {
        if let Some(code) = journal(&cfg, args).await {
            return Ok(Exit::Passed(code));
        }
    }
    let (path, container_log) = match &args.runner {
        Some(r) => (find_runner_log(&cfg, r), true),
        None => (crate::runner::paths::manager_log(&cfg), false),
    };
    if !path.exists() {
        match &args.runner {
            Some(r) => anyhow::bail!("no log for runner {r:?} ({} does not exist)\n  fix: pick a name from `podrunner status` or `podrunner history`; logs of the last {} finished runners are kept", path.display(), KEPT_LOGS),
            None => anyhow::bail!("no manager log at {}\n  fix: under systemd use `journalctl --user -u podrunner`; otherwise start the manager with `podrunner run`", path.display()),
        }
    }
    print_log(&path, container_log, args.lines, args.follow)
        .await
        .with_context(|| format!("reading {}", path.display()))?;
    Ok(Exit::Success)
}

/// The log of the runner `r` names: its name, or through the history (docs/history.md) its
/// GitHub runner id or container id.
fn find_runner_log(cfg: &crate::config::Config, r: &str) -> PathBuf {
    let direct = Paths::of(cfg, r).log;
    if direct.exists() {
        return direct;
    }
    let db = crate::history::History::path_in(&cfg.manager.state_dir);
    let found = db
        .exists()
        .then(|| crate::history::History::open_read_only(&db).ok())
        .flatten()
        .and_then(|h| h.find_ref(r).ok().flatten());
    match found {
        Some(e) => e
            .log_path
            .map(PathBuf::from)
            .unwrap_or_else(|| Paths::of(cfg, &e.name).log),
        None => direct,
    }
}

/// The manager's log from the journal, when the unit is installed and either active or no
/// manager answers in a terminal. `None`: use the log file.
async fn journal(cfg: &crate::config::Config, args: &Args) -> Option<i32> {
    let svc = service::detect().await?;
    if !svc.is_active()
        && control::request(&cfg.control_socket(), &Request::Status)
            .await
            .is_ok()
    {
        return None;
    }
    let jargs = service::journalctl_args(svc.instance, args.lines, args.follow);
    match crate::cmd::run_inherit("journalctl", &jargs, None).await {
        Ok(code) => Some(code),
        Err(e) => {
            tracing::debug!("journalctl is not usable: {e}");
            None
        }
    }
}

fn render_line(line: &str, container_log: bool) -> Option<String> {
    if !container_log {
        return Some(line.to_string());
    }
    // k8s-file: `TIMESTAMP STREAM F|P MESSAGE`; P marks a partial line continued next.
    let (_, msg) = parse_k8s_log_line(line)?;
    Some(msg.to_string())
}

async fn print_log(
    path: &PathBuf,
    container_log: bool,
    lines: Option<usize>,
    follow: bool,
) -> std::io::Result<()> {
    let mut f = std::fs::File::open(path)?;
    let mut text = String::new();
    f.read_to_string(&mut text)?;
    let mut pos = text.len() as u64;
    let all: Vec<&str> = text.lines().collect();
    let start = lines.map(|n| all.len().saturating_sub(n)).unwrap_or(0);
    let mut out = std::io::stdout().lock();
    for l in &all[start..] {
        if let Some(s) = render_line(l, container_log) {
            writeln!(out, "{s}")?;
        }
    }
    out.flush()?;
    drop(out);
    if !follow {
        return Ok(());
    }
    let mut partial = String::new();
    loop {
        tokio::time::sleep(FOLLOW_POLL).await;
        if !Path::new(path).exists() {
            return Ok(());
        }
        let len = std::fs::metadata(path)?.len();
        if len < pos {
            pos = 0; // rotated or truncated
        }
        if len == pos {
            continue;
        }
        let mut f = std::fs::File::open(path)?;
        f.seek(SeekFrom::Start(pos))?;
        let mut chunk = String::new();
        f.read_to_string(&mut chunk)?;
        pos += chunk.len() as u64;
        partial.push_str(&chunk);
        let mut out = std::io::stdout().lock();
        while let Some(i) = partial.find('\n') {
            let line: String = partial.drain(..=i).collect();
            if let Some(s) = render_line(line.trim_end_matches('\n'), container_log) {
                writeln!(out, "{s}")?;
            }
        }
        out.flush()?;
    }
}
