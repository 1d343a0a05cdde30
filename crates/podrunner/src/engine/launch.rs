//! The one seam through which the proxy process starts its runner's engine on first use
//! (docs/docker.md): a job that never calls `docker` costs no engine. The manager writes what
//! the proxy needs for it into the proxy's arguments ([`super::launcher_args`]); the proxy calls
//! [`Launcher::start`] when nothing answers on the engine's socket, and nothing else of
//! [`crate::engine`].

use super::error::WaitError;
use super::process::{running_engine, wait_ready};
use std::path::{Path, PathBuf};

/// How the proxy starts the engine when nothing answers on its socket.
#[derive(Debug, Clone)]
pub struct Launcher {
    /// `podman` and the arguments of `system service` ([`super::service_args`]).
    pub program: PathBuf,
    pub args: Vec<String>,
    /// The engine's containers.conf (`CONTAINERS_CONF`).
    pub conf: PathBuf,
    pub pid_file: PathBuf,
    pub log: PathBuf,
}

/// Why the engine could not be started; each message is what the client's `docker` prints.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    #[error("podrunner: cannot start the runner's engine: {0}")]
    Spawn(crate::cmd::CommandError),
    #[error("podrunner: cannot write {}: {source}", path.display())]
    PidFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("podrunner: {0}")]
    NotReady(WaitError),
}

impl Launcher {
    /// Starts the engine serving `upstream` unless its pid file names it running, and waits
    /// until it answers. The caller makes sure one start runs at a time.
    pub async fn start(&self, upstream: &Path) -> Result<(), LaunchError> {
        let l = self;
        let pid = match running_engine(&l.pid_file, upstream) {
            Some(pid) => pid,
            None => {
                let child = crate::cmd::spawn_detached_env(
                    &l.program,
                    &l.args,
                    &l.log,
                    &crate::cmd::SERVICE_MANAGER_ENV,
                    &[("CONTAINERS_CONF", l.conf.as_os_str())],
                )
                .map_err(LaunchError::Spawn)?;
                let pid = child.id() as i32;
                drop(child);
                std::fs::write(&l.pid_file, format!("{pid}\n")).map_err(|source| {
                    LaunchError::PidFile {
                        path: l.pid_file.clone(),
                        source,
                    }
                })?;
                tracing::info!("docker-proxy: started the engine (pid {pid})");
                pid
            }
        };
        wait_ready(upstream, pid, &l.log)
            .await
            .map_err(LaunchError::NotReady)
    }
}
