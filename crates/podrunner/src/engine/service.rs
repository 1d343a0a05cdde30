//! The process side of [`crate::engine`]: starts a runner's engine detached (it must outlive a
//! manager restart, since adopted runners keep using it), waits until its socket answers, and
//! tears it down with everything it held. Every podman call goes through [`crate::cmd`].

use super::error::{EngineError, TeardownError, WaitError};
use super::process::{
    alive, kill, live_pid, ns_of, pgrp, procs, read_pid, running_engine, terminate_group, wait_for,
};
use super::{
    cmdline_in_engine, engine_args, host_socket, host_socket_missing, in_netns, is_proxy_cmdline,
    launcher_args, mounts_under, proxy_args, runner_args, service_args, EngineDirs, HostStore,
    Netns, Store, ENGINES_DIR, ENGINES_RUN_DIR, NAME_FILE, PRIVATE_DIR_MODE, SOCKET_MODE,
};
use crate::cmd;
use crate::config::{Config, DockerMode, PoolConfig};
use crate::podman::{Podman, QUICK_TIMEOUT};
use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// The service exits well within a second of SIGTERM once its containers are gone; after this
/// it gets SIGKILL.
pub const STOP_GRACE: Duration = Duration::from_secs(5);
/// `rm --all` and `system reset`: like other short podman calls, slow only on a loaded host.
const ADMIN_TIMEOUT: Duration = QUICK_TIMEOUT;

static HOST_STORE: tokio::sync::OnceCell<HostStore> = tokio::sync::OnceCell::const_new();

/// The host's image store, read once per manager (`podman info`).
pub async fn host_store(podman: &Podman) -> Result<HostStore, EngineError> {
    HOST_STORE
        .get_or_try_init(|| async {
            let out = podman
                .call(&["info", "--format", "json"], QUICK_TIMEOUT)
                .await
                .map_err(EngineError::HostStore)?;
            let info = crate::podman::info::parse_info(&out)?;
            Ok::<_, EngineError>(HostStore {
                budget: super::budget::detect(
                    &info.host.cgroup_version,
                    &info.host.cgroup_manager,
                    info.host.security.rootless,
                ),
                mount_program: info.store.mount_program(),
                graph_root: info.store.graph_root,
                driver: info.store.graph_driver_name,
            })
        })
        .await
        .cloned()
}

/// Prepares what runner `name` of `pool` needs for Docker and returns the extra `podman run`
/// arguments of its container. Isolated mode starts its engine; on an error the caller tears
/// down whatever was started ([`teardown`]).
pub async fn prepare(
    cfg: &Config,
    pool: &PoolConfig,
    name: &str,
    podman: &Podman,
) -> Result<Vec<String>, EngineError> {
    match pool.docker {
        DockerMode::None => Ok(Vec::new()),
        DockerMode::Host => {
            let xdg = std::env::var_os("XDG_RUNTIME_DIR")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from);
            let uid = crate::sys::uid();
            let sock = host_socket(uid, xdg.as_deref());
            if !sock.exists() {
                return Err(EngineError::HostSocketMissing(host_socket_missing(
                    &sock, uid,
                )));
            }
            Ok(runner_args(DockerMode::Host, Some(&sock)))
        }
        DockerMode::Isolated => {
            let (sock, budget) = start_isolated(cfg, pool, name, podman).await?;
            let mut a = runner_args(DockerMode::Isolated, Some(&sock));
            if let Some(parent) = budget {
                a.push(format!("--cgroup-parent={parent}"));
            }
            Ok(a)
        }
    }
}

fn mkdir_private(p: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(p)?;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(PRIVATE_DIR_MODE))
}

/// Starts runner `name`'s Docker proxy; returns its socket and the runner's cgroup budget
/// (the `--cgroup-parent` of the runner and its job containers), where the host has one.
async fn start_isolated(
    cfg: &Config,
    pool: &PoolConfig,
    name: &str,
    podman: &Podman,
) -> Result<(PathBuf, Option<String>), EngineError> {
    let d = EngineDirs::for_runner(&cfg.manager.runtime_dir, &cfg.manager.state_dir, name)?;
    let store = host_store(podman).await?;
    if !store.shareable() {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            tracing::warn!(
                "the host's image store uses the {} driver, which engines cannot share: every job's engine starts without the host's images and pulls what it runs\n  fix: use the overlay driver (see `podrunner doctor`, storage check)",
                store.driver
            )
        });
    }
    let conf = engine_conf(cfg, pool)?;
    let prepared = (|| -> std::io::Result<()> {
        mkdir_private(&cfg.manager.runtime_dir.join(ENGINES_RUN_DIR))?;
        mkdir_private(&cfg.manager.state_dir.join(ENGINES_DIR))?;
        mkdir_private(&d.run)?;
        mkdir_private(&d.data)?;
        std::fs::write(d.name_file(), name)?;
        std::fs::write(d.containers_conf(), conf)
    })();
    prepared.map_err(|source| EngineError::Folders {
        name: name.to_string(),
        source,
    })?;
    let budget = match &store.budget {
        None => None,
        Some(layout) => {
            let parent = super::budget::parent(cfg.manager.instance.as_str(), name);
            match super::budget::create(layout, &parent, &crate::runner::Limits::of(pool)) {
                Ok(()) => Some(parent),
                Err(e) => {
                    // Each container is still capped (proxy/policy/caps.rs).
                    tracing::warn!(pool = %pool.name, "no shared cgroup budget for runner {name}: {e}");
                    None
                }
            }
        }
    };
    // The runner reaches the engine only through the proxy, which holds job containers to
    // the pool's limits (proxy/policy/caps.rs) and starts the engine when a job first needs it.
    let exe = std::env::current_exe().map_err(EngineError::OwnBinary)?;
    let externals = super::externals::host_copy(cfg, pool, podman).await;
    let mut proxy = proxy_args(&d, pool, &pool.work_dir.join(name), externals.as_deref());
    proxy.self_update = super::externals::self_update_args(&d, pool, name, podman);
    proxy.cgroup_parent = budget.clone();
    // Rootless Podman reads the user's own settings (registries, storage, signature policy).
    let user_conf = (crate::sys::uid() != 0)
        .then(super::conf::user_config_dir)
        .flatten()
        .map(|c| c.join("containers"));
    proxy.launch = launcher_args(
        &d,
        &exe,
        &crate::runner::Paths::of(cfg, name).pidfile,
        &cfg.podman.path,
        &super::Sandbox::for_runner(
            cfg,
            &d,
            &pool.work_dir.join(name),
            &store,
            user_conf.as_deref(),
        ),
        &service_args(&cfg.podman, &d, &store),
    );
    let args = proxy.to_argv();
    let proxy = cmd::spawn_detached_env(&exe, &args, &d.log(), &cmd::SERVICE_MANAGER_ENV, &[])
        .map_err(|source| EngineError::SpawnProxy {
            name: name.to_string(),
            source,
        })?;
    let proxy_pid = proxy.id() as i32;
    // Not waited for here: it outlives this call (and a manager restart); teardown reaps it.
    drop(proxy);
    std::fs::write(d.proxy_pid_file(), format!("{proxy_pid}\n")).map_err(|source| {
        EngineError::Write {
            path: d.proxy_pid_file(),
            source,
        }
    })?;
    wait_listening(&d.socket(), proxy_pid, &d.log()).await?;
    std::fs::set_permissions(d.socket(), std::fs::Permissions::from_mode(SOCKET_MODE))
        .map_err(EngineError::SocketMode)?;
    tracing::debug!(
        "docker proxy of {name} ready (pid {proxy_pid}, {}); its engine starts on first use",
        d.socket().display()
    );
    Ok((d.socket(), budget))
}

/// The engine's merged containers.conf (engine/conf.rs): what the manager's Podman reads, the
/// pool's `engine_containers_conf`, the `--ulimit`s of the runner's `run_args`, podrunner's own.
fn engine_conf(cfg: &Config, pool: &PoolConfig) -> Result<String, EngineError> {
    let mut layers = super::conf::read_layers()?;
    if let Some(p) = &pool.engine_containers_conf {
        let text = std::fs::read_to_string(p).map_err(|source| EngineError::PoolConf {
            path: p.clone(),
            pool: pool.name.to_string(),
            source,
        })?;
        layers.push((format!("engine_containers_conf {}", p.display()), text));
    }
    let run_args: Vec<String> = cfg
        .podman
        .run_args
        .iter()
        .chain(pool.run_args.iter())
        .cloned()
        .collect();
    let netavark = super::conf::netavark_installed(&|p| p.exists());
    if !netavark {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            tracing::warn!(
                "netavark and aardvark-dns are not installed: containers on a job's network cannot reach each other by name (service containers of container jobs)\n  fix: see `podrunner doctor` (docker-dns check)"
            )
        });
    }
    Ok(super::conf::merge(
        &layers,
        &super::conf::Ours {
            pids_limit: crate::runner::Limits::of(pool).pids,
            ulimits: super::conf::ulimits_in(&run_args),
            netavark,
            cgroupfs: crate::sys::uid() == 0,
        },
    )?)
}

/// Waits until the proxy accepts connections on `sock` (without a request, which would start
/// the engine).
async fn wait_listening(sock: &Path, pid: i32, log: &Path) -> Result<(), WaitError> {
    wait_for(sock, pid, log, "the docker proxy", false).await
}

/// What runner `name`'s jobs get for Docker right now, for `status`: `none`, `host`, `ready`
/// (the proxy waits, no engine yet) or `engine` (the engine's pid file is there: a job started
/// it). Two file checks, no podman call.
pub fn docker_state(cfg: &Config, pool: &PoolConfig, name: &str) -> String {
    match pool.docker {
        DockerMode::None => "none".into(),
        DockerMode::Host => "host".into(),
        DockerMode::Isolated => {
            match EngineDirs::for_runner(&cfg.manager.runtime_dir, &cfg.manager.state_dir, name) {
                Ok(d) if d.pid_file().exists() => "engine".into(),
                Ok(d) if d.proxy_pid_file().exists() => "ready".into(),
                _ => "-".into(),
            }
        }
    }
}

/// Stops runner `name`'s engine and removes everything it held: its containers (and their
/// conmon processes, which are not in the service's process group), the service, its rootless
/// pause process, the mounts of its storage, and its folders with the images, volumes and
/// networks in them. Tries every step and returns every failure (STYLE.md 5). Nothing to do
/// when the runner had no engine.
///
/// No `podman system reset`: on Podman 4.3 it can loop forever on a layer a killed build left
/// mounted; removing the folders after unmounting does the same and cannot hang.
pub async fn teardown(cfg: &Config, podman: &Podman, name: &str) -> Vec<TeardownError> {
    let mut errors = teardown_engine(cfg, podman, name).await;
    // Last, once the runner and its job containers are gone: the runner's cgroup budget.
    if let Ok(Some(layout)) = host_store(podman).await.map(|s| s.budget) {
        let parent = super::budget::parent(cfg.manager.instance.as_str(), name);
        if let Err(e) = super::budget::remove(&layout, &parent).await {
            errors.push(e);
        }
    }
    errors
}

async fn teardown_engine(cfg: &Config, podman: &Podman, name: &str) -> Vec<TeardownError> {
    let Ok(d) = EngineDirs::for_runner(&cfg.manager.runtime_dir, &cfg.manager.state_dir, name)
    else {
        return Vec::new();
    };
    if !d.run.exists() && !d.data.exists() {
        return Vec::new();
    }
    let mut errors = Vec::new();
    // 0. The proxy first: nothing reaches the engine any more.
    if let Some(pid) = live_pid(&d.proxy_pid_file(), |c| is_proxy_cmdline(c, &d.socket())) {
        if let Err(e) = terminate_group(pid, STOP_GRACE).await {
            errors.push(TeardownError::Proxy(e));
        }
    }
    // 1. Where the engine ran: its process group and whatever runs from its folders (conmon),
    //    and the network namespace they are in. That is the runner's (docs/docker.md,
    //    Networking), held open by them after the runner's container is gone; when it is the
    //    manager's own, the runner had host networking.
    let engine = running_engine(&d.pid_file(), &d.engine_socket());
    let me = std::process::id() as i32;
    let own_ns = ns_of(me, "net");
    let members: Vec<i32> = procs()
        .into_iter()
        .filter(|(p, c)| {
            *p != me && (cmdline_in_engine(c, &d) || engine.is_some_and(|e| pgrp(*p) == Some(e)))
        })
        .map(|(p, _)| p)
        .collect();
    // The engine itself first: its children may run in networks of its own (rootless
    // aardvark-dns).
    let runner_ns = engine.iter().chain(members.iter()).find_map(|p| {
        ns_of(*p, "net")
            .filter(|n| Some(n) != own_ns.as_ref())
            .map(|n| (*p, n))
    });
    let rootless = (crate::sys::uid() != 0).then(|| (crate::sys::uid(), crate::sys::gid()));
    // A sandboxed engine's processes (engine::sandbox) are in a pid namespace of their own.
    let own_pid_ns = ns_of(me, "pid");
    let inside = members
        .iter()
        .find(|p| ns_of(**p, "pid").is_some_and(|n| Some(&n) != own_pid_ns.as_ref()));
    let ns = match (&runner_ns, members.first()) {
        _ if inside.is_some() => inside.map(|p| Netns::InSandbox(*p)),
        (Some((p, _)), _) => Some(Netns::Of(*p)),
        // Rootless engines of runners with host networking run with a user namespace of their
        // own (commands/engine_exec.rs): podman finds it through the engine's folders.
        _ if rootless.is_some() => Some(Netns::Current),
        // The engine had its own mount namespace ([`super::NETAVARK_RUN_DIR`]).
        (None, Some(p)) => Some(Netns::Of(*p)),
        // Nothing holds its namespaces any more: the job's containers, mounts and network went
        // with them.
        (None, None) => None,
    };
    // 2. Containers first, while the service still runs: `rm` stops them (SIGKILL: the job
    //    is over), their networks are torn down and their conmon processes exit.
    if let Some(ns) = ns.filter(|_| d.root().exists()) {
        match host_store(podman).await {
            Ok(s) => {
                let mut a = vec![cfg.podman.path.clone()];
                a.extend(engine_args(&cfg.podman, &d, &s, Store::Shared));
                a.extend(["rm", "--all", "--force", "--time=0"].map(String::from));
                let a = in_netns(&a, ns, rootless);
                let conf = d.containers_conf();
                let mut env: Vec<_> = conf
                    .exists()
                    .then_some(("CONTAINERS_CONF", conf.as_os_str()))
                    .into_iter()
                    .collect();
                // A rootless engine in its runner's namespaces has its own runtime folder
                // (commands/engine_exec.rs).
                let xdg = d.netavark_run();
                if rootless.is_some() && matches!(ns, Netns::Of(_) | Netns::InSandbox(_)) {
                    env.push(("XDG_RUNTIME_DIR", xdg.as_os_str()));
                }
                if let Err(e) = cmd::run_env(&a[0], &a[1..], &env, ADMIN_TIMEOUT).await {
                    errors.push(TeardownError::Containers(e));
                }
            }
            Err(e) => errors.push(TeardownError::HostStore(e)),
        }
    }
    // 3. The service: its process group (spawn_detached made it the leader).
    if let Some(pid) = engine {
        if let Err(e) = terminate_group(pid, STOP_GRACE).await {
            errors.push(TeardownError::Engine(e));
        }
    }
    // 4. Whatever still runs from its folders (a conmon `rm` could not stop, a build step's
    //    runtime) or in the runner's network namespace (rootless port forwarders and the
    //    slirp4netns of the engine's own networks), and the pause process of an engine that
    //    made its own user namespace (podrunner before 0.x's network change).
    let mut strays: Vec<i32> = procs()
        .into_iter()
        .filter(|(p, c)| {
            cmdline_in_engine(c, &d)
                || runner_ns
                    .as_ref()
                    .is_some_and(|(_, n)| ns_of(*p, "net").as_ref() == Some(n))
        })
        .map(|(p, _)| p)
        .collect();
    strays.extend(read_pid(&d.tmpdir().join("pause.pid")));
    for pid in strays.into_iter().filter(|p| *p != me && alive(*p)) {
        if let Err(source) = kill(pid, libc::SIGKILL) {
            errors.push(TeardownError::Kill { pid, source });
        }
    }
    for pid in members {
        crate::sys::reap(pid);
    }
    // 5. Rootful: the storage's mounts are in the host's mount namespace.
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    for dir in [&d.data, &d.run] {
        for m in mounts_under(&mountinfo, dir) {
            if let Err(e) = crate::sys::umount_detach(&m) {
                errors.push(TeardownError::Unmount { path: m, source: e });
            }
        }
    }
    // 6. The folders; files of a rootless job belong to subordinate ids.
    for dir in [&d.run, &d.data] {
        if let Err(e) = remove_tree(dir) {
            if let Err(unshare) = podman.unshare_remove(dir).await {
                errors.push(TeardownError::Folder {
                    path: dir.clone(),
                    remove: e,
                    unshare,
                });
            }
        }
    }
    errors
}

fn remove_tree(p: &Path) -> std::io::Result<()> {
    match std::fs::remove_dir_all(p) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        r => r,
    }
}

/// Runners with engine folders but no container among `known` (e.g. the manager was down
/// while their container exited and was removed).
pub fn orphans(cfg: &Config, known: &BTreeSet<String>) -> Vec<String> {
    let mut out = BTreeSet::new();
    let state = cfg.manager.state_dir.join(ENGINES_DIR);
    for e in std::fs::read_dir(state).into_iter().flatten().flatten() {
        out.insert(e.file_name().to_string_lossy().into_owned());
    }
    let run = cfg.manager.runtime_dir.join(ENGINES_RUN_DIR);
    for e in std::fs::read_dir(run).into_iter().flatten().flatten() {
        if let Ok(n) = std::fs::read_to_string(e.path().join(NAME_FILE)) {
            out.insert(n.trim().to_string());
        }
    }
    out.into_iter().filter(|n| !known.contains(n)).collect()
}

/// Tears down the engines of `names` (see [`orphans`]), logging what failed.
pub async fn teardown_orphans(cfg: Arc<Config>, podman: Arc<Podman>, names: Vec<String>) {
    for n in names {
        tracing::info!("removing the engine of runner {n}, whose container is gone");
        let errors = teardown(&cfg, &podman, &n).await;
        if !errors.is_empty() {
            let errors: Vec<String> = errors.iter().map(ToString::to_string).collect();
            tracing::warn!("engine of {n}: {}", errors.join("; "));
        }
    }
}

/// Warns once per pool at start-up when the image's Docker CLI needs a newer API than this
/// Podman serves ([`super::api_warning`]).
pub async fn warn_api_versions(cfg: Arc<Config>, podman: Arc<Podman>) {
    let concerned = cfg
        .pools
        .iter()
        .any(|p| p.docker != DockerMode::None && super::is_official_image(&p.image));
    if !concerned {
        return;
    }
    let version = match podman.version().await {
        Ok(v) => v.server.map(|s| s.version).unwrap_or(v.client.version),
        Err(e) => {
            tracing::debug!("cannot read podman's version: {e}");
            return;
        }
    };
    for p in &cfg.pools {
        if let Some(w) = super::api_warning(p.name.as_str(), &p.image, p.docker, &version) {
            tracing::warn!(pool = %p.name, "{w}");
        }
    }
}
