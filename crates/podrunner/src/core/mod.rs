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

pub mod backoff;
pub mod demand;
pub mod ending;
pub mod naming;
pub mod outcome;
pub mod pull;

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

/// What desired state says about one pool.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolSpec {
    pub name: String,
    /// `repos/o/r` or `orgs/o`: which runner list the pool's registrations live in.
    pub scope: String,
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

impl Default for PoolSpec {
    fn default() -> PoolSpec {
        PoolSpec {
            name: String::new(),
            scope: String::new(),
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
    pub pool: String,
    /// `repos/o/r` or `orgs/o`: where its registration lives.
    pub scope: String,
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
    fn new(name: &str, pool: &str, scope: &str, now: Instant) -> RunnerRec {
        RunnerRec {
            name: name.into(),
            pool: pool.into(),
            scope: scope.into(),
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
    pub pool: String,
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
    pub scope: String,
    pub name: String,
    pub in_flight: bool,
    pub retry_at: Option<Instant>,
}

/// An observation of a container from `podman ps` or its labels.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerSeen {
    pub name: String,
    pub id: String,
    pub pool: String,
    pub scope: String,
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
    Start { pool: String, name: String },
    /// Delete the registration, then stop the container (refused with 422 if busy).
    Retire { name: String },
    /// Stop a container whatever it is doing (drain timeout).
    ForceStop { name: String },
    /// Remove the runner's files, and delete its registration if `delete_id` is set.
    Cleanup {
        name: String,
        delete_id: Option<u64>,
    },
    /// Delete a registration that has no container.
    DeleteOrphan { scope: String, id: u64 },
    /// Pull the pool's image (`pull::PullReason::Start`: only if it is missing).
    PullImage {
        pool: String,
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
    pub pools: BTreeMap<String, PoolState>,
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

/// What status and the log say about a runner the OOM killer hit.
pub fn oom_message(name: &str) -> String {
    format!("runner {name} ran out of memory: the kernel killed a process at the pool's memory limit (raise `memory`, or make the job use less)")
}

impl State {
    pub fn new() -> State {
        State::default()
    }

    fn pool_mut(&mut self, pool: &str) -> &mut PoolState {
        self.pools.entry(pool.to_string()).or_default()
    }

    fn record_failure(&mut self, pool: &str, now: Instant, why: String) {
        let p = self.pool_mut(pool);
        p.failures = p.failures.saturating_add(1);
        p.last_error = Some(why);
        let at = now + backoff::start_delay(p.failures, p.restart_delay);
        p.next_start_at = Some(p.next_start_at.map_or(at, |x| x.max(at)));
    }

    fn record_success(&mut self, pool: &str) {
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
        self.record_failure(&pool, now, why);
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
        self.record_success(&pool);
        if let Some(rec) = record {
            let p = self.pool_mut(&pool);
            if p.recent.len() >= RECENT_RESULTS {
                p.recent.pop_front();
            }
            p.recent.push_back(rec);
        }
    }

    /// New lines of `name`'s output.
    pub fn runner_output(&mut self, name: &str, lines: &[String]) {
        let Some(r) = self.runners.get_mut(name) else {
            return;
        };
        let (updates, deprecated) = (r.outcome.self_updates, r.outcome.deprecated);
        for l in lines {
            r.outcome.observe(l);
        }
        let pool = r.pool.clone();
        let (updated, newly_deprecated) = (
            r.outcome.self_updates > updates,
            r.outcome.deprecated && !deprecated,
        );
        if updated {
            let p = self.pool_mut(&pool);
            p.image.stale = true;
            p.last_error = Some(format!("runner {name} is updating itself before its job: the pool's image is older than GitHub's current runner (each runner downloads about 200 MB and restarts)\n  fix: podrunner pulls the image now; keep `pull = \"newer\"` (the default), or point `image` at a current tag"));
        }
        if newly_deprecated {
            self.pool_mut(&pool).image.stale = true;
        }
        // The last lines can reach the log just after the exit was seen: a job's result then
        // judges an exit that still waits for the registration list.
        let r = &self.runners[name];
        if r.phase == Phase::Exited
            && r.verdict == Verdict::Pending
            && !r.stop_requested
            && !r.failed
            && r.outcome.result.is_some()
        {
            if let Some(r) = self.runners.get_mut(name) {
                r.verdict = Verdict::Gone;
            }
            self.succeed_runner(name);
        }
    }

    /// What the pool says about a runner GitHub refused as too old (exit 7, or its output).
    fn deprecated_message(name: &str, line: Option<&str>) -> String {
        format!(
            "runner {name}: GitHub refuses this runner version as deprecated{}\n  fix: podrunner pulls the image now; if that does not help, point `image` at a current runner image",
            line.map(|l| format!(" ({l})")).unwrap_or_default()
        )
    }

    /// Finished runners since the last call, oldest first: for history and metrics.
    pub fn take_finished(&mut self) -> Vec<Finished> {
        std::mem::take(&mut self.finished)
    }

    /// The OOM killer struck in `name`'s container (podman's `oom` event, or the container's
    /// memory cgroup counted a kill). Not a start failure (the job ran, or runs on), so no
    /// backoff; the pool's `last_error` says it until a later failure replaces it.
    pub fn runner_oom(&mut self, name: &str) {
        let Some(r) = self.runners.get_mut(name) else {
            return;
        };
        r.oom_killed = true;
        let pool = r.pool.clone();
        let p = self.pool_mut(&pool);
        p.last_error = Some(oom_message(name));
        p.github_error = false;
    }

    /// Listing GitHub's runners of `scope` failed: the pools there show why (a revoked token,
    /// GitHub unreachable) even while no runner needs starting.
    pub fn sweep_failed(&mut self, scope: &str, why: &str, specs: &[PoolSpec]) {
        for s in specs.iter().filter(|s| s.scope == scope) {
            let p = self.pool_mut(&s.name);
            p.last_error = Some(format!("cannot list the runners of GitHub: {why}"));
            p.github_error = true;
        }
    }

    /// Names in a folder (secret or work folders) that belong to one of `specs`' pools but to
    /// no runner this state knows: left behind by a manager that was killed mid-start.
    pub fn stale_folders(&self, entries: &[String], specs: &[PoolSpec]) -> Vec<String> {
        entries
            .iter()
            .filter(|e| !self.runners.contains_key(e.as_str()))
            .filter(|e| specs.iter().any(|s| naming::belongs_to(&s.prefix, e)))
            .cloned()
            .collect()
    }

    /// GitHub said the runner took a job (a scale set's `JobStarted` message): it is busy now,
    /// before the next list of runners says so.
    pub fn mark_busy(&mut self, name: &str) {
        if let Some(r) = self.runners.get_mut(name) {
            r.busy = true;
        }
    }

    /// The JIT call returned: the registration exists.
    pub fn registered(&mut self, name: &str, runner_id: u64) {
        if let Some(r) = self.runners.get_mut(name) {
            r.runner_id = Some(runner_id);
            if r.phase == Phase::Registering {
                r.phase = Phase::Starting;
            }
        }
    }

    /// Registering or starting failed. `failure` says whether it counts toward backoff (a
    /// name conflict does not); `registration_left` whether a registration may remain.
    pub fn start_failed(
        &mut self,
        name: &str,
        why: String,
        failure: bool,
        registration_left: bool,
        now: Instant,
    ) {
        let Some(r) = self.runners.get_mut(name) else {
            return;
        };
        r.phase = Phase::Exited;
        r.exited_at = Some(now);
        r.verdict = if registration_left && r.runner_id.is_some() {
            Verdict::Present
        } else {
            Verdict::Gone
        };
        let pool = r.pool.clone();
        if failure {
            self.record_failure(&pool, now, why);
        }
    }

    /// `podman run -d` returned the container id.
    pub fn started(&mut self, name: &str, container_id: String, now: Instant) {
        if let Some(r) = self.runners.get_mut(name) {
            r.container_id = Some(container_id);
            if r.phase == Phase::Starting {
                r.phase = Phase::Running;
                r.running_since = Some(now);
            }
        }
    }

    /// A container exited (event, or found missing by a resync). `code` is `None` when unknown.
    pub fn container_exited(&mut self, name: &str, code: Option<i32>, now: Instant) {
        let Some(r) = self.runners.get_mut(name) else {
            return;
        };
        if matches!(r.phase, Phase::Exited | Phase::CleaningUp) {
            // The exit code can come after the exit itself (the container process's exit is seen before
            // Podman's `died` event). A non-zero code still counts as a failure, once.
            if r.exit_code.is_none() && code.is_some() {
                r.exit_code = code;
                if code != Some(0) && !r.stop_requested && r.verdict == Verdict::Pending {
                    r.verdict = if r.registration_deleted || r.runner_id.is_none() {
                        Verdict::Gone
                    } else {
                        Verdict::Present
                    };
                    let c = code.unwrap_or_default();
                    if c == EXIT_VERSION_DEPRECATED {
                        let line = r.outcome.reason_line().map(str::to_string);
                        let pool = r.pool.clone();
                        self.pool_mut(&pool).image.stale = true;
                        self.fail_runner(
                            name,
                            now,
                            Self::deprecated_message(name, line.as_deref()),
                        );
                    } else {
                        self.fail_runner(name, now, format!("runner {name} exited with code {c}"));
                    }
                } else if code != Some(0) && !r.stop_requested {
                    let pool = r.pool.clone();
                    let c = code.unwrap_or_default();
                    self.explain_failure(&pool, &format!("exit code {c}"));
                }
            }
            return;
        }
        if !matches!(r.phase, Phase::Starting | Phase::Running | Phase::Retiring) {
            return;
        }
        r.phase = Phase::Exited;
        r.exited_at = Some(now);
        r.exit_code = code;
        r.verdict = if r.registration_deleted || r.runner_id.is_none() {
            Verdict::Gone
        } else if code == Some(0) || code.is_none() {
            Verdict::Pending
        } else {
            Verdict::Present
        };
        let (pool, expected, oom) = (r.pool.clone(), r.stop_requested, r.oom_killed);
        let out = r.outcome.clone();
        if !expected && out.result.is_some() {
            // The runner says it ran its job: GitHub removes the registration itself (its
            // list may lag), so no list needs to confirm it.
            r.verdict = Verdict::Gone;
            self.succeed_runner(name);
            if oom {
                self.pool_mut(&pool).last_error = Some(oom_message(name));
            }
            return;
        }
        if !expected && (code == Some(EXIT_VERSION_DEPRECATED) || out.deprecated) {
            if r.runner_id.is_some() && !r.registration_deleted {
                r.verdict = Verdict::Present;
            }
            self.pool_mut(&pool).image.stale = true;
            self.fail_runner(name, now, Self::deprecated_message(name, out.reason_line()));
            return;
        }
        if !expected && out.registration_deleted {
            if let Some(r) = self.runners.get_mut(name) {
                r.verdict = Verdict::Gone;
            }
            let line = out.reason_line().unwrap_or_default().to_string();
            self.fail_runner(name, now, format!("runner {name} exited without a job: its registration was deleted on GitHub ({line})\n  fix: another manager or a person deleted it; give every host its own host id (docs/hosts.md)"));
            return;
        }
        let failed = !expected && matches!(code, Some(c) if c != 0);
        if failed {
            let c = code.unwrap_or_default();
            let why = if oom {
                format!("{}; it exited with code {c}", oom_message(name))
            } else if c == 137 {
                // 128 + SIGKILL, not asked for by podrunner: the OOM killer, most often.
                format!("runner {name} exited with code 137 (killed by SIGKILL: out of memory at the pool's memory limit, most likely)")
            } else {
                match out.reason_line() {
                    Some(l) => format!("runner {name} exited with code {c}: {l}"),
                    None => format!("runner {name} exited with code {c}"),
                }
            };
            self.fail_runner(name, now, why);
        }
        // After a success the replacement starts at once: `restart_delay` and the backoff
        // apply after failures only (record_failure).
    }

    /// Podman removed the container (`--rm` after exit).
    pub fn container_removed(&mut self, name: &str, now: Instant) {
        self.container_exited(name, None, now);
        if let Some(r) = self.runners.get_mut(name) {
            r.container_gone = true;
        }
    }

    /// Attaches a reason (e.g. the runner's last log line) to the pool's last failure.
    pub fn explain_failure(&mut self, pool: &str, detail: &str) {
        if let Some(p) = self.pools.get_mut(pool) {
            if let Some(e) = &mut p.last_error {
                if !e.contains(detail) {
                    e.push_str(": ");
                    e.push_str(detail);
                }
            }
        }
    }

    pub fn retire_done(&mut self, name: &str, outcome: RetireOutcome, now: Instant) {
        let Some(r) = self.runners.get_mut(name) else {
            return;
        };
        if r.phase != Phase::Retiring {
            return;
        }
        match outcome {
            RetireOutcome::Stopped => {
                r.registration_deleted = true;
                r.phase = Phase::Exited;
                r.exited_at = Some(now);
                r.verdict = Verdict::Gone;
            }
            RetireOutcome::Busy => {
                r.phase = Phase::Running;
                r.busy = true;
                r.stop_requested = false;
            }
            RetireOutcome::Failed => {
                r.phase = Phase::Running;
                r.stop_requested = false;
                r.retry_at = Some(now + RETIRE_RETRY);
            }
        }
    }

    pub fn cleanup_done(&mut self, name: &str, outcome: CleanupOutcome, now: Instant) {
        let Some(r) = self.runners.get_mut(name) else {
            return;
        };
        match outcome {
            CleanupOutcome::Done => {
                if let Some(r) = self.runners.remove(name) {
                    let end = r.exited_at.unwrap_or(now);
                    self.finished.push(Finished {
                        lifetime_secs: end.saturating_duration_since(r.created).as_secs_f64(),
                        pool: r.pool,
                        runner: r.name,
                        runner_id: r.runner_id,
                        exit_code: r.exit_code,
                        failure: r.failed,
                        stopped: r.stop_requested,
                        outcome: r.outcome,
                    });
                }
                self.prune_wanted = !self.stale_images.is_empty();
            }
            CleanupOutcome::Busy | CleanupOutcome::Failed => {
                r.phase = Phase::Exited;
                r.retry_at = Some(now + CLEANUP_RETRY);
            }
        }
    }

    /// A pull of `pool`'s image finished. `Ok(Some(old))`: a new image replaced `old` (removed
    /// once no container uses it); `Ok(None)`: nothing new.
    pub fn pull_done(
        &mut self,
        spec: &PoolSpec,
        result: Result<Option<String>, String>,
        now: Instant,
    ) {
        let changed = matches!(result, Ok(Some(_)));
        if let Ok(Some(old)) = &result {
            if !old.is_empty() {
                self.stale_images.insert(old.clone());
                self.prune_wanted = true;
            }
        }
        let p = self.pool_mut(&spec.name);
        p.image
            .done(result.map(|o| o.is_some()), spec.pull_interval, now);
        if changed && p.failures > 0 {
            // The old image was the trouble, most likely: the next runner starts at once.
            p.next_start_at = None;
        }
    }

    /// `podman image rm` of an old image: `true` when it is gone (or was).
    pub fn prune_done(&mut self, id: &str, gone: bool) {
        if gone {
            self.stale_images.remove(id);
        }
    }

    pub fn orphan_done(&mut self, id: u64, deleted_or_gone: bool, now: Instant) {
        if deleted_or_gone {
            self.orphans.remove(&id);
        } else if let Some(o) = self.orphans.get_mut(&id) {
            o.in_flight = false;
            o.retry_at = Some(now + CLEANUP_RETRY);
        }
    }

    /// GitHub's runner lists arrived (`None` for a scope whose list failed).
    pub fn apply_sweep(
        &mut self,
        lists: &[(String, Option<Vec<RegistrationSeen>>)],
        specs: &[PoolSpec],
        now: Instant,
    ) {
        let issued = self.sweep_in_flight.take().unwrap_or(now);
        self.last_sweep = Some(issued);
        if lists.iter().any(|(_, l)| l.is_none()) {
            self.sweep_failures = self.sweep_failures.saturating_add(1);
        } else {
            self.sweep_failures = 0;
        }
        for (scope, list) in lists {
            let Some(list) = list else { continue };
            let by_name: BTreeMap<&str, &RegistrationSeen> =
                list.iter().map(|g| (g.name.as_str(), g)).collect();
            let mut verdicts = Vec::new();
            for r in self.runners.values_mut().filter(|r| &r.scope == scope) {
                match by_name.get(r.name.as_str()) {
                    Some(g) => {
                        r.busy = g.busy;
                        r.online = g.online;
                        if r.runner_id.is_none() {
                            r.runner_id = Some(g.id);
                        }
                    }
                    None => r.busy = false,
                }
                // Judge only exits that happened before this list was asked for.
                if r.phase == Phase::Exited
                    && r.verdict == Verdict::Pending
                    && r.exited_at.is_some_and(|t| t <= issued)
                {
                    let present = by_name.contains_key(r.name.as_str());
                    r.verdict = if present {
                        Verdict::Present
                    } else {
                        Verdict::Gone
                    };
                    verdicts.push((
                        r.pool.clone(),
                        r.name.clone(),
                        present && !r.outcome.took_job(),
                        r.stop_requested || r.failed,
                        r.oom_killed,
                    ));
                }
            }
            for s in specs.iter().filter(|s| &s.scope == scope) {
                let p = self.pool_mut(&s.name);
                if p.github_error {
                    p.github_error = false;
                    p.last_error = None;
                }
            }
            for (pool, name, present, expected, oom) in verdicts {
                if expected {
                    continue;
                }
                if oom && !present {
                    // The job ran (and maybe failed); keep saying why it struggled.
                    self.succeed_runner(&name);
                    self.pool_mut(&pool).last_error = Some(oom_message(&name));
                } else if present {
                    let line = self
                        .runners
                        .get(&name)
                        .and_then(|r| r.outcome.reason_line().map(str::to_string));
                    let why = match line {
                        Some(l) => format!("runner {name} exited without running a job: {l}"),
                        None => format!("runner {name} exited without running a job"),
                    };
                    self.fail_runner(&name, now, why);
                } else {
                    self.succeed_runner(&name);
                }
            }
            // Registrations nobody here knows (docs/hosts.md): this host's own are deleted at
            // once unless busy; the pool's on other hosts only once provably dead.
            let listed: BTreeSet<u64> = list.iter().map(|g| g.id).collect();
            self.fleet_offline.retain(|id, _| listed.contains(id));
            for g in list {
                if self.runners.contains_key(&g.name) || self.orphans.contains_key(&g.id) {
                    continue;
                }
                let pools = specs.iter().filter(|s| &s.scope == scope);
                let ours = pools
                    .clone()
                    .any(|s| naming::belongs_to(&s.prefix, &g.name));
                let fleet = !ours
                    && pools
                        .clone()
                        .any(|s| !s.family.is_empty() && naming::fleet_member(&s.family, &g.name));
                let dead = if ours {
                    !g.busy
                } else if fleet {
                    if g.online || g.busy {
                        self.fleet_offline.remove(&g.id);
                        false
                    } else {
                        let since = *self.fleet_offline.entry(g.id).or_insert(now);
                        now.duration_since(since) >= FLEET_OFFLINE_GRACE
                    }
                } else {
                    false
                };
                if dead {
                    self.fleet_offline.remove(&g.id);
                    self.orphans.insert(
                        g.id,
                        Orphan {
                            scope: scope.clone(),
                            name: g.name.clone(),
                            in_flight: false,
                            retry_at: None,
                        },
                    );
                }
            }
        }
    }

    /// Scopes to list in a sweep: those of the pools and of every runner we hold.
    pub fn scopes(&self, specs: &[PoolSpec]) -> Vec<String> {
        let mut v: BTreeSet<String> = specs.iter().map(|s| s.scope.clone()).collect();
        v.extend(
            self.runners
                .values()
                .map(|r| r.scope.clone())
                .filter(|s| !s.is_empty()),
        );
        v.extend(self.orphans.values().map(|o| o.scope.clone()));
        v.into_iter().collect()
    }

    /// Records that a `podman ps` was asked for now (used at start-up, before the first plan).
    pub fn mark_resync_issued(&mut self, now: Instant) {
        self.resync_in_flight = Some(now);
    }

    /// A `podman ps` failed: allow the next one after the usual interval.
    pub fn apply_resync_failed(&mut self, now: Instant) {
        let issued = self.resync_in_flight.take().unwrap_or(now);
        self.last_resync = Some(issued);
    }

    /// `podman ps` of our containers arrived.
    pub fn apply_resync(&mut self, seen: &[ContainerSeen], now: Instant) {
        let issued = self.resync_in_flight.take().unwrap_or(now);
        self.last_resync = Some(issued);
        let by_name: BTreeMap<&str, &ContainerSeen> =
            seen.iter().map(|c| (c.name.as_str(), c)).collect();
        let gone: Vec<(String, Option<i32>, bool)> = self
            .runners
            .values()
            .filter(|r| matches!(r.phase, Phase::Running | Phase::Retiring))
            .filter(|r| r.running_since.is_some_and(|t| t < issued))
            .filter_map(|r| match by_name.get(r.name.as_str()) {
                None => Some((r.name.clone(), None, true)),
                Some(c) if !c.alive => Some((r.name.clone(), c.exit_code, false)),
                Some(_) => None,
            })
            .collect();
        for (name, code, missing) in gone {
            self.container_exited(&name, code, now);
            if missing {
                if let Some(r) = self.runners.get_mut(&name) {
                    r.container_gone = true;
                }
            }
        }
        for c in seen {
            if self.runners.contains_key(&c.name) {
                continue;
            }
            let mut r = RunnerRec::new(&c.name, &c.pool, &c.scope, now);
            r.adopted = true;
            r.runner_id = c.runner_id;
            r.container_id = Some(c.id.clone());
            if c.alive {
                r.phase = Phase::Running;
                r.running_since = Some(now);
            } else {
                r.phase = Phase::Exited;
                r.exited_at = Some(now);
                r.exit_code = c.exit_code;
                r.verdict = if r.runner_id.is_some() {
                    Verdict::Present
                } else {
                    Verdict::Gone
                };
                // An exited container left behind (e.g. --rm failed) must be removed too.
                r.stop_requested = true;
            }
            self.runners.insert(c.name.clone(), r);
        }
    }

    pub fn start_drain(&mut self, now: Instant, timeout: Duration) {
        if !self.draining {
            self.draining = true;
            self.drain_deadline = Some(now + timeout);
        }
    }

    /// Draining and nothing left to wait for.
    pub fn is_drained(&self) -> bool {
        self.draining && self.runners.is_empty() && self.orphans.values().all(|o| !o.in_flight)
    }

    /// Decides the next actions and marks them in flight. `suffix` makes unique name
    /// suffixes (random in the manager, fixed in tests).
    pub fn plan(
        &mut self,
        specs: &[PoolSpec],
        now: Instant,
        suffix: &mut dyn FnMut() -> String,
    ) -> Vec<Action> {
        let mut actions = Vec::new();
        for s in specs {
            self.pool_mut(&s.name).restart_delay = s.restart_delay;
        }
        let due = |t: Option<Instant>| t.is_none_or(|t| t <= now);

        // GitHub's list: when an exit awaits its verdict, on request, or periodically.
        let verdict_pending = self
            .runners
            .values()
            .any(|r| r.phase == Phase::Exited && r.verdict == Verdict::Pending);
        let sweep_gap = SWEEP_MIN_INTERVAL
            .saturating_mul(2u32.saturating_pow(self.sweep_failures.min(16)))
            .min(SWEEP_BACKOFF_CAP);
        let sweep_gap_ok = self
            .last_sweep
            .is_none_or(|t| now.duration_since(t) >= sweep_gap);
        let sweep_stale = self
            .last_sweep
            .is_none_or(|t| now.duration_since(t) >= SWEEP_INTERVAL);
        if self.sweep_in_flight.is_none()
            && sweep_gap_ok
            && (verdict_pending || self.sweep_wanted || sweep_stale)
        {
            self.sweep_in_flight = Some(now);
            self.sweep_wanted = false;
            actions.push(Action::Sweep);
        }
        let resync_stale = self
            .last_resync
            .is_none_or(|t| now.duration_since(t) >= PODMAN_RESYNC_INTERVAL);
        if self.resync_in_flight.is_none() && (self.resync_wanted || resync_stale) {
            self.resync_in_flight = Some(now);
            self.resync_wanted = false;
            actions.push(Action::Resync);
        }

        // Exited runners: clean up once the verdict is known.
        for r in self.runners.values_mut() {
            if r.phase == Phase::Exited && r.verdict != Verdict::Pending && due(r.retry_at) {
                r.phase = Phase::CleaningUp;
                r.retry_at = None;
                let delete_id = if r.verdict == Verdict::Present {
                    r.runner_id
                } else {
                    None
                };
                actions.push(Action::Cleanup {
                    name: r.name.clone(),
                    delete_id,
                });
            }
        }
        // Runners that never came online (run.sh restarts a failing listener forever).
        let stuck: Vec<(String, Duration)> = self
            .runners
            .values()
            .filter(|r| r.phase == Phase::Running && !r.stop_requested && !r.came_online())
            .filter_map(|r| {
                let timeout = specs.iter().find(|s| s.name == r.pool)?.online_timeout;
                let since = r.running_since?;
                (!timeout.is_zero() && now.duration_since(since) >= timeout)
                    .then(|| (r.name.clone(), timeout))
            })
            .collect();
        for (name, timeout) in stuck {
            let line = self.runners[&name]
                .outcome
                .reason_line()
                .map(str::to_string);
            let why = format!(
                "runner {name} did not come online within {}{}\n  fix: read its output with `podrunner logs {name}`; raise `online_timeout` if the image is slow to start",
                humantime::format_duration(timeout),
                line.map(|l| format!("; its last error: {l}")).unwrap_or_default()
            );
            self.fail_runner(&name, now, why);
            if let Some(r) = self.runners.get_mut(&name) {
                r.phase = Phase::Retiring;
                r.stop_requested = true;
            }
            actions.push(Action::Retire { name });
        }

        // Images: pulls, and old images to remove.
        for s in specs {
            let p = self.pool_mut(&s.name);
            if let Some(reason) = p.image.due(s.pull, now) {
                p.image.begin(reason, now);
                actions.push(Action::PullImage {
                    pool: s.name.clone(),
                    reason,
                });
            }
        }
        if std::mem::take(&mut self.prune_wanted) {
            actions.extend(
                self.stale_images
                    .iter()
                    .map(|id| Action::PruneImage { id: id.clone() }),
            );
        }

        for (id, o) in self.orphans.iter_mut() {
            if !o.in_flight && due(o.retry_at) {
                o.in_flight = true;
                actions.push(Action::DeleteOrphan {
                    scope: o.scope.clone(),
                    id: *id,
                });
            }
        }

        // Pool sizes. Pools that left the config want 0.
        let mut pool_names: BTreeSet<String> =
            self.runners.values().map(|r| r.pool.clone()).collect();
        pool_names.extend(specs.iter().map(|s| s.name.clone()));
        let forced = self.draining && self.drain_deadline.is_some_and(|d| now >= d);
        for pool in pool_names {
            let spec = specs.iter().find(|s| s.name == pool);
            let desired = match spec {
                Some(s) if !self.draining => s.desired as usize,
                _ => 0,
            };
            let live = self
                .runners
                .values()
                .filter(|r| r.pool == pool && r.is_live())
                .count();
            if live < desired {
                let Some(s) = spec else { continue };
                let present = self
                    .runners
                    .values()
                    .filter(|r| r.pool == pool && r.holds_a_place())
                    .count();
                let room = s
                    .cap
                    .map_or(usize::MAX, |c| (c as usize).saturating_sub(present));
                if room == 0 {
                    continue;
                }
                let ps = self.pool_mut(&pool);
                if !due(ps.next_start_at) {
                    continue;
                }
                // After a failure, probe with one runner at a time.
                let n = if ps.failures > 0 { 1 } else { desired - live }.min(room);
                ps.next_start_at = None;
                for _ in 0..n {
                    let name = naming::runner_name(&s.prefix, &suffix());
                    self.runners
                        .insert(name.clone(), RunnerRec::new(&name, &pool, &s.scope, now));
                    actions.push(Action::Start {
                        pool: pool.clone(),
                        name,
                    });
                }
            } else if live > desired {
                // Demand pools keep an idle runner for its idle time: a job may be on its way.
                let idle_timeout = spec.and_then(|s| s.idle_timeout).filter(|_| !self.draining);
                let waited_enough = |r: &RunnerRec| {
                    idle_timeout.is_none_or(|t| {
                        r.running_since
                            .is_some_and(|s| now.saturating_duration_since(s) >= t)
                    })
                };
                let mut idle: Vec<&mut RunnerRec> = self
                    .runners
                    .values_mut()
                    .filter(|r| {
                        r.pool == pool
                            && r.is_live()
                            && r.phase == Phase::Running
                            && !r.busy
                            && due(r.retry_at)
                            && waited_enough(r)
                    })
                    .collect();
                idle.sort_by_key(|r| r.created);
                for r in idle.into_iter().take(live - desired) {
                    r.phase = Phase::Retiring;
                    r.stop_requested = true;
                    actions.push(Action::Retire {
                        name: r.name.clone(),
                    });
                }
            }
            if forced {
                for r in self
                    .runners
                    .values_mut()
                    .filter(|r| r.pool == pool && r.phase == Phase::Running)
                {
                    r.phase = Phase::Retiring;
                    r.stop_requested = true;
                    actions.push(Action::ForceStop {
                        name: r.name.clone(),
                    });
                }
            }
        }
        actions
    }
}

#[cfg(test)]
mod tests;
