//! Where a runner's files are on the host, built in one place.
//!
//! - `RUNTIME_DIR/secrets/NAME/`: its settings files until the container's entrypoint moves
//!   them (see [`super::jit`]); the runtime directory is private to the manager's user.
//! - `STATE_DIR/logs/NAME.log`: its container log (k8s-file), kept after the container is gone.
//! - `STATE_DIR/pids/NAME.pid`: its container's main process id (`podman run --pidfile`).
//! - `POOL_WORK_DIR/NAME/`: its work folder, mounted at the same path inside.
//!
//! And the manager's own files next to them: `STATE_DIR/manager.log` and `manager.out`.

use crate::config::{Config, PoolConfig};
use std::path::{Path, PathBuf};

/// The folder holding every runner's secret folder.
pub fn secrets_root(cfg: &Config) -> PathBuf {
    cfg.manager.runtime_dir.join("secrets")
}

/// The folder holding the runners' container logs.
pub fn logs_dir(cfg: &Config) -> PathBuf {
    cfg.manager.state_dir.join("logs")
}

/// The folder holding the runners' container pid files.
pub fn pids_dir(state_dir: &Path) -> PathBuf {
    state_dir.join("pids")
}

/// The manager's own log file (`[manager] log_file = true`).
pub fn manager_log(cfg: &Config) -> PathBuf {
    cfg.manager.state_dir.join("manager.log")
}

/// A background manager's stdout and stderr when [`manager_log`] holds its log.
pub fn manager_out(cfg: &Config) -> PathBuf {
    cfg.manager.state_dir.join("manager.out")
}

/// The work folder of runner `name` of `pool`.
pub fn work_dir(pool: &PoolConfig, name: &str) -> PathBuf {
    pool.work_dir.join(name)
}

/// The host paths of one runner that do not depend on its pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paths {
    /// Its settings files, mounted at [`super::jit::SECRET_MOUNT`].
    pub secrets: PathBuf,
    /// Its container log.
    pub log: PathBuf,
    /// Its container's pid file.
    pub pidfile: PathBuf,
}

impl Paths {
    pub fn of(cfg: &Config, name: &str) -> Paths {
        Paths {
            secrets: secrets_root(cfg).join(name),
            log: logs_dir(cfg).join(format!("{name}.log")),
            pidfile: pids_dir(&cfg.manager.state_dir).join(format!("{name}.pid")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_path_of_a_runner() {
        let env = crate::config::Env::fixed(1000);
        let mut cfg = Config::parse(
            "[[pool]]\nname = \"p\"\nrepository = \"o/r\"\nwork_dir = \"/w\"\n",
            Path::new("/c.toml"),
            &env,
        )
        .unwrap();
        cfg.manager.state_dir = "/st".into();
        cfg.manager.runtime_dir = "/rt".into();
        let p = Paths::of(&cfg, "p-1");
        assert_eq!(
            p,
            Paths {
                secrets: "/rt/secrets/p-1".into(),
                log: "/st/logs/p-1.log".into(),
                pidfile: "/st/pids/p-1.pid".into(),
            }
        );
        assert_eq!(work_dir(&cfg.pools[0], "p-1"), PathBuf::from("/w/p-1"));
        assert_eq!(manager_log(&cfg), PathBuf::from("/st/manager.log"));
        assert_eq!(manager_out(&cfg), PathBuf::from("/st/manager.out"));
    }
}
