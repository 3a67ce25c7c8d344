/* Config tests: file:line on every kind of error, unknown keys listing the allowed
 * ones, type errors naming the type, slots naming undeclared instances, @include
 * resolved against the file's folder, and the table-driven section reader. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "config.h"

/* Parse text; assert failure and that the message contains `want`. */
static void assert_refused(const char *text, const char *want)
{
    struct conf_error err = {{0}};
    struct config *c = config_load_string(text, "t.conf", &err);
    if (c)
        fail_msg("accepted: %s", text);
    if (!strstr(err.msg, want))
        fail_msg("message \"%s\" lacks \"%s\"", err.msg, want);
}

static struct config *load_ok(const char *text)
{
    struct conf_error err = {{0}};
    struct config *c = config_load_string(text, "t.conf", &err);
    if (!c)
        fail_msg("refused: %s", err.msg);
    return c;
}

static void test_syntax_error_names_line(void **state)
{
    (void)state;
    assert_refused("log_level = \"info\";\nbackends = {\n  a = { plugin = \"mem\" }\n  b = ;\n};\n",
                   "t.conf:4: ");
}

static void test_unknown_top_key_lists_allowed(void **state)
{
    (void)state;
    assert_refused("log_level = \"info\";\n\nbakends = {};\n",
                   "t.conf:3: unknown key 'bakends' (allowed: plugin_dirs, log_level");
}

static void test_bad_log_level(void **state)
{
    (void)state;
    assert_refused("log_level = \"loud\";\n", "t.conf:1: log_level must be one of");
}

static void test_instance_needs_plugin(void **state)
{
    (void)state;
    assert_refused("backends = {\n  a = { max_entries = 3; };\n};\n",
                   "t.conf:2: tier 'a' needs plugin = \"<name>\";");
}

static void test_duplicate_instance_per_kind(void **state)
{
    (void)state;
    /* The same name in two kinds is fine; twice in one kind is not. */
    struct config *c = load_ok("processors = { x = { plugin = \"echo\"; }; };\n"
                               "executors = { x = { plugin = \"echo\"; }; };\n");
    assert_int_equal(c->n_instances, 2);
    assert_non_null(config_instance(c, GGL_KIND_PROCESSOR, "x"));
    assert_non_null(config_instance(c, GGL_KIND_EXECUTOR, "x"));
    assert_null(config_instance(c, GGL_KIND_TIER, "x"));
    config_free(c);
}

static void test_slot_must_name_backend(void **state)
{
    (void)state;
    assert_refused("backends = { m = { plugin = \"mem\"; }; };\n"
                   "tiers = {\n stm = \"m\";\n im = \"nope\";\n};\n",
                   "t.conf:4: tier slot 'im' names 'nope', which is not declared in backends");
    assert_refused("backends = { m = { plugin = \"mem\"; }; };\ntiers = { l2 = \"m\"; };\n",
                   "t.conf:2: unknown key 'l2' in tiers (allowed: cache, stm, im, ltm)");
}

static void test_slots_and_order(void **state)
{
    (void)state;
    struct config *c = load_ok("sensors = { s = { plugin = \"proc\"; interval_ms = 250; }; };\n"
                               "backends = { m = { plugin = \"mem\"; required = true; }; };\n"
                               "tiers = { stm = \"m\"; ltm = \"m\"; };\n");
    assert_string_equal(c->slots[SLOT_STM], "m");
    assert_string_equal(c->slots[SLOT_LTM], "m");
    assert_null(c->slots[SLOT_CACHE]);
    /* Backends open before sensors whatever the file order. */
    assert_int_equal(c->instances[0].kind, GGL_KIND_TIER);
    assert_true(c->instances[0].required);
    assert_int_equal(c->instances[1].kind, GGL_KIND_SENSOR);
    assert_int_equal(c->instances[1].interval_ms, 250);
    config_free(c);
}

static void test_interval_only_for_sensors(void **state)
{
    (void)state;
    assert_refused("backends = {\n m = { plugin = \"mem\"; interval_ms = 100; };\n};\n",
                   "t.conf:2: 'interval_ms' is for sensors only");
}

static const struct ggl_setting settings[] = {
    GGL_SETTING("max_entries", GGL_SETTING_INT, "10", "n"),
    GGL_SETTING("ratio", GGL_SETTING_FLOAT, "0.5", "r"),
    GGL_SETTING("path", GGL_SETTING_STRING, NULL, "p"),
    GGL_SETTINGS_END};

static void check_instance(const char *text, const char *want)
{
    struct config *c = load_ok(text);
    struct conf_error err = {{0}};
    int rc = config_check_instance(c, &c->instances[0], settings, &err);
    if (want) {
        assert_int_equal(rc, -1);
        if (!strstr(err.msg, want))
            fail_msg("message \"%s\" lacks \"%s\"", err.msg, want);
    } else {
        assert_int_equal(rc, 0);
    }
    config_free(c);
}

static void test_plugin_settings_checked(void **state)
{
    (void)state;
    check_instance("backends = {\n m = {\n plugin = \"mem\";\n max_entrie = 5;\n };\n};\n",
                   "t.conf:4: unknown key 'max_entrie' in tier 'm' (plugin tier/mem) "
                   "(allowed: plugin, required, max_entries, ratio, path)");
    check_instance("backends = {\n m = {\n plugin = \"mem\";\n max_entries = \"5\";\n };\n};\n",
                   "t.conf:4: 'max_entries' in tier 'm' (plugin tier/mem) must be an integer");
    check_instance("backends = { m = { plugin = \"mem\"; path = 3; }; };\n", "must be a string");
    /* An integer is a fine float. */
    check_instance("backends = { m = { plugin = \"mem\"; ratio = 1; max_entries = 7; }; };\n", NULL);
}

struct section {
    int64_t port;
    double ratio;
    int on;
    const char *path;
};

static const struct conf_key keys[] = {
    {"port", GGL_SETTING_INT, offsetof(struct section, port), "6379", 1, 65535, ""},
    {"ratio", GGL_SETTING_FLOAT, offsetof(struct section, ratio), "0.25", 0, 1, ""},
    {"on", GGL_SETTING_BOOL, offsetof(struct section, on), "true", 0, 0, ""},
    {"path", GGL_SETTING_STRING, offsetof(struct section, path), "/x", 0, 0, ""},
};

static void test_section_reader_defaults_and_values(void **state)
{
    (void)state;
    struct conf_error err;
    struct section s;
    struct config *c = load_ok("control = { port = 7000; path = \"/y\"; };\n");
    assert_int_equal(config_read_section(c, c->control, keys, 4, &s, &err), 0);
    assert_int_equal(s.port, 7000);
    assert_true(s.ratio > 0.24 && s.ratio < 0.26);
    assert_true(s.on);
    assert_string_equal(s.path, "/y");
    assert_int_equal(config_read_section(c, NULL, keys, 4, &s, &err), 0);
    assert_int_equal(s.port, 6379);
    config_free(c);
}

static void test_section_reader_range_and_unknown(void **state)
{
    (void)state;
    struct conf_error err = {{0}};
    struct section s;
    struct config *c = load_ok("control = {\n port = 70000;\n};\n");
    assert_int_equal(config_read_section(c, c->control, keys, 4, &s, &err), -1);
    assert_non_null(strstr(err.msg, "t.conf:2: 'port' in control must be between 1 and 65535"));
    config_free(c);
    c = load_ok("control = {\n\n prot = 1;\n};\n");
    assert_int_equal(config_read_section(c, c->control, keys, 4, &s, &err), -1);
    assert_non_null(strstr(err.msg, "t.conf:3: unknown key 'prot' in control (allowed: port, ratio, on, path)"));
    config_free(c);
}

static void test_include_resolves_against_file_folder(void **state)
{
    (void)state;
    struct conf_error err = {{0}};
    /* The loader is not run from tests/unit: @include must still find its file. */
    struct config *c = config_load(TEST_SRCDIR "/unit/include_main.conf", &err);
    if (!c)
        fail_msg("%s", err.msg);
    assert_non_null(config_instance(c, GGL_KIND_TIER, "included_mem"));
    config_free(c);
}

static void test_missing_file(void **state)
{
    (void)state;
    struct conf_error err = {{0}};
    assert_null(config_load("/nonexistent/ganglion.conf", &err));
    assert_non_null(strstr(err.msg, "/nonexistent/ganglion.conf: No such file"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_syntax_error_names_line),
        cmocka_unit_test(test_unknown_top_key_lists_allowed),
        cmocka_unit_test(test_bad_log_level),
        cmocka_unit_test(test_instance_needs_plugin),
        cmocka_unit_test(test_duplicate_instance_per_kind),
        cmocka_unit_test(test_slot_must_name_backend),
        cmocka_unit_test(test_slots_and_order),
        cmocka_unit_test(test_interval_only_for_sensors),
        cmocka_unit_test(test_plugin_settings_checked),
        cmocka_unit_test(test_section_reader_defaults_and_values),
        cmocka_unit_test(test_section_reader_range_and_unknown),
        cmocka_unit_test(test_include_resolves_against_file_folder),
        cmocka_unit_test(test_missing_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
