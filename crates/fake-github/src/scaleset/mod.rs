//! GitHub's runner scale set service, imitated (docs/test-bench.md, "Scale sets"): the
//! runner-registration exchange (`RemoteAuth` registration token → Actions service URL and an
//! admin JWT), scale sets (list by name, create, get, patch, delete), one message session per
//! scale set (409 with the holder's name for a second one), the long-polled message queue
//! (202 after `poll_wait_ms` with nothing to say; messages batch job events with the set's
//! statistics and come again until acknowledged by DELETE), `acquirejobs`, JIT configs for the
//! set's runners, runner groups, and job cancellation and reassignment.
//!
//! Shapes follow GitHub's Go client `actions/scaleset` (its `types.go`). A job is a scale set
//! job when its only `runs-on` label is a set's name in a matching scope. Such a job goes to
//! a runner of that set, and only after the set acquired it; label runners never take it.
//!
//! Layout like the rest of the crate: [`Service`] (here) is plain data with pure decisions,
//! driven by [`State`]'s hooks; [`router`] (`http.rs`: registration, sets, sessions, JIT
//! configs; `queue.rs`: the message queue and job acquisition) is the HTTP face. Tokens: the admin JWT and the queue
//! token are random, recorded with their expiry, and checked on every call.

use std::collections::BTreeMap;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::{json, Value};

mod http;
mod queue;

pub use http::router;

use crate::state::{
    self, scope_matches, Conclusion, JobRecord, JobRefused, JobStatus, State, Tokens,
};

/// Real admin tokens live about an hour.
pub const ADMIN_TOKEN_TTL_SECS: u64 = 3600;
/// Queue tokens too.
pub const QUEUE_TOKEN_TTL_SECS: u64 = 3600;
/// GitHub holds an empty long poll about 50 s before answering 202.
pub const POLL_WAIT_MS: u64 = 50_000;
/// A session nobody polled for this long is dead: a new one may replace it (GitHub ends the
/// sessions of listeners that went away, after a while).
pub const SESSION_IDLE_TIMEOUT_SECS: u64 = 120;
/// The path under the fake's origin where its Actions service lives.
pub const SERVICE_PREFIX: &str = "/_actions";
/// Where it lives when the fake is a GitHub Enterprise Server: such a server names its Actions
/// service `https://HOST/_services/pipelines/<tenant>` (docs/ghes.md), a
/// path under the server's own origin, beside `/api/v3`.
pub const GHES_SERVICE_PREFIX: &str = "/_services/pipelines/FakeGhesTenant0a1b2c3d4e5f";
/// The first GHES release with runner scale sets (docs/ghes.md): an older fake GHES answers the
/// runner-registration exchange 404, as a server without the service does.
pub const GHES_SCALE_SETS_SINCE: (u32, u32) = (3, 9);

/// One event of a message, as `actions/scaleset` decodes it (`JobMessageBase` and friends).
#[derive(Clone, Debug, PartialEq)]
pub struct Event(pub Value);

/// A message waiting for its acknowledgement.
#[derive(Clone, Debug, PartialEq)]
pub struct MessageRec {
    pub id: u64,
    pub events: Vec<Event>,
    pub statistics: Value,
}

/// A scale set's one message session.
#[derive(Clone, Debug)]
pub struct SessionRec {
    pub id: String,
    pub owner: String,
    pub queue_token: String,
    pub queue_token_expires: u64,
    /// Events not yet put in a message.
    pub pending: Vec<Event>,
    /// A message handed out and not acknowledged yet.
    pub outstanding: Option<MessageRec>,
    pub next_message_id: u64,
    pub last_poll_ms: u64,
    /// Every message id acknowledged, in order (tests read it).
    pub acked: Vec<u64>,
}

/// A runner scale set.
#[derive(Clone, Debug)]
pub struct ScaleSetRec {
    pub id: u64,
    pub name: String,
    pub scope: String,
    pub runner_group_id: u64,
    pub disable_update: bool,
    pub created_at: u64,
    pub session: Option<SessionRec>,
    /// Every owner that ever opened a session, in order.
    pub owners: Vec<String>,
}

/// A job routed to a scale set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SetJob {
    pub set_id: u64,
    pub acquired: bool,
}

/// The scale set service's data, inside [`State`].
#[derive(Debug)]
pub struct Service {
    pub sets: BTreeMap<u64, ScaleSetRec>,
    next_set_id: u64,
    /// Registration tokens handed out, with their scope.
    pub registration_tokens: BTreeMap<String, String>,
    /// Admin tokens: token → (scope, expiry in epoch seconds).
    pub admin_tokens: BTreeMap<String, (String, u64)>,
    pub jobs: BTreeMap<u64, SetJob>,
    /// Runner id → scale set id.
    pub runners: BTreeMap<u64, u64>,
    pub admin_token_ttl_secs: u64,
    pub queue_token_ttl_secs: u64,
    pub poll_wait_ms: u64,
    pub session_idle_timeout_secs: u64,
    /// Jobs acquired through `acquirejobs`, in order (a job acquired twice shows twice).
    pub acquired_log: Vec<u64>,
    /// The Actions service's path under the fake's origin ([`SERVICE_PREFIX`], or
    /// [`GHES_SERVICE_PREFIX`] as a GitHub Enterprise Server); fixed when the fake starts.
    pub prefix: String,
}

impl Default for Service {
    fn default() -> Self {
        Service {
            sets: BTreeMap::new(),
            next_set_id: 1,
            registration_tokens: BTreeMap::new(),
            admin_tokens: BTreeMap::new(),
            jobs: BTreeMap::new(),
            runners: BTreeMap::new(),
            admin_token_ttl_secs: ADMIN_TOKEN_TTL_SECS,
            queue_token_ttl_secs: QUEUE_TOKEN_TTL_SECS,
            poll_wait_ms: POLL_WAIT_MS,
            session_idle_timeout_secs: SESSION_IDLE_TIMEOUT_SECS,
            acquired_log: Vec::new(),
            prefix: SERVICE_PREFIX.to_string(),
        }
    }
}

fn rfc3339_ms(ms: u64) -> String {
    let t = std::time::UNIX_EPOCH + Duration::from_millis(ms);
    humantime::format_rfc3339_millis(t).to_string()
}

/// An unsigned JWT whose payload carries `exp`: what a client reads to know when to renew.
pub fn admin_jwt(exp: u64, tokens: &Tokens) -> String {
    let head = URL_SAFE_NO_PAD.encode(r#"{"alg":"RS256","typ":"JWT"}"#);
    let body = URL_SAFE_NO_PAD.encode(json!({"exp": exp, "iss": "fake-github"}).to_string());
    format!("{head}.{body}.{}", tokens.token(32))
}

/// The base of a job event: `JobMessageBase` of `actions/scaleset`.
fn job_event(kind: &str, job: &JobRecord, extra: Value) -> Event {
    let (owner, repo) = job
        .scope
        .strip_prefix("repos/")
        .and_then(|r| r.split_once('/'))
        .map(|(o, r)| (o.to_string(), r.to_string()))
        .unwrap_or_else(|| {
            (
                job.scope.trim_start_matches("orgs/").to_string(),
                String::new(),
            )
        });
    let mut v = json!({
        "messageType": kind,
        "runnerRequestId": job.id,
        "repositoryName": repo,
        "ownerName": owner,
        "jobId": format!("job-{}", job.id),
        "jobWorkflowRef": format!("{owner}/{repo}/.github/workflows/ci.yml@refs/heads/main"),
        "jobDisplayName": format!("job {}", job.id),
        "workflowRunId": job.id,
        "eventName": "push",
        "requestLabels": job.labels,
        "queueTime": rfc3339_ms(job.queued_at),
        // A set's job is the set's from the moment it is queued (`on_enqueue`).
        "scaleSetAssignTime": rfc3339_ms(job.queued_at),
    });
    if let Some(started) = job.started_at {
        v["runnerAssignTime"] = json!(rfc3339_ms(started));
    }
    if let (Some(o), Some(e)) = (v.as_object_mut(), extra.as_object()) {
        for (k, x) in e {
            o.insert(k.clone(), x.clone());
        }
    }
    Event(v)
}

impl Service {
    /// The set a job is for: its only label is the set's name, in a matching scope.
    fn set_for(&self, job: &JobRecord) -> Option<u64> {
        let [label] = job.labels.as_slice() else {
            return None;
        };
        self.sets
            .values()
            .find(|s| s.name.eq_ignore_ascii_case(label) && scope_matches(&s.scope, &job.scope))
            .map(|s| s.id)
    }

    /// The open session of set `set_id`.
    fn session_mut(&mut self, set_id: u64) -> Option<&mut SessionRec> {
        self.sets.get_mut(&set_id).and_then(|s| s.session.as_mut())
    }

    fn push(&mut self, set_id: u64, e: Event) {
        if let Some(sess) = self.session_mut(set_id) {
            sess.pending.push(e);
        }
    }

    /// A job was queued: a set's job becomes available to the set's session.
    pub fn on_enqueue(&mut self, job: &JobRecord) {
        if let Some(set_id) = self.set_for(job) {
            self.jobs.insert(
                job.id,
                SetJob {
                    set_id,
                    acquired: false,
                },
            );
            let url = format!(
                "{}/_apis/runtime/runnerscalesets/{set_id}/acquirejobs",
                self.prefix
            );
            self.push(
                set_id,
                job_event("JobAvailable", job, json!({"acquireJobUrl": url})),
            );
        }
    }

    /// Whether runner `runner_id` may take job `job_id` (dispatch asks).
    pub fn may_take(&self, job_id: u64, runner_id: u64) -> bool {
        match (self.jobs.get(&job_id), self.runners.get(&runner_id)) {
            (Some(j), Some(set)) => j.acquired && j.set_id == *set,
            (Some(_), None) | (None, Some(_)) => false,
            (None, None) => true,
        }
    }

    /// A runner took the job.
    pub fn on_started(&mut self, job: &JobRecord, runner_id: u64, runner_name: &str, now_ms: u64) {
        if let Some(j) = self.jobs.get(&job.id).copied() {
            self.push(
                j.set_id,
                job_event(
                    "JobStarted",
                    job,
                    json!({"runnerId": runner_id, "runnerName": runner_name,
                           "runnerAssignTime": rfc3339_ms(now_ms)}),
                ),
            );
        }
    }

    /// The job ended (its runner finished, or it was cancelled before one took it).
    pub fn on_completed(&mut self, job: &JobRecord, now_ms: u64) {
        if let Some(j) = self.jobs.remove(&job.id) {
            let result = match job.conclusion {
                Some(Conclusion::Success) => "succeeded",
                Some(Conclusion::Failure) => "failed",
                Some(Conclusion::Cancelled) | None => "canceled",
            };
            self.push(
                j.set_id,
                job_event(
                    "JobCompleted",
                    job,
                    json!({"result": result, "runnerId": job.runner_id.unwrap_or(0),
                           "runnerName": job.runner_name.clone().unwrap_or_default(),
                           "finishTime": rfc3339_ms(now_ms)}),
                ),
            );
        }
    }

    /// A set's session ended: jobs it acquired that no runner took go back to being
    /// available, for the next session (reassignment).
    fn release(&mut self, set_id: u64, jobs: &BTreeMap<u64, JobRecord>) {
        for (id, j) in self.jobs.iter_mut() {
            if j.set_id == set_id
                && j.acquired
                && jobs.get(id).is_some_and(|r| r.status == JobStatus::Queued)
            {
                j.acquired = false;
            }
        }
    }
}

/// The set's statistics (`RunnerScaleSetStatistic`).
pub fn statistics(st: &State, set_id: u64) -> Value {
    let mut available = 0;
    let mut acquired = 0;
    let mut assigned = 0;
    let mut running = 0;
    for (id, j) in st.scalesets.jobs.iter().filter(|(_, j)| j.set_id == set_id) {
        let Some(job) = st.jobs.get(id) else { continue };
        match (job.status, j.acquired) {
            (JobStatus::Queued, false) => available += 1,
            (JobStatus::Queued, true) => {
                acquired += 1;
                assigned += 1;
            }
            (JobStatus::InProgress, _) => {
                assigned += 1;
                running += 1;
            }
            (JobStatus::Completed, _) => {}
        }
    }
    let runners: Vec<&state::RunnerRecord> = st
        .scalesets
        .runners
        .iter()
        .filter(|(_, s)| **s == set_id)
        .filter_map(|(id, _)| st.runners.get(id))
        .collect();
    let busy = runners.iter().filter(|r| r.busy).count();
    json!({
        "totalAvailableJobs": available,
        "totalAcquiredJobs": acquired,
        "totalAssignedJobs": assigned,
        "totalRunningJobs": running,
        "totalRegisteredRunners": runners.len(),
        "totalBusyRunners": busy,
        "totalIdleRunners": runners.len() - busy,
    })
}

fn set_json(st: &State, s: &ScaleSetRec) -> Value {
    json!({
        "id": s.id,
        "name": s.name,
        "runnerGroupId": s.runner_group_id,
        "runnerGroupName": if s.runner_group_id == 1 { "Default" } else { "group" },
        "labels": [{"type": "System", "name": s.name}],
        "RunnerSetting": {"disableUpdate": s.disable_update},
        "createdOn": rfc3339_ms(s.created_at),
        "runnerJitConfigUrl": format!("{}/_apis/runtime/runnerscalesets/{}/generatejitconfig", st.scalesets.prefix, s.id),
        "statistics": statistics(st, s.id),
    })
}

fn session_json(st: &State, s: &ScaleSetRec, sess: &SessionRec) -> Value {
    json!({
        "sessionId": sess.id,
        "ownerName": sess.owner,
        "runnerScaleSet": set_json(st, s),
        "messageQueueUrl": format!("{}/_queue/{}", st.server_url, sess.id),
        "messageQueueAccessToken": sess.queue_token,
        "statistics": statistics(st, s.id),
    })
}

fn new_uuid(tokens: &Tokens) -> String {
    let h = tokens.token(32).to_ascii_lowercase();
    let hex: String = h
        .bytes()
        .map(|b| char::from(b"0123456789abcdef"[(b % 16) as usize]))
        .collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// Why a scale set session was not opened; the text is the message the fake answers with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionRefused {
    /// No such set (callers look the set up first, so nobody sees this text).
    #[error("no such scale set")]
    NoSet,
    #[error("The actions runner scale set {set} already has an active session for owner {owner}.")]
    Held { set: String, owner: String },
}

impl State {
    /// A session whose listener stopped polling long ago is ended, as GitHub ends them.
    fn expire_session(&mut self, set_id: u64) {
        let timeout_ms = self.scalesets.session_idle_timeout_secs * 1000;
        let dead = self
            .scalesets
            .sets
            .get(&set_id)
            .and_then(|s| s.session.as_ref())
            .is_some_and(|sess| self.clock.now_ms().saturating_sub(sess.last_poll_ms) > timeout_ms);
        if dead {
            self.end_session(set_id);
        }
    }

    /// Ends a set's session; its acquired, unstarted jobs become available again.
    pub fn end_session(&mut self, set_id: u64) {
        if let Some(s) = self.scalesets.sets.get_mut(&set_id) {
            s.session = None;
        }
        let jobs = std::mem::take(&mut self.jobs);
        self.scalesets.release(set_id, &jobs);
        self.jobs = jobs;
    }

    /// Opens the set's session for `owner`, or names the owner that holds it.
    pub fn open_session(&mut self, set_id: u64, owner: &str) -> Result<Value, SessionRefused> {
        self.expire_session(set_id);
        let ttl = self.scalesets.queue_token_ttl_secs;
        let (now_ms, tokens) = (self.clock.now_ms(), self.tokens.clone());
        let available: Vec<Event> = self
            .scalesets
            .jobs
            .iter()
            .filter(|(_, j)| j.set_id == set_id && !j.acquired)
            .filter_map(|(id, _)| self.jobs.get(id))
            .filter(|j| j.status == JobStatus::Queued)
            .map(|j| {
                let url = format!(
                    "{}/_apis/runtime/runnerscalesets/{set_id}/acquirejobs",
                    self.scalesets.prefix
                );
                job_event("JobAvailable", j, json!({"acquireJobUrl": url}))
            })
            .collect();
        let Some(set) = self.scalesets.sets.get_mut(&set_id) else {
            return Err(SessionRefused::NoSet);
        };
        if let Some(s) = &set.session {
            return Err(SessionRefused::Held {
                set: set.name.clone(),
                owner: s.owner.clone(),
            });
        }
        set.owners.push(owner.to_string());
        set.session = Some(SessionRec {
            id: new_uuid(&tokens),
            owner: owner.to_string(),
            queue_token: tokens.token(40),
            queue_token_expires: now_ms / 1000 + ttl,
            pending: available,
            outstanding: None,
            next_message_id: 1,
            last_poll_ms: now_ms,
            acked: Vec::new(),
        });
        let set = self.scalesets.sets[&set_id].clone();
        let sess = set.session.as_ref().expect("just set");
        Ok(session_json(self, &set, sess))
    }

    /// Cancels a job no runner has started: it completes as cancelled.
    pub fn cancel_job(&mut self, id: u64) -> Result<JobRecord, JobRefused> {
        let job = self.jobs.get_mut(&id).ok_or(JobRefused::NoJob)?;
        if job.status != JobStatus::Queued {
            return Err(JobRefused::NotQueued(id));
        }
        job.status = JobStatus::Completed;
        job.conclusion = Some(Conclusion::Cancelled);
        job.completed_at = Some(self.clock.now_ms());
        let done = job.clone();
        self.scalesets.on_completed(&done, self.clock.now_ms());
        Ok(done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::test_state;

    fn job(st: &mut State, labels: &[&str]) -> JobRecord {
        st.enqueue_job(
            "repos/o/r",
            labels.iter().map(|s| s.to_string()).collect(),
            "true",
            None,
        )
    }

    fn set(st: &mut State, name: &str) -> u64 {
        let id = st.scalesets.next_set_id;
        st.scalesets.next_set_id += 1;
        st.scalesets.sets.insert(
            id,
            ScaleSetRec {
                id,
                name: name.into(),
                scope: "repos/o/r".into(),
                runner_group_id: 1,
                disable_update: false,
                created_at: 0,
                session: None,
                owners: vec![],
            },
        );
        id
    }

    #[test]
    fn sessions_conflict_and_jobs_come_back_to_the_next_one() {
        let mut st = test_state();
        let s = set(&mut st, "big");
        let j = job(&mut st, &["big"]);
        let other = job(&mut st, &["self-hosted"]);
        assert!(st.scalesets.jobs.contains_key(&j.id));
        assert!(!st.scalesets.jobs.contains_key(&other.id));
        let v = st.open_session(s, "host-a").unwrap();
        assert_eq!(v["statistics"]["totalAvailableJobs"], 1);
        let e = st.open_session(s, "host-b").unwrap_err().to_string();
        assert!(e.ends_with("active session for owner host-a."), "{e}");
        // Acquired, then the session ends before a runner took it: available again.
        st.scalesets.jobs.get_mut(&j.id).unwrap().acquired = true;
        assert_eq!(statistics(&st, s)["totalAssignedJobs"], 1);
        st.end_session(s);
        assert_eq!(statistics(&st, s)["totalAvailableJobs"], 1);
        let v = st.open_session(s, "host-b").unwrap();
        assert_eq!(v["ownerName"], "host-b");
        let pending = &st.scalesets.sets[&s].session.as_ref().unwrap().pending;
        assert_eq!(pending.len(), 1);
        assert_eq!(pending[0].0["messageType"], "JobAvailable");
        assert_eq!(pending[0].0["runnerRequestId"], j.id);
    }

    #[test]
    fn a_dead_session_is_replaced() {
        let mut st = test_state();
        let s = set(&mut st, "big");
        st.open_session(s, "a").unwrap();
        st.scalesets
            .sets
            .get_mut(&s)
            .unwrap()
            .session
            .as_mut()
            .unwrap()
            .last_poll_ms = 0;
        assert!(st.open_session(s, "b").is_ok());
    }

    #[test]
    fn set_jobs_only_go_to_their_set_after_acquisition() {
        let mut st = test_state();
        let s = set(&mut st, "big");
        st.scalesets.runners.insert(7, s);
        let j = job(&mut st, &["big"]);
        assert!(!st.scalesets.may_take(j.id, 7), "not acquired yet");
        assert!(!st.scalesets.may_take(j.id, 8), "a label runner");
        st.scalesets.jobs.get_mut(&j.id).unwrap().acquired = true;
        assert!(st.scalesets.may_take(j.id, 7));
        assert!(!st.scalesets.may_take(j.id, 8));
        assert!(
            !st.scalesets.may_take(999, 7),
            "a set runner takes no label job"
        );
        assert!(st.scalesets.may_take(999, 8));
    }

    #[test]
    fn cancelling_a_queued_set_job_reports_it_completed() {
        let mut st = test_state();
        let s = set(&mut st, "big");
        st.open_session(s, "a").unwrap();
        let j = job(&mut st, &["big"]);
        let done = st.cancel_job(j.id).unwrap();
        assert_eq!(done.conclusion, Some(Conclusion::Cancelled));
        let pending = &st.scalesets.sets[&s].session.as_ref().unwrap().pending;
        let kinds: Vec<&Value> = pending.iter().map(|e| &e.0["messageType"]).collect();
        assert_eq!(kinds, vec!["JobAvailable", "JobCompleted"]);
        assert_eq!(pending[1].0["result"], "canceled");
        assert!(st.cancel_job(j.id).is_err());
    }

    #[test]
    fn admin_tokens_carry_their_expiry() {
        let t = admin_jwt(1_700_000_000, &Tokens::seeded(1));
        let payload = t.split('.').nth(1).unwrap();
        let v: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
        assert_eq!(v["exp"], 1_700_000_000u64);
    }
}
