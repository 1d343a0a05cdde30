//! The GitHub REST API's handlers: `/rate_limit`, the self-hosted runner endpoints (list,
//! get, delete, generate-jitconfig, registration token, runner groups), `/meta` and the
//! App installation endpoints. `api_layer` (in `mod.rs`) has counted, authenticated and
//! rate-limited the request before any of these runs.

use super::*;

pub(super) async fn rate_limit(AxState(sh): AxState<Sh>) -> Response {
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

pub(super) async fn list_runners(
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

pub(super) async fn get_runner(AxState(sh): AxState<Sh>, uri: Uri) -> Response {
    let (Some(scope), Some(id)) = (scope_of_path(uri.path()), runner_id_of_path(uri.path())) else {
        return not_found();
    };
    let st = sh.lock();
    match st.runner_in_scope(&scope, id) {
        Some(r) => Json(r.api_json()).into_response(),
        None => not_found(),
    }
}

pub(super) async fn delete_runner(AxState(sh): AxState<Sh>, uri: Uri) -> Response {
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

pub(super) async fn generate_jitconfig(
    AxState(sh): AxState<Sh>,
    uri: Uri,
    body: Bytes,
) -> Response {
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

pub(super) async fn meta(AxState(sh): AxState<Sh>) -> Response {
    let mut body = json!({"verifiable_password_authentication": false});
    if let Some(v) = sh.lock().ghes_version.clone() {
        body["installed_version"] = json!(v);
    }
    Json(body).into_response()
}

/// `GET /{orgs/o|enterprises/e}/actions/runner-groups`: "Default" and the added groups.
pub(super) async fn list_runner_groups(AxState(sh): AxState<Sh>, uri: Uri) -> Response {
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
pub(super) async fn installation_token(
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
pub(super) async fn get_installation(
    AxState(sh): AxState<Sh>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
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

pub(super) async fn registration_token(AxState(sh): AxState<Sh>, uri: Uri) -> Response {
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
