//! Metrics, history and the status page end to end (docs/metrics.md, docs/history.md): the
//! real manager with real Podman and the fake GitHub runs a scripted set of jobs; the metric
//! values, the history rows and the page follow it exactly; the history survives `kill -9`;
//! the page renders in a real headless Chromium.
#![allow(
    clippy::disallowed_methods,
    reason = "test code starts the programs it tests and inspects the host directly"
)]

mod common;

use common::*;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// Samples of a metrics text: `name{labels}` -> value.
fn parse(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            Some((k.to_string(), v.parse().ok()?))
        })
        .collect()
}

/// The value of `name` whose labels include all of `labels` (summed over the rest).
fn value(m: &BTreeMap<String, f64>, name: &str, labels: &[(&str, &str)]) -> f64 {
    m.iter()
        .filter(|(k, _)| {
            let (n, rest) = k.split_once('{').unwrap_or((k.as_str(), ""));
            n == name
                && labels
                    .iter()
                    .all(|(l, v)| rest.contains(&format!("{l}=\"{v}\"")))
        })
        .map(|(_, v)| v)
        .sum()
}

/// GET `path` on 127.0.0.1:`port` without a runtime (for `wait_until`'s predicate).
fn get_sync(port: u16, path: &str) -> String {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return String::new();
    };
    let _ = s.write_all(format!("GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").as_bytes());
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

async fn get(url: &str) -> (u16, String) {
    let r = reqwest::get(url).await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

/// GET over a Unix socket, HTTP/1.0 so the server closes after the answer.
async fn get_unix(sock: &Path, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::UnixStream::connect(sock).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    out
}

fn history(b: &Bench, args: &[&str]) -> Vec<serde_json::Value> {
    let mut a = vec!["history", "--json", "--limit", "0"];
    a.extend_from_slice(args);
    let (code, out, err) = b.cli(&a);
    assert_eq!(code, 0, "{err}");
    serde_json::from_str::<Vec<serde_json::Value>>(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

fn finished_jobs(rows: &[serde_json::Value]) -> Vec<&serde_json::Value> {
    rows.iter()
        .filter(|r| r["job"]["ran"] == true && !r["ended_ms"].is_null())
        .collect()
}

/// Renders `url` in Debian's chromium, headless, with a fresh profile: the DOM after load,
/// and a screenshot into `png`.
fn chromium(dir: &Path, url: &str, png: &Path) -> String {
    let profile = dir.join("chromium-profile");
    let base = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
    ];
    let run = |extra: &[String]| {
        let out = Command::new("timeout")
            .arg("60")
            .arg("chromium")
            .args(base)
            .arg(format!("--user-data-dir={}", profile.display()))
            .args(extra)
            .arg(url)
            .env("HOME", dir)
            .output()
            .expect("chromium is installed (scripts/setup-host)");
        assert!(
            out.status.success(),
            "chromium failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let dom = run(&["--dump-dom".to_string()]);
    run(&[
        format!("--screenshot={}", png.display()),
        "--window-size=1280,1100".to_string(),
    ]);
    dom
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_history_and_page_follow_a_scripted_run() {
    let mut b = Bench::new(
        "metrics",
        vec![
            Pool::no_engine("m", 2),
            Pool::no_engine("brk", 1).image(BROKEN_IMAGE),
        ],
    )
    .await;
    let port = b.listen_on_free_port();
    b.start_manager();
    let base = format!("http://127.0.0.1:{port}");
    let m_idle = |b: &Bench| {
        b.status_json()["status"]["runners"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter(|r| r["pool"] == "m" && r["state"] == "idle")
                    .count()
            })
            .unwrap_or(0)
    };
    b.wait_until("2 idle runners in pool m", Duration::from_secs(60), |b| {
        m_idle(b) == 2
    })
    .await;

    // The script: two jobs succeed, one fails; each runs long enough that GitHub's runner
    // list shows its runner busy (status requests make the manager list often).
    let jobs: Vec<u64> = [
        "sleep 4; echo one",
        "sleep 4; exit 1",
        "sleep 4; echo three",
    ]
    .iter()
    .map(|s| b.gh.enqueue_job(SCOPE, LABELS, s).id)
    .collect();
    for id in &jobs {
        let t = std::time::Instant::now();
        loop {
            if b.gh.job(*id).unwrap().conclusion.is_some() {
                break;
            }
            assert!(
                t.elapsed() < Duration::from_secs(90),
                "job {id}\n{}",
                b.log_tail(60)
            );
            b.status_json();
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
    let results: Vec<String> = jobs
        .iter()
        .map(|id| format!("{:?}", b.gh.job(*id).unwrap().conclusion.unwrap()))
        .collect();
    assert_eq!(results, ["Success", "Failure", "Success"]);

    // Replacements registered and idle again: every count is final.
    b.wait_until(
        "3 jobs completed in metrics and 2 idle",
        Duration::from_secs(60),
        |b| {
            let m = parse(&get_sync(port, "/metrics"));
            m_idle(b) == 2
                && value(&m, "gha_completed_jobs_total", &[("pool", "m")]) == 3.0
                && value(
                    &m,
                    "podrunner_container_start_seconds_count",
                    &[("pool", "m")],
                ) == 5.0
        },
    )
    .await;
    let (code, text) = get(&format!("{base}/metrics")).await;
    assert_eq!(code, 200, "{text}");
    assert!(text.ends_with("# EOF\n"), "{text}");
    assert!(!text.contains(TOKEN));
    let m = parse(&text);
    let v = |name: &str, labels: &[(&str, &str)]| value(&m, name, labels);
    let pool = [("pool", "m")];
    assert_eq!(v("gha_started_jobs_total", &pool), 3.0, "{text}");
    // Results as the runners reported them in their output.
    let by_result = |r: &str| {
        v(
            "gha_completed_jobs_total",
            &[("pool", "m"), ("job_result", r)],
        )
    };
    assert_eq!(
        (
            by_result("succeeded"),
            by_result("failed"),
            by_result("unknown")
        ),
        (2.0, 1.0, 0.0),
        "{text}"
    );
    assert_eq!(v("gha_completed_jobs_total", &pool), 3.0);
    // Execution: the runner's `Running job` to its `completed` line (whole seconds), around
    // the 4 s script.
    let exec = "gha_job_execution_duration_seconds";
    assert_eq!(v(&format!("{exec}_count"), &pool), 3.0, "{text}");
    let sum = v(&format!("{exec}_sum"), &pool);
    assert!((1.5..=20.0).contains(&sum), "{sum}");
    assert_eq!(
        v(&format!("{exec}_bucket"), &[("pool", "m"), ("le", "1.0")]),
        0.0
    );
    assert_eq!(
        v(&format!("{exec}_bucket"), &[("pool", "m"), ("le", "10.0")]),
        3.0
    );
    assert_eq!(
        v(&format!("{exec}_bucket"), &[("pool", "m"), ("le", "+Inf")]),
        3.0
    );
    // No queue times without a scale set: the startup histogram has no observation.
    assert_eq!(v("gha_job_startup_duration_seconds_count", &pool), 0.0);
    assert_eq!(v("gha_desired_runners", &pool), 2.0);
    assert_eq!(v("gha_idle_runners", &pool), 2.0);
    assert_eq!(v("gha_busy_runners", &pool), 0.0);
    assert_eq!(v("gha_registered_runners", &pool), 2.0);
    // 2 first runners and 3 replacements started, none failed.
    assert_eq!(v("podrunner_container_start_seconds_count", &pool), 5.0);
    assert_eq!(v("podrunner_replacements_total", &pool), 3.0);
    assert_eq!(v("podrunner_runner_failures_total", &pool), 0.0);
    assert_eq!(v("podrunner_pool_consecutive_failures", &pool), 0.0);
    assert_eq!(v("podrunner_oom_kills_total", &pool), 0.0);
    // The broken image's pool: failures by reason, and backoff.
    let brk = [("pool", "brk")];
    assert!(
        v(
            "podrunner_runner_failures_total",
            &[("pool", "brk"), ("reason", "exit_code")]
        ) >= 1.0,
        "{text}"
    );
    assert!(v("podrunner_pool_consecutive_failures", &brk) >= 1.0);
    // API calls by endpoint and status, as the fake GitHub counted them.
    let jit = v(
        "podrunner_github_api_calls_total",
        &[("endpoint", "generate-jitconfig"), ("status", "201")],
    );
    let issued = b.gh.jit_configs_issued().len() as f64;
    assert!(jit == issued || jit + 1.0 == issued, "{jit} {issued}");
    assert!(
        v(
            "podrunner_github_api_calls_total",
            &[("endpoint", "list-runners"), ("status", "200")]
        ) >= 1.0
    );
    assert!(
        v("podrunner_github_rate_limit_remaining", &[]) > 0.0,
        "{text}"
    );
    assert!(v("podrunner_github_rate_limit_reset_timestamp_seconds", &[]) > 1.7e9);

    // History: the three jobs of pool m, each on its own runner, with what was seen.
    let rows = history(&b, &["--pool", "m"]);
    let done = finished_jobs(&rows);
    assert_eq!(done.len(), 3, "{rows:#?}");
    for r in &done {
        assert_eq!(r["exit_code"], 0, "{r}");
        assert!(r["failure"].is_null(), "{r}");
        assert!(r["container"].as_str().unwrap().len() >= 12, "{r}");
        assert_eq!(r["image"], TEST_IMAGE);
        assert!(r["image_id"].as_str().unwrap_or("").len() >= 12, "{r}");
        let (s, f) = (
            r["job"]["started_ms"].as_i64().unwrap(),
            r["job"]["finished_ms"].as_i64().unwrap(),
        );
        // The runner's clock says whole seconds: its start may read up to 1 s early.
        assert!(
            f > s && r["created_ms"].as_i64().unwrap() <= s + 1000,
            "{r}"
        );
    }
    // Each job's row: the job's name and result as its runner reported them (the fake
    // runner names a job by its id).
    for (id, want) in jobs.iter().zip(["Succeeded", "Failed", "Succeeded"]) {
        let runner = b.gh.job(*id).unwrap().runner_name.unwrap();
        let r = done.iter().find(|r| r["name"] == runner.as_str()).unwrap();
        assert_eq!(r["job"]["name"], id.to_string(), "{r}");
        assert_eq!(r["job"]["result"], want, "{r}");
    }
    let mut ran_on: Vec<String> = jobs
        .iter()
        .map(|id| b.gh.job(*id).unwrap().runner_name.unwrap())
        .collect();
    ran_on.sort();
    let mut names: Vec<String> = done
        .iter()
        .map(|r| r["name"].as_str().unwrap().to_string())
        .collect();
    names.sort();
    assert_eq!(names, ran_on);
    assert_eq!(
        rows.iter().filter(|r| r["ended_ms"].is_null()).count(),
        2,
        "the idle ones"
    );
    let failed = history(&b, &["--pool", "brk", "--failed"]);
    assert!(!failed.is_empty());
    assert!(
        failed.iter().all(|r| r["failure"] == "exited with code 3"),
        "{failed:#?}"
    );
    let (code, out, _) = b.cli(&["history", "--since", "1h"]);
    assert_eq!(code, 0);
    assert!(
        out.starts_with("RUNNER") && out.contains(&names[0]),
        "{out}"
    );
    // `logs` finds a finished runner's log through the history, by its GitHub id too.
    let id = done[0]["runner_id"].as_u64().unwrap().to_string();
    let (code, out, err) = b.cli(&["logs", &id]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("Running job"), "{out}");

    // The page, in a real browser: pools with state and reason, runners, jobs, the chart.
    let (code, html) = get(&base).await;
    assert_eq!(code, 200);
    assert!(!html.contains(TOKEN));
    let png = std::env::var("PODRUNNER_STATUS_SCREENSHOT")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| b.dir.path().join("status.png"));
    let dom = chromium(b.dir.path(), &format!("{base}/"), &png);
    assert!(dom.contains("<table id=\"pools\">"), "{dom}");
    assert!(
        dom.contains(
            "<td>m</td><td>octo/hello</td><td><span class=\"ok\">ok</span></td><td>2</td>"
        ),
        "{dom}"
    );
    assert!(dom.contains("exited with code 3"), "{dom}");
    for n in &names {
        assert!(
            dom.contains(&format!("<td>{n}</td>")),
            "{n} not on the page"
        );
    }
    assert!(dom.contains("<svg id=\"chart\""), "{dom}");
    assert!(
        dom.contains("<title>3 jobs, 0 failed</title>") || dom.contains(" jobs, "),
        "{dom}"
    );
    let shot = std::fs::read(&png).unwrap();
    assert_eq!(&shot[..8], b"\x89PNG\r\n\x1a\n");
    // Read-only: no other method, no other path.
    let c = reqwest::Client::new();
    assert_eq!(
        c.post(format!("{base}/"))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16(),
        405
    );
    assert_eq!(get(&format!("{base}/drain")).await.0, 404);

    // kill -9, then a manager on a Unix socket listener: nothing of the history is lost, the
    // idle runners are adopted into their own rows, a new job is added.
    b.kill_manager_hard();
    let rows_before = history(&b, &["--pool", "m"]);
    let sock = b.dir.path().join("run/metrics.sock");
    b.edit_config(|s| {
        s.replacen(
            &format!("listen = \"127.0.0.1:{port}\""),
            &format!("listen = \"{}\"", sock.display()),
            1,
        )
    });
    b.start_manager();
    b.wait_until(
        "2 idle runners after restart",
        Duration::from_secs(60),
        |b| m_idle(b) == 2,
    )
    .await;
    let id = b.gh.enqueue_job(SCOPE, LABELS, "echo four").id;
    b.gh.wait_job_completed(id, Duration::from_secs(60))
        .await
        .unwrap();
    b.wait_until(
        "the fourth job in the history",
        Duration::from_secs(60),
        |b| finished_jobs(&history(b, &["--pool", "m"])).len() == 4,
    )
    .await;
    let rows = history(&b, &[]);
    for r in &rows_before {
        let same = rows.iter().find(|x| x["name"] == r["name"]).unwrap();
        if !r["ended_ms"].is_null() {
            assert_eq!(same, r, "a finished row changed");
        }
    }
    let mut all: Vec<&str> = rows.iter().map(|r| r["name"].as_str().unwrap()).collect();
    let n = all.len();
    all.dedup();
    assert_eq!(all.len(), n, "one row per runner");
    let text = get_unix(&sock, "/metrics").await;
    assert!(
        text.starts_with("HTTP/1.0 200 OK") || text.starts_with("HTTP/1.1 200 OK"),
        "{text}"
    );
    let m = parse(text.split("\r\n\r\n").nth(1).unwrap());
    assert_eq!(
        value(&m, "gha_completed_jobs_total", &pool),
        1.0,
        "counters restart with the manager"
    );
    let mode = std::fs::metadata(&sock).map(|m| {
        use std::os::unix::fs::PermissionsExt;
        m.permissions().mode() & 0o777
    });
    assert_eq!(mode.unwrap(), 0o600);
    let (code, out, _) = b.cli(&["stop"]);
    assert_eq!(code, 0, "{out}");
    b.wait_manager_exit(Duration::from_secs(60)).await;
    assert!(!sock.exists(), "the socket is removed at exit");
}

/// Queue-to-start latency, from what GitHub tells about a job: a scale set's `JobStarted`
/// message (its `queueTime`) and a label pool's job list (`created_at` of a job in progress).
/// After one job in each, its history row has the queue time, repository and workflow run,
/// and the pool's startup histogram has exactly that one sample.
#[tokio::test(flavor = "multi_thread")]
async fn queue_times_from_a_scale_set_and_a_label_pool() {
    const SET: &str = "qset";
    let mut b = Bench::new(
        "queuetimes",
        vec![
            Pool::demand(
                "ss",
                &format!("scale_set = \"{SET}\"\nmin_idle = 0\nmax = 1\nidle_timeout = \"3s\""),
            ),
            // The job runs long enough for a 1 s poll to see it in progress.
            Pool::demand(
                "lp",
                "min_idle = 0\nmax = 1\nidle_timeout = \"3s\"\npoll_interval = \"1s\"\nlabels = [\"podman\"]",
            ),
        ],
    )
    .await;
    b.gh.with_state(|st| st.scalesets.poll_wait_ms = 1000);
    let port = b.listen_on_free_port();
    b.start_manager();
    let scaling = |b: &Bench, pool: &str| {
        b.status_json()["status"]["pools"]
            .as_array()
            .and_then(|ps| ps.iter().find(|p| p["name"] == pool).cloned())
            .map(|p| p["scaling"].clone())
            .unwrap_or_default()
    };
    b.wait_until(
        "the scale set's session and the first poll",
        Duration::from_secs(60),
        |b| {
            scaling(b, "ss")["session_held"] == true
                && scaling(b, "lp")["reported_secs_ago"].is_u64()
        },
    )
    .await;
    let ss_job = b.gh.enqueue_job(SCOPE, &[SET], "sleep 2; echo set").id;
    let lp_job =
        b.gh.enqueue_job(SCOPE, &["self-hosted", "podman"], "sleep 6; echo label")
            .id;
    for id in [ss_job, lp_job] {
        let j =
            b.gh.wait_job_completed(id, Duration::from_secs(120))
                .await
                .unwrap_or_else(|| panic!("job {id} did not run\n{}", b.log_tail(60)));
        assert_eq!(format!("{:?}", j.conclusion), "Some(Success)");
    }
    let row_of = |b: &Bench, id: u64| {
        let runner = b.gh.job(id).unwrap().runner_name.unwrap();
        history(b, &[])
            .into_iter()
            .find(|r| r["name"] == runner.as_str())
    };
    b.wait_until(
        "both rows finished with a queue time",
        Duration::from_secs(90),
        |b| {
            [ss_job, lp_job].iter().all(|id| {
                row_of(b, *id).is_some_and(|r| {
                    r["job"]["result"] == "Succeeded" && r["job"]["queued_ms"].is_i64()
                })
            })
        },
    )
    .await;
    let m = parse(&get_sync(port, "/metrics"));
    for (pool, id) in [("ss", ss_job), ("lp", lp_job)] {
        let r = row_of(&b, id).unwrap();
        let job = &r["job"];
        assert_eq!(r["pool"], pool, "{r}");
        assert_eq!(job["name"], id.to_string(), "{r}");
        assert_eq!(job["repository"], REPO, "{r}");
        // The fake GitHub makes one workflow run per job, with the job's id.
        assert_eq!(job["workflow_run"], id, "{r}");
        let queued = job["queued_ms"].as_i64().unwrap();
        let started = job["started_ms"].as_i64().unwrap();
        let enqueued = b.gh.job(id).unwrap().queued_at as i64;
        // GitHub's queue time is the fake's own (whole seconds in the REST API).
        assert!(
            (enqueued - 1000..=enqueued).contains(&queued),
            "{queued} {enqueued}"
        );
        let startup = (started - queued).max(0) as f64 / 1000.0;
        let l = [("pool", pool)];
        let count = value(&m, "gha_job_startup_duration_seconds_count", &l);
        let sum = value(&m, "gha_job_startup_duration_seconds_sum", &l);
        assert_eq!(count, 1.0, "{pool}: {m:?}");
        assert!((sum - startup).abs() < 1e-6, "{pool}: {sum} != {startup}");
        assert_eq!(
            value(
                &m,
                "gha_completed_jobs_total",
                &[("pool", pool), ("job_result", "succeeded")]
            ),
            1.0
        );
    }
    // The page charts the queue times it now knows.
    let (code, html) = get(&format!("http://127.0.0.1:{port}/")).await;
    assert_eq!(code, 200);
    assert!(html.contains("queue-to-start (blue): up to"), "{html}");
    let (code, out, _) = b.cli(&["stop"]);
    assert_eq!(code, 0, "{out}");
    b.wait_manager_exit(Duration::from_secs(60)).await;
}
