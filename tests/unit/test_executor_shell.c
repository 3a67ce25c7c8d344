/* executor/shell against the test host and real programs: exit codes to statuses, no
 * shell unless configured, the environment allowlist, the output bound, and timeouts and
 * exits that kill the whole process group. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "testhost.h"

extern const struct ggl_plugin ggl_plugin_entry;
static const struct ggl_executor *vt;
static const struct ggl_host *host;

struct out {
    enum ggl_status st;
    char data[256];
    size_t len;
    char reason[256];
};

static struct out run_ms(void *self, const char *payload, uint64_t timeout_ms)
{
    struct ggl_action a = {.size = sizeof a, .name = "shell", .payload = payload,
                           .payload_len = strlen(payload), .timeout_ms = timeout_ms};
    struct ggl_result r = {.size = sizeof r};
    struct out o = {.st = vt->execute(self, &a, &r), .len = r.data_len};
    memcpy(o.data, r.data ? r.data : "", r.data_len < sizeof o.data - 1 ? r.data_len : sizeof o.data - 1);
    snprintf(o.reason, sizeof o.reason, "%s", testhost_reason());
    host->free(r.data);
    return o;
}

static struct out run(void *self, const char *payload) { return run_ms(self, payload, 0); }

static int setup(void **state)
{
    (void)state;
    host = testhost_init(1000);
    vt = ggl_plugin_entry.vtable;
    return 0;
}

static void test_exit_codes_map_to_statuses(void **state)
{
    (void)state;
    const char *conf[] = {"retry_exit_codes", "75, 111", NULL};
    void *s = testhost_open(&ggl_plugin_entry, conf, GGL_OK);
    assert_string_equal(vt->action_names(s)[0], "shell");
    assert_int_equal(run(s, "[\"/bin/true\"]").st, GGL_OK);
    struct out o = run(s, "[\"/bin/false\"]");
    assert_int_equal(o.st, GGL_ERROR);
    assert_non_null(strstr(o.reason, "exited 1"));
    assert_int_equal(run(s, "[\"/bin/sh\", \"-c\", \"exit 75\"]").st, GGL_RETRY);
    o = run(s, "[\"/bin/sh\", \"-c\", \"echo broken >&2; exit 111\"]");
    assert_int_equal(o.st, GGL_RETRY);
    assert_non_null(strstr(o.reason, "exited 111: broken"));
    o = run(s, "[\"/bin/echo\", \"hello\", \"world\"]");
    assert_int_equal(o.st, GGL_OK);
    assert_int_equal(o.len, 12);
    assert_memory_equal(o.data, "hello world\n", 12);
    o = run(s, "[\"/nonexistent/prog\"]");
    assert_int_equal(o.st, GGL_ERROR);
    assert_non_null(strstr(o.reason, "cannot run"));
    vt->close(s);
}

static void test_no_shell_unless_configured(void **state)
{
    (void)state;
    void *s = testhost_open(&ggl_plugin_entry, NULL, GGL_OK);
    struct out o = run(s, "\"echo $((1+2))\"");
    assert_int_equal(o.st, GGL_INVALID);
    assert_non_null(strstr(o.reason, "use_shell"));
    assert_int_equal(run(s, "[\"echo\", \"relative\"]").st, GGL_INVALID);
    assert_int_equal(run(s, "[\"/bin/echo\", 3]").st, GGL_INVALID);
    assert_int_equal(run(s, "not json").st, GGL_INVALID);
    assert_int_equal(run(s, "[]").st, GGL_INVALID);
    /* an argument with shell syntax is passed as one literal argument */
    o = run(s, "[\"/bin/echo\", \"$(id); ls\"]");
    assert_int_equal(o.st, GGL_OK);
    assert_string_equal(o.data, "$(id); ls\n");
    vt->close(s);

    const char *shell_conf[] = {"use_shell", "true", NULL};
    s = testhost_open(&ggl_plugin_entry, shell_conf, GGL_OK);
    o = run(s, "\"echo $((1+2))\"");
    assert_int_equal(o.st, GGL_OK);
    assert_string_equal(o.data, "3\n");
    vt->close(s);
}

static void test_fixed_program_takes_arguments_only(void **state)
{
    (void)state;
    const char *conf[] = {"program", "/bin/echo", NULL};
    void *s = testhost_open(&ggl_plugin_entry, conf, GGL_OK);
    struct out o = run(s, "[\"/bin/rm\", \"x\"]");
    assert_int_equal(o.st, GGL_OK);
    assert_string_equal(o.data, "/bin/rm x\n"); /* echoed, not run */
    vt->close(s);
    const char *bad[] = {"program", "echo", NULL};
    testhost_open(&ggl_plugin_entry, bad, GGL_INVALID);
}

static void test_environment_is_limited_to_allowlist(void **state)
{
    (void)state;
    setenv("GGL_TEST_SECRET", "hunter2", 1);
    void *s = testhost_open(&ggl_plugin_entry, NULL, GGL_OK);
    struct out o = run(s, "[\"/usr/bin/env\"]");
    assert_int_equal(o.st, GGL_OK);
    assert_non_null(strstr(o.data, "PATH="));
    assert_null(strstr(o.data, "GGL_TEST_SECRET"));
    vt->close(s);
    const char *conf[] = {"env_allow", "GGL_TEST_SECRET", NULL};
    s = testhost_open(&ggl_plugin_entry, conf, GGL_OK);
    o = run(s, "[\"/usr/bin/env\"]");
    assert_string_equal(o.data, "GGL_TEST_SECRET=hunter2\n");
    vt->close(s);
}

static void test_output_is_bounded(void **state)
{
    (void)state;
    const char *conf[] = {"max_output", "100", NULL};
    void *s = testhost_open(&ggl_plugin_entry, conf, GGL_OK);
    /* 1 MB through a 64 KB pipe: the child would block forever if the rest were not read */
    struct out o = run(s, "[\"/usr/bin/head\", \"-c\", \"1000000\", \"/dev/zero\"]");
    assert_int_equal(o.st, GGL_OK);
    assert_int_equal(o.len, 100);
    vt->close(s);
}

static double elapsed_s(const struct timespec *t0)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)(t.tv_sec - t0->tv_sec) + (double)(t.tv_nsec - t0->tv_nsec) / 1e9;
}

/* The pid the helper script wrote, reaped as our orphan (we are a subreaper): it must
 * have died by SIGKILL. */
static void assert_group_member_killed(const char *pidfile)
{
    FILE *f = fopen(pidfile, "r");
    assert_non_null(f);
    int pid = 0;
    assert_int_equal(fscanf(f, "%d", &pid), 1);
    fclose(f);
    int ws = 0;
    assert_int_equal(waitpid(pid, &ws, 0), pid);
    assert_true(WIFSIGNALED(ws));
    assert_int_equal(WTERMSIG(ws), SIGKILL);
}

static void run_group_script(const char *mode, uint64_t timeout_ms, enum ggl_status want)
{
    char dir[] = "/tmp/ggl-shell-XXXXXX", pidfile[64], payload[512];
    assert_non_null(mkdtemp(dir));
    snprintf(pidfile, sizeof pidfile, "%s/pid", dir);
    snprintf(payload, sizeof payload, "[\"%s/unit/shell_group.sh\", \"%s\", \"%s\"]",
             TEST_SRCDIR, pidfile, mode);
    void *s = testhost_open(&ggl_plugin_entry, NULL, GGL_OK);
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    struct out o = run_ms(s, payload, timeout_ms);
    assert_int_equal(o.st, want);
    assert_true(elapsed_s(&t0) < 10); /* the sleep lasts 30 s */
    if (want == GGL_RETRY)
        assert_non_null(strstr(o.reason, "timed out"));
    assert_group_member_killed(pidfile);
    vt->close(s);
    unlink(pidfile);
    rmdir(dir);
}

static void test_timeout_kills_process_group(void **state)
{
    (void)state;
    run_group_script("wait", 300, GGL_RETRY);
}

static void test_background_processes_do_not_outlive_action(void **state)
{
    (void)state;
    run_group_script("nowait", 10000, GGL_OK);
}

int main(void)
{
    prctl(PR_SET_CHILD_SUBREAPER, 1); /* the scripts' orphans come back to us */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exit_codes_map_to_statuses),
        cmocka_unit_test(test_no_shell_unless_configured),
        cmocka_unit_test(test_fixed_program_takes_arguments_only),
        cmocka_unit_test(test_environment_is_limited_to_allowlist),
        cmocka_unit_test(test_output_is_bounded),
        cmocka_unit_test(test_timeout_kills_process_group),
        cmocka_unit_test(test_background_processes_do_not_outlive_action),
    };
    int rc = cmocka_run_group_tests(tests, setup, NULL);
    testhost_fini();
    return rc;
}
