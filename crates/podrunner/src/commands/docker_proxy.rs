//! `podrunner docker-proxy` (hidden): the Docker API proxy between one runner and its private
//! engine (src/proxy/). The manager starts it detached next to the engine, so that both
//! outlive a manager restart with the runner that uses them, and stops it in the engine's
//! teardown. Not meant to be run by hand.

use super::exit::{Exit, Failed};
use super::Cli;
use crate::engine::externals::RunnerCopy;
use crate::engine::launch::Launcher;
use crate::podman::Podman;
use crate::proxy::policy::caps::{PathMap, Rules};
use crate::proxy::policy::Policy;
use anyhow::Context;
use std::path::PathBuf;

/// Parsed by clap as the manager wrote it ([`crate::proxy::args`]).
pub use crate::proxy::args::ProxyArgs as Args;

/// Serves until the proxy's socket is gone or it is stopped; a bad argument is
/// [`Failed::Invalid`] (the manager wrote it: a bug, not the user's mistake).
pub async fn exec(cli: &Cli, args: &Args) -> anyhow::Result<Exit> {
    crate::logging::init_cli(cli.log_level.as_deref().or(Some("info")));
    let caps = args.limits.caps();
    let paths = PathMap::parse(&args.maps).map_err(|e| Failed::Invalid(e.to_string()))?;
    // Canonical, as the proxy compares them with canonical bind sources.
    let canonical = |paths: &[PathBuf]| -> Vec<String> {
        paths
            .iter()
            .map(|p| std::fs::canonicalize(p).unwrap_or_else(|_| p.clone()))
            .map(|p| p.display().to_string())
            .collect()
    };
    let runner_copy = match (
        &args.self_update.runner_container,
        &args.self_update.runner_externals,
        &args.self_update.runner_version_file,
        &args.self_update.runner_copy,
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
                Podman::new(
                    &args.self_update.podman,
                    None,
                    &args.self_update.podman_args,
                ),
            ))
        }
        _ => {
            return Err(Failed::Invalid("--runner-container, --runner-externals, --runner-version-file and --runner-copy go together".into()).into());
        }
    };
    let mut read_only = canonical(&args.read_only);
    if let Some(r) = &runner_copy {
        read_only.push(r.dir.display().to_string());
    }
    let mut allowed = canonical(&args.allowed);
    allowed.extend(read_only.iter().cloned());
    // Pins (proxy::pin) are made in the engine's run folder, which no job reaches: a
    // container holding one passes the check before its start.
    let mut pin_args = args.pins.clone();
    if let Some(dir) = &pin_args.pin_dir {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        allowed.extend(canonical(std::slice::from_ref(dir)));
    }
    pin_args.pin_within = canonical(&pin_args.pin_within)
        .into_iter()
        .map(std::path::PathBuf::from)
        .collect();
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
        args.launch.engine.split_first(),
        &args.launch.engine_conf,
        &args.launch.engine_pid_file,
        &args.launch.engine_log,
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
            return Err(Failed::Invalid(
                "an engine command needs --engine-conf, --engine-pid-file and --engine-log".into(),
            )
            .into());
        }
    };
    let pins = match args.open {
        true => None,
        false => crate::proxy::pin::Pins::new(
            &pin_args,
            args.launch.engine_pid_file.as_deref(),
            std::env::current_exe().context("cannot find podrunner's own binary")?,
        ),
    };
    crate::proxy::serve(
        &args.listen,
        &args.upstream,
        rules,
        launcher,
        runner_copy,
        pins,
    )
    .await
    .with_context(|| format!("docker-proxy on {}", args.listen.display()))?;
    Ok(Exit::Success)
}
