/* Maintenance with the fake clock on real backends (cache, mem, mem, sqlite): entries
 * end in the tiers the documented policy predicts (checked entry by entry against the
 * policy on 200 seeded random entries), low scores expire instead of moving, pinned
 * entries move to LTM and survive, tombstones are purged, a newer write during a
 * transition wins, config validation rejects an interval of half a TTL or more, and
 * the access counts of every thread (ended or still running) reach a flush. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <pthread.h>
#include <cmocka.h>

#include "access.h"
#include "host_fixture.h"
#include "hostapi.h"
#include "maintenance.h"

static uint64_t fake_now = 1700000000000ull;
static uint64_t fake_clock(void) { return fake_now; }

static struct host_fixture fx;

static int setup(void **state)
{
    (void)state;
    clock_set(fake_clock);
    return host_fixture_open(&fx,
                             "backends = { c = { plugin = \"cache\"; }; s = { plugin = \"mem\"; };"
                             " i = { plugin = \"mem\"; }; l = { plugin = \"sqlite\"; path = \"%1$s/ltm.db\"; }; };\n"
                             "tiers = { cache = \"c\"; stm = \"s\"; im = \"i\"; ltm = \"l\"; };\n"
                             "memory = { stm_ttl_ms = 10000; im_ttl_ms = 100000; maintenance_interval_ms = 1000; };\n");
}

static int teardown(void **state)
{
    (void)state;
    host_fixture_close(&fx);
    clock_set(NULL);
    return 0;
}

static void put(const char *key, double importance, int pin)
{
    struct memory_write w = MEMORY_WRITE_DEFAULT;
    w.importance = importance;
    w.pin = pin;
    assert_int_equal(memory_put(key, strlen(key), "v", 1, &w, NULL), GGL_OK);
}

/* Which non-cache tier holds a live copy of key (-1: none). */
static int where(const char *key)
{
    for (int t = SLOT_STM; t < SLOT_COUNT; t++) {
        struct binding *b = atomic_load(&memory_slot(t)->current);
        struct ggl_entry e = {.size = sizeof e};
        if (b->vt->get(b->self, key, strlen(key), &e) == GGL_OK) {
            free(e.value);
            if (!(e.flags & GGL_ENTRY_TOMBSTONE))
                return t;
        }
    }
    return -1;
}

static void test_policy_moves_and_expires(void **state)
{
    (void)state;
    struct maintenance_report r;
    put("hi", 0.9, 0);
    put("lo", 0.0, 0);
    put("pin", 0.0, 1);
    fake_now += 4000;
    put("young", 0.9, 0);
    fake_now += 1000; /* hi, lo, pin: 5 s old = half the STM TTL; young: 1 s */
    maintenance_cycle(&r);
    assert_int_equal(where("hi"), SLOT_IM);
    assert_int_equal(where("pin"), SLOT_IM);
    assert_int_equal(where("lo"), SLOT_STM);   /* score 0.2 < 0.3: stays to expire */
    assert_int_equal(where("young"), SLOT_STM);
    assert_int_equal(r.moved_stm_im, 2);
    fake_now += 5000; /* lo's TTL ends */
    maintenance_cycle(&r);
    assert_int_equal(where("lo"), -1);
    assert_int_equal(where("young"), SLOT_IM);
    assert_int_equal(where("hi"), SLOT_IM); /* 10 s old: below IM's minimum age */
    fake_now += 50000; /* hi and pin are half an IM TTL old in IM */
    maintenance_cycle(&r);
    assert_int_equal(where("hi"), SLOT_LTM);
    assert_int_equal(where("pin"), SLOT_LTM);
    fake_now += 10000000;
    struct memory_value v;
    assert_int_equal(memory_get("pin", 3, &v), GGL_OK); /* pinned: never expires */
    free(v.data);
    assert_int_equal(memory_get("hi", 2, &v), GGL_OK); /* LTM keeps what it was given */
    free(v.data);
}

/* Reads are counted in the host and flushed by the next cycle; the count lifts an entry
 * over the LTM threshold that its importance alone does not reach. */
static void test_access_counts_flushed_and_scored(void **state)
{
    (void)state;
    struct maintenance_report r;
    struct memory_value v;
    put("read", 0.4, 0);
    put("unread", 0.4, 0);
    fake_now += 5000;
    maintenance_cycle(&r); /* both to IM: 0.2 + 0.2 recency >= 0.3 */
    assert_int_equal(where("read"), SLOT_IM);
    assert_int_equal(where("unread"), SLOT_IM);
    for (int i = 0; i < 8; i++) {
        assert_int_equal(memory_get("read", 4, &v), GGL_OK);
        free(v.data);
    }
    fake_now += 50000;
    maintenance_cycle(&r);
    assert_true(r.touched >= 1);
    assert_int_equal(where("read"), SLOT_LTM);
    assert_int_equal(where("unread"), SLOT_IM);
    struct binding *ltm = atomic_load(&memory_slot(SLOT_LTM)->current);
    struct ggl_entry e = {.size = sizeof e};
    assert_int_equal(ltm->vt->get(ltm->self, "read", 4, &e), GGL_OK);
    free(e.value);
    assert_int_equal(e.access_count, 8);
}

static uint64_t ltm_rows(void)
{
    struct binding *ltm = atomic_load(&memory_slot(SLOT_LTM)->current);
    struct ggl_tier_stats st = {.size = sizeof st};
    assert_int_equal(ltm->vt->stats(ltm->self, &st), GGL_OK);
    return st.entries;
}

/* LTM rows written with a TTL are deleted by the first cycle after they expire (tier/
 * sqlite would keep them until overwritten); rows without one stay. */
static void test_cycle_deletes_expired_ltm_rows(void **state)
{
    (void)state;
    struct maintenance_report r;
    struct memory_write w = MEMORY_WRITE_DEFAULT;
    w.tier = SLOT_LTM;
    w.ttl_ms = 1000;
    assert_int_equal(memory_put("brief", 5, "v", 1, &w, NULL), GGL_OK);
    w.ttl_ms = 0;
    w.pin = 1;
    assert_int_equal(memory_put("kept", 4, "v", 1, &w, NULL), GGL_OK);
    uint64_t before = ltm_rows();
    assert_true(before >= 2);
    maintenance_cycle(&r); /* not expired yet */
    assert_int_equal(ltm_rows(), before);
    fake_now += 2000;
    maintenance_cycle(&r);
    assert_int_equal(ltm_rows(), before - 1);
    assert_int_equal(where("kept"), SLOT_LTM);
}

struct tally_any {
    uint64_t count;
};

static void count_any(void *arg, const void *key, size_t len, uint64_t count, uint64_t last_ms)
{
    (void)key, (void)len, (void)last_ms;
    ((struct tally_any *)arg)->count += count;
}

/* Reads the cache answers through memory_get_into are counted in its entries, not in
 * the host's table; the cycle collects them the same way. */
static void test_cache_counted_reads_flushed(void **state)
{
    (void)state;
    struct maintenance_report r;
    struct memory_value v;
    char buf[16];
    put("read", 0.4, 0);
    fake_now += 5000;
    maintenance_cycle(&r);
    assert_int_equal(where("read"), SLOT_IM);
    for (int i = 0; i < 8; i++) {
        assert_int_equal(memory_get_into("read", 4, buf, sizeof buf, &v), GGL_OK);
        assert_ptr_equal(v.data, buf); /* answered by the cache */
    }
    struct tally_any none = {0};
    access_flush(count_any, &none);
    assert_int_equal(none.count, 0); /* nothing went through the host's table */
    fake_now += 50000;
    maintenance_cycle(&r);
    assert_true(r.touched >= 1);
    assert_int_equal(where("read"), SLOT_LTM);
    struct binding *ltm = atomic_load(&memory_slot(SLOT_LTM)->current);
    struct ggl_entry e = {.size = sizeof e};
    assert_int_equal(ltm->vt->get(ltm->self, "read", 4, &e), GGL_OK);
    free(e.value);
    assert_int_equal(e.access_count, 8);
}

/* --- access counts kept per thread ------------------------------------------------ */
#define LONG_KEY "a key longer than a thread table's inline key bytes"

static pthread_mutex_t gate_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_cond = PTHREAD_COND_INITIALIZER;
static int counted, flushed;

/* Counts "shared" n times and 1000 keys of its own once each (its table merges on
 * the way), then waits, still alive, until the test thread has flushed. */
static void *count_and_wait(void *arg)
{
    char key[32];
    long n = (long)arg;
    for (long i = 0; i < n; i++)
        access_record("shared", 6, 1000 + (uint64_t)i);
    for (int i = 0; i < 1000; i++) {
        snprintf(key, sizeof key, "own:%ld:%d", n, i);
        access_record(key, strlen(key), 5);
    }
    access_record(LONG_KEY, strlen(LONG_KEY), 7);
    pthread_mutex_lock(&gate_lock);
    counted++;
    pthread_cond_broadcast(&gate_cond);
    while (!flushed && n < 1000) /* the second thread ends before the flush */
        pthread_cond_wait(&gate_cond, &gate_lock);
    pthread_mutex_unlock(&gate_lock);
    return NULL;
}

struct tally {
    uint64_t shared, shared_last, own, long_key;
};

static void tally(void *arg, const void *key, size_t len, uint64_t count, uint64_t last_ms)
{
    struct tally *t = arg;
    if (len == 6 && memcmp(key, "shared", 6) == 0)
        t->shared += count, t->shared_last = last_ms;
    else if (len == strlen(LONG_KEY) && memcmp(key, LONG_KEY, len) == 0)
        t->long_key += count;
    else if (len > 4 && memcmp(key, "own:", 4) == 0)
        t->own += count;
}

static void test_access_counts_of_all_threads_flushed(void **state)
{
    (void)state;
    pthread_t alive, ended;
    counted = flushed = 0;
    assert_int_equal(pthread_create(&alive, NULL, count_and_wait, (void *)7L), 0);
    assert_int_equal(pthread_create(&ended, NULL, count_and_wait, (void *)3000L), 0);
    assert_int_equal(pthread_join(ended, NULL), 0);
    pthread_mutex_lock(&gate_lock);
    while (counted < 2)
        pthread_cond_wait(&gate_cond, &gate_lock);
    pthread_mutex_unlock(&gate_lock);
    access_record("shared", 6, 1);

    struct tally t = {0};
    access_flush(tally, &t);
    pthread_mutex_lock(&gate_lock);
    flushed = 1;
    pthread_cond_broadcast(&gate_cond);
    pthread_mutex_unlock(&gate_lock);
    assert_int_equal(pthread_join(alive, NULL), 0);
    assert_int_equal(t.shared, 3000 + 7 + 1);
    assert_int_equal(t.shared_last, 1000 + 2999);
    assert_int_equal(t.own, 2000);
    assert_int_equal(t.long_key, 2);
    struct tally again = {0};
    access_flush(tally, &again); /* a flush takes what it applies */
    assert_int_equal(again.shared + again.own + again.long_key, 0);
}

static void test_tombstones_purged_when_nothing_below(void **state)
{
    (void)state;
    struct maintenance_report r;
    int existed;
    put("t", 0.5, 0);
    assert_int_equal(memory_del("t", 1, &existed), GGL_OK);
    struct binding *stm = atomic_load(&memory_slot(SLOT_STM)->current);
    struct ggl_entry e = {.size = sizeof e};
    assert_int_equal(stm->vt->get(stm->self, "t", 1, &e), GGL_OK);
    free(e.value);
    maintenance_cycle(&r);
    assert_true(r.purged >= 1);
    e = (struct ggl_entry){.size = sizeof e};
    assert_int_equal(stm->vt->get(stm->self, "t", 1, &e), GGL_NOTFOUND);
    struct memory_value v;
    assert_int_equal(memory_get("t", 1, &v), GGL_NOTFOUND);
}

static void newer_write(enum memory_hook point, const void *key, size_t len)
{
    (void)point;
    memory_set_hook(NULL);
    struct memory_write w = MEMORY_WRITE_DEFAULT;
    assert_int_equal(memory_put(key, len, "new", 3, &w, NULL), GGL_OK);
}

static void test_newer_write_during_transition_wins(void **state)
{
    (void)state;
    struct maintenance_report r;
    put("k", 0.9, 0);
    fake_now += 5000;
    memory_set_hook(newer_write);
    maintenance_cycle(&r);
    struct memory_value v;
    assert_int_equal(memory_get("k", 1, &v), GGL_OK);
    assert_int_equal(v.len, 3);
    assert_memory_equal(v.data, "new", 3);
    free(v.data);
    assert_int_equal(where("k"), SLOT_STM);
}

/* 200 entries of random importance, age and pinning: after one cycle each is where the
 * policy, evaluated here entry by entry, says it should be. */
static void test_random_entries_follow_policy(void **state)
{
    (void)state;
    struct maintenance_report r;
    const struct memory_conf *m = memory_conf();
    struct ggl_entry meta[200];
    char key[200][8];
    srand(777);
    for (int i = 0; i < 200; i++) {
        snprintf(key[i], sizeof key[i], "r%d", i);
        put(key[i], (double)(rand() % 101) / 100.0, rand() % 10 == 0);
        fake_now += (uint64_t)(rand() % 40);
    }
    for (int i = 0; i < 200; i++) {
        struct binding *b = atomic_load(&memory_slot(SLOT_STM)->current);
        meta[i] = (struct ggl_entry){.size = sizeof meta[i]};
        assert_int_equal(b->vt->get(b->self, key[i], strlen(key[i]), &meta[i]), GGL_OK);
        free(meta[i].value);
    }
    fake_now += 5000 - 4000; /* some reach the minimum age, some do not */
    maintenance_cycle(&r);
    for (int i = 0; i < 200; i++) {
        int want = maintenance_should_move(m, SLOT_STM, &meta[i], fake_now) ? SLOT_IM : SLOT_STM;
        if (where(key[i]) != want)
            fail_msg("%s (importance %.2f, age %llu, pinned %d) in tier %d, policy says %d", key[i],
                     meta[i].importance, (unsigned long long)(fake_now - meta[i].created_ms),
                     !!(meta[i].flags & GGL_ENTRY_PINNED), where(key[i]), want);
    }
    assert_true(r.moved_stm_im > 0 && r.moved_stm_im < 200);
}

static void test_interval_must_be_below_half_ttl(void **state)
{
    (void)state;
    struct conf_error err = {{0}};
    struct config *c = config_load_string("memory = {\n  stm_ttl_ms = 10000;\n"
                                          "  maintenance_interval_ms = 5000;\n};\n", "m.conf", &err);
    assert_non_null(c);
    assert_int_equal(memory_check_config(c, &err), -1);
    assert_non_null(strstr(err.msg, "m.conf:3: maintenance_interval_ms (5000) must be less than half"));
    config_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_policy_moves_and_expires, setup, teardown),
        cmocka_unit_test_setup_teardown(test_access_counts_flushed_and_scored, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cache_counted_reads_flushed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cycle_deletes_expired_ltm_rows, setup, teardown),
        cmocka_unit_test_setup_teardown(test_access_counts_of_all_threads_flushed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tombstones_purged_when_nothing_below, setup, teardown),
        cmocka_unit_test_setup_teardown(test_newer_write_during_transition_wins, setup, teardown),
        cmocka_unit_test_setup_teardown(test_random_entries_follow_policy, setup, teardown),
        cmocka_unit_test(test_interval_must_be_below_half_ttl),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
