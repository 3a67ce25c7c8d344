/* tier/sqlite on real files: the conformance suite, then what only a file can show —
 * data surviving close/reopen and a kill -9 of the writer right after its acks, a
 * schema from a newer plugin refused, a bad setting refused, the absent-key set never
 * hiding a row this process wrote (nor one another writer made, when off), expired
 * rows deleted through their index when a walk starts, and batches taking their turn
 * at the write lock beside a writer that never pauses. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>
#include <sqlite3.h>
#include <cmocka.h>

#include "sqlite_sql.h"
#include "sqlite_turns.h"
#include "testhost.h"
#include "tier_conformance.h"

extern const struct ggl_plugin ggl_plugin_entry;
static char dir[64], path[128];
static const char *pairs[] = {"path", path, "mmap_bytes", "0", NULL};

static void remove_db(void)
{
    static const char *const suffix[] = {"", "-wal", "-shm"};
    char p[160];
    for (int i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "%s%s", path, suffix[i]);
        unlink(p);
    }
}

/* The backend on a new, empty file. */
static void *open_fresh(void)
{
    remove_db();
    testhost_init(0);
    return testhost_open(&ggl_plugin_entry, pairs, GGL_OK);
}

static void put_n(void *t, int from, int to)
{
    const struct ggl_tier *vt = ggl_plugin_entry.vtable;
    char key[32];
    for (int i = from; i < to; i++) {
        snprintf(key, sizeof key, "key%d", i);
        struct ggl_entry e = {.size = sizeof e, .key = key, .key_len = strlen(key),
                              .value = key, .value_len = strlen(key), .version = (uint64_t)i + 1};
        if (vt->put(t, &e, GGL_VERSION_ANY) != GGL_OK)
            abort();
    }
}

static int count_present(void *t, int n)
{
    const struct ggl_tier *vt = ggl_plugin_entry.vtable;
    const struct ggl_host *host = testhost_init(0);
    char key[32];
    int present = 0;
    for (int i = 0; i < n; i++) {
        struct ggl_entry out = {.size = sizeof out};
        snprintf(key, sizeof key, "key%d", i);
        if (vt->get(t, key, strlen(key), &out) == GGL_OK && out.value_len == strlen(key) &&
            memcmp(out.value, key, out.value_len) == 0)
            present++;
        if (out.value)
            host->free(out.value);
    }
    return present;
}

static void test_survives_reopen(void **state)
{
    (void)state;
    const struct ggl_tier *vt = ggl_plugin_entry.vtable;
    void *t = open_fresh();
    put_n(t, 0, 100);
    vt->close(t);
    t = testhost_open(&ggl_plugin_entry, pairs, GGL_OK);
    assert_int_equal(count_present(t, 100), 100);
    vt->close(t);
}

/* The child writes and reports each acknowledged put through a pipe, then is killed
 * with SIGKILL mid-stream; every key it acknowledged must be in the file. */
static void test_acknowledged_writes_survive_kill9(void **state)
{
    (void)state;
    int fds[2];
    remove_db();
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        testhost_init(0);
        void *t = testhost_open(&ggl_plugin_entry, pairs, GGL_OK);
        for (int i = 0;; i++) {
            put_n(t, i, i + 1);
            if (write(fds[1], &i, sizeof i) != sizeof i)
                _exit(1);
        }
    }
    close(fds[1]);
    int acked = -1, v;
    while (acked < 500 && read(fds[0], &v, sizeof v) == sizeof v)
        acked = v;
    kill(pid, SIGKILL);
    int status;
    waitpid(pid, &status, 0);
    assert_true(WIFSIGNALED(status));
    while (read(fds[0], &v, sizeof v) == sizeof v)
        acked = v; /* acks still in the pipe */
    close(fds[0]);
    testhost_init(0);
    void *t = testhost_open(&ggl_plugin_entry, pairs, GGL_OK);
    assert_true(acked >= 500);
    assert_int_equal(count_present(t, acked + 1), acked + 1);
    ((const struct ggl_tier *)ggl_plugin_entry.vtable)->close(t);
}

static enum ggl_status get_key(void *t, const char *key)
{
    const struct ggl_tier *vt = ggl_plugin_entry.vtable;
    struct ggl_entry out = {.size = sizeof out};
    enum ggl_status st = vt->get(t, key, strlen(key), &out);
    free(out.value);
    return st;
}

static struct ggl_entry entry(const char *key, uint64_t version, uint64_t expires_ms)
{
    return (struct ggl_entry){.size = sizeof(struct ggl_entry), .key = key,
                              .key_len = strlen(key), .value = "v", .value_len = 1,
                              .version = version, .expires_ms = expires_ms};
}

/* Each key is looked up (and remembered absent) before it is written by put, put_batch
 * and a conditional put: every write shows at once. */
static void test_key_found_absent_then_written_is_found(void **state)
{
    (void)state;
    const struct ggl_tier *vt = ggl_plugin_entry.vtable;
    void *t = open_fresh();
    assert_int_equal(get_key(t, "one"), GGL_NOTFOUND);
    assert_int_equal(get_key(t, "one"), GGL_NOTFOUND); /* now answered from the set */
    struct ggl_entry e = entry("one", 1, 0);
    assert_int_equal(vt->put(t, &e, GGL_VERSION_OLDER), GGL_OK);
    assert_int_equal(get_key(t, "one"), GGL_OK);
    assert_int_equal(vt->del(t, "one", 3, GGL_VERSION_ANY), GGL_OK);
    assert_int_equal(get_key(t, "one"), GGL_NOTFOUND);
    e.version = 2;
    assert_int_equal(vt->put(t, &e, GGL_VERSION_ANY), GGL_OK);
    assert_int_equal(get_key(t, "one"), GGL_OK);

    struct ggl_entry batch[2] = {entry("two", 1, 0), entry("three", 1, 0)};
    enum ggl_status status[2];
    const void *keys[2] = {"two", "three"};
    size_t lens[2] = {3, 5};
    struct ggl_entry out[2] = {{.size = sizeof out[0]}, {.size = sizeof out[1]}};
    assert_int_equal(vt->get_batch(t, keys, lens, 2, out, status), GGL_OK);
    assert_int_equal(status[0], GGL_NOTFOUND);
    assert_int_equal(status[1], GGL_NOTFOUND);
    assert_int_equal(vt->put_batch(t, batch, 2, GGL_VERSION_OLDER, status), GGL_OK);
    assert_int_equal(get_key(t, "two"), GGL_OK);
    assert_int_equal(get_key(t, "three"), GGL_OK);
    vt->close(t);
}

/* An expired row is absent, but not remembered so: it is live again if the clock is
 * set back. */
static void test_expired_row_not_remembered_absent(void **state)
{
    (void)state;
    const struct ggl_tier *vt = ggl_plugin_entry.vtable;
    remove_db();
    testhost_init(1000);
    void *t = testhost_open(&ggl_plugin_entry, pairs, GGL_OK);
    struct ggl_entry e = entry("ttl", 1, 2000);
    assert_int_equal(vt->put(t, &e, GGL_VERSION_ANY), GGL_OK);
    testhost_advance(2000);
    assert_int_equal(get_key(t, "ttl"), GGL_NOTFOUND);
    testhost_init(1000);
    assert_int_equal(get_key(t, "ttl"), GGL_OK);
    vt->close(t);
}

static uint64_t stats_entries(void *t)
{
    struct ggl_tier_stats st = {.size = sizeof st};
    const struct ggl_tier *vt = ggl_plugin_entry.vtable;
    assert_int_equal(vt->stats(t, &st), GGL_OK);
    return st.entries;
}

static int count_cb(void *arg, const struct ggl_entry *e)
{
    (void)e;
    ++*(int *)arg;
    return 0;
}

/* Rows past their expiry are deleted when a walk starts (the host's maintenance starts
 * one each cycle), found through the partial index on expiry, not by a table scan. */
static void test_a_walk_deletes_expired_rows_through_the_index(void **state)
{
    (void)state;
    const struct ggl_tier *vt = ggl_plugin_entry.vtable;
    remove_db();
    testhost_init(1000);
    void *t = testhost_open(&ggl_plugin_entry, pairs, GGL_OK);
    struct ggl_entry e[] = {entry("a", 1, 2000), entry("b", 1, 2500), entry("c", 1, 0),
                            entry("d", 1, 9000)};
    for (size_t i = 0; i < 4; i++)
        assert_int_equal(vt->put(t, &e[i], GGL_VERSION_ANY), GGL_OK);
    testhost_advance(2000); /* now 3000: a and b expired */
    assert_int_equal(stats_entries(t), 4); /* still there: nothing walked yet */
    uint64_t cursor = 0;
    int seen = 0;
    assert_int_equal(vt->scan(t, &cursor, 10, count_cb, &seen), GGL_OK);
    assert_int_equal(seen, 2);
    assert_int_equal(stats_entries(t), 2);
    assert_int_equal(get_key(t, "d"), GGL_OK);
    vt->close(t);

    sqlite3 *db;
    sqlite3_stmt *st;
    static char built[STATEMENT_TEXT_MAX], text[STATEMENT_TEXT_MAX + 32];
    char plan[512] = "";
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    snprintf(text, sizeof text, "EXPLAIN QUERY PLAN %s", sqlite_statement(PURGE, built, sizeof built));
    assert_int_equal(sqlite3_prepare_v2(db, text, -1, &st, NULL), SQLITE_OK);
    while (sqlite3_step(st) == SQLITE_ROW)
        strncat(plan, (const char *)sqlite3_column_text(st, 3), sizeof plan - strlen(plan) - 1);
    sqlite3_finalize(st);
    sqlite3_close(db);
    assert_non_null(strstr(plan, "entries_expiry"));
}

/* With absent_keys = 0 a row written through another connection to the file (another
 * process, say) is seen after a miss. */
static void test_absent_keys_off_sees_other_writers(void **state)
{
    (void)state;
    const struct ggl_tier *vt = ggl_plugin_entry.vtable;
    static const char *const off[] = {"path", path, "mmap_bytes", "0", "absent_keys", "0", NULL};
    remove_db();
    testhost_init(0);
    void *reader = testhost_open(&ggl_plugin_entry, off, GGL_OK);
    void *writer = testhost_open(&ggl_plugin_entry, pairs, GGL_OK);
    assert_int_equal(get_key(reader, "other"), GGL_NOTFOUND);
    struct ggl_entry e = entry("other", 1, 0);
    assert_int_equal(vt->put(writer, &e, GGL_VERSION_ANY), GGL_OK);
    assert_int_equal(get_key(reader, "other"), GGL_OK);
    vt->close(writer);
    vt->close(reader);
    static const char *const bad[] = {"path", path, "absent_keys", "-1", NULL};
    testhost_open(&ggl_plugin_entry, bad, GGL_INVALID);
    assert_non_null(strstr(testhost_reason(), "absent_keys >= 0"));
}

/* put_batch writes 32 rows per statement: a chunk where some rows lose to newer stored
 * versions still reports each row's own outcome and keeps the newer values. */
static void test_batch_chunk_with_older_rows(void **state)
{
    (void)state;
    const struct ggl_tier *vt = ggl_plugin_entry.vtable;
    enum { N = 70 }; /* two full chunks and a tail */
    static char keys[N][16];
    struct ggl_entry es[N];
    enum ggl_status status[N];
    void *t = open_fresh();
    for (int i = 0; i < N; i++) {
        snprintf(keys[i], sizeof keys[i], "b%d", i);
        es[i] = entry(keys[i], 10, 0);
    }
    assert_int_equal(vt->put_batch(t, es, N, GGL_VERSION_OLDER, status), GGL_OK);
    for (int i = 0; i < N; i++)
        assert_int_equal(status[i], GGL_OK);
    for (int i = 0; i < N; i++) {
        es[i].version = i % 3 == 0 ? 5 : 20; /* every third one is older than what is stored */
        es[i].value = i % 3 == 0 ? "old" : "new";
        es[i].value_len = 3;
    }
    assert_int_equal(vt->put_batch(t, es, N, GGL_VERSION_OLDER, status), GGL_OK);
    for (int i = 0; i < N; i++) {
        struct ggl_entry out = {.size = sizeof out};
        assert_int_equal(status[i], i % 3 == 0 ? GGL_CONFLICT : GGL_OK);
        assert_int_equal(vt->get(t, keys[i], strlen(keys[i]), &out), GGL_OK);
        assert_int_equal(out.version, i % 3 == 0 ? 10 : 20);
        assert_int_equal(out.value_len, i % 3 == 0 ? 1 : 3);
        free(out.value);
    }
    vt->close(t);
}

/* A chunk whose rows share their metadata is bound once (MULTI_SHARED), others row by
 * row: either way every row keeps its own key, value and version and all its columns. */
static void test_batch_metadata_round_trip(void **state)
{
    (void)state;
    const struct ggl_tier *vt = ggl_plugin_entry.vtable;
    enum { N = 64 }; /* rows 0-31 share their metadata, rows 32-63 do not */
    static char keys[N][16];
    struct ggl_entry es[N];
    enum ggl_status status[N];
    void *t = open_fresh();
    for (int i = 0; i < N; i++) {
        uint64_t own = i < 32 ? 0 : (uint64_t)i; /* 0: the shared value */
        snprintf(keys[i], sizeof keys[i], "m%d", i);
        es[i] = entry(keys[i], 100 + (uint64_t)i, 9000000 + own);
        es[i].value = keys[i], es[i].value_len = strlen(keys[i]);
        es[i].importance = 0.25 + (double)own / 1000, es[i].flags = (uint32_t)own & 1;
        es[i].created_ms = 111 + own, es[i].last_access_ms = 222 + own;
        es[i].access_count = 3 + own;
    }
    assert_int_equal(vt->put_batch(t, es, N, GGL_VERSION_OLDER, status), GGL_OK);
    for (int i = 0; i < N; i++) {
        struct ggl_entry out = {.size = sizeof out};
        assert_int_equal(status[i], GGL_OK);
        assert_int_equal(vt->get(t, keys[i], strlen(keys[i]), &out), GGL_OK);
        assert_int_equal(out.value_len, es[i].value_len);
        assert_memory_equal(out.value, keys[i], out.value_len);
        assert_int_equal(out.version, es[i].version);
        assert_true(out.importance == es[i].importance);
        assert_int_equal(out.flags, es[i].flags);
        assert_int_equal(out.created_ms, es[i].created_ms);
        assert_int_equal(out.last_access_ms, es[i].last_access_ms);
        assert_int_equal(out.access_count, es[i].access_count);
        assert_int_equal(out.expires_ms, es[i].expires_ms);
        free(out.value);
    }
    vt->close(t);
}

static void test_newer_schema_refused(void **state)
{
    (void)state;
    sqlite3 *db;
    remove_db();
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "PRAGMA user_version = 7", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    testhost_init(0);
    testhost_open(&ggl_plugin_entry, pairs, GGL_INVALID);
    assert_non_null(strstr(testhost_reason(), "schema version 7, this plugin knows 1"));
}

static void test_bad_setting_and_unwritable_path(void **state)
{
    (void)state;
    testhost_init(0);
    static const char *const bad_sync[] = {"path", "/tmp/x.db", "synchronous", "OFF", NULL};
    testhost_open(&ggl_plugin_entry, bad_sync, GGL_INVALID);
    assert_non_null(strstr(testhost_reason(), "synchronous must be"));
    static const char *const no_dir[] = {"path", "/nonexistent/dir/ltm.db", NULL};
    testhost_open(&ggl_plugin_entry, no_dir, GGL_ERROR);
    assert_non_null(strstr(testhost_reason(), "/nonexistent/dir/ltm.db: open"));
}

struct pounder {
    void *tier;
    _Atomic int stop, puts; /* puts: read by the test thread while the writer goes */
    int errors;
};

/* Transactions of 50 rows in a tight loop, until told to stop (at most 20 s). */
static void *pound(void *arg)
{
    struct pounder *p = arg;
    const struct ggl_tier *vt = ggl_plugin_entry.vtable;
    char keys[50][16];
    struct ggl_entry es[50];
    enum ggl_status status[50];
    time_t end = time(NULL) + 20;
    while (!atomic_load(&p->stop) && time(NULL) < end) {
        for (int i = 0; i < 50; i++) {
            snprintf(keys[i], sizeof keys[i], "hot%d", i);
            es[i] = (struct ggl_entry){.size = sizeof es[i], .key = keys[i],
                                       .key_len = strlen(keys[i]), .value = keys[i],
                                       .value_len = strlen(keys[i]),
                                       .version = (uint64_t)p->puts + 1};
        }
        if (vt->put_batch(p->tier, es, 50, GGL_VERSION_ANY, status) != GGL_OK)
            p->errors++;
        p->puts++;
    }
    return NULL;
}

/* A batch beside a connection that writes without pause: SQLite's busy handler alone
 * sleeps and retries, and the writer took the lock again within microseconds of each
 * commit, so a batch could wait out busy_timeout_ms and fail (a migration into LTM did,
 * in CI).  With the instance's writers taking turns, every batch lands. */
static void test_batches_get_their_turn_beside_a_busy_writer(void **state)
{
    (void)state;
    static const char *busy_pairs[] = {"path", path, "mmap_bytes", "0", "busy_timeout_ms", "1000", NULL};
    const struct ggl_tier *vt = ggl_plugin_entry.vtable;
    remove_db();
    testhost_init(0);
    void *t = testhost_open(&ggl_plugin_entry, busy_pairs, GGL_OK);
    struct pounder p = {.tier = t};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, pound, &p), 0);
    static struct ggl_entry es[200];
    static char keys[200][16];
    enum ggl_status status[200];
    int failed = 0;
    while (p.puts < 10) /* the writer is going */
        sched_yield();
    for (int b = 0; b < 40; b++) {
        for (int i = 0; i < 200; i++) {
            snprintf(keys[i], sizeof keys[i], "b%d:%d", b, i);
            es[i] = (struct ggl_entry){.size = sizeof es[i], .key = keys[i],
                                       .key_len = strlen(keys[i]), .value = "v", .value_len = 1,
                                       .version = 1};
        }
        failed += vt->put_batch(t, es, 200, GGL_VERSION_OLDER, status) != GGL_OK;
    }
    atomic_store(&p.stop, 1);
    pthread_join(th, NULL);
    assert_int_equal(failed, 0);
    assert_int_equal(p.errors, 0);
    vt->close(t);
}

/* The turns themselves: first come, first served, even against a holder that asks
 * again at once.  Each of 100 rounds: A holds, B asks and waits, A gives and asks again
 * at once; B, holding, waits until A waits too, then gives: A must come after B.  And a
 * wait that runs out leaves nothing behind. */
#define ROUNDS 100
static struct turns turns;
static char order[2 * ROUNDS + 1];
static _Atomic int written;

/* 1 once someone waits for the turn, 0 when nobody did within 2 s. */
static int until_someone_waits(void)
{
    for (int i = 0; i < 2000; i++) {
        pthread_mutex_lock(&turns.m);
        int queued = turns.head != NULL;
        pthread_mutex_unlock(&turns.m);
        if (queued)
            return 1;
        poll(NULL, 0, 1);
    }
    return 0;
}

static void *second_in_line(void *arg)
{
    (void)arg;
    for (int r = 0; r < ROUNDS; r++) {
        if (turns_take(&turns, 10000) != 0)
            return NULL;
        int waits = until_someone_waits(); /* A asked again right after giving */
        order[atomic_fetch_add(&written, 1)] = 'B';
        turns_give(&turns);
        if (!waits)
            return NULL; /* A did not wait: it took the turn out of order */
    }
    return NULL;
}

static void test_turns_are_first_come_first_served(void **state)
{
    (void)state;
    pthread_t th;
    char want[2 * ROUNDS + 1];
    turns_init(&turns);
    atomic_store(&written, 0);
    assert_int_equal(turns_take(&turns, 0), 0);
    assert_int_equal(pthread_create(&th, NULL, second_in_line, NULL), 0);
    for (int r = 0; r < ROUNDS; r++) {
        if (!until_someone_waits()) /* B */
            break;
        turns_give(&turns);
        assert_int_equal(turns_take(&turns, 10000), 0);
        order[atomic_fetch_add(&written, 1)] = 'A';
        want[2 * r] = 'B', want[2 * r + 1] = 'A';
    }
    turns_give(&turns);
    pthread_join(th, NULL);
    order[2 * ROUNDS] = want[2 * ROUNDS] = '\0';
    assert_string_equal(order, want);

    assert_int_equal(turns_take(&turns, 0), 0);
    assert_int_equal(turns_take(&turns, 0), -1);  /* held: no wait asked */
    assert_int_equal(turns_take(&turns, 20), -1); /* held: the wait runs out */
    assert_null(turns.head);
    turns_give(&turns);
    assert_int_equal(turns_take(&turns, 0), 0); /* free again */
    turns_give(&turns);
    turns_fini(&turns);
}

int main(void)
{
    snprintf(dir, sizeof dir, "/tmp/ggl-test-sqlite-XXXXXX");
    if (!mkdtemp(dir))
        return 1;
    snprintf(path, sizeof path, "%s/ltm.db", dir);
    static const struct tier_fixture fixture = {&ggl_plugin_entry, pairs, remove_db, NULL};
    int failed = tier_conformance_run("tier/sqlite conformance", &fixture);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_survives_reopen),
        cmocka_unit_test(test_acknowledged_writes_survive_kill9),
        cmocka_unit_test(test_key_found_absent_then_written_is_found),
        cmocka_unit_test(test_expired_row_not_remembered_absent),
        cmocka_unit_test(test_a_walk_deletes_expired_rows_through_the_index),
        cmocka_unit_test(test_absent_keys_off_sees_other_writers),
        cmocka_unit_test(test_batch_chunk_with_older_rows),
        cmocka_unit_test(test_batch_metadata_round_trip),
        cmocka_unit_test(test_newer_schema_refused),
        cmocka_unit_test(test_bad_setting_and_unwritable_path),
        cmocka_unit_test(test_batches_get_their_turn_beside_a_busy_writer),
        cmocka_unit_test(test_turns_are_first_come_first_served),
    };
    failed |= cmocka_run_group_tests(tests, NULL, NULL);
    remove_db();
    rmdir(dir);
    return failed;
}
