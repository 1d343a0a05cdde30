//! Fast exit detection: podrunner asks podman to write each runner container's main process id
//! to a file (`podman run --pidfile`) and waits on a pidfd of that process. Its end is the
//! container's end, seen at once; Podman's `died` event reaches a `podman events` reader about
//! 150 ms later on the hosts measured (conmon itself lingers a second longer, so watching it
//! would be slower still). The event still arrives and carries the exit code.
//!
//! The same task follows the runner's log (k8s-file, written by conmon) and sends its lines to
//! the loop, which reads the runner's own account of itself from them (core/outcome.rs).

use super::Outcome;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::io::unix::AsyncFd;
use tokio::sync::mpsc::UnboundedSender;

/// How long to wait for podman to write the pid file after `podman run -d` returned.
const PIDFILE_WAIT: Duration = Duration::from_secs(2);

fn read_pid(path: &Path) -> Option<i32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// After the exit, how long to keep reading lines conmon has not written yet.
const LATE_LINES_WAIT: Duration = Duration::from_secs(1);
/// After run.sh's last line, how long stderr lines written a moment later are still read.
const AFTER_LAST_LINE: Duration = Duration::from_millis(60);
/// The last line `run.sh` prints (actions/runner `src/Misc/layoutroot/run.sh`).
const LAST_LINE: &str = "Exiting runner...";

/// How often a runner's log is read for new lines while it runs: status shows a job within
/// this, and the reads cost nothing when the file has not grown.
const LOG_POLL: Duration = Duration::from_millis(500);

/// Partial records (`P`) waiting for the rest of their line, per stream: a program's stdout
/// and stderr interleave in the log.
#[derive(Debug, Default)]
pub struct Partial {
    stdout: String,
    stderr: String,
}

/// Reads what was appended to a k8s-file log since `offset`: whole messages (partial `P`
/// records joined to the next record of the same stream). Advances `offset` past whole lines
/// only.
pub fn read_new_lines(path: &Path, offset: &mut u64, partial: &mut Partial) -> Vec<String> {
    use std::io::{Read, Seek, SeekFrom};
    let Ok(mut f) = std::fs::File::open(path) else {
        return Vec::new();
    };
    if f.seek(SeekFrom::Start(*offset)).is_err() {
        return Vec::new();
    }
    let mut buf = Vec::new();
    if f.read_to_end(&mut buf).is_err() {
        return Vec::new();
    }
    let Some(end) = buf.iter().rposition(|b| *b == b'\n') else {
        return Vec::new();
    };
    *offset += end as u64 + 1;
    let text = String::from_utf8_lossy(&buf[..end]);
    let mut out = Vec::new();
    for l in text.lines() {
        let mut parts = l.splitn(4, ' ');
        let (_ts, stream, tag) = (parts.next(), parts.next(), parts.next());
        let msg = parts.next().unwrap_or("");
        let buf = if stream == Some("stderr") {
            &mut partial.stderr
        } else {
            &mut partial.stdout
        };
        buf.push_str(msg);
        if tag != Some("P") {
            out.push(std::mem::take(buf));
        }
    }
    out
}

/// Follows a runner: sends its new output lines every [`LOG_POLL`], and when the process whose
/// pid is in `pidfile` exits, the last lines and then the exit. Without a pid file or pidfd
/// support it returns quietly: events and resyncs still tell of the exit, and the registration
/// list judges it.
pub async fn watch_container(
    pidfile: PathBuf,
    log: PathBuf,
    name: String,
    tx: UnboundedSender<Outcome>,
) {
    let (mut offset, mut partial) = (0u64, Partial::default());
    let flush = |offset: &mut u64, partial: &mut Partial| {
        let lines = read_new_lines(&log, offset, partial);
        if !lines.is_empty() {
            let _ = tx.send(Outcome::Output {
                name: name.clone(),
                lines,
            });
        }
    };
    let mut waited = Duration::ZERO;
    let pid = loop {
        if let Some(p) = read_pid(&pidfile) {
            break p;
        }
        if waited >= PIDFILE_WAIT {
            tracing::debug!("no pid file for {name}; relying on podman events");
            flush(&mut offset, &mut partial);
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        waited += Duration::from_millis(20);
    };
    let exited = |tx: &UnboundedSender<Outcome>| {
        tracing::debug!("container process of {name} ended");
        let _ = tx.send(Outcome::ContainerPidExited { name: name.clone() });
    };
    let Some(pid) = rustix::process::Pid::from_raw(pid) else {
        return;
    };
    let fd = match rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::NONBLOCK) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::SRCH) => {
            flush(&mut offset, &mut partial);
            exited(&tx);
            return;
        }
        Err(e) => {
            tracing::debug!("pidfd_open({pid:?}) for {name} failed: {e}; relying on podman events");
            return;
        }
    };
    // AsyncFd takes ownership of the OwnedFd, so nothing else can close or reuse the
    // descriptor while it is registered: the I/O-safety concern behind the deprecation does
    // not arise here.
    #[allow(deprecated)]
    let Ok(afd) = AsyncFd::new(fd) else {
        return;
    };
    loop {
        tokio::select! {
            r = afd.readable() => {
                // Read what is in the log first, so the loop judges the exit knowing the
                // runner's last words; conmon may still be writing the last lines, so keep
                // reading a moment after (run.sh's last line is "Exiting runner...").
                let mut last = read_new_lines(&log, &mut offset, &mut partial);
                let done = |l: &[String]| l.last().is_some_and(|x| x.starts_with(LAST_LINE));
                let complete = done(&last);
                if !last.is_empty() {
                    let _ = tx.send(Outcome::Output { name: name.clone(), lines: std::mem::take(&mut last) });
                }
                // The exit is reported only after the late lines: conmon writes stdout and
                // stderr from two pipes, so the runner's own error line (stderr) can land
                // after run.sh's closing lines (stdout), and the core judges the exit from
                // the lines it has by then. One more short read follows even the last line.
                let mut waited = Duration::ZERO;
                let mut end = complete;
                while waited < LATE_LINES_WAIT {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    waited += Duration::from_millis(20);
                    let more = read_new_lines(&log, &mut offset, &mut partial);
                    let seen_end = done(&more);
                    if !more.is_empty() {
                        let _ = tx.send(Outcome::Output { name: name.clone(), lines: more });
                    }
                    if end && waited >= AFTER_LAST_LINE {
                        break;
                    }
                    end |= seen_end;
                }
                if r.is_ok() {
                    exited(&tx);
                }
                break;
            }
            _ = tokio::time::sleep(LOG_POLL) => flush(&mut offset, &mut partial),
        }
    }
    super::remove_file_logged(&pidfile);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_lines_join_partials_and_wait_for_a_newline() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("r.log");
        std::fs::write(
            &p,
            "t stdout F one\nt stderr P err-a\nt stdout P tw\nt stdout F o\nt stderr F -b\nt stderr F thr",
        )
        .unwrap();
        let (mut off, mut part) = (0, Partial::default());
        assert_eq!(
            read_new_lines(&p, &mut off, &mut part),
            vec!["one", "two", "err-a-b"]
        );
        assert_eq!(
            read_new_lines(&p, &mut off, &mut part),
            Vec::<String>::new()
        );
        std::fs::OpenOptions::new()
            .append(true)
            .open(&p)
            .and_then(|mut f| {
                use std::io::Write;
                f.write_all(b"ee\n")
            })
            .unwrap();
        assert_eq!(read_new_lines(&p, &mut off, &mut part), vec!["three"]);
        assert_eq!(
            read_new_lines(&dir.path().join("none"), &mut 0, &mut part),
            Vec::<String>::new()
        );
    }
}
