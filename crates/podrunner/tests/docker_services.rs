//! Service containers the way workflows use them (docs/docker.md, Networking), with runners on
//! Podman's default network (no host networking) and no engine settings in the config: GitHub's
//! runner's own sequence of docker calls (actions/runner, ContainerOperationProvider and
//! DockerCommandManager), a step on the runner reaching the services at `localhost:PORT`, a
//! `container:` job reaching them by alias, a service's health check turning `healthy` without
//! systemd, two runners at once publishing the same port, and nothing left after the jobs.
//! Rootful and rootless (the engine in the user namespace owning its runner's network
//! namespace).

mod common;

use common::*;
use std::time::Duration;

/// Two jobs that start a network and containers each, on a loaded 2-core CI host.
const JOB_TIMEOUT: Duration = Duration::from_secs(150);

/// The runner's own `docker` sequence for a job with one service (`web`, ports `8080:8080` and
/// `9090`, a health check) and a job container, as actions/runner issues it, with checks in between. `tag`
/// names the job; its service serves a page saying `svc-of-TAG`. `barrier` is a folder shared
/// by the runners: each job waits there until `peers` jobs have their service up, so that the
/// services of all of them publish port 8080 at the same time.
fn github_sequence(tag: &str, barrier: &str, peers: usize) -> String {
    format!(
        r#"set -e
L=c0ffee
IMG={TEST_IMAGE}
wait_for() {{ n=0; while [ "$(ls {barrier} | grep -c "^$1-")" -lt {peers} ]; do n=$((n+1)); [ $n -lt 600 ] || {{ echo "barrier $1 timed out"; exit 1; }}; sleep 0.1; done; }}
# Clean up resources from previous jobs
docker ps --all --quiet --no-trunc --filter "label=$L"
docker network prune --force --filter "label=$L"
# Create local container network
N=github_network_$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
docker network create --label $L $N
# Starting web service container
SVC=$(docker create --name web_{tag} --label $L --network $N --network-alias web -p 8080:8080 -p 9090 --health-cmd "wget -q -O /dev/null http://127.0.0.1:8080/" --health-interval 1s --health-retries 60 -e GITHUB_ACTIONS=true -e CI=true $IMG sh -c 'mkdir -p /tmp/w && echo svc-of-{tag} > /tmp/w/index.html && httpd -p 9090 -h /tmp/w && exec httpd -f -p 8080 -h /tmp/w')
docker start $SVC
P=$(docker port $SVC 9090/tcp | head -1 | sed 's/.*://')
echo "ports: $(docker port $SVC | tr '\n' ' ')"
# Health check: the runner inspects the status until it is no longer "starting" (with a
# growing pause; here 1 s, bounded)
health() {{ docker inspect --format='{{{{if .Config.Healthcheck}}}}{{{{print .State.Health.Status}}}}{{{{end}}}}' $SVC; }}
H=$(health); n=0
while [ "$H" = starting ] && [ $n -lt 100 ]; do n=$((n+1)); sleep 1; H=$(health); done
echo "health: [$H]"
# Starting job container
JOB=$(docker create --name job_{tag} --label $L --workdir "$PWD" --network $N -e GITHUB_ACTIONS=true -e CI=true -v "$PWD":"$PWD" --entrypoint tail $IMG -f /dev/null)
docker start $JOB
touch {barrier}/up-{tag}
wait_for up
get() {{ printf 'GET / HTTP/1.0\r\n\r\n' | nc -w 5 "$1" "$2" | tail -1; }}
ok=0
for i in $(seq 50); do r=$(get 127.0.0.1 8080 || true); [ "$r" = svc-of-{tag} ] && ok=1 && break; sleep 0.1; done
echo "step localhost:8080 -> $(get 127.0.0.1 8080)"
echo "step localhost:$P -> $(get localhost $P)"
timeout 20 docker exec $JOB true; echo "exec-true rc=$?"
timeout 20 docker exec $JOB cat /etc/resolv.conf; echo "exec-resolv rc=$?"
timeout 30 docker exec $JOB nslookup web; echo "exec-nslookup rc=$?"
echo "container web:8080 -> $(docker exec $JOB sh -c "printf 'GET / HTTP/1.0\r\n\r\n' | nc -w 5 web 8080 | tail -1")"
echo "container $N-alias web:9090 -> $(docker exec $JOB sh -c "printf 'GET / HTTP/1.0\r\n\r\n' | nc -w 5 web 9090 | tail -1")"
touch {barrier}/done-{tag}
wait_for done
# Stop containers, remove the network (the runner's post-job step)
docker rm --force $SVC $JOB >/dev/null
docker network rm $N >/dev/null
echo "left: containers=$(docker ps -aq | wc -l) networks=$(docker network ls -q --filter label=$L | wc -l)"
"#
    )
}

/// The runners' and engines' logs, and the manager's last lines, for a failure message.
fn diagnostics(b: &Bench) -> String {
    let mut s = String::new();
    for f in walk(&b.state_dir()) {
        let name = f.display().to_string();
        if name.ends_with(".log") && !name.contains("/root/") {
            let text = std::fs::read_to_string(&f).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let tail = lines[lines.len().saturating_sub(15)..].join("\n");
            s.push_str(&format!("--- {name}:\n{tail}\n"));
        }
    }
    format!("{s}--- manager:\n{}", b.log_tail(30))
}

#[tokio::test(flavor = "multi_thread")]
async fn services_on_localhost_and_by_alias_two_runners_at_once() {
    let mut b = Bench::new_bridged("svc", vec![Pool::new("sv", 2)]).await;
    // A folder both runners see, for the jobs' barrier (the runner's user is not root).
    let barrier = b.dir.path().join("barrier");
    std::fs::create_dir(&barrier).unwrap();
    std::fs::set_permissions(
        &barrier,
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .unwrap();
    let mount = format!("--volume={}:/barrier", barrier.display());
    b.edit_config(|s| format!("{s}run_args = [{mount:?}]\n"));
    let text = std::fs::read_to_string(&b.config).unwrap();
    assert!(
        !text.contains("--network"),
        "runners are not on the host's network: {text}"
    );
    assert!(!text.contains("engine_containers_conf"));
    b.start_manager();
    b.wait_until("two idle runners", Duration::from_secs(90), |b| {
        b.runners_in("idle").len() == 2
    })
    .await;
    let ids: Vec<u64> = ["a", "b"]
        .iter()
        .map(|t| {
            b.gh.enqueue_job(SCOPE, LABELS, &github_sequence(t, "/barrier", 2))
                .id
        })
        .collect();
    let mut jobs = Vec::new();
    for (id, tag) in ids.iter().zip(["a", "b"]) {
        let j =
            b.gh.wait_job_completed(*id, JOB_TIMEOUT)
                .await
                .unwrap_or_else(|| panic!("job {tag} did not complete\n{}", diagnostics(&b)));
        jobs.push((tag, j));
    }
    let all: String = jobs
        .iter()
        .map(|(t, j)| format!("job {t}:\n{}\n", j.output.clone().unwrap_or_default()))
        .collect();
    let mut runners = Vec::new();
    for (tag, j) in jobs {
        let out = j.output.clone().unwrap_or_default();
        assert_eq!(
            format!("{:?}", j.conclusion),
            "Some(Success)",
            "job {tag} failed; {all}\n{}",
            diagnostics(&b)
        );
        let want = format!("svc-of-{tag}");
        // Each runner's own service, on its own loopback: both publish 8080 at once.
        assert!(
            out.contains(&format!("step localhost:8080 -> {want}\n")),
            "{out}"
        );
        assert!(out.contains(&format!("-> {want}\n")), "{out}");
        let random_port = out
            .lines()
            .filter_map(|l| l.strip_prefix("step localhost:"))
            .find(|l| !l.starts_with("8080 "))
            .unwrap_or_else(|| panic!("{out}"));
        assert!(random_port.ends_with(&format!(" -> {want}")), "{out}");
        // A container job reaches the service by its alias, on both ports.
        assert!(
            out.contains(&format!("container web:8080 -> {want}\n")),
            "{out}"
        );
        assert!(
            out.contains(&format!("alias web:9090 -> {want}\n")),
            "{out}"
        );
        // No systemd here: the proxy runs the check (proxy/health.rs).
        assert!(out.contains("health: [healthy]"), "{out}");
        assert!(out.contains("left: containers=0 networks=0"), "{out}");
        runners.push(j.runner_name.unwrap());
    }
    assert_ne!(runners[0], runners[1], "two runners at once");
    // After the runners exit: their engines are gone with everything in them.
    b.wait_until("the two runners replaced", Duration::from_secs(90), |b| {
        let names = b.runners_in("idle");
        names.len() == 2 && runners.iter().all(|r| !names.contains(r))
    })
    .await;
    let state = b.state_dir().join("engines");
    b.wait_until("their engines removed", Duration::from_secs(30), |_| {
        runners.iter().all(|r| !state.join(r).exists())
    })
    .await;
    let left = processes_naming(&state, None);
    let left: Vec<&String> = left
        .iter()
        .filter(|c| runners.iter().any(|r| c.contains(r.as_str())))
        .collect();
    assert!(left.is_empty(), "processes of the old engines: {left:?}");
    b.cli(&["stop"]);
    b.wait_manager_exit(Duration::from_secs(60)).await;
}
