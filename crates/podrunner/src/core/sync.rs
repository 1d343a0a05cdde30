//! What the state learns from outside lists: GitHub's runner lists (verdicts of exits,
//! orphaned registrations, the fleet), `podman ps` (missed exits, adoption), image pulls
//! and prunes, stale folders, and draining.

use super::*;

impl State {
    /// Listing GitHub's runners of `scope` failed: the pools there show why (a revoked token,
    /// GitHub unreachable) even while no runner needs starting.
    pub fn sweep_failed(&mut self, scope: &Scope, why: &str, specs: &[PoolSpec]) {
        for s in specs.iter().filter(|s| &s.scope == scope) {
            let p = self.pool_mut(Some(&s.name));
            p.last_error = Some(format!("cannot list the runners of GitHub: {why}"));
            p.github_error = true;
        }
    }

    /// Names in a folder (secret or work folders) that belong to one of `specs`' pools but to
    /// no runner this state knows: left behind by a manager that was killed mid-start.
    pub fn stale_folders(&self, entries: &[String], specs: &[PoolSpec]) -> Vec<String> {
        entries
            .iter()
            .filter(|e| !self.runners.contains_key(e.as_str()))
            .filter(|e| specs.iter().any(|s| naming::belongs_to(&s.prefix, e)))
            .cloned()
            .collect()
    }

    /// A pull of `pool`'s image finished. `Ok(Some(old))`: a new image replaced `old` (removed
    /// once no container uses it); `Ok(None)`: nothing new.
    pub fn pull_done(
        &mut self,
        pool: &PoolName,
        pull_interval: Duration,
        result: Result<Option<String>, pull::PullFailed>,
        now: Instant,
    ) {
        let changed = matches!(result, Ok(Some(_)));
        if let Ok(Some(old)) = &result {
            if !old.is_empty() {
                self.stale_images.insert(old.clone());
                self.prune_wanted = true;
            }
        }
        let p = self.pool_mut(Some(pool));
        p.image
            .done(result.map(|o| o.is_some()), pull_interval, now);
        if changed && p.failures > 0 {
            // The old image was the trouble, most likely: the next runner starts at once.
            p.next_start_at = None;
        }
    }

    /// `podman image rm` of an old image: `true` when it is gone (or was).
    pub fn prune_done(&mut self, id: &str, gone: bool) {
        if gone {
            self.stale_images.remove(id);
        }
    }

    pub fn orphan_done(&mut self, id: u64, deleted_or_gone: bool, now: Instant) {
        if deleted_or_gone {
            self.orphans.remove(&id);
        } else if let Some(o) = self.orphans.get_mut(&id) {
            o.in_flight = false;
            o.retry_at = Some(now + CLEANUP_RETRY);
        }
    }

    /// GitHub's runner lists arrived (`None` for a scope whose list failed).
    pub fn apply_sweep(
        &mut self,
        lists: &[(Scope, Option<Vec<RegistrationSeen>>)],
        specs: &[PoolSpec],
        now: Instant,
    ) {
        let issued = self.sweep_in_flight.take().unwrap_or(now);
        self.last_sweep = Some(issued);
        if lists.iter().any(|(_, l)| l.is_none()) {
            self.sweep_failures = self.sweep_failures.saturating_add(1);
        } else {
            self.sweep_failures = 0;
        }
        for (scope, list) in lists {
            let Some(list) = list else { continue };
            let by_name: BTreeMap<&str, &RegistrationSeen> =
                list.iter().map(|g| (g.name.as_str(), g)).collect();
            let mut verdicts = Vec::new();
            for r in self
                .runners
                .values_mut()
                .filter(|r| r.scope.as_ref() == Some(scope))
            {
                match by_name.get(r.name.as_str()) {
                    Some(g) => {
                        r.busy = g.busy;
                        r.online = g.online;
                        if r.runner_id.is_none() {
                            r.runner_id = Some(g.id);
                        }
                    }
                    None => r.busy = false,
                }
                // Judge only exits that happened before this list was asked for.
                if r.phase == Phase::Exited
                    && r.verdict == Verdict::Pending
                    && r.exited_at.is_some_and(|t| t <= issued)
                {
                    let present = by_name.contains_key(r.name.as_str());
                    r.verdict = if present {
                        Verdict::Present
                    } else {
                        Verdict::Gone
                    };
                    verdicts.push((
                        r.pool.clone(),
                        r.name.clone(),
                        present && !r.outcome.took_job(),
                        r.stop_requested || r.failed,
                        r.oom_killed,
                    ));
                }
            }
            for s in specs.iter().filter(|s| &s.scope == scope) {
                let p = self.pool_mut(Some(&s.name));
                if p.github_error {
                    p.github_error = false;
                    p.last_error = None;
                }
            }
            for (pool, name, present, expected, oom) in verdicts {
                if expected {
                    continue;
                }
                if oom && !present {
                    // The job ran (and maybe failed); keep saying why it struggled.
                    self.succeed_runner(&name);
                    self.pool_mut(pool.as_ref()).last_error = Some(oom_message(&name));
                } else if present {
                    let line = self
                        .runners
                        .get(&name)
                        .and_then(|r| r.outcome.reason_line().map(str::to_string));
                    let why = match line {
                        Some(l) => format!("runner {name} exited without running a job: {l}"),
                        None => format!("runner {name} exited without running a job"),
                    };
                    self.fail_runner(&name, now, why);
                } else {
                    self.succeed_runner(&name);
                }
            }
            // Registrations nobody here knows (docs/hosts.md): this host's own are deleted at
            // once unless busy; the pool's on other hosts only once provably dead.
            let listed: BTreeSet<u64> = list.iter().map(|g| g.id).collect();
            self.fleet_offline.retain(|id, _| listed.contains(id));
            for g in list {
                if self.runners.contains_key(&g.name) || self.orphans.contains_key(&g.id) {
                    continue;
                }
                let pools = specs.iter().filter(|s| &s.scope == scope);
                let ours = pools
                    .clone()
                    .any(|s| naming::belongs_to(&s.prefix, &g.name));
                let fleet = !ours
                    && pools
                        .clone()
                        .any(|s| !s.family.is_empty() && naming::fleet_member(&s.family, &g.name));
                let dead = if ours {
                    !g.busy
                } else if fleet {
                    if g.online || g.busy {
                        self.fleet_offline.remove(&g.id);
                        false
                    } else {
                        let since = *self.fleet_offline.entry(g.id).or_insert(now);
                        now.duration_since(since) >= FLEET_OFFLINE_GRACE
                    }
                } else {
                    false
                };
                if dead {
                    self.fleet_offline.remove(&g.id);
                    self.orphans.insert(
                        g.id,
                        Orphan {
                            scope: scope.clone(),
                            name: g.name.clone(),
                            in_flight: false,
                            retry_at: None,
                        },
                    );
                }
            }
        }
    }

    /// Scopes to list in a sweep: those of the pools and of every runner we hold.
    pub fn scopes(&self, specs: &[PoolSpec]) -> Vec<Scope> {
        let mut v: Vec<Scope> = specs.iter().map(|s| s.scope.clone()).collect();
        v.extend(self.runners.values().filter_map(|r| r.scope.clone()));
        v.extend(self.orphans.values().map(|o| o.scope.clone()));
        // In the order of their API paths, each once.
        v.sort_by_key(|s| s.api_path());
        v.dedup();
        v
    }

    /// Records that a `podman ps` was asked for now (used at start-up, before the first plan).
    pub fn mark_resync_issued(&mut self, now: Instant) {
        self.resync_in_flight = Some(now);
    }

    /// A `podman ps` failed: allow the next one after the usual interval.
    pub fn apply_resync_failed(&mut self, now: Instant) {
        let issued = self.resync_in_flight.take().unwrap_or(now);
        self.last_resync = Some(issued);
    }

    /// `podman ps` of our containers arrived.
    pub fn apply_resync(&mut self, seen: &[ContainerSeen], now: Instant) {
        let issued = self.resync_in_flight.take().unwrap_or(now);
        self.last_resync = Some(issued);
        let by_name: BTreeMap<&str, &ContainerSeen> =
            seen.iter().map(|c| (c.name.as_str(), c)).collect();
        let gone: Vec<(String, Option<i32>, bool)> = self
            .runners
            .values()
            .filter(|r| matches!(r.phase, Phase::Running | Phase::Retiring))
            .filter(|r| r.running_since.is_some_and(|t| t < issued))
            .filter_map(|r| match by_name.get(r.name.as_str()) {
                None => Some((r.name.clone(), None, true)),
                Some(c) if !c.alive => Some((r.name.clone(), c.exit_code, false)),
                Some(_) => None,
            })
            .collect();
        for (name, code, missing) in gone {
            self.container_exited(&name, code, now);
            if missing {
                if let Some(r) = self.runners.get_mut(&name) {
                    r.container_gone = true;
                }
            }
        }
        for c in seen {
            if self.runners.contains_key(&c.name) {
                continue;
            }
            let mut r = RunnerRec::new(&c.name, c.pool.clone(), c.scope.clone(), now);
            r.adopted = true;
            r.runner_id = c.runner_id;
            r.container_id = Some(c.id.clone());
            if c.alive {
                r.phase = Phase::Running;
                r.running_since = Some(now);
            } else {
                r.phase = Phase::Exited;
                r.exited_at = Some(now);
                r.exit_code = c.exit_code;
                r.verdict = if r.runner_id.is_some() {
                    Verdict::Present
                } else {
                    Verdict::Gone
                };
                // An exited container left behind (e.g. --rm failed) must be removed too.
                r.stop_requested = true;
            }
            self.runners.insert(c.name.clone(), r);
        }
    }

    pub fn start_drain(&mut self, now: Instant, timeout: Duration) {
        if !self.draining {
            self.draining = true;
            self.drain_deadline = Some(now + timeout);
        }
    }

    /// Draining and nothing left to wait for.
    pub fn is_drained(&self) -> bool {
        self.draining && self.runners.is_empty() && self.orphans.values().all(|o| !o.in_flight)
    }
}
