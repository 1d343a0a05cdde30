//! `podrunner engine-exec` (hidden): what a runner's Docker API proxy runs to start the
//! runner's engine on first use (engine::launcher_args). It reads the pid of the runner
//! container's main process and replaces itself with the engine's command line put into that
//! process's network namespace (engine::in_netns): what the engine publishes lands on the
//! runner's own loopback, and two runners never share a port (docs/docker.md, Networking).
//! Rootful, it also gives the engine a mount namespace of its own with a private netavark run
//! folder (engine::NETAVARK_RUN_DIR). Not meant to be run by hand.

use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The pid file of the runner's container (`podman run --pidfile`)
    #[arg(long)]
    pub runner_pid_file: PathBuf,
    /// Rootful: the engine's own folder for netavark's state, mounted at
    /// /run/containers/networks
    #[arg(long)]
    pub netavark_run_dir: Option<PathBuf>,
    /// The engine's command line, podman first
    #[arg(last = true, required = true)]
    pub command: Vec<String>,
}

pub fn exec(args: &Args) -> i32 {
    let pid = std::fs::read_to_string(&args.runner_pid_file)
        .ok()
        .and_then(|s| s.trim().parse::<i32>().ok());
    let Some(pid) = pid.filter(|p| *p > 0 && crate::sys::process_alive(*p)) else {
        eprintln!(
            "error: the runner's container is not running (no live pid in {}): its engine starts only for a running runner",
            args.runner_pid_file.display()
        );
        return 1;
    };
    let argv = if crate::sys::uid() != 0 {
        // Rootless engines keep their own user namespace in the host's network namespace:
        // joining the runner's (engine::in_netns through `podman unshare`) starts, but job
        // containers then fail ("unable to find user"), not understood yet (docs/docker.md,
        // Networking).
        args.command.clone()
    } else {
        let own = args.netavark_run_dir.as_deref();
        let target = std::path::Path::new(crate::engine::NETAVARK_RUN_DIR);
        let binds: Vec<_> = own.map(|o| (o, target)).into_iter().collect();
        if let Err(e) = crate::sys::enter_netns_with_private_mounts(pid, &binds) {
            eprintln!("error: cannot enter the network namespace of the runner (pid {pid}): {e}");
            return 1;
        }
        args.command.clone()
    };
    let e = crate::cmd::exec_replace(&argv[0], &argv[1..]);
    eprintln!("error: cannot start the engine: {e}");
    1
}
