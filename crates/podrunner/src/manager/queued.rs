//! The queued-job poller of a repository's label pools (docs/scaling.md, "Label pools"): reads
//! the queued and in-progress workflow runs and their jobs with conditional requests, within
//! an hourly budget of counted calls ([`crate::core::demand::POLL_BUDGET_PER_HOUR`]), and
//! reports the `runs-on` labels of every queued job to the manager's loop. A webhook only
//! wakes it early: what it reads here is the truth.

use super::Outcome;
use crate::config::names::Scope;
use crate::core::demand::{PollBudget, POLL_BUDGET_PER_HOUR};
use crate::github::queued::{Conditional, RunJob};
use crate::github::Client;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc::UnboundedSender, watch, Notify};

/// The budget's window.
const BUDGET_WINDOW: Duration = Duration::from_secs(3600);
/// Run statuses whose jobs may still wait: a run with several jobs is in progress while some
/// of them are queued.
const RUN_STATUSES: [&str; 2] = ["queued", "in_progress"];

/// Starts the poller of `scope`; it runs until `stop` says true. `wake` polls at once.
pub fn spawn(
    gh: Arc<Client>,
    scope: Scope,
    interval: Duration,
    tx: UnboundedSender<Outcome>,
    wake: Arc<Notify>,
    stop: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(run(gh, scope, interval, tx, wake, stop))
}

#[derive(Default)]
struct Cache {
    /// Per run status: the list's ETag and run ids.
    lists: BTreeMap<&'static str, (Option<String>, Vec<u64>)>,
    /// Per run: the jobs' ETag and jobs.
    jobs: BTreeMap<u64, (Option<String>, Vec<RunJob>)>,
}

async fn run(
    gh: Arc<Client>,
    scope: Scope,
    interval: Duration,
    tx: UnboundedSender<Outcome>,
    wake: Arc<Notify>,
    mut stop: watch::Receiver<bool>,
) {
    let mut budget = PollBudget::new(POLL_BUDGET_PER_HOUR, BUDGET_WINDOW);
    let mut cache = Cache::default();
    loop {
        if *stop.borrow() {
            return;
        }
        // Registered before the round, so a webhook that arrives while it runs still wakes
        // the next one (`notify_waiters` wakes only futures already registered).
        let woken = wake.notified();
        tokio::pin!(woken);
        woken.as_mut().enable();
        let note = poll(&gh, &scope, &mut cache, &mut budget)
            .await
            .err()
            .map(|e| e.to_string());
        if let Some(n) = &note {
            tracing::warn!("queued jobs of {scope}: {n}");
        }
        let jobs: Vec<Vec<String>> = cache
            .jobs
            .values()
            .flat_map(|(_, jobs)| jobs.iter())
            .filter(|j| j.status == "queued")
            .map(|j| j.labels.clone())
            .collect();
        let running = cache
            .jobs
            .values()
            .flat_map(|(_, jobs)| jobs.iter())
            .filter(|j| j.status == "in_progress" && j.runner_name.is_some())
            .cloned()
            .collect();
        let _ = tx.send(Outcome::Queued {
            scope: scope.api_path(),
            jobs,
            running,
            counted_calls: budget.used,
            note,
        });
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = &mut woken => tracing::debug!("a webhook woke the poller of {scope}"),
            _ = stop.changed() => return,
        }
    }
}

/// Why a round of polling stopped early (shown as the pools' note in status).
#[derive(Debug, thiserror::Error)]
enum PollError {
    #[error("the polling budget of {limit} calls an hour is spent; polling again in {}s", refills_in.as_secs())]
    BudgetSpent { limit: u32, refills_in: Duration },
    #[error(transparent)]
    GitHub(#[from] crate::github::Error),
}

/// One round: the run lists, then the jobs of every run they name.
async fn poll(
    gh: &Client,
    scope: &Scope,
    cache: &mut Cache,
    budget: &mut PollBudget,
) -> Result<(), PollError> {
    let spent = |budget: &mut PollBudget| -> Result<(), PollError> {
        let now = Instant::now();
        if budget.allows(now) {
            return Ok(());
        }
        Err(PollError::BudgetSpent {
            limit: budget.limit,
            refills_in: budget.refills_in(now).unwrap_or_default(),
        })
    };
    for status in RUN_STATUSES {
        spent(budget)?;
        let etag = cache.lists.get(status).and_then(|(e, _)| e.clone());
        match gh.runs_in_status(scope, status, etag.as_deref()).await {
            Ok(Conditional::Modified { value, etag }) => {
                budget.spend(Instant::now());
                cache.lists.insert(status, (etag, value));
            }
            Ok(Conditional::NotModified) => {}
            Err(e) => {
                budget.spend(Instant::now());
                return Err(e.into());
            }
        }
    }
    let runs: BTreeSet<u64> = cache
        .lists
        .values()
        .flat_map(|(_, ids)| ids.iter().copied())
        .collect();
    cache.jobs.retain(|id, _| runs.contains(id));
    for run in runs {
        spent(budget)?;
        let etag = cache.jobs.get(&run).and_then(|(e, _)| e.clone());
        match gh.run_jobs(scope, run, etag.as_deref()).await {
            Ok(Conditional::Modified { value, etag }) => {
                budget.spend(Instant::now());
                cache.jobs.insert(run, (etag, value));
            }
            Ok(Conditional::NotModified) => {}
            Err(crate::github::Error::NotFound(_)) => {
                budget.spend(Instant::now());
                cache.jobs.remove(&run);
            }
            Err(e) => {
                budget.spend(Instant::now());
                return Err(e.into());
            }
        }
    }
    Ok(())
}
