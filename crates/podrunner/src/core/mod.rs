//! The decision core: what the manager knows (runners, pools, orphaned registrations) and
//! what it should do next. No I/O happens here: the manager feeds in observations (podman
//! events, `podman ps`, GitHub's runner list, results of earlier actions) and executes the
//! [`Action`]s that [`State::plan`] returns. Every function takes `now` as a value, so the
//! whole lifecycle is unit-tested with plain values.
//!
//! Invariants:
//! - a runner's record exists before its registration is requested, so a registration in
//!   GitHub's list with one of our names is either a known runner or an orphan;
//! - at most one action is in flight per runner (the phase says which);
//! - a runner GitHub reports busy is never stopped, except when a drain runs out of time.
//!
//! Files: this one holds the state's types and the bookkeeping of success and failure;
//! `lifecycle.rs` one runner's transitions, `sync.rs` what outside lists teach (GitHub's
//! runners, `podman ps`, pulls), `plan.rs` the next actions.

pub mod backoff;
pub mod demand;
pub mod ending;
pub mod judge;
mod lifecycle;
pub mod naming;
pub mod outcome;
mod plan;
pub mod pull;
mod sync;

pub use crate::config::names::{PoolName, Scope};
use outcome::{JobResult, RunnerOutcome};
pub use pull::PullPolicy;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::{Duration, Instant};

/// The shortest gap between two lists of GitHub's runners. Exits in that window share one
/// list call, which keeps API use under 2 calls per job (one JIT, a share of a list).
pub const SWEEP_MIN_INTERVAL: Duration = Duration::from_secs(2);
/// With nothing pending, GitHub's runner list is read this often: it refreshes busy flags
/// and finds orphaned registrations. 120 calls an hour of a 5,000 budget.
pub const SWEEP_INTERVAL: Duration = Duration::from_secs(30);
/// `podman ps` this often, to catch an exit whose event was missed.
pub const PODMAN_RESYNC_INTERVAL: Duration = Duration::from_secs(30);
/// Wait before retrying a failed cleanup or a delete GitHub refused.
pub const CLEANUP_RETRY: Duration = Duration::from_secs(15);
/// Wait before retrying to retire a runner after an error.
pub const RETIRE_RETRY: Duration = Duration::from_secs(10);
/// After failed lists (GitHub down, token revoked, rate limited) the gap between sweeps
/// doubles from [`SWEEP_MIN_INTERVAL`] up to this: a dead API costs a few calls an hour.
pub const SWEEP_BACKOFF_CAP: Duration = Duration::from_secs(300);
/// A registration of the pool made by another host (or of unknown origin) is deleted only
/// after it has been offline and idle this long in every list: a runner that is starting is
/// offline for seconds, and its own host retires one that never comes online after
/// `online_timeout` (default 5 minutes), well within this.
pub const FLEET_OFFLINE_GRACE: Duration = Duration::from_secs(15 * 60);
/// How many finished jobs a pool remembers for `status`.
pub const RECENT_RESULTS: usize = 10;
/// Default of `online_timeout`: a JIT runner is online within seconds; five minutes covers a
/// slow image start and a self-update (about 200 MB).
pub const DEFAULT_ONLINE_TIMEOUT: Duration = Duration::from_secs(300);
/// The exit code of `run.sh` when GitHub refuses the runner's version, with
/// `ACTIONS_RUNNER_RETURN_VERSION_DEPRECATED_EXIT_CODE=1` (docs/runner-output.md).
pub const EXIT_VERSION_DEPRECATED: i32 = 7;
/// Default of a pool's `stop_timeout`: config/ never goes below it.
pub const DEFAULT_STOP_TIMEOUT: Duration =
    Duration::from_secs(crate::config::MIN_STOP_TIMEOUT_SECS);

/// What desired state says about one pool.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolSpec {
    pub name: PoolName,
    /// Which runner list the pool's registrations live in.
    pub scope: Scope,
    /// How long `podman stop` waits before it kills the runner (the pool's `stop_timeout`).
    pub stop_timeout: Duration,
    pub prefix: String,
    pub desired: u32,
    pub restart_delay: Duration,
    /// Demand pools (docs/scaling.md): an idle runner is retired only after it has waited this
    /// long for a job. `None`: at once (fixed pools).
    pub idle_timeout: Option<Duration>,
    /// Demand pools: runners of the pool at most, counting those still starting or stopping,
    /// so `max` holds even while a retired runner's container winds down.
    pub cap: Option<u32>,
    /// The pool's `runner_name`: names of the pool made on any host (see [`naming`]).
    pub family: String,
    /// A runner that has not come online after this long is retired and counted a failure.
    pub online_timeout: Duration,
    pub pull: PullPolicy,
    /// How often to look for a newer image (`pull = "newer"`).
    pub pull_interval: Duration,
}

/// How long `podman stop` gives a runner of `pool`: its spec's `stop_timeout`, the default
/// for a runner of a pool that left the config (or of none).
fn stop_timeout(specs: &[PoolSpec], pool: Option<&PoolName>) -> Duration {
    specs
        .iter()
        .find(|s| Some(&s.name) == pool)
        .map_or(DEFAULT_STOP_TIMEOUT, |s| s.stop_timeout)
}

impl PoolSpec {
    /// A pool of `scope` that wants no runners, with the defaults of every other setting.
    pub fn new(name: PoolName, scope: Scope) -> PoolSpec {
        PoolSpec {
            name,
            scope,
            stop_timeout: DEFAULT_STOP_TIMEOUT,
            prefix: String::new(),
            desired: 0,
            restart_delay: Duration::from_secs(1),
            family: String::new(),
            online_timeout: DEFAULT_ONLINE_TIMEOUT,
            pull: PullPolicy::Never,
            pull_interval: pull::DEFAULT_PULL_INTERVAL,
            idle_timeout: None,
            cap: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// The JIT config is being requested.
    Registering,
    /// Registered; `podman run` is in flight.
    Starting,
    /// The container runs.
    Running,
    /// Its registration is being deleted, then the container stopped.
    Retiring,
    /// The container is gone; cleanup waits.
    Exited,
    /// Cleanup (files, registration) is in flight.
    CleaningUp,
}

/// After an exit: is the registration still on GitHub?
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// Not known yet: the next list of runners tells.
    Pending,
    /// Gone: the runner finished its job and removed itself, or we deleted it.
    Gone,
    /// Still registered: the runner died without finishing a job. Delete it.
    Present,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RunnerRec {
    pub name: String,
    /// `None` for an adopted container whose pool label is missing or no valid pool name: it
    /// belongs to no configured pool, like one whose pool left the config (it wants 0
    /// runners, so a live one is retired), and its failures count against no pool's backoff.
    pub pool: Option<PoolName>,
    /// Where its registration lives; `None` for an adopted container whose label names no
    /// scope podrunner can read (its registration is then left to the orphan sweep).
    pub scope: Option<Scope>,
    pub runner_id: Option<u64>,
    pub container_id: Option<String>,
    pub phase: Phase,
    pub created: Instant,
    pub running_since: Option<Instant>,
    pub exited_at: Option<Instant>,
    pub exit_code: Option<i32>,
    pub verdict: Verdict,
    /// GitHub's view from the last list.
    pub busy: bool,
    pub online: bool,
    /// We asked it to stop: its exit is no failure.
    pub stop_requested: bool,
    pub registration_deleted: bool,
    pub adopted: bool,
    /// Podman reported the container removed (or it was not found).
    pub container_gone: bool,
    /// The kernel's OOM killer struck inside the container.
    pub oom_killed: bool,
    pub retry_at: Option<Instant>,
    /// What the runner's own output said so far.
    pub outcome: RunnerOutcome,
    /// Its end counted as a failure of the pool.
    pub failed: bool,
}

impl RunnerRec {
    fn new(name: &str, pool: Option<PoolName>, scope: Option<Scope>, now: Instant) -> RunnerRec {
        RunnerRec {
            name: name.into(),
            pool,
            scope,
            runner_id: None,
            container_id: None,
            phase: Phase::Registering,
            created: now,
            running_since: None,
            exited_at: None,
            exit_code: None,
            verdict: Verdict::Pending,
            busy: false,
            online: false,
            stop_requested: false,
            registration_deleted: false,
            adopted: false,
            container_gone: false,
            oom_killed: false,
            retry_at: None,
            outcome: RunnerOutcome::default(),
            failed: false,
        }
    }

    /// Came online: it said `Listening for Jobs`, or GitHub listed it online or busy.
    pub fn came_online(&self) -> bool {
        self.outcome.listened || self.online || self.busy
    }

    /// Counts toward the pool's size.
    pub fn is_live(&self) -> bool {
        matches!(
            self.phase,
            Phase::Registering | Phase::Starting | Phase::Running
        ) && !self.stop_requested
    }

    /// Has a registration or a container that counts against a pool's `max`: anything from
    /// registering until its container is gone.
    pub fn holds_a_place(&self) -> bool {
        matches!(
            self.phase,
            Phase::Registering | Phase::Starting | Phase::Running | Phase::Retiring
        )
    }

    /// The state shown to users.
    pub fn display_state(&self) -> &'static str {
        match self.phase {
            Phase::Registering | Phase::Starting => "starting",
            Phase::Running if self.busy || self.outcome.took_job() => "busy",
            Phase::Running => "idle",
            Phase::Retiring => "stopping",
            Phase::Exited | Phase::CleaningUp => "exited",
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct PoolState {
    pub failures: u32,
    pub next_start_at: Option<Instant>,
    pub last_error: Option<String>,
    pub restart_delay: Duration,
    pub jobs_done: u64,
    /// `last_error` came from a failed list of GitHub's runners: the next good list clears it.
    pub github_error: bool,
    /// The last finished jobs, newest last (at most [`RECENT_RESULTS`]).
    pub recent: VecDeque<JobRecord>,
    /// The image: pulls and what they found (core/pull.rs).
    pub image: pull::ImageState,
}

/// One finished job as the runner reported it.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct JobRecord {
    pub runner: String,
    pub job: String,
    pub result: JobResult,
    pub duration_secs: Option<f64>,
}

/// A runner that is gone, with everything known about it: what a history or metrics module
/// consumes ([`State::take_finished`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finished {
    /// See [`RunnerRec::pool`].
    pub pool: Option<PoolName>,
    pub runner: String,
    pub runner_id: Option<u64>,
    pub exit_code: Option<i32>,
    /// Counted as a failure of the pool (it backs off).
    pub failure: bool,
    /// podrunner stopped it (scale down, drain, never online).
    pub stopped: bool,
    pub outcome: RunnerOutcome,
    /// Seconds from its start to its exit.
    pub lifetime_secs: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Orphan {
    pub scope: Scope,
    pub name: String,
    pub in_flight: bool,
    pub retry_at: Option<Instant>,
}

/// An observation of a container from `podman ps` or its labels.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerSeen {
    pub name: String,
    pub id: String,
    /// From the container's pool label; `None` when it has none or it is no valid pool name
    /// (see [`RunnerRec::pool`]).
    pub pool: Option<PoolName>,
    /// From the container's scope label; `None` when it names none podrunner can read.
    pub scope: Option<Scope>,
    pub runner_id: Option<u64>,
    pub alive: bool,
    pub exit_code: Option<i32>,
}

/// A registration from GitHub's runner list.
#[derive(Debug, Clone, PartialEq)]
pub struct RegistrationSeen {
    pub id: u64,
    pub name: String,
    pub busy: bool,
    pub online: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Register `name` (JIT) and start its container.
    Start { pool: PoolName, name: String },
    /// Delete the registration (`runner_id` in `scope`), then stop the container, giving it
    /// `stop_timeout` (refused with 422 if busy).
    Retire {
        name: String,
        scope: Option<Scope>,
        runner_id: Option<u64>,
        stop_timeout: Duration,
    },
    /// Stop a container whatever it is doing (drain timeout).
    ForceStop {
        name: String,
        stop_timeout: Duration,
    },
    /// Remove the runner's files (the work folder of `pool`), its container unless it is gone
    /// (`remove_container`), and delete its registration in `scope` if `delete_id` is set.
    Cleanup {
        name: String,
        scope: Option<Scope>,
        pool: Option<PoolName>,
        delete_id: Option<u64>,
        remove_container: bool,
    },
    /// Delete a registration that has no container.
    DeleteOrphan { scope: Scope, id: u64 },
    /// Pull the pool's image (`pull::PullReason::Start`: only if it is missing).
    PullImage {
        pool: PoolName,
        reason: pull::PullReason,
    },
    /// Remove an old image no runner needs any more (refused while a container uses it).
    PruneImage { id: String },
    /// List GitHub's runners for every scope.
    Sweep,
    /// `podman ps` our containers.
    Resync,
}

/// How a finished action or an observation changes the state.
#[derive(Debug, Clone, PartialEq)]
pub enum RetireOutcome {
    Stopped,
    Busy,
    Failed,
}

#[derive(Debug, Clone, PartialEq)]
pub enum CleanupOutcome {
    Done,
    Busy,
    Failed,
}

#[derive(Debug, Default)]
pub struct State {
    pub runners: BTreeMap<String, RunnerRec>,
    pub pools: BTreeMap<PoolName, PoolState>,
    /// What runners of no pool ([`RunnerRec::pool`] `None`) count against: shown nowhere.
    unpooled: PoolState,
    pub orphans: BTreeMap<u64, Orphan>,
    pub draining: bool,
    pub drain_deadline: Option<Instant>,
    sweep_in_flight: Option<Instant>,
    last_sweep: Option<Instant>,
    pub sweep_wanted: bool,
    resync_in_flight: Option<Instant>,
    last_resync: Option<Instant>,
    pub resync_wanted: bool,
    /// Consecutive sweeps with a failed list: they space out the next ones.
    pub sweep_failures: u32,
    /// Registrations of our pools' fleets that are not this host's, offline and idle since.
    pub fleet_offline: BTreeMap<u64, Instant>,
    /// Runners that are gone, for history and metrics ([`State::take_finished`]).
    finished: Vec<Finished>,
    /// Old image ids to remove once no container uses them.
    pub stale_images: BTreeSet<String>,
    prune_wanted: bool,
}

/// A runner's pool as status, history and the log show it: empty for a runner of no pool
/// ([`RunnerRec::pool`]).
pub fn pool_label(pool: Option<&PoolName>) -> &str {
    pool.map_or("", PoolName::as_str)
}

/// What status and the log say about a runner the OOM killer hit.
pub fn oom_message(name: &str) -> String {
    format!("runner {name} ran out of memory: the kernel killed a process at the pool's memory limit (raise `memory`, or make the job use less)")
}

impl State {
    pub fn new() -> State {
        State::default()
    }

    fn pool_mut(&mut self, pool: Option<&PoolName>) -> &mut PoolState {
        match pool {
            Some(p) => self.pools.entry(p.clone()).or_default(),
            None => &mut self.unpooled,
        }
    }

    fn record_failure(&mut self, pool: Option<&PoolName>, now: Instant, why: String) {
        let p = self.pool_mut(pool);
        p.failures = p.failures.saturating_add(1);
        p.last_error = Some(why);
        let at = now + backoff::start_delay(p.failures, p.restart_delay);
        p.next_start_at = Some(p.next_start_at.map_or(at, |x| x.max(at)));
    }

    fn record_success(&mut self, pool: Option<&PoolName>) {
        let p = self.pool_mut(pool);
        p.failures = 0;
        p.last_error = None;
        p.github_error = false;
        p.jobs_done += 1;
    }

    /// `name`'s end counts as a failure of its pool.
    fn fail_runner(&mut self, name: &str, now: Instant, why: String) {
        let Some(r) = self.runners.get_mut(name) else {
            return;
        };
        r.failed = true;
        let pool = r.pool.clone();
        self.record_failure(pool.as_ref(), now, why);
    }

    /// `name` ran its job, as its output or the registration list says.
    fn succeed_runner(&mut self, name: &str) {
        let Some(r) = self.runners.get(name) else {
            return;
        };
        let pool = r.pool.clone();
        let record = r.outcome.result.clone().map(|result| JobRecord {
            runner: r.name.clone(),
            job: r.outcome.job.clone().unwrap_or_default(),
            result,
            duration_secs: r.outcome.duration.map(|d| d.as_secs_f64()),
        });
        self.record_success(pool.as_ref());
        if let Some(rec) = record {
            let p = self.pool_mut(pool.as_ref());
            if p.recent.len() >= RECENT_RESULTS {
                p.recent.pop_front();
            }
            p.recent.push_back(rec);
        }
    }
}

#[cfg(test)]
mod tests;
