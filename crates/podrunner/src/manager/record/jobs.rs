//! A job's facts from its three sources (the runner's output, GitHub's messages and lists,
//! the manager's own sight), merged best first. Pure functions.

use crate::core::outcome::RunnerOutcome;
use crate::github::queued::RunJob;
use crate::github::scaleset::JobEvent;
use crate::history::{self, JobOutcome};

/// The runner's own account of its job, from its output: the job's display name, the
/// result in the runner's word, start and end by its clock. Nothing it did not say.
pub fn reported_job(o: &RunnerOutcome) -> JobOutcome {
    JobOutcome {
        ran: o.took_job().then_some(true),
        name: o.job.clone(),
        result: o.result.as_ref().map(|r| r.word().to_string()),
        started_ms: o.job_started_at.map(history::ms),
        finished_ms: o.job_finished_at.map(history::ms),
        ..JobOutcome::default()
    }
}

/// What a scale set's `JobStarted` message says about the job (docs/metrics.md): the queue
/// time, the time GitHub assigned it to the runner, repository, workflow run and name.
pub fn scale_set_job(e: &JobEvent) -> JobOutcome {
    let repository = match (e.owner_name.as_deref(), e.repository_name.as_deref()) {
        (Some(o), Some(r)) if !o.is_empty() && !r.is_empty() => Some(format!("{o}/{r}")),
        _ => None,
    };
    JobOutcome {
        ran: Some(true),
        name: e.job_display_name.clone().filter(|n| !n.is_empty()),
        repository,
        workflow_run: e.workflow_run_id.filter(|&n| n > 0),
        queued_ms: e.queue_time.as_deref().and_then(epoch_ms),
        started_ms: e.runner_assign_time.as_deref().and_then(epoch_ms),
        ..JobOutcome::default()
    }
}

/// What a label pool's job list says about a job in progress (`scope` is `repos/o/r`): when
/// it was queued (`created_at`) and started, its workflow run and name.
pub fn label_pool_job(scope: &str, j: &RunJob) -> JobOutcome {
    JobOutcome {
        ran: Some(true),
        name: j.name.clone().filter(|n| !n.is_empty()),
        repository: scope.strip_prefix("repos/").map(str::to_string),
        workflow_run: j.run_id,
        queued_ms: j.created_at.as_deref().and_then(epoch_ms),
        started_ms: j.started_at.as_deref().and_then(epoch_ms),
        ..JobOutcome::default()
    }
}

/// An RFC 3339 time of GitHub's in epoch ms; `None` for Go's zero time (not known yet) and
/// anything unreadable.
fn epoch_ms(s: &str) -> Option<i64> {
    let s = s.trim();
    let s = s
        .strip_suffix("+00:00")
        .map_or(s.to_string(), |t| format!("{t}Z"));
    let ms = history::ms(humantime::parse_rfc3339_weak(&s).ok()?);
    (ms > 0).then_some(ms)
}

/// Fills what the runner's report leaves open from what the manager saw: the job ran
/// (`ending`), it started when GitHub first listed the runner busy, it ended with the
/// container.
pub fn job_outcome(
    reported: JobOutcome,
    ran: bool,
    seen_busy_ms: Option<i64>,
    exited_ms: Option<i64>,
) -> JobOutcome {
    let ran = reported.ran.unwrap_or(false) || ran;
    JobOutcome {
        ran: Some(ran),
        started_ms: reported.started_ms.or(seen_busy_ms.filter(|_| ran)),
        finished_ms: reported.finished_ms.or(exited_ms.filter(|_| ran)),
        ..reported
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_runner_reports_its_job() {
        let mut o = RunnerOutcome::default();
        o.observe("2026-03-01 10:00:00Z: Listening for Jobs");
        // Online, no job yet: it says nothing about a job.
        assert_eq!(reported_job(&o), JobOutcome::default());
        o.observe("2026-03-01 10:00:05Z: Running job: build (ubuntu)");
        let t0 = 1_772_359_205_000; // 2026-03-01T10:00:05Z
        assert_eq!(
            reported_job(&o),
            JobOutcome {
                ran: Some(true),
                name: Some("build (ubuntu)".into()),
                started_ms: Some(t0),
                ..Default::default()
            }
        );
        o.observe(
            "2026-03-01 10:01:47Z: Job build (ubuntu) completed with result: SucceededWithIssues",
        );
        assert_eq!(
            reported_job(&o),
            JobOutcome {
                ran: Some(true),
                name: Some("build (ubuntu)".into()),
                result: Some("SucceededWithIssues".into()),
                started_ms: Some(t0),
                finished_ms: Some(t0 + 102_000),
                ..Default::default()
            }
        );
        let mut f = RunnerOutcome::default();
        f.observe("2026-03-01 10:00:05Z: Running job: test");
        f.observe("2026-03-01 10:00:09Z: Job test completed with result: Failed");
        assert_eq!(reported_job(&f).result.as_deref(), Some("Failed"));
        assert_eq!(
            crate::metrics::job_result_label(reported_job(&f).result.as_deref()),
            "failed"
        );
    }

    #[test]
    fn a_scale_set_job_started_message() {
        // As GitHub's service sends it (actions/scaleset `JobStarted`); unknown times are Go's
        // zero time.
        let e: JobEvent = serde_json::from_str(
            r#"{"messageType":"JobStarted","runnerRequestId":42,"runnerId":9,
                "runnerName":"ss-0a1b2c3d","repositoryName":"hello","ownerName":"octo",
                "jobId":"j","jobWorkflowRef":"octo/hello/.github/workflows/ci.yml@refs/heads/main",
                "jobDisplayName":"build","workflowRunId":77,"eventName":"push",
                "requestLabels":["ss"],"queueTime":"2026-03-01T10:00:01.2500000Z",
                "scaleSetAssignTime":"2026-03-01T10:00:02Z",
                "runnerAssignTime":"2026-03-01T10:00:04.75Z",
                "finishTime":"0001-01-01T00:00:00Z"}"#,
        )
        .unwrap();
        let t = 1_772_359_200_000; // 2026-03-01T10:00:00Z
        assert_eq!(
            scale_set_job(&e),
            JobOutcome {
                ran: Some(true),
                name: Some("build".into()),
                repository: Some("octo/hello".into()),
                workflow_run: Some(77),
                queued_ms: Some(t + 1_250),
                started_ms: Some(t + 4_750),
                ..Default::default()
            }
        );
        let bare: JobEvent = serde_json::from_str(
            r#"{"messageType":"JobStarted","runnerName":"x","queueTime":"0001-01-01T00:00:00Z",
                "runnerAssignTime":"2026-03-01T10:00:04+00:00","repositoryName":""}"#,
        )
        .unwrap();
        assert_eq!(
            scale_set_job(&bare),
            JobOutcome {
                ran: Some(true),
                started_ms: Some(t + 4_000),
                ..Default::default()
            }
        );
    }

    #[test]
    fn a_label_pool_job_in_progress() {
        // A job of GitHub's REST API (GET .../actions/runs/{id}/jobs), trimmed.
        let j: RunJob = serde_json::from_str(
            r#"{"id":5,"run_id":77,"status":"in_progress","name":"test",
                "labels":["self-hosted","gpu"],"runner_name":"gpu-0a1b2c3d",
                "created_at":"2026-03-01T10:00:01Z","started_at":"2026-03-01T10:00:09Z",
                "completed_at":null}"#,
        )
        .unwrap();
        let t = 1_772_359_200_000; // 2026-03-01T10:00:00Z
        assert_eq!(
            label_pool_job("repos/octo/hello", &j),
            JobOutcome {
                ran: Some(true),
                name: Some("test".into()),
                repository: Some("octo/hello".into()),
                workflow_run: Some(77),
                queued_ms: Some(t + 1_000),
                started_ms: Some(t + 9_000),
                ..Default::default()
            }
        );
    }

    #[test]
    fn the_report_then_github_then_the_manager() {
        let runner = JobOutcome {
            ran: Some(true),
            name: Some("build".into()),
            result: Some("Succeeded".into()),
            started_ms: Some(5_000),
            finished_ms: Some(9_000),
            ..Default::default()
        };
        let github = JobOutcome {
            ran: Some(true),
            name: Some("job 7".into()),
            repository: Some("octo/hello".into()),
            workflow_run: Some(7),
            queued_ms: Some(1_500),
            started_ms: Some(4_900),
            ..Default::default()
        };
        let j = job_outcome(runner.or(github.clone()), true, Some(6_000), Some(9_500));
        assert_eq!(
            j,
            JobOutcome {
                ran: Some(true),
                name: Some("build".into()),
                repository: Some("octo/hello".into()),
                workflow_run: Some(7),
                result: Some("Succeeded".into()),
                queued_ms: Some(1_500),
                started_ms: Some(5_000),
                finished_ms: Some(9_000),
            }
        );
        assert_eq!(j.startup_secs(), Some(3.5));
        // The runner's whole-second start may read before a queue time in the same second.
        let early = JobOutcome {
            queued_ms: Some(5_400),
            started_ms: Some(5_000),
            ..Default::default()
        };
        assert_eq!(early.startup_secs(), Some(0.0));
        // Nothing from the runner: GitHub's start, then its end is the exit.
        let j = job_outcome(
            JobOutcome::default().or(github),
            true,
            Some(6_000),
            Some(9_500),
        );
        assert_eq!(
            (j.started_ms, j.finished_ms, j.startup_secs()),
            (Some(4_900), Some(9_500), Some(3.4))
        );
    }

    #[test]
    fn job_outcome_fills_only_what_the_report_leaves_open() {
        // Nothing reported: the registration state says it ran, busy at 10, exited at 50.
        let j = job_outcome(JobOutcome::default(), true, Some(10), Some(50));
        assert_eq!(
            j,
            JobOutcome {
                ran: Some(true),
                started_ms: Some(10),
                finished_ms: Some(50),
                ..Default::default()
            }
        );
        // No job: no times.
        let j = job_outcome(JobOutcome::default(), false, None, Some(50));
        assert_eq!(
            j,
            JobOutcome {
                ran: Some(false),
                ..Default::default()
            }
        );
        // The runner's own report wins.
        let reported = JobOutcome {
            ran: Some(true),
            name: Some("build".into()),
            result: Some("Failed".into()),
            started_ms: Some(12),
            finished_ms: Some(40),
            ..Default::default()
        };
        let j = job_outcome(reported.clone(), false, Some(10), Some(50));
        assert_eq!(j, reported);
    }
}
