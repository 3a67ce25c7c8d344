#!/bin/sh
# METRICS over the socket from a host that served traffic: every family in the
# Prometheus text format passes `promtool check metrics` (Debian package prometheus),
# and the memory manager's counters and histograms are there with real values.  HEALTH
# names the plugin that failed to open (not required: the host serves on) as failed.
. "$top_srcdir/tests/integration/lib.sh"
SOCK=$WORK/m.sock
chmod 700 "$WORK"
command -v promtool >/dev/null || { fail "promtool not installed (Debian package prometheus)"; finish; }
command -v redis-cli >/dev/null || { fail "redis-cli not installed (Debian package redis-tools)"; finish; }
cat >"$WORK/m.conf" <<CONF
log_level = "warn";
plugin_dirs = [ "$top_builddir/plugins", "$top_builddir/tests/plugins" ];
backends = { cache = { plugin = "cache"; }; stm = { plugin = "mem"; };
             broken = { plugin = "bad_init"; };
             ltm = { plugin = "sqlite"; path = "$WORK/ltm.db"; }; };
tiers = { cache = "cache"; stm = "stm"; ltm = "ltm"; };
control = { unix = "$SOCK"; };
CONF
start_host "$WORK/m.conf"
n=100; until redis-cli -s "$SOCK" PING 2>/dev/null | grep -q PONG || [ $n -eq 0 ]; do sleep 0.1; n=$((n - 1)); done
i=0
while [ $i -lt 20 ]; do echo "SET k$i v$i"; echo "GET k$i"; i=$((i + 1)); done | redis-cli -s "$SOCK" >/dev/null
redis-cli -s "$SOCK" MEM.PUT fact blue TIER ltm >/dev/null
redis-cli -s "$SOCK" METRICS >"$WORK/metrics.txt" || fail "METRICS"
if promtool check metrics <"$WORK/metrics.txt" >"$WORK/promtool.out" 2>&1; then
    pass "promtool check metrics accepts METRICS"
else
    fail "promtool check metrics:"; sed 's/^/  | /' "$WORK/promtool.out"
fi
[ ! -s "$WORK/promtool.out" ] && pass "promtool found no lint problems" || fail "promtool printed: $(cat "$WORK/promtool.out")"
expect_contains "$WORK/metrics.txt" "# TYPE ganglion_memory_writes_total counter" "writes counter typed"
grep -Eq '^ganglion_memory_writes_total(\{[^}]*\})? ([2-9][0-9]|[1-9][0-9]{2,})$' "$WORK/metrics.txt" &&
    pass "writes counted (>= 20)" || fail "memory_writes_total below 20: $(grep '^ganglion_memory_writes_total' "$WORK/metrics.txt")"
grep -q '_bucket{.*le="+Inf"}' "$WORK/metrics.txt" && pass "histogram +Inf bucket" || fail "no +Inf bucket"
grep -q '^ganglion_[a-z_]*_count' "$WORK/metrics.txt" && pass "histogram _count" || fail "no _count"
grep -q '^ganglion_[a-z_]*_sum' "$WORK/metrics.txt" && pass "histogram _sum" || fail "no _sum"
redis-cli -s "$SOCK" HEALTH >"$WORK/health.txt" || fail "HEALTH"
head -2 "$WORK/health.txt" | tr '\n' ' ' | grep -q '^overall failed ' && pass "HEALTH overall failed" ||
    fail "HEALTH overall: $(head -3 "$WORK/health.txt" | tr '\n' ' ')"
grep -A1 -x 'plugin:tier/bad_init\[broken\]' "$WORK/health.txt" | grep -qx failed &&
    pass "HEALTH: the refused plugin is failed" || { fail "HEALTH lacks the broken plugin:"; cat "$WORK/health.txt"; }
grep -A1 -x 'memory:stm' "$WORK/health.txt" | grep -qx ok && pass "HEALTH: memory:stm ok" || fail "memory:stm not ok"
for c in engine actions environment; do
    grep -A1 -x "$c" "$WORK/health.txt" | grep -qx ok && pass "HEALTH: $c ok" || fail "HEALTH: $c not ok"
done
stop_host
[ "$HOST_RC" = 0 ] && pass "host exits 0" || fail "exit status $HOST_RC"
finish
