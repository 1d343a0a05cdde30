//! The GitHub client against the fake GitHub: pagination, retries, rate limits, errors.

use fake_github::{FakeGithub, FaultRule};
use podrunner::config::names::Scope;
use podrunner::github::{Client, Error, Secret};
use std::time::{Duration, Instant};

const TOKEN: &str = "ghp_clientTEST";

async fn setup() -> (FakeGithub, Client, Scope) {
    let gh = FakeGithub::start(TOKEN).await.unwrap();
    let c = Client::new(&gh.url(), Secret::new(TOKEN.into())).unwrap();
    (gh, c, Scope::repository("octo/hello").unwrap())
}

fn labels() -> Vec<String> {
    vec![
        "self-hosted".into(),
        "linux".into(),
        "x64".into(),
        "gpu".into(),
    ]
}

#[tokio::test]
async fn jit_list_get_delete_and_pagination() {
    let (gh, c, scope) = setup().await;
    for i in 0..150 {
        let j = c
            .generate_jitconfig(&scope, &format!("r-{i:03}"), 1, &labels(), None)
            .await
            .unwrap();
        assert_eq!(j.runner.name, format!("r-{i:03}"));
        assert!(!j.encoded.expose().is_empty());
        assert_eq!(format!("{:?}", j.encoded), "Secret(***)");
    }
    let before = gh.api_calls();
    let all = c.list_runners(&scope).await.unwrap();
    assert_eq!(all.len(), 150);
    assert_eq!(
        gh.api_calls() - before,
        2,
        "two pages of 100 followed through Link"
    );
    let first = &all[0];
    assert!(first.labels.iter().any(|l| l.name == "gpu"));
    assert_eq!(
        c.get_runner(&scope, first.id).await.unwrap().unwrap().name,
        "r-000"
    );
    assert!(c.delete_runner(&scope, first.id).await.unwrap());
    assert!(
        !c.delete_runner(&scope, first.id).await.unwrap(),
        "404 means already gone"
    );
    assert_eq!(c.get_runner(&scope, first.id).await.unwrap(), None);
    // Org scope works the same way.
    let org = Scope::organization("octo").unwrap();
    c.generate_jitconfig(&org, "org-r", 1, &labels(), Some("/w"))
        .await
        .unwrap();
    assert_eq!(c.list_runners(&org).await.unwrap().len(), 1);
}

#[tokio::test]
async fn conflict_is_typed() {
    let (_gh, c, scope) = setup().await;
    c.generate_jitconfig(&scope, "same", 1, &labels(), None)
        .await
        .unwrap();
    let e = c
        .generate_jitconfig(&scope, "same", 1, &labels(), None)
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Conflict(ref n) if n == "same"), "{e}");
}

#[tokio::test]
async fn server_errors_are_retried() {
    let (gh, c, scope) = setup().await;
    gh.add_fault(
        FaultRule::new(502)
            .path_contains("generate-jitconfig")
            .times(2),
    );
    let t = Instant::now();
    c.generate_jitconfig(&scope, "after-502s", 1, &labels(), None)
        .await
        .unwrap();
    assert_eq!(gh.stats().by_route.get("POST generate-jitconfig"), Some(&3));
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "backoff is short for the first retries"
    );
}

#[tokio::test]
async fn too_many_server_errors_give_up() {
    let (gh, c, scope) = setup().await;
    gh.add_fault(
        FaultRule::new(500)
            .path_contains("actions/runners")
            .times(50),
    );
    let e = c.list_runners(&scope).await.unwrap_err();
    assert!(matches!(e, Error::Http { status: 500, .. }), "{e}");
    assert!(e.is_transient());
    assert_eq!(gh.api_calls(), podrunner::github::MAX_ATTEMPTS as u64);
}

#[tokio::test]
async fn rate_limit_429_waits_retry_after() {
    let (gh, c, scope) = setup().await;
    gh.add_fault(
        FaultRule::new(429)
            .path_contains("actions/runners")
            .retry_after(1),
    );
    let t = Instant::now();
    c.list_runners(&scope).await.unwrap();
    assert!(
        t.elapsed() >= Duration::from_millis(950),
        "waited retry-after: {:?}",
        t.elapsed()
    );
    assert_eq!(gh.api_calls(), 2);
}

#[tokio::test]
async fn exhausted_primary_limit_waits_for_reset() {
    let (gh, c, scope) = setup().await;
    // A 403 without retry-after: the fake sends remaining 0 and a reset 2 s ahead.
    gh.add_fault(FaultRule::new(403).path_contains("actions/runners"));
    let t = Instant::now();
    c.list_runners(&scope).await.unwrap();
    assert!(
        t.elapsed() >= Duration::from_millis(900),
        "{:?}",
        t.elapsed()
    );
    assert_eq!(c.rate_limit().limit, Some(5000));
}

#[tokio::test]
async fn busy_delete_unauthorized_and_forbidden() {
    let (gh, c, scope) = setup().await;
    let j = c
        .generate_jitconfig(&scope, "busy-one", 1, &labels(), None)
        .await
        .unwrap();
    gh.with_state(|st| st.runners.get_mut(&j.runner.id).unwrap().busy = true);
    let e = c.delete_runner(&scope, j.runner.id).await.unwrap_err();
    assert!(
        matches!(e, Error::StillBusy(id) if id == j.runner.id),
        "{e}"
    );

    let bad = Client::new(&gh.url(), Secret::new("wrong".into())).unwrap();
    let e = bad.list_runners(&scope).await.unwrap_err();
    assert!(matches!(e, Error::Unauthorized(_)), "{e}");
    assert!(e.to_string().contains("fix:"));

    // A 403 that is no rate limit (budget left, no retry-after): a permission problem.
    let mut rule = FaultRule::new(403)
        .path_contains("actions/runners")
        .header("x-ratelimit-remaining", "4000");
    rule.message = Some("Resource not accessible by personal access token".into());
    gh.add_fault(rule);
    let e = c.list_runners(&scope).await.unwrap_err();
    assert!(
        matches!(e, Error::Forbidden(ref d) if d.found.ends_with("(GitHub answered 403: Resource not accessible by personal access token)")),
        "{e}"
    );
    assert!(
        e.to_string().contains("Administration: write"),
        "the error names the permission to grant"
    );
}

#[tokio::test]
async fn connection_refused_is_transient() {
    let c = Client::new("http://127.0.0.1:9", Secret::new(TOKEN.into())).unwrap();
    let e = c
        .list_runners(&Scope::repository("o/r").unwrap())
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Transport { .. }), "{e}");
    assert!(e.is_transient());
}

#[test]
fn next_link_parsing() {
    use podrunner::github::next_link;
    let h = r#"<https://api.github.com/repos/o/r/actions/runners?per_page=100&page=2>; rel="next", <https://api.github.com/repos/o/r/actions/runners?per_page=100&page=3>; rel="last""#;
    assert_eq!(
        next_link(h).as_deref(),
        Some("https://api.github.com/repos/o/r/actions/runners?per_page=100&page=2")
    );
    let h = r#"<https://x/a?page=1>; rel="prev", <https://x/a?page=1>; rel="first""#;
    assert_eq!(next_link(h), None);
}
