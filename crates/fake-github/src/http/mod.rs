//! The HTTP face of the fake: GitHub API routes, the fake runner protocol (`/_runner`) and
//! the test-control endpoints (`/_fake`), as specified in docs/test-bench.md.
//!
//! Owns: routing, request parsing, status codes and headers. Decisions live in `state`;
//! handlers lock the state briefly and never across an `.await`. Only GitHub API paths go
//! through `api_layer` (counting, fault injection, authentication, rate limiting, the
//! `x-ratelimit-*` headers). Here: the shared state, the router, the helpers and the API
//! middleware; the handlers are in `api.rs` (GitHub's REST API), `runner.rs` (the fake
//! runner protocol) and `control.rs` (test control).

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

mod api;
mod control;
mod runner;

use api::*;
use control::*;
use runner::*;

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
