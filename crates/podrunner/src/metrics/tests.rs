use super::*;
use crate::control::{PoolStatus, RunnerStatus, StatusSnapshot};

fn runner(pool: &str, name: &str, state: &str, id: Option<u64>, docker: &str) -> RunnerStatus {
    RunnerStatus {
        job: None,
        pool: pool.into(),
        name: name.into(),
        runner_id: id,
        container: None,
        state: state.into(),
        age_secs: 1,
        adopted: false,
        docker: Some(docker.into()),
    }
}

fn snap() -> StatusSnapshot {
    StatusSnapshot {
        pid: 1,
        instance: "default".into(),
        config: "/c".into(),
        uptime_secs: 1,
        draining: false,
        api_calls: 3,
        rate_limit: crate::github::RateLimit {
            limit: Some(5000),
            remaining: Some(4990),
            reset: Some(1_800_000_000),
        },
        pools: vec![PoolStatus {
            recent: vec![],
            image_error: None,
            scaling: None,
            name: "ci".into(),
            scope: "repos/o/r".into(),
            desired: 3,
            live: 3,
            jobs_done: 2,
            failures: 1,
            backing_off_secs: Some(9),
            last_error: None,
        }],
        runners: vec![
            runner("ci", "ci-1", "idle", Some(1), "ready"),
            runner("ci", "ci-2", "busy", Some(2), "engine"),
            runner("ci", "ci-3", "starting", None, "-"),
        ],
    }
}

/// The lines of `text` that start with `prefix` (samples, not comments), sorted: within a
/// family the encoder's order is a hash map's.
fn samples<'a>(text: &'a str, prefix: &str) -> Vec<&'a str> {
    let mut v: Vec<&str> = text.lines().filter(|l| l.starts_with(prefix)).collect();
    v.sort();
    v
}

fn sorted(mut v: Vec<&str>) -> Vec<&str> {
    v.sort();
    v
}

#[test]
fn render_is_exact() {
    let m = Metrics::default();
    m.job_started("ci");
    m.job_started("ci");
    m.job_completed("ci", Some("Succeeded"), None, Some(3.0));
    m.job_completed("ci", None, Some(4.0), Some(70.0));
    m.container_started("ci", 0.6);
    m.failure("ci", "exit_code");
    m.replacement("ci");
    m.oom_kill("ci");
    m.proxy_refusals("ci", "policy", 2);
    let mut calls = BTreeMap::new();
    calls.insert(("generate-jitconfig", "201".to_string()), 3u64);
    calls.insert(("list-runners", "error".to_string()), 1u64);
    let t = m.render(&snap(), &calls);
    assert_eq!(
        samples(&t, "gha_"),
        sorted(vec![
            "gha_started_jobs_total{pool=\"ci\"} 2",
            "gha_completed_jobs_total{pool=\"ci\",job_result=\"succeeded\"} 1",
            "gha_completed_jobs_total{pool=\"ci\",job_result=\"unknown\"} 1",
            "gha_job_startup_duration_seconds_sum{pool=\"ci\"} 4.0",
            "gha_job_startup_duration_seconds_count{pool=\"ci\"} 1",
            "gha_job_startup_duration_seconds_bucket{le=\"1.0\",pool=\"ci\"} 0",
            "gha_job_startup_duration_seconds_bucket{le=\"2.0\",pool=\"ci\"} 0",
            "gha_job_startup_duration_seconds_bucket{le=\"5.0\",pool=\"ci\"} 1",
            "gha_job_startup_duration_seconds_bucket{le=\"10.0\",pool=\"ci\"} 1",
            "gha_job_startup_duration_seconds_bucket{le=\"20.0\",pool=\"ci\"} 1",
            "gha_job_startup_duration_seconds_bucket{le=\"30.0\",pool=\"ci\"} 1",
            "gha_job_startup_duration_seconds_bucket{le=\"60.0\",pool=\"ci\"} 1",
            "gha_job_startup_duration_seconds_bucket{le=\"120.0\",pool=\"ci\"} 1",
            "gha_job_startup_duration_seconds_bucket{le=\"300.0\",pool=\"ci\"} 1",
            "gha_job_startup_duration_seconds_bucket{le=\"600.0\",pool=\"ci\"} 1",
            "gha_job_startup_duration_seconds_bucket{le=\"1200.0\",pool=\"ci\"} 1",
            "gha_job_startup_duration_seconds_bucket{le=\"1800.0\",pool=\"ci\"} 1",
            "gha_job_startup_duration_seconds_bucket{le=\"3600.0\",pool=\"ci\"} 1",
            "gha_job_startup_duration_seconds_bucket{le=\"7200.0\",pool=\"ci\"} 1",
            "gha_job_startup_duration_seconds_bucket{le=\"+Inf\",pool=\"ci\"} 1",
            "gha_job_execution_duration_seconds_sum{pool=\"ci\"} 73.0",
            "gha_job_execution_duration_seconds_count{pool=\"ci\"} 2",
            "gha_job_execution_duration_seconds_bucket{le=\"1.0\",pool=\"ci\"} 0",
            "gha_job_execution_duration_seconds_bucket{le=\"2.0\",pool=\"ci\"} 0",
            "gha_job_execution_duration_seconds_bucket{le=\"5.0\",pool=\"ci\"} 1",
            "gha_job_execution_duration_seconds_bucket{le=\"10.0\",pool=\"ci\"} 1",
            "gha_job_execution_duration_seconds_bucket{le=\"20.0\",pool=\"ci\"} 1",
            "gha_job_execution_duration_seconds_bucket{le=\"30.0\",pool=\"ci\"} 1",
            "gha_job_execution_duration_seconds_bucket{le=\"60.0\",pool=\"ci\"} 1",
            "gha_job_execution_duration_seconds_bucket{le=\"120.0\",pool=\"ci\"} 2",
            "gha_job_execution_duration_seconds_bucket{le=\"300.0\",pool=\"ci\"} 2",
            "gha_job_execution_duration_seconds_bucket{le=\"600.0\",pool=\"ci\"} 2",
            "gha_job_execution_duration_seconds_bucket{le=\"1200.0\",pool=\"ci\"} 2",
            "gha_job_execution_duration_seconds_bucket{le=\"1800.0\",pool=\"ci\"} 2",
            "gha_job_execution_duration_seconds_bucket{le=\"3600.0\",pool=\"ci\"} 2",
            "gha_job_execution_duration_seconds_bucket{le=\"7200.0\",pool=\"ci\"} 2",
            "gha_job_execution_duration_seconds_bucket{le=\"+Inf\",pool=\"ci\"} 2",
            "gha_idle_runners{pool=\"ci\"} 1",
            "gha_busy_runners{pool=\"ci\"} 1",
            "gha_registered_runners{pool=\"ci\"} 2",
            "gha_desired_runners{pool=\"ci\"} 3",
        ])
    );
    let own: Vec<&str> = samples(&t, "podrunner_")
        .into_iter()
        .filter(|l| !l.contains("_bucket{"))
        .collect();
    assert_eq!(
        own,
        sorted(vec![
            "podrunner_container_start_seconds_sum{pool=\"ci\"} 0.6",
            "podrunner_container_start_seconds_count{pool=\"ci\"} 1",
            "podrunner_replacements_total{pool=\"ci\"} 1",
            "podrunner_runner_failures_total{pool=\"ci\",reason=\"exit_code\"} 1",
            "podrunner_oom_kills_total{pool=\"ci\"} 1",
            "podrunner_proxy_refusals_total{pool=\"ci\",reason=\"policy\"} 2",
            "podrunner_runners{pool=\"ci\",state=\"starting\"} 1",
            "podrunner_runners{pool=\"ci\",state=\"idle\"} 1",
            "podrunner_runners{pool=\"ci\",state=\"busy\"} 1",
            "podrunner_runners{pool=\"ci\",state=\"stopping\"} 0",
            "podrunner_runners{pool=\"ci\",state=\"exited\"} 0",
            "podrunner_pool_consecutive_failures{pool=\"ci\"} 1",
            "podrunner_pool_backoff_seconds{pool=\"ci\"} 9",
            "podrunner_docker_engines_running{pool=\"ci\"} 1",
            "podrunner_github_api_calls_total{endpoint=\"generate-jitconfig\",status=\"201\"} 3",
            "podrunner_github_api_calls_total{endpoint=\"list-runners\",status=\"error\"} 1",
            "podrunner_github_rate_limit_remaining 4990",
            "podrunner_github_rate_limit_reset_timestamp_seconds 1800000000",
            "podrunner_draining 0",
        ])
    );
    assert!(t.ends_with("# EOF\n"));
    assert!(t.contains("# TYPE gha_completed_jobs counter"));
}

#[test]
fn result_labels() {
    assert_eq!(job_result_label(Some("Succeeded")), "succeeded");
    assert_eq!(job_result_label(Some("Canceled")), "canceled");
    assert_eq!(job_result_label(Some(" ")), "unknown");
    assert_eq!(job_result_label(None), "unknown");
}

/// Every series the sample Grafana dashboard queries is one podrunner exports.
#[test]
fn the_dashboard_queries_exported_names() {
    let dash = include_str!("../../../../docs/grafana-dashboard.json");
    let m = Metrics::default();
    m.job_started("ci");
    m.job_completed("ci", None, Some(1.0), Some(1.0));
    m.container_started("ci", 1.0);
    m.replacement("ci");
    m.failure("ci", "start");
    m.oom_kill("ci");
    m.proxy_refusals("ci", "policy", 1);
    let mut calls = BTreeMap::new();
    calls.insert(("list-runners", "200".to_string()), 1u64);
    let text = m.render(&snap(), &calls);
    let exported: std::collections::BTreeSet<&str> = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split(['{', ' ']).next())
        .collect();
    let mut used = std::collections::BTreeSet::new();
    for word in dash.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
        if word.starts_with("gha_") || word.starts_with("podrunner_") {
            used.insert(word);
        }
    }
    assert!(used.len() >= 15, "{used:?}");
    let missing: Vec<&&str> = used.iter().filter(|w| !exported.contains(**w)).collect();
    assert!(missing.is_empty(), "not exported: {missing:?}");
}
