//! The unit `podrunner install --system` writes, run by a real systemd: a Debian bookworm
//! container booted with `podman run --systemd=always` (image: images/systemd-test/build.sh,
//! which this test runs first; about a minute the first time, instant afterwards).
//!
//! Inside, the manager runs from the host's `podrunner` binary (bind-mounted; bookworm's glibc is
//! the host's), against the fake GitHub of this test process on 127.0.0.1 (host networking),
//! with `[podman] path` pointing at a small fake podman script: nested Podman is not what this
//! test is about. It checks what only a real systemd shows: `Type=notify` reaches `active
//! (running)` (READY=1 after the first reconcile), watchdog pings keep a 4 s `WatchdogSec=` from
//! firing, `systemctl reload` re-reads the config (SIGHUP), and `systemctl stop` drains and
//! exits cleanly. Needs root (debootstrap, rootful Podman with --systemd=always).
#![allow(
    clippy::disallowed_methods,
    reason = "test code starts the programs it tests and inspects the host directly"
)]

mod common;

use common::*;
use fake_github::FakeGithub;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

const IMAGE: &str = "localhost/podrunner-systemd-test:latest";
/// Where the host's podrunner binary appears inside the container (the unit's ExecStart).
const BIN_IN: &str = "/usr/local/bin/podrunner";
/// The test's folder (config, token, fake podman) inside the container, read-only.
const DIR_IN: &str = "/srv/podrunner-test";
/// Each invocation of the fake podman appends its arguments here (inside the container).
const CALLS_IN: &str = "/run/fake-podman.calls";
/// Short enough to be tested: the manager pings at half of it.
const WATCHDOG_SEC: u64 = 4;

/// Answers what the manager and its start-up checks ask: `info` and `version` (a rootful
/// Podman 4.3.1 with runc), `ps` (no containers), `events` (nothing, ever), and succeeds at
/// everything else (`image exists`, the doctor's `run --rm IMAGE true`, `rm`, `stop`).
const FAKE_PODMAN: &str = r#"#!/bin/sh
echo "$*" >>/run/fake-podman.calls
while [ $# -gt 0 ]; do
    case "$1" in --*) shift ;; *) break ;; esac
done
case "$1" in
    version) echo '{"Client":{"Version":"4.3.1","APIVersion":"4.3.1"}}' ;;
    info) echo '{"host":{"cgroupVersion":"v1","ociRuntime":{"name":"runc"},"security":{"rootless":false}},"store":{"graphDriverName":"overlay","graphRoot":"/var/lib/containers/storage"},"version":{"Version":"4.3.1"}}' ;;
    ps) echo '[]' ;;
    events) exec sleep infinity ;;
    images) echo 'localhost/podrunner-test-runner:latest' ;;
esac
exit 0
"#;

fn text(o: &Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&o.stdout).trim_end(),
        String::from_utf8_lossy(&o.stderr).trim_end()
    )
}

/// The booted container; removed when dropped, also when the test fails.
struct Machine {
    name: String,
}

impl Machine {
    fn boot(name: String, dir: &Path) -> Machine {
        let m = Machine { name };
        let out = run_with_timeout(
            Command::new("podman").args([
                "--runtime=runc",
                "run",
                "-d",
                "--name",
                &m.name,
                "--systemd=always",
                "--network=host",
                // Rootful rlimits within the host's hard limits (docs/test-bench.md, "The machines the tests run on").
                "--ulimit=nofile=20000:20000",
                "--ulimit=nproc=20000:20000",
                "-v",
                &format!("{}:{BIN_IN}:ro", podrunner_bin()),
                "-v",
                &format!("{}:{DIR_IN}:ro", dir.display()),
                IMAGE,
            ]),
            Duration::from_secs(120),
        );
        assert!(out.status.success(), "podman run failed: {}", text(&out));
        m
    }

    /// `podman exec NAME ARGS` with a timeout.
    fn exec(&self, args: &[&str], timeout: Duration) -> Output {
        run_with_timeout(
            Command::new("podman")
                .arg("exec")
                .arg(&self.name)
                .args(args),
            timeout,
        )
    }

    /// Like [`Machine::exec`], and the command must succeed; returns its stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.exec(args, Duration::from_secs(60));
        assert!(
            out.status.success(),
            "{args:?} failed ({}): {}\n--- journal ---\n{}",
            out.status,
            text(&out),
            self.journal()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The unit's journal, for assertions and failure messages.
    fn journal(&self) -> String {
        let out = self.exec(
            &[
                "journalctl",
                "--no-pager",
                "-o",
                "cat",
                "-u",
                "podrunner.service",
            ],
            Duration::from_secs(30),
        );
        text(&out)
    }

    /// `systemctl show podrunner.service` as key=value pairs.
    fn show(&self) -> std::collections::BTreeMap<String, String> {
        self.ok(&[
            "systemctl",
            "show",
            "podrunner.service",
            "-p",
            "ActiveState,SubState,Result,Type,NotifyAccess,WatchdogUSec,MainPID,NRestarts,StatusText,ExecMainStatus",
        ])
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    fn wait_journal(&self, what: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let j = self.journal();
            if j.contains(what) {
                return j;
            }
            assert!(
                Instant::now() < deadline,
                "no {what:?} in the journal within {timeout:?}:\n{j}"
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

impl Drop for Machine {
    fn drop(&mut self) {
        let _ = run_with_timeout(
            Command::new("podman").args(["rm", "--force", "-t", "0", &self.name]),
            Duration::from_secs(60),
        );
    }
}

fn build_image() {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../images/systemd-test/build.sh");
    let t = Instant::now();
    // debootstrap downloads and unpacks ~100 packages: about a minute on the CI machine.
    let out = run_with_timeout(&mut Command::new(&script), Duration::from_secs(240));
    assert!(
        out.status.success(),
        "{} failed: {}",
        script.display(),
        text(&out)
    );
    eprintln!("systemd test image ready in {:.1?}", t.elapsed());
}

fn config(gh_url: &str, dir_in: &str, pools: &[&str]) -> String {
    let mut c = format!(
        "[github]\napi_url = \"{gh_url}\"\ntoken_file = \"{dir_in}/token\"\n\n\
         [podman]\npath = \"{dir_in}/podman\"\n\n\
         [manager]\ninstance = \"sysd\"\nstate_dir = \"/var/lib/podrunner-test\"\n\
         runtime_dir = \"/run/podrunner-test\"\n"
    );
    for p in pools {
        c.push_str(&format!(
            "\n[[pool]]\nname = \"{p}\"\nrepository = \"{REPO}\"\nimage = \"{TEST_IMAGE}\"\n\
             count = 0\ndocker = \"none\"\n"
        ));
    }
    c
}

fn write_mode(path: &Path, content: &str, mode: u32) {
    std::fs::write(path, content).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn scenario(gh_url: String) {
    assert!(
        is_root(),
        "this test needs root: debootstrap builds its image and rootful Podman boots systemd \
         (scripts/test-rootless lists it in ROOT_ONLY)"
    );
    build_image();

    let dir = tempfile::Builder::new()
        .prefix("podrunner-sysd-")
        .tempdir()
        .unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let config_host: PathBuf = dir.path().join("config.toml");
    write_mode(&config_host, &config(&gh_url, DIR_IN, &["a"]), 0o644);
    write_mode(&dir.path().join("token"), &format!("{TOKEN}\n"), 0o600);
    write_mode(&dir.path().join("podman"), FAKE_PODMAN, 0o755);

    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let t0 = Instant::now();
    let m = Machine::boot(
        format!("podrunner-sysd-{}-{:x}", std::process::id(), nanos % 0xffff),
        dir.path(),
    );

    // systemd is up: `running`, or `degraded` if some unit of the base system failed. Right
    // after `podman run` systemctl may not reach PID 1 yet ("Failed to connect to bus").
    let deadline = Instant::now() + Duration::from_secs(90);
    let state = loop {
        let out = m.exec(
            &["systemctl", "is-system-running", "--wait"],
            Duration::from_secs(90),
        );
        let state = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if state == "running" || state == "degraded" {
            break state;
        }
        assert!(
            Instant::now() < deadline,
            "systemd in the container did not come up: {}\nfailed units:\n{}",
            text(&out),
            text(&m.exec(
                &["systemctl", "--failed", "--no-pager"],
                Duration::from_secs(30)
            ))
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    eprintln!("systemd {state} after {:.1?}", t0.elapsed());

    // A shorter watchdog than the unit's 60 s, as a drop-in written before `install` runs
    // daemon-reload and starts the unit, so the very first start already uses it.
    m.ok(&["mkdir", "-p", "/etc/systemd/system/podrunner.service.d"]);
    m.ok(&[
        "sh",
        "-c",
        &format!(
            "printf '[Service]\\nWatchdogSec={WATCHDOG_SEC}\\n' >/etc/systemd/system/podrunner.service.d/test-watchdog.conf"
        ),
    ]);

    // The real installer: writes /etc/systemd/system/podrunner.service, daemon-reload,
    // `enable --now` (which returns once the manager sent READY=1), enable-linger.
    let config_in = format!("{DIR_IN}/config.toml");
    let t = Instant::now();
    let install = m.ok(&[
        BIN_IN, "--config", &config_in, "install", "--system", "--user", "root",
    ]);
    eprintln!(
        "install (enable --now) took {:.1?}:\n{install}",
        t.elapsed()
    );
    assert!(
        install.contains("ran: systemctl enable --now podrunner.service"),
        "install did not start the unit:\n{install}"
    );
    let unit = m.ok(&["cat", "/etc/systemd/system/podrunner.service"]);
    assert!(
        unit.contains(&format!("ExecStart={BIN_IN} --config {config_in} run")),
        "{unit}"
    );

    // READY=1 arrived: a Type=notify unit is only active (running) after it.
    let s = m.show();
    let get = |s: &std::collections::BTreeMap<String, String>, k: &str| {
        s.get(k).cloned().unwrap_or_default()
    };
    assert_eq!(get(&s, "Type"), "notify", "{s:?}");
    assert_eq!(get(&s, "NotifyAccess"), "main", "{s:?}");
    assert_eq!(get(&s, "WatchdogUSec"), format!("{WATCHDOG_SEC}s"), "{s:?}");
    assert_eq!(
        (
            get(&s, "ActiveState").as_str(),
            get(&s, "SubState").as_str()
        ),
        ("active", "running"),
        "{s:?}\n--- journal ---\n{}",
        m.journal()
    );
    let pid = get(&s, "MainPID");
    assert_ne!(pid, "0", "{s:?}");
    // STATUS= from the manager's main loop.
    assert_eq!(
        get(&s, "StatusText"),
        "0/0 runners up, 0 jobs done",
        "{s:?}"
    );
    // The manager reconciled against the (fake) podman, and the events stream runs.
    let calls = m.ok(&["cat", CALLS_IN]);
    for want in [
        "info --format json",
        "version --format json",
        "ps -a --filter label=podrunner.instance=sysd",
        "events --format json",
    ] {
        assert!(
            calls.contains(want),
            "podman was never asked {want:?}:\n{calls}"
        );
    }
    let journal = m.journal();
    assert!(
        journal.contains("podrunner manager started: 1 pools"),
        "{journal}"
    );

    // Watchdog: more than two intervals later the same process still runs, never restarted.
    std::thread::sleep(Duration::from_secs(2 * WATCHDOG_SEC + 2));
    let s = m.show();
    assert_eq!(
        (
            get(&s, "ActiveState").as_str(),
            get(&s, "SubState").as_str(),
            get(&s, "MainPID"),
            get(&s, "NRestarts").as_str(),
        ),
        ("active", "running", pid.clone(), "0"),
        "{s:?}\n--- journal ---\n{}",
        m.journal()
    );
    let journal = m.journal();
    assert!(
        !journal.to_ascii_lowercase().contains("watchdog timeout"),
        "{journal}"
    );

    // Reload: a second pool appears in the config; `systemctl reload` sends SIGHUP.
    write_mode(&config_host, &config(&gh_url, DIR_IN, &["a", "b"]), 0o644);
    m.ok(&["systemctl", "reload", "podrunner.service"]);
    m.wait_journal(
        &format!("config reloaded from {config_in}: 2 pools"),
        Duration::from_secs(20),
    );
    let s = m.show();
    assert_eq!(
        (get(&s, "ActiveState").as_str(), get(&s, "MainPID")),
        ("active", pid.clone()),
        "{s:?}"
    );

    // Stop: SIGTERM drains (nothing to drain here) and the manager exits 0.
    let t = Instant::now();
    m.ok(&["systemctl", "stop", "podrunner.service"]);
    eprintln!("stop took {:.1?}", t.elapsed());
    let s = m.show();
    assert_eq!(
        (
            get(&s, "ActiveState").as_str(),
            get(&s, "Result").as_str(),
            get(&s, "ExecMainStatus").as_str(),
        ),
        ("inactive", "success", "0"),
        "{s:?}\n--- journal ---\n{}",
        m.journal()
    );
    let journal = m.journal();
    assert!(journal.contains("podrunner manager stopped"), "{journal}");
    eprintln!("whole scenario: {:.1?}", t0.elapsed());
}

#[tokio::test(flavor = "multi_thread")]
async fn unit_runs_under_real_systemd() {
    // The fake GitHub is served by this runtime while the scenario blocks on its own thread.
    let gh = FakeGithub::start(TOKEN).await.unwrap();
    let url = gh.url();
    let res = tokio::task::spawn_blocking(move || scenario(url)).await;
    gh.shutdown().await;
    if let Err(e) = res {
        std::panic::resume_unwind(e.into_panic());
    }
}
