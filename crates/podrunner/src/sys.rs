//! The few direct calls into the C library, in one place.
#![allow(unsafe_code)]

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
    use std::os::unix::fs::MetadataExt;
    let ns = std::fs::File::open(format!("/proc/{pid}/ns/net"))?;
    // SAFETY: NS_GET_USERNS takes no argument and returns a new descriptor or -1.
    let fd = unsafe { libc::ioctl(ns.as_raw_fd(), libc::NS_GET_USERNS) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh descriptor that nothing else owns.
    let owner = unsafe { std::fs::File::from_raw_fd(fd) };
    let own = std::fs::metadata("/proc/self/ns/user")?;
    let theirs = owner.metadata()?;
    Ok((theirs.ino() != own.ino() || theirs.dev() != own.dev()).then_some(owner))
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

/// Moves this process into the network namespace of process `pid` and into a mount namespace
/// of its own (mounts private, so nothing propagates to the host's), then bind-mounts each
/// `(source, target)` pair there, creating both folders. For an engine before it is executed
/// (commands/engine_exec.rs). Needs CAP_SYS_ADMIN in the user namespace owning that network
/// namespace (rootless: after [`enter_userns`]).
pub fn enter_netns_with_private_mounts(
    pid: i32,
    binds: &[(&std::path::Path, &std::path::Path)],
) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    use std::os::unix::ffi::OsStrExt;
    let last = || Err(std::io::Error::last_os_error());
    let ns = std::fs::File::open(format!("/proc/{pid}/ns/net"))?;
    // SAFETY: `ns` is an open namespace file for the duration of the call.
    if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return last();
    }
    // SAFETY: plain syscall on this (single-threaded, about to exec) process.
    if unsafe { libc::unshare(libc::CLONE_NEWNS) } != 0 {
        return last();
    }
    let root = c"/";
    // SAFETY: valid NUL-terminated strings; null fstype and data are allowed for MS_PRIVATE.
    let r = unsafe {
        libc::mount(
            std::ptr::null(),
            root.as_ptr(),
            std::ptr::null(),
            libc::MS_REC | libc::MS_PRIVATE,
            std::ptr::null(),
        )
    };
    if r != 0 {
        return last();
    }
    for (src, dst) in binds {
        std::fs::create_dir_all(src)?;
        std::fs::create_dir_all(dst)?;
        let cstr = |p: &std::path::Path| {
            std::ffi::CString::new(p.as_os_str().as_bytes())
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))
        };
        let (s, d) = (cstr(src)?, cstr(dst)?);
        // SAFETY: valid NUL-terminated paths that outlive the call; bind mounts take no data.
        let r = unsafe {
            libc::mount(
                s.as_ptr(),
                d.as_ptr(),
                std::ptr::null(),
                libc::MS_BIND,
                std::ptr::null(),
            )
        };
        if r != 0 {
            return last();
        }
    }
    Ok(())
}

use std::path::PathBuf;

/// Mount flags of the empty covers [`hide_paths`] puts over the manager's files.
const COVER_FLAGS: libc::c_ulong = libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;

fn c_path(p: &std::path::Path) -> std::io::Result<std::ffi::CString> {
    use std::os::unix::ffi::OsStrExt;
    std::ffi::CString::new(p.as_os_str().as_bytes())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))
}

fn mount(
    src: Option<&std::path::Path>,
    dst: &std::path::Path,
    fstype: Option<&std::ffi::CStr>,
    flags: libc::c_ulong,
    data: Option<&std::ffi::CStr>,
) -> std::io::Result<()> {
    let src = src.map(c_path).transpose()?;
    let dst = c_path(dst)?;
    let ptr = |c: Option<&std::ffi::CStr>| c.map_or(std::ptr::null(), |c| c.as_ptr());
    // SAFETY: valid NUL-terminated strings (or null where mount(2) allows it) that outlive
    // the call.
    let r = unsafe {
        libc::mount(
            ptr(src.as_deref()),
            dst.as_ptr(),
            ptr(fstype),
            flags,
            ptr(data).cast(),
        )
    };
    if r != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// In this process's own mount namespace (after [`enter_netns_with_private_mounts`]): covers
/// each folder of `hide` with an empty read-only tmpfs and each file with a read-only
/// `/dev/null`, then puts back every path of `keep` that lay under a covered folder (bound
/// from the file descriptor opened before the cover, at its own path). Paths that do not
/// exist are skipped. The engine's sandbox (docs/docker.md, The engine's own sandbox).
pub fn hide_paths(hide: &[PathBuf], keep: &[PathBuf]) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::OpenOptionsExt;
    let mut hide: Vec<&PathBuf> = hide.iter().collect();
    // Parents first; a path under a folder already covered is gone with it.
    hide.sort_by_key(|p| p.components().count());
    let mut covered: Vec<&PathBuf> = Vec::new();
    for h in hide {
        if covered.iter().any(|c| h.starts_with(c)) {
            continue;
        }
        let Ok(meta) = std::fs::metadata(h) else {
            continue;
        };
        if !meta.is_dir() {
            let dev_null = std::path::Path::new("/dev/null");
            mount(Some(dev_null), h, None, libc::MS_BIND, None)?;
            let ro = libc::MS_REMOUNT | libc::MS_BIND | libc::MS_RDONLY | COVER_FLAGS;
            mount(None, h, None, ro, None)?;
            continue;
        }
        // Opened before the cover hides them: the folders the engine keeps.
        let kept: Vec<(&PathBuf, std::fs::File)> = keep
            .iter()
            .filter(|k| k.starts_with(h) && k != &h)
            .filter_map(|k| {
                std::fs::OpenOptions::new()
                    .read(true)
                    .custom_flags(libc::O_PATH | libc::O_CLOEXEC)
                    .open(k)
                    .ok()
                    .map(|f| (k, f))
            })
            .collect();
        mount(
            None,
            h,
            Some(c"tmpfs"),
            COVER_FLAGS,
            Some(c"mode=0755,size=1m"),
        )?;
        for (k, f) in &kept {
            if f.metadata()?.is_dir() {
                std::fs::create_dir_all(k)?;
            } else {
                if let Some(parent) = k.parent() {
                    std::fs::create_dir_all(parent)?;
                }
                std::fs::write(k, b"")?;
            }
            let src = PathBuf::from(format!("/proc/self/fd/{}", f.as_raw_fd()));
            mount(Some(&src), k, None, libc::MS_BIND | libc::MS_REC, None)?;
        }
        let ro = libc::MS_REMOUNT | libc::MS_RDONLY | COVER_FLAGS;
        mount(None, h, Some(c"tmpfs"), ro, None)?;
        covered.push(h);
    }
    Ok(())
}

/// In this process's own mount namespace (after [`enter_netns_with_private_mounts`]): makes
/// each folder of `folders` a mount of its own (bound onto itself, recursively) and shared.
/// A rootless engine's storage and run roots (commands/engine_exec.rs): Podman sets up its
/// rootless network namespace on a thread that unshares a mount namespace of its own and then
/// returns to Go's pool of threads; with private mounts, container file systems mounted later
/// would be missing on that thread (seen as "unable to find user runner: no matching entries
/// in passwd file" on a container's start or exec). Shared, they reach that thread's copy.
pub fn share_mounts(folders: &[PathBuf]) -> std::io::Result<()> {
    for f in folders {
        std::fs::create_dir_all(f)?;
        mount(Some(f), f, None, libc::MS_BIND | libc::MS_REC, None)?;
        mount(None, f, None, libc::MS_SHARED | libc::MS_REC, None)?;
    }
    Ok(())
}
