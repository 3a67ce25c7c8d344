/* The plugin probe with the real ganglion-probe helper: a plugin that segfaults in open
 * and one that loops forever there are refused with the signal or the timeout named;
 * each verdict is remembered by (path, mtime, size) until the file changes; with the
 * probe off the loader alone decides. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include <ganglion/ganglion.h>

#include "copyfile.h"
#include "loader.h"
#include "log.h"
#include "probe.h"

#define TIMEOUT_MS 1000 /* generous: a loaded sanitizer build starts the helper slowly */

static char tmpdir[256];

static void quiet(enum ggl_log_level level, const char *line, void *arg)
{
    (void)level, (void)line, (void)arg;
}

static int setup(void **state)
{
    (void)state;
    static const char *const dirs[] = {TEST_PLUGINDIR, BUILD_PLUGINDIR, NULL};
    char err[256];
    snprintf(tmpdir, sizeof tmpdir, "/tmp/ggl-test-probe-XXXXXX");
    if (!mkdtemp(tmpdir))
        return -1;
    setenv("TMPDIR", tmpdir, 1);
    log_set_sink(quiet, NULL);
    const struct probe_settings s = {1, TIMEOUT_MS};
    probe_enable(&s, PROBE_HELPER);
    return loader_init(dirs, err, sizeof err);
}

static int teardown(void **state)
{
    (void)state;
    loader_fini();
    probe_disable();
    log_set_sink(NULL, NULL);
    return rmdir(tmpdir); /* neither the loader nor a probe left anything behind */
}

static uint64_t now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000 + (uint64_t)t.tv_nsec / 1000000;
}

static void assert_has(const char *text, const char *part)
{
    if (!strstr(text, part))
        fail_msg("\"%s\" lacks \"%s\"", text, part);
}

static void test_good_plugin_passes_once(void **state)
{
    (void)state;
    char err[512];
    unsigned before = probe_spawned();
    assert_non_null(loader_load(GGL_KIND_TIER, "mem", err, sizeof err));
    assert_non_null(loader_load(GGL_KIND_TIER, "sqlite", err, sizeof err)); /* opens ltm.db: in the probe's scratch dir */
    assert_int_equal(probe_spawned(), before + 2);
    assert_int_equal(access("ltm.db", F_OK), -1);
}

static void test_crash_in_open_refused_and_remembered(void **state)
{
    (void)state;
    char err[512];
    unsigned before = probe_spawned();
    assert_null(loader_load(GGL_KIND_TIER, "crash_open", err, sizeof err));
    assert_has(err, "crash_open.so: probe: killed by signal 11 (Segmentation fault)");
    assert_null(loader_load(GGL_KIND_TIER, "crash_open", err, sizeof err));
    assert_has(err, "signal 11 (Segmentation fault) (remembered until the file changes)");
    assert_int_equal(probe_spawned(), before + 1);
}

static void test_hang_in_open_refused_in_time(void **state)
{
    (void)state;
    char err[512];
    uint64_t t0 = now_ms();
    assert_null(loader_load(GGL_KIND_TIER, "hang_open", err, sizeof err));
    uint64_t took = now_ms() - t0;
    assert_has(err, "hang_open.so: probe: no answer in 1000 ms (a hang in load or open?); killed");
    assert_true(took >= TIMEOUT_MS && took < TIMEOUT_MS + 2000);
}

static void test_changed_file_is_probed_again(void **state)
{
    (void)state;
    char path[300], err[512];
    snprintf(path, sizeof path, "%s/crash.so", tmpdir);
    copy_file(TEST_PLUGINDIR "/tier/.libs/crash_open.so", path);
    unsigned before = probe_spawned();
    assert_null(loader_load_file(path, GGL_KIND_TIER, err, sizeof err));
    assert_null(loader_load_file(path, GGL_KIND_TIER, err, sizeof err));
    assert_int_equal(probe_spawned(), before + 1);
    struct timespec later[2] = {{0, UTIME_OMIT}, {time(NULL) + 60, 0}}; /* a new mtime */
    assert_int_equal(utimensat(AT_FDCWD, path, later, 0), 0);
    assert_null(loader_load_file(path, GGL_KIND_TIER, err, sizeof err));
    assert_int_equal(probe_spawned(), before + 2);
    copy_file(BUILD_PLUGINDIR "/tier/.libs/mem.so", path); /* replaced by a good one */
    assert_non_null(loader_load_file(path, GGL_KIND_TIER, err, sizeof err));
    assert_int_equal(probe_spawned(), before + 3);
    unlink(path);
}

static void test_bad_descriptor_refused_by_probe(void **state)
{
    (void)state;
    char err[512];
    assert_null(loader_load(GGL_KIND_TIER, "bad_major", err, sizeof err));
    assert_has(err, "probe: refused ");
    char want[64];
    snprintf(want, sizeof want, "built for ABI 2.x, host is %d.%d", GGL_ABI_MAJOR, GGL_ABI_MINOR);
    assert_has(err, want);
}

static void test_probe_off_loader_alone(void **state)
{
    (void)state;
    char err[512];
    probe_disable();
    unsigned before = probe_spawned();
    /* Its descriptor is fine: only the probe's trial open finds the crash. */
    assert_non_null(loader_load(GGL_KIND_TIER, "crash_open", err, sizeof err));
    assert_int_equal(probe_spawned(), before);
}

static void test_plugins_section(void **state)
{
    (void)state;
    struct conf_error err;
    struct probe_settings s;
    struct config *c = config_load_string("log_level = \"warn\";\n", "a.conf", &err);
    assert_non_null(c);
    assert_int_equal(probe_read_config(c, &s, &err), 0);
    assert_int_equal(s.enabled, 1); /* on by default */
    assert_int_equal(s.timeout_ms, 2000);
    config_free(c);
    c = config_load_string("plugins = { probe = false;\n probe_timeout = 5; };\n", "b.conf", &err);
    assert_non_null(c);
    assert_int_equal(probe_read_config(c, &s, &err), -1);
    assert_has(err.msg, "b.conf:2: unknown key 'probe_timeout' in plugins");
    config_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_good_plugin_passes_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_crash_in_open_refused_and_remembered, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hang_in_open_refused_in_time, setup, teardown),
        cmocka_unit_test_setup_teardown(test_changed_file_is_probed_again, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_descriptor_refused_by_probe, setup, teardown),
        cmocka_unit_test_setup_teardown(test_probe_off_loader_alone, setup, teardown),
        cmocka_unit_test(test_plugins_section),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
