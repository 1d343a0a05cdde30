//! Bad input (issue 6): property tests of every parser of outside data. Whatever comes in
//! (arbitrary text, arbitrary values in valid keys, mangled JSON), the answer is a value or an
//! error, never a panic; config errors carry a position in the file.

use podrunner::config::{Config, ConfigError, Env};
use proptest::prelude::*;
use std::path::Path;

fn env() -> Env {
    Env::fixed(1000)
}

const VALID: &str = "[github]\napi_url = \"https://ghe.example/api/v3\"\n\n[manager]\ninstance = \"x\"\n\n[[pool]]\nname = \"ci\"\nrepository = \"o/r\"\ncount = 2\nlabels = [\"gpu\"]\nmemory = \"1g\"\n";

/// Every key the config accepts, with the table it lives in.
const KEYS: &[(&str, &str)] = &[
    ("github", "api_url"),
    ("github", "token_file"),
    ("podman", "path"),
    ("podman", "runtime"),
    ("podman", "global_args"),
    ("podman", "run_args"),
    ("manager", "instance"),
    ("manager", "state_dir"),
    ("manager", "runtime_dir"),
    ("manager", "drain_timeout"),
    ("manager", "log_file"),
    ("pool", "name"),
    ("pool", "repository"),
    ("pool", "organization"),
    ("pool", "runner_name"),
    ("pool", "image"),
    ("pool", "command"),
    ("pool", "labels"),
    ("pool", "count"),
    ("pool", "cpus"),
    ("pool", "memory"),
    ("pool", "pids_limit"),
    ("pool", "work_dir"),
    ("pool", "restart_delay"),
    ("pool", "stop_timeout"),
    ("pool", "runner_group_id"),
    ("pool", "run_args"),
];

/// A TOML value as text: strings with any characters, numbers at the edges, booleans, arrays,
/// inline tables, dates.
fn toml_value() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        any::<String>().prop_map(|s| toml::Value::String(s).to_string()),
        "[a-z0-9 .,/:~-]{0,12}".prop_map(|s| format!("{s:?}")),
        prop_oneof![
            Just("\"0\"".to_string()),
            Just("\"-1s\"".to_string()),
            Just("\"18446744073709551616\"".to_string()),
            Just("\"4g\"".to_string()),
            Just("\"1e99s\"".to_string()),
            Just("\"NaN\"".to_string()),
        ],
        any::<i64>().prop_map(|n| n.to_string()),
        any::<f64>().prop_map(|f| toml::Value::Float(f).to_string()),
        any::<bool>().prop_map(|b| b.to_string()),
        Just("1979-05-27T07:32:00Z".to_string()),
        Just("nan".to_string()),
        Just("-inf".to_string()),
    ];
    leaf.prop_recursive(2, 8, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(|v| format!("[{}]", v.join(", "))),
            inner.prop_map(|v| format!("{{ k = {v} }}")),
        ]
    })
}

fn check_error(text: &str, e: &ConfigError) {
    match e {
        ConfigError::At { line, column, .. } => {
            let lines = text.lines().count().max(1);
            assert!(
                *line >= 1 && *line <= lines + 1,
                "line {line} of {lines}: {e}"
            );
            assert!(*column >= 1, "{e}");
        }
        ConfigError::File { message, .. } => assert!(!message.is_empty()),
        ConfigError::Read { .. } => panic!("parse never reads"),
    }
    let shown = e.to_string();
    assert!(shown.contains("fix:"), "{shown}");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Arbitrary text: no panic; a syntax error names line and column within the text.
    #[test]
    fn config_arbitrary_text(text in any::<String>()) {
        if let Err(e) = Config::parse(&text, Path::new("/c.toml"), &env()) {
            check_error(&text, &e);
            if toml::from_str::<toml::Table>(&text).is_err() {
                prop_assert!(matches!(e, ConfigError::At { .. }), "syntax error without position: {e}");
            }
        }
    }

    /// TOML-ish text: fragments of a valid config cut and spliced with junk.
    #[test]
    fn config_mangled_valid_text(cut in 0..VALID.len(), junk in "[\\[\\]=\"{}\n a-z0-9.,#']{0,20}") {
        let mut t = String::from(&VALID[..cut]);
        t.push_str(&junk);
        t.push_str(&VALID[cut..]);
        if let Err(e) = Config::parse(&t, Path::new("/c.toml"), &env()) {
            check_error(&t, &e);
        }
    }

    /// Any value in any valid key: accepted, or refused with the position of that key's value.
    #[test]
    fn config_any_value_in_a_valid_key(k in 0..KEYS.len(), value in toml_value()) {
        let (table, key) = KEYS[k];
        let text = if table == "pool" {
            let base = "[[pool]]\nname = \"ci\"\nrepository = \"o/r\"\n";
            let base: String = base.lines().filter(|l| !l.starts_with(&format!("{key} ="))).map(|l| format!("{l}\n")).collect();
            format!("{base}{key} = {value}\n")
        } else {
            format!("[{table}]\n{key} = {value}\n\n[[pool]]\nname = \"ci\"\nrepository = \"o/r\"\n")
        };
        let line = text.lines().position(|l| l.starts_with(&format!("{key} ="))).unwrap() + 1;
        match Config::parse(&text, Path::new("/c.toml"), &env()) {
            Ok(c) => prop_assert_eq!(c.pools.len(), 1),
            Err(e) => {
                check_error(&text, &e);
                if let ConfigError::At { line: l, .. } = e {
                    // The error points at the key's line (a pool-level check may point at the
                    // pool table, which starts at line 1).
                    prop_assert!(l == line || l == 1 || table == "pool", "line {l}, key on {line}");
                }
            }
        }
    }

    /// GitHub's runner list: arbitrary bytes and mutated real pages decode or fail cleanly.
    #[test]
    fn github_runner_list(bytes in prop::collection::vec(any::<u8>(), 0..200), n in 0usize..4, id in any::<i64>(), busy in any::<u8>(), name in any::<String>()) {
        let _ = podrunner::github::parse_runner_list(&bytes);
        let runner = serde_json::json!({"id": id, "name": name, "os": "linux", "status": "online", "busy": busy % 3 == 0, "labels": [{"id": 1, "name": "self-hosted", "type": "read-only"}]});
        let body = serde_json::json!({"total_count": n, "runners": vec![runner; n]});
        let r = podrunner::github::parse_runner_list(body.to_string().as_bytes());
        if id >= 0 {
            prop_assert_eq!(r.unwrap().len(), n);
        } else if n > 0 {
            prop_assert!(r.is_err());
        }
        for bad in [serde_json::json!({"runners": null}), serde_json::json!({"runners": [{"id": "x"}]}), serde_json::json!([])] {
            let _ = podrunner::github::parse_runner_list(bad.to_string().as_bytes());
        }
        let _ = podrunner::github::next_link(&name);
    }

    /// Podman's JSON: `ps` and `events` lines, arbitrary and mutated.
    #[test]
    fn podman_json(bytes in prop::collection::vec(any::<u8>(), 0..300), text in any::<String>(), state in any::<String>(), code in any::<i64>(), labels in prop::collection::btree_map(any::<String>(), any::<String>(), 0..3)) {
        let _ = podrunner::podman::types::parse_ps(&bytes);
        let _ = podrunner::podman::types::parse_event(&text);
        let ps = serde_json::json!([{"Id": text, "Names": [state], "Labels": labels, "State": state, "ExitCode": code, "Created": text, "StartedAt": code}]);
        if let Ok(v) = podrunner::podman::types::parse_ps(ps.to_string().as_bytes()) {
            for e in &v {
                let _ = e.is_alive();
                let _ = podrunner::manager::exec::container_seen(e);
            }
        }
        let ev = serde_json::json!({"ID": text, "Name": state, "Status": state, "Type": "container", "ContainerExitCode": code, "Attributes": labels, "Time": code});
        let _ = podrunner::podman::types::parse_event(&ev.to_string());
        let cut = ev.to_string();
        let mut half = cut.len() / 2;
        while !cut.is_char_boundary(half) {
            half -= 1;
        }
        let _ = podrunner::podman::types::parse_event(&cut[..half]);
    }

    /// The control socket's request line.
    #[test]
    fn control_requests(line in any::<String>(), v in any::<i64>(), cmd in "[a-z-]{0,8}", pool in any::<String>(), count in any::<i64>()) {
        let _ = podrunner::control::parse_request(&line);
        let req = serde_json::json!({"v": v, "cmd": cmd, "pool": pool, "count": count});
        match podrunner::control::parse_request(&req.to_string()) {
            Ok(_) => prop_assert_eq!(v, 1),
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
    }

    /// Container log lines (k8s-file format), including ones cut anywhere.
    #[test]
    fn k8s_log_lines(line in any::<String>()) {
        if let Some((stream, msg)) = podrunner::runner::logs::parse_k8s_log_line(&line) {
            prop_assert!(line.contains(stream) && line.ends_with(msg));
        }
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.log");
        std::fs::write(&p, line.as_bytes()).unwrap();
        let _ = podrunner::runner::logs::last_log_line(&p);
    }
}
