//! Checks that ask Podman itself: is it there (`podman info`), does its OCI runtime start a
//! container, which storage driver it uses, and is each pool's image in local storage.

use super::distro::Pkg;
use super::{Check, Facts, Host, Status};
use crate::cmd::CommandError;
use crate::config::Config;
pub use crate::podman::info::{parse_info, PodmanInfo};
use std::time::Duration;

/// `podman info` answers in well under a second; the first rootless call may also migrate
/// storage, which on a loaded host takes a few seconds.
const INFO_TIMEOUT: Duration = Duration::from_secs(60);
/// The runtime check creates and starts one container from a local image.
const RUNTIME_TIMEOUT: Duration = Duration::from_secs(120);
/// podrunner is tested with Podman 4.3 (Debian 12) and 5.x; 3.x lacks flags it uses
/// (`rm --ignore -t`, `--entrypoint` JSON on some builds).
const MIN_PODMAN_MAJOR: u32 = 4;

/// Why `podman info` gave no answer.
#[derive(Debug, Clone, PartialEq)]
pub enum InfoError {
    /// The program is not there.
    Missing(String),
    /// It ran and failed (message), or printed something unreadable.
    Failed(String),
}

pub async fn info(podman: &crate::podman::Podman) -> Result<PodmanInfo, InfoError> {
    match podman
        .call(&["info", "--format", "json"], INFO_TIMEOUT)
        .await
    {
        Ok(out) => parse_info(&out).map_err(|e| InfoError::Failed(e.to_string())),
        Err(e) if e.is_not_found() => Err(InfoError::Missing(e.to_string())),
        Err(e) => Err(InfoError::Failed(e.to_string())),
    }
}

/// The major version of `4.3.1`, `5.2.0-dev`.
pub fn major(version: &str) -> Option<u32> {
    version.split('.').next()?.trim().parse().ok()
}

pub fn check_podman(cfg: &Config, facts: &Facts) -> Check {
    let c = Check::new("podman", "podman", Status::Pass);
    let why = "podrunner starts every runner as a Podman container";
    match &facts.info {
        Err(InfoError::Missing(e)) => c
            .with_status(Status::Fail)
            .found(format!(
                "`{}` is not installed or not on PATH ({e})",
                cfg.podman.path
            ))
            .why(why)
            .fix(facts.distro.install(&[Pkg::Podman])),
        Err(InfoError::Failed(e)) => {
            let mut fix = String::from("fix the error above");
            if e.contains("newuidmap") || e.contains("newgidmap") || e.contains("uid_map") {
                fix = format!(
                    "make newuidmap/newgidmap work (see those checks): {}",
                    facts.distro.install(&[Pkg::Uidmap])
                );
            } else if e.contains("OCI runtime") {
                fix = format!(
                    "set an installed runtime in {}:\n  [podman]\n  runtime = \"runc\"\nand install it: {}",
                    facts.config_path.display(),
                    facts.distro.install(&[Pkg::Runc])
                );
            } else if e.contains("XDG_RUNTIME_DIR") || e.contains("runtime dir") {
                fix = "see the XDG_RUNTIME_DIR check".into();
            }
            c.with_status(Status::Fail)
                .found(format!("`podman info` fails: {e}"))
                .why(why)
                .fix(fix)
        }
        Ok(i) => {
            let runtime = cfg
                .podman
                .runtime
                .clone()
                .unwrap_or_else(|| i.host.oci_runtime.name.clone());
            let found = format!(
                "{} ({}), runtime {}, cgroup {}, storage {}",
                i.version.version,
                facts.mode(),
                runtime,
                i.host.cgroup_version,
                i.store.graph_driver_name
            );
            match major(&i.version.version) {
                Some(m) if m < MIN_PODMAN_MAJOR => c
                    .with_status(Status::Warn)
                    .found(found)
                    .why(format!(
                        "podrunner is tested with Podman 4.3 and 5.x; {} may lack flags it uses",
                        i.version.version
                    ))
                    .fix(facts.distro.install(&[Pkg::Podman])),
                _ => c.found(found).why(why),
            }
        }
    }
}

/// What a failed test container says about the cause.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuntimeProblem {
    /// crun on a hybrid cgroup v1/v2 host.
    HybridCgroups,
    /// The default rlimits exceed the host's hard limits (root without CAP_SYS_RESOURCE).
    Rlimits,
    /// newuidmap/newgidmap or the subordinate id ranges.
    IdMapping,
    /// Rootless networking (slirp4netns/pasta, /dev/net/tun).
    Network,
    /// The container did start: only the test command is missing from the image.
    NoTrueInImage,
    Other,
}

pub fn classify_runtime_error(stderr: &str) -> RuntimeProblem {
    let s = stderr.to_ascii_lowercase();
    if s.contains("hybrid mode") {
        RuntimeProblem::HybridCgroups
    } else if s.contains("setrlimit") || s.contains("error setting rlimit") {
        RuntimeProblem::Rlimits
    } else if s.contains("newuidmap")
        || s.contains("newgidmap")
        || s.contains("uid_map")
        || s.contains("gid_map")
        || s.contains("subuid")
        || s.contains("insufficient uids")
    {
        RuntimeProblem::IdMapping
    } else if s.contains("/dev/net/tun") || s.contains("slirp4netns") || s.contains("pasta") {
        RuntimeProblem::Network
    } else if s.contains("executable file `true` not found")
        || s.contains("\"true\": executable file not found")
        || s.contains("exec: \"true\"")
    {
        RuntimeProblem::NoTrueInImage
    } else {
        RuntimeProblem::Other
    }
}

/// The hard limits for open files and processes from `/proc/self/limits` text.
pub fn hard_limits(text: &str) -> (Option<u64>, Option<u64>) {
    let hard = |prefix: &str| {
        text.lines().find(|l| l.starts_with(prefix)).and_then(|l| {
            let rest = l[prefix.len()..].split_whitespace().collect::<Vec<_>>();
            rest.get(1).and_then(|v| v.parse().ok())
        })
    };
    (hard("Max open files"), hard("Max processes"))
}

/// Whether `args` choose a network (then the test container keeps it).
fn sets_network(args: &[String]) -> bool {
    args.iter().any(|a| {
        a == "--network" || a == "--net" || a.starts_with("--network=") || a.starts_with("--net=")
    })
}

/// Starts `podman run --rm IMAGE true` with the configured runtime, global `run_args` and the
/// pool's `run_args`, as a runner would start.
pub async fn check_runtime(cfg: &Config, host: &Host, facts: &Facts) -> Check {
    let title = "OCI runtime starts a container";
    let c = Check::new("runtime", title, Status::Pass);
    let why = "every runner is a container: if the runtime cannot start one, no job ever runs";
    let info = match &facts.info {
        Ok(i) => i,
        Err(_) => {
            return c
                .with_status(Status::Skip)
                .found("podman does not work (see the podman check)")
        }
    };
    let runtime = cfg
        .podman
        .runtime
        .clone()
        .unwrap_or_else(|| info.host.oci_runtime.name.clone());
    // The first pool whose image is local, else any local image.
    let mut chosen: Option<(String, Vec<String>)> = None;
    for p in &cfg.pools {
        if let Ok(true) = facts.podman.image_exists(&p.image).await {
            chosen = Some((p.image.clone(), p.run_args.clone()));
            break;
        }
    }
    if chosen.is_none() {
        if let Ok(out) = facts
            .podman
            .call(
                &["images", "--format", "{{.Repository}}:{{.Tag}}"],
                INFO_TIMEOUT,
            )
            .await
        {
            chosen = String::from_utf8_lossy(&out)
                .lines()
                .map(str::trim)
                .find(|l| !l.is_empty() && !l.contains("<none>"))
                .map(|l| (l.to_string(), Vec::new()));
        }
    }
    let Some((image, pool_args)) = chosen else {
        let img = cfg
            .pools
            .first()
            .map(|p| p.image.as_str())
            .unwrap_or("IMAGE");
        return c
            .with_status(Status::Warn)
            .found("no image in local storage to start a test container from")
            .why("cannot tell whether the runtime starts containers until an image is local")
            .fix(format!(
                "podman pull {img}, then run podrunner doctor again"
            ));
    };
    let mut args: Vec<String> = vec!["run".into(), "--rm".into()];
    args.extend(cfg.podman.run_args.iter().cloned());
    args.extend(pool_args);
    if !sets_network(&args) {
        args.push("--network=none".into());
    }
    args.push(image.clone());
    args.push("true".into());
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let shown = crate::cmd::render(&cfg.podman.path, &[global_args(cfg), args.clone()].concat());
    match facts.podman.call(&argv, RUNTIME_TIMEOUT).await {
        Ok(_) => c.found(format!(
            "{runtime} started and stopped a container from {image}"
        )),
        Err(e) => {
            let stderr = match &e {
                CommandError::Failed { stderr, .. } => stderr.clone(),
                other => other.to_string(),
            };
            let problem = classify_runtime_error(&stderr);
            if problem == RuntimeProblem::NoTrueInImage {
                return c.found(format!(
                    "{runtime} started a container from {image} (the image has no `true`)"
                ));
            }
            let found = format!("`{shown}` failed: {stderr}");
            let config = facts.config_path.display();
            let fix = match problem {
                RuntimeProblem::HybridCgroups => format!(
                    "use runc: {}\nand set in {config}:\n  [podman]\n  runtime = \"runc\"\nor boot with cgroup v2: {}",
                    facts.distro.install(&[Pkg::Runc]),
                    facts.distro.cgroup_v2_boot()
                ),
                RuntimeProblem::Rlimits => {
                    let (nofile, nproc) = host
                        .read("/proc/self/limits")
                        .map(|t| hard_limits(&t))
                        .unwrap_or((None, None));
                    let n = |v: Option<u64>| v.map(|v| v.to_string()).unwrap_or_else(|| "N".into());
                    let (f, p) = (n(nofile), n(nproc));
                    format!("keep the container's rlimits within the host's hard limits; in {config}:\n  [podman]\n  run_args = [\"--ulimit=nofile={f}:{f}\", \"--ulimit=nproc={p}:{p}\"]\nor default_ulimits = [\"nofile={f}:{f}\", \"nproc={p}:{p}\"] under [containers] in containers.conf")
                }
                RuntimeProblem::IdMapping => format!(
                    "see the newuidmap and subuid checks; {}",
                    facts.distro.install(&[Pkg::Uidmap])
                ),
                RuntimeProblem::Network => "see the rootless networking check, or set run_args = [\"--network=host\"] for the pool".into(),
                RuntimeProblem::NoTrueInImage | RuntimeProblem::Other => format!(
                    "run the command above by hand to see the whole error; try another runtime with runtime = \"runc\" under [podman] in {config} ({})",
                    facts.distro.install(&[Pkg::Runc])
                ),
            };
            c.with_status(Status::Fail).found(found).why(why).fix(fix)
        }
    }
}

fn global_args(cfg: &Config) -> Vec<String> {
    let mut g = Vec::new();
    if let Some(r) = &cfg.podman.runtime {
        g.push(format!("--runtime={r}"));
    }
    g.extend(cfg.podman.global_args.iter().cloned());
    g
}

pub fn check_storage(facts: &Facts) -> Check {
    let c = Check::new("storage", "storage driver", Status::Pass);
    let Ok(info) = &facts.info else {
        return c
            .with_status(Status::Skip)
            .found("podman does not work (see the podman check)");
    };
    let s = &info.store;
    match s.graph_driver_name.as_str() {
        "overlay" => {
            let how = match s.mount_program() {
                Some(p) => format!("through {p}"),
                None if s.graph_status.get("Native Overlay Diff").map(String::as_str) == Some("true") => "native".into(),
                None => "kernel".into(),
            };
            c.found(format!("overlay ({how}) at {}", s.graph_root))
        }
        "vfs" => c
            .with_status(Status::Warn)
            .found(format!("vfs at {}", s.graph_root))
            .why("vfs copies every image layer in full for every container: each runner start copies the whole image (slow, and gigabytes of disk per runner)")
            .fix(format!(
                "{}\nthen set driver = \"overlay\" in ~/.config/containers/storage.conf (rootless) or /etc/containers/storage.conf, and run `podman system reset` (deletes local images and containers)",
                facts.distro.install(&[Pkg::FuseOverlayfs])
            )),
        other => c.found(format!("{other} at {}", s.graph_root)),
    }
}

pub async fn check_images(cfg: &Config, facts: &Facts) -> Vec<Check> {
    let mut out = Vec::new();
    for p in &cfg.pools {
        let c = Check::new(
            format!("image:{}", p.name),
            format!("image of pool {}", p.name),
            Status::Pass,
        );
        if facts.info.is_err() {
            out.push(
                c.with_status(Status::Skip)
                    .found("podman does not work (see the podman check)"),
            );
            continue;
        }
        let c = match facts.podman.image_exists(&p.image).await {
            Ok(true) => c.found(format!("{} is in local storage", p.image)),
            // A localhost/ name only ever exists locally: no registry can supply it.
            Ok(false) if p.image.starts_with("localhost/") => c
                .with_status(Status::Fail)
                .found(format!("{} is not in local storage", p.image))
                .why("a localhost/ image cannot be pulled: every runner of this pool would fail to start")
                .fix(format!("build or load it as the user podrunner runs as (podman build -t {0} ..., or podman load -i FILE), or change image = in the pool", p.image)),
            Ok(false) => c
                .with_status(Status::Warn)
                .found(format!("{} is not in local storage; it will be pulled at the first start", p.image))
                .why("the first runner waits for the pull, and fails if the registry cannot be reached")
                .fix(format!("podman pull {}", p.image)),
            Err(e) => c
                .with_status(Status::Warn)
                .found(format!("cannot check {}: {e}", p.image))
                .why("the image is needed for every runner of this pool"),
        };
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runtime_errors_are_classified() {
        use RuntimeProblem::*;
        let cases = [
            ("Error: OCI runtime error: crun: cgroups in hybrid mode not supported, drop all controllers from cgroupv2", HybridCgroups),
            ("Error: runc: runc create failed: unable to start container process: error during container init: error setting rlimits for ready process: error setting rlimit type 7: operation not permitted: OCI permission denied", Rlimits),
            ("Error: crun: setrlimit `RLIMIT_NOFILE`: Operation not permitted: OCI permission denied", Rlimits),
            ("Error: command required for rootless mode with multiple IDs: exec: \"newuidmap\": executable file not found in $PATH", IdMapping),
            ("newuidmap: write to uid_map failed: Operation not permitted", IdMapping),
            ("Error: slirp4netns failed: \"open(\\\"/dev/net/tun\\\"): Permission denied\"", Network),
            ("Error: runc: exec: \"true\": executable file not found in $PATH: OCI runtime attempted to invoke a command that was not found", NoTrueInImage),
            ("Error: something else", Other),
        ];
        for (s, want) in cases {
            assert_eq!(classify_runtime_error(s), want, "{s}");
        }
    }

    #[test]
    fn proc_limits() {
        let t = "Limit                     Soft Limit           Hard Limit           Units     \nMax processes             96365                96365                processes \nMax open files            1024                 20000                files     \n";
        assert_eq!(hard_limits(t), (Some(20000), Some(96365)));
        assert_eq!(hard_limits(""), (None, None));
    }

    #[test]
    fn network_flag_detection() {
        let v = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert!(sets_network(&v(&["--network=host"])));
        assert!(sets_network(&v(&["--net", "host"])));
        assert!(!sets_network(&v(&["--ulimit=nofile=1:1"])));
    }
}
