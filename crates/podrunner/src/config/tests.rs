use super::names::Scope;
use super::*;
use std::time::Duration;

fn env() -> Env {
    Env {
        machine_id: Some("0123456789abcdef0123456789abcdef".into()),
        ..Env::fixed(1000)
    }
}

fn parse(s: &str) -> Result<Config, ConfigError> {
    Config::parse(s, Path::new("/c.toml"), &env())
}

#[test]
fn the_starter_config_is_valid_and_says_what_it_means() {
    let c = parse(&starter_config("octo/hello")).unwrap();
    assert_eq!(c.pools.len(), 1);
    let p = &c.pools[0];
    assert_eq!(p.scope.api_path(), "repos/octo/hello");
    assert_eq!((p.count, p.pull), (2, crate::core::PullPolicy::Newer));
    assert_eq!(p.labels, vec!["self-hosted", "linux", "x64", "podman"]);
    let none = Config::without_pools(Path::new("/c.toml"), &env()).unwrap();
    assert!(none.pools.is_empty());
}

#[test]
fn host_ids_from_file_env_or_machine() {
    let derived = parse("[[pool]]\nname = \"a\"\nrepository = \"o/r\"\n").unwrap();
    assert_eq!(
        derived.manager.host_id,
        crate::core::naming::derive_host_id("0123456789abcdef0123456789abcdef", "default")
    );
    let e = Env {
        host_id: Some("web2".into()),
        ..env()
    };
    let text = "[[pool]]\nname = \"a\"\nrepository = \"o/r\"\n";
    let c = Config::parse(text, Path::new("/c.toml"), &e).unwrap();
    assert_eq!(c.manager.host_id, "web2");
    assert_eq!(c.pools[0].host_prefix(&c.manager.host_id), "a-web2");
    let c = Config::parse(
        &format!("[manager]\nhost_id = \"web1\"\n{text}"),
        Path::new("/c.toml"),
        &e,
    )
    .unwrap();
    assert_eq!(c.manager.host_id, "web1", "the file wins");
    let err = parse(&format!("[manager]\nhost_id = \"Web-1\"\n{text}"))
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with(
            "/c.toml:2:11: host_id \"Web-1\" is not 1 to 8 lowercase letters or digits"
        ),
        "{err}"
    );
    let err = parse(&format!("{text}pull = \"always\"\n"))
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("/c.toml:4:8: pull \"always\" is not a pull policy"),
        "{err}"
    );
}

#[test]
fn minimal_pool_gets_defaults() {
    let c = parse("[[pool]]\nname = \"p\"\nrepository = \"o/r\"\n").unwrap();
    assert_eq!(c.github.api_url, "https://api.github.com");
    assert_eq!(
        c.github.token_file,
        PathBuf::from("/home/u/.github-runner-token")
    );
    let p = &c.pools[0];
    assert_eq!(p.image, DEFAULT_IMAGE);
    assert_eq!(p.command, vec!["/home/runner/run.sh".to_string()]);
    assert_eq!(p.labels, vec!["self-hosted", "linux", "x64"]);
    assert_eq!(p.count, 1);
    assert_eq!(p.runner_name.as_str(), "p");
    assert_eq!(p.runner_group_id, 1);
    assert_eq!(p.stop_timeout, Duration::from_secs(60));
    assert_eq!(
        p.work_dir,
        PathBuf::from("/home/u/.local/share/podrunner/work/p")
    );
    assert_eq!(
        c.manager.state_dir,
        PathBuf::from("/home/u/.local/state/podrunner")
    );
    assert_eq!(
        c.control_socket(),
        PathBuf::from("/run/user/1000/podrunner/default.sock")
    );
}

#[test]
fn full_pool() {
    let c = parse(
        r#"
[github]
api_url = "https://ghe.example.com/api/v3/"
token_file = "~/tok"
[podman]
runtime = "runc"
run_args = ["--network=host"]
[[pool]]
name = "big"
organization = "acme"
runner_name = "acme-big"
labels = ["gpu", "Linux"]
count = 4
cpus = 2.5
memory = "4096"
restart_delay = "10s"
runner_group_id = 3
command = ["/bin/sh", "-c", "run"]
"#,
    )
    .unwrap();
    assert_eq!(c.github.api_url, "https://ghe.example.com/api/v3");
    assert_eq!(c.github.token_file, PathBuf::from("/home/u/tok"));
    let p = &c.pools[0];
    assert_eq!(p.scope.api_path(), "orgs/acme");
    assert_eq!(p.labels, vec!["self-hosted", "linux", "x64", "gpu"]);
    assert_eq!(p.memory.unwrap().0, 4096 * 1024 * 1024);
    assert_eq!(p.cpus, Some(2.5));
    assert_eq!(p.restart_delay, Duration::from_secs(10));
    assert_eq!(p.command.len(), 3);
    assert_eq!(c.podman.runtime.as_deref(), Some("runc"));
}

fn err(s: &str) -> String {
    parse(s).unwrap_err().to_string()
}

#[test]
fn unknown_key_has_position() {
    let e = err("[[pool]]\nname = \"p\"\nrepository = \"o/r\"\ncoutn = 3\n");
    assert!(e.starts_with("/c.toml:4:1: unknown field `coutn`"), "{e}");
    assert!(e.contains("fix:"), "{e}");
}

#[test]
fn bad_values_have_positions() {
    let e = err("[[pool]]\nname = \"p\"\nrepository = \"o/r\"\nmemory = \"4x\"\n");
    assert!(
        e.starts_with("/c.toml:4:10: memory \"4x\": unknown unit"),
        "{e}"
    );
    let e = err("[[pool]]\nname = \"p\"\nrepository = \"nope\"\n");
    assert!(
        e.starts_with("/c.toml:3:14: repository \"nope\" must have the form"),
        "{e}"
    );
    let e = err("[[pool]]\nname = \"p\"\nrepository = \"o/r\"\ncpus = 0\n");
    assert!(e.contains("/c.toml:4:8:"), "{e}");
    let e = err("[[pool]]\nname = \"p\"\nrepository = \"o/r\"\nstop_timeout = \"10s\"\n");
    assert!(
        e.starts_with("/c.toml:4:16: stop_timeout must be at least 60s"),
        "{e}"
    );
    let e = err("[[pool]]\nname = \"p\"\nrepository = \"o/r\"\nlabels = [\"a,b\"]\n");
    assert!(e.starts_with("/c.toml:4:"), "{e}");
    let e = err("[[pool]]\nname = \"p q\"\nrepository = \"o/r\"\n");
    assert!(
        e.starts_with("/c.toml:2:8: pool name \"p q\" contains ' '"),
        "{e}"
    );
    let e = err("[[pool]]\nname = \"p\"\ncount = \"two\"\nrepository = \"o/r\"\n");
    assert!(e.starts_with("/c.toml:3:9: invalid type"), "{e}");
}

#[test]
fn cross_field_errors() {
    assert!(err("").contains("no [[pool]] is defined"));
    let e = err("[[pool]]\nname = \"p\"\n");
    assert!(
        e.starts_with("/c.toml:1:1: pool \"p\" sets neither repository nor organization"),
        "{e}"
    );
    let e = err("[[pool]]\nname = \"p\"\nrepository = \"o/r\"\n[[pool]]\nname = \"p\"\norganization = \"o\"\n");
    assert!(
        e.starts_with("/c.toml:5:8: pool name \"p\" is used twice"),
        "{e}"
    );
    let e = err("[[pool]]\nname = \"p\"\nrepository = \"o/r\"\norganization = \"o\"\n");
    assert!(
        e.contains("sets more than one of repository, organization and enterprise"),
        "{e}"
    );
}

#[test]
fn docker_mode() {
    let base = "[[pool]]\nname = \"p\"\nrepository = \"o/r\"\n";
    let c = parse(base).unwrap();
    assert_eq!(c.pools[0].docker, DockerMode::Isolated);
    assert_eq!(c.pools[0].engine_containers_conf, None);
    for (v, m) in [
        ("isolated", DockerMode::Isolated),
        ("host", DockerMode::Host),
        ("none", DockerMode::None),
    ] {
        let c = parse(&format!(
            "{base}docker = \"{v}\"\nengine_containers_conf = \"~/e.conf\"\n"
        ))
        .unwrap();
        assert_eq!(c.pools[0].docker, m);
        assert_eq!(
            c.pools[0].engine_containers_conf,
            Some(PathBuf::from("/home/u/e.conf"))
        );
    }
    let e = err(&format!("{base}docker = \"dind\"\n"));
    assert!(
        e.starts_with("/c.toml:4:10: docker = \"dind\" is not a mode; expected \"isolated\", \"host\" or \"none\"\n  fix: write docker = \"isolated\""),
        "{e}"
    );
    let e = err(&format!("{base}docker = true\n"));
    assert!(e.starts_with("/c.toml:4:10: invalid type"), "{e}");
}

#[test]
fn docker_policy_and_runner_dir() {
    let base = "[[pool]]\nname = \"p\"\nrepository = \"o/r\"\n";
    let c = parse(base).unwrap();
    assert_eq!(c.pools[0].docker_policy, DockerPolicy::Contained);
    assert_eq!(c.pools[0].runner_dir, "/home/runner");
    let c = parse(&format!(
        "{base}docker_policy = \"open\"\nrunner_dir = \"/actions-runner\"\n"
    ))
    .unwrap();
    assert_eq!(c.pools[0].docker_policy, DockerPolicy::Open);
    assert_eq!(c.pools[0].runner_dir, "/actions-runner");
    assert_eq!(
        err(&format!("{base}docker_policy = \"lax\"\n")),
        "/c.toml:4:17: docker_policy = \"lax\" is not a policy\n  fix: write docker_policy = \"contained\" (jobs cannot reach the host through their engine) or \"open\" (trusted jobs only)"
    );
    assert_eq!(
        err(&format!("{base}runner_dir = \"home/runner\"\n")),
        "/c.toml:4:14: runner_dir \"home/runner\" is not an absolute path without spaces\n  fix: write the folder inside the image that holds the runner's run.sh, e.g. runner_dir = \"/home/runner\""
    );
}

#[test]
fn github_app_and_enterprise() {
    let pool = "[[pool]]\nname = \"p\"\norganization = \"acme\"\n";
    let c = parse(&format!(
        "[github]\napp_id = 123\nprivate_key_file = \"~/app.pem\"\n{pool}"
    ))
    .unwrap();
    assert_eq!(
        c.github.app,
        Some(AppConfig {
            issuer: "123".into(),
            private_key_file: "/home/u/app.pem".into(),
            installation_id: None
        })
    );
    assert!(!c.github.token_file_set);
    let c = parse(&format!(
        "[github]\nclient_id = \"Iv23liABC\"\nprivate_key_file = \"/k.pem\"\ninstallation_id = 42\n{pool}"
    ))
    .unwrap();
    let app = c.github.app.unwrap();
    assert_eq!(
        (app.issuer.as_str(), app.installation_id),
        ("Iv23liABC", Some(42))
    );
    assert_eq!(
        err("[github]\napp_id = 1\n[[pool]]\nname = \"p\"\norganization = \"acme\"\n"),
        "/c.toml:2:10: a GitHub App needs its private key\n  fix: add private_key_file = \"/path/to/app.private-key.pem\" (the key downloaded from the App's settings, chmod 600)"
    );
    assert!(err(&format!("[github]\nprivate_key_file = \"/k\"\n{pool}"))
        .starts_with("/c.toml:2:20: private_key_file is set but no app_id or client_id"));
    assert!(err(&format!("[github]\ninstallation_id = 5\n{pool}"))
        .starts_with("/c.toml:2:19: installation_id is set but no GitHub App"));
    assert!(err(&format!(
        "[github]\napp_id = 1\nclient_id = \"Iv1\"\nprivate_key_file = \"/k\"\n{pool}"
    ))
    .starts_with("/c.toml:2:10: [github] sets both app_id and client_id"));
    // Enterprise pools: a token works, an App alone cannot manage them.
    let ent = "[[pool]]\nname = \"e\"\nenterprise = \"big-co\"\n";
    let c = parse(ent).unwrap();
    assert_eq!(c.pools[0].scope, Scope::Enterprise("big-co".into()));
    assert!(c.github.uses_token(&c.pools[0].scope));
    let e = err(&format!(
        "[github]\napp_id = 1\nprivate_key_file = \"/k\"\n{ent}"
    ));
    assert_eq!(e, "/c.toml:6:14: pool \"e\" is an enterprise pool, and a GitHub App cannot manage enterprise runners (GitHub has no App permission for them)\n  fix: also set [github] token_file to a file holding a classic personal access token with the manage_runners:enterprise scope (enterprise pools use it, the others the App), or register these runners in an organization");
    let c = parse(&format!(
        "[github]\napp_id = 1\nprivate_key_file = \"/k\"\ntoken_file = \"/t\"\n{ent}{pool}"
    ))
    .unwrap();
    assert!(c.github.uses_token(&c.pools[0].scope));
    assert!(!c.github.uses_token(&c.pools[1].scope));
    let e = err("[[pool]]\nname = \"p\"\norganization = \"a\"\nenterprise = \"b\"\n");
    assert!(e.starts_with("/c.toml:4:14: pool \"p\" sets more than one of repository, organization and enterprise"), "{e}");
    assert!(err("[[pool]]\nname = \"p\"\nenterprise = \"a b\"\n")
        .starts_with("/c.toml:3:14: enterprise \"a b\""));
}

#[test]
fn runner_group_by_name_or_id() {
    let org = "[[pool]]\nname = \"p\"\norganization = \"acme\"\n";
    let c = parse(&format!("{org}runner_group = \"Linux builders\"\n")).unwrap();
    assert_eq!(c.pools[0].runner_group.as_deref(), Some("Linux builders"));
    let c = parse(&format!("{org}runner_group_id = 7\n")).unwrap();
    assert_eq!(
        (c.pools[0].runner_group.clone(), c.pools[0].runner_group_id),
        (None, 7)
    );
    assert_eq!(
        err(&format!("{org}runner_group = \"a\"\nrunner_group_id = 2\n")),
        "/c.toml:4:16: pool \"p\" sets both runner_group and runner_group_id\n  fix: keep one: runner_group = \"name\" is looked up, runner_group_id = N is used as is"
    );
    let e = err("[[pool]]\nname = \"p\"\nrepository = \"o/r\"\nrunner_group = \"x\"\n");
    assert!(e.starts_with("/c.toml:4:16: pool \"p\" registers runners in repository o/r, which has no runner groups"), "{e}");
    assert!(err(&format!("{org}runner_group = \" \"\n")).contains("runner_group must not be empty"));
}

#[test]
fn registration_tokens_and_keys_are_refused_in_the_token_file() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("t");
    for (text, says) in [
        (
            "AABF3JGZDX3P5PMEXLND6TS6FCWO6\n",
            "holds a runner registration (or remove) token",
        ),
        ("ghs_abcdef\n", "holds a GitHub App installation token"),
        (
            "-----BEGIN RSA PRIVATE KEY-----\nMIIE\n-----END RSA PRIVATE KEY-----\n",
            "holds a private key",
        ),
    ] {
        std::fs::write(&f, text).unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
        let e = read_token(&f).unwrap_err().to_string();
        assert!(
            e.starts_with(&format!("the GitHub token file {} {says}", f.display())),
            "{e}"
        );
        assert!(e.contains("\n  fix: "), "{e}");
        assert!(
            !e.contains("AABF3") && !e.contains("ghs_abc"),
            "not echoed: {e}"
        );
    }
    std::fs::write(&f, "not a key").unwrap();
    let e = read_private_key(&f).unwrap_err().to_string();
    assert!(e.contains("does not hold a PEM key"), "{e}");
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o640)).unwrap();
    let e = read_private_key(&f).unwrap_err().to_string();
    assert!(
        e.contains("GitHub App private key file") && e.contains("chmod 600"),
        "{e}"
    );
}

#[test]
fn line_col_counts_from_one() {
    assert_eq!(line_col("ab\ncd", 0), (1, 1));
    assert_eq!(line_col("ab\ncd", 4), (2, 2));
}

#[test]
fn token_file_rules() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("t");
    std::fs::write(&f, "ghp_abc\r\n").unwrap();
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert_eq!(read_token(&f).unwrap(), "ghp_abc");
    std::fs::write(&f, "ghp_abc\n").unwrap();
    assert_eq!(read_token(&f).unwrap(), "ghp_abc");
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
    let e = read_token(&f).unwrap_err().to_string();
    assert!(e.contains("mode 644") && e.contains("chmod 600"), "{e}");
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::write(&f, "\n").unwrap();
    assert!(read_token(&f).unwrap_err().to_string().contains("is empty"));
    let e = read_token(&dir.path().join("missing"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("cannot read"), "{e}");
}

#[test]
fn token_file_edge_cases() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("t");
    let write = |text: &str, mode: u32| {
        std::fs::write(&f, text).unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(mode)).unwrap();
    };
    // Group- or world-readable in any way: refused, with the chmod that fixes it.
    for mode in [0o640, 0o604, 0o660, 0o602, 0o610] {
        write("ghp_abc", mode);
        let e = read_token(&f).unwrap_err().to_string();
        assert!(
            e.contains(&format!("mode {mode:o}")) && e.contains("chmod 600"),
            "{e}"
        );
    }
    write("ghp_abc", 0o400);
    assert_eq!(read_token(&f).unwrap(), "ghp_abc");
    // Only one trailing newline (LF or CRLF) is forgiven; anything else inside is an error.
    for bad in [
        "ghp_a\nghp_b\n",
        "ghp a",
        "ghp_abc\r",
        "ghp_abc\n\n",
        " ghp_abc",
        "ghp_abc\t\n",
    ] {
        write(bad, 0o600);
        let e = read_token(&f).unwrap_err().to_string();
        assert!(e.contains("spaces or several lines"), "{bad:?}: {e}");
        assert!(!e.contains("ghp_"), "the token is not echoed: {e}");
    }
    for empty in ["", "\r\n", "  \n"] {
        write(empty, 0o600);
        let e = read_token(&f).unwrap_err().to_string();
        assert!(
            e.contains("is empty") || e.contains("spaces"),
            "{empty:?}: {e}"
        );
    }
    // A folder where the file should be.
    let e = read_token(dir.path()).unwrap_err().to_string();
    assert!(e.contains("GitHub token file"), "{e}");
}

#[test]
fn demand_pools() {
    use crate::core::demand::Mode;
    let base = "[[pool]]\nname = \"p\"\nrepository = \"o/r\"\n";
    let c = parse(base).unwrap();
    assert_eq!(
        (c.pools[0].mode, c.pools[0].count, c.pools[0].max),
        (Mode::Fixed, 1, 1)
    );
    let c = parse(&format!(
        "{base}min_idle = 1\nmax = 4\nidle_timeout = \"30s\"\n"
    ))
    .unwrap();
    let p = &c.pools[0];
    assert_eq!((p.mode, p.min_idle, p.max), (Mode::Labels, 1, 4));
    assert_eq!(p.idle_timeout, Duration::from_secs(30));
    assert_eq!(p.scale_set, None);
    let c = parse(&format!(
        "{base}max = 4\nscale_set = true\ndisable_update = true\n"
    ))
    .unwrap();
    let p = &c.pools[0];
    assert_eq!((p.mode, p.min_idle, p.max), (Mode::ScaleSet, 0, 4));
    assert_eq!(p.scale_set.as_deref(), Some("p"));
    assert!(p.disable_update);
    assert_eq!(p.idle_timeout, crate::core::demand::DEFAULT_IDLE_TIMEOUT);
    let c = parse(&format!("{base}max = 2\nscale_set = \"big-box\"\n")).unwrap();
    assert_eq!(c.pools[0].scale_set.as_deref(), Some("big-box"));

    let e = err(&format!("{base}count = 2\nmax = 4\n"));
    assert!(
        e.starts_with("/c.toml:5:7: pool \"p\" sets both count and max"),
        "{e}"
    );
    let e = err(&format!("{base}min_idle = 5\nmax = 4\n"));
    assert!(
        e.starts_with("/c.toml:5:7: max = 4 must be at least 1 and at least min_idle (5)"),
        "{e}"
    );
    let e = err(&format!("{base}scale_set = true\n"));
    assert!(
        e.starts_with("/c.toml:1:1: pool \"p\" sets scale_set but no max"),
        "{e}"
    );
    assert!(e.contains("fix: add max = N"), "{e}");
    let e = err(&format!("{base}max = 2\nscale_set = 3\n"));
    assert!(
        e.starts_with("/c.toml:5:13: scale_set = 3 is neither"),
        "{e}"
    );
    let e = err(&format!("{base}max = 2\nscale_set = \"a b\"\n"));
    assert!(
        e.starts_with("/c.toml:5:13: scale_set \"a b\" contains ' '"),
        "{e}"
    );
    let e = err(&format!(
        "{base}max = 2\nscale_set = true\nlabels = [\"gpu\"]\n"
    ));
    assert!(
        e.starts_with("/c.toml:6:10: a scale set answers to one label"),
        "{e}"
    );
    let e = err("[[pool]]\nname = \"p\"\norganization = \"acme\"\nmax = 2\n");
    assert!(
        e.starts_with("/c.toml:3:16: pool \"p\" is sized by queued jobs"),
        "{e}"
    );
    assert!(
        parse("[[pool]]\nname = \"p\"\norganization = \"acme\"\nmax = 2\nscale_set = true\n")
            .is_ok()
    );
    let c = parse(&format!("{base}max = 2\npoll_interval = \"3s\"\n")).unwrap();
    assert_eq!(c.pools[0].poll_interval, Duration::from_secs(3));
    let e = err(&format!("{base}poll_interval = \"3s\"\n"));
    assert!(
        e.starts_with("/c.toml:4:17: poll_interval applies to label pools"),
        "{e}"
    );
    let e = err(&format!("{base}max = 2\ndisable_update = true\n"));
    assert!(
        e.starts_with("/c.toml:5:18: disable_update applies to scale sets only"),
        "{e}"
    );
}
