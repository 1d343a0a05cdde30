//! Nothing lost, nothing leaked (issue 6): a manager killed with SIGKILL while runners are
//! idle, starting and busy, then started again; and the reaper of registrations without a
//! container. Real podrunner binary, real Podman, the fake GitHub's own records as the judge.

mod common;

use common::*;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

fn set(v: Vec<String>) -> BTreeSet<String> {
    v.into_iter().collect()
}

/// After `podrunner stop`: no container, secret folder, work folder or live registration, and
/// every registration the fake ever saw is in its history (deleted).
async fn assert_nothing_left(b: &mut Bench, pool: &str) {
    // A `podman run` the killed manager left behind may still be finishing: give it time to
    // fail or to be noticed, then demand an empty host.
    b.wait_until("no container left", Duration::from_secs(60), |b| {
        b.containers().is_empty()
    })
    .await;
    assert!(
        b.gh.live_runners().is_empty(),
        "registrations left: {:?}",
        b.gh.live_runners()
            .iter()
            .map(|r| &r.name)
            .collect::<Vec<_>>()
    );
    let history = b.gh.with_state(|st| st.history.clone());
    assert!(!history.is_empty());
    assert!(
        history.iter().all(|r| r.deleted_at.is_some()),
        "history: {history:?}"
    );
    assert_eq!(
        b.entries("run/secrets"),
        Vec::<String>::new(),
        "secret folders left"
    );
    assert_eq!(
        b.entries(&format!("work/{pool}")),
        Vec::<String>::new(),
        "work folders left"
    );
}

/// SIGKILL with two idle runners, one busy (a `sleep 8` job) and one starting (its `podman
/// run` slowed down by a wrapper): the next manager adopts the three containers, starts no
/// duplicate, lets the job finish, reaps the half-started runner's registration and folders,
/// and a stop leaves nothing behind.
#[tokio::test(flavor = "multi_thread")]
async fn sigkill_while_idle_starting_and_busy() {
    let mut b = Bench::new("crash", vec![Pool::no_engine("rc", 3)]).await;
    // While $BENCH/slow-run exists, every `podman run` waits 6 s first.
    b.podman_wrapper(r#"case " $* " in *" run -d "*) [ -e "$BENCH/slow-run" ] && sleep 6 ;; esac"#);
    b.start_manager();
    b.wait_until("3 idle runners", Duration::from_secs(90), |b| {
        b.runners_in("idle").len() == 3
    })
    .await;
    // Long enough to outlast the restart on a loaded host (the new manager's preflight alone
    // took 7 s at load 10): the job must still run when the new manager lists containers.
    let job =
        b.gh.enqueue_job(SCOPE, LABELS, "sleep 25; echo survived-the-crash")
            .id;
    b.wait_until("a busy runner", Duration::from_secs(30), |b| {
        b.runners_in("busy").len() == 1
    })
    .await;
    // One more runner, whose `podman run` hangs for 6 s: kill the manager in the middle.
    std::fs::write(b.dir.path().join("slow-run"), "").unwrap();
    let created = b.gh.stats().runners_created;
    let (code, out, err) = b.cli(&["scale", "rc", "4"]);
    assert_eq!(code, 0, "{out}{err}");
    b.wait_until("the 4th runner registered", Duration::from_secs(20), |b| {
        b.gh.stats().runners_created == created + 1
    })
    .await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let starting = b.runners_in("starting");
    assert_eq!(starting.len(), 1, "{}", b.log_tail(30));
    let half_started = starting[0].clone();
    assert!(b.entries("run/secrets").contains(&half_started));
    let before = set(b.containers());
    assert_eq!(before.len(), 3, "{before:?}");
    b.kill_manager_hard();
    std::fs::remove_file(b.dir.path().join("slow-run")).unwrap();

    let created = b.gh.stats().runners_created;
    b.start_manager();
    b.wait_until("3 adopted runners", Duration::from_secs(30), |b| {
        let v = b.status_json();
        v["status"]["runners"]
            .as_array()
            .is_some_and(|a| a.iter().filter(|r| r["adopted"] == true).count() == 3)
    })
    .await;
    // The half-started runner: its folders are gone at once, its registration by the reaper.
    assert!(!b.entries("run/secrets").contains(&half_started));
    assert!(!b.entries("work/rc").contains(&half_started));
    b.wait_until(
        "the half-started runner's registration deleted",
        Duration::from_secs(30),
        |b| !b.gh.live_runners().iter().any(|r| r.name == half_started),
    )
    .await;
    // The pool is full again (3, the config's count): no duplicate is started.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(b.gh.stats().runners_created, created, "no new registration");
    let busy = b.runners_in("busy");
    assert_eq!(busy.len(), 1, "{}", b.log_tail(30));
    assert!(before.contains(&busy[0]));

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
    assert!(j.output.unwrap_or_default().contains("survived-the-crash"));
    // Its replacement comes from the new manager.
    b.wait_until("3 idle runners again", Duration::from_secs(60), |b| {
        b.runners_in("idle").len() == 3
    })
    .await;
    assert!(
        !b.containers().contains(&half_started),
        "{}",
        b.log_tail(40)
    );

    let (code, out, err) = b.cli(&["stop"]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(b.wait_manager_exit(Duration::from_secs(90)).await, 0);
    assert_nothing_left(&mut b, "rc").await;
}

/// Registrations with this host's runner names but no container are deleted; a busy one is
/// never even asked to be deleted (docs/hosts.md), and is deleted once it is idle. Foreign
/// names are never touched.
#[tokio::test(flavor = "multi_thread")]
async fn reaper_deletes_registrations_without_container_but_never_a_busy_one() {
    let mut b = Bench::new("reaper", vec![Pool::no_engine("rp", 1)]).await;
    let prefix = b.prefix("rp");
    let make = |b: &Bench, name: String, busy: bool| -> u64 {
        b.gh.with_state(|st| {
            let req = fake_github::state::JitRequest {
                name,
                runner_group_id: 1,
                labels: vec!["x".into()],
                work_folder: "_work".into(),
            };
            let (rec, _) = st.create_runner("repos/octo/hello", &req).unwrap();
            let r = st.runners.get_mut(&rec.id).unwrap();
            r.busy = busy;
            if busy {
                r.status = fake_github::RunnerStatus::Online;
            }
            rec.id
        })
    };
    let idle = make(&b, format!("{prefix}-0000dead"), false);
    let busy = make(&b, format!("{prefix}-0000beef"), true);
    let foreign = make(&b, "someone-elses-runner".to_string(), false);
    let foreign2 = make(&b, format!("{prefix}-notours"), false);
    b.start_manager();
    b.wait_until("the idle orphan deleted", Duration::from_secs(30), |b| {
        b.gh.runner(idle).is_none()
    })
    .await;
    // The busy one stays while GitHub lists it busy, without a DELETE being tried.
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(20) {
        assert!(
            b.gh.runner(busy).is_some(),
            "a busy registration was deleted"
        );
        let _ = b.status_json();
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let refused =
        b.gh.stats()
            .by_route
            .get("DELETE runners/{id}")
            .copied()
            .unwrap_or(0);
    assert_eq!(refused, 1, "only the idle orphan's DELETE");
    b.gh.with_state(|st| st.runners.get_mut(&busy).unwrap().busy = false);
    b.wait_until(
        "the no longer busy orphan deleted",
        Duration::from_secs(40),
        |b| {
            let _ = b.status_json();
            b.gh.runner(busy).is_none()
        },
    )
    .await;
    assert!(b.gh.runner(foreign).is_some() && b.gh.runner(foreign2).is_some());
    assert!(b.all_logs().contains("deleted orphaned registration"));
    b.cli(&["stop"]);
    assert_eq!(b.wait_manager_exit(Duration::from_secs(60)).await, 0);
    let ours: Vec<String> =
        b.gh.live_runners()
            .into_iter()
            .map(|r| r.name)
            .filter(|n| n.starts_with(&prefix) && n.len() == prefix.len() + 9)
            .collect();
    assert!(ours.is_empty(), "{ours:?}");
    assert!(b.containers().is_empty());
}
