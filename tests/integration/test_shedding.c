/* Integration: resource control on the real binary.  A test sensor (sensor/reading)
 * feeds a reading from a file; crossing its `shed` limit makes the host refuse
 * low-priority actions and tasks with -BUSY naming the reading, while high priority still runs,
 * HEALTH shows `resources` degraded; the host recovers only once the reading is back
 * under the limit with the recovery margin.  An action's outcome reaches the agent state
 * (AGENT.STATE) through the orchestrator. */
#include "ggl-build.h"

#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"

#define BODY                                                                                \
    "plugin_dirs = [ \"" BUILD_PLUGINDIR "\", \"" TEST_PLUGINDIR "\" ];\n"                 \
    "executors = { echo = { plugin = \"echo\"; }; };\n"                                    \
    "processors = { echo = { plugin = \"echo\"; }; };\n"                                   \
    "sensors = { feed = { plugin = \"reading\"; path = \"%1$s/reading\"; interval_ms = 20; }; };\n" \
    "health = { recover_ratio = 0.8; shed_priority = \"low\"; };\n"                        \
    "shed = ( { key = \"feed.value\"; max = 50.0; } );\n"

static struct host h;

static void set_reading(double v)
{
    char path[160], tmp[170];
    snprintf(path, sizeof path, "%s/reading", h.dir);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    assert_non_null(f);
    fprintf(f, "%g\n", v);
    fclose(f);
    assert_int_equal(rename(tmp, path), 0); /* the sensor never reads half a number */
}

/* Is "resources_shedding:<want>" in INFO resources?  Polled, bounded (5 s). */
static void wait_shedding(int want)
{
    char needle[32], buf[4096];
    snprintf(needle, sizeof needle, "resources_shedding:%d\r\n", want);
    for (int i = 0; i < 500; i++) {
        int fd = client(&h);
        sendf(fd, "INFO resources\r\n");
        char head[32];
        need_line(fd, head, sizeof head);
        size_t len = (size_t)atol(head + 1);
        assert_true(len < sizeof buf);
        assert_int_equal(read_n(fd, buf, len + 2, TIMEOUT_MS), len + 2);
        buf[len] = '\0';
        close(fd);
        if (strstr(buf, needle))
            return;
        poll(NULL, 0, 10);
    }
    fail_msg("INFO resources never said %s", needle);
}

static void submit_as(const char *what, const char *prio, char *line, size_t size)
{
    int fd = client(&h);
    sendf(fd, "%s echo hello PRIORITY %s\r\n", what, prio);
    need_line(fd, line, size);
    close(fd);
}

static void submit(const char *prio, char *line, size_t size)
{
    submit_as("ACTION.SUBMIT", prio, line, size);
}

/* The action's outcome reaches the agent state through the orchestrator's bus. */
static void expect_outcome_in_agent_state(const char *id)
{
    char want[64], reply[4096];
    snprintf(want, sizeof want, "{\"id\":%s,\"action\":\"echo\",\"status\":\"ok\"", id);
    for (int i = 0; i < 500; i++) {
        int fd = client(&h);
        sendf(fd, "AGENT.STATE\r\n");
        size_t n = read_n(fd, reply, sizeof reply - 1, 100);
        reply[n] = '\0';
        close(fd);
        if (strstr(reply, want))
            return;
        poll(NULL, 0, 10);
    }
    fail_msg("AGENT.STATE never showed %s: %s", want, reply);
}

static void test_sheds_low_priority_and_recovers(void **state)
{
    (void)state;
    snprintf(h.dir, sizeof h.dir, "/tmp/ggl-shed-XXXXXX");
    assert_non_null(mkdtemp(h.dir));
    snprintf(h.sock, sizeof h.sock, "%s/ctl.sock", h.dir);
    snprintf(h.conf, sizeof h.conf, "%s/ganglion.conf", h.dir);
    set_reading(10);
    write_config(&h, NULL, BODY);
    h.pid = spawn_host(&h);
    int fd = -1;
    for (int waited = 0; (fd = try_connect(h.sock)) < 0 && waited < TIMEOUT_MS; waited += 10)
        poll(NULL, 0, 10);
    assert_true(fd >= 0);
    close(fd);

    char line[512];
    wait_shedding(0);
    submit("low", line, sizeof line);
    assert_int_equal(line[0], ':');

    set_reading(90);
    wait_shedding(1);
    submit("low", line, sizeof line);
    assert_string_equal(line, "-BUSY shedding load: feed.value is 90, limit max 50");
    submit_as("TASK.SUBMIT", "low", line, sizeof line);
    assert_string_equal(line, "-BUSY shedding load: feed.value is 90, limit max 50");
    submit_as("TASK.SUBMIT", "normal", line, sizeof line);
    assert_int_equal(line[0], ':');
    submit("high", line, sizeof line);
    assert_int_equal(line[0], ':'); /* urgent work still goes */
    expect_outcome_in_agent_state(line + 1);

    fd = client(&h);
    sendf(fd, "HEALTH\r\n");
    char reply[8192];
    size_t n = read_n(fd, reply, sizeof reply - 1, 300);
    reply[n] = '\0';
    close(fd);
    assert_non_null(strstr(reply, "$9\r\nresources\r\n$8\r\ndegraded\r\n"));

    set_reading(45); /* under the limit, but not under 50 x 0.8 */
    poll(NULL, 0, 200); /* several samples at 20 ms: it must stay shedding */
    wait_shedding(1);
    set_reading(30);
    wait_shedding(0);
    submit("low", line, sizeof line);
    assert_int_equal(line[0], ':');
    stop_host(&h);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_sheds_low_priority_and_recovers, kill_leftover_hosts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
