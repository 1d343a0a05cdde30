//! Test bench for integration tests: a fake GitHub in the test process, a config pointing at
//! it, and the real `podrunner` binary driving real Podman with the locally built test image.
#![allow(
    clippy::disallowed_methods,
    reason = "test code starts the programs it tests and inspects the host directly"
)]
#![allow(
    dead_code,
    reason = "each test program uses a part of the shared helpers"
)]

use fake_github::FakeGithub;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Built by `images/test-runner/build.sh` (the test script runs it first). A build may name
/// other tags at compile time (`PODRUNNER_TEST_IMAGE`, `PODRUNNER_TEST_BROKEN_IMAGE`, given to
/// `build.sh --tag/--broken-tag` too) so that two checkouts on one host do not share an image.
pub const TEST_IMAGE: &str = match option_env!("PODRUNNER_TEST_IMAGE") {
    Some(tag) => tag,
    None => "localhost/podrunner-test-runner:latest",
};
/// The same image whose run.sh exits 3 at once.
pub const BROKEN_IMAGE: &str = match option_env!("PODRUNNER_TEST_BROKEN_IMAGE") {
    Some(tag) => tag,
    None => "localhost/podrunner-test-broken:latest",
};
pub const TOKEN: &str = "ghp_testTOKENdoNotLeak0123456789abcdef";
pub const REPO: &str = "octo/hello";
/// The scope of the bench's pools, as the fake GitHub's job queue names it.
pub const SCOPE: &str = "repos/octo/hello";
/// `runs-on` labels every bench pool's runners carry.
pub const LABELS: &[&str] = &["self-hosted", "linux"];
/// The bench manager's host id (`[manager] host_id`), so tests know its runners' names.
pub const BENCH_HOST_ID: &str = "h1";

/// The binary under test; `PODRUNNER_BIN` overrides it when the compiled tests run elsewhere
/// (the rootless pass copies them to a folder the test user can read).
/// Starts `podrunner run` on `config` at debug level, its output appended to `log`: the
/// bench's manager, and the second managers of the several-hosts tests.
pub fn spawn_manager(config: &Path, log: &Path, env: &[(&str, &str)]) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    Command::new(podrunner_bin())
        .args([
            "--config",
            config.to_str().unwrap(),
            "--log-level",
            "debug",
            "run",
        ])
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap()
}

pub fn podrunner_bin() -> String {
    std::env::var("PODRUNNER_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_podrunner").to_string())
}

/// Runs the podrunner binary with `args` (no config named); returns (exit code, stdout,
/// stderr).
pub fn podrunner(args: &[&str]) -> (i32, String, String) {
    texts(Command::new(podrunner_bin()).args(args).output().unwrap())
}

/// An output as (exit code, stdout, stderr); -1 for a process ended by a signal.
pub fn texts(out: Output) -> (i32, String, String) {
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs `cmd` (stdin closed) and waits for it; kills it and panics after `timeout`, so a hung
/// program fails its test instead of the CI run.
pub fn run_with_timeout(cmd: &mut Command, timeout: Duration) -> Output {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    // Read both pipes on threads so a chatty command cannot block on a full pipe.
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let t_out = std::thread::spawn(move || {
        let mut v = Vec::new();
        std::io::Read::read_to_end(&mut out, &mut v).ok();
        v
    });
    let t_err = std::thread::spawn(move || {
        let mut v = Vec::new();
        std::io::Read::read_to_end(&mut err, &mut v).ok();
        v
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{cmd:?} did not finish within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    Output {
        status,
        stdout: t_out.join().unwrap(),
        stderr: t_err.join().unwrap(),
    }
}

pub fn is_root() -> bool {
    // SAFETY-free: /proc/self is always there on Linux.
    std::fs::read_to_string("/proc/self/status")
        .map(|s| {
            s.lines()
                .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

/// Extra `podman run` arguments the test host needs: host networking so runners reach the
/// fake on 127.0.0.1, and (rootful on this VM) rlimits within the host's hard limits.
pub fn host_run_args() -> Vec<String> {
    let mut v = vec!["--network=host".to_string()];
    if is_root() {
        v.extend(ROOTFUL_ULIMITS.map(String::from));
    }
    v
}

/// The rlimits rootful containers on this host need: within its hard limits
/// (docs/test-bench.md).
pub const ROOTFUL_ULIMITS: [&str; 2] =
    ["--ulimit=nofile=20000:20000", "--ulimit=nproc=20000:20000"];

/// This host's address that containers on a Podman network reach it by, without host
/// networking: the source address of its default route (rootful bridge networks route to it
/// through their gateway; rootless slirp4netns connects to it from the host side). A UDP
/// "connect" sends nothing.
pub fn host_address() -> std::net::IpAddr {
    let s = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
    s.connect("192.0.2.1:9")
        .expect("a default route (TEST-NET-1 is routed by it)");
    s.local_addr().unwrap().ip()
}

/// A GitHub App the bench's fake GitHub knows, installed on the bench's repository owner.
pub struct AppCreds {
    pub app_id: u64,
    pub installation: u64,
    pub private_key_pem: String,
    pub key_file: PathBuf,
}

/// An RSA key pair made at run time: (PKCS#1 private key as GitHub hands it out, public key).
pub use fake_github::auth::rsa_key_pair;

pub struct Pool {
    pub name: &'static str,
    pub count: u32,
    pub image: &'static str,
    pub extra: String,
    /// Sized by demand (`min_idle`/`max` in `extra`): no `count` line.
    pub demand: bool,
}

impl Pool {
    pub fn new(name: &'static str, count: u32) -> Pool {
        Pool {
            name,
            count,
            image: TEST_IMAGE,
            extra: String::new(),
            demand: false,
        }
    }
    /// A pool sized by demand (docs/scaling.md), without a Docker engine: `sizing` holds its
    /// `min_idle`, `max`, `idle_timeout`, `scale_set` lines.
    pub fn demand(name: &'static str, sizing: &str) -> Pool {
        let mut p = Pool::no_engine(name, 0).extra(sizing);
        p.demand = true;
        p
    }
    /// A pool without a Docker engine per runner, for tests about podrunner's own behaviour
    /// (the engine has its own tests in docker_e2e.rs).
    pub fn no_engine(name: &'static str, count: u32) -> Pool {
        Pool::new(name, count).extra("docker = \"none\"")
    }
    pub fn image(mut self, image: &'static str) -> Pool {
        self.image = image;
        self
    }
    pub fn extra(mut self, toml: &str) -> Pool {
        self.extra.push_str(toml);
        self.extra.push('\n');
        self
    }
}

pub struct Bench {
    pub dir: tempfile::TempDir,
    pub gh: FakeGithub,
    pub config: PathBuf,
    pub instance: String,
    pub manager: Option<Child>,
    pub manager_log: PathBuf,
}

fn unique(name: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("t-{name}-{}-{:x}", std::process::id(), nanos % 0xffff)
}

impl Bench {
    pub async fn new(test: &str, pools: Vec<Pool>) -> Bench {
        Bench::new_on(test, pools, false).await
    }

    /// [`Bench::new`] with runners on Podman's default network instead of the host's: the fake
    /// GitHub listens on every interface and hands runners its URL at [`host_address`], while
    /// the manager uses loopback.
    pub async fn new_bridged(test: &str, pools: Vec<Pool>) -> Bench {
        Bench::new_on(test, pools, true).await
    }

    async fn new_on(test: &str, pools: Vec<Pool>, bridged: bool) -> Bench {
        assert_image(TEST_IMAGE);
        let dir = tempfile::Builder::new()
            .prefix("podrunner-test-")
            .tempdir()
            .unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let gh = if bridged {
            // The port is picked first: the public URL names it.
            let port = std::net::TcpListener::bind("0.0.0.0:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            FakeGithub::start_with(fake_github::Options {
                listen: std::net::SocketAddr::from(([0, 0, 0, 0], port)),
                token: TOKEN.to_string(),
                public_url: Some(format!("http://{}:{port}", host_address())),
                ghes_version: None,
            })
            .await
            .unwrap()
        } else {
            FakeGithub::start(TOKEN).await.unwrap()
        };
        let token_file = dir.path().join("token");
        std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
        std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o600)).unwrap();
        let instance = unique(test);
        let run_args: Vec<String> = host_run_args()
            .iter()
            .filter(|a| !(bridged && a.starts_with("--network")))
            .map(|a| format!("{a:?}"))
            .collect();
        let mut cfg = format!(
            "[github]\napi_url = \"{}\"\ntoken_file = \"{}\"\n\n[podman]\nruntime = \"runc\"\nrun_args = [{}]\n\n[manager]\ninstance = \"{instance}\"\nhost_id = \"{BENCH_HOST_ID}\"\nstate_dir = \"{}\"\nruntime_dir = \"{}\"\n",
            gh.url(),
            token_file.display(),
            run_args.join(", "),
            dir.path().join("state").display(),
            dir.path().join("run").display(),
        );
        for p in &pools {
            let count = if p.demand {
                String::new()
            } else {
                format!("count = {}\n", p.count)
            };
            cfg.push_str(&format!(
                "\n[[pool]]\nname = \"{}\"\nrepository = \"{REPO}\"\nrunner_name = \"{}-{}\"\nimage = \"{}\"\n{count}restart_delay = \"0s\"\nwork_dir = \"{}\"\n{}",
                p.name,
                p.name,
                &instance[instance.len() - 4..],
                p.image,
                dir.path().join("work").join(p.name).display(),
                p.extra
            ));
        }
        let config = dir.path().join("config.toml");
        std::fs::write(&config, cfg).unwrap();
        let manager_log = dir.path().join("manager.stderr");
        Bench {
            dir,
            gh,
            config,
            instance,
            manager: None,
            manager_log,
        }
    }

    /// Switches the bench to GitHub App authentication: a new App with a fresh key,
    /// installed on the repository's owner with Administration: write; the config names the
    /// App and its key file instead of the token file.
    pub fn use_app(&self) -> AppCreds {
        let (private, public) = rsa_key_pair();
        let app_id = 4242;
        self.gh.add_app(app_id, "Iv23liBENCH", &public);
        let owner = REPO.split('/').next().unwrap();
        let installation = self
            .gh
            .install_app(app_id, owner, &[("administration", "write")]);
        let key_file = self.dir.path().join("app.private-key.pem");
        std::fs::write(&key_file, &private).unwrap();
        std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).unwrap();
        let token_line = format!(
            "token_file = \"{}\"",
            self.dir.path().join("token").display()
        );
        let key_line = format!(
            "app_id = {app_id}\nprivate_key_file = \"{}\"",
            key_file.display()
        );
        self.edit_config(|c| c.replace(&token_line, &key_line));
        AppCreds {
            app_id,
            installation,
            private_key_pem: private,
            key_file,
        }
    }

    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// Starts `podrunner run` at debug level, its stderr into `manager_log` (appended).
    pub fn start_manager(&mut self) {
        self.start_manager_env(&[]);
    }

    /// [`Bench::start_manager`] with extra environment variables.
    pub fn start_manager_env(&mut self, env: &[(&str, &str)]) {
        self.manager = Some(spawn_manager(&self.config, &self.manager_log, env));
    }

    /// Runs a podrunner CLI command; returns (exit code, stdout, stderr).
    pub fn cli(&self, args: &[&str]) -> (i32, String, String) {
        texts(
            Command::new(podrunner_bin())
                .arg("--config")
                .arg(&self.config)
                .args(args)
                .output()
                .unwrap(),
        )
    }

    pub fn status_json(&self) -> serde_json::Value {
        let (code, out, err) = self.cli(&["status", "--json"]);
        assert!(code == 0 || code == 3, "status failed: {code} {err}");
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("status --json: {e}: {out}"))
    }

    /// Runners the manager reports in `state` (idle, busy, starting...).
    pub fn runners_in(&self, state: &str) -> Vec<String> {
        let v = self.status_json();
        v["status"]["runners"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter(|r| r["state"] == state)
                    .map(|r| r["name"].as_str().unwrap().to_string())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Waits until `pred` holds, polling every 200 ms.
    pub async fn wait_until(
        &self,
        what: &str,
        timeout: Duration,
        mut pred: impl FnMut(&Bench) -> bool,
    ) {
        let start = Instant::now();
        while start.elapsed() < timeout {
            if pred(self) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!(
            "timed out after {timeout:?} waiting for {what}\nmanager log:\n{}",
            self.log_tail(60)
        );
    }

    pub fn log_tail(&self, n: usize) -> String {
        let s = std::fs::read_to_string(&self.manager_log).unwrap_or_default();
        let lines: Vec<&str> = s.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// Containers of this test's instance, by name.
    pub fn containers(&self) -> Vec<String> {
        let out = Command::new("podman")
            .args([
                "ps",
                "-a",
                "--filter",
                &format!("label=podrunner.instance={}", self.instance),
                "--format",
                "{{.Names}}",
            ])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .filter(|s| !s.is_empty())
            .collect()
    }

    /// Waits for the manager process to exit; returns its exit code.
    pub async fn wait_manager_exit(&mut self, timeout: Duration) -> i32 {
        let start = Instant::now();
        let child = self.manager.as_mut().expect("manager started");
        loop {
            if let Some(st) = child.try_wait().unwrap() {
                self.manager = None;
                return st.code().unwrap_or(-1);
            }
            if start.elapsed() > timeout {
                panic!(
                    "manager did not exit within {timeout:?}\n{}",
                    self.log_tail(60)
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn kill_manager_hard(&mut self) {
        if let Some(mut c) = self.manager.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Rewrites the config file (before the manager starts, or before a reload).
    pub fn edit_config(&self, f: impl FnOnce(String) -> String) {
        let s = std::fs::read_to_string(&self.config).unwrap();
        std::fs::write(&self.config, f(s)).unwrap();
    }

    /// Turns on the metrics listener (`[manager] listen`) on a free loopback port; returns it.
    pub fn listen_on_free_port(&self) -> u16 {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let listen = format!("[manager]\nlisten = \"127.0.0.1:{port}\"\n");
        self.edit_config(|s| s.replacen("[manager]\n", &listen, 1));
        port
    }

    /// Points `[podman] path` at a wrapper script that runs the shell snippet `hook` (it sees
    /// the podman arguments as "$@" and the bench folder as $BENCH) and then the real podman.
    pub fn podman_wrapper(&self, hook: &str) -> PathBuf {
        let real = Command::new("sh")
            .args(["-c", "command -v podman"])
            .output()
            .unwrap();
        let real = String::from_utf8_lossy(&real.stdout).trim().to_string();
        let p = self.dir.path().join("podman-wrapper");
        std::fs::write(
            &p,
            format!(
                "#!/bin/sh\nBENCH={}\n{hook}\nexec {real} \"$@\"\n",
                self.dir.path().display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        let line = format!("[podman]\npath = \"{}\"\n", p.display());
        self.edit_config(|s| s.replacen("[podman]\n", &line, 1));
        p
    }

    /// The prefix of the names this bench's manager gives pool `pool`'s runners
    /// (`runner_name-host_id`, docs/hosts.md).
    pub fn prefix(&self, pool: &str) -> String {
        format!(
            "{pool}-{}-{BENCH_HOST_ID}",
            &self.instance[self.instance.len() - 4..]
        )
    }

    pub fn manager_pid(&self) -> Option<u32> {
        self.manager.as_ref().map(|c| c.id())
    }

    /// Whether the manager process still runs.
    pub fn manager_alive(&mut self) -> bool {
        self.manager
            .as_mut()
            .is_some_and(|c| c.try_wait().unwrap().is_none())
    }

    /// Entries of a folder under the bench's directory (empty when it does not exist).
    pub fn entries(&self, rel: &str) -> Vec<String> {
        std::fs::read_dir(self.dir.path().join(rel))
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn all_logs(&self) -> String {
        let mut s = std::fs::read_to_string(&self.manager_log).unwrap_or_default();
        s.push_str(
            &std::fs::read_to_string(self.state_dir().join("manager.log")).unwrap_or_default(),
        );
        s
    }
}

impl Drop for Bench {
    fn drop(&mut self) {
        self.kill_manager_hard();
        for c in self.containers() {
            let _ = Command::new("podman")
                .args(["rm", "-f", "-t", "0", &c])
                .output();
        }
        teardown_engines(&self.config);
        // Files a rootless job created may belong to subordinate ids.
        if !is_root() {
            let _ = Command::new("podman")
                .args(["unshare", "rm", "-rf"])
                .arg(self.dir.path())
                .output();
        }
    }
}

/// Per-runner docker engines (docs/docker.md) outlive a killed manager by design: tear them
/// down with the product's own teardown.
pub fn teardown_engines(config: &Path) {
    use podrunner::{config, engine::service, podman::Podman};
    let Ok(cfg) = config::Config::load(config, &config::Env::from_process()) else {
        return;
    };
    let names = service::orphans(&cfg, &Default::default());
    if names.is_empty() {
        return;
    }
    let podman = Podman::from_config(&cfg.podman);
    // Drop may run inside a test's runtime: use a thread with its own.
    let _ = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            for n in names {
                service::teardown(&cfg, &podman, &n).await;
            }
        });
    })
    .join();
}

pub fn assert_image(image: &str) {
    let ok = Command::new("podman")
        .args(["image", "exists", image])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(ok, "test image {image} is missing: run images/test-runner/build.sh (the README's test command does)");
}

/// Every process's argv on the host, as one string per process.
pub fn all_cmdlines() -> Vec<(i32, String)> {
    let mut v = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        if let Ok(b) = std::fs::read(Path::new("/proc").join(pid.to_string()).join("cmdline")) {
            v.push((pid, String::from_utf8_lossy(&b).replace('\0', " ")));
        }
    }
    v
}

/// Every file below `p`.
pub fn walk(p: &Path) -> Vec<PathBuf> {
    let mut v = Vec::new();
    if let Ok(rd) = std::fs::read_dir(p) {
        for e in rd.flatten() {
            let path = e.path();
            if path.is_dir() {
                v.extend(walk(&path));
            } else {
                v.push(path);
            }
        }
    }
    v
}

impl Bench {
    /// The first pool's `last_error` in `status --json`.
    pub fn pool_error(&self) -> String {
        self.status_json()["status"]["pools"][0]["last_error"]
            .as_str()
            .unwrap_or("")
            .to_string()
    }
}

/// Alive and not a zombie.
pub fn process_running(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .and_then(|(_, r)| r.split_whitespace().next().map(str::to_string))
        })
        .is_some_and(|st| st != "Z" && st != "X")
}

/// Live processes whose command line names `dir` (engines, proxies, conmon of job containers),
/// other than `except`.
pub fn processes_naming(dir: &Path, except: Option<u32>) -> Vec<String> {
    let d = dir.display().to_string();
    all_cmdlines()
        .into_iter()
        .filter(|(p, c)| c.contains(&d) && Some(*p as u32) != except && process_running(*p))
        .map(|(p, c)| format!("{p}: {c}"))
        .collect()
}
