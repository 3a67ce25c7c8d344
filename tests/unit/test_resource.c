/* Resource control: limits from config (file:line errors for bad entries), shedding
 * entered when a reading crosses its limit and left only with the recovery margin,
 * submissions refused by priority with the reason, pools held at their minimum, the
 * state pushed to health. */
#include "ggl-build.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "config.h"
#include "health.h"
#include "hostapi.h"
#include "resource.h"

static struct config *load(const char *text, struct conf_error *err)
{
    return config_load_string(text, "res.conf", err);
}

static void expect_config_error(const char *text, const char *want)
{
    struct conf_error err = {0};
    struct config *c = load(text, &err);
    assert_non_null(c);
    assert_int_equal(resource_check_config(c, &err), -1);
    if (!strstr(err.msg, want))
        fail_msg("error '%s' lacks '%s'", err.msg, want);
    config_free(c);
}

static void test_bad_entries_name_file_and_line(void **state)
{
    (void)state;
    expect_config_error("shed = ( { key = \"a\"; max = 1.0; },\n { key = \"b\"; } );\n",
                        "res.conf:2: 'shed' entry for b needs exactly one of 'max' and 'min'");
    expect_config_error("shed = ( { key = \"a\"; max = 1.0; min = 0.5; } );\n",
                        "res.conf:1: 'shed' entry for a needs exactly one");
    expect_config_error("shed = ( { max = 1.0; } );\n", "res.conf:1: 'shed' entry needs a 'key'");
    expect_config_error("shed = ( { key = \"a\"; max = 1.0; limit = 3; } );\n",
                        "unknown key 'limit'");
    expect_config_error("health = { shed_priority = \"urgent\"; };\n",
                        "res.conf:1: 'shed_priority' in health must be");
    expect_config_error("health = { recover_ratio = 0.2; };\n", "must be between 0.5 and 1");
    expect_config_error("shed = 5;\n", "'shed' must be a list");
}

static void start(const char *text)
{
    struct conf_error err = {0};
    struct config *c = load(text, &err);
    assert_non_null(c);
    health_reset();
    assert_int_equal(resource_init(c, &err), 0);
    config_free(c); /* rules are copied: nothing points into the config afterwards */
}

static enum health_state resources_health(char *reason, size_t len)
{
    struct health_entry e[HEALTH_MAX];
    size_t n = health_snapshot(e, HEALTH_MAX, NULL);
    for (size_t i = 0; i < n; i++)
        if (strcmp(e[i].name, "resources") == 0) {
            snprintf(reason, len, "%s", e[i].reason);
            return e[i].state;
        }
    fail_msg("no 'resources' health entry");
    return HEALTH_FAILED;
}

static void test_shedding_with_hysteresis(void **state)
{
    (void)state;
    start("health = { recover_ratio = 0.8; };\n"
          "shed = ( { key = \"proc.memory_used_pct\"; max = 90.0; },\n"
          "         { key = \"disk.ltm.free_mb\"; min = 100.0; } );\n");
    char why[256];
    resource_observe("unrelated.key", 1e9);
    resource_observe("proc.memory_used_pct", 90.0); /* at the limit: fine */
    assert_false(resource_shedding());
    assert_int_equal(resources_health(why, sizeof why), HEALTH_OK);

    resource_observe("proc.memory_used_pct", 95.5);
    assert_true(resource_shedding());
    assert_int_equal(resources_health(why, sizeof why), HEALTH_DEGRADED);
    assert_string_equal(why, "proc.memory_used_pct is 95.5, limit max 90");

    resource_observe("proc.memory_used_pct", 80.0); /* under the limit, not under 72 */
    assert_true(resource_shedding());
    resource_observe("proc.memory_used_pct", 71.0);
    assert_false(resource_shedding());
    assert_int_equal(resources_health(why, sizeof why), HEALTH_OK);

    resource_observe("disk.ltm.free_mb", 50.0); /* a lower limit */
    assert_true(resource_shedding());
    resource_observe("disk.ltm.free_mb", 110.0); /* needs 125 */
    assert_true(resource_shedding());
    resource_observe("disk.ltm.free_mb", 130.0);
    assert_false(resource_shedding());
    resource_fini();
}

static void test_admission_by_priority(void **state)
{
    (void)state;
    start("health = { shed_priority = \"normal\"; };\n"
          "shed = ( { key = \"proc.load1\"; max = 4.0; } );\n");
    assert_true(resource_admit(GGL_PRIO_LOW)); /* not shedding: everything goes */
    resource_observe("proc.load1", 9.0);
    assert_true(resource_admit(GGL_PRIO_CRITICAL));
    assert_true(resource_admit(GGL_PRIO_HIGH));
    hostapi_clear_reason();
    assert_false(resource_admit(GGL_PRIO_NORMAL));
    assert_string_equal(hostapi_take_reason(), "shedding load: proc.load1 is 9, limit max 4");
    assert_false(resource_admit(GGL_PRIO_LOW));
    resource_observe("proc.load1", 1.0);
    assert_true(resource_admit(GGL_PRIO_LOW));
    resource_fini();
}

static void test_no_rules_never_sheds(void **state)
{
    (void)state;
    start("");
    resource_observe("proc.memory_used_pct", 100.0);
    assert_false(resource_shedding());
    assert_true(resource_admit(GGL_PRIO_LOW));
    resource_fini();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_entries_name_file_and_line),
        cmocka_unit_test(test_shedding_with_hysteresis),
        cmocka_unit_test(test_admission_by_priority),
        cmocka_unit_test(test_no_rules_never_sheds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
