//! The CLI's answers to bad input and to a manager that is not running: exit codes and the
//! messages users read.

mod common;

use common::podrunner;
use std::os::unix::fs::PermissionsExt;

fn write_config(dir: &std::path::Path, body: &str) -> String {
    let p = dir.join("config.toml");
    std::fs::write(&p, body).unwrap();
    p.display().to_string()
}

#[test]
fn config_error_names_file_line_column_and_fix() {
    let d = tempfile::tempdir().unwrap();
    let cfg = write_config(
        d.path(),
        "[[pool]]\nname = \"ci\"\nrepository = \"o/r\"\nmemroy = \"4g\"\n",
    );
    let (code, _, err) = podrunner(&["config", "check", "--config", &cfg]);
    assert_eq!(code, 2);
    assert!(
        err.contains(&format!("{cfg}:4:1: unknown field `memroy`")),
        "{err}"
    );
    assert!(err.contains("fix:"), "{err}");
    // --config also works before the subcommand.
    let (code, _, err2) = podrunner(&["--config", &cfg, "run"]);
    assert_eq!(code, 2);
    assert!(err2.contains(":4:1:"), "{err2}");
}

#[test]
fn token_file_readable_by_others_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let tok = d.path().join("tok");
    std::fs::write(&tok, "ghp_x\r\n").unwrap();
    std::fs::set_permissions(&tok, std::fs::Permissions::from_mode(0o644)).unwrap();
    let cfg = write_config(
        d.path(),
        &format!(
            "[github]\ntoken_file = \"{}\"\n[[pool]]\nname = \"ci\"\nrepository = \"o/r\"\n",
            tok.display()
        ),
    );
    let (code, out, err) = podrunner(&["config", "check", "--config", &cfg]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        err.contains(&format!("chmod 600 {}", tok.display())),
        "{err}"
    );
    std::fs::set_permissions(&tok, std::fs::Permissions::from_mode(0o600)).unwrap();
    let (code, out, _) = podrunner(&["config", "check", "--config", &cfg]);
    assert_eq!(code, 0);
    assert!(out.contains("pool ci: 1 runner(s) for o/r"), "{out}");
    let (code, out, _) = podrunner(&["config", "check", "--json", "--config", &cfg]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        v["pools"][0]["labels"],
        serde_json::json!(["self-hosted", "linux", "x64"])
    );
    assert_eq!(v["token_file_ok"], true);
    assert!(!out.contains("ghp_x"), "the token is never printed");
}

#[test]
fn stop_and_status_without_a_manager() {
    let d = tempfile::tempdir().unwrap();
    let cfg = write_config(
        d.path(),
        &format!(
            "[manager]\ninstance = \"cli-test-{}\"\nstate_dir = \"{}\"\nruntime_dir = \"{}\"\n[podman]\nruntime = \"runc\"\n[[pool]]\nname = \"ci\"\nrepository = \"o/r\"\n",
            std::process::id(),
            d.path().join("s").display(),
            d.path().join("r").display()
        ),
    );
    let (code, out, _) = podrunner(&["stop", "--config", &cfg]);
    assert_eq!(code, 3);
    assert_eq!(out, "podrunner is not running\n");
    let (code, out, err) = podrunner(&["status", "--json", "--config", &cfg]);
    assert_eq!(code, 3, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["manager"], "not-running");
    assert_eq!(v["containers"], serde_json::json!([]));
}

/// `config init` writes a starter config that `config check` accepts, and never overwrites.
#[test]
fn config_init_writes_a_valid_starter_and_never_overwrites() {
    let d = tempfile::tempdir().unwrap();
    let cfg = d.path().join("sub/config.toml").display().to_string();
    let (code, out, err) = podrunner(&["config", "init", "octo/hello", "--config", &cfg]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains(&format!("wrote {cfg}")), "{out}");
    let text = std::fs::read_to_string(&cfg).unwrap();
    assert!(text.contains("repository = \"octo/hello\""), "{text}");
    let (code, out, err) = podrunner(&["config", "check", "--config", &cfg]);
    // 1: the token file is missing on this host; the config itself is valid.
    assert!(code == 0 || code == 1, "{out}{err}");
    assert!(out.contains(": ok"), "{out}{err}");
    std::fs::write(&cfg, "# mine\n").unwrap();
    let (code, _, err) = podrunner(&["config", "init", "octo/other", "--config", &cfg]);
    assert_eq!(code, 1);
    assert!(err.contains("exists; it is left as it is"), "{err}");
    assert_eq!(std::fs::read_to_string(&cfg).unwrap(), "# mine\n");
    let (code, _, err) = podrunner(&["config", "init", "not-a-repo", "--config", &cfg]);
    assert_eq!(code, 2, "{err}");
}

/// `doctor` before any config exists: every host check runs, and a `config` check says the
/// pool checks were skipped and how to make a config.
#[test]
fn doctor_runs_without_a_config() {
    let d = tempfile::tempdir().unwrap();
    let cfg = d.path().join("none.toml").display().to_string();
    let (code, out, err) = podrunner(&["doctor", "--json", "--config", &cfg]);
    assert!(code == 0 || code == 1, "{code} {out}{err}");
    let checks: serde_json::Value = serde_json::from_str(&out).unwrap();
    let ids: Vec<&str> = checks
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    for id in ["podman", "runtime", "cgroup", "storage", "token", "config"] {
        assert!(ids.contains(&id), "{id} missing from {ids:?}");
    }
    let c = checks
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "config")
        .unwrap();
    assert_eq!(c["status"], "warn");
    assert!(c["found"].as_str().unwrap().contains("pool checks"), "{c}");
    assert!(
        c["fix"]
            .as_str()
            .unwrap()
            .starts_with("podrunner config init OWNER/REPO"),
        "{c}"
    );
    // The text form says it too.
    let (_, text, _) = podrunner(&["doctor", "--config", &cfg]);
    assert!(text.contains("podrunner config init OWNER/REPO"), "{text}");
}
