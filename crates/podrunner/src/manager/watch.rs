//! Fast exit detection: podrunner asks podman to write each runner's conmon pid to a file and
//! waits on a pidfd of that conmon. Conmon exits right after its container does, so the
//! replacement can start before the `died` event has made its way through Podman's event log
//! (100-300 ms later on the hosts measured). The event still arrives and carries the exit code.

use super::Outcome;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::io::unix::AsyncFd;
use tokio::sync::mpsc::UnboundedSender;

/// How long to wait for podman to write the pid file after `podman run -d` returned.
const PIDFILE_WAIT: Duration = Duration::from_secs(2);

/// The conmon pid file of a runner, next to its container log.
pub fn conmon_pidfile(state_dir: &Path, name: &str) -> PathBuf {
    state_dir.join("pids").join(format!("{name}.conmon.pid"))
}

fn read_pid(path: &Path) -> Option<i32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Waits until the conmon whose pid is in `pidfile` exits, then reports `Outcome::Exited`.
/// Without a pid file or pidfd support it returns quietly: events and resyncs still tell.
pub async fn watch_conmon(pidfile: PathBuf, name: String, tx: UnboundedSender<Outcome>) {
    let mut waited = Duration::ZERO;
    let pid = loop {
        if let Some(p) = read_pid(&pidfile) {
            break p;
        }
        if waited >= PIDFILE_WAIT {
            tracing::debug!("no conmon pid file for {name}; relying on podman events");
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        waited += Duration::from_millis(20);
    };
    let Some(pid) = rustix::process::Pid::from_raw(pid) else {
        return;
    };
    let fd = match rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::NONBLOCK) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::SRCH) => {
            let _ = tx.send(Outcome::ConmonExited { name });
            return;
        }
        Err(e) => {
            tracing::debug!("pidfd_open({pid:?}) for {name} failed: {e}; relying on podman events");
            return;
        }
    };
    // AsyncFd takes ownership of the OwnedFd, so nothing else can close or reuse the
    // descriptor while it is registered: the I/O-safety concern behind the deprecation does
    // not arise here.
    #[allow(deprecated)]
    let Ok(afd) = AsyncFd::new(fd) else {
        return;
    };
    if afd.readable().await.is_ok() {
        let _ = tx.send(Outcome::ConmonExited { name });
    }
    let _ = std::fs::remove_file(&pidfile);
}
