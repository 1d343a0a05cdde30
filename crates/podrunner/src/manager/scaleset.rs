//! The listener of a scale set pool (docs/scaling.md, "Scale sets"): gets or creates the
//! scale set, holds its one message session, long-polls the queue, acknowledges each message
//! before acting on it, acquires the jobs GitHub offers, and reports what GitHub said to the
//! manager's loop. It starts no runner itself: the loop sizes the pool from the statistics.
//!
//! A session a killed manager left behind is deleted by the next one: its id is kept in the
//! state folder while it is open. Another host's session (409) is waited out with backoff and
//! named in status.

use super::Outcome;
use crate::config::PoolConfig;
use crate::github::scaleset::{JobEvent, ScaleSetClient, ScaleSetError, Session, Statistics};
use crate::github::{self, JitConfig};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc::UnboundedSender, watch};

/// First wait after a failure or a session conflict; doubles up to [`RETRY_CAP`].
pub const RETRY_BASE: Duration = Duration::from_secs(2);
/// Longest wait between two attempts to get the session: a host that waits for another one's
/// session takes over within this long after that one stops.
pub const RETRY_CAP: Duration = Duration::from_secs(30);

/// What a listener tells the manager's loop.
#[derive(Debug, Clone)]
pub enum Report {
    /// The scale set exists with this id.
    Ready { id: u64 },
    /// A session is open; `statistics` as GitHub gave them with it.
    Session {
        owner: String,
        statistics: Option<Statistics>,
    },
    /// A message was acknowledged: the statistics, and the `JobStarted` events of runners
    /// GitHub saw start a job (each names its runner).
    Message {
        statistics: Option<Statistics>,
        started: Vec<JobEvent>,
        completed: usize,
        acquired: usize,
    },
    /// Another listener holds the session; GitHub's words.
    Conflict { message: String },
    /// Something failed; retried after `retry_in`.
    Failed { why: String, retry_in: Duration },
    /// The session is closed (stop or drain).
    Closed,
}

/// A pool's scale set client, and the set's id once it is known.
type Entry = (Arc<ScaleSetClient>, Option<u64>);

/// The scale set clients of the pools, and the ids of the sets, for starting runners.
#[derive(Debug, Default)]
pub struct Registry {
    sets: Mutex<BTreeMap<String, Entry>>,
}

impl Registry {
    pub fn client(&self, pool: &str) -> Option<Arc<ScaleSetClient>> {
        self.sets
            .lock()
            .expect("registry lock")
            .get(pool)
            .map(|(c, _)| c.clone())
    }

    fn insert(&self, pool: &str, c: Arc<ScaleSetClient>) {
        self.sets
            .lock()
            .expect("registry lock")
            .insert(pool.to_string(), (c, None));
    }

    fn set_id(&self, pool: &str, id: u64) {
        if let Some(e) = self.sets.lock().expect("registry lock").get_mut(pool) {
            e.1 = Some(id);
        }
    }

    /// A JIT config from the pool's scale set.
    pub async fn jit(
        &self,
        pool: &str,
        name: &str,
        work: &str,
    ) -> Result<JitConfig, github::Error> {
        let entry = self.sets.lock().expect("registry lock").get(pool).cloned();
        match entry {
            Some((c, Some(id))) => c.generate_jitconfig(id, name, work).await,
            _ => Err(github::Error::Http {
                status: 0,
                message: format!("the scale set of pool {pool} is not ready yet"),
            }),
        }
    }
}

/// This host's name for sessions: the host name, plus the manager's instance when it is not
/// the default one (two managers on one host are two owners).
pub fn owner_name(instance: &str) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into());
    if instance == "default" {
        host
    } else {
        format!("{host}/{instance}")
    }
}

fn session_file(state_dir: &Path, pool: &str) -> PathBuf {
    state_dir.join("sessions").join(pool)
}

fn backoff(attempt: u32) -> Duration {
    RETRY_BASE
        .saturating_mul(2u32.saturating_pow(attempt.min(8)))
        .min(RETRY_CAP)
}

/// Starts the listener of a scale set pool; it runs until `stop` says true.
pub fn spawn(
    registry: &Arc<Registry>,
    gh: Arc<github::Client>,
    pool: PoolConfig,
    owner: String,
    state_dir: PathBuf,
    tx: UnboundedSender<Outcome>,
    stop: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    let client = Arc::new(ScaleSetClient::new(gh, pool.scope.clone()));
    registry.insert(pool.name.as_str(), client.clone());
    let l = Listener {
        client,
        registry: registry.clone(),
        pool,
        owner,
        state_dir,
        tx,
        stop,
    };
    tokio::spawn(l.run())
}

struct Listener {
    client: Arc<ScaleSetClient>,
    registry: Arc<Registry>,
    pool: PoolConfig,
    owner: String,
    state_dir: PathBuf,
    tx: UnboundedSender<Outcome>,
    stop: watch::Receiver<bool>,
}

enum End {
    Stopped,
    Retry(String),
}

impl Listener {
    fn report(&self, report: Report) {
        let _ = self.tx.send(Outcome::ScaleSet {
            pool: self.pool.name.to_string(),
            report,
        });
    }

    fn stopped(&self) -> bool {
        *self.stop.borrow()
    }

    /// Sleeps `d` unless a stop comes first; true when stopped.
    async fn pause(&mut self, d: Duration) -> bool {
        if self.stopped() {
            return true;
        }
        tokio::select! {
            _ = tokio::time::sleep(d) => self.stopped(),
            _ = self.stop.changed() => true,
        }
    }

    async fn run(mut self) {
        let name = self.pool.scale_set.clone().unwrap_or_default();
        let mut attempt = 0u32;
        let mut id = None;
        while !self.stopped() {
            let set_id = match id {
                Some(i) => i,
                None => match self
                    .client
                    .get_or_create(&name, self.pool.runner_group_id, self.pool.disable_update)
                    .await
                {
                    Ok(s) => {
                        self.registry.set_id(self.pool.name.as_str(), s.id);
                        self.report(Report::Ready { id: s.id });
                        id = Some(s.id);
                        s.id
                    }
                    Err(e) => {
                        let retry_in = backoff(attempt);
                        attempt += 1;
                        tracing::warn!(pool = %self.pool.name, "scale set {name:?}: {e}; retrying in {}s", retry_in.as_secs());
                        self.report(Report::Failed {
                            why: format!("scale set {name:?}: {e}"),
                            retry_in,
                        });
                        if self.pause(retry_in).await {
                            break;
                        }
                        continue;
                    }
                },
            };
            match self.session(set_id, &mut attempt).await {
                End::Stopped => break,
                End::Retry(why) => {
                    let retry_in = backoff(attempt);
                    attempt += 1;
                    tracing::warn!(pool = %self.pool.name, "{why}; retrying in {}s", retry_in.as_secs());
                    self.report(Report::Failed { why, retry_in });
                    if self.pause(retry_in).await {
                        break;
                    }
                }
            }
        }
        self.report(Report::Closed);
    }

    /// Opens a session and polls until it ends.
    async fn session(&mut self, set_id: u64, attempt: &mut u32) -> End {
        let file = session_file(&self.state_dir, self.pool.name.as_str());
        // A session a killed predecessor left open would hold the set for a while: end it.
        if let Ok(old) = std::fs::read_to_string(&file) {
            let old = old.trim();
            if !old.is_empty() {
                match self.client.delete_session(set_id, old).await {
                    Ok(()) => {
                        tracing::info!(pool = %self.pool.name, "ended the message session {old} a previous manager left open")
                    }
                    Err(e) => {
                        tracing::warn!(pool = %self.pool.name, "cannot end the previous message session {old}: {e}")
                    }
                }
            }
            super::remove_file_logged(&file);
        }
        let mut session = loop {
            match self.client.create_session(set_id, &self.owner).await {
                Ok(s) => break s,
                Err(ScaleSetError::SessionConflict(message)) => {
                    let retry_in = backoff(*attempt);
                    *attempt += 1;
                    tracing::warn!(pool = %self.pool.name, "{message}; waiting {}s for the session", retry_in.as_secs());
                    self.report(Report::Conflict { message });
                    if self.pause(retry_in).await {
                        return End::Stopped;
                    }
                }
                Err(e) => return End::Retry(format!("cannot open the message session: {e}")),
            }
        };
        if let Some(dir) = file.parent() {
            if let Err(e) = std::fs::create_dir_all(dir) {
                tracing::warn!("cannot create {}: {e}", dir.display());
            }
        }
        if let Err(e) = std::fs::write(&file, &session.id) {
            tracing::warn!("cannot keep the session id in {}: {e}", file.display());
        }
        tracing::info!(pool = %self.pool.name, "message session open for scale set {set_id} (owner {})", session.owner);
        self.report(Report::Session {
            owner: session.owner.clone(),
            statistics: session.statistics,
        });
        *attempt = 0;
        let end = self.poll(set_id, &mut session).await;
        if let End::Stopped = end {
            match self.client.delete_session(set_id, &session.id).await {
                Ok(()) => {
                    tracing::info!(pool = %self.pool.name, "message session closed");
                    super::remove_file_logged(&file);
                }
                Err(e) => {
                    tracing::warn!(pool = %self.pool.name, "cannot close the message session: {e}")
                }
            }
        }
        end
    }

    async fn poll(&mut self, set_id: u64, session: &mut Session) -> End {
        let mut last = 0u64;
        loop {
            if self.stopped() {
                return End::Stopped;
            }
            let got = tokio::select! {
                r = self.client.get_message(session, last, self.pool.max) => r,
                _ = self.stop.changed() => return End::Stopped,
            };
            let msg = match got {
                Ok(None) => continue,
                Ok(Some(m)) => m,
                Err(ScaleSetError::QueueTokenExpired) => {
                    match self.client.refresh_session(set_id, session).await {
                        Ok(s) => {
                            tracing::debug!(pool = %self.pool.name, "message queue token refreshed");
                            *session = s;
                            continue;
                        }
                        Err(e) => {
                            return End::Retry(format!("cannot refresh the message session: {e}"))
                        }
                    }
                }
                Err(e) => return End::Retry(format!("message queue: {e}")),
            };
            last = msg.id;
            // Acknowledge first: a message acted on but not acknowledged would come again.
            if let Err(e) = self.client.delete_message(session, msg.id).await {
                return End::Retry(format!("cannot acknowledge message {}: {e}", msg.id));
            }
            let available: Vec<u64> = msg
                .events
                .iter()
                .filter(|e| e.message_type == "JobAvailable")
                .map(|e| e.runner_request_id)
                .collect();
            let mut acquired = 0;
            if !available.is_empty() {
                match self.client.acquire_jobs(set_id, session, &available).await {
                    Ok(ids) => acquired = ids.len(),
                    Err(e) => {
                        tracing::warn!(pool = %self.pool.name, "cannot acquire jobs {available:?}: {e}")
                    }
                }
            }
            let started = msg
                .events
                .iter()
                .filter(|e| e.message_type == "JobStarted" && e.runner_name.is_some())
                .cloned()
                .collect();
            let completed = msg
                .events
                .iter()
                .filter(|e| e.message_type == "JobCompleted")
                .count();
            self.report(Report::Message {
                statistics: msg.statistics,
                started,
                completed,
                acquired,
            });
        }
    }
}
