//! The control socket: how CLI commands talk to a running manager.
//!
//! A unix stream socket (mode 0600) in the runtime directory. Protocol, version 1: the client
//! sends one JSON object on one line, `{"v": 1, "cmd": "...", ...}`; the manager answers with
//! one JSON line, `{"v": 1, "ok": true, ...}` or `{"v": 1, "ok": false, "error": "..."}`, and
//! closes the connection. Commands: `status`; `drain` (stop: no replacements, idle runners
//! removed, busy ones finish); `scale` with `pool` and `count`; `reload` (re-read the config).
//! A request with another `v` is refused with an error naming the versions spoken.

use crate::github::RateLimit;
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

pub const PROTOCOL_VERSION: u32 = 1;
/// A request larger than this is refused: every valid one is far below it.
pub const MAX_REQUEST_BYTES: usize = 64 * 1024;
/// How long the CLI waits for an answer.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "cmd", rename_all = "kebab-case")]
pub enum Request {
    Status,
    Drain,
    Scale { pool: String, count: u32 },
    Reload,
}

#[derive(Debug, Serialize, Deserialize)]
struct Envelope<T> {
    v: u32,
    #[serde(flatten)]
    body: T,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Response {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<StatusSnapshot>,
}

impl Response {
    pub fn ok(message: impl Into<String>) -> Response {
        Response {
            ok: true,
            error: None,
            message: Some(message.into()),
            status: None,
        }
    }
    pub fn err(error: impl Into<String>) -> Response {
        Response {
            ok: false,
            error: Some(error.into()),
            message: None,
            status: None,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StatusSnapshot {
    pub pid: u32,
    pub instance: String,
    pub config: String,
    pub uptime_secs: u64,
    pub draining: bool,
    pub api_calls: u64,
    pub rate_limit: RateLimit,
    pub pools: Vec<PoolStatus>,
    pub runners: Vec<RunnerStatus>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PoolStatus {
    pub name: String,
    pub scope: String,
    pub desired: u32,
    pub live: u32,
    pub jobs_done: u64,
    pub failures: u32,
    /// Seconds until the next start is allowed, when backing off.
    pub backing_off_secs: Option<u64>,
    pub last_error: Option<String>,
    /// The last finished jobs as the runners reported them, newest last.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recent: Vec<crate::core::JobRecord>,
    /// The last image pull's error, if it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_error: Option<String>,
    /// How the pool is sized and what GitHub last reported (docs/scaling.md). Absent from
    /// managers before this field existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scaling: Option<ScalingStatus>,
}

/// A pool's sizing in `status`: its mode, the demand GitHub reported, and the result.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct ScalingStatus {
    /// `fixed`, `scale-set` or `labels`.
    pub mode: String,
    pub min_idle: u32,
    pub max: u32,
    /// Scale sets: jobs GitHub assigned to the set (running ones included).
    pub assigned_jobs: u32,
    /// Label pools: queued jobs that ask for this pool's labels.
    pub queued_jobs: u32,
    pub desired: u32,
    pub idle: u32,
    pub busy: u32,
    /// Scale sets: the scale set's name and id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale_set: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale_set_id: Option<u64>,
    /// Scale sets: who holds the message session (this host, or the one GitHub named in a
    /// conflict).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_owner: Option<String>,
    /// Scale sets: whether this manager holds the session.
    #[serde(default)]
    pub session_held: bool,
    /// The statistics GitHub sent last, as it sent them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub github: Option<serde_json::Value>,
    /// Seconds since GitHub last reported.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reported_secs_ago: Option<u64>,
    /// A conflict or an error of the listener or the poller.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RunnerStatus {
    pub pool: String,
    pub name: String,
    pub runner_id: Option<u64>,
    pub container: Option<String>,
    /// idle, busy, starting, stopping, exited
    pub state: String,
    pub age_secs: u64,
    pub adopted: bool,
    /// What the runner's jobs get for Docker: `none`, `host`, `ready` (isolated: the proxy
    /// waits, no engine yet) or `engine` (isolated: the engine runs). Absent from managers
    /// before this field existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub docker: Option<String>,
    /// The job it runs (or ran), as the runner named it in its output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<String>,
}

/// Why a request line was refused; its message is what the manager answers.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error("not JSON: {0}")]
    NotJson(serde_json::Error),
    #[error(
        "protocol version {0} is not spoken here; this manager speaks version {PROTOCOL_VERSION}"
    )]
    Version(u64),
    #[error("missing protocol version \"v\"")]
    NoVersion,
    #[error("bad request: {0}")]
    Bad(serde_json::Error),
}

/// Parses one request line; the error is what the manager answers.
pub fn parse_request(line: &str) -> Result<Request, RequestError> {
    let v: serde_json::Value = serde_json::from_str(line).map_err(RequestError::NotJson)?;
    match v.get("v").and_then(|x| x.as_u64()) {
        Some(n) if n == PROTOCOL_VERSION as u64 => {}
        Some(n) => return Err(RequestError::Version(n)),
        None => return Err(RequestError::NoVersion),
    }
    serde_json::from_value::<Envelope<Request>>(v)
        .map(|e| e.body)
        .map_err(RequestError::Bad)
}

pub fn encode_response(r: &Response) -> String {
    let mut s = serde_json::to_string(&Envelope {
        v: PROTOCOL_VERSION,
        body: r,
    })
    .expect("serializes");
    s.push('\n');
    s
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("no podrunner manager is running (nothing listens on {0})")]
    NotRunning(String),
    #[error("talking to the manager at {path} failed: {message}")]
    Io { path: String, message: String },
}

/// Sends one request to the manager listening on `socket`.
pub async fn request(socket: &Path, req: &Request) -> Result<Response, ClientError> {
    let path = socket.display().to_string();
    let io = |e: std::io::Error| ClientError::Io {
        path: path.clone(),
        message: e.to_string(),
    };
    let stream = match tokio::net::UnixStream::connect(socket).await {
        Ok(s) => s,
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
            ) =>
        {
            return Err(ClientError::NotRunning(path));
        }
        Err(e) => return Err(io(e)),
    };
    let fut = async {
        let (r, mut w) = stream.into_split();
        let mut line = serde_json::to_string(&Envelope {
            v: PROTOCOL_VERSION,
            body: req,
        })
        .expect("serializes");
        line.push('\n');
        w.write_all(line.as_bytes()).await.map_err(io)?;
        let mut answer = String::new();
        BufReader::new(r).read_line(&mut answer).await.map_err(io)?;
        if answer.is_empty() {
            return Err(ClientError::Io {
                path: path.clone(),
                message: "the manager closed the connection".into(),
            });
        }
        let env: Envelope<Response> =
            serde_json::from_str(&answer).map_err(|e| ClientError::Io {
                path: path.clone(),
                message: format!("bad answer: {e}"),
            })?;
        Ok(env.body)
    };
    tokio::time::timeout(CLIENT_TIMEOUT, fut)
        .await
        .unwrap_or_else(|_| {
            Err(ClientError::Io {
                path: path.clone(),
                message: "no answer within 10 s".into(),
            })
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_roundtrip_and_versions() {
        assert_eq!(
            parse_request(r#"{"v":1,"cmd":"status"}"#).unwrap(),
            Request::Status
        );
        assert_eq!(
            parse_request(r#"{"v":1,"cmd":"scale","pool":"p","count":3}"#).unwrap(),
            Request::Scale {
                pool: "p".into(),
                count: 3
            }
        );
        assert_eq!(
            parse_request(r#"{"v":2,"cmd":"status"}"#)
                .unwrap_err()
                .to_string(),
            "protocol version 2 is not spoken here; this manager speaks version 1"
        );
        assert!(parse_request(r#"{"cmd":"status"}"#)
            .unwrap_err()
            .to_string()
            .contains("missing protocol version"));
        assert!(parse_request(r#"{"v":1,"cmd":"explode"}"#)
            .unwrap_err()
            .to_string()
            .starts_with("bad request"));
        assert_eq!(
            encode_response(&Response::ok("x")),
            "{\"v\":1,\"ok\":true,\"message\":\"x\"}\n"
        );
    }
}
