use super::*;
use base64::Engine as _;
use std::time::UNIX_EPOCH;

#[test]
fn config_urls_like_github_client() {
    let r = Scope::repository("o/r").unwrap();
    let o = Scope::organization("acme").unwrap();
    assert_eq!(
        config_url("https://api.github.com", &r),
        "https://github.com/o/r"
    );
    assert_eq!(
        config_url("https://api.github.com/", &o),
        "https://github.com/acme"
    );
    assert_eq!(
        config_url("https://ghe.example/api/v3", &r),
        "https://ghe.example/o/r"
    );
    assert_eq!(
        config_url("http://127.0.0.1:8080", &o),
        "http://127.0.0.1:8080/acme"
    );
}

#[test]
fn jwt_expiry_is_read_from_the_payload() {
    let b = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    let t = format!(
        "{}.{}.sig",
        b("{\"alg\":\"none\"}"),
        b("{\"exp\":1700000000}")
    );
    assert_eq!(
        jwt_expiry(&t),
        Some(UNIX_EPOCH + Duration::from_secs(1_700_000_000))
    );
    assert_eq!(jwt_expiry("not-a-jwt"), None);
    assert_eq!(jwt_expiry(&format!("a.{}.c", b("{}"))), None);
}

#[test]
fn messages_batch_job_events_in_a_string_body() {
    let m = br#"{"messageId":7,"messageType":"RunnerScaleSetJobMessages","statistics":{"totalAvailableJobs":1,"totalAssignedJobs":3,"totalRunningJobs":2,"totalRegisteredRunners":3,"totalBusyRunners":2,"totalIdleRunners":1,"totalAcquiredJobs":0},"body":"[{\"messageType\":\"JobAvailable\",\"runnerRequestId\":11,\"acquireJobUrl\":\"x\"},{\"messageType\":\"JobStarted\",\"runnerRequestId\":9,\"runnerId\":4,\"runnerName\":\"ss-1\"},{\"messageType\":\"JobCompleted\",\"runnerRequestId\":8,\"result\":\"succeeded\",\"runnerName\":\"ss-0\"}]"}"#;
    let m = parse_message(m).unwrap();
    assert_eq!(m.id, 7);
    assert_eq!(m.statistics.unwrap().total_assigned_jobs, 3);
    assert_eq!(m.events.len(), 3);
    assert_eq!(m.events[0].message_type, "JobAvailable");
    assert_eq!(m.events[0].runner_request_id, 11);
    assert_eq!(m.events[1].runner_name.as_deref(), Some("ss-1"));
    assert_eq!(m.events[2].result.as_deref(), Some("succeeded"));
    let empty = parse_message(
        b"\xef\xbb\xbf{\"messageId\":1,\"messageType\":\"RunnerScaleSetJobMessages\",\"body\":\"\"}",
    )
    .unwrap();
    assert!(empty.events.is_empty() && empty.statistics.is_none());
    assert!(parse_message(br#"{"messageId":1,"messageType":"Other","body":""}"#).is_err());
}

#[test]
fn sessions_never_print_their_token() {
    let s: Session = SessionWire {
        session_id: "s1".into(),
        owner_name: "host".into(),
        message_queue_url: "http://q".into(),
        message_queue_access_token: "QUEUE-SECRET".into(),
        statistics: None,
    }
    .into();
    assert!(!format!("{s:?}").contains("QUEUE-SECRET"));
}
