//! The manager: one loop that feeds observations into the core, executes the actions it
//! returns, serves the control socket and handles signals. It owns the core state; tasks
//! report back through a channel, so no lock guards the state.

pub mod exec;
pub mod oom;
pub mod queued;
pub mod record;
pub mod scaleset;
pub mod watch;
pub mod webhook;

use crate::config::{self, Config};
use crate::control::{self, PoolStatus, Request, Response, RunnerStatus, StatusSnapshot};
use crate::core::{
    Action, CleanupOutcome, ContainerSeen, PoolSpec, RegistrationSeen, RetireOutcome, State,
};
use crate::github::{self, Client};
use crate::podman::{labels, Podman};
use exec::Ctx;
use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};

/// How long a stopping manager waits for its scale set listeners to close their sessions.
const LISTENER_STOP_WAIT: Duration = Duration::from_secs(5);

/// The owner GitHub names in a session conflict ("... already has an active session for
/// owner NAME."), when its message says.
pub fn conflict_owner(message: &str) -> Option<String> {
    let i = message.find("owner ")?;
    let rest = &message[i + "owner ".len()..];
    let name = rest
        .trim_start_matches(['\'', '"'])
        .split(['\'', '"', ' '])
        .next()?
        .trim_end_matches('.');
    (!name.is_empty()).then(|| name.to_string())
}

/// The loop wakes at least this often to re-plan (timers: restart delays, backoff, sweeps).
const TICK: Duration = Duration::from_millis(500);
/// After `podman events` ends, wait this long before starting it again.
const EVENTS_RESTART_DELAY: Duration = Duration::from_secs(2);

/// What a task or an observer reports to the loop.
#[derive(Debug)]
pub enum Outcome {
    Registered {
        name: String,
        runner_id: u64,
    },
    Started {
        name: String,
        container_id: String,
    },
    StartFailed {
        name: String,
        why: String,
        failure: bool,
        registration_left: bool,
    },
    Retired {
        name: String,
        outcome: RetireOutcome,
    },
    ForceStopped {
        name: String,
        ok: bool,
    },
    Cleaned {
        name: String,
        outcome: CleanupOutcome,
        last_line: Option<String>,
    },
    OrphanDone {
        id: u64,
        gone: bool,
    },
    Swept(Vec<(String, Option<Vec<RegistrationSeen>>)>),
    /// Listing the runners of `scope` failed (sent before the `Swept` that carries `None`).
    SweepFailed {
        scope: String,
        why: String,
    },
    /// `podman events` ended and is started again: look at `podman ps` for what was missed.
    EventsRestarted,
    /// The kernel's OOM killer struck in this container's memory cgroup.
    Oom {
        container_id: String,
    },
    Resynced(Result<Vec<ContainerSeen>, String>),
    Event(crate::podman::Event),
    /// The runner container's main process ended (the exit code follows in an event).
    ContainerPidExited {
        name: String,
    },
    /// New lines of a runner's output (core/outcome.rs reads them).
    Output {
        name: String,
        lines: Vec<String>,
    },
    /// A pull of the pool's image ended: `Ok(Some(old id))` when a new image replaced it.
    Pulled {
        pool: String,
        result: Result<Option<String>, String>,
    },
    /// `podman image rm` of an old image: gone or still in use.
    Pruned {
        id: String,
        gone: bool,
    },
    /// The queued jobs of a repository (manager/queued.rs): their `runs-on` labels.
    Queued {
        scope: String,
        jobs: Vec<Vec<String>>,
        /// Jobs in progress with their runner's name (for the history's queue times).
        running: Vec<crate::github::queued::RunJob>,
        counted_calls: u32,
        note: Option<String>,
    },
    /// A scale set listener's news (manager/scaleset.rs).
    ScaleSet {
        pool: String,
        report: scaleset::Report,
    },
}

/// What GitHub last said about a demand pool (docs/scaling.md).
#[derive(Debug, Clone, Default)]
pub struct PoolScaling {
    pub demand: crate::core::demand::Demand,
    pub scale_set_id: Option<u64>,
    /// Who holds the session: us once it is open, the other owner after a conflict.
    pub session_owner: Option<String>,
    pub session_held: bool,
    pub statistics: Option<crate::github::scaleset::Statistics>,
    pub reported_at: Option<Instant>,
    pub note: Option<String>,
}

/// Options of `podrunner run` that are not in the config file.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Called once after the first reconcile (systemd READY=1).
    pub notify_ready: bool,
}

pub struct Manager {
    ctx: Ctx,
    state: State,
    overrides: BTreeMap<String, u32>,
    started: Instant,
    outcomes: mpsc::UnboundedReceiver<Outcome>,
    /// Demand pools: what GitHub last reported.
    scaling: BTreeMap<String, PoolScaling>,
    /// Scale set listeners, each with its stop switch.
    listeners: BTreeMap<
        String,
        (
            tokio::task::JoinHandle<()>,
            tokio::sync::watch::Sender<bool>,
        ),
    >,
    /// Wakes the queued-job pollers early (a `workflow_job` webhook arrived).
    queued_wake: Arc<tokio::sync::Notify>,
    /// Metrics and history (record.rs).
    record: record::Recorder,
}

fn specs(cfg: &Config, overrides: &BTreeMap<String, u32>) -> Vec<PoolSpec> {
    use crate::core::demand::Mode;
    cfg.pools
        .iter()
        .map(|p| {
            let demand = p.mode != Mode::Fixed;
            PoolSpec {
                name: p.name.to_string(),
                scope: p.scope.api_path(),
                prefix: p.host_prefix(&cfg.manager.host_id),
                desired: overrides.get(p.name.as_str()).copied().unwrap_or(p.count),
                restart_delay: p.restart_delay,
                idle_timeout: demand.then_some(p.idle_timeout),
                cap: demand.then_some(p.max),
                family: p.runner_name.to_string(),
                online_timeout: p.online_timeout,
                pull: p.pull,
                pull_interval: p.pull_interval,
            }
        })
        .collect()
}

/// Makes the folders the manager writes to, private to its user.
pub fn prepare_dirs(cfg: &Config) -> anyhow::Result<()> {
    for d in [&cfg.manager.state_dir, &cfg.manager.runtime_dir] {
        std::fs::create_dir_all(d)
            .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", d.display()))?;
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o700))?;
    }
    let secrets = crate::runner::paths::secrets_root(cfg);
    std::fs::create_dir_all(&secrets)?;
    std::fs::set_permissions(&secrets, std::fs::Permissions::from_mode(0o700))?;
    Ok(())
}

impl Manager {
    pub fn new(cfg: Config, gh: impl Into<Arc<Client>>, podman: Podman) -> Manager {
        let (tx, rx) = mpsc::unbounded_channel();
        let record = record::Recorder::new(&cfg);
        Manager {
            ctx: Ctx {
                cfg: Arc::new(cfg),
                gh: gh.into(),
                podman: Arc::new(podman),
                tx,
                start_slots: Arc::new(tokio::sync::Semaphore::new(exec::MAX_CONCURRENT_STARTS)),
                scale_sets: Arc::new(scaleset::Registry::default()),
            },
            state: State::new(),
            overrides: BTreeMap::new(),
            started: Instant::now(),
            outcomes: rx,
            record,
            scaling: BTreeMap::new(),
            listeners: BTreeMap::new(),
            queued_wake: Arc::new(tokio::sync::Notify::new()),
        }
    }

    /// Sets the size of demand pools from what GitHub last reported (core/demand.rs). A scale
    /// set pool wants nothing while another host holds its session.
    fn size(&self, specs: &mut [PoolSpec]) {
        use crate::core::demand::{self, Bounds, Mode};
        for s in specs.iter_mut() {
            let Some(p) = self.ctx.cfg.pool(&s.name) else {
                continue;
            };
            if p.mode == Mode::Fixed {
                continue;
            }
            let sc = self.scaling.get(&s.name).cloned().unwrap_or_default();
            let bounds = Bounds {
                min_idle: self
                    .overrides
                    .get(&s.name)
                    .copied()
                    .unwrap_or(p.min_idle)
                    .min(p.max),
                max: p.max,
            };
            let busy = self.count_runners(&s.name, true);
            s.desired = match p.mode {
                Mode::ScaleSet if !sc.session_held => 0,
                m => demand::desired(m, p.count, bounds, sc.demand, busy),
            };
        }
    }

    /// Running runners of a pool that are busy (or idle).
    fn count_runners(&self, pool: &str, busy: bool) -> u32 {
        self.state
            .runners
            .values()
            .filter(|r| r.pool == pool && r.phase == crate::core::Phase::Running)
            .filter(|r| r.busy == busy && !r.stop_requested)
            .count() as u32
    }

    /// Starts a listener for every scale set pool that has none; stops those of pools that
    /// are gone or no longer scale sets.
    fn sync_listeners(&mut self) {
        let wanted: BTreeMap<String, config::PoolConfig> = self
            .ctx
            .cfg
            .pools
            .iter()
            .filter(|p| p.scale_set.is_some() && !self.state.draining)
            .map(|p| (p.name.to_string(), p.clone()))
            .collect();
        let pollers = self.wanted_pollers();
        let gone: Vec<String> = self
            .listeners
            .keys()
            .filter(|k| !wanted.contains_key(*k) && !pollers.contains_key(*k))
            .cloned()
            .collect();
        for k in gone {
            if let Some((_, stop)) = self.listeners.get(&k) {
                let _ = stop.send(true);
            }
        }
        for (key, (scope, interval)) in self.wanted_pollers() {
            if self.listeners.contains_key(&key) {
                continue;
            }
            let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
            let h = queued::spawn(
                self.ctx.gh.clone(),
                scope,
                interval,
                self.ctx.tx.clone(),
                self.queued_wake.clone(),
                stop_rx,
            );
            self.listeners.insert(key, (h, stop_tx));
        }
        for (name, p) in wanted {
            if self.listeners.contains_key(&name) {
                continue;
            }
            let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
            let h = scaleset::spawn(
                &self.ctx.scale_sets,
                self.ctx.gh.clone(),
                p,
                scaleset::owner_name(self.ctx.cfg.manager.instance.as_str()),
                self.ctx.cfg.manager.state_dir.clone(),
                self.ctx.tx.clone(),
                stop_rx,
            );
            self.listeners.insert(name, (h, stop_tx));
        }
    }

    /// One queued-job poller per repository with label demand pools, keyed among the
    /// listeners by its name: the scope and the shortest `poll_interval` of those pools.
    fn wanted_pollers(&self) -> BTreeMap<String, (config::names::Scope, Duration)> {
        let mut out: BTreeMap<String, (config::names::Scope, Duration)> = BTreeMap::new();
        if self.state.draining {
            return out;
        }
        for p in self
            .ctx
            .cfg
            .pools
            .iter()
            .filter(|p| p.mode == crate::core::demand::Mode::Labels)
        {
            let e = out
                .entry(format!("queued jobs of {}", p.scope))
                .or_insert_with(|| (p.scope.clone(), p.poll_interval));
            e.1 = e.1.min(p.poll_interval);
        }
        out
    }

    /// Stops every listener (their sessions are deleted) and waits a little for them.
    async fn stop_listeners(&mut self) {
        for (_, stop) in self.listeners.values() {
            let _ = stop.send(true);
        }
        for (name, (h, _)) in std::mem::take(&mut self.listeners) {
            if tokio::time::timeout(LISTENER_STOP_WAIT, h).await.is_err() {
                tracing::warn!(pool = %name, "the scale set listener did not stop in time");
            }
        }
    }

    /// The label demand pools of a scope, in config order, with their labels.
    fn label_pools(&self, scope: &str) -> Vec<(String, Vec<String>)> {
        self.ctx
            .cfg
            .pools
            .iter()
            .filter(|p| p.mode == crate::core::demand::Mode::Labels && p.scope.api_path() == scope)
            .map(|p| (p.name.to_string(), p.labels.clone()))
            .collect()
    }

    fn apply_queued(
        &mut self,
        scope: &str,
        jobs: &[Vec<String>],
        calls: u32,
        note: Option<String>,
    ) {
        let counts = crate::core::demand::queued_per_pool(&self.label_pools(scope), jobs);
        let now = Instant::now();
        for (pool, n) in counts {
            let sc = self.scaling.entry(pool.clone()).or_default();
            if sc.demand.queued != n {
                tracing::debug!(pool = %pool, "{n} queued jobs for this pool ({calls} counted calls this hour)");
            }
            sc.demand.queued = n;
            sc.reported_at = Some(now);
            sc.note = note.clone();
        }
    }

    fn apply_scale_set(&mut self, pool: String, report: scaleset::Report) {
        use scaleset::Report;
        let now = Instant::now();
        let sc = self.scaling.entry(pool.clone()).or_default();
        match report {
            Report::Ready { id } => sc.scale_set_id = Some(id),
            Report::Session { owner, statistics } => {
                sc.session_owner = Some(owner);
                sc.session_held = true;
                sc.note = None;
                if let Some(st) = statistics {
                    sc.demand.assigned = st.total_assigned_jobs;
                    sc.statistics = Some(st);
                    sc.reported_at = Some(now);
                }
            }
            Report::Message {
                statistics,
                started,
                completed,
                acquired,
            } => {
                sc.note = None;
                if let Some(st) = statistics {
                    sc.demand.assigned = st.total_assigned_jobs;
                    sc.statistics = Some(st);
                }
                sc.reported_at = Some(now);
                tracing::debug!(pool = %pool, "scale set message: {} assigned jobs, {acquired} acquired, {} started, {completed} completed", sc.demand.assigned, started.len());
                for e in started {
                    let Some(name) = &e.runner_name else { continue };
                    self.state.mark_busy(name);
                    self.record.job_seen(name, record::scale_set_job(&e));
                }
            }
            Report::Conflict { message } => {
                sc.session_held = false;
                sc.session_owner =
                    Some(conflict_owner(&message).unwrap_or_else(|| "another host".into()));
                sc.note = Some(message);
            }
            Report::Failed { why, retry_in } => {
                sc.session_held = false;
                sc.note = Some(format!("{why} (retrying in {}s)", retry_in.as_secs()));
            }
            Report::Closed => {
                sc.session_held = false;
                sc.session_owner = None;
            }
        }
    }

    fn pool_cfg(&self, pool: &str) -> Option<config::PoolConfig> {
        self.ctx.cfg.pool(pool).cloned()
    }

    fn scope_of(&self, pool: &str) -> Option<config::names::Scope> {
        self.pool_cfg(pool).map(|p| p.scope)
    }

    fn stop_timeout_of(&self, pool: &str) -> u64 {
        self.pool_cfg(pool)
            .map(|p| p.stop_timeout.as_secs())
            .unwrap_or(config::MIN_STOP_TIMEOUT_SECS)
    }

    fn execute(&mut self, action: Action) {
        let ctx = self.ctx.clone();
        match action {
            Action::Start { pool, name } => match self.pool_cfg(&pool) {
                Some(p) => {
                    self.record.start(&ctx.cfg, &pool, &name, &ctx.podman);
                    tokio::spawn(ctx.start(p, name));
                }
                None => self.state.start_failed(
                    &name,
                    "pool removed".into(),
                    false,
                    false,
                    Instant::now(),
                ),
            },
            Action::Retire { name } => {
                let rec = &self.state.runners[&name];
                let timeout = self.stop_timeout_of(&rec.pool);
                let scope = config::names::Scope::from_api_path(&rec.scope);
                tokio::spawn(ctx.retire(scope, timeout, name, rec.runner_id));
            }
            Action::ForceStop { name } => {
                let timeout = self
                    .state
                    .runners
                    .get(&name)
                    .map(|r| self.stop_timeout_of(&r.pool))
                    .unwrap_or(config::MIN_STOP_TIMEOUT_SECS);
                tokio::spawn(ctx.force_stop(name, timeout));
            }
            Action::Cleanup { name, delete_id } => {
                let rec = &self.state.runners[&name];
                let scope = config::names::Scope::from_api_path(&rec.scope);
                let remove_container = !rec.container_gone && rec.container_id.is_some();
                tokio::spawn(ctx.cleanup(scope, name, delete_id, remove_container));
            }
            Action::DeleteOrphan { scope, id } => match config::names::Scope::from_api_path(&scope)
            {
                Some(sc) => {
                    tokio::spawn(ctx.delete_orphan(sc, id));
                }
                None => self.state.orphan_done(id, true, Instant::now()),
            },
            Action::Sweep => {
                let scopes = self.state.scopes(&specs(&self.ctx.cfg, &self.overrides));
                tokio::spawn(ctx.sweep(scopes));
            }
            Action::Resync => {
                tokio::spawn(ctx.resync());
            }
            Action::PullImage { pool, reason } => match self.pool_cfg(&pool) {
                Some(p) => {
                    tokio::spawn(ctx.pull_image(p, reason));
                }
                None => {
                    let spec = PoolSpec {
                        name: pool,
                        ..PoolSpec::default()
                    };
                    self.state
                        .pull_done(&spec, Err("pool removed".into()), Instant::now());
                }
            },
            Action::PruneImage { id } => {
                tokio::spawn(ctx.prune_image(id));
            }
        }
    }

    fn apply(&mut self, o: Outcome) {
        let now = Instant::now();
        let recorded = self.record_before(&o);
        match o {
            Outcome::Registered { name, runner_id } => self.state.registered(&name, runner_id),
            Outcome::Started { name, container_id } => self.state.started(&name, container_id, now),
            Outcome::StartFailed {
                name,
                why,
                failure,
                registration_left,
            } => self
                .state
                .start_failed(&name, why, failure, registration_left, now),
            Outcome::Retired { name, outcome } => self.state.retire_done(&name, outcome, now),
            Outcome::ForceStopped { name, ok } => {
                if !ok {
                    self.state.retire_done(&name, RetireOutcome::Failed, now);
                }
            }
            Outcome::Cleaned {
                name,
                outcome,
                last_line,
            } => {
                if let (Some(rec), Some(line)) = (self.state.runners.get(&name), last_line) {
                    let pool = rec.pool.clone();
                    let failed_recently = self.state.pools.get(&pool).is_some_and(|p| {
                        p.last_error.as_deref().is_some_and(|e| e.contains(&name))
                    });
                    if failed_recently {
                        tracing::warn!(pool = %pool, "runner {name} failed; its last output line: {line}");
                        self.state
                            .explain_failure(&pool, &format!("last output: {line}"));
                    }
                }
                self.state.cleanup_done(&name, outcome, now);
            }
            Outcome::ContainerPidExited { name } => self.state.container_exited(&name, None, now),
            Outcome::ScaleSet { pool, report } => self.apply_scale_set(pool, report),
            Outcome::Queued {
                scope,
                jobs,
                running,
                counted_calls,
                note,
            } => {
                for j in &running {
                    if let Some(name) = &j.runner_name {
                        self.record
                            .job_seen(name, record::label_pool_job(&scope, j));
                    }
                }
                self.apply_queued(&scope, &jobs, counted_calls, note)
            }
            Outcome::Output { name, lines } => {
                for l in &lines {
                    if let crate::core::outcome::Line::SelfUpdate { version: Some(v) } =
                        crate::core::outcome::parse_line(l)
                    {
                        let m = &self.ctx.cfg.manager;
                        crate::engine::externals::note_self_update(
                            &m.runtime_dir,
                            &m.state_dir,
                            &name,
                            &v,
                        );
                    }
                }
                let before = self.state.runners.get(&name).map(|r| r.outcome.clone());
                self.state.runner_output(&name, &lines);
                if let (Some(b), Some(r)) = (before, self.state.runners.get(&name)) {
                    log_outcome_change(&r.pool, &name, &b, &r.outcome);
                }
            }
            Outcome::Pulled { pool, result } => {
                let spec = specs(&self.ctx.cfg, &self.overrides)
                    .into_iter()
                    .find(|s| s.name == pool)
                    .unwrap_or(PoolSpec {
                        name: pool,
                        ..PoolSpec::default()
                    });
                self.state.pull_done(&spec, result, now);
            }
            Outcome::Pruned { id, gone } => self.state.prune_done(&id, gone),
            Outcome::OrphanDone { id, gone } => self.state.orphan_done(id, gone, now),
            Outcome::EventsRestarted => self.state.resync_wanted = true,
            Outcome::SweepFailed { scope, why } => {
                let specs = specs(&self.ctx.cfg, &self.overrides);
                self.state.sweep_failed(&scope, &why, &specs);
            }
            Outcome::Oom { container_id } => {
                let name = self
                    .state
                    .runners
                    .values()
                    .find(|r| {
                        r.container_id.as_deref().is_some_and(|c| {
                            !c.is_empty()
                                && (container_id.starts_with(c) || c.starts_with(&container_id))
                        })
                    })
                    .map(|r| (r.name.clone(), r.pool.clone(), r.oom_killed));
                if let Some((name, pool, known)) = name {
                    if !known {
                        tracing::error!(pool = %pool, "{}", crate::core::oom_message(&name));
                    }
                    self.state.runner_oom(&name);
                }
            }
            Outcome::Swept(lists) => {
                let specs = specs(&self.ctx.cfg, &self.overrides);
                self.state.apply_sweep(&lists, &specs, now);
            }
            Outcome::Resynced(Ok(seen)) => {
                let known: std::collections::BTreeSet<String> =
                    self.state.runners.keys().cloned().collect();
                self.state.apply_resync(&seen, now);
                let new: Vec<String> = seen
                    .iter()
                    .filter(|c| c.alive && !known.contains(&c.name))
                    .map(|c| c.name.clone())
                    .collect();
                self.follow_adopted(new);
            }
            Outcome::Resynced(Err(e)) => {
                tracing::warn!("podman ps failed: {e}");
                // Mark the resync finished without observations.
                self.state.resync_wanted = false;
                self.state.apply_resync_failed(now);
            }
            Outcome::Event(ev) => {
                let name = ev
                    .attributes
                    .get(labels::RUNNER_NAME)
                    .cloned()
                    .unwrap_or(ev.name.clone());
                match ev.status.as_str() {
                    "died" => {
                        if let Some(r) = self.state.runners.get(&name) {
                            match ev.exit_code {
                                Some(137) if !r.stop_requested => tracing::warn!("runner {name} exited (code 137: killed by SIGKILL, out of memory at the pool's memory limit most likely)"),
                                Some(c) => tracing::info!("runner {name} exited (code {c})"),
                                None => tracing::info!("runner {name} exited"),
                            }
                        }
                        self.state.container_exited(&name, ev.exit_code, now)
                    }
                    "remove" => self.state.container_removed(&name, now),
                    "oom" => {
                        if let Some(r) = self.state.runners.get(&name) {
                            let pool = r.pool.clone();
                            tracing::error!(pool = %pool, "{}", crate::core::oom_message(&name));
                        }
                        self.state.runner_oom(&name);
                    }
                    _ => {}
                }
            }
        }
        self.record_after(recorded);
    }

    /// Follows the output and exit of runners adopted from `podman ps` (their pid files are
    /// still there from the start that made them).
    fn follow_adopted(&self, names: Vec<String>) {
        for name in names {
            let paths = crate::runner::Paths::of(&self.ctx.cfg, &name);
            tokio::spawn(watch::watch_container(
                paths.pidfile,
                paths.log,
                name,
                self.ctx.tx.clone(),
            ));
        }
    }

    pub fn snapshot(&self) -> StatusSnapshot {
        let now = Instant::now();
        let mut specs = specs(&self.ctx.cfg, &self.overrides);
        self.size(&mut specs);
        let pools = specs
            .iter()
            .map(|s| {
                let ps = self.state.pools.get(&s.name).cloned().unwrap_or_default();
                let backing_off_secs = (ps.failures > 0)
                    .then_some(ps.next_start_at)
                    .flatten()
                    .filter(|t| *t > now)
                    .map(|t| t.duration_since(now).as_secs().max(1));
                PoolStatus {
                    name: s.name.clone(),
                    scope: self
                        .scope_of(&s.name)
                        .map(|x| x.to_string())
                        .unwrap_or_default(),
                    desired: if self.state.draining { 0 } else { s.desired },
                    live: self
                        .state
                        .runners
                        .values()
                        .filter(|r| r.pool == s.name && r.is_live())
                        .count() as u32,
                    jobs_done: ps.jobs_done,
                    failures: ps.failures,
                    backing_off_secs,
                    last_error: ps.last_error,
                    scaling: Some(self.scaling_status(s, now)),
                    recent: ps.recent.iter().cloned().collect(),
                    image_error: ps.image.last_error.clone(),
                }
            })
            .collect();
        let runners = self
            .state
            .runners
            .values()
            .map(|r| RunnerStatus {
                pool: r.pool.clone(),
                name: r.name.clone(),
                runner_id: r.runner_id,
                container: r
                    .container_id
                    .as_ref()
                    .map(|c| c[..c.len().min(12)].to_string()),
                state: r.display_state().to_string(),
                age_secs: now.duration_since(r.created).as_secs(),
                adopted: r.adopted,
                docker: self
                    .ctx
                    .cfg
                    .pool(&r.pool)
                    .map(|p| crate::engine::service::docker_state(&self.ctx.cfg, p, &r.name)),
                job: r.outcome.job.clone(),
            })
            .collect();
        StatusSnapshot {
            pid: std::process::id(),
            instance: self.ctx.cfg.manager.instance.to_string(),
            config: self.ctx.cfg.path.display().to_string(),
            uptime_secs: self.started.elapsed().as_secs(),
            draining: self.state.draining,
            api_calls: self.ctx.gh.calls(),
            rate_limit: self.ctx.gh.rate_limit(),
            pools,
            runners,
        }
    }

    fn scaling_status(&self, s: &PoolSpec, now: Instant) -> crate::control::ScalingStatus {
        let p = self.ctx.cfg.pool(&s.name);
        let sc = self.scaling.get(&s.name).cloned().unwrap_or_default();
        crate::control::ScalingStatus {
            mode: p.map_or("fixed", |p| p.mode.as_str()).to_string(),
            min_idle: p.map_or(0, |p| p.min_idle),
            max: p.map_or(0, |p| p.max),
            assigned_jobs: sc.demand.assigned,
            queued_jobs: sc.demand.queued,
            desired: if self.state.draining { 0 } else { s.desired },
            idle: self.count_runners(&s.name, false),
            busy: self.count_runners(&s.name, true),
            scale_set: p.and_then(|p| p.scale_set.clone()),
            scale_set_id: sc.scale_set_id,
            session_owner: sc.session_owner,
            session_held: sc.session_held,
            github: sc.statistics.and_then(|st| serde_json::to_value(st).ok()),
            reported_secs_ago: sc.reported_at.map(|t| now.duration_since(t).as_secs()),
            note: sc.note,
        }
    }

    fn handle(&mut self, req: Request) -> Response {
        match req {
            Request::Status => {
                // Fresh busy flags for whoever asks, within the sweep's rate bound.
                self.state.sweep_wanted = true;
                Response {
                    ok: true,
                    error: None,
                    message: None,
                    status: Some(self.snapshot()),
                }
            }
            Request::Drain => {
                self.begin_drain("a stop request");
                Response::ok(
                    "draining: idle runners are being removed; busy runners finish their job first",
                )
            }
            Request::Scale { pool, count } => {
                if self.ctx.cfg.pool(&pool).is_none() {
                    let known: Vec<String> = self
                        .ctx
                        .cfg
                        .pools
                        .iter()
                        .map(|p| p.name.to_string())
                        .collect();
                    return Response::err(format!(
                        "no pool named {pool:?}; pools: {}",
                        known.join(", ")
                    ));
                }
                if self.state.draining {
                    return Response::err("the manager is draining; scaling is refused");
                }
                self.overrides.insert(pool.clone(), count);
                tracing::info!(pool = %pool, "scaled to {count} runners");
                Response::ok(format!("pool {pool} scaled to {count}"))
            }
            Request::Reload => match self.reload() {
                Ok(msg) => Response::ok(msg),
                Err(e) => Response::err(e),
            },
        }
    }

    fn reload(&mut self) -> Result<String, String> {
        let path = self.ctx.cfg.path.clone();
        let new = Config::load(&path, &config::Env::from_process()).map_err(|e| {
            tracing::error!("reload refused, keeping the running config: {e}");
            format!("the new config is invalid, the old one stays in force:\n{e}")
        })?;
        if new.github.api_url != self.ctx.cfg.github.api_url
            || new.github.app != self.ctx.cfg.github.app
            || new.manager.instance != self.ctx.cfg.manager.instance
            || new.manager.listen != self.ctx.cfg.manager.listen
            || new.manager.history != self.ctx.cfg.manager.history
        {
            return Err(
                "[github] credentials, api_url and [manager] settings change only with a restart (`podrunner restart`)"
                    .into(),
            );
        }
        if let Err(e) = prepare_dirs(&new) {
            return Err(e.to_string());
        }
        self.overrides.clear();
        let n = new.pools.len();
        self.ctx.cfg = Arc::new(new);
        tracing::info!("config reloaded from {}: {n} pools", path.display());
        Ok(format!("config reloaded: {n} pools"))
    }

    fn begin_drain(&mut self, why: &str) {
        if !self.state.draining {
            tracing::info!(
                "draining ({why}): no replacements; idle runners are removed, busy runners finish (up to {})",
                humantime::format_duration(self.ctx.cfg.manager.drain_timeout)
            );
        }
        self.state
            .start_drain(Instant::now(), self.ctx.cfg.manager.drain_timeout);
    }

    /// Runs until drained. Returns after the last runner is cleaned up.
    pub async fn run(mut self, opts: RunOptions) -> anyhow::Result<()> {
        // Read (and unset) NOTIFY_SOCKET before any podman child can inherit it.
        let mut notifier = match opts.notify_ready {
            true => crate::systemd::notify::Notifier::from_env(),
            false => crate::systemd::notify::Notifier::default(),
        };
        let socket_path = self.ctx.cfg.control_socket();
        let listener = bind_control(&socket_path).await?;
        let (req_tx, mut req_rx) = mpsc::channel::<(Request, oneshot::Sender<Response>)>(16);
        tokio::spawn(serve_control(listener, req_tx));
        let webhook_task = match (
            self.ctx.cfg.manager.webhook_listen,
            &self.ctx.cfg.manager.webhook_secret_file,
        ) {
            (Some(addr), Some(file)) => {
                let secret = config::read_token(file).map_err(|e| {
                    anyhow::anyhow!(e
                        .to_string()
                        .replace("GitHub token file", "webhook secret file"))
                })?;
                Some(webhook::serve(addr, secret.into_bytes(), self.queued_wake.clone()).await?)
            }
            _ => None,
        };
        let (snap_tx, mut snap_rx) = mpsc::channel::<crate::web::SnapshotRequest>(16);
        let web_task = self.start_web(snap_tx).await?;

        // Adopt what is already there before deciding anything.
        let seen = self
            .ctx
            .podman
            .ps(labels::INSTANCE, self.ctx.cfg.manager.instance.as_str())
            .await
            .map_err(|e| anyhow::anyhow!("cannot list containers with podman: {e}"))?;
        let adopted: Vec<ContainerSeen> = seen.iter().map(exec::container_seen).collect();
        if !adopted.is_empty() {
            tracing::info!("adopting {} existing runner containers", adopted.len());
        }
        self.state.mark_resync_issued(Instant::now());
        self.state.apply_resync(&adopted, Instant::now());
        self.record.adopted(&self.state, &self.ctx.cfg);
        self.follow_adopted(
            adopted
                .iter()
                .filter(|c| c.alive)
                .map(|c| c.name.clone())
                .collect(),
        );
        // Engines whose runner container vanished while no manager ran; and the Docker API
        // check (docs/docker.md).
        let known = adopted.iter().map(|c| c.name.clone()).collect();
        let orphans = crate::engine::service::orphans(&self.ctx.cfg, &known);
        let (cfg, podman) = (self.ctx.cfg.clone(), self.ctx.podman.clone());
        tokio::spawn(crate::engine::service::teardown_orphans(
            cfg, podman, orphans,
        ));
        let (cfg, podman) = (self.ctx.cfg.clone(), self.ctx.podman.clone());
        tokio::spawn(crate::engine::service::warn_api_versions(cfg, podman));
        // A manager killed mid-start leaves secret and work folders no container uses.
        exec::remove_stale_folders(
            &self.ctx,
            &self.state,
            &specs(&self.ctx.cfg, &self.overrides),
        )
        .await;
        let (oom_ids, oom_rx) = tokio::sync::watch::channel(std::collections::BTreeSet::new());
        let oom_task = tokio::spawn(oom::watch(oom_rx, self.ctx.tx.clone()));

        let (ev_tx, mut ev_rx) = mpsc::channel(256);
        let podman = self.ctx.podman.clone();
        let instance = self.ctx.cfg.manager.instance.to_string();
        let restarted_tx = self.ctx.tx.clone();
        let events_task = tokio::spawn(async move {
            loop {
                if let Err(e) = podman
                    .stream_events(labels::INSTANCE, &instance, ev_tx.clone())
                    .await
                {
                    tracing::warn!("{e}; restarting it");
                }
                if ev_tx.is_closed() {
                    return;
                }
                // Events may have been missed meanwhile: `podman ps` tells what changed.
                let _ = restarted_tx.send(Outcome::EventsRestarted);
                tokio::time::sleep(EVENTS_RESTART_DELAY).await;
            }
        });

        use tokio::signal::unix::{signal, SignalKind};
        let mut sigterm = signal(SignalKind::terminate())?;
        let mut sigint = signal(SignalKind::interrupt())?;
        let mut sighup = signal(SignalKind::hangup())?;
        let mut signals = 0u32;
        let mut rng_suffix = github::random_suffix;
        // The pools' failure reasons as last logged: each new one is logged once.
        let mut shown_errors: BTreeMap<String, String> = BTreeMap::new();
        tracing::info!(
            "podrunner manager started: {} pools, control socket {}",
            self.ctx.cfg.pools.len(),
            socket_path.display()
        );

        loop {
            self.sync_listeners();
            let mut specs = specs(&self.ctx.cfg, &self.overrides);
            self.size(&mut specs);
            let actions = self.state.plan(&specs, Instant::now(), &mut rng_suffix);
            for a in actions {
                self.execute(a);
            }
            if notifier.enabled() {
                // READY=1 once the first reconcile has planned; then watchdog and status.
                notifier.ready();
                if self.state.draining {
                    notifier.stopping();
                }
                notifier.status(&crate::systemd::notify::status_line(&self.snapshot()));
                notifier.watchdog_tick(Instant::now());
            }
            // The OOM watcher reads the counters of exactly our running containers.
            oom_ids.send_if_modified(|ids| {
                let now_ids: std::collections::BTreeSet<String> = self
                    .state
                    .runners
                    .values()
                    .filter(|r| r.phase == crate::core::Phase::Running)
                    .filter_map(|r| r.container_id.clone())
                    .collect();
                let changed = *ids != now_ids;
                *ids = now_ids;
                changed
            });
            self.record.tick();
            if self.state.is_drained() {
                break;
            }
            tokio::select! {
                Some(o) = self.outcomes.recv() => self.apply(o),
                Some(ev) = ev_rx.recv() => self.apply(Outcome::Event(ev)),
                Some((req, reply)) = req_rx.recv() => {
                    let resp = self.handle(req);
                    let _ = reply.send(resp);
                }
                _ = sigterm.recv() => { signals += 1; self.begin_drain("SIGTERM"); }
                _ = sigint.recv() => { signals += 1; self.begin_drain("SIGINT"); }
                _ = sighup.recv() => { let _ = self.reload(); }
                Some(reply) = snap_rx.recv() => { let _ = reply.send(self.snapshot()); }
                _ = tokio::time::sleep(TICK) => {}
            }
            if signals >= 2 {
                tracing::warn!("second signal: exiting now; running containers keep running and are adopted at the next start");
                break;
            }
            // Drain everything that is already queued before planning again.
            while let Ok(o) = self.outcomes.try_recv() {
                self.apply(o);
            }
            for f in self.state.take_finished() {
                log_finished(&f);
            }
            for (pool, ps) in &self.state.pools {
                if let Some(e) = &ps.last_error {
                    if shown_errors.get(pool) != Some(e) {
                        tracing::warn!(pool = %pool, "{e}");
                        shown_errors.insert(pool.clone(), e.clone());
                    }
                }
            }
        }
        self.stop_listeners().await;
        if let Some(t) = webhook_task {
            t.abort();
        }
        events_task.abort();
        oom_task.abort();
        if let Some(t) = web_task {
            t.abort();
        }
        let _ = std::fs::remove_file(&socket_path);
        tracing::info!("podrunner manager stopped");
        Ok(())
    }
}

async fn bind_control(path: &PathBuf) -> anyhow::Result<tokio::net::UnixListener> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    if path.exists() {
        match tokio::net::UnixStream::connect(path).await {
            Ok(_) => anyhow::bail!(
                "another podrunner manager is already running (its control socket {} answers)\n  fix: stop it with `podrunner stop`, or give this one its own [manager] instance name",
                path.display()
            ),
            Err(_) => {
                std::fs::remove_file(path)?;
            }
        }
    }
    let l = tokio::net::UnixListener::bind(path)
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(l)
}

async fn serve_control(
    listener: tokio::net::UnixListener,
    tx: mpsc::Sender<(Request, oneshot::Sender<Response>)>,
) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let tx = tx.clone();
        tokio::spawn(async move {
            let (r, mut w) = stream.into_split();
            let mut line = String::new();
            let mut reader = tokio::io::BufReader::new(r.take(control::MAX_REQUEST_BYTES as u64));
            if reader.read_line(&mut line).await.is_err() {
                return;
            }
            let resp = match control::parse_request(&line) {
                Err(e) => Response::err(e.to_string()),
                Ok(req) => {
                    let (otx, orx) = oneshot::channel();
                    if tx.send((req, otx)).await.is_err() {
                        return;
                    }
                    orx.await
                        .unwrap_or_else(|_| Response::err("the manager is shutting down"))
                }
            };
            let _ = w
                .write_all(control::encode_response(&resp).as_bytes())
                .await;
        });
    }
}

/// Logs what a runner's output newly told (a job taken, a job's end, a self-update).
fn log_outcome_change(
    pool: &str,
    name: &str,
    before: &crate::core::outcome::RunnerOutcome,
    now: &crate::core::outcome::RunnerOutcome,
) {
    if before.job.is_none() {
        if let Some(job) = &now.job {
            tracing::info!(pool = %pool, "runner {name} took job {job:?}");
        }
    }
    if before.result.is_none() {
        if let Some(result) = &now.result {
            let secs = now
                .duration
                .map(|d| format!(" in {}s", d.as_secs()))
                .unwrap_or_default();
            tracing::info!(pool = %pool, "runner {name}: job {:?} {}{secs}", now.job.as_deref().unwrap_or(""), result.as_str());
        }
    }
    if now.self_updates > before.self_updates {
        tracing::warn!(pool = %pool, "runner {name} is updating itself: the image is stale; pulling a newer one");
    }
    if now.deprecated && !before.deprecated {
        tracing::error!(pool = %pool, "runner {name}: GitHub refuses its version as deprecated; pulling a newer image");
    }
}

/// One line per finished runner: the record a history or metrics module takes
/// ([`crate::core::Finished`]).
fn log_finished(f: &crate::core::Finished) {
    tracing::debug!(
        pool = %f.pool,
        "runner {} finished: {}",
        f.runner,
        serde_json::to_string(f).unwrap_or_default()
    );
}
