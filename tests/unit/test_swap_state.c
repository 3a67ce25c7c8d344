/* The swap state file's merge rule (swap_state.c): a recorded swap keeps its binding
 * while the config's tiers line for the slot is unchanged, is dropped once that line
 * changes or the instance is gone; the file is rewritten whole on every record. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "config.h"
#include "swap.h"

static char dir[64], path[128];

static struct config *conf(const char *stm)
{
    char text[1024];
    struct conf_error err;
    snprintf(text, sizeof text,
             "swap = { state_file = \"%s\"; drain_deadline_ms = 100; };\n"
             "backends = { a = { plugin = \"mem\"; }; b = { plugin = \"mem\"; };"
             " c = { plugin = \"mem\"; }; };\ntiers = { stm = \"%s\"; };\n", path, stm);
    struct config *c = config_load_string(text, "t.conf", &err);
    if (!c)
        fail_msg("%s", err.msg);
    return c;
}

static const char *wanted(struct config *c)
{
    static char buf[128];
    return swap_state_wanted(c, SLOT_STM, buf, sizeof buf);
}

static void load(struct config *c)
{
    struct swap_conf sc;
    struct conf_error err;
    assert_int_equal(swap_read_config(c, &sc, &err), 0);
    assert_int_equal(sc.drain_deadline_ms, 100);
    swap_state_load(c, &sc);
}

static void test_record_survives_an_unchanged_line(void **state)
{
    (void)state;
    struct config *c = conf("a");
    load(c);
    assert_string_equal(wanted(c), "a"); /* nothing recorded: the config's */
    assert_int_equal(swap_state_record(SLOT_STM, "a", "b"), 0);
    FILE *f = fopen(path, "r");
    char line[128];
    assert_non_null(f);
    assert_non_null(fgets(line, sizeof line, f));
    fclose(f);
    assert_string_equal(line, "stm a b\n");
    struct config *again = conf("a"); /* a restart or reload with the same line */
    load(again);
    assert_string_equal(wanted(again), "b");
    config_free(again);
    config_free(c);
}

static void test_changed_line_wins_and_drops_the_record(void **state)
{
    (void)state;
    struct config *c = conf("a");
    load(c);
    assert_int_equal(swap_state_record(SLOT_STM, "a", "b"), 0);
    struct config *changed = conf("c");
    assert_string_equal(wanted(changed), "c");
    struct config *back = conf("a"); /* the record is gone, not merely ignored */
    load(back);
    assert_string_equal(wanted(back), "a");
    config_free(back);
    config_free(changed);
    config_free(c);
}

static void test_unknown_key_in_swap_section_is_an_error(void **state)
{
    (void)state;
    struct conf_error err;
    struct config *c = config_load_string("swap = { drain_ms = 1; };\n", "t.conf", &err);
    assert_non_null(c);
    struct swap_conf sc;
    assert_int_equal(swap_read_config(c, &sc, &err), -1);
    assert_non_null(strstr(err.msg, "t.conf:1: "));
    assert_non_null(strstr(err.msg, "drain_ms"));
    config_free(c);
}

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/ggl-swapstate-XXXXXX");
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/state", dir);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    unlink(path);
    rmdir(dir);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_record_survives_an_unchanged_line, setup, teardown),
        cmocka_unit_test_setup_teardown(test_changed_line_wins_and_drops_the_record, setup, teardown),
        cmocka_unit_test(test_unknown_key_in_swap_section_is_an_error),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
