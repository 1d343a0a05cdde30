#!/bin/sh
# Test stand-in for GitHub's /home/runner/run.sh + run-helper.sh (actions/runner), POSIX sh.
# Runs the listener (here: fake-runner) and maps its exit code like run-helper.sh does
# (actions/runner src/Misc/layoutroot/run-helper.sh.template and run.sh):
#   0, 1, 5 and unknown codes -> stop, exit 0;  2, 3, 4 -> start the listener again;
#   7 with ACTIONS_RUNNER_RETURN_VERSION_DEPRECATED_EXIT_CODE=1 -> stop, exit 7.
# With RUNNER_MANUALLY_TRAP_SIG set (the image sets it, like GitHub's), SIGINT/SIGTERM are
# trapped and forwarded to the listener as SIGINT, as run.sh's runWithManualTrap does; the
# listener then cancels its job (no draining).

LISTENER="${FAKE_RUNNER_BIN:-/usr/local/bin/fake-runner}"
# The runner's root is the folder holding run.sh; a configured runner's settings files
# (.runner, .credentials) are there.
FAKE_RUNNER_ROOT="${FAKE_RUNNER_ROOT:-$(cd "$(dirname "$0")" && pwd)}"
export FAKE_RUNNER_ROOT
RESTART_DELAY="${FAKE_RUNNER_RESTART_DELAY:-5}"
stopping=0
PID=

# Like run-helper.sh: returns 2 to ask for a restart, 0 to stop.
map_code() {
    case "$1" in
        0) echo "Runner listener exit with 0 return code, stop the service, no retry needed."; return 0 ;;
        7) if [ "$ACTIONS_RUNNER_RETURN_VERSION_DEPRECATED_EXIT_CODE" = "1" ]; then
               echo "Runner listener exit with deprecated version exit code: $1."; return 7
           fi
           echo "Exiting with unknown error code: $1"; return 0 ;;
        1) echo "Runner listener exit with terminated error, stop the service, no retry needed."; return 0 ;;
        2) echo "Runner listener exit with retryable error, re-launch runner in ${RESTART_DELAY} seconds."; return 2 ;;
        3|4) echo "Runner listener exit because of updating, re-launch runner after successful update"; return 2 ;;
        5) echo "Runner listener exit with Session Conflict error, stop the service, no retry needed."; return 0 ;;
        *) echo "Exiting with unknown error code: $1"; return 0 ;;
    esac
}

forward_signal() {
    stopping=1
    if [ -n "$PID" ]; then
        kill -INT "$PID" 2>/dev/null
    fi
}

run_listener() {
    if [ -n "$RUNNER_MANUALLY_TRAP_SIG" ]; then
        "$LISTENER" "$@" &
        PID=$!
        # A trapped signal interrupts `wait`; keep waiting while the listener is alive.
        while :; do
            wait "$PID"
            rc=$?
            kill -0 "$PID" 2>/dev/null || break
        done
        PID=
        return "$rc"
    fi
    "$LISTENER" "$@"
}

if [ -n "$RUNNER_MANUALLY_TRAP_SIG" ]; then
    trap forward_signal INT TERM
fi

while :; do
    run_listener "$@"
    map_code "$?"
    mapped=$?
    if [ "$mapped" -eq 7 ]; then
        # run.sh: the deprecated version's code goes out as the container's exit code.
        echo "Exiting runner..."
        exit 7
    fi
    if [ "$mapped" -eq 2 ] && [ "$stopping" -eq 0 ]; then
        # In the background so that a trapped signal ends the wait at once.
        sleep "$RESTART_DELAY" &
        wait $!
        if [ "$stopping" -eq 0 ]; then
            echo "Restarting runner..."
            continue
        fi
    fi
    echo "Exiting runner..."
    exit 0
done
