/* tier/cache: the conformance suite, then eviction — exact against brute force when
 * sampling covers the shard (100 seeded random instances), hot entries kept under
 * sampling, pending entries never evicted, and both bounds (entries, bytes); get_into
 * and the read counts take_reads collects; lock-free reads racing every kind of write. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <cmocka.h>

#include "testhost.h"
#include "tier_conformance.h"

extern const struct ggl_plugin ggl_plugin_entry;
static const struct ggl_tier *vt;
static const struct ggl_host *host;

static enum ggl_status put(void *t, const char *key, size_t vlen, uint32_t flags)
{
    static char value[4096];
    struct ggl_entry e = {.size = sizeof e, .key = key, .key_len = strlen(key), .value = value,
                          .value_len = vlen, .version = 1, .flags = flags};
    return vt->put(t, &e, GGL_VERSION_ANY);
}

static int present(void *t, const char *key)
{
    struct ggl_entry out = {.size = sizeof out};
    if (vt->get(t, key, strlen(key), &out) != GGL_OK)
        return 0;
    host->free(out.value);
    return 1;
}

static int count_cb(void *arg, const struct ggl_entry *e)
{
    (void)e;
    ++*(size_t *)arg;
    return 0;
}

static void *open_cache(const char *entries, const char *bytes, const char *samples)
{
    const char *const pairs[] = {"max_entries", entries, "max_bytes", bytes, "shards", "1",
                                 "samples", samples, "half_life_ms", "1000", NULL};
    static const char *keep[16][11];
    static int n;
    memcpy(keep[n % 16], pairs, sizeof pairs); /* the plugin keeps config pointers */
    return testhost_open(&ggl_plugin_entry, keep[n++ % 16], GGL_OK);
}

#define N 20

/* With sampling wide enough to see the whole shard, the victim is exactly the entry a
 * brute-force scan of the formula picks. */
static void test_eviction_matches_brute_force(void **state)
{
    (void)state;
    srand(12345);
    for (int round = 0; round < 100; round++) {
        host = testhost_init(1000000);
        void *t = open_cache("20", "1000000", "1000");
        uint64_t hits[N] = {0}, last[N];
        char key[N + 1][8];
        for (int i = 0; i < N; i++) {
            snprintf(key[i], sizeof key[i], "k%d", i);
            assert_int_equal(put(t, key[i], 8, 0), GGL_OK);
            last[i] = host->now(host);
            testhost_advance(1 + (uint64_t)(rand() % 50)); /* distinct times: no score ties */
        }
        for (int a = 0; a < 60; a++) {
            int i = rand() % N;
            testhost_advance(1 + (uint64_t)(rand() % 300));
            assert_true(present(t, key[i]));
            hits[i]++;
            last[i] = host->now(host);
        }
        testhost_advance(1 + (uint64_t)(rand() % 1000));
        int want = -1;
        double best = INFINITY;
        for (int i = 0; i < N; i++) {
            double idle = (double)(host->now(host) - last[i]);
            double sc = log1p((double)hits[i]) + exp2(-idle / 1000.0);
            if (sc < best)
                best = sc, want = i;
        }
        snprintf(key[N], sizeof key[N], "new");
        assert_int_equal(put(t, key[N], 8, 0), GGL_OK);
        /* Probe without touching the survivors' scores: count who is missing. */
        int missing = -1, nmissing = 0;
        for (int i = 0; i < N; i++)
            if (!present(t, key[i]))
                missing = i, nmissing++;
        assert_int_equal(nmissing, 1);
        if (missing != want)
            fail_msg("round %d: evicted k%d, brute force says k%d", round, missing, want);
        vt->close(t);
    }
}

static void test_hot_entries_survive_sampled_eviction(void **state)
{
    (void)state;
    host = testhost_init(1000000);
    void *t = open_cache("100", "1000000", "5");
    char key[16];
    for (int i = 0; i < 100; i++) {
        snprintf(key, sizeof key, "k%d", i);
        assert_int_equal(put(t, key, 8, 0), GGL_OK);
    }
    for (int r = 0; r < 20; r++)
        for (int i = 0; i < 10; i++) {
            snprintf(key, sizeof key, "k%d", i);
            assert_true(present(t, key));
        }
    for (int i = 100; i < 200; i++) {
        snprintf(key, sizeof key, "k%d", i);
        assert_int_equal(put(t, key, 8, 0), GGL_OK);
    }
    for (int i = 0; i < 10; i++) {
        snprintf(key, sizeof key, "k%d", i);
        assert_true(present(t, key));
    }
    struct ggl_tier_stats st = {.size = sizeof st};
    vt->stats(t, &st);
    assert_int_equal(st.entries, 100);
    assert_int_equal(st.evictions, 100);
    vt->close(t);
}

static void test_pending_entries_never_evicted(void **state)
{
    (void)state;
    host = testhost_init(0);
    void *t = open_cache("4", "1000000", "5");
    assert_int_equal(put(t, "p0", 8, GGL_ENTRY_PENDING), GGL_OK);
    assert_int_equal(put(t, "p1", 8, GGL_ENTRY_PENDING), GGL_OK);
    assert_int_equal(put(t, "p2", 8, GGL_ENTRY_PENDING), GGL_OK);
    assert_int_equal(put(t, "c0", 8, 0), GGL_OK);
    assert_int_equal(put(t, "c1", 8, 0), GGL_OK); /* evicts c0, the only candidate */
    assert_false(present(t, "c0"));
    assert_int_equal(put(t, "p3", 8, GGL_ENTRY_PENDING), GGL_OK); /* evicts c1 */
    assert_int_equal(put(t, "x", 8, 0), GGL_RETRY);
    assert_string_equal(testhost_reason(), "cache shard full of entries with pending writes");
    for (int i = 0; i < 4; i++) {
        char k[4] = {'p', (char)('0' + i), 0};
        assert_true(present(t, k));
    }
    /* Once the lower write is done the host rewrites the entry without the flag. */
    assert_int_equal(put(t, "p0", 8, 0), GGL_OK);
    assert_int_equal(put(t, "x", 8, 0), GGL_OK);
    assert_false(present(t, "p0"));
    vt->close(t);
}

static void test_byte_bound_and_oversized(void **state)
{
    (void)state;
    host = testhost_init(0);
    void *t = open_cache("1000", "1000", "5");
    char key[16];
    for (int i = 0; i < 10; i++) {
        snprintf(key, sizeof key, "k%d", i);
        assert_int_equal(put(t, key, 198, 0), GGL_OK);
        struct ggl_tier_stats st = {.size = sizeof st};
        vt->stats(t, &st);
        assert_true(st.bytes <= 1000);
    }
    assert_int_equal(put(t, "huge", 2000, 0), GGL_INVALID);
    assert_non_null(strstr(testhost_reason(), "exceeds a shard's 1000 bytes"));
    vt->close(t);
}

/* A scan drops the expired entries it passes (the host's maintenance trims this way). */
static void test_scan_trims_expired(void **state)
{
    (void)state;
    host = testhost_init(1000);
    void *t = open_cache("100", "100000", "5");
    char key[16];
    for (int i = 0; i < 20; i++) {
        snprintf(key, sizeof key, "k%d", i);
        struct ggl_entry e = {.size = sizeof e, .key = key, .key_len = strlen(key), .value = "v",
                              .value_len = 1, .version = 1, .expires_ms = i % 2 ? 2000 : 0};
        assert_int_equal(vt->put(t, &e, GGL_VERSION_ANY), GGL_OK);
    }
    testhost_advance(1000);
    uint64_t cursor = 0;
    size_t seen = 0;
    do
        assert_int_equal(vt->scan(t, &cursor, 7, count_cb, &seen), GGL_OK);
    while (cursor);
    assert_int_equal(seen, 10);
    struct ggl_tier_stats st = {.size = sizeof st};
    vt->stats(t, &st);
    assert_int_equal(st.entries, 10);
    assert_int_equal(st.expirations, 10);
    vt->close(t);
}

/* get_into copies a hit into the caller's buffer, or only says how much room it needs,
 * and counts the reads it copied (not tombstones) for take_reads, which restarts them;
 * the counts survive a rewrite, a delete and a retire (del_older_batch). */
struct taken_reads {
    uint64_t k1, k2, tomb, last;
    size_t visits;
};

static int take_cb(void *arg, const struct ggl_entry *e)
{
    struct taken_reads *t = arg;
    t->visits++;
    if (e->key_len == 2 && memcmp(e->key, "k1", 2) == 0)
        t->k1 += e->access_count, t->last = e->last_access_ms;
    else if (e->key_len == 2 && memcmp(e->key, "k2", 2) == 0)
        t->k2 += e->access_count;
    else
        t->tomb += e->access_count;
    return 0;
}

static struct taken_reads take_all(void *t)
{
    struct taken_reads r = {0};
    uint64_t cursor = 0;
    do
        assert_int_equal(vt->take_reads(t, &cursor, 3, take_cb, &r), GGL_OK);
    while (cursor);
    return r;
}

static void test_get_into_copies_and_counts_reads(void **state)
{
    (void)state;
    host = testhost_init(1000);
    void *t = open_cache("100", "100000", "5");
    struct ggl_entry e = {.size = sizeof e, .key = "k1", .key_len = 2, .value = "hello",
                          .value_len = 5, .version = 7, .importance = 0.25, .expires_ms = 5000};
    assert_int_equal(vt->put(t, &e, GGL_VERSION_ANY), GGL_OK);
    e.key = "k2";
    assert_int_equal(vt->put(t, &e, GGL_VERSION_ANY), GGL_OK);
    e.key = "gone", e.key_len = 4, e.flags = GGL_ENTRY_TOMBSTONE, e.value_len = 0;
    assert_int_equal(vt->put(t, &e, GGL_VERSION_ANY), GGL_OK);
    char buf[8];
    struct ggl_entry out = {.size = sizeof out};
    for (int i = 0; i < 3; i++) {
        memset(buf, 0, sizeof buf);
        assert_int_equal(vt->get_into(t, "k1", 2, buf, sizeof buf, 1000 + (uint64_t)i, &out), GGL_OK);
        assert_ptr_equal(out.value, buf);
        assert_int_equal(out.value_len, 5);
        assert_memory_equal(buf, "hello", 5);
        assert_int_equal(out.version, 7);
        assert_int_equal(out.expires_ms, 5000);
        assert_true(out.importance == 0.25);
    }
    assert_int_equal(vt->get_into(t, "k2", 2, buf, 4, 1000, &out), GGL_OK); /* too small */
    assert_null(out.value);
    assert_int_equal(out.value_len, 5);
    assert_int_equal(vt->get_into(t, "gone", 4, buf, sizeof buf, 1000, &out), GGL_OK);
    assert_true(out.flags & GGL_ENTRY_TOMBSTONE);
    assert_int_equal(vt->get_into(t, "none", 4, buf, sizeof buf, 1000, &out), GGL_NOTFOUND);
    assert_true(present(t, "k2")); /* get counts no read */

    struct taken_reads r = take_all(t);
    assert_int_equal(r.k1, 3);
    assert_int_equal(r.last, 1002);
    assert_int_equal(r.k2 + r.tomb, 0);
    assert_int_equal(r.visits, 1);
    e = (struct ggl_entry){.size = sizeof e, .key = "k2", .key_len = 2, .value = "x", .value_len = 1,
                           .version = 8};
    assert_int_equal(vt->get_into(t, "k2", 2, buf, sizeof buf, 1000, &out), GGL_OK);
    assert_int_equal(vt->put(t, &e, GGL_VERSION_ANY), GGL_OK); /* a rewrite keeps the reads */
    r = take_all(t);
    assert_int_equal(r.k2, 1);
    assert_int_equal(r.k1 + r.tomb, 0);
    r = take_all(t); /* taken: counting starts again */
    assert_int_equal(r.visits, 0);
    assert_int_equal(vt->get_into(t, "k2", 2, buf, sizeof buf, 1000, &out), GGL_OK);
    assert_int_equal(vt->get_into(t, "k2", 2, buf, sizeof buf, 1000, &out), GGL_OK);
    assert_int_equal(vt->del(t, "k2", 2, GGL_VERSION_ANY), GGL_OK);
    r = take_all(t); /* a dropped entry's reads are still handed over */
    assert_int_equal(r.k2, 2);
    assert_int_equal(r.visits, 1);
    assert_int_equal(vt->put(t, &e, GGL_VERSION_ANY), GGL_OK); /* and so are a retired one's */
    for (int i = 0; i < 3; i++)
        assert_int_equal(vt->get_into(t, "k2", 2, buf, sizeof buf, 1000, &out), GGL_OK);
    const void *keys[] = {"k2", "k1"};
    size_t lens[] = {2, 2};
    uint64_t versions[] = {9, 7}; /* k2 is older than 9; k1 is not older than 7 */
    enum ggl_status st[2];
    assert_int_equal(vt->del_older_batch(t, keys, lens, 2, versions, st), GGL_OK);
    assert_int_equal(st[0], GGL_OK);
    assert_int_equal(st[1], GGL_CONFLICT);
    assert_false(present(t, "k2"));
    r = take_all(t);
    assert_int_equal(r.k2, 3);
    assert_int_equal(r.visits, 1);
    assert_int_equal(vt->get_into(t, "k1", 2, buf, sizeof buf, 5000, &out), GGL_NOTFOUND); /* expired */
    vt->close(t);
}

static enum ggl_status put_value(void *t, const char *key, const char *value, uint64_t version)
{
    struct ggl_entry e = {.size = sizeof e, .key = key, .key_len = strlen(key),
                          .value = (void *)value, .value_len = strlen(value), .version = version};
    return vt->put(t, &e, GGL_VERSION_ANY);
}

/* key's value and version as get_into answers them ("" and 0 when absent). */
static uint64_t value_of(void *t, const char *key, char *buf, size_t cap)
{
    struct ggl_entry out = {.size = sizeof out};
    memset(buf, 0, cap);
    if (vt->get_into(t, key, strlen(key), buf, cap - 1, 1000, &out) != GGL_OK)
        return 0;
    return out.version;
}

#define GROW_KEYS 3000

/* The index grows by doubling from 64 slots to hold 3000 keys in one shard, and
 * deletions shift entries back: after deleting a pseudo-random third, every kept key
 * answers its own value, every deleted one is absent, and a scan sees each kept key
 * once.  Rewrites of the same length (copied in place) and of another length both
 * answer the new value and version. */
static void test_index_grows_and_deletes_keep_every_key(void **state)
{
    (void)state;
    host = testhost_init(1000);
    void *t = open_cache("4000", "10000000", "5");
    char key[16], val[32], buf[32];
    static char deleted[GROW_KEYS];
    for (int i = 0; i < GROW_KEYS; i++) {
        snprintf(key, sizeof key, "k%d", i), snprintf(val, sizeof val, "v%05d", i);
        assert_int_equal(put_value(t, key, val, (uint64_t)i + 1), GGL_OK);
    }
    for (unsigned i = 0, x = 12345; i < GROW_KEYS / 3; i++) {
        x = x * 1103515245u + 12345u;
        int k = (int)((x >> 8) % GROW_KEYS);
        snprintf(key, sizeof key, "k%d", k);
        assert_int_equal(vt->del(t, key, strlen(key), GGL_VERSION_ANY),
                         deleted[k] ? GGL_NOTFOUND : GGL_OK);
        deleted[k] = 1;
    }
    size_t kept = 0, seen = 0;
    for (int i = 0; i < GROW_KEYS; i++) {
        snprintf(key, sizeof key, "k%d", i), snprintf(val, sizeof val, "v%05d", i);
        uint64_t v = value_of(t, key, buf, sizeof buf);
        assert_int_equal(v, deleted[i] ? 0 : (uint64_t)i + 1);
        if (!deleted[i])
            assert_string_equal(buf, val), kept++;
    }
    uint64_t cursor = 0;
    do
        assert_int_equal(vt->scan(t, &cursor, 100, count_cb, &seen), GGL_OK);
    while (cursor);
    assert_int_equal(seen, kept);
    for (int i = 0; i < GROW_KEYS; i += 2) { /* same length, then a longer value */
        snprintf(key, sizeof key, "k%d", i);
        assert_int_equal(put_value(t, key, i % 4 ? "w1234" : "longer value", 9000), GGL_OK);
        assert_int_equal(value_of(t, key, buf, sizeof buf), 9000);
        assert_string_equal(buf, i % 4 ? "w1234" : "longer value");
    }
    vt->close(t);
}

/* A same-length rewrite (copied into the old entry) keeps the reads counted before it. */
static void test_same_length_rewrite_keeps_reads(void **state)
{
    (void)state;
    host = testhost_init(1000);
    void *t = open_cache("100", "100000", "5");
    char buf[16];
    assert_int_equal(put_value(t, "k1", "aaaa", 1), GGL_OK);
    assert_int_equal(value_of(t, "k1", buf, sizeof buf), 1);
    assert_int_equal(value_of(t, "k1", buf, sizeof buf), 1);
    assert_int_equal(put_value(t, "k1", "bbbb", 2), GGL_OK);
    assert_int_equal(value_of(t, "k1", buf, sizeof buf), 2);
    assert_string_equal(buf, "bbbb");
    struct taken_reads r = take_all(t);
    assert_int_equal(r.k1, 3);
    vt->close(t);
}

#define RACE_KEYS 64     /* churned: deleted, reinserted, rewritten at other lengths */
#define RACE_WRITES 40000

struct race {
    void *t;
    _Atomic int done;
};

struct race_reads {
    struct race *race;
    int torn, lost, reads; /* checked by the test thread after the join */
};

/* A value every byte of which is its version's low byte, of a length its version
 * picks: a key's next write (RACE_KEYS versions on) is in place, the one after a new
 * item. */
static size_t race_value(uint64_t version, char *buf)
{
    size_t len = 8 + (version / (2 * RACE_KEYS) % 2) * 40;
    memset(buf, (int)(version & 0xff), len);
    return len;
}

static void *race_writer(void *arg)
{
    struct race *r = arg;
    char key[16], val[64];
    for (uint64_t v = 1; v <= RACE_WRITES; v++) {
        int k = (int)(v * 7 % RACE_KEYS);
        snprintf(key, sizeof key, k ? "churn%d" : "stay", k);
        struct ggl_entry e = {.size = sizeof e, .key = key, .key_len = strlen(key), .value = val,
                              .value_len = race_value(v, val), .version = v};
        if (k && v % 5 == 0)
            vt->del(r->t, key, e.key_len, GGL_VERSION_ANY); /* moves entries in the index */
        else
            vt->put(r->t, &e, GGL_VERSION_ANY);
    }
    atomic_store(&r->done, 1);
    return NULL;
}

/* Read keys while the writer runs: a copy must be one whole version (value bytes and
 * length matching out.version), and "stay", never deleted, must always be found. */
static void *race_reader(void *arg)
{
    struct race_reads *rr = arg;
    struct race *r = rr->race;
    char key[16], buf[64], expect[64];
    for (unsigned i = 0; !atomic_load(&r->done); i++) {
        int k = (int)(i % RACE_KEYS);
        snprintf(key, sizeof key, k ? "churn%d" : "stay", k);
        struct ggl_entry out = {.size = sizeof out};
        enum ggl_status st = i & 1 ? vt->get_into(r->t, key, strlen(key), buf, sizeof buf, 1000, &out)
                                   : vt->get(r->t, key, strlen(key), &out);
        if (st == GGL_NOTFOUND && !k)
            rr->lost++;
        if (st != GGL_OK)
            continue;
        rr->reads++;
        if (out.value_len != race_value(out.version, expect) || !out.value ||
            memcmp(out.value, expect, out.value_len) != 0)
            rr->torn++;
        if (!(i & 1))
            host->free(out.value);
    }
    return NULL;
}

/* Lock-free reads racing in-place rewrites, replacements by longer or shorter items,
 * deletes (which shift the index) and reinserts: no torn copy, no lost key. */
static void test_reads_racing_writes_see_whole_entries(void **state)
{
    (void)state;
    host = testhost_init(1000);
    struct race r = {.t = open_cache("1000", "1000000", "5")};
    char val[64];
    struct ggl_entry e = {.size = sizeof e, .key = "stay", .key_len = 4, .value = val,
                          .value_len = race_value(0, val), .version = 0};
    assert_int_equal(vt->put(r.t, &e, GGL_VERSION_ANY), GGL_OK);
    pthread_t w, rd[2];
    struct race_reads rr[2] = {{.race = &r}, {.race = &r}};
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&rd[i], NULL, race_reader, &rr[i]), 0);
    assert_int_equal(pthread_create(&w, NULL, race_writer, &r), 0);
    pthread_join(w, NULL);
    for (int i = 0; i < 2; i++) {
        pthread_join(rd[i], NULL);
        assert_int_equal(rr[i].torn, 0);
        assert_int_equal(rr[i].lost, 0);
        assert_true(rr[i].reads > 0);
    }
    vt->close(r.t);
}

static void test_bad_settings_refused(void **state)
{
    (void)state;
    testhost_init(0);
    static const char *const pairs[] = {"shards", "3", NULL};
    testhost_open(&ggl_plugin_entry, pairs, GGL_INVALID);
    assert_non_null(strstr(testhost_reason(), "power of two"));
}

int main(void)
{
    vt = ggl_plugin_entry.vtable;
    static const char *const pairs[] = {"max_entries", "10000", "max_bytes", "67108864", NULL};
    static const struct tier_fixture fixture = {&ggl_plugin_entry, pairs, NULL, NULL};
    int failed = tier_conformance_run("tier/cache conformance", &fixture);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_eviction_matches_brute_force),
        cmocka_unit_test(test_hot_entries_survive_sampled_eviction),
        cmocka_unit_test(test_pending_entries_never_evicted),
        cmocka_unit_test(test_byte_bound_and_oversized),
        cmocka_unit_test(test_scan_trims_expired),
        cmocka_unit_test(test_get_into_copies_and_counts_reads),
        cmocka_unit_test(test_index_grows_and_deletes_keep_every_key),
        cmocka_unit_test(test_same_length_rewrite_keeps_reads),
        cmocka_unit_test(test_reads_racing_writes_see_whole_entries),
        cmocka_unit_test(test_bad_settings_refused),
    };
    return failed | cmocka_run_group_tests(tests, NULL, NULL);
}
