//! Secret hygiene (issue 6): with a pool running jobs at debug log level, the PAT, every JIT
//! config issued and the runner token inside each of them are searched for in every process's
//! argv and environment on the host (the manager's own environment aside, which holds no
//! secret either), `podman inspect` of every container, every log, `status --json` and the
//! state folder: zero hits.
//!
//! This holds for the runner's own processes too: podrunner unpacks the JIT config into the
//! runner's settings files (runner/jit.rs) instead of handing it over in
//! `ACTIONS_RUNNER_INPUT_JITCONFIG`, which `/proc/PID/environ` would keep for the life of
//! run.sh and the listener.
#![allow(
    clippy::disallowed_methods,
    reason = "test code starts the programs it tests and inspects the host directly"
)]

mod common;

use common::*;
use std::collections::BTreeMap;
use std::time::Duration;

struct Proc {
    pid: i32,
    cmdline: String,
    environ: String,
    cgroup: String,
}

fn procs() -> Vec<Proc> {
    let mut v = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let read = |f: &str| {
            std::fs::read(format!("/proc/{pid}/{f}"))
                .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
                .unwrap_or_default()
        };
        v.push(Proc {
            pid,
            cmdline: read("cmdline"),
            environ: read("environ"),
            cgroup: read("cgroup"),
        });
    }
    v
}

/// Runner name -> full container id, from `podman inspect`.
fn container_ids(b: &Bench) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    for c in b.containers() {
        let out = std::process::Command::new("podman")
            .args(["inspect", "--format", "{{.Id}}", &c])
            .output()
            .unwrap();
        let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if !id.is_empty() {
            m.insert(c, id);
        }
    }
    m
}

#[tokio::test(flavor = "multi_thread")]
async fn no_secret_anywhere_on_the_host() {
    if !is_root() {
        eprintln!("note: without root, other users' /proc/PID/environ cannot be read; the scan covers this user's processes");
    }
    let mut b = Bench::new("hygiene", vec![Pool::no_engine("hy", 3)]).await;
    b.start_manager();
    b.wait_until("3 idle runners", Duration::from_secs(90), |b| {
        b.runners_in("idle").len() == 3
    })
    .await;
    // A job looks for the secret from inside: its environment, the mounted file.
    let probe = b
        .gh
        .enqueue_job(
            SCOPE,
            LABELS,
            "env; echo ARGS: \"$@\"; ls -la /run/podrunner/ 2>&1; cat /run/podrunner/jitconfig /run/podrunner/.credentials 2>&1; echo probe-done",
        )
        .id;
    let j =
        b.gh.wait_job_completed(probe, Duration::from_secs(60))
            .await
            .expect("probe job done");
    let probe_out = j.output.unwrap_or_default();
    assert!(probe_out.contains("probe-done"), "{probe_out}");
    assert!(
        probe_out.contains("No such file"),
        "the file is gone: {probe_out}"
    );
    // A busy runner (its job's process alive) while the host is searched.
    let busy_job = b.gh.enqueue_job(SCOPE, LABELS, "sleep 6; echo slept").id;
    b.wait_until("a busy runner", Duration::from_secs(30), |b| {
        b.runners_in("busy").len() == 1
    })
    .await;

    // The probe's runner is replaced: its JIT config is the fourth. The replacement is asked for
    // after the probe's exit is seen, which can be after the busy runner took its job.
    b.wait_until(
        "the probe's replacement registered",
        Duration::from_secs(60),
        |b| b.gh.jit_configs_issued().len() >= 4 && container_ids(b).len() >= 3,
    )
    .await;
    let jits = b.gh.jit_configs_issued();
    // Which runner each JIT config belongs to.
    let owner: Vec<(String, String)> = jits
        .iter()
        .map(|j| {
            let files = fake_github::decode_jit_config(j).unwrap();
            let name = files[".runner"]["agentName"].as_str().unwrap().to_string();
            (j.clone(), name)
        })
        .collect();
    for (j, _) in &owner {
        assert!(!probe_out.contains(j.as_str()), "a job saw a JIT config");
    }
    assert!(!probe_out.contains(TOKEN));

    let runner_tokens: Vec<String> = owner
        .iter()
        .map(|(j, _)| {
            let files = fake_github::decode_jit_config(j).unwrap();
            files[".credentials"]["data"]["token"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    // The runners really run from the unpacked settings: every container is a live runner.
    let ids = container_ids(&b);
    assert!(ids.len() >= 3, "{ids:?}");
    let manager = b.manager_pid().unwrap() as i32;
    let host = procs();
    // The runners' own listeners (rootless on cgroup v1 they have no cgroup of their own, so
    // they are told by their command line).
    let in_runners = host
        .iter()
        .filter(|p| {
            ids.values().any(|id| p.cgroup.contains(id.as_str()))
                || p.cmdline.contains("fake-runner")
        })
        .count();
    assert!(in_runners >= 3, "the scan sees the runners' own processes");
    for p in &host {
        assert!(!p.cmdline.contains(TOKEN), "PAT in argv of pid {}", p.pid);
        if p.pid != manager {
            assert!(
                !p.environ.contains(TOKEN),
                "PAT in the environment of pid {}: {}",
                p.pid,
                p.cmdline
            );
        }
        for (j, runner) in &owner {
            assert!(
                !p.cmdline.contains(j.as_str()) && !p.environ.contains(j.as_str()),
                "JIT config of {runner} in argv or environment of pid {} ({}), cgroup {}",
                p.pid,
                p.cmdline,
                p.cgroup.trim()
            );
        }
        for t in &runner_tokens {
            assert!(
                !p.cmdline.contains(t.as_str()) && !p.environ.contains(t.as_str()),
                "a runner token in argv or environment of pid {} ({})",
                p.pid,
                p.cmdline
            );
        }
        assert!(
            !p.environ.contains("ACTIONS_RUNNER_INPUT_JITCONFIG"),
            "pid {} ({}) was given the JIT config in its environment",
            p.pid,
            p.cmdline
        );
    }
    eprintln!(
        "{} processes searched ({in_runners} inside runner containers): no secret",
        host.len()
    );

    let inspect = std::process::Command::new("podman")
        .arg("inspect")
        .args(b.containers())
        .output()
        .unwrap();
    let inspect = String::from_utf8_lossy(&inspect.stdout).into_owned();
    assert!(inspect.contains("podrunner.runner-id"));
    let status = b.cli(&["status", "--json"]).1 + &b.cli(&["status"]).1;
    b.gh.wait_job_completed(busy_job, Duration::from_secs(60))
        .await
        .expect("busy job done");
    let (code, out, err) = b.cli(&["stop"]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(b.wait_manager_exit(Duration::from_secs(60)).await, 0);
    let logs = b.all_logs();
    assert!(logs.contains("DEBUG"), "the manager ran at debug level");
    let mut files = Vec::new();
    files.extend(walk(&b.state_dir()));
    files.extend(walk(&b.dir.path().join("run")));
    assert!(
        files
            .iter()
            .any(|f| f.extension().is_some_and(|e| e == "log")),
        "container logs kept"
    );
    let mut stored = String::new();
    for f in &files {
        stored.push_str(&String::from_utf8_lossy(
            &std::fs::read(f).unwrap_or_default(),
        ));
    }
    let runner_logs = b.cli(&["logs", "-n", "1000"]).1;
    let mut secrets: Vec<&str> = jits.iter().map(String::as_str).collect();
    secrets.extend(runner_tokens.iter().map(String::as_str));
    secrets.push(TOKEN);
    for s in secrets {
        assert!(!inspect.contains(s), "secret in podman inspect");
        assert!(!logs.contains(s), "secret in the manager's log");
        assert!(!status.contains(s), "secret in status");
        assert!(
            !stored.contains(s),
            "secret in the state or runtime folder after stop"
        );
        assert!(!runner_logs.contains(s), "secret in `podrunner logs`");
    }
}

/// The GitHub App's secrets (issue 14): the private key, every JWT the manager signed and
/// every installation token GitHub gave it are in no process's argv or environment (the
/// manager's included), no `podman inspect`, no log at debug level, no `status` and no file
/// under the state and runtime folders.
#[tokio::test(flavor = "multi_thread")]
async fn app_secrets_nowhere_on_the_host() {
    let mut b = Bench::new("hyapp", vec![Pool::no_engine("hya", 2)]).await;
    let app = b.use_app();
    // Short-lived tokens: several are made and renewed during the test.
    b.gh.set_installation_token_ttl(Duration::from_secs(4));
    b.start_manager();
    b.wait_until("2 idle runners", Duration::from_secs(90), |b| {
        b.runners_in("idle").len() == 2
    })
    .await;
    let jobs: Vec<u64> = (0..4)
        .map(|_| b.gh.enqueue_job(SCOPE, LABELS, "env; echo ok").id)
        .collect();
    let mut outputs = String::new();
    for id in jobs {
        let j =
            b.gh.wait_job_completed(id, Duration::from_secs(90))
                .await
                .expect("job done");
        outputs.push_str(&j.output.unwrap_or_default());
    }
    let host = procs();
    let inspect = std::process::Command::new("podman")
        .arg("inspect")
        .args(b.containers())
        .output()
        .unwrap();
    let inspect = String::from_utf8_lossy(&inspect.stdout).into_owned();
    let status = b.cli(&["status", "--json"]).1 + &b.cli(&["status"]).1;
    let (code, out, err) = b.cli(&["stop"]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(b.wait_manager_exit(Duration::from_secs(60)).await, 0);

    let jwts = b.gh.jwts_seen();
    let tokens: Vec<String> =
        b.gh.extra_tokens()
            .into_iter()
            .filter(|t| t.starts_with("ghs_"))
            .collect();
    assert!(
        !jwts.is_empty() && tokens.len() >= 2,
        "{} JWTs, {} tokens",
        jwts.len(),
        tokens.len()
    );
    // The key's body, line by line (any line of it would give it away).
    let key_lines: Vec<&str> = app
        .private_key_pem
        .lines()
        .filter(|l| !l.starts_with("-----") && l.len() >= 40)
        .collect();
    assert!(key_lines.len() > 10);
    let mut secrets: Vec<&str> = key_lines.clone();
    secrets.extend(jwts.iter().map(String::as_str));
    secrets.extend(tokens.iter().map(String::as_str));
    let logs = b.all_logs();
    assert!(
        logs.contains("DEBUG") && logs.contains("new installation token"),
        "the manager ran at debug level with the App"
    );
    let mut stored = String::new();
    for f in walk(&b.state_dir())
        .into_iter()
        .chain(walk(&b.dir.path().join("run")))
    {
        stored.push_str(&String::from_utf8_lossy(
            &std::fs::read(f).unwrap_or_default(),
        ));
    }
    for s in secrets {
        for p in &host {
            assert!(
                !p.cmdline.contains(s) && !p.environ.contains(s),
                "an App secret in argv or environment of pid {} ({})",
                p.pid,
                p.cmdline
            );
        }
        assert!(!inspect.contains(s), "App secret in podman inspect");
        assert!(!logs.contains(s), "App secret in the manager's log");
        assert!(!status.contains(s), "App secret in status");
        assert!(
            !stored.contains(s),
            "App secret in the state or runtime folder"
        );
        assert!(!outputs.contains(s), "App secret seen by a job");
    }
    assert!(
        app.key_file.exists(),
        "the key file is the user's and stays"
    );
}
