//! Faults from Podman and the host (issue 6): a missing image, a runner killed by the OOM
//! killer, a podman command that hangs, a full work folder, runner containers removed and
//! `podman events` dying under
//! the manager.
#![allow(
    clippy::disallowed_methods,
    reason = "test code starts the programs it tests and inspects the host directly"
)]

mod common;

use common::*;
use std::time::{Duration, Instant};

/// The image does not exist: a clear error in status, backoff (one probe at a time, growing
/// pauses), and every registration made by a JIT call whose container never started deleted.
#[tokio::test(flavor = "multi_thread")]
async fn missing_image_backs_off_and_deletes_its_registrations() {
    let mut b = Bench::new(
        "noimage",
        vec![Pool::no_engine("ni", 2).image("localhost/podrunner-no-such-image:latest")],
    )
    .await;
    b.start_manager();
    b.wait_until("the image error in status", Duration::from_secs(60), |b| {
        b.pool_error().contains("is not available")
    })
    .await;
    let err = b.pool_error();
    assert!(
        err.contains("localhost/podrunner-no-such-image:latest") && err.contains("fix:"),
        "{err}"
    );
    tokio::time::sleep(Duration::from_secs(15)).await;
    let created = b.gh.stats().runners_created;
    // 2 at first, then probes after 5 s and 10 s (+ one more if a pull attempt was quick).
    assert!(
        (2..=5).contains(&created),
        "{created} registrations in ~20 s\n{}",
        b.log_tail(30)
    );
    assert!(b.gh.live_runners().is_empty(), "{:?}", b.gh.live_runners());
    let history = b.gh.with_state(|st| st.history.clone());
    assert_eq!(history.len() as u64, created, "every registration deleted");
    let (_, text, _) = b.cli(&["status"]);
    assert!(text.contains("backing"), "{text}");
    assert!(b.all_logs().contains("is not available"));
    assert!(b.manager_alive());
    b.cli(&["stop"]);
    assert_eq!(b.wait_manager_exit(Duration::from_secs(60)).await, 0);
    assert!(b.containers().is_empty());
    assert!(b.entries("run/secrets").is_empty());
}

/// A job allocates far beyond the pool's `memory = "32m"`: the kernel kills it, and both
/// `status` (the pool's last_error) and the manager's log say "out of memory".
#[tokio::test(flavor = "multi_thread")]
async fn oom_killed_job_is_reported_as_out_of_memory() {
    if !is_root() {
        eprintln!("skipped: rootless Podman on this cgroup v1 host ignores memory limits (docs/test-bench.md), so nothing is OOM-killed");
        return;
    }
    let mut b = Bench::new(
        "oom",
        vec![Pool::no_engine("om", 1).extra("memory = \"32m\"")],
    )
    .await;
    b.start_manager();
    b.wait_until("1 idle runner", Duration::from_secs(60), |b| {
        b.runners_in("idle").len() == 1
    })
    .await;
    // A subshell holds 100 MB in a variable: the OOM killer takes it; the job goes on.
    let script =
        "(x=$(head -c 100000000 /dev/zero | tr '\\0' a); echo kept ${#x}); sleep 3; echo after-oom";
    let id = b.gh.enqueue_job(SCOPE, LABELS, script).id;
    let j =
        b.gh.wait_job_completed(id, Duration::from_secs(90))
            .await
            .expect("job completed");
    let out = j.output.clone().unwrap_or_default();
    assert!(
        out.contains("after-oom") && !out.contains("kept 100000000"),
        "{out}"
    );
    b.wait_until("out of memory in status", Duration::from_secs(20), |b| {
        b.pool_error().contains("out of memory")
    })
    .await;
    let err = b.pool_error();
    let runner = j.runner_name.unwrap();
    assert!(err.contains(&runner), "{err}");
    assert!(b
        .all_logs()
        .contains(&format!("runner {runner} ran out of memory")));
    // Not a start failure: no backoff, the pool refills.
    b.wait_until("1 idle runner again", Duration::from_secs(60), |b| {
        b.runners_in("idle").len() == 1
    })
    .await;
    assert_eq!(b.status_json()["status"]["pools"][0]["failures"], 0);
    b.cli(&["stop"]);
    assert_eq!(b.wait_manager_exit(Duration::from_secs(60)).await, 0);
    assert!(b.gh.live_runners().is_empty());
}

/// The first `podman run` hangs forever: it is killed at the (test-shortened) timeout, the
/// registration is deleted, status says why, and the next attempt starts the runner.
#[tokio::test(flavor = "multi_thread")]
async fn hanging_podman_run_times_out_and_recovers() {
    let mut b = Bench::new("hang", vec![Pool::no_engine("hg", 1)]).await;
    b.podman_wrapper(
        r#"case " $* " in *" run -d "*) mkdir "$BENCH/hung-once" 2>/dev/null && echo $$ > "$BENCH/hung-once/pid" && exec sleep 3600 ;; esac"#,
    );
    b.start_manager_env(&[("PODRUNNER_PODMAN_RUN_TIMEOUT_SECS", "4")]);
    b.wait_until("the timeout in status", Duration::from_secs(30), |b| {
        b.pool_error().contains("did not finish within 4s")
    })
    .await;
    b.wait_until(
        "1 idle runner after the retry",
        Duration::from_secs(60),
        |b| b.runners_in("idle").len() == 1,
    )
    .await;
    assert_eq!(
        b.gh.live_runners().len(),
        1,
        "the hung start's registration deleted"
    );
    assert_eq!(b.gh.stats().runners_created, 2);
    // The hung podman was killed.
    let pid = std::fs::read_to_string(b.dir.path().join("hung-once/pid")).unwrap();
    let pid = pid.trim();
    // (Gone, or a zombie not reaped yet: a zombie's cmdline is empty.)
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    assert!(cmdline.is_empty(), "the hung podman {pid} still runs");
    b.cli(&["stop"]);
    assert_eq!(b.wait_manager_exit(Duration::from_secs(60)).await, 0);
    assert!(b.gh.live_runners().is_empty());
    assert!(b.containers().is_empty());
}

/// The work folder's file system is full (a 1 MB tmpfs): the job fails with "No space left",
/// the manager lives on, replaces the runner and cleans up.
#[tokio::test(flavor = "multi_thread")]
async fn full_work_disk_fails_the_job_not_the_manager() {
    if !is_root() {
        eprintln!("skipped: mounting a tmpfs needs root");
        return;
    }
    let mut b = Bench::new("diskfull", vec![Pool::no_engine("df", 1)]).await;
    let work = b.dir.path().join("work/df");
    std::fs::create_dir_all(&work).unwrap();
    let ok = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1m,mode=0700", "tmpfs"])
        .arg(&work)
        .status()
        .unwrap()
        .success();
    assert!(ok, "mount tmpfs");
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount")
                .arg("-l")
                .arg(&self.0)
                .status();
        }
    }
    let _guard = Unmount(work.clone());
    b.start_manager();
    b.wait_until("1 idle runner", Duration::from_secs(60), |b| {
        b.runners_in("idle").len() == 1
    })
    .await;
    let id =
        b.gh.enqueue_job(
            SCOPE,
            LABELS,
            "dd if=/dev/zero of=big bs=1M count=5 2>&1; test -s big && df -k . | tail -1; exit 1",
        )
        .id;
    let j =
        b.gh.wait_job_completed(id, Duration::from_secs(60))
            .await
            .expect("job completed");
    let out = j.output.unwrap_or_default();
    assert!(out.contains("No space left on device"), "{out}");
    assert_eq!(format!("{:?}", j.conclusion), "Some(Failure)");
    b.wait_until("1 idle runner again", Duration::from_secs(60), |b| {
        b.runners_in("idle").len() == 1
    })
    .await;
    assert!(b.manager_alive());
    b.cli(&["stop"]);
    assert_eq!(b.wait_manager_exit(Duration::from_secs(60)).await, 0);
    assert!(b.gh.live_runners().is_empty());
    assert_eq!(
        b.entries("work/df"),
        Vec::<String>::new(),
        "work folders left"
    );
}

/// `podman events` dies under the manager (Podman restarted, storage remounted): the manager
/// starts it again, looks at `podman ps` for what it missed, and jobs keep flowing.
#[tokio::test(flavor = "multi_thread")]
async fn podman_events_killed_is_restarted_and_resynced() {
    let mut b = Bench::new("events", vec![Pool::no_engine("ev", 1)]).await;
    b.start_manager();
    b.wait_until("1 idle runner", Duration::from_secs(60), |b| {
        b.runners_in("idle").len() == 1
    })
    .await;
    let mgr = b.manager_pid().unwrap();
    let events_pids = |mgr: u32| -> Vec<i32> {
        all_cmdlines()
            .into_iter()
            .filter(|(pid, c)| {
                c.contains(" events ")
                    && std::fs::read_to_string(format!("/proc/{pid}/stat"))
                        .ok()
                        .and_then(|s| {
                            s.rsplit(')')
                                .next()?
                                .split_whitespace()
                                .nth(1)?
                                .parse::<u32>()
                                .ok()
                        })
                        == Some(mgr)
            })
            .map(|(pid, _)| pid)
            .collect()
    };
    let first = events_pids(mgr);
    assert_eq!(first.len(), 1, "one podman events child");
    // A job whose exit happens while nobody listens to events.
    let id = b.gh.enqueue_job(SCOPE, LABELS, "echo while-deaf").id;
    let _ = std::process::Command::new("kill")
        .args(["-9", &first[0].to_string()])
        .status();
    let t = Instant::now();
    b.gh.wait_job_completed(id, Duration::from_secs(60))
        .await
        .expect("job done");
    b.wait_until("a new podman events", Duration::from_secs(20), |_| {
        let now = events_pids(mgr);
        now.len() == 1 && now != first
    })
    .await;
    b.wait_until("the pool refilled", Duration::from_secs(60), |b| {
        b.runners_in("idle").len() == 1 && b.gh.stats().runners_created == 2
    })
    .await;
    assert!(
        t.elapsed() < Duration::from_secs(40),
        "refilled without waiting for the 30 s resync"
    );
    assert!(b.all_logs().contains("restarting it"));
    let id = b.gh.enqueue_job(SCOPE, LABELS, "echo after").id;
    b.gh.wait_job_completed(id, Duration::from_secs(60))
        .await
        .expect("a job after the restart");
    b.cli(&["stop"]);
    assert_eq!(b.wait_manager_exit(Duration::from_secs(60)).await, 0);
    assert!(b.gh.live_runners().is_empty());
    assert!(b.containers().is_empty());
}

/// Podman's storage loses the runner containers under a running manager (someone runs
/// `podman rm -f`, or resets storage): the manager notices, deletes the registrations they
/// leave behind, refills the pool with fresh runners, and still drains to nothing.
#[tokio::test(flavor = "multi_thread")]
async fn containers_removed_under_the_manager_are_replaced() {
    let mut b = Bench::new("rmunder", vec![Pool::no_engine("ru", 2)]).await;
    b.start_manager();
    b.wait_until("2 idle runners", Duration::from_secs(60), |b| {
        b.runners_in("idle").len() == 2
    })
    .await;
    let before: Vec<String> = b.containers();
    assert_eq!(before.len(), 2);
    let out = std::process::Command::new("podman")
        .args(["rm", "-f", "-t", "0"])
        .args(&before)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Two new runners, none of the old names, and the old registrations gone at GitHub.
    b.wait_until("2 fresh idle runners", Duration::from_secs(60), |b| {
        let idle = b.runners_in("idle");
        idle.len() == 2 && idle.iter().all(|n| !before.contains(n))
    })
    .await;
    b.wait_until("old registrations deleted", Duration::from_secs(60), |b| {
        b.gh.live_runners()
            .iter()
            .all(|r| !before.contains(&r.name))
    })
    .await;
    let id = b.gh.enqueue_job(SCOPE, LABELS, "echo after-reset").id;
    let j =
        b.gh.wait_job_completed(id, Duration::from_secs(60))
            .await
            .expect("a fresh runner takes the job");
    assert!(j.output.unwrap_or_default().contains("after-reset"));
    b.cli(&["stop"]);
    assert_eq!(b.wait_manager_exit(Duration::from_secs(60)).await, 0);
    assert!(b.gh.live_runners().is_empty(), "{:?}", b.gh.live_runners());
    assert!(b.containers().is_empty());
}
