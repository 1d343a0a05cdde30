//! The manager's loop driven for real, against the workspace's fake GitHub (in process) and a
//! fake `podman` (a shell script named by `[podman] path`): no container is started. Each test
//! runs [`Manager::run`] in a task, watches it through the control socket and the fakes, and
//! waits for conditions with generous deadlines, never for a fixed time.

use super::*;
use fake_github::FakeGithub;

const TOKEN: &str = "ghp_loop_test_token";
const REPO: &str = "octo/loop";
/// Generous: the machine that runs the tests may be loaded far beyond its cores.
const DEADLINE: Duration = Duration::from_secs(60);

/// Enough of podman for the loop: `run -d` starts a `sleep` whose pid goes to `--pidfile`,
/// `stop` and `rm` end it (the container was `--rm`), `ps` lists the live ones with their
/// labels, `events` streams nothing, `image inspect` knows every image. Every call is logged
/// to `calls.log`; a file `run-fails` makes `run` fail with its text, as podman does (125).
const FAKE_PODMAN: &str = r#"#!/bin/sh
dir="$(dirname "$0")"
echo "$*" >> "$dir/calls.log"
while [ $# -gt 0 ]; do
  case "$1" in
    --runtime|--root|--runroot|--storage-driver) shift 2 ;;
    --*) shift ;;
    *) break ;;
  esac
done
cmd="$1"; [ $# -gt 0 ] && shift
mkdir -p "$dir/c"
for a in "$@"; do last="$a"; done
end() {
  if [ -f "$dir/c/$1.pid" ]; then kill "$(cat "$dir/c/$1.pid")" 2>/dev/null; fi
  rm -f "$dir/c/$1.pid" "$dir/c/$1.json"
}
case "$cmd" in
  run)
    if [ -f "$dir/run-fails" ]; then cat "$dir/run-fails" >&2; exit 125; fi
    name=""; pidfile=""; labels=""
    while [ $# -gt 0 ]; do
      case "$1" in
        --name) name="$2"; shift 2 ;;
        --pidfile=*) pidfile="${1#--pidfile=}"; shift ;;
        --label) labels="$labels${labels:+,}\"${2%%=*}\":\"${2#*=}\""; shift 2 ;;
        *) shift ;;
      esac
    done
    sleep 300 </dev/null >/dev/null 2>&1 &
    pid=$!
    echo "$pid" > "$dir/c/$name.pid"
    [ -n "$pidfile" ] && echo "$pid" > "$pidfile"
    id="$(printf 'f%063d' "$pid")"
    printf '{"Id":"%s","Names":["%s"],"Labels":{%s},"State":"running","ExitCode":0}' "$id" "$name" "$labels" > "$dir/c/$name.json"
    echo "$id"
    ;;
  stop|rm) end "$last" ;;
  ps)
    printf '['; sep=''
    for f in "$dir"/c/*.json; do
      [ -e "$f" ] || continue
      n="$(basename "$f" .json)"
      if kill -0 "$(cat "$dir/c/$n.pid")" 2>/dev/null; then printf '%s%s' "$sep" "$(cat "$f")"; sep=','; else end "$n"; fi
    done
    printf ']\n'
    ;;
  events) exec sleep 300 ;;
  image) [ "$1" = inspect ] && echo "sha256:fakeimage" ;;
  *) exit 0 ;;
esac
"#;

struct Loop {
    dir: tempfile::TempDir,
    gh: FakeGithub,
    cfg: Config,
}

impl Loop {
    async fn new(count: u32) -> Loop {
        let dir = tempfile::Builder::new()
            .prefix("podrunner-loop-")
            .tempdir()
            .unwrap();
        let gh = FakeGithub::start(TOKEN).await.unwrap();
        let podman = dir.path().join("podman");
        std::fs::write(&podman, FAKE_PODMAN).unwrap();
        std::fs::set_permissions(&podman, std::fs::Permissions::from_mode(0o755)).unwrap();
        let token = dir.path().join("token");
        std::fs::write(&token, format!("{TOKEN}\n")).unwrap();
        std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).unwrap();
        let d = dir.path().display();
        let text = format!(
            "[github]\napi_url = \"{}\"\ntoken_file = \"{d}/token\"\n\n[podman]\npath = \"{d}/podman\"\n\n[manager]\ninstance = \"loop\"\nhost_id = \"h1\"\nstate_dir = \"{d}/state\"\nruntime_dir = \"{d}/run\"\n\n[[pool]]\nname = \"lp\"\nrepository = \"{REPO}\"\nrunner_name = \"lp\"\nimage = \"localhost/fake:latest\"\ncount = {count}\nrestart_delay = \"0s\"\nwork_dir = \"{d}/work\"\ndocker = \"none\"\n",
            gh.url()
        );
        let path = dir.path().join("config.toml");
        std::fs::write(&path, text).unwrap();
        let cfg = Config::load(&path, &config::Env::from_process()).unwrap();
        prepare_dirs(&cfg).unwrap();
        Loop { dir, gh, cfg }
    }

    /// Starts the manager's loop on a thread of its own (its future holds the history's
    /// connection across awaits, so it runs on a current-thread runtime, as in `podrunner run`).
    fn start(&self) -> std::thread::JoinHandle<anyhow::Result<()>> {
        let cfg = self.cfg.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(async move {
                let creds = github::auth::Credentials::from_config(&cfg.github)?;
                let gh = Client::with_credentials(&cfg.github.api_url, creds)?;
                let podman = Podman::from_config(&cfg.podman);
                Manager::new(cfg, Arc::new(gh), podman)
                    .run(RunOptions::default())
                    .await
            })
        })
    }

    async fn request(&self, req: Request) -> Option<Response> {
        control::request(&self.cfg.control_socket(), &req)
            .await
            .ok()
    }

    async fn status(&self) -> Option<StatusSnapshot> {
        self.request(Request::Status).await?.status
    }

    fn calls(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("calls.log")).unwrap_or_default()
    }

    fn path(&self, p: &str) -> std::path::PathBuf {
        self.dir.path().join(p)
    }
}

/// Asks for a drain. Even when nothing is left to wait for and the loop ends at once, the
/// answer arrives (the manager waits for its control connections before it exits).
async fn drain(l: &Loop) {
    let r = l
        .request(Request::Drain)
        .await
        .expect("the drain is answered");
    assert!(r.ok, "{r:?}");
}

/// Waits for the loop's thread to end (after a drain) and returns what `run` returned.
async fn ended(run: std::thread::JoinHandle<anyhow::Result<()>>) -> anyhow::Result<()> {
    wait_for("the loop to end", || {
        let done = run.is_finished();
        async move { done }
    })
    .await;
    run.join().expect("the loop panicked")
}

/// Polls `cond` until it holds; panics with `what` after [`DEADLINE`].
async fn wait_for<F, Fut>(what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let end = Instant::now() + DEADLINE;
    while !cond().await {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

use super::exec::entries;

/// A fixed pool fills: the loop registers a JIT runner on GitHub and runs its container with
/// the pool's labels; a drain deregisters it, stops the container, removes its files, and the
/// loop returns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_fills_then_drains_to_nothing() {
    let l = Loop::new(1).await;
    let run = l.start();
    wait_for("one idle runner in status", || async {
        l.status().await.is_some_and(|s| {
            s.runners.len() == 1 && s.runners[0].state == "idle" && s.pools[0].live == 1
        })
    })
    .await;
    let s = l.status().await.unwrap();
    let name = s.runners[0].name.clone();
    assert!(name.starts_with("lp-h1-"), "{name}");
    assert_eq!(s.pools[0].scope, REPO);
    assert_eq!(s.pools[0].failures, 0);
    let live = l.gh.live_runners();
    assert_eq!(live.len(), 1, "{live:?}");
    assert_eq!(live[0].name, name);
    assert_eq!(s.runners[0].runner_id, Some(live[0].id));
    let calls = l.calls();
    assert!(
        calls.contains(&format!("--label podrunner.runner-name={name}"))
            && calls.contains(&format!("--label podrunner.scope=repos/{REPO}")),
        "{calls}"
    );
    // The JIT config went to a file, never to podman's argv.
    assert!(!calls.contains(&l.gh.jit_configs_issued()[0]), "{calls}");
    assert_eq!(entries(&l.path("run/secrets")), vec![name.clone()]);

    drain(&l).await;
    let result = ended(run).await;
    assert!(result.is_ok(), "{result:?}");
    assert!(l.gh.live_runners().is_empty(), "{:?}", l.gh.live_runners());
    assert_eq!(l.gh.stats().runners_created, 1);
    let calls = l.calls();
    assert!(
        calls.contains(&format!("stop --ignore -t 60 {name}")),
        "{calls}"
    );
    assert!(entries(&l.path("run/secrets")).is_empty());
    assert!(entries(&l.path("work")).is_empty());
    assert!(
        entries(&l.path("c")).is_empty(),
        "{:?}",
        entries(&l.path("c"))
    );
}

/// `podman run` fails (a missing image): the registration the JIT call made is deleted, the
/// pool says why with a fix and backs off, and a drain still ends the loop.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_start_deletes_its_registration_and_backs_off() {
    let l = Loop::new(1).await;
    std::fs::write(
        l.path("run-fails"),
        "Error: localhost/fake:latest: image not known\n",
    )
    .unwrap();
    let run = l.start();
    wait_for("the start failure in status", || async {
        l.status().await.is_some_and(|s| {
            s.pools[0].failures >= 1
                && s.pools[0]
                    .last_error
                    .as_deref()
                    .is_some_and(|e| e.contains("is not available"))
        })
    })
    .await;
    let s = l.status().await.unwrap();
    let e = s.pools[0].last_error.clone().unwrap();
    assert!(
        e.starts_with("image localhost/fake:latest is not available: ") && e.contains("fix: "),
        "{e}"
    );
    wait_for("every registration deleted", || async {
        let st = l.gh.stats();
        l.gh.live_runners().is_empty() && st.runners_deleted == st.runners_created
    })
    .await;
    assert!(l.gh.stats().runners_created >= 1);
    assert!(!l.calls().contains("stop "), "{}", l.calls());

    drain(&l).await;
    let result = ended(run).await;
    assert!(result.is_ok(), "{result:?}");
    assert!(entries(&l.path("run/secrets")).is_empty());
}

/// A runner's container ends by itself (its job done, or killed): the loop sees the exit
/// through the pid file, cleans up and starts a replacement, with no call to stop it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exited_runner_is_replaced() {
    let l = Loop::new(1).await;
    let run = l.start();
    wait_for("one idle runner", || async {
        l.status()
            .await
            .is_some_and(|s| s.runners.len() == 1 && s.runners[0].state == "idle")
    })
    .await;
    let first = l.status().await.unwrap().runners[0].name.clone();
    let pid = std::fs::read_to_string(l.path(&format!("c/{first}.pid"))).unwrap();
    let args = ["-KILL".to_string(), pid.trim().to_string()];
    crate::cmd::run("kill", &args, None, Duration::from_secs(30))
        .await
        .unwrap();
    wait_for("a replacement running", || async {
        l.status().await.is_some_and(|s| {
            s.runners.len() == 1 && s.runners[0].name != first && s.runners[0].state == "idle"
        })
    })
    .await;
    assert_eq!(l.gh.stats().runners_created, 2);
    assert!(!l.calls().contains(&format!("stop --ignore -t 60 {first}")));
    drain(&l).await;
    let result = ended(run).await;
    assert!(result.is_ok(), "{result:?}");
    assert!(l.gh.live_runners().is_empty(), "{:?}", l.gh.live_runners());
}
