//! The GitHub adapter: the runner endpoints of the REST API, for repository, organization and
//! enterprise scope, with the retry and rate-limit rules of docs/github-runner.md (REST
//! conventions), on github.com and GitHub Enterprise Server (docs/credentials.md, GHES).
//!
//! Credentials live only inside [`Client`] ([`auth::Credentials`]); a bearer token is sent in
//! the `Authorization` header and never logged. JIT configs come back wrapped in [`Secret`],
//! whose `Debug` prints nothing. A refused call's error carries the diagnosis of
//! [`diagnose`]: what the credential is, what it lacks, and the fix.

//!
//! Files: this one holds the [`Client`] and its settings; `model.rs` what the endpoints send
//! and return (and [`Error`]); `send.rs` how one request is authenticated, retried and
//! judged; `runners.rs` the runner endpoints themselves.

pub mod auth;
pub mod calls;
pub mod diagnose;
pub mod ghes;
mod model;
pub mod queued;
pub mod retry;
mod runners;
pub mod scaleset;
mod send;
pub mod webhook;

use auth::Credentials;
use model::error_message;
pub use model::{
    parse_runner_list, Error, JitConfig, Probe, RateLimit, Runner, RunnerGroup, RunnerLabel, Secret,
};
use rand::Rng;
use reqwest::header;
use send::transport_message;
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

#[derive(Debug)]
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

    /// The HTTP client, for adapters of GitHub's other services (github/scaleset/).
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

    /// Requests sent so far (every attempt counts).
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    pub fn rate_limit(&self) -> RateLimit {
        *self.rate.lock().expect("rate lock")
    }

    pub fn credentials(&self) -> &Credentials {
        &self.creds
    }

    /// The GitHub Enterprise Server version seen in answers; `None` on github.com (or before
    /// the first answer).
    pub fn server_version(&self) -> Option<String> {
        self.server_version.lock().expect("version lock").clone()
    }
}

/// Random suffixes for runner names: 8 lowercase hex characters, 4 billion values.
pub fn random_suffix() -> String {
    format!("{:08x}", rand::thread_rng().gen::<u32>())
}
