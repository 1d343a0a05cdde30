//! The scale set service's HTTP face, part two: the long-polled message queue of a session
//! (`GET` a message, `DELETE` to acknowledge it) and `acquirejobs`, both authorized by the
//! session's queue token.

// A refusal is a whole `Response`, as axum answers it: one per request, never on a hot path.
#![allow(clippy::result_large_err)]

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State as AxState};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::http::{bearer, count, query_param, service_error, set_not_found, Answer, Sh};
use super::{job_event, statistics, MessageRec};
use crate::state::{JobStatus, State};

/// The set whose session `sid` presents a valid queue token, or the answer to give.
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
        || sess.queue_token_expires <= st.clock.now_secs()
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
    let now_ms = st.clock.now_ms();
    let sess = st.scalesets.session_mut(set_id).expect("authorized");
    sess.last_poll_ms = now_ms;
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
pub(super) async fn get_message(
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
pub(super) async fn delete_message(
    AxState(sh): AxState<Sh>,
    Path((sid, mid)): Path<(String, String)>,
    headers: HeaderMap,
) -> Answer {
    count(&sh, "DELETE messages");
    sh.mutate(|st| {
        let set_id = queue_auth(st, &sid, &headers)?;
        let mid = mid
            .parse::<u64>()
            .map_err(|_| StatusCode::NOT_FOUND.into_response())?;
        let sess = st.scalesets.session_mut(set_id).expect("authorized");
        if sess.outstanding.as_ref().is_some_and(|m| m.id == mid) {
            sess.outstanding = None;
            sess.acked.push(mid);
        }
        Ok(StatusCode::NO_CONTENT.into_response())
    })
}

/// `POST .../acquirejobs` with the queue token: the set claims available jobs.
pub(super) async fn acquire_jobs(
    AxState(sh): AxState<Sh>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Answer {
    count(&sh, "POST acquirejobs");
    let ids: Vec<u64> = serde_json::from_slice(&body)
        .map_err(|e| service_error(StatusCode::BAD_REQUEST, "ArgumentException", &e.to_string()))?;
    sh.mutate(|st| {
        let set_id = id.parse::<u64>().map_err(|_| set_not_found(&id))?;
        let sid = st
            .scalesets
            .sets
            .get(&set_id)
            .and_then(|s| s.session.as_ref())
            .map(|s| s.id.clone())
            .unwrap_or_default();
        queue_auth(st, &sid, &headers)?;
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
        Ok(Json(json!({"count": got.len(), "value": got})).into_response())
    })
}
