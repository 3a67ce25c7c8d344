#!/bin/sh
# ganglion --print-topology and `ganglion -t` on the pools section: the real binary,
# with and without a config file, an override, and a bad key reported as FILE:LINE.
set -u
bin="${top_builddir:-.}/host/ganglion"
tmp=$(mktemp -d) || exit 99
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

out=$("$bin" --print-topology) || fail "--print-topology without a config exited $?"
for want in "physical cores" "cgroup CPU quota" "processing" "memory_read" "thread cap" "total:"; do
    echo "$out" | grep -q "$want" || fail "--print-topology lacks '$want'"
done

printf 'pools = {\n  processing = 1;\n  queue_capacity = 512;\n};\n' > "$tmp/ok.conf"
out=$("$bin" --print-topology -c "$tmp/ok.conf") || fail "--print-topology -c ok.conf exited $?"
echo "$out" | grep -Eq '^processing +1 +1 +pools.processing = 1' || fail "override not shown: $out"
echo "$out" | grep -q 'capacity 512' || fail "queue_capacity override not shown"
"$bin" -t -c "$tmp/ok.conf" > /dev/null || fail "-t rejected a good pools section"

printf 'pools = {\n  processing = 1;\n  proccessing = 2;\n};\n' > "$tmp/bad.conf"
err=$("$bin" -t -c "$tmp/bad.conf" 2>&1) && fail "-t accepted an unknown pools key"
echo "$err" | grep -q "bad.conf:3: unknown key 'proccessing' in pools" || fail "no FILE:LINE: $err"
err=$("$bin" --print-topology -c "$tmp/bad.conf" 2>&1) && fail "--print-topology accepted a bad key"
echo "$err" | grep -q "bad.conf:3:" || fail "--print-topology error lacks FILE:LINE: $err"
echo "PASS: print-topology and pools validation"
