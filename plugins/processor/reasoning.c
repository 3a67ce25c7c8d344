/* processor/reasoning: forward chaining over facts and rules, reporting what was
 * derived (and by which rule), contradictions and cycles among the rules.
 *
 * Payload: {"facts": ["door_open", "!raining"],
 *           "rules": [{"name": "r1", "if": ["door_open", "!raining"], "then": "go_out"},
 *                     {"if": ["go_out"], "then": ["wear_shoes", "!stay_in"]}],
 *           "memory": ["kb"]}
 *   A fact is a non-empty string; a leading "!" negates it ("!!p" is p).  A rule fires
 *   once every literal of "if" (possibly none) is known and makes each literal of
 *   "then" known; premises are matched literally ("!p" must itself be known: no
 *   negation by failure).  Unnamed rules are called "rule<n>", n counting from 0 over
 *   every document read.  Each name in "memory" (at most 64) is read from memory key
 *   <memory_prefix><name>, an object of the same shape ("facts", "rules"), before the
 *   payload; NOTFOUND and UNAVAILABLE (today's host) count as "no memory facts".
 * Bounds: "max_facts" distinct literals and "max_rules" rules per task (more is
 *   GGL_INVALID); at most "max_iterations" rule firings (then "truncated": true).
 * Result:  {"facts": [every known literal, given then derived],
 *           "derived": [{"fact": f, "rule": name, "from": [premises]}, ...],
 *           "contradictions": [{"fact": p, "by": rule|"given", "negation_by": ...}],
 *           "cycles": [{"facts": [...], "rules": [...]}, ...],
 *           "firings": n, "truncated": bool, "memory": {"kb": "OK"|"NOTFOUND"|...}}
 *   A cycle is a strongly connected part of the graph fact -> rule -> conclusion: the
 *   facts in it each help derive the others. */
#include <stdlib.h>
#include <string.h>

#include "json_util.h"

#define GIVEN SIZE_MAX

struct reasoning {
    const struct ggl_host *host;
    struct json_proc_conf pc;
    const char *prefix;
    size_t max_facts, max_rules, max_iterations;
};

struct rule {
    json_t *name;
    size_t premises, npremises;       /* ranges in kb.lits */
    size_t conclusions, nconclusions;
    size_t missing;                   /* premises not known yet */
};

/* The knowledge of one task: interned literals, rules and derivation state. */
struct kb {
    struct json_names literals;
    size_t *by;         /* per literal: rule that made it known, GIVEN, or 0 + unknown */
    char *known;
    struct rule *rules;
    size_t nrules, cap_rules;
    size_t *lits, nlits, cap_lits;  /* premises and conclusions of every rule */
    size_t *watch_first, *watch;    /* CSR: rules having literal f among their premises */
    size_t *queue, nqueue;          /* newly known literals, in order */
};

static const struct ggl_setting settings[] = {
    JSON_PROC_SETTINGS("reasoning"),
    GGL_SETTING("memory_prefix", GGL_SETTING_STRING, "facts/", "memory key prefix of \"memory\" names"),
    GGL_SETTING("max_facts", GGL_SETTING_INT, "100000", "most distinct literals in one task"),
    GGL_SETTING("max_rules", GGL_SETTING_INT, "100000", "most rules in one task"),
    GGL_SETTING("max_iterations", GGL_SETTING_INT, "1000000", "most rule firings in one task"),
    GGL_SETTINGS_END};

static enum ggl_status reason_open(const struct ggl_host *host, const struct ggl_conf *conf, void **self)
{
    struct reasoning *r = calloc(1, sizeof *r);
    if (!r)
        return GGL_NOMEM;
    r->host = host;
    json_proc_conf_read(host, conf, &r->pc);
    r->prefix = "facts/";
    host->conf_string(conf, "memory_prefix", &r->prefix);
    r->max_facts = (size_t)json_conf_int(host, conf, "max_facts", 100000);
    r->max_rules = (size_t)json_conf_int(host, conf, "max_rules", 100000);
    r->max_iterations = (size_t)json_conf_int(host, conf, "max_iterations", 1000000);
    *self = r;
    return GGL_OK;
}

static void reason_close(void *self) { free(self); }

static const char *const *reason_types(void *self) { return ((struct reasoning *)self)->pc.types; }

/* The number of literal v (normalised: "!!p" is p), interning it when new. */
static enum ggl_status literal(struct reasoning *r, struct kb *kb, const json_t *v, size_t *out)
{
    const char *s = json_string_value(v);
    size_t len = json_string_length(v);
    while (len >= 2 && s[0] == '!' && s[1] == '!')
        s += 2, len -= 2;
    if (!s || len == 0 || (len == 1 && s[0] == '!'))
        return json_invalid(r->host, "a fact must be a non-empty string (\"p\" or \"!p\")");
    return json_names_intern(r->host, &kb->literals, s, len, r->max_facts, "facts (max_facts)", out);
}

/* Append literal v (or each literal of array v) to kb->lits; *n counts them. */
static enum ggl_status add_literals(struct reasoning *r, struct kb *kb, const json_t *v, size_t *n)
{
    size_t count = json_is_array(v) ? json_array_size(v) : 1;
    size_t *grown = json_reserve(kb->lits, &kb->cap_lits, kb->nlits + count, sizeof *grown);
    if (!grown)
        return GGL_NOMEM;
    kb->lits = grown;
    for (size_t i = 0; i < count; i++) {
        enum ggl_status st = literal(r, kb, json_is_array(v) ? json_array_get(v, i) : v,
                                     &kb->lits[kb->nlits]);
        if (st != GGL_OK)
            return st;
        kb->nlits++;
    }
    *n = count;
    return GGL_OK;
}

static enum ggl_status read_rule(struct reasoning *r, struct kb *kb, const json_t *it)
{
    json_t *premises = json_object_get(it, "if"), *then = json_object_get(it, "then");
    const json_t *name = json_object_get(it, "name");
    if (!json_is_object(it) || (premises && !json_is_array(premises)) ||
        !(json_is_string(then) || json_is_array(then)) || (name && !json_is_string(name)))
        return json_invalid(r->host, "a rule is {\"name\": s, \"if\": [facts], \"then\": fact or [facts]}");
    if (kb->nrules >= r->max_rules)
        return json_invalid(r->host, "more than max_rules (%zu) rules", r->max_rules);
    struct rule *grown = json_reserve(kb->rules, &kb->cap_rules, kb->nrules + 1, sizeof *grown);
    if (!grown)
        return GGL_NOMEM;
    kb->rules = grown;
    struct rule *ru = &kb->rules[kb->nrules];
    enum ggl_status st;
    *ru = (struct rule){.premises = kb->nlits};
    if (premises && (st = add_literals(r, kb, premises, &ru->npremises)))
        return st;
    ru->conclusions = kb->nlits;
    if ((st = add_literals(r, kb, then, &ru->nconclusions)))
        return st;
    ru->name = name ? json_incref((json_t *)name) : json_sprintf("rule%zu", kb->nrules);
    kb->nrules++;
    return ru->name ? GGL_OK : GGL_NOMEM;
}

/* Number the rules and facts of one document (marking facts known comes later, once
 * the per-literal arrays exist). */
static enum ggl_status read_doc(struct reasoning *r, struct kb *kb, const json_t *doc)
{
    json_t *rules, *it, *facts;
    size_t i;
    enum ggl_status st;
    if ((st = json_opt_array(r->host, doc, "rules", r->max_rules, &rules)) ||
        (st = json_opt_array(r->host, doc, "facts", r->max_facts, &facts)))
        return st;
    json_array_foreach(rules, i, it)
        if ((st = read_rule(r, kb, it)))
            return st;
    json_array_foreach(facts, i, it)
        if ((st = literal(r, kb, it, &(size_t){0})))
            return st;
    return GGL_OK;
}

/* Make v known (by rule `by`, or GIVEN) and queue it, unless it already was. */
static void learn(struct kb *kb, size_t v, size_t by)
{
    if (kb->known[v])
        return;
    kb->known[v] = 1;
    kb->by[v] = by;
    kb->queue[kb->nqueue++] = v;
}

static void mark_given(struct reasoning *r, struct kb *kb, const json_t *doc)
{
    json_t *it;
    size_t i, v;
    json_array_foreach(json_object_get(doc, "facts"), i, it)
        if (literal(r, kb, it, &v) == GGL_OK)
            learn(kb, v, GIVEN);
}

/* Per-literal arrays and the watch lists (counting sort of premises by literal). */
static enum ggl_status index_kb(struct kb *kb)
{
    size_t n = json_names_count(&kb->literals);
    kb->by = calloc(n + 1, sizeof *kb->by);
    kb->known = calloc(n + 1, 1);
    kb->queue = calloc(n + 1, sizeof *kb->queue);
    kb->watch_first = calloc(2 * (n + 1), sizeof *kb->watch_first);
    kb->watch = calloc(kb->nlits + 1, sizeof *kb->watch);
    if (!kb->by || !kb->known || !kb->queue || !kb->watch_first || !kb->watch)
        return GGL_NOMEM;
    for (size_t r = 0; r < kb->nrules; r++)
        for (size_t k = 0; k < kb->rules[r].npremises; k++)
            kb->watch_first[kb->lits[kb->rules[r].premises + k] + 1]++;
    for (size_t v = 0; v < n; v++)
        kb->watch_first[v + 1] += kb->watch_first[v];
    size_t *fill = kb->watch_first + n + 1;
    memcpy(fill, kb->watch_first, (n + 1) * sizeof *fill);
    for (size_t r = 0; r < kb->nrules; r++) {
        kb->rules[r].missing = kb->rules[r].npremises;
        for (size_t k = 0; k < kb->rules[r].npremises; k++)
            kb->watch[fill[kb->lits[kb->rules[r].premises + k]]++] = r;
    }
    return GGL_OK;
}

/* Fire rule r: its conclusions become known.  Answers 0 when out of firings. */
static int fire(struct kb *kb, size_t r, size_t *firings, size_t max)
{
    if (*firings >= max)
        return 0;
    ++*firings;
    for (size_t k = 0; k < kb->rules[r].nconclusions; k++)
        learn(kb, kb->lits[kb->rules[r].conclusions + k], r);
    return 1;
}

/* Counter-based forward chaining (each premise occurrence is visited once): linear in
 * the size of the rules.  Answers 1 when cut short by max_iterations. */
static int chain(struct kb *kb, size_t max, size_t *firings)
{
    for (size_t r = 0; r < kb->nrules; r++)
        if (kb->rules[r].npremises == 0 && !fire(kb, r, firings, max))
            return 1;
    for (size_t head = 0; head < kb->nqueue; head++) {
        size_t v = kb->queue[head];
        for (size_t k = kb->watch_first[v]; k < kb->watch_first[v + 1]; k++)
            if (--kb->rules[kb->watch[k]].missing == 0 && !fire(kb, kb->watch[k], firings, max))
                return 1;
    }
    return 0;
}

static json_t *origin(const struct kb *kb, size_t v)
{
    return kb->by[v] == GIVEN ? json_string("given") : json_incref(kb->rules[kb->by[v]].name);
}

/* The number of "!p" for literal p when it was ever mentioned, else SIZE_MAX. */
static size_t negation(const struct kb *kb, const json_t *p)
{
    size_t len = json_string_length(p), v = SIZE_MAX;
    char *text = malloc(len + 1);
    if (text) {
        text[0] = '!';
        memcpy(text + 1, json_string_value(p), len);
        json_t *known = json_object_getn(kb->literals.index, text, len + 1);
        v = known ? (size_t)json_integer_value(known) : SIZE_MAX;
    }
    free(text);
    return v;
}

/* Every known p whose negation "!p" is known too. */
static json_t *contradictions(const struct kb *kb)
{
    json_t *out = json_array();
    for (size_t i = 0; i < kb->nqueue; i++) {
        size_t v = kb->queue[i], n;
        json_t *name = json_array_get(kb->literals.names, v);
        if (json_string_value(name)[0] != '!' && (n = negation(kb, name)) != SIZE_MAX && kb->known[n])
            json_array_append_new(out, json_pack("{s:O, s:o, s:o}", "fact", name,
                                                 "by", origin(kb, v), "negation_by", origin(kb, n)));
    }
    return out;
}

/* Given then derived literals, and the derivations. */
static void describe_known(const struct kb *kb, json_t *res)
{
    json_t *facts = json_array(), *derived = json_array();
    for (size_t i = 0; i < kb->nqueue; i++) {
        size_t v = kb->queue[i];
        json_array_append(facts, json_array_get(kb->literals.names, v));
        if (kb->by[v] == GIVEN)
            continue;
        const struct rule *ru = &kb->rules[kb->by[v]];
        json_t *from = json_array();
        for (size_t k = 0; k < ru->npremises; k++)
            json_array_append(from, json_array_get(kb->literals.names, kb->lits[ru->premises + k]));
        json_array_append_new(derived, json_pack("{s:O, s:O, s:o}", "fact", json_array_get(kb->literals.names, v),
                                                 "rule", ru->name, "from", from));
    }
    json_object_set_new(res, "facts", facts);
    json_object_set_new(res, "derived", derived);
}

/* The graph for cycles: literals are nodes [0, n), rule r is node n + r; a literal
 * points at the rules it is a premise of, a rule at its conclusions. */
static size_t degree(const struct kb *kb, size_t n, size_t v)
{
    return v < n ? kb->watch_first[v + 1] - kb->watch_first[v] : kb->rules[v - n].nconclusions;
}

static size_t successor(const struct kb *kb, size_t n, size_t v, size_t k)
{
    return v < n ? n + kb->watch[kb->watch_first[v] + k] : kb->lits[kb->rules[v - n].conclusions + k];
}

struct tarjan {
    size_t *index, *low, *stack, *frame_v, *frame_k;
    char *on_stack;
    size_t next, depth, nstack;
};

/* Pop the component rooted at v; report it when it holds more than one node. */
static void pop_component(const struct kb *kb, size_t n, struct tarjan *t, size_t v, json_t *out)
{
    json_t *facts = json_array(), *rules = json_array();
    size_t w, size = 0;
    do {
        w = t->stack[--t->nstack];
        t->on_stack[w] = 0;
        size++;
        if (w < n)
            json_array_append(facts, json_array_get(kb->literals.names, w));
        else
            json_array_append(rules, kb->rules[w - n].name);
    } while (w != v);
    if (size > 1)
        json_array_append_new(out, json_pack("{s:o, s:o}", "facts", facts, "rules", rules));
    else
        json_decref(facts), json_decref(rules);
}

static void visit(struct tarjan *t, size_t v)
{
    t->index[v] = t->low[v] = ++t->next;
    t->stack[t->nstack++] = v;
    t->on_stack[v] = 1;
    t->frame_v[t->depth] = v;
    t->frame_k[t->depth++] = 0;
}

/* Tarjan's strongly connected components, with an explicit stack (inputs may be deep). */
static void strongly_connected(const struct kb *kb, size_t n, struct tarjan *t, size_t root, json_t *out)
{
    visit(t, root);
    while (t->depth) {
        size_t v = t->frame_v[t->depth - 1], k = t->frame_k[t->depth - 1]++;
        if (k < degree(kb, n, v)) {
            size_t w = successor(kb, n, v, k);
            if (!t->index[w])
                visit(t, w);
            else if (t->on_stack[w] && t->index[w] < t->low[v])
                t->low[v] = t->index[w];
            continue;
        }
        if (t->low[v] == t->index[v])
            pop_component(kb, n, t, v, out);
        if (--t->depth && t->low[v] < t->low[t->frame_v[t->depth - 1]])
            t->low[t->frame_v[t->depth - 1]] = t->low[v];
    }
}

static json_t *cycles(const struct kb *kb)
{
    size_t n = json_names_count(&kb->literals), total = n + kb->nrules + 1;
    struct tarjan t = {.index = calloc(total, sizeof(size_t)), .low = calloc(total, sizeof(size_t)),
                       .stack = calloc(total, sizeof(size_t)), .frame_v = calloc(total, sizeof(size_t)),
                       .frame_k = calloc(total, sizeof(size_t)), .on_stack = calloc(total, 1)};
    json_t *out = NULL;
    if (t.index && t.low && t.stack && t.frame_v && t.frame_k && t.on_stack && (out = json_array()))
        for (size_t v = 0; v + 1 < total; v++)
            if (!t.index[v])
                strongly_connected(kb, n, &t, v, out);
    free(t.index), free(t.low), free(t.stack), free(t.frame_v), free(t.frame_k), free(t.on_stack);
    return out;
}

static void free_kb(struct kb *kb)
{
    for (size_t r = 0; r < kb->nrules; r++)
        json_decref(kb->rules[r].name);
    json_names_free(&kb->literals);
    free(kb->rules), free(kb->lits), free(kb->by), free(kb->known);
    free(kb->watch_first), free(kb->watch), free(kb->queue);
}

/* Read the documents named in "memory" (their statuses go in res) into docs. */
static enum ggl_status read_memory(struct reasoning *r, const json_t *payload, json_t *docs, json_t *res)
{
    json_t *names, *it, *seen = json_object();
    size_t i;
    enum ggl_status st = json_opt_array(r->host, payload, "memory", 64, &names);
    json_object_set_new(res, "memory", seen);
    json_array_foreach(names, i, it) {
        json_t *doc = NULL;
        if (!json_is_string(it))
            return json_invalid(r->host, "\"memory\" must list key names");
        st = json_mem_get(r->host, r->prefix, json_string_value(it), r->pc.max_payload, &doc);
        json_object_set_new(seen, json_string_value(it), json_string(ggl_status_str(st)));
        if (st == GGL_NOTFOUND || st == GGL_UNAVAILABLE)
            continue;
        if (st != GGL_OK || json_array_append_new(docs, doc))
            return st != GGL_OK ? st : GGL_NOMEM;
    }
    return st == GGL_NOTFOUND || st == GGL_UNAVAILABLE ? GGL_OK : st;
}

static enum ggl_status infer(struct reasoning *r, struct kb *kb, const json_t *docs, json_t *res)
{
    json_t *doc;
    size_t i, firings = 0;
    enum ggl_status st;
    json_array_foreach(docs, i, doc)
        if ((st = read_doc(r, kb, doc)))
            return st;
    if ((st = index_kb(kb)))
        return st;
    json_array_foreach(docs, i, doc)
        mark_given(r, kb, doc);
    int truncated = chain(kb, r->max_iterations, &firings);
    describe_known(kb, res);
    json_object_set_new(res, "contradictions", contradictions(kb));
    json_object_set_new(res, "cycles", cycles(kb));
    json_object_set_new(res, "firings", json_integer((json_int_t)firings));
    json_object_set_new(res, "truncated", json_boolean(truncated));
    return GGL_OK;
}

static enum ggl_status reason_process(void *self, const struct ggl_task *task, struct ggl_result *result)
{
    struct reasoning *r = self;
    struct kb kb = {0};
    json_t *payload = NULL, *docs = json_array(), *res = json_object();
    enum ggl_status st = GGL_NOMEM;
    if (json_names_init(&kb.literals) || !docs || !res)
        goto fail;
    if ((st = json_parse_object(r->host, "payload", task->payload, task->payload_len,
                                r->pc.max_payload, &payload)) ||
        (st = read_memory(r, payload, docs, res)) ||
        (st = json_array_append(docs, payload) ? GGL_NOMEM : GGL_OK) ||
        (st = infer(r, &kb, docs, res)))
        goto fail;
    st = json_result(r->host, res, result);
    res = NULL;
fail:
    json_decref(res);
    json_decref(docs);
    json_decref(payload);
    free_kb(&kb);
    return st;
}

static const struct ggl_processor vtable = {
    .size = sizeof(struct ggl_processor),
    .flags = GGL_READS_CONCURRENT,
    .open = reason_open,
    .close = reason_close,
    .task_types = reason_types,
    .process = reason_process,
};

GGL_PLUGIN_DEFINE(GGL_KIND_PROCESSOR, "reasoning", "0.1.0",
                  "forward chaining with derivations, contradictions and cycles",
                  settings, &vtable);
