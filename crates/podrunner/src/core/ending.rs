//! How a runner ended, judged from its record once the verdict is in: did it run a job, did
//! it fail and why. Metrics and history use it (docs/metrics.md, failure reasons); it decides
//! nothing about what to do next.

use super::{RunnerRec, Verdict};

/// Why a runner counts as failed. The names are the `reason` label of
/// `podrunner_runner_failures_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum FailureReason {
    /// Registering (generate-jitconfig) failed.
    Register,
    /// Registered, but the container did not start (`podman run`, folders, docker setup).
    Start,
    /// The container exited with a non-zero code.
    ExitCode,
    /// Killed at the memory limit (OOM seen, or code 137 not asked for).
    Oom,
    /// Exited cleanly but its registration was still there: it ran no job.
    NoJob,
}

impl FailureReason {
    pub fn label(self) -> &'static str {
        match self {
            FailureReason::Register => "register",
            FailureReason::Start => "start",
            FailureReason::ExitCode => "exit_code",
            FailureReason::Oom => "oom",
            FailureReason::NoJob => "no_job",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ending {
    /// The runner took a job.
    pub job_ran: bool,
    pub failure: Option<FailureReason>,
}

/// Judges a runner that has exited and whose verdict is known (cleanup is due). A runner we
/// asked to stop (scale down, drain) ran no job and did not fail, unless GitHub had shown it
/// busy (a drain that ran out of time). `seen_busy`: GitHub listed it busy at some point (the
/// record's own flag is cleared once the registration is gone).
pub fn judge(r: &RunnerRec, seen_busy: bool) -> Ending {
    let busy = r.busy || seen_busy;
    let oom = r.oom_killed || super::judge::exit_means_oom(r.exit_code, r.stop_requested);
    if r.stop_requested {
        return Ending {
            job_ran: busy,
            failure: None,
        };
    }
    let failure = match (r.exit_code, r.verdict) {
        _ if oom => Some(FailureReason::Oom),
        (Some(c), _) if c != 0 => Some(FailureReason::ExitCode),
        (_, Verdict::Present) => Some(FailureReason::NoJob),
        _ => None,
    };
    let job_ran = match failure {
        // The registration vanished: the runner took a job and removed itself.
        None => r.verdict == Verdict::Gone || busy,
        Some(_) => busy || (oom && r.verdict == Verdict::Gone),
    };
    Ending { job_ran, failure }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::Phase;
    use std::time::Instant;

    fn rec(code: Option<i32>, verdict: Verdict) -> RunnerRec {
        RunnerRec {
            name: "ci-1".into(),
            pool: crate::core::PoolName::new("ci").ok(),
            scope: crate::core::Scope::repository("o/r").ok(),
            runner_id: Some(1),
            container_id: Some("c".into()),
            phase: Phase::Exited,
            created: Instant::now(),
            running_since: None,
            exited_at: None,
            exit_code: code,
            verdict,
            busy: false,
            online: true,
            stop_requested: false,
            registration_deleted: false,
            adopted: false,
            container_gone: true,
            oom_killed: false,
            retry_at: None,
            outcome: Default::default(),
            failed: false,
        }
    }

    fn ok(job_ran: bool) -> Ending {
        Ending {
            job_ran,
            failure: None,
        }
    }

    fn failed(job_ran: bool, r: FailureReason) -> Ending {
        Ending {
            job_ran,
            failure: Some(r),
        }
    }

    fn judge_(r: &RunnerRec) -> Ending {
        judge(r, false)
    }

    #[test]
    fn table() {
        use FailureReason::*;
        use Verdict::*;
        assert_eq!(judge_(&rec(Some(0), Gone)), ok(true));
        assert_eq!(judge_(&rec(None, Gone)), ok(true));
        assert_eq!(judge_(&rec(Some(0), Present)), failed(false, NoJob));
        assert_eq!(judge_(&rec(Some(3), Present)), failed(false, ExitCode));
        assert_eq!(judge_(&rec(Some(137), Present)), failed(false, Oom));
        let mut r = rec(Some(1), Gone);
        r.busy = true;
        assert_eq!(judge_(&r), failed(true, ExitCode));
        let mut r = rec(Some(0), Gone);
        r.oom_killed = true;
        assert_eq!(judge_(&r), failed(true, Oom));
        // Scaled down or drained: no job, no failure, whatever the code.
        let mut r = rec(Some(143), Gone);
        r.stop_requested = true;
        assert_eq!(judge_(&r), ok(false));
        r.exit_code = Some(137);
        assert_eq!(judge_(&r), ok(false));
        // A drain that ran out of time stopped a busy runner: its job ran.
        r.busy = true;
        assert_eq!(judge_(&r), ok(true));
        // Seen busy earlier, the flag cleared when the registration went.
        assert_eq!(judge(&rec(Some(2), Gone), true), failed(true, ExitCode));
        assert_eq!(judge(&rec(Some(0), Present), true), failed(true, NoJob));
        assert_eq!(ExitCode.label(), "exit_code");
        assert_eq!(NoJob.label(), "no_job");
    }
}
