//! Where the loop calls the recorder: before and after the core applies an outcome, and the
//! web listener that serves the metrics.

use super::*;

/// What [`crate::manager::Manager::record_after`] still has to do once an outcome is applied.
pub(in crate::manager) enum After {
    Nothing,
    Swept,
    Cleaned(String),
}

impl crate::manager::Manager {
    /// The hooks that look at an outcome before the core applies it.
    pub(in crate::manager) fn record_before(&mut self, o: &crate::manager::Outcome) -> After {
        use crate::manager::Outcome;
        let cfg = self.ctx.cfg.clone();
        let r = &mut self.record;
        match o {
            Outcome::Registered { name, runner_id } => r.registered(name, *runner_id),
            Outcome::Started { name, container_id } => r.started(name, container_id),
            Outcome::StartFailed {
                name, why, failure, ..
            } => r.start_failed(name, why, *failure),
            Outcome::ContainerPidExited { name } => r.exited(&cfg, name, None),
            Outcome::Oom { container_id } => {
                let name = self.state.runner_by_container(container_id);
                if let Some(x) = name {
                    r.oom(&x.name);
                }
            }
            Outcome::Event(ev) => {
                let name = ev
                    .attributes
                    .get(crate::podman::labels::RUNNER_NAME)
                    .unwrap_or(&ev.name);
                match ev.status.as_str() {
                    // Podman leaves `ContainerExitCode` out of a `died` event when it is 0.
                    "died" => r.exited(&cfg, name, ev.exit_code.or(Some(0))),
                    "oom" => r.oom(name),
                    _ => {}
                }
            }
            Outcome::Swept(_) => return After::Swept,
            Outcome::Cleaned { name, .. } => {
                if let Some(rec) = self.state.runners.get(name) {
                    r.cleaned(rec, reported_job(&rec.outcome));
                }
                return After::Cleaned(name.clone());
            }
            _ => {}
        }
        After::Nothing
    }

    pub(in crate::manager) fn record_after(&mut self, a: After) {
        match a {
            After::Nothing => {}
            After::Swept => self.record.swept(&self.state),
            After::Cleaned(name) => {
                if !self.state.runners.contains_key(&name) {
                    self.record.forget(&name);
                }
            }
        }
    }
}

impl crate::manager::Manager {
    /// Binds `[manager] listen` and serves metrics and the status page (web/); the loop
    /// answers the snapshot requests that arrive on `snapshots`' other end.
    pub(in crate::manager) async fn start_web(
        &self,
        snapshots: tokio::sync::mpsc::Sender<crate::web::SnapshotRequest>,
    ) -> anyhow::Result<Option<tokio::task::JoinHandle<()>>> {
        let cfg = &self.ctx.cfg;
        let Some(listen) = &cfg.manager.listen else {
            // Keep the channel open: the loop's receiver then simply waits.
            std::mem::forget(snapshots);
            return Ok(None);
        };
        let listener = crate::web::bind(listen).await?;
        tracing::info!("metrics at http://{listen}/metrics, status page at http://{listen}/");
        let state = crate::web::WebState {
            metrics: self.record.metrics.clone(),
            gh: self.ctx.gh.clone(),
            snapshots,
            history: cfg
                .manager
                .history
                .then(|| History::path_in(&cfg.manager.state_dir)),
        };
        Ok(Some(tokio::spawn(crate::web::serve(listener, state))))
    }
}
