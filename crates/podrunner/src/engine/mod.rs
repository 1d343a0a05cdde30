//! Docker for workflows (docs/docker.md): a private Podman API service per runner (`docker =
//! "isolated"`), the user's own Podman socket (`"host"`), or nothing (`"none"`).
//!
//! This file holds the pure parts: where an engine's files live, the arguments of every podman
//! call made for it, the modes of its folders and socket, what a runner container gets mounted,
//! and the API version check. [`service`] is the thin layer that starts, probes and tears down
//! the engine processes. Neither touches the runner containers themselves (manager::exec does).

pub mod budget;
pub mod caps;
pub mod conf;
pub mod externals;
pub mod policy;
pub mod proxy;
pub mod service;

use crate::config::{DockerMode, PodmanConfig};
use std::path::{Path, PathBuf};

/// Folder under the manager's state dir holding one sub-folder per runner engine, by name.
pub const ENGINES_DIR: &str = "engines";
/// Folder under the manager's runtime dir holding one sub-folder per runner engine, by
/// [`short_key`]: Podman refuses a run root longer than [`MAX_RUNROOT`].
pub const ENGINES_RUN_DIR: &str = "e";
/// Podman refuses `--runroot` paths longer than this ("the specified runroot is longer than 50
/// characters": conmon's socket paths inside it must stay under `sun_path`'s limit).
pub const MAX_RUNROOT: usize = 50;
/// The file in an engine's run folder naming its runner (the folder is named by a hash).
pub const NAME_FILE: &str = "runner";
/// Where the runner looks for Docker: actions/runner hard-codes this path for job containers.
pub const DOCKER_SOCK_IN_RUNNER: &str = "/var/run/docker.sock";
/// `DOCKER_HOST` inside the runner, pointing at [`DOCKER_SOCK_IN_RUNNER`].
pub const DOCKER_HOST_IN_RUNNER: &str = "unix:///var/run/docker.sock";
/// A unix socket path must fit `sun_path`: 108 bytes including the terminating NUL.
pub const MAX_SOCKET_PATH: usize = 107;
/// Docker CLI 29, in GitHub's runner image, refuses a server API below this
/// (docs/github-runner.md, the runner image).
pub const DOCKER_CLI_29_API: &str = "1.44";
/// GitHub's official runner image, whatever the tag: it ships Docker CLI 29.
pub const OFFICIAL_IMAGE_REPO: &str = "ghcr.io/actions/actions-runner";

/// Mode of the engine's private folders: only the manager's user may enter them, so the
/// socket inside is reachable on the host by that user alone.
pub const PRIVATE_DIR_MODE: u32 = 0o700;
/// Mode of the engine's socket. The runner's user (uid 1001, group docker 123 in GitHub's image)
/// is a different uid than the socket's owner (root, or in rootless mode a subordinate id
/// different from the mapped owner), and the group ids do not match either, so only "others"
/// bits reach it. Safe because the socket's parent folder is [`PRIVATE_DIR_MODE`]: on the host
/// nobody else can reach the socket, and inside the runner the bind mount makes it reachable
/// without walking the host's folders.
pub const SOCKET_MODE: u32 = 0o666;

/// The files of one runner's engine. `run` is on the runtime dir (tmpfs: socket, run root, pid
/// file); `data` is on the state dir (disk: images, layers, volumes a job creates).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineDirs {
    pub run: PathBuf,
    pub data: PathBuf,
}

impl EngineDirs {
    /// The folders of runner `name`'s engine; refuses a socket path too long for `sun_path`.
    pub fn for_runner(
        runtime_dir: &Path,
        state_dir: &Path,
        name: &str,
    ) -> Result<EngineDirs, String> {
        let d = EngineDirs {
            run: runtime_dir.join(ENGINES_RUN_DIR).join(short_key(name)),
            data: state_dir.join(ENGINES_DIR).join(name),
        };
        let len = d.runroot().as_os_str().len();
        if len > MAX_RUNROOT {
            return Err(format!(
                "the engine run root {} is {len} bytes long; Podman allows at most {MAX_RUNROOT}\n  fix: set a shorter [manager] runtime_dir",
                d.runroot().display()
            ));
        }
        let len = d.socket().as_os_str().len();
        if len > MAX_SOCKET_PATH {
            return Err(format!(
                "the engine socket path {} is {len} bytes long; unix sockets allow at most {MAX_SOCKET_PATH}\n  fix: set a shorter [manager] runtime_dir (or a shorter runner_name)",
                d.socket().display()
            ));
        }
        Ok(d)
    }
    /// The socket mounted into the runner: the Docker API proxy's ([`proxy`]).
    pub fn socket(&self) -> PathBuf {
        self.run.join("docker.sock")
    }
    /// The engine's own socket, reachable only through the proxy (same length as
    /// [`Self::socket`], so the length check covers both).
    pub fn engine_socket(&self) -> PathBuf {
        self.run.join("engine.sock")
    }
    pub fn proxy_pid_file(&self) -> PathBuf {
        self.run.join("proxy.pid")
    }
    pub fn runroot(&self) -> PathBuf {
        self.run.join("rr")
    }
    pub fn name_file(&self) -> PathBuf {
        self.run.join(NAME_FILE)
    }
    /// Podman's `--tmpdir` (per-boot state, events; rootless: the engine's pause process).
    pub fn tmpdir(&self) -> PathBuf {
        self.run.join("tmp")
    }
    pub fn pid_file(&self) -> PathBuf {
        self.run.join("engine.pid")
    }
    /// What a rootful engine sees at [`NETAVARK_RUN_DIR`] (its own mount namespace); a rootless
    /// engine's `XDG_RUNTIME_DIR` (commands/engine_exec.rs).
    pub fn netavark_run(&self) -> PathBuf {
        self.run.join("netavark")
    }
    pub fn root(&self) -> PathBuf {
        self.data.join("root")
    }
    /// Networks a job creates: private to the engine (the default would be the host's
    /// `/etc/containers/networks` when rootful).
    pub fn networks(&self) -> PathBuf {
        self.data.join("networks")
    }
    pub fn containers_conf(&self) -> PathBuf {
        self.data.join("containers.conf")
    }
    pub fn log(&self) -> PathBuf {
        self.data.join("engine.log")
    }
}

/// A short, stable folder name for runner `name`: 10 hex digits of its FNV-1a hash (40 bits;
/// a clash among the runners of one host is beyond likely).
pub fn short_key(name: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{:010x}", h >> 24)
}

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
/// the pool's limits.
pub fn proxy_args(
    d: &EngineDirs,
    pool: &crate::config::PoolConfig,
    work_dir: &Path,
    externals: Option<&Path>,
) -> Vec<String> {
    let mut a = vec![
        "docker-proxy".to_string(),
        format!("--listen={}", d.socket().display()),
        format!("--upstream={}", d.engine_socket().display()),
        format!("--pool={}", pool.name),
    ];
    a.extend(crate::runner::Limits::of(pool).proxy_args());
    // Bind sources the runner names for its job containers (engine/caps.rs, PathMap): the
    // Docker socket, under both names of /var/run, is the runner's own proxy.
    for inside in [DOCKER_SOCK_IN_RUNNER, "/run/docker.sock"] {
        a.push(format!("--map={inside}={}", d.socket().display()));
    }
    if let Some(e) = externals {
        a.push(format!(
            "--map={}={}",
            externals::inside_path(pool),
            e.display()
        ));
    }
    match pool.docker_policy {
        crate::config::DockerPolicy::Open => a.push("--open".into()),
        crate::config::DockerPolicy::Contained => {
            // What a job container may bind: the runner's work folder and what is mapped.
            a.push(format!("--allow={}", work_dir.display()));
            a.push(format!("--allow={}", d.socket().display()));
            if let Some(e) = externals {
                // Later `container:` jobs execute it: read-only for every job.
                a.push(format!("--allow-read-only={}", e.display()));
            }
        }
    }
    a
}

/// The proxy's arguments that let it start engine `d` on first use ([`proxy::Launcher`]):
/// the engine's files, then `--` and the engine's own command line, which is podrunner's
/// `engine-exec` (`exe`) putting `podman SERVICE...` into the network namespace of the runner
/// whose container pid is in `runner_pid_file` ([`in_netns`], docs/docker.md "Networking").
pub fn launcher_args(
    d: &EngineDirs,
    exe: &Path,
    runner_pid_file: &Path,
    podman_path: &str,
    sandbox: &Sandbox,
    service: &[String],
) -> Vec<String> {
    let mut a = vec![
        format!("--engine-conf={}", d.containers_conf().display()),
        format!("--engine-pid-file={}", d.pid_file().display()),
        format!("--engine-log={}", d.log().display()),
        "--".to_string(),
        exe.display().to_string(),
        ENGINE_EXEC.to_string(),
        format!("--runner-pid-file={}", runner_pid_file.display()),
        format!("--netavark-run-dir={}", d.netavark_run().display()),
    ];
    a.extend(
        sandbox
            .hide
            .iter()
            .map(|p| format!("--hide={}", p.display())),
    );
    a.extend(
        sandbox
            .keep
            .iter()
            .map(|p| format!("--keep={}", p.display())),
    );
    a.extend([d.root(), d.runroot()].map(|p| format!("--share={}", p.display())));
    a.extend(["--".to_string(), podman_path.to_string()]);
    a.extend(service.iter().cloned());
    a
}

/// What an engine must not see and what it keeps of that (commands/engine_exec.rs,
/// sys::hide_paths; docs/docker.md, The engine's own sandbox).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sandbox {
    pub hide: Vec<PathBuf>,
    pub keep: Vec<PathBuf>,
}

impl Sandbox {
    /// Runner engine `d`'s: the manager's state and runtime folders (database, logs, control
    /// socket, JIT config folders, other runners' engines) and its credentials files are
    /// covered; the engine keeps its own folders, the externals copies and the runner's work
    /// folder. The host's image store is not the manager's and stays (read-only to it).
    pub fn for_runner(cfg: &crate::config::Config, d: &EngineDirs, work: &Path) -> Sandbox {
        let m = &cfg.manager;
        let mut hide = vec![m.state_dir.clone(), m.runtime_dir.clone()];
        hide.push(cfg.github.token_file.clone());
        hide.extend(cfg.github.app.as_ref().map(|a| a.private_key_file.clone()));
        Sandbox {
            hide,
            keep: vec![
                d.run.clone(),
                d.data.clone(),
                m.state_dir.join(externals::EXTERNALS_DIR),
                work.to_path_buf(),
            ],
        }
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
        (Netns::Of(pid), None) => a.extend(
            [
                "nsenter",
                "--target",
                &pid.to_string(),
                "--net",
                "--mount",
                "--",
            ]
            .map(String::from),
        ),
        (Netns::Of(pid), Some((uid, gid))) => {
            a.extend(
                [
                    "nsenter",
                    "--target",
                    &pid.to_string(),
                    "--user",
                    "--net",
                    "--mount",
                    "--",
                    "env",
                ]
                .map(String::from),
            );
            a.extend(userns_env(uid, gid).map(|(k, v)| format!("{k}={v}")));
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

/// Whether `/proc/PID/cmdline` is the Docker API proxy listening on `socket`.
pub fn is_proxy_cmdline(cmdline: &str, socket: &Path) -> bool {
    let want = format!("--listen={}", socket.display());
    cmdline.contains("docker-proxy") && cmdline.split_whitespace().any(|w| w == want)
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

/// Whether `/proc/PID/cmdline` (NULs as spaces) is the engine serving `socket`, so a pid file
/// never makes podrunner signal a reused pid.
pub fn is_engine_cmdline(cmdline: &str, socket: &Path) -> bool {
    let want = format!("unix://{}", socket.display());
    // The proxy carries the engine's command line after `--`; it is not the engine.
    !cmdline.contains("docker-proxy")
        && cmdline.contains("system service")
        && cmdline.split_whitespace().any(|w| w == want)
}

/// The mount points at or below `dir` in `/proc/self/mountinfo` text, deepest first (the order
/// to unmount them in). Octal escapes (`\040` for a space) are decoded.
pub fn mounts_under(mountinfo: &str, dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = mountinfo
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|m| PathBuf::from(unescape_mount(m)))
        .filter(|m| m.starts_with(dir))
        .collect();
    v.sort_by_key(|m| std::cmp::Reverse(m.components().count()));
    v.dedup();
    v
}

fn unescape_mount(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let n = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(n);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Whether a process's command line refers to one of the engine's folders: its conmon
/// processes, and the OCI runtime of a build step, which leave the service's process group.
pub fn cmdline_in_engine(cmdline: &str, d: &EngineDirs) -> bool {
    let data = format!("{}/", d.data.display());
    let run = format!("{}/", d.run.display());
    cmdline.contains(&data) || cmdline.contains(&run)
}

/// Reads an HTTP answer to `GET /_ping`: `Ok(api version header)` when it is 200.
pub fn parse_ping(resp: &[u8]) -> Result<Option<String>, String> {
    let text = String::from_utf8_lossy(resp);
    let mut lines = text.split("\r\n");
    let status = lines.next().unwrap_or("");
    let code = status.split_whitespace().nth(1).unwrap_or("");
    if code != "200" {
        return Err(format!("the engine answered {status:?}"));
    }
    Ok(lines.take_while(|l| !l.is_empty()).find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case("api-version")
            .then(|| v.trim().to_string())
    }))
}

fn version_parts(v: &str) -> Option<Vec<u64>> {
    let core = v.trim().trim_start_matches('v');
    let core = core.split(['-', '+', '~']).next()?;
    core.split('.').map(|p| p.parse().ok()).collect()
}

/// Whether a Docker API version `podman_api` (e.g. "1.41") is at least `needed` ("1.44").
/// Unreadable versions are not ok.
pub fn api_version_ok(podman_api: &str, needed: &str) -> bool {
    match (version_parts(podman_api), version_parts(needed)) {
        (Some(mut a), Some(mut b)) => {
            let n = a.len().max(b.len());
            a.resize(n, 0);
            b.resize(n, 0);
            a >= b
        }
        _ => false,
    }
}

/// The Docker API version Podman `version` (e.g. "4.3.1") serves: 1.41 up to 5.7, 1.44 from
/// 5.8 (docs/github-runner.md). `podman version` itself prints the libpod API version, which is
/// the Podman version, not this.
pub fn docker_api_of_podman(version: &str) -> &'static str {
    if api_version_ok(version, "5.8") {
        DOCKER_CLI_29_API
    } else {
        "1.41"
    }
}

/// GitHub's official runner image (any tag or digest), which ships Docker CLI 29.
pub fn is_official_image(image: &str) -> bool {
    let repo = image.split('@').next().unwrap_or(image);
    let repo = match repo.rsplit_once(':') {
        Some((r, tag)) if !tag.contains('/') => r,
        _ => repo,
    };
    repo == OFFICIAL_IMAGE_REPO || repo == format!("docker.io/{OFFICIAL_IMAGE_REPO}")
}

/// The warning for a pool whose image's Docker CLI cannot talk to this Podman, if any. An
/// isolated pool's jobs talk to the runner's proxy, which speaks API 1.44 whatever the engine
/// serves ([`proxy::version`]); only `host` mode hands jobs Podman's own API.
pub fn api_warning(
    pool: &str,
    image: &str,
    mode: DockerMode,
    podman_version: &str,
) -> Option<String> {
    if mode != DockerMode::Host || !is_official_image(image) {
        return None;
    }
    let api = docker_api_of_podman(podman_version);
    if api_version_ok(api, DOCKER_CLI_29_API) {
        return None;
    }
    Some(format!(
        "pool {pool}: Podman {podman_version} serves Docker API {api}, but the Docker CLI 29 in {image} needs {DOCKER_CLI_29_API}: `docker` in jobs will fail (\"client version 1.52 is too new\")\n  fix: install Podman 5.8 or newer, use docker = \"isolated\" (its proxy speaks 1.44), or use an image with a Docker CLI older than 29 (set image = in the pool)"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

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
            e.contains("is 51 bytes long; Podman allows at most 50"),
            "{e}"
        );
        assert!(
            e.contains("fix: set a shorter [manager] runtime_dir"),
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
        );
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
            ]
        );
        let service = service_args(&pc(Some("runc"), &[]), &dirs(), &store());
        let l = launcher_args(
            &dirs(),
            Path::new("/usr/bin/podrunner"),
            Path::new("/var/lib/pr/pids/ci-0a1b2c3d"),
            "/usr/bin/podman",
            &Sandbox::default(),
            &service,
        );
        assert_eq!(
            l[..12],
            [
                "--engine-conf=/var/lib/pr/engines/ci-0a1b2c3d/containers.conf",
                "--engine-pid-file=/run/pr/e/0ee801953a/engine.pid",
                "--engine-log=/var/lib/pr/engines/ci-0a1b2c3d/engine.log",
                "--",
                "/usr/bin/podrunner",
                "engine-exec",
                "--runner-pid-file=/var/lib/pr/pids/ci-0a1b2c3d",
                "--netavark-run-dir=/run/pr/e/0ee801953a/netavark",
                "--share=/var/lib/pr/engines/ci-0a1b2c3d/root",
                "--share=/run/pr/e/0ee801953a/rr",
                "--",
                "/usr/bin/podman",
            ]
        );
        assert_eq!(l[12..], service[..]);
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
        assert_eq!(parse_ping(ok), Ok(Some("1.41".to_string())));
        assert_eq!(parse_ping(b"HTTP/1.0 200 OK\r\n\r\nOK"), Ok(None));
        assert_eq!(
            parse_ping(b"HTTP/1.1 500 Internal Server Error\r\n\r\n"),
            Err("the engine answered \"HTTP/1.1 500 Internal Server Error\"".to_string())
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
}
