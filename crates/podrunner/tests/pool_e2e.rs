//! End to end: the real `podrunner` binary, real Podman, the test image, and the fake GitHub.
#![allow(
    clippy::disallowed_methods,
    reason = "test code starts the programs it tests and inspects the host directly"
)]

mod common;

use common::*;
use std::time::Duration;

/// N jobs through a pool of M: every job gets a fresh container, every registration is gone
/// at the end, and `podrunner stop` leaves nothing behind.
#[tokio::test(flavor = "multi_thread")]
async fn jobs_flow_through_fresh_containers() {
    let mut b = Bench::new("flow", vec![Pool::new("ci", 2)]).await;
    b.start_manager();
    // Each job leaves a file behind in its container and fails if a previous job's is there.
    let script = "if [ -e /tmp/left-by-a-job ]; then echo DIRTY; exit 1; fi; touch /tmp/left-by-a-job; touch $HOME/home-marker; echo fresh";
    let jobs: Vec<u64> = (0..6)
        .map(|_| b.gh.enqueue_job(SCOPE, LABELS, script).id)
        .collect();
    for id in &jobs {
        let j = tokio::time::timeout(
            Duration::from_secs(120),
            b.gh.wait_job_completed(*id, Duration::from_secs(120)),
        )
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("job {id} did not complete\n{}", b.log_tail(80)));
        assert_eq!(
            format!("{:?}", j.conclusion),
            "Some(Success)",
            "job {id}: {:?}",
            j.output
        );
        assert!(
            j.output.as_deref().unwrap_or("").contains("fresh"),
            "{:?}",
            j.output
        );
    }
    let names: std::collections::BTreeSet<String> = jobs
        .iter()
        .map(|id| b.gh.job(*id).unwrap().runner_name.unwrap())
        .collect();
    assert_eq!(names.len(), 6, "every job ran on its own runner: {names:?}");
    // A finished runner's container output stays readable.
    let first = b.gh.job(jobs[0]).unwrap().runner_name.unwrap();
    let (code, out, err) = b.cli(&["logs", &first]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("Listening for Jobs") && out.contains("fresh"),
        "{out}"
    );
    let (code, out, _) = b.cli(&["logs", "-n", "3"]);
    assert_eq!(code, 0);
    assert!(out.lines().count() <= 3 && !out.is_empty(), "{out}");

    // The pool refills to 2 idle runners.
    b.wait_until("2 idle runners", Duration::from_secs(60), |b| {
        b.runners_in("idle").len() == 2
    })
    .await;
    let (code, out, err) = b.cli(&["stop"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("podrunner stopped"), "{out}");
    assert_eq!(b.wait_manager_exit(Duration::from_secs(60)).await, 0);
    assert!(
        b.gh.live_runners().is_empty(),
        "registrations left: {:?}",
        b.gh.live_runners()
    );
    assert!(
        b.containers().is_empty(),
        "containers left: {:?}",
        b.containers()
    );
    // Exits are seen through the container process's pidfd, not only through podman's
    // event log (which lags about 150 ms).
    assert!(
        b.all_logs().contains("container process of"),
        "pidfd exit watch not used"
    );
    let secrets = b.dir.path().join("run/secrets");
    assert_eq!(
        std::fs::read_dir(&secrets).unwrap().count(),
        0,
        "secret folders left"
    );
    let work = b.dir.path().join("work/ci");
    assert_eq!(
        std::fs::read_dir(&work).unwrap().count(),
        0,
        "work folders left"
    );
}

/// `cpus` and `memory` reach the container's cgroup.
#[tokio::test(flavor = "multi_thread")]
async fn cpu_and_memory_limits_visible_inside() {
    let mut b = Bench::new(
        "limits",
        vec![Pool::new("lim", 1).extra("cpus = 1.5\nmemory = \"256m\"")],
    )
    .await;
    let cgroup_v2 = std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    if !is_root() && !cgroup_v2 {
        // Rootless on a cgroup v1 host Podman ignores limits (docs/test-bench.md): what
        // podrunner owes the user then is the warning, which doctor gives for this very config.
        let (_, out, err) = b.cli(&["doctor", "--json"]);
        let checks: serde_json::Value =
            serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}{err}"));
        let limits = checks
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["id"] == "limits")
            .unwrap_or_else(|| panic!("no limits check: {out}"))
            .clone();
        assert_eq!(limits["status"], "warn", "{limits}");
        assert!(
            limits["why"].as_str().unwrap().contains("silently ignores"),
            "{limits}"
        );
        return;
    }
    b.start_manager();
    let script = "cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max; \
                  echo quota=$(cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us 2>/dev/null || cat /sys/fs/cgroup/cpu.max)";
    let id = b.gh.enqueue_job(SCOPE, LABELS, script).id;
    let j =
        b.gh.wait_job_completed(id, Duration::from_secs(90))
            .await
            .expect("job completed");
    let out = j.output.unwrap_or_default();
    assert!(out.contains("268435456"), "memory limit not visible: {out}");
    assert!(out.contains("quota=150000"), "cpu quota not visible: {out}");
    b.cli(&["stop"]);
    b.wait_manager_exit(Duration::from_secs(60)).await;
}

/// The PAT and every JIT config stay out of argv, `podman inspect`, logs and status.
#[tokio::test(flavor = "multi_thread")]
async fn secrets_never_leak() {
    let mut b = Bench::new("secrets", vec![Pool::new("sec", 2)]).await;
    b.start_manager();
    let id = b.gh.enqueue_job(SCOPE, LABELS, "sleep 3; echo ok").id;
    b.wait_until("a busy runner", Duration::from_secs(60), |b| {
        !b.runners_in("busy").is_empty()
    })
    .await;
    b.wait_until("an idle runner", Duration::from_secs(60), |b| {
        !b.runners_in("idle").is_empty()
    })
    .await;

    let jits = b.gh.jit_configs_issued();
    assert!(jits.len() >= 2);
    let mut secrets: Vec<String> = jits.clone();
    secrets.push(TOKEN.to_string());

    let cmdlines = all_cmdlines();
    let inspect = std::process::Command::new("podman")
        .arg("inspect")
        .args(b.containers())
        .output()
        .unwrap();
    let inspect = String::from_utf8_lossy(&inspect.stdout).into_owned();
    assert!(
        inspect.contains("podrunner.runner-id"),
        "inspect shows our containers"
    );
    let status = b.cli(&["status", "--json"]).1 + &b.cli(&["status"]).1;
    b.gh.wait_job_completed(id, Duration::from_secs(60))
        .await
        .expect("job completed");
    b.cli(&["stop"]);
    b.wait_manager_exit(Duration::from_secs(60)).await;
    let logs = b.all_logs();
    assert!(logs.contains("DEBUG"), "the manager ran at debug level");
    let mut state_files = String::new();
    for e in walk(&b.state_dir()) {
        state_files.push_str(&String::from_utf8_lossy(
            &std::fs::read(e).unwrap_or_default(),
        ));
    }
    for s in &secrets {
        for (pid, c) in &cmdlines {
            assert!(!c.contains(s.as_str()), "secret in argv of pid {pid}");
        }
        assert!(!inspect.contains(s.as_str()), "secret in podman inspect");
        assert!(!logs.contains(s.as_str()), "secret in the manager's log");
        assert!(!status.contains(s.as_str()), "secret in status");
        assert!(
            !state_files.contains(s.as_str()),
            "secret in the state folder"
        );
    }
}

/// A manager killed with SIGKILL and started again adopts its containers instead of starting
/// duplicates, and they still take jobs.
#[tokio::test(flavor = "multi_thread")]
async fn restart_adopts_running_containers() {
    let mut b = Bench::new("adopt", vec![Pool::new("ad", 2)]).await;
    b.start_manager();
    b.wait_until("2 idle runners", Duration::from_secs(60), |b| {
        b.runners_in("idle").len() == 2
    })
    .await;
    let before: std::collections::BTreeSet<String> = b.containers().into_iter().collect();
    let created_before = b.gh.stats().runners_created;
    b.kill_manager_hard();
    // Its `podman events` helper dies with it instead of lingering.
    let instance = b.instance.clone();
    b.wait_until(
        "the killed manager's podman events to end",
        Duration::from_secs(10),
        move |_| {
            !all_cmdlines()
                .iter()
                .any(|(_, c)| c.contains("events") && c.contains(&instance))
        },
    )
    .await;
    b.start_manager();
    b.wait_until("adopted runners reported", Duration::from_secs(30), |b| {
        b.status_json()["status"]["runners"]
            .as_array()
            .is_some_and(|a| a.len() == 2 && a.iter().all(|r| r["adopted"] == true))
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after: std::collections::BTreeSet<String> = b.containers().into_iter().collect();
    assert_eq!(before, after, "same containers after the restart");
    assert_eq!(
        b.gh.stats().runners_created,
        created_before,
        "no duplicate registrations"
    );
    let id = b.gh.enqueue_job(SCOPE, LABELS, "echo adopted").id;
    let j =
        b.gh.wait_job_completed(id, Duration::from_secs(60))
            .await
            .expect("job done");
    assert!(
        before.contains(j.runner_name.as_deref().unwrap()),
        "an adopted runner took the job"
    );
    b.cli(&["stop"]);
    assert_eq!(b.wait_manager_exit(Duration::from_secs(60)).await, 0);
    assert!(b.gh.live_runners().is_empty());
    assert!(b.containers().is_empty());
}

/// An image whose runner dies at once is retried with growing pauses, not in a hot loop, and
/// status says why.
#[tokio::test(flavor = "multi_thread")]
async fn broken_image_backs_off() {
    assert_image(BROKEN_IMAGE);
    let mut b = Bench::new("broken", vec![Pool::new("br", 2).image(BROKEN_IMAGE)]).await;
    b.start_manager();
    tokio::time::sleep(Duration::from_secs(20)).await;
    // With 5 s, 10 s, 20 s pauses and one probe at a time: 2 first starts, then 2 or 3 probes.
    let created = b.gh.stats().runners_created;
    assert!(
        (2..=6).contains(&created),
        "{created} registrations in 20 s\n{}",
        b.log_tail(40)
    );
    let s = b.status_json();
    let pool = &s["status"]["pools"][0];
    assert!(pool["failures"].as_u64().unwrap() >= 2, "{s}");
    let err = pool["last_error"].as_str().unwrap_or("");
    assert!(err.contains("code 3"), "{err}");
    let (_, text, _) = b.cli(&["status"]);
    assert!(
        text.contains("backing-off") || text.contains("backing off"),
        "{text}"
    );
    b.cli(&["stop"]);
    assert_eq!(b.wait_manager_exit(Duration::from_secs(60)).await, 0);
    assert!(
        b.gh.live_runners().is_empty(),
        "failed runners' registrations deleted: {:?}",
        b.gh.live_runners()
    );
}

/// `podrunner stop` removes idle runners at once and lets a busy one finish its job.
#[tokio::test(flavor = "multi_thread")]
async fn stop_lets_busy_runner_finish() {
    let mut b = Bench::new("drain", vec![Pool::new("dr", 2)]).await;
    b.start_manager();
    b.wait_until("2 idle runners", Duration::from_secs(60), |b| {
        b.runners_in("idle").len() == 2
    })
    .await;
    let id = b.gh.enqueue_job(SCOPE, LABELS, "sleep 6; echo finished").id;
    b.wait_until("a busy runner", Duration::from_secs(30), |b| {
        b.runners_in("busy").len() == 1
    })
    .await;
    let (code, out, _) = b.cli(&["stop", "--no-wait"]);
    assert_eq!(code, 0, "{out}");
    // The idle one goes at once; the busy one stays.
    b.wait_until("only the busy runner left", Duration::from_secs(30), |b| {
        b.containers().len() == 1
    })
    .await;
    assert_eq!(b.wait_manager_exit(Duration::from_secs(60)).await, 0);
    let j = b.gh.job(id).unwrap();
    assert_eq!(
        format!("{:?}", j.conclusion),
        "Some(Success)",
        "{:?}",
        j.output
    );
    assert!(b.gh.live_runners().is_empty());
    assert!(b.containers().is_empty());
}

/// GitHub App authentication (issue 14): the manager registers every runner with installation
/// tokens made from its own JWTs. In the middle of a burst of jobs the fake's clock jumps an
/// hour, so the token the manager holds is expired at once while the manager still thinks it
/// good: GitHub's 401 makes it get a new one and send the call again. No job is lost, none
/// fails, nothing is left registered. (Renewal before expiry: tests/credentials.rs.)
#[tokio::test(flavor = "multi_thread")]
async fn app_token_expiring_mid_burst_loses_no_job() {
    let mut b = Bench::new("app", vec![Pool::no_engine("app", 3)]).await;
    let app = b.use_app();
    b.start_manager();
    b.wait_until("3 idle runners", Duration::from_secs(90), |b| {
        b.runners_in("idle").len() == 3
    })
    .await;
    let jobs: Vec<u64> = (0..12)
        .map(|_| b.gh.enqueue_job(SCOPE, LABELS, "sleep 0.5; echo done").id)
        .collect();
    // Mid-burst: a third of the jobs done, then every token held is suddenly expired.
    assert!(
        b.gh.wait_for(Duration::from_secs(90), |st| {
            st.jobs
                .values()
                .filter(|j| j.status == fake_github::JobStatus::Completed)
                .count()
                >= 4
        })
        .await,
        "{}",
        b.log_tail(60)
    );
    let issued_before = b.gh.installation_tokens_issued();
    b.gh.advance_clock(Duration::from_secs(3600));
    for id in &jobs {
        let j =
            b.gh.wait_job_completed(*id, Duration::from_secs(120))
                .await
                .unwrap_or_else(|| panic!("job {id} lost\n{}", b.log_tail(80)));
        assert_eq!(format!("{:?}", j.conclusion), "Some(Success)", "job {id}");
    }
    assert!(
        b.gh.wait_for(Duration::from_secs(30), |st| st
            .auth
            .installation_tokens_issued
            > issued_before)
            .await,
        "a new token after the jump"
    );
    let log = b.all_logs();
    assert!(
        log.contains(&format!(
            "GitHub refused the installation token of installation {} (401); making a new one",
            app.installation
        )),
        "the 401 path was taken:\n{}",
        b.log_tail(80)
    );
    assert!(
        log.contains("new installation token, valid for"),
        "tokens are renewed"
    );
    assert!(
        !log.contains("cannot register runner"),
        "no registration failed:\n{log}"
    );
    let (code, out, err) = b.cli(&["stop"]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(b.wait_manager_exit(Duration::from_secs(90)).await, 0);
    assert!(b.gh.live_runners().is_empty(), "{:?}", b.gh.live_runners());
}
