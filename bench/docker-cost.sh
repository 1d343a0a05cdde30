#!/bin/sh
# The extra cost per job of docker = "isolated" (a Docker API proxy per runner, and a private
# Podman engine it starts on the job's first docker call, torn down after the runner) over
# docker = "none", measured with bench/run.py. Three runs: trivial jobs (`true`) without and
# with isolation (the proxy alone), and isolated jobs that call `docker version` (the engine
# starts). Prints the runs and the differences per job: wall-clock seconds of throughput
# (elapsed / jobs) and host CPU seconds (all processes: manager, podman, proxies, engines).
# Then one engine alone (bench/engine.py): its start time and RSS, idle and with a container.
# Usage: bench/docker-cost.sh [--jobs N] [--pool N]   (defaults: 40 jobs, pool of 4)
set -eu
cd "$(dirname "$0")/.."
JOBS=40
POOL=4
while [ $# -gt 0 ]; do
    case "$1" in
        --jobs) JOBS=$2; shift 2 ;;
        --pool) POOL=$2; shift 2 ;;
        *) echo "usage: bench/docker-cost.sh [--jobs N] [--pool N]" >&2; exit 2 ;;
    esac
done
none=$(bench/run.py --skip-bare --json --jobs "$JOBS" --pool "$POOL" --docker none | tail -n 1)
isolated=$(bench/run.py --skip-bare --json --jobs "$JOBS" --pool "$POOL" --docker isolated | tail -n 1)
engine=$(bench/run.py --skip-bare --json --jobs "$JOBS" --pool "$POOL" --docker isolated \
    --script 'docker version >/dev/null' | tail -n 1)
python3 - "$none" "$isolated" "$engine" <<'PY'
import json, sys
n, i, e = (json.loads(a) for a in sys.argv[1:4])
print("| docker mode, job | jobs/min | wall s/job | host CPU s/job | manager CPU s | failed |")
print("|---|---|---|---|---|---|")
for r in (n, i, e):
    print(f"| {r['docker']}, `{r['script']}` | {r['jobs_per_min']:.1f} | {r['elapsed_s'] / r['jobs']:.3f} | {r['host_cpu_s'] / r['jobs']:.3f} | {r['manager_cpu_s']:.2f} | {r['failed']} |")
def per_job(a, b):
    dw = a["elapsed_s"] / a["jobs"] - b["elapsed_s"] / b["jobs"]
    dc = a["host_cpu_s"] / a["jobs"] - b["host_cpu_s"] / b["jobs"]
    return f"{dw:+.3f} s | {dc:+.3f} s CPU"
print(f"| isolated - none, a job without docker | | {per_job(i, n)} | | |")
print(f"| a job's first docker call (engine start + teardown) | | {per_job(e, i)} | | |")
PY
bench/engine.py --rounds 5
