//! The GitHub adapter: the runner endpoints of the REST API, for repository, organization and
//! enterprise scope, with the retry and rate-limit rules of docs/github-runner.md (REST
//! conventions), on github.com and GitHub Enterprise Server (docs/credentials.md, GHES).
//!
//! Credentials live only inside [`Client`] ([`auth::Credentials`]); a bearer token is sent in
//! the `Authorization` header and never logged. JIT configs come back wrapped in [`Secret`],
//! whose `Debug` prints nothing. A refused call's error carries the diagnosis of
//! [`diagnose`]: what the credential is, what it lacks, and the fix.

pub mod auth;
pub mod calls;
pub mod diagnose;
pub mod ghes;
pub mod queued;
pub mod retry;
pub mod scaleset;
pub mod webhook;

use crate::config::names::Scope;
use auth::{Bearer, Credentials, Source};
use diagnose::{Answer, Diagnosis};
use rand::Rng;
use reqwest::{header, Method, StatusCode};
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// docs/github-runner.md, REST conventions: the media type and API version GitHub documents.
const ACCEPT: &str = "application/vnd.github+json";
const API_VERSION: &str = "2022-11-28";
/// Largest page GitHub serves (docs/github-runner.md, Pagination).
pub const PER_PAGE: u32 = 100;
/// Protects against a server whose `next` links never end.
const MAX_PAGES: usize = 1000;
/// A single request that takes longer than this is treated as failed and retried.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Attempts for 5xx, timeouts and connection errors before giving up on one call.
pub const MAX_ATTEMPTS: u32 = 5;
/// A rate-limit wait longer than this is not sat out inside a call: the call fails with
/// [`Error::RateLimited`] and the manager's loop decides what to do meanwhile.
pub const MAX_INLINE_WAIT: Duration = Duration::from_secs(90);
/// With no `retry-after` and no exhausted primary limit, wait at least this long after a
/// rate-limit answer (docs/github-runner.md: "else ≥ 60 s with exponential backoff").
pub const SECONDARY_LIMIT_WAIT: Duration = Duration::from_secs(60);

/// A string that must never be printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: String) -> Secret {
        Secret(s)
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct RunnerLabel {
    pub name: String,
}

/// A runner registration as GitHub lists it.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct Runner {
    pub id: u64,
    pub name: String,
    #[serde(default)]
    pub os: String,
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub busy: bool,
    #[serde(default)]
    pub labels: Vec<RunnerLabel>,
}

#[derive(Deserialize)]
struct RunnerList {
    #[serde(default)]
    runners: Vec<Runner>,
}

#[derive(Deserialize)]
struct JitResponse {
    runner: Runner,
    encoded_jit_config: String,
}

/// What [`Client::probe_runners`] saw.
#[derive(Debug, Clone, PartialEq)]
pub struct Probe {
    pub status: u16,
    /// Classic personal access tokens list their scopes here; fine-grained tokens and apps
    /// send no such header.
    pub oauth_scopes: Option<String>,
    pub message: String,
    /// For a refusal: what the credential is and lacks, with the fix.
    pub diagnosis: Option<Diagnosis>,
    /// `X-GitHub-Enterprise-Version` (GHES only).
    pub server_version: Option<String>,
}

/// A runner group as `GET .../actions/runner-groups` lists it.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct RunnerGroup {
    pub id: u64,
    pub name: String,
}

/// What generate-jitconfig gives back.
#[derive(Debug)]
pub struct JitConfig {
    pub runner: Runner,
    pub encoded: Secret,
}

#[derive(Debug, Serialize)]
struct JitRequest<'a> {
    name: &'a str,
    runner_group_id: u64,
    labels: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    work_folder: Option<&'a str>,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("GitHub answered 409: a runner named {0:?} already exists")]
    Conflict(String),
    #[error("GitHub answered 404 for {0}")]
    NotFound(String),
    #[error("GitHub refused to delete runner {0}: it is still running a job (422)")]
    StillBusy(u64),
    /// 401, judged by [`diagnose::diagnose`].
    #[error("{0}")]
    Unauthorized(Diagnosis),
    /// 403 that is not a rate limit, judged by [`diagnose::diagnose`].
    #[error("{0}")]
    Forbidden(Diagnosis),
    /// The credentials cannot serve a call (an App's key, an enterprise pool without a token,
    /// no installation for a repository).
    #[error("{0}")]
    Auth(String),
    #[error("runner group {name:?} does not exist in {scope}; its runner groups are: {}\n  fix: set runner_group to one of them (names are compared without regard to case), or create the group in the {scope} settings > Actions > Runner groups", .existing.join(", "))]
    NoSuchRunnerGroup {
        name: String,
        scope: String,
        existing: Vec<String>,
    },
    /// A GitHub Enterprise Server too old for a feature.
    #[error("{0}")]
    Unsupported(String),
    #[error("GitHub's rate limit is exhausted; retrying after {}s", .0.as_secs())]
    RateLimited(Duration),
    #[error("GitHub answered {status}: {message}")]
    Http { status: u16, message: String },
    #[error("cannot reach GitHub at {url}: {message}")]
    Transport { url: String, message: String },
    #[error("GitHub's answer could not be read: {0}")]
    Decode(String),
}

impl Error {
    /// Whether trying again later can help.
    pub fn is_transient(&self) -> bool {
        matches!(self, Error::RateLimited(_) | Error::Transport { .. })
            || matches!(self, Error::Http { status, .. } if *status >= 500)
    }
}

/// The rate-limit figures of the last answer.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq)]
pub struct RateLimit {
    pub limit: Option<u64>,
    pub remaining: Option<u64>,
    /// Epoch seconds.
    pub reset: Option<u64>,
}

pub struct Client {
    http: reqwest::Client,
    base: String,
    creds: Credentials,
    /// `X-GitHub-Enterprise-Version` of the last answer that had one (GHES only).
    server_version: Mutex<Option<String>>,
    /// Runner group ids found by name, per scope API path and lower-case name.
    groups: Mutex<std::collections::HashMap<(String, String), u64>>,
    calls: AtomicU64,
    /// Requests by endpoint and answer (metrics).
    pub calls_by: calls::CallCounts,
    rate: Mutex<RateLimit>,
    /// No request leaves before this instant (set by rate-limit answers).
    blocked_until: Mutex<Option<Instant>>,
}

fn now_epoch() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn header_u64(h: &header::HeaderMap, name: &str) -> Option<u64> {
    h.get(name)?.to_str().ok()?.trim().parse().ok()
}

/// The `rel="next"` URL of a `Link` header.
pub fn next_link(link: &str) -> Option<String> {
    link.split(',').find_map(|part| {
        let (url, params) = part.split_once(';')?;
        let is_next = params
            .split(';')
            .any(|p| p.trim().replace(' ', "") == "rel=\"next\"");
        is_next.then(|| {
            url.trim()
                .trim_start_matches('<')
                .trim_end_matches('>')
                .to_string()
        })
    })
}

impl Client {
    /// A client that authenticates with one token for every scope.
    pub fn new(api_url: &str, token: Secret) -> anyhow::Result<Client> {
        Self::with_credentials(api_url, Credentials::token(token))
    }

    pub fn with_credentials(api_url: &str, creds: Credentials) -> anyhow::Result<Client> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("podrunner/", env!("CARGO_PKG_VERSION")))
            .timeout(REQUEST_TIMEOUT)
            .connect_timeout(Duration::from_secs(10))
            .pool_max_idle_per_host(4)
            .build()?;
        Ok(Client {
            http,
            base: api_url.trim_end_matches('/').to_string(),
            creds,
            server_version: Mutex::new(None),
            groups: Mutex::new(std::collections::HashMap::new()),
            calls: AtomicU64::new(0),
            calls_by: calls::CallCounts::default(),
            rate: Mutex::new(RateLimit::default()),
            blocked_until: Mutex::new(None),
        })
    }

    /// The HTTP client, for adapters of GitHub's other services (github/scaleset.rs).
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// The API base URL, no trailing slash.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Counts a request another adapter sent (they all show in `status` as API calls).
    pub fn count_call(&self) {
        self.calls.fetch_add(1, Ordering::Relaxed);
    }

    /// POST `/SCOPE/actions/runners/registration-token`: a token valid one hour, which the
    /// runner-registration exchange of scale sets takes (github/scaleset.rs).
    pub async fn registration_token(&self, scope: &Scope) -> Result<Secret, Error> {
        #[derive(Deserialize)]
        struct T {
            token: String,
        }
        let url = format!(
            "{}/{}/actions/runners/registration-token",
            self.base,
            scope.api_path()
        );
        let answer = self.send(Method::POST, &url, None, scope).await?;
        if !answer.0.is_success() {
            return Err(self.fail(scope, &answer, &scope.to_string()));
        }
        let t: T = serde_json::from_slice(&answer.2).map_err(|e| Error::Decode(e.to_string()))?;
        Ok(Secret(t.token))
    }

    /// Requests sent so far (every attempt counts).
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    pub fn rate_limit(&self) -> RateLimit {
        *self.rate.lock().expect("rate lock")
    }

    fn block_for(&self, d: Duration) {
        let until = Instant::now() + d;
        let mut b = self.blocked_until.lock().expect("block lock");
        if b.is_none_or(|x| x < until) {
            *b = Some(until);
        }
    }

    async fn wait_unblocked(&self) {
        let until = *self.blocked_until.lock().expect("block lock");
        if let Some(u) = until {
            tokio::time::sleep_until(u.into()).await;
        }
    }

    pub fn credentials(&self) -> &Credentials {
        &self.creds
    }

    /// The GitHub Enterprise Server version seen in answers; `None` on github.com (or before
    /// the first answer).
    pub fn server_version(&self) -> Option<String> {
        self.server_version.lock().expect("version lock").clone()
    }

    /// The bearer token for calls about `scope`: the token, or a current installation token
    /// of the App (made or renewed here when needed). The seam for other GitHub callers
    /// (e.g. the runner-registration exchange of scale sets): ask for a bearer per call, and
    /// after a 401 call [`Client::refused`] and ask once more.
    pub async fn bearer(&self, scope: &Scope) -> Result<Bearer, Error> {
        let app = match self.creds.source(scope)? {
            Source::Token(t) => {
                return Ok(Bearer {
                    secret: t.clone(),
                    installation: None,
                })
            }
            Source::App(app) => app,
        };
        if let Some(id) = app.installation_for(scope) {
            if let Some(t) = app.cached(id, SystemTime::now()) {
                return Ok(Bearer {
                    secret: t,
                    installation: Some(id),
                });
            }
        }
        let _one_at_a_time = app.renewing.lock().await;
        let id = match app.installation_for(scope) {
            Some(id) => id,
            None => {
                let id = self.find_installation(app, scope).await?;
                app.remember_installation(scope, id);
                id
            }
        };
        // Another call may have renewed it while this one waited.
        if let Some(t) = app.cached(id, SystemTime::now()) {
            return Ok(Bearer {
                secret: t,
                installation: Some(id),
            });
        }
        let url = format!("{}/app/installations/{id}/access_tokens", self.base);
        let jwt = app.jwt()?;
        let (status, headers, bytes) = self.send_with(Method::POST, &url, None, &jwt).await?;
        if !status.is_success() {
            return Err(self.app_failure(
                status,
                &headers,
                &bytes,
                scope,
                &format!("installation {id}"),
            ));
        }
        #[derive(Deserialize)]
        struct Token {
            token: String,
            expires_at: String,
        }
        let t: Token = serde_json::from_slice(&bytes).map_err(|e| Error::Decode(e.to_string()))?;
        let obtained = SystemTime::now();
        let expires = humantime::parse_rfc3339_weak(&t.expires_at)
            .map_err(|e| Error::Decode(format!("expires_at {:?}: {e}", t.expires_at)))?;
        let secret = Secret::new(t.token);
        tracing::info!(
            "GitHub App installation {id}: new installation token, valid for {}s",
            expires
                .duration_since(obtained)
                .unwrap_or_default()
                .as_secs()
        );
        app.store(id, secret.clone(), obtained, expires);
        Ok(Bearer {
            secret,
            installation: Some(id),
        })
    }

    /// Tells the credentials that GitHub answered 401 to `bearer`, so the next
    /// [`Client::bearer`] makes a new installation token.
    pub fn refused(&self, bearer: &Bearer) {
        if let (Some(id), Some(app)) = (bearer.installation, self.creds.app_ref()) {
            app.invalidate(id, &bearer.secret);
        }
    }

    /// The App's installation on `scope`'s repository or organization (JWT-authenticated).
    async fn find_installation(&self, app: &auth::App, scope: &Scope) -> Result<u64, Error> {
        let url = format!("{}/{}/installation", self.base, scope.api_path());
        let jwt = app.jwt()?;
        let (status, headers, bytes) = self.send_with(Method::GET, &url, None, &jwt).await?;
        match status.as_u16() {
            200 => {
                #[derive(Deserialize)]
                struct Inst {
                    id: u64,
                }
                let i: Inst =
                    serde_json::from_slice(&bytes).map_err(|e| Error::Decode(e.to_string()))?;
                tracing::info!("GitHub App installation {} serves {scope}", i.id);
                Ok(i.id)
            }
            404 => Err(Error::Auth(format!(
                "the GitHub App is not installed on {scope}\n  fix: install it (the App's page > Install App) on {} with access to {scope}, or set [github] installation_id",
                match scope {
                    Scope::Repository { owner, .. } => owner.as_str(),
                    Scope::Organization(o) | Scope::Enterprise(o) => o.as_str(),
                }
            ))),
            _ => Err(self.app_failure(status, &headers, &bytes, scope, &scope.to_string())),
        }
    }

    fn app_failure(
        &self,
        status: StatusCode,
        headers: &header::HeaderMap,
        bytes: &[u8],
        scope: &Scope,
        what: &str,
    ) -> Error {
        let answer = Answer::from_headers(status.as_u16(), error_message(bytes), headers);
        match status.as_u16() {
            401 | 403 => Error::Auth(
                diagnose::diagnose(diagnose::CredentialKind::App, scope, &answer)
                    .on(&self.base)
                    .to_string(),
            ),
            404 => Error::NotFound(what.to_string()),
            s => Error::Http {
                status: s,
                message: answer.message,
            },
        }
    }

    /// Sends one request about `scope` with its bearer token; after a 401 to an installation
    /// token, renews it and sends once more.
    async fn send(
        &self,
        method: Method,
        url: &str,
        body: Option<&serde_json::Value>,
        scope: &Scope,
    ) -> Result<(StatusCode, header::HeaderMap, Vec<u8>), Error> {
        let bearer = self.bearer(scope).await?;
        let answer = self
            .send_with(method.clone(), url, body, &bearer.secret)
            .await?;
        if answer.0 != StatusCode::UNAUTHORIZED || bearer.installation.is_none() {
            return Ok(answer);
        }
        tracing::info!(
            "GitHub refused the installation token of installation {} (401); making a new one",
            bearer.installation.unwrap_or_default()
        );
        self.refused(&bearer);
        let bearer = self.bearer(scope).await?;
        self.send_with(method, url, body, &bearer.secret).await
    }

    /// Sends one request with retries, authenticated with `bearer`. Returns the status,
    /// headers and body of the final answer, which is a success or an error that retrying
    /// does not fix.
    async fn send_with(
        &self,
        method: Method,
        url: &str,
        body: Option<&serde_json::Value>,
        bearer: &Secret,
    ) -> Result<(StatusCode, header::HeaderMap, Vec<u8>), Error> {
        self.send_if_none_match(method, url, body, None, bearer)
            .await
    }

    /// [`Client::send`] with an `If-None-Match` header: a 304 answer costs no rate limit
    /// (github/queued.rs).
    async fn send_if_none_match(
        &self,
        method: Method,
        url: &str,
        body: Option<&serde_json::Value>,
        etag: Option<&str>,
        bearer: &Secret,
    ) -> Result<(StatusCode, header::HeaderMap, Vec<u8>), Error> {
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            self.wait_unblocked().await;
            let mut req = self
                .http
                .request(method.clone(), url)
                .header(header::ACCEPT, ACCEPT)
                .header("X-GitHub-Api-Version", API_VERSION)
                .header(header::AUTHORIZATION, format!("Bearer {}", bearer.expose()));
            if let Some(b) = body {
                req = req.json(b);
            }
            if let Some(t) = etag {
                req = req.header(header::IF_NONE_MATCH, t);
            }
            self.calls.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(target: "podrunner::github", "{method} {url} (attempt {attempt})");
            let resp = match req.send().await {
                Ok(r) => r,
                Err(e) => {
                    self.calls_by
                        .count(method.as_str(), self.path_of(url), None);
                    let err = Error::Transport {
                        url: self.base.clone(),
                        message: transport_message(&e),
                    };
                    if attempt < MAX_ATTEMPTS {
                        let d = retry::backoff(attempt, &mut rand::thread_rng());
                        tracing::warn!("{err}; retrying in {:.1}s", d.as_secs_f64());
                        tokio::time::sleep(d).await;
                        continue;
                    }
                    return Err(err);
                }
            };
            let status = resp.status();
            self.calls_by
                .count(method.as_str(), self.path_of(url), Some(status.as_u16()));
            let headers = resp.headers().clone();
            self.note_rate(&headers);
            if let Some(v) = headers
                .get(ghes::VERSION_HEADER)
                .and_then(|v| v.to_str().ok())
            {
                *self.server_version.lock().expect("version lock") = Some(v.to_string());
            }
            let bytes = match resp.bytes().await {
                Ok(b) => b.to_vec(),
                Err(e) => {
                    if attempt < MAX_ATTEMPTS {
                        let d = retry::backoff(attempt, &mut rand::thread_rng());
                        tokio::time::sleep(d).await;
                        continue;
                    }
                    return Err(Error::Transport {
                        url: self.base.clone(),
                        message: transport_message(&e),
                    });
                }
            };
            if status == StatusCode::TOO_MANY_REQUESTS || status == StatusCode::FORBIDDEN {
                let message = error_message(&bytes);
                if let Some(wait) = retry::rate_limit_wait(
                    status.as_u16(),
                    header_u64(&headers, "retry-after"),
                    header_u64(&headers, "x-ratelimit-remaining"),
                    header_u64(&headers, "x-ratelimit-reset"),
                    &message,
                    now_epoch(),
                ) {
                    let wait = wait.max(Duration::from_millis(100));
                    let wait = if header_u64(&headers, "retry-after").is_none()
                        && header_u64(&headers, "x-ratelimit-remaining") != Some(0)
                    {
                        // Secondary limit with no hint: ≥ 60 s, doubling on repeats.
                        SECONDARY_LIMIT_WAIT * 2u32.saturating_pow(attempt - 1).min(8)
                    } else {
                        wait
                    };
                    self.block_for(wait);
                    if wait > MAX_INLINE_WAIT || attempt >= MAX_ATTEMPTS {
                        return Err(Error::RateLimited(wait));
                    }
                    tracing::warn!(
                        "GitHub rate limit ({}): waiting {:.1}s",
                        status.as_u16(),
                        wait.as_secs_f64()
                    );
                    continue;
                }
            }
            if status.is_server_error() && attempt < MAX_ATTEMPTS {
                let d = retry::backoff(attempt, &mut rand::thread_rng());
                tracing::warn!(
                    "GitHub answered {status} for {method} {}; retrying in {:.1}s",
                    self.path_of(url),
                    d.as_secs_f64()
                );
                tokio::time::sleep(d).await;
                continue;
            }
            return Ok((status, headers, bytes));
        }
    }

    fn path_of<'a>(&self, url: &'a str) -> &'a str {
        url.strip_prefix(self.base.as_str()).unwrap_or(url)
    }

    fn note_rate(&self, h: &header::HeaderMap) {
        let mut r = self.rate.lock().expect("rate lock");
        if let Some(v) = header_u64(h, "x-ratelimit-limit") {
            r.limit = Some(v);
        }
        if let Some(v) = header_u64(h, "x-ratelimit-remaining") {
            r.remaining = Some(v);
        }
        if let Some(v) = header_u64(h, "x-ratelimit-reset") {
            r.reset = Some(v);
        }
    }

    /// The error of a refused call about `scope`; 401 and 403 are diagnosed.
    /// An error from a status and body alone, for answers that are not about the credential
    /// (the Actions service, conditional reads): no diagnosis of the token.
    pub(crate) fn fail_plain(status: StatusCode, bytes: &[u8], what: &str) -> Error {
        let message = error_message(bytes);
        let plain = |found: String| diagnose::Diagnosis {
            found,
            fix: "check the credential's permissions for this scope (podrunner doctor)".into(),
        };
        match status.as_u16() {
            401 => Error::Unauthorized(plain(message)),
            403 => Error::Forbidden(plain(message)),
            404 => Error::NotFound(what.to_string()),
            s => Error::Http { status: s, message },
        }
    }

    fn fail(
        &self,
        scope: &Scope,
        (status, headers, bytes): &(StatusCode, header::HeaderMap, Vec<u8>),
        what: &str,
    ) -> Error {
        let answer = Answer::from_headers(status.as_u16(), error_message(bytes), headers);
        let diagnosis =
            || diagnose::diagnose(self.creds.kind(scope), scope, &answer).on(&self.base);
        match status.as_u16() {
            401 => Error::Unauthorized(diagnosis()),
            403 => Error::Forbidden(diagnosis()),
            404 => Error::NotFound(what.to_string()),
            s => Error::Http {
                status: s,
                message: answer.message,
            },
        }
    }

    /// The id of the runner group `name` of `scope` (organization or enterprise), looked up
    /// once and remembered; names compare without regard to case, as on GitHub.
    pub async fn runner_group_id(&self, scope: &Scope, name: &str) -> Result<u64, Error> {
        let key = (scope.api_path(), name.to_lowercase());
        if let Some(id) = self.groups.lock().expect("groups lock").get(&key) {
            return Ok(*id);
        }
        let groups = self.list_runner_groups(scope).await?;
        let found = groups
            .iter()
            .find(|g| g.name.to_lowercase() == key.1)
            .map(|g| g.id);
        match found {
            Some(id) => {
                self.groups.lock().expect("groups lock").insert(key, id);
                Ok(id)
            }
            None => Err(Error::NoSuchRunnerGroup {
                name: name.to_string(),
                scope: scope.to_string(),
                existing: groups.into_iter().map(|g| g.name).collect(),
            }),
        }
    }

    /// GET `/SCOPE/actions/runner-groups`, every page (organizations and enterprises).
    pub async fn list_runner_groups(&self, scope: &Scope) -> Result<Vec<RunnerGroup>, Error> {
        #[derive(Deserialize)]
        struct Page {
            #[serde(default)]
            runner_groups: Vec<RunnerGroup>,
        }
        let mut url = format!(
            "{}/{}/actions/runner-groups?per_page={PER_PAGE}",
            self.base,
            scope.api_path()
        );
        let mut all = Vec::new();
        for _ in 0..MAX_PAGES {
            let answer = self.send(Method::GET, &url, None, scope).await?;
            if !answer.0.is_success() {
                return Err(self.fail(scope, &answer, &format!("the runner groups of {scope}")));
            }
            let page: Page =
                serde_json::from_slice(&answer.2).map_err(|e| Error::Decode(e.to_string()))?;
            all.extend(page.runner_groups);
            match self.next_page(&answer.1) {
                Some(n) => url = n,
                None => break,
            }
        }
        Ok(all)
    }

    /// The `rel="next"` link of an answer, if it stays on the configured API.
    fn next_page(&self, headers: &header::HeaderMap) -> Option<String> {
        let next = headers
            .get(header::LINK)
            .and_then(|v| v.to_str().ok())
            .and_then(next_link)?;
        // Never send a token anywhere but the configured API.
        if next.starts_with(&self.base) {
            Some(next)
        } else {
            tracing::warn!("ignoring a pagination link outside {}: {next}", self.base);
            None
        }
    }

    /// Asks the server for its version (GHES answers with `X-GitHub-Enterprise-Version` on
    /// every response; github.com does not) and refuses a GHES that lacks one of `needs`
    /// (docs/ghes.md). `Ok(None)` on github.com.
    pub async fn check_server(
        &self,
        scope: &Scope,
        needs: &[ghes::Feature],
    ) -> Result<Option<String>, Error> {
        let url = format!("{}/meta", self.base);
        let answer = self.send(Method::GET, &url, None, scope).await?;
        let version = answer
            .1
            .get(ghes::VERSION_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        if let Some(v) = &version {
            ghes::require_all(v, needs).map_err(Error::Unsupported)?;
        }
        Ok(version)
    }

    /// POST `/SCOPE/actions/runners/generate-jitconfig`.
    pub async fn generate_jitconfig(
        &self,
        scope: &Scope,
        name: &str,
        runner_group_id: u64,
        labels: &[String],
        work_folder: Option<&str>,
    ) -> Result<JitConfig, Error> {
        let url = format!(
            "{}/{}/actions/runners/generate-jitconfig",
            self.base,
            scope.api_path()
        );
        let body = serde_json::to_value(JitRequest {
            name,
            runner_group_id,
            labels,
            work_folder,
        })
        .expect("request serializes");
        let answer = self.send(Method::POST, &url, Some(&body), scope).await?;
        match answer.0.as_u16() {
            201 | 200 => {
                let r: JitResponse =
                    serde_json::from_slice(&answer.2).map_err(|e| Error::Decode(e.to_string()))?;
                Ok(JitConfig {
                    runner: r.runner,
                    encoded: Secret(r.encoded_jit_config),
                })
            }
            409 => Err(Error::Conflict(name.to_string())),
            404 => match self
                .server_version()
                .and_then(|v| ghes::require(&v, ghes::Feature::JitRunners).err())
            {
                Some(old) => Err(Error::Unsupported(old)),
                None => Err(self.fail(
                    scope,
                    &answer,
                    &format!("{scope} (does it exist, and can the credential see it?)"),
                )),
            },
            _ => Err(self.fail(
                scope,
                &answer,
                &format!("{scope} (does it exist, and can the credential see it?)"),
            )),
        }
    }

    /// GET `/SCOPE/actions/runners`, following every `Link: rel="next"`.
    pub async fn list_runners(&self, scope: &Scope) -> Result<Vec<Runner>, Error> {
        let mut url = format!(
            "{}/{}/actions/runners?per_page={PER_PAGE}",
            self.base,
            scope.api_path()
        );
        let mut all = Vec::new();
        for _ in 0..MAX_PAGES {
            let answer = self.send(Method::GET, &url, None, scope).await?;
            if !answer.0.is_success() {
                return Err(self.fail(scope, &answer, &scope.to_string()));
            }
            all.extend(parse_runner_list(&answer.2)?);
            match self.next_page(&answer.1) {
                Some(n) => url = n,
                None => break,
            }
        }
        Ok(all)
    }

    /// GET `/SCOPE/actions/runners?per_page=1` for `podrunner doctor`: the final status, the
    /// `x-oauth-scopes` header (classic tokens only), GitHub's message and, for a refusal,
    /// its diagnosis. 401, 403 and 404 come back as answers, not errors; transport failures,
    /// rate limits and App failures (no installation, a rejected JWT) are errors.
    pub async fn probe_runners(&self, scope: &Scope) -> Result<Probe, Error> {
        let url = format!(
            "{}/{}/actions/runners?per_page=1",
            self.base,
            scope.api_path()
        );
        let answer = self.send(Method::GET, &url, None, scope).await?;
        let (status, headers, bytes) = &answer;
        let refused = Answer::from_headers(status.as_u16(), error_message(bytes), headers);
        Ok(Probe {
            status: status.as_u16(),
            oauth_scopes: refused.oauth_scopes.clone(),
            message: if status.is_success() {
                String::new()
            } else {
                refused.message.clone()
            },
            diagnosis: (!status.is_success()).then(|| {
                diagnose::diagnose(self.creds.kind(scope), scope, &refused).on(&self.base)
            }),
            server_version: headers
                .get(ghes::VERSION_HEADER)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string),
        })
    }

    /// GET `/SCOPE/actions/runners/{id}`; `None` when it does not exist.
    pub async fn get_runner(&self, scope: &Scope, id: u64) -> Result<Option<Runner>, Error> {
        let url = format!("{}/{}/actions/runners/{id}", self.base, scope.api_path());
        let answer = self.send(Method::GET, &url, None, scope).await?;
        match answer.0.as_u16() {
            200 => serde_json::from_slice(&answer.2)
                .map(Some)
                .map_err(|e| Error::Decode(e.to_string())),
            404 => Ok(None),
            _ => Err(self.fail(scope, &answer, &format!("runner {id}"))),
        }
    }

    /// DELETE `/SCOPE/actions/runners/{id}`. `Ok(true)` deleted, `Ok(false)` already gone,
    /// [`Error::StillBusy`] on 422.
    pub async fn delete_runner(&self, scope: &Scope, id: u64) -> Result<bool, Error> {
        let url = format!("{}/{}/actions/runners/{id}", self.base, scope.api_path());
        let answer = self.send(Method::DELETE, &url, None, scope).await?;
        match answer.0.as_u16() {
            204 | 200 => Ok(true),
            404 => Ok(false),
            422 => Err(Error::StillBusy(id)),
            _ => Err(self.fail(scope, &answer, &format!("runner {id}"))),
        }
    }
}

/// One page of `GET .../actions/runners`: `{total_count, runners: [...]}`.
pub fn parse_runner_list(bytes: &[u8]) -> Result<Vec<Runner>, Error> {
    serde_json::from_slice::<RunnerList>(bytes)
        .map(|p| p.runners)
        .map_err(|e| Error::Decode(e.to_string()))
}

/// GitHub's error bodies carry `message`; fall back to the raw text.
fn error_message(bytes: &[u8]) -> String {
    #[derive(Deserialize)]
    struct E {
        message: String,
    }
    match serde_json::from_slice::<E>(bytes) {
        Ok(e) => e.message,
        Err(_) => String::from_utf8_lossy(bytes).chars().take(200).collect(),
    }
}

fn transport_message(e: &reqwest::Error) -> String {
    // reqwest's Display includes the URL (never the token); add the cause chain.
    let mut s = if e.is_timeout() {
        "timed out".to_string()
    } else if e.is_connect() {
        "connection failed".to_string()
    } else {
        "request failed".to_string()
    };
    let mut src: Option<&dyn std::error::Error> = std::error::Error::source(e);
    while let Some(c) = src {
        s.push_str(": ");
        s.push_str(&c.to_string());
        src = c.source();
    }
    s
}

/// Random suffixes for runner names: 8 lowercase hex characters, 4 billion values.
pub fn random_suffix() -> String {
    format!("{:08x}", rand::thread_rng().gen::<u32>())
}
