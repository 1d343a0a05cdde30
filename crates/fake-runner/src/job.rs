//! Running the one job: `sh -c SCRIPT` in its own process group, combined output captured,
//! timeout and cancellation by signal.

use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use nix::fcntl::OFlag;
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

use crate::api::Job;
use crate::{log, Event};

/// At most this much output is reported to the server.
pub const MAX_OUTPUT: usize = 64 * 1024;

/// After SIGINT to the job's group, wait this long before SIGTERM, and as long again before
/// SIGKILL. (The real runner waits 7.5 s and 2.5 s; shorter here to keep tests quick and well
/// inside `podman stop`'s default 10 s.)
const KILL_STEP: Duration = Duration::from_millis(2500);

/// How the job ended, as the server wants it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conclusion {
    Success,
    Failure,
    Cancelled,
}

impl Conclusion {
    /// The `conclusion` field of `complete`.
    pub fn api_name(self) -> &'static str {
        match self {
            Conclusion::Success => "success",
            Conclusion::Failure => "failure",
            Conclusion::Cancelled => "cancelled",
        }
    }

    /// The word in the runner's `Job X completed with result: ...` line.
    pub fn result_word(self) -> &'static str {
        match self {
            Conclusion::Success => "Succeeded",
            Conclusion::Failure => "Failed",
            Conclusion::Cancelled => "Canceled",
        }
    }
}

/// The facts about a finished job process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ended {
    /// The exit code if it exited normally.
    pub code: Option<i32>,
    /// The signal that killed it otherwise.
    pub signal: Option<i32>,
    /// The runner received a shutdown signal while the job ran.
    pub cancelled: bool,
    /// The job ran past its `timeout_secs`.
    pub timed_out: bool,
}

impl Ended {
    pub fn from_status(status: ExitStatus, cancelled: bool, timed_out: bool) -> Ended {
        Ended {
            code: status.code(),
            signal: status.signal(),
            cancelled,
            timed_out,
        }
    }
}

/// Conclusion and reported exit code. Death by signal N reports 128+N, as a shell would.
/// Cancellation wins over everything; a timeout is a failure even if the script then exited 0.
pub fn conclude(e: Ended) -> (Conclusion, i32) {
    let exit_code = match (e.code, e.signal) {
        (Some(c), _) => c,
        (None, Some(s)) => 128 + s,
        (None, None) => -1,
    };
    let conclusion = if e.cancelled {
        Conclusion::Cancelled
    } else if e.timed_out || exit_code != 0 {
        Conclusion::Failure
    } else {
        Conclusion::Success
    };
    (conclusion, exit_code)
}

/// The captured output as reported: lossy UTF-8, at most `MAX_OUTPUT` bytes, cut at a
/// character boundary.
pub fn truncate_output(bytes: &[u8]) -> String {
    let mut s = String::from_utf8_lossy(&bytes[..bytes.len().min(MAX_OUTPUT)]).into_owned();
    if s.len() > MAX_OUTPUT {
        let mut cut = MAX_OUTPUT;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
    s
}

/// The result of running a job.
pub struct JobResult {
    pub ended: Ended,
    pub output: String,
}

fn signal_group(pgid: i32, sig: Signal) {
    // ESRCH (group already gone) is fine.
    let _ = killpg(Pid::from_raw(pgid), sig);
}

/// Runs the job and waits for it, handling shutdown signals and the timeout. `events` is the
/// runner's event channel (signals arrive on it); `tx` is its sender for the helper threads.
pub fn run(
    job: &Job,
    work_dir: &Path,
    job_env: &[(String, String)],
    env_remove: &[String],
    events: &Receiver<Event>,
    tx: &Sender<Event>,
) -> JobResult {
    let captured = Arc::new(Mutex::new(Vec::<u8>::new()));
    let spawned = spawn(job, work_dir, job_env, env_remove, &captured, tx);
    let pgid = match spawned {
        Ok(pgid) => pgid,
        Err(e) => {
            let msg = format!("Failed to start the job script: {e}\n");
            print!("{msg}");
            return JobResult {
                ended: Ended {
                    code: Some(127),
                    signal: None,
                    cancelled: false,
                    timed_out: false,
                },
                output: msg,
            };
        }
    };

    let mut deadline = job
        .timeout_secs
        .map(|s| Instant::now() + Duration::from_secs(s));
    // Escalation steps still to come once a stop has begun: (when, signal).
    let mut escalation: Vec<(Instant, Signal)> = Vec::new();
    let mut cancelled = false;
    let mut timed_out = false;
    let mut output_done = false;
    let begin_stop = |escalation: &mut Vec<(Instant, Signal)>| {
        signal_group(pgid, Signal::SIGINT);
        let now = Instant::now();
        *escalation = vec![
            (now + KILL_STEP * 2, Signal::SIGKILL),
            (now + KILL_STEP, Signal::SIGTERM),
        ];
    };

    let status = loop {
        let next = [deadline, escalation.last().map(|e| e.0)]
            .into_iter()
            .flatten()
            .min();
        let ev = match next {
            Some(t) => events.recv_timeout(t.saturating_duration_since(Instant::now())),
            None => events.recv().map_err(|_| RecvTimeoutError::Disconnected),
        };
        match ev {
            Ok(Event::JobExited(status)) => break Some(status),
            Ok(Event::OutputDone) => output_done = true,
            Ok(Event::Signal(_)) => {
                if !cancelled {
                    cancelled = true;
                    log("The runner has received a shutdown signal. Cancelling the running job.");
                    deadline = None;
                    if escalation.is_empty() {
                        begin_stop(&mut escalation);
                    }
                }
            }
            Ok(Event::Acquired(_)) => {}
            Err(RecvTimeoutError::Timeout) => {
                let now = Instant::now();
                if let Some(&(when, sig)) = escalation.last() {
                    if when <= now {
                        signal_group(pgid, sig);
                        escalation.pop();
                        continue;
                    }
                }
                if deadline.is_some_and(|d| d <= now) {
                    deadline = None;
                    timed_out = true;
                    log(&format!(
                        "The job has exceeded the maximum execution time of {} seconds.",
                        job.timeout_secs.unwrap_or_default()
                    ));
                    begin_stop(&mut escalation);
                }
            }
            Err(RecvTimeoutError::Disconnected) => break None,
        }
    };
    // Like the real runner, leave no process of the job behind.
    signal_group(pgid, Signal::SIGKILL);

    // Processes that escaped the group may still hold the pipe: do not wait for them forever.
    let until = Instant::now() + Duration::from_secs(2);
    while !output_done {
        match events.recv_timeout(until.saturating_duration_since(Instant::now())) {
            Ok(Event::OutputDone) => output_done = true,
            Ok(_) => {}
            Err(_) => break,
        }
    }

    let bytes = captured.lock().map(|b| b.clone()).unwrap_or_default();
    let ended = match status {
        Some(st) => Ended::from_status(st, cancelled, timed_out),
        None => Ended {
            code: None,
            signal: None,
            cancelled,
            timed_out,
        },
    };
    JobResult {
        ended,
        output: truncate_output(&bytes),
    }
}

/// Starts `sh -c SCRIPT` with stdout and stderr on one pipe; returns the process group id.
#[allow(
    clippy::disallowed_methods,
    reason = "the fake runner runs the job's script itself, as the real runner does"
)]
fn spawn(
    job: &Job,
    work_dir: &Path,
    job_env: &[(String, String)],
    env_remove: &[String],
    captured: &Arc<Mutex<Vec<u8>>>,
    tx: &Sender<Event>,
) -> std::io::Result<i32> {
    std::fs::create_dir_all(work_dir)?;
    let (rd, wr) = nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(std::io::Error::from)?;
    let wr2 = wr.try_clone()?;
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(&job.script)
        .current_dir(work_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::from(wr))
        .stderr(Stdio::from(wr2))
        .process_group(0);
    for k in env_remove {
        cmd.env_remove(k);
    }
    for (k, v) in job_env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn()?;
    // The Command holds the pipe's write ends: drop it so the reader sees EOF at the end.
    drop(cmd);
    let pid = child.id() as i32;

    let captured = Arc::clone(captured);
    let out_tx = tx.clone();
    thread::spawn(move || {
        let mut rd = File::from(rd);
        let mut buf = [0u8; 8192];
        loop {
            match rd.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    let mut out = std::io::stdout().lock();
                    let _ = out.write_all(&buf[..n]);
                    let _ = out.flush();
                    if let Ok(mut c) = captured.lock() {
                        let room = (MAX_OUTPUT + 4).saturating_sub(c.len());
                        c.extend_from_slice(&buf[..n.min(room)]);
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        let _ = out_tx.send(Event::OutputDone);
    });

    let exit_tx = tx.clone();
    thread::spawn(move || {
        if let Ok(status) = child.wait() {
            let _ = exit_tx.send(Event::JobExited(status));
        }
    });
    Ok(pid)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    fn ended(code: Option<i32>, signal: Option<i32>, cancelled: bool, timed_out: bool) -> Ended {
        Ended {
            code,
            signal,
            cancelled,
            timed_out,
        }
    }

    #[test]
    fn conclusion_mapping() {
        assert_eq!(
            conclude(ended(Some(0), None, false, false)),
            (Conclusion::Success, 0)
        );
        assert_eq!(
            conclude(ended(Some(1), None, false, false)),
            (Conclusion::Failure, 1)
        );
        assert_eq!(
            conclude(ended(Some(42), None, false, false)),
            (Conclusion::Failure, 42)
        );
        assert_eq!(
            conclude(ended(None, Some(9), false, false)),
            (Conclusion::Failure, 137)
        );
        assert_eq!(
            conclude(ended(None, Some(2), true, false)),
            (Conclusion::Cancelled, 130)
        );
        assert_eq!(
            conclude(ended(Some(0), None, true, false)),
            (Conclusion::Cancelled, 0)
        );
        assert_eq!(
            conclude(ended(None, Some(2), false, true)),
            (Conclusion::Failure, 130)
        );
        assert_eq!(
            conclude(ended(Some(0), None, false, true)),
            (Conclusion::Failure, 0)
        );
        assert_eq!(
            conclude(ended(None, None, false, false)),
            (Conclusion::Failure, -1)
        );
    }

    #[test]
    fn conclusion_names() {
        assert_eq!(Conclusion::Success.api_name(), "success");
        assert_eq!(Conclusion::Failure.api_name(), "failure");
        assert_eq!(Conclusion::Cancelled.api_name(), "cancelled");
        assert_eq!(Conclusion::Success.result_word(), "Succeeded");
        assert_eq!(Conclusion::Failure.result_word(), "Failed");
        assert_eq!(Conclusion::Cancelled.result_word(), "Canceled");
    }

    #[test]
    fn output_truncation() {
        assert_eq!(truncate_output(b"hello\n"), "hello\n");
        assert_eq!(
            truncate_output(&vec![b'a'; MAX_OUTPUT + 10]).len(),
            MAX_OUTPUT
        );
        // A 3-byte character straddling the limit is dropped whole, not split.
        let mut v = vec![b'a'; MAX_OUTPUT - 1];
        v.extend_from_slice("€€".as_bytes());
        let s = truncate_output(&v);
        assert_eq!(s.len(), MAX_OUTPUT - 1);
        assert!(s.bytes().all(|b| b == b'a'));
        // Invalid UTF-8 is replaced, not rejected.
        assert_eq!(truncate_output(&[b'o', 0xff, b'k']), "o\u{fffd}k");
    }

    fn run_script(script: &str, timeout_secs: Option<u64>) -> JobResult {
        let (tx, rx) = mpsc::channel();
        let dir = std::env::temp_dir().join(format!("fake-runner-test-{}", std::process::id()));
        let job = Job {
            job_id: serde_json::json!(1),
            script: script.to_string(),
            timeout_secs,
        };
        run(
            &job,
            &dir.join("work"),
            &[("RUNNER_NAME".into(), "t1".into())],
            &["ACTIONS_RUNNER_INPUT_JITCONFIG".into()],
            &rx,
            &tx,
        )
    }

    #[test]
    fn runs_a_script_and_captures_both_streams() {
        let r = run_script(
            "echo out; echo err >&2; echo \"$RUNNER_NAME\"; basename \"$PWD\"; exit 3",
            None,
        );
        assert_eq!(conclude(r.ended), (Conclusion::Failure, 3));
        assert_eq!(r.output, "out\nerr\nt1\nwork\n");
    }

    #[test]
    fn times_out() {
        let start = Instant::now();
        let r = run_script("sleep 30", Some(1));
        assert!(start.elapsed() < Duration::from_secs(10));
        assert!(r.ended.timed_out);
        assert_eq!(conclude(r.ended), (Conclusion::Failure, 130));
    }

    #[test]
    fn cancels_on_signal_event() {
        let (tx, rx) = mpsc::channel();
        let job = Job {
            job_id: serde_json::json!(1),
            script: "echo started; sleep 30".into(),
            timeout_secs: None,
        };
        let sender = tx.clone();
        thread::spawn(move || {
            thread::sleep(Duration::from_millis(300));
            let _ = sender.send(Event::Signal(15));
        });
        let start = Instant::now();
        let r = run(&job, &std::env::temp_dir(), &[], &[], &rx, &tx);
        assert!(start.elapsed() < Duration::from_secs(10));
        assert!(r.ended.cancelled);
        assert_eq!(conclude(r.ended).0, Conclusion::Cancelled);
        assert_eq!(r.output, "started\n");
    }
}
