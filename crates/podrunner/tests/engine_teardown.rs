//! Teardown is complete when the manager says it stopped (docs/docker.md, Teardown): every
//! engine and proxy process of its runners, and what their jobs started, is gone.

mod common;

use common::*;
use std::time::{Duration, Instant};

/// A job that starts two containers through its engine, on a loaded 2-core CI host.
const JOB_TIMEOUT: Duration = Duration::from_secs(150);

/// `podrunner stop` returns when the manager has drained; by then every engine and proxy
/// process of its runners is gone, a job's running containers included.
#[tokio::test(flavor = "multi_thread")]
async fn stop_leaves_no_engine_or_proxy() {
    let mut b = Bench::new("stop", vec![Pool::new("st", 2)]).await;
    b.edit_config(|s| s.replacen("[manager]\n", "[manager]\ndrain_timeout = \"1s\"\n", 1));
    b.start_manager();
    b.wait_until("two idle runners", Duration::from_secs(90), |b| {
        b.runners_in("idle").len() == 2
    })
    .await;
    let script = format!(
        "docker run -d -p 8080 {TEST_IMAGE} sleep 1000 >/dev/null && docker run -d {TEST_IMAGE} sleep 1000 >/dev/null && echo started && sleep 1000"
    );
    b.gh.enqueue_job(SCOPE, LABELS, &script);
    let engines = b.dir.path().join("run/e");
    let dir = b.dir.path().to_path_buf();
    b.wait_until("a job's engine with two containers", JOB_TIMEOUT, |_| {
        let pids = std::fs::read_dir(&engines)
            .into_iter()
            .flatten()
            .flatten()
            .any(|e| e.path().join("engine.pid").exists());
        // conmon of each of the job's two containers names the engine's storage.
        pids && processes_naming(&dir, None)
            .iter()
            .filter(|c| c.contains("conmon") && c.contains("/engines/"))
            .count()
            >= 2
    })
    .await;
    let before = processes_naming(&dir, b.manager_pid());
    assert!(
        before.iter().any(|c| c.contains("docker-proxy")),
        "{before:?}"
    );
    let start = Instant::now();
    let (code, _, err) = b.cli(&["stop"]);
    assert_eq!(code, 0, "{err}");
    let took = start.elapsed();
    let exit = b.wait_manager_exit(Duration::from_secs(60)).await;
    assert_eq!(exit, 0);
    let left = processes_naming(&dir, None);
    assert!(
        left.is_empty(),
        "left after `podrunner stop` returned ({took:?}): {left:#?}\n{}",
        b.log_tail(30)
    );
    assert!(b.containers().is_empty());
    assert!(std::fs::read_dir(&engines)
        .map(|mut d| d.next().is_none())
        .unwrap_or(true));
}
