/* processor/reasoning: derivations checked against a naive fixpoint on seeded random
 * rule sets, contradictions and cycles against a transitive closure, plus memory facts,
 * the work bound, edge cases and malformed payloads. */
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
#define LITS 16 /* 8 atoms, each plain (even) or negated (odd) */
#define MAX_RULES 12

struct rule {
    int np, nc, premise[3], conclusion[2];
};

struct instance {
    int nfacts, fact[5], nrules;
    struct rule rules[MAX_RULES];
};

static const struct ggl_processor *vt(void) { return ggl_plugin_entry.vtable; }

/* Literal l as text; plain literals are sometimes spelled "!!a<n>". */
static json_t *lit_json(int l, int spelled_double)
{
    char text[16];
    snprintf(text, sizeof text, "%sa%d", l % 2 ? "!" : spelled_double ? "!!" : "", l / 2);
    return json_string(text);
}

static int lit_parse(const char *s) { return s[0] == '!' ? 2 * atoi(s + 2) + 1 : 2 * atoi(s + 1); }

static void random_instance(uint64_t *seed, struct instance *in)
{
    in->nfacts = (int)check_below(seed, 5);
    for (int i = 0; i < in->nfacts; i++)
        in->fact[i] = (int)check_below(seed, LITS);
    in->nrules = (int)check_below(seed, MAX_RULES + 1);
    for (int r = 0; r < in->nrules; r++) {
        struct rule *ru = &in->rules[r];
        ru->np = (int)check_below(seed, 4);
        ru->nc = 1 + (int)check_below(seed, 2);
        for (int k = 0; k < ru->np; k++)
            ru->premise[k] = (int)check_below(seed, LITS);
        for (int k = 0; k < ru->nc; k++)
            ru->conclusion[k] = (int)check_below(seed, LITS);
    }
}

static json_t *instance_json(const struct instance *in, uint64_t *seed)
{
    json_t *facts = json_array(), *rules = json_array();
    for (int i = 0; i < in->nfacts; i++)
        json_array_append_new(facts, lit_json(in->fact[i], (int)check_below(seed, 2)));
    for (int r = 0; r < in->nrules; r++) {
        json_t *ifs = json_array(), *then = json_array();
        for (int k = 0; k < in->rules[r].np; k++)
            json_array_append_new(ifs, lit_json(in->rules[r].premise[k], 0));
        for (int k = 0; k < in->rules[r].nc; k++)
            json_array_append_new(then, lit_json(in->rules[r].conclusion[k], 0));
        json_array_append_new(rules, json_pack("{s:o, s:o}", "if", ifs, "then", then));
    }
    return json_pack("{s:o, s:o}", "facts", facts, "rules", rules);
}

/* Naive fixpoint: fire every rule whose premises hold until nothing changes. */
static void brute_force(const struct instance *in, int known[LITS])
{
    memset(known, 0, LITS * sizeof *known);
    for (int i = 0; i < in->nfacts; i++)
        known[in->fact[i]] = 1;
    for (int changed = 1; changed;) {
        changed = 0;
        for (int r = 0; r < in->nrules; r++) {
            int ok = 1;
            for (int k = 0; k < in->rules[r].np; k++)
                ok &= known[in->rules[r].premise[k]];
            for (int k = 0; ok && k < in->rules[r].nc; k++)
                if (!known[in->rules[r].conclusion[k]])
                    known[in->rules[r].conclusion[k]] = changed = 1;
        }
    }
}

/* on_cycle[l]: l reaches itself through premise -> conclusion edges. */
static void closure(const struct instance *in, int on_cycle[LITS])
{
    int reach[LITS][LITS] = {{0}};
    for (int r = 0; r < in->nrules; r++)
        for (int a = 0; a < in->rules[r].np; a++)
            for (int b = 0; b < in->rules[r].nc; b++)
                reach[in->rules[r].premise[a]][in->rules[r].conclusion[b]] = 1;
    for (int k = 0; k < LITS; k++)
        for (int a = 0; a < LITS; a++)
            for (int b = 0; b < LITS; b++)
                reach[a][b] |= reach[a][k] && reach[k][b];
    for (int l = 0; l < LITS; l++)
        on_cycle[l] = reach[l][l];
}

/* Each derivation names a rule concluding the fact whose premises were known earlier. */
static void check_derivations(const struct instance *in, const json_t *res, int known[LITS])
{
    int order[LITS], pos = 0;
    size_t i;
    json_t *x;
    memset(order, -1, sizeof order);
    json_array_foreach(json_object_get(res, "facts"), i, x)
        order[lit_parse(json_string_value(x))] = pos++;
    for (int l = 0; l < LITS; l++)
        assert_int_equal(order[l] >= 0, known[l]);
    json_array_foreach(json_object_get(res, "derived"), i, x) {
        int f = lit_parse(json_string_value(json_object_get(x, "fact")));
        const struct rule *ru = &in->rules[atoi(json_string_value(json_object_get(x, "rule")) + 4)];
        int concludes = 0;
        for (int k = 0; k < ru->nc; k++)
            concludes |= ru->conclusion[k] == f;
        assert_true(concludes);
        assert_int_equal(json_array_size(json_object_get(x, "from")), ru->np);
        for (int k = 0; k < ru->np; k++)
            assert_true(order[ru->premise[k]] < order[f]);
    }
}

static void check_contradictions_and_cycles(const struct instance *in, const json_t *res, int known[LITS])
{
    int seen[LITS] = {0}, on_cycle[LITS];
    size_t i, j;
    json_t *x, *f;
    json_array_foreach(json_object_get(res, "contradictions"), i, x)
        seen[lit_parse(json_string_value(json_object_get(x, "fact")))] = 1;
    for (int l = 0; l < LITS; l += 2)
        assert_int_equal(seen[l], known[l] && known[l + 1]);
    memset(seen, 0, sizeof seen);
    json_array_foreach(json_object_get(res, "cycles"), i, x)
        json_array_foreach(json_object_get(x, "facts"), j, f)
            seen[lit_parse(json_string_value(f))] = 1;
    closure(in, on_cycle);
    for (int l = 0; l < LITS; l++)
        assert_int_equal(seen[l], on_cycle[l]);
}

static void test_matches_naive_fixpoint(void **state)
{
    (void)state;
    testhost_init(0);
    void *self = testhost_open(&ggl_plugin_entry, NULL, GGL_OK);
    uint64_t seed = 99;
    int derived = 0, contradictions = 0, cycles = 0;
    for (int k = 0; k < INSTANCES; k++) {
        struct instance in;
        int known[LITS];
        random_instance(&seed, &in);
        json_t *res = check_run_json(self, instance_json(&in, &seed), GGL_OK);
        brute_force(&in, known);
        check_derivations(&in, res, known);
        check_contradictions_and_cycles(&in, res, known);
        assert_true(json_is_false(json_object_get(res, "truncated")));
        derived += json_array_size(json_object_get(res, "derived")) > 0;
        contradictions += json_array_size(json_object_get(res, "contradictions")) > 0;
        cycles += json_array_size(json_object_get(res, "cycles")) > 0;
        json_decref(res);
    }
    assert_true(derived > 50 && contradictions > 20 && cycles > 20); /* all exercised */
    vt()->close(self);
}

static void test_contradiction_and_cycle_reported(void **state)
{
    (void)state;
    testhost_init(0);
    void *self = testhost_open(&ggl_plugin_entry, NULL, GGL_OK);
    json_t *r = check_run(self, "{\"facts\": [\"p\", \"a\"], \"rules\": [{\"name\": \"deny\", \"if\": [\"p\"], "
                                "\"then\": \"!p\"}, {\"if\": [\"a\"], \"then\": \"b\"}, {\"if\": [\"b\"], "
                                "\"then\": \"a\"}]}", GGL_OK);
    json_t *c = json_array_get(json_object_get(r, "contradictions"), 0);
    assert_string_equal(json_string_value(json_object_get(c, "fact")), "p");
    assert_string_equal(json_string_value(json_object_get(c, "by")), "given");
    assert_string_equal(json_string_value(json_object_get(c, "negation_by")), "deny");
    json_t *cycles = json_object_get(r, "cycles");
    assert_int_equal(json_array_size(cycles), 1); /* a <-> b; p -> deny -> !p is no cycle */
    json_t *cyc = json_array_get(cycles, 0);
    assert_int_equal(json_array_size(json_object_get(cyc, "facts")), 2);
    assert_int_equal(json_array_size(json_object_get(cyc, "rules")), 2);
    json_decref(r);
    vt()->close(self);
}

static void test_work_is_bounded(void **state)
{
    (void)state;
    static const char *const pairs[] = {"max_iterations", "3", NULL};
    testhost_init(0);
    void *self = testhost_open(&ggl_plugin_entry, pairs, GGL_OK);
    json_t *r = check_run(self, "{\"facts\": [\"x0\"], \"rules\": [{\"if\": [\"x0\"], \"then\": \"x1\"}, "
                                "{\"if\": [\"x1\"], \"then\": \"x2\"}, {\"if\": [\"x2\"], \"then\": \"x3\"}, "
                                "{\"if\": [\"x3\"], \"then\": \"x4\"}, {\"if\": [\"x4\"], \"then\": \"x5\"}]}", GGL_OK);
    assert_true(json_is_true(json_object_get(r, "truncated")));
    assert_int_equal(json_integer_value(json_object_get(r, "firings")), 3);
    assert_int_equal(json_array_size(json_object_get(r, "derived")), 3);
    json_decref(r);
    vt()->close(self);
}

static void test_edge_cases(void **state)
{
    (void)state;
    testhost_init(0);
    void *self = testhost_open(&ggl_plugin_entry, NULL, GGL_OK);
    json_t *r = check_run(self, "{}", GGL_OK);
    assert_int_equal(json_array_size(json_object_get(r, "facts")), 0);
    assert_int_equal(json_array_size(json_object_get(r, "cycles")), 0);
    json_decref(r);
    /* A rule without premises is an axiom; "!!q" is q. */
    r = check_run(self, "{\"rules\": [{\"then\": [\"!!q\", \"!q\"]}]}", GGL_OK);
    assert_int_equal(json_array_size(json_object_get(r, "derived")), 2);
    assert_string_equal(json_string_value(json_array_get(json_object_get(r, "facts"), 0)), "q");
    assert_int_equal(json_array_size(json_object_get(r, "contradictions")), 1);
    json_decref(r);
    vt()->close(self);
}

static const char kb_doc[] = "{\"facts\": [\"wet\"], \"rules\": [{\"name\": \"slip\", \"if\": [\"wet\", "
                             "\"moving\"], \"then\": \"careful\"}]}";

static void test_memory_facts(void **state)
{
    (void)state;
    const struct ggl_host *h = testhost_init(0);
    void *self = testhost_open(&ggl_plugin_entry, NULL, GGL_OK);
    assert_int_equal(h->mem_put(h, "facts/kb", 8, kb_doc, strlen(kb_doc), 0, 1), GGL_OK);
    json_t *r = check_run(self, "{\"memory\": [\"kb\", \"none\"], \"facts\": [\"moving\"]}", GGL_OK);
    json_t *d = json_array_get(json_object_get(r, "derived"), 0);
    assert_string_equal(json_string_value(json_object_get(d, "fact")), "careful");
    assert_string_equal(json_string_value(json_object_get(d, "rule")), "slip");
    assert_string_equal(json_string_value(json_object_get(json_object_get(r, "memory"), "none")), "NOTFOUND");
    json_decref(r);
    vt()->close(self);
    testhost_fini();

    self = check_open_on(check_unavailable_host(), NULL);
    r = check_run(self, "{\"memory\": [\"kb\"], \"facts\": [\"moving\"]}", GGL_OK);
    assert_string_equal(json_string_value(json_object_get(json_object_get(r, "memory"), "kb")), "UNAVAILABLE");
    assert_int_equal(json_array_size(json_object_get(r, "derived")), 0);
    json_decref(r);
    vt()->close(self);
}

static void test_malformed_payloads_are_invalid(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "", "[]", "{\"facts\": \"p\"}", "{\"facts\": [1]}", "{\"facts\": [\"\"]}", "{\"facts\": [\"!\"]}",
        "{\"facts\": [\"!!!\"]}", "{\"rules\": {}}", "{\"rules\": [1]}", "{\"rules\": [{\"if\": [\"a\"]}]}",
        "{\"rules\": [{\"if\": \"a\", \"then\": \"b\"}]}", "{\"rules\": [{\"then\": 3}]}",
        "{\"rules\": [{\"then\": \"b\", \"name\": 1}]}", "{\"rules\": [{\"if\": [null], \"then\": \"b\"}]}",
        "{\"memory\": \"kb\"}", "{\"memory\": [1]}", "{\"facts\": [\"a\", \"b\", \"c\", \"d\", \"e\"]}",
    };
    static const char *const pairs[] = {"max_facts", "4", NULL};
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
    check_concurrent(self, "{\"facts\": [\"a\"], \"rules\": [{\"if\": [\"a\"], \"then\": \"b\"}, "
                           "{\"if\": [\"b\"], \"then\": [\"a\", \"!a\"]}]}");
    vt()->close(self);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matches_naive_fixpoint),
        cmocka_unit_test(test_contradiction_and_cycle_reported),
        cmocka_unit_test(test_work_is_bounded),
        cmocka_unit_test(test_edge_cases),
        cmocka_unit_test(test_memory_facts),
        cmocka_unit_test(test_malformed_payloads_are_invalid),
        cmocka_unit_test(test_concurrent_tasks_agree),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
