#!/bin/sh
# The demo agent, end to end on embedded defaults (no Redis): starts the host on
# conf/ganglion.conf in a scratch directory (its socket, LTM and state files land
# there), runs `ganglionctl demo` against it, stops the host and exits with the demo's
# status.  Usage: examples/demo.sh [BUILDDIR]   (from the source tree after `make`)
set -u
SRC=$(cd "$(dirname "$0")/.." && pwd)
BUILD=$(cd "${1:-${top_builddir:-$SRC}}" && pwd)
GANGLION=$BUILD/host/ganglion
CTL=$BUILD/host/ctl/ganglionctl
[ -x "$GANGLION" ] && [ -x "$CTL" ] || { echo "demo: build first (make)"; exit 2; }
WORK=$(mktemp -d "${TMPDIR:-/tmp}/ganglion-demo-XXXXXX")
chmod 700 "$WORK"
HOST=
trap '[ -n "$HOST" ] && kill "$HOST" 2>/dev/null; rm -rf "$WORK"' EXIT INT TERM
cd "$WORK" || exit 2
"$GANGLION" -c "$SRC/conf/ganglion.conf" >host.out 2>host.log &
HOST=$!
n=100
until [ -S ganglion.sock ] && "$CTL" -s ganglion.sock ping >/dev/null 2>&1; do
    n=$((n - 1))
    if [ $n -eq 0 ] || ! kill -0 "$HOST" 2>/dev/null; then
        echo "demo: the host did not start:"; cat host.log; exit 1
    fi
    sleep 0.1
done
"$CTL" -s ganglion.sock demo
rc=$?
"$CTL" -s ganglion.sock shutdown >/dev/null
wait "$HOST"
hrc=$?
HOST=
[ $hrc -eq 0 ] || { echo "demo: the host exited with $hrc:"; tail -20 host.log; }
[ $rc -eq 0 ] && [ $hrc -eq 0 ]
