//! A minimal init for an engine in a pid namespace of its own (commands/engine_exec.rs): fork,
//! forward the signals a stop sends, reap, and exit with the child's status. Used twice: by
//! `engine-exec` outside the pid namespace (the process the proxy started and whose pid it
//! keeps) and by its child, pid 1 inside, which must reap the orphans (conmon) the namespace
//! hands it.
#![allow(unsafe_code)]

/// Signals passed on to the child: what a stop, a terminal or an operator sends.
const FORWARDED: [libc::c_int; 6] = [
    libc::SIGTERM,
    libc::SIGINT,
    libc::SIGHUP,
    libc::SIGQUIT,
    libc::SIGUSR1,
    libc::SIGUSR2,
];

extern "C" fn ignore(_: libc::c_int) {}

fn set_of(signals: &[libc::c_int]) -> libc::sigset_t {
    // SAFETY: sigemptyset and sigaddset only write the set they are given.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in signals {
            libc::sigaddset(&mut set, *s);
        }
        set
    }
}

fn handled() -> libc::sigset_t {
    let mut all = FORWARDED.to_vec();
    all.push(libc::SIGCHLD);
    set_of(&all)
}

/// Blocks the forwarded signals and SIGCHLD, each with a handler that does nothing (the
/// kernel drops a signal to a namespace's pid 1 that has no handler): they wait for
/// [`supervise`]. Call before [`fork`], so no signal is lost in between.
pub fn hold_signals() -> std::io::Result<()> {
    // SAFETY: installs a handler that touches nothing, and blocks signals for this
    // single-threaded process.
    unsafe {
        let mut act: libc::sigaction = std::mem::zeroed();
        act.sa_sigaction = ignore as extern "C" fn(libc::c_int) as usize;
        libc::sigemptyset(&mut act.sa_mask);
        for s in FORWARDED.iter().chain([libc::SIGCHLD].iter()) {
            if libc::sigaction(*s, &act, std::ptr::null_mut()) != 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
        let set = handled();
        if libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Unblocks what [`hold_signals`] blocked: in the process about to become the engine (exec
/// keeps the mask, and resets the handlers itself).
pub fn release_signals() -> std::io::Result<()> {
    let set = handled();
    // SAFETY: unblocks signals of this single-threaded process.
    if unsafe { libc::sigprocmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut()) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// `fork()`: `Some(pid)` in the parent, `None` in the child. The process must be
/// single-threaded (engine-exec runs before any runtime starts).
pub fn fork() -> std::io::Result<Option<i32>> {
    // SAFETY: this process is single-threaded, so the child's copy is consistent.
    match unsafe { libc::fork() } {
        -1 => Err(std::io::Error::last_os_error()),
        0 => Ok(None),
        pid => Ok(Some(pid)),
    }
}

/// Makes the kernel SIGKILL this process when its parent dies: pid 1 of the engine's namespace,
/// so that killing engine-exec takes every process of the engine with it. (A parent killed
/// before this call cannot be told from inside the new pid namespace, where `getppid` is 0;
/// teardown still finds such an engine by its process group and folders.)
pub fn die_with_parent() -> std::io::Result<()> {
    // SAFETY: prctl with an integer argument.
    if unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// The exit status a shell would report for a wait status.
fn exit_code(status: libc::c_int) -> i32 {
    if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else if libc::WIFSIGNALED(status) {
        128 + libc::WTERMSIG(status)
    } else {
        1
    }
}

/// Waits for `child` (after [`hold_signals`]): forwards every signal of [`FORWARDED`] to it,
/// reaps every child that exits (pid 1 inherits the namespace's orphans), and exits with
/// `child`'s status when it is gone.
pub fn supervise(child: i32) -> ! {
    let set = handled();
    loop {
        // SAFETY: `set` is a valid signal set; a null info pointer is allowed.
        let sig = unsafe { libc::sigwaitinfo(&set, std::ptr::null_mut()) };
        if sig == libc::SIGCHLD {
            loop {
                let mut status = 0;
                // SAFETY: waitpid with WNOHANG writes only `status`.
                let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
                if pid <= 0 {
                    break;
                }
                if pid == child {
                    std::process::exit(exit_code(status));
                }
            }
        } else if sig > 0 {
            // A child already gone has nothing left to stop.
            let _ = super::signal(child, sig);
        }
    }
}
