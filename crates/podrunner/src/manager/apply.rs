//! The loop's two directions: [`Manager::execute`] turns the core's actions into tasks, and
//! [`Manager::apply`] feeds what tasks and observers report back into the core.

use super::*;
use crate::core::{judge, pool_label};

impl Manager {
    pub(super) fn pool_cfg(&self, pool: &PoolName) -> Option<config::PoolConfig> {
        self.ctx.cfg.pool(pool.as_str()).cloned()
    }

    /// How often `pool` looks for a newer image (the default for a pool that left the config).
    pub(super) fn pull_interval_of(&self, pool: &PoolName) -> std::time::Duration {
        self.specs
            .iter()
            .find(|s| &s.name == pool)
            .map_or(crate::core::pull::DEFAULT_PULL_INTERVAL, |s| {
                s.pull_interval
            })
    }

    pub(super) fn execute(&mut self, action: Action) {
        let ctx = self.ctx.clone();
        match action {
            Action::Start { pool, name } => match self.pool_cfg(&pool) {
                Some(p) => {
                    self.record
                        .start(&ctx.cfg, pool.as_str(), &name, &ctx.podman);
                    tokio::spawn(ctx.start(p, name));
                }
                None => self.state.start_failed(
                    &name,
                    "pool removed".into(),
                    false,
                    false,
                    Instant::now(),
                ),
            },
            Action::Retire {
                name,
                scope,
                runner_id,
                stop_timeout,
            } => {
                tokio::spawn(ctx.retire(scope, stop_timeout.as_secs(), name, runner_id));
            }
            Action::ForceStop { name, stop_timeout } => {
                tokio::spawn(ctx.force_stop(name, stop_timeout.as_secs()));
            }
            Action::Cleanup {
                name,
                scope,
                pool,
                delete_id,
                remove_container,
            } => {
                tokio::spawn(ctx.cleanup(scope, pool, name, delete_id, remove_container));
            }
            Action::DeleteOrphan { scope, id } => {
                tokio::spawn(ctx.delete_orphan(scope, id));
            }
            Action::Sweep => {
                let scopes = self.state.scopes(&self.specs);
                tokio::spawn(ctx.sweep(scopes));
            }
            Action::Resync => {
                tokio::spawn(ctx.resync());
            }
            Action::PullImage { pool, reason } => match self.pool_cfg(&pool) {
                Some(p) => {
                    tokio::spawn(ctx.pull_image(p, reason));
                }
                None => {
                    let failed = Err(crate::core::pull::PullFailed("pool removed".into()));
                    let interval = self.pull_interval_of(&pool);
                    self.state
                        .pull_done(&pool, interval, failed, Instant::now());
                }
            },
            Action::PruneImage { id } => {
                tokio::spawn(ctx.prune_image(id));
            }
        }
    }

    pub(super) fn apply(&mut self, o: Outcome) {
        let now = Instant::now();
        let recorded = self.record_before(&o);
        match o {
            Outcome::Registered { name, runner_id } => self.state.registered(&name, runner_id),
            Outcome::Started { name, container_id } => self.state.started(&name, container_id, now),
            Outcome::StartFailed {
                name,
                why,
                failure,
                registration_left,
            } => self
                .state
                .start_failed(&name, why, failure, registration_left, now),
            Outcome::Retired { name, outcome } => self.state.retire_done(&name, outcome, now),
            Outcome::ForceStopped { name, ok } => {
                if !ok {
                    self.state.retire_done(&name, RetireOutcome::Failed, now);
                }
            }
            Outcome::Cleaned {
                name,
                outcome,
                last_line,
            } => {
                if let (Some(rec), Some(line)) = (self.state.runners.get(&name), last_line) {
                    let pool = rec.pool.clone();
                    if let Some(pool) = pool.filter(|_| self.state.failed_recently(&name)) {
                        tracing::warn!(pool = %pool, "runner {name} failed; its last output line: {line}");
                        self.state
                            .explain_failure(&pool, &format!("last output: {line}"));
                    }
                }
                self.state.cleanup_done(&name, outcome, now);
            }
            Outcome::ContainerPidExited { name } => self.state.container_exited(&name, None, now),
            Outcome::ScaleSet { pool, report } => self.apply_scale_set(pool, report),
            Outcome::Queued {
                scope,
                jobs,
                running,
                counted_calls,
                note,
            } => {
                for j in &running {
                    if let Some(name) = &j.runner_name {
                        self.record
                            .job_seen(name, record::label_pool_job(&scope, j));
                    }
                }
                self.apply_queued(&scope, &jobs, counted_calls, note)
            }
            Outcome::Output { name, lines } => {
                for l in &lines {
                    if let crate::core::outcome::Line::SelfUpdate { version: Some(v) } =
                        crate::core::outcome::parse_line(l)
                    {
                        let m = &self.ctx.cfg.manager;
                        crate::engine::externals::note_self_update(
                            &m.runtime_dir,
                            &m.state_dir,
                            &name,
                            &v,
                        );
                    }
                }
                let before = self.state.runners.get(&name).map(|r| r.outcome.clone());
                self.state.runner_output(&name, &lines);
                if let (Some(b), Some(r)) = (before, self.state.runners.get(&name)) {
                    log_outcome_change(pool_label(r.pool.as_ref()), &name, &b, &r.outcome);
                }
            }
            Outcome::Pulled { pool, result } => {
                let interval = self.pull_interval_of(&pool);
                let result = result.map_err(|e| crate::core::pull::PullFailed(e.to_string()));
                self.state.pull_done(&pool, interval, result, now);
            }
            Outcome::Pruned { id, gone } => self.state.prune_done(&id, gone),
            Outcome::OrphanDone { id, gone } => self.state.orphan_done(id, gone, now),
            Outcome::EventsRestarted => self.state.resync_wanted = true,
            Outcome::SweepFailed { scope, why } => {
                self.state.sweep_failed(&scope, &why, &self.specs);
            }
            Outcome::Oom { container_id } => {
                let name = self
                    .state
                    .runner_by_container(&container_id)
                    .map(|r| (r.name.clone(), r.pool.clone(), r.oom_killed));
                if let Some((name, pool, known)) = name {
                    if !known {
                        tracing::error!(pool = %pool_label(pool.as_ref()), "{}", crate::core::oom_message(&name));
                    }
                    self.state.runner_oom(&name);
                }
            }
            Outcome::Swept(lists) => {
                self.state.apply_sweep(&lists, &self.specs, now);
            }
            Outcome::Resynced(Ok(seen)) => {
                let known: std::collections::BTreeSet<String> =
                    self.state.runners.keys().cloned().collect();
                self.state.apply_resync(&seen, now);
                let new: Vec<String> = seen
                    .iter()
                    .filter(|c| c.alive && !known.contains(&c.name))
                    .map(|c| c.name.clone())
                    .collect();
                self.follow_adopted(new);
            }
            Outcome::Resynced(Err(e)) => {
                tracing::warn!("podman ps failed: {e}");
                // Mark the resync finished without observations.
                self.state.resync_wanted = false;
                self.state.apply_resync_failed(now);
            }
            Outcome::Event(ev) => {
                let name = ev
                    .attributes
                    .get(labels::RUNNER_NAME)
                    .cloned()
                    .unwrap_or(ev.name.clone());
                match ev.status.as_str() {
                    "died" => {
                        if let Some(r) = self.state.runners.get(&name) {
                            match ev.exit_code {
                                c if judge::exit_means_oom(c, r.stop_requested) => tracing::warn!("runner {name} exited (code 137: killed by SIGKILL, out of memory at the pool's memory limit most likely)"),
                                Some(c) => tracing::info!("runner {name} exited (code {c})"),
                                None => tracing::info!("runner {name} exited"),
                            }
                        }
                        self.state.container_exited(&name, ev.exit_code, now)
                    }
                    "remove" => self.state.container_removed(&name, now),
                    "oom" => {
                        if let Some(r) = self.state.runners.get(&name) {
                            let pool = pool_label(r.pool.as_ref());
                            tracing::error!(pool = %pool, "{}", crate::core::oom_message(&name));
                        }
                        self.state.runner_oom(&name);
                    }
                    _ => {}
                }
            }
        }
        self.record_after(recorded);
    }

    /// Follows the output and exit of runners adopted from `podman ps` (their pid files are
    /// still there from the start that made them).
    pub(super) fn follow_adopted(&self, names: Vec<String>) {
        for name in names {
            let paths = crate::runner::Paths::of(&self.ctx.cfg, &name);
            tokio::spawn(watch::watch_container(
                paths.pidfile,
                paths.log,
                name,
                self.ctx.tx.clone(),
            ));
        }
    }
}

/// Logs what a runner's output newly told (a job taken, a job's end, a self-update).
pub(super) fn log_outcome_change(
    pool: &str,
    name: &str,
    before: &crate::core::outcome::RunnerOutcome,
    now: &crate::core::outcome::RunnerOutcome,
) {
    if before.job.is_none() {
        if let Some(job) = &now.job {
            tracing::info!(pool = %pool, "runner {name} took job {job:?}");
        }
    }
    if before.result.is_none() {
        if let Some(result) = &now.result {
            let secs = now
                .duration
                .map(|d| format!(" in {}s", d.as_secs()))
                .unwrap_or_default();
            tracing::info!(pool = %pool, "runner {name}: job {:?} {}{secs}", now.job.as_deref().unwrap_or(""), result.as_str());
        }
    }
    if now.self_updates > before.self_updates {
        tracing::warn!(pool = %pool, "runner {name} is updating itself: the image is stale; pulling a newer one");
    }
    if now.deprecated && !before.deprecated {
        tracing::error!(pool = %pool, "runner {name}: GitHub refuses its version as deprecated; pulling a newer image");
    }
}

/// One line per finished runner: the record a history or metrics module takes
/// ([`crate::core::Finished`]).
pub(super) fn log_finished(f: &crate::core::Finished) {
    tracing::debug!(
        pool = %pool_label(f.pool.as_ref()),
        "runner {} finished: {}",
        f.runner,
        serde_json::to_string(f).unwrap_or_default()
    );
}
