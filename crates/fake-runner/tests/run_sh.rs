//! Tests of the test image's `run.sh` (images/test-runner/run.sh) on the host, with `sh`:
//! run-helper's exit-code mapping, and signal forwarding to the real fake-runner.
#![allow(
    clippy::disallowed_methods,
    reason = "test code starts the programs it tests and inspects the host directly"
)]

use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

fn run_sh() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../images/test-runner/run.sh")
}

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("fake-runner-run-sh-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A listener stand-in that exits with `first` on its first start and 0 afterwards, counting
/// its starts in `dir/count`.
fn stub(dir: &Path, first: i32) -> PathBuf {
    let p = dir.join("listener");
    let script = format!(
        "#!/bin/sh\nn=$(cat '{c}' 2>/dev/null || echo 0); n=$((n+1)); echo $n > '{c}'\n\
         echo \"listener start $n: $*\"\n[ $n -ge 2 ] && exit 0\nexit {first}\n",
        c = dir.join("count").display()
    );
    std::fs::write(&p, script).unwrap();
    Command::new("chmod").arg("755").arg(&p).status().unwrap();
    p
}

/// Runs run.sh with a stub whose first run exits `code`; returns (exit code, starts, stdout).
fn run_with_code(code: i32) -> (i32, u32, String) {
    let dir = scratch(&format!("code{code}"));
    let listener = stub(&dir, code);
    let out = Command::new("sh")
        .arg(run_sh())
        .args(["--jitconfig", "x"])
        .env("FAKE_RUNNER_BIN", &listener)
        .env("FAKE_RUNNER_RESTART_DELAY", "0")
        .env("RUNNER_MANUALLY_TRAP_SIG", "1")
        .output()
        .unwrap();
    let starts = std::fs::read_to_string(dir.join("count"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    (
        out.status.code().unwrap_or(-1),
        starts,
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn stops_on_0_1_5_and_unknown_codes() {
    for (code, line) in [
        (
            0,
            "Runner listener exit with 0 return code, stop the service, no retry needed.",
        ),
        (
            1,
            "Runner listener exit with terminated error, stop the service, no retry needed.",
        ),
        (
            5,
            "Runner listener exit with Session Conflict error, stop the service, no retry needed.",
        ),
        (7, "Exiting with unknown error code: 7"),
        (137, "Exiting with unknown error code: 137"),
    ] {
        let (rc, starts, out) = run_with_code(code);
        assert_eq!((rc, starts), (0, 1), "code {code}: {out}");
        assert!(out.contains(line), "code {code}: {out}");
        assert!(out.contains("listener start 1: --jitconfig x"), "{out}");
        assert!(out.ends_with("Exiting runner...\n"), "{out}");
    }
}

#[test]
fn restarts_on_2_3_4() {
    for code in [2, 3, 4] {
        let (rc, starts, out) = run_with_code(code);
        assert_eq!((rc, starts), (0, 2), "code {code}: {out}");
        assert!(out.contains("Restarting runner..."), "{out}");
    }
}

#[test]
fn forwards_sigterm_to_the_listener() {
    // A server that accepts and never answers: the fake runner sits in its first acquire.
    let server = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = server.local_addr().unwrap().port();
    thread::spawn(move || {
        let mut held = Vec::new();
        for conn in server.incoming().flatten() {
            held.push(conn);
        }
    });
    let runner = format!(
        r#"{{"agentId": 1, "agentName": "r", "serverUrl": "http://127.0.0.1:{port}", "ephemeral": true}}"#
    );
    let files = format!(
        r#"{{".runner": "{}", ".credentials": "{}"}}"#,
        STANDARD.encode(runner),
        STANDARD.encode(r#"{"scheme": "OAuthAccessToken", "data": {"token": "t"}}"#)
    );
    let mut child = Command::new("sh")
        .arg(run_sh())
        .env("FAKE_RUNNER_BIN", env!("CARGO_BIN_EXE_fake-runner"))
        .env("RUNNER_MANUALLY_TRAP_SIG", "1")
        .env("ACTIONS_RUNNER_INPUT_JITCONFIG", STANDARD.encode(files))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    thread::sleep(Duration::from_millis(700));
    let start = Instant::now();
    Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    let status = child.wait().unwrap();
    assert!(start.elapsed() < Duration::from_secs(5));
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    assert_eq!(status.code(), Some(0), "{out}");
    assert!(
        out.contains("The runner has received a shutdown signal."),
        "{out}"
    );
    assert!(
        out.contains("Runner listener exit with 0 return code, stop the service, no retry needed."),
        "{out}"
    );
    assert!(out.ends_with("Exiting runner...\n"), "{out}");
}
