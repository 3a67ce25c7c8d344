#!/bin/sh
# ganglionctl and redis-cli against the real host: ping, info, plugins, errors exit
# non-zero, SHUTDOWN ends the host with status 0.
. "$top_srcdir/tests/integration/lib.sh"
CTL=$top_builddir/host/ctl/ganglionctl
SOCK=$WORK/ctl.sock
chmod 700 "$WORK"
cat >"$WORK/ctl.conf" <<CONF
plugin_dirs = [ "$top_builddir/plugins" ];
backends = { stm_mem = { plugin = "mem"; }; };
control = { unix = "$SOCK"; };
CONF
printf 'control = {\n  unix = "x.sock";\n  max_clients = 0;\n};\n' >"$WORK/badctl.conf"
if "$GANGLION" -t -c "$WORK/badctl.conf" >"$WORK/o" 2>&1; then fail "-t accepted max_clients = 0"; else pass "-t checks the control section"; fi
expect_contains "$WORK/o" "$WORK/badctl.conf:3: 'max_clients' in control must be between" "control error with file:line"

start_host "$WORK/ctl.conf"
wait_log "running (pid" || fail "host did not start"

"$CTL" -s "$SOCK" ping >"$WORK/o" 2>&1 && pass "ganglionctl ping" || fail "ganglionctl ping"
expect_contains "$WORK/o" "PONG" "ping prints PONG"
"$CTL" -s "$SOCK" plugins >"$WORK/o" 2>&1 || fail "ganglionctl plugins"
expect_contains "$WORK/o" "KIND" "plugins prints a header"
expect_contains "$WORK/o" "stm_mem" "plugins lists the instance"
GANGLION_SOCKET=$SOCK "$CTL" info control >"$WORK/o" 2>&1 || fail "ganglionctl info"
expect_contains "$WORK/o" "# Control" "info control has its section"
if "$CTL" -s "$SOCK" nosuch >"$WORK/o" 2>&1; then fail "unknown command exited 0"; else pass "unknown command exits non-zero"; fi
expect_contains "$WORK/o" "(error) ERR unknown command 'nosuch'" "error printed"
if command -v redis-cli >/dev/null; then
    redis-cli -s "$SOCK" PING >"$WORK/o" 2>&1
    expect_contains "$WORK/o" "PONG" "redis-cli -s SOCKET PING"
else
    fail "redis-cli not installed (Debian package redis-tools)"
fi
"$CTL" -s "$SOCK" shutdown >"$WORK/o" 2>&1 || fail "ganglionctl shutdown"
wait "$HOST_PID"; rc=$?; HOST_PID=
[ "$rc" = 0 ] && pass "SHUTDOWN exits 0" || fail "SHUTDOWN exit status $rc"
[ -e "$SOCK" ] && fail "socket left behind" || pass "socket removed"
finish
