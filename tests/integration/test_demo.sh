#!/bin/sh
# The README's first command ends in examples/demo.sh: the demo agent runs end to end on
# conf/ganglion.conf (no Redis), exits 0 within a minute, and its summary says what
# happened: memories spread over STM, IM and LTM, the plan, the learner's choice, the
# retried action, outcomes in memory and the agent state, health ok.
. "$top_srcdir/tests/integration/lib.sh"
start=$(date +%s)
if timeout 60 "$top_srcdir/examples/demo.sh" "$top_builddir" >"$WORK/demo.out" 2>&1; then
    pass "demo exits 0"
else
    fail "demo failed:"; sed 's/^/  | /' "$WORK/demo.out"
fi
elapsed=$(( $(date +%s) - start ))
[ "$elapsed" -lt 60 ] && pass "demo took ${elapsed} s" || fail "demo took ${elapsed} s"
expect_contains "$WORK/demo.out" "result   every step did what it should" "no problems reported"
grep -Eq '^  memory   10 memories: stm [1-9] · im [1-9] · ltm [1-9]' "$WORK/demo.out" &&
    pass "memories in every tier below the cache" || fail "memory line: $(grep memory "$WORK/demo.out")"
expect_contains "$WORK/demo.out" "plan     sensed → checked → fixed → reported, cost 4" "A* plan and cost"
expect_contains "$WORK/demo.out" "3 steps submitted as actions" "the planner acted"
expect_contains "$WORK/demo.out" "acting on careful_fix" "the learner picked the better arm"
expect_contains "$WORK/demo.out" "failed once (exit 75), retried with backoff, then \"careful_fix worked\"" "retried action"
grep -Eq '^  actions  [4-9] ok, 0 failed, 1 retried, 0 dead letters; [4-9] outcomes written to memory' \
    "$WORK/demo.out" && pass "actions by outcome" || fail "actions line: $(grep actions "$WORK/demo.out")"
expect_contains "$WORK/demo.out" '"action":"shell","status":"ok","attempts":2' "outcome in the agent state"
expect_contains "$WORK/demo.out" "health   ok (0 of" "health ok"
finish
