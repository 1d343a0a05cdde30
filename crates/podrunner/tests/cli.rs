//! The CLI's answers to bad input and to a manager that is not running: exit codes and the
//! messages users read.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

fn podrunner(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_podrunner"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

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
