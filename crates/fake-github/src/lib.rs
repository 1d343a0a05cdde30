//! A local GitHub-compatible server for podrunner's tests and demo.
//!
//! It speaks the self-hosted-runner endpoints of GitHub's REST API for repo and org scope
//! (generate-jitconfig, list, get, delete, registration-token, `/rate_limit`), keeps a job
//! queue that fake runners take jobs from (`/_runner/...`), and injects faults on request
//! (`/_fake/...`). docs/test-bench.md is the specification; the API answers conform to
//! `tests/data/openapi-runners.json` (checked by `tests/openapi_conformance.rs`).
//!
//! Layout: `state` holds the data and every decision as pure functions; `http` is the axum
//! router around it; this file is the handle tests use. The crate must not know anything about
//! podrunner itself: it only imitates GitHub.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! let gh = fake_github::FakeGithub::start("secret-token").await?;
//! let job = gh.enqueue_job("repos/o/r", &["self-hosted"], "echo hi");
//! // ... point the code under test at gh.url() ...
//! assert!(gh.wait_jobs_completed(std::time::Duration::from_secs(30)).await);
//! assert_eq!(gh.job(job.id).unwrap().status, fake_github::JobStatus::Completed);
//! gh.shutdown().await;
//! # Ok(()) }
//! ```

pub mod auth;
pub mod clock;
pub mod http;
pub mod runs;
pub mod scaleset;
pub mod state;
pub mod webhooks;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use serde::Serialize;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use http::Shared;
pub use state::{
    Conclusion, FaultRule, JobRecord, JobStatus, Label, LabelKind, RateLimit, RunnerRecord,
    RunnerStatus, State,
};

/// How long [`FakeGithub::shutdown`] lets open connections finish before cutting them.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// Fallback re-check period of the `wait_*` helpers, in case a change did not notify.
const WAIT_RECHECK: Duration = Duration::from_millis(100);

/// How to start the server.
#[derive(Clone, Debug)]
pub struct Options {
    /// Address to bind; port 0 picks a free one.
    pub listen: SocketAddr,
    /// The API token requests must present.
    pub token: String,
    /// Base URL written into JIT configs; default: `http://` + the bound address.
    pub public_url: Option<String>,
    /// Behave as a GitHub Enterprise Server of this version: the API under `/api/v3`, and
    /// `X-GitHub-Enterprise-Version` on every answer.
    pub ghes_version: Option<String>,
}

/// API request counters (`/_fake/stats`), plus the registration totals.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Stats {
    pub api_calls: u64,
    /// Keyed like `POST generate-jitconfig`, `GET runners`, `GET runners/{id}`,
    /// `DELETE runners/{id}`, `POST registration-token`, `GET rate_limit`.
    pub by_route: BTreeMap<String, u64>,
    pub runners_created: u64,
    pub runners_deleted: u64,
}

/// A running fake GitHub. Dropping it stops the server (in the background);
/// [`FakeGithub::shutdown`] stops it and waits.
pub struct FakeGithub {
    shared: Arc<Shared>,
    addr: SocketAddr,
    url: String,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl std::fmt::Debug for FakeGithub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeGithub")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl FakeGithub {
    /// Starts a server on `127.0.0.1:0` that accepts `token`, serving in a background task.
    pub async fn start(token: &str) -> anyhow::Result<FakeGithub> {
        Self::start_with(Options {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            token: token.to_string(),
            public_url: None,
            ghes_version: None,
        })
        .await
    }

    /// Starts a server on `127.0.0.1:0` that accepts `token` and behaves as a GitHub
    /// Enterprise Server of `version` (`3.14.2`).
    pub async fn start_ghes(token: &str, version: &str) -> anyhow::Result<FakeGithub> {
        Self::start_with(Options {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            token: token.to_string(),
            public_url: None,
            ghes_version: Some(version.to_string()),
        })
        .await
    }

    /// Starts a server with explicit [`Options`]. It accepts connections when this returns.
    pub async fn start_with(opts: Options) -> anyhow::Result<FakeGithub> {
        let listener = TcpListener::bind(opts.listen)
            .await
            .with_context(|| format!("cannot listen on {}", opts.listen))?;
        let mut addr = listener.local_addr().context("bound address")?;
        if addr.ip().is_unspecified() {
            // Bound to all interfaces: loopback reaches it and is what the URL should say.
            addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
        }
        let url = format!("http://{addr}");
        let server_url = opts
            .public_url
            .as_deref()
            .unwrap_or(&url)
            .trim_end_matches('/')
            .to_string();
        let mut state = State::new(
            &opts.token,
            &server_url,
            clock::Clock::system(),
            clock::Tokens::from_entropy(),
        );
        state.ghes_version = opts.ghes_version.clone();
        if state.ghes_version.is_some() {
            state.scalesets.prefix = scaleset::GHES_SERVICE_PREFIX.to_string();
        }
        let shared = Arc::new(Shared::new(state));
        let app = http::router(shared.clone());
        tokio::spawn(webhooks::deliver(shared.clone()));
        let (stop, stopped) = oneshot::channel::<()>();
        let on_stop = shared.clone();
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                    on_stop.begin_shutdown();
                })
                .await
        });
        tracing::debug!(%url, "fake-github listening");
        Ok(FakeGithub {
            shared,
            addr,
            url,
            stop: Some(stop),
            task: Some(task),
        })
    }

    /// `http://127.0.0.1:PORT`, no trailing slash.
    pub fn url(&self) -> String {
        self.url.clone()
    }

    /// The REST API's base URL: [`FakeGithub::url`], plus `/api/v3` on a GHES.
    pub fn api_url(&self) -> String {
        match self.shared.lock().ghes_version {
            Some(_) => format!("{}/api/v3", self.url),
            None => self.url.clone(),
        }
    }

    /// Accepts `token` too, as the credential `record` describes (auth.rs).
    pub fn add_token(&self, token: &str, record: auth::TokenRecord) {
        self.with_state(|st| st.auth.add_token(token, record));
    }

    /// Registers a GitHub App whose JWTs are verified against `public_key_pem`.
    pub fn add_app(&self, id: u64, client_id: &str, public_key_pem: &str) {
        self.with_state(|st| st.auth.add_app(id, client_id, public_key_pem));
    }

    /// Installs App `app_id` on `account` with `permissions`; returns the installation id.
    pub fn install_app(&self, app_id: u64, account: &str, permissions: &[(&str, &str)]) -> u64 {
        self.with_state(|st| st.auth.install(app_id, account, permissions))
    }

    /// Moves the clock installation tokens expire by (the real clock is untouched).
    pub fn advance_clock(&self, by: Duration) {
        self.with_state(|st| st.auth.clock_offset_secs += by.as_secs());
    }

    /// Lifetime of the installation tokens issued from now on (GitHub: one hour).
    pub fn set_installation_token_ttl(&self, ttl: Duration) {
        self.with_state(|st| st.auth.installation_token_ttl_secs = Some(ttl.as_secs()));
    }

    /// Every App JWT the fake accepted.
    pub fn jwts_seen(&self) -> Vec<String> {
        self.shared.lock().auth.jwts_seen.clone()
    }

    pub fn installation_tokens_issued(&self) -> u64 {
        self.shared.lock().auth.installation_tokens_issued
    }

    /// Every token the fake accepts besides its own (installation tokens included).
    pub fn extra_tokens(&self) -> Vec<String> {
        self.shared.lock().auth.tokens.keys().cloned().collect()
    }

    /// Adds a runner group to `scope` (`orgs/o`, `enterprises/e`); returns its id.
    pub fn add_runner_group(&self, scope: &str, name: &str) -> i64 {
        self.with_state(|st| st.add_runner_group(scope, name))
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The shared state, for what the helpers below do not cover.
    pub fn shared(&self) -> Arc<Shared> {
        self.shared.clone()
    }

    /// Runs `f` on the locked state and wakes waiters (long polls, `wait_*`). Do not block in
    /// `f`.
    pub fn with_state<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        self.shared.mutate(f)
    }

    /// Sends `workflow_job` events to `url`, signed with `secret` (webhooks.rs).
    pub fn add_webhook(&self, url: &str, secret: &str) {
        self.with_state(|st| {
            st.webhooks.hooks.push(webhooks::Hook {
                url: url.to_string(),
                secret: secret.to_string(),
            })
        });
    }

    pub fn add_fault(&self, rule: FaultRule) {
        self.with_state(|st| st.faults.push(rule));
    }

    pub fn clear_faults(&self) {
        self.with_state(|st| st.faults.clear());
    }

    /// Fault rules not used up yet.
    pub fn faults(&self) -> Vec<FaultRule> {
        self.shared.lock().faults.clone()
    }

    /// Queues a job for `scope` (`repos/o/r` or `orgs/o`) and returns it (already assigned if
    /// an idle matching runner was online).
    pub fn enqueue_job(&self, scope: &str, labels: &[&str], script: &str) -> JobRecord {
        self.enqueue_job_with_timeout(scope, labels, script, None)
    }

    /// [`FakeGithub::enqueue_job`] with a job timeout for the runner.
    pub fn enqueue_job_with_timeout(
        &self,
        scope: &str,
        labels: &[&str],
        script: &str,
        timeout_secs: Option<u64>,
    ) -> JobRecord {
        let scope = state::normalize_scope(scope).unwrap_or_else(|| scope.to_string());
        let labels = labels.iter().map(|s| s.to_string()).collect();
        self.with_state(|st| st.enqueue_job(&scope, labels, script, timeout_secs))
    }

    pub fn job(&self, id: u64) -> Option<JobRecord> {
        self.shared.lock().jobs.get(&id).cloned()
    }

    pub fn jobs(&self) -> Vec<JobRecord> {
        self.shared.lock().jobs.values().cloned().collect()
    }

    /// Live registrations, oldest first.
    pub fn live_runners(&self) -> Vec<RunnerRecord> {
        self.shared.lock().runners.values().cloned().collect()
    }

    pub fn runner(&self, id: u64) -> Option<RunnerRecord> {
        self.shared.lock().runners.get(&id).cloned()
    }

    /// Every `encoded_jit_config` handed out, in order.
    pub fn jit_configs_issued(&self) -> Vec<String> {
        self.shared.lock().jit_configs.clone()
    }

    /// GitHub API requests received (all of them: faulted, refused and served).
    pub fn api_calls(&self) -> u64 {
        self.shared.lock().api_calls
    }

    pub fn stats(&self) -> Stats {
        let st = self.shared.lock();
        Stats {
            api_calls: st.api_calls,
            by_route: st.by_route.clone(),
            runners_created: st.created_total,
            runners_deleted: st.deleted_total,
        }
    }

    /// Zeroes the API request counters.
    pub fn reset_stats(&self) {
        self.with_state(|st| {
            st.api_calls = 0;
            st.by_route.clear();
        });
    }

    /// Sets the primary budget: `remaining` calls, refilled `reset_in_secs` from now.
    pub fn set_rate_limit(&self, remaining: u64, reset_in_secs: u64) {
        self.with_state(|st| st.set_rate_limit(remaining, Some(reset_in_secs)));
    }

    pub fn rate_limit(&self) -> RateLimit {
        self.shared.lock().rate
    }

    /// Waits until `pred` holds on the state, or `timeout` passes. Returns whether it held.
    pub async fn wait_for(&self, timeout: Duration, mut pred: impl FnMut(&State) -> bool) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.shared.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if pred(&self.shared.lock()) {
                return true;
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return false;
            }
            let nap = (deadline - now).min(WAIT_RECHECK);
            let _ = tokio::time::timeout(nap, &mut notified).await;
        }
    }

    /// Waits until every queued job is completed (true at once when there is none).
    pub async fn wait_jobs_completed(&self, timeout: Duration) -> bool {
        self.wait_for(timeout, |st| {
            st.jobs.values().all(|j| j.status == JobStatus::Completed)
        })
        .await
    }

    /// Waits until job `id` is completed; returns it then, `None` on timeout.
    pub async fn wait_job_completed(&self, id: u64, timeout: Duration) -> Option<JobRecord> {
        let done = self
            .wait_for(timeout, |st| {
                st.jobs
                    .get(&id)
                    .is_some_and(|j| j.status == JobStatus::Completed)
            })
            .await;
        if done {
            self.job(id)
        } else {
            None
        }
    }

    /// Stops accepting, ends pending long polls, and waits up to [`SHUTDOWN_GRACE`] for open
    /// connections before cutting them.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(mut task) = self.task.take() {
            if tokio::time::timeout(SHUTDOWN_GRACE, &mut task)
                .await
                .is_err()
            {
                task.abort();
            }
        }
    }
}

impl Drop for FakeGithub {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Decodes an `encoded_jit_config` into its files, each parsed as JSON (`.runner`,
/// `.credentials`, `.credentials_rsaparams`).
pub fn decode_jit_config(encoded: &str) -> anyhow::Result<BTreeMap<String, Value>> {
    let outer = B64
        .decode(encoded.trim())
        .context("JIT config is not base64")?;
    let files: BTreeMap<String, String> =
        serde_json::from_slice(&outer).context("JIT config is not a JSON object of strings")?;
    files
        .into_iter()
        .map(|(name, content)| {
            let raw = B64
                .decode(content)
                .with_context(|| format!("{name} is not base64"))?;
            let value =
                serde_json::from_slice(&raw).with_context(|| format!("{name} is not JSON"))?;
            Ok((name, value))
        })
        .collect()
}
