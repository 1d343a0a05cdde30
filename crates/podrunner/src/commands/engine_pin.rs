//! `podrunner engine-pin` (hidden): what a runner's Docker API proxy runs for each bind source
//! below the runner's work folder of a container it lets through (proxy::pin). Inside the
//! engine's mount namespace (and, rootless, its user namespace) it opens the source walking
//! down from the work folder without following a link, and bind-mounts what it opened at a
//! pin path of the engine's own; the proxy then gives the engine the pin instead of the
//! source. A job that swaps a folder for a link after the proxy's check changes nothing the
//! engine mounts (docs/docker.md, "Bind sources"). Prints the pin, or nothing when the engine
//! is not sandboxed (a rootless engine of a runner on the host's network). Not meant to be run
//! by hand.

use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The engine's pid file (engine-exec's pid)
    #[arg(long)]
    pub engine_pid_file: PathBuf,
    /// The folder the source must lie below (the runner's work folder)
    #[arg(long)]
    pub within: PathBuf,
    /// The bind source the proxy checked, below --within
    #[arg(long)]
    pub source: PathBuf,
    /// Where to mount it in the engine's root (a new path in its pin folder)
    #[arg(long)]
    pub pin: PathBuf,
}

pub fn exec(args: &Args) -> anyhow::Result<super::exit::Exit> {
    use anyhow::Context;
    let pid = std::fs::read_to_string(&args.engine_pid_file)
        .ok()
        .and_then(|s| s.trim().parse::<i32>().ok())
        .filter(|p| *p > 0 && crate::sys::process_alive(*p))
        .with_context(|| format!("no running engine in {}", args.engine_pid_file.display()))?;
    let rel = args.source.strip_prefix(&args.within).with_context(|| {
        format!(
            "{} is not below {}",
            args.source.display(),
            args.within.display()
        )
    })?;
    let entered = crate::sys::mounts::enter_mounts_of(pid)
        .with_context(|| format!("cannot enter the engine's mount namespace (pid {pid})"))?;
    if !entered {
        return Ok(super::exit::Exit::Success);
    }
    let fd = crate::sys::mounts::open_beneath(&args.within, rel).with_context(|| {
        format!(
            "cannot open {} without following a link",
            args.source.display()
        )
    })?;
    // The mount point: a folder, or a file for a file.
    let dir = crate::sys::mounts::is_dir_fd(&fd)?;
    if let Some(parent) = args.pin.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    if dir {
        std::fs::create_dir(&args.pin)
    } else {
        std::fs::write(&args.pin, b"")
    }
    .with_context(|| format!("cannot create {}", args.pin.display()))?;
    crate::sys::mounts::bind_fd(&fd, &args.pin).with_context(|| {
        format!(
            "cannot pin {} at {}",
            args.source.display(),
            args.pin.display()
        )
    })?;
    println!("{}", args.pin.display());
    Ok(super::exit::Exit::Success)
}
