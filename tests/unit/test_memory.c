/* The memory manager on real backends (cache, mem, sqlite on a temp file, and tier/flaky
 * for failures) with the fake clock: read-through and promotion, versions keeping the
 * newest write, tombstones, expiry, the circuit breaker, and the races that versions
 * exist for, driven deterministically through hooks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <unistd.h>
#include <cmocka.h>

#include "host_fixture.h"
#include "hostapi.h"

static uint64_t fake_now = 1700000000000ull;
static uint64_t fake_clock(void) { return __atomic_load_n(&fake_now, __ATOMIC_RELAXED); }
static void advance(uint64_t ms) { __atomic_add_fetch(&fake_now, ms, __ATOMIC_RELAXED); }

static struct host_fixture fx;
static char fail_file[128], full_file[128];

static int setup(void **state)
{
    (void)state;
    clock_set(fake_clock);
    if (host_fixture_open(&fx,
                          "backends = {\n"
                          "  c = { plugin = \"cache\"; max_entries = 1024; };\n"
                          "  s = { plugin = \"flaky\"; fail_file = \"%1$s/down\";"
                          " write_fail_file = \"%1$s/full\"; };\n"
                          "  i = { plugin = \"mem\"; };\n"
                          "  l = { plugin = \"sqlite\"; path = \"%1$s/ltm.db\"; };\n"
                          "};\n"
                          "tiers = { cache = \"c\"; stm = \"s\"; im = \"i\"; ltm = \"l\"; };\n"
                          "memory = { stm_ttl_ms = 10000; im_ttl_ms = 100000; breaker_threshold = 2;"
                          " breaker_cooldown_ms = 1000; maintenance_interval_ms = 1000;"
                          " compress = \"im, ltm\"; compress_min_bytes = 64; };\n") < 0)
        return -1;
    snprintf(fail_file, sizeof fail_file, "%s/down", fx.dir);
    snprintf(full_file, sizeof full_file, "%s/full", fx.dir);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    host_fixture_close(&fx);
    clock_set(NULL);
    return 0;
}

static enum ggl_status put(const char *key, const char *value, int tier)
{
    struct memory_write w = MEMORY_WRITE_DEFAULT;
    w.tier = tier;
    return memory_put(key, strlen(key), value, strlen(value), &w, NULL);
}

/* memory_get; assert status and, if OK, the value; returns the tier it came from. */
static int expect_get(const char *key, enum ggl_status want, const char *value)
{
    struct memory_value v;
    enum ggl_status st = memory_get(key, strlen(key), &v);
    if (st != want)
        fail_msg("get %s: %s, expected %s", key, ggl_status_str(st), ggl_status_str(want));
    if (st != GGL_OK)
        return -1;
    assert_int_equal(v.len, strlen(value));
    assert_memory_equal(v.data, value, v.len);
    free(v.data);
    return v.tier;
}

/* memory_get_into with a buffer of cap bytes: as expect_get, and the value must be in
 * the buffer exactly when the cache answered and it fit. */
static int expect_get_into(const char *key, size_t cap, enum ggl_status want, const char *value)
{
    char buf[64];
    struct memory_value v;
    enum ggl_status st = memory_get_into(key, strlen(key), buf, cap, &v);
    if (st != want)
        fail_msg("get_into %s: %s, expected %s", key, ggl_status_str(st), ggl_status_str(want));
    if (st != GGL_OK)
        return -1;
    assert_int_equal(v.len, strlen(value));
    assert_memory_equal(v.data, value, v.len);
    assert_int_equal(v.data == buf, v.tier == SLOT_CACHE && v.len <= cap);
    if (v.data != buf)
        free(v.data);
    return v.tier;
}

/* memory_get_cached_into's status for key. */
static enum ggl_status cached_into(const char *key)
{
    char buf[64];
    struct memory_value v;
    enum ggl_status st = memory_get_cached_into(key, strlen(key), buf, sizeof buf, &v);
    if (st == GGL_OK && v.data != buf)
        free(v.data);
    return st;
}

/* Direct access to one tier, bypassing the manager. */
static enum ggl_status tier_get(int t, const char *key, struct ggl_entry *e)
{
    struct binding *b = atomic_load(&memory_slot(t)->current);
    *e = (struct ggl_entry){.size = sizeof *e};
    enum ggl_status st = b->vt->get(b->self, key, strlen(key), e);
    if (st == GGL_OK)
        free(e->value);
    return st;
}

/* Make sure tier t holds no copy of key. */
static void tier_drop(int t, const char *key)
{
    struct binding *b = atomic_load(&memory_slot(t)->current);
    enum ggl_status st = b->vt->del(b->self, key, strlen(key), GGL_VERSION_ANY);
    assert_true(st == GGL_OK || st == GGL_NOTFOUND);
}

static void test_write_then_read_from_cache(void **state)
{
    (void)state;
    uint64_t v1, v2;
    struct memory_write w = MEMORY_WRITE_DEFAULT;
    assert_int_equal(memory_put("k", 1, "a", 1, &w, &v1), GGL_OK);
    assert_int_equal(memory_put("k", 1, "b", 1, &w, &v2), GGL_OK);
    assert_true(v2 > v1);
    assert_int_equal(expect_get("k", GGL_OK, "b"), SLOT_CACHE);
    struct ggl_entry e;
    assert_int_equal(tier_get(SLOT_STM, "k", &e), GGL_OK); /* acknowledged in STM */
    assert_int_equal(e.version, v2);
    expect_get("absent", GGL_NOTFOUND, NULL);
}

static void test_read_through_promotes_into_cache(void **state)
{
    (void)state;
    struct ggl_entry e;
    assert_int_equal(put("deep", "v", SLOT_LTM), GGL_OK);
    assert_int_equal(tier_get(SLOT_CACHE, "deep", &e), GGL_NOTFOUND); /* a write aimed low
                                                                         only invalidates */
    assert_int_equal(expect_get("deep", GGL_OK, "v"), SLOT_LTM);
    assert_int_equal(expect_get("deep", GGL_OK, "v"), SLOT_CACHE);
}

static void test_put_makes_lower_copies_unreachable(void **state)
{
    (void)state;
    struct ggl_entry e;
    assert_int_equal(put("k", "old", SLOT_LTM), GGL_OK);
    assert_int_equal(put("k", "new", -1), GGL_OK);
    assert_int_equal(tier_get(SLOT_LTM, "k", &e), GGL_NOTFOUND);
    advance(10000); /* the STM (and cache) copy expires: the old LTM copy must not return */
    expect_get("k", GGL_NOTFOUND, NULL);
}

static void test_expiry_on_host_clock(void **state)
{
    (void)state;
    struct memory_write w = MEMORY_WRITE_DEFAULT;
    w.ttl_ms = 500;
    assert_int_equal(memory_put("t", 1, "v", 1, &w, NULL), GGL_OK);
    advance(499);
    expect_get("t", GGL_OK, "v");
    advance(1);
    expect_get("t", GGL_NOTFOUND, NULL);
    w.pin = 1;
    assert_int_equal(memory_put("p", 1, "v", 1, &w, NULL), GGL_OK);
    advance(1000000);
    expect_get("p", GGL_OK, "v");
}

/* The allocation-free read answers cache hits in the caller's buffer and everything
 * else as memory_get: values too large for the buffer, reads through to lower tiers,
 * tombstones and expiry on the host clock. */
static void test_get_into_answers_as_get(void **state)
{
    (void)state;
    struct memory_write w = MEMORY_WRITE_DEFAULT;
    assert_int_equal(put("k", "value", -1), GGL_OK);
    assert_int_equal(expect_get_into("k", 64, GGL_OK, "value"), SLOT_CACHE);
    assert_int_equal(expect_get_into("k", 2, GGL_OK, "value"), SLOT_CACHE); /* allocated */
    assert_int_equal(cached_into("k"), GGL_OK);
    assert_int_equal(put("deep", "v", SLOT_LTM), GGL_OK);
    assert_int_equal(cached_into("deep"), GGL_RETRY); /* not in the cache: ask below */
    assert_int_equal(expect_get_into("deep", 64, GGL_OK, "v"), SLOT_LTM);
    assert_int_equal(expect_get_into("deep", 64, GGL_OK, "v"), SLOT_CACHE); /* promoted */
    int existed;
    assert_int_equal(memory_del("k", 1, &existed), GGL_OK);
    expect_get_into("k", 64, GGL_NOTFOUND, NULL); /* the cache's tombstone is definitive */
    assert_int_equal(cached_into("k"), GGL_NOTFOUND);
    expect_get_into("absent", 64, GGL_NOTFOUND, NULL);
    assert_int_equal(cached_into("absent"), GGL_RETRY);
    w.ttl_ms = 500;
    assert_int_equal(memory_put("t", 1, "v", 1, &w, NULL), GGL_OK);
    w.ttl_ms = 0, w.pin = 1;
    assert_int_equal(memory_put("p", 1, "pinned", 6, &w, NULL), GGL_OK);
    advance(499);
    assert_int_equal(expect_get_into("t", 64, GGL_OK, "v"), SLOT_CACHE);
    advance(1);
    expect_get_into("t", 64, GGL_NOTFOUND, NULL);
    assert_int_equal(cached_into("t"), GGL_RETRY);
    advance(1000000);
    assert_int_equal(expect_get_into("p", 64, GGL_OK, "pinned"), SLOT_CACHE);
}

static void test_delete_writes_tombstone_and_retires_lower(void **state)
{
    (void)state;
    int existed;
    struct ggl_entry e;
    assert_int_equal(put("d", "v", SLOT_LTM), GGL_OK);
    assert_int_equal(memory_del("d", 1, &existed), GGL_OK);
    assert_int_equal(existed, 1);
    expect_get("d", GGL_NOTFOUND, NULL);
    assert_int_equal(tier_get(SLOT_LTM, "d", &e), GGL_NOTFOUND);
    assert_int_equal(tier_get(SLOT_STM, "d", &e), GGL_OK);
    assert_true(e.flags & GGL_ENTRY_TOMBSTONE);
    assert_int_equal(memory_del("d", 1, &existed), GGL_OK);
    assert_int_equal(existed, 0);
    assert_int_equal(put("d", "again", -1), GGL_OK);
    expect_get("d", GGL_OK, "again");
}

static const char *racing_key;
static int racing_tier = -1; /* where the racing PUT of v2 aims (-1: the default) */
static void put_v2(enum memory_hook point, const void *key, size_t len)
{
    (void)point;
    if (len == strlen(racing_key) && memcmp(key, racing_key, len) == 0) {
        memory_set_hook(NULL);
        assert_int_equal(put(racing_key, "v2", racing_tier), GGL_OK);
        racing_tier = -1;
    }
}

static void delete_it(enum memory_hook point, const void *key, size_t len)
{
    (void)point, (void)key, (void)len;
    int existed;
    memory_set_hook(NULL);
    assert_int_equal(memory_del(racing_key, strlen(racing_key), &existed), GGL_OK);
}

/* A PUT of v2 lands after a move read v1 but before its copy reached IM: the PUT's
 * retire found nothing below, and the move's delete of v1 loses to v2.  The stale copy in
 * IM must go, or v1 would come back once v2 expires. */
static void put_v2_before_copy(enum memory_hook point, const void *key, size_t len)
{
    if (point == HOOK_BEFORE_COPY)
        put_v2(point, key, len);
}

static void test_put_before_copy_leaves_no_stale_copy(void **state)
{
    (void)state;
    racing_key = "mvc";
    assert_int_equal(put("mvc", "v1", -1), GGL_OK);
    memory_set_hook(put_v2_before_copy);
    assert_int_equal(memory_move("mvc", 3, SLOT_STM, SLOT_IM), GGL_OK);
    struct ggl_entry e;
    assert_int_equal(tier_get(SLOT_STM, "mvc", &e), GGL_OK);
    assert_int_equal(tier_get(SLOT_IM, "mvc", &e), GGL_NOTFOUND);
    advance(20000); /* v2 expires in STM (10 s TTL): nothing older may show */
    tier_drop(SLOT_CACHE, "mvc");
    expect_get("mvc", GGL_NOTFOUND, NULL);
}

/* The reader fetched v1 from LTM; before it promotes, a PUT of v2 lands.  The late
 * promotion of v1 must not overwrite v2 in the cache. */
static void test_promotion_racing_newer_put(void **state)
{
    (void)state;
    racing_key = "race";
    assert_int_equal(put("race", "v1", SLOT_LTM), GGL_OK);
    tier_drop(SLOT_CACHE, "race");
    memory_set_hook(put_v2);
    assert_int_equal(expect_get("race", GGL_OK, "v1"), SLOT_LTM); /* read before the write */
    assert_int_equal(expect_get("race", GGL_OK, "v2"), SLOT_CACHE);
}

/* The reader fetched v1 from STM; before it promotes, a PUT of v2 aimed at LTM lands,
 * retiring STM's v1 and emptying the cache.  The late promotion of v1 must not leave it
 * in the cache, over v2 below, until it expires. */
static void test_promotion_racing_newer_put_below(void **state)
{
    (void)state;
    racing_key = "raceb";
    assert_int_equal(put("raceb", "v1", SLOT_STM), GGL_OK);
    tier_drop(SLOT_CACHE, "raceb");
    racing_tier = SLOT_LTM; /* below the cache, which the PUT only empties */
    memory_set_hook(put_v2);
    assert_int_equal(expect_get("raceb", GGL_OK, "v1"), SLOT_STM); /* read before the write */
    struct ggl_entry e;
    assert_int_equal(tier_get(SLOT_CACHE, "raceb", &e), GGL_NOTFOUND); /* taken back */
    assert_int_equal(expect_get("raceb", GGL_OK, "v2"), SLOT_LTM);
    assert_int_equal(expect_get("raceb", GGL_OK, "v2"), SLOT_CACHE); /* promoted: no write raced */
}

/* The reader fetched v1; before it promotes, the key is deleted.  The promotion must
 * not bring it back. */
static void test_delete_racing_promotion(void **state)
{
    (void)state;
    racing_key = "gone";
    assert_int_equal(put("gone", "v1", SLOT_LTM), GGL_OK);
    tier_drop(SLOT_CACHE, "gone");
    memory_set_hook(delete_it);
    expect_get("gone", GGL_OK, "v1");
    expect_get("gone", GGL_NOTFOUND, NULL);
}

/* A move copied v1 from STM to IM; a PUT of v2 lands before the move deletes the STM
 * copy.  The compare-and-delete must leave v2. */
static void test_put_between_copy_and_delete(void **state)
{
    (void)state;
    racing_key = "mv";
    assert_int_equal(put("mv", "v1", -1), GGL_OK);
    memory_set_hook(put_v2);
    assert_int_equal(memory_move("mv", 2, SLOT_STM, SLOT_IM), GGL_OK);
    struct ggl_entry e;
    assert_int_equal(tier_get(SLOT_STM, "mv", &e), GGL_OK);
    tier_drop(SLOT_CACHE, "mv");
    expect_get("mv", GGL_OK, "v2");
    /* Without the race, a move leaves exactly one copy, below. */
    assert_int_equal(put("mv2", "x", -1), GGL_OK);
    assert_int_equal(memory_move("mv2", 3, SLOT_STM, SLOT_IM), GGL_OK);
    assert_int_equal(tier_get(SLOT_STM, "mv2", &e), GGL_NOTFOUND);
    assert_int_equal(tier_get(SLOT_IM, "mv2", &e), GGL_OK);
}

/* The flaky STM fails while `file` exists: two writes fail and open its writes' breaker
 * (threshold 2). */
static void fail_writes_until_open(const char *file)
{
    FILE *f = fopen(file, "w");
    fclose(f);
    assert_int_equal(put("x", "v", -1), GGL_RETRY);
    assert_int_equal(put("x", "v", -1), GGL_RETRY);
    assert_int_equal(atomic_load(&memory_slot(SLOT_STM)->br[SLOT_WRITES].state), BREAKER_OPEN);
}

static void test_breaker_fails_fast_and_recovers(void **state)
{
    (void)state;
    struct slot *stm = memory_slot(SLOT_STM);
    assert_int_equal(put("below", "v", SLOT_LTM), GGL_OK);
    tier_drop(SLOT_CACHE, "below");
    fail_writes_until_open(fail_file);
    long refused = (long)atomic_load(&stm->refused_open);
    assert_int_equal(put("x", "v", -1), GGL_RETRY);
    assert_int_equal((long)atomic_load(&stm->refused_open), refused + 1);
    assert_non_null(strstr(hostapi_take_reason(),
                           "stm: circuit breaker open for writes: tier/flaky[s]: RETRY: down"));
    /* Reads fall through to the tiers that answer; a miss is not claimed while one failed. */
    expect_get("below", GGL_OK, "v");
    expect_get("nowhere", GGL_RETRY, NULL);
    unlink(fail_file);
    assert_int_equal(put("x", "v", -1), GGL_RETRY); /* still cooling down */
    advance(1000);
    assert_int_equal(put("x", "v", -1), GGL_OK); /* the probe succeeds */
    assert_int_equal(atomic_load(&stm->br[SLOT_WRITES].state), BREAKER_CLOSED);
    expect_get("x", GGL_OK, "v");
    tier_drop(SLOT_CACHE, "x"); /* a read reaching STM: the reads' probe closes theirs */
    expect_get("x", GGL_OK, "v");
    assert_int_equal(atomic_load(&stm->br[SLOT_READS].state), BREAKER_CLOSED);
    char info[2048];
    memory_info(info, sizeof info);
    assert_non_null(strstr(info, "slot_stm:backend=tier/flaky[s],breaker=closed,in_flight=0,"));
    assert_non_null(strstr(info, "last_error=stm: tier/flaky[s]: RETRY: down") ||
                    strstr(info, "last_error=tier/flaky[s]: RETRY: down"));
    assert_non_null(strstr(info, "slot_ltm:backend=tier/sqlite[l],breaker=closed"));
}

/* Writes refused (a full disk) open the writes' breaker only: what the tier holds is
 * still read from it, and its reads' breaker stays closed. */
static void test_write_failures_leave_reads_served(void **state)
{
    (void)state;
    struct slot *stm = memory_slot(SLOT_STM);
    assert_int_equal(put("kept", "v1", SLOT_STM), GGL_OK);
    tier_drop(SLOT_CACHE, "kept");
    fail_writes_until_open(full_file);
    for (int i = 0; i < 5; i++) { /* past the threshold: reads are not refused */
        tier_drop(SLOT_CACHE, "kept");
        expect_get("kept", GGL_OK, "v1");
    }
    assert_int_equal(atomic_load(&stm->br[SLOT_READS].state), BREAKER_CLOSED);
    char info[2048];
    memory_info(info, sizeof info);
    assert_non_null(strstr(info, "slot_stm:backend=tier/flaky[s],breaker=open,"));
    assert_non_null(strstr(info, "breaker_reads=closed,breaker_writes=open,"
                                 "last_error=tier/flaky[s]: RETRY: full"));
    unlink(full_file);
    advance(1000);
    assert_int_equal(put("x", "v", SLOT_STM), GGL_OK); /* the probe succeeds */
    assert_int_equal(atomic_load(&stm->br[SLOT_WRITES].state), BREAKER_CLOSED);
}

static void test_batch_write_to_ltm(void **state)
{
    (void)state;
    struct memory_item items[50];
    enum ggl_status status[50];
    char keys[50][8];
    struct memory_write w = MEMORY_WRITE_DEFAULT;
    w.tier = SLOT_LTM;
    assert_int_equal(put("b7", "stale", -1), GGL_OK); /* an older copy in STM */
    assert_int_equal(put("b8", "stale", SLOT_IM), GGL_OK); /* and in IM (del_older_batch) */
    /* A copy newer than the batch (as if written after it) stays where it is. */
    struct binding *im = atomic_load(&memory_slot(SLOT_IM)->current);
    struct ggl_entry newer = {.size = sizeof newer, .key = "b9", .key_len = 2, .value = "new",
                              .value_len = 3, .version = UINT64_MAX - 1};
    assert_int_equal(im->vt->put(im->self, &newer, GGL_VERSION_ANY), GGL_OK);
    for (int i = 0; i < 50; i++) {
        snprintf(keys[i], sizeof keys[i], "b%d", i);
        items[i] = (struct memory_item){keys[i], strlen(keys[i]), keys[i], strlen(keys[i])};
    }
    assert_int_equal(memory_put_batch(items, 50, &w, status), GGL_OK);
    struct ggl_entry e;
    for (int i = 0; i < 50; i++) {
        assert_int_equal(status[i], GGL_OK);
        assert_int_equal(tier_get(SLOT_LTM, keys[i], &e), GGL_OK);
    }
    assert_int_equal(tier_get(SLOT_STM, "b7", &e), GGL_NOTFOUND);
    assert_int_equal(tier_get(SLOT_IM, "b8", &e), GGL_NOTFOUND);
    assert_int_equal(tier_get(SLOT_IM, "b9", &e), GGL_OK);
    assert_int_equal(e.version, UINT64_MAX - 1);
    expect_get("b7", GGL_OK, "b7");
    expect_get("b8", GGL_OK, "b8");
    /* The target down: every item reports it, nothing is half-acknowledged. */
    w.tier = SLOT_STM;
    FILE *f = fopen(fail_file, "w");
    fclose(f);
    memory_put_batch(items, 50, &w, status);
    for (int i = 0; i < 50; i++)
        assert_int_equal(status[i], GGL_RETRY);
}

/* A batch read answers each key from its top-most tier, like memory_get one by one. */
static void test_batch_read_matches_single_reads(void **state)
{
    (void)state;
    int existed;
    assert_int_equal(put("top", "c", -1), GGL_OK);
    assert_int_equal(put("low", "l", SLOT_LTM), GGL_OK);
    assert_int_equal(put("gone", "x", -1), GGL_OK);
    assert_int_equal(memory_del("gone", 4, &existed), GGL_OK);
    const void *keys[] = {"top", "low", "absent", "gone"};
    size_t lens[] = {3, 3, 6, 4};
    struct memory_value v[4];
    enum ggl_status st[4];
    assert_int_equal(memory_get_batch(keys, lens, 4, v, st), GGL_OK);
    assert_int_equal(st[0], GGL_OK);
    assert_int_equal(v[0].tier, SLOT_CACHE);
    assert_memory_equal(v[0].data, "c", 1);
    assert_int_equal(st[1], GGL_OK);
    assert_int_equal(v[1].tier, SLOT_LTM);
    assert_memory_equal(v[1].data, "l", 1);
    assert_int_equal(st[2], GGL_NOTFOUND);
    assert_int_equal(st[3], GGL_NOTFOUND);
    free(v[0].data);
    free(v[1].data);
    expect_get("low", GGL_OK, "l"); /* promoted by the batch read */
    struct memory_value one;
    assert_int_equal(memory_get("low", 3, &one), GGL_OK);
    assert_int_equal(one.tier, SLOT_CACHE);
    free(one.data);
}

/* IM and LTM compress in this fixture: callers see the original bytes, the tier holds
 * fewer, and what does not compress is stored as it is. */
static void test_compression_is_transparent(void **state)
{
    (void)state;
    char text[4096], noise[4096];
    for (size_t i = 0; i < sizeof text; i++)
        text[i] = "the quick brown fox jumps over the lazy dog "[i % 44];
    uint64_t x = 88172645463325252ull;
    for (size_t i = 0; i < sizeof noise; i++)
        x ^= x << 13, x ^= x >> 7, x ^= x << 17, noise[i] = (char)x;
    struct memory_write w = MEMORY_WRITE_DEFAULT;
    w.tier = SLOT_LTM;
    assert_int_equal(memory_put("text", 4, text, sizeof text, &w, NULL), GGL_OK);
    assert_int_equal(memory_put("noise", 5, noise, sizeof noise, &w, NULL), GGL_OK);
    struct binding *ltm = atomic_load(&memory_slot(SLOT_LTM)->current);
    struct ggl_entry raw = {.size = sizeof raw};
    assert_int_equal(ltm->vt->get(ltm->self, "text", 4, &raw), GGL_OK);
    assert_true(raw.flags & GGL_ENTRY_COMPRESSED);
    assert_true(raw.value_len < sizeof text / 4);
    free(raw.value);
    raw = (struct ggl_entry){.size = sizeof raw};
    assert_int_equal(ltm->vt->get(ltm->self, "noise", 5, &raw), GGL_OK);
    assert_false(raw.flags & GGL_ENTRY_COMPRESSED);
    assert_int_equal(raw.value_len, sizeof noise);
    free(raw.value);
    struct memory_value v;
    assert_int_equal(memory_get("text", 4, &v), GGL_OK);
    assert_int_equal(v.len, sizeof text);
    assert_memory_equal(v.data, text, sizeof text);
    assert_false(v.meta.flags & GGL_ENTRY_COMPRESSED);
    free(v.data);
    /* A move re-encodes for the target: STM (plain) -> IM (compressed) -> read back. */
    assert_int_equal(memory_put("moved", 5, text, sizeof text, &(struct memory_write)MEMORY_WRITE_DEFAULT, NULL), GGL_OK);
    assert_int_equal(memory_move("moved", 5, SLOT_STM, SLOT_IM), GGL_OK);
    tier_drop(SLOT_CACHE, "moved");
    assert_int_equal(memory_get("moved", 5, &v), GGL_OK);
    assert_int_equal(v.tier, SLOT_IM);
    assert_memory_equal(v.data, text, sizeof text);
    free(v.data);
}

static void test_compress_config_names_tiers(void **state)
{
    (void)state;
    struct conf_error err = {{0}};
    struct config *c = config_load_string("memory = {\n compress = \"im,ltm,disk\";\n};\n", "z.conf", &err);
    assert_non_null(c);
    assert_int_equal(memory_check_config(c, &err), -1);
    assert_non_null(strstr(err.msg, "z.conf:2: compress: unknown tier 'disk'"));
    config_free(c);
}

#define THREADS 4
#define ROUNDS 300

struct writer {
    int id;
    uint64_t acked[10];
    int errors;
};

static void *write_and_read(void *arg)
{
    struct writer *w = arg;
    struct memory_write mw = MEMORY_WRITE_DEFAULT;
    char key[8], val[16];
    for (int i = 0; i < ROUNDS; i++) {
        int k = (i * 7 + w->id) % 10;
        uint64_t v;
        snprintf(key, sizeof key, "c%d", k);
        snprintf(val, sizeof val, "%d-%d", w->id, i);
        if (memory_put(key, strlen(key), val, strlen(val), &mw, &v) != GGL_OK)
            w->errors++;
        else if (v > w->acked[k])
            w->acked[k] = v;
        struct memory_value mv;
        if (memory_get(key, strlen(key), &mv) != GGL_OK || mv.meta.version < w->acked[k])
            w->errors++;
        else
            free(mv.data);
    }
    return NULL;
}

/* Concurrent writers and readers: every reader sees at least its own last write, and at
 * the end each key holds the highest version anyone was acknowledged. */
static void test_concurrent_writers_keep_newest(void **state)
{
    (void)state;
    pthread_t th[THREADS];
    struct writer w[THREADS];
    memset(w, 0, sizeof w);
    for (int i = 0; i < THREADS; i++) {
        w[i].id = i;
        assert_int_equal(pthread_create(&th[i], NULL, write_and_read, &w[i]), 0);
    }
    for (int i = 0; i < THREADS; i++)
        pthread_join(th[i], NULL);
    for (int k = 0; k < 10; k++) {
        uint64_t newest = 0;
        for (int i = 0; i < THREADS; i++) {
            assert_int_equal(w[i].errors, 0);
            if (w[i].acked[k] > newest)
                newest = w[i].acked[k];
        }
        char key[8];
        snprintf(key, sizeof key, "c%d", k);
        struct memory_value mv;
        assert_int_equal(memory_get(key, strlen(key), &mv), GGL_OK);
        assert_int_equal(mv.meta.version, newest);
        free(mv.data);
        struct ggl_entry e;
        assert_int_equal(tier_get(SLOT_STM, key, &e), GGL_OK);
        assert_int_equal(e.version, newest);
    }
}

/* A restart with the wall clock behind the versions LTM stores (a clock corrected after
 * the first run): the version counter starts above them (tier/sqlite's max_version), so
 * an insert-if-newer write to LTM lands instead of losing to the stored copy. */
static void test_versions_continue_above_what_ltm_stores(void **state)
{
    (void)state;
    char dir[] = "/tmp/ggl-versions-XXXXXX", conf[512], path[64];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/ltm.db", dir);
    snprintf(conf, sizeof conf, "backends = { l = { plugin = \"sqlite\"; path = \"%s\"; }; };\n"
                                "tiers = { ltm = \"l\"; };\n", path);
    struct host_fixture f;
    struct memory_write w = MEMORY_WRITE_DEFAULT;
    struct memory_value v;
    uint64_t first, second;
    w.tier = SLOT_LTM;
    fake_now = 4000000000000ull; /* 2096: the first run's clock, far ahead */
    clock_set(fake_clock);
    assert_int_equal(host_fixture_open(&f, conf), 0);
    assert_int_equal(memory_put("k", 1, "old", 3, &w, &first), GGL_OK);
    host_fixture_close(&f);
    fake_now = 1700000000000ull; /* 2023: the clock stepped back */
    assert_int_equal(host_fixture_open(&f, conf), 0);
    assert_int_equal(memory_put("k", 1, "new", 3, &w, &second), GGL_OK);
    assert_true(second > first);
    assert_int_equal(memory_get("k", 1, &v), GGL_OK);
    assert_int_equal(v.len, 3);
    assert_memory_equal(v.data, "new", 3);
    free(v.data);
    host_fixture_close(&f);
    clock_set(NULL);
    unlink(path);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_write_then_read_from_cache, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_through_promotes_into_cache, setup, teardown),
        cmocka_unit_test_setup_teardown(test_put_makes_lower_copies_unreachable, setup, teardown),
        cmocka_unit_test_setup_teardown(test_expiry_on_host_clock, setup, teardown),
        cmocka_unit_test_setup_teardown(test_get_into_answers_as_get, setup, teardown),
        cmocka_unit_test_setup_teardown(test_delete_writes_tombstone_and_retires_lower, setup, teardown),
        cmocka_unit_test_setup_teardown(test_promotion_racing_newer_put, setup, teardown),
        cmocka_unit_test_setup_teardown(test_promotion_racing_newer_put_below, setup, teardown),
        cmocka_unit_test_setup_teardown(test_delete_racing_promotion, setup, teardown),
        cmocka_unit_test_setup_teardown(test_put_between_copy_and_delete, setup, teardown),
        cmocka_unit_test_setup_teardown(test_put_before_copy_leaves_no_stale_copy, setup, teardown),
        cmocka_unit_test_setup_teardown(test_breaker_fails_fast_and_recovers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_failures_leave_reads_served, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batch_write_to_ltm, setup, teardown),
        cmocka_unit_test_setup_teardown(test_compression_is_transparent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batch_read_matches_single_reads, setup, teardown),
        cmocka_unit_test(test_compress_config_names_tiers),
        cmocka_unit_test_setup_teardown(test_concurrent_writers_keep_newest, setup, teardown),
        cmocka_unit_test(test_versions_continue_above_what_ltm_stores),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
