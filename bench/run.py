#!/usr/bin/env python3
"""podrunner's benchmark: 100 trivial jobs through a pool of 4 with real Podman, against the
limit: the same 100 containers as four back-to-back loops of bare `podman run --rm IMAGE true`.

Prints jobs per minute for both and their ratio, p50/p95 replacement latency (a runner's job
completed -> its replacement registered and waiting for a job), the manager's peak RSS and CPU
seconds, and GitHub API calls per job. Run it from the repository root: `bench/run.py`.
Options: --jobs N (100), --pool N (4), --docker MODE (none) for the pool's docker mode,
--skip-bare (no bare loop), --json (one JSON object instead of the table; bench/docker-cost.sh),
--restart-delay D (the pool's restart_delay; podrunner's default when not given).
"""
import argparse, json, os, signal, subprocess, sys, time

from benchlib import IMAGE, ROOT, http, pct, proc_stats, run_args, start_fake_github
TOKEN = "ghp_benchTOKEN0123456789"


def sh(*args, **kw):
    return subprocess.run(args, check=True, **kw)




def bare_loop(jobs, parallel):
    per = jobs // parallel
    cmd = " ".join(["podman", "--runtime=runc", "run", "--rm"] + run_args() + [IMAGE, "true"])
    script = f"for i in $(seq {per}); do {cmd} >/dev/null || exit 1; done"
    t0 = time.monotonic()
    procs = [subprocess.Popen(["sh", "-c", script]) for _ in range(parallel)]
    for p in procs:
        if p.wait() != 0:
            sys.exit("bare podman loop failed")
    return per * parallel, time.monotonic() - t0






def host_cpu_s():
    """Busy CPU seconds of the whole host so far (user+nice+system+irq+softirq+steal)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return (v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / os.sysconf("SC_CLK_TCK")




def podrunner_run(jobs, pool, docker, target, script="true", restart_delay=None):
    d, tok, fg, base = start_fake_github(target, "podrunner-bench-", TOKEN)
    cfg = os.path.join(d, "config.toml")
    docker_line = f'docker = "{docker}"\n' if docker else ""
    # The pool's restart_delay: podrunner's default unless asked (it applies after failures).
    delay_line = f'restart_delay = "{restart_delay}"\n' if restart_delay is not None else ""
    with open(cfg, "w") as f:
        f.write(f"""[github]
api_url = "{base}"
token_file = "{tok}"
[podman]
runtime = "runc"
run_args = {json.dumps(run_args())}
[manager]
instance = "bench"
state_dir = "{d}/state"
runtime_dir = "{d}/run"
log_file = false
[[pool]]
name = "bench"
repository = "octo/bench"
image = "{IMAGE}"
count = {pool}
work_dir = "{d}/work"
{delay_line}{docker_line}""")
    mgr = subprocess.Popen([os.path.join(target, "podrunner"), "--config", cfg, "run"], stdout=subprocess.DEVNULL, stderr=open(os.path.join(d, "manager.log"), "w"))
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            live = http(base + "/_fake/runners")["live"]
            if sum(1 for r in live if r["status"] == "online") >= pool:
                break
            time.sleep(0.2)
        else:
            sys.exit("the pool never became ready; see " + d + "/manager.log")
        http(base + "/_fake/reset-stats", {})
        t0_ms = time.time() * 1000
        t0 = time.monotonic()
        cpu0 = host_cpu_s()
        for _ in range(jobs):
            http(base + "/_fake/jobs", {"scope": "repos/octo/bench", "labels": ["self-hosted"], "script": script})
        while True:
            js = http(base + "/_fake/jobs")
            js = js["jobs"] if isinstance(js, dict) else js
            done = [j for j in js if j["status"] == "completed"]
            if len(done) >= jobs:
                break
            if time.monotonic() - t0 > 1200:
                sys.exit("jobs did not complete in 20 minutes")
            time.sleep(0.1)
        elapsed = time.monotonic() - t0
        host_cpu = host_cpu_s() - cpu0
        calls = http(base + "/_fake/stats")["api_calls"]
        rss, cpu = proc_stats(mgr.pid)
        rs = http(base + "/_fake/runners")
        runners = rs["history"] + rs["live"]
        completions = sorted(j["completed_at"] for j in done)
        onlines = sorted(r["online_at"] for r in runners if r.get("online_at") and r["created_at"] >= t0_ms)
        lat = [(o - c) / 1000.0 for c, o in zip(completions, onlines) if o >= c]
        failed = [j for j in done if j["conclusion"] != "success"]
    finally:
        mgr.send_signal(signal.SIGTERM)
        try:
            mgr.wait(timeout=120)
        except subprocess.TimeoutExpired:
            mgr.kill()
        fg.terminate()
        fg.wait()
    return {"elapsed": elapsed, "calls": calls, "rss_mb": rss, "cpu_s": cpu, "latencies": lat, "failed": len(failed), "host_cpu_s": host_cpu}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=100)
    ap.add_argument("--pool", type=int, default=4)
    ap.add_argument("--docker", default="none")
    ap.add_argument("--skip-bare", action="store_true")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--script", default="true", help="what each job runs (sh -c)")
    ap.add_argument("--restart-delay", default=None, help="the pool's restart_delay (default: podrunner's default)")
    a = ap.parse_args()
    os.chdir(ROOT)
    sh("cargo", "build", "--release", "-q", "-p", "podrunner", "-p", "fake-github")
    sh("images/test-runner/build.sh", stdout=subprocess.DEVNULL)
    target = os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")), "release")
    if not a.skip_bare:
        n, bare_s = bare_loop(a.jobs, a.pool)
        bare_jpm = n / bare_s * 60
    r = podrunner_run(a.jobs, a.pool, a.docker, target, a.script, a.restart_delay)
    jpm = a.jobs / r["elapsed"] * 60
    if a.json:
        print(json.dumps({"docker": a.docker, "script": a.script, "jobs": a.jobs, "pool": a.pool, "elapsed_s": r["elapsed"], "jobs_per_min": jpm, "host_cpu_s": r["host_cpu_s"], "manager_cpu_s": r["cpu_s"], "failed": r["failed"]}))
        return
    print(f"\n| measure | value |\n|---|---|")
    if not a.skip_bare:
        print(f"| bare `podman run --rm IMAGE true`, {a.pool} loops | {bare_jpm:.1f} containers/min |")
    print(f"| podrunner, {a.jobs} jobs through a pool of {a.pool}{' (docker=' + a.docker + ')' if a.docker else ''} | {jpm:.1f} jobs/min |")
    if not a.skip_bare:
        print(f"| ratio (target >= 0.9 with the default config) | {jpm / bare_jpm:.2f} |")
    print(f"| replacement latency p50 / p95 | {pct(r['latencies'], 50):.2f} s / {pct(r['latencies'], 95):.2f} s |")
    print(f"| manager peak RSS (target <= 30 MB) | {r['rss_mb']:.1f} MB |")
    print(f"| manager CPU time | {r['cpu_s']:.2f} s |")
    print(f"| GitHub API calls per job (target <= 2) | {r['calls'] / a.jobs:.2f} |")
    print(f"| failed jobs | {r['failed']} |")


if __name__ == "__main__":
    main()
