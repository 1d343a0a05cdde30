//! A runner's container log: podman's k8s-file driver writes it to the runner's log path
//! ([`super::paths`]), and it is kept after the container is gone for `podrunner logs`, the
//! history and the core's reading of the runner's last words (core/outcome.rs).

use std::path::{Path, PathBuf};

/// How many finished runners' container logs are kept for `podrunner logs`.
pub const KEPT_LOGS: usize = 50;

/// How much of a log's end is read for its last line: far more than one line, far less than
/// a whole job's output.
const TAIL_BYTES: u64 = 8192;

/// The last non-empty message line of a k8s-file log (`TIMESTAMP STREAM TAG MESSAGE`).
pub fn last_log_line(path: &Path) -> Option<String> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(path).ok()?;
    let len = f.metadata().ok()?.len();
    let start = len.saturating_sub(TAIL_BYTES);
    f.seek(SeekFrom::Start(start)).ok()?;
    let mut buf = Vec::new();
    f.read_to_end(&mut buf).ok()?;
    let text = String::from_utf8_lossy(&buf);
    text.lines()
        .rev()
        .filter_map(|l| parse_k8s_log_line(l).map(|(_, m)| m.trim().to_string()))
        .find(|m| !m.is_empty())
}

/// Splits a k8s-file log line into its stream and message.
pub fn parse_k8s_log_line(line: &str) -> Option<(&str, &str)> {
    let mut parts = line.splitn(4, ' ');
    let _ts = parts.next()?;
    let stream = parts.next()?;
    let _tag = parts.next()?;
    Some((stream, parts.next().unwrap_or("")))
}

/// Removes all but the `keep` newest logs in `dir`.
pub fn prune_logs(dir: &Path, keep: usize) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    let mut files: Vec<(std::time::SystemTime, PathBuf)> = rd
        .filter_map(|e| e.ok())
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
        .collect();
    if files.len() <= keep {
        return;
    }
    files.sort();
    for (_, p) in files.iter().take(files.len() - keep) {
        if let Err(e) = std::fs::remove_file(p) {
            tracing::debug!("cannot remove the old log {}: {e}", p.display());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn k8s_log_lines() {
        assert_eq!(
            parse_k8s_log_line("2026-11-30T04:43:30.328906492+00:00 stdout F hello world"),
            Some(("stdout", "hello world"))
        );
        assert_eq!(
            parse_k8s_log_line("2026-11-30T04:43:30Z stderr F"),
            Some(("stderr", ""))
        );
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.log");
        std::fs::write(
            &p,
            "t stdout F first\nt stdout F broken image for tests\nt stdout F \n",
        )
        .unwrap();
        assert_eq!(last_log_line(&p).as_deref(), Some("broken image for tests"));
        assert_eq!(last_log_line(&dir.path().join("none")), None);
    }

    #[test]
    fn pruning_keeps_newest() {
        let dir = tempfile::tempdir().unwrap();
        for i in 0..5 {
            std::fs::write(dir.path().join(format!("{i}.log")), "x").unwrap();
            let t = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1000 + i);
            std::fs::File::options()
                .write(true)
                .open(dir.path().join(format!("{i}.log")))
                .unwrap()
                .set_modified(t)
                .unwrap();
        }
        prune_logs(dir.path(), 2);
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(left, vec!["3.log", "4.log"]);
    }
}
