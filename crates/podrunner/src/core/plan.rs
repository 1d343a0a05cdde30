//! [`State::plan`]: the next actions from the state, the pools' specs and the time.

use super::*;

impl State {
    /// Decides the next actions and marks them in flight. `suffix` makes unique name
    /// suffixes (random in the manager, fixed in tests).
    pub fn plan(
        &mut self,
        specs: &[PoolSpec],
        now: Instant,
        suffix: &mut dyn FnMut() -> String,
    ) -> Vec<Action> {
        let mut actions = Vec::new();
        for s in specs {
            self.pool_mut(Some(&s.name)).restart_delay = s.restart_delay;
        }
        let due = |t: Option<Instant>| t.is_none_or(|t| t <= now);

        // GitHub's list: when an exit awaits its verdict, on request, or periodically.
        let verdict_pending = self
            .runners
            .values()
            .any(|r| r.phase == Phase::Exited && r.verdict == Verdict::Pending);
        let sweep_gap = SWEEP_MIN_INTERVAL
            .saturating_mul(2u32.saturating_pow(self.sweep_failures.min(16)))
            .min(SWEEP_BACKOFF_CAP);
        let sweep_gap_ok = self
            .last_sweep
            .is_none_or(|t| now.duration_since(t) >= sweep_gap);
        let sweep_stale = self
            .last_sweep
            .is_none_or(|t| now.duration_since(t) >= SWEEP_INTERVAL);
        if self.sweep_in_flight.is_none()
            && sweep_gap_ok
            && (verdict_pending || self.sweep_wanted || sweep_stale)
        {
            self.sweep_in_flight = Some(now);
            self.sweep_wanted = false;
            actions.push(Action::Sweep);
        }
        let resync_stale = self
            .last_resync
            .is_none_or(|t| now.duration_since(t) >= PODMAN_RESYNC_INTERVAL);
        if self.resync_in_flight.is_none() && (self.resync_wanted || resync_stale) {
            self.resync_in_flight = Some(now);
            self.resync_wanted = false;
            actions.push(Action::Resync);
        }

        // Exited runners: clean up once the verdict is known.
        for r in self.runners.values_mut() {
            if r.phase == Phase::Exited && r.verdict != Verdict::Pending && due(r.retry_at) {
                r.phase = Phase::CleaningUp;
                r.retry_at = None;
                let delete_id = if r.verdict == Verdict::Present {
                    r.runner_id
                } else {
                    None
                };
                actions.push(Action::Cleanup {
                    name: r.name.clone(),
                    scope: r.scope.clone(),
                    pool: r.pool.clone(),
                    delete_id,
                    remove_container: !r.container_gone && r.container_id.is_some(),
                });
            }
        }
        // Runners that never came online (run.sh restarts a failing listener forever).
        let stuck: Vec<(String, Duration)> = self
            .runners
            .values()
            .filter(|r| r.phase == Phase::Running && !r.stop_requested && !r.came_online())
            .filter_map(|r| {
                let timeout = specs
                    .iter()
                    .find(|s| r.pool.as_ref() == Some(&s.name))?
                    .online_timeout;
                let since = r.running_since?;
                (!timeout.is_zero() && now.duration_since(since) >= timeout)
                    .then(|| (r.name.clone(), timeout))
            })
            .collect();
        for (name, timeout) in stuck {
            let line = self.runners[&name]
                .outcome
                .reason_line()
                .map(str::to_string);
            let why = format!(
                "runner {name} did not come online within {}{}\n  fix: read its output with `podrunner logs {name}`; raise `online_timeout` if the image is slow to start",
                humantime::format_duration(timeout),
                line.map(|l| format!("; its last error: {l}")).unwrap_or_default()
            );
            self.fail_runner(&name, now, why);
            if let Some(r) = self.runners.get_mut(&name) {
                r.phase = Phase::Retiring;
                r.stop_requested = true;
                actions.push(Action::Retire {
                    name,
                    scope: r.scope.clone(),
                    runner_id: r.runner_id,
                    stop_timeout: stop_timeout(specs, r.pool.as_ref()),
                });
            }
        }

        // Images: pulls, and old images to remove.
        for s in specs {
            let p = self.pool_mut(Some(&s.name));
            if let Some(reason) = p.image.due(s.pull, now) {
                p.image.begin(reason, now);
                actions.push(Action::PullImage {
                    pool: s.name.clone(),
                    reason,
                });
            }
        }
        if std::mem::take(&mut self.prune_wanted) {
            actions.extend(
                self.stale_images
                    .iter()
                    .map(|id| Action::PruneImage { id: id.clone() }),
            );
        }

        for (id, o) in self.orphans.iter_mut() {
            if !o.in_flight && due(o.retry_at) {
                o.in_flight = true;
                actions.push(Action::DeleteOrphan {
                    scope: o.scope.clone(),
                    id: *id,
                });
            }
        }

        // Pool sizes. Pools that left the config want 0.
        // Runners of no pool (`None`) are one more pool that wants 0.
        let mut pool_names: BTreeSet<Option<PoolName>> =
            self.runners.values().map(|r| r.pool.clone()).collect();
        pool_names.extend(specs.iter().map(|s| Some(s.name.clone())));
        let forced = self.draining && self.drain_deadline.is_some_and(|d| now >= d);
        for pool in pool_names {
            let spec = specs.iter().find(|s| pool.as_ref() == Some(&s.name));
            let desired = match spec {
                Some(s) if !self.draining => s.desired as usize,
                _ => 0,
            };
            let live = self
                .runners
                .values()
                .filter(|r| r.pool == pool && r.is_live())
                .count();
            if live < desired {
                let Some(s) = spec else { continue };
                let present = self
                    .runners
                    .values()
                    .filter(|r| r.pool == pool && r.holds_a_place())
                    .count();
                let room = s
                    .cap
                    .map_or(usize::MAX, |c| (c as usize).saturating_sub(present));
                if room == 0 {
                    continue;
                }
                let ps = self.pool_mut(Some(&s.name));
                if !due(ps.next_start_at) {
                    continue;
                }
                // After a failure, probe with one runner at a time.
                let n = if ps.failures > 0 { 1 } else { desired - live }.min(room);
                ps.next_start_at = None;
                for _ in 0..n {
                    let name = naming::runner_name(&s.prefix, &suffix());
                    self.runners.insert(
                        name.clone(),
                        RunnerRec::new(&name, Some(s.name.clone()), Some(s.scope.clone()), now),
                    );
                    actions.push(Action::Start {
                        pool: s.name.clone(),
                        name,
                    });
                }
            } else if live > desired {
                // Demand pools keep an idle runner for its idle time: a job may be on its way.
                let idle_timeout = spec.and_then(|s| s.idle_timeout).filter(|_| !self.draining);
                let waited_enough = |r: &RunnerRec| {
                    idle_timeout.is_none_or(|t| {
                        r.running_since
                            .is_some_and(|s| now.saturating_duration_since(s) >= t)
                    })
                };
                let mut idle: Vec<&mut RunnerRec> = self
                    .runners
                    .values_mut()
                    .filter(|r| {
                        r.pool == pool
                            && r.is_live()
                            && r.phase == Phase::Running
                            && !r.busy
                            && due(r.retry_at)
                            && waited_enough(r)
                    })
                    .collect();
                idle.sort_by_key(|r| r.created);
                for r in idle.into_iter().take(live - desired) {
                    r.phase = Phase::Retiring;
                    r.stop_requested = true;
                    actions.push(Action::Retire {
                        name: r.name.clone(),
                        scope: r.scope.clone(),
                        runner_id: r.runner_id,
                        stop_timeout: stop_timeout(specs, r.pool.as_ref()),
                    });
                }
            }
            if forced {
                for r in self
                    .runners
                    .values_mut()
                    .filter(|r| r.pool == pool && r.phase == Phase::Running)
                {
                    r.phase = Phase::Retiring;
                    r.stop_requested = true;
                    actions.push(Action::ForceStop {
                        name: r.name.clone(),
                        stop_timeout: stop_timeout(specs, r.pool.as_ref()),
                    });
                }
            }
        }
        actions
    }
}
