/* Integration: the action system on the real binary over its socket.  The shell
 * executor runs a script that fails twice (retryable exit 75) and then succeeds: the
 * result after the retries, dead letters with reasons once retries run out, ACTION.REPLAY
 * of one, idempotency keys (the file executor appends once), the memory executor, outcome
 * feedback into memory, argument errors, and INFO actions. */
#include "ggl-build.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"

#define BODY                                                                                  \
    "plugin_dirs = [ \"" BUILD_PLUGINDIR "\" ];\n"                                           \
    "backends = { c = { plugin = \"cache\"; }; s = { plugin = \"mem\"; }; };\n"              \
    "tiers = { cache = \"c\"; stm = \"s\"; };\n"                                             \
    "executors = {\n"                                                                        \
    "  flaky = { plugin = \"shell\"; action = \"flaky\"; retry_exit_codes = \"75\";\n"       \
    "            program = \"" TEST_SRCDIR "/integration/fail_twice.sh\"; };\n"             \
    "  note = { plugin = \"file\"; action = \"note\"; path = \"%1$s/notes.log\"; };\n"       \
    "  remember = { plugin = \"memory\"; action = \"remember\"; key_prefix = \"r:\"; };\n"   \
    "};\n"                                                                                   \
    "actions = { backoff_base_ms = 20; backoff_max_ms = 100; default_retries = 3;\n"         \
    "            feedback_memory_prefix = \"outcome:\"; };\n"

static struct host h;

static void request(int fd, int argc, const char *const *argv)
{
    sendf(fd, "*%d\r\n", argc);
    for (int i = 0; i < argc; i++)
        sendf(fd, "$%zu\r\n%s\r\n", strlen(argv[i]), argv[i]);
}

/* One reply flattened: each element's text followed by '|' (arrays: "*n|" first). */
static void read_reply(int fd, char *out, size_t cap)
{
    char line[512];
    need_line(fd, line, sizeof line);
    size_t used = strlen(out);
    if (line[0] == '$' && atoi(line + 1) >= 0) {
        size_t len = (size_t)atoi(line + 1);
        assert_true(used + len + 2 < cap);
        assert_int_equal(read_n(fd, out + used, len + 2, TIMEOUT_MS), len + 2);
        strcpy(out + used + len, "|");
    } else {
        snprintf(out + used, cap - used, "%s|", line);
        if (line[0] == '*')
            for (int i = 0, n = atoi(line + 1); i < n; i++)
                read_reply(fd, out, cap);
    }
}

static const char *call(int fd, int argc, const char *const *argv)
{
    static char out[8192];
    out[0] = '\0';
    request(fd, argc, argv);
    read_reply(fd, out, sizeof out);
    return out;
}

#define CALL(fd, ...) call(fd, sizeof((const char *const[]){__VA_ARGS__}) / sizeof(char *), \
                           (const char *const[]){__VA_ARGS__})

static char *counter_arg(const char *name)
{
    static char payload[256];
    snprintf(payload, sizeof payload, "[\"%s/%s\"]", h.dir, name);
    return payload;
}

static int setup(void **state)
{
    (void)state;
    start_host_with(&h, NULL, BODY);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    stop_host(&h);
    return 0;
}

static void test_retries_until_success(void **state)
{
    (void)state;
    int fd = client(&h);
    assert_string_equal(CALL(fd, "ACTION.SUBMIT", "flaky", counter_arg("a")), ":1|");
    assert_string_equal(CALL(fd, "ACTION.RESULT", "1", "WAIT", "5000"),
                        "*3|ok|ok after 3 runs\n||");
    const char *info = CALL(fd, "INFO", "actions");
    assert_non_null(strstr(info, "actions_retried:2\r\n"));
    assert_non_null(strstr(info, "actions_completed:1\r\n"));
    assert_non_null(strstr(info, "actions_retry_queue_depth:0\r\n"));
    close(fd);
}

static void test_dead_letter_and_replay(void **state)
{
    (void)state;
    int fd = client(&h);
    const char *arg = counter_arg("b");
    assert_string_equal(CALL(fd, "ACTION.SUBMIT", "flaky", arg, "RETRIES", "1"), ":1|");
    const char *r = CALL(fd, "ACTION.RESULT", "1", "WAIT", "5000");
    assert_non_null(strstr(r, "*3|failed|"));
    assert_non_null(strstr(r, "gave up after 2 attempts: "));
    assert_non_null(strstr(r, "exited 75: run 2 fails"));
    char want[512];
    r = CALL(fd, "ACTION.DEAD");
    snprintf(want, sizeof want, "*1|*5|:1|flaky|:2|");
    assert_memory_equal(r, want, strlen(want));
    assert_non_null(strstr(r, "run 2 fails"));
    assert_non_null(strstr(r, arg));
    assert_string_equal(CALL(fd, "ACTION.REPLAY", "1"), ":2|"); /* a new id; run 3 succeeds */
    assert_string_equal(CALL(fd, "ACTION.RESULT", "2", "WAIT", "5000"),
                        "*3|ok|ok after 3 runs\n||");
    assert_string_equal(CALL(fd, "ACTION.DEAD", "COUNT", "5"), "*0|");
    assert_string_equal(CALL(fd, "ACTION.REPLAY", "1"), "-NOTFOUND no dead letter 1|");
    close(fd);
}

static void test_idempotency_key_runs_once(void **state)
{
    (void)state;
    int fd = client(&h);
    assert_string_equal(CALL(fd, "ACTION.SUBMIT", "note", "hello", "KEY", "k1"), ":1|");
    assert_string_equal(CALL(fd, "ACTION.SUBMIT", "note", "hello", "KEY", "k1"), ":1|");
    assert_string_equal(CALL(fd, "ACTION.RESULT", "1", "WAIT", "5000"), "*3|ok|||");
    assert_string_equal(CALL(fd, "ACTION.SUBMIT", "note", "hello", "KEY", "k1"), ":1|");
    assert_string_equal(CALL(fd, "ACTION.SUBMIT", "note", "other", "KEY", "k2"), ":2|");
    assert_string_equal(CALL(fd, "ACTION.RESULT", "2", "WAIT", "5000"), "*3|ok|||");
    char path[128], buf[64] = {0};
    snprintf(path, sizeof path, "%s/notes.log", h.dir);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    assert_int_equal(fread(buf, 1, sizeof buf - 1, f), 12);
    fclose(f);
    assert_string_equal(buf, "hello\nother\n");
    assert_non_null(strstr(CALL(fd, "INFO", "actions"), "actions_deduplicated:2\r\n"));
    close(fd);
}

static void test_memory_executor_and_outcome_feedback(void **state)
{
    (void)state;
    int fd = client(&h);
    assert_string_equal(CALL(fd, "ACTION.SUBMIT", "remember", "{\"key\": \"k\", \"value\": \"v\"}"), ":1|");
    assert_string_equal(CALL(fd, "ACTION.RESULT", "1", "WAIT", "5000"), "*3|ok|||");
    assert_string_equal(CALL(fd, "GET", "r:k"), "v|");
    /* the outcome record lands from a feedback thread: poll, bounded */
    const char *r = "";
    for (int i = 0; i < 500 && strcmp(r = CALL(fd, "GET", "outcome:1"), "$-1|") == 0; i++)
        assert_string_equal(CALL(fd, "ACTION.RESULT", "1", "WAIT", "1"), "*3|ok|||");
    assert_non_null(strstr(r, "\"action\":\"remember\",\"status\":\"ok\",\"attempts\":1"));
    close(fd);
}

static void test_errors_are_worded(void **state)
{
    (void)state;
    int fd = client(&h);
    assert_string_equal(CALL(fd, "ACTION.SUBMIT", "nope", "x"),
                        "-NOTFOUND no executor serves action 'nope'|");
    assert_string_equal(CALL(fd, "ACTION.SUBMIT", "flaky", "[]", "PRIORITY", "urgent"),
                        "-INVALID options: PRIORITY critical|high|normal|low|0..3, TIMEOUT ms "
                        "(> 0), RETRIES n, KEY k (1..256 bytes), each once|");
    assert_string_equal(CALL(fd, "ACTION.RESULT", "99999"), "-NOTFOUND no such id (never submitted, or expired)|");
    assert_string_equal(CALL(fd, "ACTION.RESULT", "abc"),
                        "-INVALID an action id is a positive integer|");
    assert_string_equal(CALL(fd, "ACTION.SUBMIT", "flaky", "not json"), ":1|");
    const char *r = CALL(fd, "ACTION.RESULT", "1", "WAIT", "5000");
    assert_non_null(strstr(r, "*3|invalid||INVALID: payload is not JSON"));
    close(fd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_retries_until_success, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dead_letter_and_replay, setup, teardown),
        cmocka_unit_test_setup_teardown(test_idempotency_key_runs_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_memory_executor_and_outcome_feedback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_errors_are_worded, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
