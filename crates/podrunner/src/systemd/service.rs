//! Asking systemd about the installed `podrunner.service`, and the systemctl, journalctl and
//! loginctl command lines the CLI runs or prints. Every call goes through `cmd::run`; when
//! systemd is not running or systemctl cannot reach it, the answer is "no service" and the
//! CLI falls back to the control socket.

use super::unit::UNIT_NAME;
use crate::cmd::{self, CommandError};
use serde::Serialize;
use std::path::Path;
use std::time::Duration;

/// Queries (`show`, `daemon-reload`, `enable`) answer within seconds; a stuck bus must not
/// hang the CLI.
pub const SYSTEMCTL_TIMEOUT: Duration = Duration::from_secs(30);

/// Which systemd instance a unit lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Instance {
    User,
    System,
}

impl Instance {
    /// `["--user"]` or nothing: systemctl and journalctl take the same flag.
    pub fn flags(self) -> Vec<String> {
        match self {
            Instance::User => vec!["--user".into()],
            Instance::System => vec![],
        }
    }
}

/// What systemd says about the unit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Service {
    pub instance: Instance,
    /// ActiveState: active, activating, deactivating, reloading, inactive, failed.
    pub active: String,
    /// SubState: running, dead, auto-restart, stop-sigterm, ...
    pub sub: String,
}

impl Service {
    /// Whether the manager runs under systemd right now (starting, running or draining).
    pub fn is_active(&self) -> bool {
        matches!(
            self.active.as_str(),
            "active" | "activating" | "reloading" | "deactivating"
        )
    }

    /// `podrunner.service (user unit): active (running)`.
    pub fn describe(&self) -> String {
        let kind = match self.instance {
            Instance::User => "user unit",
            Instance::System => "system unit",
        };
        format!("{UNIT_NAME} ({kind}): {} ({})", self.active, self.sub)
    }
}

/// Whether systemd runs as the init system (sd_booted(3)).
pub fn systemd_running() -> bool {
    Path::new("/run/systemd/system").is_dir()
}

/// `systemctl [--user] ARGS...` as an argument list.
pub fn systemctl_args(instance: Instance, args: &[&str]) -> Vec<String> {
    let mut v = instance.flags();
    v.extend(args.iter().map(|s| s.to_string()));
    v
}

/// Parses `systemctl show -p LoadState -p ActiveState -p SubState`; `None` unless the unit
/// is loaded (installed).
pub fn parse_show(out: &str, instance: Instance) -> Option<Service> {
    let get = |k: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(k)?.strip_prefix('='))
            .map(|v| v.trim().to_string())
    };
    if get("LoadState")? != "loaded" {
        return None;
    }
    Some(Service {
        instance,
        active: get("ActiveState")?,
        sub: get("SubState").unwrap_or_default(),
    })
}

/// Runs `systemctl [--user] ARGS...` and returns stdout.
pub async fn systemctl(
    instance: Instance,
    args: &[&str],
    timeout: Duration,
) -> Result<String, CommandError> {
    let out = cmd::run("systemctl", &systemctl_args(instance, args), None, timeout).await?;
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// The unit in one instance, if installed there and systemctl answers.
pub async fn query(instance: Instance) -> Option<Service> {
    let args = [
        "show",
        "-p",
        "LoadState",
        "-p",
        "ActiveState",
        "-p",
        "SubState",
        UNIT_NAME,
    ];
    match systemctl(instance, &args, SYSTEMCTL_TIMEOUT).await {
        Ok(out) => parse_show(&out, instance),
        Err(e) => {
            tracing::debug!("systemctl is not usable: {e}");
            None
        }
    }
}

/// The installed unit: the user's own first (unless root), then the system's. `None` when
/// systemd is not running, systemctl is missing or fails, or no unit is installed.
pub async fn detect() -> Option<Service> {
    if !systemd_running() {
        return None;
    }
    if crate::sys::uid() != 0 {
        if let Some(s) = query(Instance::User).await {
            return Some(s);
        }
    }
    query(Instance::System).await
}

/// `journalctl [--user] -u podrunner.service --no-pager [-n N] [-f]`.
pub fn journalctl_args(instance: Instance, lines: Option<usize>, follow: bool) -> Vec<String> {
    let mut v = instance.flags();
    v.extend(["-u".to_string(), UNIT_NAME.to_string(), "--no-pager".into()]);
    if let Some(n) = lines {
        v.extend(["-n".to_string(), n.to_string()]);
    }
    if follow {
        v.push("-f".into());
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn show_parsing() {
        let s = parse_show(
            "LoadState=loaded\nActiveState=active\nSubState=running\n",
            Instance::User,
        )
        .unwrap();
        assert!(s.is_active());
        assert_eq!(
            s.describe(),
            "podrunner.service (user unit): active (running)"
        );
        let s = parse_show(
            "ActiveState=failed\nSubState=failed\nLoadState=loaded\n",
            Instance::System,
        )
        .unwrap();
        assert!(!s.is_active());
        assert_eq!(
            parse_show(
                "LoadState=not-found\nActiveState=inactive\nSubState=dead\n",
                Instance::User
            ),
            None
        );
        assert_eq!(parse_show("", Instance::User), None);
    }

    #[test]
    fn command_lines() {
        assert_eq!(
            systemctl_args(Instance::User, &["enable", "--now", UNIT_NAME]),
            ["--user", "enable", "--now", "podrunner.service"]
        );
        assert_eq!(
            systemctl_args(Instance::System, &["daemon-reload"]),
            ["daemon-reload"]
        );
        assert_eq!(
            journalctl_args(Instance::User, Some(50), true),
            [
                "--user",
                "-u",
                "podrunner.service",
                "--no-pager",
                "-n",
                "50",
                "-f"
            ]
        );
        assert_eq!(
            journalctl_args(Instance::System, None, false),
            ["-u", "podrunner.service", "--no-pager"]
        );
    }
}
