#!/bin/sh
# bench/control: redis-benchmark against ganglion's control socket and against a real
# redis-server on a unix socket, in the same run; prints req/s and the ratio per test.
# Usage: bench/control.sh [BUILDDIR]   (needs redis-server and redis-benchmark)
#   BENCH_TESTS=set,get bench/control.sh   the memory path (embedded cache + STM)
#   BENCH_STM=redis BENCH_TESTS=set,get bench/control.sh   STM on the same redis-server,
#       no cache: the memory manager's Redis path against Redis itself
set -u
BUILD=${1:-${top_builddir:-.}}
GANGLION=$BUILD/host/ganglion
ARGS="-t ${BENCH_TESTS:-ping} -P 16 -r 100000 -d 256 -n ${BENCH_REQUESTS:-2000000} -q"
for tool in redis-server redis-benchmark; do
    command -v $tool >/dev/null || { echo "bench/control: $tool not found (Debian: redis-server, redis-tools)"; exit 2; }
done
[ -x "$GANGLION" ] || { echo "bench/control: $GANGLION not built"; exit 2; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/ggl-bench-XXXXXX")
chmod 700 "$WORK"
GPID=; RPID=
trap 'for p in $GPID $RPID; do kill "$p" 2>/dev/null; done; rm -rf "$WORK"' EXIT

if [ "${BENCH_STM:-mem}" = redis ]; then
    BACKENDS="stm = { plugin = \"redis\"; unix_socket = \"$WORK/redis.sock\"; pool_size = 16; };"
    TIERS='stm = "stm";'
else
    BACKENDS='cache = { plugin = "cache"; max_entries = 200000; };
             stm = { plugin = "mem"; max_entries = 200000; };'
    TIERS='cache = "cache"; stm = "stm";'
fi
cat >"$WORK/ganglion.conf" <<CONF
log_level = "warn";
control = { unix = "$WORK/ganglion.sock"; };
plugin_dirs = [ "$BUILD/plugins" ];
backends = { $BACKENDS };
tiers = { $TIERS };
CONF
redis-server --port 0 --unixsocket "$WORK/redis.sock" --unixsocketperm 700 --save '' \
    --appendonly no --daemonize no >"$WORK/redis.log" 2>&1 &
RPID=$!
wait_sock() { n=100; while [ $n -gt 0 ] && [ ! -S "$1" ]; do sleep 0.1; n=$((n - 1)); done; }
wait_sock "$WORK/redis.sock"
"$GANGLION" -c "$WORK/ganglion.conf" 2>"$WORK/ganglion.log" &
GPID=$!

# Bounded wait until both answer PING.
wait_ping() {
    n=100
    while [ $n -gt 0 ]; do
        redis-cli -s "$1" PING 2>/dev/null | grep -q PONG && return 0
        sleep 0.1
        n=$((n - 1))
    done
    echo "bench/control: $1 did not answer"; exit 1
}
wait_ping "$WORK/ganglion.sock"
wait_ping "$WORK/redis.sock"

# One figure per test line: "PING_INLINE: 123456.79 requests per second, ..."
run() {
    redis-benchmark -s "$1" $ARGS 2>/dev/null | tr '\r' '\n' | grep 'requests per second' |
        sed 's/^ *//' | sort -u -t: -k1,1
}
echo "redis-benchmark $ARGS"
R1=$(run "$WORK/redis.sock"); G1=$(run "$WORK/ganglion.sock")
G2=$(run "$WORK/ganglion.sock"); R2=$(run "$WORK/redis.sock") # alternate: drift cancels
figure() { echo "$1" | grep "^$2:" | awk '{print $2}'; }
for t in $(echo "$R1" | cut -d: -f1); do
    r=$(printf '%s\n%s\n' "$(figure "$R1" $t)" "$(figure "$R2" $t)" | sort -n | tail -1)
    g=$(printf '%s\n%s\n' "$(figure "$G1" $t)" "$(figure "$G2" $t)" | sort -n | tail -1)
    awk -v t=$t -v g="$g" -v r="$r" \
        'BEGIN { printf "%-12s ganglion %10.0f req/s   redis-server %10.0f req/s   ratio %.2f\n", t, g, r, g / r }'
done
kill "$GPID"; wait "$GPID"; grc=$?; GPID=
kill "$RPID"; wait "$RPID" 2>/dev/null; RPID=
[ "$grc" = 0 ] || { echo "bench/control: ganglion exited $grc"; exit 1; }
