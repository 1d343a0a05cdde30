//! Faults from GitHub (issue 6), injected with the fake's fault rules: bursts of 5xx, 429 and
//! 403 with `retry-after`, secondary and primary rate limits, slow answers, a revoked token
//! and an API that refuses connections. The manager must neither crash nor hot-loop, must keep
//! its runners, and must say what is wrong in `status`.

mod common;

use common::*;
use fake_github::FaultRule;
use std::time::{Duration, Instant};

/// Times one `podrunner status --json` call.
fn timed_status(b: &Bench) -> (Duration, serde_json::Value) {
    let t = Instant::now();
    let v = b.status_json();
    (t.elapsed(), v)
}

/// 5xx, 429 and 403 bursts with `retry-after`, and slow lists: the pool still fills, a job
/// runs, status answers fast while GitHub is slow, and nothing is left after a stop.
#[tokio::test(flavor = "multi_thread")]
async fn bursts_of_5xx_429_403_and_slow_answers() {
    let mut b = Bench::new("ghburst", vec![Pool::no_engine("gb", 2)]).await;
    let jit = "generate-jitconfig";
    b.gh.add_fault(FaultRule::new(503).path_contains(jit).times(3));
    b.gh.add_fault(FaultRule::new(502).method("GET").times(2));
    b.gh.add_fault(
        FaultRule::new(429)
            .path_contains(jit)
            .retry_after(1)
            .times(2),
    );
    b.gh.add_fault(
        FaultRule::new(403)
            .path_contains(jit)
            .retry_after(1)
            .times(1)
            .header("x-ratelimit-remaining", "100"),
    );
    b.gh.add_fault(FaultRule::delay(3000).method("GET").times(3));
    b.start_manager();
    b.wait_until("2 idle runners", Duration::from_secs(120), |b| {
        b.runners_in("idle").len() == 2
    })
    .await;
    let left: Vec<_> =
        b.gh.faults()
            .into_iter()
            .filter(|f| f.status != 0)
            .collect();
    assert!(left.is_empty(), "every error fault was hit: {left:?}");
    b.gh.clear_faults();
    // GitHub answers slowly: status does not wait for it.
    b.gh.add_fault(FaultRule::delay(5000).method("GET").times(5));
    for _ in 0..5 {
        let (t, v) = timed_status(&b);
        assert!(t < Duration::from_secs(1), "status took {t:?}");
        assert_eq!(v["status"]["pools"][0]["live"], 2);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let id = b.gh.enqueue_job(SCOPE, LABELS, "echo through-the-storm").id;
    let j =
        b.gh.wait_job_completed(id, Duration::from_secs(90))
            .await
            .unwrap_or_else(|| panic!("job did not complete\n{}", b.log_tail(40)));
    assert_eq!(format!("{:?}", j.conclusion), "Some(Success)");
    assert!(b.manager_alive());
    let logs = b.all_logs();
    assert!(logs.contains("GitHub rate limit (429)"), "429 waited out");
    assert!(logs.contains("GitHub answered 503"), "5xx retried");
    b.gh.clear_faults();
    let (code, out, err) = b.cli(&["stop"]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(b.wait_manager_exit(Duration::from_secs(90)).await, 0);
    assert!(b.gh.live_runners().is_empty());
    assert!(b.containers().is_empty());
}

/// A secondary rate limit without `retry-after` (403 "secondary rate limit"): no request at all
/// leaves for the next 60 s, however often status asks for fresh data, and runners are kept.
#[tokio::test(flavor = "multi_thread")]
async fn secondary_rate_limit_pauses_every_call() {
    let mut b = Bench::new("ghsecondary", vec![Pool::no_engine("gs", 1)]).await;
    b.start_manager();
    b.wait_until("1 idle runner", Duration::from_secs(60), |b| {
        b.runners_in("idle").len() == 1
    })
    .await;
    b.gh.add_fault(
        FaultRule::new(403)
            .method("GET")
            .header("x-ratelimit-remaining", "4000")
            .times(1),
    );
    b.gh.with_state(|st| {
        st.faults[0].message = Some("You have exceeded a secondary rate limit".into());
    });
    let t = Instant::now();
    b.wait_until("the limit hit", Duration::from_secs(30), |b| {
        let _ = b.status_json();
        b.gh.faults().is_empty()
    })
    .await;
    let calls = b.gh.api_calls();
    // Status every 300 ms asks for a sweep each time; none may go out.
    while t.elapsed() < Duration::from_secs(20) {
        let (lat, v) = timed_status(&b);
        assert!(lat < Duration::from_secs(1));
        assert_eq!(v["status"]["pools"][0]["live"], 1);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert_eq!(b.gh.api_calls(), calls, "calls during a secondary limit");
    assert!(b.manager_alive());
    assert_eq!(b.containers().len(), 1, "the runner is kept");
    assert!(b.all_logs().contains("rate limit"), "{}", b.log_tail(20));
}

/// The primary budget is exhausted (`x-ratelimit-remaining: 0`): the manager waits for
/// `x-ratelimit-reset`, then fills the pool; status shows the remaining budget.
#[tokio::test(flavor = "multi_thread")]
async fn exhausted_budget_waits_for_reset_and_status_shows_it() {
    let mut b = Bench::new("ghbudget", vec![Pool::no_engine("gk", 1)]).await;
    // The reset is far enough out that a manager slow to start on a loaded host still meets
    // the exhausted budget and then a quiet stretch before the reset.
    const RESET_IN: Duration = Duration::from_secs(30);
    let reset_at = tokio::time::Instant::now() + RESET_IN;
    b.gh.set_rate_limit(0, RESET_IN.as_secs());
    b.start_manager();
    b.wait_until(
        "the manager reports the exhausted budget",
        Duration::from_secs(25),
        |b| b.status_json()["status"]["rate_limit"]["remaining"] == 0,
    )
    .await;
    let first = b.gh.api_calls();
    assert!(first <= 3, "{first} calls into an exhausted budget");
    // Quiet until shortly before the reset (the margin covers the fake's whole-second reset).
    tokio::time::sleep_until(reset_at - Duration::from_secs(3)).await;
    assert_eq!(b.gh.api_calls(), first, "no call before the reset");
    b.wait_until(
        "1 idle runner after the reset",
        Duration::from_secs(60),
        |b| b.runners_in("idle").len() == 1,
    )
    .await;
    let v = b.status_json();
    let rl = &v["status"]["rate_limit"];
    assert!(rl["remaining"].as_u64().unwrap() > 4000, "{rl}");
    assert_eq!(rl["limit"], 5000);
    let (_, text, _) = b.cli(&["status"]);
    assert!(text.to_lowercase().contains("rate limit"), "{text}");
    b.cli(&["stop"]);
    assert_eq!(b.wait_manager_exit(Duration::from_secs(60)).await, 0);
    assert!(b.gh.live_runners().is_empty());
}

/// The token is revoked while runners wait: status and the log say so clearly, the runners
/// are kept, lists are retried with growing pauses (a bounded number of calls), and once the
/// token is valid again the error clears and a stop cleans up.
#[tokio::test(flavor = "multi_thread")]
async fn revoked_token_is_reported_runners_kept_retries_bounded() {
    let mut b = Bench::new("ghrevoked", vec![Pool::no_engine("gr", 2)]).await;
    b.start_manager();
    b.wait_until("2 idle runners", Duration::from_secs(60), |b| {
        b.runners_in("idle").len() == 2
    })
    .await;
    let containers = b.containers();
    b.gh.with_state(|st| st.token = "ghp_revokedREVOKEDrevoked".into());
    b.gh.reset_stats();
    b.wait_until("a 401 in status", Duration::from_secs(30), |b| {
        b.pool_error().contains("401")
    })
    .await;
    let err = b.pool_error();
    assert!(
        err.contains("GitHub rejected the classic personal access token")
            && err.contains("expired or revoked")
            && err.contains("fix:"),
        "{err}"
    );
    // 30 s of status polling (each asks for a sweep): the pauses double (4, 8, 16 s...).
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(30) {
        let _ = b.status_json();
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let calls = b.gh.api_calls();
    assert!(calls <= 6, "{calls} calls in 30 s with a revoked token");
    assert!(b.manager_alive());
    assert_eq!(b.containers(), containers, "runners kept");
    assert!(b
        .all_logs()
        .contains("GitHub rejected the classic personal access token"));
    // A new valid token: the error clears at the next list.
    b.gh.with_state(|st| st.token = TOKEN.into());
    b.wait_until("the error cleared", Duration::from_secs(90), |b| {
        b.pool_error().is_empty()
    })
    .await;
    let (code, out, err) = b.cli(&["stop"]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(b.wait_manager_exit(Duration::from_secs(60)).await, 0);
    assert!(b.gh.live_runners().is_empty());
    assert!(b.containers().is_empty());
}

/// GitHub refuses connections (nothing listens on the API port): the manager runs, answers
/// status, says it cannot reach GitHub, and its calls stay bounded.
#[tokio::test(flavor = "multi_thread")]
async fn connection_refused_is_reported_and_bounded() {
    let mut b = Bench::new("ghrefused", vec![Pool::no_engine("gc", 2)]).await;
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://127.0.0.1:{}", l.local_addr().unwrap().port())
    };
    let url = b.gh.url();
    b.edit_config(|s| s.replace(&url, &closed));
    b.start_manager();
    b.wait_until(
        "cannot reach GitHub in status",
        Duration::from_secs(60),
        |b| b.pool_error().contains("cannot reach GitHub"),
    )
    .await;
    let v = b.status_json();
    let calls0 = v["status"]["api_calls"].as_u64().unwrap();
    let t = Instant::now();
    let mut worst = Duration::ZERO;
    while t.elapsed() < Duration::from_secs(30) {
        let (lat, _) = timed_status(&b);
        worst = worst.max(lat);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(worst < Duration::from_secs(1), "status took {worst:?}");
    let v = b.status_json();
    let calls = v["status"]["api_calls"].as_u64().unwrap() - calls0;
    // One probe start at a time with doubling pauses (5 attempts each), lists backing off.
    assert!(calls <= 40, "{calls} connection attempts in 30 s");
    assert!(b.manager_alive());
    assert!(
        v["status"]["pools"][0]["failures"].as_u64().unwrap() >= 1,
        "{v}"
    );
    assert!(
        b.containers().is_empty(),
        "no container without a registration"
    );
}
