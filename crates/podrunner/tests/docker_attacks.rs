//! The Docker API proxy's boundary under attack (docs/docker.md, "The proxy's boundary"): the
//! real `podrunner docker-proxy` in front of a real Podman engine it starts on first use, the
//! way the manager runs both for a runner of a `docker_policy = "contained"` pool. Each attack
//! is a raw HTTP request (or a few) sent to the proxy's socket from the test process, as a
//! hostile job could send them through `/var/run/docker.sock`; each must be answered by the
//! proxy with a 400 or 403 naming what it refused, or be defused (capped). Afterwards nothing on
//! the host was read, written or reached: the canary secret outside the work folder is
//! unchanged, no file appeared where an attack aimed, and no container of the engine has a host
//! path outside the work folder mounted. The controls show that ordinary Docker use keeps
//! working: `docker run`, `docker build` with a `COPY` from its context, binds inside the work
//! folder, a `container:` job and a service container created with the runner's own docker
//! commands, a network created and removed, and a client that refuses an API below 1.44 as
//! Docker CLI 29 does.
#![allow(
    clippy::disallowed_methods,
    reason = "test code starts the programs it tests and inspects the host directly"
)]

mod common;

use common::*;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long one request may take (a create or start on a loaded CI host).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// The runner's limits in these tests.
const MEMORY: i64 = 256 << 20;
const CPUS: f64 = 1.5;
const PIDS: i64 = 300;

/// A runner's proxy and engine, as `engine::service` starts them, in a temporary folder:
/// `work` is the runner's work folder (bindable), `secret` a canary file outside it, `outside`
/// a host folder that attacks try to write into.
struct Engine {
    dir: tempfile::TempDir,
    dirs: podrunner::engine::EngineDirs,
    global: Vec<String>,
    proxy: Child,
    work: PathBuf,
    secret: PathBuf,
    outside: PathBuf,
    /// The host copy of the image's externals folder the proxy maps the runner's path to
    /// (shared by every runner of the image).
    externals: PathBuf,
    /// The stand-in runner container whose namespaces the engine joins, when there is one.
    runner: Option<String>,
}

/// A container standing in for a runner (rootless, on the user's default network), with its
/// pid written to `pid_file`; its name.
fn start_runner(pid_file: &Path) -> String {
    let name = format!("pa-runner-{}", std::process::id());
    let (code, out, err) = run_podman(&[
        "run",
        "-d",
        "--rm",
        "--runtime=runc",
        &format!("--name={name}"),
        &format!("--pidfile={}", pid_file.display()),
        TEST_IMAGE,
        "sleep",
        "600",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    name
}

fn run_podman(args: &[&str]) -> (i32, String, String) {
    let out = Command::new("podman").args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The runner's path of its externals folder, as GitHub's runner binds it.
const RUNNER_EXTERNALS: &str = "/home/runner/externals";
const EXTERNALS_MARKER: &str = "externals-of-the-image";

/// A host copy of an image's externals, as engine/externals.rs makes it, in `dir`.
fn make_externals(dir: &Path) -> PathBuf {
    let ext = dir.join("externals");
    std::fs::create_dir_all(ext.join("node20/bin")).unwrap();
    std::fs::write(ext.join("podrunner-marker"), EXTERNALS_MARKER).unwrap();
    std::fs::write(ext.join("node20/bin/node"), "#!/bin/sh\necho node\n").unwrap();
    ext
}

/// Every file under `dir` with its content: what a `container:` job would execute.
fn tree(dir: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(tree(&p));
        } else {
            out.push((
                p.display().to_string(),
                std::fs::read_to_string(&p).unwrap_or_default(),
            ));
        }
    }
    out.sort();
    out
}

const SECRET: &str = "CANARY-podrunner-attack-suite-0123456789";

fn podman_info() -> podrunner::doctor::podman::PodmanInfo {
    let out = Command::new("podman")
        .args(["info", "--format", "json"])
        .output()
        .unwrap();
    podrunner::doctor::podman::parse_info(&out.stdout).unwrap()
}

impl Engine {
    fn start() -> Engine {
        Engine::start_with(None, false)
    }

    /// With `externals`, the copy another runner of the same image already maps.
    /// `sandboxed`: the engine's folders, the work folder and the externals copy lie in a
    /// stand-in for the manager's state folder (`s`, with the manager's database `s/db`),
    /// which the engine gets covered, as does the token file (`host/token`), keeping its own.
    fn start_with(externals: Option<&Path>, sandboxed: bool) -> Engine {
        // Short: Podman's run root must stay within 50 characters.
        let dir = tempfile::Builder::new()
            .prefix("pa")
            .tempdir_in("/tmp")
            .unwrap();
        let base = match sandboxed {
            true => dir.path().join("s"),
            false => dir.path().to_path_buf(),
        };
        let dirs = podrunner::engine::EngineDirs {
            run: base.join("r"),
            data: base.join("d"),
        };
        for d in [&dirs.run, &dirs.data] {
            std::fs::create_dir_all(d).unwrap();
        }
        let work = base.join("w");
        let outside = dir.path().join("host");
        std::fs::create_dir_all(work.join("_work/repo")).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        let secret = outside.join("token");
        std::fs::write(&secret, SECRET).unwrap();
        let externals = match externals {
            Some(e) => e.to_path_buf(),
            None => make_externals(&base),
        };
        // What the engine sees of the host beyond the system (engine::sandbox): its folders
        // and the work folder, the externals copy and the host's images read-only. Not the
        // canary folder (`host/`) nor, sandboxed, the rest of the state folder (`s/db`).
        if sandboxed {
            std::fs::write(base.join("db"), SECRET).unwrap();
        }
        let info = podman_info();
        let sandbox = podrunner::engine::Sandbox {
            keep: vec![dirs.run.clone(), dirs.data.clone(), work.clone()],
            read_only: vec![externals.clone(), info.store.graph_root.clone().into()],
        };
        // The job's user inside a container (another uid, rootless a subordinate one) works
        // in the work folder; the canary folder stays the manager's.
        Command::new("chmod")
            .args(["-R", "a+rwx"])
            .arg(&work)
            .status()
            .unwrap();
        let mut conf = String::from("[containers]\n");
        if is_root() {
            conf.push_str("default_ulimits = [\"nofile=20000:20000\", \"nproc=20000:20000\"]\n");
        }
        // As podrunner's own engines have it (engine/conf.rs): DNS on job networks.
        conf.push_str("[network]\nnetwork_backend = \"netavark\"\n");
        std::fs::write(dirs.containers_conf(), conf).unwrap();
        let host = podrunner::engine::HostStore {
            mount_program: info.store.mount_program(),
            graph_root: info.store.graph_root.clone(),
            driver: info.store.graph_driver_name.clone(),
            budget: None,
        };
        let podman = podrunner::config::PodmanConfig {
            path: "podman".into(),
            runtime: Some("runc".into()),
            global_args: Vec::new(),
            run_args: Vec::new(),
        };
        let global =
            podrunner::engine::engine_args(&podman, &dirs, &host, podrunner::engine::Store::Shared);
        let service = podrunner::engine::service_args(&podman, &dirs, &host);
        let sock = dirs.socket();
        let mut args = vec![
            "docker-proxy".to_string(),
            format!("--listen={}", sock.display()),
            format!("--upstream={}", dirs.engine_socket().display()),
            "--pool=attacks".into(),
            format!("--pids={PIDS}"),
            format!("--memory={MEMORY}"),
            format!("--cpus={CPUS}"),
            format!("--map=/var/run/docker.sock={}", sock.display()),
            format!("--allow={}", work.display()),
            format!("--allow={}", sock.display()),
            format!("--map={RUNNER_EXTERNALS}={}", externals.display()),
            format!("--allow-read-only={}", externals.display()),
            format!("--pin-dir={}", dirs.pins().display()),
            format!("--pin-within={}", work.display()),
        ];
        // engine-exec reads the "runner's" pid from this file. Rootful, and rootless without
        // the sandbox, no runner container: the engine joins this test's own network
        // namespace. Rootless with the sandbox, a stand-in runner container (the user's
        // Podman's network namespace, as for a real runner): only an engine in its runner's
        // user namespace is sandboxed (docs/docker.md, The engine's own sandbox).
        let runner_pid = dir.path().join("runner.pid");
        let runner = (sandboxed && !is_root()).then(|| start_runner(&runner_pid));
        if runner.is_none() {
            std::fs::write(&runner_pid, std::process::id().to_string()).unwrap();
        }
        args.extend(
            podrunner::engine::launcher_args(
                &dirs,
                Path::new(&podrunner_bin()),
                &runner_pid,
                "podman",
                &sandbox,
                &service,
            )
            .to_argv(),
        );
        let log = std::fs::File::create(dir.path().join("proxy.log")).unwrap();
        let proxy = Command::new(podrunner_bin())
            .args(&args)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let t = Instant::now();
        while UnixStream::connect(&sock).is_err() {
            assert!(
                t.elapsed() < Duration::from_secs(30),
                "the proxy did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let e = Engine {
            dir,
            dirs,
            global,
            proxy,
            work,
            secret,
            outside,
            externals,
            runner,
        };
        if !host.shareable() {
            // A vfs host store cannot be shared: the image comes in through the proxy.
            let tar = e.dir.path().join("image.tar");
            let ok = Command::new("podman")
                .args(["save", "-q", "-o"])
                .arg(&tar)
                .arg(TEST_IMAGE)
                .status()
                .unwrap();
            assert!(ok.success());
            let (code, _, out) = e.docker(&["load", "-q", "-i", tar.to_str().unwrap()]);
            assert_eq!(code, 0, "{out}");
        }
        e
    }

    fn sock(&self) -> PathBuf {
        self.dirs.socket()
    }

    /// Sends `raw` on one connection and returns everything the proxy answered.
    fn raw(&self, raw: &[u8]) -> String {
        let mut s = UnixStream::connect(self.sock()).unwrap();
        s.set_read_timeout(Some(REQUEST_TIMEOUT)).unwrap();
        s.write_all(raw).unwrap();
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    }

    /// One request; the status and the (de-chunked) body.
    fn req(&self, method: &str, target: &str, body: Option<&str>) -> (u16, String) {
        let body = body.unwrap_or("");
        let head = format!(
            "{method} {target} HTTP/1.1\r\nHost: docker\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        let out = self.raw(format!("{head}{body}").as_bytes());
        let status = out
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let (headers, rest) = out.split_once("\r\n\r\n").unwrap_or((&out, ""));
        let body = if headers
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked")
        {
            dechunk(rest)
        } else {
            rest.to_string()
        };
        (status, body)
    }

    fn json(&self, method: &str, target: &str, body: &Value) -> (u16, String) {
        self.req(method, target, Some(&body.to_string()))
    }

    /// The Docker CLI of this host against the proxy; (exit code, stdout, stderr).
    fn docker(&self, args: &[&str]) -> (i32, String, String) {
        self.docker_at(&self.sock(), args)
    }

    /// The Docker CLI against socket `sock` (the proxy's, or the engine's own).
    fn docker_at(&self, sock: &Path, args: &[&str]) -> (i32, String, String) {
        let out = Command::new("timeout")
            .arg("120")
            .arg("docker")
            .args(args)
            .env("DOCKER_HOST", format!("unix://{}", sock.display()))
            .env("DOCKER_BUILDKIT", "0")
            .env("DOCKER_CONFIG", self.dir.path().join("docker-config"))
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// A container create the contained policy accepts, with `host_config` merged in.
    fn create(&self, name: &str, cmd: &[&str], host_config: Value) -> (u16, String) {
        let body = json!({"Image": TEST_IMAGE, "Cmd": cmd, "HostConfig": host_config});
        self.json(
            "POST",
            &format!("/v1.44/containers/create?name={name}"),
            &body,
        )
    }

    /// Every container of the engine, inspected.
    fn containers(&self) -> Vec<Value> {
        let (code, list) = self.req("GET", "/v1.44/containers/json?all=1", None);
        assert_eq!(code, 200, "{list}");
        let list: Vec<Value> = serde_json::from_str(&list).unwrap();
        list.iter()
            .map(|c| {
                let id = c["Id"].as_str().unwrap();
                let (code, body) = self.req("GET", &format!("/v1.44/containers/{id}/json"), None);
                assert_eq!(code, 200, "{body}");
                serde_json::from_str(&body).unwrap()
            })
            .collect()
    }

    /// The host pid of the engine's podman (inside its pid namespace, under engine-exec).
    fn engine_podman_pid(&self) -> i32 {
        let sock = self.dirs.engine_socket().display().to_string();
        std::fs::read_dir("/proc")
            .unwrap()
            .filter_map(|d| d.ok()?.file_name().to_str()?.parse::<i32>().ok())
            .find(|p| {
                let comm = std::fs::read_to_string(format!("/proc/{p}/comm")).unwrap_or_default();
                let cmd = std::fs::read(format!("/proc/{p}/cmdline")).unwrap_or_default();
                comm.trim() == "podman" && String::from_utf8_lossy(&cmd).contains(&sock)
            })
            .expect("the engine's podman process")
    }

    fn proxy_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("proxy.log")).unwrap_or_default()
    }

    /// What the host must still look like: the canary as written, nothing new beside it, and
    /// no container with a bind mount from outside the work folder and the runner's socket
    /// (but the externals copy, read-only).
    fn assert_host_untouched(&self) {
        assert_eq!(std::fs::read_to_string(&self.secret).unwrap(), SECRET);
        let beside: Vec<String> = std::fs::read_dir(&self.outside)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(beside, ["token"], "files appeared in the host folder");
        let work = std::fs::canonicalize(&self.work).unwrap();
        let sock = self.sock();
        for c in self.containers() {
            for m in c["Mounts"].as_array().cloned().unwrap_or_default() {
                if m["Type"] == "bind" {
                    let src = PathBuf::from(m["Source"].as_str().unwrap());
                    if src.starts_with(&self.externals) {
                        assert_eq!(m["RW"], json!(false), "{c}");
                        continue;
                    }
                    // A pin (proxy::pin) is a folder of the work folder, mounted by
                    // descriptor in the engine's own root.
                    let pin = src.starts_with(self.dirs.pins());
                    assert!(
                        src.starts_with(&work) || src == sock || pin,
                        "container {} binds {}",
                        c["Name"],
                        src.display()
                    );
                }
            }
        }
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        let _ = self.proxy.kill();
        let _ = self.proxy.wait();
        let _ = Command::new("podman")
            .args(&self.global)
            .args(["rm", "--all", "--force", "--time=0"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        if let Ok(pid) = std::fs::read_to_string(self.dirs.pid_file()) {
            if let Ok(pid) = pid.trim().parse::<i32>() {
                let _ = Command::new("kill").arg(pid.to_string()).status();
                let t = Instant::now();
                while Path::new(&format!("/proc/{pid}")).exists()
                    && t.elapsed() < Duration::from_secs(10)
                {
                    std::thread::sleep(Duration::from_millis(50));
                }
                let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            }
        }
        if let Some(name) = &self.runner {
            let _ = run_podman(&["rm", "--force", "--time=0", name]);
        }
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        for m in podrunner::engine::mounts_under(&mountinfo, self.dir.path()) {
            let _ = Command::new("umount").arg("-l").arg(&m).status();
        }
        if !is_root() {
            let _ = Command::new("podman")
                .args(["unshare", "rm", "-rf"])
                .arg(self.dir.path())
                .status();
        }
    }
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].strip_prefix("\r\n").unwrap_or(&rest[n..]);
    }
    out
}

/// Asserts that the proxy refused with `status` and a message containing `why` and naming the
/// pool key that would allow it (for a 403).
#[track_caller]
fn refused(got: (u16, String), status: u16, why: &str) {
    let (code, body) = got;
    assert_eq!(code, status, "expected {status} ({why}), got: {body}");
    assert!(body.contains(why), "expected {why:?} in: {body}");
    if status == 403 {
        assert!(
            body.contains("docker_policy = \\\"open\\\" in pool attacks")
                || body.contains("docker_policy = \"open\" in pool attacks"),
            "no pool key in: {body}"
        );
    }
}

fn status_of(raw: &str) -> u16 {
    raw.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

#[test]
fn attacks_through_the_proxy_reach_nothing_on_the_host() {
    let e = Engine::start();
    let secret_dir = e.outside.display().to_string();
    let secret = e.secret.display().to_string();
    let work = e.work.display().to_string();
    let attacks = std::cell::Cell::new(0u32);
    let attack = |got: (u16, String), status: u16, why: &str| {
        refused(got, status, why);
        attacks.set(attacks.get() + 1);
    };

    // --- The HTTP layer and request targets.
    let raw = |r: &str| {
        let out = e.raw(r.as_bytes());
        (status_of(&out), out)
    };
    attack(
        raw("POST http://d/v1.41/containers/create HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}"),
        400,
        "origin-form",
    );
    attack(
        raw("POST /v1.41.0-x/containers/create HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}"),
        400,
        "/vMAJOR.MINOR",
    );
    attack(
        raw("POST /v1.41/containers/%63reate HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}"),
        400,
        "path segment",
    );
    attack(
        raw("POST /v1.41/images/../containers/create HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}"),
        400,
        "path segment",
    );
    attack(
        raw("POST /v1.41/containers/create HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 40\r\n\r\n{}"),
        400,
        "more than one body length",
    );
    attack(
        raw("POST /v1.41/containers/create HTTP/1.1\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n{}"),
        400,
        "more than one body length",
    );
    // A request smuggled behind a harmless one on the same connection is never sent.
    let smuggled =
        json!({"Image": TEST_IMAGE, "HostConfig": {"Binds": [format!("{secret_dir}:/s")]}})
            .to_string();
    let two = format!(
        "GET /_ping HTTP/1.1\r\nHost: d\r\n\r\nPOST /v1.41/containers/create?name=smuggled1 HTTP/1.1\r\nContent-Length: {}\r\n\r\n{smuggled}",
        smuggled.len()
    );
    let out = e.raw(two.as_bytes());
    assert_eq!(out.matches("HTTP/1.1 ").count(), 1, "{out}");
    attacks.set(attacks.get() + 1);

    // --- Routes outside the allowlist, libpod under "contained".
    attack(
        e.req(
            "POST",
            "/v4.3.1/libpod/secrets/create?name=s&driver=shell",
            Some("x"),
        ),
        403,
        "the libpod API",
    );
    attack(
        e.json("POST", "/v4.3.1/libpod/containers/create", &json!({"image": TEST_IMAGE, "overlay_volumes": [{"source": secret_dir, "destination": "/o"}]})),
        403,
        "the libpod API",
    );
    attack(
        e.json(
            "POST",
            "/v4.3.1/libpod/containers/create",
            &json!({"image": TEST_IMAGE, "conmon_pid_file": format!("{secret_dir}/pid")}),
        ),
        403,
        "the libpod API",
    );
    attack(
        e.req("POST", "/v1.41/secrets/create", Some("{}")),
        403,
        "the route POST /secrets/create",
    );
    attack(
        e.req("POST", "/v1.41/plugins/pull?remote=x", None),
        403,
        "the route POST /plugins/pull",
    );
    attack(
        e.req("POST", "/v1.41/swarm/init", Some("{}")),
        403,
        "the route POST /swarm/init",
    );

    // --- JSON that Go reads differently: case, duplicates, Unicode folding.
    let body = |s: &str| e.req("POST", "/v1.41/containers/create", Some(s));
    attack(
        body(&format!(
            r#"{{"Image":"{TEST_IMAGE}","hostconfig":{{"Privileged":true}}}}"#
        )),
        403,
        "the field hostconfig",
    );
    attack(
        body(&format!(
            r#"{{"Image":"{TEST_IMAGE}","HostConfig":{{}},"HostConfig":{{"Privileged":true}}}}"#
        )),
        400,
        "appears twice",
    );
    attack(
        body(&format!(
            r#"{{"Image":"{TEST_IMAGE}","HostConfig":{{"Binds":[],"binds":["{secret_dir}:/s"]}}}}"#
        )),
        400,
        "appears twice",
    );
    attack(
        body(&format!(
            r#"{{"Image":"{TEST_IMAGE}","HostConfig":{{"Privileged":false,"\u0050rivileged":true}}}}"#
        )),
        400,
        "appears twice",
    );
    attack(
        body(&format!(
            r#"{{"Image":"{TEST_IMAGE}","HostConfig":{{"Privilegeᴅ":true}}}}"#
        )),
        400,
        "not ASCII",
    );
    attack(
        body(&format!(
            r#"{{"Image":"{TEST_IMAGE}","HostConfig":{{"privileged":true}}}}"#
        )),
        403,
        "the field HostConfig.privileged",
    );

    // --- Bind mounts and volumes that would reach the host's files.
    let c = |hc: Value| e.create("attack", &["cat", "/s/token"], hc);
    attack(
        c(json!({"Binds": [format!("{secret_dir}:/s")]})),
        403,
        "a bind mount of the host path",
    );
    attack(
        c(json!({"Binds": ["/:/host"]})),
        403,
        "a bind mount of the host path /",
    );
    attack(
        c(json!({"Binds": [format!("{work}/../host:/s")]})),
        403,
        "a bind mount of the host path",
    );
    attack(
        c(json!({"Binds": ["./host:/s"]})),
        403,
        "a bind source must be an absolute path",
    );
    attack(
        c(json!({"Binds": ["../../../etc:/s"]})),
        403,
        "a bind source must be an absolute path",
    );
    attack(
        c(json!({"Binds": [format!("{work}/_work:/s:U")]})),
        403,
        "the option \\\"U\\\"",
    );
    attack(
        c(json!({"Mounts": [{"Type": "Bind", "Source": secret_dir, "Target": "/s"}]})),
        403,
        "HostConfig.Mounts[0].Type",
    );
    attack(
        c(
            json!({"Mounts": [{"Type": "volume", "Source": "v", "Target": format!("/s,type=bind,source={secret_dir}")}]}),
        ),
        403,
        "HostConfig.Mounts[0].Target",
    );
    attack(
        c(
            json!({"Mounts": [{"Type": "volume", "Source": "v", "Target": "/s",
                            "VolumeOptions": {"DriverConfig": {"Name": "local", "Options": {"type": "none", "o": "bind", "device": secret_dir}}}}]}),
        ),
        403,
        "Options",
    );
    let top = json!({"Image": TEST_IMAGE, "Volumes": {format!("{secret_dir}:/s"): {}}});
    attack(
        e.json("POST", "/v1.41/containers/create", &top),
        403,
        "names a source",
    );
    attack(
        e.json("POST", "/v1.41/volumes/create", &json!({"Name": "hostvol", "DriverOpts": {"type": "none", "o": "bind", "device": secret_dir}})),
        403,
        "driver options",
    );
    // A symlink in the work folder to the host folder, at create.
    let link = e.work.join("_work/link");
    std::os::unix::fs::symlink(&e.outside, &link).unwrap();
    attack(
        c(json!({"Binds": [format!("{}:/s", link.display())]})),
        403,
        "a bind mount of the host path",
    );

    // --- Privilege, capabilities, namespaces, devices, confinement.
    attack(
        c(json!({"Privileged": true})),
        403,
        "HostConfig.Privileged = true",
    );
    attack(
        c(json!({"CapAdd": ["SYS_ADMIN"]})),
        403,
        "the capability SYS_ADMIN",
    );
    attack(
        c(json!({"CapAdd": ["cap_dac_read_search"]})),
        403,
        "the capability cap_dac_read_search",
    );
    attack(
        c(json!({"NetworkMode": "host", "CapAdd": ["NET_ADMIN"]})),
        403,
        "with HostConfig.NetworkMode = host",
    );
    attack(
        c(json!({"SecurityOpt": ["seccomp=unconfined"]})),
        403,
        "the security option",
    );
    attack(
        c(json!({"SecurityOpt": ["apparmor=unconfined"]})),
        403,
        "the security option",
    );
    attack(
        c(json!({"SecurityOpt": ["systempaths=unconfined"]})),
        403,
        "the security option",
    );
    attack(c(json!({"MaskedPaths": []})), 403, "HostConfig.MaskedPaths");
    attack(c(json!({"PidMode": "host"})), 403, "HostConfig.PidMode");
    attack(
        c(json!({"UsernsMode": "host"})),
        403,
        "HostConfig.UsernsMode",
    );
    attack(c(json!({"IpcMode": "host"})), 403, "HostConfig.IpcMode");
    attack(
        c(json!({"NetworkMode": "ns:/proc/1/ns/net"})),
        403,
        "HostConfig.NetworkMode",
    );
    attack(
        c(json!({"NetworkMode": format!("pasta:--pcap,{secret_dir}/pcap")})),
        403,
        "HostConfig.NetworkMode",
    );
    attack(
        c(
            json!({"Devices": [{"PathOnHost": "/dev/kmsg", "PathInContainer": "/dev/kmsg", "CgroupPermissions": "rwm"}]}),
        ),
        403,
        "HostConfig.Devices",
    );
    attack(
        c(json!({"DeviceCgroupRules": ["c *:* rwm"]})),
        403,
        "HostConfig.DeviceCgroupRules",
    );
    attack(c(json!({"GroupAdd": ["keep-groups"]})), 403, "keep-groups");
    attack(
        c(json!({"Sysctls": {"kernel.core_pattern": format!("|{secret_dir}/x")}})),
        403,
        "the sysctl",
    );
    attack(
        c(json!({"Runtime": format!("{secret_dir}/runtime")})),
        403,
        "HostConfig.Runtime",
    );
    attack(
        c(
            json!({"LogConfig": {"Type": "k8s-file", "Config": {"path": format!("{secret_dir}/log")}}}),
        ),
        403,
        "the log option path",
    );
    attack(
        c(json!({"LogConfig": {"Type": "journald"}})),
        403,
        "HostConfig.LogConfig",
    );
    attack(
        c(json!({"Annotations": {"run.oci.keep_original_groups": "1"}})),
        403,
        "HostConfig.Annotations",
    );
    attack(
        c(json!({"CgroupParent": "/"})),
        403,
        "HostConfig.CgroupParent",
    );
    attack(
        c(json!({"ContainerIDFile": format!("{secret_dir}/id")})),
        403,
        "HostConfig.ContainerIDFile",
    );

    // --- Exec.
    let (code, created) = e.create("target", &["sleep", "300"], json!({}));
    assert_eq!(code, 201, "{created}");
    let id: Value = serde_json::from_str(&created).unwrap();
    let id = id["Id"].as_str().unwrap().to_string();
    let (code, out) = e.req("POST", &format!("/v1.44/containers/{id}/start"), None);
    assert_eq!(code, 204, "{out}");
    attack(
        e.json(
            "POST",
            &format!("/v1.44/containers/{id}/exec"),
            &json!({"Cmd": ["id"], "Privileged": true}),
        ),
        403,
        "a privileged exec",
    );
    attack(
        e.json(
            "POST",
            &format!("/v1.44/containers/{id}/exec"),
            &json!({"Cmd": ["id"], "privileged": true}),
        ),
        403,
        "the field privileged",
    );
    // A detached exec start sent with Upgrade: the engine answers 200, not 101, so the proxy
    // never tunnels; the request smuggled after it is never sent.
    let (code, ex) = e.json(
        "POST",
        &format!("/v1.44/containers/{id}/exec"),
        &json!({"Cmd": ["true"], "AttachStdout": false}),
    );
    assert_eq!(code, 201, "{ex}");
    let ex: Value = serde_json::from_str(&ex).unwrap();
    let start = r#"{"Detach":true,"Tty":false}"#;
    let smuggle = format!(
        "POST /v1.44/exec/{}/start HTTP/1.1\r\nHost: d\r\nConnection: Upgrade\r\nUpgrade: tcp\r\nContent-Length: {}\r\n\r\n{start}POST /v1.41/containers/create?name=smuggled2 HTTP/1.1\r\nContent-Length: {}\r\n\r\n{smuggled}",
        ex["Id"].as_str().unwrap(),
        start.len(),
        smuggled.len()
    );
    let out = e.raw(smuggle.as_bytes());
    assert!(!out.starts_with("HTTP/1.1 101"), "{out}");
    attacks.set(attacks.get() + 1);

    // --- Builds and imports: parameters Podman reads that Docker has not.
    attack(
        e.req(
            "POST",
            &format!("/v1.41/build?t=x&rusagelogfile={secret_dir}/rusage"),
            None,
        ),
        403,
        "rusagelogfile",
    );
    attack(
        e.req(
            "POST",
            &format!("/v1.41/build?t=x&%73ecrets=id%3Ds%2Csrc%3D{secret}"),
            None,
        ),
        403,
        "secrets",
    );
    attack(
        e.req(
            "POST",
            &format!("/v1.41/build?t=x&outputs=type%3Dlocal%2Cdest%3D{secret_dir}"),
            None,
        ),
        403,
        "outputs",
    );
    attack(
        e.req("POST", "/v1.41/build?t=x&memory=1&memory=0", None),
        403,
        "given twice",
    );
    attack(
        e.req(
            "POST",
            &format!("/v1.41/build?t=x&volume={secret_dir}:/s"),
            None,
        ),
        403,
        "volume",
    );
    attack(
        e.req(
            "POST",
            &format!("/v1.41/images/create?fromSrc={secret}"),
            None,
        ),
        403,
        "fromSrc",
    );

    // A build context with a link out of it, and a Dockerfile bind-mounting through it: Podman
    // unpacks the context on the host and its builder follows the link there.
    let ctx = e.work.join("_work/evil-ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::os::unix::fs::symlink(&e.outside, ctx.join("hostlink")).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        format!("FROM {TEST_IMAGE}\nCOPY hostlink/ /h/\n"),
    )
    .unwrap();
    let (code, out, err) = e.docker(&["build", "-t", "localhost/evil:1", ctx.to_str().unwrap()]);
    assert_ne!(code, 0, "{out}");
    assert!(
        err.contains("the link hostlink -> ") && err.contains("docker_policy"),
        "{err}"
    );
    attacks.set(attacks.get() + 1);
    std::fs::remove_file(ctx.join("hostlink")).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        format!("FROM {TEST_IMAGE}\nRUN --mount=type=bind,source=.,target=/h cat /h/Dockerfile\n"),
    )
    .unwrap();
    let (code, out, err) = e.docker(&["build", "-t", "localhost/evil:1", ctx.to_str().unwrap()]);
    assert_ne!(code, 0, "{out}");
    assert!(err.contains("RUN --mount in the Dockerfile"), "{err}");
    assert!(!out.contains(SECRET) && !err.contains(SECRET));
    attacks.set(attacks.get() + 1);
    attack(
        e.req(
            "POST",
            "/v1.41/build?remote=https%3A%2F%2Fexample.invalid%2Fctx.tar",
            None,
        ),
        403,
        "remote",
    );
    attack(
        e.req("POST", "/v1.41/build?dockerfile=%2Fetc%2Fpasswd", None),
        403,
        "dockerfile",
    );

    // --- Networks reaching the host's interfaces.
    attack(
        e.json(
            "POST",
            "/v1.41/networks/create",
            &json!({"Name": "n1", "Driver": "macvlan", "Options": {"parent": "lo"}}),
        ),
        403,
        "Driver",
    );
    attack(
        e.json(
            "POST",
            "/v1.41/networks/create",
            &json!({"Name": "n2", "Options": {"com.docker.network.bridge.name": "lo"}}),
        ),
        403,
        "the network option",
    );

    // --- The proxy's own bounds.
    let big = format!(
        "GET /_ping HTTP/1.1\r\nX-Big: {}\r\n\r\n",
        "a".repeat(300 << 10)
    );
    assert_eq!(status_of(&e.raw(big.as_bytes())), 431);
    attacks.set(attacks.get() + 1);
    let huge = "POST /v1.41/containers/create HTTP/1.1\r\nContent-Length: 99999999\r\n\r\n{";
    assert_eq!(status_of(&e.raw(huge.as_bytes())), 413);
    attacks.set(attacks.get() + 1);

    // --- State that changes after the check: a work folder swapped for a symlink between
    // create and start. A sandboxed engine (rootful here) got the folder pinned at create
    // (proxy::pin): the start goes ahead and the container sees the folder that was checked,
    // not the link. An engine that is not sandboxed (rootless, no runner container here) has
    // nothing pinned: the start is refused.
    let swap = e.work.join("_work/swap");
    std::fs::create_dir_all(&swap).unwrap();
    std::fs::write(swap.join("marker"), "checked-folder").unwrap();
    let (code, created) = e.create(
        "swapped",
        &["sh", "-c", "cat /s/marker; cat /s/token"],
        json!({"Binds": [format!("{}:/s", swap.display())]}),
    );
    assert_eq!(code, 201, "{created}");
    let swapped: Value = serde_json::from_str(&created).unwrap();
    let id = swapped["Id"].as_str().unwrap();
    std::fs::rename(&swap, e.work.join("_work/swap.old")).unwrap();
    std::os::unix::fs::symlink(&e.outside, &swap).unwrap();
    let start = e.req("POST", &format!("/v1.44/containers/{id}/start"), None);
    if is_root() {
        assert_eq!(start.0, 204, "{}", start.1);
        let (code, out, err) = e.docker(&["wait", id]);
        assert_eq!(code, 0, "{out}{err}");
        let (_, out, err) = e.docker(&["logs", id]);
        assert!(out.contains("checked-folder"), "{out}{err}");
        assert!(!out.contains(SECRET) && !err.contains(SECRET), "{out}{err}");
        let (_, c) = e.req("GET", &format!("/v1.44/containers/{id}/json"), None);
        let c: Value = serde_json::from_str(&c).unwrap();
        let source = c["Mounts"][0]["Source"].as_str().unwrap_or("").to_string();
        assert!(
            source.starts_with(&e.dirs.pins().display().to_string()),
            "not pinned: {source}"
        );
        attacks.set(attacks.get() + 1);
    } else {
        attack(start, 403, "changed since it was created");
    }
    e.assert_host_untouched();

    // --- Limits (issue point 5): no combination lifts a container above the runner's. Rootless
    // Podman on cgroup v1 applies no limit at all (docs/docker.md, Resources): there the
    // engine shows none, whatever was asked.
    let info = podman_info();
    let limits_apply = is_root() || info.host.cgroup_version == "v2";
    for (name, hc) in [
        (
            "lim1",
            json!({"NanoCpus": 1_500_000_000i64, "CpuPeriod": 1000}),
        ),
        ("lim2", json!({"CpuPeriod": 1000})),
        (
            "lim3",
            json!({"CpuQuota": 100_000_000i64, "CpuPeriod": 1_000_000}),
        ),
        (
            "lim4",
            json!({"Memory": 1i64 << 40, "MemorySwap": -1, "PidsLimit": -1, "OomScoreAdj": -1000}),
        ),
    ] {
        let (code, out) = e.create(name, &["true"], hc.clone());
        assert_eq!(code, 201, "{hc}: {out}");
        let (_, c) = e.req("GET", &format!("/v1.44/containers/{name}/json"), None);
        let c: Value = serde_json::from_str(&c).unwrap();
        let h = &c["HostConfig"];
        let (quota, period, nano) = (
            h["CpuQuota"].as_i64().unwrap_or(0),
            h["CpuPeriod"].as_i64().unwrap_or(0),
            h["NanoCpus"].as_i64().unwrap_or(0),
        );
        let cpus = if quota > 0 {
            quota as f64 / period.max(1) as f64
        } else {
            nano as f64 / 1e9
        };
        assert!(h["OomScoreAdj"].as_i64().unwrap_or(0) >= 0, "{name}: {h}");
        attacks.set(attacks.get() + 1);
        if !limits_apply {
            assert_eq!(
                (cpus, &h["Memory"], &h["PidsLimit"]),
                (0.0, &json!(0), &json!(0)),
                "{h}"
            );
            continue;
        }
        assert!(cpus > 0.0 && cpus <= CPUS + 1e-9, "{name} {hc}: {h}");
        let mem = h["Memory"].as_i64().unwrap();
        assert!(mem > 0 && mem <= MEMORY, "{name}: {h}");
        let pids = h["PidsLimit"].as_i64().unwrap();
        assert!(pids > 0 && pids <= PIDS, "{name}: {h}");
    }
    // An update that would raise them is capped the same way (or refused by the engine).
    let (code, out) = e.json(
        "POST",
        "/v1.44/containers/lim1/update",
        &json!({"Memory": 1i64 << 40, "CpuPeriod": 1000, "PidsLimit": 0}),
    );
    let (_, c) = e.req("GET", "/v1.44/containers/lim1/json", None);
    let c: Value = serde_json::from_str(&c).unwrap();
    let h = &c["HostConfig"];
    assert!(
        !limits_apply || h["Memory"].as_i64().unwrap() <= MEMORY,
        "update {code} {out}: {h}"
    );
    let (quota, period) = (
        h["CpuQuota"].as_i64().unwrap_or(0),
        h["CpuPeriod"].as_i64().unwrap_or(0),
    );
    assert!(
        quota == 0 || quota as f64 / period.max(1) as f64 <= CPUS + 1e-9,
        "{h}"
    );
    attack(
        e.json(
            "POST",
            "/v1.44/containers/lim1/update",
            &json!({"CgroupParent": "/"}),
        ),
        403,
        "CgroupParent",
    );

    // Nothing of it reached the host.
    for name in ["smuggled1", "smuggled2", "attack", "hostvol"] {
        let (code, _) = e.req("GET", &format!("/v1.44/containers/{name}/json"), None);
        assert_eq!(code, 404, "{name} exists");
    }
    e.assert_host_untouched();
    let log = e.proxy_log();
    assert!(!log.contains("panicked"), "{log}");
    let attacks = attacks.get();
    assert!(attacks >= 40, "only {attacks} attacks");
    eprintln!("{attacks} attacks refused or defused");
}

/// Docker CLI 29 checks the engine's API version like this before anything else: `/_ping`'s
/// `Api-Version` header, then `/version`; below 1.44 it stops ("client version 1.52 is too new.
/// Maximum supported API version is 1.41" and "Minimum supported API version is 1.44").
fn cli29_negotiate(e: &Engine) -> String {
    let out = e.raw(b"HEAD /_ping HTTP/1.1\r\nHost: docker\r\n\r\n");
    let api = out
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("api-version")
                .then(|| v.trim().to_string())
        })
        .expect("no Api-Version on /_ping");
    let parts: Vec<u32> = api.split('.').map(|p| p.parse().unwrap()).collect();
    assert!(
        (parts[0], parts[1]) >= (1, 44),
        "a Docker CLI 29 client refuses API {api}: Minimum supported API version is 1.44"
    );
    let negotiated = if (parts[0], parts[1]) < (1, 52) {
        api
    } else {
        "1.52".into()
    };
    let (code, v) = e.req("GET", &format!("/v{negotiated}/version"), None);
    assert_eq!(code, 200, "{v}");
    let v: Value = serde_json::from_str(&v).unwrap();
    assert_eq!(v["ApiVersion"], json!(negotiated), "{v}");
    negotiated
}

#[test]
fn ordinary_docker_use_keeps_working() {
    let e = Engine::start();
    let work = e.work.join("_work/repo");
    let w = work.display().to_string();

    // A client that refuses engines below 1.44, as Docker CLI 29 does; then a job's container
    // through it, with 1.44's per-endpoint MAC address field.
    let v = cli29_negotiate(&e);
    let body = json!({"Image": TEST_IMAGE, "Cmd": ["sh", "-c", "echo hello-from-1.44"],
        "HostConfig": {"Binds": [format!("{w}:{w}")]},
        "NetworkingConfig": {"EndpointsConfig": {"bridge": {"MacAddress": ""}}}});
    let (code, out) = e.json(
        "POST",
        &format!("/v{v}/containers/create?name=cli29"),
        &body,
    );
    assert_eq!(code, 201, "{out}");
    let (code, out) = e.req("POST", &format!("/v{v}/containers/cli29/start"), None);
    assert_eq!(code, 204, "{out}");
    let (code, out) = e.req("POST", &format!("/v{v}/containers/cli29/wait"), None);
    assert_eq!(code, 200, "{out}");
    let (code, logs) = e.req(
        "GET",
        &format!("/v{v}/containers/cli29/logs?stdout=1"),
        None,
    );
    assert_eq!(code, 200);
    assert!(logs.contains("hello-from-1.44"), "{logs}");

    // The Docker CLI of this host (it negotiates the proxy's 1.44).
    let (code, out, err) = e.docker(&["version", "--format", "{{.Server.APIVersion}}"]);
    assert_eq!((code, out.trim()), (0, "1.44"), "{err}");
    std::fs::write(work.join("input.txt"), "from-the-work-folder\n").unwrap();
    let (code, out, err) = e.docker(&[
        "run",
        "--rm",
        "-v",
        &format!("{w}:{w}"),
        "-w",
        &w,
        TEST_IMAGE,
        "sh",
        "-c",
        "cat input.txt && echo written > output.txt",
    ]);
    assert_eq!(code, 0, "{out}{err}\n{}", e.proxy_log());
    assert!(out.contains("from-the-work-folder"), "{out}");
    assert_eq!(
        std::fs::read_to_string(work.join("output.txt")).unwrap(),
        "written\n"
    );

    // docker build with a COPY from its context.
    let ctx = work.join("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(ctx.join("payload.txt"), "copied-into-the-image\n").unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        format!("FROM {TEST_IMAGE}\nCOPY payload.txt /payload.txt\n"),
    )
    .unwrap();
    let (code, out, err) = e.docker(&[
        "build",
        "-q",
        "-t",
        "localhost/attack-suite-built:1",
        ctx.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}{err}\n{}", e.proxy_log());
    let (code, out, err) = e.docker(&[
        "run",
        "--rm",
        "localhost/attack-suite-built:1",
        "cat",
        "/payload.txt",
    ]);
    assert_eq!(
        (code, out.as_str()),
        (0, "copied-into-the-image\n"),
        "{err}"
    );

    // A container: job and a service container, with the runner's own docker commands
    // (docs/github-runner.md): a job network, the job container kept alive with
    // `tail -f /dev/null`, steps through `docker exec`, the service reached by its alias.
    let net = "github_network_0123456789abcdef";
    let (code, _, err) = e.docker(&["network", "create", "--label", "1234abcd", net]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = e.docker(&[
        "create",
        "--name",
        "svc_redis",
        "--label",
        "1234abcd",
        "--network",
        net,
        "--network-alias",
        "redis",
        "-e",
        "A=b",
        TEST_IMAGE,
        "sh",
        "-c",
        "while true; do echo service-ok | busybox nc -l -p 6379; done",
    ]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = e.docker(&["start", "svc_redis"]);
    assert_eq!(code, 0, "{err}");
    // Answers as a 1.44 daemon writes them (docs/docker.md, "Docker API version"): the
    // service's DNS names on the job network, its name first; images without `VirtualSize`,
    // and without `ContainerConfig` from 1.45.
    let (code, c) = e.req("GET", &format!("/v{v}/containers/svc_redis/json"), None);
    assert_eq!(code, 200, "{c}");
    let c: Value = serde_json::from_str(&c).unwrap();
    let names = &c["NetworkSettings"]["Networks"][net]["DNSNames"];
    assert_eq!(names[0], "svc_redis", "{c}");
    assert!(names.as_array().unwrap().contains(&json!("redis")), "{c}");
    let (code, out, err) = e.docker(&[
        "inspect",
        "--format",
        "{{json .NetworkSettings.Networks}}",
        "svc_redis",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(r#""DNSNames":["svc_redis","redis","#), "{out}");
    let image = |v: &str| {
        let (code, i) = e.req("GET", &format!("/v{v}/images/{TEST_IMAGE}/json"), None);
        assert_eq!(code, 200, "{i}");
        serde_json::from_str::<Value>(&i).unwrap()
    };
    let (i41, i44, i45) = (image("1.41"), image(&v), image("1.45"));
    assert!(i41.get("VirtualSize").is_some(), "{i41}");
    assert!(i44.get("VirtualSize").is_none(), "{i44}");
    assert!(i44.get("ContainerConfig").is_some(), "{i44}");
    assert!(i45.get("ContainerConfig").is_none(), "{i45}");
    let (code, _, err) = e.docker(&[
        "create",
        "--name",
        "job_ctr",
        "--label",
        "1234abcd",
        "--workdir",
        &w,
        "--network",
        net,
        "--network-alias",
        "job",
        "-e",
        "HOME=/github/home",
        "-e",
        "GITHUB_ACTIONS=true",
        "-e",
        "CI=true",
        "-v",
        "/var/run/docker.sock:/var/run/docker.sock",
        "-v",
        &format!("{}:/__w", e.work.join("_work").display()),
        "-v",
        &format!("{w}:{w}"),
        "--entrypoint",
        "tail",
        TEST_IMAGE,
        "-f",
        "/dev/null",
    ]);
    assert_eq!(code, 0, "{err}\n{}", e.proxy_log());
    let (code, _, err) = e.docker(&["start", "job_ctr"]);
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = e.docker(&[
        "ps",
        "--all",
        "--filter",
        "name=job_ctr",
        "--filter",
        "status=running",
        "--no-trunc",
        "--format",
        "{{.ID}} {{.Status}}",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(" Up"), "{out}");
    let (code, out, err) = e.docker(&[
        "exec", "-i", "--workdir", &w, "-e", "STEP=1", "job_ctr", "sh", "-e", "-c",
        "cat input.txt; echo step=$STEP; test -S /var/run/docker.sock && echo socket-ok; busybox nc -w 10 redis 6379 </dev/null",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    for want in ["from-the-work-folder", "step=1", "socket-ok", "service-ok"] {
        assert!(out.contains(want), "{want} missing: {out}");
    }
    let (code, _, err) = e.docker(&["rm", "--force", "job_ctr", "svc_redis"]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = e.docker(&["network", "rm", net]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = e.docker(&["network", "prune", "--force", "--filter", "label=1234abcd"]);
    assert_eq!(code, 0, "{err}");

    // Named volumes and a tmpfs volume.
    let (code, _, err) = e.docker(&["volume", "create", "cache"]);
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = e.docker(&[
        "run",
        "--rm",
        "-v",
        "cache:/cache",
        "--tmpfs",
        "/scratch:size=16m",
        TEST_IMAGE,
        "sh",
        "-c",
        "echo x > /cache/f && cat /cache/f",
    ]);
    assert_eq!((code, out.as_str()), (0, "x\n"), "{err}");
    let (code, _, err) = e.docker(&["volume", "rm", "cache"]);
    assert_eq!(code, 0, "{err}");

    e.assert_host_untouched();
}

/// The externals copy (issue point 4): `container:` jobs execute it, and every runner of the
/// image maps the same copy, so a job that could write it would run its code in other
/// runners' jobs. Each way of mounting it writable is made read-only or refused, `docker cp`
/// into it writes nothing, and a second runner of the image still reads the copy as it was.
/// A control shows the same write works in the work folder (so a refusal here is the
/// read-only bind, not a permission).
#[test]
fn jobs_cannot_change_the_externals_other_runners_get() {
    let e = Engine::start();
    let before = tree(&e.externals);
    let ext = e.externals.display().to_string();
    let w = e.work.join("_work/repo").display().to_string();
    let write = "echo evil > /x/podrunner-marker; mkdir -p /x/node20/bin; echo evil > /x/node20/bin/node; touch /x/planted";
    let run = |args: &[&str]| {
        let mut a = vec!["run", "--rm", "--user", "0"];
        a.extend_from_slice(args);
        a.extend_from_slice(&[TEST_IMAGE, "sh", "-c", write]);
        e.docker(&a)
    };
    // Control: root in a job container writes a folder it may bind writable.
    let (code, out, err) = run(&["-v", &format!("{w}:/x")]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(Path::new(&w).join("planted").exists());

    let mut attacks = 0;
    let link = e.work.join("_work/ext-link");
    std::os::unix::fs::symlink(&e.externals, &link).unwrap();
    let link = link.display().to_string();
    for how in [
        vec!["-v".to_string(), format!("{RUNNER_EXTERNALS}:/x")],
        vec!["-v".into(), format!("{RUNNER_EXTERNALS}:/x:rw")],
        vec!["-v".into(), format!("{RUNNER_EXTERNALS}:/x:ro,rw")],
        vec!["-v".into(), format!("{ext}:/x:rw")],
        vec!["-v".into(), format!("{ext}/node20:/x/node20:rw")],
        vec!["-v".into(), format!("{link}:/x:rw")],
        vec![
            "--mount".into(),
            format!("type=bind,source={RUNNER_EXTERNALS},target=/x"),
        ],
        vec![
            "--mount".into(),
            format!("type=bind,source={ext},target=/x,readonly=false"),
        ],
    ] {
        let args: Vec<&str> = how.iter().map(String::as_str).collect();
        let (_, out, err) = run(&args);
        let said = format!("{out}{err}");
        assert!(said.contains("Read-only file system"), "{how:?}: {said}");
        assert_eq!(tree(&e.externals), before, "{how:?} changed the externals");
        attacks += 1;
    }
    // A read-only holder, then its volumes taken over writable: refused.
    let (code, out, err) = e.docker(&[
        "create",
        "--name",
        "holder",
        "-v",
        &format!("{RUNNER_EXTERNALS}:/x:ro"),
        TEST_IMAGE,
        "sleep",
        "300",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = run(&["--volumes-from", "holder:rw"]);
    assert_ne!(code, 0, "{out}{err}");
    assert!(err.contains("HostConfig.VolumesFrom"), "{out}{err}");
    attacks += 1;
    // Without options the holder's read-only mode is kept.
    let (_, out, err) = run(&["--volumes-from", "holder"]);
    assert!(
        format!("{out}{err}").contains("Read-only file system"),
        "{out}{err}"
    );
    assert_eq!(tree(&e.externals), before);
    attacks += 1;
    // `docker cp` into the holder's read-only bind.
    let evil = e.dir.path().join("evil");
    std::fs::write(&evil, "evil").unwrap();
    // Podman writes through a read-only bind to its host source: refused for such containers.
    let evil = evil.to_str().unwrap();
    let (code, out, err) = e.docker(&[
        "create",
        "--name",
        "taker",
        "--volumes-from",
        "holder",
        TEST_IMAGE,
        "true",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    for target in [
        "holder:/x/podrunner-marker",
        "holder:/x/planted",
        "holder:/",
        "taker:/x/planted",
    ] {
        let (code, out, err) = e.docker(&["cp", evil, target]);
        assert_ne!(code, 0, "{target}: {out}{err}");
        assert!(
            err.contains("copying into a container"),
            "{target}: {out}{err}"
        );
        assert_eq!(
            tree(&e.externals),
            before,
            "docker cp {target} changed the externals"
        );
        attacks += 1;
    }
    // Copying out still works, and into a container without such binds.
    let (code, out, err) = e.docker(&["cp", "holder:/x/podrunner-marker", "-"]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = e.docker(&["create", "--name", "plain", TEST_IMAGE, "true"]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = e.docker(&["cp", evil, "plain:/tmp/evil"]);
    assert_eq!(code, 0, "{out}{err}");
    // Started and exec'd as root: the bind is read-only in the container's kernel mount.
    let (code, out, err) = e.docker(&["start", "holder"]);
    assert_eq!(code, 0, "{out}{err}");
    let (_, out, err) = e.docker(&["exec", "--user", "0", "holder", "sh", "-c", write]);
    assert!(
        format!("{out}{err}").contains("Read-only file system"),
        "{out}{err}"
    );
    attacks += 1;
    assert_eq!(tree(&e.externals), before);
    e.assert_host_untouched();

    // A second runner of the same image maps the same copy and reads it as it was.
    let second = Engine::start_with(Some(&e.externals), false);
    let (code, out, err) = second.docker(&[
        "run",
        "--rm",
        "-v",
        &format!("{RUNNER_EXTERNALS}:/__e:ro"),
        TEST_IMAGE,
        "sh",
        "-c",
        "cat /__e/podrunner-marker; ls /__e",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(out, format!("{EXTERNALS_MARKER}node20\npodrunner-marker\n"));
    let log = e.proxy_log();
    assert!(!log.contains("panicked"), "{log}");
    eprintln!("{attacks} attacks on the externals refused or defused");
}

/// A request that got past the proxy (a proxy bug), simulated by talking to the engine's own
/// socket: the engine runs in a minimal root of its own and a pid namespace of its own
/// (docs/docker.md, The engine's own sandbox), so no bind it makes can reach the manager's
/// state folder, the token file, `/etc/shadow`, the host's root through `/proc/1/root`, or a
/// host path behind a symlink swapped into the work folder, while the work folder still binds.
/// Rootful, and rootless for an engine in its runner's user namespace (a runner not on the
/// host's network, as here).
#[test]
fn the_engine_itself_cannot_reach_the_managers_files() {
    let e = Engine::start_with(None, true);
    let state = e.dir.path().join("s");
    // The engine starts on its first request through the proxy.
    let (code, body) = e.req("GET", "/v1.44/version", None);
    assert_eq!(code, 200, "{body}");
    let engine = e.dirs.engine_socket();
    // `docker run` as root with binds `-v` and `script`, straight to the engine.
    let run = |binds: &[String], script: &str| {
        // No network: the probes are about binds, and a rootless engine re-makes its network
        // namespace for each short container on the default network, which fails now and then
        // (Podman 4.3; see docs/docker.md, "The engine's own sandbox").
        let mut a = vec!["run", "--rm", "--user", "0", "--network", "none"];
        for b in binds {
            a.extend(["-v", b.as_str()]);
        }
        a.extend([TEST_IMAGE, "sh", "-c", script]);
        e.docker_at(&engine, &a)
    };
    let host_files_unchanged = || {
        assert_eq!(std::fs::read_to_string(&e.secret).unwrap(), SECRET);
        assert_eq!(std::fs::read_to_string(state.join("db")).unwrap(), SECRET);
        assert!(
            !state.join("planted").exists(),
            "a file appeared in the state folder"
        );
        assert!(
            !e.outside.join("planted").exists(),
            "a file appeared on the host"
        );
    };

    // Control: a job container still binds the work folder.
    let w = e.work.join("_work/repo").display().to_string();
    let (code, out, err) = run(&[format!("{w}:/x")], "echo ok > /x/direct");
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(
        std::fs::read_to_string(e.work.join("_work/repo/direct")).unwrap(),
        "ok\n"
    );

    // The race itself, through the proxy: a thread swaps a work folder and a link to the
    // canary folder as fast as it can while containers binding that path are created and
    // started. Each create is refused (a link at the check or at the pin) or gets the folder
    // pinned; no container ever reads the canary.
    let repo = e.work.join("_work/repo");
    let racy = repo.join("racy");
    let parked = repo.join("racy.d");
    std::fs::create_dir_all(&racy).unwrap();
    std::fs::write(racy.join("marker"), "the-work-folder").unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let swapper = {
        let (stop, racy, parked, outside) = (
            stop.clone(),
            racy.clone(),
            parked.clone(),
            e.outside.clone(),
        );
        std::thread::spawn(move || {
            let mut swaps = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = std::fs::rename(&racy, &parked);
                let _ = std::os::unix::fs::symlink(&outside, &racy);
                let _ = std::fs::remove_file(&racy);
                let _ = std::fs::rename(&parked, &racy);
                swaps += 1;
                // The folder stays a moment, so that some creates pass the check.
                std::thread::sleep(Duration::from_millis(3));
            }
            swaps
        })
    };
    let (mut refused, mut pinned) = (0, 0);
    for i in 0..20 {
        let name = format!("race{i}");
        let (code, out) = e.create(
            &name,
            &["sh", "-c", "cat /s/marker; cat /s/token"],
            // No network: the race is about the bind (and a rootless engine's network setup
            // for twenty short containers in a row would dominate the test).
            json!({"Binds": [format!("{}:/s", racy.display())], "NetworkMode": "none"}),
        );
        if code != 201 {
            assert_eq!(code, 403, "{out}");
            if refused == 0 {
                eprintln!("race: first refusal: {out}");
            }
            refused += 1;
            continue;
        }
        let (code, out) = e.req("POST", &format!("/v1.44/containers/{name}/start"), None);
        if code != 204 {
            let log = std::fs::read_to_string(e.dirs.log()).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            panic!(
                "a pinned container starts ({i}): {code} {out}\nengine log, last lines first:\n{}",
                tail.join("\n")
            );
        }
        let (code, out, err) = e.docker(&["wait", &name]);
        assert_eq!(code, 0, "{out}{err}");
        let (_, out, err) = e.docker(&["logs", &name]);
        assert!(
            !out.contains(SECRET) && !err.contains(SECRET),
            "the race reached the host: {out}{err}"
        );
        assert!(out.contains("the-work-folder"), "{out}{err}");
        pinned += 1;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let swaps = swapper.join().unwrap();
    eprintln!("race: {swaps} swaps, {pinned} containers pinned, {refused} creates refused");
    assert!(pinned > 0 && swaps > 20, "{swaps} swaps, {pinned} pinned");
    host_files_unchanged();

    // The state folder: only the folders the engine keeps; the database is not there.
    let (code, out, err) = run(
        &[format!("{}:/s", state.display())],
        "ls -A /s; cat /s/db; touch /s/planted; echo evil > /s/db; true",
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        !out.contains(SECRET),
        "the engine showed the database: {out}"
    );
    let mut seen: Vec<&str> = out.lines().collect();
    seen.sort_unstable();
    assert_eq!(seen, ["d", "externals", "r", "w"], "{out}{err}");
    host_files_unchanged();

    // Paths the engine's root does not hold, or holds as its own: the token file, the
    // canary folder, the host's root, its root through /proc, /etc/shadow.
    let token = e.secret.display().to_string();
    let outside = e.outside.display().to_string();
    let probes = [
        (token.clone(), "cat /h; echo evil > /h"),
        (outside.clone(), "cat /h/token; touch /h/planted"),
        (
            "/".to_string(),
            &*format!("cat /h{token}; cat /h/etc/shadow; ls /h/etc; touch /h{outside}/planted"),
        ),
        (
            "/proc/1/root".to_string(),
            &*format!("cat /h{token}; ls /h/etc"),
        ),
        (
            "/proc/self/root".to_string(),
            &*format!("cat /h{token}; ls /h/etc"),
        ),
        ("/etc".to_string(), "ls /h; cat /h/shadow"),
    ];
    for (src, script) in probes {
        let (code, out, err) = run(&[format!("{src}:/h")], script);
        assert!(!out.contains(SECRET), "bind {src}: the token: {out}");
        for secret_file in ["shadow", "gshadow", "ssh"] {
            assert!(
                !out.lines().any(|l| l.trim() == secret_file),
                "bind {src}: the engine's /etc lists {secret_file} (exit {code}): {out}{err}"
            );
        }
        assert!(!out.contains("root:"), "bind {src}: a password file: {out}");
        host_files_unchanged();
    }

    // The symlink race of point 2 won (the engine is asked for a work-folder path that a job
    // turned into a link to the host after the proxy's check): the link resolves in the
    // engine's root, where the host's folders are not.
    std::os::unix::fs::symlink(&e.outside, repo.join("to-host")).unwrap();
    std::os::unix::fs::symlink("/", repo.join("to-root")).unwrap();
    for (link, script) in [
        ("to-host", "cat /h/token; touch /h/planted"),
        ("to-root", &*format!("cat /h{token}; cat /h/etc/shadow")),
    ] {
        let src = repo.join(link).display().to_string();
        let (_, out, _) = run(&[format!("{src}:/h")], script);
        assert!(!out.contains(SECRET), "link {link}: the token: {out}");
        assert!(
            !out.contains("root:"),
            "link {link}: a password file: {out}"
        );
        host_files_unchanged();
    }

    // Seen from the host: the engine's own root holds no /etc/shadow and none of the canary
    // folder, and its /proc shows only its own processes.
    let podman = e.engine_podman_pid();
    let root = PathBuf::from(format!("/proc/{podman}/root"));
    let etc: Vec<String> = std::fs::read_dir(root.join("etc"))
        .unwrap()
        .map(|d| d.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    for secret_file in ["shadow", "gshadow", "ssh", "sudoers"] {
        assert!(!etc.iter().any(|n| n == secret_file), "{etc:?}");
    }
    assert!(etc.iter().any(|n| n == "containers"), "{etc:?}");
    // (Podman makes a missing bind source as a folder, and the probes above wrote "evil"
    // where the database lies on the host: both landed in the engine's /tmp, a tmpfs of its
    // own.)
    for secret in [e.secret.clone(), state.join("db")] {
        let there = root.join(secret.strip_prefix("/").unwrap());
        let seen = std::fs::read_to_string(&there).unwrap_or_default();
        assert!(
            !seen.contains(SECRET),
            "{} is in the engine's root",
            secret.display()
        );
    }
    let pids: Vec<i32> = std::fs::read_dir(root.join("proc"))
        .unwrap()
        .filter_map(|d| d.unwrap().file_name().to_str()?.parse().ok())
        .collect();
    let init = std::fs::read(root.join("proc/1/cmdline")).unwrap();
    assert!(
        String::from_utf8_lossy(&init).contains("engine-exec"),
        "pid 1 of the engine's /proc is not its own init"
    );
    assert!(
        pids.len() < 20,
        "the engine sees the host's processes: {pids:?}"
    );
}
