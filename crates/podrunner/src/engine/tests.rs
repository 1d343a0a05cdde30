use super::*;
use crate::config::{DockerMode, PodmanConfig};
use std::path::{Path, PathBuf};

fn pc(runtime: Option<&str>, global: &[&str]) -> PodmanConfig {
    PodmanConfig {
        path: "podman".into(),
        runtime: runtime.map(str::to_string),
        global_args: global.iter().map(|s| s.to_string()).collect(),
        run_args: vec![],
    }
}

fn dirs_named(n: &str) -> EngineDirs {
    EngineDirs::for_runner(Path::new("/run/pr"), Path::new("/var/lib/pr"), n).unwrap()
}

fn dirs() -> EngineDirs {
    EngineDirs::for_runner(
        Path::new("/run/pr"),
        Path::new("/var/lib/pr"),
        "ci-0a1b2c3d",
    )
    .unwrap()
}

fn store() -> HostStore {
    HostStore {
        graph_root: "/var/lib/containers/storage".into(),
        driver: "overlay".into(),
        mount_program: None,
        budget: None,
    }
}

#[test]
fn paths() {
    let d = dirs();
    let k = short_key("ci-0a1b2c3d");
    assert_eq!(k.len(), 10);
    assert_eq!(k, short_key("ci-0a1b2c3d"));
    assert_ne!(k, short_key("ci-0a1b2c3e"));
    assert_eq!(short_key(""), "cbf29ce484");
    assert_eq!(d.run, PathBuf::from(format!("/run/pr/e/{k}")));
    assert_eq!(d.data, PathBuf::from("/var/lib/pr/engines/ci-0a1b2c3d"));
    assert_eq!(
        d.socket(),
        PathBuf::from(format!("/run/pr/e/{k}/docker.sock"))
    );
    assert_eq!(d.runroot(), PathBuf::from(format!("/run/pr/e/{k}/rr")));
    assert_eq!(
        d.pid_file(),
        PathBuf::from(format!("/run/pr/e/{k}/engine.pid"))
    );
    assert_eq!(
        d.name_file(),
        PathBuf::from(format!("/run/pr/e/{k}/runner"))
    );
    assert_eq!(
        d.root(),
        PathBuf::from("/var/lib/pr/engines/ci-0a1b2c3d/root")
    );
    // A run root of 50 bytes is accepted, 51 are not.
    let fits = "/".to_string() + &"r".repeat(50 - "/e/0123456789/rr".len() - 1);
    let d = EngineDirs::for_runner(Path::new(&fits), Path::new("/s"), "n").unwrap();
    assert_eq!(d.runroot().as_os_str().len(), 50);
    let e = EngineDirs::for_runner(Path::new(&(fits + "x")), Path::new("/s"), "n").unwrap_err();
    assert!(
        e.to_string()
            .contains("is 51 bytes long; Podman allows at most 50"),
        "{e}"
    );
    assert!(
        e.to_string()
            .contains("fix: set a shorter [manager] runtime_dir"),
        "{e}"
    );
    // The defaults fit: root, and rootless with XDG_RUNTIME_DIR.
    for rt in ["/run/podrunner", "/run/user/1000000/podrunner"] {
        assert!(EngineDirs::for_runner(Path::new(rt), Path::new("/s"), "n").is_ok());
    }
}

#[test]
fn service_arguments_exact() {
    let a = service_args(
        &pc(Some("runc"), &["--cgroup-manager=cgroupfs"]),
        &dirs(),
        &store(),
    );
    assert_eq!(
        a,
        vec![
            "--runtime=runc",
            "--cgroup-manager=cgroupfs",
            "--root=/var/lib/pr/engines/ci-0a1b2c3d/root",
            "--runroot=/run/pr/e/0ee801953a/rr",
            "--tmpdir=/run/pr/e/0ee801953a/tmp",
            "--network-config-dir=/var/lib/pr/engines/ci-0a1b2c3d/networks",
            "--storage-driver=overlay",
            "--storage-opt=additionalimagestore=/var/lib/containers/storage",
            "system",
            "service",
            "--time=0",
            "unix:///run/pr/e/0ee801953a/engine.sock",
        ]
    );
}

#[test]
fn proxy_arguments_exact() {
    let pool = crate::config::test_pool(
        "[[pool]]\nname = \"p\"\nrepository = \"o/r\"\ncpus = 1.5\nmemory = \"256m\"\npids_limit = 300\n",
    );
    let a = proxy_args(
        &dirs(),
        &pool,
        Path::new("/w/ci-0a1b2c3d"),
        Some(Path::new("/var/lib/pr/externals/abc")),
    )
    .to_argv();
    assert_eq!(
        a,
        vec![
            "docker-proxy",
            "--listen=/run/pr/e/0ee801953a/docker.sock",
            "--upstream=/run/pr/e/0ee801953a/engine.sock",
            "--pool=p",
            "--pids=300",
            "--memory=268435456",
            "--cpus=1.5",
            "--map=/var/run/docker.sock=/run/pr/e/0ee801953a/docker.sock",
            "--map=/run/docker.sock=/run/pr/e/0ee801953a/docker.sock",
            "--map=/home/runner/externals=/var/lib/pr/externals/abc",
            "--allow=/w/ci-0a1b2c3d",
            "--allow=/run/pr/e/0ee801953a/docker.sock",
            "--allow-read-only=/var/lib/pr/externals/abc",
            "--pin-dir=/run/pr/e/0ee801953a/pins",
            "--pin-within=/w/ci-0a1b2c3d",
        ]
    );
    let service = service_args(&pc(Some("runc"), &[]), &dirs(), &store());
    let l = launcher_args(
        &dirs(),
        Path::new("/usr/bin/podrunner"),
        Path::new("/var/lib/pr/pids/ci-0a1b2c3d"),
        "/usr/bin/podman",
        &Sandbox {
            keep: vec!["/w".into()],
            read_only: vec!["/var/lib/containers/storage".into()],
        },
        &service,
    )
    .to_argv();
    assert_eq!(
        l[..17],
        [
            "--engine-conf=/var/lib/pr/engines/ci-0a1b2c3d/containers.conf",
            "--engine-pid-file=/run/pr/e/0ee801953a/engine.pid",
            "--engine-log=/var/lib/pr/engines/ci-0a1b2c3d/engine.log",
            "--",
            "/usr/bin/podrunner",
            "engine-exec",
            "--runner-pid-file=/var/lib/pr/pids/ci-0a1b2c3d",
            "--netavark-run-dir=/run/pr/e/0ee801953a/netavark",
            "--new-root=/run/pr/e/0ee801953a/fs",
            "--scratch=/var/lib/pr/engines/ci-0a1b2c3d/tmp",
            "--keep=/w",
            "--keep-read-only=/var/lib/containers/storage",
            "--share=/var/lib/pr/engines/ci-0a1b2c3d/root",
            "--share=/run/pr/e/0ee801953a/rr",
            "--share=/run/pr/e/0ee801953a/pins",
            "--",
            "/usr/bin/podman",
        ]
    );
    assert_eq!(l[17..], service[..]);
    // engine-exec, before it becomes the engine, counts as the engine (its pid file).
    assert!(is_engine_cmdline(
        &l[4..].join(" "),
        &dirs().engine_socket()
    ));
    let line = format!("/usr/bin/podrunner {} {}", a.join(" "), l.join(" "));
    // The proxy carries the engine's command line but is not the engine.
    assert!(!is_engine_cmdline(&line, &dirs().engine_socket()));
    assert!(is_engine_cmdline(
        &format!("/usr/bin/podman {}", service.join(" ")),
        &dirs().engine_socket()
    ));
    assert!(is_proxy_cmdline(&line, &dirs().socket()));
    assert!(!is_proxy_cmdline(&line, &dirs_named("other").socket()));
    assert!(!is_engine_cmdline(&line, &dirs().engine_socket()));
}

#[test]
fn own_store_never_names_the_host_store() {
    let mut s = store();
    s.mount_program = Some("/usr/bin/fuse-overlayfs".into());
    let a = engine_args(&pc(None, &[]), &dirs(), &s, Store::Own);
    assert_eq!(
        a,
        vec![
            "--root=/var/lib/pr/engines/ci-0a1b2c3d/root",
            "--runroot=/run/pr/e/0ee801953a/rr",
            "--tmpdir=/run/pr/e/0ee801953a/tmp",
            "--network-config-dir=/var/lib/pr/engines/ci-0a1b2c3d/networks",
            "--storage-driver=overlay",
            "--storage-opt=overlay.mount_program=/usr/bin/fuse-overlayfs",
        ]
    );
    let shared = engine_args(&pc(None, &[]), &dirs(), &s, Store::Shared);
    assert_eq!(
        shared.last().unwrap(),
        "--storage-opt=additionalimagestore=/var/lib/containers/storage"
    );
    // vfs cannot lend its images: the engine keeps its own store only.
    let vfs = HostStore {
        graph_root: "/home/u/.local/share/containers/storage".into(),
        driver: "vfs".into(),
        mount_program: None,
        budget: None,
    };
    assert!(!vfs.shareable());
    assert_eq!(
        engine_args(&pc(None, &[]), &dirs(), &vfs, Store::Shared)
            .last()
            .unwrap(),
        "--storage-driver=vfs"
    );
}

#[test]
fn runner_mounts_per_mode() {
    let sock = Path::new("/run/pr/engines/r/docker.sock");
    assert_eq!(
        runner_args(DockerMode::Isolated, Some(sock)),
        vec![
            "-v",
            "/run/pr/engines/r/docker.sock:/var/run/docker.sock",
            "-e",
            "DOCKER_HOST=unix:///var/run/docker.sock"
        ]
    );
    assert_eq!(
        runner_args(DockerMode::Host, Some(Path::new("/run/podman/podman.sock"))),
        vec![
            "-v",
            "/run/podman/podman.sock:/var/run/docker.sock",
            "-e",
            "DOCKER_HOST=unix:///var/run/docker.sock",
            "--group-add=0"
        ]
    );
    assert!(runner_args(DockerMode::None, Some(sock)).is_empty());
    assert!(runner_args(DockerMode::None, None).is_empty());
}

#[test]
fn socket_permissions() {
    // The socket is open to the runner's uid; the folder keeps everyone else out.
    assert_eq!(SOCKET_MODE & 0o006, 0o006);
    assert_eq!(SOCKET_MODE & 0o111, 0);
    assert_eq!(PRIVATE_DIR_MODE, 0o700);
}

#[test]
fn host_socket_paths() {
    assert_eq!(
        host_socket(0, None),
        PathBuf::from("/run/podman/podman.sock")
    );
    assert_eq!(
        host_socket(1000, Some(Path::new("/run/user/1000"))),
        PathBuf::from("/run/user/1000/podman/podman.sock")
    );
    assert_eq!(
        host_socket(1001, None),
        PathBuf::from("/run/user/1001/podman/podman.sock")
    );
    assert_eq!(
        host_socket_missing(Path::new("/run/user/1000/podman/podman.sock"), 1000),
        "docker = \"host\" needs the Podman socket /run/user/1000/podman/podman.sock, which does not exist\n  fix: systemctl --user enable --now podman.socket (or set docker = \"isolated\")"
    );
}

#[test]
fn commands_in_the_runners_network_namespace() {
    let cmd: Vec<String> = ["/usr/bin/podman", "--root=/r", "rm", "--all"]
        .map(String::from)
        .to_vec();
    let tail = ["/usr/bin/podman", "--root=/r", "rm", "--all"];
    let rootful = in_netns(&cmd, Netns::Of(42), None);
    assert_eq!(
        rootful[..6],
        ["nsenter", "--target", "42", "--net", "--mount", "--"]
    );
    assert_eq!(rootful[6..], tail);
    // A sandboxed engine's own pid namespace too (its root's /proc is that namespace's).
    assert_eq!(
        in_netns(&cmd, Netns::InSandbox(42), None)[..7],
        ["nsenter", "--target", "42", "--net", "--mount", "--pid", "--"]
    );
    assert_eq!(
        in_netns(&cmd, Netns::InSandbox(42), Some((1002, 1003)))[..9],
        ["nsenter", "--target", "42", "--user", "--net", "--mount", "--pid", "--", "env"]
    );
    let rootless = in_netns(&cmd, Netns::Of(42), Some((1002, 1003)));
    assert_eq!(
        rootless[..12],
        [
            "nsenter",
            "--target",
            "42",
            "--user",
            "--net",
            "--mount",
            "--",
            "env",
            "_CONTAINERS_USERNS_CONFIGURED=done",
            "_CONTAINERS_ROOTLESS_UID=1002",
            "_CONTAINERS_ROOTLESS_GID=1003",
            "/usr/bin/podman"
        ]
    );
    assert_eq!(rootless[11..], tail);
    assert_eq!(
        in_netns(&cmd, Netns::Fresh, None)[..4],
        ["unshare", "--net", "--mount", "--"]
    );
    assert_eq!(
        in_netns(&cmd, Netns::Fresh, Some((1002, 1002)))[..5],
        ["/usr/bin/podman", "unshare", "unshare", "--net", "--"]
    );
    assert_eq!(in_netns(&cmd, Netns::Current, None), cmd);
    assert_eq!(in_netns(&cmd, Netns::Current, Some((1002, 1002))), cmd);
}

#[test]
fn engine_cmdline_recognised() {
    let sock = Path::new("/run/pr/engines/r/docker.sock");
    assert!(is_engine_cmdline(
        "podman --root=/x system service --time=0 unix:///run/pr/engines/r/docker.sock ",
        sock
    ));
    assert!(!is_engine_cmdline(
        "podman system service --time=0 unix:///run/pr/engines/r/docker.sock2",
        sock
    ));
    assert!(!is_engine_cmdline("sleep 100", sock));
}

#[test]
fn mounts_below_a_folder_deepest_first() {
    let mi = "22 1 254:0 / / rw - ext4 /dev/vda rw
300 22 254:0 /x /var/lib/pr/engines/r/root/overlay rw - ext4 /dev/vda rw
301 300 0:5 / /var/lib/pr/engines/r/root/overlay/abc/merged rw - overlay overlay rw
302 22 0:6 / /var/lib/pr/engines/r/root/overlay-containers/c/userdata/shm rw - tmpfs shm rw
303 22 0:7 / /var/lib/pr/engines/r2/root/overlay rw - ext4 /dev/vda rw
304 22 0:8 / /var/lib/pr/engines/r/with\\040space rw - tmpfs t rw
";
    let d = dirs_named("r");
    assert_eq!(
        mounts_under(mi, &d.data),
        vec![
            PathBuf::from("/var/lib/pr/engines/r/root/overlay-containers/c/userdata/shm"),
            PathBuf::from("/var/lib/pr/engines/r/root/overlay/abc/merged"),
            PathBuf::from("/var/lib/pr/engines/r/root/overlay"),
            PathBuf::from("/var/lib/pr/engines/r/with space"),
        ]
    );
    assert!(mounts_under(mi, Path::new("/nothing")).is_empty());
}

#[test]
fn engine_processes_recognised() {
    let d = dirs_named("r");
    let k = short_key("r");
    assert!(cmdline_in_engine(
        "/usr/bin/conmon --api-version 1 -b /var/lib/pr/engines/r/root/overlay-containers/x/userdata",
        &d
    ));
    assert!(cmdline_in_engine(
        &format!("/usr/bin/runc --root /run/pr/e/{k}/rr/runc run x"),
        &d
    ));
    assert!(!cmdline_in_engine(
        "/usr/bin/conmon -b /var/lib/pr/engines/r2/root/overlay-containers/x",
        &d
    ));
    assert!(!cmdline_in_engine("sleep 1000", &d));
}

#[test]
fn ping_answers() {
    let ok = b"HTTP/1.1 200 OK\r\nApi-Version: 1.41\r\nLibpod-Api-Version: 4.3.1\r\n\r\nOK";
    assert_eq!(parse_ping(ok).unwrap(), Some("1.41".to_string()));
    assert_eq!(parse_ping(b"HTTP/1.0 200 OK\r\n\r\nOK").unwrap(), None);
    assert_eq!(
        parse_ping(b"HTTP/1.1 500 Internal Server Error\r\n\r\n")
            .unwrap_err()
            .to_string(),
        "the engine answered \"HTTP/1.1 500 Internal Server Error\""
    );
    assert!(parse_ping(b"").is_err());
}

#[test]
fn api_versions() {
    assert!(!api_version_ok("1.41", "1.44"));
    assert!(api_version_ok("1.44", "1.44"));
    assert!(api_version_ok("1.45", "1.44"));
    assert!(api_version_ok("2.0", "1.44"));
    assert!(!api_version_ok("1.9", "1.44"));
    assert!(api_version_ok("1.44.0", "1.44"));
    assert!(!api_version_ok("", "1.44"));
    assert!(!api_version_ok("junk", "1.44"));
    assert_eq!(docker_api_of_podman("4.3.1"), "1.41");
    assert_eq!(docker_api_of_podman("5.7.9"), "1.41");
    assert_eq!(docker_api_of_podman("5.8.0"), "1.44");
    assert_eq!(docker_api_of_podman("5.8.0-dev"), "1.44");
    assert_eq!(docker_api_of_podman("6.0"), "1.44");
}

#[test]
fn official_image_and_warning() {
    assert!(is_official_image("ghcr.io/actions/actions-runner:latest"));
    assert!(is_official_image("ghcr.io/actions/actions-runner"));
    assert!(is_official_image(
        "ghcr.io/actions/actions-runner@sha256:0123"
    ));
    assert!(!is_official_image("localhost/podrunner-test-runner:latest"));
    assert!(!is_official_image("ghcr.io/actions/actions-runner-old:2"));
    let w = api_warning(
        "ci",
        "ghcr.io/actions/actions-runner:latest",
        DockerMode::Host,
        "4.3.1",
    )
    .unwrap();
    // Isolated pools talk to the proxy, which speaks 1.44 on any Podman.
    assert_eq!(
        api_warning(
            "ci",
            "ghcr.io/actions/actions-runner:latest",
            DockerMode::Isolated,
            "4.3.1"
        ),
        None
    );
    assert_eq!(w, "pool ci: Podman 4.3.1 serves Docker API 1.41, but the Docker CLI 29 in ghcr.io/actions/actions-runner:latest needs 1.44: `docker` in jobs will fail (\"client version 1.52 is too new\")\n  fix: install Podman 5.8 or newer, use docker = \"isolated\" (its proxy speaks 1.44), or use an image with a Docker CLI older than 29 (set image = in the pool)");
    assert_eq!(
        api_warning(
            "ci",
            "ghcr.io/actions/actions-runner:latest",
            DockerMode::None,
            "4.3.1"
        ),
        None
    );
    assert_eq!(
        api_warning(
            "ci",
            "ghcr.io/actions/actions-runner:latest",
            DockerMode::Host,
            "5.8.0"
        ),
        None
    );
    assert_eq!(
        api_warning("ci", "localhost/x:1", DockerMode::Isolated, "4.3.1"),
        None
    );
}
