//! The fake's `workflow_job` webhook payloads against what GitHub's deliveries carry
//! (`tests/data/workflow-job-shapes.json`: the field names and JSON types of recorded
//! deliveries, per action; docs/webhook-shapes.md): for the `queued`, `in_progress` and
//! `completed` events of one job, every field of `workflow_job` that each recorded delivery
//! has is there with a type GitHub used, and the fake's slimmer payload, `repository` and
//! `sender` carry only fields GitHub's have, with GitHub's types. podrunner's receiver reads
//! `action`, `workflow_job.labels` and `repository.full_name` (docs/scaling.md).

use fake_github::state::JitRequest;
use fake_github::{Conclusion, State};
use serde_json::Value;

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

/// Differences between the fake's object and GitHub's `shape` (`types`: field -> JSON types
/// seen; `in_every_delivery`): fields every delivery has that the fake lacks (when
/// `all_of_github` holds), fields the fake sends that no delivery has, and types no delivery
/// used (null aside: GitHub leaves many fields null until they apply).
fn compare(at: &str, fake: &Value, shape: &Value, all_of_github: bool, errs: &mut Vec<String>) {
    let Some(f) = fake.as_object() else {
        errs.push(format!("{at}: not an object"));
        return;
    };
    for (k, v) in f {
        match shape["types"][k].as_array() {
            None => errs.push(format!("{at}.{k}: GitHub sends no such field")),
            Some(kinds) => {
                let k_of = kind(v);
                if k_of != "null" && !kinds.iter().any(|x| x == k_of) {
                    errs.push(format!("{at}.{k}: {k_of}, GitHub sends {kinds:?}"));
                }
            }
        }
    }
    if all_of_github {
        for k in shape["in_every_delivery"].as_array().unwrap() {
            if !f.contains_key(k.as_str().unwrap()) {
                errs.push(format!("{at}.{}: missing", k.as_str().unwrap()));
            }
        }
    }
}

#[test]
fn workflow_job_payloads_match_what_github_sends() {
    let mut st = State::new(
        "ghp_token",
        "http://127.0.0.1:9",
        fake_github::clock::Clock::fixed(1_700_000_000_000),
        fake_github::clock::Tokens::seeded(1),
    );
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

    let shapes: Value =
        serde_json::from_str(include_str!("data/workflow-job-shapes.json")).unwrap();
    let mut errs = Vec::new();
    for (action, body) in &sent {
        let shape = &shapes["actions"][action.as_str()];
        assert!(shape.is_object(), "no recorded {action} delivery");
        compare(action, body, &shape["payload"], false, &mut errs);
        compare(
            &format!("{action}.workflow_job"),
            &body["workflow_job"],
            &shape["workflow_job"],
            true,
            &mut errs,
        );
        for p in ["repository", "sender"] {
            compare(
                &format!("{action}.{p}"),
                &body[p],
                &shape[p],
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
