//! How many runners a pool wants (docs/scaling.md). Pure arithmetic on what GitHub last
//! reported; the manager feeds the figures in and the plan starts or retires runners to match.
//!
//! Three modes:
//! - **fixed** (`count = N`): always N runners, idle or busy;
//! - **scale set**: the pool is a GitHub runner scale set; GitHub's message queue reports how
//!   many jobs it assigned to the set, and the pool wants `min(max, min_idle + assigned)`,
//!   the rule GitHub's own listener applies;
//! - **labels**: a pool registered by labels; polling queued jobs tells how many wait for
//!   runners with the pool's labels, and the pool wants `min(max, busy + queued + min_idle)`.
//!
//! The figures are counts GitHub reports, never a tally of messages: a lost or repeated
//! message cannot make the pool drift.

use super::PoolName;
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// How long an idle runner of a demand pool waits for a job before it is retired, unless the
/// pool says otherwise: long enough that a burst of jobs queued a few seconds apart reuses the
/// runners it started, short enough that a big runner does not sit idle for long.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(300);

/// How often a repository's queued jobs are polled unless its label pools say otherwise: a
/// queued job waits at most this long for its runner to be started (a webhook cuts it short).
/// With conditional requests an idle repository costs no rate limit at all.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_secs(10);

/// Where a pool's size comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    Fixed,
    ScaleSet,
    Labels,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Fixed => "fixed",
            Mode::ScaleSet => "scale-set",
            Mode::Labels => "labels",
        }
    }
}

/// A demand pool's bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    /// Idle runners kept ready (may be 0).
    pub min_idle: u32,
    /// Runners of the pool at most, busy or not.
    pub max: u32,
}

/// What GitHub last said about a pool's jobs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Demand {
    /// Scale sets: `totalAssignedJobs` of the last statistics (jobs GitHub assigned to the
    /// set, running ones included).
    pub assigned: u32,
    /// Label pools: queued jobs whose `runs-on` labels this pool's runners satisfy.
    pub queued: u32,
}

/// Runners a scale set pool wants: `min(max, min_idle + assigned)`.
pub fn scale_set_desired(b: Bounds, d: Demand) -> u32 {
    b.min_idle.saturating_add(d.assigned).min(b.max)
}

/// Runners a label pool wants: the busy ones keep their place, every queued job gets one,
/// plus `min_idle`; never more than `max`.
pub fn labels_desired(b: Bounds, d: Demand, busy: u32) -> u32 {
    busy.saturating_add(d.queued)
        .saturating_add(b.min_idle)
        .min(b.max)
}

/// The size for any mode. `fixed` is the fixed pool's count (or its `podrunner scale`).
pub fn desired(mode: Mode, fixed: u32, b: Bounds, d: Demand, busy: u32) -> u32 {
    match mode {
        Mode::Fixed => fixed,
        Mode::ScaleSet => scale_set_desired(b, d),
        Mode::Labels => labels_desired(b, d, busy),
    }
}

/// Whether a label list a job asks for (`runs-on`) is satisfied by a runner's labels: every
/// label the job names is among the runner's, ignoring case (GitHub's matching rule).
pub fn labels_satisfy(runner: &[String], job: &[String]) -> bool {
    !job.is_empty()
        && job
            .iter()
            .all(|j| runner.iter().any(|r| r.eq_ignore_ascii_case(j)))
}

/// Queued jobs per label pool: each job (its `runs-on` labels) counts for the first pool, in
/// config order, whose labels satisfy it, so two pools never both start a runner for one job.
/// Every pool is in the answer, with 0 when nothing waits for it.
pub fn queued_per_pool(
    pools: &[(PoolName, Vec<String>)],
    jobs: &[Vec<String>],
) -> BTreeMap<PoolName, u32> {
    let mut out: BTreeMap<PoolName, u32> = pools.iter().map(|(n, _)| (n.clone(), 0)).collect();
    for job in jobs {
        if let Some((name, _)) = pools.iter().find(|(_, labels)| labels_satisfy(labels, job)) {
            *out.entry(name.clone()).or_default() += 1;
        }
    }
    out
}

/// Counted API calls one repository's queued-job polling may make per hour. GitHub grants a
/// token 5,000; this leaves most of them to registrations and lists. A 304 costs nothing and
/// is not counted.
pub const POLL_BUDGET_PER_HOUR: u32 = 1000;

/// The hourly budget of counted calls of one poller (pure: `now` comes in).
#[derive(Debug, Clone, PartialEq)]
pub struct PollBudget {
    pub limit: u32,
    pub window: Duration,
    start: Option<Instant>,
    pub used: u32,
}

impl PollBudget {
    pub fn new(limit: u32, window: Duration) -> PollBudget {
        PollBudget {
            limit,
            window,
            start: None,
            used: 0,
        }
    }

    fn roll(&mut self, now: Instant) {
        if self
            .start
            .is_none_or(|s| now.saturating_duration_since(s) >= self.window)
        {
            self.start = Some(now);
            self.used = 0;
        }
    }

    /// Whether a call may be made now.
    pub fn allows(&mut self, now: Instant) -> bool {
        self.roll(now);
        self.used < self.limit
    }

    /// A call was counted by GitHub (any answer but 304).
    pub fn spend(&mut self, now: Instant) {
        self.roll(now);
        self.used = self.used.saturating_add(1);
    }

    /// When the budget refills, if it is spent.
    pub fn refills_in(&self, now: Instant) -> Option<Duration> {
        (self.used >= self.limit)
            .then(|| {
                self.start
                    .map(|s| (s + self.window).saturating_duration_since(now))
            })
            .flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(name: &str) -> PoolName {
        PoolName::new(name).unwrap()
    }

    #[test]
    fn each_queued_job_counts_for_the_first_pool_it_fits() {
        let v = |x: &[&str]| x.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let pools = vec![
            (pool("gpu"), v(&["self-hosted", "linux", "x64", "gpu"])),
            (pool("any"), v(&["self-hosted", "linux", "x64"])),
            (pool("arm"), v(&["self-hosted", "linux", "arm64"])),
        ];
        let jobs = vec![
            v(&["self-hosted", "gpu"]),
            v(&["self-hosted", "linux"]),
            v(&["self-hosted"]),
            v(&["windows"]),
            v(&["ARM64"]),
        ];
        let got = queued_per_pool(&pools, &jobs);
        assert_eq!(
            got,
            BTreeMap::from([(pool("gpu"), 3), (pool("any"), 0), (pool("arm"), 1)])
        );
    }

    #[test]
    fn poll_budget_stops_at_its_limit_and_refills_after_the_window() {
        let t0 = Instant::now();
        let mut b = PollBudget::new(2, Duration::from_secs(3600));
        assert!(b.allows(t0));
        b.spend(t0);
        assert!(b.allows(t0));
        b.spend(t0 + Duration::from_secs(1));
        assert!(!b.allows(t0 + Duration::from_secs(2)));
        assert_eq!(
            b.refills_in(t0 + Duration::from_secs(600)),
            Some(Duration::from_secs(3000))
        );
        assert!(b.allows(t0 + Duration::from_secs(3600)));
        assert_eq!(b.used, 0);
        assert_eq!(b.refills_in(t0 + Duration::from_secs(3600)), None);
    }

    fn b(min_idle: u32, max: u32) -> Bounds {
        Bounds { min_idle, max }
    }
    fn assigned(n: u32) -> Demand {
        Demand {
            assigned: n,
            queued: 0,
        }
    }
    fn queued(n: u32) -> Demand {
        Demand {
            assigned: 0,
            queued: n,
        }
    }

    #[test]
    fn scale_set_follows_assigned_jobs_within_bounds() {
        assert_eq!(scale_set_desired(b(0, 4), assigned(0)), 0);
        assert_eq!(scale_set_desired(b(1, 4), assigned(0)), 1);
        assert_eq!(scale_set_desired(b(0, 4), assigned(3)), 3);
        assert_eq!(scale_set_desired(b(1, 4), assigned(3)), 4);
        assert_eq!(scale_set_desired(b(0, 4), assigned(20)), 4);
        assert_eq!(scale_set_desired(b(2, 2), assigned(0)), 2);
        assert_eq!(scale_set_desired(b(0, 0), assigned(5)), 0);
        assert_eq!(scale_set_desired(b(u32::MAX, 7), assigned(u32::MAX)), 7);
    }

    #[test]
    fn label_pools_keep_busy_runners_and_add_one_per_queued_job() {
        assert_eq!(labels_desired(b(0, 4), queued(0), 0), 0);
        assert_eq!(labels_desired(b(1, 4), queued(0), 0), 1);
        assert_eq!(labels_desired(b(1, 4), queued(0), 2), 3);
        assert_eq!(labels_desired(b(0, 4), queued(2), 1), 3);
        assert_eq!(labels_desired(b(0, 4), queued(20), 0), 4);
        assert_eq!(labels_desired(b(1, 4), queued(1), 3), 4);
    }

    #[test]
    fn fixed_pools_ignore_demand() {
        let d = Demand {
            assigned: 9,
            queued: 9,
        };
        assert_eq!(desired(Mode::Fixed, 3, b(0, 1), d, 9), 3);
        assert_eq!(desired(Mode::ScaleSet, 3, b(0, 5), d, 9), 5);
        assert_eq!(desired(Mode::Labels, 3, b(0, 50), d, 2), 11);
    }

    #[test]
    fn label_matching() {
        let r: Vec<String> = ["self-hosted", "Linux", "x64", "gpu"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let j = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(labels_satisfy(&r, &j(&["self-hosted", "linux"])));
        assert!(labels_satisfy(&r, &j(&["GPU"])));
        assert!(!labels_satisfy(&r, &j(&["self-hosted", "arm64"])));
        assert!(!labels_satisfy(&r, &j(&[])));
    }

    #[test]
    fn modes_print_as_status_shows_them() {
        assert_eq!(Mode::ScaleSet.as_str(), "scale-set");
        assert_eq!(
            serde_json::to_string(&Mode::ScaleSet).unwrap(),
            "\"scale-set\""
        );
    }
}
