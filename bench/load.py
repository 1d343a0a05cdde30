#!/usr/bin/env python3
"""podrunner under load (issue 6): one pool of 50 runners started at once on this machine with
the test image, while `podrunner status --json` is polled and each call timed.

Reports max / p95 / p50 status latency while the runners start (target: under 200 ms), the
time until all are idle, whether any runner was lost (registrations vs. containers vs. idle
runners, and after the drain: nothing left), and the manager's peak RSS and CPU seconds.
Run it from the repository root: `bench/load.py`. Options: --count N (50), --docker MODE
(none: podrunner's own cost, without an engine per runner), --debug (use the debug build),
--metrics (the metrics listener and the history on, /metrics scraped on every poll and the
status page fetched; without it the history is off, for the cost of neither).
"""
import argparse, json, os, signal, socket, subprocess, sys, time, urllib.request

from benchlib import IMAGE, ROOT, http, pct, proc_stats, run_args, start_fake_github
TOKEN = "ghp_loadTOKEN0123456789"










def socket_status(path):
    """One status request on the control socket (protocol v1): the manager's own latency,
    without the CLI's process start."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as c:
        c.settimeout(10)
        c.connect(path)
        c.sendall(b'{"v":1,"cmd":"status"}\n')
        buf = b""
        while not buf.endswith(b"\n"):
            chunk = c.recv(65536)
            if not chunk:
                break
            buf += chunk
    return json.loads(buf)


def containers(instance):
    out = subprocess.run(["podman", "ps", "-a", "--filter", f"label=podrunner.instance={instance}", "--format", "{{.Names}}"], capture_output=True, text=True).stdout
    return [l for l in out.splitlines() if l]


def proxy_memory(instance):
    """The idle pool's Docker proxies: how many, their summed proportional set size (shared
    pages of the one binary counted once), and how many engines run (none until a job calls
    docker)."""
    n, pss_kb, engines = 0, 0, 0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if instance not in cmd and f"/{instance}" not in cmd and "podrunner" not in cmd:
            continue
        if "docker-proxy" in cmd and "--listen=" in cmd:
            n += 1
            try:
                with open(f"/proc/{pid}/smaps_rollup") as f:
                    for line in f:
                        if line.startswith("Pss:"):
                            pss_kb += int(line.split()[1])
            except OSError:
                pass
        elif "system service" in cmd and "engine.sock" in cmd:
            engines += 1
    return n, pss_kb / 1024, engines


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--count", type=int, default=50)
    ap.add_argument("--docker", default="none")
    ap.add_argument("--debug", action="store_true")
    ap.add_argument("--timeout", type=int, default=900)
    ap.add_argument("--metrics", action="store_true")
    ap.add_argument("--no-build", action="store_true", help="use the binaries and image already built")
    a = ap.parse_args()
    os.chdir(ROOT)
    profile = [] if a.debug else ["--release"]
    if not a.no_build:
        subprocess.run(["cargo", "build", "-q", *profile, "-p", "podrunner", "-p", "fake-github"], check=True)
        subprocess.run(["images/test-runner/build.sh"], check=True, stdout=subprocess.DEVNULL)
    target = os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")), "debug" if a.debug else "release")
    podrunner = os.path.join(target, "podrunner")

    d, tok, fg, base = start_fake_github(target, "podrunner-load-", TOKEN)
    instance = f"load{os.getpid()}"
    cfg = os.path.join(d, "config.toml")
    mport = None
    if a.metrics:
        with socket.socket() as ps:
            ps.bind(("127.0.0.1", 0))
            mport = ps.getsockname()[1]
    observe = f'listen = "127.0.0.1:{mport}"\nhistory = true' if a.metrics else "history = false"
    scrape_lat = []
    with open(cfg, "w") as f:
        f.write(f"""[github]
api_url = "{base}"
token_file = "{tok}"
[podman]
runtime = "runc"
run_args = {json.dumps(run_args())}
[manager]
instance = "{instance}"
state_dir = "{d}/state"
runtime_dir = "{d}/run"
{observe}
[[pool]]
name = "load"
repository = "octo/load"
image = "{IMAGE}"
count = {a.count}
restart_delay = "0s"
work_dir = "{d}/work"
docker = "{a.docker}"
""")
    log = open(os.path.join(d, "manager.log"), "w")
    t0 = time.monotonic()
    mgr = subprocess.Popen([podrunner, "--config", cfg, "run"], stdout=log, stderr=log)
    lat, sock_lat, startup_lat, idle_at, online_at, last = [], [], [], None, None, None
    errors = 0
    sock = os.path.join(d, "run", f"{instance}.sock")
    try:
        while time.monotonic() - t0 < a.timeout:
            if os.path.exists(sock):
                try:
                    s = time.monotonic()
                    r = socket_status(sock)
                    took = time.monotonic() - s
                    # Counted from the first plan on (before it, the manager is still adopting).
                    if ((r.get("status") or {}).get("runners")):
                        sock_lat.append(took)
                    else:
                        startup_lat.append(took)
                except OSError:
                    pass
            if mport:
                try:
                    s = time.monotonic()
                    urllib.request.urlopen(f"http://127.0.0.1:{mport}/metrics", timeout=10).read()
                    scrape_lat.append(time.monotonic() - s)
                except OSError:
                    pass
            if online_at is None:
                live = http(base + "/_fake/runners")["live"]
                if sum(1 for r in live if r["status"] == "online") >= a.count:
                    online_at = time.monotonic() - t0
            s = time.monotonic()
            p = subprocess.run([podrunner, "--config", cfg, "status", "--json"], capture_output=True, text=True)
            took = time.monotonic() - s
            if p.returncode != 0 or not p.stdout.strip():
                if time.monotonic() - t0 > 5:
                    errors += 1
                time.sleep(0.1)
                continue
            v = json.loads(p.stdout)
            st = v.get("status") or {}
            runners = st.get("runners", [])
            if runners:
                lat.append(took)
            idle = sum(1 for r in runners if r["state"] == "idle")
            last = st
            if idle >= a.count and idle_at is None:
                idle_at = time.monotonic() - t0
            if idle_at is not None and online_at is not None:
                break
            time.sleep(0.1)
        rss, cpu = proc_stats(mgr.pid)
        live = http(base + "/_fake/runners")["live"]
        online = sum(1 for r in live if r["status"] == "online")
        stats = http(base + "/_fake/stats")
        stats["runners_created"] = http(base + "/_fake/runners")["created_total"]
        n_containers = len(containers(instance))
        proxies = proxy_memory(instance)
        page = None
        if mport:
            s = time.monotonic()
            body = urllib.request.urlopen(f"http://127.0.0.1:{mport}/", timeout=10).read()
            page = (time.monotonic() - s, len(body))
        # Idle for 10 s: what does a full idle pool cost?
        _, cpu_before = proc_stats(mgr.pid)
        time.sleep(10)
        _, cpu_after = proc_stats(mgr.pid)
        idle_cpu = (cpu_after - cpu_before) / 10 * 100
        ts = time.monotonic()
        mgr.send_signal(signal.SIGTERM)
        mgr.wait(timeout=600)
        drain_s = time.monotonic() - ts
        left_regs = len(http(base + "/_fake/runners")["live"])
        left_containers = len(containers(instance))
    finally:
        if mgr.poll() is None:
            mgr.kill()
        fg.terminate()
        fg.wait()
    print(f"\n| measure ({a.count} runners, one pool, docker={a.docker}, {'debug' if a.debug else 'release'} build) | value |\n|---|---|")
    print(f"| status calls timed while starting | {len(lat)} ({errors} failed) |")
    print(f"| `podrunner status --json` (CLI process) latency max / p95 / p50 | {max(lat) * 1000:.0f} / {pct(lat, 95) * 1000:.0f} / {pct(lat, 50) * 1000:.0f} ms |")
    print(f"| control socket status round trip ({len(sock_lat)} calls) max / p95 / p50 (target < 200 ms) | {max(sock_lat) * 1000:.0f} / {pct(sock_lat, 95) * 1000:.0f} / {pct(sock_lat, 50) * 1000:.0f} ms |")
    if startup_lat:
        print(f"| control socket status during start-up (adoption, before the first plan) max | {max(startup_lat) * 1000:.0f} ms |")
    print(f"| time until {a.count} idle (containers running) | {idle_at:.1f} s |" if idle_at else f"| time until {a.count} idle | not reached in {a.timeout} s |")
    print(f"| time until {a.count} online at GitHub (runners polling for jobs) | {online_at:.1f} s |" if online_at else f"| time until {a.count} online | not reached |")
    print(f"| registrations created / live / online | {stats['runners_created']} / {len(live)} / {online} |")
    print(f"| containers / runners idle at the end | {n_containers} / {sum(1 for r in (last or {}).get('runners', []) if r['state'] == 'idle')} |")
    print(f"| GitHub API calls to fill the pool | {stats['api_calls']} |")
    print(f"| metrics listener and history | {'on' if a.metrics else 'off'} |")
    print(f"| manager peak RSS | {rss:.1f} MB |")
    if scrape_lat:
        print(f"| /metrics scrapes while starting ({len(scrape_lat)}) max / p95 / p50 | {max(scrape_lat) * 1000:.0f} / {pct(scrape_lat, 95) * 1000:.0f} / {pct(scrape_lat, 50) * 1000:.0f} ms |")
    if page:
        print(f"| status page with {a.count} runners: size / time | {page[1] / 1024:.0f} KB / {page[0] * 1000:.0f} ms |")
    if a.docker == "isolated":
        n, pss, engines = proxies
        print(f"| Docker proxies of the idle pool: count / total PSS / engines running | {n} / {pss:.1f} MB / {engines} |")
    print(f"| manager CPU time to fill the pool | {cpu:.2f} s |")
    print(f"| manager CPU with {a.count} idle runners | {idle_cpu:.1f} % of a core |")
    print(f"| drain (SIGTERM) of {a.count} idle runners | {drain_s:.1f} s; left: {left_regs} registrations, {left_containers} containers |")
    lost = stats["runners_created"] != a.count or len(live) != a.count or n_containers != a.count or left_regs or left_containers
    print("\nno runner lost" if not lost else "\nRUNNERS LOST OR LEFT BEHIND: see " + d)
    sys.exit(1 if lost or not idle_at else 0)


if __name__ == "__main__":
    main()
