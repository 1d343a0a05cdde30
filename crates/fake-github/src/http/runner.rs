//! The fake runner protocol (`/_runner/{id}/...`): a runner long-polls for its job and
//! reports it done, authenticated by its registration's secret.

use super::*;

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

pub(super) async fn acquire(
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

pub(super) async fn complete(
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
        Err(refused) => runner_error(StatusCode::CONFLICT, &refused.to_string()),
    }
}
