//! The unit file `podrunner install` writes: a pure function of [`UnitOptions`], so every line
//! is tested with exact assertions and the result is checked by `systemd-analyze verify`
//! (tests/systemd_unit.rs).
//!
//! Sandboxing: none of systemd's namespace or seccomp options are set, on purpose. Rootless
//! Podman maps user ids with the setuid helpers `newuidmap`/`newgidmap`; `NoNewPrivileges=yes`
//! makes the kernel ignore the setuid bit, so they fail and no container starts. For a unit
//! that does not run as root (every user unit, and a system unit with `User=`), systemd turns
//! on no_new_privs by itself as soon as any seccomp-based option is set ([`NNP_IMPLYING`]), and
//! the mount-namespace options (`ProtectSystem=`, `ProtectHome=`, `PrivateTmp=`) need a user
//! namespace (`PrivateUsers=`) in a user manager, inside which `newuidmap` cannot map the
//! subordinate ids either. Run as root (rootful Podman) they break other things:
//! `ProtectKernelTunables=` makes /proc/sys read-only (runc writes container sysctls),
//! `ProtectControlGroups=` makes /sys/fs/cgroup read-only (runc creates container cgroups), and
//! `PrivateTmp=` would give conmon and the containers a /tmp that other podman commands do not
//! see. What is left and safe: `UMask=0077`, so state and logs are private to the user.

use crate::config::Config;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The unit's name, for systemctl and journalctl.
pub const UNIT_NAME: &str = "podrunner.service";
/// systemd restarts the manager when it has not pinged for this long. The main loop wakes
/// every 500 ms and pings at half this interval, so only a hung loop misses it; a minute is
/// long enough that a busy 2-core host never trips it by accident.
pub const WATCHDOG_SEC: u64 = 60;
/// Added to the drain time for `TimeoutStopSec=`: after `drain_timeout` the manager stops the
/// busy runners (up to the pool's `stop_timeout` each), then deregisters and removes them.
pub const STOP_MARGIN_SECS: u64 = 30;
/// The least `RestartSec=`: with systemd's default start limit (5 starts in 10 s), a faster
/// restart loop makes systemd give up on the unit for good; at 5 s it never reaches the limit.
pub const MIN_RESTART_SEC: u64 = 5;
/// The manager sends READY=1 after podman answered and the first reconcile ran; the first
/// rootless podman call after boot sets up its user namespace and storage, which can be slow.
pub const START_TIMEOUT_SEC: u64 = 300;
/// `podrunner run` exits with this code when the config is invalid: restarting cannot help.
pub const EXIT_CONFIG_INVALID: i32 = 2;

/// Options that make systemd set no_new_privs for a unit not running as root (systemd.exec(5),
/// `NoNewPrivileges=`), which breaks rootless Podman's setuid `newuidmap`. None may appear.
pub const NNP_IMPLYING: &[&str] = &[
    "NoNewPrivileges=",
    "SystemCallFilter=",
    "SystemCallArchitectures=",
    "RestrictAddressFamilies=",
    "RestrictNamespaces=",
    "PrivateDevices=",
    "ProtectKernelTunables=",
    "ProtectKernelModules=",
    "ProtectKernelLogs=",
    "ProtectClock=",
    "MemoryDenyWriteExecute=",
    "RestrictRealtime=",
    "RestrictSUIDSGID=",
    "LockPersonality=",
    "DynamicUser=",
    "PrivateUsers=",
];

/// Which systemd instance the unit belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UnitScope {
    /// `~/.config/systemd/user/`, run by the user's own systemd.
    User,
    /// `/etc/systemd/system/`, run by the system's systemd as `user`.
    System { user: String, uid: u32 },
}

impl UnitScope {
    /// The argument systemctl and journalctl need for this scope, if any.
    pub fn flag(&self) -> Option<&'static str> {
        match self {
            UnitScope::User => Some("--user"),
            UnitScope::System { .. } => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitOptions {
    /// The podrunner binary (absolute).
    pub exe: PathBuf,
    /// The config file (absolute).
    pub config: PathBuf,
    pub scope: UnitScope,
    pub restart_sec: u64,
    pub timeout_stop_sec: u64,
}

impl UnitOptions {
    /// Derives the timing options from the config: `RestartSec=` is the largest pool
    /// `restart_delay` (at least [`MIN_RESTART_SEC`]), `TimeoutStopSec=` is `drain_timeout`
    /// plus the largest pool `stop_timeout` plus [`STOP_MARGIN_SECS`].
    pub fn from_config(exe: PathBuf, cfg: &Config, scope: UnitScope) -> UnitOptions {
        let ceil = |d: Duration| d.as_secs() + u64::from(d.subsec_nanos() > 0);
        let restart = cfg
            .pools
            .iter()
            .map(|p| ceil(p.restart_delay))
            .max()
            .unwrap_or(0);
        let stop = cfg
            .pools
            .iter()
            .map(|p| ceil(p.stop_timeout))
            .max()
            .unwrap_or(crate::config::MIN_STOP_TIMEOUT_SECS);
        UnitOptions {
            exe,
            config: cfg.path.clone(),
            scope,
            restart_sec: restart.max(MIN_RESTART_SEC),
            timeout_stop_sec: ceil(cfg.manager.drain_timeout) + stop + STOP_MARGIN_SECS,
        }
    }
}

/// Where the unit file goes: `$XDG_CONFIG_HOME/systemd/user` (default `~/.config`) for a user
/// unit, `/etc/systemd/system` for a system one.
pub fn unit_path(scope: &UnitScope, home: &Path, xdg_config_home: Option<&Path>) -> PathBuf {
    match scope {
        UnitScope::User => xdg_config_home
            .map(Path::to_path_buf)
            .unwrap_or_else(|| home.join(".config"))
            .join("systemd/user")
            .join(UNIT_NAME),
        UnitScope::System { .. } => Path::new("/etc/systemd/system").join(UNIT_NAME),
    }
}

/// One ExecStart= argument: `%` and `$` escaped (systemd expands specifiers and variables
/// there), quoted when it holds a space, a quote or a backslash.
pub fn quote_exec_arg(s: &str) -> String {
    let s = s.replace('%', "%%").replace('$', "$$");
    if s.is_empty() || s.chars().any(|c| c.is_whitespace() || "\"'\\;".contains(c)) {
        format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
    } else {
        s
    }
}

/// A value that cannot go into a unit file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnitError {
    #[error("{0} is not valid UTF-8")]
    NotUtf8(String),
    #[error("{0} is not an absolute path")]
    NotAbsolute(String),
    #[error("{0:?} holds a control character")]
    ControlCharacter(String),
    #[error("{0:?} is not a valid user name (lowercase letters, digits, _ - .)")]
    UserName(String),
}

/// Checks that a path can go into a unit file: absolute, UTF-8, no control characters.
pub fn unit_path_arg(p: &Path) -> Result<String, UnitError> {
    let s = p
        .to_str()
        .ok_or_else(|| UnitError::NotUtf8(p.display().to_string()))?;
    if !p.is_absolute() {
        return Err(UnitError::NotAbsolute(s.to_string()));
    }
    if s.chars().any(char::is_control) {
        return Err(UnitError::ControlCharacter(s.to_string()));
    }
    Ok(quote_exec_arg(s))
}

/// A user name as `User=` accepts it (the portable subset of useradd(8)'s names).
pub fn check_user_name(name: &str) -> Result<(), UnitError> {
    let ok = !name.is_empty()
        && name.len() <= 32
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "_-.".contains(c));
    if ok {
        Ok(())
    } else {
        Err(UnitError::UserName(name.to_string()))
    }
}

/// The unit file's text.
pub fn render_unit(o: &UnitOptions) -> Result<String, UnitError> {
    let exe = unit_path_arg(&o.exe)?;
    let config = unit_path_arg(&o.config)?;
    let mut u = String::new();
    let mut line = |s: &str| {
        u.push_str(s);
        u.push('\n');
    };
    line("# Written by `podrunner install`, which rewrites it: change the config, not this file.");
    line("# `podrunner uninstall` removes it.");
    line("[Unit]");
    line("Description=podrunner: ephemeral self-hosted GitHub Actions runners in Podman");
    match &o.scope {
        // Rootful Podman needs no user manager; depending on user@0.service would tie the
        // unit to a PAM session root may not have.
        UnitScope::System { uid: 0, .. } => {
            line("Wants=network-online.target");
            line("After=network-online.target");
        }
        UnitScope::System { uid, .. } => {
            // Rootless Podman needs the user's runtime dir and, for the systemd cgroup
            // manager, the user's systemd and D-Bus: both come with the user's manager.
            line(&format!("Wants=network-online.target user@{uid}.service"));
            line(&format!("After=network-online.target user@{uid}.service"));
        }
        _ => {}
    }
    line("");
    line("[Service]");
    line("# READY=1 comes after the first reconcile; only the manager itself may notify, not the");
    line("# podman and conmon processes it starts.");
    line("Type=notify");
    line("NotifyAccess=main");
    line(&format!("ExecStart={exe} --config {config} run"));
    line("# SIGHUP: re-read the config and reconcile, without touching busy runners.");
    line("ExecReload=/bin/kill -HUP $MAINPID");
    line(&format!("WatchdogSec={WATCHDOG_SEC}"));
    line(&format!("TimeoutStartSec={START_TIMEOUT_SEC}"));
    line("Restart=on-failure");
    line(&format!("RestartSec={}", o.restart_sec));
    line("# Exit code 2: the config is invalid; restarting cannot fix that.");
    line(&format!("RestartPreventExitStatus={EXIT_CONFIG_INVALID}"));
    line("# SIGTERM drains: busy runners finish their job first (drain_timeout), then stop.");
    line(&format!("TimeoutStopSec={}", o.timeout_stop_sec));
    line("# Signal only the manager. The runner containers (and their conmon) live in this");
    line("# unit's cgroup unless Podman gives them their own scope; the default");
    line("# KillMode=control-group would kill busy runners mid-job, and `mixed` would SIGKILL");
    line("# whatever is left once the manager exits. The manager stops its runners itself, and");
    line("# adopts any it left behind at the next start.");
    line("KillMode=process");
    line("# No NoNewPrivileges= or other sandboxing: it breaks rootless Podman's setuid");
    line("# newuidmap (see podrunner's docs/systemd.md).");
    line("UMask=0077");
    if let UnitScope::System { user, uid } = &o.scope {
        check_user_name(user)?;
        line(&format!("User={user}"));
        if *uid != 0 {
            line(&format!("Environment=XDG_RUNTIME_DIR=/run/user/{uid}"));
            line(&format!(
                "Environment=DBUS_SESSION_BUS_ADDRESS=unix:path=/run/user/{uid}/bus"
            ));
        }
    }
    line("");
    line("[Install]");
    line(match o.scope {
        UnitScope::User => "WantedBy=default.target",
        UnitScope::System { .. } => "WantedBy=multi-user.target",
    });
    Ok(u)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(scope: UnitScope) -> UnitOptions {
        UnitOptions {
            exe: "/usr/local/bin/podrunner".into(),
            config: "/home/ci/.config/podrunner/config.toml".into(),
            scope,
            restart_sec: 5,
            timeout_stop_sec: 21690,
        }
    }

    const SERVICE: &str = "[Service]\n\
# READY=1 comes after the first reconcile; only the manager itself may notify, not the\n\
# podman and conmon processes it starts.\n\
Type=notify\n\
NotifyAccess=main\n\
ExecStart=/usr/local/bin/podrunner --config /home/ci/.config/podrunner/config.toml run\n\
# SIGHUP: re-read the config and reconcile, without touching busy runners.\n\
ExecReload=/bin/kill -HUP $MAINPID\n\
WatchdogSec=60\n\
TimeoutStartSec=300\n\
Restart=on-failure\n\
RestartSec=5\n\
# Exit code 2: the config is invalid; restarting cannot fix that.\n\
RestartPreventExitStatus=2\n\
# SIGTERM drains: busy runners finish their job first (drain_timeout), then stop.\n\
TimeoutStopSec=21690\n\
# Signal only the manager. The runner containers (and their conmon) live in this\n\
# unit's cgroup unless Podman gives them their own scope; the default\n\
# KillMode=control-group would kill busy runners mid-job, and `mixed` would SIGKILL\n\
# whatever is left once the manager exits. The manager stops its runners itself, and\n\
# adopts any it left behind at the next start.\n\
KillMode=process\n\
# No NoNewPrivileges= or other sandboxing: it breaks rootless Podman's setuid\n\
# newuidmap (see podrunner's docs/systemd.md).\n\
UMask=0077\n";

    const HEAD: &str =
        "# Written by `podrunner install`, which rewrites it: change the config, not this file.\n\
# `podrunner uninstall` removes it.\n\
[Unit]\n\
Description=podrunner: ephemeral self-hosted GitHub Actions runners in Podman\n";

    #[test]
    fn user_unit_exact() {
        let want = format!("{HEAD}\n{SERVICE}\n[Install]\nWantedBy=default.target\n");
        assert_eq!(render_unit(&opts(UnitScope::User)).unwrap(), want);
    }

    #[test]
    fn system_unit_exact() {
        let got = render_unit(&opts(UnitScope::System {
            user: "ci".into(),
            uid: 1001,
        }))
        .unwrap();
        let want = format!(
            "{HEAD}Wants=network-online.target user@1001.service\n\
             After=network-online.target user@1001.service\n\n{SERVICE}\
             User=ci\n\
             Environment=XDG_RUNTIME_DIR=/run/user/1001\n\
             Environment=DBUS_SESSION_BUS_ADDRESS=unix:path=/run/user/1001/bus\n\
             \n[Install]\nWantedBy=multi-user.target\n"
        );
        assert_eq!(got, want);
        // Rootful: no user runtime dir to point at.
        let root = render_unit(&opts(UnitScope::System {
            user: "root".into(),
            uid: 0,
        }))
        .unwrap();
        assert!(root.contains("User=root\n\n[Install]"), "{root}");
        assert!(!root.contains("XDG_RUNTIME_DIR"));
        assert!(
            root.contains("Wants=network-online.target\nAfter=network-online.target\n"),
            "{root}"
        );
        assert!(!root.contains("user@0.service"), "{root}");
    }

    /// `NoNewPrivileges=yes` makes the kernel ignore setuid bits, so rootless Podman's
    /// `newuidmap`/`newgidmap` cannot map the subordinate ids and no container starts; for a
    /// unit not running as root, systemd also implies it from any seccomp-based option.
    #[test]
    fn no_sandboxing_that_breaks_rootless_podman() {
        for scope in [
            UnitScope::User,
            UnitScope::System {
                user: "ci".into(),
                uid: 1001,
            },
        ] {
            let u = render_unit(&opts(scope)).unwrap();
            for l in u.lines().filter(|l| !l.starts_with('#')) {
                for bad in NNP_IMPLYING {
                    assert!(!l.starts_with(bad), "{bad} must not be set: {l}");
                }
                for bad in [
                    "ProtectSystem=",
                    "ProtectHome=",
                    "PrivateTmp=",
                    "ProtectControlGroups=",
                ] {
                    assert!(!l.starts_with(bad), "{bad} breaks podman: {l}");
                }
            }
            assert!(u.contains("\nKillMode=process\n"));
        }
    }

    #[test]
    fn quoting() {
        assert_eq!(quote_exec_arg("/a/b"), "/a/b");
        assert_eq!(quote_exec_arg("/a b/c"), "\"/a b/c\"");
        assert_eq!(quote_exec_arg("/a\"b"), "\"/a\\\"b\"");
        assert_eq!(quote_exec_arg("/100%/$HOME"), "/100%%/$$HOME");
        assert_eq!(quote_exec_arg("/a\\b"), "\"/a\\\\b\"");
        assert!(unit_path_arg(Path::new("rel/x")).is_err());
        assert!(unit_path_arg(Path::new("/a\nb")).is_err());
        assert!(check_user_name("ci-runner").is_ok());
        assert!(check_user_name("Bad\nUser").is_err());
        assert!(check_user_name("").is_err());
        let mut o = opts(UnitScope::User);
        o.config = "/home/a b/c.toml".into();
        assert!(render_unit(&o)
            .unwrap()
            .contains("ExecStart=/usr/local/bin/podrunner --config \"/home/a b/c.toml\" run\n"));
    }

    #[test]
    fn timings_from_config() {
        let env = crate::config::Env::fixed(1000);
        let text = "[manager]\ndrain_timeout = \"1h\"\n\
                    [[pool]]\nname = \"a\"\nrepository = \"o/r\"\nrestart_delay = \"30s\"\n\
                    [[pool]]\nname = \"b\"\nrepository = \"o/r\"\nstop_timeout = \"120s\"\n";
        let cfg = Config::parse(text, Path::new("/c.toml"), &env).unwrap();
        let o = UnitOptions::from_config("/bin/podrunner".into(), &cfg, UnitScope::User);
        assert_eq!(o.restart_sec, 30);
        assert_eq!(o.timeout_stop_sec, 3600 + 120 + STOP_MARGIN_SECS);
        // Defaults: restart_delay 1 s is raised to the floor; drain 6 h + stop 60 s + margin.
        let text = "[[pool]]\nname = \"a\"\nrepository = \"o/r\"\n";
        let cfg = Config::parse(text, Path::new("/c.toml"), &env).unwrap();
        let o = UnitOptions::from_config("/bin/podrunner".into(), &cfg, UnitScope::User);
        assert_eq!(o.restart_sec, MIN_RESTART_SEC);
        assert_eq!(o.timeout_stop_sec, 21600 + 60 + 30);
    }

    #[test]
    fn paths() {
        let home = Path::new("/home/ci");
        assert_eq!(
            unit_path(&UnitScope::User, home, None),
            Path::new("/home/ci/.config/systemd/user/podrunner.service")
        );
        assert_eq!(
            unit_path(&UnitScope::User, home, Some(Path::new("/x"))),
            Path::new("/x/systemd/user/podrunner.service")
        );
        assert_eq!(
            unit_path(
                &UnitScope::System {
                    user: "ci".into(),
                    uid: 1
                },
                home,
                None
            ),
            Path::new("/etc/systemd/system/podrunner.service")
        );
    }
}
