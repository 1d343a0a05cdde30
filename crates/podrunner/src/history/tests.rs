use super::*;

const H: i64 = 3_600_000;

fn open() -> (tempfile::TempDir, History) {
    let dir = tempfile::tempdir().unwrap();
    let h = History::open(&History::path_in(dir.path())).unwrap();
    (dir, h)
}

fn add(h: &History, name: &str, pool: &str, created_ms: i64) {
    h.runner_created(&NewRunner {
        name,
        pool,
        image: "img:1",
        created_ms,
        log_path: Path::new("/s/logs/x.log"),
    })
    .unwrap();
}

fn names(v: &[Entry]) -> Vec<&str> {
    v.iter().map(|e| e.name.as_str()).collect()
}

#[test]
fn a_runner_life_is_one_row() {
    let (_d, h) = open();
    add(&h, "ci-1", "ci", 1_000);
    // Adopted after a restart: the same name keeps its row.
    add(&h, "ci-1", "ci", 9_000);
    h.runner_registered("ci-1", 42).unwrap();
    h.runner_started("ci-1", "abc123", 1_500).unwrap();
    h.runner_online("ci-1", 2_000).unwrap();
    h.runner_online("ci-1", 3_000).unwrap();
    h.job_started("ci-1", 2_500).unwrap();
    h.job_started("ci-1", 2_600).unwrap();
    h.runner_exited("ci-1", 8_000, Some(0)).unwrap();
    h.runner_proxy_refusals("ci-1", 2).unwrap();
    h.runner_finished(
        "ci-1",
        &Finish {
            ended_ms: 8_100,
            exit_code: None,
            failure: None,
            oom: false,
            image_id: Some("sha256:beef".into()),
            job: JobOutcome {
                ran: Some(true),
                name: Some("build".into()),
                result: Some("Succeeded".into()),
                queued_ms: Some(1_200),
                // The runner's own start replaces the one first seen busy.
                started_ms: Some(2_400),
                finished_ms: Some(7_900),
                ..Default::default()
            },
        },
    )
    .unwrap();
    let e = h.find("ci-1").unwrap().unwrap();
    assert_eq!(
        e,
        Entry {
            pool: "ci".into(),
            name: "ci-1".into(),
            runner_id: Some(42),
            container: Some("abc123".into()),
            image: Some("img:1".into()),
            image_id: Some("sha256:beef".into()),
            created_ms: 1_000,
            started_ms: Some(1_500),
            online_ms: Some(2_000),
            job: JobOutcome {
                ran: Some(true),
                name: Some("build".into()),
                repository: None,
                workflow_run: None,
                result: Some("Succeeded".into()),
                queued_ms: Some(1_200),
                started_ms: Some(2_400),
                finished_ms: Some(7_900),
            },
            ended_ms: Some(8_000),
            exit_code: Some(0),
            failure: None,
            oom: false,
            log_path: Some("/s/logs/x.log".into()),
            proxy_refusals: 2,
        }
    );
    assert!(!e.failed());
    assert_eq!(h.find("nope").unwrap(), None);
    // By GitHub runner id, or a container id prefix.
    let by = |r: &str| h.find_ref(r).unwrap().map(|e| e.name);
    assert_eq!(by("ci-1").as_deref(), Some("ci-1"));
    assert_eq!(by("42").as_deref(), Some("ci-1"));
    assert_eq!(by("abc1").as_deref(), Some("ci-1"));
    assert_eq!(by("abc"), None, "too short a prefix");
    assert_eq!(by("43"), None);
}

#[test]
fn a_file_of_schema_1_is_upgraded() {
    let dir = tempfile::tempdir().unwrap();
    let path = History::path_in(dir.path());
    {
        // Schema 1: the table without `proxy_refusals`, one row in it.
        let c = Connection::open(&path).unwrap();
        let v1 = SCHEMA.replace(",\n    proxy_refusals INTEGER NOT NULL DEFAULT 0", "");
        assert!(!v1.contains("proxy_refusals"));
        c.execute_batch(&v1).unwrap();
        c.pragma_update(None, "user_version", 1).unwrap();
        c.execute(
            "INSERT INTO runners (name, pool, created_ms) VALUES ('old-1', 'ci', 5)",
            [],
        )
        .unwrap();
    }
    let h = History::open(&path).unwrap();
    assert_eq!(h.find("old-1").unwrap().unwrap().proxy_refusals, 0);
    h.runner_proxy_refusals("old-1", 3).unwrap();
    assert_eq!(h.find("old-1").unwrap().unwrap().proxy_refusals, 3);
    drop(h);
    // Opened again: nothing to upgrade.
    let h = History::open(&path).unwrap();
    assert_eq!(h.find("old-1").unwrap().unwrap().proxy_refusals, 3);
}

#[test]
fn filters() {
    let (_d, h) = open();
    add(&h, "a-1", "a", 10 * H);
    add(&h, "b-1", "b", 11 * H);
    add(&h, "a-2", "a", 12 * H);
    h.runner_finished(
        "a-2",
        &Finish {
            ended_ms: 12 * H + 5,
            failure: Some("runner a-2 exited with code 3".into()),
            ..Default::default()
        },
    )
    .unwrap();
    add(&h, "a-3", "a", 13 * H);
    h.runner_oom("a-3").unwrap();
    let all = h.list(&Filter::default()).unwrap();
    assert_eq!(names(&all), vec!["a-3", "a-2", "b-1", "a-1"]);
    let f = |pool: Option<&str>, since: Option<i64>, failed: bool| Filter {
        pool: pool.map(str::to_string),
        since_ms: since,
        failed_only: failed,
        limit: None,
    };
    assert_eq!(
        names(&h.list(&f(Some("a"), None, false)).unwrap()),
        vec!["a-3", "a-2", "a-1"]
    );
    assert_eq!(
        names(&h.list(&f(None, Some(11 * H), false)).unwrap()),
        vec!["a-3", "a-2", "b-1"]
    );
    assert_eq!(
        names(&h.list(&f(None, None, true)).unwrap()),
        vec!["a-3", "a-2"]
    );
    let mut lim = f(None, None, false);
    lim.limit = Some(1);
    assert_eq!(names(&h.list(&lim).unwrap()), vec!["a-3"]);
}

#[test]
fn runners_left_open_by_a_killed_manager_are_closed_at_start() {
    let (_d, h) = open();
    add(&h, "ci-1", "ci", 1_000); // never exited: lost
    add(&h, "ci-2", "ci", 1_000); // exit recorded, cleanup not
    h.runner_exited("ci-2", 5_000, Some(0)).unwrap();
    add(&h, "ci-3", "ci", 1_000); // adopted: still running
    add(&h, "ci-4", "ci", 1_000); // finished properly
    h.runner_finished(
        "ci-4",
        &Finish {
            ended_ms: 4_000,
            ..Default::default()
        },
    )
    .unwrap();
    let n = h
        .close_unfinished(&["ci-3".to_string()], 9_000, "lost")
        .unwrap();
    assert_eq!(n, 2);
    let e = |n: &str| h.find(n).unwrap().unwrap();
    assert_eq!(
        (e("ci-1").ended_ms, e("ci-1").failure.as_deref()),
        (Some(9_000), Some("lost"))
    );
    assert_eq!((e("ci-2").ended_ms, e("ci-2").failure), (Some(5_000), None));
    assert_eq!((e("ci-3").ended_ms, e("ci-3").failure), (None, None));
    assert_eq!((e("ci-4").ended_ms, e("ci-4").failure), (Some(4_000), None));
    // Closed rows stay closed.
    assert_eq!(h.close_unfinished(&[], 10_000, "lost").unwrap(), 1);
}

#[test]
fn retention_by_age() {
    let (_d, h) = open();
    let now = 100 * 24 * H;
    for (i, age_days) in [40, 31, 29, 1, 0].iter().enumerate() {
        add(&h, &format!("r-{i}"), "ci", now - age_days * 24 * H);
    }
    let r = Retention {
        max_age: Duration::from_secs(30 * 24 * 3600),
        max_bytes: 1 << 30,
    };
    assert_eq!(h.prune(now, &r).unwrap(), 2);
    assert_eq!(
        names(&h.list(&Filter::default()).unwrap()),
        vec!["r-4", "r-3", "r-2"]
    );
    assert_eq!(h.prune(now, &r).unwrap(), 0);
}

#[test]
fn retention_by_size_keeps_the_newest() {
    let (d, h) = open();
    let long = "x".repeat(2000);
    let tx = h.conn.unchecked_transaction().unwrap();
    for i in 0..3000 {
        add(&h, &format!("r-{i:05}"), "ci", 1_000 + i);
        h.runner_finished(
            &format!("r-{i:05}"),
            &Finish {
                ended_ms: 2_000 + i,
                failure: Some(long.clone()),
                ..Default::default()
            },
        )
        .unwrap();
    }
    tx.commit().unwrap();
    let before = h.used_bytes().unwrap();
    assert!(before > 6_000_000, "{before}");
    let file = || std::fs::metadata(History::path_in(d.path())).unwrap().len();
    h.conn
        .execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
        .unwrap();
    let file_before = file();
    let r = Retention {
        max_age: Duration::from_secs(3600 * 24 * 365),
        max_bytes: 2_000_000,
    };
    let deleted = h.prune(3_000, &r).unwrap();
    let left = h.count().unwrap();
    assert_eq!(deleted + left, 3000);
    assert!(h.used_bytes().unwrap() <= 2_000_000);
    // About 4 KiB a row here (the long text takes an overflow page): close to the limit,
    // not far below it.
    assert!((400..=490).contains(&left), "{left}");
    // The newest survive, in one unbroken run.
    let all = h.list(&Filter::default()).unwrap();
    assert_eq!(all[0].name, "r-02999");
    assert_eq!(all.last().unwrap().name, format!("r-{:05}", 3000 - left));
    h.conn
        .execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
        .unwrap();
    assert!(file() < file_before / 2, "{} {}", file(), file_before);
}

#[test]
fn jobs_per_hour() {
    let (_d, h) = open();
    let job = |h: &History, n: &str, end: i64, result: &str, queued: Option<i64>| {
        add(h, n, "ci", end - 10_000);
        h.job_started(n, end - 5_000).unwrap();
        h.runner_finished(
            n,
            &Finish {
                ended_ms: end,
                job: JobOutcome {
                    ran: Some(true),
                    result: Some(result.into()),
                    queued_ms: queued,
                    ..Default::default()
                },
                ..Default::default()
            },
        )
        .unwrap();
    };
    job(&h, "j1", 5 * H + 10, "Succeeded", Some(5 * H + 10 - 7_000));
    job(&h, "j2", 5 * H + 20, "Failed", Some(5 * H + 20 - 9_000));
    job(&h, "j3", 6 * H + 30, "Succeeded", None);
    add(&h, "idle", "ci", 6 * H);
    h.runner_finished(
        "idle",
        &Finish {
            ended_ms: 6 * H + 40,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(
        h.per_hour(0).unwrap(),
        vec![
            Hour {
                hour_ms: 5 * H,
                jobs: 2,
                failed: 1,
                mean_startup_secs: Some(3.0)
            },
            Hour {
                hour_ms: 6 * H,
                jobs: 1,
                failed: 0,
                mean_startup_secs: None
            },
        ]
    );
    assert_eq!(h.per_hour(6 * H).unwrap().len(), 1);
}

#[test]
fn read_only_sees_committed_rows_and_refuses_writes() {
    let (d, h) = open();
    add(&h, "ci-1", "ci", 1);
    let r = History::open_read_only(&History::path_in(d.path())).unwrap();
    assert_eq!(r.count().unwrap(), 1);
    assert!(r.runner_oom("ci-1").is_err());
}

#[test]
fn since_parses_durations() {
    assert_eq!(since_ms("2h", 10 * H), Ok(8 * H));
    assert_eq!(since_ms("30m", H), Ok(H / 2));
    assert!(since_ms("yesterday", H)
        .unwrap_err()
        .to_string()
        .contains("expected a duration"));
}
