//! The scale set client (github/scaleset/) against the fake GitHub's scale set service: the
//! whole flow of GitHub's own listener, token renewal, session conflicts and job reassignment.
//! No containers: the runners here are only registrations.

use fake_github::FakeGithub;
use podrunner::config::names::Scope;
use podrunner::github::scaleset::{ScaleSetClient, ScaleSetError};
use podrunner::github::{Client, Error, Secret};
use std::sync::Arc;
use std::time::Duration;

const TOKEN: &str = "ghp_scalesetTOKEN0123456789";

/// The set's runner `rid` comes online, takes job `job` and completes it.
fn run_job(gh: &FakeGithub, rid: u64, job: u64) {
    gh.with_state(|st| st.runner_online(rid));
    assert_eq!(gh.job(job).unwrap().runner_id, Some(rid));
    gh.with_state(|st| {
        st.complete_job(rid, job, fake_github::Conclusion::Success, Some(0), None)
            .unwrap()
    });
}

async fn setup() -> (FakeGithub, ScaleSetClient) {
    let gh = FakeGithub::start(TOKEN).await.unwrap();
    // Short long polls keep the test quick.
    gh.with_state(|st| st.scalesets.poll_wait_ms = 300);
    let client = Arc::new(Client::new(&gh.url(), Secret::new(TOKEN.into())).unwrap());
    let ss = ScaleSetClient::new(client, Scope::repository("octo/hello").unwrap());
    (gh, ss)
}

#[tokio::test]
async fn listener_flow_from_available_to_completed() {
    let (gh, ss) = setup().await;
    let set = ss.get_or_create("big", 1, true).await.unwrap();
    assert_eq!(set.name, "big");
    assert!(set.runner_setting.disable_update);
    // Get-or-create finds it again, and brings disableUpdate in line.
    let again = ss.get_or_create("big", 1, false).await.unwrap();
    assert_eq!(again.id, set.id);
    assert!(!again.runner_setting.disable_update);
    assert_eq!(gh.with_state(|st| st.scalesets.sets.len()), 1);

    let job = gh.enqueue_job("repos/octo/hello", &["big"], "echo hi");
    let session = ss.create_session(set.id, "host-a").await.unwrap();
    assert_eq!(session.owner, "host-a");
    assert_eq!(session.statistics.unwrap().total_available_jobs, 1);

    let m = ss
        .get_message(&session, 0, 4)
        .await
        .unwrap()
        .expect("a message");
    assert_eq!(m.events.len(), 1);
    assert_eq!(m.events[0].message_type, "JobAvailable");
    assert_eq!(m.events[0].runner_request_id, job.id);
    // Not acknowledged: the same message again.
    let m2 = ss
        .get_message(&session, 0, 4)
        .await
        .unwrap()
        .expect("again");
    assert_eq!(m2.id, m.id);
    ss.delete_message(&session, m.id).await.unwrap();
    // Nothing more to say: 202 after the poll wait.
    assert!(ss.get_message(&session, m.id, 4).await.unwrap().is_none());

    let got = ss.acquire_jobs(set.id, &session, &[job.id]).await.unwrap();
    assert_eq!(got, vec![job.id]);
    // Acquired twice: GitHub grants it once.
    assert!(ss
        .acquire_jobs(set.id, &session, &[job.id])
        .await
        .unwrap()
        .is_empty());
    let m = ss
        .get_message(&session, m.id, 4)
        .await
        .unwrap()
        .expect("assigned");
    assert_eq!(m.events[0].message_type, "JobAssigned");
    assert_eq!(m.statistics.unwrap().total_assigned_jobs, 1);
    ss.delete_message(&session, m.id).await.unwrap();

    let jit = ss
        .generate_jitconfig(set.id, "big-00000001", "/w")
        .await
        .unwrap();
    assert_eq!(jit.runner.name, "big-00000001");
    let files = fake_github::decode_jit_config(jit.encoded.expose()).unwrap();
    assert!(files.contains_key(".runner"));
    // The runner comes online and takes the job; it completes.
    run_job(&gh, jit.runner.id, job.id);
    let m = ss
        .get_message(&session, m.id, 4)
        .await
        .unwrap()
        .expect("started and completed");
    let kinds: Vec<&str> = m.events.iter().map(|e| e.message_type.as_str()).collect();
    assert_eq!(kinds, vec!["JobStarted", "JobCompleted"]);
    assert_eq!(m.events[0].runner_name.as_deref(), Some("big-00000001"));
    assert_eq!(m.events[1].result.as_deref(), Some("succeeded"));
    assert_eq!(m.statistics.unwrap().total_assigned_jobs, 0);
    ss.delete_message(&session, m.id).await.unwrap();

    ss.delete_session(set.id, &session.id).await.unwrap();
    assert!(gh.with_state(|st| st.scalesets.sets[&set.id].session.is_none()));
    // Deleting it again is fine (a predecessor's session may be gone already).
    ss.delete_session(set.id, &session.id).await.unwrap();
}

#[tokio::test]
async fn second_session_conflicts_and_names_the_owner() {
    let (gh, ss) = setup().await;
    let set = ss.get_or_create("shared", 1, false).await.unwrap();
    let a = ss.create_session(set.id, "host-a").await.unwrap();
    match ss.create_session(set.id, "host-b").await {
        Err(ScaleSetError::SessionConflict(m)) => {
            assert!(m.contains("owner host-a"), "{m}");
            assert_eq!(
                podrunner::manager::conflict_owner(&m).as_deref(),
                Some("host-a")
            );
        }
        other => panic!("expected a conflict, got {:?}", other.map(|s| s.id)),
    }
    // A job host A acquired but no runner took: when A's session ends it goes to B's.
    let job = gh.enqueue_job("repos/octo/hello", &["shared"], "true");
    ss.acquire_jobs(set.id, &a, &[job.id]).await.unwrap();
    ss.delete_session(set.id, &a.id).await.unwrap();
    let b = ss.create_session(set.id, "host-b").await.unwrap();
    let m = ss.get_message(&b, 0, 4).await.unwrap().expect("reassigned");
    assert_eq!(m.events[0].message_type, "JobAvailable");
    assert_eq!(m.events[0].runner_request_id, job.id);
    assert_eq!(
        gh.with_state(|st| st.scalesets.sets[&set.id].owners.clone()),
        vec!["host-a", "host-b"]
    );
}

#[tokio::test]
async fn tokens_are_renewed_before_and_after_they_expire() {
    let (gh, ss) = setup().await;
    // Admin tokens that expire 66 s after issue are renewed 60 s before: after 6 s (5 s at
    // least, the expiry being in whole seconds), time enough under load to see one reused.
    gh.with_state(|st| st.scalesets.admin_token_ttl_secs = 66);
    let set = ss.get_or_create("t", 1, false).await.unwrap();
    assert_eq!(ss.admin_renewals(), 1);
    ss.get_or_create("t", 1, false).await.unwrap();
    assert_eq!(ss.admin_renewals(), 1, "a fresh token is reused");
    tokio::time::sleep(Duration::from_millis(6100)).await;
    ss.get_or_create("t", 1, false).await.unwrap();
    assert_eq!(ss.admin_renewals(), 2, "renewed within the margin");

    // The queue token expires: 401, and a refreshed session works.
    let s = ss.create_session(set.id, "h").await.unwrap();
    gh.with_state(|st| {
        st.scalesets
            .sets
            .get_mut(&set.id)
            .unwrap()
            .session
            .as_mut()
            .unwrap()
            .queue_token_expires = 0
    });
    assert!(matches!(
        ss.get_message(&s, 0, 1).await,
        Err(ScaleSetError::QueueTokenExpired)
    ));
    let s2 = ss.refresh_session(set.id, &s).await.unwrap();
    assert_eq!(s2.id, s.id);
    assert!(ss.get_message(&s2, 0, 1).await.unwrap().is_none());
    // The registration exchange is only reachable with a token GitHub handed out.
    let stats = gh.stats();
    assert_eq!(stats.by_route["POST runner-registration"], 2);
    assert_eq!(stats.by_route["POST registration-token"], 2);
}

async fn ghes(version: &str) -> FakeGithub {
    let gh = FakeGithub::start_ghes(TOKEN, version).await.unwrap();
    gh.with_state(|st| st.scalesets.poll_wait_ms = 300);
    gh
}

/// The listener's flow against a GitHub Enterprise Server (docs/ghes.md): the registration
/// token and the runner-registration exchange under `/api/v3`, the Actions service where the
/// exchange says (`https://HOST/_services/pipelines/...`), an organization's set taking a job
/// of one of its repositories. 3.9 is the first release with scale sets; 3.8 is refused with
/// that message.
#[tokio::test]
async fn ghes_scale_set_flow_and_version() {
    let gh = ghes("3.9.0").await;
    let api = gh.api_url();
    assert!(api.ends_with("/api/v3"), "{api}");
    let client = Arc::new(Client::new(&api, Secret::new(TOKEN.into())).unwrap());
    let ss = ScaleSetClient::new(client.clone(), Scope::organization("acme").unwrap());
    let set = ss.get_or_create("ghes-set", 1, false).await.unwrap();
    assert_eq!(client.server_version().as_deref(), Some("3.9.0"));
    let job = gh.enqueue_job("repos/acme/app", &["ghes-set"], "true");
    let session = ss.create_session(set.id, "host-a").await.unwrap();
    let m = ss
        .get_message(&session, 0, 2)
        .await
        .unwrap()
        .expect("the job is announced");
    assert_eq!(m.events[0].message_type, "JobAvailable");
    assert_eq!(m.events[0].runner_request_id, job.id);
    ss.delete_message(&session, m.id).await.unwrap();
    assert_eq!(
        ss.acquire_jobs(set.id, &session, &[job.id]).await.unwrap(),
        vec![job.id]
    );
    let jit = ss
        .generate_jitconfig(set.id, "ghes-set-00000001", "/w")
        .await
        .unwrap();
    run_job(&gh, jit.runner.id, job.id);
    // Assigned, started and completed: wait for the completion (messages may batch).
    let mut last = m.id;
    let mut kinds = Vec::new();
    while !kinds.contains(&"JobCompleted".to_string()) {
        let Some(m) = ss.get_message(&session, last, 2).await.unwrap() else {
            panic!("no completion after {kinds:?}");
        };
        kinds.extend(m.events.iter().map(|e| e.message_type.clone()));
        ss.delete_message(&session, m.id).await.unwrap();
        last = m.id;
    }
    assert_eq!(kinds, ["JobAssigned", "JobStarted", "JobCompleted"]);
    ss.delete_session(set.id, &session.id).await.unwrap();
    // Every call took the GHES paths: the fake as a GHES serves the exchange only under
    // /api/v3 and the service only under /_services/pipelines/..., and counted them there.
    let stats = gh.stats();
    assert_eq!(stats.by_route["POST registration-token"], 1);
    assert_eq!(stats.by_route["POST runner-registration"], 1);
    assert_eq!(stats.by_route["POST acquirejobs"], 1);
    let http = reqwest::Client::new();
    let off_path = http
        .post(format!("{}/actions/runner-registration", gh.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(off_path.status(), reqwest::StatusCode::NOT_FOUND);
    gh.shutdown().await;

    // A GHES before 3.9 has no scale set service: the exchange's 404 becomes that message.
    let old = ghes("3.8.17").await;
    let client = Arc::new(Client::new(&old.api_url(), Secret::new(TOKEN.into())).unwrap());
    let ss = ScaleSetClient::new(client, Scope::organization("acme").unwrap());
    let e = ss.get_or_create("ghes-set", 1, false).await.unwrap_err();
    assert!(matches!(e, Error::Unsupported(_)), "{e}");
    assert_eq!(e.to_string(), "this GitHub Enterprise Server is version 3.8.17; runner scale sets need 3.9 or later\n  fix: upgrade the server to GHES 3.9 or later (or drop scale_set from the pool: label-matched pools need GHES 3.10)");
    old.shutdown().await;
}
