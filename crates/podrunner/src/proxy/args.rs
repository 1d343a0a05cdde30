//! The arguments of `podrunner docker-proxy`: one type that the manager fills and renders to
//! argv ([`ProxyArgs::to_argv`], engine/service.rs) and that the proxy command parses back
//! (commands/docker_proxy.rs), so a flag cannot be written one way and read another.

use crate::runner::Limits;
use std::path::PathBuf;

/// The hidden subcommand that runs the proxy.
pub const SUBCOMMAND: &str = "docker-proxy";

/// Everything one runner's proxy is started with.
#[derive(Debug, Clone, PartialEq, clap::Args)]
pub struct ProxyArgs {
    /// The socket to listen on (mounted into the runner)
    #[arg(long)]
    pub listen: PathBuf,
    /// The engine's own socket
    #[arg(long)]
    pub upstream: PathBuf,
    /// The runner's limits (runner/limits.rs writes these flags)
    #[command(flatten)]
    pub limits: Limits,
    /// A bind-mount source as the runner names it, and where it is on the host: INSIDE=HOST
    #[arg(long = "map")]
    pub maps: Vec<String>,
    /// A host folder job containers may bind (repeatable); binds elsewhere are refused
    #[arg(long = "allow")]
    pub allowed: Vec<PathBuf>,
    /// A host folder job containers may bind read-only only (repeatable): the externals copy
    #[arg(long = "allow-read-only")]
    pub read_only: Vec<PathBuf>,
    #[command(flatten)]
    pub self_update: SelfUpdateArgs,
    /// Apply no policy (docker_policy = "open")
    #[arg(long)]
    pub open: bool,
    /// The pool, named in refusals
    #[arg(long)]
    pub pool: Option<String>,
    /// The runner's cgroup budget: the cgroup parent of every job container
    #[arg(long)]
    pub cgroup_parent: Option<String>,
    #[command(flatten)]
    pub pins: super::pin::PinArgs,
    #[command(flatten)]
    pub launch: LaunchArgs,
}

/// What the proxy needs to give an updated runner's `container:` jobs its own externals
/// (engine/externals.rs); all four paths or none.
#[derive(Debug, Clone, Default, PartialEq, clap::Args)]
pub struct SelfUpdateArgs {
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
}

/// What the proxy needs to start the engine on first use ([`crate::engine::launch`]); the
/// engine's command line comes last, after `--`.
#[derive(Debug, Clone, Default, PartialEq, clap::Args)]
pub struct LaunchArgs {
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

/// `--flag=value` for each of `values`.
fn flags<T: std::fmt::Display>(flag: &str, values: impl IntoIterator<Item = T>) -> Vec<String> {
    values
        .into_iter()
        .map(|v| format!("--{flag}={v}"))
        .collect()
}

impl ProxyArgs {
    /// The proxy's arguments with nothing but its sockets and limits set.
    pub fn new(listen: PathBuf, upstream: PathBuf, limits: Limits) -> ProxyArgs {
        ProxyArgs {
            listen,
            upstream,
            limits,
            maps: Vec::new(),
            allowed: Vec::new(),
            read_only: Vec::new(),
            self_update: SelfUpdateArgs {
                podman: "podman".into(),
                ..SelfUpdateArgs::default()
            },
            open: false,
            pool: None,
            cgroup_parent: None,
            pins: super::pin::PinArgs::default(),
            launch: LaunchArgs::default(),
        }
    }

    /// The command line after podrunner's own path: [`SUBCOMMAND`] and every flag.
    pub fn to_argv(&self) -> Vec<String> {
        let mut a = vec![SUBCOMMAND.to_string()];
        a.extend(flags("listen", [self.listen.display()]));
        a.extend(flags("upstream", [self.upstream.display()]));
        a.extend(flags("pool", &self.pool));
        a.extend(self.limits.proxy_args());
        a.extend(flags("map", &self.maps));
        if self.open {
            a.push("--open".into());
        }
        a.extend(flags("allow", self.allowed.iter().map(|p| p.display())));
        a.extend(flags(
            "allow-read-only",
            self.read_only.iter().map(|p| p.display()),
        ));
        a.extend(self.self_update.to_argv());
        a.extend(flags("cgroup-parent", &self.cgroup_parent));
        a.extend(self.pins.to_argv());
        a.extend(self.launch.to_argv());
        a
    }
}

impl SelfUpdateArgs {
    pub fn to_argv(&self) -> Vec<String> {
        let s = self;
        let mut a = flags("runner-container", &s.runner_container);
        a.extend(flags("runner-externals", &s.runner_externals));
        let path = |p: &Option<PathBuf>| p.as_ref().map(|p| p.display().to_string());
        a.extend(flags("runner-version-file", path(&s.runner_version_file)));
        a.extend(flags("runner-copy", path(&s.runner_copy)));
        if s.runner_container.is_some() || s.podman != "podman" {
            a.extend(flags("podman", [&s.podman]));
        }
        a.extend(flags("podman-arg", &s.podman_args));
        a
    }
}

impl LaunchArgs {
    pub fn to_argv(&self) -> Vec<String> {
        let path = |p: &Option<PathBuf>| p.as_ref().map(|p| p.display().to_string());
        let mut a = flags("engine-conf", path(&self.engine_conf));
        a.extend(flags("engine-pid-file", path(&self.engine_pid_file)));
        a.extend(flags("engine-log", path(&self.engine_log)));
        if !self.engine.is_empty() {
            a.push("--".into());
            a.extend(self.engine.iter().cloned());
        }
        a
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn parsed(argv: &[String]) -> ProxyArgs {
        let cli = crate::commands::Cli::try_parse_from(
            std::iter::once("podrunner".to_string()).chain(argv.iter().cloned()),
        )
        .unwrap();
        match cli.command {
            crate::commands::Command::DockerProxy(a) => *a,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn what_the_manager_writes_the_proxy_reads() {
        let limits = Limits {
            memory: Some(268435456),
            cpus: Some(1.5),
            pids: 300,
        };
        let bare = ProxyArgs::new("/run/p.sock".into(), "/run/e.sock".into(), limits);
        assert_eq!(
            bare.to_argv(),
            [
                "docker-proxy",
                "--listen=/run/p.sock",
                "--upstream=/run/e.sock",
                "--pids=300",
                "--memory=268435456",
                "--cpus=1.5"
            ]
        );
        assert_eq!(parsed(&bare.to_argv()), bare);
        let full = ProxyArgs {
            maps: vec!["/var/run/docker.sock=/run/p.sock".into()],
            allowed: vec!["/w/r".into()],
            read_only: vec!["/x".into()],
            self_update: SelfUpdateArgs {
                runner_container: Some("r".into()),
                runner_externals: Some("/home/runner/externals".into()),
                runner_version_file: Some("/s/v".into()),
                runner_copy: Some("/s/c".into()),
                podman: "/usr/bin/podman".into(),
                podman_args: vec!["--cgroup-manager=cgroupfs".into()],
            },
            open: true,
            pool: Some("p".into()),
            cgroup_parent: Some("/podrunner-x".into()),
            pins: crate::proxy::pin::PinArgs {
                pin_dir: Some("/run/e/pins".into()),
                pin_within: vec!["/w/r".into()],
            },
            launch: LaunchArgs {
                engine_conf: Some("/c".into()),
                engine_pid_file: Some("/pid".into()),
                engine_log: Some("/log".into()),
                engine: vec!["/bin/podrunner".into(), "engine-exec".into(), "--".into()],
            },
            ..bare
        };
        assert_eq!(parsed(&full.to_argv()), full);
    }
}
