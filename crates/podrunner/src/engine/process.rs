//! An engine's processes as the manager and the proxy see them through `/proc` and its socket:
//! waiting until a socket answers, whether a pid file's process is alive and ours, stopping a
//! process group, and the namespaces and command lines of every process (for teardown).

use super::error::{PingError, StopError, WaitError};
use super::{is_engine_cmdline, parse_ping};
use std::path::Path;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The service answers `/_ping` about 0.1 s after it starts on an idle host; a loaded 2-core
/// host starting several runners at once needs seconds. Past this the start counts as failed.
pub const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// Pause between two probes of a starting engine.
pub(crate) const READY_POLL: Duration = Duration::from_millis(50);

/// One `/_ping` round trip.
pub(crate) const PING_TIMEOUT: Duration = Duration::from_secs(2);

/// How long to wait for the process to vanish after SIGKILL.
pub(crate) const KILL_WAIT: Duration = Duration::from_secs(2);

/// Waits until `sock` answers `/_ping`, while process `pid` (the engine) lives.
pub(crate) async fn wait_ready(sock: &Path, pid: i32, log: &Path) -> Result<(), WaitError> {
    wait_for(sock, pid, log, "the engine (podman system service)", true).await
}

/// Polls `sock` until it answers `/_ping` (`ping`) or accepts a connection, while process
/// `pid` (`who`) lives, for at most [`READY_TIMEOUT`].
pub(crate) async fn wait_for(
    sock: &Path,
    pid: i32,
    log: &Path,
    who: &'static str,
    ping_it: bool,
) -> Result<(), WaitError> {
    let start = Instant::now();
    loop {
        crate::sys::reap(pid);
        if !alive(pid) {
            return Err(WaitError::Exited {
                who,
                log: log_tail(log),
            });
        }
        let up = if ping_it {
            ping(sock).await.is_ok()
        } else {
            tokio::net::UnixStream::connect(sock).await.is_ok()
        };
        if up {
            return Ok(());
        }
        if start.elapsed() > READY_TIMEOUT {
            return Err(WaitError::Timeout {
                socket: sock.to_path_buf(),
                who,
                secs: READY_TIMEOUT.as_secs(),
                log: log_tail(log),
            });
        }
        tokio::time::sleep(READY_POLL).await;
    }
}

/// `GET /_ping` over the engine's socket; `Ok(Docker API version)` when it answers 200.
pub async fn ping(sock: &Path) -> Result<Option<String>, PingError> {
    let exchange = async {
        let mut s = tokio::net::UnixStream::connect(sock).await?;
        s.write_all(b"GET /_ping HTTP/1.0\r\nHost: podrunner\r\n\r\n")
            .await?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await?;
        parse_ping(&buf)
    };
    tokio::time::timeout(PING_TIMEOUT, exchange)
        .await
        .map_err(|_| PingError::NoAnswer)?
}

pub(crate) fn log_tail(p: &Path) -> String {
    let s = std::fs::read_to_string(p).unwrap_or_default();
    let lines: Vec<&str> = s.lines().filter(|l| !l.trim().is_empty()).collect();
    match lines.len() {
        0 => "(no output)".into(),
        n => lines[n.saturating_sub(3)..].join(" / "),
    }
}

/// Alive and not a zombie (an exited process whose parent has not reaped it yet).
pub(crate) fn alive(pid: i32) -> bool {
    if !crate::sys::process_alive(pid) {
        return false;
    }
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => s
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

pub(crate) fn cmdline(pid: i32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
        .unwrap_or_default()
}

/// The engine's pid from its pid file, when that process is alive and is the engine of
/// `socket` (a pid file never makes podrunner trust a reused pid).
pub(crate) fn running_engine(pid_file: &Path, socket: &Path) -> Option<i32> {
    live_pid(pid_file, |c| is_engine_cmdline(c, socket))
}

/// The pid in `pid_file` when that process is alive and its command line is ours.
pub(crate) fn live_pid(pid_file: &Path, ours: impl Fn(&str) -> bool) -> Option<i32> {
    let pid = read_pid(pid_file)?;
    crate::sys::reap(pid);
    (alive(pid) && ours(&cmdline(pid))).then_some(pid)
}

pub(crate) fn read_pid(p: &Path) -> Option<i32> {
    std::fs::read_to_string(p).ok()?.trim().parse().ok()
}

/// SIGTERM to `pid`'s process group, SIGKILL after `grace`; Err if it is still there.
pub(crate) async fn terminate_group(pid: i32, grace: Duration) -> Result<(), StopError> {
    let gone_within = |t: Duration| async move {
        let start = Instant::now();
        loop {
            crate::sys::reap(pid);
            if !alive(pid) {
                return true;
            }
            if start.elapsed() > t {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    // A signal that cannot be sent is reported with the process that survived it.
    let mut signals = Vec::new();
    let mut send = |target: i32, sig: i32| {
        if let Err(e) = kill(target, sig) {
            signals.push(e);
        }
    };
    send(-pid, libc::SIGTERM);
    if gone_within(grace).await {
        return Ok(());
    }
    send(-pid, libc::SIGKILL);
    send(pid, libc::SIGKILL);
    if gone_within(KILL_WAIT).await {
        return Ok(());
    }
    Err(StopError { pid, signals })
}

/// Sends `sig` to `target` (a pid, or a process group when negative); a target already gone is
/// not an error.
pub(crate) fn kill(target: i32, sig: i32) -> std::io::Result<()> {
    match crate::sys::signal(target, sig) {
        Err(e) if e.raw_os_error() == Some(libc::ESRCH) => Ok(()),
        r => r,
    }
}

/// Process `pid`'s namespace of kind `kind` (`net`, `pid`: `KIND:[INODE]`).
pub(crate) fn ns_of(pid: i32, kind: &str) -> Option<String> {
    std::fs::read_link(format!("/proc/{pid}/ns/{kind}"))
        .ok()
        .map(|p| p.display().to_string())
}

/// The process group of process `pid`.
pub(crate) fn pgrp(pid: i32) -> Option<i32> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = s.rsplit_once(')')?;
    rest.split_whitespace().nth(2)?.parse().ok()
}

/// Every process's pid and command line (NULs as spaces).
pub(crate) fn procs() -> Vec<(i32, String)> {
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    rd.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .map(|p| (p, cmdline(p)))
        .filter(|(_, c)| !c.is_empty())
        .collect()
}
