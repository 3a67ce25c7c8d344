# Shared helpers for integration scripts: a temp dir, a host started in the background
# with its log captured, bounded waits for log lines, stop by pid.
set -u
: "${top_builddir:?}" "${top_srcdir:?}"
GANGLION=$top_builddir/host/ganglion
WORK=$(mktemp -d "${TMPDIR:-/tmp}/ggl-it-XXXXXX")
HOST_PID=
failures=0
trap 'if [ -n "$HOST_PID" ]; then kill -9 "$HOST_PID" 2>/dev/null; fi; rm -rf "$WORK"' EXIT

fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
pass() { echo "ok: $*"; }

# expect_contains FILE TEXT DESCRIPTION
expect_contains() {
    if grep -qF -- "$2" "$1"; then pass "$3"; else fail "$3: '$2' not in $1:"; sed 's/^/  | /' "$1"; fi
}

# start_host CONF: run the host in the background, log in $WORK/host.log.
start_host() {
    "$GANGLION" -c "$1" >"$WORK/host.out" 2>"$WORK/host.log" &
    HOST_PID=$!
}

# wait_log TEXT [TRIES]: poll the host's log for TEXT, 0.1 s apart, bounded.
wait_log() {
    n=${2:-100}
    while [ "$n" -gt 0 ]; do
        grep -qF -- "$1" "$WORK/host.log" 2>/dev/null && return 0
        kill -0 "$HOST_PID" 2>/dev/null || { grep -qF -- "$1" "$WORK/host.log"; return $?; }
        sleep 0.1
        n=$((n - 1))
    done
    return 1
}

# stop_host: SIGTERM by pid and wait; the exit status lands in HOST_RC.
stop_host() {
    kill -TERM "$HOST_PID" 2>/dev/null
    wait "$HOST_PID"
    HOST_RC=$?
    HOST_PID=
}

finish() {
    if [ "$failures" -ne 0 ]; then echo "$failures failure(s)"; exit 1; fi
    exit 0
}
