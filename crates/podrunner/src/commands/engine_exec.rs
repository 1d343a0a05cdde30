//! `podrunner engine-exec` (hidden): what a runner's Docker API proxy runs to start the
//! runner's engine on first use (engine::launcher_args). It reads the pid of the runner
//! container's main process and replaces itself with the engine's command line put into that
//! process's network namespace (engine::in_netns): what the engine publishes lands on the
//! runner's own loopback, and two runners never share a port (docs/docker.md, Networking).
//! It also gives the engine a mount namespace of its own (rootful, with a private netavark run
//! folder, engine::NETAVARK_RUN_DIR, and the manager's own files covered: sys::hide_paths,
//! docs/docker.md, The engine's own sandbox). Rootless, it first joins the user namespace
//! owning the runner's network namespace (that of the user's Podman). Not meant to be run by
//! hand.

use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The pid file of the runner's container (`podman run --pidfile`)
    #[arg(long)]
    pub runner_pid_file: PathBuf,
    /// The engine's own folder for netavark's state: rootful, mounted at
    /// /run/containers/networks; rootless, the engine's XDG_RUNTIME_DIR
    #[arg(long)]
    pub netavark_run_dir: Option<PathBuf>,
    /// Rootful: a path of the manager's the engine must not see (its state and runtime
    /// folders, credentials files), covered before the engine starts
    #[arg(long = "hide")]
    pub hide: Vec<PathBuf>,
    /// Rootful: a path under a hidden folder the engine keeps (its own folders, the
    /// externals copies, the runner's work folder)
    #[arg(long = "keep")]
    pub keep: Vec<PathBuf>,
    /// The engine's command line, podman first
    #[arg(last = true, required = true)]
    pub command: Vec<String>,
}

/// Set (to anything) in the manager's environment: rootless engines join their runners'
/// network namespaces (experimental, docs/docker.md, Networking).
pub const ROOTLESS_NETNS_SWITCH: &str = "PODRUNNER_EXPERIMENTAL_ROOTLESS_ENGINE_NETNS";

pub fn exec(args: &Args) -> i32 {
    let pid = std::fs::read_to_string(&args.runner_pid_file)
        .ok()
        .and_then(|s| s.trim().parse::<i32>().ok());
    let (uid, gid) = (crate::sys::uid(), crate::sys::gid());
    let Some(pid) = pid.filter(|p| *p > 0 && crate::sys::process_alive(*p)) else {
        eprintln!(
            "error: the runner's container is not running (no live pid in {}): its engine starts only for a running runner",
            args.runner_pid_file.display()
        );
        return 1;
    };
    let mut env = Vec::new();
    let own = args.netavark_run_dir.as_deref();
    let target = std::path::Path::new(crate::engine::NETAVARK_RUN_DIR);
    let mut binds: Vec<_> = own.map(|o| (o, target)).into_iter().collect();
    if crate::sys::uid() != 0 && std::env::var_os(ROOTLESS_NETNS_SWITCH).is_none() {
        // Rootless engines keep their own user namespace in the host's network namespace by
        // default: joined to their runners', two engines at once still fail some container
        // starts and execs (docs/docker.md, Networking).
        let e = crate::cmd::exec_replace(&args.command[0], &args.command[1..]);
        eprintln!("error: cannot start the engine: {e}");
        return 1;
    }
    if crate::sys::uid() != 0 {
        // Rootless: the runner's network namespace belongs to the user namespace of the
        // user's Podman; the engine joins that one and runs as root in it, told so
        // (engine::userns_env) instead of making its own. Rootless Podman keeps its network
        // state (netavark's, the rootless network namespace) under XDG_RUNTIME_DIR: each
        // engine gets its own, as engines in one user namespace otherwise share it.
        binds.clear();
        if let Some(dir) = own {
            if let Err(e) = std::fs::create_dir_all(dir).and_then(|()| {
                std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))
            }) {
                eprintln!("error: cannot create {}: {e}", dir.display());
                return 1;
            }
            env.push(("XDG_RUNTIME_DIR", dir.display().to_string()));
        }
        match crate::sys::netns_owner(pid) {
            Ok(Some(userns)) => {
                if let Err(e) = crate::sys::enter_userns(&userns) {
                    eprintln!(
                        "error: cannot enter the user namespace of the runner (pid {pid}): {e}"
                    );
                    return 1;
                }
                env.extend(crate::engine::userns_env(uid, gid));
            }
            // The runner shares the manager's network (host networking): the engine makes its
            // own user namespace there, as a plain rootless podman does.
            Ok(None) => {
                let e = crate::cmd::exec_replace(&args.command[0], &args.command[1..]);
                eprintln!("error: cannot start the engine: {e}");
                return 1;
            }
            Err(e) => {
                eprintln!(
                    "error: cannot read the network namespace of the runner (pid {pid}): {e}"
                );
                return 1;
            }
        }
    }
    if let Err(e) = crate::sys::enter_netns_with_private_mounts(pid, &binds) {
        eprintln!("error: cannot enter the network namespace of the runner (pid {pid}): {e}");
        return 1;
    }
    if uid == 0 {
        if let Err(e) = crate::sys::hide_paths(&args.hide, &args.keep) {
            eprintln!("error: cannot hide the manager's files from the engine: {e}");
            return 1;
        }
    }
    for (k, v) in &env {
        std::env::set_var(k, v);
    }
    let argv = &args.command;
    let e = crate::cmd::exec_replace(&argv[0], &argv[1..]);
    eprintln!("error: cannot start the engine: {e}");
    1
}
