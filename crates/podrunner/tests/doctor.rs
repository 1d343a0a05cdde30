//! `podrunner doctor` and the start-up refusal of `podrunner run`: each check catches the
//! broken condition it claims to catch. Conditions are created for real where this machine
//! allows (a world-readable token, a missing image, a non-setuid `newuidmap` first on PATH, a
//! user without subordinate ids, a nearly full filesystem, the host's own cgroup layout, a
//! runtime that cannot start containers); the rest use fixture trees under a temporary root.
//! Podman runs for real; every test has a timeout.
#![allow(
    clippy::disallowed_methods,
    reason = "test code starts the programs it tests and inspects the host directly"
)]

mod common;

use common::{is_root, podrunner_bin, ROOTFUL_ULIMITS};
use podrunner::config::{Config, Env};
use podrunner::doctor::distro::Distro;
use podrunner::doctor::podman::{InfoError, PodmanInfo};
use podrunner::doctor::{self, host, idmap, Check, Facts, Host, HostEnv, Status};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

/// The lead's test image, when built; otherwise a busybox image made here.
const TEST_IMAGE: &str = common::TEST_IMAGE;
const FALLBACK_IMAGE: &str = "localhost/doctor-test:latest";
const TOKEN: &str = "ghp_doctortesttoken";

async fn within<F: std::future::Future>(secs: u64, f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(secs), f)
        .await
        .expect("test timed out")
}

fn sh(cmd: &str) -> std::process::Output {
    Command::new("timeout")
        .args(["300", "sh", "-c", cmd])
        .output()
        .expect("sh runs")
}

/// A local image to start containers from: the lead's test image, or busybox imported here.
fn local_image() -> &'static str {
    static IMG: OnceLock<&'static str> = OnceLock::new();
    IMG.get_or_init(|| {
        if sh(&format!("podman image exists {TEST_IMAGE}"))
            .status
            .success()
        {
            return TEST_IMAGE;
        }
        if !sh(&format!("podman image exists {FALLBACK_IMAGE}"))
            .status
            .success()
        {
            let out = sh(&format!(
                "set -e; d=$(mktemp -d); mkdir -p $d/bin; cp /bin/busybox $d/bin/; \
                 for t in sh true; do ln -s busybox $d/bin/$t; done; \
                 tar -C $d -c . | podman import - {FALLBACK_IMAGE}; rm -rf $d"
            ));
            assert!(
                out.status.success(),
                "cannot build {FALLBACK_IMAGE}: {out:?}"
            );
        }
        FALLBACK_IMAGE
    })
}

/// This host's rootful containers need rlimits within the hard limits, as a TOML list.
fn ulimits() -> String {
    format!("{ROOTFUL_ULIMITS:?}")
}

fn parse(text: &str, dir: &Path) -> Config {
    Config::parse(text, &dir.join("config.toml"), &Env::fixed(0)).expect("valid config")
}

fn write_token(dir: &Path, mode: u32) -> PathBuf {
    let t = dir.join("token");
    std::fs::write(&t, TOKEN).unwrap();
    std::fs::set_permissions(&t, std::fs::Permissions::from_mode(mode)).unwrap();
    t
}

/// A config file for the binary: one repository pool on `image`, state under `dir`.
fn config_text(dir: &Path, api: &str, image: &str, run_args: &str) -> String {
    format!(
        r#"[github]
api_url = "{api}"
token_file = "{d}/token"
[podman]
runtime = "runc"
run_args = {run_args}
[manager]
instance = "doctor"
state_dir = "{d}/state"
runtime_dir = "{d}/run"
[[pool]]
name = "p"
repository = "o/r"
image = "{image}"
work_dir = "{d}/work"
"#,
        d = dir.display()
    )
}

fn facts(distro: Distro, user: &str, uid: u32, rootless: bool) -> Facts {
    Facts {
        distro,
        user: user.into(),
        uid,
        rootless,
        info: Err(InfoError::Missing("not asked".into())),
        podman: podrunner::podman::Podman::new("podman", Some("runc"), &[]),
        config_path: "/etc/podrunner/config.toml".into(),
    }
}

fn fixture_host(root: &Path, uid: u32, user: &str) -> Host {
    Host {
        root: root.to_path_buf(),
        env: HostEnv {
            uid,
            user: Some(user.into()),
            path: std::env::var_os("PATH"),
            xdg_runtime_dir: None,
        },
    }
}

fn put(root: &Path, rel: &str, text: &str) {
    let p = root.join(rel.trim_start_matches('/'));
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

/// Runs the podrunner binary with a kill timeout; returns (exit code, stdout, stderr).
async fn podrunner(args: &[&str], timeout_secs: u64) -> (i32, String, String) {
    let out = tokio::time::timeout(
        Duration::from_secs(timeout_secs),
        tokio::process::Command::new(podrunner_bin())
            .args(args)
            .env_remove("PODRUNNER_CONFIG")
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("podrunner timed out")
    .expect("podrunner runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn by_id<'a>(checks: &'a [serde_json::Value], id: &str) -> &'a serde_json::Value {
    checks
        .iter()
        .find(|c| c["id"] == id)
        .unwrap_or_else(|| panic!("no check {id} in {checks:#?}"))
}

// ------------------------------------------------------------------------------------------
// The whole binary
// ------------------------------------------------------------------------------------------

/// A healthy rootful setup (this host, runc, the ulimits it needs, a local image, a token the
/// fake GitHub accepts) gets no failure, and exit status 0.
#[tokio::test]
async fn healthy_setup_has_no_failure() {
    within(240, async {
        let gh = fake_github::FakeGithub::start(TOKEN).await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        write_token(dir.path(), 0o600);
        let cfg = dir.path().join("config.toml");
        std::fs::write(
            &cfg,
            config_text(dir.path(), &gh.url(), local_image(), &ulimits()),
        )
        .unwrap();
        let (code, out, err) = podrunner(
            &["--config", cfg.to_str().unwrap(), "doctor", "--json"],
            200,
        )
        .await;
        let checks: Vec<serde_json::Value> =
            serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out} {err}"));
        let failed: Vec<&serde_json::Value> =
            checks.iter().filter(|c| c["status"] == "fail").collect();
        assert!(failed.is_empty(), "failures: {failed:#?}");
        assert_eq!(code, 0, "{err}");
        for id in [
            "podman",
            "runtime",
            "token",
            "storage",
            "image:p",
            "github:o/r",
        ] {
            assert_eq!(
                by_id(&checks, id)["status"],
                "pass",
                "{id}: {:#?}",
                by_id(&checks, id)
            );
        }
        let rootless = !is_root();
        assert_eq!(
            by_id(&checks, "podman")["found"]
                .as_str()
                .unwrap()
                .contains("(rootless)"),
            rootless
        );
        // The readable form: one line per check and the summary.
        let (code, text, _) = podrunner(&["--config", cfg.to_str().unwrap(), "doctor"], 200).await;
        assert_eq!(code, 0);
        assert!(text.contains("PASS podman: "), "{text}");
        assert!(text.contains(" 0 failed, "), "{text}");
        gh.shutdown().await;
    })
    .await
}

/// A world-readable token: doctor fails it with `chmod 600`, and `podrunner run` refuses to
/// start with the same explanation, before touching GitHub or Podman containers.
#[tokio::test]
async fn world_readable_token_fails_and_run_refuses() {
    within(240, async {
        let gh = fake_github::FakeGithub::start(TOKEN).await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let token = write_token(dir.path(), 0o644);
        let cfg = dir.path().join("config.toml");
        std::fs::write(
            &cfg,
            config_text(dir.path(), &gh.url(), local_image(), &ulimits()),
        )
        .unwrap();
        let cfg = cfg.to_str().unwrap();
        let (code, out, _) = podrunner(&["--config", cfg, "doctor", "--json"], 200).await;
        assert_eq!(code, 1);
        let checks: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
        let t = by_id(&checks, "token");
        assert_eq!(t["status"], "fail");
        assert!(t["found"].as_str().unwrap().contains("mode 644"), "{t}");
        assert_eq!(t["fix"], format!("chmod 600 {}", token.display()));
        assert_eq!(by_id(&checks, "github:o/r")["status"], "skip");

        let (code, _, err) = podrunner(&["--config", cfg, "run"], 200).await;
        assert_eq!(code, 1, "{err}");
        assert!(err.contains("the host is not ready for podrunner"), "{err}");
        assert!(err.contains("FAIL token file"), "{err}");
        assert!(
            err.contains(&format!("fix:   chmod 600 {}", token.display())),
            "{err}"
        );
        assert_eq!(gh.api_calls(), 0, "run must refuse before calling GitHub");
        gh.shutdown().await;
    })
    .await
}

// ------------------------------------------------------------------------------------------
// Podman checks, against the real podman
// ------------------------------------------------------------------------------------------

#[tokio::test]
async fn missing_image_is_reported() {
    within(120, async {
        let dir = tempfile::tempdir().unwrap();
        let cfg = parse(
            &format!(
                "[[pool]]\nname = \"local\"\nrepository = \"o/r\"\nimage = \"localhost/podrunner-doctor-no-such-image:latest\"\n\
                 [[pool]]\nname = \"remote\"\nrepository = \"o/r\"\nrunner_name = \"rem\"\nimage = \"registry.invalid/nope:1\"\n\
                 [[pool]]\nname = \"there\"\nrepository = \"o/r\"\nrunner_name = \"th\"\nimage = \"{}\"\n",
                local_image()
            ),
            dir.path(),
        );
        let f = Facts::gather(&cfg, &Host::real()).await;
        let checks = doctor::podman::check_images(&cfg, &f).await;
        assert_eq!(checks[0].status, Status::Fail, "{checks:#?}");
        assert!(checks[0].found.contains("is not in local storage"));
        assert_eq!(checks[1].status, Status::Warn);
        assert!(checks[1].found.contains("will be pulled"));
        assert_eq!(checks[1].fix.as_deref(), Some("podman pull registry.invalid/nope:1"));
        assert_eq!(checks[2].status, Status::Pass, "{:?}", checks[2]);
    })
    .await
}

/// The runtime check really starts a container with the config's runtime and run_args: a
/// runtime that does not exist fails and points at runc; on this host rootful containers
/// without the ulimit arguments fail, and the fix names the host's hard limits.
#[tokio::test]
async fn runtime_check_starts_a_container_with_the_configs_arguments() {
    within(240, async {
        let dir = tempfile::tempdir().unwrap();
        let host = Host::real();
        let base = |runtime: &str, run_args: &str| {
            parse(
                &format!(
                    "[podman]\nruntime = \"{runtime}\"\nrun_args = {run_args}\n[[pool]]\nname = \"p\"\nrepository = \"o/r\"\nimage = \"{}\"\n",
                    local_image()
                ),
                dir.path(),
            )
        };
        let good = base("runc", &ulimits());
        let f = Facts::gather(&good, &host).await;
        let c = doctor::podman::check_runtime(&good, &host, &f).await;
        assert_eq!(c.status, Status::Pass, "{c:#?}");
        assert!(c.found.starts_with("runc started"), "{}", c.found);

        // A runtime that is not installed: podman itself refuses, and says which one.
        let bad = base("/nonexistent/crun", &ulimits());
        let f = Facts::gather(&bad, &host).await;
        let c = doctor::podman::check_podman(&bad, &f);
        assert_eq!(c.status, Status::Fail, "{c:#?}");
        assert!(c.found.contains("/nonexistent/crun"), "{}", c.found);
        assert!(c.fix.as_deref().unwrap().contains("runtime = \"runc\""), "{c:?}");
        let c = doctor::podman::check_runtime(&bad, &host, &f).await;
        assert_eq!(c.status, Status::Skip, "{c:#?}");
        assert!(doctor::BLOCKING.contains(&"podman"));

        // docs/test-bench.md: rootful default rlimits exceed this host's hard limits.
        let limits = std::fs::read_to_string("/proc/self/limits").unwrap();
        let (nofile, _) = doctor::podman::hard_limits(&limits);
        let conf_sets_ulimits = std::env::var_os("CONTAINERS_CONF").is_some()
            || std::fs::read_to_string("/etc/containers/containers.conf")
                .map(|t| t.contains("default_ulimits"))
                .unwrap_or(false);
        if is_root() && nofile.unwrap_or(u64::MAX) < 1_048_576 && !conf_sets_ulimits {
            let plain = base("runc", "[]");
            let f = Facts::gather(&plain, &host).await;
            let c = doctor::podman::check_runtime(&plain, &host, &f).await;
            assert_eq!(c.status, Status::Fail, "{c:#?}");
            let n = nofile.unwrap();
            assert!(
                c.fix.as_deref().unwrap().contains(&format!("--ulimit=nofile={n}:{n}")),
                "{c:#?}"
            );
        }
    })
    .await
}

/// The cgroup layout of this very host is reported as `podman info` sees it, and on cgroup
/// v1 a rootless manager whose pool sets memory gets the warning that Podman ignores it.
#[tokio::test]
async fn this_hosts_cgroups_and_unenforceable_limits() {
    within(120, async {
        let dir = tempfile::tempdir().unwrap();
        let cfg = parse(
            "[[pool]]\nname = \"p\"\nrepository = \"o/r\"\nmemory = \"512m\"\ncpus = 1\n",
            dir.path(),
        );
        let host = Host::real();
        let info: PodmanInfo = match Facts::gather(&cfg, &host).await.info {
            Ok(i) => i,
            Err(e) => panic!("podman info: {e:?}"),
        };
        let mut f = facts(Distro::Debian, "ci", 1000, true);
        let cg = doctor::host::check_cgroup(&host, &f);
        let limits = doctor::host::check_limits(&cfg, &host, &f);
        if info.host.cgroup_version == "v1" {
            assert!(cg.found.starts_with("cgroup v1"), "{cg:?}");
            assert_eq!(limits.status, Status::Warn, "{limits:#?}");
            assert!(
                limits.found.contains("p memory=536870912b"),
                "{}",
                limits.found
            );
            assert!(limits.found.contains("p cpus=1"), "{}", limits.found);
            assert!(limits.why.contains("silently ignores"), "{}", limits.why);
            assert!(limits
                .fix
                .as_deref()
                .unwrap()
                .contains("systemd.unified_cgroup_hierarchy=1"));
            assert!(limits
                .fix
                .as_deref()
                .unwrap()
                .contains("Delegate=cpu cpuset io memory pids"));
        } else {
            assert!(cg.found.starts_with("cgroup v2"), "{cg:?}");
        }
        // Rootful, the same limits are enforced.
        f.rootless = false;
        assert_eq!(
            doctor::host::check_limits(&cfg, &host, &f).status,
            Status::Pass
        );
    })
    .await
}

// ------------------------------------------------------------------------------------------
// Rootless prerequisites
// ------------------------------------------------------------------------------------------

/// A copy of newuidmap without its setuid bit, first on PATH, is named as the culprit; the
/// real one further down PATH is named as the way out.
#[test]
fn non_setuid_newuidmap_first_on_path_fails() {
    let dir = tempfile::tempdir().unwrap();
    let real = HostEnv {
        path: Some("/usr/bin:/bin".into()),
        ..fixture_host(Path::new("/"), 1000, "ci").env
    };
    let system = real.which("newuidmap").expect("uidmap is installed");
    let copy = dir.path().join("newuidmap");
    std::fs::copy(&system, &copy).unwrap();
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755)).unwrap();
    let f = facts(Distro::Debian, "ci", 1000, true);
    let host = |path: String| Host {
        root: "/".into(),
        env: HostEnv {
            path: Some(path.into()),
            ..real.clone()
        },
    };
    let ok = idmap::check_idmap_helper(&host("/usr/bin:/bin".into()), &f, "newuidmap");
    assert_eq!(ok.status, Status::Pass, "{ok:?}");
    assert!(ok.found.contains("setuid root") || ok.found.contains("file capabilities"));

    let h = host(format!("{}:/usr/bin:/bin", dir.path().display()));
    let c = idmap::check_idmap_helper(&h, &f, "newuidmap");
    assert_eq!(c.status, Status::Fail, "{c:?}");
    assert!(
        c.found.starts_with(&copy.display().to_string()),
        "{}",
        c.found
    );
    assert!(c
        .found
        .contains("neither setuid root nor has file capabilities"));
    let fix = c.fix.unwrap();
    assert!(fix.contains(&format!("remove {}", copy.display())), "{fix}");
    assert!(fix.contains(&system.display().to_string()), "{fix}");

    // Only the broken copy: the fix reinstalls, per distribution.
    let h = host(dir.path().display().to_string());
    let c = idmap::check_idmap_helper(&h, &f, "newuidmap");
    assert_eq!(
        c.fix.as_deref(),
        Some("sudo apt-get install --reinstall -y uidmap")
    );
    let c = idmap::check_idmap_helper(&h, &facts(Distro::NixOS, "ci", 1000, true), "newuidmap");
    assert!(c.fix.unwrap().contains("/run/wrappers/bin"));
    // Missing altogether.
    let c = idmap::check_idmap_helper(&host("/nonexistent".into()), &f, "newgidmap");
    assert_eq!(c.status, Status::Fail);
    assert_eq!(c.found, "newgidmap is not on PATH");
    assert_eq!(c.fix.as_deref(), Some("sudo apt-get install -y uidmap"));
}

/// A real system user made without subordinate ids fails the subuid and subgid checks with
/// the usermod command for that user, and `podrunner run` as that user refuses to start.
#[tokio::test]
async fn user_without_subuid_entry() {
    assert!(
        is_root(),
        "this test creates a user: run it as root (CI does)"
    );
    within(240, async {
        const USER: &str = "podrunner-nosubuid";
        // Rootless podman leaves its pause process (catatonit) running as the user: end the
        // processes this test started as the user, by pid, then remove the user.
        let remove_user = || {
            sh(&format!(
                "for p in $(ps -u {USER} -o pid= 2>/dev/null); do kill $p; done; sleep 0.5; \
                 u=$(id -u {USER} 2>/dev/null) && rm -rf /tmp/podman-run-$u /tmp/containers-user-$u /tmp/storage-run-$u; \
                 userdel {USER} 2>/dev/null; true"
            ))
        };
        remove_user();
        let out = sh(&format!(
            "for i in 1 2 3 4 5; do useradd --system --no-create-home --shell /bin/sh {USER} && exit 0; sleep 1; done; exit 1"
        ));
        assert!(out.status.success(), "useradd: {out:?}");
        struct Cleanup<F: Fn() -> std::process::Output>(F);
        impl<F: Fn() -> std::process::Output> Drop for Cleanup<F> {
            fn drop(&mut self) {
                (self.0)();
            }
        }
        let _cleanup = Cleanup(remove_user);
        let uid: u32 = String::from_utf8(sh(&format!("id -u {USER}")).stdout)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let mut host = fixture_host(Path::new("/"), uid, USER);
        host.env.user = None;
        assert_eq!(host.user_name(), USER, "name from the real /etc/passwd");
        let f = facts(Distro::detect(&host), USER, uid, true);
        for kind in ["subuid", "subgid"] {
            let c = idmap::check_subids(&host, &f, kind);
            assert_eq!(c.status, Status::Fail, "{c:?}");
            assert!(c.found.contains(&format!("has no range for {USER} (uid {uid})")), "{}", c.found);
            let fix = c.fix.unwrap();
            assert!(fix.contains("usermod --add-subuids") && fix.ends_with("podman system migrate"), "{fix}");
            assert!(fix.contains(&format!(" {USER}\n")), "{fix}");
        }

        // The same user runs `podrunner run`: refused, naming /etc/subuid and the fix.
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        write_token(dir.path(), 0o600);
        let cfg = dir.path().join("config.toml");
        std::fs::write(&cfg, config_text(dir.path(), "http://127.0.0.1:9", local_image(), "[\"--network=host\"]")).unwrap();
        let chown = sh(&format!("chown -R {USER} {}", dir.path().display()));
        assert!(chown.status.success());
        let out = tokio::time::timeout(
            Duration::from_secs(200),
            tokio::process::Command::new("runuser")
                .args(["-u", USER, "--", "env", &format!("HOME={}", dir.path().display())])
                .arg(podrunner_bin())
                .args(["--config", cfg.to_str().unwrap(), "run"])
                .current_dir(dir.path())
                .kill_on_drop(true)
                .output(),
        )
        .await
        .expect("podrunner run timed out")
        .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(err.contains("the host is not ready for podrunner"), "{err}");
        assert!(err.contains(&format!("/etc/subuid has no range for {USER}")), "{err}");
        assert!(err.contains("usermod --add-subuids"), "{err}");
    })
    .await
}

/// Subordinate id ranges from fixture files: too few, overlapping, matched by uid, and the
/// NixOS wording of the fix.
#[test]
fn subid_ranges_from_fixture_files() {
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    put(
        r,
        "/etc/subuid",
        "alice:100000:65536\nbob:150000:65536\n1003:300000:65536\nshort:400000:1000\n",
    );
    put(r, "/etc/subgid", "alice:100000:65536\n");
    let check = |user: &str, uid: u32, kind: &str, d: Distro| {
        idmap::check_subids(
            &fixture_host(r, uid, user),
            &facts(d, user, uid, true),
            kind,
        )
    };
    let c = check("alice", 1001, "subgid", Distro::Debian);
    assert_eq!(c.status, Status::Pass, "{c:?}");
    assert_eq!(c.found, "alice has 65536 gids: 100000-165535");
    let c = check("carol", 1003, "subuid", Distro::Debian);
    assert_eq!(c.status, Status::Pass, "matched by uid: {c:?}");
    let c = check("bob", 1002, "subuid", Distro::Debian);
    assert_eq!(c.status, Status::Warn, "{c:?}");
    assert_eq!(
        c.found,
        "bob's range 150000-215535 overlaps alice's range 100000-165535"
    );
    assert_eq!(
        c.fix.as_deref(),
        Some("sudo usermod --del-subuids 150000-215535 --add-subuids 458752-524287 bob\nthen: podman system migrate")
    );
    let c = check("short", 1004, "subuid", Distro::Fedora);
    assert_eq!(c.status, Status::Fail);
    assert!(c.found.contains("has 1000 subordinate uids"), "{}", c.found);
    let c = check("dave", 1005, "subgid", Distro::NixOS);
    assert_eq!(c.status, Status::Fail);
    assert!(c.fix.unwrap().contains("users.users.dave.subUidRanges"));
    // No file at all.
    let empty = tempfile::tempdir().unwrap();
    let c = idmap::check_subids(
        &fixture_host(empty.path(), 1000, "x"),
        &facts(Distro::Debian, "x", 1000, true),
        "subuid",
    );
    assert_eq!(c.status, Status::Fail);
    assert_eq!(
        c.fix.as_deref(),
        Some("sudo usermod --add-subuids 100000-165535 --add-subgids 100000-165535 x\nthen: podman system migrate")
    );
}

/// The distribution comes from `<root>/etc/os-release`, and the fix text follows it.
#[test]
fn fixes_follow_os_release_of_the_root() {
    let cases = [
        ("ID=debian\n", "sudo apt-get install -y uidmap"),
        (
            "ID=ubuntu\nID_LIKE=debian\n",
            "sudo apt-get install -y uidmap",
        ),
        ("ID=fedora\n", "sudo dnf install -y shadow-utils"),
        (
            "ID=\"almalinux\"\nID_LIKE=\"rhel centos fedora\"\n",
            "sudo dnf install -y shadow-utils",
        ),
        ("ID=arch\n", "sudo pacman -S --needed shadow"),
        ("ID=nixos\n", "virtualisation.podman.enable = true;"),
    ];
    for (os_release, want) in cases {
        let root = tempfile::tempdir().unwrap();
        put(root.path(), "/etc/os-release", os_release);
        let mut host = fixture_host(root.path(), 1000, "ci");
        host.env.path = Some("/nonexistent".into());
        let f = facts(Distro::detect(&host), "ci", 1000, true);
        let c = idmap::check_idmap_helper(&host, &f, "newuidmap");
        assert!(
            c.fix.as_deref().unwrap().contains(want),
            "{os_release}: {c:?}"
        );
    }
}

// ------------------------------------------------------------------------------------------
// Session, cgroup v2 delegation, networking: fixture trees
// ------------------------------------------------------------------------------------------

#[test]
fn lingering_from_fixture_tree() {
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    let h = fixture_host(r, 1000, "ci");
    let f = facts(Distro::Debian, "ci", 1000, true);
    assert_eq!(
        host::check_linger(&h, &f).status,
        Status::Skip,
        "no systemd: nothing to linger for"
    );
    std::fs::create_dir_all(r.join("run/systemd/system")).unwrap();
    let c = host::check_linger(&h, &f);
    assert_eq!(c.status, Status::Warn);
    assert_eq!(c.fix.as_deref(), Some("sudo loginctl enable-linger ci"));
    assert!(c.why.contains("stops"), "{}", c.why);
    put(r, "/var/lib/systemd/linger/ci", "");
    assert_eq!(host::check_linger(&h, &f).status, Status::Pass);
}

#[test]
fn cgroup_v2_delegation_from_fixture_tree() {
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    let dir = tempfile::tempdir().unwrap();
    let cfg = parse(
        "[[pool]]\nname = \"p\"\nrepository = \"o/r\"\nmemory = \"1g\"\ncpus = 2\n",
        dir.path(),
    );
    put(
        r,
        "/sys/fs/cgroup/cgroup.controllers",
        "cpuset cpu io memory hugetlb pids rdma misc\n",
    );
    let h = fixture_host(r, 1000, "ci");
    let f = facts(Distro::Fedora, "ci", 1000, true);
    // No user manager: nothing is delegated.
    let c = host::check_limits(&cfg, &h, &f);
    assert_eq!(c.status, Status::Warn, "{c:?}");
    assert!(
        c.found.contains("without a systemd user session"),
        "{}",
        c.found
    );
    let ctl = "/sys/fs/cgroup/user.slice/user-1000.slice/user@1000.service/cgroup.controllers";
    put(r, ctl, "memory pids\n");
    let c = host::check_limits(&cfg, &h, &f);
    assert_eq!(c.status, Status::Warn, "{c:?}");
    assert!(
        c.found
            .contains("but cpu not delegated to ci (delegated: memory pids)"),
        "{}",
        c.found
    );
    assert!(
        c.found.contains("p cpus=2") && !c.found.contains("memory="),
        "{}",
        c.found
    );
    assert!(c
        .fix
        .unwrap()
        .contains("/etc/systemd/system/user@.service.d/delegate.conf"));
    let cg = host::check_cgroup(&h, &f);
    assert!(
        cg.found.contains("delegated to ci: memory pids"),
        "{}",
        cg.found
    );
    put(r, ctl, "cpuset cpu io memory pids\n");
    assert_eq!(host::check_limits(&cfg, &h, &f).status, Status::Pass);
    // Hybrid layout in a fixture: the v1 warning, NixOS wording.
    let hy = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(hy.path().join("sys/fs/cgroup/unified")).unwrap();
    let c = host::check_limits(
        &cfg,
        &fixture_host(hy.path(), 1000, "ci"),
        &facts(Distro::NixOS, "ci", 1000, true),
    );
    assert_eq!(c.status, Status::Warn);
    assert!(
        c.found.starts_with("rootless on cgroup v1 (hybrid"),
        "{}",
        c.found
    );
    assert!(c.fix.unwrap().contains("boot.kernelParams"));
}

#[test]
fn xdg_runtime_dir_rules() {
    let dir = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let uid = podrunner::sys::uid();
    let mut h = fixture_host(root.path(), uid, "ci");
    let f = facts(Distro::Debian, "ci", uid, true);
    let c = host::check_xdg_runtime_dir(&h, &f);
    assert_eq!(c.status, Status::Warn);
    assert_eq!(c.found, "XDG_RUNTIME_DIR is not set");
    assert!(c
        .fix
        .unwrap()
        .starts_with(&format!("sudo install -d -m 0700 -o ci /run/user/{uid}")));
    let run = dir.path().join("run");
    std::fs::create_dir(&run).unwrap();
    std::fs::set_permissions(&run, std::fs::Permissions::from_mode(0o755)).unwrap();
    h.env.xdg_runtime_dir = Some(run.clone());
    let c = host::check_xdg_runtime_dir(&h, &f);
    assert_eq!(c.status, Status::Warn, "{c:?}");
    assert_eq!(c.fix, Some(format!("chmod 700 {}", run.display())));
    std::fs::set_permissions(&run, std::fs::Permissions::from_mode(0o700)).unwrap();
    assert_eq!(host::check_xdg_runtime_dir(&h, &f).status, Status::Pass);
    // Owned by someone else.
    let other = facts(Distro::Debian, "ci", uid + 4242, true);
    let c = host::check_xdg_runtime_dir(&h, &other);
    assert_eq!(c.status, Status::Fail);
    assert!(c.found.contains("is owned by uid"), "{}", c.found);
    h.env.xdg_runtime_dir = Some(dir.path().join("missing"));
    assert_eq!(host::check_xdg_runtime_dir(&h, &f).status, Status::Fail);
}

#[test]
fn rootless_networking() {
    let dir = tempfile::tempdir().unwrap();
    let bridged = parse("[[pool]]\nname = \"p\"\nrepository = \"o/r\"\n", dir.path());
    let hostnet = parse("[podman]\nrun_args = [\"--network\", \"host\"]\n[[pool]]\nname = \"p\"\nrepository = \"o/r\"\n", dir.path());
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    let bin = tempfile::tempdir().unwrap();
    let slirp = bin.path().join("slirp4netns");
    std::fs::write(&slirp, "").unwrap();
    std::fs::set_permissions(&slirp, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut h = fixture_host(r, 1000, "ci");
    h.env.path = Some(bin.path().into());
    let f = facts(Distro::Debian, "ci", 1000, true);
    assert_eq!(host::check_network(&hostnet, &h, &f).status, Status::Pass);
    let c = host::check_network(&bridged, &h, &f);
    assert_eq!(c.status, Status::Fail, "{c:?}");
    assert!(
        c.found.ends_with("but /dev/net/tun does not exist"),
        "{}",
        c.found
    );
    assert!(c.fix.unwrap().starts_with("sudo modprobe tun"));
    put(r, "/dev/net/tun", "");
    assert_eq!(host::check_network(&bridged, &h, &f).status, Status::Pass);
    h.env.path = Some("/nonexistent".into());
    let c = host::check_network(&bridged, &h, &f);
    assert_eq!(c.status, Status::Fail);
    assert_eq!(c.found, "neither slirp4netns nor pasta is installed");
    assert_eq!(
        c.fix.as_deref(),
        Some("sudo apt-get install -y slirp4netns")
    );
}

/// A nearly full filesystem under a pool's work folder (a 64 MiB tmpfs) fails the space
/// check; the real storage of this host passes or warns by its real free space.
#[test]
fn free_space_on_a_small_filesystem() {
    assert!(
        is_root(),
        "this test mounts a tmpfs: run it as root (CI does)"
    );
    let dir = tempfile::tempdir().unwrap();
    let mnt = dir.path().join("small");
    std::fs::create_dir(&mnt).unwrap();
    let out = sh(&format!(
        "mount -t tmpfs -o size=64m tmpfs {}",
        mnt.display()
    ));
    assert!(out.status.success(), "mount: {out:?}");
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = sh(&format!("umount {}", self.0.display()));
        }
    }
    let _u = Unmount(mnt.clone());
    let cfg = parse(
        &format!(
            "[[pool]]\nname = \"p\"\nrepository = \"o/r\"\nwork_dir = \"{}/work/p\"\n",
            mnt.display()
        ),
        dir.path(),
    );
    let f = facts(Distro::Debian, "root", 0, false);
    let checks: Vec<Check> = host::check_disk(&cfg, &f);
    assert_eq!(checks.len(), 1, "{checks:?}");
    assert_eq!(checks[0].status, Status::Fail, "{checks:?}");
    assert!(
        checks[0].found.contains("free (work folder of pool p)"),
        "{:?}",
        checks[0]
    );
    assert_eq!(checks[0].id, format!("disk:{}/work/p", mnt.display()));
}

// ------------------------------------------------------------------------------------------
// GitHub
// ------------------------------------------------------------------------------------------

#[tokio::test]
async fn github_token_accepted_rejected_or_lacking_permission() {
    within(120, async {
        let gh = fake_github::FakeGithub::start(TOKEN).await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        write_token(dir.path(), 0o600);
        let text = format!(
            "[github]\napi_url = \"{}\"\ntoken_file = \"{}/token\"\n[[pool]]\nname = \"p\"\nrepository = \"o/r\"\n[[pool]]\nname = \"q\"\norganization = \"acme\"\n",
            gh.url(),
            dir.path().display()
        );
        let cfg = parse(&text, dir.path());
        let checks = doctor::github::check_github(&cfg, true).await;
        assert_eq!(checks.len(), 2);
        assert!(checks.iter().all(|c| c.status == Status::Pass), "{checks:#?}");

        // GitHub answers 404 to a token that cannot see the organization's runners (a 403
        // from the fake is always a rate limit; 403 is judged in the unit tests).
        let mut rule = fake_github::FaultRule::new(404);
        rule.path_contains = Some("/orgs/acme/".into());
        gh.add_fault(rule);
        let checks = doctor::github::check_github(&cfg, true).await;
        assert_eq!(checks[0].status, Status::Pass);
        assert_eq!(checks[1].status, Status::Fail, "{checks:#?}");
        assert_eq!(checks[1].found, "the classic personal access token may not manage the runners of org acme (GitHub answered 404: Not Found)");
        assert!(checks[1].fix.as_deref().unwrap().contains("Self-hosted runners: write"));

        std::fs::write(dir.path().join("token"), "ghp_wrong").unwrap();
        let checks = doctor::github::check_github(&cfg, true).await;
        assert!(checks.iter().all(|c| c.is_fail() && c.found.starts_with("GitHub rejected the classic personal access token: it is wrong, expired or revoked (GitHub answered 401")), "{checks:#?}");
        gh.shutdown().await;
    })
    .await
}

/// A healthy rootless user (made with `useradd -m`, so with subordinate ids; its own
/// XDG_RUNTIME_DIR; the image in its own storage; host networking) gets no failure from the
/// real binary, and the rootless checks run instead of being skipped.
#[tokio::test]
async fn healthy_rootless_user_has_no_failure() {
    assert!(
        is_root(),
        "this test creates a user: run it as root (CI does)"
    );
    within(400, async {
        const USER: &str = "podrunner-doctor-ok";
        let remove_user = || {
            sh(&format!(
                "for p in $(ps -u {USER} -o pid= 2>/dev/null); do kill $p; done; sleep 0.5; \
                 u=$(id -u {USER} 2>/dev/null) && rm -rf /tmp/podman-run-$u /tmp/containers-user-$u /tmp/storage-run-$u; \
                 userdel -r {USER} 2>/dev/null; true"
            ))
        };
        remove_user();
        let out = sh(&format!(
            "for i in 1 2 3 4 5; do useradd -m -s /bin/sh {USER} && exit 0; sleep 1; done; exit 1"
        ));
        assert!(out.status.success(), "useradd: {out:?}");
        struct Cleanup<F: Fn() -> std::process::Output>(F);
        impl<F: Fn() -> std::process::Output> Drop for Cleanup<F> {
            fn drop(&mut self) {
                (self.0)();
            }
        }
        let _cleanup = Cleanup(remove_user);
        let home = PathBuf::from(format!("/home/{USER}"));
        let run = home.join("xdg-run");
        let prep = sh(&format!(
            "set -e; install -d -m 0700 -o {USER} {run}; \
             podman save {img} | runuser -u {USER} -- env HOME={home} XDG_RUNTIME_DIR={run} podman load",
            run = run.display(),
            img = local_image(),
            home = home.display()
        ));
        assert!(prep.status.success(), "image load: {prep:?}");

        let gh = fake_github::FakeGithub::start(TOKEN).await.unwrap();
        let dir = home.join("pr");
        std::fs::create_dir_all(&dir).unwrap();
        write_token(&dir, 0o600);
        let cfg = dir.join("config.toml");
        let text = config_text(&dir, &gh.url(), local_image(), "[\"--network=host\"]");
        std::fs::write(&cfg, text).unwrap();
        assert!(sh(&format!("chown -R {USER} {}", dir.display())).status.success());
        let out = tokio::time::timeout(
            Duration::from_secs(300),
            tokio::process::Command::new("runuser")
                .args(["-u", USER, "--", "env"])
                .arg(format!("HOME={}", home.display()))
                .arg(format!("XDG_RUNTIME_DIR={}", run.display()))
                .arg(podrunner_bin())
                .args(["--config", cfg.to_str().unwrap(), "doctor", "--json"])
                .current_dir(&home)
                .kill_on_drop(true)
                .output(),
        )
        .await
        .expect("doctor timed out")
        .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let checks: Vec<serde_json::Value> = serde_json::from_str(&stdout)
            .unwrap_or_else(|e| panic!("{e}: {stdout} {}", String::from_utf8_lossy(&out.stderr)));
        let failed: Vec<&serde_json::Value> = checks.iter().filter(|c| c["status"] == "fail").collect();
        assert!(failed.is_empty(), "failures: {failed:#?}");
        assert_eq!(out.status.code(), Some(0));
        assert!(by_id(&checks, "podman")["found"].as_str().unwrap().contains("(rootless)"));
        for id in ["runtime", "newuidmap", "newgidmap", "subuid", "subgid", "xdg-runtime-dir", "network", "token", "github:o/r"] {
            assert_eq!(by_id(&checks, id)["status"], "pass", "{:#?}", by_id(&checks, id));
        }
        gh.shutdown().await;
    })
    .await
}
