//! Runners on demand (docs/scaling.md), end to end: the real `podrunner` binary, real Podman,
//! the fake GitHub's scale set service and message queue as the judge.
#![allow(
    clippy::disallowed_methods,
    reason = "test code starts the programs it tests and inspects the host directly"
)]

mod common;

use common::*;
use std::collections::BTreeMap;
use std::process::{Child, Command};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

const SET: &str = "big";

fn scale_set_pool(min_idle: u32, max: u32) -> Pool {
    Pool::demand(
        "ss",
        &format!(
            "scale_set = \"{SET}\"\nmin_idle = {min_idle}\nmax = {max}\nidle_timeout = \"3s\""
        ),
    )
}

/// A bench with one scale set pool, its manager started and holding the session. The fake's
/// empty long polls last `poll_ms`.
async fn started(test: &str, min_idle: u32, max: u32, poll_ms: u64) -> Bench {
    let mut b = Bench::new(test, vec![scale_set_pool(min_idle, max)]).await;
    b.gh.with_state(|st| st.scalesets.poll_wait_ms = poll_ms);
    b.start_manager();
    b.wait_until("the session", Duration::from_secs(60), |b| {
        scaling(b)["session_held"] == true
    })
    .await;
    b
}

/// The id of the scale set's open session, if any.
fn session_id(b: &Bench) -> Option<String> {
    b.gh.with_state(|st| {
        let set = st.scalesets.sets.values().next()?;
        set.session.as_ref().map(|s| s.id.clone())
    })
}

fn scaling(b: &Bench) -> serde_json::Value {
    b.status_json()["status"]["pools"][0]["scaling"].clone()
}

/// Samples, until stopped, the most registrations and containers the pool had at once.
struct Peak {
    stop: Arc<AtomicBool>,
    registrations: Arc<AtomicUsize>,
    containers: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

fn watch_peak(b: &Bench) -> Peak {
    let stop = Arc::new(AtomicBool::new(false));
    let registrations = Arc::new(AtomicUsize::new(0));
    let containers = Arc::new(AtomicUsize::new(0));
    let shared = b.gh.shared();
    let instance = b.instance.clone();
    let (s, r, c) = (stop.clone(), registrations.clone(), containers.clone());
    let task = tokio::task::spawn_blocking(move || {
        while !s.load(Ordering::Relaxed) {
            let n = shared.lock().runners.len();
            r.fetch_max(n, Ordering::Relaxed);
            c.fetch_max(running_of(&instance).len(), Ordering::Relaxed);
            std::thread::sleep(Duration::from_millis(150));
        }
    });
    Peak {
        stop,
        registrations,
        containers,
        task,
    }
}

impl Peak {
    async fn finish(self) -> (usize, usize) {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.unwrap();
        (
            self.registrations.load(Ordering::Relaxed),
            self.containers.load(Ordering::Relaxed),
        )
    }
}

/// From zero, a queued job gets a runner and runs; a burst of 20 jobs with `max = 4` never
/// has more than 4 runners and drains; then the pool is back to `min_idle` (0) after the
/// idle time, and a stop closes the session and leaves nothing.
#[tokio::test(flavor = "multi_thread")]
async fn scale_set_from_zero_burst_of_20_and_back_to_min_idle() {
    let mut b = started("ssburst", 0, 4, 2000).await;
    let sc = scaling(&b);
    assert_eq!(sc["mode"], "scale-set");
    assert_eq!(sc["desired"], 0);
    assert!(
        b.containers().is_empty(),
        "no runner while nothing is queued"
    );
    assert!(b.gh.live_runners().is_empty());

    let first = b.gh.enqueue_job(SCOPE, &[SET], "echo from-zero").id;
    let j =
        b.gh.wait_job_completed(first, Duration::from_secs(60))
            .await
            .unwrap_or_else(|| panic!("the first job did not run\n{}", b.log_tail(60)));
    assert!(j.output.unwrap_or_default().contains("from-zero"));

    let peak = watch_peak(&b);
    let jobs: Vec<u64> = (0..20)
        .map(|i| {
            b.gh.enqueue_job(SCOPE, &[SET], &format!("sleep 1; echo burst-{i}"))
                .id
        })
        .collect();
    b.wait_until("4 runners for the burst", Duration::from_secs(60), |b| {
        scaling(b)["desired"] == 4
    })
    .await;
    assert!(
        b.gh.wait_jobs_completed(Duration::from_secs(150)).await,
        "the burst did not drain\n{}",
        b.log_tail(80)
    );
    let (regs, containers) = peak.finish().await;
    assert!(regs <= 4, "{regs} registrations at once, max is 4");
    assert!(containers <= 4, "{containers} containers at once, max is 4");
    let mut runners = BTreeMap::new();
    for id in &jobs {
        let j = b.gh.job(*id).unwrap();
        assert_eq!(
            format!("{:?}", j.conclusion),
            "Some(Success)",
            "job {id}: {j:?}"
        );
        *runners.entry(j.runner_name.unwrap()).or_insert(0) += 1;
    }
    assert_eq!(runners.len(), 20, "one fresh runner per job: {runners:?}");
    assert_eq!(
        b.gh.with_state(|st| st.scalesets.acquired_log.len()),
        21,
        "each job acquired once"
    );

    // Back to min_idle (0) once the idle time has passed.
    b.wait_until("no runner left", Duration::from_secs(60), |b| {
        b.containers().is_empty() && b.gh.live_runners().is_empty()
    })
    .await;
    let sc = scaling(&b);
    assert_eq!(
        (sc["desired"].clone(), sc["assigned_jobs"].clone()),
        (0.into(), 0.into())
    );
    assert!(sc["github"]["totalAssignedJobs"] == 0, "{sc}");

    let (code, out, err) = b.cli(&["stop"]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(b.wait_manager_exit(Duration::from_secs(60)).await, 0);
    assert!(
        b.gh.with_state(|st| st.scalesets.sets.values().all(|s| s.session.is_none())),
        "the session was not deleted on stop"
    );
    // API calls per job: the listener's long polls and acks, one acquire, one JIT each.
    let stats = b.gh.stats();
    let jit = stats.by_route["POST scaleset generatejitconfig"];
    assert!(jit <= 23, "{jit} JIT configs for 21 jobs");
}

/// A second manager (another host) on the same scale set: it waits while the first holds the
/// session and says who does; when the first stops, it takes over and serves the jobs.
#[tokio::test(flavor = "multi_thread")]
async fn scale_set_session_conflict_then_takeover() {
    let mut a = started("ssconf", 1, 2, 1000).await;
    a.wait_until("A's idle runner", Duration::from_secs(60), |b| {
        b.runners_in("idle").len() == 1
    })
    .await;
    let owner_a = scaling(&a)["session_owner"].as_str().unwrap().to_string();
    assert!(owner_a.ends_with(&a.instance), "{owner_a}");

    let mut bm = SecondManager::start(&a, "ssconf2");
    bm.wait_until(
        &a,
        "B waiting on A's session",
        Duration::from_secs(90),
        |s| s["session_held"] == false && s["session_owner"] == owner_a.as_str(),
    )
    .await;
    let s = bm.scaling(&a);
    assert!(
        s["note"]
            .as_str()
            .unwrap()
            .contains("already has an active session"),
        "{s}"
    );
    assert_eq!(s["desired"], 0, "a waiting host keeps no runner: {s}");

    let (code, out, err) = a.cli(&["stop"]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(a.wait_manager_exit(Duration::from_secs(60)).await, 0);
    bm.wait_until(&a, "B holds the session", Duration::from_secs(120), |s| {
        s["session_held"] == true
    })
    .await;
    let job = a.gh.enqueue_job(SCOPE, &[SET], "echo served-by-b").id;
    let j =
        a.gh.wait_job_completed(job, Duration::from_secs(60))
            .await
            .expect("B served the job");
    assert!(
        j.runner_name.unwrap().starts_with(&bm.prefix),
        "not B's runner"
    );
    assert_eq!(
        a.gh.with_state(|st| st.scalesets.sets.values().next().unwrap().owners.len()),
        2
    );
    bm.stop(&a).await;
}

/// A manager killed with SIGKILL in the middle of a burst, then started again: it ends the
/// session it left open, adopts its runners, and every job runs exactly once.
#[tokio::test(flavor = "multi_thread")]
async fn scale_set_manager_restart_mid_burst_loses_and_duplicates_nothing() {
    let mut b = started("ssrestart", 0, 3, 1000).await;
    let jobs: Vec<u64> = (0..8)
        .map(|i| {
            b.gh.enqueue_job(SCOPE, &[SET], &format!("sleep 3; echo job-{i}"))
                .id
        })
        .collect();
    b.wait_until("jobs running", Duration::from_secs(120), |b| {
        b.gh.jobs()
            .iter()
            .filter(|j| j.status == fake_github::JobStatus::InProgress)
            .count()
            >= 2
    })
    .await;
    b.kill_manager_hard();
    let old_session = session_id(&b);
    assert!(
        old_session.is_some(),
        "the killed manager's session stays open"
    );
    b.start_manager();
    assert!(
        b.gh.wait_jobs_completed(Duration::from_secs(120)).await,
        "jobs lost after the restart\n{}",
        b.log_tail(80)
    );
    let mut names = std::collections::BTreeSet::new();
    for id in &jobs {
        let j = b.gh.job(*id).unwrap();
        assert_eq!(format!("{:?}", j.conclusion), "Some(Success)", "{j:?}");
        assert!(
            names.insert(j.runner_name.clone().unwrap()),
            "two jobs on one runner"
        );
    }
    let new_session = session_id(&b);
    assert_ne!(new_session, old_session, "a new session");
    assert!(
        b.all_logs().contains("a previous manager left open"),
        "{}",
        b.log_tail(40)
    );
    let (code, out, err) = b.cli(&["stop"]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(b.wait_manager_exit(Duration::from_secs(60)).await, 0);
    b.wait_until("nothing left", Duration::from_secs(60), |b| {
        b.containers().is_empty()
    })
    .await;
    assert!(b.gh.live_runners().is_empty(), "{:?}", b.gh.live_runners());
}

/// A second `podrunner run` against the same fake GitHub: its own instance, folders and
/// runner names, as another host would have.
struct SecondManager {
    config: std::path::PathBuf,
    child: Option<Child>,
    prefix: String,
    log: std::path::PathBuf,
}

impl SecondManager {
    /// Another manager of the scale set pool `ss` under another runner-name family.
    fn start(a: &Bench, instance: &str) -> SecondManager {
        SecondManager::launch(a, instance, "ss", "-b", BENCH_HOST_ID)
    }

    /// The same config on another host: the same pool and runner names, its own host id
    /// (docs/hosts.md), as a fleet sharing one config has.
    fn another_host(a: &Bench, instance: &str, pool: &str, host_id: &str) -> SecondManager {
        SecondManager::launch(a, instance, pool, "", host_id)
    }

    fn launch(
        a: &Bench,
        instance: &str,
        pool: &str,
        family_suffix: &str,
        host_id: &str,
    ) -> SecondManager {
        let text = std::fs::read_to_string(&a.config).unwrap();
        let base = a.dir.path().join(instance);
        std::fs::create_dir_all(&base).unwrap();
        // The config's runner_name is the family; names add the host id (docs/hosts.md).
        let family = a
            .prefix(pool)
            .strip_suffix(&format!("-{BENCH_HOST_ID}"))
            .expect("the bench's prefix ends with its host id")
            .to_string();
        let b_family = format!("{family}{family_suffix}");
        let prefix = format!("{b_family}-{host_id}");
        let text = text
            .replace(
                &format!("instance = \"{}\"", a.instance),
                &format!("instance = \"{instance}\""),
            )
            .replace(
                &format!("host_id = \"{BENCH_HOST_ID}\""),
                &format!("host_id = \"{host_id}\""),
            )
            .replace(
                &format!("runner_name = \"{family}\""),
                &format!("runner_name = \"{b_family}\""),
            )
            .replace(
                &a.dir.path().join("state").display().to_string(),
                &base.join("state").display().to_string(),
            )
            .replace(
                &a.dir.path().join("run").display().to_string(),
                &base.join("run").display().to_string(),
            )
            .replace(
                &a.dir.path().join("work").display().to_string(),
                &base.join("work").display().to_string(),
            );
        let config = base.join("config.toml");
        std::fs::write(&config, text).unwrap();
        let log = base.join("manager.stderr");
        let child = spawn_manager(&config, &log, &[]);
        SecondManager {
            config,
            child: Some(child),
            prefix,
            log,
        }
    }

    fn scaling(&self, a: &Bench) -> serde_json::Value {
        let _ = a;
        let out = Command::new(podrunner_bin())
            .args([
                "--config",
                self.config.to_str().unwrap(),
                "status",
                "--json",
            ])
            .output()
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        v["status"]["pools"][0]["scaling"].clone()
    }

    async fn wait_until(
        &self,
        a: &Bench,
        what: &str,
        timeout: Duration,
        mut pred: impl FnMut(&serde_json::Value) -> bool,
    ) {
        let start = std::time::Instant::now();
        while start.elapsed() < timeout {
            if pred(&self.scaling(a)) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        panic!(
            "timed out waiting for {what}: {}\n{}",
            self.scaling(a),
            std::fs::read_to_string(&self.log).unwrap_or_default()
        );
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn log_tail(&self, n: usize) -> String {
        let s = self.log();
        let lines: Vec<&str> = s.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    async fn stop(&mut self, a: &Bench) {
        let _ = a;
        let _ = Command::new(podrunner_bin())
            .args(["--config", self.config.to_str().unwrap(), "stop"])
            .output();
        if let Some(mut c) = self.child.take() {
            for _ in 0..600 {
                if c.try_wait().unwrap().is_some() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for SecondManager {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let out = Command::new("podman")
            .args(["ps", "-a", "--format", "{{.Names}}"])
            .output()
            .unwrap();
        for n in String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|n| n.starts_with(&self.prefix))
        {
            let _ = Command::new("podman")
                .args(["rm", "-f", "-t", "0", n])
                .output();
        }
    }
}

/// A label pool sized by queued jobs (polling with conditional requests): from zero, a queued
/// job gets a runner and runs; with nothing queued the pool goes back to `min_idle` (0); an
/// idle repository costs no rate limit (304s).
#[tokio::test(flavor = "multi_thread")]
async fn label_pool_from_zero_on_queued_jobs_and_back() {
    let mut b = Bench::new(
        "lblpool",
        vec![Pool::demand(
            "lp",
            "min_idle = 0\nmax = 2\nidle_timeout = \"2s\"\npoll_interval = \"1s\"\nlabels = [\"podman\"]",
        )],
    )
    .await;
    b.start_manager();
    b.wait_until("the first poll", Duration::from_secs(60), |b| {
        scaling(b)["reported_secs_ago"].is_u64()
    })
    .await;
    assert_eq!(scaling(&b)["mode"], "labels");
    assert!(b.containers().is_empty());
    let jobs: Vec<u64> = (0..3)
        .map(|i| {
            b.gh.enqueue_job(
                SCOPE,
                &["self-hosted", "podman"],
                &format!("echo label-{i}"),
            )
            .id
        })
        .collect();
    // A job no pool here can run: it stays queued and starts nothing.
    let foreign = b.gh.enqueue_job(SCOPE, &["self-hosted", "gpu"], "true").id;
    for id in &jobs {
        let j =
            b.gh.wait_job_completed(*id, Duration::from_secs(90))
                .await
                .unwrap_or_else(|| panic!("job {id} did not run\n{}", b.log_tail(60)));
        assert_eq!(format!("{:?}", j.conclusion), "Some(Success)");
    }
    assert_eq!(
        b.gh.job(foreign).unwrap().status,
        fake_github::JobStatus::Queued
    );
    b.wait_until("back to no runner", Duration::from_secs(60), |b| {
        b.containers().is_empty() && b.gh.live_runners().is_empty()
    })
    .await;
    let sc = scaling(&b);
    assert_eq!(sc["queued_jobs"], 0, "{sc}");
    // Polling an unchanged repository is answered with 304s, which cost nothing.
    let before = b.gh.rate_limit().remaining;
    let not_modified = || b.gh.stats().by_route.get("304").copied().unwrap_or(0);
    let first = not_modified();
    // Two more polling rounds, however long a slow host takes for them.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while not_modified() < first + 4 {
        assert!(
            std::time::Instant::now() < deadline,
            "no further 304s\n{}",
            b.log_tail(40)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        before - b.gh.rate_limit().remaining <= 2,
        "idle polling cost {} calls",
        before - b.gh.rate_limit().remaining
    );
    b.cli(&["stop"]);
    b.wait_manager_exit(Duration::from_secs(60)).await;
}

/// Containers of one manager instance that are running now.
fn running_of(instance: &str) -> Vec<String> {
    let out = Command::new("podman")
        .args([
            "ps",
            "--filter",
            &format!("label=podrunner.instance={instance}"),
            "--format",
            "{{.Names}}",
        ])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

/// Names a manager's log says it deregistered itself (retired idle runners) or deleted as
/// orphans (by registration id, mapped to names through the fake's records).
fn deleted_by(log: &str, names_by_id: &BTreeMap<u64, String>) -> Vec<String> {
    let mut out = Vec::new();
    for line in log.lines() {
        if let Some(i) = line.find(" deregistered; stopping its container") {
            out.push(line[..i].rsplit(' ').next().unwrap().to_string());
        }
        if let Some(rest) = line.split("deleted orphaned registration ").nth(1) {
            let id: u64 = rest.split(' ').next().unwrap().parse().unwrap();
            out.push(names_by_id.get(&id).cloned().unwrap_or(format!("#{id}")));
        }
    }
    out
}

/// Two hosts with the same label pool (one config, their own host ids) against one GitHub:
/// both see the same queued jobs and start runners for them. Every job runs exactly once;
/// each host stays within its own `max`, so the two together never exceed the sum of the
/// `max`es (the bound docs/scaling.md states); afterwards each is back to its own `min_idle`,
/// and neither deleted a runner of the other.
#[tokio::test(flavor = "multi_thread")]
async fn label_pool_on_two_hosts_bounded_and_no_job_lost() {
    const MAX: usize = 3;
    const MIN_IDLE: usize = 1;
    const JOBS: usize = 10;
    let mut a = Bench::new(
        "lp2h",
        vec![Pool::demand(
            "lp",
            &format!(
                "min_idle = {MIN_IDLE}\nmax = {MAX}\nidle_timeout = \"3s\"\npoll_interval = \"1s\"\nlabels = [\"podman\"]"
            ),
        )],
    )
    .await;
    a.start_manager();
    let mut bm = SecondManager::another_host(&a, "lp2h-b", "lp", "h2");
    let prefix_a = a.prefix("lp");
    assert_ne!(prefix_a, bm.prefix);
    let b_instance = "lp2h-b".to_string();
    // At rest: each host keeps its min_idle runner waiting.
    let rest = |a: &Bench| {
        let live = a.gh.live_runners();
        let of = |p: &str| {
            live.iter()
                .filter(|r| {
                    r.name.starts_with(p)
                        && r.status == fake_github::RunnerStatus::Online
                        && !r.busy
                })
                .count()
        };
        live.len() == 2 * MIN_IDLE && of(&prefix_a) == MIN_IDLE && of(&bm.prefix) == MIN_IDLE
    };
    a.wait_until("each host's idle runner", Duration::from_secs(90), |a| {
        rest(a)
    })
    .await;

    // Sample, until the burst drained, the most runners each host and GitHub had at once.
    let stop = Arc::new(AtomicBool::new(false));
    let peaks: Arc<[AtomicUsize; 3]> = Arc::new(Default::default());
    let sampler = {
        let (stop, peaks, shared) = (stop.clone(), peaks.clone(), a.gh.shared());
        let instances = [a.instance.clone(), b_instance.clone()];
        tokio::task::spawn_blocking(move || {
            while !stop.load(Ordering::Relaxed) {
                peaks[0].fetch_max(shared.lock().runners.len(), Ordering::Relaxed);
                for (i, inst) in instances.iter().enumerate() {
                    peaks[i + 1].fetch_max(running_of(inst).len(), Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(150));
            }
        })
    };
    let jobs: Vec<u64> = (0..JOBS)
        .map(|i| {
            a.gh.enqueue_job(
                SCOPE,
                &["self-hosted", "podman"],
                &format!("sleep 2; echo two-hosts-{i}"),
            )
            .id
        })
        .collect();
    let drained = a.gh.wait_jobs_completed(Duration::from_secs(150)).await;
    stop.store(true, Ordering::Relaxed);
    sampler.await.unwrap();
    assert!(
        drained,
        "the burst did not drain\nA:\n{}\nB:\n{}",
        a.log_tail(60),
        bm.log_tail(60)
    );
    let [regs, on_a, on_b] = [0, 1, 2].map(|i| peaks[i].load(Ordering::Relaxed));
    assert!(
        on_a <= MAX,
        "host A ran {on_a} runners at once, its max is {MAX}"
    );
    assert!(
        on_b <= MAX,
        "host B ran {on_b} runners at once, its max is {MAX}"
    );
    assert!(
        regs <= 2 * MAX,
        "{regs} registrations at once, the bound is {}",
        2 * MAX
    );

    // Every job ran exactly once, each on a runner of its own, on one host or the other.
    let history = a.gh.with_state(|st| st.history.clone());
    let mut runners = std::collections::BTreeSet::new();
    for id in &jobs {
        let j = a.gh.job(*id).unwrap();
        assert_eq!(format!("{:?}", j.conclusion), "Some(Success)", "{j:?}");
        let name = j.runner_name.clone().unwrap();
        assert!(
            name.starts_with(&prefix_a) || name.starts_with(&bm.prefix),
            "{name}"
        );
        assert!(runners.insert(name.clone()), "{name} took two jobs");
        assert_eq!(
            j.output.unwrap_or_default().matches("two-hosts-").count(),
            1
        );
        let took = history
            .iter()
            .chain(a.gh.live_runners().iter())
            .filter(|r| r.job_id == Some(*id))
            .count();
        assert_eq!(took, 1, "job {id} was taken by {took} runners");
    }

    // Back to min_idle on each host once the idle time passed.
    a.wait_until("both hosts back at rest", Duration::from_secs(90), |a| {
        rest(a)
            && running_of(&a.instance).len() == MIN_IDLE
            && running_of(&b_instance).len() == MIN_IDLE
    })
    .await;
    // Neither host deleted a registration of the other: every runner removed without a job
    // was deleted by the host whose name it carries.
    let history = a.gh.with_state(|st| st.history.clone());
    let names_by_id: BTreeMap<u64, String> =
        history.iter().map(|r| (r.id, r.name.clone())).collect();
    let by_a = deleted_by(&a.all_logs(), &names_by_id);
    let by_b = deleted_by(&bm.log(), &names_by_id);
    assert!(
        by_a.iter().all(|n| n.starts_with(&prefix_a)),
        "A deleted {by_a:?}"
    );
    assert!(
        by_b.iter().all(|n| n.starts_with(&bm.prefix)),
        "B deleted {by_b:?}"
    );
    for r in history.iter().filter(|r| r.job_id.is_none()) {
        assert!(
            by_a.contains(&r.name) || by_b.contains(&r.name),
            "{} was deleted by neither host's own decision",
            r.name
        );
    }
    // Whether the hosts started more runners than the jobs needed depends on timing (both
    // see the same queued jobs between two polls, or their idle runners take the jobs first):
    // seen in CI both ways. When they did, the loop above checked who retired them.
    let retired = history.iter().filter(|r| r.job_id.is_none()).count();
    eprintln!("{retired} extra idle runner(s) retired, each by its own host");
    bm.stop(&a).await;
    a.cli(&["stop"]);
    assert_eq!(a.wait_manager_exit(Duration::from_secs(60)).await, 0);
    a.wait_until("nothing left", Duration::from_secs(60), |a| {
        a.gh.live_runners().is_empty() && a.containers().is_empty()
    })
    .await;
}

/// With `workflow_job` webhooks: a delivered `queued` event makes the poller look at once; a
/// delivery GitHub failed (dropped here) is recovered by the next poll; a forged signature
/// and a redelivery change nothing.
#[tokio::test(flavor = "multi_thread")]
async fn missed_webhook_is_recovered_by_polling() {
    let mut b = Bench::new(
        "hooks",
        vec![Pool::demand(
            "wh",
            "max = 2\nidle_timeout = \"2s\"\npoll_interval = \"6s\"",
        )],
    )
    .await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let secret = b.dir.path().join("hook-secret");
    std::fs::write(&secret, "s3cret-hook").unwrap();
    std::fs::set_permissions(&secret, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    b.edit_config(|s| {
        s.replacen(
            "[manager]\n",
            &format!(
                "[manager]\nwebhook_listen = \"127.0.0.1:{port}\"\nwebhook_secret_file = \"{}\"\n",
                secret.display()
            ),
            1,
        )
    });
    let url = format!("http://127.0.0.1:{port}/webhook");
    b.gh.add_webhook(&url, "s3cret-hook");
    b.start_manager();
    b.wait_until("the first poll", Duration::from_secs(60), |b| {
        scaling(b)["reported_secs_ago"].is_u64()
    })
    .await;
    // Right after a poll: only the webhook can make the next job start before the next one.
    b.wait_until("a fresh poll", Duration::from_secs(60), |b| {
        scaling(b)["reported_secs_ago"] == 0
    })
    .await;
    let first = b.gh.enqueue_job(SCOPE, LABELS, "echo hooked").id;
    b.gh.wait_job_completed(first, Duration::from_secs(60))
        .await
        .expect("the first job ran");
    let log = b.gh.with_state(|st| st.webhooks.log.clone());
    assert_eq!(log[0].action, "queued");
    assert_eq!(log[0].status, 202, "{log:?}");
    // The delivery woke the poller rather than the job waiting for the next round (a
    // statement of the poller's, not a time: the host may be slow).
    assert!(
        b.all_logs()
            .contains("a webhook woke the poller of octo/hello"),
        "{}",
        b.log_tail(60)
    );

    // The next `queued` delivery is lost: polling finds the job anyway.
    assert!(
        b.gh.wait_for(Duration::from_secs(60), |st| st
            .webhooks
            .log
            .iter()
            .any(|d| d.job_id == first && d.action == "completed"))
            .await
    );
    b.gh.with_state(|st| st.webhooks.drop_next = 1);
    let second = b.gh.enqueue_job(SCOPE, LABELS, "echo polled").id;
    b.gh.wait_job_completed(second, Duration::from_secs(60))
        .await
        .unwrap_or_else(|| {
            panic!(
                "the job whose webhook was lost never ran\n{}",
                b.log_tail(60)
            )
        });
    let log = b.gh.with_state(|st| st.webhooks.log.clone());
    let lost = log
        .iter()
        .find(|d| d.job_id == second && d.action == "queued")
        .unwrap();
    assert_eq!(lost.status, 0, "dropped");

    // Forged or repeated deliveries.
    let http = reqwest::Client::new();
    let body = r#"{"action":"queued","workflow_job":{"labels":["self-hosted"]},"repository":{"full_name":"octo/hello"}}"#;
    let send = |sig: String, id: &'static str| {
        http.post(&url)
            .header("X-GitHub-Event", "workflow_job")
            .header("X-GitHub-Delivery", id)
            .header("X-Hub-Signature-256", sig)
            .body(body)
            .send()
    };
    let forged = send(
        fake_github::webhooks::signature("wrong", body.as_bytes()),
        "d1",
    )
    .await
    .unwrap();
    assert_eq!(forged.status(), 401);
    let good = fake_github::webhooks::signature("s3cret-hook", body.as_bytes());
    assert_eq!(send(good.clone(), "d2").await.unwrap().status(), 202);
    assert_eq!(
        send(good, "d2").await.unwrap().status(),
        200,
        "a redelivery"
    );
    b.cli(&["stop"]);
    b.wait_manager_exit(Duration::from_secs(60)).await;
}
