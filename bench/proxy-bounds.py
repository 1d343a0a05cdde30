#!/usr/bin/env python3
"""What a hostile job can make its runner's Docker API proxy hold (issue 10, point 5).

Starts `podrunner docker-proxy` alone (no engine behind it: every request below is checked and
refused or answered before the engine would be asked), then, from one job's point of view:
--idle connections each holding a 200 KB unfinished request head, and --bodies connections at
once each sending a 1 MB JSON create body. Reports the proxy's resident memory before, at its
peak (VmHWM) and after, how long the bodies took, and that the proxy still answers.
Run from the repository root: `bench/proxy-bounds.py` (--debug for the debug build).
"""
import argparse, json, os, socket, subprocess, sys, tempfile, threading, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def status_kb(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--idle", type=int, default=100)
    ap.add_argument("--bodies", type=int, default=300)
    ap.add_argument("--debug", action="store_true")
    a = ap.parse_args()
    binary = os.path.join(ROOT, "target", "debug" if a.debug else "release", "podrunner")
    d = tempfile.mkdtemp(prefix="pb")
    sock = os.path.join(d, "docker.sock")
    p = subprocess.Popen([binary, "docker-proxy", f"--listen={sock}", f"--upstream={d}/none.sock",
                          "--pids=100", f"--allow={d}", "--pool=bench"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while not os.path.exists(sock):
        time.sleep(0.02)
    time.sleep(0.2)
    before = status_kb(p.pid, "VmRSS")
    idle = []
    for _ in range(a.idle):
        s = socket.socket(socket.AF_UNIX)
        s.connect(sock)
        s.sendall(b"GET /_ping HTTP/1.1\r\nX: " + b"a" * 200_000)
        idle.append(s)
    body = json.dumps({"Image": "x", "Env": ["A=" + "a" * 999_950]}).encode()
    head = b"POST /v1.44/containers/create HTTP/1.1\r\nHost: d\r\nContent-Length: %d\r\n\r\n" % len(body)
    answers = []

    def one():
        try:
            s = socket.socket(socket.AF_UNIX)
            s.connect(sock)
            s.sendall(head + body)
            s.settimeout(120)
            out = b""
            while True:
                c = s.recv(65536)
                if not c:
                    break
                out += c
            answers.append(out.split(b" ")[1] if out else b"none")
        except OSError as e:
            answers.append(str(e).encode())

    t = time.time()
    ts = [threading.Thread(target=one) for _ in range(a.bodies)]
    for x in ts:
        x.start()
    for x in ts:
        x.join()
    took = time.time() - t
    peak = status_kb(p.pid, "VmHWM")
    for s in idle:
        s.close()
    time.sleep(0.5)
    after = status_kb(p.pid, "VmRSS")
    alive = p.poll() is None
    p.kill()
    codes = {}
    for c in answers:
        codes[c.decode()] = codes.get(c.decode(), 0) + 1
    print(json.dumps({"idle_connections": a.idle, "bodies": a.bodies, "rss_before_mb": round(before / 1024, 1),
                      "rss_peak_mb": round(peak / 1024, 1), "rss_after_mb": round(after / 1024, 1),
                      "bodies_seconds": round(took, 1), "answers": codes, "proxy_alive": alive}, indent=1))


if __name__ == "__main__":
    sys.exit(main())
