//! The arguments of every podman call made for a runner's engine, of its proxy, and what the
//! runner's container gets for its pool's docker mode. Pure.

use super::sandbox::Sandbox;
use super::{budget, externals, EngineDirs, DOCKER_HOST_IN_RUNNER, DOCKER_SOCK_IN_RUNNER};
use crate::config::{DockerMode, PodmanConfig};
use crate::proxy::args::{LaunchArgs, ProxyArgs};
use std::path::{Path, PathBuf};

/// What the engines need to know about the host's image store, read once per manager from
/// `podman info`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostStore {
    pub graph_root: String,
    pub driver: String,
    /// `overlay.mount_program` (fuse-overlayfs): a `--storage-opt` replaces storage.conf's
    /// options, so it has to be passed again.
    pub mount_program: Option<String>,
    /// Where per-runner cgroup budgets work on this host ([`budget`]).
    pub budget: Option<budget::Layout>,
}

impl HostStore {
    /// Whether engines can use it as an additional image store: the vfs driver cannot (Podman:
    /// "vfs driver does not support additionalimagestore options"), so on a vfs host every
    /// engine starts empty and jobs pull their images (docs/docker.md).
    pub fn shareable(&self) -> bool {
        !self.graph_root.is_empty() && self.driver != "vfs"
    }
}

/// Which store options an engine call carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Store {
    /// With the host's images as a read-only additional store (the service, `rm`).
    Shared,
    /// The engine's own store alone: `system reset` must never see the host's images.
    Own,
}

/// Global podman arguments selecting runner engine `d`: the config's runtime and global
/// arguments first (podman takes the last of a repeated flag, so ours win).
pub fn engine_args(
    podman: &PodmanConfig,
    d: &EngineDirs,
    host: &HostStore,
    store: Store,
) -> Vec<String> {
    let mut a = Vec::new();
    if let Some(r) = &podman.runtime {
        a.push(format!("--runtime={r}"));
    }
    a.extend(podman.global_args.iter().cloned());
    for (flag, p) in [
        ("--root", d.root()),
        ("--runroot", d.runroot()),
        ("--tmpdir", d.tmpdir()),
        ("--network-config-dir", d.networks()),
    ] {
        a.push(format!("{flag}={}", p.display()));
    }
    if !host.driver.is_empty() {
        a.push(format!("--storage-driver={}", host.driver));
    }
    if let Some(m) = &host.mount_program {
        a.push(format!("--storage-opt=overlay.mount_program={m}"));
    }
    if store == Store::Shared && host.shareable() {
        a.push(format!(
            "--storage-opt=additionalimagestore={}",
            host.graph_root
        ));
    }
    a
}

/// The engine itself: `podman ... system service --time=0 unix://SOCKET`.
pub fn service_args(podman: &PodmanConfig, d: &EngineDirs, host: &HostStore) -> Vec<String> {
    let mut a = engine_args(podman, d, host, Store::Shared);
    a.extend([
        "system".to_string(),
        "service".into(),
        "--time=0".into(),
        format!("unix://{}", d.engine_socket().display()),
    ]);
    a
}

/// The arguments of `podrunner docker-proxy` for runner engine `d`, holding job containers to
/// the pool's limits (without the self-update copy, the budget and the launcher: the caller
/// adds those).
pub fn proxy_args(
    d: &EngineDirs,
    pool: &crate::config::PoolConfig,
    work_dir: &Path,
    externals: Option<&Path>,
) -> ProxyArgs {
    let mut a = ProxyArgs::new(
        d.socket(),
        d.engine_socket(),
        crate::runner::Limits::of(pool),
    );
    a.pool = Some(pool.name.to_string());
    // Bind sources the runner names for its job containers (proxy/policy/caps.rs, PathMap): the
    // Docker socket, under both names of /var/run, is the runner's own proxy.
    for inside in [DOCKER_SOCK_IN_RUNNER, "/run/docker.sock"] {
        a.maps.push(format!("{inside}={}", d.socket().display()));
    }
    if let Some(e) = externals {
        a.maps
            .push(format!("{}={}", externals::inside_path(pool), e.display()));
    }
    match pool.docker_policy {
        crate::config::DockerPolicy::Open => a.open = true,
        crate::config::DockerPolicy::Contained => {
            // What a job container may bind: the runner's work folder and what is mapped.
            a.allowed.push(work_dir.to_path_buf());
            a.allowed.push(d.socket());
            // Sources in the work folder are mounted by descriptor (proxy::pin).
            a.pins.pin_dir = Some(d.pins());
            a.pins.pin_within.push(work_dir.to_path_buf());
            if let Some(e) = externals {
                // Later `container:` jobs execute it: read-only for every job.
                a.read_only.push(e.to_path_buf());
            }
        }
    }
    a
}

/// The proxy's arguments that let it start engine `d` on first use
/// ([`crate::engine::launch`]): the engine's files, and the engine's own command line, which is
/// podrunner's `engine-exec` (`exe`) putting `podman SERVICE...` into the network namespace of
/// the runner whose container pid is in `runner_pid_file` ([`in_netns`], docs/docker.md
/// "Networking").
pub fn launcher_args(
    d: &EngineDirs,
    exe: &Path,
    runner_pid_file: &Path,
    podman_path: &str,
    sandbox: &Sandbox,
    service: &[String],
) -> LaunchArgs {
    let mut engine = vec![
        exe.display().to_string(),
        ENGINE_EXEC.to_string(),
        format!("--runner-pid-file={}", runner_pid_file.display()),
        format!("--netavark-run-dir={}", d.netavark_run().display()),
    ];
    engine.extend([
        format!("--new-root={}", d.new_root().display()),
        format!("--scratch={}", d.scratch().display()),
    ]);
    engine.extend(
        sandbox
            .keep
            .iter()
            .map(|p| format!("--keep={}", p.display())),
    );
    engine.extend(
        sandbox
            .read_only
            .iter()
            .map(|p| format!("--keep-read-only={}", p.display())),
    );
    // Rootless: what the engine mounts after it started must reach every thread's mount
    // namespace (sys::share_mounts): its storage, run root and pins (proxy::pin).
    engine.extend([d.root(), d.runroot(), d.pins()].map(|p| format!("--share={}", p.display())));
    engine.extend(["--".to_string(), podman_path.to_string()]);
    engine.extend(service.iter().cloned());
    LaunchArgs {
        engine_conf: Some(d.containers_conf()),
        engine_pid_file: Some(d.pid_file()),
        engine_log: Some(d.log()),
        engine,
    }
}

/// Where rootful Podman keeps netavark's address allocations and aardvark-dns's records: one
/// folder for every rootful Podman of the host (containers/common: they share the host's
/// network namespace). Engines in their runners' namespaces must not share it, or one engine's
/// DNS server answers (or fails to answer) for another's networks: each rootful engine gets
/// its own folder mounted there, in a mount namespace of its own.
pub const NETAVARK_RUN_DIR: &str = "/run/containers/networks";

/// podrunner's hidden subcommand that starts an engine in its runner's network namespace
/// (commands/engine_exec.rs).
pub const ENGINE_EXEC: &str = "engine-exec";

/// The namespaces a command about an engine runs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Netns {
    /// The caller's own.
    Current,
    /// Those of the engine's process `pid`: its network namespace (the runner's), its own
    /// mount namespace ([`NETAVARK_RUN_DIR`]) and, rootless, the user namespace owning the
    /// runner's network namespace.
    Of(i32),
    /// Those of process `pid` inside a sandboxed engine (engine::sandbox): as [`Netns::Of`],
    /// and its pid namespace, whose `/proc` is the one in the engine's root (Podman reads
    /// `/proc/self`, which names nothing for a process outside that namespace).
    InSandbox(i32),
    /// A new, empty network namespace: for tearing down an engine whose namespace is gone, so
    /// that nothing it removes can be the host's.
    Fresh,
}

/// The variables that tell a rootless Podman it already runs as root in the user's user
/// namespace (made by the user's own Podman, joined by podrunner), so that it does not make or
/// join one itself: what `podman unshare` sets for the commands it runs (Podman's
/// pkg/rootless). `uid` and `gid` are the user's ids on the host.
pub fn userns_env(uid: u32, gid: u32) -> [(&'static str, String); 3] {
    [
        ("_CONTAINERS_USERNS_CONFIGURED", "done".to_string()),
        ("_CONTAINERS_ROOTLESS_UID", uid.to_string()),
        ("_CONTAINERS_ROOTLESS_GID", gid.to_string()),
    ]
}

/// `cmd` (a podman command line, program first) run in the namespaces `ns`; `rootless` holds
/// the user's uid and gid when podrunner is rootless. Rootful: `nsenter --target PID --net
/// --mount -- cmd`. Rootless, an engine in its runner's network namespace runs in the user
/// namespace that owns it (commands/engine_exec.rs): `nsenter --target PID --user --net
/// --mount -- env VARS cmd` ([`userns_env`]); nsenter, run by the user who made that user
/// namespace, enters it first and becomes root there.
pub fn in_netns(cmd: &[String], ns: Netns, rootless: Option<(u32, u32)>) -> Vec<String> {
    let mut a = Vec::new();
    match (ns, rootless) {
        (Netns::Current, _) => {}
        (Netns::Of(pid) | Netns::InSandbox(pid), _) => {
            a.extend(["nsenter".to_string(), "--target".into(), pid.to_string()]);
            if rootless.is_some() {
                a.push("--user".into());
            }
            a.extend(["--net".to_string(), "--mount".into()]);
            if matches!(ns, Netns::InSandbox(_)) {
                a.push("--pid".into());
            }
            a.push("--".into());
            if let Some((uid, gid)) = rootless {
                a.push("env".into());
                a.extend(userns_env(uid, gid).map(|(k, v)| format!("{k}={v}")));
            }
        }
        (Netns::Fresh, None) => {
            a.extend(["unshare", "--net", "--mount", "--"].map(String::from));
        }
        (Netns::Fresh, Some(_)) => {
            if let Some(podman) = cmd.first() {
                a.extend([podman.clone(), "unshare".into()]);
            }
            a.extend(["unshare", "--net", "--"].map(String::from));
        }
    }
    a.extend(cmd.iter().cloned());
    a
}

/// What `podman run` of a runner gets for its pool's docker mode: the socket at
/// [`DOCKER_SOCK_IN_RUNNER`] and `DOCKER_HOST`. `none` gets nothing: the image's docker CLI
/// then says "Cannot connect to the Docker daemon at unix:///var/run/docker.sock", and an image
/// that brings its own daemon keeps working.
pub fn runner_args(mode: DockerMode, socket: Option<&Path>) -> Vec<String> {
    let Some(sock) = socket.filter(|_| mode != DockerMode::None) else {
        return Vec::new();
    };
    let mut a = vec![
        "-v".to_string(),
        format!("{}:{DOCKER_SOCK_IN_RUNNER}", sock.display()),
        "-e".into(),
        format!("DOCKER_HOST={DOCKER_HOST_IN_RUNNER}"),
    ];
    if mode == DockerMode::Host {
        // The user's socket is 0660 (podman.socket's SocketMode), owned by root or by the
        // user, who is root inside a rootless container: group 0 reaches it.
        a.push("--group-add=0".into());
    }
    a
}

/// The user's own Podman socket (`docker = "host"`).
pub fn host_socket(uid: u32, xdg_runtime_dir: Option<&Path>) -> PathBuf {
    if uid == 0 {
        return PathBuf::from("/run/podman/podman.sock");
    }
    match xdg_runtime_dir {
        Some(d) => d.join("podman/podman.sock"),
        None => PathBuf::from(format!("/run/user/{uid}/podman/podman.sock")),
    }
}

/// The error when the host socket is missing, with the fix.
pub fn host_socket_missing(sock: &Path, uid: u32) -> String {
    let fix = if uid == 0 {
        "systemctl enable --now podman.socket"
    } else {
        "systemctl --user enable --now podman.socket"
    };
    format!(
        "docker = \"host\" needs the Podman socket {}, which does not exist\n  fix: {fix} (or set docker = \"isolated\")",
        sock.display()
    )
}
