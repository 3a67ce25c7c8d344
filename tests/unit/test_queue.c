/* Unit tests for host/queue.c: order, ageing, bounds, batch pop, delayed items under a
 * fake clock, a level deeper than its ring, close with items inside, and many producers
 * and consumers. */
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
#include "metrics.h"
#include "queue.h"

static _Atomic uint64_t fake_now = 1000000;
static uint64_t fake_clock(void) { return atomic_load(&fake_now); }
static void advance(uint64_t ms) { atomic_fetch_add(&fake_now, ms); }

#define ITEM(x) ((void *)(uintptr_t)(x))
#define VAL(p) ((uintptr_t)(p))

static struct queue *make(size_t cap, size_t reserve, uint64_t age_ms)
{
    struct queue_config cfg = {"test", cap, reserve, age_ms};
    struct queue *q = queue_new(&cfg);
    assert_non_null(q);
    return q;
}

static int setup(void **state)
{
    (void)state;
    clock_set(fake_clock);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    clock_set(NULL);
    return 0;
}

static void test_priority_order_and_fifo_within_priority(void **state)
{
    (void)state;
    struct queue *q = make(16, 0, 0);
    assert_int_equal(queue_push(q, ITEM(31), GGL_PRIO_LOW), GGL_OK);
    assert_int_equal(queue_push(q, ITEM(21), GGL_PRIO_NORMAL), GGL_OK);
    assert_int_equal(queue_push(q, ITEM(1), GGL_PRIO_CRITICAL), GGL_OK);
    assert_int_equal(queue_push(q, ITEM(22), GGL_PRIO_NORMAL), GGL_OK);
    assert_int_equal(queue_push(q, ITEM(11), GGL_PRIO_HIGH), GGL_OK);
    assert_int_equal(queue_push(q, ITEM(2), GGL_PRIO_CRITICAL), GGL_OK);
    const uintptr_t want[] = {1, 2, 11, 21, 22, 31};
    void *out[8];
    assert_int_equal(queue_pop_batch(q, out, 8, 0), 6);
    for (int i = 0; i < 6; i++)
        assert_int_equal(VAL(out[i]), want[i]);
    assert_int_equal(queue_push(q, ITEM(9), (enum ggl_priority)7), GGL_INVALID);
    queue_free(q);
}

static void test_ageing_lets_low_priority_overtake(void **state)
{
    (void)state;
    struct queue *q = make(16, 0, 100);
    void *out[1];
    queue_push(q, ITEM(30), GGL_PRIO_LOW);
    advance(250); /* low has aged two steps: competes as high */
    queue_push(q, ITEM(1), GGL_PRIO_CRITICAL);
    queue_push(q, ITEM(2), GGL_PRIO_CRITICAL);
    assert_int_equal(queue_pop_batch(q, out, 1, 0), 1);
    assert_int_equal(VAL(out[0]), 1);
    advance(50); /* three steps: competes as critical and is older than item 2 */
    assert_int_equal(queue_pop_batch(q, out, 1, 0), 1);
    assert_int_equal(VAL(out[0]), 30);
    assert_int_equal(queue_pop_batch(q, out, 1, 0), 1);
    assert_int_equal(VAL(out[0]), 2);
    queue_free(q);
}

static void test_low_priority_is_not_starved_by_a_stream_of_critical(void **state)
{
    (void)state;
    struct queue *q = make(64, 0, 100);
    void *out[1];
    uint64_t start = fake_clock();
    uintptr_t next = 1;
    queue_push(q, ITEM(1000), GGL_PRIO_LOW);
    queue_push(q, ITEM(next++), GGL_PRIO_CRITICAL);
    for (int ms = 0; ms < 1000; ms++) { /* one new critical item per ms, one pop per ms */
        advance(1);
        queue_push(q, ITEM(next++), GGL_PRIO_CRITICAL);
        assert_int_equal(queue_pop_batch(q, out, 1, 0), 1);
        if (VAL(out[0]) == 1000)
            break;
    }
    assert_int_equal(VAL(out[0]), 1000);
    assert_true(fake_clock() - start <= 3 * 100 + 1); /* the documented bound */
    queue_free(q);
}

static void test_no_ageing_is_strict_priority(void **state)
{
    (void)state;
    struct queue *q = make(16, 0, 0);
    void *out[2];
    queue_push(q, ITEM(30), GGL_PRIO_LOW);
    advance(1000000);
    queue_push(q, ITEM(1), GGL_PRIO_NORMAL);
    assert_int_equal(queue_pop_batch(q, out, 2, 0), 2);
    assert_int_equal(VAL(out[0]), 1);
    assert_int_equal(VAL(out[1]), 30);
    queue_free(q);
}

static void test_full_queue_returns_retry_and_keeps_reserve(void **state)
{
    (void)state;
    struct ggl_metric *refused = metrics_register(GGL_METRIC_COUNTER, "queue_refused_total", "", "test");
    double refused_before = metrics_value(refused);
    struct queue *q = make(4, 1, 0);
    assert_int_equal(queue_push(q, ITEM(1), GGL_PRIO_NORMAL), GGL_OK);
    assert_int_equal(queue_push_at(q, ITEM(2), GGL_PRIO_LOW, fake_clock() + 10), GGL_OK);
    assert_int_equal(queue_push(q, ITEM(3), GGL_PRIO_HIGH), GGL_OK);
    /* the last slot is the critical reserve; a delayed item holds its slot */
    assert_int_equal(queue_push(q, ITEM(4), GGL_PRIO_HIGH), GGL_RETRY);
    assert_int_equal(queue_push(q, ITEM(4), GGL_PRIO_CRITICAL), GGL_OK);
    assert_int_equal(queue_push(q, ITEM(5), GGL_PRIO_CRITICAL), GGL_RETRY);
    assert_int_equal(queue_length(q), 4);
    assert_true(metrics_value(refused) - refused_before == 2); /* counted, not silent */
    void *out[4];
    assert_int_equal(queue_pop_batch(q, out, 1, 0), 1);
    assert_int_equal(queue_push(q, ITEM(5), GGL_PRIO_CRITICAL), GGL_OK);
    queue_free(q);
}

static void test_batch_pop_takes_at_most_max(void **state)
{
    (void)state;
    struct queue *q = make(64, 0, 0);
    for (uintptr_t i = 0; i < 10; i++)
        queue_push(q, ITEM(i), GGL_PRIO_NORMAL);
    void *out[4];
    assert_int_equal(queue_pop_batch(q, out, 4, 0), 4);
    assert_int_equal(VAL(out[3]), 3);
    assert_int_equal(queue_pop_batch(q, out, 4, 0), 4);
    assert_int_equal(VAL(out[0]), 4);
    assert_int_equal(queue_pop_batch(q, out, 4, 0), 2);
    assert_int_equal(queue_pop_batch(q, out, 4, 0), 0);
    assert_int_equal(queue_pop_batch(q, out, 4, 1), 0); /* times out */
    queue_free(q);
}

/* A deep level (10,000 items, its ring going round while it drains and refills) leaves
 * in order, behind nothing that came later; a higher priority pushed meanwhile goes
 * first; a delayed item that comes due queues behind what is ready at its level. */
static void test_a_deep_level_keeps_its_order(void **state)
{
    (void)state;
    enum { N = 10000 };
    struct queue *q = make(N + 2, 0, 0);
    for (uintptr_t i = 1; i <= N; i++)
        assert_int_equal(queue_push(q, ITEM(i), GGL_PRIO_NORMAL), GGL_OK);
    assert_int_equal(queue_push_at(q, ITEM(N + 1), GGL_PRIO_NORMAL, fake_clock() + 5), GGL_OK);
    assert_int_equal(queue_push(q, ITEM(N + 2), GGL_PRIO_HIGH), GGL_OK);
    assert_int_equal(queue_push(q, ITEM(N + 3), GGL_PRIO_CRITICAL), GGL_RETRY);
    assert_int_equal(queue_length(q), N + 2);
    void *out[16];
    assert_int_equal(queue_pop_batch(q, out, 16, 0), 16);
    assert_int_equal(VAL(out[0]), N + 2);
    uintptr_t next = 1;
    for (size_t i = 1; i < 16; i++)
        assert_int_equal(VAL(out[i]), next++);
    advance(10); /* item N + 1 is due: it arrived last at its level */
    /* Pop the rest 16 at a time, pushing one more normal item after each pop while the
     * level drains: all must come out behind N + 1, in their order. */
    static uintptr_t got[N + 400];
    size_t ngot = 0;
    uintptr_t pushed = 0;
    for (size_t n; (n = queue_pop_batch(q, out, 16, 0)) > 0;) {
        for (size_t i = 0; i < n; i++)
            got[ngot++] = VAL(out[i]);
        if (pushed < 300)
            assert_int_equal(queue_push(q, ITEM(100000 + ++pushed), GGL_PRIO_NORMAL), GGL_OK);
    }
    assert_int_equal(ngot, N - 15 + 1 + 300);
    for (size_t i = 0; i < ngot; i++)
        assert_int_equal(got[i], next + i <= N + 1 ? next + i : 100000 + (next + i - N - 1));
    assert_int_equal(queue_length(q), 0);
    queue_free(q);
}

static void test_delayed_items_come_due_in_order(void **state)
{
    (void)state;
    struct queue *q = make(16, 0, 0);
    uint64_t now = fake_clock();
    queue_push_at(q, ITEM(3), GGL_PRIO_NORMAL, now + 300);
    queue_push_at(q, ITEM(1), GGL_PRIO_NORMAL, now + 100);
    queue_push_at(q, ITEM(2), GGL_PRIO_NORMAL, now + 200);
    void *out[4];
    assert_int_equal(queue_pop_batch(q, out, 4, 0), 0);
    advance(200);
    assert_int_equal(queue_pop_batch(q, out, 4, 0), 2);
    assert_int_equal(VAL(out[0]), 1);
    assert_int_equal(VAL(out[1]), 2);
    advance(100);
    assert_int_equal(queue_pop_batch(q, out, 4, 0), 1);
    assert_int_equal(VAL(out[0]), 3);
    queue_free(q);
}

struct waiter {
    struct queue *q;
    pthread_t tid;
    _Atomic int waiting;
    size_t got;
    void *item;
};

static void *wait_one(void *arg)
{
    struct waiter *w = arg;
    atomic_store(&w->waiting, 1);
    w->got = queue_pop_batch(w->q, &w->item, 1, -1);
    return NULL;
}

static void test_blocked_consumer_wakes_when_delayed_item_is_due(void **state)
{
    (void)state;
    struct queue *q = make(16, 0, 0);
    struct waiter w = {.q = q};
    queue_push_at(q, ITEM(7), GGL_PRIO_HIGH, fake_clock() + 60000);
    assert_int_equal(pthread_create(&w.tid, NULL, wait_one, &w), 0);
    while (!atomic_load(&w.waiting))
        sched_yield();
    advance(60000);
    queue_kick(q); /* the waiter's timed wait is for a minute of real time */
    pthread_join(w.tid, NULL);
    assert_int_equal(w.got, 1);
    assert_int_equal(VAL(w.item), 7);
    queue_free(q);
}

static void test_close_wakes_consumers_and_keeps_items(void **state)
{
    (void)state;
    struct queue *q = make(16, 0, 0);
    struct waiter w = {.q = q};
    assert_int_equal(pthread_create(&w.tid, NULL, wait_one, &w), 0);
    while (!atomic_load(&w.waiting))
        sched_yield();
    queue_close(q);
    pthread_join(w.tid, NULL);
    assert_int_equal(w.got, 0);
    assert_int_equal(queue_push(q, ITEM(1), GGL_PRIO_NORMAL), GGL_UNAVAILABLE);
    queue_free(q);

    q = make(16, 0, 0);
    queue_push(q, ITEM(1), GGL_PRIO_NORMAL);
    queue_push(q, ITEM(2), GGL_PRIO_LOW);
    queue_push_at(q, ITEM(3), GGL_PRIO_LOW, fake_clock() + 5000);
    queue_close(q);
    void *out[4];
    assert_int_equal(queue_pop_batch(q, out, 1, -1), 1);
    assert_int_equal(VAL(out[0]), 1);
    assert_int_equal(queue_drain(q, out, 4), 2); /* ready first, then delayed */
    assert_int_equal(VAL(out[0]), 2);
    assert_int_equal(VAL(out[1]), 3);
    assert_int_equal(queue_length(q), 0);
    assert_int_equal(queue_pop_batch(q, out, 4, -1), 0);
    queue_free(q);
}

#define PRODUCERS 4
#define CONSUMERS 3
#define PER_PRODUCER 20000

struct consumer {
    struct queue *q;
    pthread_t tid;
    uint64_t count, sum;
    int out_of_order;
};

struct producer {
    struct queue *q;
    pthread_t tid;
    uintptr_t id;
    enum ggl_priority prio;
};

static void *produce(void *arg)
{
    struct producer *p = arg;
    for (uintptr_t i = 1; i <= PER_PRODUCER; i++)
        while (queue_push(p->q, ITEM(p->id << 32 | i), p->prio) == GGL_RETRY)
            sched_yield();
    return NULL;
}

static void *consume(void *arg)
{
    struct consumer *c = arg;
    uintptr_t last[PRODUCERS] = {0};
    void *out[16];
    size_t n;
    while ((n = queue_pop_batch(c->q, out, 16, -1)) > 0) {
        for (size_t i = 0; i < n; i++) {
            uintptr_t v = VAL(out[i]), p = v >> 32, seq = v & 0xffffffffu;
            if (seq <= last[p])
                c->out_of_order++;
            last[p] = seq;
            c->count++;
            c->sum += seq;
        }
    }
    return NULL;
}

/* Every item comes out once, each producer's in its order; producer i pushes at
 * priority levels[i % 4]. */
static void run_producers_and_consumers(size_t capacity, const enum ggl_priority levels[4])
{
    struct queue *q = make(capacity, 0, 0);
    struct producer p[PRODUCERS];
    struct consumer c[CONSUMERS] = {{0}};
    for (int i = 0; i < CONSUMERS; i++) {
        c[i].q = q;
        assert_int_equal(pthread_create(&c[i].tid, NULL, consume, &c[i]), 0);
    }
    for (int i = 0; i < PRODUCERS; i++) {
        p[i] = (struct producer){.q = q, .id = (uintptr_t)i, .prio = levels[i % 4]};
        assert_int_equal(pthread_create(&p[i].tid, NULL, produce, &p[i]), 0);
    }
    for (int i = 0; i < PRODUCERS; i++)
        pthread_join(p[i].tid, NULL);
    queue_close(q);
    uint64_t count = 0, sum = 0;
    for (int i = 0; i < CONSUMERS; i++) {
        pthread_join(c[i].tid, NULL);
        count += c[i].count;
        sum += c[i].sum;
        assert_int_equal(c[i].out_of_order, 0);
    }
    assert_int_equal(count, (uint64_t)PRODUCERS * PER_PRODUCER);
    assert_int_equal(sum, (uint64_t)PRODUCERS * PER_PRODUCER * (PER_PRODUCER + 1) / 2);
    assert_int_equal(queue_length(q), 0);
    queue_free(q);
}

static void test_many_producers_and_consumers(void **state)
{
    (void)state;
    static const enum ggl_priority normal[4] = {GGL_PRIO_NORMAL, GGL_PRIO_NORMAL,
                                                GGL_PRIO_NORMAL, GGL_PRIO_NORMAL};
    run_producers_and_consumers(256, normal);
}

/* A queue of 8 across all four levels: its rings go round thousands of times while
 * consumers take one item at a time by the ageing rule (a stress test: the window in
 * which a producer comes round to a cell a consumer is still copying out is too short
 * to hit on purpose). */
static void test_many_producers_and_consumers_across_priorities(void **state)
{
    (void)state;
    static const enum ggl_priority all[4] = {GGL_PRIO_CRITICAL, GGL_PRIO_HIGH, GGL_PRIO_NORMAL,
                                             GGL_PRIO_LOW};
    run_producers_and_consumers(8, all);
}

/* A deep queue on two levels: blocking consumers fall behind and catch up. */
static void test_many_producers_and_consumers_on_a_deep_queue(void **state)
{
    (void)state;
    static const enum ggl_priority two[4] = {GGL_PRIO_HIGH, GGL_PRIO_NORMAL, GGL_PRIO_HIGH,
                                             GGL_PRIO_NORMAL};
    run_producers_and_consumers(20000, two);
}

struct closer_race {
    struct queue *q;
    pthread_t tid;
    _Atomic uint64_t *accepted;
    int delayed;
};

/* Push until the queue refuses as closed (a full queue: try again). */
static void *push_until_closed(void *arg)
{
    struct closer_race *r = arg;
    for (uintptr_t i = 1;; i++) {
        enum ggl_status st = r->delayed && i % 2
                                 ? queue_push_at(r->q, ITEM(i), GGL_PRIO_NORMAL, fake_clock() + 5)
                                 : queue_push(r->q, ITEM(i), GGL_PRIO_NORMAL);
        if (st == GGL_UNAVAILABLE)
            return NULL;
        if (st == GGL_OK)
            atomic_fetch_add(r->accepted, 1);
        else
            sched_yield();
    }
}

/* A close with pushes racing it, then a drain right away (as shutdown does): every push
 * that was accepted is in what the drain and the consumers got, none lands after. */
static void test_close_fences_off_racing_pushes(void **state)
{
    (void)state;
    for (int round = 0; round < 100; round++) { /* the race is short: many tries */
        struct queue *q = make(512, 0, 0);
        _Atomic uint64_t accepted = 0;
        struct closer_race r[PRODUCERS];
        for (int i = 0; i < PRODUCERS; i++) {
            r[i] = (struct closer_race){.q = q, .accepted = &accepted, .delayed = i == 0};
            assert_int_equal(pthread_create(&r[i].tid, NULL, push_until_closed, &r[i]), 0);
        }
        while (atomic_load(&accepted) < 100) /* bounded: they stop only once closed */
            sched_yield();
        queue_close(q);
        uint64_t got = 0;
        void *out[64];
        for (size_t n; (n = queue_drain(q, out, 64)) > 0;)
            got += n;
        for (int i = 0; i < PRODUCERS; i++)
            pthread_join(r[i].tid, NULL);
        assert_int_equal(queue_length(q), 0); /* nothing accepted after the drain */
        assert_int_equal(got, atomic_load(&accepted));
        queue_free(q);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_priority_order_and_fifo_within_priority, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ageing_lets_low_priority_overtake, setup, teardown),
        cmocka_unit_test_setup_teardown(test_low_priority_is_not_starved_by_a_stream_of_critical, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_ageing_is_strict_priority, setup, teardown),
        cmocka_unit_test_setup_teardown(test_full_queue_returns_retry_and_keeps_reserve, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batch_pop_takes_at_most_max, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_deep_level_keeps_its_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_delayed_items_come_due_in_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_blocked_consumer_wakes_when_delayed_item_is_due, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_wakes_consumers_and_keeps_items, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_fences_off_racing_pushes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_many_producers_and_consumers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_many_producers_and_consumers_across_priorities, setup, teardown),
        cmocka_unit_test_setup_teardown(test_many_producers_and_consumers_on_a_deep_queue, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
