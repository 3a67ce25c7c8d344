/* Integration: the four bundled processors through the engine over the socket of the
 * real binary.  Each task type returns the expected result for a small instance, and
 * the learner converges on a seeded simulation: five Bernoulli arms with p = 0.2, 0.35,
 * 0.5, 0.65, 0.8, rewards drawn by this test's seeded generator, select and report
 * each a TASK.SUBMIT + TASK.RESULT WAIT; Thompson sampling (seed 42) must play the best
 * arm in at least 90% of pulls 801-1000 (the bound documented in learning.c). */
#include "ggl-build.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"

#define BODY                                                                                \
    "plugin_dirs = [ \"" BUILD_PLUGINDIR "\" ];\n"                                         \
    "backends = { c = { plugin = \"cache\"; }; s = { plugin = \"mem\"; };"                 \
    " i = { plugin = \"mem\"; }; l = { plugin = \"sqlite\"; path = \"%1$s/ltm.db\"; }; };\n" \
    "tiers = { cache = \"c\"; stm = \"s\"; im = \"i\"; ltm = \"l\"; };\n"                    \
    "processors = { reasoning = { plugin = \"reasoning\"; };"                               \
    " planning = { plugin = \"planning\"; }; optimization = { plugin = \"optimization\"; };" \
    " learning = { plugin = \"learning\"; seed = 42; }; };\n"

#define PULLS 1000
#define LATE_FROM 800 /* pulls 801..1000 are judged */

static struct host shared;

/* One RESP bulk or error reply into buf (NUL-terminated); returns its length, or -1 for
 * an error reply (its text in buf). */
static long read_reply(int fd, char *buf, size_t cap)
{
    char line[64];
    size_t n = 0;
    while (n + 1 < sizeof line && read_n(fd, line + n, 1, TIMEOUT_MS) == 1 && line[n] != '\n')
        n++;
    line[n] = '\0';
    if (n && line[n - 1] == '\r')
        line[n - 1] = '\0';
    if (line[0] == '-' || line[0] == ':' || line[0] == '+') {
        snprintf(buf, cap, "%s", line);
        return line[0] == '-' ? -1 : 0;
    }
    long len = atol(line + 1);
    assert_true(len >= 0 && (size_t)len + 2 < cap);
    assert_int_equal(read_n(fd, buf, (size_t)len + 2, TIMEOUT_MS), (size_t)len + 2);
    buf[len] = '\0';
    return len;
}

/* Submit a task of `type` and wait for it: the result's data (status asserted ok). */
static void run_task(int fd, const char *type, const char *payload, char *out, size_t cap)
{
    sendf(fd, "*3\r\n$11\r\nTASK.SUBMIT\r\n$%zu\r\n%s\r\n$%zu\r\n%s\r\n", strlen(type), type,
          strlen(payload), payload);
    char line[64];
    assert_int_equal(read_reply(fd, line, sizeof line), 0);
    if (line[0] != ':')
        fail_msg("TASK.SUBMIT %s: %s", type, line);
    sendf(fd, "TASK.RESULT %s WAIT 5000\r\n", line + 1);
    char head[8] = "";
    assert_int_equal(read_n(fd, head, 4, TIMEOUT_MS), 4);
    assert_string_equal(head, "*3\r\n");
    char status[32], reason[512];
    read_reply(fd, status, sizeof status);
    read_reply(fd, out, cap);
    read_reply(fd, reason, sizeof reason);
    if (strcmp(status, "ok") != 0)
        fail_msg("%s task: %s (%s)", type, status, reason);
}

static void test_reasoning_derives_by_rule(void **state)
{
    (void)state;
    int fd = client(&shared);
    char out[4096];
    run_task(fd, "reasoning",
             "{\"facts\":[\"a\",\"!c\"],\"rules\":[{\"name\":\"r1\",\"if\":[\"a\"],\"then\":\"b\"},"
             "{\"name\":\"r2\",\"if\":[\"b\"],\"then\":\"c\"}]}", out, sizeof out);
    assert_non_null(strstr(out, "{\"fact\":\"b\",\"rule\":\"r1\",\"from\":[\"a\"]}"));
    assert_non_null(strstr(out, "{\"fact\":\"c\",\"rule\":\"r2\",\"from\":[\"b\"]}"));
    assert_non_null(strstr(out, "\"contradictions\":[{")); /* c derived, !c given */
    close(fd);
}

static void test_planning_finds_the_cheapest_plan(void **state)
{
    (void)state;
    int fd = client(&shared);
    char out[4096];
    run_task(fd, "planning",
             "{\"start\":\"s\",\"goal\":\"g\",\"edges\":[{\"from\":\"s\",\"to\":\"m\",\"cost\":1},"
             "{\"from\":\"m\",\"to\":\"g\",\"cost\":1},{\"from\":\"s\",\"to\":\"g\",\"cost\":5}]}",
             out, sizeof out);
    assert_non_null(strstr(out, "\"found\":true"));
    assert_non_null(strstr(out, "\"cost\":2.0"));
    assert_non_null(strstr(out, "\"plan\":[\"s\",\"m\",\"g\"]"));
    close(fd);
}

static void test_optimization_solves_the_knapsack(void **state)
{
    (void)state;
    int fd = client(&shared);
    char out[4096];
    run_task(fd, "optimization",
             "{\"capacity\":10,\"items\":[{\"weight\":5,\"value\":10},{\"weight\":5,\"value\":10},"
             "{\"weight\":6,\"value\":15}]}", out, sizeof out);
    assert_non_null(strstr(out, "\"optimal\":true"));
    assert_non_null(strstr(out, "\"value\":20.0"));
    assert_non_null(strstr(out, "\"items\":[0,1]"));
    close(fd);
}

/* splitmix64: the simulation's rewards, reproducible. */
static uint64_t next_random(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

static void test_learner_converges_to_the_best_arm(void **state)
{
    (void)state;
    static const char *const arms[] = {"a", "b", "c", "d", "e"};
    static const double p[] = {0.2, 0.35, 0.5, 0.65, 0.8};
    int fd = client(&shared);
    uint64_t seed = 7;
    unsigned best_late = 0;
    char out[4096], payload[256];
    for (int pull = 0; pull < PULLS; pull++) {
        run_task(fd, "learning",
                 "{\"op\":\"select\",\"bandit\":\"sim\",\"arms\":[\"a\",\"b\",\"c\",\"d\",\"e\"],"
                 "\"algorithm\":\"thompson\"}", out, sizeof out);
        const char *at = strstr(out, "\"index\":");
        assert_non_null(at);
        int arm = atoi(at + 8);
        assert_true(arm >= 0 && arm < 5);
        best_late += pull >= LATE_FROM && arm == 4;
        double u = (double)(next_random(&seed) >> 11) / 9007199254740992.0;
        snprintf(payload, sizeof payload,
                 "{\"op\":\"report\",\"bandit\":\"sim\",\"arm\":\"%s\",\"reward\":%d}", arms[arm],
                 u < p[arm]);
        run_task(fd, "learning", payload, out, sizeof out);
    }
    print_message("best arm played in %u of pulls %d-%d\n", best_late, LATE_FROM + 1, PULLS);
    if (best_late < (PULLS - LATE_FROM) * 9 / 10)
        fail_msg("best arm played %u of the last %d pulls", best_late, PULLS - LATE_FROM);
    run_task(fd, "learning", "{\"op\":\"stats\",\"bandit\":\"sim\"}", out, sizeof out);
    assert_non_null(strstr(out, "\"e\":{\"pulls\":"));
    close(fd);
}

static int setup(void **state)
{
    (void)state;
    start_host_with(&shared, NULL, BODY);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    stop_host(&shared);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reasoning_derives_by_rule),
        cmocka_unit_test(test_planning_finds_the_cheapest_plan),
        cmocka_unit_test(test_optimization_solves_the_knapsack),
        cmocka_unit_test(test_learner_converges_to_the_best_arm),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
