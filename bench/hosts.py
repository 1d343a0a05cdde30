#!/usr/bin/env python3
"""Several hosts, one config (docs/hosts.md): two managers with the same pools (count 2 each)
against one fake GitHub, standing in for two machines that share a config (each its own host
id through PODRUNNER_HOST_ID, its own instance and folders). Measures, while both are idle for
--idle seconds (default 30): registrations deleted and JIT calls made (4 are needed); then
--jobs jobs (default 40): each must run exactly once; then both stop: registrations and
containers left. Run it from the repository root: `bench/hosts.py` (--json for one object).
"""
import argparse, json, os, signal, subprocess, sys, time

from benchlib import IMAGE, ROOT, http, run_args, start_fake_github

TOKEN = "ghp_benchHOSTS0123456789"


def config(d, tok, base, host):
    path = os.path.join(d, f"{host}.toml")
    with open(path, "w") as f:
        f.write(f"""[github]
api_url = "{base}"
token_file = "{tok}"
[podman]
runtime = "runc"
run_args = {json.dumps(run_args())}
[manager]
instance = "bench-{host}"
state_dir = "{d}/{host}/state"
runtime_dir = "{d}/{host}/run"
log_file = false
[[pool]]
name = "ci"
repository = "octo/bench"
image = "{IMAGE}"
count = 2
work_dir = "{d}/{host}/work"
docker = "none"
""")
    return path


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--idle", type=int, default=30)
    ap.add_argument("--jobs", type=int, default=40)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    os.chdir(ROOT)
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "podrunner", "-p", "fake-github"], check=True)
    subprocess.run(["images/test-runner/build.sh"], check=True, stdout=subprocess.DEVNULL)
    target = os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")), "release")
    d, tok, fg, base = start_fake_github(target, "podrunner-hosts-", TOKEN)
    mgrs = []
    try:
        for host in ("a1", "b2"):
            cfg = config(d, tok, base, host)
            env = dict(os.environ, PODRUNNER_HOST_ID=host)
            mgrs.append(subprocess.Popen([os.path.join(target, "podrunner"), "--config", cfg, "run"], env=env,
                                         stdout=subprocess.DEVNULL, stderr=open(os.path.join(d, f"{host}.log"), "w")))
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            live = http(base + "/_fake/runners")["live"]
            if sum(1 for r in live if r["status"] == "online") >= 4:
                break
            time.sleep(0.2)
        else:
            sys.exit("the pools never became ready; see " + d)
        time.sleep(a.idle)
        rs = http(base + "/_fake/runners")
        idle = {"deleted": rs["deleted_total"], "jit_calls": rs["created_total"]}
        for _ in range(a.jobs):
            http(base + "/_fake/jobs", {"scope": "repos/octo/bench", "labels": ["self-hosted"], "script": "true"})
        t0 = time.monotonic()
        while True:
            js = http(base + "/_fake/jobs")
            js = js["jobs"] if isinstance(js, dict) else js
            if sum(1 for j in js if j["status"] == "completed") >= a.jobs:
                break
            if time.monotonic() - t0 > 600:
                sys.exit("jobs did not complete in 10 minutes")
            time.sleep(0.2)
        runners = [j["runner_name"] for j in js]
        once = len(set(runners)) == len(runners) == a.jobs
        by_host = {h: sum(1 for n in runners if f"-{h}-" in n) for h in ("a1", "b2")}
    finally:
        for m in mgrs:
            m.send_signal(signal.SIGTERM)
        for m in mgrs:
            try:
                m.wait(timeout=120)
            except subprocess.TimeoutExpired:
                m.kill()
    left = len(http(base + "/_fake/runners")["live"])
    containers = [n for h in ("a1", "b2") for n in subprocess.run(
        ["podman", "ps", "-a", "--filter", f"label=podrunner.instance=bench-{h}", "--format", "{{.Names}}"],
        capture_output=True, text=True).stdout.split()]
    fg.terminate()
    fg.wait()
    r = {"idle_s": a.idle, "deleted_while_idle": idle["deleted"], "jit_calls_while_idle": idle["jit_calls"],
         "jobs": a.jobs, "each_job_once": once, "jobs_by_host": by_host,
         "registrations_left": left, "containers_left": len(containers)}
    if a.json:
        print(json.dumps(r))
        return
    print("\n| measure | value |\n|---|---|")
    print(f"| registrations deleted while both idle for {a.idle} s | {r['deleted_while_idle']} |")
    print(f"| JIT calls while idle (4 needed) | {r['jit_calls_while_idle']} |")
    print(f"| {a.jobs} jobs, each run exactly once | {'yes' if once else 'NO'} (by host: {by_host}) |")
    print(f"| registrations / containers left after both stopped | {left} / {len(containers)} |")


if __name__ == "__main__":
    main()
