//! Just-in-time runners: the generate-jitconfig request as GitHub validates it, and the
//! encoded JIT config the fake runner reads.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use serde_json::{json, Value};

use super::RunnerRecord;

/// Most custom labels a JIT request may carry (GitHub's `maxItems`).
pub const MAX_JIT_LABELS: usize = 100;

/// A validated generate-jitconfig request body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JitRequest {
    pub name: String,
    pub runner_group_id: i64,
    pub labels: Vec<String>,
    pub work_folder: String,
}

/// Validates a generate-jitconfig body like GitHub's schema (`name`, `runner_group_id`,
/// `labels` 1..=100 strings required; `work_folder` optional, default `_work`). The error
/// list holds one human-readable message per problem.
pub fn validate_jit_request(body: &Value) -> Result<JitRequest, Vec<String>> {
    let Some(obj) = body.as_object() else {
        return Err(vec![format!(
            "For 'links/0/schema', {body} is not an object."
        )]);
    };
    let mut errors = Vec::new();
    let name = match obj.get("name") {
        None => {
            errors.push("\"name\" wasn't supplied.".to_string());
            None
        }
        Some(Value::String(s)) if !s.trim().is_empty() => Some(s.clone()),
        Some(Value::String(_)) => {
            errors.push("\"name\" can't be blank.".to_string());
            None
        }
        Some(v) => {
            errors.push(format!("For 'properties/name', {v} is not a string."));
            None
        }
    };
    let group = match obj.get("runner_group_id") {
        None => {
            errors.push("\"runner_group_id\" wasn't supplied.".to_string());
            None
        }
        Some(v) => match v.as_i64() {
            Some(n) => Some(n),
            None => {
                errors.push(format!(
                    "For 'properties/runner_group_id', {v} is not an integer."
                ));
                None
            }
        },
    };
    let labels = match obj.get("labels") {
        None => {
            errors.push("\"labels\" wasn't supplied.".to_string());
            None
        }
        Some(Value::Array(items)) => {
            if items.is_empty() {
                errors.push("For 'properties/labels', [] has fewer items than 1.".to_string());
                None
            } else if items.len() > MAX_JIT_LABELS {
                errors.push(format!(
                    "For 'properties/labels', {} items is more than {MAX_JIT_LABELS}.",
                    items.len()
                ));
                None
            } else {
                let mut out = Vec::new();
                for item in items {
                    match item {
                        Value::String(s) if !s.trim().is_empty() => out.push(s.clone()),
                        other => {
                            errors.push(format!("For 'items', {other} is not a non-empty string."))
                        }
                    }
                }
                Some(out)
            }
        }
        Some(v) => {
            errors.push(format!("For 'properties/labels', {v} is not an array."));
            None
        }
    };
    let work_folder = match obj.get("work_folder") {
        None | Some(Value::Null) => "_work".to_string(),
        Some(Value::String(s)) => s.clone(),
        Some(v) => {
            errors.push(format!(
                "For 'properties/work_folder', {v} is not a string."
            ));
            String::new()
        }
    };
    match (name, group, labels) {
        (Some(name), Some(runner_group_id), Some(labels)) if errors.is_empty() => Ok(JitRequest {
            name,
            runner_group_id,
            labels,
            work_folder,
        }),
        _ => Err(errors),
    }
}

/// The `encoded_jit_config` for a registration (format: docs/test-bench.md, "The JIT config").
pub fn encode_jit_config(runner: &RunnerRecord, server_url: &str) -> String {
    let dot_runner = json!({
        "agentId": runner.id,
        "agentName": runner.name,
        "poolId": 1,
        "poolName": "Default",
        "serverUrl": server_url,
        "gitHubUrl": server_url,
        "workFolder": runner.work_folder,
        "ephemeral": true,
        "disableUpdate": true,
    });
    let credentials = json!({"scheme": "OAuthAccessToken", "data": {"token": runner.secret}});
    let files = json!({
        ".runner": B64.encode(dot_runner.to_string()),
        ".credentials": B64.encode(credentials.to_string()),
        ".credentials_rsaparams": B64.encode("{}"),
    });
    B64.encode(files.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jit_request_validation() {
        let ok = validate_jit_request(&json!({"name": "a", "runner_group_id": 1, "labels": ["x"]}));
        assert_eq!(
            ok,
            Ok(JitRequest {
                name: "a".into(),
                runner_group_id: 1,
                labels: vec!["x".into()],
                work_folder: "_work".into()
            })
        );
        let bad = [
            json!([]),
            json!({"runner_group_id": 1, "labels": ["x"]}),
            json!({"name": "", "runner_group_id": 1, "labels": ["x"]}),
            json!({"name": "a", "labels": ["x"]}),
            json!({"name": "a", "runner_group_id": "1", "labels": ["x"]}),
            json!({"name": "a", "runner_group_id": 1}),
            json!({"name": "a", "runner_group_id": 1, "labels": []}),
            json!({"name": "a", "runner_group_id": 1, "labels": [1]}),
            json!({"name": "a", "runner_group_id": 1, "labels": vec!["l"; 101]}),
            json!({"name": "a", "runner_group_id": 1, "labels": ["x"], "work_folder": 3}),
        ];
        for body in bad {
            let err = validate_jit_request(&body).expect_err(&body.to_string());
            assert!(!err.is_empty(), "{body}");
        }
    }
}
