//! `podrunner engine-exec` (hidden): what a runner's Docker API proxy runs to start the
//! runner's engine on first use (engine::launcher_args). It reads the pid of the runner
//! container's main process and replaces itself with the engine's command line put into that
//! process's network namespace (engine::in_netns): what the engine publishes lands on the
//! runner's own loopback, and two runners never share a port (docs/docker.md, Networking).
//! It also gives the engine a mount namespace of its own with the manager's own files covered
//! (sys::hide_paths, docs/docker.md, The engine's own sandbox); rootful, with a private
//! netavark run folder (engine::NETAVARK_RUN_DIR). Rootless, it first joins the user namespace
//! owning the runner's network namespace (that of the user's Podman) and gives the engine a
//! runtime folder of its own and storage mounts that every thread of it sees
//! (sys::share_mounts). Not meant to be run by hand.

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
    /// A path of the manager's the engine must not see (its state and runtime
    /// folders, credentials files), covered before the engine starts
    #[arg(long = "hide")]
    pub hide: Vec<PathBuf>,
    /// A path under a hidden folder the engine keeps (its own folders, the externals
    /// copies, the runner's work folder)
    #[arg(long = "keep")]
    pub keep: Vec<PathBuf>,
    /// Rootless: a folder of the engine's where it mounts containers' file systems (its
    /// storage and run roots), made a shared mount in the engine's mount namespace
    /// (sys::share_mounts)
    #[arg(long = "share")]
    pub share: Vec<PathBuf>,
    /// The engine's command line, podman first
    #[arg(last = true, required = true)]
    pub command: Vec<String>,
}

/// c/storage's overlay driver makes its folder a private mount of its own when it starts: in
/// the engine's mount namespace, that would cut the container file systems off from the
/// threads Podman moves into mount namespaces of their own (sys::share_mounts).
const SKIP_MOUNT_HOME: &str = "--storage-opt=overlay.skip_mount_home=true";

/// Becomes the engine; returns only when it could not (the error says why).
pub fn exec(args: &Args) -> anyhow::Result<super::exit::Exit> {
    let pid = std::fs::read_to_string(&args.runner_pid_file)
        .ok()
        .and_then(|s| s.trim().parse::<i32>().ok());
    let Some(pid) = pid.filter(|p| *p > 0 && crate::sys::process_alive(*p)) else {
        anyhow::bail!(
            "the runner's container is not running (no live pid in {}): its engine starts only for a running runner",
            args.runner_pid_file.display()
        );
    };
    let entered = enter(args, pid)?;
    for (k, v) in &entered.env {
        std::env::set_var(k, v);
    }
    let mut argv = args.command.clone();
    if entered.joined_userns && overlay(&argv) {
        argv.insert(1, SKIP_MOUNT_HOME.to_string());
    }
    let e = crate::cmd::exec_replace(&argv[0], &argv[1..]);
    Err(anyhow::Error::new(e).context("cannot start the engine"))
}

/// Whether the engine's command line names the overlay storage driver (engine::engine_args
/// names the host's; without it Podman would take storage.conf's options, which a
/// `--storage-opt` replaces).
fn overlay(argv: &[String]) -> bool {
    argv.iter().any(|a| a == "--storage-driver=overlay")
}

/// Where [`enter`] put this process.
#[derive(Debug, Default)]
struct Entered {
    /// Variables the engine needs on top of the environment.
    env: Vec<(&'static str, String)>,
    /// Rootless, in the user namespace owning the runner's network namespace.
    joined_userns: bool,
}

/// Puts this process where the engine runs (the runner's network namespace, a mount namespace
/// of its own with the manager's files covered and, rootless, the user namespace owning the
/// runner's network namespace).
fn enter(args: &Args, pid: i32) -> anyhow::Result<Entered> {
    use anyhow::Context;
    let (uid, gid) = (crate::sys::uid(), crate::sys::gid());
    let own = args.netavark_run_dir.as_deref();
    let mut env = Vec::new();
    let mut binds = Vec::new();
    if uid == 0 {
        let target = std::path::Path::new(crate::engine::NETAVARK_RUN_DIR);
        binds.extend(own.map(|o| (o, target)));
    } else {
        // Rootless: the runner's network namespace belongs to the user namespace of the
        // user's Podman; the engine joins that one and runs as root in it, told so
        // (engine::userns_env) instead of making its own.
        let userns = crate::sys::netns_owner(pid).with_context(|| {
            format!("cannot read the network namespace of the runner (pid {pid})")
        })?;
        // The runner shares the manager's network (host networking): the engine makes its
        // own user namespace there, as a plain rootless podman does, and is not sandboxed
        // (docs/docker.md, The engine's own sandbox).
        let Some(userns) = userns else {
            return Ok(Entered::default());
        };
        // Rootless Podman keeps its network state (netavark's, the rootless network
        // namespace's) and runc its container state under XDG_RUNTIME_DIR: each engine
        // gets its own, as engines in one user namespace otherwise share it.
        if let Some(dir) = own {
            std::fs::create_dir_all(dir)
                .and_then(|()| {
                    std::fs::set_permissions(
                        dir,
                        std::os::unix::fs::PermissionsExt::from_mode(0o700),
                    )
                })
                .with_context(|| format!("cannot create {}", dir.display()))?;
            env.push(("XDG_RUNTIME_DIR", dir.display().to_string()));
        }
        crate::sys::enter_userns(&userns).with_context(|| {
            format!("cannot enter the user namespace of the runner (pid {pid})")
        })?;
        env.extend(crate::engine::userns_env(uid, gid));
    }
    crate::sys::enter_netns_with_private_mounts(pid, &binds)
        .with_context(|| format!("cannot enter the network namespace of the runner (pid {pid})"))?;
    crate::sys::hide_paths(&args.hide, &args.keep)
        .context("cannot hide the manager's files from the engine")?;
    if uid != 0 {
        crate::sys::share_mounts(&args.share).context("cannot prepare the engine's mounts")?;
    }
    Ok(Entered {
        env,
        joined_userns: uid != 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skip_mount_home_only_for_a_named_overlay_driver() {
        let v = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(overlay(&v(&[
            "podman",
            "--storage-driver=overlay",
            "system"
        ])));
        assert!(!overlay(&v(&["podman", "--storage-driver=vfs", "system"])));
        assert!(!overlay(&v(&["podman", "system", "service"])));
    }
}
