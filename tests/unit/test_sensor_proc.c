/* sensor/proc against the test host, reading a fake /proc written by the test: the
 * readings emitted, and clear reasons for a missing or malformed file. */
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

struct readings {
    int n;
    char key[8][32];
    double value[8];
};

static void emit(void *sink, const char *key, double value, const char *text)
{
    struct readings *r = sink;
    (void)text;
    if (r->n < 8) {
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

static void write_file(const char *dir, const char *name, const char *text)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void test_readings_from_proc_files(void **state)
{
    (void)state;
    char dir[] = "/tmp/ggl-test-proc-XXXXXX";
    assert_non_null(mkdtemp(dir));
    testhost_init(0);
    const struct ggl_sensor *vt = ggl_plugin_entry.vtable;
    const char *const pairs[] = {"proc_root", dir, NULL};
    void *self = testhost_open(&ggl_plugin_entry, pairs, GGL_OK);
    struct readings r = {0};

    assert_int_equal(vt->sample(self, emit, &r), GGL_RETRY);
    assert_non_null(strstr(testhost_reason(), "/loadavg"));

    write_file(dir, "loadavg", "0.50 0.25 0.10 1/100 4242\n");
    write_file(dir, "meminfo", "MemTotal:       1000 kB\nMemFree: 100 kB\nMemAvailable:    250 kB\n");
    assert_int_equal(vt->sample(self, emit, &r), GGL_OK);
    assert_int_equal(r.n, 5);
    assert_true(reading(&r, "load1") == 0.5);
    assert_true(reading(&r, "load15") == 0.1);
    assert_true(reading(&r, "mem_total_bytes") == 1024000.0);
    assert_true(reading(&r, "mem_used_ratio") == 0.75);

    write_file(dir, "loadavg", "garbage\n");
    assert_int_equal(vt->sample(self, emit, &r), GGL_ERROR);
    assert_non_null(strstr(testhost_reason(), "unexpected format"));
    vt->close(self);
    char path[512];
    snprintf(path, sizeof path, "%s/loadavg", dir), unlink(path);
    snprintf(path, sizeof path, "%s/meminfo", dir), unlink(path);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_readings_from_proc_files)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
