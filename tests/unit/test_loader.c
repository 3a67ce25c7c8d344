/* Loader and instance tests: good plugins load, each broken plugin is refused with one
 * log line naming file, plugin and versions, a newer plugin's appended slot is
 * accepted, copies are private, and `required` decides whether a failure is fatal. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include <ganglion/ganglion.h>

#include "copyfile.h"
#include "instance.h"
#include "loader.h"
#include "log.h"

static char tmpdir[256];
static char lines[16][512];
static int nlines;

static void capture(enum ggl_log_level level, const char *line, void *arg)
{
    (void)arg;
    if (level <= GGL_LOG_WARN && nlines < 16)
        snprintf(lines[nlines++], sizeof lines[0], "%s", line);
}

static int setup(void **state)
{
    (void)state;
    static const char *const dirs[] = {TEST_PLUGINDIR, BUILD_PLUGINDIR, NULL};
    char err[256];
    snprintf(tmpdir, sizeof tmpdir, "/tmp/ggl-test-loader-XXXXXX");
    if (!mkdtemp(tmpdir))
        return -1;
    setenv("TMPDIR", tmpdir, 1);
    nlines = 0;
    log_set_sink(capture, NULL);
    return loader_init(dirs, err, sizeof err);
}

static int teardown(void **state)
{
    (void)state;
    loader_fini();
    log_set_sink(NULL, NULL);
    return rmdir(tmpdir); /* fails if the loader left its private directory behind */
}

static void test_good_plugins_load(void **state)
{
    (void)state;
    char err[512];
    static const struct {
        enum ggl_kind kind;
        const char *name;
    } good[] = {{GGL_KIND_TIER, "mem"}, {GGL_KIND_PROCESSOR, "echo"},
                {GGL_KIND_EXECUTOR, "echo"}, {GGL_KIND_SENSOR, "proc"}};
    for (size_t i = 0; i < 4; i++) {
        struct module *m = loader_load(good[i].kind, good[i].name, err, sizeof err);
        if (!m)
            fail_msg("%s", err);
        assert_int_equal(m->kind, good[i].kind);
        assert_string_equal(m->name, good[i].name);
        /* Asking again returns the same module, not a second load. */
        assert_ptr_equal(loader_load(good[i].kind, good[i].name, err, sizeof err), m);
    }
    assert_int_equal(nlines, 0);
}

/* Load (kind, name); assert refusal, one logged line, and that it names the file,
 * the plugin and carries `why`. */
static void assert_refused(enum ggl_kind kind, const char *name, const char *why)
{
    char err[512], file[128];
    nlines = 0;
    assert_null(loader_load(kind, name, err, sizeof err));
    assert_int_equal(nlines, 1);
    assert_string_equal(lines[0], err);
    snprintf(file, sizeof file, "/%s/.libs/%s.so: ", ggl_kind_str(kind), name);
    if (!strstr(err, file) || !strstr(err, why))
        fail_msg("\"%s\" lacks \"%s\" or \"%s\"", err, file, why);
}

static void test_other_major_refused(void **state)
{
    (void)state;
    assert_refused(GGL_KIND_TIER, "bad_major",
                   "plugin 'bad_major' version 6.6.6: built for ABI 2.x, host is 1.4");
}

static void test_minor_too_new_refused(void **state)
{
    (void)state;
    assert_refused(GGL_KIND_TIER, "bad_minor",
                   "plugin 'bad_minor' version 6.6.6: needs host ABI 1.99 or newer, host is 1.4");
}

static void test_missing_slot_refused(void **state)
{
    (void)state;
    assert_refused(GGL_KIND_TIER, "bad_slot", "mandatory tier slot 'del' is NULL");
}

static void test_small_vtable_refused(void **state)
{
    (void)state;
    assert_refused(GGL_KIND_TIER, "bad_size", "tier vtable size 24 too small (ABI 1.0 needs 48)");
}

static void test_kind_must_match_directory(void **state)
{
    (void)state;
    assert_refused(GGL_KIND_PROCESSOR, "bad_kind",
                   "declares kind 'tier' but lives in the 'processor' directory");
}

static void test_appended_slot_accepted(void **state)
{
    (void)state;
    char err[512];
    struct module *m = loader_load(GGL_KIND_TIER, "newer_slot", err, sizeof err);
    if (!m)
        fail_msg("%s", err);
    assert_true(*(const uint32_t *)m->desc->vtable > sizeof(struct ggl_tier));
}

static void test_not_found_and_bad_names(void **state)
{
    (void)state;
    char err[512];
    assert_null(loader_load(GGL_KIND_TIER, "nosuch", err, sizeof err));
    assert_string_equal(err, "plugin tier/nosuch not found in any plugin directory");
    assert_null(loader_load(GGL_KIND_TIER, "../tier/mem", err, sizeof err));
    assert_non_null(strstr(err, "must not contain"));
}

static void test_descriptor_checks(void **state)
{
    (void)state;
    char why[256];
    static const struct ggl_tier vt = {.size = 8};
    struct ggl_plugin d = {sizeof d, GGL_ABI_MAJOR, 0, 9, "x", "1", "", NULL, &vt};
    assert_int_equal(loader_check(&d, 0, why, sizeof why), -1);
    assert_string_equal(why, "unknown kind 9");
    d.kind = GGL_KIND_TIER;
    d.size = 16;
    assert_int_equal(loader_check(&d, 0, why, sizeof why), -1);
    assert_non_null(strstr(why, "descriptor size 16 too small"));
    static const struct ggl_setting bad_setting[] = {{sizeof(struct ggl_setting), "k", 42, NULL, NULL},
                                                     GGL_SETTINGS_END};
    static const struct ggl_tier full = {.size = sizeof full, .open = (void *)1, .close = (void *)1,
                                         .get = (void *)1, .put = (void *)1, .del = (void *)1};
    d = (struct ggl_plugin){sizeof d, GGL_ABI_MAJOR, 0, GGL_KIND_TIER, "x", "1", "", bad_setting, &full};
    assert_int_equal(loader_check(&d, GGL_KIND_TIER, why, sizeof why), -1);
    assert_string_equal(why, "setting 'k' malformed (size 40, type 42)");
    d.settings = NULL;
    assert_int_equal(loader_check(&d, GGL_KIND_TIER, why, sizeof why), 0);
}

/* Each load is a private copy: the same file twice gives two handles (dlopen alone
 * would hand back the first), and nothing is left in the private directory. */
static void test_loads_are_private_copies(void **state)
{
    (void)state;
    char err[512], path[512];
    snprintf(path, sizeof path, "%s/tier/.libs/mem.so", BUILD_PLUGINDIR);
    struct module *a = loader_load_file(path, GGL_KIND_TIER, err, sizeof err);
    struct module *b = loader_load_file(path, GGL_KIND_TIER, err, sizeof err);
    assert_non_null(a);
    assert_non_null(b);
    assert_ptr_not_equal(a->handle, b->handle);
    assert_ptr_not_equal(a->desc, b->desc);

    DIR *d = opendir(tmpdir);
    struct dirent *e;
    int privates = 0;
    while ((e = readdir(d))) {
        if (strncmp(e->d_name, "ganglion-", 9) != 0)
            continue;
        char sub[600];
        struct stat st;
        snprintf(sub, sizeof sub, "%s/%s", tmpdir, e->d_name);
        assert_int_equal(stat(sub, &st), 0);
        assert_int_equal(st.st_mode & 0777, 0700);
        DIR *inner = opendir(sub);
        int files = 0;
        for (struct dirent *f; (f = readdir(inner));)
            files += f->d_name[0] != '.';
        closedir(inner);
        assert_int_equal(files, 0);
        privates++;
    }
    closedir(d);
    assert_int_equal(privates, 1);
}

static struct config *load_conf(const char *text)
{
    struct conf_error err;
    struct config *c = config_load_string(text, "t.conf", &err);
    if (!c)
        fail_msg("%s", err.msg);
    return c;
}

static void test_refused_optional_instance_does_not_stop_host(void **state)
{
    (void)state;
    struct config *c = load_conf("backends = {\n  good = { plugin = \"mem\"; max_entries = 5; };\n"
                                 "  old = { plugin = \"bad_major\"; };\n"
                                 "  broken = { plugin = \"bad_init\"; };\n};\n");
    struct instance *v;
    size_t n;
    struct conf_error err;
    assert_int_equal(instances_open(c, &v, &n, &err), 0);
    assert_int_equal(n, 3);
    assert_int_equal(v[0].state, INSTANCE_OPEN);
    assert_string_equal(v[0].label, "tier/mem[good]");
    assert_int_equal(v[1].state, INSTANCE_REFUSED);
    assert_non_null(strstr(v[1].reason, "built for ABI 2.x"));
    assert_int_equal(v[2].state, INSTANCE_FAILED);
    assert_string_equal(v[2].reason, "open failed: ERROR: deliberately failing open");
    instances_close(v, n);
    config_free(c);
}

static void test_required_failure_stops_host(void **state)
{
    (void)state;
    struct config *c = load_conf("backends = { broken = { plugin = \"bad_init\"; required = true; }; };\n");
    struct instance *v;
    size_t n;
    struct conf_error err;
    assert_int_equal(instances_open(c, &v, &n, &err), -1);
    assert_string_equal(err.msg, "tier/bad_init[broken]: open failed: ERROR: deliberately failing open (required)");
    instances_close(v, n);
    assert_int_equal(instances_check(c, &err), 0); /* it loads; only open fails */
    config_free(c);

    c = load_conf("backends = { old = { plugin = \"bad_minor\"; required = true; }; };\n");
    assert_int_equal(instances_check(c, &err), -1);
    assert_non_null(strstr(err.msg, "needs host ABI 1.99"));
    config_free(c);
}

static void test_config_error_in_instance_is_fatal(void **state)
{
    (void)state;
    struct config *c = load_conf("backends = {\n m = {\n plugin = \"mem\";\n max_entris = 1;\n };\n};\n");
    struct instance *v;
    size_t n;
    struct conf_error err;
    assert_int_equal(instances_check(c, &err), -1);
    assert_non_null(strstr(err.msg, "t.conf:4: unknown key 'max_entris'"));
    assert_int_equal(instances_open(c, &v, &n, &err), -1);
    instances_close(v, n);
    config_free(c);
}

/* A copy of the mem plugin in a directory of its own; its path in out. */
static void copy_plugin(char *dir, size_t dlen, char *out, size_t olen)
{
    snprintf(dir, dlen, "%s/trust-XXXXXX", tmpdir);
    assert_non_null(mkdtemp(dir));
    snprintf(out, olen, "%s/mem.so", dir);
    copy_file(BUILD_PLUGINDIR "/tier/.libs/mem.so", out);
}

static void assert_untrusted(const char *path, const char *why)
{
    char err[512];
    nlines = 0;
    assert_null(loader_load_file(path, GGL_KIND_TIER, err, sizeof err));
    assert_int_equal(nlines, 1); /* one line, naming the file and why */
    if (!strstr(lines[0], path) || !strstr(lines[0], why))
        fail_msg("\"%s\" lacks \"%s\" or \"%s\"", lines[0], path, why);
}

/* The tests run as root: the refusals come from the mode and owner bits alone. */
static void test_writable_or_foreign_files_refused(void **state)
{
    (void)state;
    char dir[300], path[320], err[512];
    copy_plugin(dir, sizeof dir, path, sizeof path);
    assert_non_null(loader_load_file(path, GGL_KIND_TIER, err, sizeof err));
    chmod(path, 0757);
    assert_untrusted(path, "the file is world-writable");
    chmod(path, 0755);
    chmod(dir, 0777);
    assert_untrusted(path, "is world-writable");
    assert_non_null(strstr(lines[0], "its directory"));
    chmod(dir, 0700);
    assert_int_equal(chown(path, 12345, 12345), 0);
    assert_untrusted(path, "the file is owned by uid 12345, not root or the host's user");
    assert_int_equal(chown(path, geteuid(), getegid()), 0);
    assert_non_null(loader_load_file(path, GGL_KIND_TIER, err, sizeof err));
    unlink(path);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_good_plugins_load, setup, teardown),
        cmocka_unit_test_setup_teardown(test_other_major_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_minor_too_new_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_slot_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_small_vtable_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kind_must_match_directory, setup, teardown),
        cmocka_unit_test_setup_teardown(test_appended_slot_accepted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_not_found_and_bad_names, setup, teardown),
        cmocka_unit_test(test_descriptor_checks),
        cmocka_unit_test_setup_teardown(test_loads_are_private_copies, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refused_optional_instance_does_not_stop_host, setup, teardown),
        cmocka_unit_test_setup_teardown(test_required_failure_stops_host, setup, teardown),
        cmocka_unit_test_setup_teardown(test_config_error_in_instance_is_fatal, setup, teardown),
        cmocka_unit_test_setup_teardown(test_writable_or_foreign_files_refused, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
