//! The fake's state and its decision logic, free of I/O.
//!
//! Owns: runner registrations, the job queue, fault rules, the rate-limit budget and the
//! counters. Everything here is plain data plus pure functions (pagination and `Link` math,
//! label and scope matching, job dispatch, request validation, the JIT config encoding), so it
//! is tested with plain values. The HTTP layer (`http.rs`) locks [`State`] briefly, calls into
//! it and never holds the lock across an `.await`.

use std::collections::BTreeMap;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use rand::distributions::Alphanumeric;
use rand::Rng as _;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// Labels every self-hosted Linux x64 runner gets from GitHub, type `read-only`.
pub const READ_ONLY_LABELS: [&str; 3] = ["self-hosted", "linux", "x64"];
/// GitHub's default page size for list endpoints.
pub const DEFAULT_PER_PAGE: u64 = 30;
/// GitHub's largest accepted `per_page` (docs/github-runner.md: "per_page (max 100)").
pub const MAX_PER_PAGE: u64 = 100;
/// Primary rate limit of a PAT: 5,000 requests per hour (docs/github-runner.md).
pub const RATE_LIMIT: u64 = 5000;
/// Length of the primary rate-limit window, in seconds (one hour).
pub const RATE_WINDOW_SECS: u64 = 3600;
/// How far ahead a 403/429 fault without `retry_after` puts `x-ratelimit-reset`: short, so a
/// client's "wait until reset" path is tested without slowing the suite down.
pub const FAULT_RESET_IN_SECS: u64 = 2;
/// Registration tokens are valid one hour (docs/github-runner.md).
pub const REGISTRATION_TOKEN_TTL_SECS: u64 = 3600;
/// Job timeout handed to the fake runner when the test does not set one.
pub const DEFAULT_JOB_TIMEOUT_SECS: u64 = 600;
/// Most custom labels a JIT request may carry (GitHub's `maxItems`).
pub const MAX_JIT_LABELS: usize = 100;
/// The `version` a registration reports once its runner has connected (null before).
pub const FAKE_RUNNER_VERSION: &str = "2.330.0";
/// Runner group every registration lands in unless the request names another id.
pub const DEFAULT_RUNNER_GROUP_ID: i64 = 1;
/// `documentation_url` of runner-endpoint errors, as GitHub sends it.
pub const DOCS_RUNNERS: &str = "https://docs.github.com/rest/actions/self-hosted-runners";
/// `documentation_url` of authentication errors.
pub const DOCS_AUTH: &str = "https://docs.github.com/rest";
/// `documentation_url` of rate-limit errors.
pub const DOCS_RATE_LIMIT: &str =
    "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api";

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Seconds since the Unix epoch.
pub fn now_secs() -> u64 {
    now_ms() / 1000
}

/// A random alphanumeric string (runner secrets, registration tokens).
pub fn random_token(len: usize) -> String {
    rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(len)
        .map(char::from)
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Records
// ---------------------------------------------------------------------------------------------

/// `read-only` (added by GitHub) or `custom` (from the JIT request).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LabelKind {
    ReadOnly,
    Custom,
}

/// One runner label, GitHub's `runner-label` schema.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Label {
    pub id: u64,
    pub name: String,
    #[serde(rename = "type")]
    pub kind: LabelKind,
}

/// `online` after the runner's first acquire, `offline` before.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunnerStatus {
    Online,
    Offline,
}

/// A runner registration: GitHub's `runner` fields plus the fake's bookkeeping.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RunnerRecord {
    pub id: u64,
    pub name: String,
    pub os: String,
    pub status: RunnerStatus,
    pub busy: bool,
    pub ephemeral: bool,
    pub runner_group_id: i64,
    pub labels: Vec<Label>,
    pub version: Option<String>,
    /// `repos/{owner}/{repo}` or `orgs/{org}`, as given in the creating request's path.
    pub scope: String,
    pub work_folder: String,
    /// The job assigned to this runner, if any.
    pub job_id: Option<u64>,
    /// Unix ms of the generate-jitconfig call.
    pub created_at: u64,
    /// Unix ms of the runner's first acquire (it is registered and waiting for a job).
    pub online_at: Option<u64>,
    /// Unix ms of its removal (only set in `State::history`).
    pub deleted_at: Option<u64>,
    /// The runner's secret (`Authorization: RunnerToken <secret>`); never serialized.
    #[serde(skip)]
    pub secret: String,
}

impl RunnerRecord {
    /// The registration as the GitHub API shows it (the `runner` schema).
    pub fn api_json(&self) -> Value {
        json!({
            "id": self.id,
            "name": self.name,
            "os": self.os,
            "status": self.status,
            "busy": self.busy,
            "ephemeral": self.ephemeral,
            "runner_group_id": self.runner_group_id,
            "labels": self.labels,
            "version": self.version,
        })
    }

    /// Label names, for matching.
    pub fn label_names(&self) -> Vec<&str> {
        self.labels.iter().map(|l| l.name.as_str()).collect()
    }
}

/// Lifecycle of a job in the fake's queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    Queued,
    InProgress,
    Completed,
}

/// How a job ended, as reported by the runner.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Conclusion {
    Success,
    Failure,
    Cancelled,
}

/// A job in the fake's queue (`/_fake/jobs`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobRecord {
    pub id: u64,
    pub scope: String,
    pub labels: Vec<String>,
    pub script: String,
    pub timeout_secs: u64,
    pub status: JobStatus,
    pub conclusion: Option<Conclusion>,
    pub runner_id: Option<u64>,
    pub runner_name: Option<String>,
    pub exit_code: Option<i64>,
    pub output: Option<String>,
    pub queued_at: u64,
    pub started_at: Option<u64>,
    pub completed_at: Option<u64>,
}

/// A fault-injection rule (`POST /_fake/faults`). Applies to GitHub API paths only.
///
/// `status: 0` only delays the request by `delay_ms`; any other status answers with that
/// status (after `delay_ms`) instead of the real handler. A rule matches a request when
/// `method` (case-insensitive, if set) and `path_contains` (substring of the path, if set)
/// match, and is used up after `times` matching requests.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultRule {
    #[serde(default)]
    pub method: Option<String>,
    #[serde(default)]
    pub path_contains: Option<String>,
    pub status: u16,
    #[serde(default = "one")]
    pub times: u32,
    #[serde(default)]
    pub retry_after: Option<u64>,
    #[serde(default)]
    pub delay_ms: u64,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Overrides the error body's `message`.
    #[serde(default)]
    pub message: Option<String>,
}

fn one() -> u32 {
    1
}

impl FaultRule {
    /// A rule answering `status` once, for any API request.
    pub fn new(status: u16) -> Self {
        FaultRule {
            method: None,
            path_contains: None,
            status,
            times: 1,
            retry_after: None,
            delay_ms: 0,
            headers: BTreeMap::new(),
            message: None,
        }
    }
    /// A rule that only delays matching requests by `delay_ms` (a slow answer).
    pub fn delay(delay_ms: u64) -> Self {
        FaultRule {
            delay_ms,
            ..FaultRule::new(0)
        }
    }
    pub fn method(mut self, method: &str) -> Self {
        self.method = Some(method.to_string());
        self
    }
    pub fn path_contains(mut self, needle: &str) -> Self {
        self.path_contains = Some(needle.to_string());
        self
    }
    pub fn times(mut self, times: u32) -> Self {
        self.times = times;
        self
    }
    pub fn retry_after(mut self, secs: u64) -> Self {
        self.retry_after = Some(secs);
        self
    }
    pub fn delay_ms(mut self, ms: u64) -> Self {
        self.delay_ms = ms;
        self
    }
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.insert(name.to_string(), value.to_string());
        self
    }

    /// Whether this rule (still) applies to a request.
    pub fn matches(&self, method: &str, path: &str) -> bool {
        self.times > 0
            && self
                .method
                .as_deref()
                .map(|m| m.eq_ignore_ascii_case(method))
                .unwrap_or(true)
            && self
                .path_contains
                .as_deref()
                .map(|p| path.contains(p))
                .unwrap_or(true)
    }
}

/// What the fault rules decided for one request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FaultDecision {
    /// Sum of the `delay_ms` of every rule used.
    pub delay_ms: u64,
    /// The first used rule with a non-zero status: answer with it.
    pub answer: Option<FaultRule>,
}

/// The primary rate-limit budget.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct RateLimit {
    pub limit: u64,
    pub remaining: u64,
    /// Epoch seconds when the budget refills.
    pub reset: u64,
}

impl RateLimit {
    pub fn new(now_secs: u64) -> Self {
        RateLimit {
            limit: RATE_LIMIT,
            remaining: RATE_LIMIT,
            reset: now_secs + RATE_WINDOW_SECS,
        }
    }
    pub fn used(&self) -> u64 {
        self.limit.saturating_sub(self.remaining)
    }
    /// Refills the budget once the reset time has passed.
    pub fn refresh(&mut self, now_secs: u64) {
        if now_secs >= self.reset {
            self.remaining = self.limit;
            self.reset = now_secs + RATE_WINDOW_SECS;
        }
    }
    /// The `rate-limit` schema object.
    pub fn json(&self) -> Value {
        json!({"limit": self.limit, "remaining": self.remaining, "reset": self.reset,
               "used": self.used(), "resource": "core"})
    }
}

// ---------------------------------------------------------------------------------------------
// Pure helpers
// ---------------------------------------------------------------------------------------------

/// `per_page` as GitHub reads it: missing, unparsable or 0 → 30; above 100 → 100.
pub fn effective_per_page(raw: Option<&str>) -> u64 {
    match raw.and_then(|s| s.trim().parse::<u64>().ok()) {
        None | Some(0) => DEFAULT_PER_PAGE,
        Some(n) => n.min(MAX_PER_PAGE),
    }
}

/// `page` as GitHub reads it: 1-based; missing, unparsable or 0 → 1.
pub fn effective_page(raw: Option<&str>) -> u64 {
    match raw.and_then(|s| s.trim().parse::<u64>().ok()) {
        None | Some(0) => 1,
        Some(n) => n,
    }
}

/// One page of a list: the index range of its items and the number of the last page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageWindow {
    pub start: usize,
    pub end: usize,
    /// At least 1, also for an empty list.
    pub last_page: u64,
}

/// The slice of `total` items that page `page` (1-based) of size `per_page` shows.
pub fn page_window(total: usize, per_page: u64, page: u64) -> PageWindow {
    let per_page = per_page.max(1);
    let last_page = (total as u64).div_ceil(per_page).max(1);
    let start = ((page.max(1) - 1).saturating_mul(per_page)).min(total as u64) as usize;
    let end = (start as u64 + per_page).min(total as u64) as usize;
    PageWindow {
        start,
        end,
        last_page,
    }
}

/// GitHub's `Link` header for page `page` of `last_page`, or `None` when there is one page
/// and it is the one asked for. `url` is the absolute URL without query; `query` are the
/// request's query pairs (their order is kept, `page` is dropped and appended anew).
/// Relations come in GitHub's order: `prev`, `next`, `last`, `first`.
pub fn link_header(
    url: &str,
    query: &[(String, String)],
    page: u64,
    last_page: u64,
) -> Option<String> {
    if page <= 1 && last_page <= 1 {
        return None;
    }
    let base: Vec<String> = query
        .iter()
        .filter(|(k, _)| k != "page")
        .map(|(k, v)| format!("{}={}", encode_query(k), encode_query(v)))
        .collect();
    let link = |p: u64, rel: &str| {
        let mut parts = base.clone();
        parts.push(format!("page={p}"));
        format!("<{url}?{}>; rel=\"{rel}\"", parts.join("&"))
    };
    let mut rels = Vec::new();
    if page > 1 {
        rels.push(link(page - 1, "prev"));
    }
    if page < last_page {
        rels.push(link(page + 1, "next"));
        rels.push(link(last_page, "last"));
    }
    if page > 1 {
        rels.push(link(1, "first"));
    }
    Some(rels.join(", "))
}

/// Percent-encodes a query key or value (RFC 3986 unreserved characters stay).
pub fn encode_query(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `3.14.2` → `(3, 14)`: a GitHub Enterprise Server version's feature release.
pub fn ghes_minor(v: &str) -> Option<(u32, u32)> {
    let mut it = v.trim().split('.');
    let major = it.next()?.parse().ok()?;
    let minor = it.next()?.parse().ok()?;
    Some((major, minor))
}

/// Decodes `application/x-www-form-urlencoded` query text into ordered pairs.
pub fn parse_query(raw: Option<&str>) -> Vec<(String, String)> {
    let Some(raw) = raw else { return Vec::new() };
    raw.split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (decode_query(k), decode_query(v))
        })
        .collect()
}

fn decode_query(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len()
                && bytes[i + 1].is_ascii_hexdigit()
                && bytes[i + 2].is_ascii_hexdigit() =>
            {
                let hex = |c: u8| (c as char).to_digit(16).unwrap_or(0) as u8;
                out.push(hex(bytes[i + 1]) * 16 + hex(bytes[i + 2]));
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Whether a runner with `runner_labels` may take a job asking for `job_labels`: every job
/// label must be among the runner's label names, compared case-insensitively.
pub fn labels_match(runner_labels: &[&str], job_labels: &[String]) -> bool {
    job_labels.iter().all(|want| {
        runner_labels
            .iter()
            .any(|have| have.eq_ignore_ascii_case(want))
    })
}

/// Whether a runner registered at `runner_scope` serves a job of `job_scope`: the same scope,
/// or the org that owns the job's repository.
pub fn scope_matches(runner_scope: &str, job_scope: &str) -> bool {
    if runner_scope.eq_ignore_ascii_case(job_scope) {
        return true;
    }
    match (
        runner_scope.strip_prefix("orgs/"),
        job_scope.strip_prefix("repos/"),
    ) {
        (Some(org), Some(repo)) => repo
            .split_once('/')
            .is_some_and(|(owner, _)| owner.eq_ignore_ascii_case(org)),
        _ => false,
    }
}

/// Checks a scope string: `repos/{owner}/{repo}`, `orgs/{org}` or `enterprises/{e}`,
/// segments non-empty.
pub fn normalize_scope(scope: &str) -> Option<String> {
    let s = scope.trim().trim_matches('/');
    let parts: Vec<&str> = s.split('/').collect();
    let ok = match parts.as_slice() {
        ["repos", o, r] => !o.is_empty() && !r.is_empty(),
        ["orgs", o] | ["enterprises", o] => !o.is_empty(),
        _ => false,
    };
    ok.then(|| s.to_string())
}

/// A validated generate-jitconfig request body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JitRequest {
    pub name: String,
    pub runner_group_id: i64,
    pub labels: Vec<String>,
    pub work_folder: String,
}

/// Validates a generate-jitconfig body like GitHub's schema (`name`, `runner_group_id`,
/// `labels` 1..=100 strings required; `work_folder` optional, default `_work`). The error
/// list holds one human-readable message per problem.
pub fn validate_jit_request(body: &Value) -> Result<JitRequest, Vec<String>> {
    let Some(obj) = body.as_object() else {
        return Err(vec![format!(
            "For 'links/0/schema', {body} is not an object."
        )]);
    };
    let mut errors = Vec::new();
    let name = match obj.get("name") {
        None => {
            errors.push("\"name\" wasn't supplied.".to_string());
            None
        }
        Some(Value::String(s)) if !s.trim().is_empty() => Some(s.clone()),
        Some(Value::String(_)) => {
            errors.push("\"name\" can't be blank.".to_string());
            None
        }
        Some(v) => {
            errors.push(format!("For 'properties/name', {v} is not a string."));
            None
        }
    };
    let group = match obj.get("runner_group_id") {
        None => {
            errors.push("\"runner_group_id\" wasn't supplied.".to_string());
            None
        }
        Some(v) => match v.as_i64() {
            Some(n) => Some(n),
            None => {
                errors.push(format!(
                    "For 'properties/runner_group_id', {v} is not an integer."
                ));
                None
            }
        },
    };
    let labels = match obj.get("labels") {
        None => {
            errors.push("\"labels\" wasn't supplied.".to_string());
            None
        }
        Some(Value::Array(items)) => {
            if items.is_empty() {
                errors.push("For 'properties/labels', [] has fewer items than 1.".to_string());
                None
            } else if items.len() > MAX_JIT_LABELS {
                errors.push(format!(
                    "For 'properties/labels', {} items is more than {MAX_JIT_LABELS}.",
                    items.len()
                ));
                None
            } else {
                let mut out = Vec::new();
                for item in items {
                    match item {
                        Value::String(s) if !s.trim().is_empty() => out.push(s.clone()),
                        other => {
                            errors.push(format!("For 'items', {other} is not a non-empty string."))
                        }
                    }
                }
                Some(out)
            }
        }
        Some(v) => {
            errors.push(format!("For 'properties/labels', {v} is not an array."));
            None
        }
    };
    let work_folder = match obj.get("work_folder") {
        None | Some(Value::Null) => "_work".to_string(),
        Some(Value::String(s)) => s.clone(),
        Some(v) => {
            errors.push(format!(
                "For 'properties/work_folder', {v} is not a string."
            ));
            String::new()
        }
    };
    match (name, group, labels) {
        (Some(name), Some(runner_group_id), Some(labels)) if errors.is_empty() => Ok(JitRequest {
            name,
            runner_group_id,
            labels,
            work_folder,
        }),
        _ => Err(errors),
    }
}

/// The `encoded_jit_config` for a registration (format: docs/test-bench.md, "The JIT config").
pub fn encode_jit_config(runner: &RunnerRecord, server_url: &str) -> String {
    let dot_runner = json!({
        "agentId": runner.id,
        "agentName": runner.name,
        "poolId": 1,
        "poolName": "Default",
        "serverUrl": server_url,
        "gitHubUrl": server_url,
        "workFolder": runner.work_folder,
        "ephemeral": true,
        "disableUpdate": true,
    });
    let credentials = json!({"scheme": "OAuthAccessToken", "data": {"token": runner.secret}});
    let files = json!({
        ".runner": B64.encode(dot_runner.to_string()),
        ".credentials": B64.encode(credentials.to_string()),
        ".credentials_rsaparams": B64.encode("{}"),
    });
    B64.encode(files.to_string())
}

/// Formats epoch seconds as RFC 3339 UTC (`2024-01-02T03:04:05Z`).
pub fn rfc3339(epoch_secs: u64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(epoch_secs);
    humantime::format_rfc3339_seconds(t).to_string()
}

// ---------------------------------------------------------------------------------------------
// The state
// ---------------------------------------------------------------------------------------------

/// Why a runner registration could not be created.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CreateError {
    /// A live registration with that name exists in the scope (409).
    NameExists(String),
    /// The organization or enterprise has no runner group with this id (404).
    NoSuchGroup(i64),
}

/// Why a runner registration could not be deleted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeleteError {
    NotFound,
    /// The runner runs a job (422); carries its name.
    Busy(String),
}

/// Everything the fake knows. Lives behind `Arc<Mutex<State>>`; lock briefly, never across
/// an `.await`.
#[derive(Debug)]
pub struct State {
    /// The API token requests must carry.
    pub token: String,
    /// Base URL written into JIT configs (`serverUrl`, `gitHubUrl`), no trailing slash.
    pub server_url: String,
    /// Live registrations by id; ids grow, so iteration order is age order.
    pub runners: BTreeMap<u64, RunnerRecord>,
    pub next_runner_id: u64,
    custom_label_ids: BTreeMap<String, u64>,
    next_label_id: u64,
    pub jobs: BTreeMap<u64, JobRecord>,
    pub next_job_id: u64,
    pub faults: Vec<FaultRule>,
    pub created_total: u64,
    pub deleted_total: u64,
    pub jit_configs: Vec<String>,
    /// Every removed registration, with `deleted_at` set (benchmarks read timings from it).
    pub history: Vec<RunnerRecord>,
    pub api_calls: u64,
    pub by_route: BTreeMap<String, u64>,
    pub rate: RateLimit,
    /// The runner scale set service (scaleset.rs).
    pub scalesets: crate::scaleset::Service,
    /// `workflow_job` webhooks (webhooks.rs).
    pub webhooks: crate::webhooks::Webhooks,
    /// Tokens, Apps and installations besides `token` (auth.rs).
    pub auth: crate::auth::Registry,
    /// Runner groups added per organization or enterprise scope, besides "Default" (id 1).
    pub runner_groups: BTreeMap<String, Vec<(i64, String)>>,
    next_group_id: i64,
    /// `Some`: behave as a GitHub Enterprise Server of this version (API under `/api/v3`,
    /// `X-GitHub-Enterprise-Version` on every answer).
    pub ghes_version: Option<String>,
}

impl State {
    pub fn new(token: &str, server_url: &str) -> Self {
        State {
            token: token.to_string(),
            server_url: server_url.trim_end_matches('/').to_string(),
            runners: BTreeMap::new(),
            next_runner_id: 1,
            custom_label_ids: BTreeMap::new(),
            next_label_id: READ_ONLY_LABELS.len() as u64 + 1,
            jobs: BTreeMap::new(),
            next_job_id: 1,
            faults: Vec::new(),
            created_total: 0,
            deleted_total: 0,
            jit_configs: Vec::new(),
            history: Vec::new(),
            api_calls: 0,
            by_route: BTreeMap::new(),
            rate: RateLimit::new(now_secs()),
            scalesets: Default::default(),
            webhooks: Default::default(),
            auth: crate::auth::Registry::default(),
            runner_groups: BTreeMap::new(),
            next_group_id: DEFAULT_RUNNER_GROUP_ID + 1,
            ghes_version: None,
        }
    }

    /// Adds a runner group named `name` to `scope` (`orgs/o` or `enterprises/e`); returns
    /// its id.
    pub fn add_runner_group(&mut self, scope: &str, name: &str) -> i64 {
        let id = self.next_group_id;
        self.next_group_id += 1;
        self.runner_groups
            .entry(scope.to_ascii_lowercase())
            .or_default()
            .push((id, name.to_string()));
        id
    }

    /// The runner groups of `scope`: "Default" (id 1) first.
    pub fn runner_groups_of(&self, scope: &str) -> Vec<(i64, String)> {
        let mut out = vec![(DEFAULT_RUNNER_GROUP_ID, "Default".to_string())];
        out.extend(
            self.runner_groups
                .get(&scope.to_ascii_lowercase())
                .cloned()
                .unwrap_or_default(),
        );
        out
    }

    /// Sets the primary budget: `remaining` calls until `reset_in_secs` from now (default: a
    /// full window), after which it refills to the limit.
    pub fn set_rate_limit(&mut self, remaining: u64, reset_in_secs: Option<u64>) {
        self.rate.remaining = remaining;
        self.rate.reset = now_secs() + reset_in_secs.unwrap_or(RATE_WINDOW_SECS);
    }

    /// Counts one API request under `route`.
    pub fn count_call(&mut self, route: &str) {
        self.api_calls += 1;
        *self.by_route.entry(route.to_string()).or_insert(0) += 1;
    }

    /// Consumes the fault rules matching a request, in order: `status: 0` rules add their
    /// delay and the walk goes on; the first rule with a status ends it and becomes the answer.
    pub fn take_faults(&mut self, method: &str, path: &str) -> FaultDecision {
        let mut decision = FaultDecision::default();
        for rule in self.faults.iter_mut() {
            if !rule.matches(method, path) {
                continue;
            }
            rule.times -= 1;
            decision.delay_ms += rule.delay_ms;
            if rule.status != 0 {
                decision.answer = Some(rule.clone());
                break;
            }
        }
        self.faults.retain(|r| r.times > 0);
        decision
    }

    fn label_id(&mut self, name: &str) -> u64 {
        let key = name.to_ascii_lowercase();
        if let Some(i) = READ_ONLY_LABELS.iter().position(|l| *l == key) {
            return i as u64 + 1;
        }
        if let Some(id) = self.custom_label_ids.get(&key) {
            return *id;
        }
        let id = self.next_label_id;
        self.next_label_id += 1;
        self.custom_label_ids.insert(key, id);
        id
    }

    /// Registers a JIT runner in `scope`; returns its record and encoded JIT config.
    pub fn create_runner(
        &mut self,
        scope: &str,
        req: &JitRequest,
    ) -> Result<(RunnerRecord, String), CreateError> {
        if !scope.starts_with("repos/")
            && !self
                .runner_groups_of(scope)
                .iter()
                .any(|(id, _)| *id == req.runner_group_id)
        {
            return Err(CreateError::NoSuchGroup(req.runner_group_id));
        }
        if self
            .runners
            .values()
            .any(|r| r.scope.eq_ignore_ascii_case(scope) && r.name.eq_ignore_ascii_case(&req.name))
        {
            return Err(CreateError::NameExists(req.name.clone()));
        }
        let mut labels: Vec<Label> = READ_ONLY_LABELS
            .iter()
            .map(|n| Label {
                id: self.label_id(n),
                name: n.to_string(),
                kind: LabelKind::ReadOnly,
            })
            .collect();
        for name in &req.labels {
            if labels.iter().any(|l| l.name.eq_ignore_ascii_case(name)) {
                continue;
            }
            labels.push(Label {
                id: self.label_id(name),
                name: name.clone(),
                kind: LabelKind::Custom,
            });
        }
        let id = self.next_runner_id;
        self.next_runner_id += 1;
        let runner = RunnerRecord {
            id,
            name: req.name.clone(),
            os: "linux".to_string(),
            status: RunnerStatus::Offline,
            busy: false,
            ephemeral: true,
            runner_group_id: req.runner_group_id,
            labels,
            version: None,
            scope: scope.to_string(),
            work_folder: req.work_folder.clone(),
            job_id: None,
            created_at: now_ms(),
            online_at: None,
            deleted_at: None,
            secret: random_token(40),
        };
        let encoded = encode_jit_config(&runner, &self.server_url);
        self.runners.insert(id, runner.clone());
        self.jit_configs.push(encoded.clone());
        self.created_total += 1;
        Ok((runner, encoded))
    }

    /// Live registrations of exactly `scope`, oldest first, optionally of one exact name.
    pub fn runners_in_scope(&self, scope: &str, name: Option<&str>) -> Vec<&RunnerRecord> {
        self.runners
            .values()
            .filter(|r| r.scope.eq_ignore_ascii_case(scope))
            .filter(|r| name.map(|n| r.name == n).unwrap_or(true))
            .collect()
    }

    /// The registration `id` if it lives in `scope`.
    pub fn runner_in_scope(&self, scope: &str, id: u64) -> Option<&RunnerRecord> {
        self.runners
            .get(&id)
            .filter(|r| r.scope.eq_ignore_ascii_case(scope))
    }

    /// Deletes a registration through the API: refused while it runs a job.
    pub fn delete_runner(&mut self, scope: &str, id: u64) -> Result<RunnerRecord, DeleteError> {
        let runner = self
            .runner_in_scope(scope, id)
            .ok_or(DeleteError::NotFound)?;
        if runner.busy {
            return Err(DeleteError::Busy(runner.name.clone()));
        }
        let removed = self.remove_runner(id).ok_or(DeleteError::NotFound)?;
        Ok(removed)
    }

    /// Adds a job to the queue and dispatches. Returns the job as queued (or as assigned).
    pub fn enqueue_job(
        &mut self,
        scope: &str,
        labels: Vec<String>,
        script: &str,
        timeout_secs: Option<u64>,
    ) -> JobRecord {
        let id = self.next_job_id;
        self.next_job_id += 1;
        self.jobs.insert(
            id,
            JobRecord {
                id,
                scope: scope.to_string(),
                labels,
                script: script.to_string(),
                timeout_secs: timeout_secs.unwrap_or(DEFAULT_JOB_TIMEOUT_SECS),
                status: JobStatus::Queued,
                conclusion: None,
                runner_id: None,
                runner_name: None,
                exit_code: None,
                output: None,
                queued_at: now_ms(),
                started_at: None,
                completed_at: None,
            },
        );
        let queued = self.jobs[&id].clone();
        self.scalesets.on_enqueue(&queued);
        self.webhooks.job_event("queued", &queued, &self.server_url);
        self.dispatch();
        self.jobs[&id].clone()
    }

    /// Marks a runner `online` (its first acquire) and dispatches.
    pub fn runner_online(&mut self, id: u64) -> bool {
        let Some(r) = self.runners.get_mut(&id) else {
            return false;
        };
        if r.status != RunnerStatus::Online {
            r.status = RunnerStatus::Online;
            r.online_at = Some(now_ms());
            r.version = Some(FAKE_RUNNER_VERSION.to_string());
        }
        self.dispatch();
        true
    }

    /// Assigns queued jobs, oldest first, each to the oldest online, idle runner of a matching
    /// scope whose labels cover the job's. Returns how many jobs were assigned.
    pub fn dispatch(&mut self) -> usize {
        let now = now_ms();
        let mut assigned = 0;
        let queued: Vec<u64> = self
            .jobs
            .values()
            .filter(|j| j.status == JobStatus::Queued)
            .map(|j| j.id)
            .collect();
        for job_id in queued {
            let job = &self.jobs[&job_id];
            let pick = self
                .runners
                .values()
                .find(|r| {
                    r.status == RunnerStatus::Online
                        && !r.busy
                        && r.job_id.is_none()
                        && scope_matches(&r.scope, &job.scope)
                        && labels_match(&r.label_names(), &job.labels)
                        && self.scalesets.may_take(job_id, r.id)
                })
                .map(|r| r.id);
            let Some(runner_id) = pick else { continue };
            let runner = self
                .runners
                .get_mut(&runner_id)
                .expect("picked runner exists");
            runner.busy = true;
            runner.job_id = Some(job_id);
            let job = self.jobs.get_mut(&job_id).expect("queued job exists");
            job.status = JobStatus::InProgress;
            job.runner_id = Some(runner_id);
            job.runner_name = Some(runner.name.clone());
            job.started_at = Some(now);
            let (job, name) = (job.clone(), runner.name.clone());
            self.scalesets.on_started(&job, runner_id, &name);
            self.webhooks
                .job_event("in_progress", &job, &self.server_url);
            assigned += 1;
        }
        assigned
    }

    /// The runner reports its job done: the job is completed and the (ephemeral) registration
    /// removed. `Err` carries a message when the job is not this runner's.
    pub fn complete_job(
        &mut self,
        runner_id: u64,
        job_id: u64,
        conclusion: Conclusion,
        exit_code: Option<i64>,
        output: Option<String>,
    ) -> Result<JobRecord, String> {
        let runner = self.runners.get(&runner_id).ok_or("runner not found")?;
        if runner.job_id != Some(job_id) {
            return Err(format!(
                "job {job_id} is not assigned to runner {runner_id}"
            ));
        }
        let job = self.jobs.get_mut(&job_id).ok_or("job not found")?;
        job.status = JobStatus::Completed;
        job.conclusion = Some(conclusion);
        job.exit_code = exit_code;
        job.output = output;
        job.completed_at = Some(now_ms());
        let done = job.clone();
        self.scalesets.on_completed(&done);
        self.webhooks
            .job_event("completed", &done, &self.server_url);
        self.remove_runner(runner_id);
        Ok(done)
    }

    /// Removes a registration and keeps it in `history`.
    fn remove_runner(&mut self, id: u64) -> Option<RunnerRecord> {
        let mut r = self.runners.remove(&id)?;
        self.deleted_total += 1;
        r.deleted_at = Some(now_ms());
        self.history.push(r.clone());
        Some(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn per_page_and_page_defaults_and_caps() {
        let cases = [
            (None, 30),
            (Some("0"), 30),
            (Some("x"), 30),
            (Some("1"), 1),
            (Some("100"), 100),
            (Some("101"), 100),
            (Some("5000"), 100),
        ];
        for (raw, want) in cases {
            assert_eq!(effective_per_page(raw), want, "per_page {raw:?}");
        }
        for (raw, want) in [(None, 1), (Some("0"), 1), (Some("-2"), 1), (Some("3"), 3)] {
            assert_eq!(effective_page(raw), want, "page {raw:?}");
        }
    }

    #[test]
    fn page_window_math() {
        // (total, per_page, page) -> (start, end, last_page)
        let cases = [
            ((0, 30, 1), (0, 0, 1)),
            ((1, 30, 1), (0, 1, 1)),
            ((30, 30, 1), (0, 30, 1)),
            ((31, 30, 1), (0, 30, 2)),
            ((31, 30, 2), (30, 31, 2)),
            ((31, 30, 3), (31, 31, 2)),
            ((250, 100, 3), (200, 250, 3)),
            ((5, 2, 2), (2, 4, 3)),
            ((5, 2, 0), (0, 2, 3)),
        ];
        for ((total, per, page), (start, end, last)) in cases {
            assert_eq!(
                page_window(total, per, page),
                PageWindow {
                    start,
                    end,
                    last_page: last
                },
                "total={total} per_page={per} page={page}"
            );
        }
    }

    #[test]
    fn link_header_like_github() {
        let url = "http://127.0.0.1:9/repos/o/r/actions/runners";
        assert_eq!(link_header(url, &q(&[("per_page", "2")]), 1, 1), None);
        assert_eq!(
            link_header(url, &q(&[("per_page", "2")]), 1, 3).unwrap(),
            "<http://127.0.0.1:9/repos/o/r/actions/runners?per_page=2&page=2>; rel=\"next\", \
             <http://127.0.0.1:9/repos/o/r/actions/runners?per_page=2&page=3>; rel=\"last\""
        );
        assert_eq!(
            link_header(url, &q(&[("per_page", "2"), ("page", "2")]), 2, 3).unwrap(),
            "<http://127.0.0.1:9/repos/o/r/actions/runners?per_page=2&page=1>; rel=\"prev\", \
             <http://127.0.0.1:9/repos/o/r/actions/runners?per_page=2&page=3>; rel=\"next\", \
             <http://127.0.0.1:9/repos/o/r/actions/runners?per_page=2&page=3>; rel=\"last\", \
             <http://127.0.0.1:9/repos/o/r/actions/runners?per_page=2&page=1>; rel=\"first\""
        );
        assert_eq!(
            link_header(url, &q(&[("page", "3"), ("per_page", "2")]), 3, 3).unwrap(),
            "<http://127.0.0.1:9/repos/o/r/actions/runners?per_page=2&page=2>; rel=\"prev\", \
             <http://127.0.0.1:9/repos/o/r/actions/runners?per_page=2&page=1>; rel=\"first\""
        );
        // Other parameters are kept (encoded), with no per_page the link has none either.
        assert_eq!(
            link_header(url, &q(&[("name", "a b")]), 1, 2).unwrap(),
            "<http://127.0.0.1:9/repos/o/r/actions/runners?name=a%20b&page=2>; rel=\"next\", \
             <http://127.0.0.1:9/repos/o/r/actions/runners?name=a%20b&page=2>; rel=\"last\""
        );
    }

    #[test]
    fn query_parsing() {
        assert_eq!(
            parse_query(Some("per_page=5&name=a%2Fb+c&page=&flag")),
            q(&[
                ("per_page", "5"),
                ("name", "a/b c"),
                ("page", ""),
                ("flag", "")
            ])
        );
        assert_eq!(parse_query(Some("x=%zz%4")), q(&[("x", "%zz%4")]));
        assert_eq!(parse_query(None), vec![]);
    }

    #[test]
    fn label_matching_is_case_insensitive_subset() {
        let runner = ["self-hosted", "linux", "x64", "gpu"];
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let cases: [(&[&str], bool); 7] = [
            (&[], true),
            (&["self-hosted"], true),
            (&["Self-Hosted", "LINUX"], true),
            (&["self-hosted", "linux", "x64", "gpu"], true),
            (&["gpu", "arm64"], false),
            (&["windows"], false),
            (&["self-hosted", "gpus"], false),
        ];
        for (job, want) in cases {
            assert_eq!(labels_match(&runner, &s(job)), want, "job labels {job:?}");
        }
    }

    #[test]
    fn scope_matching() {
        let cases = [
            ("repos/o/r", "repos/o/r", true),
            ("repos/O/R", "repos/o/r", true),
            ("orgs/o", "repos/o/r", true),
            ("orgs/O", "repos/o/other", true),
            ("orgs/x", "repos/o/r", false),
            ("repos/o/r", "repos/o/s", false),
            ("repos/o/r", "orgs/o", false),
            ("orgs/o", "orgs/o", true),
        ];
        for (runner, job, want) in cases {
            assert_eq!(scope_matches(runner, job), want, "{runner} serves {job}");
        }
        assert_eq!(normalize_scope("/repos/o/r/").as_deref(), Some("repos/o/r"));
        assert_eq!(normalize_scope("orgs/o").as_deref(), Some("orgs/o"));
        assert_eq!(normalize_scope("repos/o"), None);
        assert_eq!(normalize_scope("users/o"), None);
    }

    #[test]
    fn jit_request_validation() {
        let ok = validate_jit_request(&json!({"name": "a", "runner_group_id": 1, "labels": ["x"]}));
        assert_eq!(
            ok,
            Ok(JitRequest {
                name: "a".into(),
                runner_group_id: 1,
                labels: vec!["x".into()],
                work_folder: "_work".into()
            })
        );
        let bad = [
            json!([]),
            json!({"runner_group_id": 1, "labels": ["x"]}),
            json!({"name": "", "runner_group_id": 1, "labels": ["x"]}),
            json!({"name": "a", "labels": ["x"]}),
            json!({"name": "a", "runner_group_id": "1", "labels": ["x"]}),
            json!({"name": "a", "runner_group_id": 1}),
            json!({"name": "a", "runner_group_id": 1, "labels": []}),
            json!({"name": "a", "runner_group_id": 1, "labels": [1]}),
            json!({"name": "a", "runner_group_id": 1, "labels": vec!["l"; 101]}),
            json!({"name": "a", "runner_group_id": 1, "labels": ["x"], "work_folder": 3}),
        ];
        for body in bad {
            let err = validate_jit_request(&body).expect_err(&body.to_string());
            assert!(!err.is_empty(), "{body}");
        }
    }

    #[test]
    fn rfc3339_formatting() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_468_275_250), "2016-07-11T22:14:10Z");
        assert_eq!(rfc3339(4_102_444_799), "2099-12-31T23:59:59Z");
    }

    #[test]
    fn faults_apply_in_order_and_run_out() {
        let mut st = State::new("t", "http://x");
        st.faults.push(FaultRule::delay(5).path_contains("runners"));
        st.faults.push(FaultRule::new(500).times(2).method("post"));
        st.faults.push(FaultRule::new(502));
        let d = st.take_faults("GET", "/repos/o/r/actions/runners");
        assert_eq!(d.delay_ms, 5);
        assert_eq!(d.answer.map(|r| r.status), Some(502));
        let d = st.take_faults("POST", "/rate_limit");
        assert_eq!((d.delay_ms, d.answer.map(|r| r.status)), (0, Some(500)));
        let d = st.take_faults("POST", "/x");
        assert_eq!((d.delay_ms, d.answer.map(|r| r.status)), (0, Some(500)));
        assert_eq!(st.take_faults("POST", "/x"), FaultDecision::default());
        assert!(st.faults.is_empty());
    }

    #[test]
    fn dispatch_picks_oldest_matching_online_runner() {
        let mut st = State::new("t", "http://x");
        let req = |name: &str, labels: &[&str]| JitRequest {
            name: name.into(),
            runner_group_id: 1,
            labels: labels.iter().map(|s| s.to_string()).collect(),
            work_folder: "_work".into(),
        };
        let (a, _) = st.create_runner("orgs/o", &req("a", &["gpu"])).unwrap();
        let (b, _) = st
            .create_runner("repos/o/r", &req("b", &["self-hosted"]))
            .unwrap();
        let (c, _) = st.create_runner("repos/o/r", &req("c", &["gpu"])).unwrap();
        assert_eq!((a.id, b.id, c.id), (1, 2, 3));
        assert_eq!(
            st.create_runner("repos/o/r", &req("B", &["x"])),
            Err(CreateError::NameExists("B".into()))
        );
        assert_eq!(
            b.labels.len(),
            3,
            "self-hosted is not repeated as a custom label"
        );
        // Nobody online: the job stays queued.
        let job = st.enqueue_job("repos/o/r", vec!["GPU".into()], "true", None);
        assert_eq!(job.status, JobStatus::Queued);
        st.runner_online(b.id);
        assert_eq!(st.jobs[&job.id].status, JobStatus::Queued, "b lacks gpu");
        st.runner_online(c.id);
        st.runner_online(a.id);
        // c came online first, so c got it while a was offline.
        assert_eq!(st.jobs[&job.id].runner_id, Some(c.id));
        let job2 = st.enqueue_job("repos/o/r", vec!["gpu".into()], "true", None);
        assert_eq!(
            st.jobs[&job2.id].runner_id,
            Some(a.id),
            "org runner serves repo job"
        );
        assert_eq!(
            st.delete_runner("repos/o/r", c.id),
            Err(DeleteError::Busy("c".into()))
        );
        assert_eq!(st.delete_runner("orgs/o", c.id), Err(DeleteError::NotFound));
        let done = st
            .complete_job(c.id, job.id, Conclusion::Success, Some(0), None)
            .unwrap();
        assert_eq!(done.status, JobStatus::Completed);
        assert!(!st.runners.contains_key(&c.id));
        assert_eq!((st.created_total, st.deleted_total), (3, 1));
        assert!(st
            .complete_job(a.id, job.id, Conclusion::Success, None, None)
            .is_err());
    }
}
