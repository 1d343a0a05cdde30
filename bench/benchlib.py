"""Helpers shared by podrunner's benchmark scripts (bench/run.py, bench/load.py): the test
image and host arguments, the fake GitHub, HTTP to it, and /proc figures of a process."""
import json, os, subprocess, tempfile, time, urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The test image; PODRUNNER_TEST_IMAGE names another tag (images/test-runner/build.sh honours it).
IMAGE = os.environ.get("PODRUNNER_TEST_IMAGE", "localhost/podrunner-test-runner:latest")


def run_args():
    """`podman run` arguments this kind of test host needs (see docs/test-bench.md)."""
    a = ["--network=host"]
    if os.geteuid() == 0:
        a += ["--ulimit=nofile=20000:20000", "--ulimit=nproc=20000:20000"]
    return a


def http(url, data=None):
    """GET `url`, or POST `data` as JSON; the decoded JSON answer (None when empty)."""
    body = json.dumps(data).encode() if data is not None else None
    req = urllib.request.Request(url, data=body, method="POST" if data is not None else "GET")
    with urllib.request.urlopen(req, timeout=10) as r:
        out = r.read()
        return json.loads(out) if out else None


def proc_stats(pid):
    """(peak RSS in MB, CPU seconds) of a live process."""
    with open(f"/proc/{pid}/status") as f:
        hwm = next(int(l.split()[1]) for l in f if l.startswith("VmHWM:"))
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return hwm / 1024.0, cpu


def pct(values, p):
    """The p-th percentile (nearest rank) of `values`; NaN when empty."""
    v = sorted(values)
    return v[max(0, min(len(v) - 1, int(round(p / 100.0 * (len(v) - 1)))))] if v else float("nan")


def start_fake_github(target, prefix, token):
    """A fresh folder (0755) with a 0600 token file, and fake-github listening on loopback.
    Returns (folder, token file, process, base URL)."""
    d = tempfile.mkdtemp(prefix=prefix)
    os.chmod(d, 0o755)
    tok = os.path.join(d, "token")
    with open(tok, "w") as f:
        f.write(token)
    os.chmod(tok, 0o600)
    port_file = os.path.join(d, "port")
    fg = subprocess.Popen([os.path.join(target, "fake-github"), "--listen", "127.0.0.1:0", "--token-file", tok, "--port-file", port_file], stdout=subprocess.DEVNULL)
    for _ in range(100):
        if os.path.exists(port_file) and open(port_file).read().strip():
            break
        time.sleep(0.1)
    return d, tok, fg, f"http://127.0.0.1:{open(port_file).read().strip()}"
