#!/bin/sh
# Run one libFuzzer target for a set time on its seed corpus (copied, so the checked-in
# seeds stay as they are).  Needs: ./configure CC=clang --enable-fuzzing && make.
# usage: fuzz/run.sh TARGET SECONDS        e.g. fuzz/run.sh fuzz_config 600
set -eu
target=${1:?usage: fuzz/run.sh TARGET SECONDS}
secs=${2:-60}
here=$(cd "$(dirname "$0")" && pwd)
bin=${FUZZ_BUILD:-$here}/$target
[ -x "$bin" ] || { echo "fuzz/run.sh: $bin not built (configure CC=clang --enable-fuzzing; make)" >&2; exit 2; }
work=$(mktemp -d)
cp -r "$here/corpus/$target/." "$work/" 2>/dev/null || true
LSAN_OPTIONS="suppressions=$here/lsan.supp${LSAN_OPTIONS:+:$LSAN_OPTIONS}" \
    "$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 "$work"
rm -rf "$work"
