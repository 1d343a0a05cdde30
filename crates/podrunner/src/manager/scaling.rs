//! Demand pools in the loop: their size from what GitHub reported (core/demand.rs), and
//! the listeners that report it (scale set sessions, queued-job pollers).

use super::*;

/// How long a stopping manager waits for its scale set listeners to close their sessions.
const LISTENER_STOP_WAIT: Duration = Duration::from_secs(5);

/// The owner GitHub names in a session conflict ("... already has an active session for
/// owner NAME."), when its message says.
pub fn conflict_owner(message: &str) -> Option<String> {
    let i = message.find("owner ")?;
    let rest = &message[i + "owner ".len()..];
    let name = rest
        .trim_start_matches(['\'', '"'])
        .split(['\'', '"', ' '])
        .next()?
        .trim_end_matches('.');
    (!name.is_empty()).then(|| name.to_string())
}

impl Manager {
    /// Sets the size of demand pools from what GitHub last reported (core/demand.rs). A scale
    /// set pool wants nothing while another host holds its session.
    pub(super) fn size(&self, specs: &mut [PoolSpec]) {
        use crate::core::demand::{self, Bounds, Mode};
        for s in specs.iter_mut() {
            let Some(p) = self.ctx.cfg.pool(s.name.as_str()) else {
                continue;
            };
            if p.mode == Mode::Fixed {
                continue;
            }
            let sc = self
                .scaling
                .get(s.name.as_str())
                .cloned()
                .unwrap_or_default();
            let bounds = Bounds {
                min_idle: self
                    .overrides
                    .get(s.name.as_str())
                    .copied()
                    .unwrap_or(p.min_idle)
                    .min(p.max),
                max: p.max,
            };
            let busy = self.state.count_running(&s.name, true);
            s.desired = match p.mode {
                Mode::ScaleSet if !sc.session_held => 0,
                m => demand::desired(m, p.count, bounds, sc.demand, busy),
            };
        }
    }

    /// This turn's specs: the config's pools with overrides, sized by demand.
    pub(super) fn refresh_specs(&mut self) {
        let mut specs = specs(&self.ctx.cfg, &self.overrides);
        self.size(&mut specs);
        self.specs = specs;
    }

    /// Starts a listener for every scale set pool that has none; stops those of pools that
    /// are gone or no longer scale sets.
    pub(super) fn sync_listeners(&mut self) {
        let wanted: BTreeMap<String, config::PoolConfig> = self
            .ctx
            .cfg
            .pools
            .iter()
            .filter(|p| p.scale_set.is_some() && !self.state.draining)
            .map(|p| (p.name.to_string(), p.clone()))
            .collect();
        let pollers = self.wanted_pollers();
        let gone: Vec<String> = self
            .listeners
            .keys()
            .filter(|k| !wanted.contains_key(*k) && !pollers.contains_key(*k))
            .cloned()
            .collect();
        for k in gone {
            if let Some((_, stop)) = self.listeners.get(&k) {
                let _ = stop.send(true);
            }
        }
        for (key, (scope, interval)) in self.wanted_pollers() {
            if self.listeners.contains_key(&key) {
                continue;
            }
            let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
            let h = queued::spawn(
                self.ctx.gh.clone(),
                scope,
                interval,
                self.ctx.tx.clone(),
                self.queued_wake.clone(),
                stop_rx,
            );
            self.listeners.insert(key, (h, stop_tx));
        }
        for (name, p) in wanted {
            if self.listeners.contains_key(&name) {
                continue;
            }
            let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
            let h = scaleset::spawn(
                &self.ctx.scale_sets,
                self.ctx.gh.clone(),
                p,
                scaleset::owner_name(self.ctx.cfg.manager.instance.as_str()),
                self.ctx.cfg.manager.state_dir.clone(),
                self.ctx.tx.clone(),
                stop_rx,
            );
            self.listeners.insert(name, (h, stop_tx));
        }
    }

    /// One queued-job poller per repository with label demand pools, keyed among the
    /// listeners by its name: the scope and the shortest `poll_interval` of those pools.
    pub(super) fn wanted_pollers(&self) -> BTreeMap<String, (config::names::Scope, Duration)> {
        let mut out: BTreeMap<String, (config::names::Scope, Duration)> = BTreeMap::new();
        if self.state.draining {
            return out;
        }
        for p in self
            .ctx
            .cfg
            .pools
            .iter()
            .filter(|p| p.mode == crate::core::demand::Mode::Labels)
        {
            let e = out
                .entry(format!("queued jobs of {}", p.scope))
                .or_insert_with(|| (p.scope.clone(), p.poll_interval));
            e.1 = e.1.min(p.poll_interval);
        }
        out
    }

    /// Stops every listener (their sessions are deleted) and waits a little for them.
    pub(super) async fn stop_listeners(&mut self) {
        for (_, stop) in self.listeners.values() {
            let _ = stop.send(true);
        }
        for (name, (h, _)) in std::mem::take(&mut self.listeners) {
            if tokio::time::timeout(LISTENER_STOP_WAIT, h).await.is_err() {
                tracing::warn!(pool = %name, "the scale set listener did not stop in time");
            }
        }
    }

    /// The label demand pools of a scope, in config order, with their labels.
    pub(super) fn label_pools(&self, scope: &str) -> Vec<(crate::core::PoolName, Vec<String>)> {
        self.ctx
            .cfg
            .pools
            .iter()
            .filter(|p| p.mode == crate::core::demand::Mode::Labels && p.scope.api_path() == scope)
            .map(|p| (p.name.clone(), p.labels.clone()))
            .collect()
    }

    pub(super) fn apply_queued(
        &mut self,
        scope: &str,
        jobs: &[Vec<String>],
        calls: u32,
        note: Option<String>,
    ) {
        let counts = crate::core::demand::queued_per_pool(&self.label_pools(scope), jobs);
        let now = Instant::now();
        for (pool, n) in counts {
            let sc = self.scaling.entry(pool.to_string()).or_default();
            if sc.demand.queued != n {
                tracing::debug!(pool = %pool, "{n} queued jobs for this pool ({calls} counted calls this hour)");
            }
            sc.demand.queued = n;
            sc.reported_at = Some(now);
            sc.note = note.clone();
        }
    }

    pub(super) fn apply_scale_set(&mut self, pool: String, report: scaleset::Report) {
        use scaleset::Report;
        let now = Instant::now();
        let sc = self.scaling.entry(pool.clone()).or_default();
        match report {
            Report::Ready { id } => sc.scale_set_id = Some(id),
            Report::Session { owner, statistics } => {
                sc.session_owner = Some(owner);
                sc.session_held = true;
                sc.note = None;
                if let Some(st) = statistics {
                    sc.demand.assigned = st.total_assigned_jobs;
                    sc.statistics = Some(st);
                    sc.reported_at = Some(now);
                }
            }
            Report::Message {
                statistics,
                started,
                completed,
                acquired,
            } => {
                sc.note = None;
                if let Some(st) = statistics {
                    sc.demand.assigned = st.total_assigned_jobs;
                    sc.statistics = Some(st);
                }
                sc.reported_at = Some(now);
                tracing::debug!(pool = %pool, "scale set message: {} assigned jobs, {acquired} acquired, {} started, {completed} completed", sc.demand.assigned, started.len());
                for e in started {
                    let Some(name) = &e.runner_name else { continue };
                    self.state.mark_busy(name);
                    self.record.job_seen(name, record::scale_set_job(&e));
                }
            }
            Report::Conflict { message } => {
                sc.session_held = false;
                sc.session_owner =
                    Some(conflict_owner(&message).unwrap_or_else(|| "another host".into()));
                sc.note = Some(message);
            }
            Report::Failed { why, retry_in } => {
                sc.session_held = false;
                sc.note = Some(format!("{why} (retrying in {}s)", retry_in.as_secs()));
            }
            Report::Closed => {
                sc.session_held = false;
                sc.session_owner = None;
            }
        }
    }
}
