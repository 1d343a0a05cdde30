//! The Docker checks (docs/docker.md): can the Docker CLI in each pool's image talk to this
//! Podman (the decision is [`crate::engine::api_warning`]; this only phrases it), and what
//! bounds each isolated pool's job containers.

use super::podman::PodmanInfo;
use super::{Check, Facts, Status};
use crate::config::{Config, DockerMode, DockerPolicy, PoolConfig};
use crate::engine::budget;

/// One check per pool whose jobs get an engine (`docker` is not `"none"`).
pub fn check_docker_api(cfg: &Config, facts: &Facts) -> Vec<Check> {
    let mut out = Vec::new();
    for p in cfg.pools.iter().filter(|p| p.docker != DockerMode::None) {
        let c = Check::new(
            format!("docker-api:{}", p.name),
            format!("Docker API for pool {}", p.name),
            Status::Pass,
        );
        let Ok(info) = &facts.info else {
            out.push(
                c.with_status(Status::Skip)
                    .found("podman does not work (see the podman check)"),
            );
            continue;
        };
        let version = &info.version.version;
        let api = crate::engine::docker_api_of_podman(version);
        let c = match crate::engine::api_warning(p.name.as_str(), &p.image, p.docker, version) {
            None if p.docker == DockerMode::Isolated => c.found(format!(
                "the runner's proxy serves Docker API {} to jobs (Podman {version} serves {api}; the proxy translates)",
                crate::engine::DOCKER_CLI_29_API
            )),
            None => c.found(format!(
                "Podman {version} serves Docker API {api} (host mode)"
            )),
            Some(w) => {
                let (found, fix) = w.split_once("\n  fix: ").unwrap_or((&w, ""));
                c.with_status(Status::Warn)
                    .found(found.to_string())
                    .why("Docker CLI 29 refuses a server API below 1.44: `docker` steps, container jobs and services fail")
                    .fix(fix.to_string())
            }
        };
        out.push(c);
    }
    out
}

/// Whether containers on a job's network can find each other by name: isolated engines use
/// netavark with aardvark-dns when both are installed (engine/conf.rs); without them a
/// `container:` job cannot reach its services by alias.
pub fn check_docker_dns(cfg: &Config, facts: &Facts) -> Vec<Check> {
    if !cfg.pools.iter().any(|p| p.docker == DockerMode::Isolated) {
        return Vec::new();
    }
    vec![dns_check(
        crate::engine::conf::netavark_installed(&|p| p.exists()),
        &facts.distro,
    )]
}

fn dns_check(installed: bool, distro: &super::distro::Distro) -> Check {
    let c = Check::new("docker-dns", "DNS on job networks", Status::Pass);
    if installed {
        return c.found(
            "netavark and aardvark-dns are installed: job containers resolve each other by name and alias",
        );
    }
    c.with_status(Status::Warn)
        .found("netavark or aardvark-dns is missing: job networks have no DNS")
        .why("a container job reaches its service containers by their alias (postgres:5432); without DNS that fails with \"bad address\"")
        .fix(distro.install(&[super::distro::Pkg::Netavark, super::distro::Pkg::AardvarkDns]))
}

/// One check per isolated pool: what holds its jobs' containers (docs/docker.md, Resources and
/// "What a job may ask"). A pool with `docker_policy = "open"` is a warning: its jobs can reach
/// the host, or the PAT, through their engine.
pub fn check_docker_bounds(cfg: &Config, facts: &Facts) -> Vec<Check> {
    cfg.pools
        .iter()
        .filter(|p| p.docker == DockerMode::Isolated)
        .map(|p| {
            let host_net = host_network(cfg.podman.run_args.iter().chain(&p.run_args));
            bounds(p, facts.info.as_ref().ok(), &facts.user, host_net)
        })
        .collect()
}

/// Whether runner containers started with these `podman run` arguments share the host's
/// network namespace (Podman takes the last `--network`/`--net`).
fn host_network<'a>(args: impl Iterator<Item = &'a String>) -> bool {
    let mut host = false;
    let mut next_is_network = false;
    for a in args {
        if next_is_network {
            host = a == "host";
            next_is_network = false;
            continue;
        }
        match a.split_once('=') {
            Some(("--network" | "--net", v)) => host = v == "host",
            None if a == "--network" || a == "--net" => next_is_network = true,
            _ => {}
        }
    }
    host
}

fn bounds(pool: &PoolConfig, info: Option<&PodmanInfo>, user: &str, host_net: bool) -> Check {
    let c = Check::new(
        format!("docker-bounds:{}", pool.name),
        format!("What bounds the Docker jobs of pool {}", pool.name),
        Status::Pass,
    );
    if pool.docker_policy == DockerPolicy::Open {
        return c
            .with_status(Status::Warn)
            .found(format!(
                "docker_policy = \"open\": a job may run privileged containers and bind any host path through its engine, which runs as {user}"
            ))
            .why("a job can then take over the host (rootful) or read the PAT and podrunner's state (rootless)")
            .fix(format!(
                "set docker_policy = \"contained\" in pool {} unless its jobs are trusted with the host",
                pool.name
            ));
    }
    let budget = info.and_then(|i| {
        budget::detect(
            &i.host.cgroup_version,
            &i.host.cgroup_manager,
            i.host.security.rootless,
        )
    });
    let sum = match (budget, info) {
        (Some(_), _) => "and the runner with its job containers share one cgroup budget (rootful, cgroupfs)".to_string(),
        (None, Some(i)) if i.host.security.rootless => {
            "no shared budget (rootless: bound the sum with the user's systemd slice)".to_string()
        }
        (None, Some(i)) => format!(
            "no shared budget ({} cgroup manager: bound the sum with a systemd slice for the service)",
            if i.host.cgroup_manager.is_empty() { "unknown" } else { &i.host.cgroup_manager }
        ),
        (None, None) => "shared budget unknown (podman does not answer)".to_string(),
    };
    c.found(format!(
        "contained (no privileged containers, no host paths outside the work folder); each job container capped at the runner's cpus, memory and pids, {sum}; {}",
        sandbox(info, host_net)
    ))
}

/// What the engine itself reaches if a request gets past the proxy (docs/docker.md, The
/// engine's own sandbox); `host_net`: the pool's runners use the host's network.
fn sandbox(info: Option<&PodmanInfo>, host_net: bool) -> &'static str {
    match (info.map(|i| i.host.security.rootless), host_net) {
        (Some(false), _) => "the engine runs as root in a minimal root and pid namespace of its own: it sees /usr, some of /etc, its own folders and the work folder, none of podrunner's files, nothing else of the host; bind sources in the work folder are pinned (engine sandbox); it is still root (the runner's network namespace is root's, so the engine cannot run unprivileged there): only the proxy keeps a job from asking it for a privileged container",
        (Some(true), false) => "the engine runs as root of the user namespace of its runner's network, in a minimal root and pid namespace of its own: none of podrunner's files, the user's home or its Podman socket; bind sources in the work folder are pinned (engine sandbox)",
        (Some(true), true) => "the engine is not sandboxed beyond the rootless user namespace, whose root is podrunner's user: a request past the proxy could read podrunner's state and token, and a folder a job swaps for a link between the proxy's check and the start is refused at the start, not pinned (runners on the host's network: their engines make their own user namespace after engine-exec runs; drop --network=host from run_args)",
        (None, _) => "engine sandbox unknown (podman does not answer)",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(extra: &str) -> PoolConfig {
        crate::config::test_pool(&format!(
            "[[pool]]\nname = \"ci\"\nrepository = \"o/r\"\n{extra}"
        ))
    }

    fn info(version: &str, manager: &str, rootless: bool) -> PodmanInfo {
        let mut i = PodmanInfo::default();
        i.host.cgroup_version = version.into();
        i.host.cgroup_manager = manager.into();
        i.host.security.rootless = rootless;
        i
    }

    #[test]
    fn dns_on_job_networks() {
        use crate::doctor::distro::Distro;
        let ok = dns_check(true, &Distro::Debian);
        assert_eq!((ok.id.as_str(), ok.status), ("docker-dns", Status::Pass));
        let missing = dns_check(false, &Distro::Debian);
        assert_eq!(missing.status, Status::Warn);
        assert_eq!(
            missing.fix.as_deref(),
            Some("sudo apt-get install -y netavark aardvark-dns")
        );
        assert_eq!(
            dns_check(false, &Distro::Fedora).fix.as_deref(),
            Some("sudo dnf install -y netavark aardvark-dns")
        );
    }

    #[test]
    fn host_network_is_the_last_network_flag() {
        let h =
            |a: &[&str]| host_network(a.iter().map(|s| s.to_string()).collect::<Vec<_>>().iter());
        assert!(!h(&[]));
        assert!(h(&["--network=host"]));
        assert!(h(&["--net", "host"]));
        assert!(!h(&["--network=host", "--network", "bridge"]));
        assert!(!h(&["--network=slirp4netns:port_handler=slirp4netns"]));
        assert!(!h(&["--hostname=host"]));
    }

    #[test]
    fn what_bounds_docker_jobs() {
        let c = bounds(
            &pool(""),
            Some(&info("v1", "cgroupfs", false)),
            "root",
            false,
        );
        assert_eq!(c.status, Status::Pass);
        assert!(
            c.found.ends_with(
                "share one cgroup budget (rootful, cgroupfs); the engine runs as root in a minimal root and pid namespace of its own: it sees /usr, some of /etc, its own folders and the work folder, none of podrunner's files, nothing else of the host; bind sources in the work folder are pinned (engine sandbox); it is still root (the runner's network namespace is root's, so the engine cannot run unprivileged there): only the proxy keeps a job from asking it for a privileged container"
            ),
            "{}",
            c.found
        );
        let c = bounds(
            &pool(""),
            Some(&info("v2", "systemd", false)),
            "root",
            false,
        );
        assert!(c.found.contains("no shared budget (systemd cgroup manager: bound the sum with a systemd slice for the service); the engine runs as root"), "{}", c.found);
        let c = bounds(&pool(""), Some(&info("v2", "systemd", true)), "ci", false);
        assert!(
            c.found.ends_with(
                "(rootless: bound the sum with the user's systemd slice); the engine runs as root of the user namespace of its runner's network, in a minimal root and pid namespace of its own: none of podrunner's files, the user's home or its Podman socket; bind sources in the work folder are pinned (engine sandbox)"
            ),
            "{}",
            c.found
        );
        let c = bounds(&pool(""), Some(&info("v2", "systemd", true)), "ci", true);
        assert!(
            c.found.ends_with(
                "a request past the proxy could read podrunner's state and token, and a folder a job swaps for a link between the proxy's check and the start is refused at the start, not pinned (runners on the host's network: their engines make their own user namespace after engine-exec runs; drop --network=host from run_args)"
            ),
            "{}",
            c.found
        );
        let c = bounds(&pool("docker_policy = \"open\"\n"), None, "ci", false);
        assert_eq!(c.status, Status::Warn);
        assert_eq!(
            c.fix.as_deref(),
            Some("set docker_policy = \"contained\" in pool ci unless its jobs are trusted with the host")
        );
        assert!(c.found.contains("which runs as ci"), "{}", c.found);
    }
}
