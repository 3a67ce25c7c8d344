/* executor/file against the test host: lines appended in order, whole lines under
 * concurrent actions, newline and oversized payloads refused, fsync mode, bad path. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "testhost.h"

extern const struct ggl_plugin ggl_plugin_entry;
static const struct ggl_executor *vt;
static char dir[] = "/tmp/ggl-file-XXXXXX", path[64];

static enum ggl_status run(void *self, const char *payload)
{
    struct ggl_action a = {.size = sizeof a, .name = "file", .payload = payload,
                           .payload_len = strlen(payload)};
    struct ggl_result r = {.size = sizeof r};
    return vt->execute(self, &a, &r);
}

static char *slurp(void)
{
    static char buf[1 << 20];
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static int setup(void **state)
{
    (void)state;
    testhost_init(0);
    vt = ggl_plugin_entry.vtable;
    if (!mkdtemp(dir))
        return -1;
    snprintf(path, sizeof path, "%s/out.log", dir);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    unlink(path);
    rmdir(dir);
    return 0;
}

static void test_lines_are_appended(void **state)
{
    (void)state;
    const char *conf[] = {"path", path, "fsync", "true", "max_line", "16", NULL};
    void *s = testhost_open(&ggl_plugin_entry, conf, GGL_OK);
    assert_int_equal(run(s, "first"), GGL_OK);
    assert_int_equal(run(s, "second"), GGL_OK);
    assert_int_equal(run(s, "two\nlines"), GGL_INVALID);
    assert_int_equal(run(s, "longer than sixteen bytes"), GGL_INVALID);
    assert_string_equal(slurp(), "first\nsecond\n");
    vt->close(s);
    unlink(path);
}

struct writer {
    void *self;
    char tag;
    int failures;
};

static void *write_lines(void *arg)
{
    struct writer *w = arg;
    char line[101];
    memset(line, w->tag, 100);
    line[100] = '\0';
    for (int i = 0; i < 1000; i++)
        w->failures += run(w->self, line) != GGL_OK;
    return NULL;
}

static void test_concurrent_lines_stay_whole(void **state)
{
    (void)state;
    const char *conf[] = {"path", path, NULL};
    void *s = testhost_open(&ggl_plugin_entry, conf, GGL_OK);
    struct writer w[2] = {{s, 'a', 0}, {s, 'b', 0}};
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        pthread_create(&t[i], NULL, write_lines, &w[i]);
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    assert_int_equal(w[0].failures + w[1].failures, 0);
    int lines = 0;
    for (char *save = NULL, *l = strtok_r(slurp(), "\n", &save); l; l = strtok_r(NULL, "\n", &save), lines++) {
        assert_int_equal(strlen(l), 100);
        assert_int_equal(strspn(l, l[0] == 'a' ? "a" : "b"), 100);
    }
    assert_int_equal(lines, 2000);
    vt->close(s);
    unlink(path);
}

static void test_bad_path_fails_open(void **state)
{
    (void)state;
    const char *conf[] = {"path", "/nonexistent-dir/x.log", NULL};
    testhost_open(&ggl_plugin_entry, conf, GGL_ERROR);
    assert_non_null(strstr(testhost_reason(), "cannot open"));
    testhost_open(&ggl_plugin_entry, NULL, GGL_INVALID);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_lines_are_appended),
                                       cmocka_unit_test(test_concurrent_lines_stay_whole),
                                       cmocka_unit_test(test_bad_path_fails_open)};
    return cmocka_run_group_tests(tests, setup, teardown);
}
