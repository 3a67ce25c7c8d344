#!/bin/sh
# For test_executor_shell: leaves a background sleep in its process group and writes
# that sleep's pid to $1; with "wait" as $2 it then waits for it (a hung action).
sleep 30 &
echo $! > "$1"
[ "$2" = wait ] && wait
exit 0
