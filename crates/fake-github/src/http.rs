//! The HTTP face of the fake: GitHub API routes, the fake runner protocol (`/_runner`) and
//! the test-control endpoints (`/_fake`), as specified in docs/test-bench.md.
//!
//! Owns: routing, request parsing, status codes and headers. Decisions live in `state.rs`;
//! handlers lock the state briefly and never across an `.await`. Only GitHub API paths go
//! through `api_layer` (counting, fault injection, authentication, rate limiting, the
//! `x-ratelimit-*` headers).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{OriginalUri, Path, Request, State as AxState};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::Notify;

use crate::auth;
use crate::state::{
    self, Conclusion, CreateError, DeleteError, FaultRule, RateLimit, State, DOCS_AUTH,
    DOCS_RATE_LIMIT, DOCS_RUNNERS, FAULT_RESET_IN_SECS, REGISTRATION_TOKEN_TTL_SECS,
};

/// Long-poll length of `/_runner/{id}/acquire` when the runner gives no `?wait=`.
pub const DEFAULT_ACQUIRE_WAIT_SECS: u64 = 30;
/// Longest long poll a runner may ask for: keeps a forgotten request from pinning a
/// connection for long.
pub const MAX_ACQUIRE_WAIT_SECS: u64 = 60;

/// State shared by the server task and the [`crate::FakeGithub`] handle.
#[derive(Debug)]
pub struct Shared {
    state: Mutex<State>,
    /// Woken on every change that a waiter (long-polling runner, test helper) may care about.
    pub(crate) notify: Notify,
    shutting_down: AtomicBool,
}

impl Shared {
    pub fn new(state: State) -> Self {
        Shared {
            state: Mutex::new(state),
            notify: Notify::new(),
            shutting_down: AtomicBool::new(false),
        }
    }

    /// Locks the state. A panic while holding the lock does not make it unusable.
    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` on the locked state, then wakes every waiter.
    pub fn mutate<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        let out = f(&mut self.lock());
        self.notify.notify_waiters();
        out
    }

    /// Makes pending long polls answer at once (used on shutdown).
    pub fn begin_shutdown(&self) {
        self.shutting_down.store(true, Ordering::SeqCst);
        self.notify.notify_waiters();
    }

    pub(crate) fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::SeqCst)
    }
}

type Sh = Arc<Shared>;

/// The whole application: API routes behind `api_layer`, plus `/_runner` and `/_fake`. As a
/// GitHub Enterprise Server (`State::ghes_version`) the API lives under `/api/v3`.
pub fn router(shared: Sh) -> Router {
    let ghes = shared.lock().ghes_version.is_some();
    let api = Router::new()
        .route("/rate_limit", get(rate_limit))
        .route("/meta", get(meta))
        .route("/enterprises/:e/actions/runners", get(list_runners))
        .route(
            "/enterprises/:e/actions/runners/generate-jitconfig",
            post(generate_jitconfig),
        )
        .route(
            "/enterprises/:e/actions/runners/registration-token",
            post(registration_token),
        )
        .route(
            "/enterprises/:e/actions/runners/:runner_id",
            get(get_runner).delete(delete_runner),
        )
        .route("/orgs/:org/actions/runner-groups", get(list_runner_groups))
        .route(
            "/enterprises/:e/actions/runner-groups",
            get(list_runner_groups),
        )
        .route(
            "/app/installations/:id/access_tokens",
            post(installation_token),
        )
        .route("/repos/:owner/:repo/installation", get(get_installation))
        .route("/orgs/:org/installation", get(get_installation))
        .route("/enterprises/:e/installation", get(get_installation))
        .route("/repos/:owner/:repo/actions/runners", get(list_runners))
        .route("/orgs/:org/actions/runners", get(list_runners))
        .route(
            "/repos/:owner/:repo/actions/runners/generate-jitconfig",
            post(generate_jitconfig),
        )
        .route(
            "/orgs/:org/actions/runners/generate-jitconfig",
            post(generate_jitconfig),
        )
        .route(
            "/repos/:owner/:repo/actions/runners/registration-token",
            post(registration_token),
        )
        .route(
            "/orgs/:org/actions/runners/registration-token",
            post(registration_token),
        )
        .route(
            "/repos/:owner/:repo/actions/runners/:runner_id",
            get(get_runner).delete(delete_runner),
        )
        .route(
            "/orgs/:org/actions/runners/:runner_id",
            get(get_runner).delete(delete_runner),
        )
        .merge(crate::runs::routes())
        .fallback(api_not_found)
        .layer(middleware::from_fn_with_state(shared.clone(), api_layer));
    let api = if ghes {
        Router::new().nest("/api/v3", api)
    } else {
        api
    };

    let fake = Router::new()
        .route("/_runner/:id/acquire", post(acquire))
        .route("/_runner/:id/complete", post(complete))
        .route("/_fake/jobs", post(fake_enqueue).get(fake_jobs))
        .route("/_fake/jobs/:id", get(fake_job))
        .route("/_fake/runners", get(fake_runners))
        .route(
            "/_fake/faults",
            post(fake_add_fault)
                .delete(fake_clear_faults)
                .get(fake_faults),
        )
        .route("/_fake/stats", get(fake_stats))
        .route("/_fake/reset-stats", post(fake_reset_stats))
        .route("/_fake/rate-limit", post(fake_rate_limit));

    api.merge(fake)
        .merge(crate::scaleset::router(ghes))
        .with_state(shared)
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// A GitHub error body: `{"message", "documentation_url", "status"}` (`basic-error`).
fn gh_error(status: StatusCode, message: &str, docs: &str) -> Response {
    let body = json!({
        "message": message,
        "documentation_url": docs,
        "status": status.as_u16().to_string(),
    });
    (status, Json(body)).into_response()
}

fn not_found() -> Response {
    gh_error(StatusCode::NOT_FOUND, "Not Found", DOCS_RUNNERS)
}

/// 422 in the `validation-error-simple` shape.
fn validation_failed(message: &str, errors: &[String]) -> Response {
    let body = json!({
        "message": message,
        "documentation_url": DOCS_RUNNERS,
        "errors": errors,
        "status": "422",
    });
    (StatusCode::UNPROCESSABLE_ENTITY, Json(body)).into_response()
}

/// The counter key of an API request, e.g. `POST generate-jitconfig`.
pub fn route_key(method: &str, path: &str) -> String {
    let what = if path == "/rate_limit" {
        "rate_limit"
    } else if path.ends_with("/actions/runners") {
        "runners"
    } else if path.ends_with("/actions/runners/generate-jitconfig") {
        "generate-jitconfig"
    } else if path.ends_with("/actions/runners/registration-token") {
        "registration-token"
    } else if path.contains("/actions/runners/") {
        "runners/{id}"
    } else if path.ends_with("/actions/runs") {
        "runs"
    } else if path.contains("/actions/runs/") && path.ends_with("/jobs") {
        "runs/{id}/jobs"
    } else if path.ends_with("/actions/runner-groups") {
        "runner-groups"
    } else if path.ends_with("/access_tokens") {
        "access_tokens"
    } else if path.ends_with("/installation") {
        "installation"
    } else if path == "/meta" {
        "meta"
    } else {
        "other"
    };
    format!("{method} {what}")
}

/// `repos/{owner}/{repo}`, `orgs/{org}` or `enterprises/{e}` from an API path.
fn scope_of_path(path: &str) -> Option<String> {
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match segs.as_slice() {
        ["repos", owner, repo, ..] => Some(format!("repos/{owner}/{repo}")),
        ["orgs", org, ..] => Some(format!("orgs/{org}")),
        ["enterprises", e, ..] => Some(format!("enterprises/{e}")),
        _ => None,
    }
}

fn set_header(resp: &mut Response, name: &str, value: &str) {
    if let (Ok(n), Ok(v)) = (
        HeaderName::from_bytes(name.as_bytes()),
        HeaderValue::from_str(value),
    ) {
        resp.headers_mut().insert(n, v);
    }
}

fn add_rate_headers(resp: &mut Response, rate: &RateLimit) {
    set_header(resp, "x-ratelimit-limit", &rate.limit.to_string());
    set_header(resp, "x-ratelimit-remaining", &rate.remaining.to_string());
    set_header(resp, "x-ratelimit-reset", &rate.reset.to_string());
    set_header(resp, "x-ratelimit-used", &rate.used().to_string());
    set_header(resp, "x-ratelimit-resource", "core");
}

fn current_rate(sh: &Shared) -> RateLimit {
    let mut st = sh.lock();
    let now = st.clock.now_secs();
    st.rate.refresh(now);
    st.rate
}

// ---------------------------------------------------------------------------------------------
// The API middleware
// ---------------------------------------------------------------------------------------------

/// Every GitHub API request passes here: count it, apply fault rules, check the token and the
/// rate-limit budget, and stamp the `x-ratelimit-*` headers on the answer.
async fn api_layer(AxState(sh): AxState<Sh>, req: Request, next: Next) -> Response {
    let method = req.method().as_str().to_string();
    let path = req.uri().path().to_string();
    let decision = {
        let mut st = sh.lock();
        st.count_call(&route_key(&method, &path));
        st.take_faults(&method, &path)
    };
    if decision.delay_ms > 0 {
        tokio::time::sleep(Duration::from_millis(decision.delay_ms)).await;
    }
    if let Some(rule) = decision.answer {
        return fault_response(&sh, &rule);
    }

    let authorization = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let scope = scope_of_path(&path);
    let is_app_path = path.starts_with("/app/") || path.ends_with("/installation");
    let checked = {
        let mut st = sh.lock();
        let main = st.token.clone();
        match st.auth.authenticate(&authorization, &main) {
            Err(r) => Err((r, Vec::new())),
            Ok(who) => {
                let extra = st.auth.headers_for(&who, &path);
                match auth::authorize(&st.auth, &who, &method, scope.as_deref(), is_app_path) {
                    Ok(()) => Ok((who, extra)),
                    Err(r) => Err((r, extra)),
                }
            }
        }
    };
    let (who, extra) = match checked {
        Ok(x) => x,
        Err((refusal, extra)) => {
            let status = StatusCode::from_u16(refusal.status).unwrap_or(StatusCode::FORBIDDEN);
            let mut resp = gh_error(status, &refusal.message, DOCS_AUTH);
            add_rate_headers(&mut resp, &current_rate(&sh));
            for (n, v) in extra.iter().chain(&refusal.headers) {
                set_header(&mut resp, n, v);
            }
            stamp_server(&sh, &mut resp);
            return resp;
        }
    };

    // GET /rate_limit neither counts against the budget nor is refused for it (GitHub's doc).
    // Each credential spends its own budget; the server's own token the global one.
    if path != "/rate_limit" {
        let exhausted = {
            let mut st = sh.lock();
            let st = &mut *st;
            let now = st.clock.now_secs();
            let rate = st.auth.rate_of(&who).unwrap_or(&mut st.rate);
            rate.refresh(now);
            if rate.remaining == 0 {
                Some(*rate)
            } else {
                rate.remaining -= 1;
                None
            }
        };
        if let Some(rate) = exhausted {
            let mut resp = gh_error(
                StatusCode::FORBIDDEN,
                "API rate limit exceeded for user ID 1.",
                DOCS_RATE_LIMIT,
            );
            add_rate_headers(&mut resp, &rate);
            stamp_server(&sh, &mut resp);
            return resp;
        }
    }

    let mut resp = next.run(req).await;
    let rate = {
        let mut st = sh.lock();
        let st = &mut *st;
        let now = st.clock.now_secs();
        let r = st.auth.rate_of(&who).unwrap_or(&mut st.rate);
        r.refresh(now);
        *r
    };
    add_rate_headers(&mut resp, &rate);
    for (n, v) in &extra {
        set_header(&mut resp, n, v);
    }
    stamp_server(&sh, &mut resp);
    resp
}

/// A GitHub Enterprise Server names its version on every answer.
fn stamp_server(sh: &Shared, resp: &mut Response) {
    if let Some(v) = sh.lock().ghes_version.clone() {
        set_header(resp, "x-github-enterprise-version", &v);
    }
}

/// The answer of a fault rule with a status.
fn fault_response(sh: &Shared, rule: &FaultRule) -> Response {
    let status = StatusCode::from_u16(rule.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let rate_limited = status == StatusCode::FORBIDDEN || status == StatusCode::TOO_MANY_REQUESTS;
    let default_message = match (rate_limited, rule.retry_after) {
        (true, Some(_)) => {
            "You have exceeded a secondary rate limit. Please wait a few minutes before you try again."
        }
        (true, None) => "API rate limit exceeded for user ID 1.",
        _ => status.canonical_reason().unwrap_or("Fault"),
    };
    let message = rule.message.as_deref().unwrap_or(default_message);
    let docs = if rate_limited {
        DOCS_RATE_LIMIT
    } else {
        DOCS_AUTH
    };
    let mut resp = gh_error(status, message, docs);
    let mut rate = current_rate(sh);
    if rate_limited && rule.retry_after.is_none() {
        // A primary-limit answer: budget gone, refilled shortly, so clients can test the
        // "wait until x-ratelimit-reset" path quickly.
        rate.remaining = 0;
        rate.reset = sh.lock().clock.now_secs() + FAULT_RESET_IN_SECS;
    }
    add_rate_headers(&mut resp, &rate);
    if let Some(secs) = rule.retry_after {
        set_header(&mut resp, "retry-after", &secs.to_string());
    }
    for (name, value) in &rule.headers {
        set_header(&mut resp, name, value);
    }
    resp
}

async fn api_not_found() -> Response {
    not_found()
}

// ---------------------------------------------------------------------------------------------
// GitHub API handlers
// ---------------------------------------------------------------------------------------------

async fn rate_limit(AxState(sh): AxState<Sh>) -> Response {
    let rate = current_rate(&sh).json();
    let now = sh.lock().clock.now_secs();
    let other =
        |limit: u64| json!({"limit": limit, "remaining": limit, "reset": now + 3600, "used": 0});
    let body = json!({
        "resources": {
            "core": rate,
            "search": other(30),
            "graphql": other(5000),
            "integration_manifest": other(5000),
            "actions_runner_registration": other(10000),
        },
        "rate": rate,
    });
    Json(body).into_response()
}

async fn list_runners(
    AxState(sh): AxState<Sh>,
    uri: Uri,
    OriginalUri(original): OriginalUri,
    headers: HeaderMap,
) -> Response {
    let Some(scope) = scope_of_path(uri.path()) else {
        return not_found();
    };
    let query = state::parse_query(uri.query());
    let param = |k: &str| {
        query
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    };
    let per_page = state::effective_per_page(param("per_page"));
    let page = state::effective_page(param("page"));
    let name = param("name").filter(|n| !n.is_empty());

    let (total, runners, base_url) = {
        let st = sh.lock();
        let all = st.runners_in_scope(&scope, name);
        let w = state::page_window(all.len(), per_page, page);
        let items: Vec<Value> = all[w.start..w.end].iter().map(|r| r.api_json()).collect();
        (all.len(), items, st.server_url.clone())
    };
    let window = state::page_window(total, per_page, page);
    let origin = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(|h| format!("http://{h}"))
        .unwrap_or(base_url);
    // The path as the client sent it (under `/api/v3` on a GHES).
    let url = format!("{origin}{}", original.path());
    let mut resp = Json(json!({"total_count": total, "runners": runners})).into_response();
    if let Some(link) = state::link_header(&url, &query, page, window.last_page) {
        set_header(&mut resp, "link", &link);
    }
    resp
}

fn runner_id_of_path(path: &str) -> Option<u64> {
    path.rsplit('/').next()?.parse().ok()
}

async fn get_runner(AxState(sh): AxState<Sh>, uri: Uri) -> Response {
    let (Some(scope), Some(id)) = (scope_of_path(uri.path()), runner_id_of_path(uri.path())) else {
        return not_found();
    };
    let st = sh.lock();
    match st.runner_in_scope(&scope, id) {
        Some(r) => Json(r.api_json()).into_response(),
        None => not_found(),
    }
}

async fn delete_runner(AxState(sh): AxState<Sh>, uri: Uri) -> Response {
    let (Some(scope), Some(id)) = (scope_of_path(uri.path()), runner_id_of_path(uri.path())) else {
        return not_found();
    };
    match sh.mutate(|st| st.delete_runner(&scope, id)) {
        Ok(_) => StatusCode::NO_CONTENT.into_response(),
        Err(DeleteError::NotFound) => not_found(),
        // GitHub's own text, stray quote included (seen in clients' logs).
        Err(DeleteError::Busy(name)) => validation_failed(
            &format!("Bad request - Runner \"{name}\" is still running a job\""),
            &[],
        ),
    }
}

async fn generate_jitconfig(AxState(sh): AxState<Sh>, uri: Uri, body: Bytes) -> Response {
    let Some(scope) = scope_of_path(uri.path()) else {
        return not_found();
    };
    // GitHub answers malformed JSON with 400, which the spec does not declare for this
    // endpoint; the fake keeps to the spec and answers 422.
    let value: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            return validation_failed(
                "Invalid request.\n\nProblems parsing JSON",
                &[e.to_string()],
            )
        }
    };
    let req = match state::validate_jit_request(&value) {
        Ok(r) => r,
        Err(errors) => {
            let message = format!("Invalid request.\n\n{}", errors.join("\n"));
            return validation_failed(&message, &errors);
        }
    };
    match sh.mutate(|st| st.create_runner(&scope, &req)) {
        Ok((runner, encoded)) => (
            StatusCode::CREATED,
            Json(json!({"runner": runner.api_json(), "encoded_jit_config": encoded})),
        )
            .into_response(),
        Err(CreateError::NameExists(name)) => gh_error(
            StatusCode::CONFLICT,
            &format!("Already exists - A runner with the name {name} already exists."),
            DOCS_RUNNERS,
        ),
        Err(CreateError::NoSuchGroup(_)) => not_found(),
    }
}

async fn meta(AxState(sh): AxState<Sh>) -> Response {
    let mut body = json!({"verifiable_password_authentication": false});
    if let Some(v) = sh.lock().ghes_version.clone() {
        body["installed_version"] = json!(v);
    }
    Json(body).into_response()
}

/// `GET /{orgs/o|enterprises/e}/actions/runner-groups`: "Default" and the added groups.
async fn list_runner_groups(AxState(sh): AxState<Sh>, uri: Uri) -> Response {
    let Some(scope) = scope_of_path(uri.path()) else {
        return not_found();
    };
    let st = sh.lock();
    let base = st.server_url.clone();
    let enterprise = scope.starts_with("enterprises/");
    let groups: Vec<Value> = st
        .runner_groups_of(&scope)
        .into_iter()
        .map(|(id, name)| {
            let mut g = json!({
                "id": id,
                "name": name,
                "visibility": "all",
                "default": id == state::DEFAULT_RUNNER_GROUP_ID,
                "runners_url": format!("{base}/{scope}/actions/runner-groups/{id}/runners"),
                "allows_public_repositories": false,
                "restricted_to_workflows": false,
                "selected_workflows": [],
                "workflow_restrictions_read_only": false,
            });
            if !enterprise {
                g["inherited"] = json!(false);
            }
            g
        })
        .collect();
    Json(json!({"total_count": groups.len(), "runner_groups": groups})).into_response()
}

/// `POST /app/installations/{id}/access_tokens` (JWT only): a new `ghs_` token.
async fn installation_token(
    AxState(sh): AxState<Sh>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let Ok(id) = id.parse::<u64>() else {
        return not_found();
    };
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let issued = sh.mutate(|st| {
        let main = st.token.clone();
        match st.auth.authenticate(authorization, &main) {
            Ok(auth::Who::App(app)) => st.auth.issue_installation_token(app, id),
            _ => None,
        }
    });
    match issued {
        Some((_, body)) => (StatusCode::CREATED, Json(body)).into_response(),
        None => not_found(),
    }
}

/// `GET /{repos/o/r|orgs/o|enterprises/e}/installation` (JWT only): the App's installation
/// on that account, 404 when there is none.
async fn get_installation(AxState(sh): AxState<Sh>, uri: Uri, headers: HeaderMap) -> Response {
    let Some(scope) = scope_of_path(uri.path()) else {
        return not_found();
    };
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mut st = sh.lock();
    let main = st.token.clone();
    let Ok(auth::Who::App(app)) = st.auth.authenticate(authorization, &main) else {
        return not_found();
    };
    let base = st.server_url.clone();
    match (
        st.auth.installation_for(app, &scope),
        st.auth.apps.get(&app),
    ) {
        (Some(inst), Some(a)) => Json(auth::installation_json(inst, a, &base)).into_response(),
        _ => not_found(),
    }
}

async fn registration_token(AxState(sh): AxState<Sh>, uri: Uri) -> Response {
    let (token, now) = {
        let st = sh.lock();
        (
            st.tokens.token(29).to_ascii_uppercase(),
            st.clock.now_secs(),
        )
    };
    if let Some(scope) = scope_of_path(uri.path()) {
        // The scale set exchange (scaleset.rs) accepts the tokens handed out here.
        sh.mutate(|st| {
            st.scalesets
                .registration_tokens
                .insert(token.clone(), scope)
        });
    }
    let body = json!({
        "token": token,
        "expires_at": state::rfc3339(now + REGISTRATION_TOKEN_TTL_SECS),
    });
    (StatusCode::CREATED, Json(body)).into_response()
}

// ---------------------------------------------------------------------------------------------
// Fake runner protocol
// ---------------------------------------------------------------------------------------------

fn runner_error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({"message": message}))).into_response()
}

/// Checks `Authorization: RunnerToken <secret>` for runner `id`: 404 when it no longer
/// exists, 401 when the secret is wrong.
// An early-return response: built once per request, boxing would buy nothing.
#[allow(clippy::result_large_err)]
fn runner_auth(sh: &Shared, id: &str, headers: &HeaderMap) -> Result<u64, Response> {
    let gone = || runner_error(StatusCode::NOT_FOUND, "runner not found");
    let id: u64 = id.parse().map_err(|_| gone())?;
    let st = sh.lock();
    let runner = st.runners.get(&id).ok_or_else(gone)?;
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().strip_prefix("RunnerToken "))
        .map(str::trim);
    if presented != Some(runner.secret.as_str()) {
        return Err(runner_error(StatusCode::UNAUTHORIZED, "bad runner token"));
    }
    Ok(id)
}

enum Poll {
    Gone,
    Job(Value),
    Nothing,
}

fn poll_assignment(sh: &Shared, id: u64) -> Poll {
    let st = sh.lock();
    let Some(runner) = st.runners.get(&id) else {
        return Poll::Gone;
    };
    match runner.job_id.and_then(|j| st.jobs.get(&j)) {
        Some(job) => Poll::Job(json!({
            "job_id": job.id,
            "script": job.script,
            "timeout_secs": job.timeout_secs,
        })),
        None => Poll::Nothing,
    }
}

async fn acquire(
    AxState(sh): AxState<Sh>,
    Path(id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let id = match runner_auth(&sh, &id, &headers) {
        Ok(id) => id,
        Err(resp) => return resp,
    };
    let query = state::parse_query(uri.query());
    let wait = query
        .iter()
        .find(|(k, _)| k == "wait")
        .and_then(|(_, v)| v.parse::<u64>().ok())
        .unwrap_or(DEFAULT_ACQUIRE_WAIT_SECS)
        .min(MAX_ACQUIRE_WAIT_SECS);
    sh.mutate(|st| st.runner_online(id));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(wait);
    let answer = |p: Poll| match p {
        Poll::Gone => Some(runner_error(StatusCode::NOT_FOUND, "runner not found")),
        Poll::Job(job) => Some(Json(job).into_response()),
        Poll::Nothing => None,
    };
    loop {
        let notified = sh.notify.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if let Some(resp) = answer(poll_assignment(&sh, id)) {
            return resp;
        }
        if sh.is_shutting_down() {
            return StatusCode::NO_CONTENT.into_response();
        }
        tokio::select! {
            _ = &mut notified => {}
            _ = tokio::time::sleep_until(deadline) => {
                return answer(poll_assignment(&sh, id))
                    .unwrap_or_else(|| StatusCode::NO_CONTENT.into_response());
            }
        }
    }
}

#[derive(Deserialize)]
struct CompleteBody {
    job_id: u64,
    conclusion: Conclusion,
    #[serde(default)]
    exit_code: Option<i64>,
    #[serde(default)]
    output: Option<String>,
}

async fn complete(
    AxState(sh): AxState<Sh>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let id = match runner_auth(&sh, &id, &headers) {
        Ok(id) => id,
        Err(resp) => return resp,
    };
    let body: CompleteBody = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(e) => return runner_error(StatusCode::BAD_REQUEST, &format!("bad body: {e}")),
    };
    match sh.mutate(|st| {
        st.complete_job(
            id,
            body.job_id,
            body.conclusion,
            body.exit_code,
            body.output,
        )
    }) {
        Ok(job) => Json(job).into_response(),
        Err(message) => runner_error(StatusCode::CONFLICT, &message),
    }
}

// ---------------------------------------------------------------------------------------------
// Test control
// ---------------------------------------------------------------------------------------------

#[derive(Deserialize)]
struct EnqueueBody {
    scope: String,
    #[serde(default)]
    labels: Vec<String>,
    #[serde(default)]
    script: String,
    #[serde(default)]
    timeout_secs: Option<u64>,
}

fn control_error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({"message": message}))).into_response()
}

// An early-return response, as in `runner_auth`.
#[allow(clippy::result_large_err)]
fn parse_body<T: serde::de::DeserializeOwned>(body: &Bytes) -> Result<T, Response> {
    serde_json::from_slice(body)
        .map_err(|e| control_error(StatusCode::BAD_REQUEST, &format!("bad body: {e}")))
}

async fn fake_enqueue(AxState(sh): AxState<Sh>, body: Bytes) -> Response {
    let b: EnqueueBody = match parse_body(&body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let Some(scope) = state::normalize_scope(&b.scope) else {
        return control_error(
            StatusCode::BAD_REQUEST,
            "scope must be repos/{owner}/{repo} or orgs/{org}",
        );
    };
    let job = sh.mutate(|st| st.enqueue_job(&scope, b.labels, &b.script, b.timeout_secs));
    (StatusCode::CREATED, Json(job)).into_response()
}

async fn fake_jobs(AxState(sh): AxState<Sh>) -> Response {
    let jobs: Vec<_> = sh.lock().jobs.values().cloned().collect();
    Json(jobs).into_response()
}

async fn fake_job(AxState(sh): AxState<Sh>, Path(id): Path<String>) -> Response {
    let job = id
        .parse::<u64>()
        .ok()
        .and_then(|id| sh.lock().jobs.get(&id).cloned());
    match job {
        Some(job) => Json(job).into_response(),
        None => control_error(StatusCode::NOT_FOUND, "job not found"),
    }
}

async fn fake_runners(AxState(sh): AxState<Sh>) -> Response {
    let st = sh.lock();
    let live: Vec<_> = st.runners.values().cloned().collect();
    Json(json!({
        "live": live,
        "created_total": st.created_total,
        "deleted_total": st.deleted_total,
        "jit_configs": st.jit_configs,
        "history": st.history,
    }))
    .into_response()
}

async fn fake_add_fault(AxState(sh): AxState<Sh>, body: Bytes) -> Response {
    let rule: FaultRule = match parse_body(&body) {
        Ok(r) => r,
        Err(r) => return r,
    };
    if rule.status != 0 && StatusCode::from_u16(rule.status).is_err() {
        return control_error(StatusCode::BAD_REQUEST, "status must be 0 or 100..=999");
    }
    sh.mutate(|st| st.faults.push(rule.clone()));
    (StatusCode::CREATED, Json(rule)).into_response()
}

async fn fake_faults(AxState(sh): AxState<Sh>) -> Response {
    let faults = sh.lock().faults.clone();
    Json(faults).into_response()
}

async fn fake_clear_faults(AxState(sh): AxState<Sh>) -> Response {
    sh.mutate(|st| st.faults.clear());
    StatusCode::NO_CONTENT.into_response()
}

async fn fake_stats(AxState(sh): AxState<Sh>) -> Response {
    let st = sh.lock();
    Json(json!({"api_calls": st.api_calls, "by_route": st.by_route})).into_response()
}

async fn fake_reset_stats(AxState(sh): AxState<Sh>) -> Response {
    sh.mutate(|st| {
        st.api_calls = 0;
        st.by_route.clear();
    });
    StatusCode::NO_CONTENT.into_response()
}

#[derive(Deserialize)]
struct RateBody {
    remaining: u64,
    #[serde(default)]
    reset_in_secs: Option<u64>,
}

async fn fake_rate_limit(AxState(sh): AxState<Sh>, body: Bytes) -> Response {
    let b: RateBody = match parse_body(&body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    let rate = sh.mutate(|st| {
        st.set_rate_limit(b.remaining, b.reset_in_secs);
        st.rate
    });
    Json(rate.json()).into_response()
}
