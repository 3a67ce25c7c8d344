/* Unit tests for the `engine` config section (host/engine_conf.c): defaults, values and
 * weights read, the pools plan's workers and seed weights, and FILE:LINE errors for an
 * unknown key, a bad weights list and contradictory bounds. */
#include "ggl-build.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "config.h"
#include "engine_conf.h"

static struct config *load(const char *text)
{
    struct conf_error err = {{0}};
    struct config *c = config_load_string(text, "t.conf", &err);
    if (!c)
        fail_msg("refused: %s", err.msg);
    return c;
}

/* The section is refused with a message containing `want`. */
static void assert_refused(const char *text, const char *want)
{
    struct config *c = load(text);
    struct engine_config ec;
    struct conf_error err = {{0}};
    assert_int_equal(engine_read_config(c, NULL, &ec, NULL, &err), -1);
    if (!strstr(err.msg, want))
        fail_msg("message \"%s\" lacks \"%s\"", err.msg, want);
    config_free(c);
}

static unsigned weight_of(const struct engine_config *ec, const char *type)
{
    for (size_t i = 0; i < ec->n_weights; i++)
        if (strcmp(ec->weights[i].type, type) == 0)
            return ec->weights[i].weight;
    return 0;
}

static void test_defaults_without_a_section(void **state)
{
    (void)state;
    struct engine_config ec;
    struct conf_error err = {{0}};
    uint64_t drain = 0;
    assert_int_equal(engine_read_config(NULL, NULL, &ec, &drain, &err), 0);
    assert_int_equal(ec.queue_capacity, 4096);
    assert_int_equal(ec.max_results, 65536);
    assert_int_equal(ec.result_ttl_ms, 300000);
    assert_int_equal(ec.max_retries, 3);
    assert_int_equal(ec.backoff.base_ms, 100);
    assert_int_equal(drain, 5000);
    assert_int_equal(ec.evict_results, 1);
    assert_int_equal(ec.n_weights, 0);
}

static void test_values_weights_and_the_pools_plan(void **state)
{
    (void)state;
    struct config *c = load("engine = { queue_capacity = 10; critical_reserve = 2; max_retries = 5;\n"
                            "  backoff_base_ms = 7; backoff_max_ms = 70; result_ttl_ms = 1234;\n"
                            "  weights = \"exec:9, reasoning:3\"; result_evict = false; };\n");
    struct sizing s = {0};
    s.pool[POOL_PROCESSING].size = 2;
    s.pool[POOL_PROCESSING].max = 6;
    for (int t = 0; t < PROC_TYPES; t++)
        s.weight[t] = 5;
    struct engine_config ec;
    struct conf_error err = {{0}};
    assert_int_equal(engine_read_config(c, &s, &ec, NULL, &err), 0);
    assert_int_equal(ec.queue_capacity, 10);
    assert_int_equal(ec.critical_reserve, 2);
    assert_int_equal(ec.max_retries, 5);
    assert_int_equal(ec.backoff.max_ms, 70);
    assert_int_equal(ec.result_ttl_ms, 1234);
    assert_int_equal(ec.evict_results, 0);
    assert_int_equal(ec.min_workers, 2);
    assert_int_equal(ec.max_workers, 6);
    assert_int_equal(weight_of(&ec, "planning"), 5); /* from the plan */
    assert_int_equal(weight_of(&ec, "reasoning"), 3); /* overridden */
    assert_int_equal(weight_of(&ec, "exec"), 9);
    assert_int_equal(ec.n_weights, 5);
    config_free(c);
}

static void test_unknown_key_names_file_and_line(void **state)
{
    (void)state;
    assert_refused("engine = {\n  queue_capacity = 5;\n  queue_capacty = 5;\n};\n",
                   "t.conf:3: unknown key 'queue_capacty' in engine");
}

static void test_bad_weights_are_refused(void **state)
{
    (void)state;
    assert_refused("engine = {\n weights = \"exec\";\n};\n", "t.conf:2: engine.weights");
    assert_refused("engine = { weights = \"exec:0\"; };\n", "engine.weights");
    assert_refused("engine = { weights = \"exec:2x\"; };\n", "engine.weights");
    assert_refused("engine = { weights = \":3\"; };\n", "engine.weights");
}

static void test_contradictory_bounds_are_refused(void **state)
{
    (void)state;
    assert_refused("engine = { queue_capacity = 4; critical_reserve = 4; };\n", "critical_reserve");
    assert_refused("engine = { backoff_base_ms = 10; backoff_max_ms = 5; };\n", "backoff_max_ms");
    assert_refused("engine = { max_retries = 101; };\n", "'max_retries' in engine must be between");
    assert_refused("engine = { max_retries = \"3\"; };\n", "'max_retries' in engine must be");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults_without_a_section),
        cmocka_unit_test(test_values_weights_and_the_pools_plan),
        cmocka_unit_test(test_unknown_key_names_file_and_line),
        cmocka_unit_test(test_bad_weights_are_refused),
        cmocka_unit_test(test_contradictory_bounds_are_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
