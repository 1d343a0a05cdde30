//! Recognising an engine's processes and mounts from `/proc` text, so that teardown and a pid
//! file never touch a process or mount that is not the engine's. Pure.

use super::EngineDirs;
use std::path::{Path, PathBuf};

/// Whether `/proc/PID/cmdline` is the Docker API proxy listening on `socket`.
pub fn is_proxy_cmdline(cmdline: &str, socket: &Path) -> bool {
    let want = format!("--listen={}", socket.display());
    cmdline.contains("docker-proxy") && cmdline.split_whitespace().any(|w| w == want)
}

/// Whether `/proc/PID/cmdline` (NULs as spaces) is the engine serving `socket`, so a pid file
/// never makes podrunner signal a reused pid.
pub fn is_engine_cmdline(cmdline: &str, socket: &Path) -> bool {
    let want = format!("unix://{}", socket.display());
    // The proxy carries the engine's command line after `--`; it is not the engine.
    !cmdline.contains("docker-proxy")
        && cmdline.contains("system service")
        && cmdline.split_whitespace().any(|w| w == want)
}

/// The mount points at or below `dir` in `/proc/self/mountinfo` text, deepest first (the order
/// to unmount them in). Octal escapes (`\040` for a space) are decoded.
pub fn mounts_under(mountinfo: &str, dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = mountinfo
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|m| PathBuf::from(unescape_mount(m)))
        .filter(|m| m.starts_with(dir))
        .collect();
    v.sort_by_key(|m| std::cmp::Reverse(m.components().count()));
    v.dedup();
    v
}

fn unescape_mount(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let n = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(n);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Whether a process's command line refers to one of the engine's folders: its conmon
/// processes, and the OCI runtime of a build step, which leave the service's process group.
pub fn cmdline_in_engine(cmdline: &str, d: &EngineDirs) -> bool {
    let data = format!("{}/", d.data.display());
    let run = format!("{}/", d.run.display());
    cmdline.contains(&data) || cmdline.contains(&run)
}
