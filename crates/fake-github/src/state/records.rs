//! The records the fake keeps: runner registrations and their labels, and the jobs of its
//! queue.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// `read-only` (added by GitHub) or `custom` (from the JIT request).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LabelKind {
    ReadOnly,
    Custom,
}

/// One runner label, GitHub's `runner-label` schema.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Label {
    pub id: u64,
    pub name: String,
    #[serde(rename = "type")]
    pub kind: LabelKind,
}

/// `online` after the runner's first acquire, `offline` before.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunnerStatus {
    Online,
    Offline,
}

/// A runner registration: GitHub's `runner` fields plus the fake's bookkeeping.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RunnerRecord {
    pub id: u64,
    pub name: String,
    pub os: String,
    pub status: RunnerStatus,
    pub busy: bool,
    pub ephemeral: bool,
    pub runner_group_id: i64,
    pub labels: Vec<Label>,
    pub version: Option<String>,
    /// `repos/{owner}/{repo}` or `orgs/{org}`, as given in the creating request's path.
    pub scope: String,
    pub work_folder: String,
    /// The job assigned to this runner, if any.
    pub job_id: Option<u64>,
    /// Unix ms of the generate-jitconfig call.
    pub created_at: u64,
    /// Unix ms of the runner's first acquire (it is registered and waiting for a job).
    pub online_at: Option<u64>,
    /// Unix ms of its removal (only set in `State::history`).
    pub deleted_at: Option<u64>,
    /// The runner's secret (`Authorization: RunnerToken <secret>`); never serialized.
    #[serde(skip)]
    pub secret: String,
}

impl RunnerRecord {
    /// The registration as the GitHub API shows it (the `runner` schema).
    pub fn api_json(&self) -> Value {
        json!({
            "id": self.id,
            "name": self.name,
            "os": self.os,
            "status": self.status,
            "busy": self.busy,
            "ephemeral": self.ephemeral,
            "runner_group_id": self.runner_group_id,
            "labels": self.labels,
            "version": self.version,
        })
    }

    /// Label names, for matching.
    pub fn label_names(&self) -> Vec<&str> {
        self.labels.iter().map(|l| l.name.as_str()).collect()
    }
}

/// Lifecycle of a job in the fake's queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    Queued,
    InProgress,
    Completed,
}

/// How a job ended, as reported by the runner.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Conclusion {
    Success,
    Failure,
    Cancelled,
}

/// A job in the fake's queue (`/_fake/jobs`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobRecord {
    pub id: u64,
    pub scope: String,
    pub labels: Vec<String>,
    pub script: String,
    pub timeout_secs: u64,
    pub status: JobStatus,
    pub conclusion: Option<Conclusion>,
    pub runner_id: Option<u64>,
    pub runner_name: Option<String>,
    pub exit_code: Option<i64>,
    pub output: Option<String>,
    pub queued_at: u64,
    pub started_at: Option<u64>,
    pub completed_at: Option<u64>,
}
