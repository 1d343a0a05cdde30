//! `podrunner doctor`: is this host ready to run podrunner's runners? Each check says what it
//! found, why it matters and the exact command that fixes it on this distribution.
//!
//! One function per check, each returning a [`Check`]. Files under /etc, /proc, /sys, /var and
//! /dev are read through [`Host::root`] (default `/`) so tests can point it at a fixture tree;
//! the environment (PATH, XDG_RUNTIME_DIR, USER, uid) comes from [`HostEnv`]. External programs
//! run through [`crate::cmd`] (via the Podman adapter). This module reports; it changes nothing
//! on the host.
//!
//! `podrunner run` calls [`preflight`]: the [`BLOCKING`] checks, those without which a manager
//! is useless, refuse the start with the same explanation and fix.

pub mod distro;
pub mod docker;
pub mod github;
pub mod host;
pub mod idmap;
pub mod podman;

use crate::config::Config;
use distro::Distro;
use serde::Serialize;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// The outcome of one check. Ordered from best to worst.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    Skip,
    Warn,
    Fail,
}

impl Status {
    pub fn label(self) -> &'static str {
        match self {
            Status::Pass => "PASS",
            Status::Skip => "SKIP",
            Status::Warn => "WARN",
            Status::Fail => "FAIL",
        }
    }
}

/// One check's result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Check {
    /// Stable identifier (`podman`, `runtime`, `subuid`, `image:POOL`, ...).
    pub id: String,
    pub title: String,
    pub status: Status,
    /// What was found on this host.
    pub found: String,
    /// Why it matters for podrunner.
    pub why: String,
    /// The exact fix, for this distribution; `None` when nothing needs fixing.
    pub fix: Option<String>,
}

impl Check {
    pub fn new(id: impl Into<String>, title: impl Into<String>, status: Status) -> Check {
        Check {
            id: id.into(),
            title: title.into(),
            status,
            found: String::new(),
            why: String::new(),
            fix: None,
        }
    }
    pub fn with_status(mut self, s: Status) -> Check {
        self.status = s;
        self
    }
    pub fn found(mut self, s: impl Into<String>) -> Check {
        self.found = s.into();
        self
    }
    pub fn why(mut self, s: impl Into<String>) -> Check {
        self.why = s.into();
        self
    }
    pub fn fix(mut self, s: impl Into<String>) -> Check {
        self.fix = Some(s.into());
        self
    }
    pub fn is_fail(&self) -> bool {
        self.status == Status::Fail
    }
}

/// Check ids whose failure makes a manager useless: `podrunner run` refuses to start on them.
pub const BLOCKING: [&str; 7] = [
    "podman",
    "runtime",
    "newuidmap",
    "newgidmap",
    "subuid",
    "subgid",
    "token",
];

/// The process environment the checks depend on, passed in so tests can fix it.
#[derive(Debug, Clone)]
pub struct HostEnv {
    pub uid: u32,
    /// `USER` (or `LOGNAME`); used when the uid has no passwd entry under the root.
    pub user: Option<String>,
    pub path: Option<OsString>,
    pub xdg_runtime_dir: Option<PathBuf>,
}

impl HostEnv {
    pub fn from_process() -> HostEnv {
        let nonempty = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
        HostEnv {
            uid: crate::sys::uid(),
            user: nonempty("USER")
                .or_else(|| nonempty("LOGNAME"))
                .and_then(|v| v.into_string().ok()),
            path: nonempty("PATH"),
            xdg_runtime_dir: nonempty("XDG_RUNTIME_DIR").map(PathBuf::from),
        }
    }

    /// Every `prog` on PATH, in PATH order (regular files with an execute bit).
    pub fn which_all(&self, prog: &str) -> Vec<PathBuf> {
        use std::os::unix::fs::PermissionsExt;
        let Some(path) = &self.path else {
            return Vec::new();
        };
        let mut out: Vec<PathBuf> = Vec::new();
        for dir in std::env::split_paths(path) {
            if dir.as_os_str().is_empty() {
                continue;
            }
            let p = dir.join(prog);
            let ok = std::fs::metadata(&p)
                .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
                .unwrap_or(false);
            if ok && !out.contains(&p) {
                out.push(p);
            }
        }
        out
    }

    /// The first `prog` on PATH.
    pub fn which(&self, prog: &str) -> Option<PathBuf> {
        self.which_all(prog).into_iter().next()
    }
}

/// Where the checks look: a root directory for /etc, /proc, /sys, /var, /dev and /run, and the
/// environment.
#[derive(Debug, Clone)]
pub struct Host {
    pub root: PathBuf,
    pub env: HostEnv,
}

impl Host {
    /// This machine and this process.
    pub fn real() -> Host {
        Host {
            root: PathBuf::from("/"),
            env: HostEnv::from_process(),
        }
    }

    /// `abs` (an absolute path such as `/etc/subuid`) under the root.
    pub fn path(&self, abs: &str) -> PathBuf {
        self.root.join(abs.trim_start_matches('/'))
    }

    pub fn read(&self, abs: &str) -> std::io::Result<String> {
        std::fs::read_to_string(self.path(abs))
    }

    /// The user's name: the passwd entry for the uid under the root, else `USER`, else the uid.
    pub fn user_name(&self) -> String {
        self.read("/etc/passwd")
            .ok()
            .and_then(|t| passwd_name(&t, self.env.uid))
            .or_else(|| self.env.user.clone())
            .unwrap_or_else(|| self.env.uid.to_string())
    }
}

/// The name of `uid` in passwd-format text.
pub fn passwd_name(text: &str, uid: u32) -> Option<String> {
    text.lines().find_map(|l| {
        let mut f = l.split(':');
        let name = f.next()?;
        let id: u32 = f.nth(1)?.parse().ok()?;
        (id == uid && !name.is_empty()).then(|| name.to_string())
    })
}

/// What several checks need, gathered once.
#[derive(Debug)]
pub struct Facts {
    pub distro: Distro,
    pub user: String,
    pub uid: u32,
    /// From `podman info` when it answered, else "not root".
    pub rootless: bool,
    /// `podman info`, or why it failed (and whether podman is missing altogether).
    pub info: Result<podman::PodmanInfo, podman::InfoError>,
    pub podman: crate::podman::Podman,
    pub config_path: PathBuf,
}

impl Facts {
    pub async fn gather(cfg: &Config, host: &Host) -> Facts {
        let podman = crate::podman::Podman::from_config(&cfg.podman);
        let info = podman::info(&podman).await;
        let rootless = match &info {
            Ok(i) => i.host.security.rootless,
            Err(_) => host.env.uid != 0,
        };
        Facts {
            distro: Distro::detect(host),
            user: host.user_name(),
            uid: host.env.uid,
            rootless,
            info,
            podman,
            config_path: cfg.path.clone(),
        }
    }

    pub fn mode(&self) -> &'static str {
        if self.rootless {
            "rootless"
        } else {
            "rootful"
        }
    }
}

/// A Skip for a check that only matters to rootless Podman.
/// No config file yet: the checks that need pools were skipped. A warning, so that the text
/// output shows the fix.
pub fn no_config_check(path: &std::path::Path) -> Check {
    Check::new("config", "config file", Status::Warn)
        .found(format!(
            "{} does not exist: host checks ran with the defaults; pool checks (images, Docker per pool, GitHub access to the pools' repositories) were skipped",
            path.display()
        ))
        .why("podrunner needs a config naming at least one pool")
        .fix("podrunner config init OWNER/REPO   # writes a commented starter config; then run `podrunner doctor` again")
}

fn rootful_skip(id: &str, title: &str) -> Check {
    Check::new(id, title, Status::Skip).found("rootful Podman: not needed")
}

/// Every check, in the order a reader fixes them.
pub async fn run_all(cfg: &Config, host: &Host) -> Vec<Check> {
    let facts = Facts::gather(cfg, host).await;
    let mut out = vec![podman::check_podman(cfg, &facts)];
    out.push(podman::check_runtime(cfg, host, &facts).await);
    if facts.rootless {
        out.push(idmap::check_idmap_helper(host, &facts, "newuidmap"));
        out.push(idmap::check_idmap_helper(host, &facts, "newgidmap"));
        out.push(idmap::check_subids(host, &facts, "subuid"));
        out.push(idmap::check_subids(host, &facts, "subgid"));
    } else {
        for (id, title) in [
            ("newuidmap", "newuidmap"),
            ("newgidmap", "newgidmap"),
            ("subuid", "/etc/subuid"),
            ("subgid", "/etc/subgid"),
        ] {
            out.push(rootful_skip(id, title));
        }
    }
    out.push(host::check_cgroup(host, &facts));
    out.push(host::check_limits(cfg, host, &facts));
    if facts.rootless {
        out.push(host::check_linger(host, &facts));
        out.push(host::check_xdg_runtime_dir(host, &facts));
        out.push(host::check_network(cfg, host, &facts));
    } else {
        out.push(rootful_skip("linger", "lingering"));
        out.push(rootful_skip("xdg-runtime-dir", "XDG_RUNTIME_DIR"));
        out.push(rootful_skip("network", "rootless networking"));
    }
    out.push(podman::check_storage(&facts));
    out.extend(host::check_disk(cfg, &facts));
    out.extend(podman::check_images(cfg, &facts).await);
    out.extend(docker::check_docker_api(cfg, &facts));
    out.extend(docker::check_docker_bounds(cfg, &facts));
    out.extend(docker::check_docker_dns(cfg, &facts));
    let token = github::check_token_file(cfg);
    let token_ok = token.status == Status::Pass;
    out.push(token);
    out.extend(github::check_github(cfg, token_ok).await);
    out
}

/// The [`BLOCKING`] checks that fail on this host (empty: the manager may start).
pub async fn preflight(cfg: &Config, host: &Host) -> Vec<Check> {
    let facts = Facts::gather(cfg, host).await;
    let mut out = vec![podman::check_podman(cfg, &facts)];
    // Without a working podman the runtime check only repeats the same failure.
    if !out[0].is_fail() {
        out.push(podman::check_runtime(cfg, host, &facts).await);
    }
    if facts.rootless {
        out.push(idmap::check_idmap_helper(host, &facts, "newuidmap"));
        out.push(idmap::check_idmap_helper(host, &facts, "newgidmap"));
        out.push(idmap::check_subids(host, &facts, "subuid"));
        out.push(idmap::check_subids(host, &facts, "subgid"));
    }
    out.push(github::check_token_file(cfg));
    out.retain(|c| c.is_fail() && BLOCKING.contains(&c.id.as_str()));
    out
}

/// Indents every line after the first by `pad`.
fn indent(s: &str, pad: &str) -> String {
    s.lines().collect::<Vec<_>>().join(&format!("\n{pad}"))
}

/// One check as text: a status line; for warnings and failures found / why / fix below it.
pub fn render_check(c: &Check) -> String {
    const PAD: &str = "       ";
    match c.status {
        Status::Pass | Status::Skip => {
            format!(
                "{} {}: {}",
                c.status.label(),
                c.title,
                indent(&c.found, PAD)
            )
        }
        Status::Warn | Status::Fail => {
            let mut s = format!("{} {}", c.status.label(), c.title);
            s.push_str(&format!("\n  found: {}", indent(&c.found, PAD)));
            s.push_str(&format!("\n  why:   {}", indent(&c.why, PAD)));
            if let Some(f) = &c.fix {
                s.push_str(&format!("\n  fix:   {}", indent(f, PAD)));
            }
            s
        }
    }
}

/// `12 passed, 1 warning, 1 failed, 3 skipped`.
pub fn summary(checks: &[Check]) -> String {
    let n = |s: Status| checks.iter().filter(|c| c.status == s).count();
    let plural =
        |k: usize, one: &str, many: &str| format!("{k} {}", if k == 1 { one } else { many });
    format!(
        "{} passed, {}, {} failed, {} skipped",
        n(Status::Pass),
        plural(n(Status::Warn), "warning", "warnings"),
        n(Status::Fail),
        n(Status::Skip)
    )
}

/// The whole readable report.
pub fn render_text(checks: &[Check]) -> String {
    let mut s: String = checks
        .iter()
        .map(|c| render_check(c) + "\n")
        .collect::<String>();
    s.push('\n');
    s.push_str(&summary(checks));
    s.push('\n');
    s
}

/// The message `podrunner run` exits with when [`preflight`] found failures.
pub fn refusal(failed: &[Check]) -> String {
    let mut s = String::from("the host is not ready for podrunner:\n");
    for c in failed {
        s.push_str(&render_check(c));
        s.push('\n');
    }
    s.push_str("run `podrunner doctor` to see every check");
    s
}

/// The nearest existing directory at or above `p` (for free space of a folder not made yet).
pub fn existing_ancestor(p: &Path) -> Option<PathBuf> {
    p.ancestors().find(|a| a.exists()).map(Path::to_path_buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwd_lookup() {
        let t = "root:x:0:0:root:/root:/bin/bash\nci:x:1000:1000::/home/ci:/bin/sh\n";
        assert_eq!(passwd_name(t, 1000).as_deref(), Some("ci"));
        assert_eq!(passwd_name(t, 0).as_deref(), Some("root"));
        assert_eq!(passwd_name(t, 5), None);
    }

    #[test]
    fn render_and_summary() {
        let checks = vec![
            Check::new("podman", "podman", Status::Pass).found("4.3.1 (rootful)"),
            Check::new("token", "token file", Status::Fail)
                .found("/t has mode 644")
                .why("other users can read it")
                .fix("chmod 600 /t"),
            Check::new("linger", "lingering", Status::Skip).found("rootful"),
        ];
        let t = render_text(&checks);
        assert!(t.starts_with("PASS podman: 4.3.1 (rootful)\nFAIL token file\n  found: /t has mode 644\n  why:   other users can read it\n  fix:   chmod 600 /t\nSKIP lingering: rootful\n"), "{t}");
        assert!(
            t.ends_with("1 passed, 0 warnings, 1 failed, 1 skipped\n"),
            "{t}"
        );
        assert!(Status::Fail > Status::Warn && Status::Warn > Status::Pass);
        let j = serde_json::to_value(&checks[1]).unwrap();
        assert_eq!(j["status"], "fail");
        assert_eq!(j["fix"], "chmod 600 /t");
    }

    #[test]
    fn which_follows_path_order() {
        use std::os::unix::fs::PermissionsExt;
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        for d in [a.path(), b.path()] {
            let f = d.join("tool");
            std::fs::write(&f, "").unwrap();
            std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        std::fs::write(a.path().join("noexec"), "").unwrap();
        let env = HostEnv {
            uid: 1000,
            user: None,
            path: Some(std::env::join_paths([a.path(), b.path()]).unwrap()),
            xdg_runtime_dir: None,
        };
        assert_eq!(
            env.which_all("tool"),
            vec![a.path().join("tool"), b.path().join("tool")]
        );
        assert_eq!(env.which("noexec"), None);
    }
}
