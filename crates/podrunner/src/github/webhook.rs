//! `workflow_job` webhooks, checked (docs/scaling.md, "Polling and webhooks"): the
//! `X-Hub-Signature-256` HMAC-SHA256 of the raw body with the shared secret, compared in
//! constant time; deliveries seen once (GitHub sends the same `X-GitHub-Delivery` again on a
//! redelivery); and the few fields sizing needs. Pure: the receiver (manager/webhook.rs)
//! answers HTTP and wakes the poller, which stays the source of truth.

use serde::Deserialize;
use std::collections::{BTreeSet, VecDeque};

/// Deliveries remembered for de-duplication: GitHub redelivers by hand, within days, and
/// a repository's busiest hour sends far fewer events than this.
pub const REMEMBERED_DELIVERIES: usize = 4096;

fn hex_decode(s: &str) -> Option<Vec<u8>> {
    if s.len() & 1 == 1 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Whether `header` (`sha256=<hex>`) is the HMAC-SHA256 of `body` under `secret`. The
/// comparison takes the same time wherever the bytes differ (ring's `hmac::verify`).
pub fn signature_valid(secret: &[u8], body: &[u8], header: Option<&str>) -> bool {
    let Some(sig) = header.and_then(|h| h.trim().strip_prefix("sha256=")) else {
        return false;
    };
    let Some(tag) = hex_decode(sig) else {
        return false;
    };
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
    ring::hmac::verify(&key, body, &tag).is_ok()
}

/// The delivery ids seen lately.
#[derive(Debug, Default)]
pub struct Deliveries {
    order: VecDeque<String>,
    seen: BTreeSet<String>,
}

impl Deliveries {
    /// True the first time an id is seen; false for a redelivery.
    pub fn first_time(&mut self, id: &str) -> bool {
        if !self.seen.insert(id.to_string()) {
            return false;
        }
        self.order.push_back(id.to_string());
        if self.order.len() > REMEMBERED_DELIVERIES {
            if let Some(old) = self.order.pop_front() {
                self.seen.remove(&old);
            }
        }
        true
    }
}

/// What sizing reads from a `workflow_job` event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkflowJob {
    /// `queued`, `in_progress`, `completed`, `waiting`.
    pub action: String,
    /// The job's `runs-on` labels.
    pub labels: Vec<String>,
    /// `owner/repo`.
    pub repository: String,
}

/// Parses a `workflow_job` payload.
pub fn parse_workflow_job(body: &[u8]) -> Result<WorkflowJob, serde_json::Error> {
    #[derive(Deserialize)]
    struct Job {
        #[serde(default)]
        labels: Vec<String>,
    }
    #[derive(Deserialize)]
    struct Repo {
        full_name: String,
    }
    #[derive(Deserialize)]
    struct Event {
        action: String,
        workflow_job: Job,
        repository: Repo,
    }
    let e: Event = serde_json::from_slice(body)?;
    Ok(WorkflowJob {
        action: e.action,
        labels: e.workflow_job.labels,
        repository: e.repository.full_name,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn githubs_test_vector() {
        // GitHub's documented example of a valid signature.
        let secret = b"It's a Secret to Everybody";
        let body = b"Hello, World!";
        let good = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        assert!(signature_valid(secret, body, Some(good)));
        assert!(!signature_valid(secret, b"Hello, World?", Some(good)));
        assert!(!signature_valid(b"another secret", body, Some(good)));
        let flipped = good.replace("e17", "e18");
        assert!(!signature_valid(secret, body, Some(&flipped)));
        assert!(!signature_valid(
            secret,
            body,
            Some(&good[..good.len() - 2])
        ));
        assert!(!signature_valid(secret, body, Some("sha1=757107ea")));
        assert!(!signature_valid(secret, body, Some("sha256=zz")));
        assert!(!signature_valid(secret, body, None));
    }

    #[test]
    fn redeliveries_are_seen_once_and_memory_is_bounded() {
        let mut d = Deliveries::default();
        assert!(d.first_time("a"));
        assert!(!d.first_time("a"));
        for i in 0..REMEMBERED_DELIVERIES {
            assert!(d.first_time(&i.to_string()));
        }
        assert_eq!(d.seen.len(), REMEMBERED_DELIVERIES);
        assert!(d.first_time("a"), "the oldest id was forgotten");
    }

    #[test]
    fn workflow_job_fields() {
        let body = br#"{"action":"queued","workflow_job":{"id":1,"labels":["self-hosted","gpu"],"runner_id":null},"repository":{"full_name":"octo/hello"},"sender":{}}"#;
        assert_eq!(
            parse_workflow_job(body).unwrap(),
            WorkflowJob {
                action: "queued".into(),
                labels: vec!["self-hosted".into(), "gpu".into()],
                repository: "octo/hello".into(),
            }
        );
        assert!(parse_workflow_job(b"{\"zen\":\"ping\"}").is_err());
    }
}
