#!/bin/sh
# The real binary from the command line: -v, -t on good and broken configs (file:line),
# --describe, a run that refuses every broken plugin and serves with the good ones,
# SIGTERM giving exit 0, and a required plugin's failure stopping start-up.
. "$top_srcdir/tests/integration/lib.sh"

"$GANGLION" -v >"$WORK/v" 2>&1
expect_contains "$WORK/v" "plugin ABI 1.4" "-v prints the ABI"

"$GANGLION" -t -c "$top_srcdir/conf/ganglion.conf" >"$WORK/t" 2>&1 && pass "-t accepts conf/ganglion.conf" || fail "-t on conf/ganglion.conf"
expect_contains "$WORK/t" "configuration OK" "-t says OK"
"$GANGLION" -t -c "$top_srcdir/conf/ganglion-redis.conf" >"$WORK/t" 2>&1 && pass "-t accepts conf/ganglion-redis.conf" || fail "-t on conf/ganglion-redis.conf"

cat >"$WORK/typo.conf" <<'CONF'
backends = {
  stm_mem = {
    plugin = "mem";
    max_entires = 10;
  };
};
CONF
if "$GANGLION" -t -c "$WORK/typo.conf" >"$WORK/t" 2>&1; then fail "-t accepted a typo"; else pass "-t refuses a typo"; fi
expect_contains "$WORK/t" "$WORK/typo.conf:4: unknown key 'max_entires' in tier 'stm_mem' (plugin tier/mem) (allowed: plugin, required, max_entries)" "typo reported with file:line and allowed keys"

printf 'log_level = "info"\nbackends = {\n' >"$WORK/syntax.conf"
if "$GANGLION" -t -c "$WORK/syntax.conf" >"$WORK/t" 2>&1; then fail "-t accepted a syntax error"; else pass "-t refuses a syntax error"; fi
expect_contains "$WORK/t" "$WORK/syntax.conf:3: syntax error" "syntax error with file:line"

"$GANGLION" --describe tier/mem >"$WORK/d" 2>&1 && pass "--describe tier/mem" || fail "--describe tier/mem"
expect_contains "$WORK/d" "max_entries          int     100000" "--describe lists settings with type and default"
if "$GANGLION" --describe tier/nosuch >"$WORK/d" 2>&1; then fail "--describe of a missing plugin succeeded"; else pass "--describe of a missing plugin fails"; fi

# A run with every broken plugin beside the good ones.
cat >"$WORK/bad.conf" <<CONF
plugin_dirs = [ "$top_builddir/tests/plugins", "$top_builddir/plugins" ];
backends = {
  good     = { plugin = "mem"; };
  major    = { plugin = "bad_major"; };
  minor    = { plugin = "bad_minor"; };
  slot     = { plugin = "bad_slot"; };
  size     = { plugin = "bad_size"; };
  init     = { plugin = "bad_init"; };
  newer    = { plugin = "newer_slot"; };
};
processors = {
  kind = { plugin = "bad_kind"; };
  echo = { plugin = "echo"; };
};
CONF
start_host "$WORK/bad.conf"
if wait_log "running (pid"; then pass "host runs despite refused plugins"; else fail "host did not start"; fi
L=$WORK/host.log
expect_contains "$L" "refused $top_builddir/tests/plugins/tier/.libs/bad_major.so: plugin 'bad_major' version 6.6.6: built for ABI 2.x, host is 1.4" "other major refused"
expect_contains "$L" "bad_minor.so: plugin 'bad_minor' version 6.6.6: needs host ABI 1.99 or newer, host is 1.4" "minor too new refused"
expect_contains "$L" "bad_slot.so: plugin 'bad_slot' version 6.6.6: mandatory tier slot 'del' is NULL" "missing slot refused"
expect_contains "$L" "bad_size.so: plugin 'bad_size' version 6.6.6: tier vtable size 24 too small" "small vtable refused"
expect_contains "$L" "processor/.libs/bad_kind.so: plugin 'bad_kind' version 6.6.6: declares kind 'tier' but lives in the 'processor' directory" "kind mismatch refused"
expect_contains "$L" "tier/bad_init[init]: open failed: ERROR: deliberately failing open; continuing without it" "failing open reported"
expect_contains "$L" "tier/mem[good]: open" "good tier opened"
expect_contains "$L" "tier/newer_slot[newer]: open" "newer plugin with an appended slot opened"
expect_contains "$L" "processor/echo[echo]: open" "good processor opened"
stop_host
[ "$HOST_RC" = 0 ] && pass "SIGTERM exits 0" || fail "SIGTERM exit status $HOST_RC"
expect_contains "$L" "ganglion stopped" "clean stop logged"
# Reverse order: the processor closes before the first backend.
if [ "$(grep -n 'processor/echo\[echo\]: closed' "$L" | cut -d: -f1)" -lt "$(grep -n 'tier/mem\[good\]: closed' "$L" | cut -d: -f1)" ]; then
    pass "instances closed in reverse order"
else
    fail "close order"
fi

# A required plugin that fails stops start-up with a non-zero status.
cat >"$WORK/req.conf" <<CONF
plugin_dirs = [ "$top_builddir/tests/plugins" ];
backends = { init = { plugin = "bad_init"; required = true; }; };
CONF
start_host "$WORK/req.conf"
wait "$HOST_PID"; rc=$?; HOST_PID=
[ "$rc" != 0 ] && pass "required failure exits non-zero ($rc)" || fail "required failure exited 0"
expect_contains "$L" "tier/bad_init[init]: open failed: ERROR: deliberately failing open (required)" "required failure reason logged"

finish
