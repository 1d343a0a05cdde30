//! Health checks without systemd (docs/docker.md, "Health checks"). Podman 4.3 runs a
//! container's health check from a transient systemd timer that it creates when the container
//! starts; a runner's engine on a host without a systemd manager (or a rootless user without
//! one) gets no timer, the container's health stays `starting`, and GitHub's runner waits on a
//! service's health before the job's steps. So the proxy runs the checks: once it has passed on
//! a successful start of a container that has a health check, it asks the engine to run that
//! check (libpod's `GET /containers/ID/healthcheck`, what `podman healthcheck run` does: run the
//! command, record the result, turn `healthy` or, after `Retries` failures outside the start
//! period, `unhealthy`) every interval, until the engine answers that the container is gone or
//! stopped. Where systemd does run Podman's timers too, a check runs twice per interval.

use super::error::HealthGetError;
use super::policy::version;
use std::collections::HashSet;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::UnixStream;

/// Docker's and Podman's interval when the container's `Interval` is 0 (unset).
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);
/// The shortest interval the proxy runs checks at, so that a job cannot make it (and the engine)
/// spin; Podman's own `--health-interval` refuses less than a second too.
pub const MIN_INTERVAL: Duration = Duration::from_secs(1);
/// One request to the engine (inspect, or a check, which runs the command: Podman bounds it by
/// the check's own `Timeout`, 30 s by default); a loaded host gets a margin on top.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

/// The containers whose checks the proxy runs (their full ids): one loop per container.
pub type Watched = Arc<Mutex<HashSet<String>>>;

/// The interval of the health check of an inspected container (`GET /containers/ID/json`),
/// `None` when it has none (no `Config.Healthcheck`, an empty `Test`, or `["NONE"]`).
pub fn interval(inspect: &serde_json::Value) -> Option<Duration> {
    let h = inspect.get("Config")?.get("Healthcheck")?;
    let test = h.get("Test")?.as_array()?;
    match test.first().and_then(|t| t.as_str()) {
        None | Some("NONE") => return None,
        Some(_) => {}
    }
    let nanos = h.get("Interval").and_then(|i| i.as_u64()).unwrap_or(0);
    Some(match nanos {
        0 => DEFAULT_INTERVAL,
        n => Duration::from_nanos(n).max(MIN_INTERVAL),
    })
}

/// Whether to keep running a container's checks after the engine answered `status` to one:
/// 404 (the container is gone) and 409 (stopped, or no health check) end them; so does any
/// other answer but 200 and 500 (a check that could not run, e.g. its `exec` failed: Podman
/// retries on the next timer too).
pub fn keep_checking(status: u16) -> bool {
    matches!(status, 200 | 500)
}

/// After a successful start of container `container` (a name or id) on the engine at `socket`:
/// starts running its health checks if it has one and they do not run yet. Returns at once.
pub fn after_start(socket: &Path, container: &str, watched: &Watched) {
    let (socket, container, watched) =
        (socket.to_path_buf(), container.to_string(), watched.clone());
    tokio::spawn(async move {
        let path = format!(
            "/v{}/containers/{container}/json",
            version::text(version::ENGINE)
        );
        let inspect = match get(&socket, &path).await {
            Ok((200, body)) => serde_json::from_slice::<serde_json::Value>(&body).ok(),
            _ => None,
        };
        let Some(inspect) = inspect else { return };
        let (Some(every), Some(id)) = (
            interval(&inspect),
            inspect.get("Id").and_then(|i| i.as_str()),
        ) else {
            return;
        };
        let id = id.to_string();
        if !watched.lock().expect("never poisoned").insert(id.clone()) {
            return;
        }
        tracing::debug!("docker-proxy: running the health check of {id} every {every:?}");
        run_checks(&socket, &id, every).await;
        watched.lock().expect("never poisoned").remove(&id);
    });
}

/// Runs container `id`'s check every `every` until [`keep_checking`] says no or the engine does
/// not answer (stopped: the runner's job is over).
async fn run_checks(socket: &Path, id: &str, every: Duration) {
    let path = format!(
        "/v{}/libpod/containers/{id}/healthcheck",
        version::text(version::ENGINE)
    );
    loop {
        tokio::time::sleep(every).await;
        match get(socket, &path).await {
            Ok((status, body)) => {
                tracing::debug!(
                    "docker-proxy: health check of {id}: {status} {}",
                    String::from_utf8_lossy(&body).trim()
                );
                if !keep_checking(status) {
                    return;
                }
            }
            Err(e) => {
                tracing::debug!("docker-proxy: health checks of {id} end: {e}");
                return;
            }
        }
    }
}

/// `GET path` on the engine's own socket, never starting it (unlike the proxy's requests): its
/// status and body.
async fn get(socket: &Path, path: &str) -> Result<(u16, Vec<u8>), HealthGetError> {
    let exchange = async {
        let mut up = UnixStream::connect(socket).await?;
        let req = format!("GET {path} HTTP/1.1\r\nHost: d\r\nConnection: close\r\n\r\n");
        up.write_all(req.as_bytes()).await?;
        let raw = super::http::whole_answer(&mut up).await?;
        super::http::split_answer(&raw).ok_or(HealthGetError::NotHttp)
    };
    tokio::time::timeout(REQUEST_TIMEOUT, exchange)
        .await
        .map_err(|_| HealthGetError::Timeout)?
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn interval_of_inspected_containers() {
        let with = |h: serde_json::Value| json!({"Id": "abc", "Config": {"Healthcheck": h}});
        assert_eq!(
            interval(&with(
                json!({"Test": ["CMD-SHELL", "true"], "Interval": 2_000_000_000u64})
            )),
            Some(Duration::from_secs(2))
        );
        assert_eq!(
            interval(&with(json!({"Test": ["CMD", "true"]}))),
            Some(DEFAULT_INTERVAL)
        );
        assert_eq!(
            interval(&with(json!({"Test": ["CMD", "true"], "Interval": 0}))),
            Some(DEFAULT_INTERVAL)
        );
        assert_eq!(
            interval(&with(json!({"Test": ["CMD", "true"], "Interval": 1000}))),
            Some(MIN_INTERVAL)
        );
        assert_eq!(interval(&with(json!({"Test": ["NONE"]}))), None);
        assert_eq!(interval(&with(json!({"Test": []}))), None);
        assert_eq!(interval(&with(json!(null))), None);
        assert_eq!(interval(&json!({"Id": "abc", "Config": {}})), None);
    }

    #[test]
    fn checks_end_when_the_container_is_gone_or_stopped() {
        assert!(keep_checking(200));
        assert!(keep_checking(500));
        assert!(!keep_checking(404));
        assert!(!keep_checking(409));
        assert!(!keep_checking(400));
    }
}
