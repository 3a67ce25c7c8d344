/* tier/mem against the test host: versions and conditional writes, expiry on the
 * host's (fake) clock, the entry bound, stats, and threads racing over its stripes. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "testhost.h"
#include "tier_conformance.h"

extern const struct ggl_plugin ggl_plugin_entry;
static const struct ggl_tier *vt;
static const struct ggl_host *host;

static struct ggl_entry entry(const char *key, const char *value, uint64_t version)
{
    return (struct ggl_entry){.size = sizeof(struct ggl_entry), .key = key, .key_len = strlen(key),
                              .value = (void *)value, .value_len = strlen(value),
                              .version = version, .importance = 0.5};
}

/* get key; assert status and, when OK, value and version. */
static void expect_get(void *self, const char *key, enum ggl_status want, const char *value,
                       uint64_t version)
{
    struct ggl_entry out = {.size = sizeof out};
    assert_int_equal(vt->get(self, key, strlen(key), &out), want);
    if (want != GGL_OK)
        return;
    assert_int_equal(out.value_len, strlen(value));
    assert_memory_equal(out.value, value, out.value_len);
    assert_int_equal(out.version, version);
    host->free(out.value);
}

static int setup(void **state)
{
    host = testhost_init(1000000);
    vt = ggl_plugin_entry.vtable;
    static const char *const pairs[] = {"max_entries", "3", NULL};
    *state = testhost_open(&ggl_plugin_entry, pairs, GGL_OK);
    return 0;
}

static int teardown(void **state)
{
    vt->close(*state);
    return 0;
}

static void test_put_get_del(void **state)
{
    struct ggl_entry e = entry("k", "v1", 1);
    assert_int_equal(vt->put(*state, &e, GGL_VERSION_ANY), GGL_OK);
    expect_get(*state, "k", GGL_OK, "v1", 1);
    e = entry("k", "v2", 2);
    assert_int_equal(vt->put(*state, &e, GGL_VERSION_ANY), GGL_OK);
    expect_get(*state, "k", GGL_OK, "v2", 2);
    assert_int_equal(vt->del(*state, "k", 1, GGL_VERSION_ANY), GGL_OK);
    expect_get(*state, "k", GGL_NOTFOUND, NULL, 0);
    assert_int_equal(vt->del(*state, "k", 1, GGL_VERSION_ANY), GGL_NOTFOUND);
}

static void test_insert_if_newer(void **state)
{
    struct ggl_entry e = entry("k", "new", 5);
    assert_int_equal(vt->put(*state, &e, GGL_VERSION_OLDER), GGL_OK); /* absent: applies */
    e = entry("k", "late", 4);
    assert_int_equal(vt->put(*state, &e, GGL_VERSION_OLDER), GGL_CONFLICT);
    e = entry("k", "same", 5);
    assert_int_equal(vt->put(*state, &e, GGL_VERSION_OLDER), GGL_CONFLICT);
    expect_get(*state, "k", GGL_OK, "new", 5);
    e = entry("k", "newer", 6);
    assert_int_equal(vt->put(*state, &e, GGL_VERSION_OLDER), GGL_OK);
    expect_get(*state, "k", GGL_OK, "newer", 6);
}

static void test_compare_and_set_and_delete(void **state)
{
    struct ggl_entry e = entry("k", "a", 7);
    assert_int_equal(vt->put(*state, &e, GGL_VERSION_ANY), GGL_OK);
    e = entry("k", "b", 8);
    assert_int_equal(vt->put(*state, &e, 6), GGL_CONFLICT);
    assert_int_equal(vt->put(*state, &e, 7), GGL_OK);
    assert_int_equal(vt->del(*state, "k", 1, 7), GGL_CONFLICT);
    expect_get(*state, "k", GGL_OK, "b", 8);
    assert_int_equal(vt->del(*state, "k", 1, 8), GGL_OK);
    expect_get(*state, "k", GGL_NOTFOUND, NULL, 0);
}

static void test_expiry_follows_host_clock(void **state)
{
    struct ggl_entry e = entry("k", "v", 1);
    e.expires_ms = host->now(host) + 500;
    assert_int_equal(vt->put(*state, &e, GGL_VERSION_ANY), GGL_OK);
    testhost_advance(499);
    expect_get(*state, "k", GGL_OK, "v", 1);
    testhost_advance(1);
    expect_get(*state, "k", GGL_NOTFOUND, NULL, 0);
    /* An expired entry does not satisfy a compare-and-set on its old version. */
    e = entry("k", "w", 2);
    assert_int_equal(vt->put(*state, &e, 1), GGL_CONFLICT);
}

/* Expired entries sharing bucket chains with live ones (4,000 keys on 4,096 buckets:
 * many chains of two or more): dropping an expired one on sight answers "not found" for
 * it, never the next item in its chain, and a write to it leaves that item alone. */
static void test_expired_entries_in_shared_chains(void **state)
{
    (void)state;
    static const char *const pairs[] = {"max_entries", "4000", NULL};
    void *t = testhost_open(&ggl_plugin_entry, pairs, GGL_OK);
    char key[16];
    for (int i = 0; i < 4000; i++) {
        snprintf(key, sizeof key, "c%d", i);
        struct ggl_entry e = entry(key, key, 1);
        e.expires_ms = i % 2 ? 0 : host->now(host) + 100;
        assert_int_equal(vt->put(t, &e, GGL_VERSION_ANY), GGL_OK);
    }
    testhost_advance(100);
    for (int i = 0; i < 4000; i += 2) { /* gets of half the expired ones, puts to the rest */
        snprintf(key, sizeof key, "c%d", i);
        if (i % 4 == 0) {
            expect_get(t, key, GGL_NOTFOUND, NULL, 0);
        } else {
            struct ggl_entry e = entry(key, "new", 2);
            assert_int_equal(vt->put(t, &e, GGL_VERSION_ANY), GGL_OK);
        }
    }
    for (int i = 1; i < 4000; i += 2) {
        snprintf(key, sizeof key, "c%d", i);
        expect_get(t, key, GGL_OK, key, 1);
    }
    vt->close(t);
}

static void test_full_returns_retry_with_reason(void **state)
{
    struct ggl_tier_stats st = {.size = sizeof st};
    const char *keys[] = {"a", "b", "c"};
    for (int i = 0; i < 3; i++) {
        struct ggl_entry e = entry(keys[i], "12345", 1);
        assert_int_equal(vt->put(*state, &e, GGL_VERSION_ANY), GGL_OK);
    }
    struct ggl_entry e = entry("d", "x", 1);
    assert_int_equal(vt->put(*state, &e, GGL_VERSION_ANY), GGL_RETRY);
    assert_string_equal(testhost_reason(), "full: 3 entries");
    e = entry("a", "replaced", 2); /* replacing needs no room */
    assert_int_equal(vt->put(*state, &e, GGL_VERSION_ANY), GGL_OK);
    assert_int_equal(vt->stats(*state, &st), GGL_OK);
    assert_int_equal(st.entries, 3);
    assert_int_equal(st.bytes, 3 + strlen("replaced") + 10);
}

/* A rewrite with a value of the same length is copied into the stored entry: the new
 * value and all of its metadata answer, a losing conditional rewrite changes nothing,
 * and a full store still takes it (no entry is added). */
static void test_same_length_rewrite_in_place(void **state)
{
    struct ggl_entry e = entry("k", "aa", 1);
    assert_int_equal(vt->put(*state, &e, GGL_VERSION_ANY), GGL_OK);
    e = entry("x", "x", 1);
    assert_int_equal(vt->put(*state, &e, GGL_VERSION_ANY), GGL_OK);
    e.key = "y", e.key_len = 1;
    assert_int_equal(vt->put(*state, &e, GGL_VERSION_ANY), GGL_OK); /* full: 3 entries */
    e = entry("k", "bb", 5);
    e.importance = 0.75, e.expires_ms = 2000000, e.flags = GGL_ENTRY_PINNED;
    assert_int_equal(vt->put(*state, &e, GGL_VERSION_OLDER), GGL_OK);
    e = entry("k", "cc", 4);
    assert_int_equal(vt->put(*state, &e, GGL_VERSION_OLDER), GGL_CONFLICT);
    struct ggl_entry out = {.size = sizeof out};
    assert_int_equal(vt->get(*state, "k", 1, &out), GGL_OK);
    assert_memory_equal(out.value, "bb", 2);
    assert_int_equal(out.version, 5);
    assert_true(out.importance == 0.75);
    assert_int_equal(out.expires_ms, 2000000);
    assert_int_equal(out.flags, GGL_ENTRY_PINNED);
    host->free(out.value);
}

#define RACERS 4
#define RACE_KEYS 512
#define RACE_MAX 256

struct racer {
    void *t;
    pthread_t tid;
    uint64_t seed;
};

/* Random puts (two value lengths: in place and reallocated), deletes and gets. */
static void *race(void *arg)
{
    struct racer *r = arg;
    char key[16], value[40];
    memset(value, 'v', sizeof value);
    for (int i = 0; i < 20000; i++) {
        r->seed ^= r->seed << 13, r->seed ^= r->seed >> 7, r->seed ^= r->seed << 17;
        snprintf(key, sizeof key, "k%u", (unsigned)(r->seed % RACE_KEYS));
        unsigned op = (unsigned)(r->seed >> 32) % 8;
        struct ggl_entry e = {.size = sizeof e, .key = key, .key_len = strlen(key), .value = value,
                              .value_len = op % 2 ? 8 : 40, .version = (uint64_t)i + 1};
        if (op < 4)
            vt->put(r->t, &e, GGL_VERSION_ANY);
        else if (op < 6)
            vt->del(r->t, key, strlen(key), GGL_VERSION_ANY);
        else {
            struct ggl_entry out = {.size = sizeof out};
            if (vt->get(r->t, key, strlen(key), &out) == GGL_OK) {
                assert_true(out.value_len == 8 || out.value_len == 40);
                host->free(out.value);
            }
        }
    }
    return NULL;
}

struct tally {
    uint64_t entries, bytes;
};

static int tally_cb(void *arg, const struct ggl_entry *e)
{
    struct tally *t = arg;
    t->entries++;
    t->bytes += e->key_len + e->value_len;
    return 0;
}

/* Threads racing over every stripe: the entry bound holds, and what stats counts is what
 * a scan finds. */
static void test_racing_threads_keep_bound_and_counts(void **state)
{
    (void)state;
    static const char *const pairs[] = {"max_entries", "256", NULL};
    void *t = testhost_open(&ggl_plugin_entry, pairs, GGL_OK);
    struct racer r[RACERS];
    for (int i = 0; i < RACERS; i++) {
        r[i] = (struct racer){.t = t, .seed = 0x9E3779B97F4A7C15ull * (uint64_t)(i + 1)};
        assert_int_equal(pthread_create(&r[i].tid, NULL, race, &r[i]), 0);
    }
    for (int i = 0; i < RACERS; i++)
        pthread_join(r[i].tid, NULL);
    struct tally seen = {0};
    uint64_t cursor = 0;
    do
        assert_int_equal(vt->scan(t, &cursor, 64, tally_cb, &seen), GGL_OK);
    while (cursor != 0);
    struct ggl_tier_stats st = {.size = sizeof st};
    assert_int_equal(vt->stats(t, &st), GGL_OK);
    assert_true(seen.entries > 0 && seen.entries <= RACE_MAX);
    assert_int_equal(st.entries, seen.entries);
    assert_int_equal(st.bytes, seen.bytes);
    vt->close(t);
}

static void test_bad_config_refused(void **state)
{
    (void)state;
    static const char *const pairs[] = {"max_entries", "0", NULL};
    testhost_open(&ggl_plugin_entry, pairs, GGL_INVALID);
    assert_string_equal(testhost_reason(), "max_entries must be >= 1");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_put_get_del, setup, teardown),
        cmocka_unit_test_setup_teardown(test_insert_if_newer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_compare_and_set_and_delete, setup, teardown),
        cmocka_unit_test_setup_teardown(test_expiry_follows_host_clock, setup, teardown),
        cmocka_unit_test_setup_teardown(test_full_returns_retry_with_reason, setup, teardown),
        cmocka_unit_test(test_expired_entries_in_shared_chains),
        cmocka_unit_test_setup_teardown(test_same_length_rewrite_in_place, setup, teardown),
        cmocka_unit_test(test_racing_threads_keep_bound_and_counts),
        cmocka_unit_test(test_bad_config_refused),
    };
    static const char *const pairs[] = {"max_entries", "1000", NULL};
    static const struct tier_fixture fixture = {&ggl_plugin_entry, pairs, NULL, NULL};
    return cmocka_run_group_tests(tests, NULL, NULL) | tier_conformance_run("tier/mem conformance", &fixture);
}
