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

pub mod health;
pub mod policy;
pub mod request;

use policy::caps::{self, Rejected, Rules};
use policy::refusal;
use policy::{json, tar, version};
use request::{Body, Schema, Special};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
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
/// form), so that the proxy's memory stays below ~20 MB whatever a job sends.
pub const MAX_JSON_AT_ONCE: usize = 8;
/// A client must send its whole head within this (a job cannot pin connections by trickling).
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(60);
/// Largest answer the proxy reads whole from the engine (a start's, `/version`, an inspect).
const MAX_ENGINE_ANSWER: usize = 4 << 20;
/// After refusing a request whose body is not read (or refused mid-stream), how much more of it
/// the proxy reads and drops, and for how long, so that the client reads the refusal (a client
/// still writing an archive or a build context would otherwise only see a broken pipe).
const DRAIN_LIMIT: u64 = 1 << 30;
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
/// Size of the pieces a stream is passed on in.
const PIECE: usize = 64 << 10;

/// How the proxy starts the engine when nothing answers on its socket.
#[derive(Debug, Clone)]
pub struct Launcher {
    /// `podman` and the arguments of `system service` ([`crate::engine::service_args`]).
    pub program: std::path::PathBuf,
    pub args: Vec<String>,
    /// The engine's containers.conf (`CONTAINERS_CONF`).
    pub conf: std::path::PathBuf,
    pub pid_file: std::path::PathBuf,
    pub log: std::path::PathBuf,
}

/// Connects to the engine, starting it first when it does not answer (one start at a time).
async fn connect_engine(
    upstream: &Path,
    launcher: Option<&Launcher>,
    starting: &tokio::sync::Mutex<()>,
) -> Result<UnixStream, String> {
    if let Ok(s) = UnixStream::connect(upstream).await {
        return Ok(s);
    }
    let Some(l) = launcher else {
        return Err("podrunner: the runner's engine does not answer".into());
    };
    let _one = starting.lock().await;
    if let Ok(s) = UnixStream::connect(upstream).await {
        return Ok(s);
    }
    let pid = match crate::engine::service::running_engine(&l.pid_file, upstream) {
        Some(pid) => pid,
        None => {
            let child = crate::cmd::spawn_detached_env(
                &l.program,
                &l.args,
                &l.log,
                &crate::cmd::SERVICE_MANAGER_ENV,
                &[("CONTAINERS_CONF", l.conf.as_os_str())],
            )
            .map_err(|e| format!("podrunner: cannot start the runner's engine: {e}"))?;
            let pid = child.id() as i32;
            drop(child);
            std::fs::write(&l.pid_file, format!("{pid}\n"))
                .map_err(|e| format!("podrunner: cannot write {}: {e}", l.pid_file.display()))?;
            tracing::info!("docker-proxy: started the engine (pid {pid})");
            pid
        }
    };
    crate::engine::service::wait_ready(upstream, pid, &l.log)
        .await
        .map_err(|e| format!("podrunner: {e}"))?;
    UnixStream::connect(upstream)
        .await
        .map_err(|e| format!("podrunner: the runner's engine does not answer: {e}"))
}

/// Accepts connections on `listen` until the process is stopped.
pub async fn serve(
    listen: &Path,
    upstream: &Path,
    rules: Rules,
    launcher: Option<Launcher>,
    runner_copy: Option<crate::engine::externals::RunnerCopy>,
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
            if let Err(e) = handle(client, &shared).await {
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
    /// Containers whose health checks the proxy runs ([`health`]).
    health: health::Watched,
}

impl Shared {
    async fn connect(&self) -> Result<UnixStream, String> {
        connect_engine(&self.socket, self.launcher.as_ref(), &self.starting).await
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// A short answer of the proxy's own, in the engine's error shape (`{"message": ...}`), which
/// the Docker CLI prints as "Error response from daemon: ...".
async fn answer(c: &mut UnixStream, status: &str, message: &str) -> std::io::Result<()> {
    let body = serde_json::json!({ "message": message }).to_string();
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nApi-Version: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        version::text(version::ADVERTISED),
        body.len()
    );
    c.write_all(head.as_bytes()).await?;
    c.write_all(body.as_bytes()).await?;
    c.shutdown().await
}

/// Bytes read from the client so far and the stream, for reading a body after the head.
struct Incoming {
    stream: UnixStream,
    buf: Vec<u8>,
    pos: usize,
}

impl Incoming {
    /// Answers a request whose body the proxy has not read (or not all of it), then reads and
    /// drops the rest for a bounded time: a client still writing its body (a `docker cp`
    /// archive, a build context) then reads the answer instead of failing on a closed
    /// connection with a broken pipe.
    async fn answer_unread(
        &mut self,
        framing: Framing,
        status: &str,
        message: &str,
    ) -> std::io::Result<()> {
        answer(&mut self.stream, status, message).await?;
        if framing != Framing::None {
            let mut sink = tokio::io::sink();
            let mut rest = (&mut self.stream).take(DRAIN_LIMIT);
            let _ =
                tokio::time::timeout(DRAIN_TIMEOUT, tokio::io::copy(&mut rest, &mut sink)).await;
        }
        Ok(())
    }

    async fn more(&mut self) -> std::io::Result<()> {
        if self.pos > 0 && self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        }
        let mut chunk = vec![0u8; PIECE];
        let n = self.stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(())
    }
    fn buffered(&self) -> usize {
        self.buf.len() - self.pos
    }
    async fn take(&mut self, n: usize) -> std::io::Result<Vec<u8>> {
        while self.buffered() < n {
            self.more().await?;
        }
        let v = self.buf[self.pos..self.pos + n].to_vec();
        self.pos += n;
        Ok(v)
    }
    async fn line(&mut self) -> std::io::Result<String> {
        loop {
            if let Some(i) = find(&self.buf[self.pos..], b"\r\n") {
                let l = String::from_utf8_lossy(&self.buf[self.pos..self.pos + i]).into_owned();
                self.pos += i + 2;
                return Ok(l);
            }
            if self.buffered() > 4096 {
                return Err(std::io::ErrorKind::InvalidData.into());
            }
            self.more().await?;
        }
    }
    /// The size of the next chunk of a chunked body (extensions dropped).
    async fn chunk_size(&mut self) -> std::io::Result<usize> {
        let line = self.line().await?;
        let size = line.split(';').next().unwrap_or("").trim();
        if size.is_empty() || size.len() > 15 {
            return Err(std::io::ErrorKind::InvalidData.into());
        }
        usize::from_str_radix(size, 16)
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidData))
    }
    async fn crlf(&mut self) -> std::io::Result<()> {
        if self.take(2).await? != b"\r\n" {
            return Err(std::io::ErrorKind::InvalidData.into());
        }
        Ok(())
    }
    /// A whole body, decoded, of at most `limit` bytes (`None` when larger).
    async fn whole(&mut self, framing: Framing, limit: usize) -> std::io::Result<Option<Vec<u8>>> {
        match framing {
            Framing::None => Ok(Some(Vec::new())),
            Framing::Length(n) if n > limit => Ok(None),
            Framing::Length(n) => self.take(n).await.map(Some),
            Framing::Chunked => {
                let mut body = Vec::new();
                loop {
                    let size = self.chunk_size().await?;
                    if size == 0 {
                        while !self.line().await?.is_empty() {}
                        return Ok(Some(body));
                    }
                    if body.len() + size > limit {
                        return Ok(None);
                    }
                    body.extend(self.take(size).await?);
                    self.crlf().await?;
                }
            }
        }
    }
    /// Copies `n` bytes of the body to `up` in pieces, each checked first.
    async fn copy(
        &mut self,
        mut n: usize,
        up: &mut UnixStream,
        check: &mut Option<tar::TarCheck>,
    ) -> std::io::Result<()> {
        while n > 0 {
            if self.buffered() == 0 {
                self.more().await?;
            }
            let k = n.min(self.buffered());
            if let Some(c) = check {
                c.feed(&self.buf[self.pos..self.pos + k]).map_err(|why| {
                    std::io::Error::new(std::io::ErrorKind::PermissionDenied, why)
                })?;
            }
            up.write_all(&self.buf[self.pos..self.pos + k]).await?;
            self.pos += k;
            n -= k;
        }
        Ok(())
    }
    /// Passes a streamed body on in its framing, chunk by chunk (trailers dropped), checked
    /// by `check` if any: a refusal is an error of kind `PermissionDenied` saying why.
    async fn pump(
        &mut self,
        framing: Framing,
        up: &mut UnixStream,
        check: &mut Option<tar::TarCheck>,
    ) -> std::io::Result<()> {
        match framing {
            Framing::None => Ok(()),
            Framing::Length(n) => self.copy(n, up, check).await,
            Framing::Chunked => loop {
                let size = self.chunk_size().await?;
                up.write_all(format!("{size:x}\r\n").as_bytes()).await?;
                if size == 0 {
                    while !self.line().await?.is_empty() {}
                    return up.write_all(b"\r\n").await;
                }
                self.copy(size, up, check).await?;
                self.crlf().await?;
                up.write_all(b"\r\n").await?;
            },
        }
    }
}

/// How the request's body is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    None,
    Length(usize),
    Chunked,
}

/// A request head the proxy accepts.
#[derive(Debug)]
pub struct Head {
    pub method: String,
    pub target: String,
    pub headers: Vec<(String, Vec<u8>)>,
    pub framing: Framing,
    /// `Connection: Upgrade` with an `Upgrade` header.
    pub wants_upgrade: bool,
}

/// Reads a request head; the error is a status and why.
pub fn parse_head(raw: &[u8]) -> Result<Head, (&'static str, String)> {
    let bad = |why: &str| ("400 Bad Request", format!("podrunner: {why}"));
    let mut headers = [httparse::EMPTY_HEADER; 100];
    let mut req = httparse::Request::new(&mut headers);
    let (Ok(httparse::Status::Complete(_)), Some(method), Some(target)) =
        (req.parse(raw), req.method, req.path)
    else {
        return Err(bad("malformed request"));
    };
    let mut framing = Framing::None;
    let (mut lengths, mut chunked) = (0, false);
    let mut upgrade_header = false;
    let mut connection_upgrade = false;
    let mut kept = Vec::new();
    for h in req.headers.iter() {
        let name = h.name.to_ascii_lowercase();
        let value = String::from_utf8_lossy(h.value).trim().to_ascii_lowercase();
        match name.as_str() {
            "content-length" => {
                lengths += 1;
                let ok = !value.is_empty()
                    && value.len() <= 18
                    && value.bytes().all(|b| b.is_ascii_digit());
                let n = value.parse().ok().filter(|_| ok);
                framing = Framing::Length(n.ok_or_else(|| bad("a bad Content-Length"))?);
            }
            "transfer-encoding" => {
                if value != "chunked" || chunked {
                    return Err(bad("a Transfer-Encoding other than one \"chunked\""));
                }
                chunked = true;
            }
            "connection" => {
                connection_upgrade |= value.split(',').any(|t| t.trim() == "upgrade");
            }
            "upgrade" => upgrade_header = true,
            "keep-alive" | "proxy-connection" | "te" | "trailer" | "expect" => {}
            _ => kept.push((h.name.to_string(), h.value.to_vec())),
        }
    }
    if lengths > 1 || (lengths == 1 && chunked) {
        return Err(bad(
            "more than one body length (Content-Length twice, or with Transfer-Encoding)",
        ));
    }
    if chunked {
        framing = Framing::Chunked;
    }
    if framing == Framing::Length(0) {
        framing = Framing::None;
    }
    Ok(Head {
        method: method.to_string(),
        target: target.to_string(),
        headers: kept,
        framing,
        wants_upgrade: upgrade_header && connection_upgrade,
    })
}

/// What the proxy does with a request.
#[derive(Debug, PartialEq)]
pub struct Plan {
    /// The target the engine gets.
    pub target: String,
    pub body: Body,
    pub special: Special,
    /// `POST /libpod/containers/create` under `open`: capped as libpod's spec.
    pub libpod_create: bool,
    /// The client's API version, for translating bodies.
    pub client_version: Option<(u32, u32)>,
    /// The container of a start, checked again before it starts.
    pub container: Option<String>,
    /// A build context to check as it streams ([`tar::TarCheck`]): `Some(dockerfile)`.
    pub context_check: Option<Option<String>>,
}

/// Libpod routes that create containers the proxy cannot cap (under `open`).
fn uncappable_libpod(method: &str, segments: &[String]) -> bool {
    let s: Vec<&str> = segments.iter().map(String::as_str).collect();
    method == "POST"
        && matches!(
            s.as_slice(),
            ["libpod", "containers", _, "update"]
                | ["libpod", "play", "kube"]
                | ["libpod", "kube", "play"]
                | ["libpod", "pods", "create"]
                | ["libpod", "build"]
        )
}

/// Decides what to do with a request (pure); the error is the status and message to answer.
pub fn plan(method: &str, raw_target: &str, rules: &Rules) -> Result<Plan, (&'static str, String)> {
    let forbid = |what: String| ("403 Forbidden", refusal(&what, &rules.pool_hint));
    let t =
        parse_target(raw_target).map_err(|why| ("400 Bad Request", format!("podrunner: {why}")))?;
    let contained = rules.policy.is_some();
    if t.is_libpod() {
        if contained {
            return Err(forbid(format!(
                "the libpod API ({method} {}; Podman's own, which `podman --remote` uses)",
                t.path()
            )));
        }
        if uncappable_libpod(method, &t.segments) {
            return Err((
                "403 Forbidden",
                format!(
                    "podrunner: {} is not available to jobs: the runner's engine holds every container to the runner's cpus, memory and pids limits, which it can do for the Docker API and `podman --remote create/run` only",
                    t.path()
                ),
            ));
        }
        let segs: Vec<&str> = t.segments.iter().map(String::as_str).collect();
        let create = method == "POST" && segs == ["libpod", "containers", "create"];
        let upgrade = method == "POST"
            && matches!(
                segs.as_slice(),
                ["libpod", "containers", _, "attach"] | ["libpod", "exec", _, "start"]
            );
        return Ok(Plan {
            target: t.encode(None),
            body: if create {
                Body::Json(Schema::Opaque)
            } else {
                Body::Stream
            },
            special: if upgrade {
                Special::Upgrade
            } else {
                Special::None
            },
            libpod_create: create,
            client_version: None,
            container: None,
            context_check: None,
        });
    }
    let Some(spec) = request::find(method, &t.segments) else {
        if contained {
            return Err(forbid(format!(
                "the route {method} {} (not one the Docker CLI, Compose or GitHub's runner uses)",
                t.path()
            )));
        }
        return Ok(Plan {
            target: t.encode(version::engine_version(t.version)),
            body: Body::Stream,
            special: Special::None,
            libpod_create: false,
            client_version: t.version,
            container: None,
            context_check: None,
        });
    };
    request::check_query(spec, &t).map_err(forbid)?;
    if t.version.is_some_and(|v| v < version::MIN_CLIENT) {
        return Err((
            "400 Bad Request",
            format!(
                "podrunner: API version {} is too old; the minimum is {}",
                version::text(t.version.unwrap_or_default()),
                version::text(version::MIN_CLIENT)
            ),
        ));
    }
    let mut t = t;
    if contained {
        if spec.special == Special::Build {
            policy::contained::check_build_query(&t.query).map_err(forbid)?;
        }
        if spec.path == "images/create" {
            policy::contained::check_image_create_query(&t.query).map_err(forbid)?;
        }
    }
    if spec.special == Special::Build {
        // Not the budget's cgroup parent: Podman 4.3's builder then runs a step's container in
        // the parent's `conmon` cgroup, next to conmon, and runc refuses it (measured).
        caps::cap_build_query(&mut t, &rules.caps);
    }
    let container =
        matches!(spec.special, Special::Start | Special::CopyIn).then(|| t.segments[1].clone());
    let context_check = (contained && spec.special == Special::Build)
        .then(|| t.param("dockerfile").map(str::to_string));
    Ok(Plan {
        target: t.encode(version::engine_version(t.version)),
        body: spec.body,
        special: spec.special,
        libpod_create: false,
        client_version: t.version,
        container,
        context_check,
    })
}

use request::parse_target;

/// The host's real path of a bind source: symlinks (which a job can plant in its work folder)
/// and `..` resolved. `None` when it does not exist.
fn resolve_on_host(p: &str) -> Option<String> {
    std::fs::canonicalize(p)
        .ok()
        .map(|r| r.display().to_string())
}

/// A JSON request body as the engine gets it: parsed strictly, translated from the client's
/// API version, checked and capped.
pub fn engine_body(
    raw: &[u8],
    plan: &Plan,
    schema: Schema,
    rules: &Rules,
) -> Result<Vec<u8>, Rejected> {
    let raw = if raw.is_empty() {
        b"{}".as_slice()
    } else {
        raw
    };
    let mut m = json::parse_object(raw).map_err(|why| {
        Rejected::BadBody(format!(
            "podrunner: the request body is not the JSON object the engine expects: {why}"
        ))
    })?;
    if plan.libpod_create {
        caps::rewrite_libpod_create(&mut m, rules);
    } else {
        if schema == Schema::ContainerCreate {
            version::create_body_for_engine(&mut m, plan.client_version);
        }
        caps::rewrite(schema, &mut m, rules, &resolve_on_host)?;
    }
    Ok(serde_json::to_vec(&m).expect("a JSON value serializes"))
}

/// A response head with the engine's `Api-Version` header replaced by the proxy's.
fn client_head(head: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(head);
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive("\r\n") {
        if line.to_ascii_lowercase().starts_with("api-version:") {
            out.push_str(&format!(
                "Api-Version: {}\r\n",
                version::text(version::ADVERTISED)
            ));
        } else {
            out.push_str(line);
        }
    }
    out.into_bytes()
}

/// Reads a response head from the engine: the head and what came after it.
async fn response_head(up: &mut UnixStream) -> std::io::Result<(Vec<u8>, Vec<u8>)> {
    let mut buf = Vec::new();
    loop {
        if let Some(i) = find(&buf, b"\r\n\r\n") {
            let rest = buf.split_off(i + 4);
            return Ok((buf, rest));
        }
        if buf.len() > MAX_HEAD {
            return Err(std::io::ErrorKind::InvalidData.into());
        }
        let mut chunk = vec![0u8; PIECE];
        let n = up.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// The whole answer the engine ends by closing the connection (`Connection: close`).
async fn whole_answer(up: &mut UnixStream) -> std::io::Result<Vec<u8>> {
    let mut got = Vec::new();
    up.take(MAX_ENGINE_ANSWER as u64)
        .read_to_end(&mut got)
        .await?;
    Ok(got)
}

/// The rest of an answer whose head and first bytes were read, by its framing: the engine
/// keeps a connection that asked for an upgrade open after an answer that is not a `101`.
async fn framed_answer(
    up: &mut UnixStream,
    head: Vec<u8>,
    mut rest: Vec<u8>,
) -> std::io::Result<Vec<u8>> {
    let text = String::from_utf8_lossy(&head).to_ascii_lowercase();
    let length = text
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok());
    let chunked = text.contains("transfer-encoding: chunked");
    let no_body = [" 204 ", " 304 "]
        .iter()
        .any(|c| text.starts_with(&format!("http/1.1{c}")));
    loop {
        let done = match (length, chunked) {
            _ if no_body => true,
            (Some(n), _) => rest.len() >= n,
            (None, true) => rest.ends_with(b"0\r\n\r\n"),
            (None, false) => false,
        };
        if done || rest.len() > MAX_ENGINE_ANSWER {
            break;
        }
        let mut chunk = vec![0u8; PIECE];
        let n = up.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        rest.extend_from_slice(&chunk[..n]);
    }
    let mut whole = head;
    whole.extend(rest);
    Ok(whole)
}

/// The status and decoded body of a whole answer.
pub fn split_answer(raw: &[u8]) -> Option<(u16, Vec<u8>)> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut resp = httparse::Response::new(&mut headers);
    let httparse::Status::Complete(n) = resp.parse(raw).ok()? else {
        return None;
    };
    let chunked = resp.headers.iter().any(|h| {
        h.name.eq_ignore_ascii_case("transfer-encoding")
            && String::from_utf8_lossy(h.value)
                .to_ascii_lowercase()
                .contains("chunked")
    });
    let mut rest = &raw[n..];
    let body = if chunked {
        let mut body = Vec::new();
        loop {
            let i = find(rest, b"\r\n")?;
            let size = std::str::from_utf8(&rest[..i])
                .ok()?
                .split(';')
                .next()?
                .trim()
                .to_string();
            let size = usize::from_str_radix(&size, 16).ok()?;
            rest = &rest[i + 2..];
            if size == 0 {
                break body;
            }
            body.extend_from_slice(rest.get(..size)?);
            rest = rest.get(size + 2..)?;
        }
    } else {
        rest.to_vec()
    };
    Some((resp.code?, body))
}

/// A whole answer of the engine rebuilt for the client: its status line and headers (the
/// version replaced, framing recomputed) and `body`.
fn rebuilt_answer(raw: &[u8], body: &[u8]) -> Vec<u8> {
    let end = find(raw, b"\r\n\r\n").map_or(raw.len(), |i| i + 2);
    let mut out = Vec::new();
    for line in String::from_utf8_lossy(&client_head(&raw[..end])).split_inclusive("\r\n") {
        let l = line.to_ascii_lowercase();
        if l.starts_with("content-length:") || l.starts_with("transfer-encoding:") {
            continue;
        }
        out.extend_from_slice(line.as_bytes());
    }
    out.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
    out.extend_from_slice(body);
    out
}

/// `GET path` on the engine, its JSON answer when it is a 200.
async fn engine_get(shared: &Shared, path: &str) -> Result<Option<serde_json::Value>, String> {
    let mut up = shared.connect().await?;
    let req = format!("GET {path} HTTP/1.1\r\nHost: d\r\nConnection: close\r\n\r\n");
    let io = |e: std::io::Error| format!("podrunner: the engine: {e}");
    up.write_all(req.as_bytes()).await.map_err(io)?;
    let raw = whole_answer(&mut up).await.map_err(io)?;
    Ok(match split_answer(&raw) {
        Some((200, body)) => serde_json::from_slice(&body).ok(),
        _ => None,
    })
}

/// The head of the request as the engine gets it.
fn engine_head(head: &Head, plan: &Plan, upgrade: bool, body: &Option<Vec<u8>>) -> Vec<u8> {
    let mut out = format!("{} {} HTTP/1.1\r\n", head.method, plan.target).into_bytes();
    for (name, value) in &head.headers {
        let n = name.to_ascii_lowercase();
        if n == "content-length" || n == "transfer-encoding" {
            continue;
        }
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(if upgrade {
        b"Connection: Upgrade\r\nUpgrade: tcp\r\n".as_slice()
    } else {
        b"Connection: close\r\n".as_slice()
    });
    match (body, head.framing) {
        (Some(b), _) => {
            out.extend_from_slice(format!("Content-Length: {}\r\n", b.len()).as_bytes())
        }
        (None, Framing::Length(n)) => {
            out.extend_from_slice(format!("Content-Length: {n}\r\n").as_bytes())
        }
        (None, Framing::Chunked) => out.extend_from_slice(b"Transfer-Encoding: chunked\r\n"),
        (None, Framing::None) => {}
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// Reads the request head: `None` when the client left before sending one.
async fn read_head(inc: &mut Incoming) -> std::io::Result<Option<usize>> {
    loop {
        if let Some(i) = find(&inc.buf, b"\r\n\r\n") {
            if i + 4 > MAX_HEAD {
                return Err(std::io::ErrorKind::InvalidData.into());
            }
            return Ok(Some(i + 4));
        }
        if inc.buf.len() > MAX_HEAD {
            return Err(std::io::ErrorKind::InvalidData.into());
        }
        match inc.more().await {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) => return Err(e),
        }
    }
}

async fn handle(client: UnixStream, shared: &Shared) -> std::io::Result<()> {
    let mut inc = Incoming {
        stream: client,
        buf: Vec::with_capacity(8192),
        pos: 0,
    };
    let head_len = match tokio::time::timeout(HEAD_TIMEOUT, read_head(&mut inc)).await {
        Err(_) => {
            return answer(
                &mut inc.stream,
                "408 Request Timeout",
                "podrunner: no request head in time",
            )
            .await
        }
        Ok(Ok(None)) => return Ok(()),
        Ok(Ok(Some(n))) => n,
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::InvalidData => {
            return answer(
                &mut inc.stream,
                "431 Request Header Fields Too Large",
                "podrunner: request head too large",
            )
            .await
        }
        Ok(Err(e)) => return Err(e),
    };
    inc.pos = head_len;
    let head = match parse_head(&inc.buf[..head_len]) {
        Ok(h) => h,
        Err((status, why)) => return answer(&mut inc.stream, status, &why).await,
    };
    let rules = &shared.rules;
    let plan = match plan(&head.method, &head.target, rules) {
        Ok(p) => p,
        Err((status, why)) => {
            tracing::info!(
                "docker-proxy: refused {} {}: {why}",
                head.method,
                head.target.split('?').next().unwrap_or("")
            );
            return inc.answer_unread(head.framing, status, &why).await;
        }
    };
    let mut body = None;
    match plan.body {
        Body::None if head.framing != Framing::None => {
            return answer(
                &mut inc.stream,
                "400 Bad Request",
                "podrunner: this request takes no body",
            )
            .await
        }
        Body::Json(schema) => {
            let _slot = shared.json_slots.acquire().await.expect("never closed");
            let Some(raw) = inc.whole(head.framing, MAX_JSON_BODY).await? else {
                return inc
                    .answer_unread(
                        head.framing,
                        "413 Payload Too Large",
                        "podrunner: request body too large",
                    )
                    .await;
            };
            // After a self-update the runner's externals path stands for its own copy.
            let updated;
            let rules = match &shared.runner_copy {
                Some(rc)
                    if schema == Schema::ContainerCreate
                        && find(&raw, rc.inside.as_bytes()).is_some() =>
                {
                    match rc.current().await {
                        Ok(None) => rules,
                        Ok(Some(dir)) => {
                            updated = Rules {
                                paths: rules.paths.with(&rc.inside, &dir.display().to_string()),
                                ..rules.clone()
                            };
                            &updated
                        }
                        Err(why) => {
                            tracing::warn!("{why}");
                            return answer(&mut inc.stream, "502 Bad Gateway", &why).await;
                        }
                    }
                }
                _ => rules,
            };
            match engine_body(&raw, &plan, schema, rules) {
                Ok(b) => body = Some(b),
                Err(Rejected::BadBody(why)) => {
                    return answer(&mut inc.stream, "400 Bad Request", &why).await
                }
                Err(Rejected::Forbidden(why)) => {
                    tracing::info!(
                        "docker-proxy: refused {} {}: {why}",
                        head.method,
                        plan.target.split('?').next().unwrap_or("")
                    );
                    return answer(&mut inc.stream, "403 Forbidden", &why).await;
                }
            }
        }
        _ => {}
    }
    if let (Some(policy), Some(id)) = (&rules.policy, &plan.container) {
        // A bind source swapped for a symlink since the create is refused here.
        let inspect = engine_get(
            shared,
            &format!("/v{}/containers/{id}/json", version::text(version::ENGINE)),
        )
        .await;
        if let Ok(Some(c)) = inspect {
            let checked = if plan.special == Special::CopyIn {
                policy.check_copy_in(&c)
            } else {
                policy.check_inspected_mounts(&c, &resolve_on_host)
            };
            if let Err(why) = checked {
                let why = refusal(&why, &rules.pool_hint);
                tracing::info!("docker-proxy: refused {} {id}: {why}", head.method);
                return inc.answer_unread(head.framing, "403 Forbidden", &why).await;
            }
        }
    }
    let upgrade = plan.special == Special::Upgrade && head.wants_upgrade;
    let engine_head = engine_head(&head, &plan, upgrade, &body);
    let whole = matches!(plan.special, Special::Start | Special::Version);
    let mut context_check = plan
        .context_check
        .as_ref()
        .map(|d| tar::TarCheck::new(d.as_deref()));
    let mut attempt = 1;
    let got = loop {
        let mut up = match shared.connect().await {
            Ok(u) => u,
            Err(why) => {
                return inc
                    .answer_unread(head.framing, "502 Bad Gateway", &why)
                    .await
            }
        };
        up.write_all(&engine_head).await?;
        match &body {
            Some(b) => up.write_all(b).await?,
            None => match inc.pump(head.framing, &mut up, &mut context_check).await {
                Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                    // The engine gets a truncated body and builds nothing.
                    drop(up);
                    let why = refusal(&e.to_string(), &rules.pool_hint);
                    tracing::info!(
                        "docker-proxy: refused {} {}: {why}",
                        head.method,
                        plan.target.split('?').next().unwrap_or("")
                    );
                    return inc.answer_unread(head.framing, "403 Forbidden", &why).await;
                }
                r => r?,
            },
        }
        let response = if upgrade {
            let (resp_head, rest) = response_head(&mut up).await?;
            if resp_head.starts_with(b"HTTP/1.1 101") {
                break Got::Switched(up, resp_head, rest);
            }
            // Not switched: an ordinary answer, read as framed (the connection stays open).
            framed_answer(&mut up, resp_head, rest).await?
        } else if whole {
            whole_answer(&mut up).await?
        } else {
            break Got::Stream(up);
        };
        // Starting a container, or attaching to a created one (which initialises it, network
        // included), can fail transiently; the container is left created, so again.
        let retried = matches!(plan.special, Special::Start | Special::Upgrade);
        if retried && transient_setup_failure(&response) && attempt < START_ATTEMPTS {
            tracing::info!(
                "docker-proxy: {} {} failed ({}); attempt {}",
                head.method,
                plan.target.split('?').next().unwrap_or(""),
                answer_summary(&response),
                attempt + 1
            );
            tokio::time::sleep(START_RETRY_PAUSE * attempt).await;
            attempt += 1;
            continue;
        }
        break Got::Whole(response);
    };
    let leftover = inc.buf[inc.pos..].to_vec();
    let mut client = inc.stream;
    match got {
        Got::Whole(response) => {
            if let (Special::Start, Some(c)) = (plan.special, &plan.container) {
                if split_answer(&response).is_some_and(|(s, _)| s == 204) {
                    health::after_start(&shared.socket, c, &shared.health);
                }
            }
            let out = match (plan.special, split_answer(&response)) {
                (Special::Version, Some((200, body))) if plan.target.ends_with("/version") => {
                    match serde_json::from_slice::<serde_json::Value>(&body) {
                        Ok(mut v) => {
                            version::version_body_for_client(&mut v);
                            rebuilt_answer(&response, v.to_string().as_bytes())
                        }
                        Err(_) => rebuilt_answer(&response, &body),
                    }
                }
                (_, Some((_, body))) => rebuilt_answer(&response, &body),
                (_, None) => response,
            };
            client.write_all(&out).await?;
            client.shutdown().await
        }
        Got::Switched(mut up, resp_head, rest) => {
            // A real switch: raw both ways (stdin the client sent early goes first).
            client.write_all(&client_head(&resp_head)).await?;
            client.write_all(&rest).await?;
            up.write_all(&leftover).await?;
            tokio::io::copy_bidirectional(&mut client, &mut up).await?;
            Ok(())
        }
        Got::Stream(mut up) => {
            // An ordinary answer, passed on until the engine closes; the client may send
            // nothing more (a second request, or anything after its body, ends the connection).
            let (resp_head, rest) = response_head(&mut up).await?;
            client.write_all(&client_head(&resp_head)).await?;
            client.write_all(&rest).await?;
            let (mut cr, mut cw) = client.into_split();
            let mut probe = [0u8; 1];
            tokio::select! {
                r = tokio::io::copy(&mut up, &mut cw) => { r?; }
                _ = cr.read(&mut probe) => {}
            }
            cw.shutdown().await
        }
    }
}

/// What came back from the engine.
enum Got {
    /// A whole answer, read by the proxy.
    Whole(Vec<u8>),
    /// A `101`: its head, what followed, and the stream.
    Switched(UnixStream, Vec<u8>, Vec<u8>),
    /// An answer still to be passed on.
    Stream(UnixStream),
}

/// Attempts of a container start or attach that failed transiently ([`transient_setup_failure`]).
pub const START_ATTEMPTS: u32 = 4;
/// Pause before the next attempt, times the attempt's number.
const START_RETRY_PAUSE: Duration = Duration::from_millis(250);

/// Whether a start's or attach's answer is a transient failure to set the container up, after
/// which the container is still only created and setting it up again is safe:
/// - the firewall race between engines: rootful engines share the host's iptables, and netavark
///   creating its chains in two engines at once fails one of them with "Chain already exists"
///   (seen here when two jobs start their first container together);
/// - an attach whose container Podman could not initialise (409 "preparing container ... for
///   attach"; seen about once in five full suite runs, with several engines setting up
///   containers at the same moment);
/// - a rootless start that found the container's root file system empty ("unable to find user
///   NAME: no matching entries in passwd file" for a user the image has; seen rootless, for a
///   job container started while the same engine's service had its network set up; the cause
///   is not known, docs/docker.md, Networking; a second start works, as Podman's users report
///   for the same error with rootless overlay).
pub fn transient_setup_failure(response: &[u8]) -> bool {
    let text = String::from_utf8_lossy(response);
    let status_500_or_409 = text.starts_with("HTTP/1.1 500") || text.starts_with("HTTP/1.1 409");
    (status_500_or_409 && text.contains("Chain already exists"))
        || (text.starts_with("HTTP/1.1 409") && text.contains("for attach"))
        || (status_500_or_409
            && text.contains("unable to find user ")
            && text.contains("no matching entries in passwd file"))
}

/// The message of an error answer, shortened, for the log.
fn answer_summary(response: &[u8]) -> String {
    let text = String::from_utf8_lossy(response);
    let status = text.lines().next().unwrap_or("").trim().to_string();
    let body = text.split("\r\n\r\n").nth(1).unwrap_or("").trim();
    let body: String = body.chars().take(300).collect();
    format!("{status}: {body}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::policy::caps::{Caps, PathMap};
    use std::time::Duration;

    fn rules() -> Rules {
        Rules {
            caps: Caps {
                memory: Some(1000),
                cpus: None,
                pids: 7,
            },
            paths: PathMap::default(),
            policy: None,
            pool_hint: String::new(),
            cgroup_parent: None,
        }
    }

    /// An engine stand-in: answers each connection with 200 "ok" once it has the head and
    /// its Content-Length body, and returns what it received.
    async fn upstream(l: UnixListener) -> Vec<String> {
        let mut seen = Vec::new();
        while let Ok(Ok((mut s, _))) =
            tokio::time::timeout(Duration::from_millis(500), l.accept()).await
        {
            let mut buf = Vec::new();
            loop {
                let mut chunk = [0u8; 4096];
                let n = s.read(&mut chunk).await.unwrap();
                buf.extend_from_slice(&chunk[..n]);
                let text = String::from_utf8_lossy(&buf).into_owned();
                if let Some(i) = text.find("\r\n\r\n") {
                    let len = text[..i]
                        .lines()
                        .find_map(|l| l.strip_prefix("Content-Length: "))
                        .map_or(0, |v| v.parse::<usize>().unwrap());
                    if buf.len() >= i + 4 + len || n == 0 {
                        break;
                    }
                }
                if n == 0 {
                    break;
                }
            }
            s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
                .await
                .unwrap();
            s.shutdown().await.unwrap();
            seen.push(String::from_utf8_lossy(&buf).into_owned());
        }
        seen
    }

    async fn exchange(listen: &Path, request: &[u8]) -> String {
        let mut c = UnixStream::connect(listen).await.unwrap();
        c.write_all(request).await.unwrap();
        let mut out = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), c.read_to_end(&mut out))
            .await
            .unwrap()
            .unwrap();
        String::from_utf8_lossy(&out).into_owned()
    }

    #[tokio::test]
    async fn checks_requests_and_passes_one_per_connection() {
        let dir = tempfile::tempdir().unwrap();
        let (listen, engine) = (
            dir.path().join("docker.sock"),
            dir.path().join("engine.sock"),
        );
        let up = tokio::spawn(upstream(UnixListener::bind(&engine).unwrap()));
        let (l2, e2) = (listen.clone(), engine.clone());
        let proxy = tokio::spawn(async move { serve(&l2, &e2, rules(), None, None).await });
        while UnixStream::connect(&listen).await.is_err() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }

        let body = r#"{"Image":"x","HostConfig":{"Memory":5000}}"#;
        let create = format!(
            "POST /v1.44/containers/create HTTP/1.1\r\nHost: docker\r\nConnection: keep-alive\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        assert!(exchange(&listen, create.as_bytes())
            .await
            .ends_with("\r\n\r\nok"));
        let chunked = "POST /containers/create HTTP/1.1\r\nHost: docker\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{\"Ima\r\nb\r\nge\":\"y\"}   \r\n0\r\n\r\n";
        assert!(exchange(&listen, chunked.as_bytes()).await.ends_with("ok"));
        // An upgrade asked of a route that has none is dropped; a request smuggled after the
        // first is never sent.
        let ping = "GET /_ping HTTP/1.1\r\nHost: docker\r\nUpgrade: tcp\r\nConnection: Upgrade\r\n\r\nPOST /v1.41/containers/create HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}";
        let pong = exchange(&listen, ping.as_bytes()).await;
        assert!(pong.ends_with("ok"), "{pong}");
        let kube =
            "POST /v4.3.1/libpod/play/kube HTTP/1.1\r\nHost: docker\r\nContent-Length: 0\r\n\r\n";
        let refused = exchange(&listen, kube.as_bytes()).await;
        assert!(
            refused.starts_with("HTTP/1.1 403 Forbidden\r\n"),
            "{refused}"
        );
        assert!(refused.contains("is not available to jobs"), "{refused}");
        let bad = "POST /containers/create HTTP/1.1\r\nContent-Length: 3\r\n\r\n[1]";
        assert!(exchange(&listen, bad.as_bytes())
            .await
            .starts_with("HTTP/1.1 400 Bad Request\r\n"));
        let dup = r#"{"HostConfig":{},"hostConfig":{"Memory":1}}"#;
        let dup = format!(
            "POST /containers/create HTTP/1.1\r\nContent-Length: {}\r\n\r\n{dup}",
            dup.len()
        );
        let refused = exchange(&listen, dup.as_bytes()).await;
        assert!(refused.contains("appears twice"), "{refused}");

        let seen = up.await.unwrap();
        proxy.abort();
        assert_eq!(seen.len(), 3, "{seen:?}");
        let capped = r#"{"HostConfig":{"Memory":1000,"OomScoreAdj":0,"PidsLimit":7},"Image":"x"}"#;
        assert_eq!(
            seen[0],
            format!(
                "POST /v1.41/containers/create HTTP/1.1\r\nHost: docker\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{capped}",
                capped.len()
            )
        );
        let capped = r#"{"HostConfig":{"Memory":1000,"OomScoreAdj":0,"PidsLimit":7},"Image":"y"}"#;
        assert_eq!(
            seen[1],
            format!(
                "POST /containers/create HTTP/1.1\r\nHost: docker\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{capped}",
                capped.len()
            )
        );
        assert_eq!(
            seen[2],
            "GET /_ping HTTP/1.1\r\nHost: docker\r\nConnection: close\r\n\r\n"
        );
    }

    #[test]
    fn transient_setup_failures_are_retried_and_nothing_else() {
        let attach = b"HTTP/1.1 409 Conflict\r\nContent-Type: application/json\r\n\r\n{\"cause\":\"x\",\"message\":\"preparing container abc for attach: x\",\"response\":409}";
        assert!(transient_setup_failure(attach));
        assert_eq!(
            answer_summary(attach),
            "HTTP/1.1 409 Conflict: {\"cause\":\"x\",\"message\":\"preparing container abc for attach: x\",\"response\":409}"
        );
        assert!(!transient_setup_failure(
            b"HTTP/1.1 409 Conflict\r\n\r\n{\"message\":\"name already in use\"}"
        ));
        let race = b"HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/json\r\n\r\n{\"message\":\"netavark: code: 1, msg: iptables: Chain already exists.\\n\"}";
        assert!(transient_setup_failure(race));
        assert!(transient_setup_failure(
            b"HTTP/1.1 409 Conflict\r\n\r\n{\"cause\":\"iptables: Chain already exists.\"}"
        ));
        assert!(transient_setup_failure(
            b"HTTP/1.1 500 Internal Server Error\r\n\r\n{\"message\":\"unable to find user runner: no matching entries in passwd file\"}"
        ));
        assert!(!transient_setup_failure(
            b"HTTP/1.1 404 Not Found\r\n\r\n{\"message\":\"unable to find user runner: no matching entries in passwd file\"}"
        ));
        assert!(!transient_setup_failure(b"HTTP/1.1 204 No Content\r\n\r\n"));
        assert!(!transient_setup_failure(
            b"HTTP/1.1 500 Internal Server Error\r\n\r\n{\"message\":\"no such image\"}"
        ));
    }

    fn contained() -> Rules {
        Rules {
            policy: Some(crate::proxy::policy::Policy {
                allowed: vec!["/w/r-1".into()],
                ..Default::default()
            }),
            pool_hint: " in pool ci".into(),
            ..rules()
        }
    }

    #[test]
    fn plans() {
        let r = contained();
        let p = plan("POST", "/v1.44/containers/create?name=x", &r).unwrap();
        assert_eq!(p.target, "/v1.41/containers/create?name=x");
        assert_eq!(p.body, Body::Json(Schema::ContainerCreate));
        assert_eq!(p.client_version, Some((1, 44)));
        let p = plan("POST", "/v1.40/containers/abc/start", &r).unwrap();
        assert_eq!(p.target, "/v1.40/containers/abc/start");
        assert_eq!(
            (p.special, p.container.as_deref()),
            (Special::Start, Some("abc"))
        );
        let p = plan("POST", "/v1.44/build?t=a&%74=b&memory=0", &r).unwrap();
        assert_eq!(p.target, "/v1.41/build?t=a&t=b&memory=1000&memswap=2000");
        assert_eq!(
            plan("POST", "/exec/e/start", &r).unwrap().special,
            Special::Upgrade
        );
        assert_eq!(plan("GET", "/_ping", &r).unwrap().special, Special::Version);
        for (m, t, status, why) in [
            (
                "POST",
                "/v4.3.1/libpod/containers/create",
                "403",
                "the libpod API",
            ),
            (
                "POST",
                "/v1.41/secrets/create",
                "403",
                "the route POST /secrets/create",
            ),
            (
                "POST",
                "/v1.41.0-x/containers/create",
                "400",
                "/vMAJOR.MINOR",
            ),
            (
                "POST",
                "http://d/v1.41/containers/create",
                "400",
                "origin-form",
            ),
            (
                "POST",
                "/v1.41/build?rusagelogfile=/etc/x",
                "403",
                "\"rusagelogfile\"",
            ),
            (
                "POST",
                "/v1.41/build?outputs=type%3Dlocal%2Cdest%3D%2Fetc",
                "403",
                "outputs",
            ),
            (
                "POST",
                "/v1.41/images/create?fromSrc=/etc/shadow",
                "403",
                "fromSrc",
            ),
            ("GET", "/v1.12/containers/json", "400", "too old"),
        ] {
            let (s, w) = plan(m, t, &r).unwrap_err();
            assert!(s.starts_with(status) && w.contains(why), "{m} {t}: {s} {w}");
            if s.starts_with("403") {
                assert!(w.contains("docker_policy = \"open\" in pool ci"), "{w}");
            }
        }
        // Under "open": libpod passes (capped), unknown routes pass, uncappable libpod does not.
        let open = rules();
        let p = plan("POST", "/v4.3.1/libpod/containers/create", &open).unwrap();
        assert!(p.libpod_create);
        assert_eq!(
            plan("POST", "/v1.41/secrets/create", &open).unwrap().body,
            Body::Stream
        );
        assert!(plan("POST", "/v4.3.1/libpod/play/kube", &open).is_err());
    }

    #[test]
    fn heads() {
        let h = parse_head(b"POST /x HTTP/1.1\r\nHost: d\r\nConnection: Upgrade\r\nUpgrade: tcp\r\nContent-Length: 5\r\n\r\n").unwrap();
        assert_eq!(h.framing, Framing::Length(5));
        assert!(h.wants_upgrade);
        assert_eq!(h.headers, [("Host".to_string(), b"d".to_vec())]);
        let h = parse_head(b"GET /x HTTP/1.1\r\nContent-Length: 0\r\n\r\n").unwrap();
        assert_eq!((h.framing, h.wants_upgrade), (Framing::None, false));
        let h = parse_head(b"POST /x HTTP/1.1\r\nTransfer-Encoding: Chunked\r\n\r\n").unwrap();
        assert_eq!(h.framing, Framing::Chunked);
        for (raw, why) in [
            (&b"POST /x HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n"[..], "more than one body length"),
            (b"POST /x HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", "more than one body length"),
            (b"POST /x HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", "Transfer-Encoding"),
            (b"POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", "Transfer-Encoding"),
            (b"POST /x HTTP/1.1\r\nContent-Length: +5\r\n\r\n", "Content-Length"),
            (b"POST /x HTTP/1.1\r\nContent-Length: 0x5\r\n\r\n", "Content-Length"),
            (b"POST /x HTTP/2\r\n\r\n", "malformed"),
        ] {
            let (_, w) = parse_head(raw).unwrap_err();
            assert!(w.contains(why), "{}: {w}", String::from_utf8_lossy(raw));
        }
    }

    #[test]
    fn answers_carry_the_advertised_version() {
        let raw = b"HTTP/1.1 200 OK\r\nApi-Version: 1.41\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n";
        assert_eq!(split_answer(raw), Some((200, b"hello".to_vec())));
        assert_eq!(
            String::from_utf8(rebuilt_answer(raw, b"hi")).unwrap(),
            "HTTP/1.1 200 OK\r\nApi-Version: 1.44\r\nContent-Length: 2\r\n\r\nhi"
        );
        assert_eq!(
            client_head(
                b"HTTP/1.1 101 UPGRADED\r\nAPI-Version: 1.41\r\nConnection: Upgrade\r\n\r\n"
            ),
            b"HTTP/1.1 101 UPGRADED\r\nApi-Version: 1.44\r\nConnection: Upgrade\r\n\r\n"
        );
    }
}
