//! Queued work of a repository, read from the REST API with conditional requests
//! (docs/scaling.md, "Label pools"): the workflow runs that are queued or in progress, and the
//! jobs of each. Every answer's `ETag` is kept by the caller and sent back as
//! `If-None-Match`; GitHub answers 304 when nothing changed, and a 304 does not count against
//! the rate limit.

use super::{Client, Error, PER_PAGE};
use crate::config::names::Scope;
use reqwest::{header, Method};
use serde::Deserialize;

/// An answer to a conditional request.
#[derive(Debug, Clone, PartialEq)]
pub enum Conditional<T> {
    /// Changed (or first asked): the value and its `ETag`.
    Modified { value: T, etag: Option<String> },
    /// 304: what the caller holds is current.
    NotModified,
}

/// A job of a workflow run, as far as sizing needs it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct RunJob {
    pub id: u64,
    pub status: String,
    #[serde(default)]
    pub labels: Vec<String>,
    #[serde(default)]
    pub runner_name: Option<String>,
    /// For the history (manager/record.rs): the job's run and name, when it was queued
    /// (`created_at`) and when a runner started it (RFC 3339).
    #[serde(default)]
    pub run_id: Option<u64>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub created_at: Option<String>,
    #[serde(default)]
    pub started_at: Option<String>,
}

#[derive(Deserialize)]
struct Runs {
    #[serde(default)]
    workflow_runs: Vec<RunId>,
}

#[derive(Deserialize)]
struct RunId {
    id: u64,
}

#[derive(Deserialize)]
struct Jobs {
    #[serde(default)]
    jobs: Vec<RunJob>,
}

fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, Error> {
    serde_json::from_slice(bytes).map_err(|e| Error::Decode(e.to_string()))
}

impl Client {
    async fn conditional<T: serde::de::DeserializeOwned>(
        &self,
        scope: &Scope,
        url: &str,
        etag: Option<&str>,
        what: &str,
    ) -> Result<Conditional<T>, Error> {
        let bearer = self.bearer(scope).await?;
        let answer = self
            .send_if_none_match(Method::GET, url, None, etag, &bearer.secret)
            .await?;
        if answer.0 == reqwest::StatusCode::UNAUTHORIZED {
            self.refused(&bearer);
        }
        let (status, headers, bytes) = answer;
        match status.as_u16() {
            304 => Ok(Conditional::NotModified),
            200 => Ok(Conditional::Modified {
                value: decode(&bytes)?,
                etag: headers
                    .get(header::ETAG)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string),
            }),
            _ => Err(Self::fail_plain(status, &bytes, what)),
        }
    }

    /// `GET /repos/o/r/actions/runs?status=STATUS`: the ids of the runs in that status (the
    /// newest 100).
    pub async fn runs_in_status(
        &self,
        scope: &Scope,
        status: &str,
        etag: Option<&str>,
    ) -> Result<Conditional<Vec<u64>>, Error> {
        let url = format!(
            "{}/{}/actions/runs?status={status}&per_page={PER_PAGE}",
            self.base,
            scope.api_path()
        );
        Ok(
            match self
                .conditional::<Runs>(scope, &url, etag, &scope.to_string())
                .await?
            {
                Conditional::Modified { value, etag } => Conditional::Modified {
                    value: value.workflow_runs.into_iter().map(|r| r.id).collect(),
                    etag,
                },
                Conditional::NotModified => Conditional::NotModified,
            },
        )
    }

    /// `GET /repos/o/r/actions/runs/{id}/jobs?filter=latest`: the run's jobs.
    pub async fn run_jobs(
        &self,
        scope: &Scope,
        run_id: u64,
        etag: Option<&str>,
    ) -> Result<Conditional<Vec<RunJob>>, Error> {
        let url = format!(
            "{}/{}/actions/runs/{run_id}/jobs?filter=latest&per_page={PER_PAGE}",
            self.base,
            scope.api_path()
        );
        Ok(
            match self
                .conditional::<Jobs>(scope, &url, etag, &format!("run {run_id}"))
                .await?
            {
                Conditional::Modified { value, etag } => Conditional::Modified {
                    value: value.jobs,
                    etag,
                },
                Conditional::NotModified => Conditional::NotModified,
            },
        )
    }
}
