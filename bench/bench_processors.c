/* Benchmark of the JSON processors (reasoning, planning, learning, optimization): each
 * built plugin is loaded from its .so and run on the test host.  For growing instances
 * it prints the time per task, the baseline of merely parsing the same payload with
 * jansson (ratio = task / parse), and the largest size that finishes within 10 ms.
 * usage: bench/bench_processors [PLUGIN_DIR]   (default: plugins/processor/.libs) */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include "testhost.h"

#define BUDGET_MS 10.0

typedef json_t *(*make_fn)(size_t size, uint64_t *seed);

static uint64_t next(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* Knapsack: size items, capacity 10 * size (so DP cells = 10 * size^2). */
static json_t *make_knapsack(size_t n, uint64_t *seed)
{
    json_t *items = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(items, json_pack("{s:I, s:I}", "weight", (json_int_t)(1 + next(seed) % 40),
                                               "value", (json_int_t)(next(seed) % 1000)));
    return json_pack("{s:I, s:o}", "capacity", (json_int_t)(10 * n), "items", items);
}

/* Planning: a size x size undirected grid with coordinates, corner to corner. */
static json_t *make_grid(size_t side, uint64_t *seed)
{
    json_t *edges = json_array(), *coords = json_object();
    char a[32], b[32];
    for (size_t x = 0; x < side; x++)
        for (size_t y = 0; y < side; y++) {
            snprintf(a, sizeof a, "%zu,%zu", x, y);
            json_object_set_new(coords, a, json_pack("[I, I]", (json_int_t)x, (json_int_t)y));
            for (int d = 0; d < 2; d++) {
                if ((d ? y : x) + 1 >= side)
                    continue;
                snprintf(b, sizeof b, "%zu,%zu", x + !d, y + d);
                json_array_append_new(edges, json_pack("{s:s, s:s, s:f}", "from", a, "to", b,
                                                       "cost", 1 + (double)(next(seed) % 100) / 100));
            }
        }
    snprintf(b, sizeof b, "%zu,%zu", side - 1, side - 1);
    return json_pack("{s:s, s:s, s:o, s:o, s:b}", "start", "0,0", "goal", b, "edges", edges,
                     "coords", coords, "undirected", 1);
}

/* Reasoning: size facts f<i>, size rules with two random premises, 5% given. */
static json_t *make_rules(size_t n, uint64_t *seed)
{
    json_t *facts = json_array(), *rules = json_array();
    char p[32], q[32], c[32];
    for (size_t i = 0; i < n; i++) {
        snprintf(p, sizeof p, "f%llu", (unsigned long long)(next(seed) % n));
        snprintf(q, sizeof q, "f%llu", (unsigned long long)(next(seed) % n));
        snprintf(c, sizeof c, "%sf%llu", next(seed) % 10 ? "" : "!", (unsigned long long)(next(seed) % n));
        json_array_append_new(rules, json_pack("{s:[s, s], s:s}", "if", p, q, "then", c));
        if (next(seed) % 20 == 0)
            json_array_append_new(facts, json_string(p));
    }
    return json_pack("{s:o, s:o}", "facts", facts, "rules", rules);
}

/* Learning: Thompson-sampling select among size arms (one Beta draw per arm). */
static json_t *make_select(size_t n, uint64_t *seed)
{
    json_t *arms = json_array();
    char a[32];
    (void)seed;
    for (size_t i = 0; i < n; i++) {
        snprintf(a, sizeof a, "arm%zu", i);
        json_array_append_new(arms, json_string(a));
    }
    return json_pack("{s:s, s:s, s:o, s:s}", "op", "select", "bandit", "bench", "arms", arms,
                     "algorithm", "thompson");
}

struct bench {
    const char *plugin, *unit;
    make_fn make;
    size_t first, typical;
    const char *const *pairs;
};

/* Mean milliseconds per call of process() (and of a bare parse) on one payload;
 * answers the task's status. */
static enum ggl_status measure(const struct ggl_processor *vt, void *self, const char *text, double *task, double *parse)
{
    size_t len = strlen(text);
    int reps = 0;
    enum ggl_status st;
    double t0 = now_ms();
    do {
        struct ggl_task t = {.size = sizeof t, .type = vt->task_types(self)[0], .payload = text, .payload_len = len};
        struct ggl_result r = {.size = sizeof r};
        st = vt->process(self, &t, &r);
        free(r.data);
    } while (st == GGL_OK && (++reps < 3 || now_ms() - t0 < 50));
    if (st != GGL_OK)
        return st;
    *task = (now_ms() - t0) / reps;
    t0 = now_ms(), reps = 0;
    do
        json_decref(json_loadb(text, len, 0, NULL));
    while (++reps < 3 || now_ms() - t0 < 50);
    *parse = (now_ms() - t0) / reps;
    return GGL_OK;
}

static void run(const char *dir, const struct bench *b)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s.so", dir, b->plugin);
    void *so = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    const struct ggl_plugin *entry = so ? dlsym(so, "ggl_plugin_entry") : NULL;
    if (!entry) {
        fprintf(stderr, "bench: %s: %s\n", path, dlerror());
        return;
    }
    const struct ggl_processor *vt = entry->vtable;
    void *self = testhost_open(entry, b->pairs, GGL_OK);
    size_t fits = 0;
    printf("%s (%s)\n  %10s %10s %12s %10s %8s\n", b->plugin, b->unit, "size", "bytes", "ms/task", "ms/parse", "ratio");
    for (size_t size = b->first;; size *= 2) {
        uint64_t seed = 1;
        json_t *payload = b->make(size, &seed);
        char *text = json_dumps(payload, JSON_COMPACT);
        json_decref(payload);
        double task, parse;
        if (measure(vt, self, text, &task, &parse) != GGL_OK) {
            printf("  %10zu: %s\n", size, testhost_reason());
            free(text);
            break;
        }
        printf("  %10zu %10zu %12.3f %10.3f %8.2f%s\n", size, strlen(text), task, parse, task / parse,
               size == b->typical ? "  <- typical" : "");
        free(text);
        if (task > BUDGET_MS || size >= ((size_t)1 << 20))
            break;
        fits = size;
    }
    printf("  largest size within %.0f ms: %zu\n\n", BUDGET_MS, fits);
    vt->close(self);
}

int main(int argc, char **argv)
{
    static const char *const dp[] = {"dp_limit", "1000000000", "max_payload", "100000000", NULL};
    static const char *const greedy[] = {"dp_limit", "0", "max_payload", "100000000", NULL};
    static const char *const big[] = {"max_payload", "100000000", "max_arms", "1000000", NULL};
    const struct bench benches[] = {
        {"optimization", "items, capacity 10 x items, exact DP", make_knapsack, 16, 128, dp},
        {"optimization", "items, greedy by ratio", make_knapsack, 256, 4096, greedy},
        {"planning", "grid side, side^2 states, A*", make_grid, 8, 32, big},
        {"reasoning", "rules and facts", make_rules, 128, 1024, big},
        {"learning", "arms in select, memory-backed", make_select, 4, 16, big},
    };
    const char *dir = argc > 1 ? argv[1] : "plugins/processor/.libs";
    testhost_init(0);
    for (size_t i = 0; i < sizeof benches / sizeof benches[0]; i++)
        run(dir, &benches[i]);
    testhost_fini();
    return 0;
}
