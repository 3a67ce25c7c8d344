/* processor/optimization: 0/1 knapsack under a budget.  Exact dynamic programming when
 * items x (capacity + 1) is within "dp_limit" cells, else a greedy-by-ratio heuristic
 * that is never worse than half the optimum; the result says which was used.
 *
 * Payload: {"capacity": C, "items": [{"weight": w, "value": v, "id": any}, ...]}
 *   C and every w are integers >= 0; every v is a number in [0, 1e12] (sums stay exact
 *   enough and finite).
 * Result:  {"method": "dp"|"greedy", "optimal": bool, "value": V, "weight": W,
 *           "items": [indices chosen, ascending], "ids": [their "id"s, if given]} */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "json_util.h"

struct optimization {
    const struct ggl_host *host;
    struct json_proc_conf pc;
    size_t max_items;
    uint64_t dp_limit;
};

struct item {
    json_int_t weight;
    double value;
    size_t index;
};

static const struct ggl_setting settings[] = {
    JSON_PROC_SETTINGS("optimization"),
    GGL_SETTING("max_items", GGL_SETTING_INT, "100000", "most items in one task"),
    GGL_SETTING("dp_limit", GGL_SETTING_INT, "4000000",
                "exact DP when items x (capacity + 1) is at most this, else greedy"),
    GGL_SETTINGS_END};

static enum ggl_status opt_open(const struct ggl_host *host, const struct ggl_conf *conf, void **self)
{
    struct optimization *o = calloc(1, sizeof *o);
    if (!o)
        return GGL_NOMEM;
    o->host = host;
    json_proc_conf_read(host, conf, &o->pc);
    o->max_items = (size_t)json_conf_int(host, conf, "max_items", 100000);
    o->dp_limit = (uint64_t)json_conf_int(host, conf, "dp_limit", 4000000);
    *self = o;
    return GGL_OK;
}

static void opt_close(void *self) { free(self); }

static const char *const *opt_types(void *self) { return ((struct optimization *)self)->pc.types; }

/* Read the items array into a fresh vector. */
static enum ggl_status read_items(const struct optimization *o, const json_t *payload,
                                  struct item **out, size_t *n)
{
    json_t *arr, *it;
    size_t i;
    enum ggl_status st = json_opt_array(o->host, payload, "items", o->max_items, &arr);
    *out = NULL;
    *n = arr ? json_array_size(arr) : 0;
    if (st != GGL_OK || *n == 0)
        return st;
    struct item *items = calloc(*n, sizeof *items);
    if (!items)
        return GGL_NOMEM;
    json_array_foreach(arr, i, it) {
        items[i].weight = -1;
        items[i].value = -1;
        items[i].index = i;
        if (!json_is_object(it) ||
            json_opt_int(o->host, it, "weight", 0, INT64_MAX, &items[i].weight) ||
            json_opt_number(o->host, it, "value", 0, 1e12, &items[i].value) ||
            items[i].weight < 0 || items[i].value < 0) {
            free(items);
            return json_invalid(o->host, "items[%zu] must be {\"weight\": integer >= 0, "
                                "\"value\": number >= 0}", i);
        }
    }
    *out = items;
    return GGL_OK;
}

/* Exact: best[c] = best value within capacity c over the items seen so far; one bit
 * per (item, c) records "take" so the choice can be walked back. */
static enum ggl_status solve_dp(const struct item *items, size_t n, size_t cap, char *chosen)
{
    size_t width = cap + 1;
    double *best = calloc(width, sizeof *best);
    uint8_t *take = calloc((n * width + 7) / 8, 1);
    if (!best || !take) {
        free(best), free(take);
        return GGL_NOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        if ((uint64_t)items[i].weight > cap)
            continue;
        size_t w = (size_t)items[i].weight;
        for (size_t c = cap + 1; c-- > w;) {
            double with = best[c - w] + items[i].value;
            if (with > best[c]) {
                best[c] = with;
                size_t bit = i * width + c;
                take[bit / 8] |= (uint8_t)(1u << (bit % 8));
            }
        }
    }
    for (size_t i = n, c = cap; i-- > 0;) {
        size_t bit = i * width + c;
        if (take[bit / 8] & (1u << (bit % 8))) {
            chosen[i] = 1;
            c -= (size_t)items[i].weight;
        }
    }
    free(best), free(take);
    return GGL_OK;
}

/* Higher value per unit of weight first; weightless items before all others. */
static int by_ratio(const void *a, const void *b)
{
    const struct item *x = a, *y = b;
    double lhs = x->value * (double)y->weight, rhs = y->value * (double)x->weight;
    if (lhs != rhs)
        return lhs > rhs ? -1 : 1;
    return x->index < y->index ? -1 : x->index > y->index;
}

/* Heuristic: take items by falling ratio while they fit; then, if the single most
 * valuable item that fits is worth more than that whole selection, take it alone.
 * The better of the two is at least half the optimum (the classic modified greedy:
 * the ratio prefix plus the first item that did not fit bounds the LP optimum). */
static enum ggl_status solve_greedy(struct item *items, size_t n, json_int_t cap, char *chosen)
{
    json_int_t room = cap;
    double sum = 0, single = -1;
    size_t best_single = n;
    qsort(items, n, sizeof *items, by_ratio);
    for (size_t i = 0; i < n; i++) {
        if (items[i].weight <= cap && items[i].value > single) {
            single = items[i].value;
            best_single = items[i].index;
        }
        if (items[i].weight <= room) {
            room -= items[i].weight;
            sum += items[i].value;
            chosen[items[i].index] = 1;
        }
    }
    if (best_single < n && single > sum) {
        memset(chosen, 0, n);
        chosen[best_single] = 1;
        for (size_t i = 0; i < n; i++) /* weightless items are free: keep them */
            if (items[i].weight == 0)
                chosen[items[i].index] = 1;
    }
    return GGL_OK;
}

/* The result object for the choice made. */
static json_t *describe(const json_t *payload, const char *chosen, size_t n, int exact)
{
    json_t *arr = json_object_get(payload, "items");
    json_t *idx = json_array(), *ids = json_array();
    double value = 0;
    json_int_t weight = 0;
    for (size_t i = 0; i < n; i++) {
        if (!chosen[i])
            continue;
        json_t *it = json_array_get(arr, i), *id = json_object_get(it, "id");
        value += json_number_value(json_object_get(it, "value"));
        weight += json_integer_value(json_object_get(it, "weight"));
        json_array_append_new(idx, json_integer((json_int_t)i));
        if (id)
            json_array_append(ids, id);
    }
    return json_pack("{s:s, s:b, s:f, s:I, s:o, s:o}", "method", exact ? "dp" : "greedy",
                     "optimal", exact, "value", value, "weight", weight, "items", idx,
                     "ids", ids);
}

static enum ggl_status opt_process(void *self, const struct ggl_task *task, struct ggl_result *r)
{
    struct optimization *o = self;
    json_t *payload = NULL;
    struct item *items = NULL;
    char *chosen = NULL;
    size_t n = 0;
    json_int_t cap = -1;
    enum ggl_status st = json_parse_object(o->host, "payload", task->payload,
                                           task->payload_len, o->pc.max_payload, &payload);
    if (st != GGL_OK)
        return st;
    if ((st = json_opt_int(o->host, payload, "capacity", 0, INT64_MAX, &cap)) != GGL_OK)
        goto fail;
    if (cap < 0) {
        st = json_invalid(o->host, "\"capacity\" (an integer >= 0) is required");
        goto fail;
    }
    if ((st = read_items(o, payload, &items, &n)) != GGL_OK)
        goto fail;
    st = GGL_NOMEM;
    if (!(chosen = calloc(n + 1, 1)))
        goto fail;
    /* Items heavier than the budget never fit, so the DP table needs no more columns
     * than the total weight of the rest: cap the width by it. */
    uint64_t total = 0;
    for (size_t i = 0; i < n && total < (uint64_t)cap; i++)
        if (items[i].weight <= cap)
            total += (uint64_t)items[i].weight; /* each <= cap < 2^63: cannot wrap */
    size_t width = (size_t)((uint64_t)cap < total ? (uint64_t)cap : total);
    int exact = n == 0 || (double)n * ((double)width + 1) <= (double)o->dp_limit;
    st = exact ? solve_dp(items, n, width, chosen) : solve_greedy(items, n, cap, chosen);
    if (st == GGL_OK)
        st = json_result(o->host, describe(payload, chosen, n, exact), r);
fail:
    free(chosen);
    free(items);
    json_decref(payload);
    return st;
}

static const struct ggl_processor vtable = {
    .size = sizeof(struct ggl_processor),
    .flags = GGL_READS_CONCURRENT,
    .open = opt_open,
    .close = opt_close,
    .task_types = opt_types,
    .process = opt_process,
};

GGL_PLUGIN_DEFINE(GGL_KIND_PROCESSOR, "optimization", "0.1.0",
                  "0/1 knapsack: exact DP within a size limit, greedy by ratio beyond",
                  settings, &vtable);
