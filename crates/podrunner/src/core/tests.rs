use super::*;

fn repo() -> Scope {
    Scope::repository("o/r").unwrap()
}

fn org(name: &str) -> Scope {
    Scope::organization(name).unwrap()
}

/// The pool of [`spec`].
fn p() -> PoolName {
    PoolName::new("p").unwrap()
}

fn spec(desired: u32) -> PoolSpec {
    PoolSpec {
        name: p(),
        scope: repo(),
        prefix: "ci".into(),
        desired,
        restart_delay: Duration::from_secs(1),
        family: "ci".into(),
        ..PoolSpec::new(p(), repo())
    }
}

fn suffixes() -> impl FnMut() -> String {
    let mut n = 0u32;
    move || {
        n += 1;
        format!("{n:08x}")
    }
}

fn starts(a: &[Action]) -> Vec<String> {
    a.iter()
        .filter_map(|a| match a {
            Action::Start { name, .. } => Some(name.clone()),
            _ => None,
        })
        .collect()
}

/// Brings `name` from Registering to Running.
fn run(s: &mut State, name: &str, id: u64, now: Instant) {
    s.registered(name, id);
    s.started(name, format!("c-{id}"), now);
}

/// Retiring a runner of [`spec`]'s pool.
fn retire(name: &str, runner_id: Option<u64>) -> Action {
    Action::Retire {
        name: name.into(),
        scope: Some(repo()),
        runner_id,
        stop_timeout: DEFAULT_STOP_TIMEOUT,
    }
}

/// Cleaning up after a runner of [`spec`]'s pool.
fn cleanup(name: &str, delete_id: Option<u64>, remove_container: bool) -> Action {
    Action::Cleanup {
        name: name.into(),
        scope: Some(repo()),
        pool: Some(p()),
        delete_id,
        remove_container,
    }
}

fn seen(id: u64, name: &str, busy: bool) -> RegistrationSeen {
    RegistrationSeen {
        id,
        name: name.into(),
        busy,
        online: true,
    }
}

#[test]
fn fills_pool_then_is_idempotent() {
    let t0 = Instant::now();
    let mut s = State::new();
    let mut sfx = suffixes();
    let a = s.plan(&[spec(3)], t0, &mut sfx);
    assert_eq!(
        starts(&a),
        vec!["ci-00000001", "ci-00000002", "ci-00000003"]
    );
    assert!(a.contains(&Action::Sweep));
    assert!(a.contains(&Action::Resync));
    // Nothing new while those are in flight.
    let a = s.plan(&[spec(3)], t0 + Duration::from_millis(10), &mut sfx);
    assert_eq!(a, vec![]);
    assert_eq!(s.runners["ci-00000001"].display_state(), "starting");
}

#[test]
fn exit_is_replaced_at_once_and_judged_by_sweep_without_output() {
    let t0 = Instant::now();
    let mut s = State::new();
    let mut sfx = suffixes();
    let specs = [spec(1)];
    s.plan(&specs, t0, &mut sfx);
    s.apply_sweep(&[(repo(), Some(vec![]))], &specs, t0);
    s.apply_resync(&[], t0);
    run(&mut s, "ci-00000001", 7, t0);
    assert_eq!(s.runners["ci-00000001"].display_state(), "idle");

    let t1 = t0 + Duration::from_secs(5);
    s.container_exited("ci-00000001", Some(0), t1);
    assert_eq!(s.runners["ci-00000001"].verdict, Verdict::Pending);
    // No failure: the replacement starts at once (restart_delay is for failures), and a
    // sweep judges the exit (no output was read).
    let a = s.plan(&specs, t1, &mut sfx);
    assert_eq!(
        a,
        vec![
            Action::Sweep,
            Action::Start {
                pool: p(),
                name: "ci-00000002".into()
            }
        ]
    );
    // The list, asked after the exit, no longer has the runner: it finished its job.
    let t2 = t1 + Duration::from_millis(1500);
    s.apply_sweep(&[(repo(), Some(vec![]))], &specs, t2);
    assert_eq!(s.runners["ci-00000001"].verdict, Verdict::Gone);
    assert_eq!(s.pools["p"].jobs_done, 1);
    let a = s.plan(&specs, t2, &mut sfx);
    assert_eq!(a, vec![cleanup("ci-00000001", None, true)]);
    s.cleanup_done("ci-00000001", CleanupOutcome::Done, t2);
    assert!(!s.runners.contains_key("ci-00000001"));
}

#[test]
fn stale_list_does_not_judge_a_later_exit() {
    let t0 = Instant::now();
    let mut s = State::new();
    let mut sfx = suffixes();
    let specs = [spec(1)];
    s.plan(&specs, t0, &mut sfx); // sweep issued at t0
    run(&mut s, "ci-00000001", 7, t0);
    s.container_exited("ci-00000001", Some(0), t0 + Duration::from_secs(1));
    // The list was asked at t0, before the exit, and still shows the runner.
    s.apply_sweep(
        &[(repo(), Some(vec![seen(7, "ci-00000001", false)]))],
        &specs,
        t0 + Duration::from_secs(2),
    );
    assert_eq!(s.runners["ci-00000001"].verdict, Verdict::Pending);
    assert_eq!(s.pools["p"].failures, 0);
}

#[test]
fn exit_without_job_backs_off_exponentially_one_probe_at_a_time() {
    let t0 = Instant::now();
    let mut s = State::new();
    let mut sfx = suffixes();
    let specs = [spec(2)];
    let a = s.plan(&specs, t0, &mut sfx);
    assert_eq!(starts(&a).len(), 2);
    s.apply_sweep(&[(repo(), Some(vec![]))], &specs, t0);
    s.apply_resync(&[], t0);
    run(&mut s, "ci-00000001", 1, t0);
    run(&mut s, "ci-00000002", 2, t0);
    // Broken image: exits 3 at once.
    let t1 = t0 + Duration::from_secs(1);
    s.container_exited("ci-00000001", Some(3), t1);
    assert_eq!(s.pools["p"].failures, 1);
    assert_eq!(
        s.pools["p"].last_error.as_deref(),
        Some("runner ci-00000001 exited with code 3")
    );
    assert_eq!(
        s.pools["p"].next_start_at,
        Some(t1 + Duration::from_secs(5))
    );
    assert_eq!(s.runners["ci-00000001"].verdict, Verdict::Present);
    let a = s.plan(&specs, t1, &mut sfx);
    assert!(a.contains(&cleanup("ci-00000001", Some(1), true)));
    assert!(starts(&a).is_empty());
    s.container_exited("ci-00000002", Some(3), t1);
    assert_eq!(s.pools["p"].failures, 2);
    assert_eq!(
        s.pools["p"].next_start_at,
        Some(t1 + Duration::from_secs(10))
    );
    // After the backoff: exactly one probe, not two.
    let a = s.plan(&specs, t1 + Duration::from_secs(10), &mut sfx);
    assert_eq!(starts(&a).len(), 1);
    // A runner that took its job resets the count.
    let name = starts(&a)[0].clone();
    run(&mut s, &name, 3, t1 + Duration::from_secs(10));
    let t3 = t1 + Duration::from_secs(20);
    s.container_exited(&name, Some(0), t3);
    s.plan(&specs, t3, &mut sfx);
    s.apply_sweep(&[(repo(), Some(vec![]))], &specs, t3);
    assert_eq!(s.pools["p"].failures, 0);
    assert_eq!(s.pools["p"].last_error, None);
}

#[test]
fn registration_left_after_exit_is_a_failure_and_deleted() {
    let t0 = Instant::now();
    let mut s = State::new();
    let mut sfx = suffixes();
    let specs = [spec(1)];
    s.plan(&specs, t0, &mut sfx);
    s.apply_sweep(&[(repo(), Some(vec![]))], &specs, t0);
    run(&mut s, "ci-00000001", 9, t0);
    let t1 = t0 + Duration::from_secs(3);
    s.container_exited("ci-00000001", Some(0), t1);
    let a = s.plan(&specs, t1, &mut sfx);
    assert_eq!(a[0], Action::Sweep);
    s.apply_sweep(
        &[(repo(), Some(vec![seen(9, "ci-00000001", false)]))],
        &specs,
        t1,
    );
    assert_eq!(s.pools["p"].failures, 1);
    assert_eq!(
        s.pools["p"].last_error.as_deref(),
        Some("runner ci-00000001 exited without running a job")
    );
    let a = s.plan(&specs, t1, &mut sfx);
    assert_eq!(a, vec![cleanup("ci-00000001", Some(9), true)]);
    // GitHub still thinks it busy: keep the record and try again later.
    s.cleanup_done("ci-00000001", CleanupOutcome::Busy, t1);
    assert_eq!(
        s.plan(&specs, t1 + Duration::from_secs(1), &mut sfx)
            .iter()
            .filter(|a| matches!(a, Action::Cleanup { .. }))
            .count(),
        0
    );
    let a = s.plan(&specs, t1 + CLEANUP_RETRY, &mut sfx);
    assert!(a.contains(&cleanup("ci-00000001", Some(9), true)));
}

#[test]
fn scale_down_retires_idle_never_busy() {
    let t0 = Instant::now();
    let mut s = State::new();
    let mut sfx = suffixes();
    s.plan(&[spec(3)], t0, &mut sfx);
    for (i, n) in ["ci-00000001", "ci-00000002", "ci-00000003"]
        .iter()
        .enumerate()
    {
        run(&mut s, n, i as u64 + 1, t0);
    }
    let specs = [spec(1)];
    s.apply_sweep(
        &[(
            repo(),
            Some(vec![
                seen(1, "ci-00000001", true),
                seen(2, "ci-00000002", false),
                seen(3, "ci-00000003", true),
            ]),
        )],
        &specs,
        t0,
    );
    let a = s.plan(&specs, t0, &mut sfx);
    // Two too many, but only one idle: retire it, leave the busy ones.
    assert_eq!(
        a.iter()
            .filter(|a| matches!(a, Action::Retire { .. }))
            .cloned()
            .collect::<Vec<_>>(),
        vec![retire("ci-00000002", Some(2))]
    );
    // GitHub says it just took a job (422): it stays.
    s.retire_done("ci-00000002", RetireOutcome::Busy, t0);
    assert_eq!(s.runners["ci-00000002"].display_state(), "busy");
    assert!(!s
        .plan(&specs, t0, &mut sfx)
        .iter()
        .any(|a| matches!(a, Action::Retire { .. })));
}

#[test]
fn orphans_are_found_and_deleted_once() {
    let t0 = Instant::now();
    let mut s = State::new();
    let mut sfx = suffixes();
    let specs = [spec(0)];
    s.plan(&specs, t0, &mut sfx);
    s.apply_sweep(
        &[(
            repo(),
            Some(vec![
                seen(50, "ci-deadbeef", false),
                seen(51, "someone-else", false),
                seen(52, "ci-x", false),
            ]),
        )],
        &specs,
        t0,
    );
    assert_eq!(s.orphans.keys().copied().collect::<Vec<_>>(), vec![50]);
    let a = s.plan(&specs, t0, &mut sfx);
    assert_eq!(
        a,
        vec![Action::DeleteOrphan {
            scope: repo(),
            id: 50
        }]
    );
    assert_eq!(s.plan(&specs, t0, &mut sfx), vec![]);
    s.orphan_done(50, true, t0);
    assert!(s.orphans.is_empty());
}

/// A container whose pool label is no valid pool name belongs to no pool: adopted, it is
/// retired like one of a pool that left the config, and its failure backs no pool off.
#[test]
fn a_container_of_no_pool_is_adopted_then_retired() {
    let (t0, specs) = (Instant::now(), [spec(0)]);
    let mut s = State::new();
    s.plan(&specs, t0, &mut suffixes());
    s.apply_resync(
        &[ContainerSeen {
            name: "x-1".into(),
            id: "c1".into(),
            pool: None,
            scope: Some(repo()),
            runner_id: Some(4),
            alive: true,
            exit_code: None,
        }],
        t0,
    );
    assert_eq!(s.runners["x-1"].pool, None);
    let a = s.plan(&specs, t0, &mut suffixes());
    assert_eq!(a, vec![retire("x-1", Some(4))]);
    s.retire_done("x-1", RetireOutcome::Stopped, t0);
    s.container_exited("x-1", Some(1), t0);
    assert!(s.pools.values().all(|p| p.failures == 0), "{:?}", s.pools);
}

#[test]
fn restart_adopts_containers_instead_of_duplicating() {
    let t0 = Instant::now();
    let mut s = State::new();
    let mut sfx = suffixes();
    let specs = [spec(2)];
    // A fresh manager first resyncs (the manager does this before planning starts).
    s.apply_resync(
        &[
            ContainerSeen {
                name: "ci-aaaaaaaa".into(),
                id: "c1".into(),
                pool: Some(p()),
                scope: Some(repo()),
                runner_id: Some(4),
                alive: true,
                exit_code: None,
            },
            ContainerSeen {
                name: "ci-bbbbbbbb".into(),
                id: "c2".into(),
                pool: Some(p()),
                scope: Some(repo()),
                runner_id: Some(5),
                alive: true,
                exit_code: None,
            },
        ],
        t0,
    );
    let a = s.plan(&specs, t0, &mut sfx);
    assert!(starts(&a).is_empty(), "{a:?}");
    assert!(s.runners["ci-aaaaaaaa"].adopted);
    // A later resync that misses one of them (its exit event was lost) counts it as exited.
    s.plan(&specs, t0 + PODMAN_RESYNC_INTERVAL, &mut sfx);
    s.apply_resync(
        &[ContainerSeen {
            name: "ci-aaaaaaaa".into(),
            id: "c1".into(),
            pool: Some(p()),
            scope: Some(repo()),
            runner_id: Some(4),
            alive: true,
            exit_code: None,
        }],
        t0 + PODMAN_RESYNC_INTERVAL,
    );
    assert_eq!(s.runners["ci-bbbbbbbb"].phase, Phase::Exited);
}

#[test]
fn drain_retires_idle_waits_for_busy_then_forces_at_deadline() {
    let t0 = Instant::now();
    let mut s = State::new();
    let mut sfx = suffixes();
    let specs = [spec(2)];
    s.plan(&specs, t0, &mut sfx);
    run(&mut s, "ci-00000001", 1, t0);
    run(&mut s, "ci-00000002", 2, t0);
    s.apply_sweep(
        &[(
            repo(),
            Some(vec![
                seen(1, "ci-00000001", true),
                seen(2, "ci-00000002", false),
            ]),
        )],
        &specs,
        t0,
    );
    s.start_drain(t0, Duration::from_secs(100));
    let a = s.plan(&specs, t0, &mut sfx);
    assert!(a.contains(&retire("ci-00000002", Some(2))));
    assert!(!a
        .iter()
        .any(|a| matches!(a, Action::Start { .. } | Action::ForceStop { .. })));
    s.retire_done("ci-00000002", RetireOutcome::Stopped, t0);
    assert_eq!(s.runners["ci-00000002"].verdict, Verdict::Gone);
    // The busy one finishes its job.
    let t1 = t0 + Duration::from_secs(10);
    s.container_exited("ci-00000001", Some(0), t1);
    assert!(!s.is_drained());
    let a = s.plan(&specs, t1 + SWEEP_MIN_INTERVAL, &mut sfx);
    assert!(a.contains(&cleanup("ci-00000002", None, true)));
    assert!(!a.iter().any(|a| matches!(a, Action::Start { .. })));
    s.cleanup_done("ci-00000002", CleanupOutcome::Done, t1);
    s.apply_sweep(&[(repo(), Some(vec![]))], &specs, t1 + SWEEP_MIN_INTERVAL);
    s.plan(&specs, t1 + SWEEP_MIN_INTERVAL, &mut sfx);
    s.cleanup_done("ci-00000001", CleanupOutcome::Done, t1);
    assert!(s.is_drained());

    // A second drain whose busy runner never finishes gets force-stopped at the deadline.
    let mut s = State::new();
    s.plan(&specs, t0, &mut sfx);
    let names: Vec<String> = s.runners.keys().cloned().collect();
    for (i, n) in names.iter().enumerate() {
        run(&mut s, n, 10 + i as u64, t0);
    }
    for r in s.runners.values_mut() {
        r.busy = true;
    }
    s.start_drain(t0, Duration::from_secs(100));
    assert!(!s
        .plan(&specs, t0 + Duration::from_secs(99), &mut sfx)
        .iter()
        .any(|a| matches!(a, Action::ForceStop { .. })));
    let a = s.plan(&specs, t0 + Duration::from_secs(100), &mut sfx);
    let forced: Vec<&Action> = a
        .iter()
        .filter(|a| matches!(a, Action::ForceStop { .. }))
        .collect();
    let force = |name: &str| Action::ForceStop {
        name: name.into(),
        stop_timeout: DEFAULT_STOP_TIMEOUT,
    };
    let want: Vec<Action> = names.iter().map(|n| force(n)).collect();
    assert_eq!(forced, want.iter().collect::<Vec<_>>(), "{a:?}");
    assert_eq!(forced.len(), 2);
}

#[test]
fn start_failure_after_registration_deletes_it() {
    let t0 = Instant::now();
    let mut s = State::new();
    let mut sfx = suffixes();
    let specs = [spec(1)];
    s.plan(&specs, t0, &mut sfx);
    s.registered("ci-00000001", 3);
    s.start_failed("ci-00000001", "image not found".into(), true, true, t0);
    assert_eq!(s.pools["p"].failures, 1);
    let a = s.plan(&specs, t0, &mut sfx);
    assert!(a.contains(&cleanup("ci-00000001", Some(3), false)));
    assert!(starts(&a).is_empty());
    // A name conflict is no failure: the next plan just picks another name.
    let mut s = State::new();
    s.plan(&specs, t0, &mut sfx);
    let n = s.runners.keys().next().unwrap().clone();
    s.start_failed(&n, "409".into(), false, false, t0);
    s.cleanup_done(&n, CleanupOutcome::Done, t0);
    assert_eq!(starts(&s.plan(&specs, t0, &mut sfx)).len(), 1);
}

#[test]
fn early_exit_event_before_run_returns() {
    let t0 = Instant::now();
    let mut s = State::new();
    let mut sfx = suffixes();
    s.plan(&[spec(1)], t0, &mut sfx);
    s.registered("ci-00000001", 1);
    // The died event can arrive before `podman run -d` prints the id.
    s.container_exited("ci-00000001", Some(0), t0);
    s.started("ci-00000001", "cid".into(), t0);
    assert_eq!(s.runners["ci-00000001"].phase, Phase::Exited);
}

#[test]
fn busy_orphan_is_never_deleted_then_retried_until_deleted() {
    let t0 = Instant::now();
    let mut s = State::new();
    let mut sfx = suffixes();
    let specs = [spec(0)];
    s.plan(&specs, t0, &mut sfx);
    s.apply_sweep(
        &[(repo(), Some(vec![seen(60, "ci-0badc0de", true)]))],
        &specs,
        t0,
    );
    let del = Action::DeleteOrphan {
        scope: repo(),
        id: 60,
    };
    // Busy: left alone.
    assert_eq!(s.plan(&specs, t0, &mut sfx), vec![]);
    s.apply_sweep(
        &[(repo(), Some(vec![seen(60, "ci-0badc0de", false)]))],
        &specs,
        t0,
    );
    assert_eq!(s.plan(&specs, t0, &mut sfx), vec![del.clone()]);
    // GitHub answers 422 (still running a job): keep it, ask again later.
    s.orphan_done(60, false, t0);
    assert!(!s
        .plan(&specs, t0 + Duration::from_secs(1), &mut sfx)
        .contains(&del));
    let later = t0 + CLEANUP_RETRY;
    assert!(s.plan(&specs, later, &mut sfx).contains(&del));
    s.orphan_done(60, true, later);
    assert!(s.orphans.is_empty());
}

#[test]
fn oom_shows_in_last_error_without_backoff_and_outlives_the_verdict() {
    let t0 = Instant::now();
    let mut s = State::new();
    let mut sfx = suffixes();
    let specs = [spec(1)];
    s.plan(&specs, t0, &mut sfx);
    s.apply_sweep(&[(repo(), Some(vec![]))], &specs, t0);
    run(&mut s, "ci-00000001", 7, t0);
    s.runner_oom("ci-00000001");
    s.runner_oom("unknown-runner");
    let p = &s.pools["p"];
    assert_eq!(p.failures, 0);
    assert_eq!(
        p.last_error.as_deref(),
        Some(oom_message("ci-00000001").as_str())
    );
    assert!(oom_message("x").contains("out of memory"));
    // The job finished (the runner removed its registration): success, the note stays.
    let t1 = t0 + Duration::from_secs(3);
    s.container_exited("ci-00000001", Some(0), t1);
    s.plan(&specs, t1, &mut sfx);
    s.apply_sweep(&[(repo(), Some(vec![]))], &specs, t1);
    let p = &s.pools["p"];
    assert_eq!((p.failures, p.jobs_done), (0, 1));
    assert!(p.last_error.as_deref().unwrap().contains("out of memory"));
}

#[test]
fn exit_137_says_out_of_memory() {
    let t0 = Instant::now();
    let mut s = State::new();
    let mut sfx = suffixes();
    let specs = [spec(2)];
    s.plan(&specs, t0, &mut sfx);
    run(&mut s, "ci-00000001", 7, t0);
    run(&mut s, "ci-00000002", 8, t0);
    s.container_exited("ci-00000001", Some(137), t0);
    let p = &s.pools["p"];
    assert_eq!(p.failures, 1);
    assert!(
        p.last_error
            .as_deref()
            .unwrap()
            .contains("code 137 (killed by SIGKILL: out of memory"),
        "{:?}",
        p.last_error
    );
    s.runner_oom("ci-00000002");
    s.container_exited("ci-00000002", Some(137), t0);
    let e = s.pools["p"].last_error.clone().unwrap();
    assert!(
        e.starts_with(&oom_message("ci-00000002")) && e.ends_with("exited with code 137"),
        "{e}"
    );
}

#[test]
fn failed_lists_show_in_status_space_out_and_clear() {
    let t0 = Instant::now();
    let mut s = State::new();
    let mut sfx = suffixes();
    let specs = [spec(0)];
    assert!(s.plan(&specs, t0, &mut sfx).contains(&Action::Sweep));
    s.sweep_failed(
        &repo(),
        "GitHub rejected the token (401: Bad credentials)",
        &specs,
    );
    s.sweep_failed(&org("other"), "x", &specs);
    s.apply_sweep(&[(repo(), None)], &specs, t0);
    let e = s.pools["p"].last_error.clone().unwrap();
    assert_eq!(
        e,
        "cannot list the runners of GitHub: GitHub rejected the token (401: Bad credentials)"
    );
    assert_eq!(
        s.pools["p"].failures, 0,
        "existing runners are not failures"
    );
    // The gap doubles with each failed sweep, even when status asks for fresh data.
    let mut t = t0;
    for (failures, gap) in [
        (1u32, 4u64),
        (2, 8),
        (3, 16),
        (4, 32),
        (5, 64),
        (6, 128),
        (7, 256),
        (8, 300),
        (9, 300),
    ] {
        assert_eq!(s.sweep_failures, failures);
        s.sweep_wanted = true;
        let just_before = t + Duration::from_secs(gap) - Duration::from_millis(1);
        assert!(
            !s.plan(&specs, just_before, &mut sfx)
                .contains(&Action::Sweep),
            "gap {gap}"
        );
        t += Duration::from_secs(gap);
        assert!(
            s.plan(&specs, t, &mut sfx).contains(&Action::Sweep),
            "gap {gap}"
        );
        s.apply_sweep(&[(repo(), None)], &specs, t);
    }
    // A good list clears the error and the backoff.
    t += SWEEP_BACKOFF_CAP;
    assert!(s.plan(&specs, t, &mut sfx).contains(&Action::Sweep));
    s.apply_sweep(&[(repo(), Some(vec![]))], &specs, t);
    assert_eq!(s.pools["p"].last_error, None);
    assert_eq!(s.sweep_failures, 0);
    s.sweep_wanted = true;
    assert!(s
        .plan(&specs, t + SWEEP_MIN_INTERVAL, &mut sfx)
        .contains(&Action::Sweep));
}

#[test]
fn a_start_error_is_not_cleared_by_a_good_list() {
    let t0 = Instant::now();
    let mut s = State::new();
    let mut sfx = suffixes();
    let specs = [spec(1)];
    s.plan(&specs, t0, &mut sfx);
    s.start_failed("ci-00000001", "image missing".into(), true, false, t0);
    s.apply_sweep(&[(repo(), Some(vec![]))], &specs, t0);
    assert_eq!(s.pools["p"].last_error.as_deref(), Some("image missing"));
}

#[test]
fn stale_folders_are_ours_and_unknown() {
    let t0 = Instant::now();
    let mut s = State::new();
    let mut sfx = suffixes();
    let specs = [spec(1)];
    s.plan(&specs, t0, &mut sfx);
    let entries: Vec<String> = [
        "ci-00000001",
        "ci-0000beef",
        "other-0000beef",
        "ci-x",
        "notes",
    ]
    .iter()
    .map(|x| x.to_string())
    .collect();
    assert_eq!(s.stale_folders(&entries, &specs), vec!["ci-0000beef"]);
}

#[test]
fn late_exit_code_after_pid_exit_counts_once() {
    let t0 = Instant::now();
    let mut s = State::new();
    let mut sfx = suffixes();
    let specs = [spec(1)];
    s.plan(&specs, t0, &mut sfx);
    s.apply_sweep(&[(repo(), Some(vec![]))], &specs, t0);
    run(&mut s, "ci-00000001", 1, t0);
    // The container process ended: code unknown, the verdict waits.
    s.container_exited("ci-00000001", None, t0);
    assert_eq!(s.runners["ci-00000001"].verdict, Verdict::Pending);
    assert_eq!(s.pools["p"].failures, 0);
    // The died event brings code 3: a failure, counted once, and the registration deleted.
    s.container_exited("ci-00000001", Some(3), t0);
    s.container_exited("ci-00000001", Some(3), t0);
    assert_eq!(s.pools["p"].failures, 1);
    assert_eq!(s.runners["ci-00000001"].exit_code, Some(3));
    assert_eq!(s.runners["ci-00000001"].verdict, Verdict::Present);
    // A later list that still shows it does not count it again.
    s.apply_sweep(
        &[(repo(), Some(vec![seen(1, "ci-00000001", false)]))],
        &specs,
        t0,
    );
    assert_eq!(s.pools["p"].failures, 1);
}

fn demand_spec(desired: u32, cap: u32, idle: u64) -> PoolSpec {
    PoolSpec {
        idle_timeout: Some(Duration::from_secs(idle)),
        cap: Some(cap),
        ..spec(desired)
    }
}

#[test]
fn demand_pool_retires_idle_runners_only_after_their_idle_time() {
    let t0 = Instant::now();
    let mut s = State::new();
    let mut sfx = suffixes();
    let a = s.plan(&[demand_spec(2, 4, 60)], t0, &mut sfx);
    assert_eq!(starts(&a), vec!["ci-00000001", "ci-00000002"]);
    run(&mut s, "ci-00000001", 1, t0);
    run(&mut s, "ci-00000002", 2, t0 + Duration::from_secs(30));
    s.mark_busy("ci-00000002");
    // Demand fell to 0: nobody has waited 60 s yet.
    let a = s.plan(
        &[demand_spec(0, 4, 60)],
        t0 + Duration::from_secs(59),
        &mut sfx,
    );
    assert!(
        !a.iter().any(|a| matches!(a, Action::Retire { .. })),
        "{a:?}"
    );
    // The idle one goes after 60 s; the busy one stays whatever its age.
    let a = s.plan(
        &[demand_spec(0, 4, 60)],
        t0 + Duration::from_secs(200),
        &mut sfx,
    );
    let retired: Vec<&Action> = a
        .iter()
        .filter(|a| matches!(a, Action::Retire { .. }))
        .collect();
    assert_eq!(retired, vec![&retire("ci-00000001", Some(1))]);
}

#[test]
fn demand_pool_never_exceeds_its_cap_while_runners_stop() {
    let t0 = Instant::now();
    let mut s = State::new();
    let mut sfx = suffixes();
    let a = s.plan(&[demand_spec(9, 4, 0)], t0, &mut sfx);
    assert_eq!(starts(&a).len(), 4, "capped at 4");
    for (i, n) in ["ci-00000001", "ci-00000002", "ci-00000003", "ci-00000004"]
        .iter()
        .enumerate()
    {
        run(&mut s, n, i as u64 + 1, t0);
    }
    // Demand drops to 2: two idle runners retire (deregistering, then stopping).
    let a = s.plan(
        &[demand_spec(2, 4, 0)],
        t0 + Duration::from_secs(1),
        &mut sfx,
    );
    assert_eq!(
        a.iter()
            .filter(|a| matches!(a, Action::Retire { .. }))
            .count(),
        2
    );
    // Demand rises again before they are gone: their places are still taken.
    let a = s.plan(
        &[demand_spec(4, 4, 0)],
        t0 + Duration::from_secs(2),
        &mut sfx,
    );
    assert_eq!(starts(&a), Vec::<String>::new());
    // One container is gone: one new runner.
    s.retire_done(
        "ci-00000001",
        RetireOutcome::Stopped,
        t0 + Duration::from_secs(3),
    );
    let a = s.plan(
        &[demand_spec(4, 4, 0)],
        t0 + Duration::from_secs(4),
        &mut sfx,
    );
    assert_eq!(starts(&a), vec!["ci-00000005"]);
}

#[test]
fn drain_ignores_the_idle_time() {
    let t0 = Instant::now();
    let mut s = State::new();
    let mut sfx = suffixes();
    s.plan(&[demand_spec(1, 4, 600)], t0, &mut sfx);
    run(&mut s, "ci-00000001", 1, t0);
    s.start_drain(t0, Duration::from_secs(3600));
    let a = s.plan(
        &[demand_spec(1, 4, 600)],
        t0 + Duration::from_secs(1),
        &mut sfx,
    );
    assert!(a.contains(&retire("ci-00000001", Some(1))));
}

fn lines(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// A pool of `desired` whose first runner `ci-00000001` (id 1) runs since `t0`.
fn one_running(desired: u32, t0: Instant) -> (State, [PoolSpec; 1], impl FnMut() -> String) {
    let mut s = State::new();
    let mut sfx = suffixes();
    let specs = [spec(desired)];
    s.plan(&specs, t0, &mut sfx);
    s.apply_sweep(&[(repo(), Some(vec![]))], &specs, t0);
    s.apply_resync(&[], t0);
    run(&mut s, "ci-00000001", 1, t0);
    (s, specs, sfx)
}

#[test]
fn the_runners_own_output_judges_its_job_without_a_list() {
    let t0 = Instant::now();
    let (mut s, specs, mut sfx) = one_running(1, t0);
    s.runner_output(
        "ci-00000001",
        &lines(&[
            "√ Connected to GitHub",
            "2026-03-01 10:00:00Z: Listening for Jobs",
        ]),
    );
    assert_eq!(s.runners["ci-00000001"].display_state(), "idle");
    s.runner_output(
        "ci-00000001",
        &lines(&["2026-03-01 10:00:02Z: Running job: build"]),
    );
    assert_eq!(s.runners["ci-00000001"].display_state(), "busy");
    assert_eq!(
        s.runners["ci-00000001"].outcome.job.as_deref(),
        Some("build")
    );
    s.runner_output(
        "ci-00000001",
        &lines(&[
            "2026-03-01 10:00:09Z: Job build completed with result: Failed",
            "√ Removed .credentials",
            "Runner listener exit with 0 return code, stop the service, no retry needed.",
            "Exiting runner...",
        ]),
    );
    let t1 = t0 + Duration::from_secs(10);
    s.container_exited("ci-00000001", Some(0), t1);
    // Judged at once: no list needed (GitHub's may still show the registration), success.
    assert_eq!(s.runners["ci-00000001"].verdict, Verdict::Gone);
    assert_eq!(s.pools["p"].jobs_done, 1);
    assert_eq!(s.pools["p"].failures, 0);
    assert_eq!(
        s.pools["p"].recent.back(),
        Some(&JobRecord {
            runner: "ci-00000001".into(),
            job: "build".into(),
            result: outcome::JobResult::Failed,
            duration_secs: Some(7.0),
        })
    );
    // A list that still shows it (REST lag) changes nothing.
    let a = s.plan(&specs, t1, &mut sfx);
    assert!(a.contains(&cleanup("ci-00000001", None, true)));
    assert_eq!(starts(&a), vec!["ci-00000002"]);
    s.cleanup_done("ci-00000001", CleanupOutcome::Done, t1);
    let f = s.take_finished();
    assert_eq!(f.len(), 1);
    assert_eq!(
        (f[0].failure, f[0].stopped, f[0].exit_code),
        (false, false, Some(0))
    );
    assert_eq!(f[0].outcome.result, Some(outcome::JobResult::Failed));
    assert!(s.take_finished().is_empty());
}

#[test]
fn restart_delay_and_backoff_follow_failures_only() {
    let t0 = Instant::now();
    let (mut s, mut specs, mut sfx) = one_running(1, t0);
    specs[0].restart_delay = Duration::from_secs(30);
    s.runner_output(
        "ci-00000001",
        &lines(&["Running job: a", "Job a completed with result: Succeeded"]),
    );
    s.container_exited("ci-00000001", Some(0), t0);
    assert_eq!(starts(&s.plan(&specs, t0, &mut sfx)), vec!["ci-00000002"]);
    run(&mut s, "ci-00000002", 2, t0);
    s.runner_output("ci-00000002", &lines(&["An error occurred: Access denied"]));
    s.container_exited("ci-00000002", Some(1), t0);
    assert_eq!(
        s.pools["p"].last_error.as_deref(),
        Some("runner ci-00000002 exited with code 1: An error occurred: Access denied")
    );
    // After a failure: the longer of the backoff (5 s) and restart_delay (30 s).
    assert!(starts(&s.plan(&specs, t0 + Duration::from_secs(29), &mut sfx)).is_empty());
    assert_eq!(
        starts(&s.plan(&specs, t0 + Duration::from_secs(30), &mut sfx)).len(),
        1
    );
}

#[test]
fn deprecated_version_fails_with_the_fix_and_pulls_at_once() {
    let t0 = Instant::now();
    let (mut s, mut specs, mut sfx) = one_running(1, t0);
    specs[0].pull = PullPolicy::Missing;
    // The first plan asked for the start-up pull; it found the image there.
    let a = s.plan(&specs, t0, &mut sfx);
    assert!(a.contains(&Action::PullImage {
        pool: p(),
        reason: pull::PullReason::Start
    }));
    s.pull_done(&specs[0].name, specs[0].pull_interval, Ok(None), t0);
    let t1 = t0 + Duration::from_secs(1);
    s.runner_output(
        "ci-00000001",
        &lines(&[
            "An error occurred: Runner version v2.200.0 is deprecated and cannot receive messages.",
            "Runner listener exit with deprecated version exit code: 7.",
            "Exiting runner...",
        ]),
    );
    s.container_exited("ci-00000001", Some(EXIT_VERSION_DEPRECATED), t1);
    let e = s.pools["p"].last_error.clone().unwrap();
    assert!(e.starts_with("runner ci-00000001: GitHub refuses this runner version as deprecated (An error occurred: Runner version v2.200.0 is deprecated"), "{e}");
    assert!(e.contains("fix: podrunner pulls the image now"), "{e}");
    assert_eq!(s.pools["p"].failures, 1);
    let a = s.plan(&specs, t1, &mut sfx);
    assert!(a.contains(&Action::PullImage {
        pool: p(),
        reason: pull::PullReason::Stale
    }));
    assert!(a.contains(&cleanup("ci-00000001", Some(1), true)));
    assert!(starts(&a).is_empty(), "backing off");
    // A new image: the backoff ends, the next runner starts at once; the old image goes
    // once no container uses it.
    s.pull_done(
        &specs[0].name,
        specs[0].pull_interval,
        Ok(Some("sha-old".into())),
        t1,
    );
    let a = s.plan(&specs, t1, &mut sfx);
    assert_eq!(starts(&a).len(), 1);
    assert!(a.contains(&Action::PruneImage {
        id: "sha-old".into()
    }));
    s.prune_done("sha-old", false);
    s.cleanup_done("ci-00000001", CleanupOutcome::Done, t1);
    let a = s.plan(&specs, t1, &mut sfx);
    assert!(a.contains(&Action::PruneImage {
        id: "sha-old".into()
    }));
    s.prune_done("sha-old", true);
    assert!(s.stale_images.is_empty());
}

#[test]
fn a_self_update_says_the_image_is_stale_without_backoff() {
    let t0 = Instant::now();
    let (mut s, mut specs, mut sfx) = one_running(1, t0);
    specs[0].pull = PullPolicy::Newer;
    s.plan(&specs, t0, &mut sfx);
    s.pull_done(&specs[0].name, specs[0].pull_interval, Ok(None), t0);
    s.runner_output(
        "ci-00000001",
        &lines(&[
            "Runner update in progress, do not shutdown runner.",
            "Downloading 2.330.0 runner",
        ]),
    );
    assert!(s.pools["p"]
        .last_error
        .as_deref()
        .unwrap()
        .contains("updating itself"));
    assert_eq!(s.pools["p"].failures, 0);
    let a = s.plan(&specs, t0 + pull::PULL_MIN_GAP, &mut sfx);
    assert!(a.contains(&Action::PullImage {
        pool: p(),
        reason: pull::PullReason::Stale
    }));
}

#[test]
fn a_runner_never_online_is_retired_as_a_failure() {
    let t0 = Instant::now();
    let (mut s, specs, mut sfx) = one_running(1, t0);
    s.runner_output(
        "ci-00000001",
        &lines(&[
            "An error occurred: cannot reach the server",
            "Runner listener exit with retryable error, re-launch runner in 5 seconds.",
            "Restarting runner...",
        ]),
    );
    let before = t0 + DEFAULT_ONLINE_TIMEOUT - Duration::from_secs(1);
    assert!(!s
        .plan(&specs, before, &mut sfx)
        .contains(&retire("ci-00000001", Some(1))));
    let t1 = t0 + DEFAULT_ONLINE_TIMEOUT;
    let a = s.plan(&specs, t1, &mut sfx);
    assert!(a.contains(&retire("ci-00000001", Some(1))));
    assert_eq!(s.pools["p"].failures, 1);
    let e = s.pools["p"].last_error.clone().unwrap();
    assert!(e.starts_with("runner ci-00000001 did not come online within 5m; its last error: An error occurred: cannot reach the server"), "{e}");
    // Its exit after the stop is no second failure.
    s.retire_done("ci-00000001", RetireOutcome::Stopped, t1);
    s.container_exited("ci-00000001", Some(0), t1);
    assert_eq!(s.pools["p"].failures, 1);
    // One that listened is never retired this way.
    let (mut s, specs, mut sfx) = one_running(1, t0);
    s.runner_output("ci-00000001", &lines(&["Listening for Jobs"]));
    assert!(!s
        .plan(&specs, t1 + DEFAULT_ONLINE_TIMEOUT, &mut sfx)
        .iter()
        .any(|a| matches!(a, Action::Retire { .. })));
}

#[test]
fn other_hosts_runners_are_deleted_only_when_provably_dead() {
    let t0 = Instant::now();
    let mut s = State::new();
    let mut sfx = suffixes();
    let specs = [PoolSpec {
        prefix: "ci-aaaaaa".into(),
        ..spec(0)
    }];
    let list = |v: Vec<RegistrationSeen>| vec![(repo(), Some(v))];
    let off = |id, name: &str| RegistrationSeen {
        id,
        name: name.into(),
        busy: false,
        online: false,
    };
    s.plan(&specs, t0, &mut sfx);
    s.apply_sweep(
        &list(vec![
            seen(1, "ci-bbbbbb-00000001", false), // another host's, idle and online
            seen(2, "ci-bbbbbb-00000002", true),  // another host's, busy
            off(3, "ci-bbbbbb-00000003"),         // another host's, offline (starting, or dead)
            off(4, "ci-aaaaaa-00000004"),         // ours, no container: delete at once
            off(5, "other-aaaaaa-00000005"),      // not of this pool at all
        ]),
        &specs,
        t0,
    );
    let ids: Vec<u64> = s.orphans.keys().copied().collect();
    assert_eq!(ids, vec![4]);
    s.orphan_done(4, true, t0);
    let t1 = t0 + FLEET_OFFLINE_GRACE - Duration::from_secs(1);
    let again = || {
        vec![
            seen(1, "ci-bbbbbb-00000001", false),
            seen(2, "ci-bbbbbb-00000002", true),
            off(3, "ci-bbbbbb-00000003"),
            off(5, "other-aaaaaa-00000005"),
        ]
    };
    s.apply_sweep(&list(again()), &specs, t1);
    assert!(s.orphans.is_empty(), "within the grace period");
    let t2 = t0 + FLEET_OFFLINE_GRACE;
    s.apply_sweep(&list(again()), &specs, t2);
    let ids: Vec<u64> = s.orphans.keys().copied().collect();
    assert_eq!(ids, vec![3], "offline through the whole grace period: dead");
    // One seen online in between starts its grace period again.
    let mut s = State::new();
    s.plan(&specs, t0, &mut sfx);
    s.apply_sweep(&list(vec![off(3, "ci-bbbbbb-00000003")]), &specs, t0);
    s.apply_sweep(
        &list(vec![seen(3, "ci-bbbbbb-00000003", false)]),
        &specs,
        t1,
    );
    s.apply_sweep(&list(vec![off(3, "ci-bbbbbb-00000003")]), &specs, t2);
    assert!(s.orphans.is_empty());
}

#[test]
fn org_pools_of_two_hosts_share_a_list_safely() {
    // Two hosts' states, one org-wide list with both hosts' runners and another repo's pool.
    let t0 = Instant::now();
    let pool = |prefix: &str| PoolSpec {
        scope: org("o"),
        prefix: prefix.into(),
        ..spec(1)
    };
    let (a, b) = ([pool("ci-aaaaaa")], [pool("ci-bbbbbb")]);
    let mut sa = State::new();
    let mut sb = State::new();
    let mut fa = || "0000000a".to_string();
    let mut fb = || "0000000b".to_string();
    assert_eq!(
        starts(&sa.plan(&a, t0, &mut fa)),
        vec!["ci-aaaaaa-0000000a"]
    );
    assert_eq!(
        starts(&sb.plan(&b, t0, &mut fb)),
        vec!["ci-bbbbbb-0000000b"]
    );
    let list = vec![(
        org("o"),
        Some(vec![
            seen(1, "ci-aaaaaa-0000000a", false),
            seen(2, "ci-bbbbbb-0000000b", false),
            seen(3, "web-cccccc-0000000c", false),
        ]),
    )];
    for t in [t0, t0 + FLEET_OFFLINE_GRACE * 2] {
        sa.apply_sweep(&list, &a, t);
        sb.apply_sweep(&list, &b, t);
        assert!(sa.orphans.is_empty() && sb.orphans.is_empty());
    }
}
