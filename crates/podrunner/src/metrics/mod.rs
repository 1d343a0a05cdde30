//! Prometheus metrics (docs/metrics.md). Events (jobs started and completed, failures,
//! container starts) are counted as they happen by `manager/record.rs`; states (idle, busy,
//! desired runners, backoff, rate limit, API calls, engines) are read from the manager's status
//! snapshot when scraped, so nothing is counted twice and idle runners cost nothing.
//!
//! Names follow ARC's listener where the meaning matches (`gha_*`, label `pool` for its scale
//! set), so dashboards carry over; the rest is `podrunner_*`.

pub mod proxy;

use crate::control::StatusSnapshot;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::collections::BTreeMap;

/// The Content-Type of [`Metrics::render`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Job durations: seconds to hours (a job may run up to 6 h on GitHub's side, 5 days
/// self-hosted; the last bucket catches the rest).
const JOB_BUCKETS: [f64; 14] = [
    1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0, 7200.0,
];
/// Container starts: a registration plus `podman run`, under a second on a quiet host,
/// longer while many start at once or an image is pulled.
const START_BUCKETS: [f64; 12] = [
    0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0, 60.0,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, PartialOrd, Ord, EncodeLabelSet)]
pub struct PoolLabel {
    pub pool: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct JobLabels {
    pool: String,
    job_result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    pool: String,
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    pool: String,
    state: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ApiLabels {
    endpoint: String,
    status: String,
}

type Histograms = Family<PoolLabel, Histogram, fn() -> Histogram>;

fn job_histogram() -> Histogram {
    Histogram::new(JOB_BUCKETS)
}

fn start_histogram() -> Histogram {
    Histogram::new(START_BUCKETS)
}

fn pool(p: &str) -> PoolLabel {
    PoolLabel {
        pool: p.to_string(),
    }
}

/// The label value of a job's result: the runner's word in lower case (`succeeded`,
/// `failed`, `canceled`, as ARC's listener labels GitHub's results), or `unknown` when the
/// runner did not say.
pub fn job_result_label(result: Option<&str>) -> String {
    result
        .map(|r| r.trim().to_ascii_lowercase())
        .filter(|r| !r.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

/// The event counters. Cheap to clone (the families share their values).
#[derive(Debug, Clone)]
pub struct Metrics {
    started_jobs: Family<PoolLabel, Counter>,
    completed_jobs: Family<JobLabels, Counter>,
    startup: Histograms,
    execution: Histograms,
    container_start: Histograms,
    replacements: Family<PoolLabel, Counter>,
    failures: Family<ReasonLabels, Counter>,
    oom_kills: Family<PoolLabel, Counter>,
    proxy_refusals: Family<ReasonLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            started_jobs: Family::default(),
            completed_jobs: Family::default(),
            startup: Family::new_with_constructor(job_histogram),
            execution: Family::new_with_constructor(job_histogram),
            container_start: Family::new_with_constructor(start_histogram),
            replacements: Family::default(),
            failures: Family::default(),
            oom_kills: Family::default(),
            proxy_refusals: Family::default(),
        }
    }
}

impl Metrics {
    pub fn job_started(&self, p: &str) {
        self.started_jobs.get_or_create(&pool(p)).inc();
    }

    /// A job ended. Durations are observed when both ends are known.
    pub fn job_completed(
        &self,
        p: &str,
        result: Option<&str>,
        startup_secs: Option<f64>,
        execution_secs: Option<f64>,
    ) {
        let l = JobLabels {
            pool: p.into(),
            job_result: job_result_label(result),
        };
        self.completed_jobs.get_or_create(&l).inc();
        if let Some(s) = startup_secs {
            self.startup.get_or_create(&pool(p)).observe(s.max(0.0));
        }
        if let Some(s) = execution_secs {
            self.execution.get_or_create(&pool(p)).observe(s.max(0.0));
        }
    }

    pub fn container_started(&self, p: &str, secs: f64) {
        self.container_start.get_or_create(&pool(p)).observe(secs);
    }

    pub fn replacement(&self, p: &str) {
        self.replacements.get_or_create(&pool(p)).inc();
    }

    pub fn failure(&self, p: &str, reason: &str) {
        let l = ReasonLabels {
            pool: p.into(),
            reason: reason.into(),
        };
        self.failures.get_or_create(&l).inc();
    }

    pub fn oom_kill(&self, p: &str) {
        self.oom_kills.get_or_create(&pool(p)).inc();
    }

    pub fn proxy_refusals(&self, p: &str, reason: &str, n: u64) {
        let l = ReasonLabels {
            pool: p.into(),
            reason: reason.into(),
        };
        self.proxy_refusals.get_or_create(&l).inc_by(n);
    }

    /// The whole text a scrape returns: the event counters plus the state in `snap`.
    /// `api_calls` is the GitHub client's count by (endpoint, status).
    pub fn render(
        &self,
        snap: &StatusSnapshot,
        api_calls: &BTreeMap<(&'static str, String), u64>,
    ) -> String {
        let mut reg = Registry::default();
        reg.register(
            "gha_started_jobs",
            "Jobs started since the manager started",
            self.started_jobs.clone(),
        );
        reg.register(
            "gha_completed_jobs",
            "Jobs completed since the manager started, by the result the runner reported",
            self.completed_jobs.clone(),
        );
        reg.register(
            "gha_job_startup_duration_seconds",
            "Seconds a job waited from being queued to starting on a runner (when the queue time is known)",
            self.startup.clone(),
        );
        reg.register(
            "gha_job_execution_duration_seconds",
            "Seconds a job ran on its runner",
            self.execution.clone(),
        );
        reg.register(
            "podrunner_container_start_seconds",
            "Seconds from deciding to start a runner to its container running (registration and podman run)",
            self.container_start.clone(),
        );
        reg.register(
            "podrunner_replacements",
            "Runners started to take the place of one that ended",
            self.replacements.clone(),
        );
        reg.register(
            "podrunner_runner_failures",
            "Runners that failed, by reason (register, start, exit_code, oom, no_job)",
            self.failures.clone(),
        );
        reg.register(
            "podrunner_oom_kills",
            "Runners the kernel's OOM killer struck at the pool's memory limit",
            self.oom_kills.clone(),
        );
        reg.register(
            "podrunner_proxy_refusals",
            "Docker API requests the per-runner proxy refused, by reason (endpoint, policy)",
            self.proxy_refusals.clone(),
        );
        register_state(&mut reg, snap, api_calls);
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &reg);
        out
    }
}

fn gauges<L>(reg: &mut Registry, name: &str, help: &str, values: Vec<(L, i64)>)
where
    L: EncodeLabelSet + Clone + std::hash::Hash + Eq + std::fmt::Debug + Send + Sync + 'static,
{
    let f: Family<L, Gauge> = Family::default();
    for (l, v) in values {
        f.get_or_create(&l).set(v);
    }
    reg.register(name, help, f);
}

/// The gauges read from the manager's state at scrape time.
fn register_state(
    reg: &mut Registry,
    snap: &StatusSnapshot,
    api_calls: &BTreeMap<(&'static str, String), u64>,
) {
    let count = |p: &str, pred: &dyn Fn(&crate::control::RunnerStatus) -> bool| -> i64 {
        snap.runners
            .iter()
            .filter(|r| r.pool == p && pred(r))
            .count() as i64
    };
    let per_pool = |f: &dyn Fn(&crate::control::PoolStatus) -> i64| -> Vec<(PoolLabel, i64)> {
        snap.pools.iter().map(|p| (pool(&p.name), f(p))).collect()
    };
    gauges(
        reg,
        "gha_idle_runners",
        "Registered runners waiting for a job",
        per_pool(&|p| count(&p.name, &|r| r.state == "idle")),
    );
    gauges(
        reg,
        "gha_busy_runners",
        "Registered runners running a job",
        per_pool(&|p| count(&p.name, &|r| r.state == "busy")),
    );
    gauges(
        reg,
        "gha_registered_runners",
        "Runners with a registration on GitHub (starting, idle, busy or stopping)",
        per_pool(&|p| count(&p.name, &|r| r.runner_id.is_some() && r.state != "exited")),
    );
    gauges(
        reg,
        "gha_desired_runners",
        "Runners the pool should keep (0 while draining)",
        per_pool(&|p| p.desired as i64),
    );
    let states = ["starting", "idle", "busy", "stopping", "exited"];
    gauges(
        reg,
        "podrunner_runners",
        "Runners the manager holds, by state",
        snap.pools
            .iter()
            .flat_map(|p| {
                states.iter().map(move |s| {
                    (
                        StateLabels {
                            pool: p.name.clone(),
                            state: s.to_string(),
                        },
                        0,
                    )
                })
            })
            .map(|(l, _)| {
                let n = count(&l.pool, &|r| r.state == l.state);
                (l, n)
            })
            .collect(),
    );
    gauges(
        reg,
        "podrunner_pool_consecutive_failures",
        "Failures in a row; above 0 the pool backs off and starts one runner at a time",
        per_pool(&|p| p.failures as i64),
    );
    gauges(
        reg,
        "podrunner_pool_backoff_seconds",
        "Seconds until the pool may start a runner again (0: not backing off)",
        per_pool(&|p| p.backing_off_secs.unwrap_or(0) as i64),
    );
    gauges(
        reg,
        "podrunner_docker_engines_running",
        "Private Docker engines running (docker = \"isolated\": started on a job's first docker call)",
        per_pool(&|p| count(&p.name, &|r| r.docker.as_deref() == Some("engine"))),
    );
    let calls: Family<ApiLabels, Counter> = Family::default();
    for ((endpoint, status), n) in api_calls {
        calls
            .get_or_create(&ApiLabels {
                endpoint: endpoint.to_string(),
                status: status.clone(),
            })
            .inc_by(*n);
    }
    reg.register(
        "podrunner_github_api_calls",
        "GitHub API requests by endpoint and HTTP status (error: no answer), retries included",
        calls,
    );
    let rl = &snap.rate_limit;
    if let Some(r) = rl.remaining {
        let g: Gauge = Gauge::default();
        g.set(r as i64);
        reg.register(
            "podrunner_github_rate_limit_remaining",
            "Requests left in GitHub's rate limit window (last answer)",
            g,
        );
    }
    if let Some(r) = rl.reset {
        let g: Gauge = Gauge::default();
        g.set(r as i64);
        reg.register(
            "podrunner_github_rate_limit_reset_timestamp_seconds",
            "When GitHub's rate limit window resets (epoch seconds, last answer)",
            g,
        );
    }
    let up: Gauge = Gauge::default();
    up.set(snap.draining as i64);
    reg.register(
        "podrunner_draining",
        "1 while the manager drains (stopping: no replacements)",
        up,
    );
}

#[cfg(test)]
mod tests;
