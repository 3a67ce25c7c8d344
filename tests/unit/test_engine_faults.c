/* Unit tests for the processing engine's faults on a fake clock: timeouts with late
 * results discarded, a task timing out in its queue, a stuck worker abandoned and
 * replaced, the retry schedule, GGL_INVALID never retried, result expiry and cancel
 * before start, and a sub-task through the submit_task service. */
#include "ggl-build.h"

#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "engine_fixture.h"
#include "engine_impl.h"
#include "hostapi.h"
#include "pool.h"

static void test_timeout_reported_and_late_result_discarded(void **state)
{
    (void)state;
    struct engine_config c = config(1, 2);
    c.stuck_grace_ms = 100000;
    struct engine *e = start(&c);
    uint64_t id = submit(e, "block", "G", GGL_PRIO_NORMAL, 100);
    assert_true(wait_for(&blocked, 1));
    advance(99);
    engine_maintain(e);
    assert_int_equal(results_get(engine_results(e), id, NULL), RESULT_RUNNING);
    advance(1);
    engine_maintain(e);
    assert_int_equal(outcome(e, id), RESULT_TIMEOUT);
    assert_int_equal(get(&callbacks), 1);
    assert_int_equal(last_cb_status, GGL_RETRY);
    open_gate(); /* the processor returns late: discarded, no second callback */
    struct results_stats rs;
    for (int i = 0; i < 100000; i++) {
        results_stats(engine_results(e), &rs);
        if (rs.late)
            break;
        sched_yield();
    }
    assert_int_equal(rs.late, 1);
    assert_int_equal(outcome(e, id), RESULT_TIMEOUT);
    assert_int_equal(get(&callbacks), 1);
    struct engine_stats st;
    engine_stats(e, &st);
    assert_int_equal(st.type[2].timed_out, 1);
    assert_int_equal(st.type[2].completed, 0);
    stop(e);
}

static void test_queued_task_past_deadline_times_out_unrun(void **state)
{
    (void)state;
    struct engine_config c = config(1, 1);
    struct engine *e = start(&c);
    submit(e, "block", "G", GGL_PRIO_NORMAL, 0);
    assert_true(wait_for(&blocked, 1));
    uint64_t id = submit(e, "a", "x", GGL_PRIO_NORMAL, 50);
    advance(50);
    open_gate();
    assert_true(wait_for(&callbacks, 2));
    assert_int_equal(outcome(e, id), RESULT_TIMEOUT);
    assert_string_equal(order, "G"); /* never ran */
    stop(e);
}

static void test_stuck_worker_abandoned_and_replaced(void **state)
{
    (void)state;
    struct engine_config c = config(1, 1);
    c.stuck_grace_ms = 50;
    struct engine *e = start(&c);
    uint64_t id = submit(e, "block", "G", GGL_PRIO_NORMAL, 100);
    assert_true(wait_for(&blocked, 1));
    advance(151);
    engine_maintain(e); /* timed out, and stuck past the grace: abandoned */
    struct engine_stats st;
    engine_stats(e, &st);
    assert_int_equal(st.abandoned, 1);
    assert_int_equal(st.workers, 1); /* a replacement */
    assert_true(st.type[2].processor_failed);
    assert_int_equal(outcome(e, id), RESULT_TIMEOUT);
    submit(e, "a", "R", GGL_PRIO_NORMAL, 0); /* the replacement runs other work */
    assert_true(wait_for(&callbacks, 2));
    assert_int_equal(order[1], 'R');
    struct engine_task_spec s = {.type = "block", .priority = GGL_PRIO_NORMAL, .max_retries = -1};
    uint64_t id2;
    assert_int_equal(engine_submit(e, &s, NULL, NULL, &id2), GGL_ERROR);
    open_gate();
    assert_int_equal(pool_wait_abandoned(5000), 0);
    stop(e);
}

/* A loop that took tasks ahead (a batch, after a short task) and then got stuck in the
 * first of them: the monitor hands the others back, and the replacement settles them
 * (failed: their processor is marked failed) instead of their waiting behind H. */
static void test_tasks_taken_ahead_by_a_stuck_loop_are_handed_back(void **state)
{
    (void)state;
    struct engine_config c = config(1, 1);
    c.stuck_grace_ms = 50;
    struct engine *e = start(&c);
    struct engine_stats st;
    engine_stats(e, &st);
    double abandoned = st.abandoned; /* the pool's counter is the process's */
    submit(e, "block", "G", GGL_PRIO_NORMAL, 0);
    assert_true(wait_for(&blocked, 1));
    /* one type, one queue; past the open gate all but H are short */
    submit(e, "block", "A", GGL_PRIO_NORMAL, 0);              /* short: the next pop batches */
    uint64_t hung = submit(e, "block", "H", GGL_PRIO_NORMAL, 100);
    uint64_t later[2] = {submit(e, "block", "C", GGL_PRIO_NORMAL, 0),
                         submit(e, "block", "D", GGL_PRIO_NORMAL, 0)};
    open_gate();                                              /* G returns: A, then H with C, D */
    assert_true(wait_for(&callbacks, 2));
    assert_true(wait_for(&blocked, 1));
    assert_string_equal(order, "GAH");
    advance(151);
    engine_maintain(e);                                       /* H stuck: C and D handed back */
    assert_true(wait_for(&callbacks, 5));
    assert_int_equal(outcome(e, hung), RESULT_TIMEOUT);
    for (int i = 0; i < 2; i++)
        assert_int_equal(outcome(e, later[i]), RESULT_FAILED);
    assert_string_equal(order, "GAH");
    engine_stats(e, &st);
    assert_int_equal(st.abandoned - abandoned, 1);
    stop(e);
}

/* Tasks a loop took ahead: an idle loop takes half of them (rounded up) from the end,
 * the loop that took them the rest from the front, each task exactly once (the claims
 * are compare-and-swaps on the loop's span, engine_loop.c). */
static void test_an_idle_loop_takes_half_of_what_another_took_ahead(void **state)
{
    (void)state;
    struct engine_config c = config(1, 1);
    struct engine *e = start(&c);
    submit(e, "block", "G", GGL_PRIO_NORMAL, 0);
    assert_true(wait_for(&blocked, 1)); /* the one worker is held: the queues are ours */
    uint64_t ids[4];
    for (int i = 0; i < 4; i++)
        ids[i] = submit(e, "a", "x", GGL_PRIO_NORMAL, 0);
    struct eloop la = {.cur = NULL}, lb = {.cur = NULL};
    engine_loop_enter(e, &la);
    engine_loop_enter(e, &lb);
    struct etask *t[4];
    t[0] = engine_next_task(e, &la, 1); /* all four: the first, and three ahead */
    assert_non_null(t[0]);
    assert_int_equal(t[0]->id, ids[0]);
    assert_true(engine_ahead(&la));
    t[2] = engine_next_task(e, &lb, 1); /* queues empty: two from la's end */
    assert_non_null(t[2]);
    assert_int_equal(t[2]->id, ids[2]);
    t[1] = engine_next_task(e, &la, 1);
    assert_non_null(t[1]);
    assert_int_equal(t[1]->id, ids[1]);
    assert_false(engine_ahead(&la));
    t[3] = engine_next_task(e, &lb, 1);
    assert_non_null(t[3]);
    assert_int_equal(t[3]->id, ids[3]);
    assert_null(engine_next_task(e, &la, 1));
    assert_null(engine_next_task(e, &lb, 1));
    for (int i = 0; i < 4; i++) {
        engine_settle(e, t[i], RESULT_CANCELLED, "taken by the test");
        task_free(t[i]);
    }
    engine_loop_leave(e, &la);
    engine_loop_leave(e, &lb);
    open_gate();
    stop(e);
}

/* Advance to `at` (host ms), run a pass, and wait for the flaky task's n-th call. */
static void pass_at(struct engine *e, uint64_t at)
{
    atomic_store(&fake_now, at);
    engine_maintain(e);
}

static void test_retry_schedule_backs_off_exponentially(void **state)
{
    (void)state;
    struct engine_config c = config(1, 1);
    c.max_retries = 3;
    c.backoff = (struct backoff){.base_ms = 100, .max_ms = 300};
    struct engine *e = start(&c);
    uint64_t id = submit(e, "flaky", "F", GGL_PRIO_NORMAL, 0);
    assert_true(wait_for(&attempts, 1));
    /* retry k waits between step/2 and step, step = min(300, 100 * 2^k): 100, 200, 300 */
    const uint64_t step[] = {100, 200, 300};
    for (unsigned k = 0; k < 3; k++) {
        uint64_t failed_at = fake_clock();
        struct engine_stats st;
        do { /* the worker is scheduling the retry */
            sched_yield();
            engine_stats(e, &st);
        } while (st.type[3].retried < k + 1);
        pass_at(e, failed_at + step[k] / 2 - 1);
        assert_int_equal(get(&attempts), k + 1); /* not before half the step */
        pass_at(e, failed_at + step[k]);
        assert_true(wait_for(&attempts, k + 2)); /* by the full step */
    }
    assert_true(wait_for(&callbacks, 1));
    struct result_view v;
    assert_int_equal(results_get(engine_results(e), id, &v), RESULT_DONE);
    assert_int_equal(v.status, RESULT_FAILED);
    assert_non_null(strstr(v.reason, "after 3 retries"));
    result_view_free(&v);
    struct engine_stats st;
    engine_stats(e, &st);
    assert_int_equal(st.type[3].retried, 3);
    assert_int_equal(st.type[3].failed, 1);
    stop(e);
}

static void test_invalid_is_never_retried(void **state)
{
    (void)state;
    struct engine_config c = config(1, 1);
    struct engine *e = start(&c);
    uint64_t id = submit(e, "flaky", "I", GGL_PRIO_NORMAL, 0);
    assert_true(wait_for(&callbacks, 1));
    assert_int_equal(outcome(e, id), RESULT_INVALID);
    assert_int_equal(last_cb_status, GGL_INVALID);
    advance(100000);
    engine_maintain(e);
    assert_int_equal(get(&attempts), 1);
    stop(e);
}

static void test_results_expire_and_cancel_before_start(void **state)
{
    (void)state;
    struct engine_config c = config(1, 1);
    struct engine *e = start(&c);
    uint64_t id = submit(e, "a", "x", GGL_PRIO_NORMAL, 0);
    assert_true(wait_for(&callbacks, 1));
    struct result_view v;
    assert_int_equal(results_get(engine_results(e), id, &v), RESULT_DONE);
    assert_int_equal(v.len, 1);
    result_view_free(&v);
    advance(1000);
    assert_int_equal(results_get(engine_results(e), id, NULL), RESULT_UNKNOWN);
    submit(e, "block", "G", GGL_PRIO_NORMAL, 0);
    assert_true(wait_for(&blocked, 1));
    uint64_t queued = submit(e, "a", "Q", GGL_PRIO_NORMAL, 0);
    assert_int_equal(engine_cancel(e, queued), 1);
    assert_int_equal(engine_cancel(e, 999999), -1);
    open_gate();
    assert_true(wait_for(&callbacks, 3));
    assert_int_equal(outcome(e, queued), RESULT_CANCELLED);
    assert_null(strchr(order, 'Q')); /* never started */
    stop(e);
}

static void test_sub_task_result_arrives_by_callback(void **state)
{
    (void)state;
    struct engine_config c = config(1, 1); /* one worker: the parent must not wait */
    struct engine *e = start(&c);
    hostapi_init(&services, "processor/parent");
    struct ggl_task t = {.size = sizeof t, .type = "a"};
    uint64_t id;
    assert_int_equal(services.submit_task(&services, &t, NULL, NULL, &id), GGL_UNAVAILABLE);
    engine_set_global(e);
    uint64_t parent = submit(e, "parent", "P", GGL_PRIO_NORMAL, 0);
    assert_true(wait_for(&callbacks, 2)); /* the parent's, then the sub-task's */
    assert_string_equal(order, "Ps");
    assert_int_equal(outcome(e, parent), RESULT_OK);
    assert_int_equal(atomic_load(&sub_parent_seen), parent);
    assert_true(atomic_load(&sub_id) > parent);
    pthread_mutex_lock(&mu);
    assert_string_equal(sub_result, "s");
    assert_string_equal(sub_arg, "ctx");
    pthread_mutex_unlock(&mu);
    t.deadline_ms = clock_now_ms() - 1; /* already past: refused */
    assert_int_equal(services.submit_task(&services, &t, NULL, NULL, &id), GGL_INVALID);
    engine_set_global(NULL);
    stop(e);
}

static void test_sub_task_of_a_parent_that_runs_on_is_started_by_the_monitor(void **state)
{
    (void)state;
    struct engine_config c = config(2, 2);
    struct engine *e = start(&c);
    hostapi_init(&services, "processor/parent");
    engine_set_global(e);
    submit(e, "parent", "W", GGL_PRIO_NORMAL, 0);
    assert_true(wait_for(&blocked, 1)); /* submitted its sub-task, now busy */
    engine_maintain(e); /* the other worker gets a loop for the waiting sub-task */
    assert_true(wait_for(&callbacks, 1));
    pthread_mutex_lock(&mu);
    assert_string_equal(sub_result, "s");
    assert_string_equal(order, "Ws"); /* the parent still runs */
    pthread_mutex_unlock(&mu);
    assert_int_equal(get(&blocked), 1);
    engine_set_global(NULL);
    stop(e);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_timeout_reported_and_late_result_discarded),
        T(test_queued_task_past_deadline_times_out_unrun),
        T(test_stuck_worker_abandoned_and_replaced),
        T(test_tasks_taken_ahead_by_a_stuck_loop_are_handed_back),
        T(test_an_idle_loop_takes_half_of_what_another_took_ahead),
        T(test_retry_schedule_backs_off_exponentially),
        T(test_invalid_is_never_retried),
        T(test_results_expire_and_cancel_before_start),
        T(test_sub_task_result_arrives_by_callback),
        T(test_sub_task_of_a_parent_that_runs_on_is_started_by_the_monitor),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
