/* Unit tests for host/pool.c: every task runs once under many producers, weighted
 * shares and full queues refuse with GGL_RETRY, grow/steal/retire, a stuck worker is
 * abandoned and replaced, and shutdown runs what is queued.  Tasks block on a gate the
 * test opens; time moves on a fake clock; maintenance passes run on the test thread. */
#include "ggl-build.h"

#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "hostapi.h"
#include "pool.h"

static _Atomic uint64_t fake_now = 5000000;
static uint64_t fake_clock(void) { return atomic_load(&fake_now); }

/* Tasks report here; the test waits on the condvar, never on time. */
struct gate {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int open;
    unsigned entered, done;
};

static struct gate gate;

static void gate_reset(void)
{
    pthread_mutex_lock(&gate.mu);
    gate.open = 0;
    gate.entered = gate.done = 0;
    pthread_mutex_unlock(&gate.mu);
}

static void gate_open(void)
{
    pthread_mutex_lock(&gate.mu);
    gate.open = 1;
    pthread_cond_broadcast(&gate.cv);
    pthread_mutex_unlock(&gate.mu);
}

static void gated_task(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&gate.mu);
    gate.entered++;
    pthread_cond_broadcast(&gate.cv);
    while (!gate.open)
        pthread_cond_wait(&gate.cv, &gate.mu);
    gate.done++;
    pthread_cond_broadcast(&gate.cv);
    pthread_mutex_unlock(&gate.mu);
}

static void quick_task(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&gate.mu);
    gate.done++;
    pthread_cond_broadcast(&gate.cv);
    pthread_mutex_unlock(&gate.mu);
}

static void wait_count(const unsigned *counter, unsigned n)
{
    pthread_mutex_lock(&gate.mu);
    while (*counter < n)
        pthread_cond_wait(&gate.cv, &gate.mu);
    pthread_mutex_unlock(&gate.mu);
}

static unsigned done_count(void)
{
    pthread_mutex_lock(&gate.mu);
    unsigned n = gate.done;
    pthread_mutex_unlock(&gate.mu);
    return n;
}

static struct pool_config base_config(unsigned min, unsigned max)
{
    return (struct pool_config){.name = "test", .min_workers = min, .max_workers = max,
                                .queue_capacity = 1024, .worker_queue = 256, .grow_depth = 2,
                                .idle_ms = 1000, .monitor_ms = 0};
}

static int setup(void **state)
{
    (void)state;
    clock_set(fake_clock);
    gate_reset();
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    clock_set(NULL);
    return 0;
}

/* --- many producers ------------------------------------------------------- */

#define PRODUCERS 4
#define PER_PRODUCER 20000

static _Atomic uint64_t ran_sum;

static void add_task(void *arg) { atomic_fetch_add(&ran_sum, (uintptr_t)arg); }

static void *produce(void *arg)
{
    struct pool *p = arg;
    struct pool_task batch[16];
    for (uintptr_t i = 1; i <= PER_PRODUCER;) {
        if (i % 2) { /* alternate single and batched submission */
            if (pool_submit(p, 0, add_task, (void *)i) == GGL_OK)
                i++;
            else
                sched_yield();
            continue;
        }
        size_t n = 0;
        for (; n < 16 && i + n <= PER_PRODUCER; n++)
            batch[n] = (struct pool_task){add_task, (void *)(i + n)};
        size_t got = pool_submit_batch(p, 0, batch, n);
        i += got;
        if (got < n)
            sched_yield();
    }
    return NULL;
}

static void test_every_task_runs_once_with_many_producers(void **state)
{
    (void)state;
    struct pool_config cfg = base_config(2, 4);
    cfg.monitor_ms = 1; /* real maintenance thread: grows and steals concurrently */
    struct pool *p = pool_new(&cfg);
    assert_non_null(p);
    atomic_store(&ran_sum, 0);
    pthread_t tid[PRODUCERS];
    for (int i = 0; i < PRODUCERS; i++)
        assert_int_equal(pthread_create(&tid[i], NULL, produce, p), 0);
    for (int i = 0; i < PRODUCERS; i++)
        pthread_join(tid[i], NULL);
    pool_free(p); /* runs everything still queued */
    assert_int_equal(atomic_load(&ran_sum),
                     (uint64_t)PRODUCERS * PER_PRODUCER * (PER_PRODUCER + 1) / 2);
}

/* --- bounds --------------------------------------------------------------- */

static void test_type_share_is_bounded_by_weight(void **state)
{
    (void)state;
    const struct pool_type types[] = {{3, 0}, {1, 0}};
    struct pool_config cfg = base_config(1, 1);
    cfg.queue_capacity = 8; /* shares: type 0 six, type 1 two */
    cfg.types = types;
    cfg.n_types = 2;
    struct pool *p = pool_new(&cfg);
    assert_non_null(p);
    struct pool_stats st, before;
    pool_stats(p, &before);
    assert_int_equal(pool_submit(p, 0, gated_task, NULL), GGL_OK);
    wait_count(&gate.entered, 1);
    assert_int_equal(pool_submit(p, 1, quick_task, NULL), GGL_OK);
    assert_int_equal(pool_submit(p, 1, quick_task, NULL), GGL_OK);
    assert_int_equal(pool_submit(p, 1, quick_task, NULL), GGL_RETRY);
    struct pool_task five[6];
    for (int i = 0; i < 6; i++)
        five[i] = (struct pool_task){quick_task, NULL};
    assert_int_equal(pool_submit_batch(p, 0, five, 6), 5); /* the gated one holds a slot */
    assert_int_equal(pool_submit(p, 2, quick_task, NULL), GGL_INVALID); /* no such type */
    pool_stats(p, &st);
    assert_true(st.refused - before.refused == 2);
    gate_open();
    wait_count(&gate.done, 8);
    /* shares come back once the worker has finished its batch (just after done == 8) */
    enum ggl_status rc = GGL_RETRY;
    for (unsigned spins = 0; rc == GGL_RETRY && spins < 10000000; spins++)
        if ((rc = pool_submit(p, 1, quick_task, NULL)) == GGL_RETRY)
            sched_yield();
    assert_int_equal(rc, GGL_OK);
    pool_free(p);
}

static void test_full_worker_queue_returns_retry(void **state)
{
    (void)state;
    struct pool_config cfg = base_config(1, 1);
    cfg.worker_queue = 4;
    struct pool *p = pool_new(&cfg);
    assert_non_null(p);
    assert_int_equal(pool_submit(p, 0, gated_task, NULL), GGL_OK);
    wait_count(&gate.entered, 1);
    for (int i = 0; i < 4; i++)
        assert_int_equal(pool_submit(p, 0, quick_task, NULL), GGL_OK);
    assert_int_equal(pool_submit(p, 0, quick_task, NULL), GGL_RETRY);
    gate_open();
    pool_free(p);
    assert_int_equal(done_count(), 5);
}

/* --- elasticity ----------------------------------------------------------- */

static void test_grows_under_backlog_steals_and_retires_idle(void **state)
{
    (void)state;
    struct pool_config cfg = base_config(1, 3);
    struct pool *p = pool_new(&cfg);
    assert_non_null(p);
    struct pool_stats st, before; /* counters are per label, shared by earlier pools */
    pool_stats(p, &before);
    assert_int_equal(pool_submit(p, 0, gated_task, NULL), GGL_OK);
    wait_count(&gate.entered, 1);
    for (int i = 0; i < 11; i++) /* queued behind it: 11 > 2 per worker */
        assert_int_equal(pool_submit(p, 0, gated_task, NULL), GGL_OK);
    pool_maintain(p);
    pool_stats(p, &st);
    assert_int_equal(st.workers, 1); /* one pass is a burst, not a backlog */
    pool_maintain(p);
    wait_count(&gate.entered, 2); /* the new worker stole from the first one's queue */
    pool_maintain(p);
    pool_maintain(p);
    wait_count(&gate.entered, 3);
    pool_maintain(p);
    pool_maintain(p); /* at max: no more */
    pool_stats(p, &st);
    assert_int_equal(st.workers, 3);
    assert_true(st.grown - before.grown == 2);
    assert_true(st.steals - before.steals >= 2);
    gate_open();
    wait_count(&gate.done, 12);
    for (unsigned spins = 0; st.idle < 3 && spins < 10000000; spins++) {
        sched_yield(); /* workers are on their way to sleep; bounded */
        pool_stats(p, &st);
    }
    assert_int_equal(st.idle, 3);
    pool_maintain(p); /* idle, but not for idle_ms yet */
    pool_stats(p, &st);
    assert_int_equal(st.workers, 3);
    atomic_fetch_add(&fake_now, 1000);
    pool_maintain(p);
    pool_stats(p, &st);
    assert_int_equal(st.workers, 1); /* down to min */
    assert_true(st.retired - before.retired == 2);
    assert_int_equal(pool_submit(p, 0, quick_task, NULL), GGL_OK);
    wait_count(&gate.done, 13);
    pool_free(p);
}

/* --- stuck workers -------------------------------------------------------- */

/* Resource control holds pools at min: a backlog does not grow it, and idle workers
 * above min retire at the next pass, without waiting idle_ms. */
static void test_hold_at_min_blocks_growth_and_retires_at_once(void **state)
{
    (void)state;
    struct pool_config cfg = base_config(1, 3);
    struct pool *p = pool_new(&cfg);
    assert_non_null(p);
    struct pool_stats st;
    assert_int_equal(pool_submit(p, 0, gated_task, NULL), GGL_OK);
    wait_count(&gate.entered, 1);
    for (int i = 0; i < 11; i++)
        assert_int_equal(pool_submit(p, 0, gated_task, NULL), GGL_OK);
    pool_maintain(p);
    pool_maintain(p); /* a backlog: it grows */
    wait_count(&gate.entered, 2);
    pool_hold_at_min(1);
    for (int i = 0; i < 4; i++)
        pool_maintain(p);
    pool_stats(p, &st);
    assert_int_equal(st.workers, 2); /* held: no third worker despite the backlog */
    gate_open();
    wait_count(&gate.done, 12);
    for (unsigned spins = 0; st.idle < 2 && spins < 10000000; spins++) {
        sched_yield();
        pool_stats(p, &st);
    }
    pool_maintain(p); /* no idle_ms wait while held */
    pool_stats(p, &st);
    assert_int_equal(st.workers, 1);
    pool_hold_at_min(0);
    pool_free(p);
}

static void test_stuck_worker_is_abandoned_and_replaced(void **state)
{
    (void)state;
    const struct pool_type types[] = {{1, 1000}};
    struct pool_config cfg = base_config(1, 1);
    cfg.types = types;
    cfg.n_types = 1;
    struct pool *p = pool_new(&cfg);
    assert_non_null(p);
    struct pool_task tasks[4] = {{gated_task, NULL}, {quick_task, NULL}, {quick_task, NULL},
                                 {quick_task, NULL}};
    assert_int_equal(pool_submit_batch(p, 0, tasks, 4), 4);
    wait_count(&gate.entered, 1);
    struct pool_stats st, before;
    pool_stats(p, &before);
    pool_maintain(p); /* not past its deadline yet */
    pool_stats(p, &st);
    assert_true(st.abandoned == before.abandoned);
    atomic_fetch_add(&fake_now, 1000);
    pool_maintain(p);
    pool_stats(p, &st);
    assert_true(st.abandoned - before.abandoned == 1);
    assert_int_equal(st.workers, 1); /* the replacement */
    wait_count(&gate.done, 3);       /* it ran the rest of the stuck worker's batch */
    assert_int_equal(pool_submit(p, 0, quick_task, NULL), GGL_OK);
    wait_count(&gate.done, 4);
    gate_open(); /* the stuck task returns; its thread exits on its own */
    assert_int_equal(pool_wait_abandoned(10000), 0);
    assert_int_equal(done_count(), 5);
    pool_free(p);
}

static void test_shared_monitor_thread_abandons_on_its_own(void **state)
{
    (void)state;
    const struct pool_type types[] = {{1, 500}};
    struct pool_config cfg = base_config(1, 1);
    cfg.types = types;
    cfg.n_types = 1;
    cfg.monitor_ms = 1; /* both pools share the one monitor thread */
    struct pool *idle = pool_new(&cfg), *p = pool_new(&cfg);
    assert_non_null(idle);
    assert_non_null(p);
    struct pool_task tasks[2] = {{gated_task, NULL}, {quick_task, NULL}};
    assert_int_equal(pool_submit_batch(p, 0, tasks, 2), 2);
    wait_count(&gate.entered, 1);
    atomic_fetch_add(&fake_now, 500);
    wait_count(&gate.done, 1); /* the monitor replaced the worker; the replacement ran it */
    gate_open();
    assert_int_equal(pool_wait_abandoned(10000), 0);
    pool_free(p);
    pool_free(idle);
    assert_int_equal(done_count(), 2);
}

/* --- shutdown ------------------------------------------------------------- */

static void test_free_runs_every_queued_task(void **state)
{
    (void)state;
    struct pool_config cfg = base_config(2, 2);
    struct pool *p = pool_new(&cfg);
    assert_non_null(p);
    assert_int_equal(pool_submit(p, 0, gated_task, NULL), GGL_OK);
    wait_count(&gate.entered, 1);
    for (int i = 0; i < 100; i++)
        assert_int_equal(pool_submit(p, 0, quick_task, NULL), GGL_OK);
    gate_open();
    pool_free(p);
    assert_int_equal(done_count(), 101);
}

static void test_rejects_bad_config(void **state)
{
    (void)state;
    struct pool_config cfg = base_config(0, 2);
    assert_null(pool_new(&cfg));
    cfg = base_config(3, 2);
    assert_null(pool_new(&cfg));
    cfg = base_config(1, 1);
    cfg.queue_capacity = 0;
    assert_null(pool_new(&cfg));
}

int main(void)
{
    pthread_mutex_init(&gate.mu, NULL);
    pthread_cond_init(&gate.cv, NULL);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_every_task_runs_once_with_many_producers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_type_share_is_bounded_by_weight, setup, teardown),
        cmocka_unit_test_setup_teardown(test_full_worker_queue_returns_retry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_grows_under_backlog_steals_and_retires_idle, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hold_at_min_blocks_growth_and_retires_at_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stuck_worker_is_abandoned_and_replaced, setup, teardown),
        cmocka_unit_test_setup_teardown(test_shared_monitor_thread_abandons_on_its_own, setup, teardown),
        cmocka_unit_test_setup_teardown(test_free_runs_every_queued_task, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rejects_bad_config, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
