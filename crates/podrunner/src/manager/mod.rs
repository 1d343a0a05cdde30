//! The manager: one loop that feeds observations into the core, executes the actions it
//! returns, serves the control socket and handles signals. It owns the core state; tasks
//! report back through a channel, so no lock guards the state.

pub mod exec;
pub mod oom;
pub mod watch;

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
}

fn specs(cfg: &Config, overrides: &BTreeMap<String, u32>) -> Vec<PoolSpec> {
    cfg.pools
        .iter()
        .map(|p| PoolSpec {
            name: p.name.to_string(),
            scope: p.scope.api_path(),
            prefix: p.runner_name.to_string(),
            desired: overrides.get(p.name.as_str()).copied().unwrap_or(p.count),
            restart_delay: p.restart_delay,
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
    let secrets = cfg.manager.runtime_dir.join("secrets");
    std::fs::create_dir_all(&secrets)?;
    std::fs::set_permissions(&secrets, std::fs::Permissions::from_mode(0o700))?;
    Ok(())
}

impl Manager {
    pub fn new(cfg: Config, gh: impl Into<Arc<Client>>, podman: Podman) -> Manager {
        let (tx, rx) = mpsc::unbounded_channel();
        Manager {
            ctx: Ctx {
                cfg: Arc::new(cfg),
                gh: gh.into(),
                podman: Arc::new(podman),
                tx,
                start_slots: Arc::new(tokio::sync::Semaphore::new(exec::MAX_CONCURRENT_STARTS)),
            },
            state: State::new(),
            overrides: BTreeMap::new(),
            started: Instant::now(),
            outcomes: rx,
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
        }
    }

    fn apply(&mut self, o: Outcome) {
        let now = Instant::now();
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
            Outcome::Resynced(Ok(seen)) => self.state.apply_resync(&seen, now),
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
    }

    pub fn snapshot(&self) -> StatusSnapshot {
        let now = Instant::now();
        let specs = specs(&self.ctx.cfg, &self.overrides);
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
        tracing::info!(
            "podrunner manager started: {} pools, control socket {}",
            self.ctx.cfg.pools.len(),
            socket_path.display()
        );

        loop {
            let specs = specs(&self.ctx.cfg, &self.overrides);
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
        }
        events_task.abort();
        oom_task.abort();
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
                Err(e) => Response::err(e),
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
