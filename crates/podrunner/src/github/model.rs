//! What the runner endpoints send and return: runners, groups, JIT configs, the probe of
//! `doctor`, rate-limit figures, and the [`Error`] of a call. No I/O here.

use super::diagnose::Diagnosis;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// A string that must never be printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: String) -> Secret {
        Secret(s)
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct RunnerLabel {
    pub name: String,
}

/// A runner registration as GitHub lists it.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct Runner {
    pub id: u64,
    pub name: String,
    #[serde(default)]
    pub os: String,
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub busy: bool,
    #[serde(default)]
    pub labels: Vec<RunnerLabel>,
}

#[derive(Deserialize)]
pub(super) struct RunnerList {
    #[serde(default)]
    pub(super) runners: Vec<Runner>,
}

#[derive(Deserialize)]
pub(super) struct JitResponse {
    pub(super) runner: Runner,
    pub(super) encoded_jit_config: String,
}

/// What [`Client::probe_runners`] saw.
#[derive(Debug, Clone, PartialEq)]
pub struct Probe {
    pub status: u16,
    /// Classic personal access tokens list their scopes here; fine-grained tokens and apps
    /// send no such header.
    pub oauth_scopes: Option<String>,
    pub message: String,
    /// For a refusal: what the credential is and lacks, with the fix.
    pub diagnosis: Option<Diagnosis>,
    /// `X-GitHub-Enterprise-Version` (GHES only).
    pub server_version: Option<String>,
}

/// A runner group as `GET .../actions/runner-groups` lists it.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct RunnerGroup {
    pub id: u64,
    pub name: String,
}

/// What generate-jitconfig gives back.
#[derive(Debug)]
pub struct JitConfig {
    pub runner: Runner,
    pub encoded: Secret,
}

#[derive(Debug, Serialize)]
pub(super) struct JitRequest<'a> {
    pub(super) name: &'a str,
    pub(super) runner_group_id: u64,
    pub(super) labels: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) work_folder: Option<&'a str>,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("GitHub answered 409: a runner named {0:?} already exists")]
    Conflict(String),
    #[error("GitHub answered 404 for {0}")]
    NotFound(String),
    #[error("GitHub refused to delete runner {0}: it is still running a job (422)")]
    StillBusy(u64),
    /// 401, judged by [`diagnose::diagnose`].
    #[error("{0}")]
    Unauthorized(Diagnosis),
    /// 403 that is not a rate limit, judged by [`diagnose::diagnose`].
    #[error("{0}")]
    Forbidden(Diagnosis),
    /// The credentials cannot serve a call (an App's key, an enterprise pool without a token,
    /// no installation for a repository).
    #[error("{0}")]
    Auth(String),
    #[error("runner group {name:?} does not exist in {scope}; its runner groups are: {}\n  fix: set runner_group to one of them (names are compared without regard to case), or create the group in the {scope} settings > Actions > Runner groups", .existing.join(", "))]
    NoSuchRunnerGroup {
        name: String,
        scope: String,
        existing: Vec<String>,
    },
    /// A GitHub Enterprise Server too old for a feature.
    #[error("{0}")]
    Unsupported(super::ghes::TooOld),
    #[error("GitHub's rate limit is exhausted; retrying after {}s", .0.as_secs())]
    RateLimited(Duration),
    #[error("GitHub answered {status}: {message}")]
    Http { status: u16, message: String },
    #[error("cannot reach GitHub at {url}: {message}")]
    Transport { url: String, message: String },
    #[error("GitHub's answer could not be read: {0}")]
    Decode(String),
}

impl Error {
    /// Whether trying again later can help.
    pub fn is_transient(&self) -> bool {
        matches!(self, Error::RateLimited(_) | Error::Transport { .. })
            || matches!(self, Error::Http { status, .. } if *status >= 500)
    }
}

/// The rate-limit figures of the last answer.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq)]
pub struct RateLimit {
    pub limit: Option<u64>,
    pub remaining: Option<u64>,
    /// Epoch seconds.
    pub reset: Option<u64>,
}

/// One page of `GET .../actions/runners`: `{total_count, runners: [...]}`.
pub fn parse_runner_list(bytes: &[u8]) -> Result<Vec<Runner>, Error> {
    serde_json::from_slice::<RunnerList>(bytes)
        .map(|p| p.runners)
        .map_err(|e| Error::Decode(e.to_string()))
}

/// GitHub's error bodies carry `message`; fall back to the raw text.
pub(super) fn error_message(bytes: &[u8]) -> String {
    #[derive(Deserialize)]
    struct E {
        message: String,
    }
    match serde_json::from_slice::<E>(bytes) {
        Ok(e) => e.message,
        Err(_) => String::from_utf8_lossy(bytes).chars().take(200).collect(),
    }
}
