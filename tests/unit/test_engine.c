/* Unit tests for the processing engine on a fake clock: priority order, ageing, stealing
 * across type queues, rebalancing, growing under load and shrinking when idle, timeouts
 * with late results discarded, a stuck worker abandoned and replaced, the retry
 * schedule, GGL_INVALID never retried, result expiry, shutdown draining and cancelling,
 * and a sub-task through the submit_task service with its result by callback. */
#include "ggl-build.h"

#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include "deadline.h"
#include "engine.h"
#include "hostapi.h"
#include "pool.h"

static _Atomic uint64_t fake_now = 1000000;
static uint64_t fake_clock(void) { return atomic_load(&fake_now); }
static void advance(uint64_t ms) { atomic_fetch_add(&fake_now, ms); }

/* --- what the test processors record, under one lock ------------------------------ */

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static char order[256];          /* first payload byte of each task run, in run order */
static size_t n_order;
static int gate_open;            /* block tasks wait for it */
static int64_t gate_limit_ms;    /* ... at most this long (real time) */
static unsigned blocked;         /* block tasks waiting at the gate */
static unsigned attempts;        /* flaky calls */
static unsigned callbacks;
static enum ggl_status last_cb_status;

static void record(const struct ggl_task *t)
{
    pthread_mutex_lock(&mu);
    if (n_order < sizeof order - 1)
        order[n_order++] = t->payload_len ? *(const char *)t->payload : '?';
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
}

static enum ggl_status noop_process(void *self, const struct ggl_task *t, struct ggl_result *r)
{
    (void)self;
    record(t);
    r->data = malloc(t->payload_len ? t->payload_len : 1);
    if (t->payload_len)
        memcpy(r->data, t->payload, t->payload_len);
    r->data_len = t->payload_len;
    return GGL_OK;
}

static enum ggl_status block_process(void *self, const struct ggl_task *t, struct ggl_result *r)
{
    (void)self, (void)r;
    record(t);
    pthread_mutex_lock(&mu);
    blocked++;
    pthread_cond_broadcast(&cv);
    struct timespec until = deadline_after_ms(CLOCK_REALTIME, (uint64_t)gate_limit_ms);
    while (!gate_open && pthread_cond_timedwait(&cv, &mu, &until) == 0)
        ;
    blocked--;
    pthread_mutex_unlock(&mu);
    return GGL_OK;
}

static enum ggl_status flaky_process(void *self, const struct ggl_task *t, struct ggl_result *r)
{
    (void)self, (void)r;
    record(t);
    pthread_mutex_lock(&mu);
    attempts++;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
    return t->payload_len && *(const char *)t->payload == 'I' ? GGL_INVALID : GGL_RETRY;
}

static struct ggl_host services; /* what a plugin would get: submit_task is tested */
static _Atomic uint64_t sub_id, sub_parent_seen;

static void on_sub_done(void *arg, uint64_t id, const struct ggl_result *r);

/* Submits a sub-task of type "a" and returns at once: its result comes by callback. */
static enum ggl_status parent_process(void *self, const struct ggl_task *t, struct ggl_result *r)
{
    (void)self, (void)r;
    record(t);
    struct ggl_task sub = {.size = sizeof sub, .type = "a", .priority = GGL_PRIO_HIGH,
                           .payload = "s", .payload_len = 1};
    uint64_t id = 0;
    enum ggl_status st = services.submit_task(&services, &sub, on_sub_done, (void *)"ctx", &id);
    atomic_store(&sub_id, id);
    atomic_store(&sub_parent_seen, engine_current_task());
    return st;
}

static const char *const noop_types[] = {"a", "b", NULL};
static const char *const block_types[] = {"block", NULL};
static const char *const flaky_types[] = {"flaky", NULL};
static const char *const parent_types[] = {"parent", NULL};
static const char *const tl_types[] = {"tl", NULL};
static const char *const *tl_list(void *s) { (void)s; return tl_types; }
static _Atomic unsigned thread_inits, thread_finis;
static enum ggl_status tl_init(void *self) { (void)self; atomic_fetch_add(&thread_inits, 1); return GGL_OK; }
static void tl_fini(void *self) { (void)self; atomic_fetch_add(&thread_finis, 1); }
static const char *const *parent_list(void *s) { (void)s; return parent_types; }
static const char *const *noop_list(void *s) { (void)s; return noop_types; }
static const char *const *block_list(void *s) { (void)s; return block_types; }
static const char *const *flaky_list(void *s) { (void)s; return flaky_types; }

static const struct ggl_processor noop_vt = {.size = sizeof noop_vt, .flags = GGL_READS_CONCURRENT,
                                             .task_types = noop_list, .process = noop_process};
static const struct ggl_processor block_vt = {.size = sizeof block_vt, .flags = GGL_READS_CONCURRENT,
                                              .task_types = block_list, .process = block_process};
static const struct ggl_processor flaky_vt = {.size = sizeof flaky_vt, .flags = GGL_READS_CONCURRENT,
                                              .task_types = flaky_list, .process = flaky_process};
static const struct ggl_processor parent_vt = {.size = sizeof parent_vt,
                                               .task_types = parent_list, .process = parent_process};
static const struct ggl_processor tl_vt = {.size = sizeof tl_vt, .flags = GGL_READS_CONCURRENT,
                                           .task_types = tl_list, .process = noop_process,
                                           .thread_init = tl_init, .thread_fini = tl_fini};
static const struct engine_processor procs[] = {
    {"processor/noop", &noop_vt, NULL}, {"processor/block", &block_vt, NULL},
    {"processor/flaky", &flaky_vt, NULL}, {"processor/parent", &parent_vt, NULL},
    {"processor/tl", &tl_vt, NULL}};

static char sub_result[8];
static const char *sub_arg;

static void on_sub_done(void *arg, uint64_t id, const struct ggl_result *r)
{
    pthread_mutex_lock(&mu);
    sub_arg = arg;
    if (id == atomic_load(&sub_id) && r->status == GGL_OK && r->data_len < sizeof sub_result)
        memcpy(sub_result, r->data, r->data_len);
    callbacks++;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
}

static void on_done(void *arg, uint64_t id, const struct ggl_result *r)
{
    (void)arg, (void)id;
    pthread_mutex_lock(&mu);
    callbacks++;
    last_cb_status = r->status;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
}

/* Wait (bounded, on the condition) until *counter reaches n. */
static int wait_for(const unsigned *counter, unsigned n)
{
    struct timespec until = deadline_after_ms(CLOCK_REALTIME, 10000);
    pthread_mutex_lock(&mu);
    int rc = 0;
    while (*counter < n && rc == 0)
        rc = pthread_cond_timedwait(&cv, &mu, &until);
    int ok = *counter >= n;
    pthread_mutex_unlock(&mu);
    return ok;
}

static unsigned get(const unsigned *counter)
{
    pthread_mutex_lock(&mu);
    unsigned v = *counter;
    pthread_mutex_unlock(&mu);
    return v;
}

static void open_gate(void)
{
    pthread_mutex_lock(&mu);
    gate_open = 1;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
}

static struct engine_config config(unsigned min_w, unsigned max_w)
{
    struct engine_config c;
    engine_config_defaults(&c);
    c.min_workers = min_w;
    c.max_workers = max_w;
    c.timer_threads = 0;
    c.monitor_ms = 0;
    c.queue_capacity = 64;
    c.critical_reserve = 0;
    c.age_ms = 0;
    c.result_ttl_ms = 1000;
    c.default_timeout_ms = 0;
    return c;
}

static struct engine *start(const struct engine_config *c)
{
    struct engine *e = engine_new(c, procs, sizeof procs / sizeof procs[0]);
    assert_non_null(e);
    return e;
}

static uint64_t submit(struct engine *e, const char *type, const char *payload,
                       enum ggl_priority prio, uint64_t timeout_ms)
{
    struct engine_task_spec s = {.type = type, .payload = payload, .payload_len = strlen(payload),
                                 .priority = prio, .timeout_ms = timeout_ms, .max_retries = -1};
    uint64_t id = 0;
    assert_int_equal(engine_submit(e, &s, on_done, NULL, &id), GGL_OK);
    return id;
}

static void stop(struct engine *e)
{
    open_gate();
    engine_stop(e, clock_now_ms() + 10000);
    engine_free(e);
}

static enum result_status outcome(struct engine *e, uint64_t id)
{
    struct result_view v;
    assert_int_equal(results_get(engine_results(e), id, &v), RESULT_DONE);
    result_view_free(&v);
    return v.status;
}

static int setup(void **state)
{
    (void)state;
    clock_set(fake_clock);
    n_order = 0;
    memset(order, 0, sizeof order);
    gate_open = 0;
    gate_limit_ms = 10000;
    attempts = callbacks = 0;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    clock_set(NULL);
    return 0;
}

/* --- tests ----------------------------------------------------------------------- */

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

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_priority_order_within_a_type),
        T(test_ageing_serves_a_low_task_that_waited),
        T(test_worker_steals_from_another_types_queue),
        T(test_monitor_rebalances_weights_to_queue_lengths),
        T(test_pool_grows_under_load_and_shrinks_when_idle),
        T(test_timeout_reported_and_late_result_discarded),
        T(test_queued_task_past_deadline_times_out_unrun),
        T(test_stuck_worker_abandoned_and_replaced),
        T(test_retry_schedule_backs_off_exponentially),
        T(test_invalid_is_never_retried),
        T(test_results_expire_and_cancel_before_start),
        T(test_full_queue_refuses_with_retry),
        T(test_shutdown_drains_queued_tasks),
        T(test_shutdown_deadline_cancels_what_is_left),
        T(test_sub_task_result_arrives_by_callback),
        T(test_thread_init_once_per_worker_and_fini_at_exit),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
