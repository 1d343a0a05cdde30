//! The fake's state and its decision logic, free of I/O.
//!
//! Owns: runner registrations and the job queue (here), and through its parts the records
//! (`records`), fault rules and the rate-limit budget (`faults`), pagination (`paging`),
//! matching runners to jobs (`matching`) and just-in-time runner configs (`jit`). Everything
//! is plain data plus functions of it, so it is tested with plain values; the time and the
//! random strings come in through [`Clock`] and [`Tokens`], which the server makes and unit
//! tests fix. The HTTP layer (`http.rs`) locks [`State`] briefly, calls into it and never
//! holds the lock across an `.await`.

mod faults;
mod jit;
mod matching;
mod paging;
mod records;

use std::collections::BTreeMap;

pub use crate::clock::{rfc3339, Clock, Tokens};
pub use faults::*;
pub use jit::*;
pub use matching::*;
pub use paging::*;
pub use records::*;

/// Labels every self-hosted Linux x64 runner gets from GitHub, type `read-only`.
pub const READ_ONLY_LABELS: [&str; 3] = ["self-hosted", "linux", "x64"];
/// Registration tokens are valid one hour (docs/github-runner.md).
pub const REGISTRATION_TOKEN_TTL_SECS: u64 = 3600;
/// Job timeout handed to the fake runner when the test does not set one.
pub const DEFAULT_JOB_TIMEOUT_SECS: u64 = 600;
/// The `version` a registration reports once its runner has connected (null before).
pub const FAKE_RUNNER_VERSION: &str = "2.330.0";
/// Runner group every registration lands in unless the request names another id.
pub const DEFAULT_RUNNER_GROUP_ID: i64 = 1;
/// `documentation_url` of runner-endpoint errors, as GitHub sends it.
pub const DOCS_RUNNERS: &str = "https://docs.github.com/rest/actions/self-hosted-runners";
/// `documentation_url` of authentication errors.
pub const DOCS_AUTH: &str = "https://docs.github.com/rest";
/// `documentation_url` of rate-limit errors.
pub const DOCS_RATE_LIMIT: &str =
    "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api";

/// Why a runner registration could not be created.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CreateError {
    /// A live registration with that name exists in the scope (409).
    NameExists(String),
    /// The organization or enterprise has no runner group with this id (404).
    NoSuchGroup(i64),
}

/// Why a runner registration could not be deleted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeleteError {
    NotFound,
    /// The runner runs a job (422); carries its name.
    Busy(String),
}

/// Everything the fake knows. Lives behind `Arc<Mutex<State>>`; lock briefly, never across
/// an `.await`.
#[derive(Debug)]
pub struct State {
    /// The API token requests must carry.
    pub token: String,
    /// Base URL written into JIT configs (`serverUrl`, `gitHubUrl`), no trailing slash.
    pub server_url: String,
    /// Live registrations by id; ids grow, so iteration order is age order.
    pub runners: BTreeMap<u64, RunnerRecord>,
    pub next_runner_id: u64,
    custom_label_ids: BTreeMap<String, u64>,
    next_label_id: u64,
    pub jobs: BTreeMap<u64, JobRecord>,
    pub next_job_id: u64,
    pub faults: Vec<FaultRule>,
    pub created_total: u64,
    pub deleted_total: u64,
    pub jit_configs: Vec<String>,
    /// Every removed registration, with `deleted_at` set (benchmarks read timings from it).
    pub history: Vec<RunnerRecord>,
    pub api_calls: u64,
    pub by_route: BTreeMap<String, u64>,
    pub rate: RateLimit,
    /// The runner scale set service (scaleset.rs).
    pub scalesets: crate::scaleset::Service,
    /// `workflow_job` webhooks (webhooks.rs).
    pub webhooks: crate::webhooks::Webhooks,
    /// Tokens, Apps and installations besides `token` (auth.rs).
    pub auth: crate::auth::Registry,
    /// Runner groups added per organization or enterprise scope, besides "Default" (id 1).
    pub runner_groups: BTreeMap<String, Vec<(i64, String)>>,
    next_group_id: i64,
    /// `Some`: behave as a GitHub Enterprise Server of this version (API under `/api/v3`,
    /// `X-GitHub-Enterprise-Version` on every answer).
    pub ghes_version: Option<String>,
    /// The time every timestamp, expiry and budget reset is read from.
    pub clock: Clock,
    /// Where secrets, tokens and ids come from.
    pub tokens: Tokens,
}

/// Why a change to a job was refused; the text is the message the fake answers with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JobRefused {
    #[error("runner not found")]
    NoRunner,
    #[error("job not found")]
    NoJob,
    #[error("job {job} is not assigned to runner {runner}")]
    NotAssigned { job: u64, runner: u64 },
    #[error("job {0} is not queued")]
    NotQueued(u64),
}

impl State {
    /// A fresh state on `clock` and `tokens`: the server passes the system clock and
    /// entropy, unit tests a fixed clock and a seed.
    pub fn new(token: &str, server_url: &str, clock: Clock, tokens: Tokens) -> Self {
        State {
            token: token.to_string(),
            server_url: server_url.trim_end_matches('/').to_string(),
            runners: BTreeMap::new(),
            next_runner_id: 1,
            custom_label_ids: BTreeMap::new(),
            next_label_id: READ_ONLY_LABELS.len() as u64 + 1,
            jobs: BTreeMap::new(),
            next_job_id: 1,
            faults: Vec::new(),
            created_total: 0,
            deleted_total: 0,
            jit_configs: Vec::new(),
            history: Vec::new(),
            api_calls: 0,
            by_route: BTreeMap::new(),
            rate: RateLimit::new(clock.now_secs()),
            scalesets: Default::default(),
            webhooks: Default::default(),
            auth: crate::auth::Registry::new(clock.clone(), tokens.clone()),
            runner_groups: BTreeMap::new(),
            next_group_id: DEFAULT_RUNNER_GROUP_ID + 1,
            ghes_version: None,
            clock,
            tokens,
        }
    }

    /// Adds a runner group named `name` to `scope` (`orgs/o` or `enterprises/e`); returns
    /// its id.
    pub fn add_runner_group(&mut self, scope: &str, name: &str) -> i64 {
        let id = self.next_group_id;
        self.next_group_id += 1;
        self.runner_groups
            .entry(scope.to_ascii_lowercase())
            .or_default()
            .push((id, name.to_string()));
        id
    }

    /// The runner groups of `scope`: "Default" (id 1) first.
    pub fn runner_groups_of(&self, scope: &str) -> Vec<(i64, String)> {
        let mut out = vec![(DEFAULT_RUNNER_GROUP_ID, "Default".to_string())];
        out.extend(
            self.runner_groups
                .get(&scope.to_ascii_lowercase())
                .cloned()
                .unwrap_or_default(),
        );
        out
    }

    fn label_id(&mut self, name: &str) -> u64 {
        let key = name.to_ascii_lowercase();
        if let Some(i) = READ_ONLY_LABELS.iter().position(|l| *l == key) {
            return i as u64 + 1;
        }
        if let Some(id) = self.custom_label_ids.get(&key) {
            return *id;
        }
        let id = self.next_label_id;
        self.next_label_id += 1;
        self.custom_label_ids.insert(key, id);
        id
    }

    /// Registers a JIT runner in `scope`; returns its record and encoded JIT config.
    pub fn create_runner(
        &mut self,
        scope: &str,
        req: &JitRequest,
    ) -> Result<(RunnerRecord, String), CreateError> {
        if !scope.starts_with("repos/")
            && !self
                .runner_groups_of(scope)
                .iter()
                .any(|(id, _)| *id == req.runner_group_id)
        {
            return Err(CreateError::NoSuchGroup(req.runner_group_id));
        }
        if self
            .runners
            .values()
            .any(|r| r.scope.eq_ignore_ascii_case(scope) && r.name.eq_ignore_ascii_case(&req.name))
        {
            return Err(CreateError::NameExists(req.name.clone()));
        }
        let mut labels: Vec<Label> = READ_ONLY_LABELS
            .iter()
            .map(|n| Label {
                id: self.label_id(n),
                name: n.to_string(),
                kind: LabelKind::ReadOnly,
            })
            .collect();
        for name in &req.labels {
            if labels.iter().any(|l| l.name.eq_ignore_ascii_case(name)) {
                continue;
            }
            labels.push(Label {
                id: self.label_id(name),
                name: name.clone(),
                kind: LabelKind::Custom,
            });
        }
        let id = self.next_runner_id;
        self.next_runner_id += 1;
        let runner = RunnerRecord {
            id,
            name: req.name.clone(),
            os: "linux".to_string(),
            status: RunnerStatus::Offline,
            busy: false,
            ephemeral: true,
            runner_group_id: req.runner_group_id,
            labels,
            version: None,
            scope: scope.to_string(),
            work_folder: req.work_folder.clone(),
            job_id: None,
            created_at: self.clock.now_ms(),
            online_at: None,
            deleted_at: None,
            secret: self.tokens.token(40),
        };
        let encoded = encode_jit_config(&runner, &self.server_url);
        self.runners.insert(id, runner.clone());
        self.jit_configs.push(encoded.clone());
        self.created_total += 1;
        Ok((runner, encoded))
    }

    /// Live registrations of exactly `scope`, oldest first, optionally of one exact name.
    pub fn runners_in_scope(&self, scope: &str, name: Option<&str>) -> Vec<&RunnerRecord> {
        self.runners
            .values()
            .filter(|r| r.scope.eq_ignore_ascii_case(scope))
            .filter(|r| name.map(|n| r.name == n).unwrap_or(true))
            .collect()
    }

    /// The registration `id` if it lives in `scope`.
    pub fn runner_in_scope(&self, scope: &str, id: u64) -> Option<&RunnerRecord> {
        self.runners
            .get(&id)
            .filter(|r| r.scope.eq_ignore_ascii_case(scope))
    }

    /// Deletes a registration through the API: refused while it runs a job.
    pub fn delete_runner(&mut self, scope: &str, id: u64) -> Result<RunnerRecord, DeleteError> {
        let runner = self
            .runner_in_scope(scope, id)
            .ok_or(DeleteError::NotFound)?;
        if runner.busy {
            return Err(DeleteError::Busy(runner.name.clone()));
        }
        let removed = self.remove_runner(id).ok_or(DeleteError::NotFound)?;
        Ok(removed)
    }

    /// Adds a job to the queue and dispatches. Returns the job as queued (or as assigned).
    pub fn enqueue_job(
        &mut self,
        scope: &str,
        labels: Vec<String>,
        script: &str,
        timeout_secs: Option<u64>,
    ) -> JobRecord {
        let id = self.next_job_id;
        self.next_job_id += 1;
        self.jobs.insert(
            id,
            JobRecord {
                id,
                scope: scope.to_string(),
                labels,
                script: script.to_string(),
                timeout_secs: timeout_secs.unwrap_or(DEFAULT_JOB_TIMEOUT_SECS),
                status: JobStatus::Queued,
                conclusion: None,
                runner_id: None,
                runner_name: None,
                exit_code: None,
                output: None,
                queued_at: self.clock.now_ms(),
                started_at: None,
                completed_at: None,
            },
        );
        let queued = self.jobs[&id].clone();
        self.scalesets.on_enqueue(&queued);
        self.webhooks.job_event("queued", &queued, &self.server_url);
        self.dispatch();
        self.jobs[&id].clone()
    }

    /// Marks a runner `online` (its first acquire) and dispatches.
    pub fn runner_online(&mut self, id: u64) -> bool {
        let Some(r) = self.runners.get_mut(&id) else {
            return false;
        };
        if r.status != RunnerStatus::Online {
            r.status = RunnerStatus::Online;
            r.online_at = Some(self.clock.now_ms());
            r.version = Some(FAKE_RUNNER_VERSION.to_string());
        }
        self.dispatch();
        true
    }

    /// Assigns queued jobs, oldest first, each to the oldest online, idle runner of a matching
    /// scope whose labels cover the job's. Returns how many jobs were assigned.
    pub fn dispatch(&mut self) -> usize {
        let now = self.clock.now_ms();
        let mut assigned = 0;
        let queued: Vec<u64> = self
            .jobs
            .values()
            .filter(|j| j.status == JobStatus::Queued)
            .map(|j| j.id)
            .collect();
        for job_id in queued {
            let job = &self.jobs[&job_id];
            let pick = self
                .runners
                .values()
                .find(|r| {
                    r.status == RunnerStatus::Online
                        && !r.busy
                        && r.job_id.is_none()
                        && scope_matches(&r.scope, &job.scope)
                        && labels_match(&r.label_names(), &job.labels)
                        && self.scalesets.may_take(job_id, r.id)
                })
                .map(|r| r.id);
            let Some(runner_id) = pick else { continue };
            let runner = self
                .runners
                .get_mut(&runner_id)
                .expect("picked runner exists");
            runner.busy = true;
            runner.job_id = Some(job_id);
            let job = self.jobs.get_mut(&job_id).expect("queued job exists");
            job.status = JobStatus::InProgress;
            job.runner_id = Some(runner_id);
            job.runner_name = Some(runner.name.clone());
            job.started_at = Some(now);
            let (job, name) = (job.clone(), runner.name.clone());
            self.scalesets.on_started(&job, runner_id, &name, now);
            self.webhooks
                .job_event("in_progress", &job, &self.server_url);
            assigned += 1;
        }
        assigned
    }

    /// The runner reports its job done: the job is completed and the (ephemeral) registration
    /// removed. Refused when the job is not this runner's.
    pub fn complete_job(
        &mut self,
        runner_id: u64,
        job_id: u64,
        conclusion: Conclusion,
        exit_code: Option<i64>,
        output: Option<String>,
    ) -> Result<JobRecord, JobRefused> {
        let runner = self.runners.get(&runner_id).ok_or(JobRefused::NoRunner)?;
        if runner.job_id != Some(job_id) {
            return Err(JobRefused::NotAssigned {
                job: job_id,
                runner: runner_id,
            });
        }
        let job = self.jobs.get_mut(&job_id).ok_or(JobRefused::NoJob)?;
        job.status = JobStatus::Completed;
        job.conclusion = Some(conclusion);
        job.exit_code = exit_code;
        job.output = output;
        job.completed_at = Some(self.clock.now_ms());
        let done = job.clone();
        self.scalesets.on_completed(&done, self.clock.now_ms());
        self.webhooks
            .job_event("completed", &done, &self.server_url);
        self.remove_runner(runner_id);
        Ok(done)
    }

    /// Removes a registration and keeps it in `history`.
    fn remove_runner(&mut self, id: u64) -> Option<RunnerRecord> {
        let mut r = self.runners.remove(&id)?;
        self.deleted_total += 1;
        r.deleted_at = Some(self.clock.now_ms());
        self.history.push(r.clone());
        Some(r)
    }
}

/// Where unit tests' fixed clock stands: 2023-11-14T22:13:20Z.
#[cfg(test)]
pub(crate) const TEST_EPOCH_MS: u64 = 1_700_000_000_000;

/// A state on a fixed clock and seeded tokens, for unit tests.
#[cfg(test)]
pub(crate) fn test_state() -> State {
    State::new(
        "t",
        "http://x",
        Clock::fixed(TEST_EPOCH_MS),
        Tokens::seeded(1),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dispatch_picks_oldest_matching_online_runner() {
        let mut st = test_state();
        let req = |name: &str, labels: &[&str]| JitRequest {
            name: name.into(),
            runner_group_id: 1,
            labels: labels.iter().map(|s| s.to_string()).collect(),
            work_folder: "_work".into(),
        };
        let (a, _) = st.create_runner("orgs/o", &req("a", &["gpu"])).unwrap();
        let (b, _) = st
            .create_runner("repos/o/r", &req("b", &["self-hosted"]))
            .unwrap();
        let (c, _) = st.create_runner("repos/o/r", &req("c", &["gpu"])).unwrap();
        assert_eq!((a.id, b.id, c.id), (1, 2, 3));
        assert_eq!(
            st.create_runner("repos/o/r", &req("B", &["x"])),
            Err(CreateError::NameExists("B".into()))
        );
        assert_eq!(
            b.labels.len(),
            3,
            "self-hosted is not repeated as a custom label"
        );
        // Nobody online: the job stays queued.
        let job = st.enqueue_job("repos/o/r", vec!["GPU".into()], "true", None);
        assert_eq!(job.status, JobStatus::Queued);
        st.runner_online(b.id);
        assert_eq!(st.jobs[&job.id].status, JobStatus::Queued, "b lacks gpu");
        st.runner_online(c.id);
        st.runner_online(a.id);
        // c came online first, so c got it while a was offline.
        assert_eq!(st.jobs[&job.id].runner_id, Some(c.id));
        let job2 = st.enqueue_job("repos/o/r", vec!["gpu".into()], "true", None);
        assert_eq!(
            st.jobs[&job2.id].runner_id,
            Some(a.id),
            "org runner serves repo job"
        );
        assert_eq!(
            st.delete_runner("repos/o/r", c.id),
            Err(DeleteError::Busy("c".into()))
        );
        assert_eq!(st.delete_runner("orgs/o", c.id), Err(DeleteError::NotFound));
        st.clock.advance(1_500);
        let done = st
            .complete_job(c.id, job.id, Conclusion::Success, Some(0), None)
            .unwrap();
        assert_eq!(done.status, JobStatus::Completed);
        assert_eq!(
            (done.queued_at, done.started_at, done.completed_at),
            (
                TEST_EPOCH_MS,
                Some(TEST_EPOCH_MS),
                Some(TEST_EPOCH_MS + 1_500)
            ),
            "times come from the state's clock"
        );
        assert_eq!(st.history[0].deleted_at, Some(TEST_EPOCH_MS + 1_500));
        assert!(!st.runners.contains_key(&c.id));
        assert_eq!((st.created_total, st.deleted_total), (3, 1));
        assert!(st
            .complete_job(a.id, job.id, Conclusion::Success, None, None)
            .is_err());
    }
}
