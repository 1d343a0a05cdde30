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
//!
//! Files: this one holds the client and its tokens; `wire.rs` the shapes the service sends
//! and the pure reads of them (messages, JWT expiry, config URLs).

mod wire;

use super::{error_message, ghes, Client, Error, JitConfig, Runner, Secret};
use crate::config::names::Scope;
use reqwest::{header, Method, StatusCode};
use serde::Deserialize;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
pub use wire::{
    config_url, jwt_expiry, parse_message, JobEvent, Message, RunnerSetting, ScaleSet,
    ScaleSetError, ScaleSetLabel, Session, Statistics, JOB_MESSAGES,
};
use wire::{ListOf, SessionWire};

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
/// The admin connection: the Actions service URL and a token with its expiry.
#[derive(Debug, Clone)]
struct Admin {
    url: String,
    token: Secret,
    expires: SystemTime,
}

/// A scale set client for one scope.
#[derive(Debug)]
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
mod tests;
