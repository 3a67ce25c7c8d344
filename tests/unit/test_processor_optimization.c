/* processor/optimization: exact answers checked against brute-force enumeration on
 * seeded random instances, the greedy fallback's half-optimum bound, edge cases and
 * malformed payloads answered GGL_INVALID with a reason. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "processor_check.h"

extern const struct ggl_plugin ggl_plugin_entry;

#define INSTANCES 300
#define MAX_N 14

struct instance {
    size_t n;
    long cap, weight[MAX_N], value[MAX_N];
};

static void random_instance(uint64_t *seed, struct instance *in)
{
    in->n = check_below(seed, MAX_N + 1);
    in->cap = (long)check_below(seed, 60);
    for (size_t i = 0; i < in->n; i++) {
        in->weight[i] = (long)check_below(seed, 25);
        in->value[i] = (long)check_below(seed, 100);
    }
}

static json_t *instance_json(const struct instance *in)
{
    json_t *items = json_array();
    for (size_t i = 0; i < in->n; i++)
        json_array_append_new(items, json_pack("{s:i, s:i, s:i}", "weight", (int)in->weight[i],
                                               "value", (int)in->value[i], "id", (int)(100 + i)));
    return json_pack("{s:i, s:o}", "capacity", (int)in->cap, "items", items);
}

/* Best value over every subset. */
static long brute_force(const struct instance *in)
{
    long best = 0;
    for (uint32_t mask = 0; mask < (1u << in->n); mask++) {
        long w = 0, v = 0;
        for (size_t i = 0; i < in->n; i++)
            if (mask & (1u << i))
                w += in->weight[i], v += in->value[i];
        if (w <= in->cap && v > best)
            best = v;
    }
    return best;
}

/* The chosen items exist, fit, and add up to the reported value and weight. */
static long check_choice(const struct instance *in, const json_t *res)
{
    long w = 0, v = 0, last = -1;
    size_t i;
    json_t *x;
    json_array_foreach(json_object_get(res, "items"), i, x) {
        long k = (long)json_integer_value(x);
        assert_true(k > last && k < (long)in->n);
        assert_int_equal(json_integer_value(json_array_get(json_object_get(res, "ids"), i)), 100 + k);
        w += in->weight[k], v += in->value[k], last = k;
    }
    assert_true(w <= in->cap);
    assert_int_equal(w, json_integer_value(json_object_get(res, "weight")));
    assert_true(json_number_value(json_object_get(res, "value")) == (double)v);
    return v;
}

static void run_instances(const char *const *pairs, int exact)
{
    testhost_init(0);
    void *self = testhost_open(&ggl_plugin_entry, pairs, GGL_OK);
    uint64_t seed = exact ? 42 : 4242;
    for (int k = 0; k < INSTANCES; k++) {
        struct instance in;
        random_instance(&seed, &in);
        json_t *res = check_run_json(self, instance_json(&in), GGL_OK);
        long got = check_choice(&in, res), best = brute_force(&in);
        const char *method = json_string_value(json_object_get(res, "method"));
        if (exact || in.n == 0) {
            assert_string_equal(method, "dp");
            assert_int_equal(got, best);
        } else {
            assert_string_equal(method, "greedy");
            assert_true(json_is_false(json_object_get(res, "optimal")));
            assert_true(2 * got >= best && got <= best);
        }
        json_decref(res);
    }
    ((const struct ggl_processor *)ggl_plugin_entry.vtable)->close(self);
}

static void test_dp_matches_brute_force(void **state)
{
    (void)state;
    run_instances(NULL, 1);
}

static void test_greedy_within_half_of_optimum(void **state)
{
    (void)state;
    static const char *const pairs[] = {"dp_limit", "0", NULL};
    run_instances(pairs, 0);
}

static void test_edge_cases(void **state)
{
    (void)state;
    testhost_init(0);
    void *self = testhost_open(&ggl_plugin_entry, NULL, GGL_OK);
    json_t *r = check_run(self, "{\"capacity\": 10, \"items\": []}", GGL_OK);
    assert_int_equal(json_array_size(json_object_get(r, "items")), 0);
    json_decref(r);
    r = check_run(self, "{\"capacity\": 10}", GGL_OK);
    assert_true(json_number_value(json_object_get(r, "value")) == 0);
    json_decref(r);
    /* Zero budget: only weightless items fit. */
    r = check_run(self, "{\"capacity\": 0, \"items\": [{\"weight\": 1, \"value\": 9},"
                        " {\"weight\": 0, \"value\": 2}]}", GGL_OK);
    assert_int_equal(json_integer_value(json_array_get(json_object_get(r, "items"), 0)), 1);
    assert_int_equal(json_array_size(json_object_get(r, "items")), 1);
    json_decref(r);
    /* A huge budget with light items still takes the exact path (width = total weight). */
    r = check_run(self, "{\"capacity\": 9000000000000, \"items\": [{\"weight\": 3, \"value\": 1.5},"
                        " {\"weight\": 4, \"value\": 2}]}", GGL_OK);
    assert_string_equal(json_string_value(json_object_get(r, "method")), "dp");
    assert_true(json_number_value(json_object_get(r, "value")) == 3.5);
    json_decref(r);
    ((const struct ggl_processor *)ggl_plugin_entry.vtable)->close(self);
}

static void test_malformed_payloads_are_invalid(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "", "[]", "{", "nul", "{\"items\": []}", "{\"capacity\": -1, \"items\": []}",
        "{\"capacity\": 1.5}", "{\"capacity\": 3, \"items\": {}}",
        "{\"capacity\": 3, \"items\": [1]}", "{\"capacity\": 3, \"items\": [{\"weight\": 1}]}",
        "{\"capacity\": 3, \"items\": [{\"weight\": -1, \"value\": 1}]}",
        "{\"capacity\": 3, \"items\": [{\"weight\": 1, \"value\": \"x\"}]}",
        "{\"capacity\": 3, \"items\": [{\"weight\": 1, \"value\": 1e200}]}",
        "{\"capacity\": 3, \"capacity\": 4}", "{\"capacity\": 3, \"items\": [{\"weight\": 1, \"value\": 1}, {}]}",
    };
    static const char *const pairs[] = {"max_payload", "64", NULL};
    testhost_init(0);
    void *self = testhost_open(&ggl_plugin_entry, pairs, GGL_OK);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_null(check_run(self, bad[i], GGL_INVALID));
    assert_null(check_run(self, "{\"capacity\": 3, \"items\": [], \"pad\": \"..........................................\"}",
                          GGL_INVALID));
    ((const struct ggl_processor *)ggl_plugin_entry.vtable)->close(self);
}

static void test_task_type_setting(void **state)
{
    (void)state;
    static const char *const pairs[] = {"task_type", "knapsack", NULL};
    testhost_init(0);
    const struct ggl_processor *vt = ggl_plugin_entry.vtable;
    void *self = testhost_open(&ggl_plugin_entry, NULL, GGL_OK);
    assert_string_equal(vt->task_types(self)[0], "optimization");
    assert_null(vt->task_types(self)[1]);
    vt->close(self);
    self = testhost_open(&ggl_plugin_entry, pairs, GGL_OK);
    assert_string_equal(vt->task_types(self)[0], "knapsack");
    vt->close(self);
}

static void test_concurrent_tasks_agree(void **state)
{
    (void)state;
    testhost_init(0);
    void *self = testhost_open(&ggl_plugin_entry, NULL, GGL_OK);
    check_concurrent(self, "{\"capacity\": 50, \"items\": [{\"weight\": 10, \"value\": 60}, "
                           "{\"weight\": 20, \"value\": 100}, {\"weight\": 30, \"value\": 120}]}");
    ((const struct ggl_processor *)ggl_plugin_entry.vtable)->close(self);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dp_matches_brute_force),
        cmocka_unit_test(test_greedy_within_half_of_optimum),
        cmocka_unit_test(test_edge_cases),
        cmocka_unit_test(test_malformed_payloads_are_invalid),
        cmocka_unit_test(test_task_type_setting),
        cmocka_unit_test(test_concurrent_tasks_agree),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
