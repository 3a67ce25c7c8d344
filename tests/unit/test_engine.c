/* Unit tests for the processing engine's scheduling on a fake clock: priority order,
 * ageing, stealing across type queues, rebalancing, growing under load and shrinking
 * when idle, -BUSY at the queue bound, shutdown draining and cancelling, thread_init
 * and thread_fini per worker.  Faults and retries are in test_engine_faults.c. */
#include "ggl-build.h"

#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include "config.h"
#include "engine_fixture.h"
#include "environment.h"
#include "hostapi.h"
#include "orchestrator.h"
#include "pool.h"

static void test_priority_order_within_a_type(void **state)
{
    (void)state;
    struct engine_config c = config(1, 1);
    struct engine *e = start(&c);
    submit(e, "block", "G", GGL_PRIO_NORMAL, 0);
    assert_true(wait_for(&blocked, 1)); /* the only worker is busy */
    submit(e, "a", "L", GGL_PRIO_LOW, 0);
    submit(e, "a", "N", GGL_PRIO_NORMAL, 0);
    submit(e, "a", "C", GGL_PRIO_CRITICAL, 0);
    submit(e, "a", "H", GGL_PRIO_HIGH, 0);
    open_gate();
    assert_true(wait_for(&callbacks, 5));
    assert_string_equal(order, "GCHNL");
    stop(e);
}

static void test_ageing_serves_a_low_task_that_waited(void **state)
{
    (void)state;
    struct engine_config c = config(1, 1);
    c.age_ms = 100;
    struct engine *e = start(&c);
    submit(e, "block", "G", GGL_PRIO_NORMAL, 0);
    assert_true(wait_for(&blocked, 1));
    submit(e, "a", "L", GGL_PRIO_LOW, 0);
    advance(400); /* L now competes as critical, and is older */
    submit(e, "a", "C", GGL_PRIO_CRITICAL, 0);
    submit(e, "a", "H", GGL_PRIO_HIGH, 0);
    open_gate();
    assert_true(wait_for(&callbacks, 4));
    assert_string_equal(order, "GLCH");
    stop(e);
}

static void test_worker_steals_from_another_types_queue(void **state)
{
    (void)state;
    struct engine_config c = config(1, 1);
    c.weights[0] = (struct engine_weight){"a", 50};
    c.n_weights = 1;
    struct engine *e = start(&c);
    struct engine_stats st;
    engine_stats(e, &st);
    assert_string_equal(st.type[0].name, "a");
    assert_int_equal(st.type[0].assigned, 1); /* the one worker prefers "a" */
    for (int i = 0; i < 10; i++)
        submit(e, "b", "b", GGL_PRIO_NORMAL, 0);
    assert_true(wait_for(&callbacks, 10)); /* nothing of its own: it took "b" work */
    engine_stats(e, &st);
    assert_int_equal(st.type[1].completed, 10);
    stop(e);
}

static void test_monitor_rebalances_weights_to_queue_lengths(void **state)
{
    (void)state;
    struct engine_config c = config(1, 4);
    struct engine *e = start(&c);
    struct engine_stats st;
    engine_stats(e, &st);
    assert_int_equal(st.type[0].weight, st.type[1].weight); /* a and b: base 1 each */
    submit(e, "block", "G", GGL_PRIO_NORMAL, 0);
    assert_true(wait_for(&blocked, 1));
    for (int i = 0; i < 20; i++)
        submit(e, "b", "b", GGL_PRIO_NORMAL, 0);
    submit(e, "a", "a", GGL_PRIO_NORMAL, 0);
    engine_maintain(e);
    engine_stats(e, &st);
    assert_true(st.type[1].weight > 5 * st.type[0].weight);
    assert_true(st.type[1].assigned > st.type[0].assigned);
    unsigned dealt = 0;
    for (size_t k = 0; k < st.n_types; k++)
        dealt += st.type[k].assigned;
    assert_int_equal(dealt, 4); /* every worker index prefers some type */
    stop(e);
}

/* Wait (bounded) until the pool has n workers all idle. */
static int wait_idle(struct engine *e, unsigned n)
{
    struct engine_stats st;
    for (int i = 0; i < 100000; i++) {
        engine_stats(e, &st);
        if (st.workers == n && st.idle == n)
            return 1;
        sched_yield();
    }
    return 0;
}

static void test_pool_grows_under_load_and_shrinks_when_idle(void **state)
{
    (void)state;
    struct engine_config c = config(1, 3);
    c.grow_depth = 1;
    c.idle_ms = 1000;
    struct engine *e = start(&c);
    for (int i = 0; i < 8; i++)
        submit(e, "block", "G", GGL_PRIO_NORMAL, 0);
    assert_true(wait_for(&blocked, 1));
    struct engine_stats st;
    for (int pass = 0; pass < 6; pass++) /* backlog seen twice in a row: one more worker */
        engine_maintain(e);
    engine_stats(e, &st);
    assert_int_equal(st.workers, 3);
    assert_true(wait_for(&blocked, 3)); /* the new workers took tasks */
    open_gate();
    assert_true(wait_for(&callbacks, 8));
    assert_true(wait_idle(e, 3));
    engine_maintain(e);
    engine_stats(e, &st);
    assert_int_equal(st.workers, 3); /* idle, but not for idle_ms yet */
    advance(1000);
    engine_maintain(e);
    engine_stats(e, &st);
    assert_int_equal(st.workers, 1);
    stop(e);
}

static void test_full_queue_refuses_with_retry(void **state)
{
    (void)state;
    struct engine_config c = config(1, 1);
    c.queue_capacity = 4;
    struct engine *e = start(&c);
    submit(e, "block", "G", GGL_PRIO_NORMAL, 0);
    assert_true(wait_for(&blocked, 1));
    for (int i = 0; i < 3; i++)
        submit(e, "block", "G", GGL_PRIO_NORMAL, 0);
    struct engine_task_spec s = {.type = "block", .priority = GGL_PRIO_NORMAL, .max_retries = -1};
    uint64_t id;
    assert_int_equal(engine_submit(e, &s, NULL, NULL, &id), GGL_RETRY);
    s.type = "a"; /* another type's queue has room */
    assert_int_equal(engine_submit(e, &s, NULL, NULL, &id), GGL_OK);
    s.type = "nope";
    assert_int_equal(engine_submit(e, &s, NULL, NULL, &id), GGL_NOTFOUND);
    stop(e);
}

static void test_shutdown_drains_queued_tasks(void **state)
{
    (void)state;
    struct engine_config c = config(1, 1);
    struct engine *e = start(&c);
    for (int i = 0; i < 50; i++)
        submit(e, "a", "d", GGL_PRIO_NORMAL, 0);
    assert_int_equal(engine_stop(e, clock_now_ms() + 10000), 0);
    assert_int_equal(get(&callbacks), 50);
    struct engine_stats st;
    engine_stats(e, &st);
    assert_int_equal(st.type[0].completed, 50);
    struct engine_task_spec s = {.type = "a", .priority = GGL_PRIO_NORMAL, .max_retries = -1};
    uint64_t id;
    assert_int_equal(engine_submit(e, &s, NULL, NULL, &id), GGL_RETRY); /* stopping */
    engine_free(e);
}

static void test_shutdown_deadline_cancels_what_is_left(void **state)
{
    (void)state;
    struct engine_config c = config(1, 1);
    gate_limit_ms = 50; /* the stuck task gives up by itself, so the pool can join */
    struct engine *e = start(&c);
    submit(e, "block", "G", GGL_PRIO_NORMAL, 0);
    assert_true(wait_for(&blocked, 1));
    uint64_t ids[5];
    for (int i = 0; i < 5; i++)
        ids[i] = submit(e, "a", "q", GGL_PRIO_NORMAL, 0);
    assert_int_equal(engine_stop(e, clock_now_ms()), 5);
    for (int i = 0; i < 5; i++)
        assert_int_equal(outcome(e, ids[i]), RESULT_CANCELLED);
    assert_int_equal(get(&callbacks), 6);
    engine_free(e);
}

static void test_thread_init_once_per_worker_and_fini_at_exit(void **state)
{
    (void)state;
    struct engine_config c = config(2, 2);
    struct engine *e = start(&c);
    for (int i = 0; i < 20; i++)
        submit(e, "tl", "t", GGL_PRIO_NORMAL, 0);
    assert_true(wait_for(&callbacks, 20));
    unsigned inits = atomic_load(&thread_inits);
    assert_true(inits >= 1 && inits <= 2); /* once per worker that ran one, not per task */
    stop(e);
    assert_int_equal(atomic_load(&thread_finis), inits);
}

static _Atomic unsigned new_inits, new_finis;
static const char *const tl_types[] = {"tl", NULL};
static const char *const *tl2_list(void *s) { (void)s; return tl_types; }
static enum ggl_status tl2_init(void *s) { (void)s; atomic_fetch_add(&new_inits, 1); return GGL_OK; }
static void tl2_fini(void *s) { (void)s; atomic_fetch_add(&new_finis, 1); }
static enum ggl_status tl2_process(void *self, const struct ggl_task *t, struct ggl_result *r)
{
    (void)self, (void)t, (void)r;
    return GGL_OK;
}

/* engine_processor_refs for self once it reads `want`, or what it reads after 5 s. */
static long refs_settle_at(struct engine *e, const void *self, long want)
{
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    long n;
    do {
        if ((n = engine_processor_refs(e, self)) == want)
            return n;
        sched_yield();
        clock_gettime(CLOCK_MONOTONIC, &t);
    } while (t.tv_sec - t0.tv_sec < 5);
    return n;
}

/* A processor with per-thread state replaced under the engine: the worker that ran its
 * thread_init runs its thread_fini on its own thread once it is out of the task it was
 * in, and until then the old instance counts as in use (the registry keeps it open). */
static void test_replaced_processor_gets_thread_fini_from_its_workers(void **state)
{
    (void)state;
    static const struct ggl_processor tl2_vt = {.size = sizeof tl2_vt, .flags = GGL_READS_CONCURRENT,
                                                .task_types = tl2_list, .process = tl2_process,
                                                .thread_init = tl2_init, .thread_fini = tl2_fini};
    static int tl2_instance;
    static const struct engine_processor tl2 = {"processor/tl2", &tl2_vt, &tl2_instance};
    struct engine_config c = config(1, 1);
    struct engine *e = start(&c);
    unsigned inits0 = atomic_load(&thread_inits), finis0 = atomic_load(&thread_finis);
    submit(e, "tl", "t", GGL_PRIO_NORMAL, 0);
    assert_true(wait_for(&callbacks, 1));
    assert_int_equal(atomic_load(&thread_inits) - inits0, 1);
    submit(e, "block", "G", GGL_PRIO_NORMAL, 0); /* the one worker, held in another task */
    assert_true(wait_for(&blocked, 1));
    assert_int_equal(engine_replace_processor(e, &tl_instance, &tl2), 0);
    assert_int_equal(engine_processor_refs(e, &tl_instance), 1); /* its worker owes a fini */
    assert_int_equal(atomic_load(&thread_finis), finis0);
    open_gate(); /* the worker comes back: thread_fini on its own thread (polled, bounded) */
    assert_int_equal(refs_settle_at(e, &tl_instance, 0), 0);
    assert_int_equal(atomic_load(&thread_finis) - finis0, 1);
    submit(e, "tl", "t", GGL_PRIO_NORMAL, 0);
    assert_true(wait_for(&callbacks, 3));
    assert_int_equal(atomic_load(&thread_finis) - finis0, 1);
    assert_int_equal(atomic_load(&new_inits), 1); /* the new one serves "tl" now */
    stop(e);
    assert_int_equal(atomic_load(&thread_finis) - finis0, 1); /* not twice at the exit */
    assert_int_equal(atomic_load(&new_finis), 1);
}

/* The same with the worker asleep in the pool when the swap comes: the swap wakes it to
 * run thread_fini, with no task to give it. */
static void test_an_idle_worker_is_woken_for_thread_fini(void **state)
{
    (void)state;
    static const struct ggl_processor tl3_vt = {.size = sizeof tl3_vt, .flags = GGL_READS_CONCURRENT,
                                                .task_types = tl2_list, .process = tl2_process};
    static int tl3_instance;
    static const struct engine_processor tl3 = {"processor/tl3", &tl3_vt, &tl3_instance};
    struct engine_config c = config(1, 1);
    struct engine *e = start(&c);
    unsigned finis0 = atomic_load(&thread_finis);
    submit(e, "tl", "t", GGL_PRIO_NORMAL, 0);
    assert_true(wait_for(&callbacks, 1));
    struct engine_stats st;
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    do { /* bounded: the loop lingers a few us, then its worker sleeps in the pool */
        engine_stats(e, &st);
        sched_yield();
        clock_gettime(CLOCK_MONOTONIC, &t);
    } while (st.idle < st.workers && t.tv_sec - t0.tv_sec < 5);
    assert_int_equal(st.idle, st.workers);
    assert_int_equal(engine_replace_processor(e, &tl_instance, &tl3), 0);
    assert_int_equal(refs_settle_at(e, &tl_instance, 0), 0);
    assert_int_equal(atomic_load(&thread_finis) - finis0, 1);
    stop(e);
}

static _Atomic int done_msgs;
static char done_payload[256];

static void on_task_done(void *arg, const struct orch_msg *m)
{
    (void)arg;
    snprintf(done_payload, sizeof done_payload, "%.*s", (int)m->payload_len, m->payload);
    atomic_fetch_add(&done_msgs, 1);
}

/* A finished task goes on the orchestrator's bus as task.done once someone subscribed
 * (the monitor pass notices), and not before. */
static void test_finished_tasks_go_on_the_bus_when_wanted(void **state)
{
    (void)state;
    struct conf_error err = {{0}};
    struct config *conf = config_load_string("", "t.conf", &err);
    assert_non_null(conf);
    assert_int_equal(environment_start(conf, NULL, 0, &err), 0);
    assert_int_equal(orchestrator_start(&err), 0);
    struct engine_config c = config(1, 1);
    struct engine *e = start(&c);
    submit(e, "a", "x", GGL_PRIO_NORMAL, 0);
    assert_true(wait_for(&callbacks, 1));
    orchestrator_drain();
    assert_int_equal(atomic_load(&done_msgs), 0);
    int sub = orchestrator_subscribe("task.*", on_task_done, NULL);
    assert_true(sub >= 0);
    engine_maintain(e);
    submit(e, "a", "y", GGL_PRIO_NORMAL, 0);
    assert_true(wait_for(&callbacks, 2));
    orchestrator_drain();
    assert_int_equal(atomic_load(&done_msgs), 1);
    assert_non_null(strstr(done_payload, "{\"type\":\"a\",\"status\":\"ok\",\"bytes\":"));
    stop(e);
    orchestrator_unsubscribe(sub);
    orchestrator_stop();
    environment_stop();
    config_free(conf);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_priority_order_within_a_type),
        T(test_ageing_serves_a_low_task_that_waited),
        T(test_worker_steals_from_another_types_queue),
        T(test_monitor_rebalances_weights_to_queue_lengths),
        T(test_pool_grows_under_load_and_shrinks_when_idle),
        T(test_full_queue_refuses_with_retry),
        T(test_shutdown_drains_queued_tasks),
        T(test_shutdown_deadline_cancels_what_is_left),
        T(test_thread_init_once_per_worker_and_fini_at_exit),
        T(test_replaced_processor_gets_thread_fini_from_its_workers),
        T(test_an_idle_worker_is_woken_for_thread_fini),
        T(test_finished_tasks_go_on_the_bus_when_wanted),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
