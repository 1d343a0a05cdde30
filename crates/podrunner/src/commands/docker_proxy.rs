//! `podrunner docker-proxy` (hidden): the Docker API proxy between one runner and its private
//! engine (src/proxy/). The manager starts it detached next to the engine, so that both
//! outlive a manager restart with the runner that uses them, and stops it in the engine's
//! teardown. Not meant to be run by hand.

use super::Cli;
use crate::engine::externals::RunnerCopy;
use crate::engine::launch::Launcher;
use crate::podman::Podman;
use crate::proxy::policy::caps::{PathMap, Rules};
use crate::proxy::policy::Policy;
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The socket to listen on (mounted into the runner)
    #[arg(long)]
    pub listen: PathBuf,
    /// The engine's own socket
    #[arg(long)]
    pub upstream: PathBuf,
    /// The runner's limits (runner/limits.rs writes these flags)
    #[command(flatten)]
    pub limits: crate::runner::Limits,
    /// A bind-mount source as the runner names it, and where it is on the host: INSIDE=HOST
    #[arg(long = "map")]
    pub maps: Vec<String>,
    /// A host folder job containers may bind (repeatable); binds elsewhere are refused
    #[arg(long = "allow")]
    pub allowed: Vec<PathBuf>,
    /// A host folder job containers may bind read-only only (repeatable): the externals copy
    #[arg(long = "allow-read-only")]
    pub read_only: Vec<PathBuf>,
    /// The runner's container, whose own externals an updated runner's container jobs get
    #[arg(long)]
    pub runner_container: Option<String>,
    /// The runner's path of its externals folder
    #[arg(long)]
    pub runner_externals: Option<String>,
    /// Where the manager notes the version the runner updated itself to
    #[arg(long)]
    pub runner_version_file: Option<PathBuf>,
    /// Where the updated runner's externals are copied to (bound read-only)
    #[arg(long)]
    pub runner_copy: Option<PathBuf>,
    /// The manager's podman, for that copy
    #[arg(long, default_value = "podman")]
    pub podman: String,
    /// A global argument of the manager's podman (repeatable)
    #[arg(long = "podman-arg", allow_hyphen_values = true)]
    pub podman_args: Vec<String>,
    /// Apply no policy (docker_policy = "open")
    #[arg(long)]
    pub open: bool,
    /// The pool, named in refusals
    #[arg(long)]
    pub pool: Option<String>,
    /// The runner's cgroup budget: the cgroup parent of every job container
    #[arg(long)]
    pub cgroup_parent: Option<String>,
    /// The engine's containers.conf, for starting it on first use
    #[arg(long)]
    pub engine_conf: Option<PathBuf>,
    /// Where to write the engine's pid
    #[arg(long)]
    pub engine_pid_file: Option<PathBuf>,
    /// The engine's log
    #[arg(long)]
    pub engine_log: Option<PathBuf>,
    /// The engine's command line (`podman ... system service ...`), started on first use
    #[arg(last = true)]
    pub engine: Vec<String>,
}

pub async fn exec(cli: &Cli, args: &Args) -> i32 {
    crate::logging::init_cli(cli.log_level.as_deref().or(Some("info")));
    let caps = args.limits.caps();
    let paths = match PathMap::parse(&args.maps) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    // Canonical, as the proxy compares them with canonical bind sources.
    let canonical = |paths: &[PathBuf]| -> Vec<String> {
        paths
            .iter()
            .map(|p| std::fs::canonicalize(p).unwrap_or_else(|_| p.clone()))
            .map(|p| p.display().to_string())
            .collect()
    };
    let runner_copy = match (
        &args.runner_container,
        &args.runner_externals,
        &args.runner_version_file,
        &args.runner_copy,
    ) {
        (None, None, None, None) => None,
        (Some(c), Some(inside), Some(version_file), Some(dir)) => {
            // Not there yet: its folder is, and canonical paths are compared.
            let dir = match (dir.parent().map(std::fs::canonicalize), dir.file_name()) {
                (Some(Ok(parent)), Some(n)) => parent.join(n),
                _ => dir.clone(),
            };
            Some(RunnerCopy::new(
                inside.clone(),
                version_file.clone(),
                dir,
                c.clone(),
                Podman::new(&args.podman, None, &args.podman_args),
            ))
        }
        _ => {
            eprintln!("error: --runner-container, --runner-externals, --runner-version-file and --runner-copy go together");
            return 2;
        }
    };
    let mut read_only = canonical(&args.read_only);
    if let Some(r) = &runner_copy {
        read_only.push(r.dir.display().to_string());
    }
    let mut allowed = canonical(&args.allowed);
    allowed.extend(read_only.iter().cloned());
    let rules = Rules {
        caps,
        paths,
        policy: (!args.open).then_some(Policy { allowed, read_only }),
        pool_hint: args
            .pool
            .as_ref()
            .map(|p| format!(" in pool {p}"))
            .unwrap_or_default(),
        cgroup_parent: args.cgroup_parent.clone(),
    };
    let launcher = match (
        args.engine.split_first(),
        &args.engine_conf,
        &args.engine_pid_file,
        &args.engine_log,
    ) {
        (None, ..) => None,
        (Some((program, rest)), Some(conf), Some(pid_file), Some(log)) => Some(Launcher {
            program: program.into(),
            args: rest.to_vec(),
            conf: conf.clone(),
            pid_file: pid_file.clone(),
            log: log.clone(),
        }),
        _ => {
            eprintln!(
                "error: an engine command needs --engine-conf, --engine-pid-file and --engine-log"
            );
            return 2;
        }
    };
    match crate::proxy::serve(&args.listen, &args.upstream, rules, launcher, runner_copy).await {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: docker-proxy on {}: {e}", args.listen.display());
            1
        }
    }
}
