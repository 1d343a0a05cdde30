//! Single facts read the same way everywhere: what an exit code says, which runner an OOM
//! report's container id names, whether a pool's last failure was a given runner's, and the
//! counts status and scaling read from the state. Pure; the manager only logs what they say.

use super::{PoolName, PoolState, RunnerRec, State};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

/// 128 + SIGKILL. Not asked for by podrunner, it is the OOM killer at the pool's memory limit
/// most of the time (Podman reports `OOMKilled: false` when the kernel kills a process inside
/// the container rather than its main process; docs/runner-output.md).
pub const EXIT_SIGKILL: i32 = 137;

/// An exit with `code` of a runner podrunner did not ask to stop means out of memory, most
/// likely.
pub fn exit_means_oom(code: Option<i32>, stop_requested: bool) -> bool {
    code == Some(EXIT_SIGKILL) && !stop_requested
}

/// Whether a container id a report names (`reported`, the full id from the cgroup, or a short
/// one) is the container we know as `known`: one is a prefix of the other.
pub fn same_container(known: &str, reported: &str) -> bool {
    !known.is_empty()
        && !reported.is_empty()
        && (reported.starts_with(known) || known.starts_with(reported))
}

impl State {
    /// The runner whose container an OOM report (or any report by container id) names.
    pub fn runner_by_container(&self, container_id: &str) -> Option<&RunnerRec> {
        self.runners.values().find(|r| {
            r.container_id
                .as_deref()
                .is_some_and(|c| same_container(c, container_id))
        })
    }

    /// The pool's last failure is `name`'s: its last output line then explains it.
    pub fn failed_recently(&self, name: &str) -> bool {
        let Some(r) = self.runners.get(name) else {
            return false;
        };
        r.pool
            .as_ref()
            .and_then(|p| self.pools.get(p))
            .and_then(|p| p.last_error.as_deref())
            .is_some_and(|e| e.contains(name))
    }

    /// Running runners of `pool` that GitHub lists busy (or idle), not being stopped.
    pub fn count_running(&self, pool: &PoolName, busy: bool) -> u32 {
        self.runners
            .values()
            .filter(|r| r.pool.as_ref() == Some(pool) && r.phase == super::Phase::Running)
            .filter(|r| r.busy == busy && !r.stop_requested)
            .count() as u32
    }

    /// Runners that count toward `pool`'s size ([`RunnerRec::is_live`]).
    pub fn live_count(&self, pool: &PoolName) -> u32 {
        self.runners
            .values()
            .filter(|r| r.pool.as_ref() == Some(pool) && r.is_live())
            .count() as u32
    }

    /// The container ids of running runners: what the OOM watcher reads counters of.
    pub fn running_container_ids(&self) -> BTreeSet<String> {
        self.runners
            .values()
            .filter(|r| r.phase == super::Phase::Running)
            .filter_map(|r| r.container_id.clone())
            .collect()
    }
}

impl PoolState {
    /// How long the pool still backs off after failures (at least a second while it does).
    pub fn backing_off(&self, now: Instant) -> Option<Duration> {
        (self.failures > 0)
            .then_some(self.next_start_at)
            .flatten()
            .filter(|t| *t > now)
            .map(|t| Duration::from_secs(t.duration_since(now).as_secs().max(1)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::Phase;

    #[test]
    fn code_137_means_oom_unless_asked_for() {
        assert!(exit_means_oom(Some(137), false));
        assert!(!exit_means_oom(Some(137), true));
        assert!(!exit_means_oom(Some(1), false));
        assert!(!exit_means_oom(Some(143), false));
        assert!(!exit_means_oom(None, false));
    }

    #[test]
    fn container_ids_match_by_prefix_either_way() {
        let full = "3f1c2a9e0b7d4c5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6";
        assert!(same_container(full, "3f1c2a9e0b7d"));
        assert!(same_container("3f1c2a9e0b7d", full));
        assert!(same_container(full, full));
        assert!(!same_container(full, "3f1c2a9e0b7e"));
        assert!(!same_container("", full));
        assert!(!same_container(full, ""));
    }

    fn state() -> State {
        let t = Instant::now();
        let mut s = State::new();
        for (name, pool, cid, phase, busy) in [
            ("ci-1", "a", Some("aaaa1111"), Phase::Running, true),
            ("ci-2", "a", Some("bbbb2222"), Phase::Running, false),
            ("ci-3", "a", None, Phase::Registering, false),
            ("ci-4", "b", Some("cccc3333"), Phase::Exited, false),
        ] {
            let mut r = RunnerRec::new(name, PoolName::new(pool).ok(), None, t);
            r.container_id = cid.map(str::to_string);
            r.phase = phase;
            r.busy = busy;
            s.runners.insert(name.into(), r);
        }
        s
    }

    #[test]
    fn a_report_by_container_id_finds_its_runner() {
        let s = state();
        assert_eq!(
            s.runner_by_container("bbbb2222ffff")
                .map(|r| r.name.as_str()),
            Some("ci-2")
        );
        assert_eq!(
            s.runner_by_container("cccc").map(|r| r.name.as_str()),
            Some("ci-4")
        );
        assert_eq!(s.runner_by_container("dddd"), None);
        assert_eq!(s.runner_by_container(""), None);
    }

    #[test]
    fn failed_recently_reads_the_pools_last_error() {
        let mut s = state();
        assert!(!s.failed_recently("ci-2"));
        s.pools
            .entry(PoolName::new("a").unwrap())
            .or_default()
            .last_error = Some("runner ci-2 exited with code 1".into());
        assert!(s.failed_recently("ci-2"));
        assert!(!s.failed_recently("ci-1"));
        // Another pool's error, or an unknown runner, says nothing.
        assert!(!s.failed_recently("ci-4"));
        assert!(!s.failed_recently("ci-9"));
    }

    #[test]
    fn counts_for_status_and_scaling() {
        let mut s = state();
        let a = PoolName::new("a").unwrap();
        assert_eq!(s.count_running(&a, true), 1);
        assert_eq!(s.count_running(&a, false), 1);
        assert_eq!(s.live_count(&a), 3);
        assert_eq!(s.live_count(&PoolName::new("b").unwrap()), 0);
        s.runners.get_mut("ci-1").unwrap().stop_requested = true;
        assert_eq!(s.count_running(&a, true), 0);
        assert_eq!(s.live_count(&a), 2);
        assert_eq!(
            s.running_container_ids().into_iter().collect::<Vec<_>>(),
            vec!["aaaa1111", "bbbb2222"]
        );
    }

    #[test]
    fn backing_off_only_after_failures_and_until_the_next_start() {
        let t = Instant::now();
        let mut p = PoolState {
            next_start_at: Some(t + Duration::from_millis(2500)),
            ..PoolState::default()
        };
        assert_eq!(p.backing_off(t), None);
        p.failures = 1;
        assert_eq!(p.backing_off(t), Some(Duration::from_secs(2)));
        assert_eq!(
            p.backing_off(t + Duration::from_millis(2200)),
            Some(Duration::from_secs(1))
        );
        assert_eq!(p.backing_off(t + Duration::from_secs(3)), None);
    }
}
