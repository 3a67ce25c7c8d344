/* processor/learning: multi-armed bandits (UCB1 or Thompson sampling) whose arm
 * statistics live in memory and are updated from reported rewards.
 *
 * Payload: {"op": "select", "bandit": "ads", "arms": ["a", "b"], "algorithm": "ucb1"}
 *          {"op": "report", "bandit": "ads", "arm": "a", "reward": r in [0, 1]}
 *          {"op": "stats",  "bandit": "ads"}
 *   "arms" may be left out of select to choose among the arms seen so far;
 *   "algorithm" ("ucb1" or "thompson") overrides the instance's setting.
 * Result:  select: {"arm": a, "index": i, "algorithm": ..., "score": s,
 *                   "stats": {"pulls": n, "reward": sum, "mean": m}, "store": ...}
 *          report: {"arm": a, "stats": {...}, "store": ...}
 *          stats:  {"arms": {a: {...}, ...}, "store": ...}
 *   "store" is "memory" or "instance" (see below).
 * UCB1 (Auer et al. 2002) plays each arm once, then the arm maximising
 *   mean + sqrt(exploration * ln N / n)   (exploration = 2 is the paper's constant).
 * Thompson sampling draws from Beta(1 + reward, 1 + pulls - reward) per arm and plays
 *   the largest draw: fractional rewards count as fractional successes.
 * Convergence (asserted by tests/unit/test_processor_learning.c on a seeded simulation
 *   of five Bernoulli arms 0.2, 0.35, ..., 0.8): UCB1 plays the best arm in >= 80% of
 *   pulls 1601-2000, Thompson sampling in >= 90% of pulls 801-1000.
 * Storage: each bandit is one JSON document {"arms": {a: {"pulls", "reward"}}} at
 *   memory key <memory_prefix><bandit>.  While memory answers GGL_UNAVAILABLE (today's
 *   host) the documents live in this instance instead, at most "max_bandits" of them,
 *   and are lost when it closes.
 * Threads: process() may run on many threads.  A bandit's read-update-write runs under
 *   one of 16 locks chosen by its name, which also guards the random generator seeded
 *   from "seed" (so one thread replays the same choices).  Another instance or host
 *   updating the same memory key at the same time can lose an update: the memory
 *   service offers no conditional write to plugins yet. */
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "json_util.h"

#define STRIPES 16

struct stripe {
    pthread_mutex_t lock;
    uint64_t rng;
    json_t *local;     /* bandit -> document, while memory is unavailable */
};

struct learning {
    const struct ggl_host *host;
    struct json_proc_conf pc;
    const char *prefix, *algorithm;
    double exploration;
    size_t max_arms, max_bandits;
    atomic_size_t nlocal;
    struct stripe stripes[STRIPES];
};

/* One task's view of a bandit. */
struct bandit {
    const char *name;
    json_t *doc, *arms;   /* arms: doc's "arms" object */
    int in_memory;
};

static const struct ggl_setting settings[] = {
    JSON_PROC_SETTINGS("learning"),
    GGL_SETTING("memory_prefix", GGL_SETTING_STRING, "bandit/", "memory key prefix of bandits"),
    GGL_SETTING("algorithm", GGL_SETTING_STRING, "ucb1", "ucb1 or thompson"),
    GGL_SETTING("exploration", GGL_SETTING_FLOAT, "2", "UCB1 exploration constant"),
    GGL_SETTING("seed", GGL_SETTING_INT, "1", "random seed (Thompson sampling)"),
    GGL_SETTING("max_arms", GGL_SETTING_INT, "1024", "most arms per bandit"),
    GGL_SETTING("max_bandits", GGL_SETTING_INT, "1024", "most bandits kept in the instance"),
    GGL_SETTINGS_END};

/* splitmix64 (Steele, Lea, Flood 2014): small, fast and seedable. */
static uint64_t next_random(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Uniform in (0, 1): never 0, so logarithms are safe. */
static double uniform(uint64_t *state) { return ((double)(next_random(state) >> 11) + 0.5) / 9007199254740992.0; }

static double normal(uint64_t *state)
{
    return sqrt(-2 * log(uniform(state))) * cos(2 * M_PI * uniform(state));
}

/* Gamma(a, 1) for a >= 1 by Marsaglia and Tsang (2000). */
static double gamma_draw(uint64_t *state, double a)
{
    double d = a - 1.0 / 3, c = 1 / sqrt(9 * d);
    for (;;) {
        double x = normal(state), v = 1 + c * x;
        if (v <= 0)
            continue;
        v = v * v * v;
        double u = uniform(state);
        if (log(u) < 0.5 * x * x + d - d * v + d * log(v))
            return d * v;
    }
}

static double beta_draw(uint64_t *state, double a, double b)
{
    double x = gamma_draw(state, a), y = gamma_draw(state, b);
    return x / (x + y);
}

static enum ggl_status learn_open(const struct ggl_host *host, const struct ggl_conf *conf, void **self)
{
    struct learning *l = calloc(1, sizeof *l);
    if (!l)
        return GGL_NOMEM;
    l->host = host;
    json_proc_conf_read(host, conf, &l->pc);
    l->prefix = "bandit/";
    l->algorithm = "ucb1";
    l->exploration = 2;
    host->conf_string(conf, "memory_prefix", &l->prefix);
    host->conf_string(conf, "algorithm", &l->algorithm);
    host->conf_float(conf, "exploration", &l->exploration);
    l->max_arms = (size_t)json_conf_int(host, conf, "max_arms", 1024);
    l->max_bandits = (size_t)json_conf_int(host, conf, "max_bandits", 1024);
    uint64_t seed = (uint64_t)json_conf_int(host, conf, "seed", 1);
    if (strcmp(l->algorithm, "ucb1") != 0 && strcmp(l->algorithm, "thompson") != 0) {
        host->set_reason(host, "algorithm must be ucb1 or thompson, not \"%s\"", l->algorithm);
        free(l);
        return GGL_INVALID;
    }
    for (int i = 0; i < STRIPES; i++) {
        l->stripes[i].rng = seed + (uint64_t)i * 0x632be59bd9b4e019ull;
        l->stripes[i].local = json_object();
        pthread_mutex_init(&l->stripes[i].lock, NULL);
    }
    *self = l;
    return GGL_OK;
}

static void learn_close(void *self)
{
    struct learning *l = self;
    for (int i = 0; i < STRIPES; i++) {
        json_decref(l->stripes[i].local);
        pthread_mutex_destroy(&l->stripes[i].lock);
    }
    free(l);
}

static const char *const *learn_types(void *self) { return ((struct learning *)self)->pc.types; }

static struct stripe *stripe_of(struct learning *l, const char *name)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (const char *p = name; *p; p++)
        h = (h ^ (uint8_t)*p) * 16777619u;
    return &l->stripes[h % STRIPES];
}

/* An arm's counts; a missing arm has none. */
static void arm_counts(const json_t *arms, const char *arm, double *pulls, double *reward)
{
    json_t *a = json_object_get(arms, arm);
    *pulls = (double)json_integer_value(json_object_get(a, "pulls"));
    *reward = json_number_value(json_object_get(a, "reward"));
}

static json_t *arm_stats(const json_t *arms, const char *arm)
{
    double pulls, reward;
    arm_counts(arms, arm, &pulls, &reward);
    return json_pack("{s:I, s:f, s:f}", "pulls", (json_int_t)pulls, "reward", reward,
                     "mean", pulls > 0 ? reward / pulls : 0.0);
}

/* A stored document is trusted only after this check: memory may hold anything. */
static enum ggl_status check_doc(struct learning *l, const json_t *doc)
{
    json_t *arms = json_object_get(doc, "arms"), *a;
    const char *name;
    if (!json_is_object(arms) || json_object_size(arms) > l->max_arms)
        return json_invalid(l->host, "stored bandit has no \"arms\" object of at most %zu arms", l->max_arms);
    json_object_foreach(arms, name, a) {
        json_t *p = json_object_get(a, "pulls"), *r = json_object_get(a, "reward");
        if (!json_is_integer(p) || !json_is_number(r) || json_integer_value(p) < 0 ||
            json_integer_value(p) > (json_int_t)1 << 52 || !(json_number_value(r) >= 0) ||
            json_number_value(r) > (double)json_integer_value(p))
            return json_invalid(l->host, "stored arm \"%s\" needs pulls >= 0 and 0 <= reward <= pulls", name);
    }
    return GGL_OK;
}

/* Load the bandit: from memory, else (memory unavailable) from the instance; a bandit
 * never seen starts with no arms. */
static enum ggl_status load(struct learning *l, struct stripe *s, struct bandit *b)
{
    enum ggl_status st = json_mem_get(l->host, l->prefix, b->name, l->pc.max_payload, &b->doc);
    b->in_memory = st != GGL_UNAVAILABLE;
    if (st == GGL_UNAVAILABLE)
        b->doc = json_incref(json_object_get(s->local, b->name));
    if (st == GGL_OK)
        st = check_doc(l, b->doc);
    else if (st == GGL_NOTFOUND || st == GGL_UNAVAILABLE)
        st = b->doc || (b->doc = json_pack("{s:{}}", "arms")) ? GGL_OK : GGL_NOMEM;
    else if (st != GGL_INVALID)
        l->host->set_reason(l->host, "memory read of bandit \"%s\" failed: %s", b->name, ggl_status_str(st));
    b->arms = json_object_get(b->doc, "arms");
    return st;
}

/* Keep the bandit in the instance: at most max_bandits of them. */
static enum ggl_status keep_here(struct learning *l, struct stripe *s, struct bandit *b)
{
    b->in_memory = 0;
    if (json_object_get(s->local, b->name) == b->doc)
        return GGL_OK; /* updated in place */
    if (atomic_fetch_add(&l->nlocal, 1) >= l->max_bandits) {
        atomic_fetch_sub(&l->nlocal, 1);
        l->host->set_reason(l->host, "instance store full: max_bandits (%zu) bandits", l->max_bandits);
        return GGL_ERROR;
    }
    if (json_object_set(s->local, b->name, b->doc)) {
        atomic_fetch_sub(&l->nlocal, 1);
        return GGL_NOMEM;
    }
    return GGL_OK;
}

/* Store an updated bandit: in memory, or in the instance while memory is unavailable. */
static enum ggl_status save(struct learning *l, struct stripe *s, struct bandit *b)
{
    char key[512];
    if (!b->in_memory)
        return keep_here(l, s, b);
    char *text = json_dumps(b->doc, JSON_COMPACT);
    int n = snprintf(key, sizeof key, "%s%s", l->prefix, b->name);
    enum ggl_status st = text ? l->host->mem_put(l->host, key, (size_t)n, text, strlen(text), 0, 0.5)
                              : GGL_NOMEM;
    free(text);
    if (st == GGL_UNAVAILABLE) /* memory went away since the read */
        return keep_here(l, s, b);
    if (st != GGL_OK)
        l->host->set_reason(l->host, "memory write of bandit \"%s\" failed: %s", b->name, ggl_status_str(st));
    return st;
}

/* The arms to choose among: the payload's list, else every arm seen. */
static enum ggl_status candidates(struct learning *l, const json_t *payload, const struct bandit *b,
                                  json_t **out)
{
    json_t *arms, *it;
    const char *name;
    size_t i;
    enum ggl_status st = json_opt_array(l->host, payload, "arms", l->max_arms, &arms);
    if (st != GGL_OK)
        return st;
    if (arms) {
        json_array_foreach(arms, i, it)
            if (!json_is_string(it))
                return json_invalid(l->host, "\"arms\" must list arm names");
        *out = json_incref(arms);
    } else {
        *out = json_array();
        json_object_foreach(b->arms, name, it)
            json_array_append_new(*out, json_string(name));
    }
    if (json_array_size(*out) == 0) {
        json_decref(*out);
        *out = NULL;
        return json_invalid(l->host, "select needs \"arms\" or a bandit with arms");
    }
    return GGL_OK;
}

/* Score of each arm under the algorithm; an unplayed arm scores +inf under UCB1. */
static double score(struct learning *l, struct stripe *s, int thompson, const json_t *arms,
                    const char *arm, double total)
{
    double pulls, reward;
    arm_counts(arms, arm, &pulls, &reward);
    if (thompson)
        return beta_draw(&s->rng, 1 + reward, 1 + pulls - reward);
    if (pulls == 0)
        return INFINITY;
    return reward / pulls + sqrt(l->exploration * log(total) / pulls);
}

static enum ggl_status do_select(struct learning *l, struct stripe *s, const json_t *payload,
                                 struct bandit *b, json_t *res)
{
    const char *algorithm = l->algorithm;
    json_t *arms = NULL, *it;
    size_t i, best = 0;
    double total = 0, best_score = -INFINITY, pulls, reward;
    enum ggl_status st = json_opt_string(l->host, payload, "algorithm", &algorithm);
    if (st != GGL_OK || (st = candidates(l, payload, b, &arms)) != GGL_OK)
        return st;
    int thompson = strcmp(algorithm, "thompson") == 0;
    if (!thompson && strcmp(algorithm, "ucb1") != 0) {
        json_decref(arms);
        return json_invalid(l->host, "\"algorithm\" must be \"ucb1\" or \"thompson\"");
    }
    json_array_foreach(arms, i, it) {
        arm_counts(b->arms, json_string_value(it), &pulls, &reward);
        total += pulls;
    }
    json_array_foreach(arms, i, it) {
        double sc = score(l, s, thompson, b->arms, json_string_value(it), total);
        if (sc > best_score)
            best = i, best_score = sc;
    }
    const char *arm = json_string_value(json_array_get(arms, best));
    json_object_set_new(res, "arm", json_string(arm));
    json_object_set_new(res, "index", json_integer((json_int_t)best));
    json_object_set_new(res, "algorithm", json_string(thompson ? "thompson" : "ucb1"));
    json_object_set_new(res, "score", isfinite(best_score) ? json_real(best_score) : json_null());
    json_object_set_new(res, "stats", arm_stats(b->arms, arm));
    json_decref(arms);
    return GGL_OK;
}

static enum ggl_status do_report(struct learning *l, const json_t *payload, struct bandit *b, json_t *res)
{
    const char *arm = NULL;
    double reward = -1, pulls, sum;
    enum ggl_status st;
    if ((st = json_opt_string(l->host, payload, "arm", &arm)) ||
        (st = json_opt_number(l->host, payload, "reward", 0, 1, &reward)))
        return st;
    if (!arm || !*arm || reward < 0)
        return json_invalid(l->host, "report needs \"arm\" (a name) and \"reward\" in [0, 1]");
    if (!json_object_get(b->arms, arm) && json_object_size(b->arms) >= l->max_arms)
        return json_invalid(l->host, "bandit \"%s\" already has max_arms (%zu) arms", b->name, l->max_arms);
    arm_counts(b->arms, arm, &pulls, &sum);
    if (json_object_set_new(b->arms, arm, json_pack("{s:I, s:f}", "pulls", (json_int_t)pulls + 1,
                                                    "reward", sum + reward)))
        return GGL_NOMEM;
    json_object_set_new(res, "arm", json_string(arm));
    json_object_set_new(res, "stats", arm_stats(b->arms, arm));
    return GGL_OK;
}

static enum ggl_status do_stats(const struct bandit *b, json_t *res)
{
    json_t *all = json_object(), *it;
    const char *name;
    json_object_foreach(b->arms, name, it)
        json_object_set_new(all, name, arm_stats(b->arms, name));
    return json_object_set_new(res, "arms", all) ? GGL_NOMEM : GGL_OK;
}

/* One operation on one bandit, under its stripe's lock. */
static enum ggl_status run_op(struct learning *l, const char *op, const json_t *payload, struct bandit *b,
                              json_t *res)
{
    struct stripe *s = stripe_of(l, b->name);
    enum ggl_status st;
    pthread_mutex_lock(&s->lock);
    if ((st = load(l, s, b)) == GGL_OK) {
        if (strcmp(op, "select") == 0)
            st = do_select(l, s, payload, b, res);
        else if (strcmp(op, "report") == 0 && (st = do_report(l, payload, b, res)) == GGL_OK)
            st = save(l, s, b);
        else if (strcmp(op, "stats") == 0)
            st = do_stats(b, res);
    }
    /* An instance-backed document is shared with other threads: its reference count
     * is released under the lock too (jansson reads it non-atomically in json_incref). */
    json_decref(b->doc);
    b->doc = b->arms = NULL;
    pthread_mutex_unlock(&s->lock);
    json_object_set_new(res, "store", json_string(b->in_memory ? "memory" : "instance"));
    return st;
}

static enum ggl_status learn_process(void *self, const struct ggl_task *task, struct ggl_result *r)
{
    struct learning *l = self;
    struct bandit b = {0};
    const char *op = NULL;
    json_t *payload = NULL, *res = json_object();
    enum ggl_status st = res ? GGL_OK : GGL_NOMEM;
    if (st || (st = json_parse_object(l->host, "payload", task->payload, task->payload_len,
                                      l->pc.max_payload, &payload)) ||
        (st = json_opt_string(l->host, payload, "op", &op)) ||
        (st = json_opt_string(l->host, payload, "bandit", &b.name)))
        goto fail;
    if (!op || (strcmp(op, "select") && strcmp(op, "report") && strcmp(op, "stats")) || !b.name || !*b.name) {
        st = json_invalid(l->host, "payload needs \"op\" (select, report or stats) and \"bandit\" (a name)");
        goto fail;
    }
    if ((st = run_op(l, op, payload, &b, res)) != GGL_OK)
        goto fail;
    json_object_set_new(res, "op", json_string(op));
    json_object_set_new(res, "bandit", json_string(b.name));
    st = json_result(l->host, res, r);
    res = NULL;
fail:
    json_decref(res);
    json_decref(payload);
    return st;
}

static const struct ggl_processor vtable = {
    .size = sizeof(struct ggl_processor),
    .flags = GGL_READS_CONCURRENT,
    .open = learn_open,
    .close = learn_close,
    .task_types = learn_types,
    .process = learn_process,
};

GGL_PLUGIN_DEFINE(GGL_KIND_PROCESSOR, "learning", "0.1.0",
                  "multi-armed bandits (UCB1, Thompson sampling) learning from reported rewards",
                  settings, &vtable);
