//! The Docker API version an engine answers with, and the warning when a pool's image needs a
//! newer one than the host's Podman serves. Pure.

use super::error::PingError;
use super::{DOCKER_CLI_29_API, OFFICIAL_IMAGE_REPO};
use crate::config::DockerMode;

/// Reads an HTTP answer to `GET /_ping`: `Ok(api version header)` when it is 200.
pub fn parse_ping(resp: &[u8]) -> Result<Option<String>, PingError> {
    let text = String::from_utf8_lossy(resp);
    let mut lines = text.split("\r\n");
    let status = lines.next().unwrap_or("");
    let code = status.split_whitespace().nth(1).unwrap_or("");
    if code != "200" {
        return Err(PingError::Status(status.to_string()));
    }
    Ok(lines.take_while(|l| !l.is_empty()).find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case("api-version")
            .then(|| v.trim().to_string())
    }))
}

fn version_parts(v: &str) -> Option<Vec<u64>> {
    let core = v.trim().trim_start_matches('v');
    let core = core.split(['-', '+', '~']).next()?;
    core.split('.').map(|p| p.parse().ok()).collect()
}

/// Whether a Docker API version `podman_api` (e.g. "1.41") is at least `needed` ("1.44").
/// Unreadable versions are not ok.
pub fn api_version_ok(podman_api: &str, needed: &str) -> bool {
    match (version_parts(podman_api), version_parts(needed)) {
        (Some(mut a), Some(mut b)) => {
            let n = a.len().max(b.len());
            a.resize(n, 0);
            b.resize(n, 0);
            a >= b
        }
        _ => false,
    }
}

/// The Docker API version Podman `version` (e.g. "4.3.1") serves: 1.41 up to 5.7, 1.44 from
/// 5.8 (docs/github-runner.md). `podman version` itself prints the libpod API version, which is
/// the Podman version, not this.
pub fn docker_api_of_podman(version: &str) -> &'static str {
    if api_version_ok(version, "5.8") {
        DOCKER_CLI_29_API
    } else {
        "1.41"
    }
}

/// GitHub's official runner image (any tag or digest), which ships Docker CLI 29.
pub fn is_official_image(image: &str) -> bool {
    let repo = image.split('@').next().unwrap_or(image);
    let repo = match repo.rsplit_once(':') {
        Some((r, tag)) if !tag.contains('/') => r,
        _ => repo,
    };
    repo == OFFICIAL_IMAGE_REPO || repo == format!("docker.io/{OFFICIAL_IMAGE_REPO}")
}

/// The warning for a pool whose image's Docker CLI cannot talk to this Podman, if any. An
/// isolated pool's jobs talk to the runner's proxy, which speaks API 1.44 whatever the engine
/// serves ([`proxy::version`]); only `host` mode hands jobs Podman's own API.
pub fn api_warning(
    pool: &str,
    image: &str,
    mode: DockerMode,
    podman_version: &str,
) -> Option<String> {
    if mode != DockerMode::Host || !is_official_image(image) {
        return None;
    }
    let api = docker_api_of_podman(podman_version);
    if api_version_ok(api, DOCKER_CLI_29_API) {
        return None;
    }
    Some(format!(
        "pool {pool}: Podman {podman_version} serves Docker API {api}, but the Docker CLI 29 in {image} needs {DOCKER_CLI_29_API}: `docker` in jobs will fail (\"client version 1.52 is too new\")\n  fix: install Podman 5.8 or newer, use docker = \"isolated\" (its proxy speaks 1.44), or use an image with a Docker CLI older than 29 (set image = in the pool)"
    ))
}
