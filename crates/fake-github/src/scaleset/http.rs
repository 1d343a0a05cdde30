//! The scale set service's HTTP face, part one: the routes, the runner-registration exchange,
//! the admin routes on scale sets and their sessions, JIT configs and job cancellation. The
//! message queue and job acquisition are in `queue.rs`.
//!
//! Handlers answer `Result<Response, Response>`: the error side is the refusal GitHub gives
//! (401 admin token, 404 set or session), so each check is one `?`.

// A refusal is a whole `Response`, as axum answers it: one per request, never on a hot path.
#![allow(clippy::result_large_err)]

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State as AxState};
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use super::queue::{acquire_jobs, delete_message, get_message};
use super::{
    admin_jwt, session_json, set_json, ScaleSetRec, GHES_SCALE_SETS_SINCE, GHES_SERVICE_PREFIX,
    SERVICE_PREFIX,
};
use crate::http::Shared;
use crate::state::{self, State};

pub(super) type Sh = Arc<Shared>;
/// A handler's answer: the error side is a refusal, answered as it is.
pub(super) type Answer = Result<Response, Response>;

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
pub(super) fn service_error(status: StatusCode, type_name: &str, message: &str) -> Response {
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

pub(super) fn bearer(headers: &HeaderMap, scheme: &str) -> Option<String> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (s, t) = v.split_once(' ')?;
    s.eq_ignore_ascii_case(scheme).then(|| t.trim().to_string())
}

/// Counts an admin call under `route`; answers the scope its admin token was issued for, or
/// the 401 to give.
fn admin(sh: &Shared, headers: &HeaderMap, route: &str) -> Result<String, Response> {
    count(sh, route);
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
        Some((scope, exp)) if *exp > st.clock.now_secs() => Ok(scope.clone()),
        _ => Err(unauthorized()),
    }
}

pub(super) fn count(sh: &Shared, route: &str) {
    sh.lock().count_call(route);
}

pub(super) fn query_param(uri: &Uri, key: &str) -> Option<String> {
    state::parse_query(uri.query())
        .into_iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v)
}

/// A request body as JSON; `null` when it is not JSON.
fn body_json(body: &Bytes) -> Value {
    serde_json::from_slice(body).unwrap_or(Value::Null)
}

/// The request's non-empty `name`, or the 400 the service gives.
fn required_name(b: &Value) -> Result<String, Response> {
    b["name"]
        .as_str()
        .filter(|n| !n.is_empty())
        .map(str::to_string)
        .ok_or_else(|| {
            service_error(
                StatusCode::BAD_REQUEST,
                "ArgumentNullException",
                "name is required",
            )
        })
}

/// A 401 or 404 in the REST API's shape (`{"message": ...}`).
fn api_refusal(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "message": message }))).into_response()
}

/// `POST /actions/runner-registration` with `RemoteAuth <registration token>`.
async fn runner_registration(AxState(sh): AxState<Sh>, headers: HeaderMap, body: Bytes) -> Answer {
    count(&sh, "POST runner-registration");
    let too_old = sh
        .lock()
        .ghes_version
        .as_deref()
        .and_then(state::ghes_minor)
        .is_some_and(|v| v < GHES_SCALE_SETS_SINCE);
    if too_old {
        return Err(api_refusal(StatusCode::NOT_FOUND, "Not Found"));
    }
    let bad_credentials = || api_refusal(StatusCode::UNAUTHORIZED, "Bad credentials");
    let tok = bearer(&headers, "RemoteAuth").ok_or_else(bad_credentials)?;
    let scope = sh
        .lock()
        .scalesets
        .registration_tokens
        .get(&tok)
        .cloned()
        .ok_or_else(bad_credentials)?;
    let b = body_json(&body);
    let url = b["url"].as_str().unwrap_or("");
    let want = scope
        .strip_prefix("repos/")
        .or_else(|| scope.strip_prefix("orgs/"))
        .unwrap_or(&scope)
        .to_ascii_lowercase();
    if b["runner_event"] != "register" || !url.to_ascii_lowercase().ends_with(&format!("/{want}")) {
        let message = format!("the url {url:?} does not name {scope}");
        return Err(api_refusal(StatusCode::NOT_FOUND, &message));
    }
    let (token, base, prefix) = sh.mutate(|st| {
        let exp = st.clock.now_secs() + st.scalesets.admin_token_ttl_secs;
        let t = admin_jwt(exp, &st.tokens);
        st.scalesets
            .admin_tokens
            .insert(t.clone(), (scope.clone(), exp));
        (t, st.server_url.clone(), st.scalesets.prefix.clone())
    });
    Ok(Json(json!({"url": format!("{base}{prefix}/"), "token": token, "token_schema": "OAuthAccessToken"}))
        .into_response())
}

async fn runner_groups(AxState(sh): AxState<Sh>, uri: Uri, headers: HeaderMap) -> Answer {
    admin(&sh, &headers, "GET runnergroups")?;
    let name = query_param(&uri, "groupName").unwrap_or_default();
    let groups: Vec<Value> = [(1, "Default", true)]
        .iter()
        .filter(|(_, n, _)| name.is_empty() || n.eq_ignore_ascii_case(&name))
        .map(|(id, n, d)| json!({"id": id, "name": n, "size": 0, "isDefaultGroup": d}))
        .collect();
    Ok(Json(json!({"count": groups.len(), "value": groups})).into_response())
}

async fn list_sets(AxState(sh): AxState<Sh>, uri: Uri, headers: HeaderMap) -> Answer {
    let scope = admin(&sh, &headers, "GET runnerscalesets")?;
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
    Ok(Json(json!({"count": v.len(), "value": v})).into_response())
}

async fn create_set(AxState(sh): AxState<Sh>, headers: HeaderMap, body: Bytes) -> Answer {
    let scope = admin(&sh, &headers, "POST runnerscalesets")?;
    let b: Value = serde_json::from_slice(&body)
        .map_err(|e| service_error(StatusCode::BAD_REQUEST, "ArgumentException", &e.to_string()))?;
    let name = required_name(&b)?;
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
            return Err(service_error(
                StatusCode::CONFLICT,
                "RunnerScaleSetExistsException",
                &format!("A runner scale set named {name} already exists."),
            ));
        }
        let id = st.scalesets.next_set_id;
        st.scalesets.next_set_id += 1;
        let rec = ScaleSetRec {
            id,
            name,
            scope,
            runner_group_id: group,
            disable_update,
            created_at: st.clock.now_ms(),
            session: None,
            owners: Vec::new(),
        };
        st.scalesets.sets.insert(id, rec.clone());
        Ok(Json(set_json(st, &rec)).into_response())
    })
}

/// The id of set `id` if it lives in `scope`, or the 404 the service gives.
pub(super) fn set_in_scope(st: &State, scope: &str, id: &str) -> Result<u64, Response> {
    id.parse::<u64>()
        .ok()
        .and_then(|id| st.scalesets.sets.get(&id))
        .filter(|s| s.scope.eq_ignore_ascii_case(scope))
        .map(|s| s.id)
        .ok_or_else(|| set_not_found(id))
}

pub(super) fn set_not_found(id: &str) -> Response {
    service_error(
        StatusCode::NOT_FOUND,
        "RunnerScaleSetNotFoundException",
        &format!("No runner scale set found with identifier {id}."),
    )
}

async fn get_set(AxState(sh): AxState<Sh>, Path(id): Path<String>, headers: HeaderMap) -> Answer {
    let scope = admin(&sh, &headers, "GET runnerscalesets/{id}")?;
    let st = sh.lock();
    let i = set_in_scope(&st, &scope, &id)?;
    Ok(Json(set_json(&st, &st.scalesets.sets[&i])).into_response())
}

async fn patch_set(
    AxState(sh): AxState<Sh>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Answer {
    let scope = admin(&sh, &headers, "PATCH runnerscalesets/{id}")?;
    let b = body_json(&body);
    sh.mutate(|st| {
        let i = set_in_scope(st, &scope, &id)?;
        let s = st.scalesets.sets.get_mut(&i).expect("found");
        if let Some(d) = b["RunnerSetting"]["disableUpdate"].as_bool() {
            s.disable_update = d;
        }
        if let Some(g) = b["runnerGroupId"].as_u64() {
            s.runner_group_id = g;
        }
        let s = s.clone();
        Ok(Json(set_json(st, &s)).into_response())
    })
}

async fn delete_set(
    AxState(sh): AxState<Sh>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Answer {
    let scope = admin(&sh, &headers, "DELETE runnerscalesets/{id}")?;
    sh.mutate(|st| {
        let i = set_in_scope(st, &scope, &id)?;
        st.scalesets.sets.remove(&i);
        Ok(StatusCode::NO_CONTENT.into_response())
    })
}

async fn create_session(
    AxState(sh): AxState<Sh>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Answer {
    let scope = admin(&sh, &headers, "POST sessions")?;
    let owner = body_json(&body)["ownerName"]
        .as_str()
        .unwrap_or("")
        .to_string();
    sh.mutate(|st| {
        let i = set_in_scope(st, &scope, &id)?;
        let session = st.open_session(i, &owner).map_err(|refused| {
            service_error(
                StatusCode::CONFLICT,
                "TaskAgentSessionConflictException",
                &refused.to_string(),
            )
        })?;
        Ok(Json(session).into_response())
    })
}

/// The set and session of a session path, checked against the admin token's scope.
fn session_of(st: &State, scope: &str, id: &str, sid: &str) -> Result<u64, Response> {
    let i = set_in_scope(st, scope, id)?;
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
) -> Answer {
    let scope = admin(&sh, &headers, "PATCH sessions")?;
    sh.mutate(|st| {
        let i = session_of(st, &scope, &id, &sid)?;
        let ttl = st.scalesets.queue_token_ttl_secs;
        let (now_ms, token) = (st.clock.now_ms(), st.tokens.token(40));
        let set = st.scalesets.sets.get_mut(&i).expect("found");
        let sess = set.session.as_mut().expect("found");
        sess.queue_token = token;
        sess.queue_token_expires = now_ms / 1000 + ttl;
        sess.last_poll_ms = now_ms;
        let set = set.clone();
        Ok(Json(session_json(st, &set, set.session.as_ref().expect("found"))).into_response())
    })
}

async fn delete_session(
    AxState(sh): AxState<Sh>,
    Path((id, sid)): Path<(String, String)>,
    headers: HeaderMap,
) -> Answer {
    let scope = admin(&sh, &headers, "DELETE sessions")?;
    sh.mutate(|st| {
        let i = session_of(st, &scope, &id, &sid)?;
        st.end_session(i);
        Ok(StatusCode::NO_CONTENT.into_response())
    })
}

/// `POST .../generatejitconfig`: a runner registration in the set and its JIT config.
async fn generate_jitconfig(
    AxState(sh): AxState<Sh>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Answer {
    let scope = admin(&sh, &headers, "POST scaleset generatejitconfig")?;
    let b = body_json(&body);
    let name = required_name(&b)?;
    let work = b["workFolder"].as_str().unwrap_or("_work").to_string();
    sh.mutate(|st| {
        let i = set_in_scope(st, &scope, &id)?;
        let set = st.scalesets.sets[&i].clone();
        let req = state::JitRequest {
            name: name.clone(),
            runner_group_id: set.runner_group_id as i64,
            labels: vec![set.name.clone()],
            work_folder: work,
        };
        let (runner, encoded) = st.create_runner(&set.scope, &req).map_err(|_| {
            service_error(
                StatusCode::CONFLICT,
                "TaskAgentExistsException",
                &format!("A runner named {name} already exists."),
            )
        })?;
        st.scalesets.runners.insert(runner.id, i);
        Ok(Json(json!({
            "runner": {"id": runner.id, "name": runner.name, "runnerScaleSetId": i},
            "encodedJITConfig": encoded,
        }))
        .into_response())
    })
}

async fn cancel(AxState(sh): AxState<Sh>, Path(id): Path<String>) -> Answer {
    let id = id
        .parse::<u64>()
        .map_err(|_| StatusCode::NOT_FOUND.into_response())?;
    match sh.mutate(|st| st.cancel_job(id)) {
        Ok(j) => Ok(Json(j).into_response()),
        Err(refused) => Err(api_refusal(StatusCode::CONFLICT, &refused.to_string())),
    }
}
