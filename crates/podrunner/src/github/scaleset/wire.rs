//! The wire shapes of the scale set service (sessions, messages, job events, statistics)
//! and the pure reads of them: a queue message, a JWT's expiry, the config URL of a scope.

use crate::config::names::Scope;
use crate::github::{ghes, Error, Secret};
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// What the scale set service reports about a set's jobs and runners.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Statistics {
    #[serde(default)]
    pub total_available_jobs: u32,
    #[serde(default)]
    pub total_acquired_jobs: u32,
    #[serde(default)]
    pub total_assigned_jobs: u32,
    #[serde(default)]
    pub total_running_jobs: u32,
    #[serde(default)]
    pub total_registered_runners: u32,
    #[serde(default)]
    pub total_busy_runners: u32,
    #[serde(default)]
    pub total_idle_runners: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScaleSetLabel {
    #[serde(rename = "type", default)]
    pub kind: String,
    pub name: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunnerSetting {
    #[serde(rename = "disableUpdate", default)]
    pub disable_update: bool,
}

/// A runner scale set (`RunnerScaleSet`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScaleSet {
    #[serde(default)]
    pub id: u64,
    pub name: String,
    #[serde(default)]
    pub runner_group_id: u64,
    #[serde(default)]
    pub labels: Vec<ScaleSetLabel>,
    #[serde(rename = "RunnerSetting", default)]
    pub runner_setting: RunnerSetting,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub statistics: Option<Statistics>,
}

#[derive(Deserialize)]
pub(super) struct ListOf<T> {
    #[serde(default)]
    pub(super) count: usize,
    #[serde(default = "Vec::new")]
    pub(super) value: Vec<T>,
}

/// The one message session of a scale set.
#[derive(Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct SessionWire {
    pub(super) session_id: String,
    #[serde(default)]
    pub(super) owner_name: String,
    pub(super) message_queue_url: String,
    pub(super) message_queue_access_token: String,
    #[serde(default)]
    pub(super) statistics: Option<Statistics>,
}

/// A session as the listener holds it. The queue token never leaves this module.
#[derive(Clone)]
pub struct Session {
    pub id: String,
    pub owner: String,
    pub statistics: Option<Statistics>,
    pub(super) queue_url: String,
    pub(super) queue_token: Secret,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Session({}, owner {})", self.id, self.owner)
    }
}

impl From<SessionWire> for Session {
    fn from(w: SessionWire) -> Session {
        Session {
            id: w.session_id,
            owner: w.owner_name,
            statistics: w.statistics,
            queue_url: w.message_queue_url,
            queue_token: Secret::new(w.message_queue_access_token),
        }
    }
}

/// One job event of a message.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobEvent {
    pub message_type: String,
    #[serde(default)]
    pub runner_request_id: u64,
    #[serde(default)]
    pub runner_name: Option<String>,
    #[serde(default)]
    pub result: Option<String>,
    /// `JobMessageBase`: where the job comes from and when it was queued and assigned
    /// (RFC 3339; Go's zero time `0001-01-01T00:00:00Z` where not yet known).
    #[serde(default)]
    pub owner_name: Option<String>,
    #[serde(default)]
    pub repository_name: Option<String>,
    #[serde(default)]
    pub workflow_run_id: Option<u64>,
    #[serde(default)]
    pub job_display_name: Option<String>,
    #[serde(default)]
    pub queue_time: Option<String>,
    #[serde(default)]
    pub runner_assign_time: Option<String>,
}

/// A message from the queue: statistics and the job events batched since the last one.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub id: u64,
    pub statistics: Option<Statistics>,
    pub events: Vec<JobEvent>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct MessageWire {
    message_id: u64,
    message_type: String,
    #[serde(default)]
    body: String,
    #[serde(default)]
    statistics: Option<Statistics>,
}

/// The message type of a batch of job events (GitHub's client refuses any other).
pub const JOB_MESSAGES: &str = "RunnerScaleSetJobMessages";

/// Parses a queue message: its `body` is a JSON array, inside a string, of job events.
pub fn parse_message(bytes: &[u8]) -> Result<Message, Error> {
    let bytes = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes);
    let w: MessageWire = serde_json::from_slice(bytes).map_err(|e| Error::Decode(e.to_string()))?;
    if w.message_type != JOB_MESSAGES {
        return Err(Error::Decode(format!(
            "unsupported message type {:?}",
            w.message_type
        )));
    }
    let events = if w.body.trim().is_empty() {
        Vec::new()
    } else {
        serde_json::from_str(&w.body).map_err(|e| Error::Decode(format!("message body: {e}")))?
    };
    Ok(Message {
        id: w.message_id,
        statistics: w.statistics,
        events,
    })
}

/// Why the scale set service said no.
#[derive(Debug, thiserror::Error)]
pub enum ScaleSetError {
    /// Another listener holds the scale set's session (409); GitHub's message names it.
    #[error("another listener holds the scale set's session: {0}")]
    SessionConflict(String),
    /// The queue token expired (401): refresh the session.
    #[error("the message queue token expired")]
    QueueTokenExpired,
    /// The session is gone (404): create a new one.
    #[error("the message session no longer exists")]
    SessionGone,
    #[error(transparent)]
    Api(#[from] Error),
}

/// The `exp` claim of a JWT, read without verifying it: only to know when to renew.
pub fn jwt_expiry(token: &str) -> Option<SystemTime> {
    #[derive(Deserialize)]
    struct Claims {
        exp: u64,
    }
    let payload = token.split('.').nth(1)?;
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let c: Claims = serde_json::from_slice(&raw).ok()?;
    Some(UNIX_EPOCH + Duration::from_secs(c.exp))
}

/// The web URL GitHub's registration exchange names a repository or organization by:
/// `https://github.com/o/r` for `https://api.github.com`, `https://HOST/o/r` for GitHub
/// Enterprise Server (`https://HOST/api/v3`), and the API's own origin otherwise.
pub fn config_url(api_base: &str, scope: &Scope) -> String {
    let web = ghes::web_origin(api_base);
    match scope {
        Scope::Repository { owner, repo } => format!("{web}/{owner}/{repo}"),
        Scope::Organization(org) => format!("{web}/{org}"),
        Scope::Enterprise(e) => format!("{web}/enterprises/{e}"),
    }
}
