//! Test control (`/_fake/...`): queue jobs, read jobs and runners, add and clear fault
//! rules, read and reset the counters, set the rate-limit budget.

use super::*;

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

pub(super) async fn fake_enqueue(AxState(sh): AxState<Sh>, body: Bytes) -> Response {
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

pub(super) async fn fake_jobs(AxState(sh): AxState<Sh>) -> Response {
    let jobs: Vec<_> = sh.lock().jobs.values().cloned().collect();
    Json(jobs).into_response()
}

pub(super) async fn fake_job(AxState(sh): AxState<Sh>, Path(id): Path<String>) -> Response {
    let job = id
        .parse::<u64>()
        .ok()
        .and_then(|id| sh.lock().jobs.get(&id).cloned());
    match job {
        Some(job) => Json(job).into_response(),
        None => control_error(StatusCode::NOT_FOUND, "job not found"),
    }
}

pub(super) async fn fake_runners(AxState(sh): AxState<Sh>) -> Response {
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

pub(super) async fn fake_add_fault(AxState(sh): AxState<Sh>, body: Bytes) -> Response {
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

pub(super) async fn fake_faults(AxState(sh): AxState<Sh>) -> Response {
    let faults = sh.lock().faults.clone();
    Json(faults).into_response()
}

pub(super) async fn fake_clear_faults(AxState(sh): AxState<Sh>) -> Response {
    sh.mutate(|st| st.faults.clear());
    StatusCode::NO_CONTENT.into_response()
}

pub(super) async fn fake_stats(AxState(sh): AxState<Sh>) -> Response {
    let st = sh.lock();
    Json(json!({"api_calls": st.api_calls, "by_route": st.by_route})).into_response()
}

pub(super) async fn fake_reset_stats(AxState(sh): AxState<Sh>) -> Response {
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

pub(super) async fn fake_rate_limit(AxState(sh): AxState<Sh>, body: Bytes) -> Response {
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
