/* tier/sqlite on real files: the conformance suite, then what only a file can show —
 * data surviving close/reopen and a kill -9 of the writer right after its acks, a
 * schema from a newer plugin refused, and a bad setting refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>
#include <sqlite3.h>
#include <cmocka.h>

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
    remove_db();
    testhost_init(0);
    void *t = testhost_open(&ggl_plugin_entry, pairs, GGL_OK);
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
        cmocka_unit_test(test_newer_schema_refused),
        cmocka_unit_test(test_bad_setting_and_unwritable_path),
    };
    failed |= cmocka_run_group_tests(tests, NULL, NULL);
    remove_db();
    rmdir(dir);
    return failed;
}
