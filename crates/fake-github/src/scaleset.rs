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
//! Layout like the rest of the crate: [`Service`] is plain data with pure decisions, driven
//! by [`State`]'s hooks; [`router`] is the HTTP face. Tokens: the admin JWT and the queue
//! token are random, recorded with their expiry, and checked on every call.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State as AxState};
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post};
use axum::{Json, Router};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::{json, Value};

use crate::http::Shared;
use crate::state::{
    self, now_ms, now_secs, random_token, scope_matches, Conclusion, JobRecord, JobStatus, State,
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
pub fn admin_jwt(exp: u64) -> String {
    let head = URL_SAFE_NO_PAD.encode(r#"{"alg":"RS256","typ":"JWT"}"#);
    let body = URL_SAFE_NO_PAD.encode(json!({"exp": exp, "iss": "fake-github"}).to_string());
    format!("{head}.{body}.{}", random_token(32))
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

    fn push(&mut self, set_id: u64, e: Event) {
        if let Some(sess) = self.sets.get_mut(&set_id).and_then(|s| s.session.as_mut()) {
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
    pub fn on_started(&mut self, job: &JobRecord, runner_id: u64, runner_name: &str) {
        if let Some(j) = self.jobs.get(&job.id).copied() {
            self.push(
                j.set_id,
                job_event(
                    "JobStarted",
                    job,
                    json!({"runnerId": runner_id, "runnerName": runner_name,
                           "runnerAssignTime": rfc3339_ms(now_ms())}),
                ),
            );
        }
    }

    /// The job ended (its runner finished, or it was cancelled before one took it).
    pub fn on_completed(&mut self, job: &JobRecord) {
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
                           "finishTime": rfc3339_ms(now_ms())}),
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

fn new_uuid() -> String {
    let h = random_token(32).to_ascii_lowercase();
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

impl State {
    /// A session whose listener stopped polling long ago is ended, as GitHub ends them.
    fn expire_session(&mut self, set_id: u64) {
        let timeout_ms = self.scalesets.session_idle_timeout_secs * 1000;
        let dead = self
            .scalesets
            .sets
            .get(&set_id)
            .and_then(|s| s.session.as_ref())
            .is_some_and(|sess| now_ms().saturating_sub(sess.last_poll_ms) > timeout_ms);
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
    pub fn open_session(&mut self, set_id: u64, owner: &str) -> Result<Value, String> {
        self.expire_session(set_id);
        let ttl = self.scalesets.queue_token_ttl_secs;
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
            return Err(String::new());
        };
        if let Some(s) = &set.session {
            return Err(format!(
                "The actions runner scale set {} already has an active session for owner {}.",
                set.name, s.owner
            ));
        }
        set.owners.push(owner.to_string());
        set.session = Some(SessionRec {
            id: new_uuid(),
            owner: owner.to_string(),
            queue_token: random_token(40),
            queue_token_expires: now_secs() + ttl,
            pending: available,
            outstanding: None,
            next_message_id: 1,
            last_poll_ms: now_ms(),
            acked: Vec::new(),
        });
        let set = self.scalesets.sets[&set_id].clone();
        let sess = set.session.as_ref().expect("just set");
        Ok(session_json(self, &set, sess))
    }

    /// Cancels a job no runner has started: it completes as cancelled.
    pub fn cancel_job(&mut self, id: u64) -> Result<JobRecord, String> {
        let job = self.jobs.get_mut(&id).ok_or("job not found")?;
        if job.status != JobStatus::Queued {
            return Err(format!("job {id} is not queued"));
        }
        job.status = JobStatus::Completed;
        job.conclusion = Some(Conclusion::Cancelled);
        job.completed_at = Some(now_ms());
        let done = job.clone();
        self.scalesets.on_completed(&done);
        Ok(done)
    }
}

// ---------------------------------------------------------------------------------------------
// HTTP
// ---------------------------------------------------------------------------------------------

type Sh = Arc<Shared>;

/// The scale set service's routes; merged into the fake's router by `http::router`. As a
/// GitHub Enterprise Server (`ghes`) the registration exchange sits under `/api/v3` with the
/// rest of the REST API, and the Actions service under [`GHES_SERVICE_PREFIX`].
pub fn router(ghes: bool) -> Router<Sh> {
    let service = Router::new()
        .route("/_apis/runtime/runnergroups/", get(runner_groups))
        .route(
            "/_apis/runtime/runnerscalesets",
            get(list_sets).post(create_set),
        )
        .route(
            "/_apis/runtime/runnerscalesets/:id",
            get(get_set).patch(patch_set).delete(delete_set),
        )
        .route(
            "/_apis/runtime/runnerscalesets/:id/sessions",
            post(create_session),
        )
        .route(
            "/_apis/runtime/runnerscalesets/:id/sessions/:sid",
            patch(refresh_session).delete(delete_session),
        )
        .route(
            "/_apis/runtime/runnerscalesets/:id/acquirejobs",
            post(acquire_jobs),
        )
        .route(
            "/_apis/runtime/runnerscalesets/:id/generatejitconfig",
            post(generate_jitconfig),
        );
    let (registration, prefix) = if ghes {
        ("/api/v3/actions/runner-registration", GHES_SERVICE_PREFIX)
    } else {
        ("/actions/runner-registration", SERVICE_PREFIX)
    };
    Router::new()
        .route(registration, post(runner_registration))
        .nest(prefix, service)
        .route("/_queue/:sid", get(get_message))
        .route("/_queue/:sid/:mid", axum::routing::delete(delete_message))
        .route("/_fake/jobs/:id/cancel", post(cancel))
}

/// The Actions service's error shape (`WrappedException`).
fn service_error(status: StatusCode, type_name: &str, message: &str) -> Response {
    (
        status,
        Json(json!({
            "$id": "1",
            "innerException": null,
            "message": message,
            "typeName": type_name,
            "typeKey": type_name.trim_end_matches("Exception"),
            "errorCode": 0,
            "eventId": 3000,
        })),
    )
        .into_response()
}

fn bearer(headers: &HeaderMap, scheme: &str) -> Option<String> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (s, t) = v.split_once(' ')?;
    s.eq_ignore_ascii_case(scheme).then(|| t.trim().to_string())
}

/// The scope an admin token was issued for, or the 401 to answer.
#[allow(clippy::result_large_err)]
fn admin_scope(sh: &Shared, headers: &HeaderMap) -> Result<String, Response> {
    let unauthorized = || {
        service_error(
            StatusCode::UNAUTHORIZED,
            "VssUnauthorizedException",
            "TF400813: The user is not authorized to access this resource.",
        )
    };
    let t = bearer(headers, "Bearer").ok_or_else(unauthorized)?;
    let st = sh.lock();
    match st.scalesets.admin_tokens.get(&t) {
        Some((scope, exp)) if *exp > now_secs() => Ok(scope.clone()),
        _ => Err(unauthorized()),
    }
}

fn count(sh: &Shared, route: &str) {
    sh.lock().count_call(route);
}

fn query_param(uri: &Uri, key: &str) -> Option<String> {
    state::parse_query(uri.query())
        .into_iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v)
}

/// `POST /actions/runner-registration` with `RemoteAuth <registration token>`.
async fn runner_registration(
    AxState(sh): AxState<Sh>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    count(&sh, "POST runner-registration");
    let too_old = sh
        .lock()
        .ghes_version
        .as_deref()
        .and_then(state::ghes_minor)
        .is_some_and(|v| v < GHES_SCALE_SETS_SINCE);
    if too_old {
        return (StatusCode::NOT_FOUND, Json(json!({"message": "Not Found"}))).into_response();
    }
    let Some(tok) = bearer(&headers, "RemoteAuth") else {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"message": "Bad credentials"})),
        )
            .into_response();
    };
    let Some(scope) = sh.lock().scalesets.registration_tokens.get(&tok).cloned() else {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"message": "Bad credentials"})),
        )
            .into_response();
    };
    let b: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let url = b["url"].as_str().unwrap_or("");
    let want = scope
        .strip_prefix("repos/")
        .or_else(|| scope.strip_prefix("orgs/"))
        .unwrap_or(&scope)
        .to_ascii_lowercase();
    if b["runner_event"] != "register" || !url.to_ascii_lowercase().ends_with(&format!("/{want}")) {
        return (
            StatusCode::NOT_FOUND,
            Json(json!({"message": format!("the url {url:?} does not name {scope}")})),
        )
            .into_response();
    }
    let (token, base, prefix) = sh.mutate(|st| {
        let exp = now_secs() + st.scalesets.admin_token_ttl_secs;
        let t = admin_jwt(exp);
        st.scalesets
            .admin_tokens
            .insert(t.clone(), (scope.clone(), exp));
        (t, st.server_url.clone(), st.scalesets.prefix.clone())
    });
    Json(json!({"url": format!("{base}{prefix}/"), "token": token, "token_schema": "OAuthAccessToken"}))
        .into_response()
}

async fn runner_groups(AxState(sh): AxState<Sh>, uri: Uri, headers: HeaderMap) -> Response {
    count(&sh, "GET runnergroups");
    if let Err(r) = admin_scope(&sh, &headers) {
        return r;
    }
    let name = query_param(&uri, "groupName").unwrap_or_default();
    let groups: Vec<Value> = [(1, "Default", true)]
        .iter()
        .filter(|(_, n, _)| name.is_empty() || n.eq_ignore_ascii_case(&name))
        .map(|(id, n, d)| json!({"id": id, "name": n, "size": 0, "isDefaultGroup": d}))
        .collect();
    Json(json!({"count": groups.len(), "value": groups})).into_response()
}

async fn list_sets(AxState(sh): AxState<Sh>, uri: Uri, headers: HeaderMap) -> Response {
    count(&sh, "GET runnerscalesets");
    let scope = match admin_scope(&sh, &headers) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let name = query_param(&uri, "name");
    let group = query_param(&uri, "runnerGroupId").and_then(|g| g.parse::<u64>().ok());
    let st = sh.lock();
    let v: Vec<Value> = st
        .scalesets
        .sets
        .values()
        .filter(|s| s.scope.eq_ignore_ascii_case(&scope))
        .filter(|s| name.as_ref().is_none_or(|n| s.name.eq_ignore_ascii_case(n)))
        .filter(|s| group.is_none_or(|g| s.runner_group_id == g))
        .map(|s| set_json(&st, s))
        .collect();
    Json(json!({"count": v.len(), "value": v})).into_response()
}

async fn create_set(AxState(sh): AxState<Sh>, headers: HeaderMap, body: Bytes) -> Response {
    count(&sh, "POST runnerscalesets");
    let scope = match admin_scope(&sh, &headers) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let b: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            return service_error(StatusCode::BAD_REQUEST, "ArgumentException", &e.to_string())
        }
    };
    let Some(name) = b["name"]
        .as_str()
        .filter(|n| !n.is_empty())
        .map(str::to_string)
    else {
        return service_error(
            StatusCode::BAD_REQUEST,
            "ArgumentNullException",
            "name is required",
        );
    };
    let group = b["runnerGroupId"].as_u64().unwrap_or(1);
    let disable_update = b["RunnerSetting"]["disableUpdate"]
        .as_bool()
        .unwrap_or(false);
    sh.mutate(|st| {
        if st
            .scalesets
            .sets
            .values()
            .any(|s| s.scope.eq_ignore_ascii_case(&scope) && s.name.eq_ignore_ascii_case(&name))
        {
            return service_error(
                StatusCode::CONFLICT,
                "RunnerScaleSetExistsException",
                &format!("A runner scale set named {name} already exists."),
            );
        }
        let id = st.scalesets.next_set_id;
        st.scalesets.next_set_id += 1;
        let rec = ScaleSetRec {
            id,
            name,
            scope,
            runner_group_id: group,
            disable_update,
            created_at: now_ms(),
            session: None,
            owners: Vec::new(),
        };
        st.scalesets.sets.insert(id, rec.clone());
        Json(set_json(st, &rec)).into_response()
    })
}

fn set_id_in_scope(st: &State, scope: &str, id: &str) -> Option<u64> {
    let id: u64 = id.parse().ok()?;
    st.scalesets
        .sets
        .get(&id)
        .filter(|s| s.scope.eq_ignore_ascii_case(scope))
        .map(|s| s.id)
}

fn set_not_found(id: &str) -> Response {
    service_error(
        StatusCode::NOT_FOUND,
        "RunnerScaleSetNotFoundException",
        &format!("No runner scale set found with identifier {id}."),
    )
}

async fn get_set(AxState(sh): AxState<Sh>, Path(id): Path<String>, headers: HeaderMap) -> Response {
    count(&sh, "GET runnerscalesets/{id}");
    let scope = match admin_scope(&sh, &headers) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let st = sh.lock();
    match set_id_in_scope(&st, &scope, &id) {
        Some(i) => Json(set_json(&st, &st.scalesets.sets[&i])).into_response(),
        None => set_not_found(&id),
    }
}

async fn patch_set(
    AxState(sh): AxState<Sh>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    count(&sh, "PATCH runnerscalesets/{id}");
    let scope = match admin_scope(&sh, &headers) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let b: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    sh.mutate(|st| {
        let Some(i) = set_id_in_scope(st, &scope, &id) else {
            return set_not_found(&id);
        };
        let s = st.scalesets.sets.get_mut(&i).expect("found");
        if let Some(d) = b["RunnerSetting"]["disableUpdate"].as_bool() {
            s.disable_update = d;
        }
        if let Some(g) = b["runnerGroupId"].as_u64() {
            s.runner_group_id = g;
        }
        let s = s.clone();
        Json(set_json(st, &s)).into_response()
    })
}

async fn delete_set(
    AxState(sh): AxState<Sh>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    count(&sh, "DELETE runnerscalesets/{id}");
    let scope = match admin_scope(&sh, &headers) {
        Ok(s) => s,
        Err(r) => return r,
    };
    sh.mutate(|st| match set_id_in_scope(st, &scope, &id) {
        Some(i) => {
            st.scalesets.sets.remove(&i);
            StatusCode::NO_CONTENT.into_response()
        }
        None => set_not_found(&id),
    })
}

async fn create_session(
    AxState(sh): AxState<Sh>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    count(&sh, "POST sessions");
    let scope = match admin_scope(&sh, &headers) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let b: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let owner = b["ownerName"].as_str().unwrap_or("").to_string();
    sh.mutate(|st| {
        let Some(i) = set_id_in_scope(st, &scope, &id) else {
            return set_not_found(&id);
        };
        match st.open_session(i, &owner) {
            Ok(v) => Json(v).into_response(),
            Err(m) => service_error(
                StatusCode::CONFLICT,
                "TaskAgentSessionConflictException",
                &m,
            ),
        }
    })
}

/// The set and session of a session path, checked against the admin token's scope.
#[allow(clippy::result_large_err)]
fn session_of(st: &State, scope: &str, id: &str, sid: &str) -> Result<u64, Response> {
    let i = set_id_in_scope(st, scope, id).ok_or_else(|| set_not_found(id))?;
    match &st.scalesets.sets[&i].session {
        Some(s) if s.id == sid => Ok(i),
        _ => Err(service_error(
            StatusCode::NOT_FOUND,
            "TaskAgentSessionExpiredException",
            &format!("The session {sid} does not exist."),
        )),
    }
}

async fn refresh_session(
    AxState(sh): AxState<Sh>,
    Path((id, sid)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    count(&sh, "PATCH sessions");
    let scope = match admin_scope(&sh, &headers) {
        Ok(s) => s,
        Err(r) => return r,
    };
    sh.mutate(|st| {
        let i = match session_of(st, &scope, &id, &sid) {
            Ok(i) => i,
            Err(r) => return r,
        };
        let ttl = st.scalesets.queue_token_ttl_secs;
        let set = st.scalesets.sets.get_mut(&i).expect("found");
        let sess = set.session.as_mut().expect("found");
        sess.queue_token = random_token(40);
        sess.queue_token_expires = now_secs() + ttl;
        sess.last_poll_ms = now_ms();
        let set = set.clone();
        Json(session_json(st, &set, set.session.as_ref().expect("found"))).into_response()
    })
}

async fn delete_session(
    AxState(sh): AxState<Sh>,
    Path((id, sid)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    count(&sh, "DELETE sessions");
    let scope = match admin_scope(&sh, &headers) {
        Ok(s) => s,
        Err(r) => return r,
    };
    sh.mutate(|st| match session_of(st, &scope, &id, &sid) {
        Ok(i) => {
            st.end_session(i);
            StatusCode::NO_CONTENT.into_response()
        }
        Err(r) => r,
    })
}

/// The set whose session `sid` presents a valid queue token, or the answer to give.
#[allow(clippy::result_large_err)]
fn queue_auth(st: &State, sid: &str, headers: &HeaderMap) -> Result<u64, Response> {
    let set = st
        .scalesets
        .sets
        .values()
        .find(|s| s.session.as_ref().is_some_and(|x| x.id == sid))
        .ok_or_else(|| StatusCode::NOT_FOUND.into_response())?;
    let sess = set.session.as_ref().expect("found");
    let presented = bearer(headers, "Bearer");
    if presented.as_deref() != Some(sess.queue_token.as_str())
        || sess.queue_token_expires <= now_secs()
    {
        return Err(StatusCode::UNAUTHORIZED.into_response());
    }
    Ok(set.id)
}

enum Poll {
    Answer(Response),
    Wait,
}

fn poll_once(st: &mut State, sid: &str, headers: &HeaderMap, last: u64) -> Poll {
    let set_id = match queue_auth(st, sid, headers) {
        Ok(i) => i,
        Err(r) => return Poll::Answer(r),
    };
    let stats = statistics(st, set_id);
    let sess = st
        .scalesets
        .sets
        .get_mut(&set_id)
        .and_then(|s| s.session.as_mut())
        .expect("authorized");
    sess.last_poll_ms = now_ms();
    // Asking past the outstanding message acknowledges it, as the real queue does.
    if sess.outstanding.as_ref().is_some_and(|m| m.id <= last) {
        sess.outstanding = None;
    }
    if sess.outstanding.is_none() && !sess.pending.is_empty() {
        let id = sess.next_message_id;
        sess.next_message_id += 1;
        sess.outstanding = Some(MessageRec {
            id,
            events: std::mem::take(&mut sess.pending),
            statistics: stats,
        });
    }
    match &sess.outstanding {
        Some(m) => {
            let body: Vec<Value> = m.events.iter().map(|e| e.0.clone()).collect();
            Poll::Answer(
                Json(json!({
                    "messageId": m.id,
                    "messageType": "RunnerScaleSetJobMessages",
                    "body": Value::Array(body).to_string(),
                    "statistics": m.statistics,
                }))
                .into_response(),
            )
        }
        None => Poll::Wait,
    }
}

/// `GET {messageQueueUrl}?lastMessageId=N`: the next message, or 202 after the poll wait.
async fn get_message(
    AxState(sh): AxState<Sh>,
    Path(sid): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    count(&sh, "GET messages");
    let last = query_param(&uri, "lastMessageId")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0u64);
    let wait = Duration::from_millis(sh.lock().scalesets.poll_wait_ms);
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let notified = sh.notify.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if let Poll::Answer(r) = poll_once(&mut sh.lock(), &sid, &headers, last) {
            return r;
        }
        if sh.is_shutting_down() {
            return StatusCode::ACCEPTED.into_response();
        }
        tokio::select! {
            _ = &mut notified => {}
            _ = tokio::time::sleep_until(deadline) => {
                // Keep the session alive: this poll counts.
                let _ = queue_auth(&sh.lock(), &sid, &headers);
                return StatusCode::ACCEPTED.into_response();
            }
        }
    }
}

/// `DELETE {messageQueueUrl}/{messageId}`: the acknowledgement.
async fn delete_message(
    AxState(sh): AxState<Sh>,
    Path((sid, mid)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    count(&sh, "DELETE messages");
    sh.mutate(|st| {
        let set_id = match queue_auth(st, &sid, &headers) {
            Ok(i) => i,
            Err(r) => return r,
        };
        let Ok(mid) = mid.parse::<u64>() else {
            return StatusCode::NOT_FOUND.into_response();
        };
        let sess = st
            .scalesets
            .sets
            .get_mut(&set_id)
            .and_then(|s| s.session.as_mut())
            .expect("authorized");
        if sess.outstanding.as_ref().is_some_and(|m| m.id == mid) {
            sess.outstanding = None;
            sess.acked.push(mid);
        }
        StatusCode::NO_CONTENT.into_response()
    })
}

/// `POST .../acquirejobs` with the queue token: the set claims available jobs.
async fn acquire_jobs(
    AxState(sh): AxState<Sh>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    count(&sh, "POST acquirejobs");
    let ids: Vec<u64> = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            return service_error(StatusCode::BAD_REQUEST, "ArgumentException", &e.to_string())
        }
    };
    sh.mutate(|st| {
        let Ok(set_id) = id.parse::<u64>() else {
            return set_not_found(&id);
        };
        let sid = st
            .scalesets
            .sets
            .get(&set_id)
            .and_then(|s| s.session.as_ref())
            .map(|s| s.id.clone())
            .unwrap_or_default();
        if let Err(r) = queue_auth(st, &sid, &headers) {
            return r;
        }
        let mut got = Vec::new();
        for jid in ids {
            let queued = st
                .jobs
                .get(&jid)
                .is_some_and(|j| j.status == JobStatus::Queued);
            if let Some(j) = st.scalesets.jobs.get_mut(&jid) {
                if j.set_id == set_id && !j.acquired && queued {
                    j.acquired = true;
                    got.push(jid);
                }
            }
        }
        st.scalesets.acquired_log.extend(&got);
        for jid in &got {
            if let Some(job) = st.jobs.get(jid).cloned() {
                st.scalesets
                    .push(set_id, job_event("JobAssigned", &job, json!({})));
            }
        }
        st.dispatch();
        Json(json!({"count": got.len(), "value": got})).into_response()
    })
}

/// `POST .../generatejitconfig`: a runner registration in the set and its JIT config.
async fn generate_jitconfig(
    AxState(sh): AxState<Sh>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    count(&sh, "POST scaleset generatejitconfig");
    let scope = match admin_scope(&sh, &headers) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let b: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let Some(name) = b["name"]
        .as_str()
        .filter(|n| !n.is_empty())
        .map(str::to_string)
    else {
        return service_error(
            StatusCode::BAD_REQUEST,
            "ArgumentNullException",
            "name is required",
        );
    };
    let work = b["workFolder"].as_str().unwrap_or("_work").to_string();
    sh.mutate(|st| {
        let Some(i) = set_id_in_scope(st, &scope, &id) else {
            return set_not_found(&id);
        };
        let set = st.scalesets.sets[&i].clone();
        let req = state::JitRequest {
            name: name.clone(),
            runner_group_id: set.runner_group_id as i64,
            labels: vec![set.name.clone()],
            work_folder: work,
        };
        match st.create_runner(&set.scope, &req) {
            Ok((runner, encoded)) => {
                st.scalesets.runners.insert(runner.id, i);
                Json(json!({
                    "runner": {"id": runner.id, "name": runner.name, "runnerScaleSetId": i},
                    "encodedJITConfig": encoded,
                }))
                .into_response()
            }
            Err(_) => service_error(
                StatusCode::CONFLICT,
                "TaskAgentExistsException",
                &format!("A runner named {name} already exists."),
            ),
        }
    })
}

async fn cancel(AxState(sh): AxState<Sh>, Path(id): Path<String>) -> Response {
    let Ok(id) = id.parse::<u64>() else {
        return StatusCode::NOT_FOUND.into_response();
    };
    match sh.mutate(|st| st.cancel_job(id)) {
        Ok(j) => Json(j).into_response(),
        Err(m) => (StatusCode::CONFLICT, Json(json!({"message": m}))).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let mut st = State::new("t", "http://x");
        let s = set(&mut st, "big");
        let j = job(&mut st, &["big"]);
        let other = job(&mut st, &["self-hosted"]);
        assert!(st.scalesets.jobs.contains_key(&j.id));
        assert!(!st.scalesets.jobs.contains_key(&other.id));
        let v = st.open_session(s, "host-a").unwrap();
        assert_eq!(v["statistics"]["totalAvailableJobs"], 1);
        let e = st.open_session(s, "host-b").unwrap_err();
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
        let mut st = State::new("t", "http://x");
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
        let mut st = State::new("t", "http://x");
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
        let mut st = State::new("t", "http://x");
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
        let t = admin_jwt(1_700_000_000);
        let payload = t.split('.').nth(1).unwrap();
        let v: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
        assert_eq!(v["exp"], 1_700_000_000u64);
    }
}
