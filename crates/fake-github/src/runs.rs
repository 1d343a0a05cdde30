//! Queued work as GitHub's REST API shows it (docs/test-bench.md, "Workflow runs"): every job
//! of the fake's queue is one workflow run with one job. `GET /repos/{o}/{r}/actions/runs`
//! (`status` filter) and `GET /repos/{o}/{r}/actions/runs/{run_id}/jobs` answer in the
//! `workflow-run` and `job` shapes of GitHub's OpenAPI description, with an `ETag`; a request
//! whose `If-None-Match` names the current one gets 304 with no body and, as on GitHub, costs
//! no rate limit.
//!
//! These routes sit behind the API layer (authentication, counting, rate limit).

use std::hash::{Hash, Hasher};
use std::sync::Arc;

use axum::extract::State as AxState;
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Map, Value};

use crate::http::Shared;
use crate::state::{self, rfc3339, JobRecord, JobStatus, State};

type Sh = Arc<Shared>;

/// The routes, merged into the API router (behind its layer) by `http::router`.
pub fn routes() -> Router<Sh> {
    Router::new()
        .route("/repos/:owner/:repo/actions/runs", get(list_runs))
        .route(
            "/repos/:owner/:repo/actions/runs/:run_id/jobs",
            get(run_jobs),
        )
}

/// The API status of a job (`queued`, `in_progress`, `completed`).
pub fn status_str(s: JobStatus) -> &'static str {
    match s {
        JobStatus::Queued => "queued",
        JobStatus::InProgress => "in_progress",
        JobStatus::Completed => "completed",
    }
}

fn conclusion_str(j: &JobRecord) -> Value {
    match j.conclusion {
        Some(state::Conclusion::Success) => "success".into(),
        Some(state::Conclusion::Failure) => "failure".into(),
        Some(state::Conclusion::Cancelled) => "cancelled".into(),
        None => Value::Null,
    }
}

fn ts(ms: Option<u64>) -> Value {
    ms.map(|m| Value::String(rfc3339(m / 1000)))
        .unwrap_or(Value::Null)
}

fn user(api: &str, login: &str) -> Value {
    let mut m = Map::new();
    for k in [
        "events_url",
        "followers_url",
        "following_url",
        "gists_url",
        "organizations_url",
        "received_events_url",
        "repos_url",
        "starred_url",
        "subscriptions_url",
    ] {
        m.insert(
            k.into(),
            format!("{api}/users/{login}/{}", k.trim_end_matches("_url")).into(),
        );
    }
    m.insert("login".into(), login.into());
    m.insert("id".into(), 1.into());
    m.insert("node_id".into(), "MDQ6VXNlcjE=".into());
    m.insert(
        "avatar_url".into(),
        "https://github.com/images/error/octocat_happy.gif".into(),
    );
    m.insert("gravatar_id".into(), "".into());
    m.insert("url".into(), format!("{api}/users/{login}").into());
    m.insert(
        "html_url".into(),
        format!("https://github.com/{login}").into(),
    );
    m.insert("type".into(), "User".into());
    m.insert("site_admin".into(), false.into());
    Value::Object(m)
}

/// A `minimal-repository`: every URL GitHub's schema asks for, built from the API base.
fn repository(api: &str, owner: &str, repo: &str) -> Value {
    let base = format!("{api}/repos/{owner}/{repo}");
    let mut m = Map::new();
    for k in [
        "archive_url",
        "assignees_url",
        "blobs_url",
        "branches_url",
        "collaborators_url",
        "comments_url",
        "commits_url",
        "compare_url",
        "contents_url",
        "contributors_url",
        "deployments_url",
        "downloads_url",
        "events_url",
        "forks_url",
        "git_commits_url",
        "git_refs_url",
        "git_tags_url",
        "hooks_url",
        "issue_comment_url",
        "issue_events_url",
        "issues_url",
        "keys_url",
        "labels_url",
        "languages_url",
        "merges_url",
        "milestones_url",
        "notifications_url",
        "pulls_url",
        "releases_url",
        "stargazers_url",
        "statuses_url",
        "subscribers_url",
        "subscription_url",
        "tags_url",
        "teams_url",
        "trees_url",
    ] {
        m.insert(
            k.into(),
            format!("{base}/{}", k.trim_end_matches("_url")).into(),
        );
    }
    m.insert("id".into(), 1296269.into());
    m.insert("node_id".into(), "MDEwOlJlcG9zaXRvcnkxMjk2MjY5".into());
    m.insert("name".into(), repo.into());
    m.insert("full_name".into(), format!("{owner}/{repo}").into());
    m.insert("owner".into(), user(api, owner));
    m.insert("private".into(), false.into());
    m.insert(
        "html_url".into(),
        format!("https://github.com/{owner}/{repo}").into(),
    );
    m.insert("description".into(), Value::Null);
    m.insert("fork".into(), false.into());
    m.insert("url".into(), base.into());
    Value::Object(m)
}

fn run_status(j: &JobRecord) -> &'static str {
    status_str(j.status)
}

/// The `workflow-run` of a job (one run per job).
pub fn run_json(api: &str, owner: &str, repo: &str, j: &JobRecord) -> Value {
    let base = format!("{api}/repos/{owner}/{repo}/actions/runs/{}", j.id);
    let sha = format!("{:040x}", j.id);
    json!({
        "id": j.id,
        "name": "CI",
        "node_id": format!("WFR_{}", j.id),
        "head_branch": "main",
        "head_sha": sha,
        "path": ".github/workflows/ci.yml",
        "display_title": format!("job {}", j.id),
        "run_number": j.id,
        "event": "push",
        "status": run_status(j),
        "conclusion": conclusion_str(j),
        "workflow_id": 1,
        "url": base,
        "html_url": format!("https://github.com/{owner}/{repo}/actions/runs/{}", j.id),
        "pull_requests": [],
        "created_at": ts(Some(j.queued_at)),
        "updated_at": ts(Some(j.completed_at.or(j.started_at).unwrap_or(j.queued_at))),
        "jobs_url": format!("{base}/jobs"),
        "logs_url": format!("{base}/logs"),
        "check_suite_url": format!("{api}/repos/{owner}/{repo}/check-suites/{}", j.id),
        "artifacts_url": format!("{base}/artifacts"),
        "cancel_url": format!("{base}/cancel"),
        "rerun_url": format!("{base}/rerun"),
        "workflow_url": format!("{api}/repos/{owner}/{repo}/actions/workflows/1"),
        "head_commit": Value::Null,
        "repository": repository(api, owner, repo),
        "head_repository": repository(api, owner, repo),
    })
}

/// The `job` of a queue entry.
pub fn job_json(api: &str, owner: &str, repo: &str, j: &JobRecord) -> Value {
    json!({
        "id": j.id,
        "run_id": j.id,
        "run_url": format!("{api}/repos/{owner}/{repo}/actions/runs/{}", j.id),
        "node_id": format!("CR_{}", j.id),
        "head_sha": format!("{:040x}", j.id),
        "head_branch": "main",
        "workflow_name": "CI",
        "url": format!("{api}/repos/{owner}/{repo}/actions/jobs/{}", j.id),
        "html_url": format!("https://github.com/{owner}/{repo}/actions/runs/{}/job/{}", j.id, j.id),
        "status": status_str(j.status),
        "conclusion": conclusion_str(j),
        "created_at": ts(Some(j.queued_at)),
        "started_at": ts(Some(j.started_at.unwrap_or(j.queued_at))),
        "completed_at": ts(j.completed_at),
        "name": format!("job {}", j.id),
        "check_run_url": format!("{api}/repos/{owner}/{repo}/check-runs/{}", j.id),
        "labels": j.labels,
        "runner_id": j.runner_id,
        "runner_name": j.runner_name,
        "runner_group_id": j.runner_id.map(|_| 1),
        "runner_group_name": j.runner_id.map(|_| "Default"),
    })
}

fn owner_repo(uri: &Uri) -> Option<(String, String)> {
    let segs: Vec<&str> = uri.path().trim_start_matches('/').split('/').collect();
    match segs.as_slice() {
        ["repos", o, r, ..] => Some((o.to_string(), r.to_string())),
        _ => None,
    }
}

/// A weak ETag over the answer's body.
pub fn etag(body: &Value) -> String {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    body.to_string().hash(&mut h);
    format!("W/\"{:016x}\"", h.finish())
}

/// 200 with an `ETag`, or 304 when `If-None-Match` names it (and the call's rate-limit cost is
/// given back, as GitHub does not count it).
fn conditional(sh: &Shared, headers: &HeaderMap, body: Value) -> Response {
    let tag = etag(&body);
    let matches = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == tag));
    let mut resp = if matches {
        sh.mutate(|st| {
            st.rate.remaining = (st.rate.remaining + 1).min(st.rate.limit);
            st.count_call("304");
        });
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        Json(body).into_response()
    };
    if let Ok(v) = tag.parse() {
        resp.headers_mut().insert(header::ETAG, v);
    }
    resp
}

fn jobs_of_repo<'a>(
    st: &'a State,
    owner: &str,
    repo: &str,
) -> impl DoubleEndedIterator<Item = &'a JobRecord> {
    let scope = format!("repos/{owner}/{repo}");
    st.jobs
        .values()
        .filter(move |j| j.scope.eq_ignore_ascii_case(&scope))
}

async fn list_runs(AxState(sh): AxState<Sh>, uri: Uri, headers: HeaderMap) -> Response {
    let Some((owner, repo)) = owner_repo(&uri) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let query = state::parse_query(uri.query());
    let param = |k: &str| {
        query
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.clone())
    };
    let status = param("status");
    let per_page = state::effective_per_page(param("per_page").as_deref()) as usize;
    let api = sh.lock().server_url.clone();
    let body = {
        let st = sh.lock();
        let runs: Vec<Value> = jobs_of_repo(&st, &owner, &repo)
            .filter(|j| status.as_deref().is_none_or(|s| s == run_status(j)))
            .rev()
            .take(per_page)
            .map(|j| run_json(&api, &owner, &repo, j))
            .collect();
        let total = jobs_of_repo(&st, &owner, &repo)
            .filter(|j| status.as_deref().is_none_or(|s| s == run_status(j)))
            .count();
        json!({"total_count": total, "workflow_runs": runs})
    };
    conditional(&sh, &headers, body)
}

async fn run_jobs(AxState(sh): AxState<Sh>, uri: Uri, headers: HeaderMap) -> Response {
    let Some((owner, repo)) = owner_repo(&uri) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let run_id: Option<u64> = uri.path().rsplit('/').nth(1).and_then(|s| s.parse().ok());
    let api = sh.lock().server_url.clone();
    let body = {
        let st = sh.lock();
        let Some(j) = run_id.and_then(|id| jobs_of_repo(&st, &owner, &repo).find(|j| j.id == id))
        else {
            return (
                StatusCode::NOT_FOUND,
                Json(json!({"message": "Not Found", "documentation_url": state::DOCS_RUNNERS, "status": "404"})),
            )
                .into_response();
        };
        json!({"total_count": 1, "jobs": [job_json(&api, &owner, &repo, j)]})
    };
    conditional(&sh, &headers, body)
}
