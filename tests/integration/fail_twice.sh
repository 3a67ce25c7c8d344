#!/bin/sh
# For test_actions: counts its runs in the file $1; the first two runs fail with exit
# 75 (EX_TEMPFAIL, retryable), later runs succeed and print the count.
n=$(( $(cat "$1" 2>/dev/null || echo 0) + 1 ))
echo "$n" > "$1"
if [ "$n" -le 2 ]; then
  echo "run $n fails" >&2
  exit 75
fi
echo "ok after $n runs"
