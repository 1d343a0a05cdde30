//! OpenAPI conformance of fake-github: every GitHub API answer the fake gives, on success and
//! error paths, is validated against the schema that GitHub's own OpenAPI description
//! (`tests/data/openapi-runners.json`, see docs/github-openapi.md) declares for that path,
//! method and status; and
//! every status must be declared for the path, except the few every GitHub endpoint can
//! answer (see [`UNIVERSAL_STATUSES`]).
//!
//! The OpenAPI 3.0 schemas are turned into JSON Schema first: `$ref`s (to
//! `#/components/schemas/..` and `#/components/responses/..`) are inlined, `nullable: true`
//! becomes `type: [T, "null"]`, and OpenAPI-only keys (`example`, `x-*`) are dropped.
//! [`validator_rejects_drift`] proves the check bites.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use base64::Engine as _;
use fake_github::{decode_jit_config, FakeGithub};
use reqwest::{Method, StatusCode};
use serde_json::{json, Map, Value};

const TOKEN: &str = "ghp_conformance_token";
/// GitHub can answer these on any endpoint, though its description lists them only on some:
/// 401 bad credentials, 403/429 rate limits, 404 unknown or inaccessible resource, 5xx
/// outages. Their bodies must still be `basic-error`.
const UNIVERSAL_STATUSES: [u16; 7] = [401, 403, 404, 429, 500, 502, 503];
/// The fault tests' deliberate 5xx.
const FAULT_5XX: u16 = 502;

const JIT: &str = "/{scope}/actions/runners/generate-jitconfig";
const LIST: &str = "/{scope}/actions/runners";
const ONE: &str = "/{scope}/actions/runners/{runner_id}";
const REG_TOKEN: &str = "/{scope}/actions/runners/registration-token";
const RATE: &str = "/rate_limit";

// ---------------------------------------------------------------------------------------------
// The spec
// ---------------------------------------------------------------------------------------------

/// GitHub's runner endpoints, schemas only (where it comes from and how it was cut down:
/// docs/github-openapi.md).
fn spec_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/openapi-runners.json")
}

struct Spec {
    /// The `api.github.com` description (`paths`, `components`).
    api: Value,
}

impl Spec {
    fn load() -> Spec {
        let path = spec_path();
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("cannot read {} ({e})", path.display()));
        let doc: Value = serde_json::from_str(&text).expect("spec is JSON");
        let mut api = doc["api.github.com"].clone();
        // The enterprise paths come from GitHub's GHEC description: add them, and the
        // components they name that api.github.com's lacks.
        let ent = &doc["ghec-enterprise"];
        for (path, item) in ent["paths"].as_object().expect("enterprise paths") {
            api["paths"][path] = item.clone();
        }
        for (kind, items) in ent["components"].as_object().expect("components") {
            for (name, v) in items.as_object().expect("component kind") {
                if api["components"][kind][name].is_null() {
                    api["components"][kind][name] = v.clone();
                }
            }
        }
        Spec { api }
    }

    /// Path template in the spec for a template with `{scope}`, e.g. `repos` →
    /// `/repos/{owner}/{repo}/...`.
    fn template(kind: &str, template: &str) -> String {
        let scope = match kind {
            "repos" => "repos/{owner}/{repo}",
            "orgs" => "orgs/{org}",
            "enterprises" => "enterprises/{enterprise}",
            _ => panic!("scope kind {kind}"),
        };
        template.replace("{scope}", scope)
    }

    fn operation(&self, path: &str, method: &str) -> &Value {
        let op = &self.api["paths"][path][method.to_ascii_lowercase()];
        assert!(op.is_object(), "spec has no {method} {path}");
        op
    }

    fn declared_statuses(&self, path: &str, method: &str) -> BTreeSet<u16> {
        self.operation(path, method)["responses"]
            .as_object()
            .expect("responses")
            .keys()
            .map(|k| k.parse().expect("numeric status"))
            .collect()
    }

    /// The JSON Schema of the body for `status`: `Some(None)` when the spec declares the status
    /// without a body, `None` when it does not declare it.
    fn body_schema(&self, path: &str, method: &str, status: u16) -> Option<Option<Value>> {
        let resp = &self.operation(path, method)["responses"][status.to_string()];
        if resp.is_null() {
            return None;
        }
        let resp = self.follow(resp);
        let schema = &resp["content"]["application/json"]["schema"];
        if schema.is_null() {
            return Some(None);
        }
        Some(Some(self.to_json_schema(schema)))
    }

    fn basic_error(&self) -> Value {
        self.to_json_schema(&json!({"$ref": "#/components/schemas/basic-error"}))
    }

    /// Follows `$ref` chains at the top of `v` (used for `#/components/responses/..`).
    fn follow<'a>(&'a self, mut v: &'a Value) -> &'a Value {
        while let Some(r) = v.get("$ref").and_then(Value::as_str) {
            v = self.lookup(r);
        }
        v
    }

    fn lookup(&self, reference: &str) -> &Value {
        let pointer = reference
            .strip_prefix('#')
            .unwrap_or_else(|| panic!("only local $refs are expected, got {reference}"));
        self.api
            .pointer(pointer)
            .unwrap_or_else(|| panic!("dangling $ref {reference}"))
    }

    /// OpenAPI 3.0 schema → JSON Schema (draft 2020-12), `$ref`s inlined.
    fn to_json_schema(&self, schema: &Value) -> Value {
        let mut stack = Vec::new();
        self.convert(schema, &mut stack)
    }

    fn convert(&self, v: &Value, stack: &mut Vec<String>) -> Value {
        match v {
            Value::Array(items) => {
                Value::Array(items.iter().map(|i| self.convert(i, stack)).collect())
            }
            Value::Object(map) => {
                if let Some(r) = map.get("$ref").and_then(Value::as_str) {
                    if stack.iter().any(|s| s == r) {
                        // A recursive schema: accept anything below the cycle.
                        return json!({});
                    }
                    stack.push(r.to_string());
                    let out = self.convert(self.lookup(r), stack);
                    stack.pop();
                    return out;
                }
                let mut out = Map::new();
                for (k, val) in map {
                    if k == "example" || k == "examples" || k.starts_with("x-") || k == "nullable" {
                        continue;
                    }
                    let converted = if k == "enum" || k == "required" || k == "default" {
                        val.clone()
                    } else {
                        self.convert(val, stack)
                    };
                    out.insert(k.clone(), converted);
                }
                if map.get("nullable") == Some(&Value::Bool(true)) {
                    make_nullable(&mut out);
                }
                Value::Object(out)
            }
            other => other.clone(),
        }
    }
}

/// Applies OpenAPI 3.0 `nullable: true` to an already converted schema object.
fn make_nullable(out: &mut Map<String, Value>) {
    if let Some(enum_values) = out.get_mut("enum").and_then(Value::as_array_mut) {
        if !enum_values.contains(&Value::Null) {
            enum_values.push(Value::Null);
        }
    }
    match out.get("type").cloned() {
        Some(Value::String(t)) => {
            out.insert("type".into(), json!([t, "null"]));
        }
        Some(Value::Array(mut ts)) => {
            if !ts.contains(&json!("null")) {
                ts.push(json!("null"));
            }
            out.insert("type".into(), Value::Array(ts));
        }
        _ => {
            let inner = Value::Object(std::mem::take(out));
            out.insert("anyOf".into(), json!([inner, {"type": "null"}]));
        }
    }
}

fn validate(schema: &Value, instance: &Value) -> Result<(), Vec<String>> {
    let validator = jsonschema::options()
        .should_validate_formats(true)
        .build(schema)
        .expect("converted schema compiles");
    let errors: Vec<String> = validator
        .iter_errors(instance)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

// ---------------------------------------------------------------------------------------------
// The checker: calls the fake and validates every answer
// ---------------------------------------------------------------------------------------------

struct Answer {
    status: StatusCode,
    headers: reqwest::header::HeaderMap,
    body: Option<Value>,
    elapsed: Duration,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
    fn json(&self) -> &Value {
        self.body.as_ref().expect("a JSON body")
    }
}

struct Checker {
    spec: Spec,
    gh: FakeGithub,
    http: reqwest::Client,
    /// (spec path, method) → statuses seen.
    seen: BTreeMap<(String, String), BTreeSet<u16>>,
    checked_bodies: usize,
    /// API requests sent through [`Checker::call`].
    api_requests: u64,
}

impl Checker {
    async fn new() -> Checker {
        Checker {
            spec: Spec::load(),
            gh: FakeGithub::start(TOKEN).await.expect("fake starts"),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(20))
                .build()
                .unwrap(),
            seen: BTreeMap::new(),
            checked_bodies: 0,
            api_requests: 0,
        }
    }

    /// Calls `method url_path` with `token` and checks the answer against the spec entry
    /// (`spec_path`, `method`). Returns the answer for further assertions.
    async fn call(
        &mut self,
        method: Method,
        spec_path: &str,
        url_path: &str,
        body: Option<&str>,
        token: &str,
    ) -> Answer {
        let url = format!("{}{}", self.gh.url(), url_path);
        let mut req = self
            .http
            .request(method.clone(), &url)
            .header("Accept", "application/vnd.github+json")
            .header("X-GitHub-Api-Version", "2022-11-28")
            .header("Authorization", format!("Bearer {token}"));
        if let Some(b) = body {
            req = req
                .header("Content-Type", "application/json")
                .body(b.to_string());
        }
        self.api_requests += 1;
        let started = Instant::now();
        let resp = req
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {url}: {e}"));
        let elapsed = started.elapsed();
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = resp.bytes().await.expect("body");
        let body = if bytes.is_empty() {
            None
        } else {
            Some(serde_json::from_slice::<Value>(&bytes).unwrap_or_else(|e| {
                panic!("{method} {url_path} → {status}: body is not JSON ({e}): {bytes:?}")
            }))
        };
        let answer = Answer {
            status,
            headers,
            body,
            elapsed,
        };
        self.check(&method, spec_path, url_path, &answer);
        answer
    }

    async fn ok(
        &mut self,
        method: Method,
        spec_path: &str,
        url_path: &str,
        body: Option<&str>,
    ) -> Answer {
        self.call(method, spec_path, url_path, body, TOKEN).await
    }

    fn check(&mut self, method: &Method, spec_path: &str, url_path: &str, a: &Answer) {
        let what = format!("{method} {url_path} → {}", a.status);
        let code = a.status.as_u16();
        self.seen
            .entry((spec_path.to_string(), method.as_str().to_string()))
            .or_default()
            .insert(code);
        for h in [
            "x-ratelimit-limit",
            "x-ratelimit-remaining",
            "x-ratelimit-reset",
            "x-ratelimit-used",
            "x-ratelimit-resource",
        ] {
            let v = a
                .header(h)
                .unwrap_or_else(|| panic!("{what}: no {h} header"));
            if h != "x-ratelimit-resource" {
                v.parse::<u64>()
                    .unwrap_or_else(|_| panic!("{what}: {h}={v} is not a number"));
            }
        }
        let schema = match self.spec.body_schema(spec_path, method.as_str(), code) {
            Some(s) => s,
            None if UNIVERSAL_STATUSES.contains(&code) => Some(self.spec.basic_error()),
            None => panic!(
                "{what}: status {code} is not declared for {method} {spec_path} (declared: {:?})",
                self.spec.declared_statuses(spec_path, method.as_str())
            ),
        };
        match (schema, &a.body) {
            (None, None) => {}
            (None, Some(b)) => panic!("{what}: the spec declares no body, got {b}"),
            (Some(_), None) => panic!("{what}: the spec declares a JSON body, got none"),
            (Some(schema), Some(body)) => {
                let ct = a.header("content-type").unwrap_or("");
                assert!(
                    ct.starts_with("application/json"),
                    "{what}: content-type {ct}"
                );
                if let Err(errors) = validate(&schema, body) {
                    panic!(
                        "{what}: body does not match the spec:\n{}\nbody: {body:#}",
                        errors.join("\n")
                    );
                }
                self.checked_bodies += 1;
            }
        }
    }

    /// Asserts every (path, method) seen answered only declared or universal statuses.
    fn assert_statuses_declared(&self) {
        for ((path, method), statuses) in &self.seen {
            let declared = self.spec.declared_statuses(path, method);
            for s in statuses {
                assert!(
                    declared.contains(s) || UNIVERSAL_STATUSES.contains(s),
                    "{method} {path} answered {s}, declared only {declared:?}"
                );
            }
        }
    }

    /// A runner secret and id from an `encoded_jit_config`.
    fn runner_credentials(encoded: &str) -> (u64, String) {
        let files = decode_jit_config(encoded).expect("JIT config decodes");
        let id = files[".runner"]["agentId"].as_u64().expect("agentId");
        let secret = files[".credentials"]["data"]["token"]
            .as_str()
            .expect("token")
            .to_string();
        (id, secret)
    }
}

fn jit_body(name: &str, labels: &[&str]) -> String {
    json!({"name": name, "runner_group_id": 1, "labels": labels, "work_folder": "_work"})
        .to_string()
}

// ---------------------------------------------------------------------------------------------
// The tests
// ---------------------------------------------------------------------------------------------

/// Drives every endpoint, for repo and org scope, through its success and error paths.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_answers_conform_to_openapi() {
    let mut c = Checker::new().await;
    for (kind, scope) in [
        ("repos", "repos/octo/hello"),
        ("orgs", "orgs/octo"),
        ("enterprises", "enterprises/octo-ent"),
    ] {
        scope_round(&mut c, kind, scope).await;
    }
    other_endpoints(&mut c).await;
    faults_and_rate_limit(&mut c).await;
    c.assert_statuses_declared();

    // Every path and status class the brief names was exercised.
    let seen = |p: &str, m: &str| c.seen[&(p.to_string(), m.to_string())].clone();
    let jit = Spec::template("repos", JIT);
    let one = Spec::template("repos", ONE);
    let list = Spec::template("repos", LIST);
    assert_eq!(
        seen(&jit, "POST"),
        BTreeSet::from([201, 401, 409, 422, 429]),
        "generate-jitconfig statuses"
    );
    assert_eq!(seen(&one, "GET"), BTreeSet::from([200, 401, 404]));
    assert_eq!(seen(&one, "DELETE"), BTreeSet::from([204, 401, 404, 422]));
    assert_eq!(
        seen(&list, "GET"),
        BTreeSet::from([200, 401, 403, FAULT_5XX])
    );
    assert!(
        c.checked_bodies > 40,
        "only {} bodies checked",
        c.checked_bodies
    );
    c.gh.shutdown().await;
}

async fn scope_round(c: &mut Checker, kind: &str, scope: &str) {
    let jit = Spec::template(kind, JIT);
    let list = Spec::template(kind, LIST);
    let one = Spec::template(kind, ONE);
    let base = format!("/{scope}/actions/runners");

    // 201: a JIT runner.
    let a = c
        .ok(
            Method::POST,
            &jit,
            &format!("{base}/generate-jitconfig"),
            Some(&jit_body("r1", &["gpu"])),
        )
        .await;
    assert_eq!(a.status, 201);
    let runner = &a.json()["runner"];
    assert_eq!(runner["name"], "r1");
    assert_eq!(runner["os"], "linux");
    assert_eq!(runner["status"], "offline");
    assert_eq!(runner["busy"], false);
    assert_eq!(runner["ephemeral"], true);
    let names: Vec<(&str, &str)> = runner["labels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| (l["name"].as_str().unwrap(), l["type"].as_str().unwrap()))
        .collect();
    assert_eq!(
        names,
        [
            ("self-hosted", "read-only"),
            ("linux", "read-only"),
            ("x64", "read-only"),
            ("gpu", "custom")
        ]
    );
    let r1_id = runner["id"].as_u64().unwrap();
    let encoded = a.json()["encoded_jit_config"].as_str().unwrap().to_string();
    base64::engine::general_purpose::STANDARD
        .decode(&encoded)
        .expect("standard padded base64");
    let files = decode_jit_config(&encoded).unwrap();
    assert_eq!(files[".runner"]["agentId"], r1_id);
    assert_eq!(files[".runner"]["agentName"], "r1");
    assert_eq!(files[".runner"]["serverUrl"], c.gh.url());
    assert_eq!(files[".runner"]["gitHubUrl"], c.gh.url());
    assert_eq!(files[".runner"]["workFolder"], "_work");
    assert_eq!(files[".credentials"]["scheme"], "OAuthAccessToken");
    assert_eq!(files[".credentials_rsaparams"], json!({}));

    // 409: same name again.
    let a = c
        .ok(
            Method::POST,
            &jit,
            &format!("{base}/generate-jitconfig"),
            Some(&jit_body("r1", &["x"])),
        )
        .await;
    assert_eq!(a.status, 409);
    assert_eq!(
        a.json()["message"],
        "Already exists - A runner with the name r1 already exists."
    );

    // 422: bad bodies.
    let many: Vec<String> = (0..101).map(|i| format!("l{i}")).collect();
    for bad in [
        json!({"runner_group_id": 1, "labels": ["x"]}).to_string(),
        json!({"name": "", "runner_group_id": 1, "labels": ["x"]}).to_string(),
        json!({"name": "n", "labels": ["x"]}).to_string(),
        json!({"name": "n", "runner_group_id": "one", "labels": ["x"]}).to_string(),
        json!({"name": "n", "runner_group_id": 1}).to_string(),
        json!({"name": "n", "runner_group_id": 1, "labels": []}).to_string(),
        json!({"name": "n", "runner_group_id": 1, "labels": many}).to_string(),
        json!({"name": "n", "runner_group_id": 1, "labels": [7]}).to_string(),
        "{not json".to_string(),
    ] {
        let a = c
            .ok(
                Method::POST,
                &jit,
                &format!("{base}/generate-jitconfig"),
                Some(&bad),
            )
            .await;
        assert_eq!(a.status, 422, "body {bad}");
    }

    // More runners, then pagination.
    for i in 2..=5 {
        let a = c
            .ok(
                Method::POST,
                &jit,
                &format!("{base}/generate-jitconfig"),
                Some(&jit_body(&format!("r{i}"), &["cpu"])),
            )
            .await;
        assert_eq!(a.status, 201);
    }
    let a = c
        .ok(Method::GET, &list, &format!("{base}?per_page=2"), None)
        .await;
    assert_eq!(a.status, 200);
    assert_eq!(a.json()["total_count"], 5);
    assert_eq!(a.json()["runners"].as_array().unwrap().len(), 2);
    let url = format!("{}{base}", c.gh.url());
    assert_eq!(
        a.header("link").unwrap(),
        format!("<{url}?per_page=2&page=2>; rel=\"next\", <{url}?per_page=2&page=3>; rel=\"last\"")
    );
    let a = c
        .ok(
            Method::GET,
            &list,
            &format!("{base}?per_page=2&page=3"),
            None,
        )
        .await;
    let page3: Vec<&str> = a.json()["runners"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(page3, ["r5"]);
    assert_eq!(
        a.header("link").unwrap(),
        format!(
            "<{url}?per_page=2&page=2>; rel=\"prev\", <{url}?per_page=2&page=1>; rel=\"first\""
        )
    );
    let a = c.ok(Method::GET, &list, &base, None).await;
    assert_eq!(a.json()["runners"].as_array().unwrap().len(), 5);
    assert!(a.header("link").is_none(), "one page: no Link");
    let a = c
        .ok(Method::GET, &list, &format!("{base}?name=r3"), None)
        .await;
    assert_eq!(a.json()["total_count"], 1);
    assert_eq!(a.json()["runners"][0]["name"], "r3");
    let a = c
        .ok(Method::GET, &list, &format!("{base}?name=r"), None)
        .await;
    assert_eq!(a.json()["total_count"], 0, "name is an exact filter");

    // GET one: 200, 404.
    let a = c
        .ok(Method::GET, &one, &format!("{base}/{r1_id}"), None)
        .await;
    assert_eq!(a.status, 200);
    assert_eq!(a.json()["id"], r1_id);
    assert_eq!(a.json()["version"], Value::Null);
    let a = c
        .ok(Method::GET, &one, &format!("{base}/999999"), None)
        .await;
    assert_eq!(a.status, 404);

    // A job makes r1 busy: DELETE answers 422.
    let (id, secret) = Checker::runner_credentials(&encoded);
    let job = c.gh.enqueue_job(scope, &["gpu"], "echo hi");
    let acquired = c
        .http
        .post(format!("{}/_runner/{id}/acquire?wait=5", c.gh.url()))
        .header("Authorization", format!("RunnerToken {secret}"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(acquired.status(), 200);
    let got: Value = acquired.json().await.unwrap();
    assert_eq!(got["job_id"], job.id);
    let a = c
        .ok(Method::GET, &one, &format!("{base}/{r1_id}"), None)
        .await;
    assert_eq!(
        (a.json()["busy"].clone(), a.json()["status"].clone()),
        (json!(true), json!("online"))
    );
    assert!(a.json()["version"].is_string());
    let a = c
        .ok(Method::DELETE, &one, &format!("{base}/{r1_id}"), None)
        .await;
    assert_eq!(a.status, 422);
    assert_eq!(
        a.json()["message"],
        "Bad request - Runner \"r1\" is still running a job\""
    );
    let done = c
        .http
        .post(format!("{}/_runner/{id}/complete", c.gh.url()))
        .header("Authorization", format!("RunnerToken {secret}"))
        .json(&json!({"job_id": job.id, "conclusion": "success", "exit_code": 0, "output": "hi\n"}))
        .send()
        .await
        .unwrap();
    assert_eq!(done.status(), 200);
    let a = c
        .ok(Method::DELETE, &one, &format!("{base}/{r1_id}"), None)
        .await;
    assert_eq!(a.status, 404, "the ephemeral runner removed itself");

    // DELETE an idle runner: 204 without a body, then gone.
    let a = c
        .ok(Method::GET, &list, &format!("{base}?name=r2"), None)
        .await;
    let r2 = a.json()["runners"][0]["id"].as_u64().unwrap();
    let a = c
        .ok(Method::DELETE, &one, &format!("{base}/{r2}"), None)
        .await;
    assert_eq!(a.status, 204);
    let a = c.ok(Method::GET, &one, &format!("{base}/{r2}"), None).await;
    assert_eq!(a.status, 404);

    // Registration token.
    let a = c
        .ok(
            Method::POST,
            &Spec::template(kind, REG_TOKEN),
            &format!("{base}/registration-token"),
            None,
        )
        .await;
    assert_eq!(a.status, 201);

    // 401 on every endpoint of the scope.
    for (m, sp, p, b) in [
        (
            Method::POST,
            jit.clone(),
            format!("{base}/generate-jitconfig"),
            Some(jit_body("z", &["x"])),
        ),
        (Method::GET, list.clone(), base.clone(), None),
        (Method::GET, one.clone(), format!("{base}/3"), None),
        (Method::DELETE, one.clone(), format!("{base}/3"), None),
        (
            Method::POST,
            Spec::template(kind, REG_TOKEN),
            format!("{base}/registration-token"),
            None,
        ),
    ] {
        let a = c.call(m, &sp, &p, b.as_deref(), "wrong-token").await;
        assert_eq!(a.status, 401);
        assert_eq!(a.json()["message"], "Bad credentials");
    }
}

async fn other_endpoints(c: &mut Checker) {
    let a = c.ok(Method::GET, RATE, RATE, None).await;
    assert_eq!(a.status, 200);
    let core = &a.json()["resources"]["core"];
    assert_eq!(core["limit"], 5000);
    assert_eq!(a.json()["rate"], *core);
    let a = c.call(Method::GET, RATE, RATE, None, "wrong").await;
    assert_eq!(a.status, 401);
    // The token header may also say `token T`.
    let resp = c
        .http
        .get(format!("{}{RATE}", c.gh.url()))
        .header("Authorization", format!("token {TOKEN}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

async fn faults_and_rate_limit(c: &mut Checker) {
    let jit = Spec::template("repos", JIT);
    let list = Spec::template("repos", LIST);
    let base = "/repos/octo/hello/actions/runners";
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    };

    // 403 primary-limit fault: remaining 0 and a reset 1-2 s ahead.
    c.gh.add_fault(
        fake_github::FaultRule::new(403)
            .method("GET")
            .path_contains("/actions/runners"),
    );
    let before = now();
    let a = c.ok(Method::GET, &list, base, None).await;
    assert_eq!(a.status, 403);
    assert_eq!(a.header("x-ratelimit-remaining"), Some("0"));
    let reset: u64 = a.header("x-ratelimit-reset").unwrap().parse().unwrap();
    assert!(
        (before + 1..=now() + 2).contains(&reset),
        "reset {reset} vs now {before}"
    );
    assert!(a.header("retry-after").is_none());
    let a = c.ok(Method::GET, &list, base, None).await;
    assert_eq!(a.status, 200, "the rule was used up");

    // 429 secondary-limit fault with retry-after, on generate-jitconfig only.
    c.gh.add_fault(
        fake_github::FaultRule::new(429)
            .path_contains("generate-jitconfig")
            .retry_after(1)
            .header("x-extra", "yes"),
    );
    let a = c
        .ok(
            Method::POST,
            &jit,
            &format!("{base}/generate-jitconfig"),
            Some(&jit_body("f1", &["x"])),
        )
        .await;
    assert_eq!(a.status, 429);
    assert_eq!(a.header("retry-after"), Some("1"));
    assert_eq!(a.header("x-extra"), Some("yes"));
    assert_ne!(a.header("x-ratelimit-remaining"), Some("0"));

    // A 5xx outage, twice, then service again.
    c.gh.add_fault(
        fake_github::FaultRule::new(FAULT_5XX)
            .times(2)
            .path_contains("/actions/runners"),
    );
    for _ in 0..2 {
        assert_eq!(c.ok(Method::GET, &list, base, None).await.status, FAULT_5XX);
    }
    assert_eq!(c.ok(Method::GET, &list, base, None).await.status, 200);

    // A slow answer (status 0 only delays).
    c.gh.add_fault(fake_github::FaultRule::delay(300));
    let a = c.ok(Method::GET, &list, base, None).await;
    assert_eq!(a.status, 200);
    assert!(
        a.elapsed >= Duration::from_millis(300),
        "took {:?}",
        a.elapsed
    );

    // Faults do not touch the fake-only paths.
    c.gh.add_fault(fake_github::FaultRule::new(500).times(100));
    let r = c
        .http
        .get(format!("{}/_fake/stats", c.gh.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    c.gh.clear_faults();
    assert!(c.gh.faults().is_empty());

    // The primary budget: set over /_fake, spend it, get 403, /rate_limit still answers.
    let r = c
        .http
        .post(format!("{}/_fake/rate-limit", c.gh.url()))
        .json(&json!({"remaining": 1, "reset_in_secs": 60}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let a = c.ok(Method::GET, &list, base, None).await;
    assert_eq!(a.status, 200);
    assert_eq!(a.header("x-ratelimit-remaining"), Some("0"));
    let a = c.ok(Method::GET, &list, base, None).await;
    assert_eq!(a.status, 403);
    assert_eq!(a.header("x-ratelimit-remaining"), Some("0"));
    let reset: u64 = a.header("x-ratelimit-reset").unwrap().parse().unwrap();
    assert!(reset >= now() + 58, "reset {reset}");
    let a = c.ok(Method::GET, RATE, RATE, None).await;
    assert_eq!(a.status, 200);
    assert_eq!(a.json()["resources"]["core"]["remaining"], 0);
    c.gh.set_rate_limit(5000, 3600);
    assert_eq!(c.ok(Method::GET, &list, base, None).await.status, 200);

    // Every API request was counted, by route.
    let stats = c.gh.stats();
    assert_eq!(
        stats.api_calls,
        c.api_requests + 1,
        "+1: the `token T` call"
    );
    assert!(stats.by_route["POST generate-jitconfig"] >= 20, "{stats:?}");
    assert!(stats.by_route["GET rate_limit"] >= 3, "{stats:?}");
}

/// The validation is strict enough to notice drift: answers with a required field removed, a
/// wrong type, or a null where the spec does not allow one are rejected; nullable fields
/// accept null.
#[tokio::test]
async fn validator_rejects_drift() {
    let c = Checker::new().await;
    let spec = &c.spec;
    let jit = Spec::template("repos", JIT);
    let schema = spec.body_schema(&jit, "POST", 201).unwrap().unwrap();

    let (runner, encoded) =
        c.gh.with_state(|st| {
            let req = fake_github::state::validate_jit_request(&json!({
                "name": "d", "runner_group_id": 1, "labels": ["x"]
            }))
            .unwrap();
            st.create_runner("repos/o/r", &req)
        })
        .unwrap();
    let good = json!({"runner": runner.api_json(), "encoded_jit_config": encoded});
    validate(&schema, &good).expect("the fake's own answer is valid");

    let mut drifted = Vec::new();
    let mut v = good.clone();
    v["runner"].as_object_mut().unwrap().remove("os");
    drifted.push(("runner.os removed", v));
    let mut v = good.clone();
    v.as_object_mut().unwrap().remove("encoded_jit_config");
    drifted.push(("encoded_jit_config removed", v));
    let mut v = good.clone();
    v["runner"]["id"] = json!("1");
    drifted.push(("id as string", v));
    let mut v = good.clone();
    v["runner"]["labels"][0]["type"] = json!("builtin");
    drifted.push(("label type outside the enum", v));
    let mut v = good.clone();
    v["runner"]["name"] = Value::Null;
    drifted.push(("name null", v));
    for (what, body) in drifted {
        assert!(
            validate(&schema, &body).is_err(),
            "drift not caught: {what}"
        );
    }
    let mut v = good.clone();
    v["runner"]["version"] = Value::Null;
    validate(&schema, &v).expect("version is nullable");

    // Error shapes: validation-error-simple needs documentation_url.
    let s422 = spec.body_schema(&jit, "POST", 422).unwrap().unwrap();
    validate(
        &s422,
        &json!({"message": "m", "documentation_url": "d", "errors": ["e"]}),
    )
    .unwrap();
    assert!(validate(&s422, &json!({"message": "m"})).is_err());
    assert!(validate(
        &s422,
        &json!({"message": "m", "documentation_url": "d", "errors": [{}]})
    )
    .is_err());

    // Registration token: `expires_at` must be a date-time.
    let tok = spec
        .body_schema(&Spec::template("orgs", REG_TOKEN), "POST", 201)
        .unwrap()
        .unwrap();
    assert!(validate(&tok, &json!({"token": "t", "expires_at": "tomorrow"})).is_err());

    // Undeclared statuses are told apart.
    assert_eq!(
        spec.body_schema(&Spec::template("repos", ONE), "DELETE", 400),
        None
    );
    assert_eq!(
        spec.declared_statuses(&jit, "POST"),
        BTreeSet::from([201, 404, 409, 422])
    );
    c.gh.shutdown().await;
}

#[test]
fn nullable_conversion() {
    let mut m = json!({"type": "string", "enum": ["a"]})
        .as_object()
        .unwrap()
        .clone();
    make_nullable(&mut m);
    assert_eq!(
        Value::Object(m),
        json!({"type": ["string", "null"], "enum": ["a", null]})
    );
    let mut m = json!({"allOf": [{"type": "integer"}]})
        .as_object()
        .unwrap()
        .clone();
    make_nullable(&mut m);
    assert_eq!(
        Value::Object(m),
        json!({"anyOf": [{"allOf": [{"type": "integer"}]}, {"type": "null"}]})
    );
}

const RUNS: &str = "/repos/{owner}/{repo}/actions/runs";
const RUN_JOBS: &str = "/repos/{owner}/{repo}/actions/runs/{run_id}/jobs";

/// Queued workflow runs and their jobs (docs/test-bench.md, "Workflow runs"): the
/// `workflow-run` and `job` schemas, an `ETag` on every answer, and 304 without a body and
/// without a rate-limit cost when `If-None-Match` names the current one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_runs_and_jobs_conform_and_answer_304() {
    let mut c = Checker::new().await;
    let queued =
        c.gh.enqueue_job("repos/octo/hello", &["self-hosted", "gpu"], "true");
    c.gh.enqueue_job("repos/octo/other", &["self-hosted"], "true");
    let a = c
        .ok(
            Method::GET,
            RUNS,
            "/repos/octo/hello/actions/runs?status=queued&per_page=100",
            None,
        )
        .await;
    assert_eq!(a.status, 200);
    assert_eq!(a.json()["total_count"], 1);
    assert_eq!(a.json()["workflow_runs"][0]["id"], queued.id);
    assert_eq!(a.json()["workflow_runs"][0]["status"], "queued");
    let tag = a.header("etag").expect("an ETag").to_string();
    let path = format!("/repos/octo/hello/actions/runs/{}/jobs", queued.id);
    let j = c.ok(Method::GET, RUN_JOBS, &path, None).await;
    assert_eq!(j.json()["jobs"][0]["labels"], json!(["self-hosted", "gpu"]));
    assert_eq!(j.json()["jobs"][0]["status"], "queued");
    assert_eq!(j.json()["jobs"][0]["runner_name"], Value::Null);
    let a = c
        .ok(
            Method::GET,
            RUN_JOBS,
            "/repos/octo/hello/actions/runs/999/jobs",
            None,
        )
        .await;
    assert_eq!(a.status, 404);

    // Unchanged: 304, no body, no cost.
    let before = c.gh.rate_limit().remaining;
    let resp = c
        .http
        .get(format!(
            "{}/repos/octo/hello/actions/runs?status=queued&per_page=100",
            c.gh.url()
        ))
        .header("Authorization", format!("Bearer {TOKEN}"))
        .header("If-None-Match", &tag)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 304);
    assert_eq!(resp.headers()["etag"].to_str().unwrap(), tag);
    assert!(resp.bytes().await.unwrap().is_empty());
    assert_eq!(c.gh.rate_limit().remaining, before, "a 304 costs nothing");
    // Changed: the job was taken. A new body and a new tag.
    c.gh.with_state(|st| {
        st.jobs.get_mut(&queued.id).unwrap().status = fake_github::JobStatus::InProgress
    });
    let a = c
        .ok(
            Method::GET,
            RUNS,
            "/repos/octo/hello/actions/runs?status=queued&per_page=100",
            None,
        )
        .await;
    assert_eq!(a.json()["total_count"], 0);
    assert_ne!(a.header("etag").unwrap(), tag);
    let a = c
        .ok(Method::GET, RUNS, "/repos/octo/hello/actions/runs", None)
        .await;
    assert_eq!(a.json()["workflow_runs"][0]["status"], "in_progress");
    c.assert_statuses_declared();
    c.gh.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// Credentials (issue 14): runner groups, GitHub App JWTs and installation tokens, permissions,
// per-credential rate limits
// ---------------------------------------------------------------------------------------------

const GROUPS_ORG: &str = "/orgs/{org}/actions/runner-groups";
const GROUPS_ENT: &str = "/enterprises/{enterprise}/actions/runner-groups";
const INSTALLATION: &str = "/orgs/{org}/installation";
const ACCESS_TOKENS: &str = "/app/installations/{installation_id}/access_tokens";

fn jwt(private_pem: &str, iss: &str, iat_offset: i64, lifetime: u64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let iat = (now + iat_offset) as u64;
    let claims = json!({"iat": iat, "exp": iat + lifetime, "iss": iss});
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_rsa_pem(private_pem.as_bytes()).unwrap(),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_and_runner_groups_conform() {
    let mut c = Checker::new().await;
    // Runner groups by name, organization and enterprise.
    let gid = c.gh.add_runner_group("orgs/octo", "Linux builders");
    let a = c
        .ok(
            Method::GET,
            GROUPS_ORG,
            "/orgs/octo/actions/runner-groups",
            None,
        )
        .await;
    assert_eq!(a.status, 200);
    let names: Vec<&str> = a.json()["runner_groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Default", "Linux builders"]);
    assert_eq!(a.json()["runner_groups"][1]["id"], gid);
    let a = c
        .ok(
            Method::GET,
            GROUPS_ENT,
            "/enterprises/big/actions/runner-groups",
            None,
        )
        .await;
    assert_eq!(a.json()["total_count"], 1);
    assert_eq!(
        c.call(
            Method::GET,
            GROUPS_ORG,
            "/orgs/octo/actions/runner-groups",
            None,
            "nope"
        )
        .await
        .status,
        401
    );
    // A JIT runner lands in the named group; an unknown group id is 404.
    let jit = Spec::template("orgs", JIT);
    let body = json!({"name": "g1", "runner_group_id": gid, "labels": ["x"]}).to_string();
    let a = c
        .ok(
            Method::POST,
            &jit,
            "/orgs/octo/actions/runners/generate-jitconfig",
            Some(&body),
        )
        .await;
    assert_eq!(a.status, 201);
    assert_eq!(a.json()["runner"]["runner_group_id"], gid);
    let body = json!({"name": "g2", "runner_group_id": 999, "labels": ["x"]}).to_string();
    let a = c
        .ok(
            Method::POST,
            &jit,
            "/orgs/octo/actions/runners/generate-jitconfig",
            Some(&body),
        )
        .await;
    assert_eq!(a.status, 404);

    // A GitHub App: JWTs verified against its public key.
    let (private, public) = fake_github::auth::rsa_key_pair();
    let (other_private, _) = fake_github::auth::rsa_key_pair();
    c.gh.add_app(77, "Iv23liFAKE", &public);
    let inst = c.gh.install_app(
        77,
        "octo",
        &[
            ("organization_self_hosted_runners", "write"),
            ("administration", "write"),
        ],
    );
    let good = jwt(&private, "77", -60, 600);
    let a = c
        .call(
            Method::GET,
            INSTALLATION,
            "/orgs/octo/installation",
            None,
            &good,
        )
        .await;
    assert_eq!(a.status, 200);
    assert_eq!(a.json()["id"], inst);
    // The client id works as issuer too.
    let by_client = jwt(&private, "Iv23liFAKE", -60, 600);
    assert_eq!(
        c.call(
            Method::GET,
            INSTALLATION,
            "/orgs/octo/installation",
            None,
            &by_client
        )
        .await
        .status,
        200
    );
    assert_eq!(
        c.call(
            Method::GET,
            INSTALLATION,
            "/orgs/elsewhere/installation",
            None,
            &good
        )
        .await
        .status,
        404
    );
    for (bad, why) in [
        (jwt(&other_private, "77", -60, 600), "signed by another key"),
        (jwt(&private, "78", -60, 600), "unknown issuer"),
        (jwt(&private, "77", -60, 3600), "valid for an hour"),
        (jwt(&private, "77", -1200, 600), "expired"),
        (jwt(&private, "77", 600, 60), "issued in the future"),
    ] {
        let a = c
            .call(
                Method::GET,
                INSTALLATION,
                "/orgs/octo/installation",
                None,
                &bad,
            )
            .await;
        assert_eq!(a.status, 401, "{why}");
    }
    // A token is no JWT.
    let url = format!("/app/installations/{inst}/access_tokens");
    assert_eq!(
        c.call(Method::POST, ACCESS_TOKENS, &url, None, TOKEN)
            .await
            .status,
        401
    );
    let a = c.call(Method::POST, ACCESS_TOKENS, &url, None, &good).await;
    assert_eq!(a.status, 201);
    let ghs = a.json()["token"].as_str().unwrap().to_string();
    assert!(ghs.starts_with("ghs_"));
    assert_eq!(
        c.call(
            Method::POST,
            ACCESS_TOKENS,
            "/app/installations/999/access_tokens",
            None,
            &good
        )
        .await
        .status,
        404
    );
    // A JWT alone may not manage runners.
    let list = Spec::template("orgs", LIST);
    assert_eq!(
        c.call(
            Method::GET,
            &list,
            "/orgs/octo/actions/runners",
            None,
            &good
        )
        .await
        .status,
        403
    );
    // The installation token manages its organization's runners, not another's, and no
    // enterprise's.
    assert_eq!(
        c.call(Method::GET, &list, "/orgs/octo/actions/runners", None, &ghs)
            .await
            .status,
        200
    );
    let a = c
        .call(
            Method::GET,
            &list,
            "/orgs/other/actions/runners",
            None,
            &ghs,
        )
        .await;
    assert_eq!(
        (a.status.as_u16(), a.json()["message"].as_str()),
        (403, Some("Resource not accessible by integration"))
    );
    let ent_list = Spec::template("enterprises", LIST);
    assert_eq!(
        c.call(
            Method::GET,
            &ent_list,
            "/enterprises/octo/actions/runners",
            None,
            &ghs
        )
        .await
        .status,
        403
    );
    // Per-credential rate limit: the installation's budget runs out, the server token's not.
    c.gh.with_state(|st| {
        let now = st.clock.now_secs();
        let r = st.auth.installations.get_mut(&inst).unwrap();
        r.rate.remaining = 0;
        r.rate.reset = now + 600;
    });
    let a = c
        .call(Method::GET, &list, "/orgs/octo/actions/runners", None, &ghs)
        .await;
    assert_eq!(
        (a.status.as_u16(), a.header("x-ratelimit-remaining")),
        (403, Some("0"))
    );
    let a = c
        .ok(Method::GET, &list, "/orgs/octo/actions/runners", None)
        .await;
    assert_eq!(a.status, 200);
    assert_ne!(a.header("x-ratelimit-remaining"), Some("0"));
    // It expires by the fake's clock.
    c.gh.advance_clock(Duration::from_secs(3600));
    assert_eq!(
        c.call(Method::GET, &list, "/orgs/octo/actions/runners", None, &ghs)
            .await
            .status,
        401
    );

    // Classic and fine-grained tokens: scopes, permissions, SSO.
    let mut classic = fake_github::auth::Registry::classic(&["repo"]);
    c.gh.add_token("ghp_repoonly", classic.clone());
    let a = c
        .call(
            Method::GET,
            &list,
            "/orgs/octo/actions/runners",
            None,
            "ghp_repoonly",
        )
        .await;
    assert_eq!(a.status, 403);
    assert_eq!(a.header("x-oauth-scopes"), Some("repo"));
    assert_eq!(a.header("x-accepted-oauth-scopes"), Some("admin:org"));
    classic.sso_blocked_org = Some("octo".into());
    classic.grant.organization = fake_github::auth::Access::Write;
    c.gh.add_token("ghp_nosso", classic);
    let a = c
        .call(
            Method::GET,
            &list,
            "/orgs/octo/actions/runners",
            None,
            "ghp_nosso",
        )
        .await;
    assert_eq!(a.status, 403);
    assert!(a
        .header("x-github-sso")
        .unwrap()
        .starts_with("required; url=https://github.com/orgs/octo/sso"));
    c.gh.add_token(
        "ghp_ent",
        fake_github::auth::Registry::classic(&["manage_runners:enterprise"]),
    );
    assert_eq!(
        c.call(
            Method::GET,
            &ent_list,
            "/enterprises/octo/actions/runners",
            None,
            "ghp_ent"
        )
        .await
        .status,
        200
    );
    c.gh.add_token(
        "github_pat_x",
        fake_github::auth::Registry::fine_grained(
            "octo",
            &[("organization_self_hosted_runners", "read")],
        ),
    );
    assert_eq!(
        c.call(
            Method::GET,
            &list,
            "/orgs/octo/actions/runners",
            None,
            "github_pat_x"
        )
        .await
        .status,
        200
    );
    let a = c
        .call(
            Method::POST,
            &jit,
            "/orgs/octo/actions/runners/generate-jitconfig",
            Some(&jit_body("fg", &["x"])),
            "github_pat_x",
        )
        .await;
    assert_eq!(
        (a.status.as_u16(), a.json()["message"].as_str()),
        (
            403,
            Some("Resource not accessible by personal access token")
        )
    );
    c.assert_statuses_declared();
    c.gh.shutdown().await;
}
