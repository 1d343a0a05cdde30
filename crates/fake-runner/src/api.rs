//! The fake runner protocol (docs/test-bench.md, "Runner protocol"): `acquire` and `complete`
//! under `{serverUrl}/_runner/{id}/`, with `Authorization: RunnerToken <secret>`.

use std::fmt;
use std::thread;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::{log, EXIT_RETRYABLE, EXIT_SESSION_CONFLICT, EXIT_TERMINATED};

/// A job handed out by `acquire`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Job {
    /// Echoed back verbatim in `complete` (a number in fake-github, but any JSON is accepted).
    pub job_id: serde_json::Value,
    pub script: String,
    #[serde(default)]
    pub timeout_secs: Option<u64>,
}

impl Job {
    /// The id as shown in log lines: numbers and strings without quotes.
    pub fn display_id(&self) -> String {
        match &self.job_id {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        }
    }
}

/// The body of `complete`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Completion {
    pub job_id: serde_json::Value,
    pub conclusion: &'static str,
    pub exit_code: i32,
    pub output: String,
}

/// Why a call to the fake failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiError {
    /// Could not connect, or the connection broke (retryable).
    Network(String),
    /// 401: wrong runner secret.
    Unauthorized(String),
    /// 404: the registration is gone.
    NotFound(String),
    /// 409: another session holds the runner.
    Conflict(String),
    /// 429 or 5xx (retryable).
    Server(i32, String),
    /// Any other unexpected status.
    Client(i32, String),
    /// A 2xx answer whose body is not what the protocol says.
    BadAnswer(String),
}

impl ApiError {
    /// Network trouble, 429 and 5xx are retried for a while; anything else is final.
    pub fn is_retryable(&self) -> bool {
        matches!(self, ApiError::Network(_) | ApiError::Server(..))
    }

    /// The listener exit code for a final error (docs/github-runner.md, "Exit codes"):
    /// 1 terminated error, 2 retryable error (the retry window ran out), 5 session conflict.
    pub fn exit_code(&self) -> i32 {
        match self {
            ApiError::Network(_) | ApiError::Server(..) => EXIT_RETRYABLE,
            ApiError::Conflict(_) => EXIT_SESSION_CONFLICT,
            ApiError::Unauthorized(_)
            | ApiError::NotFound(_)
            | ApiError::Client(..)
            | ApiError::BadAnswer(_) => EXIT_TERMINATED,
        }
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ApiError::Network(e) => write!(f, "cannot reach the server: {e}"),
            ApiError::Unauthorized(b) => write!(f, "401 Unauthorized: {b}"),
            ApiError::NotFound(b) => write!(f, "404 Not Found: {b}"),
            ApiError::Conflict(b) => write!(f, "409 Conflict: {b}"),
            ApiError::Server(s, b) | ApiError::Client(s, b) => write!(f, "HTTP {s}: {b}"),
            ApiError::BadAnswer(e) => write!(f, "unexpected answer: {e}"),
        }
    }
}

/// Maps an HTTP status to success (`Ok`) or the error kind. Bodies are kept short for messages.
pub fn classify(status: i32, body: &str) -> Result<(), ApiError> {
    let body: String = body.chars().take(300).collect();
    match status {
        200..=299 => Ok(()),
        401 => Err(ApiError::Unauthorized(body)),
        404 => Err(ApiError::NotFound(body)),
        409 => Err(ApiError::Conflict(body)),
        408 | 429 | 500..=599 => Err(ApiError::Server(status, body)),
        _ => Err(ApiError::Client(status, body)),
    }
}

/// The delay before retry number `attempt` (0-based): 1, 2, 4, 5, 5, ... seconds.
pub fn backoff(attempt: u32) -> Duration {
    Duration::from_secs(1u64 << attempt.min(3)).min(Duration::from_secs(5))
}

pub struct Client {
    base: String,
    token: String,
    /// How long retryable errors are retried before giving up.
    pub retry_window: Duration,
}

impl Client {
    pub fn new(server_url: &str, agent_id: u64, token: &str) -> Client {
        Client {
            base: format!("{server_url}/_runner/{agent_id}"),
            token: token.to_string(),
            retry_window: Duration::from_secs(60),
        }
    }

    fn post(
        &self,
        path_and_query: &str,
        body: String,
        timeout: u64,
    ) -> Result<(i32, String), ApiError> {
        let resp = minreq::post(format!("{}/{path_and_query}", self.base))
            .with_header("Authorization", format!("RunnerToken {}", self.token))
            .with_header("Content-Type", "application/json")
            .with_header("Accept", "application/json")
            .with_header(
                "User-Agent",
                concat!("fake-runner/", env!("CARGO_PKG_VERSION")),
            )
            .with_body(body)
            .with_timeout(timeout)
            .send()
            .map_err(|e| ApiError::Network(e.to_string()))?;
        let text = String::from_utf8_lossy(resp.as_bytes()).into_owned();
        classify(resp.status_code, &text)?;
        Ok((resp.status_code, text))
    }

    /// One `acquire` long poll: `Some(job)` on 200, `None` on 204.
    pub fn acquire_once(&self, wait_secs: u64) -> Result<Option<Job>, ApiError> {
        // The server may hold the request for `wait_secs`: allow generously more.
        let (status, body) = self.post(
            &format!("acquire?wait={wait_secs}"),
            "{}".into(),
            wait_secs + 30,
        )?;
        parse_acquire(status, &body)
    }

    pub fn complete_once(&self, completion: &Completion) -> Result<(), ApiError> {
        let body = serde_json::to_string(completion).expect("a completion serialises");
        self.post("complete", body, 30).map(|_| ())
    }

    /// Runs `call` until it succeeds, fails finally, or retryable errors have lasted longer
    /// than the retry window.
    pub fn with_retry<T>(
        &self,
        what: &str,
        mut call: impl FnMut() -> Result<T, ApiError>,
    ) -> Result<T, ApiError> {
        let mut failing_since: Option<Instant> = None;
        let mut attempt = 0;
        loop {
            match call() {
                Ok(v) => {
                    if failing_since.is_some() {
                        log("Runner reconnected.");
                    }
                    return Ok(v);
                }
                Err(e) if e.is_retryable() => {
                    let since = *failing_since.get_or_insert_with(Instant::now);
                    if since.elapsed() >= self.retry_window {
                        return Err(e);
                    }
                    let delay = backoff(attempt);
                    log(&format!("{what}: {e}. Retrying in {} s.", delay.as_secs()));
                    thread::sleep(delay);
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }
}

/// Interprets a successful `acquire` answer.
pub fn parse_acquire(status: i32, body: &str) -> Result<Option<Job>, ApiError> {
    if status == 204 || body.trim().is_empty() {
        return Ok(None);
    }
    serde_json::from_str::<Job>(body)
        .map(Some)
        .map_err(|e| ApiError::BadAnswer(format!("acquire answered {status} with {body:?}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_statuses() {
        assert_eq!(classify(200, ""), Ok(()));
        assert_eq!(classify(204, ""), Ok(()));
        assert_eq!(
            classify(401, "no"),
            Err(ApiError::Unauthorized("no".into()))
        );
        assert_eq!(
            classify(404, r#"{"message": "runner not found"}"#),
            Err(ApiError::NotFound(
                r#"{"message": "runner not found"}"#.into()
            ))
        );
        assert_eq!(classify(409, ""), Err(ApiError::Conflict("".into())));
        assert_eq!(classify(429, ""), Err(ApiError::Server(429, "".into())));
        assert_eq!(classify(500, "x"), Err(ApiError::Server(500, "x".into())));
        assert_eq!(classify(503, ""), Err(ApiError::Server(503, "".into())));
        assert_eq!(classify(400, ""), Err(ApiError::Client(400, "".into())));
        assert_eq!(classify(302, ""), Err(ApiError::Client(302, "".into())));
    }

    #[test]
    fn error_exit_codes_follow_the_listener() {
        assert_eq!(ApiError::Network("refused".into()).exit_code(), 2);
        assert_eq!(ApiError::Server(500, "".into()).exit_code(), 2);
        assert_eq!(ApiError::Unauthorized("".into()).exit_code(), 1);
        assert_eq!(ApiError::NotFound("".into()).exit_code(), 1);
        assert_eq!(ApiError::Client(400, "".into()).exit_code(), 1);
        assert_eq!(ApiError::BadAnswer("".into()).exit_code(), 1);
        assert_eq!(ApiError::Conflict("".into()).exit_code(), 5);
    }

    #[test]
    fn only_network_and_server_errors_are_retried() {
        assert!(ApiError::Network("".into()).is_retryable());
        assert!(ApiError::Server(502, "".into()).is_retryable());
        assert!(!ApiError::Unauthorized("".into()).is_retryable());
        assert!(!ApiError::NotFound("".into()).is_retryable());
        assert!(!ApiError::Conflict("".into()).is_retryable());
        assert!(!ApiError::Client(422, "".into()).is_retryable());
    }

    #[test]
    fn backoff_grows_then_caps() {
        let secs: Vec<u64> = (0..6).map(|a| backoff(a).as_secs()).collect();
        assert_eq!(secs, vec![1, 2, 4, 5, 5, 5]);
    }

    #[test]
    fn parses_acquire_answers() {
        assert_eq!(parse_acquire(204, ""), Ok(None));
        let job = parse_acquire(
            200,
            r#"{"job_id": 7, "script": "echo hi", "timeout_secs": 30}"#,
        )
        .unwrap()
        .unwrap();
        assert_eq!(job.job_id, serde_json::json!(7));
        assert_eq!(job.script, "echo hi");
        assert_eq!(job.timeout_secs, Some(30));
        assert_eq!(job.display_id(), "7");

        let job = parse_acquire(
            200,
            r#"{"job_id": "j-1", "script": "true", "timeout_secs": null}"#,
        )
        .unwrap()
        .unwrap();
        assert_eq!(job.timeout_secs, None);
        assert_eq!(job.display_id(), "j-1");

        let job = parse_acquire(200, r#"{"job_id": 1, "script": "true", "extra": [1]}"#)
            .unwrap()
            .unwrap();
        assert_eq!(job.timeout_secs, None);

        assert!(matches!(
            parse_acquire(200, "{}"),
            Err(ApiError::BadAnswer(_))
        ));
    }

    #[test]
    fn completion_serialises_to_the_protocol_shape() {
        let c = Completion {
            job_id: serde_json::json!(3),
            conclusion: "success",
            exit_code: 0,
            output: "hi\n".into(),
        };
        assert_eq!(
            serde_json::to_value(&c).unwrap(),
            serde_json::json!({"job_id": 3, "conclusion": "success", "exit_code": 0, "output": "hi\n"})
        );
    }

    #[test]
    fn retry_gives_up_after_the_window() {
        let mut client = Client::new("http://127.0.0.1:9", 1, "t");
        client.retry_window = Duration::from_millis(0);
        let mut calls = 0;
        let r: Result<(), ApiError> = client.with_retry("test", || {
            calls += 1;
            Err(ApiError::Network("down".into()))
        });
        assert_eq!(r, Err(ApiError::Network("down".into())));
        assert_eq!(calls, 1);

        let mut calls = 0;
        let r: Result<(), ApiError> = client.with_retry("test", || {
            calls += 1;
            Err(ApiError::NotFound("gone".into()))
        });
        assert_eq!(r, Err(ApiError::NotFound("gone".into())));
        assert_eq!(calls, 1);
    }
}
