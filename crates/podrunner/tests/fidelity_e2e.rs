//! GitHub's real runner, as the fake runner reproduces it, against real Podman (issue 11):
//! two hosts sharing one config, outcomes read from the runner's own output, a runner that never
//! comes online, a deprecated image replaced by a pull, a self-update seen in the output.
#![allow(
    clippy::disallowed_methods,
    reason = "test code starts the programs it tests and inspects the host directly"
)]

mod common;

use common::*;
use std::process::{Child, Command};
use std::time::Duration;

fn jobs_of(b: &Bench) -> Vec<serde_json::Value> {
    serde_json::to_value(b.gh.jobs())
        .unwrap()
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn pool_status(v: &serde_json::Value, pool: &str) -> serde_json::Value {
    v["status"]["pools"]
        .as_array()
        .and_then(|a| a.iter().find(|p| p["name"] == pool).cloned())
        .unwrap_or_default()
}

fn podman(args: &[&str]) -> (bool, String) {
    let out = Command::new("podman")
        .args(["--runtime", "runc"])
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

/// A second manager for the same fake GitHub and the same pools: another "host" (its own
/// host id, instance, folders), as a machine sharing the config would be.
fn second_host(b: &Bench) -> (std::path::PathBuf, Child) {
    let dir = b.dir.path().join("host2");
    std::fs::create_dir_all(&dir).unwrap();
    let text = std::fs::read_to_string(&b.config).unwrap();
    let text = text
        .replace(
            &format!("instance = \"{}\"", b.instance),
            &format!("instance = \"{}-2\"", b.instance),
        )
        .replace(
            &format!("host_id = \"{BENCH_HOST_ID}\""),
            "host_id = \"h2\"",
        )
        .replace(
            &b.dir.path().join("state").display().to_string(),
            &dir.join("state").display().to_string(),
        )
        .replace(
            &b.dir.path().join("run").display().to_string(),
            &dir.join("run").display().to_string(),
        )
        .replace(
            &b.dir.path().join("work").display().to_string(),
            &dir.join("work").display().to_string(),
        );
    let config = dir.join("config.toml");
    std::fs::write(&config, text).unwrap();
    let child = spawn_manager(&config, &dir.join("manager.stderr"), &[]);
    (config, child)
}

fn status_of(config: &std::path::Path) -> serde_json::Value {
    let out = Command::new(podrunner_bin())
        .args(["--config", config.to_str().unwrap(), "status", "--json"])
        .output()
        .unwrap();
    serde_json::from_slice(&out.stdout).unwrap_or_default()
}

fn idle_count(v: &serde_json::Value) -> usize {
    v["status"]["runners"]
        .as_array()
        .map(|a| a.iter().filter(|r| r["state"] == "idle").count())
        .unwrap_or(0)
}

/// Two managers, one config, one repository: neither deletes the other's runners while idle,
/// every job runs exactly once, and nothing is left after both stop. The runners' own output
/// names each job and its result in `status`.
#[tokio::test(flavor = "multi_thread")]
async fn two_hosts_share_one_config_without_deleting_each_others_runners() {
    let mut b = Bench::new("hosts", vec![Pool::no_engine("fl", 2)]).await;
    b.start_manager();
    let (config2, mut m2) = second_host(&b);
    b.wait_until(
        "2 idle runners on each host",
        Duration::from_secs(60),
        |b| idle_count(&b.status_json()) == 2 && idle_count(&status_of(&config2)) == 2,
    )
    .await;
    // Idle for a while: every status call asks for a fresh list (one per 2 s at most), so
    // each manager reads the other's runners several times.
    for _ in 0..8 {
        b.status_json();
        status_of(&config2);
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let (created, deleted) = b.gh.with_state(|st| (st.created_total, st.deleted_total));
    assert_eq!(
        (created, deleted),
        (4, 0),
        "no deletes while idle, no extra JIT calls"
    );
    let names: Vec<String> = b.gh.live_runners().iter().map(|r| r.name.clone()).collect();
    let prefix = b.prefix("fl");
    let h2 = prefix.replace(&format!("-{BENCH_HOST_ID}"), "-h2");
    assert_eq!(
        names.iter().filter(|n| n.starts_with(&prefix)).count(),
        2,
        "{names:?}"
    );
    assert_eq!(
        names.iter().filter(|n| n.starts_with(&h2)).count(),
        2,
        "{names:?}"
    );

    for i in 0..6 {
        let script = if i == 5 { "exit 3" } else { "true" };
        b.gh.enqueue_job(SCOPE, LABELS, script);
    }
    assert!(b.gh.wait_jobs_completed(Duration::from_secs(90)).await);
    let jobs = jobs_of(&b);
    let mut runners: Vec<&str> = jobs
        .iter()
        .map(|j| j["runner_name"].as_str().unwrap())
        .collect();
    runners.sort();
    runners.dedup();
    assert_eq!(
        runners.len(),
        6,
        "each job on its own runner, each once: {jobs:?}"
    );
    assert!(jobs.iter().all(|j| j["status"] == "completed"));

    // The pools' last results, from the runners' own "completed with result" lines; a job
    // that failed is the job's failure, not the pool's.
    let n = |v: &serde_json::Value| {
        pool_status(v, "fl")["recent"]
            .as_array()
            .map_or(0, |a| a.len())
    };
    for _ in 0..150 {
        if n(&b.status_json()) + n(&status_of(&config2)) == 6 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let logs: Vec<String> = b
        .entries("state/logs")
        .iter()
        .map(|f| std::fs::read_to_string(b.state_dir().join("logs").join(f)).unwrap_or_default())
        .collect();
    assert_eq!(
        n(&b.status_json()) + n(&status_of(&config2)),
        6,
        "results in status: {}\n{}\nrunner logs:\n{}",
        b.status_json(),
        status_of(&config2),
        logs.join("\n")
    );
    let (s1, s2) = (b.status_json(), status_of(&config2));
    let mut results: Vec<String> = [&s1, &s2]
        .iter()
        .flat_map(|s| {
            pool_status(s, "fl")["recent"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .map(|r| r["result"].as_str().unwrap().to_string())
        .collect();
    results.sort();
    assert_eq!(
        results,
        [
            "failed",
            "succeeded",
            "succeeded",
            "succeeded",
            "succeeded",
            "succeeded"
        ]
    );
    assert_eq!(pool_status(&s1, "fl")["failures"], 0);
    assert_eq!(pool_status(&s2, "fl")["failures"], 0);

    // Both stop: nothing left on GitHub or in Podman.
    let _ = Command::new("kill").arg(m2.id().to_string()).status();
    if let Some(pid) = b.manager_pid() {
        let _ = Command::new("kill").arg(pid.to_string()).status();
    }
    assert_eq!(b.wait_manager_exit(Duration::from_secs(90)).await, 0);
    for _ in 0..900 {
        if m2.try_wait().unwrap().is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        m2.try_wait().unwrap().is_some(),
        "second manager did not stop"
    );
    assert_eq!(b.gh.live_runners().len(), 0);
    assert!(b.containers().is_empty());
    let (_, out) = podman(&[
        "ps",
        "-a",
        "--filter",
        &format!("label=podrunner.instance={}-2", b.instance),
        "--format",
        "{{.Names}}",
    ]);
    assert_eq!(out.trim(), "");
}

/// A runner whose listener cannot reach GitHub never comes online (run.sh restarts it
/// forever): it is retired after `online_timeout`, counted a failure, and its own error line,
/// not run.sh's closing lines, says why.
#[tokio::test(flavor = "multi_thread")]
async fn a_runner_that_never_comes_online_is_retired_with_its_error_line() {
    let mut b = Bench::new(
        "offline",
        vec![Pool::no_engine("no", 1).extra(
            "online_timeout = \"6s\"\nrun_args = [\"--env=FAKE_RUNNER_SERVER_URL=http://127.0.0.1:9\", \"--env=FAKE_RUNNER_RETRY_SECS=1\", \"--env=FAKE_RUNNER_RESTART_DELAY=1\"]",
        )],
    )
    .await;
    b.start_manager();
    b.wait_until("the retirement", Duration::from_secs(60), |b| {
        pool_status(&b.status_json(), "no")["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("did not come online within 6s"))
    })
    .await;
    let e = pool_status(&b.status_json(), "no")["last_error"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        e.contains("its last error: An error occurred: Could not talk to the server"),
        "{e}"
    );
    assert!(!e.contains("Restarting runner"), "{e}");
    assert!(pool_status(&b.status_json(), "no")["failures"].as_u64() >= Some(1));
    // Its registration was deleted with it.
    b.wait_until(
        "the first registration deleted",
        Duration::from_secs(30),
        |b| b.gh.with_state(|st| st.deleted_total) >= 1,
    )
    .await;
    b.cli(&["stop"]);
    b.wait_manager_exit(Duration::from_secs(90)).await;
    assert_eq!(b.gh.live_runners().len(), 0);
}

/// An image whose runner GitHub refuses as deprecated: the runner exits 7 (podrunner sets
/// ACTIONS_RUNNER_RETURN_VERSION_DEPRECATED_EXIT_CODE=1), status names the cause and the fix,
/// a pull starts at once (here from an OCI archive, `pull_source`, standing in for a registry),
/// the next runner uses the new image and runs the job, and the old image is removed. A
/// self-update seen in another pool's output shows as a stale image too.
#[tokio::test(flavor = "multi_thread")]
async fn a_deprecated_image_is_replaced_by_a_pull_and_self_updates_are_seen() {
    let mut b = Bench::new(
        "pull",
        vec![Pool::no_engine("dp", 1).extra("labels = [\"dp\"]"), Pool::no_engine("up", 1).extra(
            "pull = \"missing\"\nrun_args = [\"--env=FAKE_RUNNER_UPDATE_TO=2.999.1\", \"--env=FAKE_RUNNER_RESTART_DELAY=1\"]",
        )],
    )
    .await;
    let tag = |v: &str| {
        format!(
            "localhost/podrunner-test-fidelity:{v}-{}",
            std::process::id()
        )
    };
    let (old_tag, new_tag) = (tag("old"), tag("new"));
    let build = |t: &str, line: &str| {
        let ctx = b.dir.path().join(format!("ctx-{}", t.len() + line.len()));
        std::fs::create_dir_all(&ctx).unwrap();
        std::fs::write(
            ctx.join("Containerfile"),
            format!("FROM {TEST_IMAGE}\n{line}\n"),
        )
        .unwrap();
        let (ok, out) = podman(&["build", "--pull=never", "-t", t, ctx.to_str().unwrap()]);
        assert!(ok, "{out}");
    };
    build(&old_tag, "ENV FAKE_RUNNER_DEPRECATED=1");
    build(&new_tag, "LABEL podrunner.test=fresh");
    let archive = b.dir.path().join("new.tar");
    let (ok, out) = podman(&[
        "save",
        "--format",
        "oci-archive",
        "-o",
        archive.to_str().unwrap(),
        &new_tag,
    ]);
    assert!(ok, "{out}");
    let (_, new_id) = podman(&["image", "inspect", "--format", "{{.Id}}", &new_tag]);
    let (_, old_id) = podman(&["image", "inspect", "--format", "{{.Id}}", &old_tag]);
    podman(&["rmi", &new_tag]);
    b.edit_config(|s| {
        s.replacen(
            &format!("name = \"dp\"\nrepository = \"{REPO}\""),
            &format!(
                "name = \"dp\"\nrepository = \"{REPO}\"\npull_source = \"oci-archive:{}\"",
                archive.display()
            ),
            1,
        )
        .replacen(
            &format!(
                "image = \"{TEST_IMAGE}\"\ncount = 1\nrestart_delay = \"0s\"\nwork_dir = \"{}",
                b.dir.path().join("work/dp").display()
            ),
            &format!(
                "image = \"{old_tag}\"\ncount = 1\nrestart_delay = \"0s\"\nwork_dir = \"{}",
                b.dir.path().join("work/dp").display()
            ),
            1,
        )
    });
    assert!(std::fs::read_to_string(&b.config)
        .unwrap()
        .contains(&old_tag));
    b.start_manager();

    // The deprecated runner's reason, with the fix.
    b.wait_until("the deprecation in status", Duration::from_secs(60), |b| {
        pool_status(&b.status_json(), "dp")["last_error"]
            .as_str()
            .is_some_and(|e| {
                e.contains("GitHub refuses this runner version as deprecated")
                    && e.contains("fix: podrunner pulls the image now")
            })
            || b.log_tail(2000).contains("new image for")
    })
    .await;
    // The pull replaced the image: the tag now names the new one.
    b.wait_until(
        "the new image under the pool's tag",
        Duration::from_secs(60),
        |_| {
            podman(&["image", "inspect", "--format", "{{.Id}}", &old_tag])
                .1
                .trim()
                == new_id.trim()
        },
    )
    .await;
    let job =
        b.gh.enqueue_job(
            SCOPE,
            &["self-hosted", "dp"],
            "test -z \"$FAKE_RUNNER_DEPRECATED\"",
        )
        .id;
    assert!(b.gh.wait_jobs_completed(Duration::from_secs(60)).await);
    let j = b.gh.jobs().into_iter().find(|j| j.id == job).unwrap();
    assert!(
        j.runner_name
            .as_deref()
            .unwrap_or("")
            .starts_with(&b.prefix("dp")),
        "{j:?}"
    );
    assert_eq!(
        serde_json::to_value(j.conclusion).unwrap(),
        "success",
        "{j:?}"
    );
    // The old image goes once no container uses it.
    b.wait_until("the old image pruned", Duration::from_secs(60), |_| {
        !podman(&["image", "exists", old_id.trim()]).0
    })
    .await;
    let log = b.log_tail(1000);
    assert!(
        log.contains("An error occurred: Runner version v2.999.0-fake is deprecated"),
        "{log}"
    );

    // The pool "up": its runner updated itself before its job; the image is called stale and
    // a pull attempted (no registry here: it fails, and status says so).
    b.wait_until("the self-update in status", Duration::from_secs(60), |b| {
        let p = pool_status(&b.status_json(), "up");
        p["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("updating itself"))
            && p["image_error"].is_string()
    })
    .await;
    let job =
        b.gh.enqueue_job(SCOPE, &["self-hosted", "linux"], "true")
            .id;
    assert!(b.gh.wait_jobs_completed(Duration::from_secs(60)).await);
    assert!(b.gh.jobs().iter().any(|j| j.id == job));

    b.cli(&["stop"]);
    b.wait_manager_exit(Duration::from_secs(90)).await;
    assert_eq!(b.gh.live_runners().len(), 0);
    podman(&["rmi", "-f", &old_tag]);
}
