#!/usr/bin/env python3
"""One runner engine's cost, measured alone: a real `podrunner docker-proxy` in front of a
Podman engine it starts on the first request (as the manager runs both for a runner of a
`docker = "isolated"` pool; the engine joins this script's network namespace instead of a
runner's). For each of N rounds: the engine's start time (the first `GET /_ping` through the
proxy, which starts the engine and waits until it answers), the engine's RSS idle and with one
running container (the service plus the container's conmon), then the teardown. Prints the
median and the largest of each and the load average, or one JSON object with --json.
Rootless, the engine joins the user and network namespaces of a stand-in runner container (as
for a runner on Podman's default network; --host-network: this script's, as for a runner with
host networking, where the engine makes its own user namespace).
--bare: podman started directly, without engine-exec (no runner namespaces, no minimal root):
the baseline the sandbox's cost is read against.
Usage: bench/engine.py [--rounds N] [--json] [--host-network] [--bare]   (as the user whose engines are measured)
"""
import argparse, json, os, shutil, signal, socket, statistics, subprocess, sys, tempfile, time

from benchlib import IMAGE, ROOT

# A start on a loaded 2-core host takes seconds; past this the round counts as failed.
READY_TIMEOUT = 60


def podrunner_bin():
    for kind in ("release", "debug"):
        p = os.path.join(ROOT, "target", kind, "podrunner")
        if os.path.exists(p):
            return p
    sys.exit("build podrunner first (cargo build --release -p podrunner)")


def ping(sock_path, timeout):
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(timeout)
    s.connect(sock_path)
    s.sendall(b"GET /_ping HTTP/1.1\r\nHost: d\r\nConnection: close\r\n\r\n")
    out = b""
    while chunk := s.recv(4096):
        out += chunk
    s.close()
    return out.split(b" ", 2)[1] == b"200"


def rss_kb(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            return next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))
    except (OSError, StopIteration):
        return 0


def tree(pid):
    """`pid` and its descendants (the engine, its conmon processes)."""
    children = {}
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                with open(f"/proc/{p}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(p))
            except (OSError, ValueError, IndexError):
                pass
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def one_round(exe, info, host_network, bare):
    d = tempfile.mkdtemp(prefix="pe", dir="/tmp")  # short: Podman's run root path limit
    run, data = os.path.join(d, "r"), os.path.join(d, "d")
    for p in (run, data):
        os.makedirs(p)
    conf = os.path.join(data, "containers.conf")
    with open(conf, "w") as f:
        f.write("[containers]\n")
        if os.geteuid() == 0:
            f.write('default_ulimits = ["nofile=20000:20000", "nproc=20000:20000"]\n')
    pidf = os.path.join(d, "self.pid")
    runner = None
    if os.geteuid() != 0 and not host_network and not bare:
        runner = f"pe-runner-{os.getpid()}"
        subprocess.run(["podman", "run", "-d", "--rm", "--runtime=runc", f"--name={runner}", f"--pidfile={pidf}",
                        IMAGE, "sleep", "600"], check=True, stdout=subprocess.DEVNULL, timeout=120)
    else:
        with open(pidf, "w") as f:
            f.write(str(os.getpid()))
    store = info["store"]
    engine = ["podman", "--runtime=runc", f"--root={data}/root", f"--runroot={run}/rr", f"--tmpdir={run}/tmp",
              f"--network-config-dir={data}/networks", f"--storage-driver={store['graphDriverName']}"]
    if store["graphDriverName"] == "overlay":
        engine.append(f"--storage-opt=additionalimagestore={store['graphRoot']}")
    engine += ["system", "service", "--time=0", f"unix://{run}/engine.sock"]
    sock = os.path.join(run, "docker.sock")
    # The engine's sandbox as the manager asks for it (engine/sandbox.rs): its folders kept, the
    # host's images and the user's Podman settings read-only. --bare: podman alone, no
    # engine-exec (no runner namespaces, no minimal root), to see what the sandbox costs.
    sandbox = [f"--new-root={run}/fs", f"--scratch={data}/tmp", f"--keep={run}", f"--keep={data}"]
    if store["graphDriverName"] != "vfs":
        sandbox.append(f"--keep-read-only={store['graphRoot']}")
    user_conf = os.path.expanduser("~/.config/containers")
    if os.geteuid() != 0 and os.path.isdir(user_conf):
        sandbox.append(f"--keep-read-only={user_conf}")
    launch = engine if bare else [exe, "engine-exec", f"--runner-pid-file={pidf}",
                                  f"--netavark-run-dir={run}/netavark", *sandbox, "--", *engine]
    proxy = subprocess.Popen(
        [exe, "docker-proxy", f"--listen={sock}", f"--upstream={run}/engine.sock", "--pids=4096",
         f"--engine-conf={conf}", f"--engine-pid-file={run}/engine.pid", f"--engine-log={data}/engine.log",
         "--", *launch],
        stdout=subprocess.DEVNULL, stderr=open(os.path.join(d, "proxy.log"), "w"))
    env = dict(os.environ, DOCKER_HOST=f"unix://{sock}")
    try:
        deadline = time.monotonic() + 10
        while not os.path.exists(sock):
            if time.monotonic() > deadline:
                raise RuntimeError("the proxy did not listen")
            time.sleep(0.01)
        t0 = time.monotonic()
        if not ping(sock, READY_TIMEOUT):
            raise RuntimeError("the engine did not answer")
        start = time.monotonic() - t0
        with open(f"{run}/engine.pid") as f:
            pid = int(f.read())
        time.sleep(1)  # settled
        idle = sum(rss_kb(p) for p in tree(pid))
        subprocess.run(["docker", "run", "-d", "--name", "m", IMAGE, "sleep", "60"], env=env, check=True,
                       stdout=subprocess.DEVNULL, timeout=120)
        time.sleep(1)
        busy = sum(rss_kb(p) for p in tree(pid))
        subprocess.run(["docker", "rm", "-f", "m"], env=env, stdout=subprocess.DEVNULL, timeout=120)
        return start, idle / 1024, busy / 1024
    finally:
        subprocess.run(["docker", "rm", "-f", "m"], env=env, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, timeout=120)
        proxy.send_signal(signal.SIGTERM)
        proxy.wait()
        try:
            with open(f"{run}/engine.pid") as f:
                os.kill(int(f.read()), signal.SIGTERM)
            time.sleep(1)
        except (OSError, ValueError):
            pass
        if runner:
            subprocess.run(["podman", "rm", "-f", "-t", "0", runner], stdout=subprocess.DEVNULL)
        subprocess.run(["umount", "-R", f"{data}/root/overlay"], stderr=subprocess.DEVNULL)
        if os.geteuid() == 0:
            shutil.rmtree(d, ignore_errors=True)
        else:
            subprocess.run(["podman", "unshare", "rm", "-rf", d])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--host-network", action="store_true")
    ap.add_argument("--bare", action="store_true", help="podman alone, without engine-exec's sandbox")
    a = ap.parse_args()
    info = json.loads(subprocess.run(["podman", "info", "--format", "json"], capture_output=True, check=True).stdout)
    exe = podrunner_bin()
    load = os.getloadavg()[0]
    rounds = [one_round(exe, info, a.host_network, a.bare) for _ in range(a.rounds)]
    starts, idles, busies = zip(*rounds)
    r = {"rounds": a.rounds, "start_s_median": statistics.median(starts), "start_s_max": max(starts),
         "idle_mb_median": statistics.median(idles), "busy_mb_median": statistics.median(busies),
         "load_avg_1m": max(load, os.getloadavg()[0]), "rootless": os.geteuid() != 0,
         "host_network": a.host_network, "bare": a.bare}
    if a.json:
        print(json.dumps(r))
        return
    print("| engine (rounds) | start s, median / max | RSS idle MB | RSS with one container MB | load average |")
    print("|---|---|---|---|---|")
    kind = ("rootless" if r["rootless"] else "rootful") + (", host network" if a.host_network else "") \
        + (", bare podman" if a.bare else "")
    print(f"| {kind} ({a.rounds}) | {r['start_s_median']:.2f} / {r['start_s_max']:.2f} | "
          f"{r['idle_mb_median']:.1f} | {r['busy_mb_median']:.1f} | {r['load_avg_1m']:.1f} |")


if __name__ == "__main__":
    main()
