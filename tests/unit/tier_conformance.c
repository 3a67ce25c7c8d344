/* The tier conformance suite.  Every backend: get/put/del, metadata round trip, expiry
 * on the host clock, conditional put/del (GGL_CONFLICT), tombstones, batches (the slot,
 * or the host's per-entry fallback when the backend has none), del_older_batch (where
 * the backend has it), scan, binary keys and values, empty and large values, and
 * concurrent use from several threads. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <cmocka.h>

#include "testhost.h"
#include "tier_conformance.h"

static const struct tier_fixture *fx;
static const struct ggl_tier *vt;
static const struct ggl_host *host;

static int setup(void **state)
{
    host = testhost_init(1700000000000ull);
    vt = fx->entry->vtable;
    if (fx->before)
        fx->before();
    *state = testhost_open(fx->entry, fx->pairs, GGL_OK);
    return 0;
}

static int teardown(void **state)
{
    vt->close(*state);
    if (fx->after)
        fx->after();
    return 0;
}

static struct ggl_entry mk(const void *key, size_t klen, const void *value, size_t vlen,
                           uint64_t version)
{
    return (struct ggl_entry){.size = sizeof(struct ggl_entry), .key = key, .key_len = klen,
                              .value = (void *)value, .value_len = vlen, .version = version,
                              .importance = 0.5, .created_ms = host->now(host),
                              .last_access_ms = host->now(host)};
}

static struct ggl_entry mks(const char *key, const char *value, uint64_t version)
{
    return mk(key, strlen(key), value, strlen(value), version);
}

static enum ggl_status put(void *self, const char *key, const char *value, uint64_t version,
                           uint64_t expect)
{
    struct ggl_entry e = mks(key, value, version);
    return vt->put(self, &e, expect);
}

/* get key; assert status and, when OK, value and version; returns the entry (value freed). */
static struct ggl_entry expect_get(void *self, const void *key, size_t klen,
                                   enum ggl_status want, const void *value, size_t vlen,
                                   uint64_t version)
{
    struct ggl_entry out = {.size = sizeof out};
    enum ggl_status st = vt->get(self, key, klen, &out);
    if (st != want)
        fail_msg("get: %s, expected %s", ggl_status_str(st), ggl_status_str(want));
    if (want == GGL_OK) {
        assert_int_equal(out.value_len, vlen);
        if (vlen)
            assert_memory_equal(out.value, value, vlen);
        assert_int_equal(out.version, version);
        host->free(out.value);
        out.value = NULL;
    }
    return out;
}

static size_t len_or_zero(const char *s) { return s ? strlen(s) : 0; }

#define GET_S(self, key, want, value, version) \
    expect_get(self, key, strlen(key), want, value, len_or_zero(value), version)

static void test_put_get_overwrite_del(void **state)
{
    void *t = *state;
    GET_S(t, "missing", GGL_NOTFOUND, NULL, 0);
    assert_int_equal(put(t, "k", "v1", 1, GGL_VERSION_ANY), GGL_OK);
    GET_S(t, "k", GGL_OK, "v1", 1);
    assert_int_equal(put(t, "k", "v2-longer", 2, GGL_VERSION_ANY), GGL_OK);
    GET_S(t, "k", GGL_OK, "v2-longer", 2);
    assert_int_equal(vt->del(t, "k", 1, GGL_VERSION_ANY), GGL_OK);
    GET_S(t, "k", GGL_NOTFOUND, NULL, 0);
    assert_int_equal(vt->del(t, "k", 1, GGL_VERSION_ANY), GGL_NOTFOUND);
}

static void test_metadata_round_trip(void **state)
{
    struct ggl_entry e = mks("meta", "x", 42);
    e.importance = 0.875;
    e.flags = GGL_ENTRY_PINNED;
    e.created_ms = 1700000000123ull;
    e.last_access_ms = 1700000000456ull;
    e.access_count = 7;
    e.expires_ms = host->now(host) + 3600000;
    assert_int_equal(vt->put(*state, &e, GGL_VERSION_ANY), GGL_OK);
    struct ggl_entry out = GET_S(*state, "meta", GGL_OK, "x", 42);
    assert_true(out.importance == 0.875);
    assert_int_equal(out.flags & (GGL_ENTRY_PINNED | GGL_ENTRY_TOMBSTONE), GGL_ENTRY_PINNED);
    assert_int_equal(out.created_ms, 1700000000123ull);
    assert_int_equal(out.expires_ms, e.expires_ms);
}

static void test_expiry_on_host_clock(void **state)
{
    void *t = *state;
    struct ggl_entry e = mks("ttl", "v", 1);
    e.expires_ms = host->now(host) + 1000;
    assert_int_equal(vt->put(t, &e, GGL_VERSION_ANY), GGL_OK);
    testhost_advance(999);
    GET_S(t, "ttl", GGL_OK, "v", 1);
    testhost_advance(1);
    GET_S(t, "ttl", GGL_NOTFOUND, NULL, 0);
    /* An expired entry is absent for conditional writes too. */
    assert_int_equal(put(t, "ttl", "w", 1, GGL_VERSION_OLDER), GGL_OK);
    GET_S(t, "ttl", GGL_OK, "w", 1);
    e = mks("ttl2", "v", 9);
    e.expires_ms = host->now(host) + 10;
    assert_int_equal(vt->put(t, &e, GGL_VERSION_ANY), GGL_OK);
    testhost_advance(10);
    assert_int_equal(put(t, "ttl2", "x", 10, 9), GGL_CONFLICT);
    assert_int_equal(vt->del(t, "ttl2", 4, GGL_VERSION_ANY), GGL_NOTFOUND);
}

static void test_insert_if_newer(void **state)
{
    void *t = *state;
    assert_int_equal(put(t, "k", "v5", 5, GGL_VERSION_OLDER), GGL_OK);
    assert_int_equal(put(t, "k", "v4", 4, GGL_VERSION_OLDER), GGL_CONFLICT);
    assert_int_equal(put(t, "k", "v5b", 5, GGL_VERSION_OLDER), GGL_CONFLICT);
    GET_S(t, "k", GGL_OK, "v5", 5);
    assert_int_equal(put(t, "k", "v6", 6, GGL_VERSION_OLDER), GGL_OK);
    GET_S(t, "k", GGL_OK, "v6", 6);
}

static void test_compare_and_set_and_delete(void **state)
{
    void *t = *state;
    assert_int_equal(put(t, "k", "a", 7, 3), GGL_CONFLICT); /* absent: no version matches */
    assert_int_equal(put(t, "k", "a", 7, GGL_VERSION_ANY), GGL_OK);
    assert_int_equal(put(t, "k", "b", 8, 6), GGL_CONFLICT);
    assert_int_equal(put(t, "k", "b", 8, 7), GGL_OK);
    assert_int_equal(vt->del(t, "k", 1, 7), GGL_CONFLICT);
    GET_S(t, "k", GGL_OK, "b", 8);
    assert_int_equal(vt->del(t, "k", 1, 8), GGL_OK);
    GET_S(t, "k", GGL_NOTFOUND, NULL, 0);
    assert_int_equal(vt->del(t, "k", 1, 8), GGL_NOTFOUND);
}

static void test_tombstone_is_stored_and_replaced(void **state)
{
    void *t = *state;
    assert_int_equal(put(t, "k", "live", 1, GGL_VERSION_ANY), GGL_OK);
    struct ggl_entry ts = mks("k", "", 2);
    ts.flags = GGL_ENTRY_TOMBSTONE;
    assert_int_equal(vt->put(t, &ts, GGL_VERSION_OLDER), GGL_OK);
    struct ggl_entry out = GET_S(t, "k", GGL_OK, "", 2);
    assert_true(out.flags & GGL_ENTRY_TOMBSTONE);
    /* A late copy of the old value cannot resurrect it. */
    assert_int_equal(put(t, "k", "live", 1, GGL_VERSION_OLDER), GGL_CONFLICT);
    assert_int_equal(put(t, "k", "again", 3, GGL_VERSION_OLDER), GGL_OK);
    out = GET_S(t, "k", GGL_OK, "again", 3);
    assert_false(out.flags & GGL_ENTRY_TOMBSTONE);
}

/* What the host does for a batch: the slot when present, else one call per entry. */
static void put_batch(void *t, const struct ggl_entry *es, size_t n, uint64_t expect,
                      enum ggl_status *st)
{
    if (vt->put_batch) {
        assert_int_equal(vt->put_batch(t, es, n, expect, st), GGL_OK);
        return;
    }
    for (size_t i = 0; i < n; i++)
        st[i] = vt->put(t, &es[i], expect);
}

static void get_batch(void *t, const void *const *keys, const size_t *lens, size_t n,
                      struct ggl_entry *out, enum ggl_status *st)
{
    for (size_t i = 0; i < n; i++)
        out[i] = (struct ggl_entry){.size = sizeof out[i]};
    if (vt->get_batch) {
        assert_int_equal(vt->get_batch(t, keys, lens, n, out, st), GGL_OK);
        return;
    }
    for (size_t i = 0; i < n; i++)
        st[i] = vt->get(t, keys[i], lens[i], &out[i]);
}

#define BATCH 200

static void test_batches(void **state)
{
    void *t = *state;
    static char keys[BATCH][16], vals[BATCH][16];
    struct ggl_entry es[BATCH], out[BATCH + 1];
    enum ggl_status st[BATCH + 1];
    const void *kp[BATCH + 1];
    size_t kl[BATCH + 1];
    for (size_t i = 0; i < BATCH; i++) {
        snprintf(keys[i], sizeof keys[i], "b%zu", i);
        snprintf(vals[i], sizeof vals[i], "val%zu", i * 7);
        es[i] = mks(keys[i], vals[i], 10 + i);
        kp[i] = keys[i];
        kl[i] = strlen(keys[i]);
    }
    assert_int_equal(put(t, "b3", "newer", 1000, GGL_VERSION_ANY), GGL_OK);
    put_batch(t, es, BATCH, GGL_VERSION_OLDER, st);
    for (size_t i = 0; i < BATCH; i++)
        assert_int_equal(st[i], i == 3 ? GGL_CONFLICT : GGL_OK);
    kp[BATCH] = "absent";
    kl[BATCH] = 6;
    get_batch(t, kp, kl, BATCH + 1, out, st);
    for (size_t i = 0; i < BATCH; i++) {
        assert_int_equal(st[i], GGL_OK);
        const char *want = i == 3 ? "newer" : vals[i];
        assert_int_equal(out[i].value_len, strlen(want));
        assert_memory_equal(out[i].value, want, out[i].value_len);
        host->free(out[i].value);
    }
    assert_int_equal(st[BATCH], GGL_NOTFOUND);
}

/* What the host does for a key where the backend has no del_older_batch: read the copy,
 * and compare-and-delete it when it is older than version. */
static enum ggl_status del_older_by_get(void *t, const void *key, size_t len, uint64_t version)
{
    struct ggl_entry e = {.size = sizeof e};
    enum ggl_status st = vt->get(t, key, len, &e);
    if (st != GGL_OK)
        return st;
    host->free(e.value);
    return e.version < version ? vt->del(t, key, len, e.version) : GGL_CONFLICT;
}

/* del_older_batch (ABI 1.3) where the backend has it, else the host's read and
 * compare-and-delete through get and del: only copies older than the version given go,
 * each key on its own, absent keys are reported absent. */
static void test_del_older_batch(void **state)
{
    void *t = *state;
    static char keys[BATCH][16];
    const void *kp[BATCH];
    size_t kl[BATCH];
    uint64_t versions[BATCH];
    enum ggl_status st[BATCH];
    for (size_t i = 0; i < BATCH; i++) {
        snprintf(keys[i], sizeof keys[i], "d%zu", i);
        kp[i] = keys[i], kl[i] = strlen(keys[i]);
        versions[i] = 100 + i % 3; /* i % 3: older, the same, newer than the copy's 101 */
        if (i % 10 != 9) /* every tenth key has no copy */
            assert_int_equal(put(t, keys[i], "old", 101, GGL_VERSION_ANY), GGL_OK);
    }
    if (GGL_HAS_SLOT(vt, struct ggl_tier, del_older_batch))
        assert_int_equal(vt->del_older_batch(t, kp, kl, BATCH, versions, st), GGL_OK);
    else
        for (size_t i = 0; i < BATCH; i++)
            st[i] = del_older_by_get(t, kp[i], kl[i], versions[i]);
    for (size_t i = 0; i < BATCH; i++) {
        enum ggl_status want = i % 10 == 9 ? GGL_NOTFOUND : i % 3 == 2 ? GGL_OK : GGL_CONFLICT;
        if (st[i] != want)
            fail_msg("%s: %s, expected %s", keys[i], ggl_status_str(st[i]), ggl_status_str(want));
        GET_S(t, keys[i], want == GGL_CONFLICT ? GGL_OK : GGL_NOTFOUND, "old", 101);
    }
}

struct seen {
    int count[BATCH];
    int unknown;
};

static int scan_cb(void *arg, const struct ggl_entry *e)
{
    struct seen *s = arg;
    unsigned i;
    char k[16];
    if (e->key_len < 2 || e->key_len >= sizeof k) {
        s->unknown++;
        return 0;
    }
    memcpy(k, e->key, e->key_len);
    k[e->key_len] = '\0';
    if (sscanf(k, "s%u", &i) == 1 && i < BATCH)
        s->count[i]++;
    else
        s->unknown++;
    return 0;
}

static void test_scan_visits_every_live_entry(void **state)
{
    void *t = *state;
    char key[16];
    for (unsigned i = 0; i < BATCH; i++) {
        snprintf(key, sizeof key, "s%u", i);
        struct ggl_entry e = mks(key, "v", i + 1);
        if (i % 10 == 9)
            e.expires_ms = host->now(host) + 5; /* these will have expired */
        assert_int_equal(vt->put(t, &e, GGL_VERSION_ANY), GGL_OK);
    }
    testhost_advance(5);
    if (!vt->scan) {
        assert_null(vt->scan); /* optional: the host then cannot migrate this backend */
        return;
    }
    struct seen s = {{0}, 0};
    uint64_t cursor = 0;
    int rounds = 0;
    do {
        assert_int_equal(vt->scan(t, &cursor, 16, scan_cb, &s), GGL_OK);
        assert_true(++rounds < 10 * BATCH);
    } while (cursor != 0);
    for (unsigned i = 0; i < BATCH; i++)
        if ((i % 10 == 9) ? s.count[i] != 0 : s.count[i] < 1)
            fail_msg("scan saw s%u %d times", i, s.count[i]);
    assert_int_equal(s.unknown, 0);
}

static void test_binary_empty_and_large_values(void **state)
{
    void *t = *state;
    static const unsigned char bkey[] = {0, 1, 2, 0xff, 0, '\n', '\r'};
    static const unsigned char bval[] = {0, 0, 0xfe, 0x80, 0};
    struct ggl_entry e = mk(bkey, sizeof bkey, bval, sizeof bval, 3);
    assert_int_equal(vt->put(t, &e, GGL_VERSION_ANY), GGL_OK);
    expect_get(t, bkey, sizeof bkey, GGL_OK, bval, sizeof bval, 3);
    expect_get(t, bkey, sizeof bkey - 1, GGL_NOTFOUND, NULL, 0, 0); /* a prefix is another key */

    e = mks("empty", "", 4);
    assert_int_equal(vt->put(t, &e, GGL_VERSION_ANY), GGL_OK);
    GET_S(t, "empty", GGL_OK, "", 4);

    size_t big = 1u << 20;
    unsigned char *large = malloc(big);
    for (size_t i = 0; i < big; i++)
        large[i] = (unsigned char)(i * 2654435761u >> 13);
    e = mk("large", 5, large, big, 5);
    assert_int_equal(vt->put(t, &e, GGL_VERSION_ANY), GGL_OK);
    expect_get(t, "large", 5, GGL_OK, large, big, 5);
    free(large);
}

static void test_stats_count_entries(void **state)
{
    void *t = *state;
    struct ggl_tier_stats st = {.size = sizeof st};
    assert_int_equal(put(t, "a", "1", 1, GGL_VERSION_ANY), GGL_OK);
    assert_int_equal(put(t, "b", "2", 1, GGL_VERSION_ANY), GGL_OK);
    if (!vt->stats)
        return;
    assert_int_equal(vt->stats(t, &st), GGL_OK);
    assert_int_equal(st.entries, 2);
    assert_true(st.bytes >= 4);
}

/* max_version (ABI 1.4), where the backend has it: 0 when empty, else the highest
 * version stored, whatever order the versions came in. */
static void test_max_version(void **state)
{
    void *t = *state;
    uint64_t top = 1;
    if (!GGL_HAS_SLOT(vt, struct ggl_tier, max_version))
        return;
    assert_int_equal(vt->max_version(t, &top), GGL_OK);
    assert_int_equal(top, 0);
    assert_int_equal(put(t, "a", "1", 7, GGL_VERSION_ANY), GGL_OK);
    assert_int_equal(put(t, "b", "2", 40, GGL_VERSION_ANY), GGL_OK);
    assert_int_equal(put(t, "c", "3", 12, GGL_VERSION_ANY), GGL_OK);
    assert_int_equal(vt->max_version(t, &top), GGL_OK);
    assert_int_equal(top, 40);
}

#define THREADS 4
#define OPS 2000

struct worker {
    void *tier;
    int id;
    int errors;
};

/* Retire (del_older_batch, where the backend has it) all of worker w's 50 keys. */
static void retire_all(struct worker *w)
{
    char keys[50][32];
    const void *kp[50];
    size_t kl[50];
    uint64_t versions[50];
    enum ggl_status st[50];
    for (int k = 0; k < 50; k++) {
        snprintf(keys[k], sizeof keys[k], "t%d-%d", w->id, k);
        kp[k] = keys[k], kl[k] = strlen(keys[k]), versions[k] = UINT64_MAX - 1;
    }
    if (vt->del_older_batch(w->tier, kp, kl, 50, versions, st) != GGL_OK)
        w->errors++;
    for (int k = 0; k < 50; k++)
        w->errors += st[k] != GGL_OK && st[k] != GGL_NOTFOUND;
}

/* Each thread writes its own keys with rising versions and reads them back, now and
 * then retiring them all; any mismatch is recorded for the test thread to assert. */
static void *hammer(void *arg)
{
    struct worker *w = arg;
    char key[32], val[32];
    for (int i = 0; i < OPS; i++) {
        if (i % 100 == 99 && GGL_HAS_SLOT(vt, struct ggl_tier, del_older_batch))
            retire_all(w);
        snprintf(key, sizeof key, "t%d-%d", w->id, i % 50);
        snprintf(val, sizeof val, "%d", i);
        struct ggl_entry e = mks(key, val, (uint64_t)i + 1);
        if (vt->put(w->tier, &e, GGL_VERSION_OLDER) != GGL_OK)
            w->errors++;
        struct ggl_entry out = {.size = sizeof out};
        if (vt->get(w->tier, key, strlen(key), &out) != GGL_OK || out.version != (uint64_t)i + 1)
            w->errors++;
        else
            host->free(out.value);
    }
    return NULL;
}

static void test_concurrent_writers_and_readers(void **state)
{
    pthread_t th[THREADS];
    struct worker w[THREADS];
    for (int i = 0; i < THREADS; i++) {
        w[i] = (struct worker){*state, i, 0};
        assert_int_equal(pthread_create(&th[i], NULL, hammer, &w[i]), 0);
    }
    for (int i = 0; i < THREADS; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(w[i].errors, 0);
    }
}

int tier_conformance_run(const char *name, const struct tier_fixture *f)
{
    fx = f;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_put_get_overwrite_del, setup, teardown),
        cmocka_unit_test_setup_teardown(test_metadata_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_expiry_on_host_clock, setup, teardown),
        cmocka_unit_test_setup_teardown(test_insert_if_newer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_compare_and_set_and_delete, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tombstone_is_stored_and_replaced, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batches, setup, teardown),
        cmocka_unit_test_setup_teardown(test_del_older_batch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_scan_visits_every_live_entry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_binary_empty_and_large_values, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stats_count_entries, setup, teardown),
        cmocka_unit_test_setup_teardown(test_max_version, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_writers_and_readers, setup, teardown),
    };
    return _cmocka_run_group_tests(name, tests, sizeof tests / sizeof tests[0], NULL, NULL);
}
