//! The fake runner protocol (`/_runner`), the test-control endpoints (`/_fake`) and the
//! `fake-github` binary, as docs/test-bench.md specifies them. Every wait has a timeout.
#![allow(
    clippy::disallowed_methods,
    reason = "test code starts the programs it tests and inspects the host directly"
)]

use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use fake_github::{decode_jit_config, FakeGithub, JobStatus, RunnerStatus};
use serde_json::{json, Value};

const TOKEN: &str = "t0ken";

struct Reg {
    id: u64,
    secret: String,
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

async fn register(gh: &FakeGithub, scope: &str, name: &str, labels: &[&str]) -> Reg {
    let resp = client()
        .post(format!(
            "{}/{scope}/actions/runners/generate-jitconfig",
            gh.url()
        ))
        .bearer_auth(TOKEN)
        .json(&json!({"name": name, "runner_group_id": 1, "labels": labels}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let body: Value = resp.json().await.unwrap();
    let files = decode_jit_config(body["encoded_jit_config"].as_str().unwrap()).unwrap();
    Reg {
        id: body["runner"]["id"].as_u64().unwrap(),
        secret: files[".credentials"]["data"]["token"]
            .as_str()
            .unwrap()
            .to_string(),
    }
}

async fn acquire(gh: &FakeGithub, reg: &Reg, wait: u64) -> (u16, Option<Value>, Duration) {
    let started = Instant::now();
    let resp = client()
        .post(format!(
            "{}/_runner/{}/acquire?wait={wait}",
            gh.url(),
            reg.id
        ))
        .header("Authorization", format!("RunnerToken {}", reg.secret))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let body = resp.json::<Value>().await.ok();
    (status, body, started.elapsed())
}

async fn complete(gh: &FakeGithub, reg: &Reg, job_id: u64, conclusion: &str, exit: i64) -> u16 {
    client()
        .post(format!("{}/_runner/{}/complete", gh.url(), reg.id))
        .header("Authorization", format!("RunnerToken {}", reg.secret))
        .json(&json!({"job_id": job_id, "conclusion": conclusion, "exit_code": exit, "output": "out"}))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acquire_long_polls_and_wakes_on_enqueue() {
    let gh = FakeGithub::start(TOKEN).await.unwrap();
    let reg = register(&gh, "repos/o/r", "a", &["gpu"]).await;
    assert_eq!(gh.runner(reg.id).unwrap().status, RunnerStatus::Offline);

    // No job: 204 after the wait.
    let (status, _, took) = acquire(&gh, &reg, 1).await;
    assert_eq!(status, 204);
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(5),
        "{took:?}"
    );
    assert_eq!(gh.runner(reg.id).unwrap().status, RunnerStatus::Online);

    // A job enqueued during the poll wakes it at once; a non-matching one does not.
    let gh = std::sync::Arc::new(gh);
    let enqueuer = {
        let gh = gh.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            gh.enqueue_job("repos/o/r", &["GPU", "linux"], "echo other-labels-first");
            gh.enqueue_job("repos/o/r", &["arm64"], "echo never");
            tokio::time::sleep(Duration::from_millis(200)).await;
        })
    };
    let (status, body, took) = acquire(&gh, &reg, 20).await;
    enqueuer.await.unwrap();
    assert_eq!(status, 200);
    assert!(took < Duration::from_secs(3), "woken late: {took:?}");
    let body = body.unwrap();
    assert_eq!(body["script"], "echo other-labels-first");
    assert_eq!(body["timeout_secs"], 600);
    let job_id = body["job_id"].as_u64().unwrap();
    let job = gh.job(job_id).unwrap();
    assert_eq!(job.status, JobStatus::InProgress);
    assert_eq!(job.runner_id, Some(reg.id));
    assert_eq!(job.runner_name.as_deref(), Some("a"));
    assert!(gh.runner(reg.id).unwrap().busy);

    // Completing removes the registration; the other job stays queued.
    assert!(!gh.wait_jobs_completed(Duration::from_millis(100)).await);
    assert_eq!(complete(&gh, &reg, job_id, "failure", 3).await, 200);
    let job = gh
        .wait_job_completed(job_id, Duration::from_secs(1))
        .await
        .unwrap();
    assert_eq!(job.conclusion, Some(fake_github::Conclusion::Failure));
    assert_eq!(job.exit_code, Some(3));
    assert_eq!(job.output.as_deref(), Some("out"));
    assert!(job.completed_at.unwrap() >= job.started_at.unwrap());
    assert!(gh.runner(reg.id).is_none());
    assert_eq!(gh.stats().runners_deleted, 1);
    let (status, _, _) = acquire(&gh, &reg, 1).await;
    assert_eq!(status, 404, "the registration is gone");
    let queued: Vec<_> = gh
        .jobs()
        .into_iter()
        .filter(|j| j.status == JobStatus::Queued)
        .map(|j| j.script)
        .collect();
    assert_eq!(queued, ["echo never"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_the_registration_ends_a_pending_acquire_promptly() {
    let gh = FakeGithub::start(TOKEN).await.unwrap();
    let reg = register(&gh, "orgs/o", "a", &["x"]).await;
    let url = gh.url();
    let id = reg.id;
    let deleter = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(500)).await;
        client()
            .delete(format!("{url}/orgs/o/actions/runners/{id}"))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    });
    let (status, body, took) = acquire(&gh, &reg, 30).await;
    assert_eq!(deleter.await.unwrap(), 204);
    assert_eq!(status, 404);
    assert_eq!(body.unwrap()["message"], "runner not found");
    assert!(took < Duration::from_millis(1500), "took {took:?}");
}

#[tokio::test]
async fn runner_auth_and_matching() {
    let gh = FakeGithub::start(TOKEN).await.unwrap();
    let org = register(&gh, "orgs/o", "org-runner", &["big"]).await;
    let repo = register(&gh, "repos/o/r", "repo-runner", &["big"]).await;

    let bad = Reg {
        id: org.id,
        secret: "nope".into(),
    };
    assert_eq!(acquire(&gh, &bad, 0).await.0, 401);
    let unknown = Reg {
        id: 999,
        secret: org.secret.clone(),
    };
    assert_eq!(acquire(&gh, &unknown, 0).await.0, 404);

    // Both online (oldest first: the org runner), then a repo job goes to the oldest.
    assert_eq!(acquire(&gh, &org, 0).await.0, 204);
    assert_eq!(acquire(&gh, &repo, 0).await.0, 204);
    let j1 = gh.enqueue_job("repos/o/r", &["big"], "one");
    assert_eq!(j1.runner_id, Some(org.id), "org runner serves its repos");
    let j2 = gh.enqueue_job("repos/o/r", &["big"], "two");
    assert_eq!(j2.runner_id, Some(repo.id));
    let j3 = gh.enqueue_job("repos/other/r", &["big"], "three");
    assert_eq!(j3.status, JobStatus::Queued);

    // Completing someone else's job is refused.
    assert_eq!(complete(&gh, &org, j2.id, "success", 0).await, 409);
    assert_eq!(complete(&gh, &org, j1.id, "success", 0).await, 200);
    assert_eq!(complete(&gh, &repo, j2.id, "cancelled", 130).await, 200);
    assert!(gh.live_runners().is_empty());
    assert_eq!(gh.jit_configs_issued().len(), 2);
}

#[tokio::test]
async fn control_endpoints() {
    let gh = FakeGithub::start(TOKEN).await.unwrap();
    let http = client();
    let url = gh.url();

    let r = http
        .post(format!("{url}/_fake/jobs"))
        .json(&json!({"scope": "repos/o/r", "labels": ["self-hosted"], "script": "echo hi", "timeout_secs": 9}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let job: Value = r.json().await.unwrap();
    assert_eq!(job["status"], "queued");
    assert_eq!(job["timeout_secs"], 9);
    for key in [
        "id",
        "scope",
        "labels",
        "script",
        "status",
        "conclusion",
        "runner_id",
        "runner_name",
        "exit_code",
        "output",
        "queued_at",
        "started_at",
        "completed_at",
    ] {
        assert!(job.get(key).is_some(), "job has no {key}");
    }
    let r = http
        .post(format!("{url}/_fake/jobs"))
        .json(&json!({"scope": "users/x", "labels": [], "script": ""}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let one: Value = http
        .get(format!("{url}/_fake/jobs/{}", job["id"]))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(one, job);
    let all: Value = http
        .get(format!("{url}/_fake/jobs"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(all.as_array().unwrap().len(), 1);
    assert_eq!(
        http.get(format!("{url}/_fake/jobs/77"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );

    register(&gh, "repos/o/r", "a", &["x"]).await;
    let runners: Value = http
        .get(format!("{url}/_fake/runners"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(runners["live"][0]["name"], "a");
    assert_eq!(runners["live"][0]["scope"], "repos/o/r");
    assert!(runners["live"][0].get("secret").is_none());
    assert_eq!(runners["created_total"], 1);
    assert_eq!(runners["deleted_total"], 0);
    assert_eq!(runners["jit_configs"].as_array().unwrap().len(), 1);

    // Faults over HTTP.
    let r = http
        .post(format!("{url}/_fake/faults"))
        .json(&json!({"method": "GET", "path_contains": "rate_limit", "status": 503, "times": 1, "headers": {"x-a": "b"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let r = http
        .get(format!("{url}/rate_limit"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["x-a"], "b");
    http.post(format!("{url}/_fake/faults"))
        .json(&json!({"status": 500, "times": 5}))
        .send()
        .await
        .unwrap();
    assert_eq!(gh.faults().len(), 1);
    assert_eq!(
        http.delete(format!("{url}/_fake/faults"))
            .send()
            .await
            .unwrap()
            .status(),
        204
    );
    assert!(gh.faults().is_empty());

    // Stats.
    let stats: Value = http
        .get(format!("{url}/_fake/stats"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        stats,
        json!({"api_calls": 2, "by_route": {"GET rate_limit": 1, "POST generate-jitconfig": 1}})
    );
    assert_eq!(
        http.post(format!("{url}/_fake/reset-stats"))
            .send()
            .await
            .unwrap()
            .status(),
        204
    );
    assert_eq!(gh.api_calls(), 0);

    // Rate limit at 0: API calls get 403 with remaining 0.
    let r = http
        .post(format!("{url}/_fake/rate-limit"))
        .json(&json!({"remaining": 0, "reset_in_secs": 30}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = http
        .get(format!("{url}/repos/o/r/actions/runners"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(r.headers()["x-ratelimit-remaining"], "0");
    assert_eq!(r.headers()["x-ratelimit-resource"], "core");
    gh.shutdown().await;
}

#[tokio::test]
async fn shutdown_ends_pending_long_polls() {
    let gh = FakeGithub::start(TOKEN).await.unwrap();
    let reg = register(&gh, "repos/o/r", "a", &["x"]).await;
    let url = gh.url();
    let poll = tokio::spawn(async move {
        client()
            .post(format!("{url}/_runner/{}/acquire?wait=60", reg.id))
            .header("Authorization", format!("RunnerToken {}", reg.secret))
            .send()
            .await
            .map(|r| r.status().as_u16())
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    gh.shutdown().await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    let status = tokio::time::timeout(Duration::from_secs(3), poll)
        .await
        .expect("poll ended")
        .unwrap();
    assert_eq!(status.ok(), Some(204));
}

/// Kills the child on drop, so a failed assertion leaves no process behind.
struct Child(std::process::Child);
impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn binary_announces_serves_and_stops_on_sigterm() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let token_file = dir.join("token");
    std::fs::write(&token_file, "bin-token\r\n").unwrap();
    let port_file = dir.join("port");
    let child = Command::new(env!("CARGO_BIN_EXE_fake-github"))
        .args(["--listen", "127.0.0.1:0", "--token-file"])
        .arg(&token_file)
        .arg("--port-file")
        .arg(&port_file)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut child = Child(child);
    let stdout = child.0.stdout.take().unwrap();
    let line = tokio::time::timeout(
        Duration::from_secs(10),
        tokio::task::spawn_blocking(move || {
            let mut line = String::new();
            BufReader::new(stdout).read_line(&mut line).map(|_| line)
        }),
    )
    .await
    .expect("announced in time")
    .unwrap()
    .unwrap();
    let url = line
        .trim_end()
        .strip_prefix("fake-github listening on ")
        .unwrap_or_else(|| panic!("unexpected line {line:?}"))
        .to_string();
    let port: u16 = std::fs::read_to_string(&port_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(url, format!("http://127.0.0.1:{port}"));

    let r = client()
        .get(format!("{url}/rate_limit"))
        .bearer_auth("bin-token")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "token file read without its line ending");

    let pid = child.0.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = child.0.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "did not stop on SIGTERM");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "{status:?}");
}

#[test]
fn binary_refuses_a_missing_token() {
    let out = Command::new(env!("CARGO_BIN_EXE_fake-github"))
        .args(["--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--token-file"), "{err}");
}
