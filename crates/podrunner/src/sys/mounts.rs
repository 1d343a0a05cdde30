//! Namespaces and mounts for an engine before it is executed (commands/engine_exec.rs): the
//! runner's network namespace, a mount and pid namespace of its own, and the calls that build
//! its minimal root (engine::sandbox, docs/docker.md "The engine's own sandbox").
#![allow(unsafe_code)]

use std::path::Path;

fn last<T>() -> std::io::Result<T> {
    Err(std::io::Error::last_os_error())
}

/// Moves this process into the network namespace of process `pid` and into a mount namespace
/// of its own (mounts private, so nothing propagates to the host's); with `new_pid_ns`, the
/// children it forks next start a pid namespace of their own. Needs CAP_SYS_ADMIN in the user
/// namespace owning that network namespace (rootless: after [`super::enter_userns`]). The
/// process must be single-threaded.
pub fn enter_netns_with_private_mounts(pid: i32, new_pid_ns: bool) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let ns = std::fs::File::open(format!("/proc/{pid}/ns/net"))?;
    // SAFETY: `ns` is an open namespace file for the duration of the call.
    if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return last();
    }
    let flags = match new_pid_ns {
        true => libc::CLONE_NEWNS | libc::CLONE_NEWPID,
        false => libc::CLONE_NEWNS,
    };
    // SAFETY: plain syscall on this (single-threaded, about to exec) process.
    if unsafe { libc::unshare(flags) } != 0 {
        return last();
    }
    mount(
        None,
        Path::new("/"),
        None,
        libc::MS_REC | libc::MS_PRIVATE,
        None,
    )
}

fn c_path(p: &Path) -> std::io::Result<std::ffi::CString> {
    use std::os::unix::ffi::OsStrExt;
    std::ffi::CString::new(p.as_os_str().as_bytes())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))
}

fn mount(
    src: Option<&Path>,
    dst: &Path,
    fstype: Option<&std::ffi::CStr>,
    flags: libc::c_ulong,
    data: Option<&std::ffi::CStr>,
) -> std::io::Result<()> {
    let src = src.map(c_path).transpose()?;
    let dst_c = c_path(dst)?;
    let ptr = |c: Option<&std::ffi::CStr>| c.map_or(std::ptr::null(), |c| c.as_ptr());
    // SAFETY: valid NUL-terminated strings (or null where mount(2) allows it) that outlive
    // the call.
    let r = unsafe {
        libc::mount(
            ptr(src.as_deref()),
            dst_c.as_ptr(),
            ptr(fstype),
            flags,
            ptr(data).cast(),
        )
    };
    if r != 0 {
        let e = std::io::Error::last_os_error();
        return Err(std::io::Error::new(
            e.kind(),
            format!("mount {}: {e}", dst.display()),
        ));
    }
    Ok(())
}

/// The flags of the mount holding `p` that a user namespace locks (a bind remount must keep
/// them, or the kernel refuses it with EPERM).
fn locked_flags(p: &Path) -> std::io::Result<libc::c_ulong> {
    let c = c_path(p)?;
    // SAFETY: an all-zero statvfs is a valid value for the kernel to fill.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a valid path and `st` a valid out-pointer for the call.
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return last();
    }
    let pairs = [
        (libc::ST_NOSUID, libc::MS_NOSUID),
        (libc::ST_NODEV, libc::MS_NODEV),
        (libc::ST_NOEXEC, libc::MS_NOEXEC),
        (libc::ST_NOATIME, libc::MS_NOATIME),
        (libc::ST_NODIRATIME, libc::MS_NODIRATIME),
        (libc::ST_RELATIME, libc::MS_RELATIME),
    ];
    Ok(pairs
        .iter()
        .filter(|(st_flag, _)| st.f_flag & st_flag != 0)
        .fold(0, |acc, (_, ms)| acc | ms))
}

/// Bind-mounts `src` (its symlinks followed) on `dst`, which must exist; read-only when asked
/// (the remount keeps the flags the source's mount has), with the mounts below `src` when
/// `recursive`.
pub fn bind(src: &Path, dst: &Path, read_only: bool, recursive: bool) -> std::io::Result<()> {
    let rec = if recursive { libc::MS_REC } else { 0 };
    mount(Some(src), dst, None, libc::MS_BIND | rec, None)?;
    if read_only {
        let keep = locked_flags(dst)?;
        let flags = libc::MS_REMOUNT | libc::MS_BIND | libc::MS_RDONLY | keep;
        mount(None, dst, None, flags, None)?;
    }
    Ok(())
}

/// Mount flags of every file system podrunner mounts fresh for an engine.
const FRESH_FLAGS: libc::c_ulong = libc::MS_NOSUID | libc::MS_NODEV;

/// Mounts a tmpfs with `options` (e.g. `mode=0755,size=1m`) on `dst`.
pub fn tmpfs(dst: &Path, options: &std::ffi::CStr) -> std::io::Result<()> {
    mount(None, dst, Some(c"tmpfs"), FRESH_FLAGS, Some(options))
}

/// Mounts a `/proc` for this process's pid namespace on `dst`. In a user namespace the kernel
/// allows it only while a fully visible `/proc` is still mounted in the mount namespace: call
/// it before [`pivot_root`].
pub fn proc(dst: &Path) -> std::io::Result<()> {
    mount(
        None,
        dst,
        Some(c"proc"),
        FRESH_FLAGS | libc::MS_NOEXEC,
        None,
    )
}

/// Mounts a private devpts instance on `dst` (the pseudo-terminals of the engine's own).
pub fn devpts(dst: &Path) -> std::io::Result<()> {
    mount(
        None,
        dst,
        Some(c"devpts"),
        libc::MS_NOSUID | libc::MS_NOEXEC,
        Some(c"newinstance,ptmxmode=0666,mode=0620"),
    )
}

/// Makes `new_root` (a mount point) this mount namespace's root, detaches the old root so
/// nothing of it stays reachable, and makes the new root's own file system read-only (the
/// mounts on it keep their own flags).
pub fn pivot_root(new_root: &Path) -> std::io::Result<()> {
    std::env::set_current_dir(new_root)?;
    let dot = c".";
    // SAFETY: pivot_root(".", ".") stacks the old root on the new one; both strings are valid.
    if unsafe { libc::syscall(libc::SYS_pivot_root, dot.as_ptr(), dot.as_ptr()) } != 0 {
        return last();
    }
    // The old root now sits on top of "/": detach it (and all below it).
    // SAFETY: valid NUL-terminated path.
    if unsafe { libc::umount2(dot.as_ptr(), libc::MNT_DETACH) } != 0 {
        return last();
    }
    std::env::set_current_dir("/")?;
    let keep = locked_flags(Path::new("/"))?;
    mount(
        None,
        Path::new("/"),
        None,
        libc::MS_REMOUNT | libc::MS_BIND | libc::MS_RDONLY | keep,
        None,
    )
}

/// In this process's own mount namespace (after [`enter_netns_with_private_mounts`]): makes
/// each folder of `folders` a mount of its own (bound onto itself, recursively) and shared.
/// A rootless engine's storage and run roots (commands/engine_exec.rs): Podman sets up its
/// rootless network namespace on a thread that unshares a mount namespace of its own and then
/// returns to Go's pool of threads; with private mounts, container file systems mounted later
/// would be missing on that thread (seen as "unable to find user runner: no matching entries
/// in passwd file" on a container's start or exec). Shared, they reach that thread's copy.
pub fn share_mounts(folders: &[std::path::PathBuf]) -> std::io::Result<()> {
    for f in folders {
        std::fs::create_dir_all(f)?;
        mount(Some(f), f, None, libc::MS_BIND | libc::MS_REC, None)?;
        mount(None, f, None, libc::MS_SHARED | libc::MS_REC, None)?;
    }
    Ok(())
}

/// Moves this (single-threaded) process into the mount namespace of engine-exec process `pid`
/// and, when it differs from this one's, its user namespace first. `Ok(false)`: the engine is
/// not sandboxed (its children share this process's pid namespace: a rootless engine of a
/// runner on the host's network, whose podman made its own namespaces, those of every rootless
/// Podman of the user), nothing was entered.
pub fn enter_mounts_of(pid: i32) -> std::io::Result<bool> {
    use std::os::fd::AsRawFd;
    let same = |theirs: &str, own: &str| -> std::io::Result<bool> {
        let theirs = std::fs::metadata(format!("/proc/{pid}/ns/{theirs}"))?;
        Ok(super::same_ns(
            &theirs,
            &std::fs::metadata(format!("/proc/self/ns/{own}"))?,
        ))
    };
    if same("pid_for_children", "pid")? || same("mnt", "mnt")? {
        return Ok(false);
    }
    if !same("user", "user")? {
        let user = std::fs::File::open(format!("/proc/{pid}/ns/user"))?;
        super::enter_userns(&user)?;
    }
    let mnt = std::fs::File::open(format!("/proc/{pid}/ns/mnt"))?;
    // SAFETY: `mnt` is an open namespace file for the duration of the call.
    if unsafe { libc::setns(mnt.as_raw_fd(), libc::CLONE_NEWNS) } != 0 {
        return last();
    }
    Ok(true)
}

/// Opens `within/rel` (for a bind mount, `O_PATH`) walking `rel` one component at a time
/// without following a symbolic link or `..`: what is opened lies below `within` whatever a
/// job did to the folders (a link anywhere on the way is an error naming it).
pub fn open_beneath(within: &Path, rel: &Path) -> std::io::Result<std::os::fd::OwnedFd> {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    let open = |dir: libc::c_int, name: &std::ffi::CStr, flags: libc::c_int| {
        // SAFETY: `name` is a valid NUL-terminated string; `dir` an open descriptor or
        // AT_FDCWD.
        let fd =
            unsafe { libc::openat(dir, name.as_ptr(), flags | libc::O_PATH | libc::O_CLOEXEC) };
        if fd < 0 {
            return last();
        }
        // SAFETY: a fresh descriptor that nothing else owns.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    };
    let mut fd = open(libc::AT_FDCWD, &c_path(within)?, libc::O_DIRECTORY)?;
    let mut walked = within.to_path_buf();
    for c in rel.components() {
        let std::path::Component::Normal(name) = c else {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!(
                    "{} is not a plain path below {}",
                    rel.display(),
                    within.display()
                ),
            ));
        };
        walked.push(name);
        let next = open(fd.as_raw_fd(), &c_path(Path::new(name))?, libc::O_NOFOLLOW)?;
        if file_type(&next)? == libc::S_IFLNK {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("{} is a symbolic link", walked.display()),
            ));
        }
        fd = next;
    }
    Ok(fd)
}

/// `open_tree(2)` flag: a detached copy of the mount at the descriptor.
const OPEN_TREE_CLONE: libc::c_uint = 1;
/// `move_mount(2)` flag: the source is the descriptor itself.
const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x4;

/// Bind-mounts what `fd` (from [`open_beneath`]) refers to on `at`, which must exist: by the
/// descriptor (open_tree and move_mount), so no path is looked up again between the check and
/// the mount.
pub fn bind_fd(fd: &std::os::fd::OwnedFd, at: &Path) -> std::io::Result<()> {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    let empty = c"";
    let flags =
        OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint | libc::AT_EMPTY_PATH as libc::c_uint;
    // SAFETY: open_tree with a valid descriptor and an empty path; returns a new descriptor.
    let tree = unsafe { libc::syscall(libc::SYS_open_tree, fd.as_raw_fd(), empty.as_ptr(), flags) };
    if tree < 0 {
        return last();
    }
    // SAFETY: a fresh descriptor that nothing else owns.
    let tree = unsafe { OwnedFd::from_raw_fd(tree as libc::c_int) };
    let at_c = c_path(at)?;
    // SAFETY: valid descriptors and NUL-terminated strings for the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            tree.as_raw_fd(),
            empty.as_ptr(),
            libc::AT_FDCWD,
            at_c.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH,
        )
    };
    if r != 0 {
        return last();
    }
    Ok(())
}

/// The file type bits (`S_IFMT`) of what descriptor `fd` refers to.
fn file_type(fd: &std::os::fd::OwnedFd) -> std::io::Result<libc::mode_t> {
    use std::os::fd::AsRawFd;
    // SAFETY: an all-zero stat is a valid value for the kernel to fill.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `fd` is open and `st` a valid out-pointer.
    if unsafe { libc::fstat(fd.as_raw_fd(), &mut st) } != 0 {
        return last();
    }
    Ok(st.st_mode & libc::S_IFMT)
}

/// Whether descriptor `fd` refers to a folder.
pub fn is_dir_fd(fd: &std::os::fd::OwnedFd) -> std::io::Result<bool> {
    Ok(file_type(fd)? == libc::S_IFDIR)
}
