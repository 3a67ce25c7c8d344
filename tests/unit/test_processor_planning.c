/* processor/planning: plan costs checked against Floyd-Warshall on seeded random graphs
 * (with and without coordinates, directed and not), plan validity, the heuristic
 * saving expansions, graphs from memory, step submission (also when the service is
 * UNAVAILABLE), edge cases and malformed payloads. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "processor_check.h"

extern const struct ggl_plugin ggl_plugin_entry;

#define INSTANCES 400
#define MAX_N 10
#define MAX_M 40

struct instance {
    int n, m, undirected, with_coords, start, goal;
    int from[MAX_M], to[MAX_M];
    double cost[MAX_M], x[MAX_N], y[MAX_N];
};

static const struct ggl_processor *vt(void) { return ggl_plugin_entry.vtable; }

static json_t *name(int v)
{
    char text[16];
    snprintf(text, sizeof text, "s%d", v);
    return json_string(text);
}

static void random_instance(uint64_t *seed, struct instance *in)
{
    in->n = 1 + (int)check_below(seed, MAX_N);
    in->m = (int)check_below(seed, (uint64_t)(3 * in->n + 1));
    in->undirected = (int)check_below(seed, 2);
    in->with_coords = (int)check_below(seed, 3); /* 0: none, 1: costs >= length, 2: any */
    in->start = (int)check_below(seed, (uint64_t)in->n);
    in->goal = (int)check_below(seed, (uint64_t)in->n);
    for (int v = 0; v < in->n; v++)
        in->x[v] = 100 * check_unit(seed), in->y[v] = 100 * check_unit(seed);
    for (int i = 0; i < in->m; i++) {
        in->from[i] = (int)check_below(seed, (uint64_t)in->n);
        in->to[i] = (int)check_below(seed, (uint64_t)in->n);
        double len = hypot(in->x[in->from[i]] - in->x[in->to[i]], in->y[in->from[i]] - in->y[in->to[i]]);
        in->cost[i] = in->with_coords == 1 ? len * (1 + check_unit(seed)) : 50 * check_unit(seed);
    }
}

static json_t *instance_json(const struct instance *in)
{
    json_t *edges = json_array(), *coords = json_object();
    for (int i = 0; i < in->m; i++)
        json_array_append_new(edges, json_pack("{s:o, s:o, s:f}", "from", name(in->from[i]),
                                               "to", name(in->to[i]), "cost", in->cost[i]));
    for (int v = 0; in->with_coords && v < in->n; v++) {
        json_t *k = name(v);
        json_object_set_new(coords, json_string_value(k), json_pack("[f, f]", in->x[v], in->y[v]));
        json_decref(k);
    }
    return json_pack("{s:o, s:o, s:o, s:o, s:b}", "start", name(in->start), "goal", name(in->goal),
                     "edges", edges, "coords", coords, "undirected", in->undirected);
}

/* Cheapest start->goal cost by Floyd-Warshall; INFINITY when unreachable. */
static double brute_force(const struct instance *in)
{
    double d[MAX_N][MAX_N];
    for (int a = 0; a < in->n; a++)
        for (int b = 0; b < in->n; b++)
            d[a][b] = a == b ? 0 : INFINITY;
    for (int i = 0; i < in->m; i++) {
        d[in->from[i]][in->to[i]] = fmin(d[in->from[i]][in->to[i]], in->cost[i]);
        if (in->undirected)
            d[in->to[i]][in->from[i]] = fmin(d[in->to[i]][in->from[i]], in->cost[i]);
    }
    for (int k = 0; k < in->n; k++)
        for (int a = 0; a < in->n; a++)
            for (int b = 0; b < in->n; b++)
                d[a][b] = fmin(d[a][b], d[a][k] + d[k][b]);
    return d[in->start][in->goal];
}

static int has_edge(const struct instance *in, int a, int b, double cost)
{
    for (int i = 0; i < in->m; i++)
        if (in->cost[i] == cost && ((in->from[i] == a && in->to[i] == b) ||
                                    (in->undirected && in->from[i] == b && in->to[i] == a)))
            return 1;
    return 0;
}

/* The steps chain start to goal over real edges and add up to the reported cost. */
static void check_plan(const struct instance *in, const json_t *res)
{
    json_t *steps = json_object_get(res, "steps"), *step;
    size_t i;
    int at = in->start;
    double sum = 0;
    assert_int_equal(json_array_size(json_object_get(res, "plan")), json_array_size(steps) + 1);
    json_array_foreach(steps, i, step) {
        int a = atoi(json_string_value(json_object_get(step, "from")) + 1);
        int b = atoi(json_string_value(json_object_get(step, "to")) + 1);
        double c = json_number_value(json_object_get(step, "cost"));
        assert_int_equal(a, at);
        assert_true(has_edge(in, a, b, c));
        assert_string_equal(json_string_value(json_object_get(step, "action")), "plan_step");
        sum += c, at = b;
    }
    assert_int_equal(at, in->goal);
    assert_true(fabs(sum - json_number_value(json_object_get(res, "cost"))) <= 1e-9 * (1 + sum));
}

static void test_costs_match_floyd_warshall(void **state)
{
    (void)state;
    testhost_init(0);
    void *self = testhost_open(&ggl_plugin_entry, NULL, GGL_OK);
    uint64_t seed = 7;
    int found = 0, heuristic = 0;
    for (int k = 0; k < INSTANCES; k++) {
        struct instance in;
        random_instance(&seed, &in);
        json_t *res = check_run_json(self, instance_json(&in), GGL_OK);
        double best = brute_force(&in);
        assert_int_equal(json_is_true(json_object_get(res, "found")), isfinite(best));
        if (isfinite(best)) {
            double got = json_number_value(json_object_get(res, "cost"));
            assert_true(fabs(got - best) <= 1e-9 * (1 + best));
            check_plan(&in, res);
            found++;
        }
        heuristic += strcmp(json_string_value(json_object_get(res, "heuristic")), "euclidean") == 0;
        json_decref(res);
    }
    assert_true(found > INSTANCES / 3 && heuristic > INSTANCES / 2); /* both sides exercised */
    vt()->close(self);
}

/* A 40x40 grid, unit steps: the heuristic (scale 1) expands far fewer states. */
static json_t *grid(int with_coords)
{
    json_t *edges = json_array(), *coords = json_object();
    char a[16], b[16];
    for (int x = 0; x < 40; x++)
        for (int y = 0; y < 40; y++) {
            snprintf(a, sizeof a, "%d,%d", x, y);
            if (with_coords)
                json_object_set_new(coords, a, json_pack("[i, i]", x, y));
            if (x + 1 < 40 && (snprintf(b, sizeof b, "%d,%d", x + 1, y), 1))
                json_array_append_new(edges, json_pack("{s:s, s:s, s:i}", "from", a, "to", b, "cost", 1));
            if (y + 1 < 40 && (snprintf(b, sizeof b, "%d,%d", x, y + 1), 1))
                json_array_append_new(edges, json_pack("{s:s, s:s, s:i}", "from", a, "to", b, "cost", 1));
        }
    return json_pack("{s:s, s:s, s:o, s:o, s:b}", "start", "0,20", "goal", "39,20", "edges", edges,
                     "coords", coords, "undirected", 1);
}

static void test_heuristic_expands_fewer_states(void **state)
{
    (void)state;
    testhost_init(0);
    void *self = testhost_open(&ggl_plugin_entry, NULL, GGL_OK);
    json_t *astar = check_run_json(self, grid(1), GGL_OK), *dijkstra = check_run_json(self, grid(0), GGL_OK);
    assert_true(json_number_value(json_object_get(astar, "cost")) == 39);
    assert_true(json_number_value(json_object_get(dijkstra, "cost")) == 39);
    assert_true(json_number_value(json_object_get(astar, "heuristic_scale")) == 1);
    assert_string_equal(json_string_value(json_object_get(dijkstra, "heuristic")), "none");
    json_int_t ea = json_integer_value(json_object_get(astar, "expanded"));
    json_int_t ed = json_integer_value(json_object_get(dijkstra, "expanded"));
    assert_true(ea * 4 < ed);
    json_decref(astar), json_decref(dijkstra);
    vt()->close(self);
}

static void test_edge_cases(void **state)
{
    (void)state;
    testhost_init(0);
    void *self = testhost_open(&ggl_plugin_entry, NULL, GGL_OK);
    json_t *r = check_run(self, "{\"start\": \"a\", \"goal\": \"b\"}", GGL_OK);
    assert_true(json_is_false(json_object_get(r, "found")));
    assert_true(json_is_null(json_object_get(r, "cost")));
    json_decref(r);
    r = check_run(self, "{\"start\": \"a\", \"goal\": \"c\", \"edges\": [{\"from\": \"a\", \"to\": \"b\", "
                        "\"cost\": 1}, {\"from\": \"c\", \"to\": \"a\", \"cost\": 1}]}", GGL_OK);
    assert_true(json_is_false(json_object_get(r, "found"))); /* unreachable: edges point away */
    json_decref(r);
    r = check_run(self, "{\"start\": \"a\", \"goal\": \"a\", \"edges\": []}", GGL_OK);
    assert_true(json_is_true(json_object_get(r, "found")));
    assert_int_equal(json_array_size(json_object_get(r, "plan")), 1);
    assert_true(json_number_value(json_object_get(r, "cost")) == 0);
    json_decref(r);
    /* Zero-cost edge between distinct points: scale 0, still exact. */
    r = check_run(self, "{\"start\": \"a\", \"goal\": \"c\", \"coords\": {\"a\": [0, 0], \"b\": [5, 0], "
                        "\"c\": [9, 0]}, \"edges\": [{\"from\": \"a\", \"to\": \"b\", \"cost\": 0}, "
                        "{\"from\": \"b\", \"to\": \"c\", \"cost\": 1}, {\"from\": \"a\", \"to\": \"c\", "
                        "\"cost\": 9}]}", GGL_OK);
    assert_true(json_number_value(json_object_get(r, "cost")) == 1);
    assert_true(json_number_value(json_object_get(r, "heuristic_scale")) == 0);
    json_decref(r);
    vt()->close(self);
}

static const char graph_doc[] = "{\"edges\": [{\"from\": \"home\", \"to\": \"shop\", \"cost\": 2, "
    "\"action\": \"walk\"}, {\"from\": \"shop\", \"to\": \"work\", \"cost\": 3, \"action\": \"bus\"}]}";
static const char plan_payload[] = "{\"start\": \"home\", \"goal\": \"work\", \"graph_key\": \"town\", "
    "\"submit\": true, \"edges\": [{\"from\": \"home\", \"to\": \"work\", \"cost\": 9}]}";

static void test_graph_from_memory_and_submitted_steps(void **state)
{
    (void)state;
    const struct ggl_host *h = testhost_init(0);
    void *self = testhost_open(&ggl_plugin_entry, NULL, GGL_OK);
    assert_int_equal(h->mem_put(h, "graph/town", 10, graph_doc, strlen(graph_doc), 0, 1), GGL_OK);
    unsigned before = testhost_actions_submitted();
    json_t *r = check_run(self, plan_payload, GGL_OK);
    assert_true(json_number_value(json_object_get(r, "cost")) == 5);
    assert_string_equal(json_string_value(json_object_get(r, "memory")), "OK");
    assert_int_equal(json_integer_value(json_object_get(r, "submitted")), 2);
    assert_string_equal(json_string_value(json_object_get(r, "submit_status")), "OK");
    assert_int_equal(testhost_actions_submitted() - before, 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(json_object_get(r, "steps"), 1),
                                                          "action")), "bus");
    json_decref(r);
    vt()->close(self);
    testhost_fini();
}

static void test_unavailable_services_still_answer(void **state)
{
    (void)state;
    void *self = check_open_on(check_unavailable_host(), NULL);
    json_t *r = check_run(self, plan_payload, GGL_OK);
    assert_true(json_number_value(json_object_get(r, "cost")) == 9); /* payload edge only */
    assert_string_equal(json_string_value(json_object_get(r, "memory")), "UNAVAILABLE");
    assert_int_equal(json_integer_value(json_object_get(r, "submitted")), 0);
    assert_string_equal(json_string_value(json_object_get(r, "submit_status")), "UNAVAILABLE");
    json_decref(r);
    vt()->close(self);
}

static void test_malformed_payloads_are_invalid(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "", "3", "{\"start\": \"a\"}", "{\"start\": 1, \"goal\": \"a\"}",
        "{\"start\": \"a\", \"goal\": \"b\", \"edges\": 5}",
        "{\"start\": \"a\", \"goal\": \"b\", \"edges\": [[]]}",
        "{\"start\": \"a\", \"goal\": \"b\", \"edges\": [{\"from\": \"a\", \"to\": \"b\"}]}",
        "{\"start\": \"a\", \"goal\": \"b\", \"edges\": [{\"from\": \"a\", \"to\": \"b\", \"cost\": -1}]}",
        "{\"start\": \"a\", \"goal\": \"b\", \"edges\": [{\"from\": \"a\", \"to\": 2, \"cost\": 1}]}",
        "{\"start\": \"a\", \"goal\": \"b\", \"edges\": [{\"from\": \"a\", \"to\": \"b\", \"cost\": 1, \"action\": 3}]}",
        "{\"start\": \"a\", \"goal\": \"b\", \"edges\": [{\"from\": \"a\", \"to\": \"b\", \"cost\": 1}], "
        "\"coords\": {\"a\": [1]}}",
        "{\"start\": \"a\", \"goal\": \"b\", \"edges\": [{\"from\": \"a\", \"to\": \"b\", \"cost\": 1}], "
        "\"coords\": {\"a\": [1, \"y\"]}}",
        "{\"start\": \"a\", \"goal\": \"b\", \"coords\": []}",
        "{\"start\": \"a\", \"goal\": \"b\", \"submit\": 1}", "{\"start\": \"a\", \"goal\": \"b\", \"graph_key\": 1}",
        "{\"start\": \"a\", \"goal\": \"b\", \"undirected\": \"yes\"}",
        "{\"start\": \"a\", \"goal\": \"b\", \"edges\": [{\"from\": \"a\", \"to\": \"b\", \"cost\": 1},"
        " {\"from\": \"b\", \"to\": \"c\", \"cost\": 1}, {\"from\": \"c\", \"to\": \"d\", \"cost\": 1}]}",
    };
    static const char *const pairs[] = {"max_nodes", "3", NULL};
    testhost_init(0);
    void *self = testhost_open(&ggl_plugin_entry, pairs, GGL_OK);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_null(check_run(self, bad[i], GGL_INVALID));
    vt()->close(self);
}

static void test_concurrent_tasks_agree(void **state)
{
    (void)state;
    testhost_init(0);
    void *self = testhost_open(&ggl_plugin_entry, NULL, GGL_OK);
    check_concurrent(self, "{\"start\": \"a\", \"goal\": \"c\", \"coords\": {\"a\": [0, 0], \"b\": [1, 0], "
                           "\"c\": [2, 0]}, \"edges\": [{\"from\": \"a\", \"to\": \"b\", \"cost\": 1}, "
                           "{\"from\": \"b\", \"to\": \"c\", \"cost\": 1}, {\"from\": \"a\", \"to\": \"c\", \"cost\": 3}]}");
    vt()->close(self);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_costs_match_floyd_warshall),
        cmocka_unit_test(test_heuristic_expands_fewer_states),
        cmocka_unit_test(test_edge_cases),
        cmocka_unit_test(test_graph_from_memory_and_submitted_steps),
        cmocka_unit_test(test_unavailable_services_still_answer),
        cmocka_unit_test(test_malformed_payloads_are_invalid),
        cmocka_unit_test(test_concurrent_tasks_agree),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
