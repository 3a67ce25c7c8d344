#!/bin/sh
# The SDK as a third party meets it: every C example in README.md and sdk/README.md
# compiles (so the docs cannot rot), `make install` into a temporary prefix provides
# headers, pkg-config and the host, the template builds out of tree against that
# installed SDK, and the installed host loads the template plugins.
. "$top_srcdir/tests/integration/lib.sh"

# 1. Documentation examples.
n=0
awk -v dir="$WORK" '/^```c$/ {f = sprintf("%s/doc%d.c", dir, ++i); next}
                    /^```$/ {f = ""; next}
                    f {print > f}' "$top_srcdir/README.md" "$top_srcdir/sdk/README.md"
for src in "$WORK"/doc*.c; do
    n=$((n + 1))
    if cc -std=c11 -Wall -Wextra -Werror -fPIC -shared -fvisibility=hidden \
          -I"$top_srcdir/sdk/include" -o "${src%.c}.so" "$src" 2>"$WORK/cc.err"; then
        pass "doc example $(basename "$src") compiles"
    else
        fail "doc example $(basename "$src")"; cat "$WORK/cc.err"
    fi
done
[ "$n" -ge 3 ] && pass "$n doc examples found" || fail "only $n doc examples found"

# 2. Install into a temporary prefix.
P=$WORK/prefix
if make -s -C "$top_builddir" install prefix="$P" >"$WORK/install.log" 2>&1; then
    pass "make install prefix=$P"
else
    fail "make install"; tail -20 "$WORK/install.log"
fi
for f in include/ganglion/ganglion.h include/ganglion/tier.h lib/pkgconfig/ganglion-sdk.pc \
         sbin/ganglion lib/ganglion/tier/mem.so lib/ganglion/tier/sqlite.so etc/ganglion/ganglion.conf \
         share/man/man8/ganglion.8 share/man/man5/ganglion.conf.5 share/man/man7/ganglion-plugin.7 \
         share/man/man1/ganglionctl.1 bin/ganglionctl libexec/ganglion/ganglion-probe; do
    [ -e "$P/$f" ] && pass "installed $f" || fail "missing $P/$f"
done
ls "$P"/lib/ganglion/*/*.la >/dev/null 2>&1 && fail ".la files installed beside plugins" || pass "no .la files beside plugins"
export PKG_CONFIG_PATH="$P/lib/pkgconfig"
plugindir=$(pkg-config --variable=plugindir ganglion-sdk)
[ "$plugindir" = "$P/lib/ganglion" ] && pass "pkg-config plugindir" || fail "plugindir is '$plugindir'"
case "$(pkg-config --cflags ganglion-sdk)" in
    *"-I$P/include"*) pass "pkg-config cflags" ;;
    *) fail "cflags: $(pkg-config --cflags ganglion-sdk)" ;;
esac

# 3. The template, out of tree, against the installed SDK only.
cp -r "$top_srcdir/sdk/template" "$WORK/template"
chmod -R u+w "$WORK/template"
if make -s -C "$WORK/template" CFLAGS="-O2 -Wall -Wextra -Werror" >"$WORK/tpl.log" 2>&1 &&
   make -s -C "$WORK/template" install >>"$WORK/tpl.log" 2>&1; then
    pass "template builds and installs against the installed SDK"
else
    fail "template build"; cat "$WORK/tpl.log"
fi
nm -D "$plugindir/tier/kv.so" | grep -q ' ggl_plugin_entry$' && pass "kv.so exports ggl_plugin_entry" || fail "kv.so symbols"
[ "$(nm -D --defined-only "$plugindir/tier/kv.so" | grep -c ' [TDRB] ')" -eq 1 ] && pass "kv.so exports nothing else" || fail "kv.so exports more"

# 4. The installed host loads them.
cat >"$WORK/sdk.conf" <<CONF
control = { unix = "$WORK/ctl.sock"; };
plugin_dirs = [ "$plugindir" ];
backends = { t = { plugin = "kv"; max_entries = 100; required = true; }; };
tiers = { stm = "t"; };
processors = { u = { plugin = "upper"; required = true; }; };
CONF
GANGLION=$P/sbin/ganglion
"$GANGLION" -t -c "$WORK/sdk.conf" >"$WORK/t" 2>&1 && pass "installed host accepts the template config" || { fail "-t"; cat "$WORK/t"; }
"$GANGLION" --describe tier/kv >"$WORK/d" 2>&1 || true
start_host "$WORK/sdk.conf"
wait_log "running (pid" && pass "installed host runs with the template plugins" || fail "host did not start"
expect_contains "$WORK/host.log" "tier/kv[t]: open" "template tier opened"
expect_contains "$WORK/host.log" "processor/upper[u]: open" "template processor opened"
expect_contains "$WORK/host.log" "memory: slot stm bound to tier/kv[t]" "template tier bound to STM"
# Called over the socket with the installed ganglionctl: the write and the read go
# through the template's put and get.
CTL="$P/bin/ganglionctl -s $WORK/ctl.sock"
[ "$($CTL MEM.PUT greeting hello)" = "OK" ] && pass "MEM.PUT through the template tier" || fail "MEM.PUT"
$CTL MEM.GET greeting WITHMETA >"$WORK/get" 2>&1
expect_contains "$WORK/get" "hello" "MEM.GET returns the value from the template tier"
expect_contains "$WORK/get" "stm" "the value lives in the template's slot"
[ "$($CTL DEL greeting)" = "(integer) 1" ] && pass "DEL through the template tier" || fail "DEL"
stop_host
[ "$HOST_RC" = 0 ] && pass "stopped cleanly" || fail "exit status $HOST_RC"
finish
