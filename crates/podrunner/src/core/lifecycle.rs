//! One runner's life in the state: its registration, container start, output, exit, OOM
//! kill, retirement and cleanup as the manager reports them (the transitions of [`Phase`]).

use super::*;

impl State {
    /// New lines of `name`'s output.
    pub fn runner_output(&mut self, name: &str, lines: &[String]) {
        let Some(r) = self.runners.get_mut(name) else {
            return;
        };
        let (updates, deprecated) = (r.outcome.self_updates, r.outcome.deprecated);
        for l in lines {
            r.outcome.observe(l);
        }
        let pool = r.pool.clone();
        let (updated, newly_deprecated) = (
            r.outcome.self_updates > updates,
            r.outcome.deprecated && !deprecated,
        );
        if updated {
            let p = self.pool_mut(pool.as_ref());
            p.image.stale = true;
            p.last_error = Some(format!("runner {name} is updating itself before its job: the pool's image is older than GitHub's current runner (each runner downloads about 200 MB and restarts)\n  fix: podrunner pulls the image now; keep `pull = \"newer\"` (the default), or point `image` at a current tag"));
        }
        if newly_deprecated {
            self.pool_mut(pool.as_ref()).image.stale = true;
        }
        // The last lines can reach the log just after the exit was seen: a job's result then
        // judges an exit that still waits for the registration list.
        let r = &self.runners[name];
        if r.phase == Phase::Exited
            && r.verdict == Verdict::Pending
            && !r.stop_requested
            && !r.failed
            && r.outcome.result.is_some()
        {
            if let Some(r) = self.runners.get_mut(name) {
                r.verdict = Verdict::Gone;
            }
            self.succeed_runner(name);
        }
    }

    /// What the pool says about a runner GitHub refused as too old (exit 7, or its output).
    fn deprecated_message(name: &str, line: Option<&str>) -> String {
        format!(
            "runner {name}: GitHub refuses this runner version as deprecated{}\n  fix: podrunner pulls the image now; if that does not help, point `image` at a current runner image",
            line.map(|l| format!(" ({l})")).unwrap_or_default()
        )
    }

    /// Finished runners since the last call, oldest first: for history and metrics.
    pub fn take_finished(&mut self) -> Vec<Finished> {
        std::mem::take(&mut self.finished)
    }

    /// The OOM killer struck in `name`'s container (podman's `oom` event, or the container's
    /// memory cgroup counted a kill). Not a start failure (the job ran, or runs on), so no
    /// backoff; the pool's `last_error` says it until a later failure replaces it.
    pub fn runner_oom(&mut self, name: &str) {
        let Some(r) = self.runners.get_mut(name) else {
            return;
        };
        r.oom_killed = true;
        let pool = r.pool.clone();
        let p = self.pool_mut(pool.as_ref());
        p.last_error = Some(oom_message(name));
        p.github_error = false;
    }

    /// GitHub said the runner took a job (a scale set's `JobStarted` message): it is busy now,
    /// before the next list of runners says so.
    pub fn mark_busy(&mut self, name: &str) {
        if let Some(r) = self.runners.get_mut(name) {
            r.busy = true;
        }
    }

    /// The JIT call returned: the registration exists.
    pub fn registered(&mut self, name: &str, runner_id: u64) {
        if let Some(r) = self.runners.get_mut(name) {
            r.runner_id = Some(runner_id);
            if r.phase == Phase::Registering {
                r.phase = Phase::Starting;
            }
        }
    }

    /// Registering or starting failed. `failure` says whether it counts toward backoff (a
    /// name conflict does not); `registration_left` whether a registration may remain.
    pub fn start_failed(
        &mut self,
        name: &str,
        why: String,
        failure: bool,
        registration_left: bool,
        now: Instant,
    ) {
        let Some(r) = self.runners.get_mut(name) else {
            return;
        };
        r.phase = Phase::Exited;
        r.exited_at = Some(now);
        r.verdict = if registration_left && r.runner_id.is_some() {
            Verdict::Present
        } else {
            Verdict::Gone
        };
        let pool = r.pool.clone();
        if failure {
            self.record_failure(pool.as_ref(), now, why);
        }
    }

    /// `podman run -d` returned the container id.
    pub fn started(&mut self, name: &str, container_id: String, now: Instant) {
        if let Some(r) = self.runners.get_mut(name) {
            r.container_id = Some(container_id);
            if r.phase == Phase::Starting {
                r.phase = Phase::Running;
                r.running_since = Some(now);
            }
        }
    }

    /// A container exited (event, or found missing by a resync). `code` is `None` when unknown.
    pub fn container_exited(&mut self, name: &str, code: Option<i32>, now: Instant) {
        let Some(r) = self.runners.get_mut(name) else {
            return;
        };
        if matches!(r.phase, Phase::Exited | Phase::CleaningUp) {
            // The exit code can come after the exit itself (the container process's exit is seen before
            // Podman's `died` event). A non-zero code still counts as a failure, once.
            if r.exit_code.is_none() && code.is_some() {
                r.exit_code = code;
                if code != Some(0) && !r.stop_requested && r.verdict == Verdict::Pending {
                    r.verdict = if r.registration_deleted || r.runner_id.is_none() {
                        Verdict::Gone
                    } else {
                        Verdict::Present
                    };
                    let c = code.unwrap_or_default();
                    if c == EXIT_VERSION_DEPRECATED {
                        let line = r.outcome.reason_line().map(str::to_string);
                        let pool = r.pool.clone();
                        self.pool_mut(pool.as_ref()).image.stale = true;
                        self.fail_runner(
                            name,
                            now,
                            Self::deprecated_message(name, line.as_deref()),
                        );
                    } else {
                        self.fail_runner(name, now, format!("runner {name} exited with code {c}"));
                    }
                } else if code != Some(0) && !r.stop_requested {
                    let pool = r.pool.clone();
                    let c = code.unwrap_or_default();
                    if let Some(pool) = pool {
                        self.explain_failure(&pool, &format!("exit code {c}"));
                    }
                }
            }
            return;
        }
        if !matches!(r.phase, Phase::Starting | Phase::Running | Phase::Retiring) {
            return;
        }
        r.phase = Phase::Exited;
        r.exited_at = Some(now);
        r.exit_code = code;
        r.verdict = if r.registration_deleted || r.runner_id.is_none() {
            Verdict::Gone
        } else if code == Some(0) || code.is_none() {
            Verdict::Pending
        } else {
            Verdict::Present
        };
        let (pool, expected, oom) = (r.pool.clone(), r.stop_requested, r.oom_killed);
        let out = r.outcome.clone();
        if !expected && out.result.is_some() {
            // The runner says it ran its job: GitHub removes the registration itself (its
            // list may lag), so no list needs to confirm it.
            r.verdict = Verdict::Gone;
            self.succeed_runner(name);
            if oom {
                self.pool_mut(pool.as_ref()).last_error = Some(oom_message(name));
            }
            return;
        }
        if !expected && (code == Some(EXIT_VERSION_DEPRECATED) || out.deprecated) {
            if r.runner_id.is_some() && !r.registration_deleted {
                r.verdict = Verdict::Present;
            }
            self.pool_mut(pool.as_ref()).image.stale = true;
            self.fail_runner(name, now, Self::deprecated_message(name, out.reason_line()));
            return;
        }
        if !expected && out.registration_deleted {
            if let Some(r) = self.runners.get_mut(name) {
                r.verdict = Verdict::Gone;
            }
            let line = out.reason_line().unwrap_or_default().to_string();
            self.fail_runner(name, now, format!("runner {name} exited without a job: its registration was deleted on GitHub ({line})\n  fix: another manager or a person deleted it; give every host its own host id (docs/hosts.md)"));
            return;
        }
        let failed = !expected && matches!(code, Some(c) if c != 0);
        if failed {
            let c = code.unwrap_or_default();
            let why = if oom {
                format!("{}; it exited with code {c}", oom_message(name))
            } else if judge::exit_means_oom(code, expected) {
                format!("runner {name} exited with code 137 (killed by SIGKILL: out of memory at the pool's memory limit, most likely)")
            } else {
                match out.reason_line() {
                    Some(l) => format!("runner {name} exited with code {c}: {l}"),
                    None => format!("runner {name} exited with code {c}"),
                }
            };
            self.fail_runner(name, now, why);
        }
        // After a success the replacement starts at once: `restart_delay` and the backoff
        // apply after failures only (record_failure).
    }

    /// Podman removed the container (`--rm` after exit).
    pub fn container_removed(&mut self, name: &str, now: Instant) {
        self.container_exited(name, None, now);
        if let Some(r) = self.runners.get_mut(name) {
            r.container_gone = true;
        }
    }

    /// Attaches a reason (e.g. the runner's last log line) to the pool's last failure.
    pub fn explain_failure(&mut self, pool: &PoolName, detail: &str) {
        if let Some(p) = self.pools.get_mut(pool) {
            if let Some(e) = &mut p.last_error {
                if !e.contains(detail) {
                    e.push_str(": ");
                    e.push_str(detail);
                }
            }
        }
    }

    pub fn retire_done(&mut self, name: &str, outcome: RetireOutcome, now: Instant) {
        let Some(r) = self.runners.get_mut(name) else {
            return;
        };
        if r.phase != Phase::Retiring {
            return;
        }
        match outcome {
            RetireOutcome::Stopped => {
                r.registration_deleted = true;
                r.phase = Phase::Exited;
                r.exited_at = Some(now);
                r.verdict = Verdict::Gone;
            }
            RetireOutcome::Busy => {
                r.phase = Phase::Running;
                r.busy = true;
                r.stop_requested = false;
            }
            RetireOutcome::Failed => {
                r.phase = Phase::Running;
                r.stop_requested = false;
                r.retry_at = Some(now + RETIRE_RETRY);
            }
        }
    }

    pub fn cleanup_done(&mut self, name: &str, outcome: CleanupOutcome, now: Instant) {
        let Some(r) = self.runners.get_mut(name) else {
            return;
        };
        match outcome {
            CleanupOutcome::Done => {
                if let Some(r) = self.runners.remove(name) {
                    let end = r.exited_at.unwrap_or(now);
                    self.finished.push(Finished {
                        lifetime_secs: end.saturating_duration_since(r.created).as_secs_f64(),
                        pool: r.pool,
                        runner: r.name,
                        runner_id: r.runner_id,
                        exit_code: r.exit_code,
                        failure: r.failed,
                        stopped: r.stop_requested,
                        outcome: r.outcome,
                    });
                }
                self.prune_wanted = !self.stale_images.is_empty();
            }
            CleanupOutcome::Busy | CleanupOutcome::Failed => {
                r.phase = Phase::Exited;
                r.retry_at = Some(now + CLEANUP_RETRY);
            }
        }
    }
}
