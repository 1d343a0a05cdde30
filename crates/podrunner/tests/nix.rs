//! The Nix modules' builtins-only core (nix/lib.nix), evaluated with Debian's `nix-instantiate`
//! (no nixpkgs here; docs/nix.md says what only a machine with nixpkgs checks): every .nix
//! file parses, the original README's examples become a config.toml that
//! `podrunner config check` accepts with the original options' meaning, the modules'
//! assertions refuse what the config check refuses, the unit is the one `podrunner install`
//! writes, and `github-runner-manage` runs podrunner's commands. The option declarations and
//! the modules' wiring are evaluated against a small stand-in for nixpkgs' module functions
//! (nix/tests/modules.nix).
//!
//! Nix runs without a daemon and without /nix: `--store dummy://` evaluates without a store,
//! as root and as an ordinary user.
#![allow(
    clippy::disallowed_methods,
    reason = "test code starts the programs it tests and inspects the host directly"
)]

mod common;

use common::podrunner;

use serde_json::{json, Value};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Evaluations take well under a second; a hung one fails the test.
const NIX_TIMEOUT_SECS: &str = "60";

/// The checkout's top folder; the rootless pass gets a copy of its Nix files and README
/// (scripts/test-rootless sets `PODRUNNER_SOURCE_DIR`).
fn src() -> PathBuf {
    std::env::var_os("PODRUNNER_SOURCE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."))
}

fn nix_instantiate(args: &[&str]) -> Output {
    Command::new("timeout")
        .arg(NIX_TIMEOUT_SECS)
        .arg("nix-instantiate")
        .args(["--store", "dummy://"])
        .args(args)
        // Debian's nix.conf names a build group that need not exist; nothing is built here.
        .env("NIX_CONFIG", "build-users-group =")
        .output()
        .expect("nix-instantiate runs (Debian package nix-bin, scripts/setup-host)")
}

/// Evaluates `expr` with `l` (nix/lib.nix) and `e` (nix/examples.nix) in scope, as JSON.
fn eval(expr: &str) -> Value {
    let dir = src().join("nix");
    let full = format!(
        "let l = import {lib}; e = import {ex}; in {expr}",
        lib = json!(dir.join("lib.nix")),
        ex = json!(dir.join("examples.nix")),
    );
    let out = nix_instantiate(&["--eval", "--strict", "--json", "--expr", &full]);
    assert!(
        out.status.success(),
        "nix-instantiate failed on {expr}:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON from nix-instantiate")
}

/// config.toml from the data nix/lib.nix gives `pkgs.formats.toml`, which writes TOML from
/// its JSON form: serde does the same here.
fn toml_text(data: &Value) -> String {
    let v: toml::Value = toml::Value::try_from(data).expect("no nulls in the config data");
    toml::to_string(&v).unwrap()
}

fn token_file(dir: &Path) -> PathBuf {
    let p = dir.join("token");
    std::fs::write(&p, "ghp_nixTestToken\n").unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    p
}

/// The `example` of nix/examples.nix with the token file pointed at `tok`, as config data.
fn example_data(example: &str, tok: &Path) -> Value {
    let tok = json!(tok);
    let over = if example == "full" {
        format!("{{ github.token_file = {tok}; }}")
    } else {
        format!("{{ tokenFile = {tok}; }}")
    };
    let o = format!("(e.{example} // {over})");
    let v = eval(&format!(
        "{{ data = l.configData {o}; failures = l.failures \"x\" {o}; }}"
    ));
    assert_eq!(v["failures"], json!([]), "{example}");
    v["data"].clone()
}

fn config_check(dir: &Path, text: &str) -> (i32, String, String) {
    let path = dir.join("config.toml");
    std::fs::write(&path, text).unwrap();
    podrunner(&[
        "config",
        "check",
        "--json",
        "--config",
        path.to_str().unwrap(),
    ])
}

#[test]
fn every_nix_file_parses() {
    let mut files = vec![src().join("flake.nix")];
    for dir in ["nix", "nix/tests"] {
        for e in std::fs::read_dir(src().join(dir)).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "nix") {
                files.push(p);
            }
        }
    }
    assert!(files.len() >= 9, "{files:?}");
    for f in &files {
        let out = nix_instantiate(&["--parse", f.to_str().unwrap()]);
        assert!(
            out.status.success(),
            "{}: {}",
            f.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// The original README's basic example: repository and token file; one runner, podrunner's
/// defaults for the rest.
#[test]
fn basic_example_passes_config_check() {
    let d = tempfile::tempdir().unwrap();
    let tok = token_file(d.path());
    let data = example_data("basic", &tok);
    assert_eq!(
        data,
        json!({
            "github": { "token_file": tok },
            "pool": [{ "name": "github-runner", "repository": "you/your-repo" }]
        })
    );
    let (code, out, err) = config_check(d.path(), &toml_text(&data));
    assert_eq!(code, 0, "{out}{err}");
    let c: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(c["token_file_ok"], true);
    let p = &c["pools"][0];
    assert_eq!(
        p["scope"],
        json!({ "kind": "repository", "name": { "owner": "you", "repo": "your-repo" } })
    );
    assert_eq!(p["runner_name"], "github-runner");
    assert_eq!(p["count"], 1);
    assert_eq!(p["image"], "ghcr.io/actions/actions-runner:latest");
    assert_eq!(p["labels"], json!(["self-hosted", "linux", "x64"]));
    assert_eq!(p["cpus"], Value::Null);
}

/// The advanced example: every original option keeps its meaning (vmMemory megabytes as a
/// string, vmCpus a string).
#[test]
fn advanced_example_keeps_the_original_meaning() {
    let d = tempfile::tempdir().unwrap();
    let tok = token_file(d.path());
    let data = example_data("advanced", &tok);
    let text = toml_text(&data);
    assert!(
        text.contains("cpus = 4\n"),
        "vmCpus \"4\" is a number: {text}"
    );
    assert!(text.contains("memory = \"8192\"\n"), "{text}");
    let (code, out, err) = config_check(d.path(), &text);
    assert_eq!(code, 0, "{out}{err}");
    let c: Value = serde_json::from_str(&out).unwrap();
    let p = &c["pools"][0];
    assert_eq!(p["name"], "github-runner");
    assert_eq!(p["runner_name"], "nix-builder");
    assert_eq!(p["image"], "ghcr.io/actions/actions-runner:latest");
    assert_eq!(
        p["labels"],
        json!(["self-hosted", "linux", "x64", "nix", "podman"])
    );
    assert_eq!(p["work_dir"], "/home/you/runner-work");
    assert_eq!(p["memory"], 8192u64 * 1024 * 1024);
    assert_eq!(p["cpus"], 4.0);
    assert_eq!(c["github"]["token_file"], json!(tok));
}

/// Several pools and every section, written with podrunner's own key names.
#[test]
fn full_example_passes_config_check() {
    let d = tempfile::tempdir().unwrap();
    let tok = token_file(d.path());
    let data = example_data("full", &tok);
    let (code, out, err) = config_check(d.path(), &toml_text(&data));
    assert_eq!(code, 0, "{out}{err}");
    let c: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(c["podman"]["runtime"], "runc");
    assert_eq!(c["manager"]["drain_timeout"], 7200.0);
    let pools = c["pools"].as_array().unwrap();
    assert_eq!(pools.len(), 2);
    assert_eq!(pools[0]["name"], "ci");
    assert_eq!(pools[0]["count"], 2);
    assert_eq!(pools[0]["memory"], 4u64 << 30);
    assert_eq!(pools[0]["restart_delay"], 10.0);
    assert_eq!(pools[1]["name"], "org");
    assert_eq!(
        pools[1]["scope"],
        json!({ "kind": "organization", "name": "your-org" })
    );
    assert_eq!(pools[1]["runner_name"], "org-big");
    assert_eq!(pools[1]["cpus"], 1.5);
    assert_eq!(pools[1]["memory"], 6144u64 << 20);
    assert_eq!(pools[1]["stop_timeout"], 120.0);
    assert_eq!(pools[1]["docker"], "none");
    assert_eq!(pools[1]["run_args"], json!(["--network=slirp4netns"]));
}

/// Each case: options the modules' assertions refuse, and `podrunner config check` refuses
/// the config.toml they would give (exit 2, a position and a fix). And the reverse: what the
/// assertions accept, the check accepts.
#[test]
fn assertions_refuse_what_config_check_refuses() {
    let d = tempfile::tempdir().unwrap();
    let tok = token_file(d.path());
    let long = "a".repeat(56);
    // 97 labels and the 3 defaults: GitHub's limit of 100, reached exactly.
    let many: Vec<String> = (0..97).map(|i| format!("\"l{i}\"")).collect();
    let many = many.join(" ");
    let refused = [
        ("{ }", "no pool is defined"),
        ("{ pools.p = { }; }", ".pools.p.repository: set exactly one"),
        ("{ pools.p = { repository = \"o/r\"; organization = \"o\"; }; }", ".pools.p.repository: set exactly one"),
        ("{ repository = \"nope\"; }", ".pools.github-runner.repository: \"nope\""),
        ("{ pools.p.organization = \"a b\"; }", ".pools.p.organization:"),
        ("{ pools.\"p q\".repository = \"o/r\"; }", ".pools.\"p q\": a pool name"),
        ("{ repository = \"o/r\"; runnerName = \"bad name\"; }", ".runner_name: a runner name prefix"),
        (&format!("{{ repository = \"o/r\"; runnerName = \"{long}\"; }}"), ".runner_name: a runner name prefix"),
        ("{ pools.a = { repository = \"o/r\"; runner_name = \"x\"; }; pools.b = { repository = \"o/r\"; runner_name = \"x\"; }; }", "is used by two pools"),
        ("{ repository = \"o/r\"; extraLabels = [ \"a,b\" ]; }", ".labels: labels are non-empty"),
        ("{ repository = \"o/r\"; extraLabels = [ \" a\" ]; }", ".labels: labels are non-empty"),
        (&format!("{{ repository = \"o/r\"; extraLabels = [ {many} \"one-more\" ]; }}"), "at most 100 labels"),
        ("{ repository = \"o/r\"; vmCpus = \"0\"; }", ".cpus (vmCpus): 0 must be"),
        ("{ repository = \"o/r\"; vmCpus = \"2000\"; }", ".cpus (vmCpus): 2000 must be"),
        ("{ repository = \"o/r\"; vmMemory = \"1m\"; }", ".memory (vmMemory): \"1m\""),
        ("{ repository = \"o/r\"; vmMemory = \"4x\"; }", ".memory (vmMemory): \"4x\""),
        ("{ pools.p = { repository = \"o/r\"; stop_timeout = \"10s\"; }; }", ".stop_timeout: must be at least 60s"),
        ("{ pools.p = { repository = \"o/r\"; stop_timeout = 59; }; }", ".stop_timeout: must be at least 60s"),
        ("{ pools.p = { repository = \"o/r\"; restart_delay = \"soon\"; }; }", ".restart_delay: expected"),
        ("{ pools.p = { repository = \"o/r\"; runner_dir = \"home/runner\"; }; }", ".runner_dir:"),
        ("{ pools.p = { repository = \"o/r\"; command = [ ]; }; }", ".command: must name a program"),
        ("{ pools.p = { repository = \"o/r\"; command = \" \"; }; }", ".command: must name a program"),
        ("{ pools.p = { repository = \"o/r\"; docker = \"dind\"; }; }", ".docker: write"),
        ("{ pools.p = { repository = \"o/r\"; docker_policy = \"lax\"; }; }", ".docker_policy: write"),
        ("{ repository = \"o/r\"; github.api_url = \"ftp://x\"; }", ".github.api_url:"),
        ("{ repository = \"o/r\"; manager.instance = \"a b\"; }", ".manager.instance:"),
        ("{ repository = \"o/r\"; manager.drain_timeout = \"forever\"; }", ".manager.drain_timeout:"),
    ];
    // One evaluation for all cases: each costs a nix-instantiate start otherwise.
    let evaluate = |cases: Vec<&str>| -> Vec<Value> {
        let list: Vec<String> = cases
            .iter()
            .map(|c| {
                let o = format!("({c} // {{ tokenFile = {}; }})", json!(tok));
                format!("{{ data = l.configData {o}; failures = l.failures \"x\" {o}; }}")
            })
            .collect();
        let v = eval(&format!("[ {} ]", list.join(" ")));
        v.as_array().unwrap().clone()
    };
    let results = evaluate(refused.iter().map(|(o, _)| *o).collect());
    for ((options, message), v) in refused.iter().zip(results) {
        let failures = v["failures"].as_array().unwrap();
        assert!(
            failures
                .iter()
                .any(|f| f.as_str().unwrap().contains(message)),
            "{options}: want {message:?} among {failures:?}"
        );
        let (code, out, err) = config_check(d.path(), &toml_text(&v["data"]));
        assert_eq!(code, 2, "config check accepted {options}: {out}{err}");
        assert!(err.contains("fix:"), "{err}");
    }
    let accepted = [
        "{ repository = \"o/r\"; vmCpus = \"0.5\"; vmMemory = \"6m\"; }",
        "{ repository = \"o/r\"; vmMemory = \"1.5g\"; extraLabels = [ \"X64\" \"Linux\" ]; }",
        &format!("{{ repository = \"o/r\"; extraLabels = [ {many} \"Self-Hosted\" ]; }}"),
        "{ pools.p = { organization = \"o\"; stop_timeout = \"1h 30m\"; restart_delay = \"1.5s\"; command = \"/run.sh\"; }; }",
        "{ pools.p = { repository = \"o/r\"; stop_timeout = \"60\"; runner_dir = \"/actions-runner\"; docker = \"host\"; docker_policy = \"open\"; }; }",
        "{ repository = \"o/r\"; pools.github-runner = { count = 3; runner_name = \"own\"; }; pools.b = { repository = \"o/r\"; runner_name = \"github-runner\"; }; }",
        "{ repository = \"o/r\"; manager = { instance = \"second\"; drain_timeout = 3600; log_file = false; }; github.api_url = \"https://ghe.example.com/api/v3\"; }",
    ];
    let results = evaluate(accepted.to_vec());
    for (options, v) in accepted.iter().zip(results) {
        assert_eq!(v["failures"], json!([]), "{options}");
        let (code, out, err) = config_check(d.path(), &toml_text(&v["data"]));
        assert_eq!(code, 0, "{options}: {out}{err}");
    }
}

/// A token file in the Nix store is readable by every user: refused.
#[test]
fn token_file_in_the_store_is_refused() {
    let v = eval("l.failures \"x\" (e.basic // { tokenFile = \"/nix/store/abc-token\"; })");
    assert_eq!(
        v,
        json!(["x.github.token_file (tokenFile): the token must not be in the Nix store, which every user can read; give the path of a file outside it (chmod 600)"])
    );
    let v = eval("l.failures \"x\" (e.basic // { github.token_file = \"/elsewhere\"; })");
    assert_eq!(
        v,
        json!(["x.tokenFile and x.github.token_file disagree; keep one of them"])
    );
}

/// The unit text of `podrunner install --dry-run`, without its comments.
fn install_unit(config: &Path, extra: &[&str]) -> String {
    let mut args = vec!["install", "--dry-run", "--config", config.to_str().unwrap()];
    args.extend(extra);
    let (code, out, err) = podrunner(&args);
    assert_eq!(code, 0, "{out}{err}");
    let text = out
        .split_once(":\n\n")
        .and_then(|(_, rest)| rest.split_once("\nthen run:"))
        .unwrap_or_else(|| panic!("no unit in {out}"))
        .0;
    directives(text)
}

fn directives(text: &str) -> String {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| format!("{l}\n"))
        .collect()
}

/// The unit nix/lib.nix renders for `example` with `scope` (a Nix expression) and `more`
/// arguments, given the binary and config paths `podrunner install` would use.
fn nix_unit(example: &str, exe: &Path, config: &Path, scope: &str, more: &str) -> String {
    let data = format!("(l.configData e.{example})");
    let v = eval(&format!(
        "let t = l.unitTimings {data}; in l.renderUnit (l.unit ({{ exe = {}; config = {}; scope = {scope}; inherit (t) restartSec timeoutStopSec; }} // {more}))",
        json!(exe),
        json!(config),
    ));
    directives(v.as_str().unwrap())
}

#[test]
fn unit_is_the_one_podrunner_install_writes() {
    let d = tempfile::tempdir().unwrap();
    let tok = token_file(d.path());
    let exe = std::fs::canonicalize(common::podrunner_bin()).unwrap();
    for example in ["basic", "full"] {
        let data = example_data(example, &tok);
        let config = d.path().join(format!("{example}.toml"));
        std::fs::write(&config, toml_text(&data)).unwrap();
        let config = std::fs::canonicalize(&config).unwrap();

        let want = install_unit(&config, &[]);
        let got = nix_unit(example, &exe, &config, "\"user\"", "{ }");
        assert_eq!(got, want, "user unit, {example}");
        if example == "full" {
            // drain 2h + the largest stop_timeout 2m + 30 s; the largest restart_delay 10s.
            assert!(
                got.contains("\nTimeoutStopSec=7350\n") && got.contains("\nRestartSec=10\n"),
                "{got}"
            );
        }

        // System units: rootful, and a dedicated user (nobody is 65534 on Debian).
        for (user, uid) in [("root", 0), ("nobody", 65534)] {
            let want = install_unit(&config, &["--system", "--user", user]);
            let scope = format!("{{ user = \"{user}\"; uid = {uid}; }}");
            let got = nix_unit(example, &exe, &config, &scope, "{ }");
            assert_eq!(got, want, "system unit as {user}, {example}");
        }
    }

    // What the modules add: PATH (NixOS's setuid newuidmap first) and the reload trigger.
    let config = std::fs::canonicalize(d.path().join("basic.toml")).unwrap();
    let want = install_unit(&config, &[]);
    let got = nix_unit(
        "basic",
        &exe,
        &config,
        "\"user\"",
        "{ path = l.servicePath { podman = \"/nix/store/p-podman\"; profile = \"/home/you/.nix-profile\"; }; reloadTriggers = [ \"/nix/store/c-podrunner-config.toml\" ]; }",
    );
    let added = "Environment=PATH=/run/wrappers/bin:/nix/store/p-podman/bin:/home/you/.nix-profile/bin:/run/current-system/sw/bin:/usr/local/bin:/usr/bin:/bin\n";
    let trigger = "X-Reload-Triggers=/nix/store/c-podrunner-config.toml\n";
    assert!(got.contains(added) && got.contains(trigger), "{got}");
    assert_eq!(got.replace(added, "").replace(trigger, ""), want);
}

/// home-manager's form of the unit (a key given several times becomes a list) holds the
/// same lines.
#[test]
fn home_manager_unit_attrs_hold_the_same_lines() {
    let v = eval(
        "let u = l.unit { exe = \"/p\"; config = \"/c\"; scope = { user = \"ci\"; uid = 1001; }; restartSec = 5; timeoutStopSec = 21690; path = [ \"/run/wrappers/bin\" ]; }; in { attrs = l.systemdAttrs u; sections = u; }",
    );
    let mut from_attrs: Vec<(String, String, String)> = Vec::new();
    for (section, keys) in v["attrs"].as_object().unwrap() {
        for (k, val) in keys.as_object().unwrap() {
            match val {
                Value::Array(vs) => from_attrs.extend(
                    vs.iter()
                        .map(|x| (section.clone(), k.clone(), x.as_str().unwrap().to_string())),
                ),
                x => from_attrs.push((section.clone(), k.clone(), x.as_str().unwrap().to_string())),
            }
        }
    }
    let mut from_sections: Vec<(String, String, String)> = Vec::new();
    for s in v["sections"].as_array().unwrap() {
        for e in s["entries"].as_array().unwrap() {
            from_sections.push((
                s["name"].as_str().unwrap().into(),
                e[0].as_str().unwrap().into(),
                e[1].as_str().unwrap().into(),
            ));
        }
    }
    // Repeated keys keep their order; only the order of different keys may change.
    let envs = |v: &[(String, String, String)]| -> Vec<String> {
        v.iter()
            .filter(|x| x.1 == "Environment")
            .map(|x| x.2.clone())
            .collect()
    };
    assert_eq!(envs(&from_attrs), envs(&from_sections));
    assert_eq!(envs(&from_attrs).len(), 3);
    from_attrs.sort();
    from_sections.sort();
    assert_eq!(from_attrs, from_sections);
}

/// `github-runner-manage`: start and stop through systemd, status and logs through
/// podrunner with the module's config; anything else is a usage error.
#[test]
fn github_runner_manage_runs_podrunners_commands() {
    let d = tempfile::tempdir().unwrap();
    let bin = d.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let log = d.path().join("calls");
    for fake in ["podrunner", "systemctl"] {
        let p = bin.join(fake);
        std::fs::write(
            &p,
            format!("#!/bin/sh\necho \"{fake} $*\" >> {}\n", log.display()),
        )
        .unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let v = eval(&format!(
        "l.manageScript {{ shell = \"/bin/bash\"; podrunner = {}; config = \"/home/you/.config/podrunner/it's.toml\"; }}",
        json!(bin.join("podrunner"))
    ));
    let script = d.path().join("github-runner-manage");
    std::fs::write(&script, v.as_str().unwrap()).unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!("{}:/usr/bin:/bin", bin.display());
    let run = |args: &[&str]| {
        Command::new(&script)
            .args(args)
            .env("PATH", &path)
            .output()
            .unwrap()
    };
    for args in [
        &["start"][..],
        &["status"],
        &["logs", "-f", "-n", "5"],
        &["stop"],
    ] {
        assert!(run(args).status.success(), "{args:?}");
    }
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        "systemctl --user start podrunner.service\n\
         podrunner --config /home/you/.config/podrunner/it's.toml status\n\
         podrunner --config /home/you/.config/podrunner/it's.toml logs -f -n 5\n\
         systemctl --user stop podrunner.service\n"
    );
    for args in [&[][..], &["restart"]] {
        let out = run(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(String::from_utf8_lossy(&out.stderr)
            .starts_with("usage: github-runner-manage start|status|logs|stop"));
    }
}

/// The modules evaluated against nix/tests/modules.nix's stand-in for nixpkgs: `module` is
/// "home-manager" or "nixos", `values` the options as a user sets them (a Nix expression
/// with `e`, the examples, in scope).
fn module_eval(module: &str, values: &str) -> Result<Value, String> {
    let dir = src().join("nix");
    let expr = format!(
        "let e = import {ex}; in import {m} {{ module = \"{module}\"; values = {values}; }}",
        ex = json!(dir.join("examples.nix")),
        m = json!(dir.join("tests/modules.nix")),
    );
    let out = nix_instantiate(&["--eval", "--strict", "--json", "--expr", &expr]);
    if out.status.success() {
        Ok(serde_json::from_slice(&out.stdout).unwrap())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

const STORE: &str = "/nix/store/00000000000000000000000000000000";

#[test]
fn home_manager_module_writes_config_unit_and_command() {
    let d = tempfile::tempdir().unwrap();
    let tok = token_file(d.path());
    let v = module_eval(
        "home-manager",
        &format!(
            "e.advanced // {{ enable = true; tokenFile = {}; }}",
            json!(tok)
        ),
    )
    .unwrap();
    assert_eq!(v["failures"], json!([]));
    // The podman of `podmanPackage`, then the original options' pool.
    assert_eq!(
        v["config_toml"]["podman"],
        json!({ "path": format!("{STORE}-podman/bin/podman") })
    );
    assert_eq!(v["config_toml"]["pool"][0]["runner_name"], "nix-builder");
    let (code, out, err) = config_check(d.path(), &toml_text(&v["config_toml"]));
    assert_eq!(code, 0, "{out}{err}");

    let unit = &v["unit"];
    assert_eq!(
        unit["Service"]["ExecStart"],
        format!(
            "{STORE}-podrunner/bin/podrunner --config /home/you/.config/podrunner/config.toml run"
        )
    );
    assert_eq!(
        unit["Service"]["ExecReload"],
        format!("{STORE}-coreutils/bin/kill -HUP $MAINPID")
    );
    assert_eq!(unit["Service"]["Type"], "notify");
    assert_eq!(unit["Service"]["WatchdogSec"], "60");
    assert_eq!(unit["Service"]["KillMode"], "process");
    assert_eq!(unit["Service"]["Restart"], "on-failure");
    assert!(unit["Service"]["Environment"]
        .as_str()
        .unwrap()
        .starts_with("PATH=/run/wrappers/bin:"));
    // A new config reloads the manager (SIGHUP) instead of restarting it.
    assert_eq!(unit["Unit"]["X-Reload-Triggers"], v["config_file"]);
    assert_eq!(unit["Install"]["WantedBy"], "default.target");
    assert_eq!(
        v["packages"],
        json!([format!("{STORE}-podrunner"), "github-runner-manage"])
    );
    assert!(v["manage"]
        .as_str()
        .unwrap()
        .contains("--config '/home/you/.config/podrunner/config.toml' \"$verb\" \"$@\""));
}

#[test]
fn nixos_module_rootful_and_as_a_dedicated_user() {
    let d = tempfile::tempdir().unwrap();
    let tok = token_file(d.path());
    let base = format!(
        "e.full // {{ enable = true; github.token_file = {}; }}",
        json!(tok)
    );

    let root = module_eval("nixos", &base).unwrap();
    assert_eq!(root["failures"], json!([]));
    assert_eq!(root["users"], json!({}));
    assert_eq!(root["podman_enabled"], true);
    assert_eq!(root["wanted_by"], json!(["multi-user.target"]));
    let unit = root["unit"].as_str().unwrap();
    for line in [
        "Wants=network-online.target\n",
        "ExecStart=/nix/store/00000000000000000000000000000000-podrunner/bin/podrunner --config /etc/podrunner/config.toml run\n",
        "TimeoutStopSec=7350\n",
        "RestartSec=10\n",
        "User=root\n",
        "Environment=PATH=/run/wrappers/bin:",
    ] {
        assert!(unit.contains(line), "{line} in {unit}");
    }
    assert!(!unit.contains("XDG_RUNTIME_DIR"), "{unit}");
    let (code, out, err) = config_check(d.path(), &toml_text(&root["config_toml"]));
    assert_eq!(code, 0, "{out}{err}");

    let user = module_eval(
        "nixos",
        &format!("{base} // {{ user = \"ci\"; uid = 990; }}"),
    )
    .unwrap();
    assert_eq!(user["failures"], json!([]));
    assert_eq!(
        user["users"],
        json!({
            "groups": { "podrunner": {} },
            "users": { "ci": {
                "isSystemUser": true, "group": "podrunner", "uid": 990, "home": "/var/lib/podrunner",
                "createHome": true, "linger": true,
                "subUidRanges": [{ "startUid": 1000000000, "count": 65536 }],
                "subGidRanges": [{ "startGid": 1000000000, "count": 65536 }]
            } }
        })
    );
    let unit = user["unit"].as_str().unwrap();
    for line in [
        "After=network-online.target user@990.service\n",
        "User=ci\n",
        "Environment=XDG_RUNTIME_DIR=/run/user/990\n",
        // NixOS's setuid newuidmap/newgidmap come first: rootless Podman finds them on PATH.
        "Environment=PATH=/run/wrappers/bin:/nix/store/00000000000000000000000000000000-podman/bin:",
    ] {
        assert!(unit.contains(line), "{line} in {unit}");
    }
    assert!(user["manage"]
        .as_str()
        .unwrap()
        .contains("runuser -u ci -- env XDG_RUNTIME_DIR=/run/user/990 "));

    // Without NixOS's setuid helpers rootless Podman cannot start a container: refused.
    let dir = src().join("nix");
    let expr = format!(
        "let e = import {}; in (import {} {{ module = \"nixos\"; wrappers = false; values = {base} // {{ user = \"ci\"; uid = 990; }}; }}).failures",
        json!(dir.join("examples.nix")),
        json!(dir.join("tests/modules.nix")),
    );
    let out = nix_instantiate(&["--eval", "--strict", "--json", "--expr", &expr]);
    assert_eq!(
        serde_json::from_slice::<Value>(&out.stdout).unwrap(),
        json!(["services.podrunner: rootless Podman needs NixOS's setuid newuidmap and newgidmap (security.wrappers); keep security.shadow.enable = true, or run as root (user = \"root\")"])
    );

    let no_uid = module_eval("nixos", &format!("{base} // {{ user = \"ci\"; }}")).unwrap();
    assert_eq!(
        no_uid["failures"],
        json!(["services.podrunner.uid: set a fixed uid for the user ci; the unit needs it for user@UID.service and /run/user/UID"])
    );
}

/// Values of the wrong type stop the evaluation with the option's path; keys the module does
/// not declare pass through to config.toml (for `podrunner config check` to judge), except at
/// the top level.
#[test]
fn option_types_refuse_bad_values() {
    for (values, want) in [
        (
            "{ repository = \"o/r\"; vmCpus = 4; }",
            "programs.github-runner-container.vmCpus: 4 is not a null or string matching",
        ),
        (
            "{ repository = \"o/r\"; vmMemory = \"lots\"; }",
            "programs.github-runner-container.vmMemory: \"lots\" is not",
        ),
        (
            "{ pools.a = { repository = \"o/r\"; docker = \"dind\"; }; }",
            "programs.github-runner-container.pools.a.docker: \"dind\" is not",
        ),
        (
            "{ pools.a = { repository = \"o/r\"; cpus = \"2\"; }; }",
            "programs.github-runner-container.pools.a.cpus: \"2\" is not",
        ),
        (
            "{ pools.a = { repository = \"o/r\"; stop_timeout = \"soon\"; }; }",
            "programs.github-runner-container.pools.a.stop_timeout: \"soon\" is not",
        ),
        (
            "{ repositry = \"o/r\"; }",
            "programs.github-runner-container: no such option: repositry",
        ),
    ] {
        let err =
            module_eval("home-manager", &format!("{values} // {{ enable = true; }}")).unwrap_err();
        assert!(err.contains(want), "{values}: {err}");
    }
    let v = module_eval(
        "home-manager",
        "{ enable = true; repository = \"o/r\"; github.app_id = 42; pools.github-runner.runner_group = \"big\"; }",
    )
    .unwrap();
    assert_eq!(v["config_toml"]["github"]["app_id"], 42);
    assert_eq!(v["config_toml"]["pool"][0]["runner_group"], "big");
}

/// Every option has a description and (but `package`) an example, and every key of the
/// README's configuration reference is an option of both modules.
#[test]
fn options_are_documented_and_cover_the_config_reference() {
    let readme = std::fs::read_to_string(src().join("README.md")).unwrap();
    let mut keys = Vec::new();
    for line in readme.lines().filter(|l| l.starts_with("| `[")) {
        let cell = line.split('|').nth(1).unwrap();
        for key in cell.split('/').map(|k| k.trim().trim_matches('`')) {
            let (section, name) = match key.rsplit_once(' ') {
                Some((s, n)) => (s.trim_matches('`').to_string(), n.trim_matches('`')),
                None => (
                    keys.last()
                        .map(|(s, _): &(String, String)| s.clone())
                        .unwrap(),
                    key,
                ),
            };
            keys.push((section, name.to_string()));
        }
    }
    assert!(keys.len() >= 30, "{keys:?}");
    for (module, prefix) in [
        ("home-manager", "programs.github-runner-container"),
        ("nixos", "services.podrunner"),
    ] {
        let v = module_eval(module, "e.basic // { enable = true; }").unwrap();
        let options = v["options"].as_array().unwrap();
        let paths: Vec<&str> = options
            .iter()
            .map(|o| o["path"].as_str().unwrap())
            .collect();
        for o in options {
            let path = o["path"].as_str().unwrap();
            assert_eq!(o["description"], true, "{path} has no description");
            if !path.ends_with(".package") {
                assert_eq!(o["example"], true, "{path} has no example");
            }
        }
        for (section, key) in &keys {
            let path = match section.as_str() {
                "[[pool]]" if key == "name" => continue,
                "[[pool]]" => format!("{prefix}.pools.<name>.{key}"),
                s => format!("{prefix}.{}.{key}", s.trim_matches(['[', ']'])),
            };
            assert!(
                paths.contains(&path.as_str()),
                "{section} {key}: no option {path}"
            );
        }
        for original in [
            "enable",
            "repository",
            "runnerName",
            "image",
            "extraLabels",
            "workDir",
            "tokenFile",
            "vmMemory",
            "vmCpus",
        ] {
            assert!(
                paths.contains(&format!("{prefix}.{original}").as_str()),
                "{original}"
            );
        }
    }
}
