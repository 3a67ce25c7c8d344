/* sensor/disk against the test host: readings of real paths compared with statvfs(3)
 * taken by the test, names from name=path and from bare paths, a bad `paths` refused at
 * open, and an unreadable path reported (GGL_RETRY) while the others still are. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <unistd.h>
#include <cmocka.h>

#include "testhost.h"

extern const struct ggl_plugin ggl_plugin_entry;

#define MAX_READINGS 32

struct readings {
    int n;
    char key[MAX_READINGS][64];
    double value[MAX_READINGS];
};

static void emit(void *sink, const char *key, double value, const char *text)
{
    struct readings *r = sink;
    (void)text;
    if (r->n < MAX_READINGS) {
        snprintf(r->key[r->n], sizeof r->key[0], "%s", key);
        r->value[r->n++] = value;
    }
}

static double reading(const struct readings *r, const char *key)
{
    for (int i = 0; i < r->n; i++)
        if (strcmp(r->key[i], key) == 0)
            return r->value[i];
    fail_msg("no reading %s", key);
    return 0;
}

/* The reading is what statvfs says, within `slack` bytes (other writers share the disk). */
static void assert_near(double got, double want, double slack)
{
    if (got < want - slack || got > want + slack)
        fail_msg("reading %.0f, statvfs %.0f", got, want);
}

static void test_readings_match_statvfs(void **state)
{
    (void)state;
    char dir[] = "/tmp/ggl-test-disk-XXXXXX", paths[160];
    assert_non_null(mkdtemp(dir));
    snprintf(paths, sizeof paths, "root=/, work = %s", dir);
    testhost_init(0);
    const struct ggl_sensor *vt = ggl_plugin_entry.vtable;
    const char *const pairs[] = {"paths", paths, NULL};
    void *self = testhost_open(&ggl_plugin_entry, pairs, GGL_OK);
    struct readings r = {0};
    assert_int_equal(vt->sample(self, emit, &r), GGL_OK);
    assert_int_equal(r.n, 10);
    struct statvfs v;
    assert_int_equal(statvfs(dir, &v), 0);
    double unit = (double)v.f_frsize, slack = 256.0 * 1024 * 1024;
    assert_true(reading(&r, "work.total_bytes") == (double)v.f_blocks * unit);
    assert_near(reading(&r, "work.free_bytes"), (double)v.f_bfree * unit, slack);
    assert_near(reading(&r, "work.avail_bytes"), (double)v.f_bavail * unit, slack);
    double used = (double)(v.f_blocks - v.f_bfree);
    assert_near(reading(&r, "work.used_ratio"), used / (used + (double)v.f_bavail), 0.01);
    assert_near(reading(&r, "work.inodes_avail"), (double)v.f_favail, 10000);
    assert_int_equal(statvfs("/", &v), 0);
    assert_true(reading(&r, "root.total_bytes") == (double)v.f_blocks * (double)v.f_frsize);
    vt->close(self);
    rmdir(dir);
}

static void test_names_and_bad_paths(void **state)
{
    (void)state;
    testhost_init(0);
    const struct ggl_sensor *vt = ggl_plugin_entry.vtable;
    const char *const bare[] = {"paths", "/, /tmp/", NULL};
    void *self = testhost_open(&ggl_plugin_entry, bare, GGL_OK);
    struct readings r = {0};
    assert_int_equal(vt->sample(self, emit, &r), GGL_OK);
    assert_true(reading(&r, "root.total_bytes") > 0);
    assert_true(reading(&r, "tmp.total_bytes") > 0);
    vt->close(self);

    const char *const missing[] = {"paths", "gone=/nonexistent/ggl, root=/", NULL};
    self = testhost_open(&ggl_plugin_entry, missing, GGL_OK);
    memset(&r, 0, sizeof r);
    assert_int_equal(vt->sample(self, emit, &r), GGL_RETRY);
    assert_non_null(strstr(testhost_reason(), "statvfs /nonexistent/ggl"));
    assert_int_equal(r.n, 5); /* root still reported */
    assert_true(reading(&r, "root.total_bytes") > 0);
    vt->close(self);

    const char *const empty[] = {"paths", " , ", NULL};
    testhost_open(&ggl_plugin_entry, empty, GGL_INVALID);
    assert_non_null(strstr(testhost_reason(), "no path"));
    const char *const noname[] = {"paths", "=/", NULL};
    testhost_open(&ggl_plugin_entry, noname, GGL_INVALID);
    assert_non_null(strstr(testhost_reason(), "bad item"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_readings_match_statvfs),
                                       cmocka_unit_test(test_names_and_bad_paths)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
