//! The Docker API proxy between a runner and its engine (`podrunner docker-proxy`, started by
//! [`super::service`]): it listens on the socket mounted into the runner and passes each
//! request to the engine's own socket, capping the requests that create containers
//! ([`super::caps`]). Everything else goes through byte for byte: streams, attach and exec
//! (connection upgrades), image uploads.
//!
//! One request per connection: the proxy asks the engine to close the connection after its
//! answer (`Connection: close`), so a second request can never ride on an inspected one
//! unseen. Docker's client opens a new connection when the old one closes. Only attach and
//! exec-start keep their `Upgrade`, and only when the engine really switches to a raw stream.
//!
//! The engine starts on the first request that needs it ([`Launcher`]): a job that never calls
//! `docker` costs no engine at all, and an idle runner holds no 45 MB engine process.

use super::caps::{self, Rejected, Route, Rules};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};

/// Largest request head read (Go's `http.DefaultMaxHeaderBytes`, which the engine uses too).
pub const MAX_HEAD: usize = 1 << 20;
/// Largest body of a request the proxy rewrites (create and update bodies are a few KiB; labels
/// and environment of a big compose file stay far below this).
pub const MAX_BODY: usize = 16 << 20;

/// How the proxy starts the engine when nothing answers on its socket.
#[derive(Debug, Clone)]
pub struct Launcher {
    /// `podman` and the arguments of `system service` ([`super::service_args`]).
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
    let pid = match super::service::running_engine(&l.pid_file, upstream) {
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
    super::service::wait_ready(upstream, pid, &l.log)
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
    let rules = Arc::new(rules);
    let launcher = Arc::new(launcher);
    let starting = Arc::new(tokio::sync::Mutex::new(()));
    loop {
        let (client, _) = listener.accept().await?;
        let upstream = upstream.to_path_buf();
        let rules = Arc::clone(&rules);
        let launcher = Arc::clone(&launcher);
        let starting = Arc::clone(&starting);
        tokio::spawn(async move {
            let engine = Engine {
                socket: &upstream,
                launcher: launcher.as_ref().as_ref(),
                starting: &starting,
            };
            if let Err(e) = handle(client, &engine, &rules).await {
                tracing::debug!("docker-proxy: connection ended: {e}");
            }
        });
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
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
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
    async fn more(&mut self) -> std::io::Result<()> {
        let mut chunk = [0u8; 16 * 1024];
        let n = self.stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(())
    }
    async fn take(&mut self, n: usize) -> std::io::Result<Vec<u8>> {
        while self.buf.len() - self.pos < n {
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
            if self.buf.len() - self.pos > MAX_HEAD {
                return Err(std::io::ErrorKind::InvalidData.into());
            }
            self.more().await?;
        }
    }
    /// A chunked body, decoded.
    async fn chunked(&mut self) -> std::io::Result<Vec<u8>> {
        let mut body = Vec::new();
        loop {
            let line = self.line().await?;
            let size = line.split(';').next().unwrap_or("").trim();
            let size = usize::from_str_radix(size, 16)
                .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidData))?;
            if size == 0 {
                // Trailers, up to the empty line.
                while !self.line().await?.is_empty() {}
                return Ok(body);
            }
            if body.len() + size > MAX_BODY {
                return Err(std::io::ErrorKind::InvalidData.into());
            }
            body.extend(self.take(size).await?);
            self.take(2).await?;
        }
    }
}

/// How the request's body is framed.
enum Framing {
    None,
    Length(usize),
    Chunked,
}

/// Attach and exec-start switch the connection to a raw stream (hijack); nothing else may keep
/// an `Upgrade`.
fn may_upgrade(method: &str, target: &str) -> bool {
    method == "POST"
        && matches!(
            caps::shared_api_path(target).as_slice(),
            ["containers", _, "attach"] | ["exec", _, "start"]
        )
}

/// The host's real path of a bind source: symlinks (which a job can plant in its work folder)
/// and `..` resolved. `None` when it does not exist.
fn resolve_on_host(p: &str) -> Option<String> {
    std::fs::canonicalize(p)
        .ok()
        .map(|r| r.display().to_string())
}

/// The engine as one connection sees it.
struct Engine<'a> {
    socket: &'a Path,
    launcher: Option<&'a Launcher>,
    starting: &'a tokio::sync::Mutex<()>,
}

/// Starting a container: `POST /containers/{id}/start` (Docker or libpod).
fn is_start(method: &str, target: &str) -> bool {
    method == "POST"
        && matches!(
            caps::shared_api_path(target).as_slice(),
            ["containers", _, "start"]
        )
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
///   containers at the same moment).
pub fn transient_setup_failure(response: &[u8]) -> bool {
    let text = String::from_utf8_lossy(response);
    let status_500_or_409 = text.starts_with("HTTP/1.1 500") || text.starts_with("HTTP/1.1 409");
    (status_500_or_409 && text.contains("Chain already exists"))
        || (text.starts_with("HTTP/1.1 409") && text.contains("for attach"))
}

/// The message of an error answer, shortened, for the log.
fn answer_summary(response: &[u8]) -> String {
    let text = String::from_utf8_lossy(response);
    let status = text.lines().next().unwrap_or("").trim().to_string();
    let body = text.split("\r\n\r\n").nth(1).unwrap_or("").trim();
    let body: String = body.chars().take(300).collect();
    format!("{status}: {body}")
}

/// The rest of an answer the engine ends by closing the connection, after `got`.
async fn whole_answer(up: &mut UnixStream, mut got: Vec<u8>) -> std::io::Result<Vec<u8>> {
    up.take(MAX_BODY as u64).read_to_end(&mut got).await?;
    Ok(got)
}

async fn handle(client: UnixStream, engine: &Engine<'_>, rules: &Rules) -> std::io::Result<()> {
    let mut inc = Incoming {
        stream: client,
        buf: Vec::with_capacity(8192),
        pos: 0,
    };
    let head_len = loop {
        if let Some(i) = find(&inc.buf, b"\r\n\r\n") {
            break i + 4;
        }
        if inc.buf.len() > MAX_HEAD {
            return answer(
                &mut inc.stream,
                "431 Request Header Fields Too Large",
                "podrunner: request head too large",
            )
            .await;
        }
        match inc.more().await {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(e),
        }
    };
    inc.pos = head_len;
    let mut headers = [httparse::EMPTY_HEADER; 128];
    let mut req = httparse::Request::new(&mut headers);
    let head_in = inc.buf[..head_len].to_vec();
    let parsed = req.parse(&head_in);
    let (Ok(httparse::Status::Complete(_)), Some(method), Some(target), Some(version)) =
        (parsed, req.method, req.path, req.version)
    else {
        return answer(
            &mut inc.stream,
            "400 Bad Request",
            "podrunner: malformed request",
        )
        .await;
    };
    let method = method.to_string();
    let mut target = target.to_string();
    let route = caps::route(&method, &target);
    if let Route::Refuse(msg) = &route {
        tracing::info!(
            "docker-proxy: refused {method} {}",
            target.split('?').next().unwrap_or("")
        );
        return answer(&mut inc.stream, "403 Forbidden", msg).await;
    }
    let upgrade = may_upgrade(&method, &target)
        && req.headers.iter().any(|h| {
            h.name.eq_ignore_ascii_case("connection")
                && String::from_utf8_lossy(h.value)
                    .to_ascii_lowercase()
                    .contains("upgrade")
        });
    let mut framing = Framing::None;
    for h in req.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            let n = std::str::from_utf8(h.value)
                .ok()
                .and_then(|v| v.trim().parse().ok());
            match n {
                Some(n) => framing = Framing::Length(n),
                None => {
                    return answer(
                        &mut inc.stream,
                        "400 Bad Request",
                        "podrunner: bad Content-Length",
                    )
                    .await
                }
            }
        } else if h.name.eq_ignore_ascii_case("transfer-encoding")
            && String::from_utf8_lossy(h.value)
                .to_ascii_lowercase()
                .contains("chunked")
        {
            framing = Framing::Chunked;
        }
    }
    let rewrite_body = matches!(
        route,
        Route::DockerCreate | Route::DockerUpdate | Route::LibpodCreate | Route::Exec
    );
    let mut body = None;
    if rewrite_body {
        let raw = match framing {
            Framing::None => b"{}".to_vec(),
            Framing::Length(n) if n > MAX_BODY => {
                return answer(
                    &mut inc.stream,
                    "413 Payload Too Large",
                    "podrunner: request body too large",
                )
                .await
            }
            Framing::Length(n) => inc.take(n).await?,
            Framing::Chunked => inc.chunked().await?,
        };
        match caps::rewrite_body(&route, &raw, rules, &resolve_on_host) {
            Ok(b) => body = Some(b),
            Err(Rejected::BadBody(why)) => {
                return answer(&mut inc.stream, "400 Bad Request", &why).await
            }
            Err(Rejected::Forbidden(why)) => {
                tracing::info!(
                    "docker-proxy: refused {method} {}: {why}",
                    target.split('?').next().unwrap_or("")
                );
                return answer(&mut inc.stream, "403 Forbidden", &why).await;
            }
        }
    }
    if route == Route::DockerBuild {
        // Not the budget's cgroup parent: Podman 4.3's builder then runs a step's container in
        // the parent's `conmon` cgroup, next to conmon, and runc refuses it (measured).
        target = caps::cap_build_target(&target, &rules.caps);
    }

    // The head as the engine gets it.
    let mut head = format!("{method} {target} HTTP/1.{version}\r\n").into_bytes();
    for h in req.headers.iter() {
        let n = h.name.to_ascii_lowercase();
        let drop = matches!(n.as_str(), "connection" | "keep-alive" | "proxy-connection")
            || (n == "upgrade" && !upgrade)
            || (body.is_some() && (n == "content-length" || n == "transfer-encoding"));
        if drop {
            continue;
        }
        head.extend_from_slice(h.name.as_bytes());
        head.extend_from_slice(b": ");
        head.extend_from_slice(h.value);
        head.extend_from_slice(b"\r\n");
    }
    head.extend_from_slice(if upgrade {
        b"Connection: Upgrade\r\n".as_slice()
    } else {
        b"Connection: close\r\n".as_slice()
    });
    if let Some(b) = &body {
        head.extend_from_slice(format!("Content-Length: {}\r\n", b.len()).as_bytes());
    }
    head.extend_from_slice(b"\r\n");

    // A start is retried after the firewall race (below), so its whole body is kept.
    let mut retry_start = false;
    if is_start(&method, &target) && body.is_none() {
        match framing {
            Framing::None => retry_start = true,
            Framing::Length(n) if n <= MAX_BODY => {
                body = Some(inc.take(n).await?);
                retry_start = true;
            }
            _ => {}
        }
    }
    let mut client = inc.stream;
    let sent_after_head = match &body {
        Some(b) => b.clone(),
        // What came after the head (a body, or stdin of an attach) goes on unchanged.
        None => inc.buf[inc.pos..].to_vec(),
    };
    let mut attempt = 1;
    let mut up = loop {
        let mut up = match connect_engine(engine.socket, engine.launcher, engine.starting).await {
            Ok(u) => u,
            Err(why) => return answer(&mut client, "502 Bad Gateway", &why).await,
        };
        up.write_all(&head).await?;
        up.write_all(&sent_after_head).await?;
        let response = if retry_start {
            // The engine closes after its answer (`Connection: close`); a start's is small.
            whole_answer(&mut up, Vec::new()).await?
        } else if upgrade {
            // Raw both ways only if the engine switched; after an error answer the client may
            // not send a second request over this connection.
            let mut first = vec![0u8; 16 * 1024];
            let n = up.read(&mut first).await?;
            first.truncate(n);
            let switched = first.starts_with(b"HTTP/1.1 101")
                || first.starts_with(b"HTTP/1.1 200")
                || first.starts_with(b"HTTP/1.0 200");
            if switched {
                client.write_all(&first).await?;
                break up;
            }
            // An error answer: the engine closes once it sees the end of the request.
            up.shutdown().await?;
            whole_answer(&mut up, first).await?
        } else {
            break up;
        };
        // Starting a container, or attaching to a created one (which initialises it, network
        // included), can fail transiently; the container is left created, so again.
        if transient_setup_failure(&response) && attempt < START_ATTEMPTS {
            tracing::info!(
                "docker-proxy: {method} {} failed ({}); attempt {}",
                target.split('?').next().unwrap_or(""),
                answer_summary(&response),
                attempt + 1
            );
            tokio::time::sleep(START_RETRY_PAUSE * attempt).await;
            attempt += 1;
            continue;
        }
        client.write_all(&response).await?;
        return client.shutdown().await;
    };
    tokio::io::copy_bidirectional(&mut client, &mut up).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::caps::{Caps, PathMap};
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
    async fn caps_creates_and_passes_the_rest_one_request_per_connection() {
        let dir = tempfile::tempdir().unwrap();
        let (listen, engine) = (
            dir.path().join("docker.sock"),
            dir.path().join("engine.sock"),
        );
        let up = tokio::spawn(upstream(UnixListener::bind(&engine).unwrap()));
        let (l2, e2) = (listen.clone(), engine.clone());
        let proxy = tokio::spawn(async move { serve(&l2, &e2, rules(), None).await });
        while UnixStream::connect(&listen).await.is_err() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }

        let body = r#"{"Image":"x","HostConfig":{"Memory":5000}}"#;
        let create = format!(
            "POST /v1.41/containers/create HTTP/1.1\r\nHost: docker\r\nConnection: keep-alive\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        assert!(exchange(&listen, create.as_bytes())
            .await
            .ends_with("\r\n\r\nok"));
        let chunked = "POST /containers/create HTTP/1.1\r\nHost: docker\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{\"Ima\r\nb\r\nge\":\"y\"}   \r\n0\r\n\r\n";
        assert!(exchange(&listen, chunked.as_bytes()).await.ends_with("ok"));
        let ping =
            "GET /_ping HTTP/1.1\r\nHost: docker\r\nUpgrade: tcp\r\nConnection: Upgrade\r\n\r\n";
        assert!(exchange(&listen, ping.as_bytes()).await.ends_with("ok"));
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

        let seen = up.await.unwrap();
        proxy.abort();
        assert_eq!(seen.len(), 3, "{seen:?}");
        let capped = r#"{"HostConfig":{"Memory":1000,"PidsLimit":7},"Image":"x"}"#;
        assert_eq!(
            seen[0],
            format!(
                "POST /v1.41/containers/create HTTP/1.1\r\nHost: docker\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{capped}",
                capped.len()
            )
        );
        let capped = r#"{"HostConfig":{"Memory":1000,"PidsLimit":7},"Image":"y"}"#;
        assert_eq!(
            seen[1],
            format!(
                "POST /containers/create HTTP/1.1\r\nHost: docker\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{capped}",
                capped.len()
            )
        );
        // An upgrade is only kept for attach and exec-start.
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
        assert!(is_start("POST", "/v1.41/containers/abc/start"));
        assert!(is_start("POST", "/v4.3.1/libpod/containers/abc/start"));
        assert!(!is_start("POST", "/v1.41/containers/abc/stop"));
        assert!(!is_start("GET", "/v1.41/containers/abc/start"));
        let race = b"HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/json\r\n\r\n{\"message\":\"netavark: code: 1, msg: iptables: Chain already exists.\\n\"}";
        assert!(transient_setup_failure(race));
        assert!(transient_setup_failure(
            b"HTTP/1.1 409 Conflict\r\n\r\n{\"cause\":\"iptables: Chain already exists.\"}"
        ));
        assert!(!transient_setup_failure(b"HTTP/1.1 204 No Content\r\n\r\n"));
        assert!(!transient_setup_failure(
            b"HTTP/1.1 500 Internal Server Error\r\n\r\n{\"message\":\"no such image\"}"
        ));
    }

    #[test]
    fn upgrades_only_for_attach_and_exec() {
        assert!(may_upgrade(
            "POST",
            "/v1.41/containers/abc/attach?stream=1&stdin=1"
        ));
        assert!(may_upgrade("POST", "/v1.41/exec/abc/start"));
        assert!(may_upgrade("POST", "/v4.3.1/libpod/containers/abc/attach"));
        assert!(!may_upgrade("GET", "/v1.41/containers/abc/attach"));
        assert!(!may_upgrade("POST", "/v1.41/containers/create"));
        assert!(!may_upgrade("POST", "/_ping"));
    }
}
