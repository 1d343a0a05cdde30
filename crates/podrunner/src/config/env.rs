//! The environment the defaults depend on (home, uid, XDG folders, host id, machine id),
//! read once by [`Env::from_process`] and passed in everywhere else, so tests can fix it.

use std::path::PathBuf;

/// Overrides the host id (`[manager] host_id` wins over it), e.g. for two managers on one
/// machine standing in for two hosts.
pub const HOST_ID_ENV: &str = "PODRUNNER_HOST_ID";
/// systemd's stable machine identity, the default host id's source (docs/hosts.md).
pub const MACHINE_ID_FILE: &str = "/etc/machine-id";

/// The environment the defaults depend on, passed in so tests can fix it.
#[derive(Debug, Clone, Default)]
pub struct Env {
    pub home: PathBuf,
    pub uid: u32,
    pub xdg_state_home: Option<PathBuf>,
    pub xdg_data_home: Option<PathBuf>,
    pub xdg_runtime_dir: Option<PathBuf>,
    /// `PODRUNNER_HOST_ID`.
    pub host_id: Option<String>,
    /// The content of `/etc/machine-id`.
    pub machine_id: Option<String>,
    /// `XDG_CONFIG_HOME`: where user config files and user units go.
    pub xdg_config_home: Option<PathBuf>,
    /// `USER`: the login name, when the environment names it.
    pub user: Option<String>,
}

impl Env {
    /// A fixed environment for tests: user `uid` with home `/root` (root) or `/home/u`, and a
    /// non-root user's `XDG_RUNTIME_DIR` at `/run/user/UID`; nothing else set. The one test
    /// fixture of this type, for unit and integration tests alike.
    pub fn fixed(uid: u32) -> Env {
        let root = uid == 0;
        Env {
            home: if root { "/root" } else { "/home/u" }.into(),
            uid,
            xdg_runtime_dir: (!root).then(|| format!("/run/user/{uid}").into()),
            ..Env::default()
        }
    }

    pub fn from_process() -> Env {
        let var = |k: &str| {
            std::env::var_os(k)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        Env {
            home: var("HOME").unwrap_or_else(|| PathBuf::from("/")),
            // SAFETY-free: getuid cannot fail.
            uid: crate::sys::uid(),
            xdg_state_home: var("XDG_STATE_HOME"),
            xdg_data_home: var("XDG_DATA_HOME"),
            xdg_runtime_dir: var("XDG_RUNTIME_DIR"),
            host_id: std::env::var(HOST_ID_ENV).ok().filter(|v| !v.is_empty()),
            machine_id: std::fs::read_to_string(MACHINE_ID_FILE)
                .ok()
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty()),
            xdg_config_home: var("XDG_CONFIG_HOME"),
            user: std::env::var("USER").ok().filter(|u| !u.is_empty()),
        }
    }

    pub(super) fn default_state_dir(&self) -> PathBuf {
        if self.uid == 0 {
            return PathBuf::from("/var/lib/podrunner");
        }
        self.xdg_state_home
            .clone()
            .unwrap_or_else(|| self.home.join(".local/state"))
            .join("podrunner")
    }

    pub(super) fn default_data_dir(&self) -> PathBuf {
        if self.uid == 0 {
            return PathBuf::from("/var/lib/podrunner");
        }
        self.xdg_data_home
            .clone()
            .unwrap_or_else(|| self.home.join(".local/share"))
            .join("podrunner")
    }

    pub(super) fn default_runtime_dir(&self) -> PathBuf {
        if self.uid == 0 {
            return PathBuf::from("/run/podrunner");
        }
        match &self.xdg_runtime_dir {
            Some(d) => d.join("podrunner"),
            None => self.default_state_dir().join("run"),
        }
    }

    /// `~/.config/podrunner/config.toml` (root: `/etc/podrunner/config.toml`).
    pub fn default_config_path(&self) -> PathBuf {
        if self.uid == 0 {
            return PathBuf::from("/etc/podrunner/config.toml");
        }
        let base = self
            .xdg_config_home
            .clone()
            .unwrap_or_else(|| self.home.join(".config"));
        base.join("podrunner/config.toml")
    }
}
