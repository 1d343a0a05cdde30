//! `workflow_job` webhook delivery (docs/test-bench.md, "Webhooks"): every queued, started and
//! completed job is sent to each registered URL as GitHub sends it: `X-GitHub-Event`,
//! `X-GitHub-Delivery` (a GUID), `X-Hub-Signature-256` (HMAC-SHA256 of the body with the
//! hook's secret) and a payload with `action`, `workflow_job` (`labels` = `runs-on`) and
//! `repository`. Tests may drop the next deliveries (`drop_next`) to imitate a delivery
//! GitHub failed and, as GitHub does, never retries.

use std::sync::Arc;

use serde_json::{json, Value};

use crate::http::Shared;
use crate::runs::job_json;
use crate::state::JobRecord;

/// A registered webhook.
#[derive(Clone, Debug)]
pub struct Hook {
    pub url: String,
    pub secret: String,
}

/// One delivery as the log keeps it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delivery {
    pub id: String,
    pub action: String,
    pub job_id: u64,
    /// The receiver's status; 0 when dropped or unreachable.
    pub status: u16,
}

/// Webhook data inside `State`.
#[derive(Debug, Default)]
pub struct Webhooks {
    pub hooks: Vec<Hook>,
    /// Payloads waiting to be sent: (action, job id, body).
    pub outbox: Vec<(String, u64, Value)>,
    /// So many of the next deliveries are dropped.
    pub drop_next: u32,
    pub log: Vec<Delivery>,
}

impl Webhooks {
    /// Queues a `workflow_job` event for every hook.
    pub fn job_event(&mut self, action: &str, job: &JobRecord, server_url: &str) {
        if self.hooks.is_empty() {
            return;
        }
        let (owner, repo) = job
            .scope
            .strip_prefix("repos/")
            .and_then(|r| r.split_once('/'))
            .unwrap_or(("", ""));
        if repo.is_empty() {
            return;
        }
        let mut workflow_job = job_json(server_url, owner, repo, job);
        // GitHub's deliveries carry these too (tests/webhook_samples.rs): each fake job is
        // its run's first attempt, with no steps reported.
        workflow_job["run_attempt"] = json!(1);
        workflow_job["steps"] = json!([]);
        let body = json!({
            "action": action,
            "workflow_job": workflow_job,
            "repository": {"id": 1296269, "name": repo, "full_name": format!("{owner}/{repo}"),
                           "owner": {"login": owner}},
            "sender": {"login": owner},
        });
        self.outbox.push((action.to_string(), job.id, body));
    }
}

/// `sha256=<hex>` of the body under the secret.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    let tag = ring::hmac::sign(&key, body);
    let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

/// Delivers what the outbox holds, until the server stops. Spawned by `FakeGithub::start`.
pub async fn deliver(sh: Arc<Shared>) {
    let http = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .expect("an HTTP client");
    loop {
        let notified = sh.notify.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let (hooks, batch, tokens) = {
            let mut st = sh.lock();
            (
                st.webhooks.hooks.clone(),
                std::mem::take(&mut st.webhooks.outbox),
                st.tokens.clone(),
            )
        };
        for (action, job_id, body) in batch {
            let bytes = body.to_string().into_bytes();
            for h in &hooks {
                let id = tokens.token(32);
                let dropped = sh.mutate(|st| {
                    let d = st.webhooks.drop_next > 0;
                    st.webhooks.drop_next = st.webhooks.drop_next.saturating_sub(1);
                    d
                });
                let status = if dropped {
                    0
                } else {
                    http.post(&h.url)
                        .header("X-GitHub-Event", "workflow_job")
                        .header("X-GitHub-Delivery", &id)
                        .header("X-Hub-Signature-256", signature(&h.secret, &bytes))
                        .header("Content-Type", "application/json")
                        .body(bytes.clone())
                        .send()
                        .await
                        .map(|r| r.status().as_u16())
                        .unwrap_or(0)
                };
                sh.mutate(|st| {
                    st.webhooks.log.push(Delivery {
                        id,
                        action: action.clone(),
                        job_id,
                        status,
                    })
                });
            }
        }
        if sh.is_shutting_down() {
            return;
        }
        notified.await;
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn githubs_test_vector() {
        assert_eq!(
            super::signature("It's a Secret to Everybody", b"Hello, World!"),
            "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
        );
    }
}
