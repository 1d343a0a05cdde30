#!/bin/sh
# The extra cost per job of docker = "isolated" (a private Podman engine per runner: started
# before the runner, torn down after it) over docker = "none", measured with bench/run.py on
# the same trivial jobs. Prints both runs and the difference per job: wall-clock seconds of
# throughput (elapsed / jobs) and host CPU seconds (all processes: manager, podman, engines).
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
python3 - "$none" "$isolated" <<'PY'
import json, sys
n, i = json.loads(sys.argv[1]), json.loads(sys.argv[2])
print("| docker mode | jobs/min | wall s/job | host CPU s/job | manager CPU s | failed |")
print("|---|---|---|---|---|---|")
for r in (n, i):
    print(f"| {r['docker']} | {r['jobs_per_min']:.1f} | {r['elapsed_s'] / r['jobs']:.3f} | {r['host_cpu_s'] / r['jobs']:.3f} | {r['manager_cpu_s']:.2f} | {r['failed']} |")
dw = i["elapsed_s"] / i["jobs"] - n["elapsed_s"] / n["jobs"]
dc = i["host_cpu_s"] / i["jobs"] - n["host_cpu_s"] / n["jobs"]
print(f"| isolated - none, per job | | {dw:+.3f} s | {dc:+.3f} s CPU | | |")
PY
