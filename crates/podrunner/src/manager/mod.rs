//! The manager: one loop that feeds observations into the core, executes the actions it
//! returns, serves the control socket and handles signals. It owns the core state; tasks
//! report back through a channel, so no lock guards the state.
//!
//! Files: this one holds the loop itself; `apply.rs` executes actions and applies outcomes,
//! `scaling.rs` sizes demand pools and runs their listeners, `status.rs` answers the control
//! socket, `exec.rs` the tasks, `record/` metrics and history.

mod apply;
pub mod exec;
pub mod oom;
pub mod queued;
pub mod record;
pub mod scaleset;
mod scaling;
mod status;

pub use scaling::conflict_owner;
pub mod watch;
pub mod webhook;

use crate::config::{
    self,
    names::{PoolName, Scope},
    Config,
};
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
    Swept(Vec<(Scope, Option<Vec<RegistrationSeen>>)>),
    /// Listing the runners of `scope` failed (sent before the `Swept` that carries `None`).
    SweepFailed {
        scope: Scope,
        why: String,
    },
    /// `podman events` ended and is started again: look at `podman ps` for what was missed.
    EventsRestarted,
    /// The kernel's OOM killer struck in this container's memory cgroup.
    Oom {
        container_id: String,
    },
    Resynced(anyhow::Result<Vec<ContainerSeen>>),
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
        pool: PoolName,
        result: Result<Option<String>, crate::cmd::CommandError>,
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

#[derive(Debug)]
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
    /// The pools' specs of this turn of the loop, sized by demand: computed once per turn
    /// ([`Manager::refresh_specs`]) and read by everything the turn does.
    specs: Vec<PoolSpec>,
}

fn specs(cfg: &Config, overrides: &BTreeMap<String, u32>) -> Vec<PoolSpec> {
    use crate::core::demand::Mode;
    cfg.pools
        .iter()
        .map(|p| {
            let demand = p.mode != Mode::Fixed;
            PoolSpec {
                name: p.name.clone(),
                scope: p.scope.clone(),
                prefix: p.host_prefix(&cfg.manager.host_id),
                desired: overrides.get(p.name.as_str()).copied().unwrap_or(p.count),
                restart_delay: p.restart_delay,
                idle_timeout: demand.then_some(p.idle_timeout),
                cap: demand.then_some(p.max),
                stop_timeout: p.stop_timeout,
                family: p.runner_name.to_string(),
                online_timeout: p.online_timeout,
                pull: p.pull,
                pull_interval: p.pull_interval,
            }
        })
        .collect()
}

/// Removes a file the manager made; one already gone is fine, any other failure is logged
/// (never dropped).
pub(crate) fn remove_file_logged(path: &std::path::Path) {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            tracing::warn!("cannot remove {}: {e}", path.display())
        }
        _ => {}
    }
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
        let specs = specs(&cfg, &BTreeMap::new());
        Manager {
            specs,
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

    /// Runs until drained. Returns after the last runner is cleaned up.
    pub async fn run(mut self, opts: RunOptions) -> anyhow::Result<()> {
        // Read (and unset) NOTIFY_SOCKET before any podman child can inherit it.
        let mut notifier = match opts.notify_ready {
            true => crate::systemd::notify::Notifier::from_env(),
            false => crate::systemd::notify::Notifier::default(),
        };
        let socket_path = self.ctx.cfg.control_socket();
        let listener = status::bind_control(&socket_path).await?;
        let (req_tx, mut req_rx) = mpsc::channel::<(Request, oneshot::Sender<Response>)>(16);
        let control_open = std::sync::Arc::new(());
        tokio::spawn(status::serve_control(
            listener,
            req_tx,
            control_open.clone(),
        ));
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
        exec::remove_stale_folders(&self.ctx, &self.state, &self.specs).await;
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
            self.refresh_specs();
            let actions = self
                .state
                .plan(&self.specs, Instant::now(), &mut rng_suffix);
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
                let now_ids = self.state.running_container_ids();
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
                _ = sighup.recv() => {
                    // An invalid file is logged by reload itself.
                    match self.reload() {
                        Err(e) if !matches!(e, status::ReloadError::Invalid(_)) => tracing::error!("reload refused: {e}"),
                        _ => {}
                    }
                }
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
                apply::log_finished(&f);
            }
            for (pool, ps) in &self.state.pools {
                if let Some(e) = &ps.last_error {
                    if shown_errors.get(pool.as_str()) != Some(e) {
                        tracing::warn!(pool = %pool, "{e}");
                        shown_errors.insert(pool.to_string(), e.clone());
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
        remove_file_logged(&socket_path);
        status::flush_answers(&control_open).await;
        tracing::info!("podrunner manager stopped");
        Ok(())
    }
}
#[cfg(test)]
mod tests;
