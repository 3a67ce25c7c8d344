/* Health: checks run on their own interval (fake clock), transitions are counted and
 * reasons cleared on recovery, pushed states appear, the worst state is the overall one;
 * the built-in checks see a refused plugin as failed and a tier slot whose breaker is
 * open as degraded, then ok once the backend answers again; the health thread runs a
 * newly registered check without being asked. */
#include "ggl-build.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "health.h"
#include "host_fixture.h"
#include "hostapi.h"

static uint64_t fake_now = 1700000000000ull;
static uint64_t fake_clock(void) { return __atomic_load_n(&fake_now, __ATOMIC_RELAXED); }
static void advance(uint64_t ms) { __atomic_add_fetch(&fake_now, ms, __ATOMIC_RELAXED); }

struct probe {
    int calls; /* atomic: the health thread may run the check */
    enum health_state next;
};

static enum health_state probe_check(void *arg, char *reason, size_t len)
{
    struct probe *p = arg;
    __atomic_add_fetch(&p->calls, 1, __ATOMIC_SEQ_CST);
    if (p->next != HEALTH_OK)
        snprintf(reason, len, "probe says %s", health_state_name(p->next));
    return p->next;
}

static int calls(struct probe *p) { return __atomic_load_n(&p->calls, __ATOMIC_SEQ_CST); }

static const struct health_entry *find(const struct health_entry *e, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(e[i].name, name) == 0)
            return &e[i];
    return NULL;
}

static int setup(void **state)
{
    (void)state;
    clock_set(fake_clock);
    health_reset();
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    health_reset();
    clock_set(NULL);
    return 0;
}

static void test_checks_run_on_their_interval(void **state)
{
    (void)state;
    struct probe p = {0, HEALTH_OK};
    assert_int_equal(health_register("probe", probe_check, &p, 1000), 0);
    health_check_now(0);
    assert_int_equal(calls(&p), 1);
    health_check_now(0);
    advance(999);
    health_check_now(0);
    assert_int_equal(calls(&p), 1);
    advance(1);
    health_check_now(0);
    assert_int_equal(calls(&p), 2);
    health_check_now(1); /* forced: once, whatever the schedule */
    assert_int_equal(calls(&p), 3);
}

static void test_transitions_reasons_and_overall(void **state)
{
    (void)state;
    struct probe a = {0, HEALTH_OK}, b = {0, HEALTH_OK};
    health_register("a", probe_check, &a, 100);
    health_register("b", probe_check, &b, 100);
    struct health_entry e[8];
    enum health_state overall;
    health_check_now(1);
    assert_int_equal(health_snapshot(e, 8, &overall), 2);
    assert_int_equal(overall, HEALTH_OK);

    a.next = HEALTH_DEGRADED;
    b.next = HEALTH_FAILED;
    advance(100);
    health_check_now(0);
    health_snapshot(e, 8, &overall);
    assert_int_equal(overall, HEALTH_FAILED);
    assert_string_equal(find(e, 2, "a")->reason, "probe says degraded");
    assert_int_equal(find(e, 2, "b")->changes, 1);

    b.next = HEALTH_OK;
    advance(100);
    health_check_now(0);
    health_snapshot(e, 8, &overall);
    assert_int_equal(overall, HEALTH_DEGRADED);
    assert_string_equal(find(e, 2, "b")->reason, "");
    assert_int_equal(find(e, 2, "b")->changes, 2);
}

static void test_pushed_states_and_unchecked_entries(void **state)
{
    (void)state;
    struct probe never = {0, HEALTH_FAILED};
    health_register("later", probe_check, &never, 1000); /* not run yet: no say in overall */
    assert_int_equal(health_report("engine", HEALTH_DEGRADED, "queue full"), 0);
    struct health_entry e[8];
    enum health_state overall;
    assert_int_equal(health_snapshot(e, 8, &overall), 2);
    assert_int_equal(overall, HEALTH_DEGRADED);
    assert_int_equal(find(e, 2, "later")->checked_ms, 0);
    assert_string_equal(find(e, 2, "engine")->reason, "queue full");
    health_report("engine", HEALTH_OK, "ignored when ok");
    health_snapshot(e, 8, &overall);
    assert_int_equal(overall, HEALTH_OK);
    assert_string_equal(find(e, 2, "engine")->reason, "");
}

/* A plugin whose worker was abandoned stays failed though its instance check says ok. */
static void test_pushed_failure_holds_over_the_check(void **state)
{
    (void)state;
    struct probe p = {0, HEALTH_OK};
    health_register("plugin:processor/x[x]", probe_check, &p, 100);
    health_check_now(1);
    health_plugin_failed("processor/x[x]", "worker abandoned");
    struct health_entry e[4];
    enum health_state overall;
    for (int i = 0; i < 3; i++) {
        advance(100);
        health_check_now(0);
    }
    assert_int_equal(calls(&p), 4); /* the check still runs: its answer is not taken */
    assert_int_equal(health_snapshot(e, 4, &overall), 1);
    assert_int_equal(overall, HEALTH_FAILED);
    assert_string_equal(e[0].reason, "worker abandoned");
    health_report("plugin:processor/x[x]", HEALTH_OK, NULL); /* only a push lifts it */
    advance(100);
    health_check_now(0);
    health_snapshot(e, 4, &overall);
    assert_int_equal(overall, HEALTH_OK);
}

static void test_table_is_bounded(void **state)
{
    (void)state;
    char name[32];
    for (int i = 0; i < HEALTH_MAX; i++) {
        snprintf(name, sizeof name, "c%d", i);
        assert_int_equal(health_report(name, HEALTH_OK, NULL), 0);
    }
    assert_int_equal(health_report("one-too-many", HEALTH_OK, NULL), -1);
    assert_int_equal(health_report("c7", HEALTH_FAILED, "known names still update"), 0);
}

static enum ggl_status put(const char *key)
{
    struct memory_write w = MEMORY_WRITE_DEFAULT;
    w.tier = SLOT_STM;
    return memory_put(key, strlen(key), "v", 1, &w, NULL);
}

static void test_builtin_plugin_and_slot_checks(void **state)
{
    (void)state;
    struct host_fixture fx;
    assert_int_equal(host_fixture_open(&fx,
                                       "backends = {\n"
                                       "  s = { plugin = \"flaky\"; fail_file = \"%1$s/down\"; };\n"
                                       "  broken = { plugin = \"bad_init\"; };\n"
                                       "};\n"
                                       "tiers = { stm = \"s\"; };\n"
                                       "memory = { breaker_threshold = 2; breaker_cooldown_ms = 1000; };\n"),
                     0);
    health_register_builtin(500);
    health_check_now(1);
    struct health_entry e[16];
    enum health_state overall;
    size_t n = health_snapshot(e, 16, &overall);
    assert_int_equal(find(e, n, "plugin:tier/flaky[s]")->state, HEALTH_OK);
    const struct health_entry *broken = find(e, n, "plugin:tier/bad_init[broken]");
    assert_non_null(broken);
    assert_int_equal(broken->state, HEALTH_FAILED);
    assert_true(broken->reason[0] != '\0');
    assert_int_equal(find(e, n, "memory:stm")->state, HEALTH_OK);

    char down[128];
    snprintf(down, sizeof down, "%s/down", fx.dir);
    fclose(fopen(down, "w"));
    assert_int_equal(put("k1"), GGL_RETRY);
    assert_int_equal(put("k2"), GGL_RETRY); /* the breaker opens */
    advance(500);
    health_check_now(0);
    n = health_snapshot(e, 16, &overall);
    const struct health_entry *stm = find(e, n, "memory:stm");
    assert_int_equal(stm->state, HEALTH_DEGRADED);
    assert_non_null(strstr(stm->reason, "breaker open"));

    unlink(down);
    advance(1000); /* past the cooldown: the check is the half-open probe */
    health_check_now(0);
    n = health_snapshot(e, 16, &overall);
    assert_int_equal(find(e, n, "memory:stm")->state, HEALTH_OK);
    assert_int_equal(put("k3"), GGL_OK);
    health_reset();
    host_fixture_close(&fx);
}

static void test_thread_runs_new_checks(void **state)
{
    (void)state;
    clock_set(NULL);
    struct probe p = {0, HEALTH_OK};
    assert_int_equal(health_start(), 0);
    health_register("threaded", probe_check, &p, 0); /* due at once: the thread is woken */
    for (int i = 0; i < 2000 && calls(&p) == 0; i++) /* bounded wait for the thread */
        nanosleep(&(struct timespec){0, 1000000}, NULL);
    health_stop();
    assert_int_equal(calls(&p), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_checks_run_on_their_interval, setup, teardown),
        cmocka_unit_test_setup_teardown(test_transitions_reasons_and_overall, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pushed_states_and_unchecked_entries, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pushed_failure_holds_over_the_check, setup, teardown),
        cmocka_unit_test_setup_teardown(test_table_is_bounded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_builtin_plugin_and_slot_checks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_thread_runs_new_checks, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
