//! Every unit `podrunner install` can write passes `systemd-analyze verify` for real (from
//! Debian's `systemd` package: `apt-get install -y systemd`), and `install`/`uninstall` work
//! end to end where systemd is not running (they write the file and print the commands).
#![allow(
    clippy::disallowed_methods,
    reason = "test code starts the programs it tests and inspects the host directly"
)]

mod common;

use podrunner::systemd::unit::{render_unit, UnitOptions, UnitScope};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

/// systemd-analyze answers in well under a second; this only guards against a CI hang.
const TIMEOUT: Duration = Duration::from_secs(60);

fn run_with_timeout(cmd: &mut Command) -> Output {
    common::run_with_timeout(cmd, TIMEOUT)
}

fn config_file(dir: &Path) -> PathBuf {
    let p = dir.join("config.toml");
    std::fs::write(
        &p,
        "[manager]\ndrain_timeout = \"2h\"\n[[pool]]\nname = \"ci\"\nrepository = \"o/r\"\nrestart_delay = \"10s\"\n",
    )
    .unwrap();
    p
}

/// Runs `systemd-analyze [--user] verify` on `text` and asserts it is clean.
fn verify(text: &str, user: bool) {
    let dir = tempfile::tempdir().unwrap();
    let unit = dir.path().join("podrunner.service");
    std::fs::write(&unit, text).unwrap();
    let mut cmd = Command::new("systemd-analyze");
    if user {
        // The user manager's lookup paths need a private runtime dir.
        let rt = dir.path().join("runtime");
        std::fs::create_dir(&rt).unwrap();
        std::fs::set_permissions(&rt, std::fs::Permissions::from_mode(0o700)).unwrap();
        cmd.arg("--user").env("XDG_RUNTIME_DIR", &rt);
    }
    cmd.arg("verify").arg(&unit);
    let out = run_with_timeout(&mut cmd);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stderr.trim().is_empty(),
        "systemd-analyze verify ({}) failed: {}\n{stderr}\nunit:\n{text}",
        if user { "user" } else { "system" },
        out.status
    );
}

fn options(config: &Path, scope: UnitScope) -> UnitOptions {
    UnitOptions {
        exe: PathBuf::from(common::podrunner_bin()),
        config: config.to_path_buf(),
        scope,
        restart_sec: 10,
        timeout_stop_sec: 7200 + 90,
    }
}

#[test]
fn generated_units_pass_systemd_analyze_verify() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config_file(dir.path());
    verify(&render_unit(&options(&cfg, UnitScope::User)).unwrap(), true);
    for (user, uid) in [("ci", 1001), ("root", 0)] {
        let scope = UnitScope::System {
            user: user.into(),
            uid,
        };
        verify(&render_unit(&options(&cfg, scope)).unwrap(), false);
    }
    // A config path that needs quoting and escaping.
    let odd = dir.path().join("my 100% $config");
    std::fs::create_dir(&odd).unwrap();
    let cfg = config_file(&odd);
    verify(&render_unit(&options(&cfg, UnitScope::User)).unwrap(), true);
}

fn podrunner(home: &Path, config: &Path, args: &[&str]) -> Output {
    let mut cmd = Command::new(common::podrunner_bin());
    cmd.arg("--config")
        .arg(config)
        .args(args)
        .env("HOME", home)
        .env("USER", "ci")
        .env_remove("XDG_CONFIG_HOME")
        .env_remove("PODRUNNER_CONFIG");
    run_with_timeout(&mut cmd)
}

#[test]
fn install_dry_run_prints_a_valid_unit_and_the_commands() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config_file(dir.path());
    let out = podrunner(dir.path(), &cfg, &["install", "--dry-run"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let unit_path = dir.path().join(".config/systemd/user/podrunner.service");
    let (head, rest) = stdout.split_once("\n\n").expect("header");
    assert_eq!(head, format!("would write {}:", unit_path.display()));
    let (unit, cmds) = rest.split_once("\nthen run:\n").expect("commands");
    assert_eq!(
        cmds,
        "  systemctl --user daemon-reload\n  systemctl --user enable --now podrunner.service\n  loginctl enable-linger ci\n"
    );
    let exe = std::fs::canonicalize(common::podrunner_bin()).unwrap();
    let cfg = std::fs::canonicalize(&cfg).unwrap();
    assert!(unit.contains(&format!(
        "\nExecStart={} --config {} run\n",
        exe.display(),
        cfg.display()
    )));
    // restart_delay 10 s; drain 2 h + stop_timeout 60 s + 30 s.
    assert!(unit.contains("\nRestartSec=10\n"), "{unit}");
    assert!(unit.contains("\nTimeoutStopSec=7290\n"), "{unit}");
    assert!(!unit_path.exists(), "a dry run writes nothing");
    verify(unit, true);
}

#[test]
fn install_and_uninstall_without_systemd_print_the_commands() {
    if Path::new("/run/systemd/system").exists() {
        eprintln!("skipped: systemd runs on this host, and this test must not enable a real unit");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let cfg = config_file(dir.path());
    let out = podrunner(dir.path(), &cfg, &["install"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let unit_path = dir.path().join(".config/systemd/user/podrunner.service");
    assert!(
        stdout.starts_with(&format!("wrote {}\n", unit_path.display())),
        "{stdout}"
    );
    assert!(stdout.contains("note: systemd is not running"), "{stdout}");
    assert!(
        stdout.contains("  systemctl --user enable --now podrunner.service\n"),
        "{stdout}"
    );
    verify(&std::fs::read_to_string(&unit_path).unwrap(), true);

    let again = podrunner(dir.path(), &cfg, &["install"]);
    assert!(String::from_utf8_lossy(&again.stdout).starts_with("unchanged "));

    let out = podrunner(dir.path(), &cfg, &["uninstall"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(!unit_path.exists());
    assert!(
        stdout.contains(&format!("removed {}", unit_path.display())),
        "{stdout}"
    );
    let out = podrunner(dir.path(), &cfg, &["uninstall"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("is not installed"));
}

#[test]
fn system_install_needs_a_user() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config_file(dir.path());
    let out = podrunner(dir.path(), &cfg, &["install", "--system", "--dry-run"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--user"));
}
