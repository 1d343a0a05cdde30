//! The fake's Actions service (scale sets, sessions, the message queue) against the shapes
//! GitHub's own scale set client reads: `tests/scaleset-shapes.json`, the facts written out
//! in docs/scaleset-shapes.md. Every call a scale set client makes is sent here as plain HTTP
//! (not through podrunner's client, whose types could share a mistake with the fake) and each
//! answer is checked: the status, every field's name and JSON type, the fields a client
//! needs, no field the shape does not declare, and the job events inside a message's `body`
//! string by their `messageType`. [`checker_rejects_drift`] proves the check bites.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use fake_github::FakeGithub;
use reqwest::{Method, RequestBuilder, StatusCode};
use serde_json::{json, Map, Value};

const TOKEN: &str = "ghp_scaleset_shapes_token";
const SET: &str = "shapes";
/// What `actions/scaleset` sends on every Actions service call (docs/scaleset-shapes.md).
const API_VERSION: &str = "6.0-preview";

struct Shapes {
    types: Map<String, Value>,
    endpoints: Vec<Value>,
}

impl Shapes {
    fn load() -> Shapes {
        let text = include_str!("scaleset-shapes.json");
        let doc: Value = serde_json::from_str(text).expect("scaleset-shapes.json is JSON");
        Shapes {
            types: doc["types"].as_object().expect("types").clone(),
            endpoints: doc["endpoints"].as_array().expect("endpoints").clone(),
        }
    }

    fn ty(&self, name: &str) -> &Value {
        self.types
            .get(name)
            .unwrap_or_else(|| panic!("scaleset-shapes.json has no type {name}"))
    }

    /// A type's fields, its base's first (an embedded Go struct), then its own.
    fn fields(&self, name: &str) -> BTreeMap<String, String> {
        let t = self.ty(name);
        let mut out = match t["base"].as_str() {
            Some(base) => self.fields(base),
            None => BTreeMap::new(),
        };
        for (k, v) in t["fields"].as_object().into_iter().flatten() {
            out.insert(k.clone(), v.as_str().expect("a field type").to_string());
        }
        out
    }

    fn extras(&self, name: &str) -> BTreeSet<String> {
        let t = self.ty(name);
        let mut out = match t["base"].as_str() {
            Some(base) => self.extras(base),
            None => BTreeSet::new(),
        };
        for e in t["extras"].as_array().into_iter().flatten() {
            out.insert(e.as_str().unwrap().to_string());
        }
        out
    }

    /// Checks `v` against type `name`; adds one line per mismatch to `errs`.
    fn check(&self, name: &str, v: &Value, at: &str, errs: &mut Vec<String>) {
        let t = self.ty(name);
        if let Some(disc) = t["discriminator"].as_str() {
            let kind = v[disc].as_str().unwrap_or_default();
            match t["variants"][kind].as_str() {
                Some(variant) => self.check(variant, v, at, errs),
                None => errs.push(format!("{at}: unknown {disc} {:?}", v[disc])),
            }
            return;
        }
        let Some(obj) = v.as_object() else {
            errs.push(format!("{at}: {name} must be an object, got {v}"));
            return;
        };
        for (field, ft) in self.fields(name) {
            let (optional, ft) = match ft.strip_prefix('?') {
                Some(rest) => (true, rest),
                None => (false, ft.as_str()),
            };
            match obj.get(&field) {
                None if optional => {}
                None => errs.push(format!("{at}: {name} lacks required field {field}")),
                Some(Value::Null) if optional => {}
                Some(x) => self.check_field(ft, x, &format!("{at}.{field}"), errs),
            }
        }
        let declared = self.fields(name);
        let extras = self.extras(name);
        for k in obj.keys() {
            if !declared.contains_key(k) && !extras.contains(k) {
                errs.push(format!("{at}: {name} has undeclared field {k}"));
            }
        }
        for (k, want) in t["constants"].as_object().into_iter().flatten() {
            if obj.get(k) != Some(want) {
                errs.push(format!("{at}.{k}: must be {want}, got {:?}", obj.get(k)));
            }
        }
    }

    fn check_field(&self, ft: &str, v: &Value, at: &str, errs: &mut Vec<String>) {
        let bad = |errs: &mut Vec<String>| errs.push(format!("{at}: not a {ft}: {v}"));
        if let Some(inner) = ft.strip_prefix("json[").and_then(|r| r.strip_suffix(']')) {
            match v.as_str().map(serde_json::from_str::<Value>) {
                Some(Ok(parsed)) => self.check_field(&format!("[{inner}]"), &parsed, at, errs),
                _ => bad(errs),
            }
            return;
        }
        if let Some(inner) = ft.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
            match v.as_array() {
                Some(items) => {
                    for (i, x) in items.iter().enumerate() {
                        self.check_field(inner, x, &format!("{at}[{i}]"), errs);
                    }
                }
                None => bad(errs),
            }
            return;
        }
        let ok = match ft {
            "int" => v.is_i64() || v.is_u64(),
            "string" => v.is_string(),
            "bool" => v.is_boolean(),
            "time" => v
                .as_str()
                .is_some_and(|s| humantime::parse_rfc3339(s).is_ok()),
            "uuid" => v.as_str().is_some_and(is_uuid),
            other => {
                self.check(other, v, at, errs);
                true
            }
        };
        if !ok {
            bad(errs);
        }
    }

    fn endpoint(&self, call: &str) -> &Value {
        self.endpoints
            .iter()
            .find(|e| e["call"] == call)
            .unwrap_or_else(|| panic!("scaleset-shapes.json has no endpoint {call:?}"))
    }
}

/// The textual form of a UUID: 8-4-4-4-12 hex digits.
fn is_uuid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.iter().map(|g| g.len()).eq([8, 4, 4, 4, 12])
        && groups
            .iter()
            .all(|g| g.chars().all(|c| c.is_ascii_hexdigit()))
}

/// Whether `path` fits `template` (`{name}` segments match any one segment).
fn path_fits(template: &str, path: &str) -> bool {
    let t: Vec<&str> = template.trim_end_matches('/').split('/').collect();
    let p: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    t.len() == p.len()
        && t.iter()
            .zip(&p)
            .all(|(t, p)| (t.starts_with('{') && t.ends_with('}')) || t == p)
}

/// A scale set client's session with the fake, speaking plain HTTP.
struct Client {
    shapes: Shapes,
    gh: FakeGithub,
    http: reqwest::Client,
    /// The Actions service's URL, from the runner-registration exchange.
    service: String,
    admin: String,
    queue_url: String,
    queue_token: String,
    covered: BTreeSet<String>,
    checked: usize,
}

impl Client {
    async fn new() -> Client {
        let gh = FakeGithub::start(TOKEN).await.expect("the fake starts");
        // Empty long polls end quickly here (GitHub holds them ~50 s).
        gh.with_state(|st| st.scalesets.poll_wait_ms = 200);
        Client {
            shapes: Shapes::load(),
            gh,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
            service: String::new(),
            admin: String::new(),
            queue_url: String::new(),
            queue_token: String::new(),
            covered: BTreeSet::new(),
            checked: 0,
        }
    }

    /// A request to the Actions service with the admin token.
    fn service(&self, method: Method, path: &str) -> RequestBuilder {
        self.service_as(method, path, &self.admin)
    }

    /// A request to the Actions service with `token` as the bearer.
    fn service_as(&self, method: Method, path: &str, token: &str) -> RequestBuilder {
        let sep = if path.contains('?') { '&' } else { '?' };
        let url = format!(
            "{}{}{sep}api-version={API_VERSION}",
            self.service,
            path.trim_start_matches('/')
        );
        self.http
            .request(method, url)
            .header("Authorization", format!("Bearer {token}"))
    }

    /// A request to the message queue with the queue token.
    fn queue(&self, method: Method, suffix: &str) -> RequestBuilder {
        self.http
            .request(method, format!("{}{suffix}", self.queue_url))
            .header("Authorization", format!("Bearer {}", self.queue_token))
            .header(
                "Accept",
                format!("application/json; api-version={API_VERSION}"),
            )
            .header("X-ScaleSetMaxCapacity", "4")
    }

    /// Sends `req` as endpoint `call` and checks the answer against it: method, path, status
    /// and the body's shape. Returns the body (Null when there is none).
    async fn call(&mut self, call: &str, req: RequestBuilder) -> Value {
        let req = req.build().unwrap();
        let (method, url) = (req.method().clone(), req.url().clone());
        let resp = self.http.execute(req).await.unwrap();
        let status = resp.status();
        let bytes = resp.bytes().await.unwrap();
        let e = self.shapes.endpoint(call).clone();
        assert_eq!(method.as_str(), e["method"], "{call}: method");
        let template = e["path"].as_str().unwrap();
        let template = if let Some(rest) = template.strip_prefix("{messageQueueUrl}") {
            format!("{}{rest}", url_path(&self.queue_url))
        } else if template == "/actions/runner-registration" {
            template.to_string()
        } else {
            format!(
                "{}{}",
                url_path(&self.service).trim_end_matches('/'),
                template
            )
        };
        assert!(
            path_fits(&template, url.path()),
            "{call}: {} does not fit {template}",
            url.path()
        );
        assert_eq!(
            status,
            StatusCode::from_u16(e["status"].as_u64().unwrap() as u16).unwrap(),
            "{call}: {}",
            String::from_utf8_lossy(&bytes)
        );
        let body = match e["answer"].as_str() {
            None => {
                assert!(
                    bytes.is_empty(),
                    "{call}: a body where none belongs: {bytes:?}"
                );
                Value::Null
            }
            Some(ty) => {
                let v: Value = serde_json::from_slice(&bytes)
                    .unwrap_or_else(|err| panic!("{call}: not JSON ({err}): {bytes:?}"));
                let mut errs = Vec::new();
                self.shapes.check(ty, &v, call, &mut errs);
                assert!(
                    errs.is_empty(),
                    "{call} does not fit {ty}:\n{}",
                    errs.join("\n")
                );
                self.checked += 1;
                v
            }
        };
        self.covered.insert(call.to_string());
        body
    }

    /// Job events of a message, by `messageType`.
    fn kinds(message: &Value) -> Vec<String> {
        let events: Vec<Value> = serde_json::from_str(message["body"].as_str().unwrap()).unwrap();
        events
            .iter()
            .map(|e| e["messageType"].as_str().unwrap().to_string())
            .collect()
    }
}

fn url_path(url: &str) -> String {
    reqwest::Url::parse(url).unwrap().path().to_string()
}

/// The whole life of a scale set, every endpoint the client uses, each answer checked.
#[tokio::test]
async fn actions_service_answers_fit_the_scaleset_client_types() {
    let mut c = Client::new().await;
    let base = c.gh.url();
    // The registration token comes from the REST API (checked by openapi_conformance.rs).
    let reg: Value = c
        .http
        .post(format!(
            "{base}/repos/octo/hello/actions/runners/registration-token"
        ))
        .header("Authorization", format!("Bearer {TOKEN}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let reg_token = reg["token"].as_str().unwrap().to_string();
    let admin = c
        .call(
            "runner-registration exchange",
            c.http
                .post(format!("{base}/actions/runner-registration"))
                .header("Authorization", format!("RemoteAuth {reg_token}"))
                .json(&json!({"url": "https://github.com/octo/hello", "runner_event": "register"})),
        )
        .await;
    c.service = admin["url"].as_str().unwrap().to_string();
    c.admin = admin["token"].as_str().unwrap().to_string();

    let groups = c
        .call(
            "runner group by name",
            c.service(Method::GET, "_apis/runtime/runnergroups/?groupName=Default"),
        )
        .await;
    let group = groups["value"][0]["id"].as_u64().unwrap();
    let none = c
        .call(
            "scale set by name",
            c.service(
                Method::GET,
                &format!("_apis/runtime/runnerscalesets?runnerGroupId={group}&name={SET}"),
            ),
        )
        .await;
    assert_eq!(none["count"], 0);
    let set = c
        .call(
            "create scale set",
            c.service(Method::POST, "_apis/runtime/runnerscalesets")
                .json(&json!({
                    "name": SET,
                    "runnerGroupId": group,
                    "labels": [{"type": "System", "name": SET}],
                    "RunnerSetting": {"disableUpdate": true},
                })),
        )
        .await;
    let id = set["id"].as_u64().unwrap();
    let one = c
        .call(
            "scale set by name",
            c.service(
                Method::GET,
                &format!("_apis/runtime/runnerscalesets?runnerGroupId={group}&name={SET}"),
            ),
        )
        .await;
    assert_eq!(
        (one["count"].clone(), one["value"][0]["id"].clone()),
        (json!(1), json!(id))
    );
    c.call(
        "scale set by id",
        c.service(Method::GET, &format!("_apis/runtime/runnerscalesets/{id}")),
    )
    .await;
    let patched = c
        .call(
            "update scale set",
            c.service(
                Method::PATCH,
                &format!("_apis/runtime/runnerscalesets/{id}"),
            )
            .json(&json!({"RunnerSetting": {"disableUpdate": false}})),
        )
        .await;
    assert_ne!(patched["RunnerSetting"]["disableUpdate"], true);

    let sessions = format!("_apis/runtime/runnerscalesets/{id}/sessions");
    let session = c
        .call(
            "create session",
            c.service(Method::POST, &sessions)
                .json(&json!({"ownerName": "host-a"})),
        )
        .await;
    c.queue_url = session["messageQueueUrl"].as_str().unwrap().to_string();
    c.queue_token = session["messageQueueAccessToken"]
        .as_str()
        .unwrap()
        .to_string();
    let sid = session["sessionId"].as_str().unwrap().to_string();
    let conflict = c
        .call(
            "session conflict",
            c.service(Method::POST, &sessions)
                .json(&json!({"ownerName": "host-b"})),
        )
        .await;
    assert!(conflict["message"].as_str().unwrap().contains("host-a"));

    c.call("poll with nothing to say", c.queue(Method::GET, ""))
        .await;
    let job = c.gh.enqueue_job("repos/octo/hello", &[SET], "true");
    let m = c
        .call("poll with a message", c.queue(Method::GET, ""))
        .await;
    assert_eq!(Client::kinds(&m), ["JobAvailable"]);
    let mid = m["messageId"].as_u64().unwrap();
    c.call(
        "acknowledge a message",
        c.queue(Method::DELETE, &format!("/{mid}")),
    )
    .await;
    let got = c
        .call(
            "acquire jobs",
            c.service_as(
                Method::POST,
                &format!("_apis/runtime/runnerscalesets/{id}/acquirejobs"),
                &c.queue_token,
            )
            .json(&json!([job.id])),
        )
        .await;
    assert_eq!(got["value"], json!([job.id]));
    let m = c
        .call(
            "poll with a message",
            c.queue(Method::GET, &format!("?lastMessageId={mid}")),
        )
        .await;
    assert_eq!(Client::kinds(&m), ["JobAssigned"]);
    let mid = m["messageId"].as_u64().unwrap();
    c.call(
        "acknowledge a message",
        c.queue(Method::DELETE, &format!("/{mid}")),
    )
    .await;
    let jit = c
        .call(
            "JIT config",
            c.service(
                Method::POST,
                &format!("_apis/runtime/runnerscalesets/{id}/generatejitconfig"),
            )
            .json(&json!({"name": "shapes-00000001", "workFolder": "_work"})),
        )
        .await;
    assert_eq!(jit["runner"]["runnerScaleSetId"], id);

    // The runner takes the job and finishes it; a second job is cancelled while queued.
    let rid = jit["runner"]["id"].as_u64().unwrap();
    c.gh.with_state(|st| st.runner_online(rid));
    c.gh.with_state(|st| {
        st.complete_job(rid, job.id, fake_github::Conclusion::Success, Some(0), None)
            .unwrap()
    });
    let cancelled = c.gh.enqueue_job("repos/octo/hello", &[SET], "true");
    let resp = c
        .http
        .post(format!("{base}/_fake/jobs/{}/cancel", cancelled.id))
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success());
    let m = c
        .call(
            "poll with a message",
            c.queue(Method::GET, &format!("?lastMessageId={mid}")),
        )
        .await;
    assert_eq!(
        Client::kinds(&m),
        ["JobStarted", "JobCompleted", "JobAvailable", "JobCompleted"]
    );
    let mid = m["messageId"].as_u64().unwrap();
    c.call(
        "acknowledge a message",
        c.queue(Method::DELETE, &format!("/{mid}")),
    )
    .await;

    // The queue token expires: 401 on the queue, and a refreshed session brings a new one.
    c.gh.with_state(|st| {
        for s in st.scalesets.sets.values_mut() {
            if let Some(sess) = s.session.as_mut() {
                sess.queue_token_expires = 0;
            }
        }
    });
    c.call("poll with an expired queue token", c.queue(Method::GET, ""))
        .await;
    let refreshed = c
        .call(
            "refresh session",
            c.service(Method::PATCH, &format!("{sessions}/{sid}")),
        )
        .await;
    c.queue_token = refreshed["messageQueueAccessToken"]
        .as_str()
        .unwrap()
        .to_string();
    c.call(
        "poll with nothing to say",
        c.queue(Method::GET, &format!("?lastMessageId={mid}")),
    )
    .await;
    c.call(
        "delete session",
        c.service(Method::DELETE, &format!("{sessions}/{sid}")),
    )
    .await;
    c.call(
        "delete scale set",
        c.service(
            Method::DELETE,
            &format!("_apis/runtime/runnerscalesets/{id}"),
        ),
    )
    .await;

    let all: BTreeSet<String> = c
        .shapes
        .endpoints
        .iter()
        .map(|e| e["call"].as_str().unwrap().to_string())
        .collect();
    let missed: Vec<&String> = all.difference(&c.covered).collect();
    assert!(missed.is_empty(), "endpoints never exercised: {missed:?}");
    assert!(c.checked >= 15, "{} bodies checked", c.checked);
    c.gh.shutdown().await;
}

/// The checker refuses answers that drift from the shapes: a renamed field, a wrong JSON type,
/// a missing required field, an undeclared field, a bad time, a wrong message type, a body
/// that is not a JSON string, an unknown job event.
#[test]
fn checker_rejects_drift() {
    let shapes = Shapes::load();
    let stats = json!({
        "totalAvailableJobs": 0, "totalAcquiredJobs": 0, "totalAssignedJobs": 1,
        "totalRunningJobs": 1, "totalRegisteredRunners": 1, "totalBusyRunners": 1,
        "totalIdleRunners": 0,
    });
    let event = json!({
        "messageType": "JobAvailable", "runnerRequestId": 7, "repositoryName": "hello",
        "ownerName": "octo", "jobId": "job-7", "jobWorkflowRef": "octo/hello/.github/workflows/ci.yml@refs/heads/main",
        "jobDisplayName": "build", "workflowRunId": 7, "eventName": "push",
        "requestLabels": ["big"], "queueTime": "2026-01-02T03:04:05.678Z",
        "scaleSetAssignTime": "2026-01-02T03:04:05.678Z",
        "acquireJobUrl": "https://example/acquirejobs",
    });
    let message = |events: Value| {
        json!({
            "messageId": 3, "messageType": "RunnerScaleSetJobMessages",
            "body": events.to_string(), "statistics": stats,
        })
    };
    let errors = |v: &Value| {
        let mut errs = Vec::new();
        shapes.check("Message", v, "m", &mut errs);
        errs
    };
    let good = message(json!([event]));
    assert_eq!(errors(&good), Vec::<String>::new());

    let mut drifts: Vec<(&str, Value)> = Vec::new();
    let mut v = good.clone();
    v["statistics"]["totalassignedjobs"] = v["statistics"]["totalAssignedJobs"].take();
    v["statistics"]
        .as_object_mut()
        .unwrap()
        .remove("totalAssignedJobs");
    drifts.push(("renamed field", v));
    let mut v = good.clone();
    v["messageId"] = json!("3");
    drifts.push(("an int as a string", v));
    let mut v = good.clone();
    v.as_object_mut().unwrap().remove("statistics");
    drifts.push(("missing statistics", v));
    let mut v = good.clone();
    v["sessionId"] = json!("x");
    drifts.push(("undeclared field", v));
    let mut v = good.clone();
    v["messageType"] = json!("RunnerScaleSetJobMessage");
    drifts.push(("wrong message type", v));
    let mut v = good.clone();
    v["body"] = json!([event]);
    drifts.push(("body not a string", v));
    let mut e = event.clone();
    e["queueTime"] = json!("2026-01-02 03:04:05");
    drifts.push(("bad time", message(json!([e]))));
    let mut e = event.clone();
    e["messageType"] = json!("JobQueued");
    drifts.push(("unknown event", message(json!([e]))));
    let mut e = event.clone();
    e["messageType"] = json!("JobStarted");
    drifts.push(("JobStarted without its runner", message(json!([e]))));
    let mut e = event.clone();
    e["requestLabels"] = json!("big");
    drifts.push(("labels not an array", message(json!([e]))));
    for (what, v) in drifts {
        assert!(!errors(&v).is_empty(), "{what} passed the check: {v}");
    }

    let mut errs = Vec::new();
    shapes.check(
        "RunnerScaleSetSession",
        &json!({"sessionId": "not-a-uuid", "messageQueueUrl": "u",
                "messageQueueAccessToken": "t", "statistics": stats}),
        "s",
        &mut errs,
    );
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(is_uuid("0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"));
    assert!(path_fits("/a/{id}/b", "/a/7/b") && !path_fits("/a/{id}/b", "/a/7/c"));
}
