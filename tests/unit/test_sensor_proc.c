/* sensor/proc against the test host: exact readings from a fake /proc written by the
 * test (CPU shares and host CPU between two samples), clear reasons for a missing or
 * malformed file, and readings from the real /proc checked against what the test reads
 * from /proc itself. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "testhost.h"

extern const struct ggl_plugin ggl_plugin_entry;

#define MAX_READINGS 32

struct readings {
    int n;
    char key[MAX_READINGS][32];
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

static int has(const struct readings *r, const char *key)
{
    for (int i = 0; i < r->n; i++)
        if (strcmp(r->key[i], key) == 0)
            return 1;
    return 0;
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

static void remove_file(const char *dir, const char *name)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    unlink(path);
}

/* self/stat with utime, stime (ticks), 7 threads and 100 resident pages. */
static void write_self_stat(const char *dir, unsigned utime, unsigned stime)
{
    char text[512];
    snprintf(text, sizeof text,
             "4242 (gang lion) S 1 4242 4242 0 -1 4194560 100 0 0 0 %u %u 0 0 20 0 7 0 "
             "12345 1000000 100 18446744073709551615\n", utime, stime);
    write_file(dir, "self/stat", text);
}

static void test_readings_from_proc_files(void **state)
{
    (void)state;
    char dir[] = "/tmp/ggl-test-proc-XXXXXX", self_dir[64];
    assert_non_null(mkdtemp(dir));
    snprintf(self_dir, sizeof self_dir, "%s/self", dir);
    assert_int_equal(mkdir(self_dir, 0700), 0);
    testhost_init(1000000);
    const struct ggl_sensor *vt = ggl_plugin_entry.vtable;
    const char *const pairs[] = {"proc_root", dir, NULL};
    void *self = testhost_open(&ggl_plugin_entry, pairs, GGL_OK);
    struct readings r = {0};

    assert_int_equal(vt->sample(self, emit, &r), GGL_RETRY);
    assert_non_null(strstr(testhost_reason(), "/loadavg"));

    write_file(dir, "loadavg", "0.50 0.25 0.10 1/100 4242\n");
    write_file(dir, "meminfo", "MemTotal:       1000 kB\nMemFree: 100 kB\nMemAvailable:    250 kB\n");
    write_file(dir, "stat", "cpu  100 0 50 800 50 0 0 0 0 0\ncpu0 100 0 50 800 50 0 0 0 0 0\n");
    write_self_stat(dir, 10, 5);
    assert_int_equal(vt->sample(self, emit, &r), GGL_OK);
    assert_true(reading(&r, "load1") == 0.5);
    assert_true(reading(&r, "load15") == 0.1);
    assert_true(reading(&r, "mem_total_bytes") == 1024000.0);
    assert_true(reading(&r, "mem_available_bytes") == 256000.0);
    assert_true(reading(&r, "mem_used_ratio") == 0.75);
    assert_true(reading(&r, "host_threads") == 7);
    assert_true(reading(&r, "host_rss_bytes") == 100.0 * (double)sysconf(_SC_PAGESIZE));
    assert_false(has(&r, "cpu_busy_ratio")); /* no previous sample yet */
    assert_false(has(&r, "host_cpu_ratio"));

    /* One second later: 200 more jiffies, 150 busy (100 user, 50 system), 50 idle; the
     * host used 0.5 s of CPU (50 ticks at 100 Hz). */
    memset(&r, 0, sizeof r);
    testhost_advance(1000);
    write_file(dir, "stat", "cpu  200 0 100 850 50 0 0 0 0 0\n");
    long hz = sysconf(_SC_CLK_TCK);
    write_self_stat(dir, 10 + (unsigned)(hz / 4), 5 + (unsigned)(hz / 4));
    assert_int_equal(vt->sample(self, emit, &r), GGL_OK);
    assert_true(reading(&r, "cpu_busy_ratio") == 0.75);
    assert_true(reading(&r, "cpu_user_ratio") == 0.5);
    assert_true(reading(&r, "cpu_system_ratio") == 0.25);
    assert_true(reading(&r, "cpu_iowait_ratio") == 0.0);
    assert_true(reading(&r, "host_cpu_ratio") > 0.49 && reading(&r, "host_cpu_ratio") < 0.51);

    write_file(dir, "loadavg", "garbage\n");
    assert_int_equal(vt->sample(self, emit, &r), GGL_ERROR);
    assert_non_null(strstr(testhost_reason(), "unexpected format"));
    write_file(dir, "loadavg", "0.50 0.25 0.10 1/100 4242\n");
    write_file(dir, "self/stat", "4242 (x) S 1\n");
    assert_int_equal(vt->sample(self, emit, &r), GGL_ERROR);
    assert_non_null(strstr(testhost_reason(), "self/stat: unexpected format"));
    vt->close(self);
    remove_file(dir, "self/stat");
    rmdir(self_dir);
    remove_file(dir, "loadavg"), remove_file(dir, "meminfo"), remove_file(dir, "stat");
    rmdir(dir);
}

static double proc_field(const char *file, const char *fmt)
{
    double v = -1;
    char line[256];
    FILE *f = fopen(file, "r");
    assert_non_null(f);
    while (fgets(line, sizeof line, f))
        if (sscanf(line, fmt, &v) == 1)
            break;
    fclose(f);
    return v;
}

static void test_readings_match_the_real_proc(void **state)
{
    (void)state;
    testhost_init(1000000);
    const struct ggl_sensor *vt = ggl_plugin_entry.vtable;
    void *self = testhost_open(&ggl_plugin_entry, NULL, GGL_OK);
    struct readings r = {0};
    double load_before = proc_field("/proc/loadavg", "%lf");
    assert_int_equal(vt->sample(self, emit, &r), GGL_OK);
    double load_after = proc_field("/proc/loadavg", "%lf");
    double load = reading(&r, "load1"); /* /proc/loadavg changes every 5 s */
    assert_true(load == load_before || load == load_after);
    assert_true(reading(&r, "mem_total_bytes") == proc_field("/proc/meminfo", "MemTotal: %lf kB") * 1024);
    double avail = proc_field("/proc/meminfo", "MemAvailable: %lf kB") * 1024;
    assert_true(reading(&r, "mem_available_bytes") > avail * 0.8 &&
                reading(&r, "mem_available_bytes") < avail * 1.25);
    double rss = proc_field("/proc/self/status", "VmRSS: %lf kB") * 1024;
    assert_true(reading(&r, "host_rss_bytes") > rss * 0.8 && reading(&r, "host_rss_bytes") < rss * 1.25);
    assert_true(reading(&r, "host_threads") == proc_field("/proc/self/status", "Threads: %lf"));
    /* The CPU counters move every jiffy: spin (bounded) until they did, so the second
     * sample has a difference to report. */
    char first[256], line[256] = "";
    FILE *f = fopen("/proc/stat", "r");
    assert_non_null(fgets(first, sizeof first, f));
    fclose(f);
    for (long i = 0; i < 10000000 && (!line[0] || strcmp(line, first) == 0); i++) {
        f = fopen("/proc/stat", "r");
        assert_non_null(fgets(line, sizeof line, f));
        fclose(f);
    }
    assert_string_not_equal(line, first);
    memset(&r, 0, sizeof r);
    testhost_advance(1000);
    assert_int_equal(vt->sample(self, emit, &r), GGL_OK);
    double busy = reading(&r, "cpu_busy_ratio");
    assert_true(busy >= 0 && busy <= 1);
    assert_true(reading(&r, "host_cpu_ratio") >= 0);
    vt->close(self);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_readings_from_proc_files),
                                       cmocka_unit_test(test_readings_match_the_real_proc)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
