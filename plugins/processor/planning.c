/* processor/planning: cheapest plan over a graph of states and actions, by A* with a
 * Euclidean heuristic when every state has coordinates (Dijkstra otherwise).
 *
 * Payload: {"start": "s", "goal": "g",
 *           "edges": [{"from": "s", "to": "t", "cost": c >= 0, "action": "name"}, ...],
 *           "coords": {"s": [x, y] or [x, y, z], ...}, "undirected": false,
 *           "graph_key": "k", "submit": false}
 *   The graph is the payload's edges and coords plus, when "graph_key" is given, the
 *   object at memory key <memory_prefix>k of the same shape ("edges", "coords",
 *   "undirected").  Memory NOTFOUND/UNAVAILABLE leaves the payload's graph alone and is
 *   reported as "memory".  Costs lie in [0, 1e100], coordinates in [-1e100, 1e100].
 * Heuristic: h(n) = s * |n - goal| with s = min over edges of cost / |from - to| (edges
 *   of zero length left out).  Every edge then costs at least s times its length, so by
 *   the triangle inequality every path costs at least s times the straight-line
 *   distance: h never overestimates and is consistent.  Edges costing at least their
 *   length give s >= 1; a zero-cost edge between distinct points gives s = 0 (Dijkstra).
 * Result:  {"found": bool, "cost": c, "plan": [states], "steps": [{"from", "to",
 *           "action", "cost"}], "expanded": n, "heuristic": "euclidean"|"none",
 *           "heuristic_scale": s, "memory": status if read, "submitted": k,
 *           "submit_status": status if "submit" was asked} */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "json_util.h"

struct planning {
    const struct ggl_host *host;
    struct json_proc_conf pc;
    const char *prefix, *action_name;
    size_t max_nodes, max_edges;
};

struct edge {
    size_t from, to;
    double cost;
    const char *action;
};

/* The graph of one task: states are numbered by name. */
struct graph {
    struct json_names states;
    struct edge *edges;
    size_t nedges, cap_edges;
    double (*xyz)[3];
    char *has_xyz;
    size_t *first;     /* CSR: out-edges of v are order[first[v] .. first[v + 1]) */
    size_t *order;
};

struct search {
    double *g;
    size_t *via;       /* edge that reached the node, or SIZE_MAX */
    char *closed;
    struct { double f; size_t v; } *heap;
    size_t nheap;
    size_t expanded;
};

static const struct ggl_setting settings[] = {
    JSON_PROC_SETTINGS("planning"),
    GGL_SETTING("memory_prefix", GGL_SETTING_STRING, "graph/", "memory key prefix of graph_key"),
    GGL_SETTING("action_name", GGL_SETTING_STRING, "plan_step", "action for steps without one"),
    GGL_SETTING("max_nodes", GGL_SETTING_INT, "100000", "most states in one task"),
    GGL_SETTING("max_edges", GGL_SETTING_INT, "1000000", "most edges in one task"),
    GGL_SETTINGS_END};

static enum ggl_status plan_open(const struct ggl_host *host, const struct ggl_conf *conf, void **self)
{
    struct planning *p = calloc(1, sizeof *p);
    if (!p)
        return GGL_NOMEM;
    p->host = host;
    json_proc_conf_read(host, conf, &p->pc);
    p->prefix = "graph/";
    p->action_name = "plan_step";
    host->conf_string(conf, "memory_prefix", &p->prefix);
    host->conf_string(conf, "action_name", &p->action_name);
    p->max_nodes = (size_t)json_conf_int(host, conf, "max_nodes", 100000);
    p->max_edges = (size_t)json_conf_int(host, conf, "max_edges", 1000000);
    *self = p;
    return GGL_OK;
}

static void plan_close(void *self) { free(self); }

static const char *const *plan_types(void *self) { return ((struct planning *)self)->pc.types; }

/* The node number of `name`, adding it when new. */
static enum ggl_status node(struct planning *p, struct graph *gr, const json_t *name, size_t *out)
{
    if (!json_is_string(name))
        return json_invalid(p->host, "state names must be strings");
    return json_names_intern(p->host, &gr->states, json_string_value(name), json_string_length(name),
                             p->max_nodes, "states (max_nodes)", out);
}

static enum ggl_status add_edge(struct planning *p, struct graph *gr, const struct edge *e)
{
    if (gr->nedges >= p->max_edges)
        return json_invalid(p->host, "more than max_edges (%zu) edges", p->max_edges);
    struct edge *grown = json_reserve(gr->edges, &gr->cap_edges, gr->nedges + 1, sizeof *grown);
    if (!grown)
        return GGL_NOMEM;
    gr->edges = grown;
    gr->edges[gr->nedges++] = *e;
    return GGL_OK;
}

/* One element of "edges", both ways when undirected. */
static enum ggl_status read_edge(struct planning *p, struct graph *gr, const json_t *it, int undirected)
{
    struct edge e = {.cost = -1, .action = NULL};
    enum ggl_status st;
    if (!json_is_object(it))
        return json_invalid(p->host, "an edge must be an object");
    if ((st = node(p, gr, json_object_get(it, "from"), &e.from)) ||
        (st = node(p, gr, json_object_get(it, "to"), &e.to)) ||
        (st = json_opt_number(p->host, it, "cost", 0, 1e100, &e.cost)) ||
        (st = json_opt_string(p->host, it, "action", &e.action)))
        return st;
    if (e.cost < 0)
        return json_invalid(p->host, "an edge needs a \"cost\" in [0, 1e100]");
    if ((st = add_edge(p, gr, &e)) || !undirected)
        return st;
    struct edge back = {e.to, e.from, e.cost, e.action};
    return add_edge(p, gr, &back);
}

/* The edges of one graph document (the payload or a memory value). */
static enum ggl_status read_edges(struct planning *p, struct graph *gr, const json_t *doc)
{
    json_t *edges, *it;
    int undirected = 0;
    size_t i;
    enum ggl_status st;
    if ((st = json_opt_array(p->host, doc, "edges", p->max_edges, &edges)) ||
        (st = json_opt_bool(p->host, doc, "undirected", &undirected)))
        return st;
    json_array_foreach(edges, i, it)
        if ((st = read_edge(p, gr, it, undirected)))
            return st;
    return GGL_OK;
}

/* The coordinates of one graph document, once every state has its number. */
static enum ggl_status read_coords(struct planning *p, struct graph *gr, const json_t *doc)
{
    json_t *coords = json_object_get(doc, "coords"), *it;
    const char *name;
    if (coords && !json_is_object(coords))
        return json_invalid(p->host, "\"coords\" must be an object of [x, y(, z)] arrays");
    json_object_foreach((json_t *)coords, name, it) {
        size_t dims = json_array_size(it);
        if (dims < 2 || dims > 3)
            return json_invalid(p->host, "coords of \"%s\" must be [x, y] or [x, y, z]", name);
        double xyz[3] = {0, 0, 0};
        for (size_t d = 0; d < dims; d++) {
            json_t *c = json_array_get(it, d);
            xyz[d] = json_number_value(c);
            if (!json_is_number(c) || !(fabs(xyz[d]) <= 1e100))
                return json_invalid(p->host, "coords of \"%s\" must be numbers in [-1e100, 1e100]", name);
        }
        json_t *known = json_object_get(gr->states.index, name);
        if (!known)
            continue; /* a state no edge touches plays no part */
        size_t v = (size_t)json_integer_value(known);
        memcpy(gr->xyz[v], xyz, sizeof xyz);
        gr->has_xyz[v] = 1;
    }
    return GGL_OK;
}

static double distance(const struct graph *gr, size_t a, size_t b)
{
    return hypot(hypot(gr->xyz[a][0] - gr->xyz[b][0], gr->xyz[a][1] - gr->xyz[b][1]),
                 gr->xyz[a][2] - gr->xyz[b][2]);
}

/* The heuristic's scale s (see the top of the file), or -1 when some state has no
 * coordinates and the search must go without. */
static double heuristic_scale(const struct graph *gr, size_t n)
{
    double s = INFINITY;
    for (size_t v = 0; v < n; v++)
        if (!gr->has_xyz[v])
            return -1;
    for (size_t i = 0; i < gr->nedges; i++) {
        double d = distance(gr, gr->edges[i].from, gr->edges[i].to);
        if (d > 0 && gr->edges[i].cost / d < s)
            s = gr->edges[i].cost / d;
    }
    return isfinite(s) ? s : 0;
}

/* Counting sort of the edges by origin into CSR form. */
static void build_adjacency(struct graph *gr, size_t n)
{
    for (size_t i = 0; i < gr->nedges; i++)
        gr->first[gr->edges[i].from + 1]++;
    for (size_t v = 0; v < n; v++)
        gr->first[v + 1] += gr->first[v];
    size_t *fill = gr->first + n + 1; /* scratch after the index, n + 1 slots */
    memcpy(fill, gr->first, (n + 1) * sizeof *fill);
    for (size_t i = 0; i < gr->nedges; i++)
        gr->order[fill[gr->edges[i].from]++] = i;
}

static void heap_push(struct search *s, double f, size_t v)
{
    size_t i = s->nheap++;
    for (; i > 0 && s->heap[(i - 1) / 2].f > f; i = (i - 1) / 2)
        s->heap[i] = s->heap[(i - 1) / 2];
    s->heap[i].f = f, s->heap[i].v = v;
}

static size_t heap_pop(struct search *s)
{
    size_t top = s->heap[0].v, i = 0;
    double f = s->heap[--s->nheap].f;
    size_t v = s->heap[s->nheap].v;
    for (size_t c; (c = 2 * i + 1) < s->nheap; i = c) {
        if (c + 1 < s->nheap && s->heap[c + 1].f < s->heap[c].f)
            c++;
        if (s->heap[c].f >= f)
            break;
        s->heap[i] = s->heap[c];
    }
    s->heap[i].f = f, s->heap[i].v = v;
    return top;
}

/* A* from start to goal.  The heap holds at most one entry per relaxation, so it is
 * sized by the edge count; a consistent h means a closed state is final. */
static int astar(const struct graph *gr, struct search *s, size_t n, size_t start, size_t goal, double scale)
{
    for (size_t v = 0; v < n; v++)
        s->g[v] = INFINITY, s->via[v] = SIZE_MAX;
    s->g[start] = 0;
    heap_push(s, 0, start);
    while (s->nheap) {
        size_t u = heap_pop(s);
        if (s->closed[u])
            continue;
        s->closed[u] = 1;
        s->expanded++;
        if (u == goal)
            return 1;
        for (size_t k = gr->first[u]; k < gr->first[u + 1]; k++) {
            const struct edge *e = &gr->edges[gr->order[k]];
            double g = s->g[u] + e->cost;
            if (s->closed[e->to] || g >= s->g[e->to])
                continue;
            s->g[e->to] = g;
            s->via[e->to] = gr->order[k];
            heap_push(s, g + (scale > 0 ? scale * distance(gr, e->to, goal) : 0), e->to);
        }
    }
    return 0;
}

/* The plan's states and steps from start to goal, walking `via` back. */
static enum ggl_status plan_steps(const struct planning *p, const struct graph *gr,
                                  const struct search *s, size_t goal, json_t *plan, json_t *steps)
{
    size_t len = 0;
    for (size_t v = goal; s->via[v] != SIZE_MAX; v = gr->edges[s->via[v]].from)
        len++;
    size_t *path = calloc(len + 1, sizeof *path);
    if (!path)
        return GGL_NOMEM;
    for (size_t v = goal, k = len; k-- > 0; v = gr->edges[s->via[v]].from)
        path[k] = s->via[v];
    for (size_t k = 0; k < len; k++) {
        const struct edge *e = &gr->edges[path[k]];
        json_array_append(plan, json_array_get(gr->states.names, e->from));
        json_array_append_new(steps, json_pack("{s:O, s:O, s:s, s:f}",
                              "from", json_array_get(gr->states.names, e->from),
                              "to", json_array_get(gr->states.names, e->to),
                              "action", e->action ? e->action : p->action_name, "cost", e->cost));
    }
    json_array_append(plan, json_array_get(gr->states.names, goal));
    free(path);
    return json_array_size(steps) == len ? GGL_OK : GGL_NOMEM;
}

/* Hand each step to the host as an action; stops at the first refusal. */
static void submit_steps(const struct planning *p, const json_t *steps, json_t *res)
{
    const struct ggl_host *h = p->host;
    enum ggl_status st = GGL_UNAVAILABLE;
    size_t i, done = 0;
    json_t *step;
    if (GGL_HAS_SLOT(h, struct ggl_host, submit_action)) {
        st = GGL_OK;
        json_array_foreach(steps, i, step) {
            char *text = json_dumps(step, JSON_COMPACT);
            struct ggl_action a = {.size = sizeof a, .priority = GGL_PRIO_NORMAL,
                .name = json_string_value(json_object_get(step, "action")),
                .payload = text, .payload_len = text ? strlen(text) : 0};
            uint64_t id;
            st = text ? h->submit_action(h, &a, NULL, NULL, &id) : GGL_NOMEM;
            free(text);
            if (st != GGL_OK)
                break;
            done++;
        }
    }
    json_object_set_new(res, "submitted", json_integer((json_int_t)done));
    json_object_set_new(res, "submit_status", json_string(ggl_status_str(st)));
}

/* The graph document at memory key <prefix><graph_key>, when the payload names one. */
static enum ggl_status read_memory_doc(struct planning *p, const json_t *payload, json_t *res,
                                       json_t **doc)
{
    const char *key = NULL;
    enum ggl_status st = json_opt_string(p->host, payload, "graph_key", &key);
    *doc = NULL;
    if (st != GGL_OK || !key)
        return st;
    st = json_mem_get(p->host, p->prefix, key, p->pc.max_payload, doc);
    json_object_set_new(res, "memory", json_string(ggl_status_str(st)));
    return st == GGL_NOTFOUND || st == GGL_UNAVAILABLE ? GGL_OK : st;
}

static enum ggl_status alloc_graph(struct graph *gr, struct search *s, size_t n)
{
    gr->xyz = calloc(n + 1, sizeof *gr->xyz);
    gr->has_xyz = calloc(n + 1, 1);
    gr->first = calloc(2 * (n + 1), sizeof *gr->first);
    gr->order = calloc(gr->nedges + 1, sizeof *gr->order);
    s->g = calloc(n + 1, sizeof *s->g);
    s->via = calloc(n + 1, sizeof *s->via);
    s->closed = calloc(n + 1, 1);
    s->heap = calloc(gr->nedges + 2, sizeof *s->heap);
    return gr->xyz && gr->has_xyz && gr->first && gr->order && s->g && s->via && s->closed && s->heap
               ? GGL_OK : GGL_NOMEM;
}

static void free_graph(struct graph *gr, struct search *s)
{
    json_names_free(&gr->states);
    free(gr->edges), free(gr->xyz), free(gr->has_xyz), free(gr->first), free(gr->order);
    free(s->g), free(s->via), free(s->closed), free(s->heap);
}

/* Search the read graph and describe the outcome in res. */
static enum ggl_status answer(struct planning *p, struct graph *gr, struct search *s,
                              size_t start, size_t goal, int submit, json_t *res)
{
    size_t n = json_names_count(&gr->states);
    double scale = heuristic_scale(gr, n);
    build_adjacency(gr, n);
    int found = astar(gr, s, n, start, goal, scale);
    json_t *plan = json_array(), *steps = json_array();
    enum ggl_status st = found ? plan_steps(p, gr, s, goal, plan, steps) : GGL_OK;
    json_object_set_new(res, "found", json_boolean(found));
    json_object_set_new(res, "cost", found ? json_real(s->g[goal]) : json_null());
    json_object_set_new(res, "plan", plan);
    json_object_set_new(res, "expanded", json_integer((json_int_t)s->expanded));
    json_object_set_new(res, "heuristic", json_string(scale >= 0 ? "euclidean" : "none"));
    json_object_set_new(res, "heuristic_scale", json_real(scale >= 0 ? scale : 0));
    if (st == GGL_OK && submit && found)
        submit_steps(p, steps, res);
    json_object_set_new(res, "steps", steps);
    return st;
}

static enum ggl_status plan_process(void *self, const struct ggl_task *task, struct ggl_result *r)
{
    struct planning *p = self;
    struct graph gr = {0};
    struct search s = {0};
    json_t *payload = NULL, *doc = NULL, *res = json_object();
    size_t start, goal;
    int submit = 0;
    enum ggl_status st = GGL_NOMEM;
    if (json_names_init(&gr.states) || !res)
        goto fail;
    if ((st = json_parse_object(p->host, "payload", task->payload, task->payload_len,
                                p->pc.max_payload, &payload)) ||
        (st = json_opt_bool(p->host, payload, "submit", &submit)) ||
        (st = read_memory_doc(p, payload, res, &doc)) ||
        (doc && (st = read_edges(p, &gr, doc))) ||
        (st = read_edges(p, &gr, payload)))
        goto fail;
    if (!json_is_string(json_object_get(payload, "start")) ||
        !json_is_string(json_object_get(payload, "goal"))) {
        st = json_invalid(p->host, "\"start\" and \"goal\" must be state names");
        goto fail;
    }
    if ((st = node(p, &gr, json_object_get(payload, "start"), &start)) ||
        (st = node(p, &gr, json_object_get(payload, "goal"), &goal)) ||
        (st = alloc_graph(&gr, &s, json_names_count(&gr.states))) ||
        (doc && (st = read_coords(p, &gr, doc))) ||
        (st = read_coords(p, &gr, payload)) ||
        (st = answer(p, &gr, &s, start, goal, submit, res)))
        goto fail;
    st = json_result(p->host, res, r);
    res = NULL;
fail:
    json_decref(res);
    json_decref(doc);
    json_decref(payload);
    free_graph(&gr, &s);
    return st;
}

static const struct ggl_processor vtable = {
    .size = sizeof(struct ggl_processor),
    .flags = GGL_READS_CONCURRENT,
    .open = plan_open,
    .close = plan_close,
    .task_types = plan_types,
    .process = plan_process,
};

GGL_PLUGIN_DEFINE(GGL_KIND_PROCESSOR, "planning", "0.1.0",
                  "cheapest plan over states and actions (A* with a Euclidean heuristic)",
                  settings, &vtable);
