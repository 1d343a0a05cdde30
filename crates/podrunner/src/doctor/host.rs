//! Checks of the host around Podman: cgroups and whether resource limits can be enforced, the
//! user's session (lingering, XDG_RUNTIME_DIR), rootless networking and free disk space.

use super::distro::{Distro, Pkg};
use super::{Check, Facts, Host, Status};
use crate::config::Config;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

const GIB: u64 = 1024 * 1024 * 1024;
/// Below this a warning: a runner image unpacks to ~2 GiB, and a few jobs' checkouts and build
/// outputs take several more.
pub const WARN_FREE_BYTES: u64 = 10 * GIB;
/// Below this a failure: one image pull or one job's checkout can fill the disk, and a full
/// disk breaks Podman's storage for every runner.
pub const FAIL_FREE_BYTES: u64 = GIB;

/// The cgroup layout under `<root>/sys/fs/cgroup`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cgroups {
    /// The unified hierarchy; the root's controllers.
    V2(Vec<String>),
    /// v1 controllers plus a cgroup2 mount at `unified` (systemd's hybrid mode).
    Hybrid,
    V1,
    Unknown,
}

impl Cgroups {
    pub fn detect(host: &Host) -> Cgroups {
        if let Ok(t) = host.read("/sys/fs/cgroup/cgroup.controllers") {
            return Cgroups::V2(parse_controllers(&t));
        }
        if host.path("/sys/fs/cgroup/unified").is_dir() {
            return Cgroups::Hybrid;
        }
        if ["memory", "cpu", "pids"]
            .iter()
            .any(|c| host.path(&format!("/sys/fs/cgroup/{c}")).is_dir())
        {
            return Cgroups::V1;
        }
        Cgroups::Unknown
    }

    pub fn describe(&self) -> String {
        match self {
            Cgroups::V2(c) => format!("cgroup v2 (controllers: {})", c.join(" ")),
            Cgroups::Hybrid => "cgroup v1 (hybrid: v1 controllers plus a cgroup2 mount)".into(),
            Cgroups::V1 => "cgroup v1".into(),
            Cgroups::Unknown => "no cgroup hierarchy found under /sys/fs/cgroup".into(),
        }
    }
}

/// The words of a `cgroup.controllers` file.
pub fn parse_controllers(text: &str) -> Vec<String> {
    text.split_whitespace().map(str::to_string).collect()
}

/// The controllers systemd delegated to `uid`'s user manager, if it runs.
pub fn delegated(host: &Host, uid: u32) -> Option<Vec<String>> {
    host.read(&format!(
        "/sys/fs/cgroup/user.slice/user-{uid}.slice/user@{uid}.service/cgroup.controllers"
    ))
    .ok()
    .map(|t| parse_controllers(&t))
}

pub fn check_cgroup(host: &Host, facts: &Facts) -> Check {
    let cg = Cgroups::detect(host);
    let mut found = cg.describe();
    if let (Cgroups::V2(_), true) = (&cg, facts.rootless) {
        match delegated(host, facts.uid) {
            Some(d) => found.push_str(&format!(
                "; delegated to {}: {}",
                facts.user,
                if d.is_empty() {
                    "none".into()
                } else {
                    d.join(" ")
                }
            )),
            None => found.push_str(&format!("; no systemd user session for uid {}", facts.uid)),
        }
    }
    let c = Check::new("cgroup", "cgroups", Status::Pass)
        .found(found)
        .why("Podman enforces cpus, memory and pids_limit through cgroups");
    if cg == Cgroups::Unknown {
        return c
            .with_status(Status::Warn)
            .fix(facts.distro.cgroup_v2_boot());
    }
    c
}

/// The limits the pools ask for, as (controller, which pools and values).
pub fn requested_limits(cfg: &Config) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    let cpus: Vec<String> = cfg
        .pools
        .iter()
        .filter_map(|p| p.cpus.map(|c| format!("{} cpus={c}", p.name)))
        .collect();
    if !cpus.is_empty() {
        out.push(("cpu", cpus.join(", ")));
    }
    let mem: Vec<String> = cfg
        .pools
        .iter()
        .filter_map(|p| p.memory.map(|m| format!("{} memory={}b", p.name, m.0)))
        .collect();
    if !mem.is_empty() {
        out.push(("memory", mem.join(", ")));
    }
    if !cfg.pools.is_empty() {
        // pids_limit always has a value (config::DEFAULT_PIDS_LIMIT).
        out.push(("pids", "pids_limit of every pool".to_string()));
    }
    out
}

/// Warns when limits the config sets cannot be enforced: Podman then starts the containers
/// without them, printing a warning nobody reads.
pub fn check_limits(cfg: &Config, host: &Host, facts: &Facts) -> Check {
    let c = Check::new("limits", "resource limits enforced", Status::Pass);
    let wanted = requested_limits(cfg);
    let named = |w: &[(&str, String)]| {
        w.iter()
            .map(|(_, s)| s.as_str())
            .collect::<Vec<_>>()
            .join("; ")
    };
    if wanted.is_empty() {
        return c.found("no pool");
    }
    let why = "Podman silently ignores cpus, memory and pids_limit it cannot enforce: the runners then run without them, and one job can take the whole machine";
    let cg = Cgroups::detect(host);
    if !facts.rootless {
        return c.found(format!(
            "rootful on {}: {} enforced",
            cg.describe(),
            named(&wanted)
        ));
    }
    let v2_fix = format!(
        "boot with cgroup v2: {}\nthen delegate the controllers to users: {}",
        facts.distro.cgroup_v2_boot(),
        facts.distro.delegate()
    );
    match cg {
        Cgroups::V2(_) => match delegated(host, facts.uid) {
            Some(d) => {
                let missing: Vec<(&str, String)> = wanted
                    .iter()
                    .filter(|(ctl, _)| !d.iter().any(|x| x == ctl))
                    .cloned()
                    .collect();
                if missing.is_empty() {
                    return c.found(format!(
                        "controllers delegated to {}: {}",
                        facts.user,
                        d.join(" ")
                    ));
                }
                let names: Vec<&str> = missing.iter().map(|(c, _)| *c).collect();
                c.with_status(Status::Warn)
                    .found(format!(
                        "rootless on cgroup v2, but {} not delegated to {} (delegated: {}); not enforced: {}",
                        names.join(", "),
                        facts.user,
                        if d.is_empty() { "none".into() } else { d.join(" ") },
                        named(&missing)
                    ))
                    .why(why)
                    .fix(facts.distro.delegate())
            }
            None => c
                .with_status(Status::Warn)
                .found(format!(
                    "rootless on cgroup v2 without a systemd user session for uid {} (no user@{}.service cgroup): not enforced: {}",
                    facts.uid,
                    facts.uid,
                    named(&wanted)
                ))
                .why(why)
                .fix(format!(
                    "run podrunner in a systemd user session: {}\nand delegate the controllers: {}",
                    facts.distro.linger(&facts.user),
                    facts.distro.delegate()
                )),
        },
        Cgroups::Hybrid | Cgroups::V1 => c
            .with_status(Status::Warn)
            .found(format!(
                "rootless on {}: not enforced: {}",
                cg.describe(),
                named(&wanted)
            ))
            .why(format!("{why}. Rootless Podman cannot set limits on cgroup v1 at all"))
            .fix(v2_fix),
        Cgroups::Unknown => c
            .with_status(Status::Warn)
            .found(format!("{}; not enforced: {}", cg.describe(), named(&wanted)))
            .why(why)
            .fix(v2_fix),
    }
}

pub fn check_linger(host: &Host, facts: &Facts) -> Check {
    let c = Check::new("linger", "lingering", Status::Pass);
    if !host.path("/run/systemd/system").is_dir() {
        return c
            .with_status(Status::Skip)
            .found("systemd is not the init system: nothing stops the user's processes at logout");
    }
    let user = &facts.user;
    let f = format!("/var/lib/systemd/linger/{user}");
    if host.path(&f).exists() {
        return c.found(format!("enabled for {user}"));
    }
    c.with_status(Status::Warn)
        .found(format!("not enabled for {user} ({f} does not exist)"))
        .why("without lingering systemd stops the user's services, the manager and every runner, when the user's last session ends, and does not start them at boot")
        .fix(facts.distro.linger(user))
}

pub fn check_xdg_runtime_dir(host: &Host, facts: &Facts) -> Check {
    let c = Check::new("xdg-runtime-dir", "XDG_RUNTIME_DIR", Status::Pass);
    let (user, uid) = (&facts.user, facts.uid);
    let make = if host.path("/run/systemd/system").is_dir() {
        format!("log in as {user} through a real session (ssh, or: sudo machinectl shell {user}@); su and sudo do not create it. With lingering ({}) it exists from boot. Then: export XDG_RUNTIME_DIR=/run/user/{uid}", facts.distro.linger(user))
    } else {
        format!("sudo install -d -m 0700 -o {user} /run/user/{uid}\nthen: export XDG_RUNTIME_DIR=/run/user/{uid}")
    };
    let Some(dir) = &host.env.xdg_runtime_dir else {
        return c
            .with_status(Status::Warn)
            .found("XDG_RUNTIME_DIR is not set")
            .why("rootless Podman keeps its runtime state (locks, network namespaces, conmon sockets) there; unset, it falls back to /tmp, which tmp cleaners empty under running containers")
            .fix(make);
    };
    let why = "rootless Podman keeps its runtime state there and refuses a directory the user does not own";
    match std::fs::metadata(dir) {
        Err(e) => c
            .with_status(Status::Fail)
            .found(format!(
                "XDG_RUNTIME_DIR={} cannot be used: {e}",
                dir.display()
            ))
            .why(why)
            .fix(make),
        Ok(m) if !m.is_dir() || m.uid() != uid => c
            .with_status(Status::Fail)
            .found(format!(
                "XDG_RUNTIME_DIR={} is owned by uid {}, not {user} (uid {uid})",
                dir.display(),
                m.uid()
            ))
            .why(why)
            .fix(make),
        // Podman itself makes it 0711: search without read or write for others is fine.
        Ok(m) if m.mode() & 0o066 != 0 => c
            .with_status(Status::Warn)
            .found(format!(
                "XDG_RUNTIME_DIR={} has mode {:o}: other users can read or write it",
                dir.display(),
                m.mode() & 0o777
            ))
            .why("other users can reach the user's Podman sockets and runtime state")
            .fix(format!("chmod 700 {}", dir.display())),
        Ok(m) => c.found(format!(
            "{} (owned by {user}, mode {:o})",
            dir.display(),
            m.mode() & 0o777
        )),
    }
}

/// Whether these podman run arguments select the host network.
fn host_network(args: &[String]) -> bool {
    args.iter().enumerate().any(|(i, a)| {
        matches!(a.as_str(), "--network=host" | "--net=host")
            || (matches!(a.as_str(), "--network" | "--net")
                && args.get(i + 1).map(String::as_str) == Some("host"))
    })
}

/// The pools that need user-mode networking (they do not use `--network=host`).
pub fn pools_needing_network(cfg: &Config) -> Vec<String> {
    cfg.pools
        .iter()
        .filter(|p| !host_network(&[cfg.podman.run_args.clone(), p.run_args.clone()].concat()))
        .map(|p| p.name.to_string())
        .collect()
}

pub fn check_network(cfg: &Config, host: &Host, facts: &Facts) -> Check {
    let c = Check::new("network", "rootless networking", Status::Pass);
    let pools = pools_needing_network(cfg);
    if pools.is_empty() {
        return c.found("every pool uses --network=host: no user-mode networking needed");
    }
    let why = format!(
        "rootless containers reach the network through slirp4netns or pasta, which need /dev/net/tun; without them the runners of {} cannot start",
        pools.join(", ")
    );
    let (wanted, pkg) = match &facts.info {
        Ok(i) if i.host.rootless_network_cmd == "pasta" => ("pasta", Pkg::Passt),
        _ => ("slirp4netns", Pkg::Slirp4netns),
    };
    let helper = host.env.which(wanted).or_else(|| {
        facts.info.as_ref().ok().and_then(|i| {
            let e = if wanted == "pasta" {
                &i.host.pasta.executable
            } else {
                &i.host.slirp4netns.executable
            };
            Some(PathBuf::from(e)).filter(|p| !e.is_empty() && p.exists())
        })
    });
    let other = if wanted == "pasta" {
        "slirp4netns"
    } else {
        "pasta"
    };
    let Some(helper) = helper else {
        let alt = host.env.which(other);
        return c
            .with_status(Status::Fail)
            .found(match alt {
                Some(a) => format!(
                    "{wanted} (Podman's default) is not installed; {} is",
                    a.display()
                ),
                None => "neither slirp4netns nor pasta is installed".into(),
            })
            .why(why)
            .fix(facts.distro.install(&[pkg]));
    };
    let tun = host.path("/dev/net/tun");
    let tun_fix = format!(
        "sudo chmod 0666 /dev/net/tun (to keep it across reboots: echo 'KERNEL==\"tun\", MODE=\"0666\"' | sudo tee /etc/udev/rules.d/60-tun.rules)\nor give the pools run_args = [\"--network=host\"] in {}",
        facts.config_path.display()
    );
    if !tun.exists() {
        return c
            .with_status(Status::Fail)
            .found(format!("{} found, but /dev/net/tun does not exist", helper.display()))
            .why(why)
            .fix(match facts.distro {
                Distro::NixOS => "in /etc/nixos/configuration.nix: boot.kernelModules = [ \"tun\" ]; then: sudo nixos-rebuild switch",
                _ => "sudo modprobe tun && echo tun | sudo tee /etc/modules-load.d/tun.conf",
            });
    }
    use rustix::fs::Access;
    if let Err(e) = rustix::fs::access(&tun, Access::READ_OK | Access::WRITE_OK) {
        let mode = std::fs::metadata(&tun)
            .map(|m| format!("{:o}", m.mode() & 0o777))
            .unwrap_or_else(|_| "?".into());
        return c
            .with_status(Status::Fail)
            .found(format!(
                "{} found, but /dev/net/tun (mode {mode}) is not read/writable by {}: {e}",
                helper.display(),
                facts.user
            ))
            .why(why)
            .fix(tun_fix);
    }
    c.found(format!("{}; /dev/net/tun usable", helper.display()))
}

/// Pass, Warn or Fail for free bytes.
pub fn judge_free(bytes: u64) -> Status {
    if bytes < FAIL_FREE_BYTES {
        Status::Fail
    } else if bytes < WARN_FREE_BYTES {
        Status::Warn
    } else {
        Status::Pass
    }
}

/// Bytes available to unprivileged users on the filesystem holding `p`.
pub fn free_bytes(p: &Path) -> std::io::Result<u64> {
    let s = rustix::fs::statvfs(p)?;
    Ok(s.f_bavail.saturating_mul(s.f_frsize))
}

fn gib(b: u64) -> String {
    format!("{:.1} GiB", b as f64 / GIB as f64)
}

/// Free space under Podman's storage and each pool's work folder.
pub fn check_disk(cfg: &Config, facts: &Facts) -> Vec<Check> {
    let mut paths: Vec<(PathBuf, String)> = Vec::new();
    if let Ok(i) = &facts.info {
        if !i.store.graph_root.is_empty() {
            paths.push((
                PathBuf::from(&i.store.graph_root),
                "Podman's storage".into(),
            ));
        }
    }
    for p in &cfg.pools {
        if !paths.iter().any(|(x, _)| x == &p.work_dir) {
            paths.push((
                p.work_dir.clone(),
                format!("work folder of pool {}", p.name),
            ));
        }
    }
    paths
        .into_iter()
        .map(|(path, what)| {
            let c = Check::new(
                format!("disk:{}", path.display()),
                format!("free space under {}", path.display()),
                Status::Pass,
            );
            let Some(at) = super::existing_ancestor(&path) else {
                return c.with_status(Status::Skip).found("no existing folder above it");
            };
            match free_bytes(&at) {
                Err(e) => c
                    .with_status(Status::Warn)
                    .found(format!("cannot measure {}: {e}", at.display()))
                    .why("a full disk stops every runner"),
                Ok(b) => {
                    let st = judge_free(b);
                    let c = c.with_status(st).found(format!("{} free ({what})", gib(b)));
                    if st == Status::Pass {
                        c
                    } else {
                        c.why(format!(
                            "images, containers and job checkouts need room: below {} a warning, below {} pulls and jobs start failing",
                            gib(WARN_FREE_BYTES),
                            gib(FAIL_FREE_BYTES)
                        ))
                        .fix(format!(
                            "free space on the filesystem of {}: podman system prune -a (removes unused images), or move it to a larger disk",
                            at.display()
                        ))
                    }
                }
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controllers_file() {
        assert_eq!(
            parse_controllers("cpuset cpu io memory hugetlb pids rdma misc\n"),
            vec!["cpuset", "cpu", "io", "memory", "hugetlb", "pids", "rdma", "misc"]
        );
        assert!(parse_controllers("\n").is_empty());
    }

    #[test]
    fn free_space_thresholds() {
        assert_eq!(judge_free(0), Status::Fail);
        assert_eq!(judge_free(GIB - 1), Status::Fail);
        assert_eq!(judge_free(GIB), Status::Warn);
        assert_eq!(judge_free(10 * GIB - 1), Status::Warn);
        assert_eq!(judge_free(10 * GIB), Status::Pass);
    }

    #[test]
    fn host_network_flags() {
        let v = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert!(host_network(&v(&["--network=host"])));
        assert!(host_network(&v(&["--ulimit=x", "--net", "host"])));
        assert!(!host_network(&v(&["--network=none"])));
        assert!(!host_network(&v(&["--network", "bridge"])));
    }
}
