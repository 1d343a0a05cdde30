//! Fast exit detection: podrunner asks podman to write each runner container's main process id
//! to a file (`podman run --pidfile`) and waits on a pidfd of that process. Its end is the
//! container's end, seen at once; Podman's `died` event reaches a `podman events` reader about
//! 150 ms later on the hosts measured (conmon itself lingers a second longer, so watching it
//! would be slower still). The event still arrives and carries the exit code.

use super::Outcome;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::io::unix::AsyncFd;
use tokio::sync::mpsc::UnboundedSender;

/// How long to wait for podman to write the pid file after `podman run -d` returned.
const PIDFILE_WAIT: Duration = Duration::from_secs(2);

/// The pid file of a runner's container process.
pub fn container_pidfile(state_dir: &Path, name: &str) -> PathBuf {
    state_dir.join("pids").join(format!("{name}.pid"))
}

fn read_pid(path: &Path) -> Option<i32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Waits until the process whose pid is in `pidfile` exits, then reports it.
/// Without a pid file or pidfd support it returns quietly: events and resyncs still tell.
pub async fn watch_container_pid(pidfile: PathBuf, name: String, tx: UnboundedSender<Outcome>) {
    let mut waited = Duration::ZERO;
    let pid = loop {
        if let Some(p) = read_pid(&pidfile) {
            break p;
        }
        if waited >= PIDFILE_WAIT {
            tracing::debug!("no pid file for {name}; relying on podman events");
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
            tracing::debug!("container process of {name} ended");
            let _ = tx.send(Outcome::ContainerPidExited { name });
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
        tracing::debug!("container process of {name} ended");
        let _ = tx.send(Outcome::ContainerPidExited { name });
    }
    let _ = std::fs::remove_file(&pidfile);
}
