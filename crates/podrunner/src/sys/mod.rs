//! The few direct calls into the C library, in one place.
#![allow(unsafe_code)]

pub mod init;
pub mod mounts;

pub use mounts::{enter_netns_with_private_mounts, share_mounts};

/// The real user id of this process.
pub fn uid() -> u32 {
    // SAFETY: getuid has no preconditions and cannot fail.
    unsafe { libc::getuid() }
}

/// The real group id of this process.
pub fn gid() -> u32 {
    // SAFETY: getgid has no preconditions and cannot fail.
    unsafe { libc::getgid() }
}

/// Whether a process with this pid exists (signal 0 probes without sending anything).
pub fn process_alive(pid: i32) -> bool {
    // SAFETY: kill with signal 0 only checks for existence and permission.
    let r = unsafe { libc::kill(pid, 0) };
    r == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// Sends `sig` to `pid`.
pub fn signal(pid: i32, sig: i32) -> std::io::Result<()> {
    // SAFETY: plain syscall; errors come back through errno.
    if unsafe { libc::kill(pid, sig) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Reaps `pid` if it is a child of this process that has exited (returns at once otherwise),
/// so an exited child does not linger as a zombie that [`process_alive`] still reports.
pub fn reap(pid: i32) {
    // SAFETY: waitpid with WNOHANG and a null status pointer neither blocks nor writes memory.
    unsafe {
        libc::waitpid(pid, std::ptr::null_mut(), libc::WNOHANG);
    }
}

/// Detaches the mount at `path` (`umount2(path, MNT_DETACH)`).
pub fn umount_detach(path: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    // SAFETY: `c` is a valid NUL-terminated path that outlives the call.
    if unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Makes the kernel send SIGTERM to a child started from `cmd` when the manager dies, even by
/// SIGKILL: for helpers that must not outlive it (`podman events`), unlike runner containers.
pub fn end_with_parent(cmd: &mut tokio::process::Command) {
    // SAFETY: the closure runs between fork and exec and only calls prctl, which is
    // async-signal-safe and allocates nothing.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// The user namespace that owns the network namespace of process `pid`, opened, when it is not
/// this process's own (`None`: the network namespace is owned by the caller's user namespace,
/// e.g. a runner with host networking). Rootless, the runner container's network namespace
/// belongs to the user namespace of the user's Podman, which the user may join (it created
/// it) and in which it has the rights to join that network namespace.
pub fn netns_owner(pid: i32) -> std::io::Result<Option<std::fs::File>> {
    use std::os::fd::{AsRawFd, FromRawFd};
    let ns = std::fs::File::open(format!("/proc/{pid}/ns/net"))?;
    // SAFETY: NS_GET_USERNS takes no argument and returns a new descriptor or -1.
    let fd = unsafe { libc::ioctl(ns.as_raw_fd(), libc::NS_GET_USERNS) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh descriptor that nothing else owns.
    let owner = unsafe { std::fs::File::from_raw_fd(fd) };
    let own = std::fs::metadata("/proc/self/ns/user")?;
    Ok((!same_ns(&owner.metadata()?, &own)).then_some(owner))
}

/// Whether two namespace files (their metadata) name the same namespace.
pub fn same_ns(a: &std::fs::Metadata, b: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::MetadataExt;
    a.ino() == b.ino() && a.dev() == b.dev()
}

/// Moves this process into user namespace `userns` (an open namespace file, see
/// [`netns_owner`]); it becomes root there. Before [`enter_netns_with_private_mounts`], for a
/// rootless engine (commands/engine_exec.rs). The process must be single-threaded.
pub fn enter_userns(userns: &std::fs::File) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: `userns` is an open namespace file for the duration of the call.
    if unsafe { libc::setns(userns.as_raw_fd(), libc::CLONE_NEWUSER) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}
