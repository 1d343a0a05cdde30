//! What a runner's own output says about it: did it come online, which job did it take, how did
//! the job end and how long did it take, did it update itself, was its version refused, was its
//! registration deleted. The lines are GitHub's runner's own (docs/runner-output.md lists them
//! with the actions/runner files they come from); the fake runner prints the same.
//!
//! [`RunnerOutcome`] is the typed result other modules consume (status, history, metrics); it is
//! built by feeding lines to [`RunnerOutcome::observe`]. Pure: no I/O.

use serde::Serialize;
use std::time::{Duration, SystemTime};

/// A job's result as the runner names it (`TaskResult` in actions/runner).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum JobResult {
    Succeeded,
    SucceededWithIssues,
    Failed,
    Canceled,
    Skipped,
    Abandoned,
    /// A word this version of podrunner does not know.
    Other(String),
}

impl JobResult {
    pub fn parse(word: &str) -> JobResult {
        match word.trim() {
            "Succeeded" => JobResult::Succeeded,
            "SucceededWithIssues" => JobResult::SucceededWithIssues,
            "Failed" => JobResult::Failed,
            "Canceled" | "Cancelled" => JobResult::Canceled,
            "Skipped" => JobResult::Skipped,
            "Abandoned" => JobResult::Abandoned,
            other => JobResult::Other(other.to_string()),
        }
    }

    /// The runner's own word (`TaskResult`), as it prints it: `Succeeded`, `Failed`, ...
    pub fn word(&self) -> &str {
        match self {
            JobResult::Succeeded => "Succeeded",
            JobResult::SucceededWithIssues => "SucceededWithIssues",
            JobResult::Failed => "Failed",
            JobResult::Canceled => "Canceled",
            JobResult::Skipped => "Skipped",
            JobResult::Abandoned => "Abandoned",
            JobResult::Other(s) => s,
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            JobResult::Succeeded => "succeeded",
            JobResult::SucceededWithIssues => "succeeded-with-issues",
            JobResult::Failed => "failed",
            JobResult::Canceled => "canceled",
            JobResult::Skipped => "skipped",
            JobResult::Abandoned => "abandoned",
            JobResult::Other(s) => s,
        }
    }
}

/// What one output line means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    /// `Listening for Jobs`: the runner has a session, it is online and waits.
    Listening,
    /// `Running job: NAME`.
    JobStarted { job: String, at: Option<SystemTime> },
    /// `Job NAME completed with result: RESULT`.
    JobCompleted {
        job: String,
        result: JobResult,
        at: Option<SystemTime>,
    },
    /// The runner downloads a newer version of itself (its image is stale).
    SelfUpdate { version: Option<String> },
    /// GitHub refused the runner's version.
    Deprecated(String),
    /// The registration is gone on GitHub's side.
    RegistrationDeleted(String),
    /// `An error occurred: ...` and other errors the runner prints.
    Error(String),
    /// The closing lines of `run.sh` / `run-helper.sh` and the ephemeral clean-up: they say
    /// nothing about why the runner failed.
    Closing,
    /// Anything else.
    Other(String),
}

/// `2024-01-02 03:04:05Z: ` (the runner's `{DateTime.UtcNow:u}: ` prefix): time and rest.
fn split_timestamp(line: &str) -> (Option<SystemTime>, &str) {
    const LEN: usize = "2024-01-02 03:04:05Z".len();
    if line.len() > LEN + 1
        && line.as_bytes()[LEN..].starts_with(b": ")
        && line.is_char_boundary(LEN)
    {
        if let Ok(t) = humantime::parse_rfc3339_weak(&line[..LEN - 1]) {
            return (Some(t), &line[LEN + 2..]);
        }
    }
    (None, line)
}

/// Lines of `run.sh`, `run-helper.sh` and the ephemeral runner's clean-up of its settings.
const CLOSING_PREFIXES: &[&str] = &[
    "Runner listener exit with",
    "Runner listener exit because of updating",
    "Exiting runner...",
    "Restarting runner...",
    "Exiting with unknown error code",
    "Update finished successfully.",
    "√ Removed .",
    "Exiting...",
];

/// What `line` (one line of the container's output, either stream) says.
pub fn parse_line(line: &str) -> Line {
    let line = line.trim_end();
    let (at, rest) = split_timestamp(line);
    if rest == "Listening for Jobs" {
        return Line::Listening;
    }
    if let Some(job) = rest.strip_prefix("Running job: ") {
        return Line::JobStarted {
            job: job.to_string(),
            at,
        };
    }
    if let Some(body) = rest.strip_prefix("Job ") {
        if let Some((job, result)) = body.rsplit_once(" completed with result: ") {
            return Line::JobCompleted {
                job: job.to_string(),
                result: JobResult::parse(result),
                at,
            };
        }
    }
    if let Some(v) = rest
        .strip_prefix("Downloading ")
        .and_then(|r| r.strip_suffix(" runner"))
    {
        return Line::SelfUpdate {
            version: Some(v.to_string()),
        };
    }
    if rest.starts_with("Runner update in progress")
        || rest.starts_with("Runner will exit shortly for update")
    {
        return Line::SelfUpdate { version: None };
    }
    let lower = rest.to_ascii_lowercase();
    if lower.contains("deprecated") && lower.contains("runner version")
        || rest.starts_with("Runner listener exit with deprecated version exit code")
    {
        return Line::Deprecated(rest.to_string());
    }
    if rest.contains("The runner no longer exists on the server")
        || rest.contains("runner registration has been deleted")
    {
        return Line::RegistrationDeleted(rest.to_string());
    }
    if CLOSING_PREFIXES.iter().any(|p| rest.starts_with(p)) {
        return Line::Closing;
    }
    if rest.starts_with("An error occurred:")
        || rest.starts_with("Failed to create a session")
        || rest.starts_with("Runner update failed")
        || rest.starts_with("A session for this runner already exists")
    {
        return Line::Error(rest.to_string());
    }
    Line::Other(rest.to_string())
}

/// Everything the output told about one runner, so far.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RunnerOutcome {
    /// It printed `Listening for Jobs` at least once: it was online.
    pub listened: bool,
    /// The job it took (its display name), if any.
    pub job: Option<String>,
    /// How the job ended, once it did.
    pub result: Option<JobResult>,
    /// From `Running job` to `completed`, by the runner's own clock (whole seconds).
    #[serde(with = "opt_secs")]
    pub duration: Option<Duration>,
    /// When it printed `Running job` and `completed`, by its own clock (whole seconds: the
    /// runner's log prefix has no fraction).
    #[serde(skip)]
    pub job_started_at: Option<SystemTime>,
    #[serde(skip)]
    pub job_finished_at: Option<SystemTime>,
    /// How often it began to update itself (a stale image).
    pub self_updates: u32,
    /// GitHub refused its version.
    pub deprecated: bool,
    /// It saw its registration deleted.
    pub registration_deleted: bool,
    /// The runner's own last error line (never one of run.sh's closing lines).
    pub error_line: Option<String>,
    /// The last line that is not a closing line, for when there is no error line.
    pub last_line: Option<String>,
}

mod opt_secs {
    pub fn serialize<S: serde::Serializer>(
        d: &Option<std::time::Duration>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_some(&d.as_secs_f64()),
            None => s.serialize_none(),
        }
    }
}

impl RunnerOutcome {
    /// Takes one more output line into account.
    pub fn observe(&mut self, line: &str) {
        match parse_line(line) {
            Line::Listening => self.listened = true,
            Line::JobStarted { job, at } => {
                self.listened = true;
                self.job = Some(job);
                self.job_started_at = at;
            }
            Line::JobCompleted { job, result, at } => {
                self.duration = match (self.job_started_at, at) {
                    (Some(a), Some(b)) => b.duration_since(a).ok(),
                    _ => None,
                };
                if self.job.is_none() {
                    self.job = Some(job);
                }
                self.job_finished_at = at;
                self.result = Some(result);
            }
            Line::SelfUpdate { .. } => {
                // One update prints several lines; count the first of each.
                if !self.last_line.as_deref().is_some_and(is_update_line) {
                    self.self_updates += 1;
                }
                self.last_line = Some(line.trim().to_string());
            }
            Line::Deprecated(l) => {
                // run-helper.sh's closing line about exit 7 says less than the runner's own.
                if !self.deprecated || self.error_line.is_none() {
                    self.error_line = Some(l);
                }
                self.deprecated = true;
            }
            Line::RegistrationDeleted(l) => {
                self.registration_deleted = true;
                self.error_line = Some(l);
            }
            Line::Error(l) => {
                // "An error occurred: <the deprecation message>" is both.
                if l.to_ascii_lowercase().contains("deprecated") {
                    self.deprecated = true;
                }
                self.error_line = Some(l);
            }
            Line::Closing => {}
            Line::Other(l) => {
                if !l.trim().is_empty() {
                    self.last_line = Some(l);
                }
            }
        }
    }

    /// Took a job: the runner said `Running job`.
    pub fn took_job(&self) -> bool {
        self.job.is_some()
    }

    /// The line that best explains a failure: the runner's own error, else its last line.
    pub fn reason_line(&self) -> Option<&str> {
        self.error_line.as_deref().or(self.last_line.as_deref())
    }
}

fn is_update_line(l: &str) -> bool {
    matches!(parse_line(l), Line::SelfUpdate { .. })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_of_the_real_runner() {
        let t = |s: &str| humantime::parse_rfc3339(s).unwrap();
        assert_eq!(
            parse_line("2026-03-01 10:00:00Z: Listening for Jobs"),
            Line::Listening
        );
        assert_eq!(
            parse_line("2026-03-01 10:00:05Z: Running job: build (ubuntu)"),
            Line::JobStarted {
                job: "build (ubuntu)".into(),
                at: Some(t("2026-03-01T10:00:05Z"))
            }
        );
        assert_eq!(
            parse_line("2026-03-01 10:01:05Z: Job build (ubuntu) completed with result: Succeeded"),
            Line::JobCompleted {
                job: "build (ubuntu)".into(),
                result: JobResult::Succeeded,
                at: Some(t("2026-03-01T10:01:05Z"))
            }
        );
        assert_eq!(
            parse_line("Downloading 2.330.0 runner"),
            Line::SelfUpdate {
                version: Some("2.330.0".into())
            }
        );
        assert_eq!(
            parse_line("Runner update in progress, do not shutdown runner."),
            Line::SelfUpdate { version: None }
        );
        assert!(matches!(
            parse_line("Runner listener exit with deprecated version exit code: 7."),
            Line::Deprecated(_)
        ));
        assert!(matches!(
            parse_line("The runner no longer exists on the server. Please reconfigure the runner."),
            Line::RegistrationDeleted(_)
        ));
        assert!(matches!(
            parse_line("Failed to create a session. The runner registration has been deleted from the server, please re-configure."),
            Line::RegistrationDeleted(_)
        ));
        for l in [
            "Runner listener exit with 0 return code, stop the service, no retry needed.",
            "Runner listener exit with retryable error, re-launch runner in 5 seconds.",
            "Exiting runner...",
            "Restarting runner...",
            "√ Removed .credentials",
        ] {
            assert_eq!(parse_line(l), Line::Closing, "{l}");
        }
        assert_eq!(
            parse_line("An error occurred: Access denied"),
            Line::Error("An error occurred: Access denied".into())
        );
        assert_eq!(JobResult::parse("Canceled"), JobResult::Canceled);
        assert_eq!(JobResult::parse("Weird"), JobResult::Other("Weird".into()));
    }

    #[test]
    fn a_job_from_start_to_end() {
        let mut o = RunnerOutcome::default();
        for l in [
            "√ Connected to GitHub",
            "",
            "Current runner version: '2.330.0'",
            "2026-03-01 10:00:00Z: Listening for Jobs",
        ] {
            o.observe(l);
        }
        assert!(o.listened && !o.took_job());
        o.observe("2026-03-01 10:00:05Z: Running job: test");
        assert_eq!(o.job.as_deref(), Some("test"));
        assert_eq!(o.result, None);
        o.observe("2026-03-01 10:01:47Z: Job test completed with result: Failed");
        o.observe("√ Removed .credentials");
        o.observe("Runner listener exit with 0 return code, stop the service, no retry needed.");
        o.observe("Exiting runner...");
        assert_eq!(o.result, Some(JobResult::Failed));
        assert_eq!(o.duration, Some(Duration::from_secs(102)));
        assert_eq!(o.reason_line(), Some("Current runner version: '2.330.0'"));
    }

    #[test]
    fn failure_reason_skips_closing_lines() {
        let mut o = RunnerOutcome::default();
        o.observe(
            "An error occurred: Runner version v2.300.0 is deprecated and cannot receive messages.",
        );
        o.observe("Runner listener exit with deprecated version exit code: 7.");
        o.observe("Exiting runner...");
        assert!(o.deprecated);
        assert_eq!(
            o.reason_line(),
            Some("An error occurred: Runner version v2.300.0 is deprecated and cannot receive messages.")
        );
        let mut o = RunnerOutcome::default();
        o.observe("An error occurred: cannot reach the server");
        o.observe("Runner listener exit with retryable error, re-launch runner in 5 seconds.");
        o.observe("Restarting runner...");
        assert_eq!(
            o.reason_line(),
            Some("An error occurred: cannot reach the server")
        );
        assert!(!o.listened);
    }

    #[test]
    fn one_update_counts_once() {
        let mut o = RunnerOutcome::default();
        o.observe("Runner update in progress, do not shutdown runner.");
        o.observe("Downloading 2.330.0 runner");
        o.observe("Runner will exit shortly for update, should be back online within 10 seconds.");
        o.observe(
            "Runner listener exit because of updating, re-launch runner after successful update",
        );
        assert_eq!(o.self_updates, 1);
    }
}
