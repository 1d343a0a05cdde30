//! A runner's limits: the pool's `cpus`, `memory` and `pids_limit`, as one type rendered to
//! every place that enforces them (docs/docker.md, Resources):
//! - `podman run` flags of the runner's container ([`Limits::podman_flags`]);
//! - the Docker API proxy's arguments, read back by `podrunner docker-proxy` through the same
//!   type ([`Limits::proxy_args`], [`Limits::caps`]), which caps every job container;
//! - the runner's cgroup budget (engine/budget.rs, [`Limits::cgroup_writes`]);
//! - the private engine's `containers.conf` `pids_limit` (engine/conf.rs).
//!
//! One rule for swap ([`memory_and_swap`]) and one for the CPU quota ([`cpu_quota`]) serve
//! all of them.

use crate::config::PoolConfig;
use crate::engine::budget::Layout;
use crate::proxy::policy::caps::Caps;
use std::path::PathBuf;

/// Podman gives a container with a memory limit and no swap setting a memory+swap limit of
/// twice its memory; the runner container gets exactly that, and so do its budget and its job
/// containers.
pub const SWAP_FACTOR: i64 = 2;
/// The CFS period a CPU quota is expressed in when nothing else is asked: Podman's and
/// Docker's default (100 ms).
pub const CPU_PERIOD_US: i64 = 100_000;

/// Memory plus swap a container with `memory` bytes of memory may use.
pub fn memory_and_swap(memory: i64) -> i64 {
    memory.saturating_mul(SWAP_FACTOR)
}

/// The CFS quota that gives `cpus` CPUs in a period of `period_us`.
pub fn cpu_quota(cpus: f64, period_us: i64) -> i64 {
    (cpus * period_us as f64).round() as i64
}

/// What one runner and each of its job containers may use. Also the limit flags of
/// `podrunner docker-proxy`: the manager writes them with [`Limits::proxy_args`].
#[derive(Debug, Clone, Copy, PartialEq, clap::Args)]
pub struct Limits {
    /// Most memory a job container may have, in bytes
    #[arg(long)]
    pub memory: Option<u64>,
    /// Most CPUs a job container may use
    #[arg(long)]
    pub cpus: Option<f64>,
    /// Most processes a job container may have
    #[arg(long = "pids")]
    pub pids: u64,
}

/// A byte or process count as the kernel's and Docker's signed fields take it.
fn signed(n: u64) -> i64 {
    n.min(i64::MAX as u64) as i64
}

impl Limits {
    pub fn of(pool: &PoolConfig) -> Limits {
        Limits {
            memory: pool.memory.map(|m| m.0),
            cpus: pool.cpus,
            pids: pool.pids_limit,
        }
    }

    /// The runner container's `podman run` flags.
    pub fn podman_flags(&self) -> Vec<String> {
        let mut a = Vec::new();
        if let Some(c) = self.cpus {
            a.push(format!("--cpus={c}"));
        }
        if let Some(m) = self.memory {
            a.push(format!("--memory={m}b"));
        }
        a.push(format!("--pids-limit={}", self.pids));
        a
    }

    /// The flags of `podrunner docker-proxy` that carry these limits.
    pub fn proxy_args(&self) -> Vec<String> {
        let mut a = vec![format!("--pids={}", signed(self.pids))];
        if let Some(m) = self.memory {
            a.push(format!("--memory={}", signed(m)));
        }
        if let Some(c) = self.cpus {
            a.push(format!("--cpus={c}"));
        }
        a
    }

    /// The caps the Docker API proxy holds every job container to.
    pub fn caps(&self) -> Caps {
        Caps {
            memory: self.memory.map(signed),
            cpus: self.cpus,
            pids: signed(self.pids),
        }
    }

    /// The cgroup files of budget `parent` to write, in order, and their values. Memory and
    /// swap as the runner container has them ([`memory_and_swap`]).
    pub fn cgroup_writes(&self, layout: &Layout, parent: &str) -> Vec<(PathBuf, String)> {
        let rel = parent.trim_start_matches('/');
        let mut w = Vec::new();
        match layout {
            Layout::V1 { root } => {
                let f = |ctrl: &str, file: &str| root.join(ctrl).join(rel).join(file);
                if let Some(m) = self.memory.map(signed) {
                    w.push((f("memory", "memory.limit_in_bytes"), m.to_string()));
                    w.push((
                        f("memory", "memory.memsw.limit_in_bytes"),
                        memory_and_swap(m).to_string(),
                    ));
                }
                if let Some(c) = self.cpus {
                    w.push((f("cpu", "cpu.cfs_period_us"), CPU_PERIOD_US.to_string()));
                    let quota = cpu_quota(c, CPU_PERIOD_US);
                    w.push((f("cpu", "cpu.cfs_quota_us"), quota.to_string()));
                }
                w.push((f("pids", "pids.max"), self.pids.to_string()));
            }
            Layout::V2 { root } => {
                let dir = root.join(rel);
                if let Some(m) = self.memory.map(signed) {
                    w.push((dir.join("memory.max"), m.to_string()));
                    // v2 limits swap alone: what memory and swap together leave above memory.
                    w.push((
                        dir.join("memory.swap.max"),
                        (memory_and_swap(m) - m).to_string(),
                    ));
                }
                if let Some(c) = self.cpus {
                    let quota = cpu_quota(c, CPU_PERIOD_US);
                    w.push((dir.join("cpu.max"), format!("{quota} {CPU_PERIOD_US}")));
                }
                w.push((dir.join("pids.max"), self.pids.to_string()));
            }
        }
        w
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn limits() -> Limits {
        Limits::of(&crate::config::test_pool(
            "[[pool]]\nname = \"p\"\nrepository = \"o/r\"\ncpus = 1.5\nmemory = \"256m\"\npids_limit = 300\n",
        ))
    }

    #[test]
    fn one_pool_three_renderings() {
        let l = limits();
        assert_eq!(
            l.podman_flags(),
            vec!["--cpus=1.5", "--memory=268435456b", "--pids-limit=300"]
        );
        assert_eq!(
            l.proxy_args(),
            vec!["--pids=300", "--memory=268435456", "--cpus=1.5"]
        );
        assert_eq!(
            l.caps(),
            Caps {
                memory: Some(268435456),
                cpus: Some(1.5),
                pids: 300
            }
        );
    }

    #[test]
    fn the_proxy_reads_back_what_the_manager_writes() {
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            limits: Limits,
        }
        for l in [
            limits(),
            Limits {
                memory: None,
                cpus: None,
                pids: 7,
            },
        ] {
            let argv = std::iter::once("x".to_string()).chain(l.proxy_args());
            assert_eq!(Cli::parse_from(argv).limits, l);
        }
    }

    #[test]
    fn one_rule_for_swap_and_quota() {
        assert_eq!(memory_and_swap(1024), 2048);
        assert_eq!(memory_and_swap(i64::MAX), i64::MAX);
        assert_eq!(cpu_quota(1.5, CPU_PERIOD_US), 150_000);
        assert_eq!(cpu_quota(0.25, 1_000), 250);
    }

    #[test]
    fn cgroup_writes_per_layout() {
        let p = crate::engine::budget::parent("ci", "ci-0a1b2c3d");
        assert_eq!(p, "/podrunner.ci/ci-0a1b2c3d");
        let v1 = Layout::V1 { root: "/cg".into() };
        let w: Vec<(String, String)> = limits()
            .cgroup_writes(&v1, &p)
            .into_iter()
            .map(|(f, v)| (f.display().to_string(), v))
            .collect();
        let at = |f: &str| format!("/cg/{f}");
        assert_eq!(
            w,
            vec![
                (
                    at("memory/podrunner.ci/ci-0a1b2c3d/memory.limit_in_bytes"),
                    "268435456".into()
                ),
                (
                    at("memory/podrunner.ci/ci-0a1b2c3d/memory.memsw.limit_in_bytes"),
                    "536870912".into()
                ),
                (
                    at("cpu/podrunner.ci/ci-0a1b2c3d/cpu.cfs_period_us"),
                    "100000".into()
                ),
                (
                    at("cpu/podrunner.ci/ci-0a1b2c3d/cpu.cfs_quota_us"),
                    "150000".into()
                ),
                (at("pids/podrunner.ci/ci-0a1b2c3d/pids.max"), "300".into()),
            ]
        );
        let v2 = Layout::V2 { root: "/cg".into() };
        let w: Vec<(String, String)> = limits()
            .cgroup_writes(&v2, &p)
            .into_iter()
            .map(|(f, v)| (f.display().to_string(), v))
            .collect();
        assert_eq!(
            w,
            vec![
                (
                    at("podrunner.ci/ci-0a1b2c3d/memory.max"),
                    "268435456".into()
                ),
                (
                    at("podrunner.ci/ci-0a1b2c3d/memory.swap.max"),
                    "268435456".into()
                ),
                (
                    at("podrunner.ci/ci-0a1b2c3d/cpu.max"),
                    "150000 100000".into()
                ),
                (at("podrunner.ci/ci-0a1b2c3d/pids.max"), "300".into()),
            ]
        );
    }
}
