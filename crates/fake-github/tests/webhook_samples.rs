//! The fake's `workflow_job` webhook payloads against deliveries GitHub really sent
//! (`shared/github-api/webhooks/workflow_job.<action>.<n>.json`, recorded payloads): for the
//! `queued`, `in_progress` and `completed` events of one job, every field of `workflow_job`
//! GitHub sends is there with the same JSON type, and the fake's slimmer `repository` and
//! `sender` carry only fields GitHub's have, with GitHub's types. podrunner's receiver reads
//! `action`, `workflow_job.labels` and `repository.full_name` (docs/scaling.md).

use std::path::PathBuf;

use fake_github::state::JitRequest;
use fake_github::{Conclusion, State};
use serde_json::Value;

fn samples_dir() -> PathBuf {
    let shared = std::env::var_os("PODRUNNER_SHARED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared"));
    shared.join("github-api/webhooks")
}

/// GitHub's payloads for `action`.
fn samples(action: &str) -> Vec<Value> {
    let dir = samples_dir();
    let mut out = Vec::new();
    for e in std::fs::read_dir(&dir)
        .unwrap_or_else(|e| {
            panic!(
                "cannot read {} ({e}); set PODRUNNER_SHARED_DIR to the shared/ folder",
                dir.display()
            )
        })
        .flatten()
    {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with(&format!("workflow_job.{action}.")) {
            let text = std::fs::read_to_string(e.path()).unwrap();
            out.push(serde_json::from_str(&text).unwrap());
        }
    }
    out
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "number",
        Value::Number(_) => "integer",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Differences between the fake's object and GitHub's (several recorded deliveries, which
/// differ a little with their age): fields every delivery has that the fake lacks (when
/// `all_of_github` holds), fields the fake sends that none has, and types that differ from
/// a delivery's where neither is null.
fn compare(at: &str, fake: &Value, github: &[&Value], all_of_github: bool, errs: &mut Vec<String>) {
    let Some(f) = fake.as_object() else {
        errs.push(format!("{at}: not an object"));
        return;
    };
    let g: Vec<&serde_json::Map<String, Value>> =
        github.iter().filter_map(|g| g.as_object()).collect();
    for (k, v) in f {
        let theirs: Vec<&Value> = g.iter().filter_map(|g| g.get(k)).collect();
        if theirs.is_empty() {
            errs.push(format!("{at}.{k}: GitHub sends no such field"));
        }
        for gv in theirs {
            let (fk, gk) = (kind(v), kind(gv));
            if fk != gk && fk != "null" && gk != "null" {
                errs.push(format!("{at}.{k}: {fk}, GitHub sends {gk}"));
            }
        }
    }
    if all_of_github {
        if let Some(first) = g.first() {
            for k in first.keys() {
                if g.iter().all(|o| o.contains_key(k)) && !f.contains_key(k) {
                    errs.push(format!("{at}.{k}: missing"));
                }
            }
        }
    }
}

#[test]
fn workflow_job_payloads_match_what_github_sends() {
    let mut st = State::new("ghp_token", "http://127.0.0.1:9");
    st.webhooks.hooks.push(fake_github::webhooks::Hook {
        url: "http://127.0.0.1:9/hook".into(),
        secret: "s".into(),
    });
    let job = st.enqueue_job(
        "repos/octo/hello",
        vec!["self-hosted".into(), "linux".into()],
        "true",
        None,
    );
    let (runner, _) = st
        .create_runner(
            "repos/octo/hello",
            &JitRequest {
                name: "r1".into(),
                runner_group_id: 1,
                labels: vec!["self-hosted".into(), "linux".into()],
                work_folder: "_work".into(),
            },
        )
        .unwrap();
    st.runner_online(runner.id);
    st.complete_job(runner.id, job.id, Conclusion::Success, Some(0), None)
        .unwrap();
    let sent: Vec<(String, Value)> = st
        .webhooks
        .outbox
        .iter()
        .map(|(a, _, b)| (a.clone(), b.clone()))
        .collect();
    let actions: Vec<&str> = sent.iter().map(|(a, _)| a.as_str()).collect();
    assert_eq!(actions, ["queued", "in_progress", "completed"]);

    let mut errs = Vec::new();
    for (action, body) in &sent {
        let github = samples(action);
        assert!(!github.is_empty(), "no recorded {action} delivery");
        let all: Vec<&Value> = github.iter().collect();
        let part = |p: &str| -> Vec<&Value> { github.iter().map(|g| &g[p]).collect() };
        compare(action, body, &all, false, &mut errs);
        compare(
            &format!("{action}.workflow_job"),
            &body["workflow_job"],
            &part("workflow_job"),
            true,
            &mut errs,
        );
        for p in ["repository", "sender"] {
            compare(
                &format!("{action}.{p}"),
                &body[p],
                &part(p),
                false,
                &mut errs,
            );
        }
        assert_eq!(body["action"], action.as_str());
        assert_eq!(body["workflow_job"]["status"], action.as_str());
        assert_eq!(body["repository"]["full_name"], "octo/hello");
        assert_eq!(body["workflow_job"]["labels"][1], "linux");
    }
    errs.sort();
    errs.dedup();
    assert!(errs.is_empty(), "{}", errs.join("\n"));
}
