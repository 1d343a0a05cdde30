//! The Docker API check: can the Docker CLI in each pool's image talk to this Podman
//! (docs/docker.md)? The decision is [`crate::engine::api_warning`]; this only phrases it.

use super::{Check, Facts, Status};
use crate::config::{Config, DockerMode};

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
            None => c.found(format!(
                "Podman {version} serves Docker API {api} ({} mode)",
                match p.docker {
                    DockerMode::Host => "host",
                    _ => "isolated",
                }
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
