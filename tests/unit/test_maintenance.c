/* Maintenance with the fake clock on real backends (cache, mem, mem, sqlite): entries
 * end in the tiers the documented policy predicts (checked entry by entry against the
 * policy on 200 seeded random entries), low scores expire instead of moving, pinned
 * entries move to LTM and survive, tombstones are purged, a newer write during a
 * transition wins, and config validation rejects an interval of half a TTL or more. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

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
        cmocka_unit_test_setup_teardown(test_tombstones_purged_when_nothing_below, setup, teardown),
        cmocka_unit_test_setup_teardown(test_newer_write_during_transition_wins, setup, teardown),
        cmocka_unit_test_setup_teardown(test_random_entries_follow_policy, setup, teardown),
        cmocka_unit_test(test_interval_must_be_below_half_ttl),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
