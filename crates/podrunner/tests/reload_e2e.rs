//! Changing a running manager: `scale`, SIGHUP reload (pools added, removed, resized, busy
//! runners untouched, an invalid config refused), SIGTERM drain. Real Podman, fake GitHub.
#![allow(
    clippy::disallowed_methods,
    reason = "test code starts the programs it tests and inspects the host directly"
)]

mod common;

use common::*;
use std::time::Duration;

fn pool_runners(b: &Bench, pool: &str) -> usize {
    b.status_json()["status"]["runners"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|r| r["pool"] == pool && r["state"] != "exited" && r["state"] != "stopping")
                .count()
        })
        .unwrap_or(0)
}

fn sighup(b: &Bench) {
    let pid = b.manager.as_ref().unwrap().id() as i32;
    assert_eq!(
        std::process::Command::new("kill")
            .args(["-HUP", &pid.to_string()])
            .status()
            .unwrap()
            .code(),
        Some(0)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn scale_and_reload_never_touch_a_busy_runner() {
    // The per-runner Docker engine is not what this test is about: leave it out for speed.
    let mut b = Bench::new("reload", vec![Pool::no_engine("a", 2)]).await;
    b.start_manager();
    b.wait_until("2 idle runners", Duration::from_secs(60), |b| {
        b.runners_in("idle").len() == 2
    })
    .await;

    // Scale up and down at run time.
    let (code, out, err) = b.cli(&["scale", "a", "3"]);
    assert_eq!(code, 0, "{out}{err}");
    b.wait_until("3 runners", Duration::from_secs(60), |b| {
        b.runners_in("idle").len() == 3
    })
    .await;
    let (code, _, err) = b.cli(&["scale", "nope", "1"]);
    assert_ne!(code, 0);
    assert!(err.contains("no pool named \"nope\""), "{err}");

    // One runner takes a long job; then shrink to 1: only idle runners go.
    let job = b.gh.enqueue_job(SCOPE, LABELS, "sleep 8; echo survived").id;
    b.wait_until("a busy runner", Duration::from_secs(30), |b| {
        b.runners_in("busy").len() == 1
    })
    .await;
    let busy = b.runners_in("busy")[0].clone();
    b.cli(&["scale", "a", "1"]);
    b.wait_until("idle runners retired", Duration::from_secs(60), |b| {
        b.containers().len() == 1
    })
    .await;
    assert_eq!(
        b.containers(),
        vec![busy.clone()],
        "the busy runner is the one left"
    );

    // An invalid config is refused on SIGHUP and the old one stays in force.
    let good = std::fs::read_to_string(&b.config).unwrap();
    std::fs::write(&b.config, format!("{good}\n[[pool]]\nname = \"broken\"\n")).unwrap();
    sighup(&b);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        b.all_logs()
            .contains("reload refused, keeping the running config"),
        "{}",
        b.log_tail(20)
    );
    assert!(b.containers().contains(&busy));

    // A valid new config: pool a resized to 2, pool b added. The busy runner is untouched.
    let with_b = good.clone() + &format!(
        "\n[[pool]]\nname = \"b\"\nrepository = \"{REPO}\"\nrunner_name = \"b-{}\"\nimage = \"{TEST_IMAGE}\"\ncount = 1\nrestart_delay = \"0s\"\ndocker = \"none\"\nwork_dir = \"{}\"\n",
        &b.instance[b.instance.len() - 4..],
        b.dir.path().join("work/b").display()
    );
    std::fs::write(&b.config, with_b).unwrap();
    let (code, out, err) = b.cli(&["reload"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("config reloaded: 2 pools"), "{out}");
    b.wait_until("pool b started", Duration::from_secs(60), |b| {
        pool_runners(b, "b") == 1
    })
    .await;
    b.wait_until("pool a back to 2", Duration::from_secs(60), |b| {
        pool_runners(b, "a") == 2
    })
    .await;
    let j =
        b.gh.wait_job_completed(job, Duration::from_secs(60))
            .await
            .expect("the busy job finished");
    assert_eq!(
        format!("{:?}", j.conclusion),
        "Some(Success)",
        "{:?}",
        j.output
    );
    assert_eq!(j.runner_name.as_deref(), Some(busy.as_str()));

    // Pool b removed again by a reload: its runner goes, pool a stays.
    std::fs::write(&b.config, &good).unwrap();
    sighup(&b);
    b.wait_until("pool b gone", Duration::from_secs(60), |b| {
        pool_runners(b, "b") == 0
    })
    .await;

    // SIGTERM drains like `podrunner stop`.
    let pid = b.manager.as_ref().unwrap().id() as i32;
    std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert_eq!(b.wait_manager_exit(Duration::from_secs(90)).await, 0);
    assert!(b.gh.live_runners().is_empty(), "{:?}", b.gh.live_runners());
    assert!(b.containers().is_empty());
}
