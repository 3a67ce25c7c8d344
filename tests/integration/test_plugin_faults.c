/* Plugin faults on the real binary (tests/plugins/faulty.c): a processor whose every
 * call fails answers `failed` with its reason and the host serves on; a processor that
 * hangs has its task reported `timeout` at the deadline, its worker abandoned and
 * replaced, the processor refused and HEALTH failed, other types still run, and the
 * host exits 0 on SIGTERM with the thread still stuck; the same for a hung executor. */
#include "ggl-build.h"

#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"

#define DEADLINE_MS 300 /* engine and action default timeout */
#define GRACE_MS 200    /* stuck_grace_ms, abandon_grace_ms */
#define STR(x) #x
#define TO_STR(x) STR(x)
#define FAULTY(name, mode) \
    " " name " = { plugin = \"faulty\"; name = \"" name "\"; mode = \"" mode "\"; };"
#define BODY                                                                                 \
    "plugin_dirs = [ \"" TEST_PLUGINDIR "\", \"" BUILD_PLUGINDIR "\" ];\n"                  \
    "pools = { processing = 2; action_execution = 2; };\n"                                  \
    "engine = { default_timeout_ms = " TO_STR(DEADLINE_MS) "; stuck_grace_ms = "            \
    TO_STR(GRACE_MS) "; monitor_ms = 20; };\n"                                              \
    "actions = { default_timeout_ms = " TO_STR(DEADLINE_MS) "; abandon_grace_ms = "         \
    TO_STR(GRACE_MS) "; watchdog_ms = 20; default_retries = 0; shutdown_deadline_ms = 500; };\n" \
    "health = { interval_ms = 10; };\n"                                                     \
    "backends = { s = { plugin = \"mem\"; }; };\ntiers = { stm = \"s\"; };\n"               \
    "processors = {" FAULTY("bad", "fail") FAULTY("hang", "hang")                           \
    " echo = { plugin = \"echo\"; }; };\n"                                                  \
    "executors = {" FAULTY("hangx", "hang") " echo = { plugin = \"echo\"; }; };\n"

static long long now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* Send one inline command and return its flattened reply. */
static const char *ask(int fd, char *out, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static const char *ask(int fd, char *out, size_t cap, const char *fmt, ...)
{
    char cmd[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    sendf(fd, "%s\r\n", cmd);
    return reply_flat(fd, out, cap);
}

/* `kind`.SUBMIT name payload: the id (asserts an integer reply). */
static long long submit(int fd, const char *kind, const char *name, const char *payload)
{
    char r[512];
    ask(fd, r, sizeof r, "%s.SUBMIT %s %s", kind, name, payload);
    if (r[0] != ':')
        fail_msg("%s.SUBMIT %s: %s", kind, name, r);
    return atoll(r + 1);
}

static const char *result(int fd, const char *kind, long long id, char *out, size_t cap)
{
    return ask(fd, out, cap, "%s.RESULT %lld WAIT 5000", kind, id);
}

/* HEALTH's entry for component: "component|state|reason|ms". */
static void expect_health(const struct host *h, const char *component, const char *state)
{
    static char text[16384];
    char want[256];
    int fd = client(h);
    ask(fd, text, sizeof text, "HEALTH");
    close(fd);
    snprintf(want, sizeof want, "|%s|%s|", component, state);
    if (!strstr(text, want))
        fail_msg("HEALTH has no %s: %s", want, text);
}

/* Other task types, actions and memory commands still answer. */
static void expect_serving(const struct host *h, int tasks)
{
    char r[512];
    int fd = client(h);
    assert_string_equal(ask(fd, r, sizeof r, "PING"), "+PONG");
    for (int i = 0; i < tasks; i++) {
        long long id = submit(fd, "TASK", "echo", "hi");
        assert_string_equal(result(fd, "TASK", id, r, sizeof r), "ok|hi|");
    }
    long long id = submit(fd, "ACTION", "echo", "act");
    assert_string_equal(result(fd, "ACTION", id, r, sizeof r), "ok|act|");
    assert_string_equal(ask(fd, r, sizeof r, "MEM.PUT k v"), "+OK");
    assert_string_equal(ask(fd, r, sizeof r, "MEM.GET k"), "v");
    close(fd);
}

/* Poll INFO (bounded) until key reaches want. */
static void wait_info(const struct host *h, const char *section, const char *key, double want)
{
    double v = 0;
    for (int i = 0; i < 250 && (v = info_value(h, section, key)) < want; i++)
        poll(NULL, 0, 20);
    if (v != want)
        fail_msg("INFO %s %s is %g, not %g", section, key, v, want);
}

static void test_failing_processor_answers_failed_with_its_reason(void **state)
{
    (void)state;
    struct host h;
    start_host_with(&h, NULL, BODY);
    int fd = client(&h);
    char r[512], want[128];
    for (int i = 0; i < 20; i++) {
        long long id = submit(fd, "TASK", "bad", "x");
        snprintf(want, sizeof want, "failed||ERROR: faulty: call %lld refused on purpose", id);
        assert_string_equal(result(fd, "TASK", id, r, sizeof r), want);
        expect_serving(&h, 1);
    }
    close(fd);
    /* an error return is the task's outcome, not the processor's failure */
    assert_int_equal(info_value(&h, "engine", "engine_failed{bad}"), 20);
    assert_int_equal(info_value(&h, "engine", "engine_processor_failed{bad}"), 0);
    assert_int_equal(info_value(&h, "engine", "engine_stuck"), 0);
    expect_health(&h, "plugin:processor/faulty[bad]", "ok");
    printf("fault: failing processor: 20 tasks answered failed with the reason, host served on\n");
    stop_host(&h);
}

static void test_hanging_processor_is_abandoned_and_marked_failed(void **state)
{
    (void)state;
    struct host h;
    start_host_with(&h, NULL, BODY);
    int fd = client(&h);
    char r[512];
    long long t0 = now_ms(), id = submit(fd, "TASK", "hang", "x");
    assert_string_equal(result(fd, "TASK", id, r, sizeof r), "timeout||deadline passed while running");
    long long took = now_ms() - t0;
    assert_true(took >= DEADLINE_MS - 20 && took < DEADLINE_MS + 1500);

    wait_info(&h, "engine", "engine_stuck", 1);
    long long abandoned_after = now_ms() - t0;
    assert_int_equal(info_value(&h, "", "pool_abandoned_total{processing}"), 1);
    assert_int_equal(info_value(&h, "engine", "engine_processor_failed{hang}"), 1);
    assert_int_equal(info_value(&h, "engine", "engine_workers"), 2); /* replaced */
    assert_string_equal(ask(fd, r, sizeof r, "TASK.SUBMIT hang x"),
                        "-ERR processor failed (stuck past a deadline) for type hang");
    expect_health(&h, "plugin:processor/faulty[hang]", "failed");
    expect_serving(&h, 50); /* both workers' worth of echo tasks: the replacement runs */
    expect_health(&h, "plugin:processor/faulty[hang]", "failed"); /* checks ran since: it holds */
    assert_int_equal(info_value(&h, "engine", "engine_completed{echo}"), 50);
    close(fd);
    printf("fault: hanging processor: timeout after %lld ms (deadline %d), worker abandoned "
           "%lld ms after submit (grace %d), processor refused, HEALTH failed\n",
           took, DEADLINE_MS, abandoned_after, GRACE_MS);
    stop_host(&h); /* exit status 0 with the abandoned thread still asleep in the plugin */
}

static void test_hanging_executor_is_abandoned(void **state)
{
    (void)state;
    struct host h;
    start_host_with(&h, NULL, BODY);
    int fd = client(&h);
    char r[512];
    long long t0 = now_ms(), id = submit(fd, "ACTION", "hangx", "x");
    result(fd, "ACTION", id, r, sizeof r);
    long long took = now_ms() - t0;
    if (strncmp(r, "timeout|", 8) != 0 && strncmp(r, "failed|", 7) != 0)
        fail_msg("hung action answered %s", r);
    assert_non_null(strstr(r, "worker abandoned"));
    assert_true(took >= DEADLINE_MS + GRACE_MS - 20 && took < DEADLINE_MS + GRACE_MS + 1500);
    assert_int_equal(info_value(&h, "actions", "actions_abandoned"), 1);
    expect_health(&h, "plugin:executor/faulty[hangx]", "failed");
    expect_serving(&h, 5);
    assert_int_equal(info_value(&h, "actions", "actions_abandoned"), 1); /* no retries: once */
    /* it would take another worker with each action: a second stuck call, then refused */
    char r2[512];
    result(fd, "ACTION", submit(fd, "ACTION", "hangx", "y"), r2, sizeof r2);
    assert_non_null(strstr(r2, "worker abandoned"));
    assert_int_equal(info_value(&h, "actions", "actions_abandoned"), 2);
    assert_string_equal(ask(fd, r2, sizeof r2, "ACTION.SUBMIT hangx x"),
                        "-ERR ERROR: executor for 'hangx' is stuck (calls stuck past their "
                        "timeout; none until one returns or PLUGIN.RELOAD)");
    expect_serving(&h, 5);
    assert_int_equal(info_value(&h, "actions", "actions_abandoned"), 2);
    close(fd);
    printf("fault: hanging executor: answered after %lld ms (timeout %d + grace %d): %s\n", took,
           DEADLINE_MS, GRACE_MS, r);
    stop_host(&h);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_failing_processor_answers_failed_with_its_reason,
                                  kill_leftover_hosts),
        cmocka_unit_test_teardown(test_hanging_processor_is_abandoned_and_marked_failed,
                                  kill_leftover_hosts),
        cmocka_unit_test_teardown(test_hanging_executor_is_abandoned, kill_leftover_hosts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
