//! The Docker API proxy between a runner and its engine (`podrunner docker-proxy`, started by
//! [`crate::engine::service`]; docs/docker.md, "The proxy's boundary"). It listens on the socket
//! mounted into the runner and is **default-deny**: a request reaches the engine only when
//! - its head is plain HTTP/1.x with one unambiguous framing (one `Content-Length`, or
//!   `Transfer-Encoding: chunked` alone) and an origin-form target ([`request`]);
//! - its method and path are on the allowlist of routes a Docker client uses
//!   ([`request::ROUTES`]; libpod routes only under `docker_policy = "open"`), and each query
//!   parameter is one the route takes, once, checked decoded and sent on re-encoded;
//! - its JSON body parses strictly ([`json`]: no duplicate keys in any case, ASCII keys) and
//!   every field is allowed ([`policy::contained`]), after which resources are capped
//!   ([`policy::caps`]) and the body is sent as the proxy serialized it.
//!
//! One request per connection: the proxy asks the engine to close the connection after its
//! answer and stops reading from the client once the request is complete, so nothing rides
//! unseen behind an inspected request. Only attach and exec start may switch to a raw stream,
//! and only when the engine answers `101 Switching Protocols`.
//!
//! The proxy speaks Docker API [`version::ADVERTISED`] to clients and [`version::ENGINE`] to
//! the engine. It bounds what a job can make it hold: [`MAX_CONNECTIONS`] at once, heads of
//! [`MAX_HEAD`], at most [`MAX_JSON_AT_ONCE`] JSON bodies of [`MAX_JSON_BODY`] being checked;
//! streams (build contexts, image tarballs, logs) pass in fixed-size pieces.
//!
//! The engine starts on the first request that needs it ([`Launcher`]): a job that never calls
//! `docker` costs no engine at all, and an idle runner holds no 45 MB engine process.

pub mod args;
pub mod error;
mod forward;
pub mod health;
mod http;
pub mod pin;
mod plan;
pub mod policy;
pub mod request;

pub use forward::{retries_setup, transient_setup_failure, START_ATTEMPTS};
pub use http::{parse_head, split_answer, Framing, Head};
pub use plan::{engine_body, plan, Plan};

use crate::engine::launch::Launcher;
use error::UpstreamError;
use policy::caps::Rules;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::Semaphore;

/// Largest request or response head read. Docker's heads are a few hundred bytes; the largest
/// is a build's `X-Registry-Config` (base64 credentials of every registry the client knows).
pub const MAX_HEAD: usize = 256 << 10;
/// Largest JSON body the proxy checks (create bodies are a few KiB; labels and environment of
/// a big compose file stay far below this).
pub const MAX_JSON_BODY: usize = 1 << 20;
/// Connections served at once; more wait in the socket's backlog. Compose with many services
/// holds one attach or log stream per container.
pub const MAX_CONNECTIONS: usize = 128;
/// JSON bodies read and checked at once (each holds up to [`MAX_JSON_BODY`] plus its parsed
/// form), so that the proxy's memory stays below ~20 MB whatever a job sends; engine answers
/// rewritten for the client's API version take the same slots and size.
pub const MAX_JSON_AT_ONCE: usize = 8;
/// A client must send its whole head within this (a job cannot pin connections by trickling).
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(60);

/// Connects to the engine, starting it first when it does not answer (one start at a time).
async fn connect_engine(
    upstream: &Path,
    launcher: Option<&Launcher>,
    starting: &tokio::sync::Mutex<()>,
) -> Result<UnixStream, UpstreamError> {
    if let Ok(s) = UnixStream::connect(upstream).await {
        return Ok(s);
    }
    let Some(l) = launcher else {
        return Err(UpstreamError::NoAnswer);
    };
    let _one = starting.lock().await;
    if let Ok(s) = UnixStream::connect(upstream).await {
        return Ok(s);
    }
    l.start(upstream).await?;
    UnixStream::connect(upstream)
        .await
        .map_err(UpstreamError::Connect)
}

/// Accepts connections on `listen` until the process is stopped.
pub async fn serve(
    listen: &Path,
    upstream: &Path,
    rules: Rules,
    launcher: Option<Launcher>,
    runner_copy: Option<crate::engine::externals::RunnerCopy>,
    pins: Option<pin::Pins>,
) -> std::io::Result<()> {
    match std::fs::remove_file(listen) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let listener = UnixListener::bind(listen)?;
    tracing::info!(
        "docker-proxy: {} -> {}, {rules:?}",
        listen.display(),
        upstream.display()
    );
    let shared = Arc::new(Shared {
        socket: upstream.to_path_buf(),
        launcher,
        starting: tokio::sync::Mutex::new(()),
        rules,
        json_slots: Semaphore::new(MAX_JSON_AT_ONCE),
        runner_copy,
        pins,
        health: health::Watched::default(),
    });
    let connections = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let permit = Arc::clone(&connections)
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        let (client, _) = listener.accept().await?;
        let shared = Arc::clone(&shared);
        tokio::spawn(async move {
            let _permit = permit;
            if let Err(e) = forward::handle(client, &shared).await {
                tracing::debug!("docker-proxy: connection ended: {e}");
            }
        });
    }
}

/// What every connection shares.
struct Shared {
    socket: std::path::PathBuf,
    launcher: Option<Launcher>,
    starting: tokio::sync::Mutex<()>,
    rules: Rules,
    json_slots: Semaphore,
    /// An updated runner's own externals ([`crate::engine::externals::RunnerCopy`]).
    runner_copy: Option<crate::engine::externals::RunnerCopy>,
    /// Bind sources pinned in the engine ([`pin`]).
    pins: Option<pin::Pins>,
    /// Containers whose health checks the proxy runs ([`health`]).
    health: health::Watched,
}

impl Shared {
    async fn connect(&self) -> Result<UnixStream, UpstreamError> {
        connect_engine(&self.socket, self.launcher.as_ref(), &self.starting).await
    }
}

#[cfg(test)]
mod tests;
