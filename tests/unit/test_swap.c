/* PLUGIN.SWAP underneath: rebinding a tier slot to another declared backend, with and
 * without migration.  During and after a migration every key reads its latest value
 * while a writer keeps writing; refusals for unknown or current instances. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <pthread.h>
#include <cmocka.h>

#include "host_fixture.h"
#include "hostapi.h"

static struct host_fixture fx;

static int setup(void **state)
{
    (void)state;
    return host_fixture_open(&fx, "backends = { a = { plugin = \"mem\"; }; b = { plugin = \"mem\"; };"
                                  " s = { plugin = \"sqlite\"; path = \"%1$s/x.db\"; }; };\n"
                                  "tiers = { stm = \"a\"; };\n");
}

static int teardown(void **state)
{
    (void)state;
    host_fixture_close(&fx);
    return 0;
}

static void put(const char *key, const char *value)
{
    struct memory_write w = MEMORY_WRITE_DEFAULT;
    assert_int_equal(memory_put(key, strlen(key), value, strlen(value), &w, NULL), GGL_OK);
}

static int get_is(const char *key, const char *value)
{
    struct memory_value v;
    if (memory_get(key, strlen(key), &v) != GGL_OK)
        return 0;
    int same = v.len == strlen(value) && memcmp(v.data, value, v.len) == 0;
    free(v.data);
    return same;
}

/* Bounded wait (30 s: valgrind, and a writer competing for SQLite's write lock) until
 * INFO memory says the migration is over: 1, or 0 with the last INFO in info. */
static int migrated(char *info, size_t len)
{
    for (int i = 0; i < 6000; i++) {
        memory_info(info, len);
        if (strstr(info, "swap_state:done"))
            return 1;
        poll(NULL, 0, 5);
    }
    return 0;
}

static void test_swap_without_migration_rebinds(void **state)
{
    (void)state;
    put("k", "on-a");
    assert_int_equal(memory_swap(SLOT_STM, "b", 0), GGL_OK);
    struct memory_value v;
    assert_int_equal(memory_get("k", 1, &v), GGL_NOTFOUND); /* b is empty: nothing copied */
    put("k", "on-b");
    assert_int_equal(memory_swap(SLOT_STM, "a", 0), GGL_OK);
    assert_true(get_is("k", "on-a"));
    assert_int_equal(memory_swap(SLOT_STM, "a", 0), GGL_INVALID);
    assert_non_null(strstr(hostapi_take_reason(), "already bound"));
    assert_int_equal(memory_swap(SLOT_STM, "nosuch", 0), GGL_INVALID);
    assert_non_null(strstr(hostapi_take_reason(), "'nosuch' is not an open backend instance"));
}

static _Atomic int writer_stop;

static void *keep_writing(void *arg)
{
    int *rounds = arg;
    char key[16], val[16];
    for (*rounds = 0; !writer_stop && *rounds < 100000; ++*rounds) {
        snprintf(key, sizeof key, "w%d", *rounds % 100);
        snprintf(val, sizeof val, "%d", *rounds);
        put(key, val);
    }
    return NULL;
}

static void test_migration_keeps_every_latest_value(void **state)
{
    (void)state;
    char key[16], val[16];
    for (int i = 0; i < 2000; i++) {
        snprintf(key, sizeof key, "m%d", i);
        snprintf(val, sizeof val, "v%d", i);
        put(key, val);
    }
    pthread_t th;
    int rounds = 0;
    writer_stop = 0;
    assert_int_equal(pthread_create(&th, NULL, keep_writing, &rounds), 0);
    assert_int_equal(memory_swap(SLOT_STM, "s", 1), GGL_OK); /* mem -> sqlite, migrating */
    for (int i = 0; i < 2000; i += 7) { /* read during the copy: old or new, never missing */
        snprintf(key, sizeof key, "m%d", i);
        snprintf(val, sizeof val, "v%d", i);
        assert_true(get_is(key, val));
    }
    char info[4096];
    int done = migrated(info, sizeof info);
    writer_stop = 1; /* stopped before any failure: it must not outlive the fixture */
    pthread_join(th, NULL);
    if (!done)
        fail_msg("migration did not finish: %s", info);
    for (int i = 0; i < 2000; i++) {
        snprintf(key, sizeof key, "m%d", i);
        snprintf(val, sizeof val, "v%d", i);
        if (!get_is(key, val))
            fail_msg("%s lost in the migration", key);
    }
    for (int k = 0; k < 100 && k < rounds; k++) { /* the writer's last value per key */
        int last = rounds - 1 - ((rounds - 1 - k) % 100);
        snprintf(key, sizeof key, "w%d", k);
        snprintf(val, sizeof val, "%d", last);
        if (!get_is(key, val))
            fail_msg("%s does not read its last write %s", key, val);
    }
    /* Only the new backend answers now: its own copy of everything. */
    struct binding *b = atomic_load(&memory_slot(SLOT_STM)->current);
    struct ggl_entry e = {.size = sizeof e};
    assert_int_equal(b->vt->get(b->self, "m1999", 5, &e), GGL_OK);
    free(e.value);
    memory_info(info, sizeof info);
    assert_non_null(strstr(info, "swap_from:tier/mem[a]"));
    assert_non_null(strstr(info, "swap_to:tier/sqlite[s]"));
    assert_non_null(strstr(info, "swap_failed:0\r\n")); /* nothing left behind */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_swap_without_migration_rebinds, setup, teardown),
        cmocka_unit_test_setup_teardown(test_migration_keeps_every_latest_value, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
