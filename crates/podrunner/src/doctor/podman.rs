//! Checks that ask Podman itself: is it there (`podman info`), does its OCI runtime start a
//! container, which storage driver it uses, and is each pool's image in local storage.

use super::distro::Pkg;
use super::{Check, Facts, Host, Status};
use crate::cmd::CommandError;
use crate::config::Config;
use serde::Deserialize;
use std::time::Duration;

/// `podman info` answers in well under a second; the first rootless call may also migrate
/// storage, which on a loaded host takes a few seconds.
const INFO_TIMEOUT: Duration = Duration::from_secs(60);
/// The runtime check creates and starts one container from a local image.
const RUNTIME_TIMEOUT: Duration = Duration::from_secs(120);
/// podrunner is tested with Podman 4.3 (Debian 12) and 5.x; 3.x lacks flags it uses
/// (`rm --ignore -t`, `--entrypoint` JSON on some builds).
const MIN_PODMAN_MAJOR: u32 = 4;

fn null_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// The parts of `podman info --format json` the checks read. Podman 4.3 and 5.x print the same
/// keys for these, except 5.x adds `host.pasta` and `host.rootlessNetworkCmd`; everything has a
/// default so other versions parse too.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default)]
pub struct PodmanInfo {
    pub host: InfoHost,
    pub store: InfoStore,
    pub version: InfoVersion,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default, rename_all = "camelCase")]
pub struct InfoHost {
    /// `v1` or `v2`.
    pub cgroup_version: String,
    /// `cgroupfs` or `systemd`.
    pub cgroup_manager: String,
    #[serde(deserialize_with = "null_default")]
    pub cgroup_controllers: Vec<String>,
    pub oci_runtime: InfoHelper,
    pub security: InfoSecurity,
    /// `netavark` or `cni`.
    pub network_backend: String,
    pub slirp4netns: InfoHelper,
    pub pasta: InfoHelper,
    /// 5.x: `pasta` or `slirp4netns`, the default rootless network.
    pub rootless_network_cmd: String,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default)]
pub struct InfoHelper {
    pub name: String,
    pub path: String,
    pub executable: String,
    pub package: String,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default)]
pub struct InfoSecurity {
    pub rootless: bool,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default, rename_all = "camelCase")]
pub struct InfoStore {
    pub graph_driver_name: String,
    pub graph_root: String,
    #[serde(deserialize_with = "null_default")]
    pub graph_options: serde_json::Map<String, serde_json::Value>,
    #[serde(deserialize_with = "null_default")]
    pub graph_status: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default)]
pub struct InfoVersion {
    #[serde(rename = "Version")]
    pub version: String,
}

impl InfoStore {
    /// The FUSE program overlay runs through (`fuse-overlayfs`), if any.
    pub fn mount_program(&self) -> Option<String> {
        let v = self.graph_options.get("overlay.mount_program")?;
        v.get("Executable")
            .and_then(|e| e.as_str())
            .or_else(|| v.as_str())
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    }
}

/// Why `podman info` gave no answer.
#[derive(Debug, Clone, PartialEq)]
pub enum InfoError {
    /// The program is not there.
    Missing(String),
    /// It ran and failed (message), or printed something unreadable.
    Failed(String),
}

pub fn parse_info(json: &[u8]) -> Result<PodmanInfo, String> {
    serde_json::from_slice(json).map_err(|e| format!("cannot read `podman info` output: {e}"))
}

pub async fn info(podman: &crate::podman::Podman) -> Result<PodmanInfo, InfoError> {
    match podman
        .call(&["info", "--format", "json"], INFO_TIMEOUT)
        .await
    {
        Ok(out) => parse_info(&out).map_err(InfoError::Failed),
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

    /// `podman info --format json` from Podman 4.3.1 on Debian 12 (this project's CI host,
    /// rootful, abridged).
    const INFO_4_3: &str = r#"{
  "host": {"arch": "amd64", "buildahVersion": "1.28.2", "cgroupManager": "cgroupfs",
    "cgroupVersion": "v1",
    "cgroupControllers": ["cpuset","cpu","cpuacct","blkio","memory","devices","freezer","pids"],
    "conmon": {"package": "conmon_2.1.6+ds1-1_amd64", "path": "/usr/bin/conmon", "version": "conmon version 2.1.6, commit: unknown"},
    "distribution": {"distribution": "debian", "version": "12", "codename": "bookworm"},
    "idMappings": {"gidmap": null, "uidmap": null},
    "networkBackend": "netavark",
    "ociRuntime": {"name": "runc", "package": "runc_1.1.5+ds1-1+deb12u1_amd64", "path": "/usr/bin/runc", "version": "runc version 1.1.5+ds1"},
    "security": {"apparmorEnabled": false, "rootless": false, "seccompEnabled": true},
    "slirp4netns": {"executable": "/usr/bin/slirp4netns", "package": "slirp4netns_1.2.0-1_amd64", "version": "slirp4netns version 1.2.0"}
  },
  "store": {"configFile": "/usr/share/containers/storage.conf", "graphDriverName": "overlay",
    "graphOptions": {}, "graphRoot": "/var/lib/containers/storage",
    "graphStatus": {"Backing Filesystem": "extfs", "Native Overlay Diff": "true", "Supports d_type": "true", "Using metacopy": "false"},
    "imageStore": {"number": 1}, "runRoot": "/run/containers/storage"},
  "registries": {},
  "version": {"APIVersion": "4.3.1", "Version": "4.3.1", "GoVersion": "go1.19.8", "Os": "linux"}
}"#;

    /// The shape Podman 5.x prints rootless on a cgroup v2 host with pasta (abridged).
    const INFO_5: &str = r#"{
  "host": {"arch": "amd64", "cgroupManager": "systemd", "cgroupVersion": "v2",
    "cgroupControllers": ["cpu", "memory", "pids"],
    "databaseBackend": "sqlite",
    "idMappings": {"gidmap": [{"container_id": 0, "host_id": 1000, "size": 1}, {"container_id": 1, "host_id": 524288, "size": 65536}],
                   "uidmap": [{"container_id": 0, "host_id": 1000, "size": 1}, {"container_id": 1, "host_id": 524288, "size": 65536}]},
    "networkBackend": "netavark",
    "networkBackendInfo": {"backend": "netavark", "package": "netavark-1.12.2-1.fc40.x86_64", "path": "/usr/libexec/podman/netavark"},
    "ociRuntime": {"name": "crun", "package": "crun-1.17-1.fc40.x86_64", "path": "/usr/bin/crun", "version": "crun version 1.17"},
    "pasta": {"executable": "/usr/bin/pasta", "package": "passt-0^20240906.g6b38f07-1.fc40.x86_64", "version": "pasta 0^20240906.g6b38f07-1.fc40.x86_64\n"},
    "rootlessNetworkCmd": "pasta",
    "security": {"rootless": true, "seccompEnabled": true, "selinuxEnabled": true},
    "slirp4netns": {"executable": "", "package": "", "version": ""}
  },
  "store": {"graphDriverName": "overlay",
    "graphOptions": {"overlay.mount_program": {"Executable": "/usr/bin/fuse-overlayfs", "Package": "fuse-overlayfs-1.13-1.fc40.x86_64", "Version": "fusermount3 version: 3.16.2"}},
    "graphRoot": "/home/ci/.local/share/containers/storage",
    "graphStatus": {"Backing Filesystem": "btrfs", "Native Overlay Diff": "false", "Supports d_type": "true"},
    "imageStore": {"number": 3}},
  "version": {"APIVersion": "5.2.2", "Version": "5.2.2", "GoVersion": "go1.22.6", "Os": "linux"}
}"#;

    #[test]
    fn parses_podman_4_3_info() {
        let i = parse_info(INFO_4_3.as_bytes()).unwrap();
        assert_eq!(i.version.version, "4.3.1");
        assert!(!i.host.security.rootless);
        assert_eq!(i.host.cgroup_version, "v1");
        assert!(i.host.cgroup_controllers.contains(&"memory".to_string()));
        assert_eq!(i.host.oci_runtime.name, "runc");
        assert_eq!(i.host.network_backend, "netavark");
        assert_eq!(i.host.slirp4netns.executable, "/usr/bin/slirp4netns");
        assert_eq!(i.host.rootless_network_cmd, "");
        assert_eq!(i.store.graph_driver_name, "overlay");
        assert_eq!(i.store.graph_root, "/var/lib/containers/storage");
        assert_eq!(i.store.mount_program(), None);
        assert_eq!(major(&i.version.version), Some(4));
    }

    #[test]
    fn parses_podman_5_info() {
        let i = parse_info(INFO_5.as_bytes()).unwrap();
        assert_eq!(i.version.version, "5.2.2");
        assert!(i.host.security.rootless);
        assert_eq!(i.host.cgroup_version, "v2");
        assert_eq!(i.host.oci_runtime.name, "crun");
        assert_eq!(i.host.pasta.executable, "/usr/bin/pasta");
        assert_eq!(i.host.rootless_network_cmd, "pasta");
        assert_eq!(
            i.store.mount_program().as_deref(),
            Some("/usr/bin/fuse-overlayfs")
        );
        // null where a list or map is expected, and missing sections, still parse.
        let i = parse_info(br#"{"host":{"cgroupControllers":null},"store":{"graphOptions":null}}"#)
            .unwrap();
        assert!(i.host.cgroup_controllers.is_empty());
        assert!(parse_info(b"not json").is_err());
    }

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
