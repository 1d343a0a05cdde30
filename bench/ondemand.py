#!/usr/bin/env python3
"""Runners on demand (docs/scaling.md): how long a queued job waits for a runner to take it,
with real Podman against the fake GitHub.

Modes measured, each with --jobs jobs queued one at a time (the next once the pool is back at
rest): a scale set pool from zero (min_idle = 0), the same with min_idle = 1, and a label pool
polling queued jobs (poll_interval 2 s) from zero. Prints p50/p95 of queued -> running (the
fake's `queued_at` -> `started_at`: a runner acquired the job) and GitHub API calls per job
(the fake counts every call: REST, Actions service, message queue; 304s listed apart).
Run it from the repository root: `bench/ondemand.py [--jobs 20] [--debug]`. The 1-minute
load average is sampled as each job is queued and printed with the figures. The image is
$PODRUNNER_TEST_IMAGE when set (built with images/test-runner/build.sh).
"""
import argparse, json, os, signal, subprocess, sys, time

import benchlib
from benchlib import ROOT, http, pct, run_args, start_fake_github

TOKEN = "ghp_benchTOKEN0123456789"
IMAGE = os.environ.get("PODRUNNER_TEST_IMAGE", benchlib.IMAGE)
SCOPE = "repos/octo/bench"


def config(d, tok, base, pool):
    return f"""[github]
api_url = "{base}"
token_file = "{tok}"
[podman]
runtime = "runc"
run_args = {run_args()!r}
[manager]
instance = "ondemand"
state_dir = "{d}/state"
runtime_dir = "{d}/run"
log_file = false
[[pool]]
name = "od"
repository = "octo/bench"
image = "{IMAGE}"
docker = "none"
restart_delay = "0s"
work_dir = "{d}/work"
idle_timeout = "3s"
{pool}
""".replace("'", '"')


def online(base):
    return [r for r in http(base + "/_fake/runners")["live"] if r["status"] == "online" and not r["busy"]]


def ready(target, cfg):
    out = subprocess.run([os.path.join(target, "podrunner"), "--config", cfg, "status", "--json"],
                         capture_output=True, text=True)
    try:
        sc = json.loads(out.stdout)["status"]["pools"][0]["scaling"]
    except (ValueError, KeyError, IndexError, TypeError):
        return False
    return sc.get("session_held") is True or isinstance(sc.get("reported_secs_ago"), int)


def measure(target, pool, labels, jobs, min_idle):
    d, tok, fg, base = start_fake_github(target, "podrunner-ondemand-", TOKEN)
    cfg = os.path.join(d, "config.toml")
    with open(cfg, "w") as f:
        f.write(config(d, tok, base, pool))
    mgr = subprocess.Popen([os.path.join(target, "podrunner"), "--config", cfg, "run"],
                           stdout=subprocess.DEVNULL, stderr=open(os.path.join(d, "manager.log"), "w"))
    lat = []
    load = []
    try:
        # Ready: the scale set's session is open, or the label pool's first poll answered
        # (a job queued before its scale set exists is never routed to it by the fake).
        deadline = time.monotonic() + 120
        while not ready(target, cfg):
            if time.monotonic() > deadline:
                sys.exit("the pool never got ready; see " + d + "/manager.log")
            time.sleep(0.2)
        http(base + "/_fake/reset-stats", {})
        for _ in range(jobs):
            # At rest: min_idle runners waiting, nothing else.
            deadline = time.monotonic() + 60
            while len(online(base)) < min_idle or len(http(base + "/_fake/runners")["live"]) > min_idle:
                if time.monotonic() > deadline:
                    sys.exit("the pool did not come to rest; see " + d + "/manager.log")
                time.sleep(0.1)
            load.append(os.getloadavg()[0])
            j = http(base + "/_fake/jobs", {"scope": SCOPE, "labels": labels, "script": "true"})
            while True:
                j = http(base + f"/_fake/jobs/{j['id']}")
                if j["status"] == "completed":
                    break
                time.sleep(0.05)
            lat.append((j["started_at"] - j["queued_at"]) / 1000.0)
        stats = http(base + "/_fake/stats")
    finally:
        mgr.send_signal(signal.SIGTERM)
        try:
            mgr.wait(timeout=120)
        except subprocess.TimeoutExpired:
            mgr.kill()
        fg.terminate()
        fg.wait()
    routes = stats["by_route"]
    free = routes.get("304", 0)
    return lat, (stats["api_calls"] - free) / jobs, free / jobs, load


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=20)
    ap.add_argument("--debug", action="store_true",
                    help="use the debug binaries as they are (run `cargo build` first); for a host too busy for a release build")
    a = ap.parse_args()
    os.chdir(ROOT)
    profile = "debug" if a.debug else "release"
    if not a.debug:
        subprocess.run(["cargo", "build", "--release", "-q", "-p", "podrunner", "-p", "fake-github"], check=True)
    if subprocess.run(["podman", "image", "exists", IMAGE]).returncode != 0:
        subprocess.run(["images/test-runner/build.sh"], check=True, stdout=subprocess.DEVNULL)
    target = os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")), profile)
    rows = [
        ("scale set, min_idle = 0 (from zero)", 'scale_set = "od"\nmin_idle = 0\nmax = 4', ["od"], 0),
        ("scale set, min_idle = 1", 'scale_set = "od"\nmin_idle = 1\nmax = 4', ["od"], 1),
        ("label pool, poll_interval = 2s, from zero", 'min_idle = 0\nmax = 4\npoll_interval = "2s"', ["self-hosted"], 0),
    ]
    print(f"{a.jobs} jobs per mode, {profile} build")
    print("| mode | queued -> running p50 | p95 | counted API calls per job | free 304s per job | load average (1 min) during the run |")
    print("|---|---|---|---|---|---|")
    for name, pool, labels, min_idle in rows:
        lat, calls, free, load = measure(target, pool, labels, a.jobs, min_idle)
        print(f"| {name} | {pct(lat, 50):.2f} s | {pct(lat, 95):.2f} s | {calls:.1f} | {free:.1f} | "
              f"{min(load):.1f} to {max(load):.1f} |", flush=True)


if __name__ == "__main__":
    main()
