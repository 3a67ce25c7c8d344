/* The asynchronous memory front on real backends: cache hits answered on the calling
 * thread, misses on a worker, per-key write order kept, a full queue refusing at
 * admission while a worker is held, and stop draining everything queued. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <time.h>
#include <poll.h>
#include <unistd.h>
#include <cmocka.h>

#include "host_fixture.h"
#include "hostapi.h"
#include "memory_async.h"

static struct host_fixture fx;

/* What callbacks saw, for the test thread to check. */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t changed = PTHREAD_COND_INITIALIZER;
static int done_count, hold_first, held, released;
static pthread_t last_thread;
static struct memory_result last;
static char last_value[64];

static void on_done(void *arg, struct memory_result *r)
{
    (void)arg;
    pthread_mutex_lock(&lock);
    if (hold_first && !held) {
        held = 1;
        pthread_cond_broadcast(&changed);
        while (!released)
            pthread_cond_wait(&changed, &lock);
    }
    last = *r;
    last_value[0] = '\0';
    if (r->op == MEM_OP_GET && r->status == GGL_OK) {
        snprintf(last_value, sizeof last_value, "%.*s", (int)r->value.len, (char *)r->value.data);
        free(r->value.data);
    }
    last_thread = pthread_self();
    done_count++;
    pthread_cond_broadcast(&changed);
    pthread_mutex_unlock(&lock);
}

/* Wait (bounded) until `n` callbacks have run or `flag` is set. */
static void wait_for(int n, int *flag)
{
    struct timespec due;
    clock_gettime(CLOCK_REALTIME, &due);
    due.tv_sec += 10;
    pthread_mutex_lock(&lock);
    while ((flag ? !*flag : done_count < n) &&
           pthread_cond_timedwait(&changed, &lock, &due) == 0)
        ;
    int ok = flag ? *flag : done_count >= n;
    pthread_mutex_unlock(&lock);
    assert_true(ok);
}

static int setup_with(int64_t capacity)
{
    done_count = hold_first = held = released = 0;
    if (host_fixture_open(&fx, "backends = { c = { plugin = \"cache\"; }; s = { plugin = \"mem\"; }; };\n"
                               "tiers = { cache = \"c\"; stm = \"s\"; };\n") < 0)
        return -1;
    struct memory_async_conf ac = {2, 2, capacity, 64, 0, 1, 200};
    return memory_async_start(&ac);
}

static int setup(void **state) { (void)state; return setup_with(4096); }

static uint64_t fake_ms = 1700000000000ull;
static uint64_t fake_clock(void) { return __atomic_load_n(&fake_ms, __ATOMIC_RELAXED); }
static char down_file[128];

/* STM that goes down on demand (tier/flaky), LTM on a file, writes queued when allowed. */
static int setup_queueing(void **state)
{
    (void)state;
    done_count = hold_first = held = released = 0;
    clock_set(fake_clock);
    if (host_fixture_open(&fx, "backends = { c = { plugin = \"cache\"; };"
                               " s = { plugin = \"flaky\"; fail_file = \"%1$s/down\"; };"
                               " l = { plugin = \"sqlite\"; path = \"%1$s/ltm.db\"; }; };\n"
                               "tiers = { cache = \"c\"; stm = \"s\"; ltm = \"l\"; };\n"
                               "memory = { breaker_threshold = 1; breaker_cooldown_ms = 1000; };\n") < 0)
        return -1;
    snprintf(down_file, sizeof down_file, "%s/down", fx.dir);
    struct memory_async_conf ac = {1, 1, 64, 64, 1, 100, 10};
    return memory_async_start(&ac);
}
static int setup_small(void **state) { (void)state; return setup_with(4); }

static int teardown(void **state)
{
    (void)state;
    memory_async_free();
    host_fixture_close(&fx);
    clock_set(NULL);
    return 0;
}

static enum ggl_status raw_get(int tier, const char *key, struct ggl_entry *e)
{
    struct binding *b = atomic_load(&memory_slot(tier)->current);
    *e = (struct ggl_entry){.size = sizeof *e};
    enum ggl_status st = b->vt->get(b->self, key, strlen(key), e);
    if (st == GGL_OK)
        free(e->value);
    return st;
}

/* Poll (bounded) until tier holds key without the pending flag: the worker's retry
 * runs every 10 ms of real time. */
static int wait_landed(int tier, const char *key)
{
    for (int i = 0; i < 1000; i++) {
        struct ggl_entry e;
        if (raw_get(tier, key, &e) == GGL_OK)
            return 1;
        poll(NULL, 0, 10);
    }
    return 0;
}

static void set_down(int down)
{
    if (down)
        fclose(fopen(down_file, "w"));
    else
        unlink(down_file);
}

/* STM down: the write is held and answered QUEUED, readable at once from the cache,
 * and lands in STM once it is back; the cache copy is then no longer pending. */
static void test_write_queued_while_tier_down(void **state)
{
    (void)state;
    struct memory_write w = MEMORY_WRITE_DEFAULT;
    set_down(1);
    assert_int_equal(memory_async_put("q", 1, "held", 4, &w, on_done, NULL), GGL_OK);
    wait_for(1, NULL);
    assert_int_equal(last.status, GGL_OK);
    assert_int_equal(last.queued, 1);
    struct memory_value v;
    assert_int_equal(memory_get("q", 1, &v), GGL_OK);
    assert_int_equal(v.len, 4);
    free(v.data);
    struct ggl_entry e;
    assert_int_equal(raw_get(SLOT_CACHE, "q", &e), GGL_OK);
    assert_true(e.flags & GGL_ENTRY_PENDING);
    set_down(0);
    __atomic_add_fetch(&fake_ms, 1000, __ATOMIC_RELAXED); /* the breaker's cooldown */
    assert_true(wait_landed(SLOT_STM, "q"));
    for (int i = 0; i < 1000 && raw_get(SLOT_CACHE, "q", &e) == GGL_OK && (e.flags & GGL_ENTRY_PENDING); i++)
        poll(NULL, 0, 10);
    assert_false(e.flags & GGL_ENTRY_PENDING);
}

/* Still down at shutdown: held writes go to LTM instead of being lost. */
static void test_held_writes_go_to_ltm_at_stop(void **state)
{
    (void)state;
    struct memory_write w = MEMORY_WRITE_DEFAULT;
    set_down(1);
    assert_int_equal(memory_async_put("keep", 4, "me", 2, &w, on_done, NULL), GGL_OK);
    wait_for(1, NULL);
    assert_int_equal(last.queued, 1);
    memory_async_stop();
    struct ggl_entry e;
    assert_int_equal(raw_get(SLOT_LTM, "keep", &e), GGL_OK);
    set_down(0);
}

/* Without queue_writes a write to a tier that is down is refused, not held. */
static void test_no_queueing_by_default(void **state)
{
    (void)state;
    memory_async_stop();
    memory_async_free();
    struct memory_async_conf ac = {1, 1, 64, 64, 0, 100, 10};
    assert_int_equal(memory_async_start(&ac), 0);
    struct memory_write w = MEMORY_WRITE_DEFAULT;
    set_down(1);
    assert_int_equal(memory_async_put("no", 2, "x", 1, &w, on_done, NULL), GGL_OK);
    wait_for(1, NULL);
    assert_int_equal(last.status, GGL_RETRY);
    assert_int_equal(last.queued, 0);
    set_down(0);
}

static void test_hit_inline_miss_on_worker(void **state)
{
    (void)state;
    struct memory_write w = MEMORY_WRITE_DEFAULT;
    assert_int_equal(memory_put("hot", 3, "v1", 2, &w, NULL), GGL_OK);
    assert_int_equal(memory_async_get("hot", 3, on_done, NULL), GGL_OK);
    assert_int_equal(done_count, 1); /* before the call returned */
    assert_true(pthread_equal(last_thread, pthread_self()));
    assert_string_equal(last_value, "v1");

    assert_int_equal(memory_async_get("cold", 4, on_done, NULL), GGL_OK);
    wait_for(2, NULL);
    assert_int_equal(last.status, GGL_NOTFOUND);
    assert_false(pthread_equal(last_thread, pthread_self()));
}

static void test_writes_to_one_key_apply_in_order(void **state)
{
    (void)state;
    struct memory_write w = MEMORY_WRITE_DEFAULT;
    char v[16];
    for (int i = 0; i < 1000; i++) {
        snprintf(v, sizeof v, "%d", i);
        assert_int_equal(memory_async_put("k", 1, v, strlen(v), &w, on_done, NULL), GGL_OK);
        if (i == 500)
            assert_int_equal(memory_async_del("k", 1, on_done, NULL), GGL_OK);
    }
    wait_for(1001, NULL);
    struct memory_value mv;
    assert_int_equal(memory_get("k", 1, &mv), GGL_OK);
    assert_int_equal(mv.len, 3);
    assert_memory_equal(mv.data, "999", 3);
    free(mv.data);
}

/* A writer on its own thread (as a plugin's mem_put, or the control socket's inline SET)
 * racing the workers' batches on the same keys: every tier ends holding the newest
 * version.  A batch gets its versions before it reaches the tiers, so a newer direct
 * write can land between; written unconditionally, the batch's older copy then replaced
 * it in STM while the cache kept the newer one. */
#define RACED_KEYS 20000

static void *direct_writer(void *arg)
{
    struct memory_write w = MEMORY_WRITE_DEFAULT;
    char k[16];
    for (int i = 0; i < RACED_KEYS; i++) {
        snprintf(k, sizeof k, "r%d", i);
        memory_put(k, strlen(k), "direct", 6, &w, NULL);
    }
    (void)arg;
    return NULL;
}

static void test_direct_and_queued_writes_converge(void **state)
{
    (void)state;
    struct memory_write w = MEMORY_WRITE_DEFAULT;
    pthread_t th;
    char k[16];
    int sent = 0, differ = 0;
    assert_int_equal(pthread_create(&th, NULL, direct_writer, NULL), 0);
    for (int i = 0; i < RACED_KEYS; i++) {
        snprintf(k, sizeof k, "r%d", i);
        while (memory_async_put(k, strlen(k), "queued", 6, &w, on_done, NULL) != GGL_OK)
            poll(NULL, 0, 1); /* queue full: let the workers catch up */
        sent++;
    }
    pthread_join(th, NULL);
    wait_for(sent, NULL);
    for (int i = 0; i < RACED_KEYS; i++) {
        struct ggl_entry c, s;
        snprintf(k, sizeof k, "r%d", i);
        assert_int_equal(raw_get(SLOT_CACHE, k, &c), GGL_OK);
        assert_int_equal(raw_get(SLOT_STM, k, &s), GGL_OK);
        differ += c.version != s.version;
    }
    assert_int_equal(differ, 0);
}

static void test_full_queue_refuses_at_admission(void **state)
{
    (void)state;
    struct memory_write w = MEMORY_WRITE_DEFAULT;
    hold_first = 1;
    /* One key, so one worker: its first completion holds it; the queue fills behind. */
    assert_int_equal(memory_async_put("q", 1, "0", 1, &w, on_done, NULL), GGL_OK);
    wait_for(0, &held);
    int accepted = 0;
    enum ggl_status st = GGL_OK;
    for (int i = 0; i < 100 && st == GGL_OK; i++)
        if ((st = memory_async_put("q", 1, "x", 1, &w, on_done, NULL)) == GGL_OK)
            accepted++;
    assert_int_equal(st, GGL_RETRY);
    assert_int_equal(accepted, 4);
    assert_non_null(strstr(hostapi_take_reason(), "memory queue full (4 requests)"));
    pthread_mutex_lock(&lock);
    released = 1;
    pthread_cond_broadcast(&changed);
    pthread_mutex_unlock(&lock);
    wait_for(1 + accepted, NULL);
}

static void test_stop_drains_queue(void **state)
{
    (void)state;
    struct memory_write w = MEMORY_WRITE_DEFAULT;
    char k[16];
    for (int i = 0; i < 300; i++) {
        snprintf(k, sizeof k, "d%d", i);
        assert_int_equal(memory_async_put(k, strlen(k), "v", 1, &w, on_done, NULL), GGL_OK);
    }
    memory_async_stop();
    assert_int_equal(done_count, 300);
    assert_int_equal(memory_async_put("late", 4, "v", 1, &w, on_done, NULL), GGL_UNAVAILABLE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_hit_inline_miss_on_worker, setup, teardown),
        cmocka_unit_test_setup_teardown(test_writes_to_one_key_apply_in_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_direct_and_queued_writes_converge, setup, teardown),
        cmocka_unit_test_setup_teardown(test_full_queue_refuses_at_admission, setup_small, teardown),
        cmocka_unit_test_setup_teardown(test_stop_drains_queue, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_queued_while_tier_down, setup_queueing, teardown),
        cmocka_unit_test_setup_teardown(test_held_writes_go_to_ltm_at_stop, setup_queueing, teardown),
        cmocka_unit_test_setup_teardown(test_no_queueing_by_default, setup_queueing, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
