//! `podrunner engine-exec` (hidden): what a runner's Docker API proxy runs to start the
//! runner's engine on first use (engine::launcher_args). It reads the pid of the runner
//! container's main process and puts the engine into that process's network namespace
//! (engine::in_netns): what the engine publishes lands on the runner's own loopback, and two
//! runners never share a port (docs/docker.md, Networking). There the engine gets a mount and
//! a pid namespace of its own and a minimal root holding only what engine::sandbox lists
//! (docs/docker.md, The engine's own sandbox). Rootless, it first joins the user namespace
//! owning the runner's network namespace (that of the user's Podman), gives the engine a
//! runtime folder of its own and storage mounts that every thread of it sees
//! (sys::share_mounts). Not meant to be run by hand.
//!
//! Processes: this one stays outside the engine's pid namespace (the proxy keeps its pid) and
//! passes signals on; its child is pid 1 inside (sys::init: reaps, passes signals on); that
//! one's child becomes podman.

use crate::engine::sandbox::{self, Found, Step};
use std::path::{Path, PathBuf};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The pid file of the runner's container (`podman run --pidfile`)
    #[arg(long)]
    pub runner_pid_file: PathBuf,
    /// The engine's own folder for netavark's state: rootful, mounted at
    /// /run/containers/networks; rootless, the engine's XDG_RUNTIME_DIR
    #[arg(long)]
    pub netavark_run_dir: Option<PathBuf>,
    /// An empty folder where the engine's minimal root is built (engine::sandbox)
    #[arg(long)]
    pub new_root: PathBuf,
    /// The engine's folder for big temporary files, its /var/tmp
    #[arg(long)]
    pub scratch: PathBuf,
    /// A host path the engine sees at its own path, writable (its own folders, the
    /// runner's work folder)
    #[arg(long = "keep")]
    pub keep: Vec<PathBuf>,
    /// A host path the engine sees at its own path, read-only (the externals copies, the
    /// host's image store)
    #[arg(long = "keep-read-only")]
    pub keep_read_only: Vec<PathBuf>,
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
    match entered.root {
        None => Err(become_engine(&argv)),
        Some(root) => sandboxed(args, &root, entered.joined_userns, &argv),
    }
}

fn become_engine(argv: &[String]) -> anyhow::Error {
    let e = crate::cmd::exec_replace(&argv[0], &argv[1..]);
    anyhow::Error::new(e).context("cannot start the engine")
}

/// The engine in its minimal root (`root`, built, not yet moved into) and pid namespace: this
/// process waits outside; its child, pid 1 inside, moves into the root and starts podman.
fn sandboxed(
    args: &Args,
    root: &Path,
    joined_userns: bool,
    argv: &[String],
) -> anyhow::Result<super::exit::Exit> {
    use anyhow::Context;
    crate::sys::init::hold_signals().context("cannot set up the engine's signals")?;
    if let Some(child) = crate::sys::init::fork().context("cannot start the engine")? {
        crate::sys::init::supervise(child);
    }
    // pid 1 of the engine's pid namespace; an error here ends it, into the engine's log,
    // which the proxy reports.
    crate::sys::init::die_with_parent().context("cannot tie the engine to engine-exec")?;
    crate::sys::mounts::proc(&root.join("proc")).context("cannot mount the engine's /proc")?;
    crate::sys::mounts::pivot_root(root).context("cannot move into the engine's root")?;
    if joined_userns {
        crate::sys::share_mounts(&args.share).context("cannot prepare the engine's mounts")?;
    }
    match crate::sys::init::fork().context("cannot start the engine")? {
        Some(podman) => crate::sys::init::supervise(podman),
        None => {
            crate::sys::init::release_signals().context("cannot set up the engine's signals")?;
            Err(become_engine(argv))
        }
    }
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
    /// The minimal root built for the engine (None: not sandboxed, a rootless engine of a
    /// runner on the host's network).
    root: Option<PathBuf>,
}

/// Puts this process where the engine runs (the runner's network namespace, a mount namespace
/// of its own, a pid namespace for its children and, rootless, the user namespace owning the
/// runner's network namespace) and builds the engine's minimal root.
fn enter(args: &Args, pid: i32) -> anyhow::Result<Entered> {
    use anyhow::Context;
    let (uid, gid) = (crate::sys::uid(), crate::sys::gid());
    let own = args.netavark_run_dir.as_deref();
    let (new_root, scratch) = (&args.new_root, &args.scratch);
    for dir in [new_root, scratch] {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let mut env = vec![("TMPDIR", sandbox::TMPDIR.to_string())];
    let mut netavark = None;
    if uid == 0 {
        netavark = own;
        if let Some(o) = own {
            std::fs::create_dir_all(o).with_context(|| format!("cannot create {}", o.display()))?;
        }
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
    crate::sys::enter_netns_with_private_mounts(pid, true)
        .with_context(|| format!("cannot enter the network namespace of the runner (pid {pid})"))?;
    let s = crate::engine::Sandbox {
        keep: args.keep.clone(),
        read_only: args.keep_read_only.clone(),
    };
    build_root(new_root, &sandbox::plan(&s, scratch, netavark, found))
        .context("cannot build the engine's root")?;
    Ok(Entered {
        env,
        joined_userns: uid != 0,
        root: Some(new_root.clone()),
    })
}

/// What is at host path `p` (engine::sandbox::plan's view of the host).
fn found(p: &Path) -> Found {
    match std::fs::symlink_metadata(p) {
        Err(_) => Found::Missing,
        Ok(m) if m.file_type().is_symlink() => Found::Link {
            target: std::fs::read_link(p).unwrap_or_default(),
            dir: std::fs::metadata(p).ok().map(|m| m.is_dir()),
        },
        Ok(m) if m.is_dir() => Found::Dir,
        Ok(_) => Found::File,
    }
}

/// Mounts a tmpfs on `root` and carries out `steps` inside it (in this process's own mount
/// namespace).
fn build_root(root: &Path, steps: &[Step]) -> anyhow::Result<()> {
    use crate::sys::mounts;
    use anyhow::Context;
    mounts::tmpfs(root, sandbox::ROOT_TMPFS)?;
    let inside = |at: &Path| root.join(at.strip_prefix("/").unwrap_or(at));
    let folder = |p: &Path| {
        std::fs::create_dir_all(p).with_context(|| format!("cannot create {}", p.display()))
    };
    for step in steps {
        match step {
            Step::Tmpfs { at, options } => {
                let at = inside(at);
                folder(&at)?;
                mounts::tmpfs(&at, options)?;
            }
            Step::Bind {
                src,
                at,
                dir,
                read_only,
                recursive,
            } => {
                let at = inside(at);
                if *dir {
                    folder(&at)?;
                } else {
                    if let Some(parent) = at.parent() {
                        folder(parent)?;
                    }
                    if !at.exists() {
                        std::fs::write(&at, b"")
                            .with_context(|| format!("cannot create {}", at.display()))?;
                    }
                }
                mounts::bind(src, &at, *read_only, *recursive)?;
            }
            Step::Devpts { at } => {
                let at = inside(at);
                folder(&at)?;
                mounts::devpts(&at)?;
            }
            Step::Dir { at } => folder(&inside(at))?,
            Step::Symlink { target, at } => {
                let at = inside(at);
                if std::fs::symlink_metadata(&at).is_ok() {
                    continue;
                }
                if let Some(parent) = at.parent() {
                    folder(parent)?;
                }
                std::os::unix::fs::symlink(target, &at)
                    .with_context(|| format!("cannot create {}", at.display()))?;
            }
        }
    }
    Ok(())
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
