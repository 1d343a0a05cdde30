//! The client of GitHub's runner scale set service (docs/scaling.md, "Scale sets"): the
//! registration-token exchange that yields the Actions service's URL and an admin token, the
//! scale set itself (get or create), its one message session, the long-polled message queue
//! with acknowledgements, job acquisition, and JIT configs for the set's runners.
//!
//! It follows the flow of GitHub's own Go client (`actions/scaleset`): the Actions service
//! speaks `api-version=6.0-preview`, with `Authorization: Bearer <admin token>`; the queue and
//! acquirejobs take the session's queue token instead. The admin token is a JWT whose `exp`
//! says when to fetch a new one; a 401 from the queue means the queue token expired and the
//! session is refreshed. Every token is a [`Secret`] and lives only in this client.
//!
//! Owns: the wire shapes of the scale set service and the token lifetimes. It decides nothing
//! about pool sizes (core/demand.rs) and starts nothing (manager/scaleset.rs drives it).

use super::{error_message, ghes, Client, Error, JitConfig, Runner, Secret};
use crate::config::names::Scope;
use base64::Engine as _;
use reqwest::{header, Method, StatusCode};
use serde::{Deserialize, Serialize};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The Actions service's API version, as GitHub's client sends it.
pub const API_VERSION: &str = "6.0-preview";
/// The admin token is renewed this long before its `exp`, so no call carries a token that
/// expires on the way (GitHub's client uses the same margin).
pub const ADMIN_REFRESH_MARGIN: Duration = Duration::from_secs(60);
/// GitHub holds an empty long poll about 50 s before answering 202; a little more than that
/// before the request counts as lost.
pub const LONG_POLL_TIMEOUT: Duration = Duration::from_secs(70);
/// The header that tells the queue how many runners the listener can have at most.
pub const MAX_CAPACITY_HEADER: &str = "X-ScaleSetMaxCapacity";
const SCALE_SETS: &str = "_apis/runtime/runnerscalesets";

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
struct ListOf<T> {
    #[serde(default)]
    count: usize,
    #[serde(default = "Vec::new")]
    value: Vec<T>,
}

/// The one message session of a scale set.
#[derive(Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SessionWire {
    session_id: String,
    #[serde(default)]
    owner_name: String,
    message_queue_url: String,
    message_queue_access_token: String,
    #[serde(default)]
    statistics: Option<Statistics>,
}

/// A session as the listener holds it. The queue token never leaves this module.
#[derive(Clone)]
pub struct Session {
    pub id: String,
    pub owner: String,
    pub statistics: Option<Statistics>,
    queue_url: String,
    queue_token: Secret,
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

/// The admin connection: the Actions service URL and a token with its expiry.
#[derive(Clone)]
struct Admin {
    url: String,
    token: Secret,
    expires: SystemTime,
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

/// A scale set client for one scope.
pub struct ScaleSetClient {
    gh: Arc<Client>,
    scope: Scope,
    admin: tokio::sync::Mutex<Option<Admin>>,
    /// When the admin token was last renewed (for status and tests).
    renewals: Mutex<u64>,
}

impl ScaleSetClient {
    pub fn new(gh: Arc<Client>, scope: Scope) -> ScaleSetClient {
        ScaleSetClient {
            gh,
            scope,
            admin: tokio::sync::Mutex::new(None),
            renewals: Mutex::new(0),
        }
    }

    /// How many times the admin token was fetched.
    pub fn admin_renewals(&self) -> u64 {
        *self.renewals.lock().expect("renewals lock")
    }

    /// The admin connection, renewed when it expires within [`ADMIN_REFRESH_MARGIN`].
    async fn admin(&self) -> Result<Admin, Error> {
        let mut guard = self.admin.lock().await;
        if let Some(a) = guard.as_ref() {
            if SystemTime::now() + ADMIN_REFRESH_MARGIN < a.expires {
                return Ok(a.clone());
            }
        }
        let reg = self.gh.registration_token(&self.scope).await?;
        #[derive(Deserialize)]
        struct Conn {
            url: Option<String>,
            token: Option<String>,
        }
        let url = format!("{}/actions/runner-registration", self.gh.base());
        let body = serde_json::json!({
            "url": config_url(self.gh.base(), &self.scope),
            "runner_event": "register",
        });
        self.gh.count_call();
        let resp = self
            .gh
            .http()
            .post(&url)
            .header(
                header::AUTHORIZATION,
                format!("RemoteAuth {}", reg.expose()),
            )
            .json(&body)
            .send()
            .await
            .map_err(|e| transport(self.gh.base(), e))?;
        let status = resp.status();
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| transport(self.gh.base(), e))?;
        if !status.is_success() {
            // A GHES without scale sets has no such endpoint: say which release does.
            let old = (status == StatusCode::NOT_FOUND)
                .then(|| self.gh.server_version())
                .flatten()
                .and_then(|v| ghes::require(&v, ghes::Feature::ScaleSets).err());
            if let Some(m) = old {
                return Err(Error::Unsupported(m));
            }
            return Err(Client::fail_plain(
                status,
                &bytes,
                "the runner registration exchange",
            ));
        }
        let c: Conn = serde_json::from_slice(&bytes).map_err(|e| Error::Decode(e.to_string()))?;
        let (Some(u), Some(t)) = (
            c.url.filter(|u| !u.is_empty()),
            c.token.filter(|t| !t.is_empty()),
        ) else {
            return Err(Error::Decode(
                "the runner registration exchange gave no Actions service URL or token".into(),
            ));
        };
        let expires = jwt_expiry(&t).ok_or_else(|| {
            Error::Decode("the Actions service admin token carries no expiry".into())
        })?;
        let a = Admin {
            url: u.trim_end_matches('/').to_string(),
            token: Secret::new(t),
            expires,
        };
        *self.renewals.lock().expect("renewals lock") += 1;
        tracing::debug!("Actions service admin token renewed");
        *guard = Some(a.clone());
        Ok(a)
    }

    /// One request to the Actions service with the admin token. `path` is relative to the
    /// service URL and may carry a query.
    async fn service(
        &self,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
        bearer: Option<&Secret>,
    ) -> Result<(StatusCode, Vec<u8>), Error> {
        let admin = self.admin().await?;
        let sep = if path.contains('?') { '&' } else { '?' };
        let url = format!("{}/{path}{sep}api-version={API_VERSION}", admin.url);
        let token = bearer.unwrap_or(&admin.token);
        let mut req = self
            .gh
            .http()
            .request(method.clone(), &url)
            .header(header::AUTHORIZATION, format!("Bearer {}", token.expose()));
        if let Some(b) = body {
            req = req.json(&b);
        }
        self.gh.count_call();
        tracing::debug!(target: "podrunner::github", "{method} {path} (Actions service)");
        let resp = req.send().await.map_err(|e| transport(&admin.url, e))?;
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(|e| transport(&admin.url, e))?;
        Ok((status, bytes.to_vec()))
    }

    fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, Error> {
        let bytes = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes);
        serde_json::from_slice(bytes).map_err(|e| Error::Decode(e.to_string()))
    }

    /// The scale set named `name` in runner group `group`, created when it does not exist;
    /// its `disableUpdate` is brought in line with the config.
    pub async fn get_or_create(
        &self,
        name: &str,
        group: u64,
        disable_update: bool,
    ) -> Result<ScaleSet, Error> {
        let path = format!(
            "{SCALE_SETS}?runnerGroupId={group}&name={}",
            encode_query(name)
        );
        let (status, bytes) = self.service(Method::GET, &path, None, None).await?;
        if !status.is_success() {
            return Err(Client::fail_plain(status, &bytes, "the scale set list"));
        }
        let list: ListOf<ScaleSet> = Self::decode(&bytes)?;
        let want = ScaleSet {
            id: 0,
            name: name.to_string(),
            runner_group_id: group,
            labels: vec![ScaleSetLabel {
                kind: "System".into(),
                name: name.to_string(),
            }],
            runner_setting: RunnerSetting { disable_update },
            statistics: None,
        };
        match (list.count, list.value.into_iter().next()) {
            (1, Some(s)) if s.runner_setting.disable_update == disable_update => Ok(s),
            (1, Some(s)) => {
                let (status, bytes) = self
                    .service(
                        Method::PATCH,
                        &format!("{SCALE_SETS}/{}", s.id),
                        Some(serde_json::to_value(&want).expect("serializes")),
                        None,
                    )
                    .await?;
                if !status.is_success() {
                    return Err(Client::fail_plain(status, &bytes, "the scale set update"));
                }
                Self::decode(&bytes)
            }
            (0, _) => {
                let (status, bytes) = self
                    .service(
                        Method::POST,
                        SCALE_SETS,
                        Some(serde_json::to_value(&want).expect("serializes")),
                        None,
                    )
                    .await?;
                if !status.is_success() {
                    return Err(Client::fail_plain(status, &bytes, "the scale set creation"));
                }
                let s: ScaleSet = Self::decode(&bytes)?;
                tracing::info!("created runner scale set {name:?} (id {})", s.id);
                Ok(s)
            }
            (n, _) => Err(Error::Decode(format!(
                "{n} scale sets are named {name:?} in runner group {group}"
            ))),
        }
    }

    /// Opens the scale set's message session for `owner`.
    pub async fn create_session(&self, id: u64, owner: &str) -> Result<Session, ScaleSetError> {
        let (status, bytes) = self
            .service(
                Method::POST,
                &format!("{SCALE_SETS}/{id}/sessions"),
                Some(serde_json::json!({"ownerName": owner})),
                None,
            )
            .await?;
        match status.as_u16() {
            200 | 201 => Ok(Self::decode::<SessionWire>(&bytes)?.into()),
            409 => Err(ScaleSetError::SessionConflict(error_message(&bytes))),
            _ => Err(Client::fail_plain(status, &bytes, "the message session").into()),
        }
    }

    /// A new queue token for the session (after a 401 from the queue).
    pub async fn refresh_session(&self, id: u64, s: &Session) -> Result<Session, ScaleSetError> {
        let (status, bytes) = self
            .service(
                Method::PATCH,
                &format!("{SCALE_SETS}/{id}/sessions/{}", s.id),
                None,
                None,
            )
            .await?;
        match status.as_u16() {
            200 => Ok(Self::decode::<SessionWire>(&bytes)?.into()),
            404 => Err(ScaleSetError::SessionGone),
            _ => Err(Client::fail_plain(status, &bytes, "the message session").into()),
        }
    }

    /// Ends a session (on stop, or one a killed predecessor left). `Ok` when it is gone.
    pub async fn delete_session(&self, id: u64, session_id: &str) -> Result<(), Error> {
        let (status, bytes) = self
            .service(
                Method::DELETE,
                &format!("{SCALE_SETS}/{id}/sessions/{session_id}"),
                None,
                None,
            )
            .await?;
        match status.as_u16() {
            200 | 204 | 404 => Ok(()),
            _ => Err(Client::fail_plain(status, &bytes, "the message session")),
        }
    }

    /// Long-polls the queue for the next message after `last`; `None` when GitHub had nothing
    /// (202).
    pub async fn get_message(
        &self,
        s: &Session,
        last: u64,
        max_capacity: u32,
    ) -> Result<Option<Message>, ScaleSetError> {
        let mut url = s.queue_url.clone();
        if last > 0 {
            let sep = if url.contains('?') { '&' } else { '?' };
            url = format!("{url}{sep}lastMessageId={last}");
        }
        self.gh.count_call();
        let resp = self
            .gh
            .http()
            .get(&url)
            .timeout(LONG_POLL_TIMEOUT)
            .header(
                header::ACCEPT,
                format!("application/json; api-version={API_VERSION}"),
            )
            .header(
                header::AUTHORIZATION,
                format!("Bearer {}", s.queue_token.expose()),
            )
            .header(MAX_CAPACITY_HEADER, max_capacity.to_string())
            .send()
            .await
            .map_err(|e| transport(&s.queue_url, e))?;
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(|e| transport(&s.queue_url, e))?;
        match status.as_u16() {
            202 | 204 => Ok(None),
            200 => Ok(Some(parse_message(&bytes)?)),
            401 => Err(ScaleSetError::QueueTokenExpired),
            404 => Err(ScaleSetError::SessionGone),
            _ => Err(Client::fail_plain(status, &bytes, "the message queue").into()),
        }
    }

    /// Acknowledges a message: the queue will not send it again.
    pub async fn delete_message(&self, s: &Session, message_id: u64) -> Result<(), ScaleSetError> {
        let (base, query) = s.queue_url.split_once('?').unwrap_or((&s.queue_url, ""));
        let mut url = format!("{}/{message_id}", base.trim_end_matches('/'));
        if !query.is_empty() {
            url = format!("{url}?{query}");
        }
        self.gh.count_call();
        let resp = self
            .gh
            .http()
            .delete(&url)
            .header(
                header::AUTHORIZATION,
                format!("Bearer {}", s.queue_token.expose()),
            )
            .send()
            .await
            .map_err(|e| transport(&s.queue_url, e))?;
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(|e| transport(&s.queue_url, e))?;
        match status.as_u16() {
            200 | 204 => Ok(()),
            401 => Err(ScaleSetError::QueueTokenExpired),
            404 => Err(ScaleSetError::SessionGone),
            _ => Err(Client::fail_plain(status, &bytes, "the message acknowledgement").into()),
        }
    }

    /// Claims available jobs for the scale set; returns the ids GitHub granted.
    pub async fn acquire_jobs(
        &self,
        id: u64,
        s: &Session,
        request_ids: &[u64],
    ) -> Result<Vec<u64>, ScaleSetError> {
        let (status, bytes) = self
            .service(
                Method::POST,
                &format!("{SCALE_SETS}/{id}/acquirejobs"),
                Some(serde_json::json!(request_ids)),
                Some(&s.queue_token),
            )
            .await?;
        match status.as_u16() {
            200 => Ok(Self::decode::<ListOf<u64>>(&bytes)?.value),
            401 => Err(ScaleSetError::QueueTokenExpired),
            _ => Err(Client::fail_plain(status, &bytes, "the job acquisition").into()),
        }
    }

    /// A JIT config for a runner of the scale set.
    pub async fn generate_jitconfig(
        &self,
        id: u64,
        name: &str,
        work_folder: &str,
    ) -> Result<JitConfig, Error> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Reference {
            id: u64,
            name: String,
        }
        #[derive(Deserialize)]
        struct Answer {
            runner: Reference,
            #[serde(rename = "encodedJITConfig")]
            encoded: String,
        }
        let (status, bytes) = self
            .service(
                Method::POST,
                &format!("{SCALE_SETS}/{id}/generatejitconfig"),
                Some(serde_json::json!({"name": name, "workFolder": work_folder})),
                None,
            )
            .await?;
        match status.as_u16() {
            200 | 201 => {
                let a: Answer = Self::decode(&bytes)?;
                Ok(JitConfig {
                    runner: Runner {
                        id: a.runner.id,
                        name: a.runner.name,
                        os: String::new(),
                        status: String::new(),
                        busy: false,
                        labels: Vec::new(),
                    },
                    encoded: Secret::new(a.encoded),
                })
            }
            409 => Err(Error::Conflict(name.to_string())),
            _ => Err(Client::fail_plain(
                status,
                &bytes,
                "the scale set's JIT config",
            )),
        }
    }
}

fn transport(url: &str, e: reqwest::Error) -> Error {
    Error::Transport {
        url: url.split('?').next().unwrap_or(url).to_string(),
        message: super::transport_message(&e),
    }
}

fn encode_query(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_urls_like_github_client() {
        let r = Scope::repository("o/r").unwrap();
        let o = Scope::organization("acme").unwrap();
        assert_eq!(
            config_url("https://api.github.com", &r),
            "https://github.com/o/r"
        );
        assert_eq!(
            config_url("https://api.github.com/", &o),
            "https://github.com/acme"
        );
        assert_eq!(
            config_url("https://ghe.example/api/v3", &r),
            "https://ghe.example/o/r"
        );
        assert_eq!(
            config_url("http://127.0.0.1:8080", &o),
            "http://127.0.0.1:8080/acme"
        );
    }

    #[test]
    fn jwt_expiry_is_read_from_the_payload() {
        let b = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        let t = format!(
            "{}.{}.sig",
            b("{\"alg\":\"none\"}"),
            b("{\"exp\":1700000000}")
        );
        assert_eq!(
            jwt_expiry(&t),
            Some(UNIX_EPOCH + Duration::from_secs(1_700_000_000))
        );
        assert_eq!(jwt_expiry("not-a-jwt"), None);
        assert_eq!(jwt_expiry(&format!("a.{}.c", b("{}"))), None);
    }

    #[test]
    fn messages_batch_job_events_in_a_string_body() {
        let m = br#"{"messageId":7,"messageType":"RunnerScaleSetJobMessages","statistics":{"totalAvailableJobs":1,"totalAssignedJobs":3,"totalRunningJobs":2,"totalRegisteredRunners":3,"totalBusyRunners":2,"totalIdleRunners":1,"totalAcquiredJobs":0},"body":"[{\"messageType\":\"JobAvailable\",\"runnerRequestId\":11,\"acquireJobUrl\":\"x\"},{\"messageType\":\"JobStarted\",\"runnerRequestId\":9,\"runnerId\":4,\"runnerName\":\"ss-1\"},{\"messageType\":\"JobCompleted\",\"runnerRequestId\":8,\"result\":\"succeeded\",\"runnerName\":\"ss-0\"}]"}"#;
        let m = parse_message(m).unwrap();
        assert_eq!(m.id, 7);
        assert_eq!(m.statistics.unwrap().total_assigned_jobs, 3);
        assert_eq!(m.events.len(), 3);
        assert_eq!(m.events[0].message_type, "JobAvailable");
        assert_eq!(m.events[0].runner_request_id, 11);
        assert_eq!(m.events[1].runner_name.as_deref(), Some("ss-1"));
        assert_eq!(m.events[2].result.as_deref(), Some("succeeded"));
        let empty = parse_message(
            b"\xef\xbb\xbf{\"messageId\":1,\"messageType\":\"RunnerScaleSetJobMessages\",\"body\":\"\"}",
        )
        .unwrap();
        assert!(empty.events.is_empty() && empty.statistics.is_none());
        assert!(parse_message(br#"{"messageId":1,"messageType":"Other","body":""}"#).is_err());
    }

    #[test]
    fn sessions_never_print_their_token() {
        let s: Session = SessionWire {
            session_id: "s1".into(),
            owner_name: "host".into(),
            message_queue_url: "http://q".into(),
            message_queue_access_token: "QUEUE-SECRET".into(),
            statistics: None,
        }
        .into();
        assert!(!format!("{s:?}").contains("QUEUE-SECRET"));
    }
}
