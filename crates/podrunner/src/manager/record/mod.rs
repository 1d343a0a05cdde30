//! What the manager tells metrics and history (docs/metrics.md, docs/history.md). The loop
//! calls one hook per event it applies; this module keeps the wall-clock times the core does
//! not need, judges finished runners (`core::ending`) and writes. A history that cannot be
//! written is logged, never fatal: runners keep flowing.
//!
//! A job's outcome comes from three sources, best first: the runner's own output
//! ([`reported_job`]: name, result, start and end), what GitHub said about the job
//! ([`Recorder::job_seen`]: queue time, repository, workflow run), and what the manager saw
//! itself ([`job_outcome`]: the job ran; when the runner was first seen busy; its exit).
//!
//! Files: this one keeps the [`Recorder`] (tracks, metrics, history writes); `jobs.rs` the
//! pure merging of a job's facts; `hooks.rs` where the loop calls it.

mod hooks;
mod jobs;

pub use jobs::{job_outcome, label_pool_job, reported_job, scale_set_job};

use crate::config::Config;
use crate::core::ending::{self, FailureReason};
use crate::core::{RunnerRec, State};
use crate::history::{self, Finish, History, JobOutcome, NewRunner, Retention};
use crate::metrics::Metrics;
use crate::podman::Podman;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Retention runs this often (and at start): deleting old rows is cheap, but not per job.
const PRUNE_INTERVAL: Duration = Duration::from_secs(600);
/// A pool image's id is looked up again after this long (one `podman image inspect`): an
/// image rebuilt under the same tag shows up in the history within minutes.
const IMAGE_ID_TTL: Duration = Duration::from_secs(300);
/// How long `podman image inspect` may take.
const IMAGE_INSPECT_TIMEOUT: Duration = Duration::from_secs(30);

/// Wall-clock facts about one runner.
#[derive(Debug, Clone)]
struct Track {
    pool: String,
    image: String,
    start_asked: Instant,
    registered: bool,
    job_started_ms: Option<i64>,
    exited_ms: Option<i64>,
    online: bool,
    oom: bool,
    /// Its end was recorded (start failure or cleanup).
    finished: bool,
    /// What GitHub said about its job (a scale set's message, a label pool's job list).
    github: JobOutcome,
}

impl Track {
    /// A runner just started (`registered` false) or adopted (`registered` true): nothing of
    /// its job known yet.
    fn new(pool: &str, image: String, start_asked: Instant, registered: bool) -> Track {
        Track {
            pool: pool.to_string(),
            image,
            start_asked,
            registered,
            job_started_ms: None,
            exited_ms: None,
            online: false,
            oom: false,
            finished: false,
            github: JobOutcome::default(),
        }
    }
}

type ImageIds = Arc<Mutex<BTreeMap<String, (String, Instant)>>>;

#[derive(Debug)]
pub struct Recorder {
    pub metrics: Metrics,
    history: Option<History>,
    retention: Retention,
    last_prune: Option<Instant>,
    tracks: BTreeMap<String, Track>,
    /// Runners ended and replacements started, per pool.
    ended: BTreeMap<String, u64>,
    replaced: BTreeMap<String, u64>,
    image_ids: ImageIds,
    history_broken: bool,
}

impl Recorder {
    /// Opens the history when `[manager] history` is on; an error there is logged and the
    /// manager runs without one.
    pub fn new(cfg: &Config) -> Recorder {
        let history = cfg.manager.history.then(|| {
            History::open(&History::path_in(&cfg.manager.state_dir))
                .map_err(|e| tracing::error!("no history this run: {e}"))
                .ok()
        });
        Recorder {
            metrics: Metrics::default(),
            history: history.flatten(),
            retention: Retention {
                max_age: cfg.manager.history_max_age,
                max_bytes: cfg.manager.history_max_bytes,
            },
            last_prune: None,
            tracks: BTreeMap::new(),
            ended: BTreeMap::new(),
            replaced: BTreeMap::new(),
            image_ids: Arc::default(),
            history_broken: false,
        }
    }

    fn write(&mut self, what: &str, f: impl FnOnce(&History) -> Result<(), history::Error>) {
        let Some(h) = &self.history else { return };
        match f(h) {
            Ok(()) => self.history_broken = false,
            Err(e) if !self.history_broken => {
                tracing::warn!("cannot record {what} in the history: {e}");
                self.history_broken = true;
            }
            Err(_) => {}
        }
    }

    /// After adoption at start-up: runners found running get a track (and keep their row);
    /// rows a killed manager left open are closed.
    pub fn adopted(&mut self, state: &State, cfg: &Config) {
        let now = Instant::now();
        let alive: Vec<String> = state.runners.keys().cloned().collect();
        for r in state.runners.values() {
            let pool = crate::core::pool_label(r.pool.as_ref());
            let image = cfg.pool(pool).map(|p| p.image.clone()).unwrap_or_default();
            let log = crate::runner::Paths::of(cfg, &r.name).log;
            let created = history::now_ms();
            self.write("an adopted runner", |h| {
                h.runner_created(&NewRunner {
                    name: &r.name,
                    pool,
                    image: &image,
                    created_ms: created,
                    log_path: &log,
                })
            });
            self.tracks
                .insert(r.name.clone(), Track::new(pool, image, now, true));
        }
        let why = "the manager was not running when this runner ended; its outcome is unknown";
        if let Some(h) = &self.history {
            match h.close_unfinished(&alive, history::now_ms(), why) {
                Ok(0) => {}
                Ok(n) => {
                    tracing::info!("history: closed {n} runners that ended while no manager ran")
                }
                Err(e) => tracing::warn!("history: {e}"),
            }
        }
        self.prune_if_due(now);
    }

    /// The core decided to start `name`.
    pub fn start(&mut self, cfg: &Config, pool: &str, name: &str, podman: &Arc<Podman>) {
        let image = cfg.pool(pool).map(|p| p.image.clone()).unwrap_or_default();
        let log = crate::runner::Paths::of(cfg, name).log;
        let now_ms = history::now_ms();
        self.write("a new runner", |h| {
            h.runner_created(&NewRunner {
                name,
                pool,
                image: &image,
                created_ms: now_ms,
                log_path: &log,
            })
        });
        let ended = self.ended.get(pool).copied().unwrap_or(0);
        let replaced = self.replaced.entry(pool.to_string()).or_default();
        if *replaced < ended {
            *replaced += 1;
            self.metrics.replacement(pool);
        }
        self.refresh_image_id(&image, podman);
        self.tracks.insert(
            name.to_string(),
            Track::new(pool, image, Instant::now(), false),
        );
    }

    fn refresh_image_id(&self, image: &str, podman: &Arc<Podman>) {
        if image.is_empty() {
            return;
        }
        let fresh = self
            .image_ids
            .lock()
            .expect("image ids lock")
            .get(image)
            .is_some_and(|(_, at)| at.elapsed() < IMAGE_ID_TTL);
        if fresh {
            return;
        }
        // Mark it fetched now, so concurrent starts ask once.
        let (ids, image, podman) = (self.image_ids.clone(), image.to_string(), podman.clone());
        {
            let mut m = ids.lock().expect("image ids lock");
            let old = m.get(&image).map(|(id, _)| id.clone()).unwrap_or_default();
            m.insert(image.clone(), (old, Instant::now()));
        }
        tokio::spawn(async move {
            let out = podman
                .call(
                    &["image", "inspect", "--format", "{{.Id}}", &image],
                    IMAGE_INSPECT_TIMEOUT,
                )
                .await;
            if let Ok(out) = out {
                let id = String::from_utf8_lossy(&out).trim().to_string();
                if !id.is_empty() {
                    ids.lock()
                        .expect("image ids lock")
                        .insert(image, (id, Instant::now()));
                }
            }
        });
    }

    fn image_id_of(&self, image: &str) -> Option<String> {
        self.image_ids
            .lock()
            .expect("image ids lock")
            .get(image)
            .map(|(id, _)| id.clone())
            .filter(|id| !id.is_empty())
    }

    pub fn registered(&mut self, name: &str, runner_id: u64) {
        if let Some(t) = self.tracks.get_mut(name) {
            t.registered = true;
        }
        self.write("a registration", |h| h.runner_registered(name, runner_id));
    }

    pub fn started(&mut self, name: &str, container_id: &str) {
        let Some(t) = self.tracks.get(name) else {
            return;
        };
        self.metrics
            .container_started(&t.pool, t.start_asked.elapsed().as_secs_f64());
        let now = history::now_ms();
        self.write("a container start", |h| {
            h.runner_started(name, container_id, now)
        });
    }

    /// Registering or starting failed; `failure` as the core counts it (a name conflict is
    /// none).
    pub fn start_failed(&mut self, name: &str, why: &str, failure: bool) {
        let Some(t) = self.tracks.get_mut(name) else {
            return;
        };
        t.finished = true;
        let (pool, registered) = (t.pool.clone(), t.registered);
        *self.ended.entry(pool.clone()).or_default() += 1;
        let reason = match registered {
            false => FailureReason::Register,
            true => FailureReason::Start,
        };
        if failure {
            self.metrics.failure(&pool, reason.label());
        }
        let f = Finish {
            ended_ms: history::now_ms(),
            failure: Some(why.to_string()),
            ..Default::default()
        };
        self.write("a failed start", |h| h.runner_finished(name, &f));
    }

    /// The container exited (pidfd or Podman's event; `code` when known). Counts the Docker
    /// proxy's refusals while its log still exists (metrics/proxy.rs).
    pub fn exited(&mut self, cfg: &Config, name: &str, code: Option<i32>) {
        let now = history::now_ms();
        // Podman's event with the code may come after the cleanup: written even then.
        self.write("an exit", |h| h.runner_exited(name, now, code));
        let Some(t) = self.tracks.get_mut(name) else {
            return;
        };
        let first = t.exited_ms.is_none();
        t.exited_ms.get_or_insert(now);
        let pool = t.pool.clone();
        if first {
            // Its replacement may start before the cleanup: it counts from here.
            *self.ended.entry(pool.clone()).or_default() += 1;
            if let Ok(d) = crate::engine::EngineDirs::for_runner(
                &cfg.manager.runtime_dir,
                &cfg.manager.state_dir,
                name,
            ) {
                if let Ok(log) = std::fs::read_to_string(d.log()) {
                    let mut total = 0;
                    for (reason, n) in crate::metrics::proxy::count_refusals(&log) {
                        self.metrics.proxy_refusals(&pool, reason, n);
                        total += n;
                    }
                    if total > 0 {
                        self.write("proxy refusals", |h| h.runner_proxy_refusals(name, total));
                    }
                }
            }
        }
    }

    /// GitHub told about the job runner `name` took (a scale set's `JobStarted`, a label
    /// pool's job list): kept for its end, and counted as started if nothing counted it yet.
    pub fn job_seen(&mut self, name: &str, facts: JobOutcome) {
        let Some(t) = self.tracks.get_mut(name) else {
            return;
        };
        t.github = facts.or(std::mem::take(&mut t.github));
        if t.job_started_ms.is_some() || t.finished {
            return;
        }
        let now = history::now_ms();
        t.job_started_ms = Some(now);
        self.metrics.job_started(&t.pool);
        self.write("a job start", |h| h.job_started(name, now));
    }

    pub fn oom(&mut self, name: &str) {
        let Some(t) = self.tracks.get_mut(name) else {
            return;
        };
        if !t.oom {
            t.oom = true;
            let pool = t.pool.clone();
            self.metrics.oom_kill(&pool);
            self.write("an OOM kill", |h| h.runner_oom(name));
        }
    }

    /// After GitHub's runner list was applied: first online, first busy (= job started).
    pub fn swept(&mut self, state: &State) {
        let now = history::now_ms();
        let mut online = Vec::new();
        let mut busy = Vec::new();
        for r in state.runners.values() {
            let Some(t) = self.tracks.get_mut(&r.name) else {
                continue;
            };
            if r.online && !t.online {
                t.online = true;
                online.push(r.name.clone());
            }
            if r.busy && t.job_started_ms.is_none() && !t.finished {
                t.job_started_ms = Some(now);
                self.metrics.job_started(&t.pool);
                busy.push(r.name.clone());
            }
        }
        for n in online {
            self.write("a runner online", |h| h.runner_online(&n, now));
        }
        for n in busy {
            self.write("a job start", |h| h.job_started(&n, now));
        }
    }

    /// A runner is being cleaned up (its verdict is known): judge it, count its job and
    /// failure, write its end. `reported` is the runner's own account of its job
    /// ([`reported_job`]); GitHub's facts and the manager's own fill what it leaves open.
    pub fn cleaned(&mut self, rec: &RunnerRec, reported: JobOutcome) {
        let Some(t) = self.tracks.get_mut(&rec.name) else {
            return;
        };
        if t.finished {
            return;
        }
        t.finished = true;
        let t = t.clone();
        let ending = ending::judge(rec, t.job_started_ms.is_some());
        let job = job_outcome(
            reported.or(t.github.clone()),
            ending.job_ran,
            t.job_started_ms,
            t.exited_ms,
        );
        if ending.job_ran {
            if t.job_started_ms.is_none() {
                // A job shorter than the gap between two lists of GitHub's runners.
                self.metrics.job_started(&t.pool);
            }
            let secs = |a: Option<i64>, b: Option<i64>| Some((b? - a?) as f64 / 1000.0);
            self.metrics.job_completed(
                &t.pool,
                job.result.as_deref(),
                job.startup_secs(),
                secs(job.started_ms, job.finished_ms),
            );
        }
        if let Some(reason) = ending.failure {
            self.metrics.failure(&t.pool, reason.label());
        }
        let failure = ending.failure.map(|r| failure_text(r, rec));
        let f = Finish {
            ended_ms: t.exited_ms.unwrap_or_else(history::now_ms),
            exit_code: rec.exit_code,
            failure,
            oom: rec.oom_killed || t.oom,
            image_id: self.image_id_of(&t.image),
            job,
        };
        self.write("a finished runner", |h| h.runner_finished(&rec.name, &f));
    }

    /// The runner's record is gone from the core: forget its track.
    pub fn forget(&mut self, name: &str) {
        self.tracks.remove(name);
    }

    /// Called on each turn of the loop: retention when due.
    pub fn tick(&mut self) {
        self.prune_if_due(Instant::now());
    }

    fn prune_if_due(&mut self, now: Instant) {
        if self
            .last_prune
            .is_some_and(|t| now.duration_since(t) < PRUNE_INTERVAL)
        {
            return;
        }
        self.last_prune = Some(now);
        if let Some(h) = &self.history {
            match h.prune(history::now_ms(), &self.retention) {
                Ok(0) => {}
                Ok(n) => tracing::info!("history: retention removed {n} old runners"),
                Err(e) => tracing::warn!("history retention: {e}"),
            }
        }
    }
}

/// The failure column: the reason in words.
fn failure_text(r: FailureReason, rec: &RunnerRec) -> String {
    let code = rec.exit_code.map_or("?".into(), |c| c.to_string());
    match r {
        FailureReason::Oom => {
            format!("out of memory at the pool's memory limit (exit code {code})")
        }
        FailureReason::ExitCode => format!("exited with code {code}"),
        FailureReason::NoJob => "exited without running a job".into(),
        FailureReason::Register => "registration failed".into(),
        FailureReason::Start => "container did not start".into(),
    }
}
