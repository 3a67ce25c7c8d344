/* Pool sizing.  The seed's formulas (agent-architecture.md section 6) give each pool a
 * size from the usable cores; ganglion changes three things (DESIGN.md section 4):
 *  - CPU-bound work shares ONE processing pool of `physical` workers; the seed's
 *    per-type counts (reasoning, planning, learning, optimization) become weights;
 *  - only pools that block on I/O (memory reads/writes, actions) may exceed the cores;
 *  - a global thread cap (seed: max_pool_size = logical x 8) holds: when the sizes add
 *    up to more, the I/O pools shrink in proportion (never below 1), and the headroom
 *    left under the cap is what they may grow into.
 * The `pools` config section overrides any figure (0 = derive); values are clamped. */
#include "ggl-build.h"

#include <stddef.h>
#include <string.h>

#include "sizing.h"

const char *const proc_type_names[PROC_TYPES] = {"reasoning", "planning", "learning",
                                                 "optimization"};

#define PC(field) offsetof(struct pools_conf, field)
#define SIZE_KEY(name, id, help) \
    {name, GGL_SETTING_INT, PC(size[id]), "0", 0, 4096, "workers (0 = " help ")"}
#define WEIGHT_KEY(name, id, help) \
    {name, GGL_SETTING_INT, PC(weight[id]), "0", 0, 1000, "processing weight (0 = " help ")"}

/* pools { ... }: every key is optional. */
static const struct conf_key pool_keys[] = {
    {"physical_cores", GGL_SETTING_INT, PC(physical), "0", 0, 4096, "cores to size for (0 = detected)"},
    {"logical_cpus", GGL_SETTING_INT, PC(logical), "0", 0, 4096, "CPUs to size for (0 = detected)"},
    SIZE_KEY("memory_read", POOL_MEMORY_READ, "logical x 2"),
    SIZE_KEY("memory_write", POOL_MEMORY_WRITE, "physical x 2"),
    SIZE_KEY("memory_maintenance", POOL_MEMORY_MAINTENANCE, "max(1, physical / 4)"),
    SIZE_KEY("processing", POOL_PROCESSING, "physical"),
    SIZE_KEY("action_execution", POOL_ACTION_EXECUTION, "min(physical x 2, pool_max)"),
    SIZE_KEY("action_feedback", POOL_ACTION_FEEDBACK, "max(2, physical)"),
    SIZE_KEY("action_recovery", POOL_ACTION_RECOVERY, "max(1, physical / 2)"),
    SIZE_KEY("environment_monitor", POOL_ENV_MONITOR, "1"),
    SIZE_KEY("environment_health", POOL_ENV_HEALTH, "1"),
    SIZE_KEY("environment_state", POOL_ENV_STATE, "2"),
    WEIGHT_KEY("weight_reasoning", PROC_REASONING, "physical"),
    WEIGHT_KEY("weight_planning", PROC_PLANNING, "physical"),
    WEIGHT_KEY("weight_learning", PROC_LEARNING, "max(1, physical - 1)"),
    WEIGHT_KEY("weight_optimization", PROC_OPTIMIZATION, "physical"),
    {"max_threads", GGL_SETTING_INT, PC(max_threads), "0", 0, 65536, "global thread cap (0 = logical x 8)"},
    {"pool_max", GGL_SETTING_INT, PC(pool_max), "0", 0, 4096, "most workers one pool may have (0 = logical x 4)"},
    {"queue_capacity", GGL_SETTING_INT, PC(queue_capacity), "4096", 16, 16777216,
     "items a task or action queue holds, ready or delayed; beyond that -BUSY"},
    {"critical_reserve", GGL_SETTING_INT, PC(critical_reserve), "64", 0, 1048576,
     "queue slots only critical items may take (clamped to a quarter of the queue)"},
    {"age_ms", GGL_SETTING_INT, PC(age_ms), "1000", 0, 3600000,
     "a waiting item competes one priority higher per age_ms (0 = strict priority)"},
    {"worker_queue", GGL_SETTING_INT, PC(worker_queue), "1024", 1, 1048576, "tasks each pool worker queues"},
    {"grow_depth", GGL_SETTING_INT, PC(grow_depth), "8", 1, 1048576, "grow a pool past its size when queued tasks per worker exceed this"},
    {"idle_ms", GGL_SETTING_INT, PC(idle_ms), "30000", 0, 86400000, "a worker above its pool's size retires after this idle time"},
    {"monitor_ms", GGL_SETTING_INT, PC(monitor_ms), "100", 1, 60000, "pool maintenance period: stuck workers, grow, retire"},
    {"task_deadline_ms", GGL_SETTING_INT, PC(task_deadline_ms), "30000", 0, 86400000,
     "a worker inside one plugin call longer than this is abandoned and replaced (0 = never)"},
};

static const struct {
    const char *name;
    int io_bound;
} pool_info[POOL_COUNT] = {
    {"memory_read", 1},        {"memory_write", 1},    {"memory_maintenance", 0},
    {"processing", 0},         {"action_execution", 1}, {"action_feedback", 1},
    {"action_recovery", 1},    {"environment_monitor", 0}, {"environment_health", 0},
    {"environment_state", 0},
};

int sizing_read(const struct config *c, struct pools_conf *pc, struct conf_error *err)
{
    memset(pc, 0, sizeof *pc);
    return config_read_section(c, c ? c->pools : NULL, pool_keys,
                               sizeof pool_keys / sizeof pool_keys[0], pc, err);
}

static unsigned max_u(unsigned a, unsigned b) { return a > b ? a : b; }
static unsigned min_u(unsigned a, unsigned b) { return a < b ? a : b; }

/* The seed's formula for pool `id`, and its text. */
static unsigned formula(enum pool_id id, const struct sizing *s, const char **text)
{
    unsigned p = s->physical, l = s->logical;
    static const char *const texts[POOL_COUNT] = {
        "logical x 2", "physical x 2", "max(1, physical / 4)", "physical",
        "min(physical x 2, pool_max)", "max(2, physical)", "max(1, physical / 2)",
        "1", "1", "2"};
    const unsigned values[POOL_COUNT] = {
        l * 2, p * 2, max_u(1, p / 4), p, min_u(p * 2, s->pool_max), max_u(2, p),
        max_u(1, p / 2), 1, 1, 2};
    *text = texts[id];
    return values[id];
}

static unsigned pick(int64_t set, unsigned derived, unsigned lo, unsigned hi)
{
    unsigned v = set > 0 ? (unsigned)set : derived;
    return v < lo ? lo : v > hi ? hi : v;
}

static void size_one(struct sizing *s, enum pool_id id, unsigned pool_max)
{
    struct pool_plan *pp = &s->pool[id];
    const char *text;
    unsigned f = formula(id, s, &text);
    int64_t set = s->conf.size[id];
    unsigned limit = pool_info[id].io_bound || id >= POOL_ENV_MONITOR ? pool_max : s->physical;
    pp->name = pool_info[id].name;
    pp->io_bound = pool_info[id].io_bound;
    pp->size = pick(set, f, 1, limit);
    int n = set > 0 ? snprintf(pp->why, sizeof pp->why, "pools.%s = %lld", pp->name, (long long)set)
                    : snprintf(pp->why, sizeof pp->why, "seed: %s = %u", text, f);
    if (pp->size != (set > 0 ? (unsigned)set : f) && n > 0)
        snprintf(pp->why + n, sizeof pp->why - (size_t)n, "; clamped to %u (%s)", pp->size,
                 limit == s->physical && !pp->io_bound ? "physical cores" : "pool_max");
    pp->max = pp->size;
}

static void append_why(struct pool_plan *pp, const char *fmt, unsigned v)
{
    size_t n = strlen(pp->why);
    snprintf(pp->why + n, sizeof pp->why - n, fmt, v);
}

/* Shrink the I/O pools in proportion until everything fits the cap; give them the
 * headroom left under it to grow into. */
static void apply_cap(struct sizing *s, unsigned pool_max)
{
    unsigned fixed = 0, io = 0;
    for (int i = 0; i < POOL_COUNT; i++)
        *(s->pool[i].io_bound ? &io : &fixed) += s->pool[i].size;
    if (fixed + io > s->max_threads) {
        unsigned room = s->max_threads > fixed ? s->max_threads - fixed : 0, scaled = 0;
        for (int i = 0; i < POOL_COUNT; i++) {
            struct pool_plan *pp = &s->pool[i];
            if (!pp->io_bound)
                continue;
            unsigned was = pp->size;
            pp->size = max_u(1, pp->size * room / io);
            pp->max = pp->size;
            scaled += pp->size;
            if (pp->size != was)
                append_why(pp, "; scaled down to fit the %u-thread cap", s->max_threads);
        }
        io = scaled;
    }
    unsigned head = fixed + io < s->max_threads ? s->max_threads - fixed - io : 0;
    for (int i = 0; i < POOL_COUNT && io; i++) {
        struct pool_plan *pp = &s->pool[i];
        if (pp->io_bound)
            pp->max = min_u(pool_max, pp->size + head * pp->size / io);
    }
    s->total = 0;
    for (int i = 0; i < POOL_COUNT; i++)
        s->total += s->pool[i].size;
}

void sizing_compute(const struct topology *t, const struct pools_conf *pc, struct sizing *s)
{
    memset(s, 0, sizeof *s);
    s->conf = *pc;
    s->physical = pick(pc->physical, t->physical, 1, 4096);
    s->logical = max_u(s->physical, pick(pc->logical, t->logical, 1, 4096));
    s->max_threads = pick(pc->max_threads, s->logical * 8, POOL_COUNT, 65536);
    s->pool_max = pick(pc->pool_max, s->logical * 4, 1, s->max_threads);
    for (int i = 0; i < POOL_COUNT; i++)
        size_one(s, (enum pool_id)i, s->pool_max);
    apply_cap(s, s->pool_max);
    const unsigned wf[PROC_TYPES] = {s->physical, s->physical, max_u(1, s->physical - 1), s->physical};
    for (int i = 0; i < PROC_TYPES; i++) {
        s->weight[i] = pick(pc->weight[i], wf[i], 1, 1000);
        snprintf(s->weight_why[i], sizeof s->weight_why[i], "%s", pc->weight[i] > 0 ? "set" : "seed");
    }
    if (s->conf.critical_reserve > s->conf.queue_capacity / 4)
        s->conf.critical_reserve = s->conf.queue_capacity / 4;
}

static void print_size(FILE *f, const char *label, uint64_t bytes)
{
    if (!bytes)
        fprintf(f, " %s none", label);
    else if (bytes >= 1024 * 1024)
        fprintf(f, " %s %llu MiB", label, (unsigned long long)(bytes >> 20));
    else
        fprintf(f, " %s %llu KiB", label, (unsigned long long)(bytes >> 10));
}

void sizing_print(FILE *f, const struct topology *t, const struct sizing *s)
{
    const struct pools_conf *c = &s->conf;
    fprintf(f, "machine: %u package(s), %u NUMA node(s), %u physical cores and %u logical CPUs "
               "bound to this process\ncaches:", t->packages, t->numa_nodes, t->bound_physical,
            t->bound_logical);
    print_size(f, "L1d", t->l1d);
    print_size(f, "L2", t->l2);
    print_size(f, "L3", t->l3);
    if (t->quota_cpus > 0)
        fprintf(f, "\ncgroup CPU quota: %.2f CPUs (%s)\n", t->quota_cpus, t->quota_source);
    else
        fprintf(f, "\ncgroup CPU quota: none (%s)\n", t->quota_source);
    fprintf(f, "sizing for: %u physical, %u logical%s\n", s->physical, s->logical,
            c->physical || c->logical ? " (pools.physical_cores/logical_cpus)" : "");
    fprintf(f, "thread cap: %u (%s); one pool at most %u (%s)\n\n", s->max_threads,
            c->max_threads ? "pools.max_threads" : "seed max_pool_size = logical x 8", s->pool_max,
            c->pool_max ? "pools.pool_max" : "seed max_threads = logical x 4");
    fprintf(f, "%-20s %5s %5s  %s\n", "pool", "size", "max", "why");
    for (int i = 0; i < POOL_COUNT; i++) {
        const struct pool_plan *pp = &s->pool[i];
        fprintf(f, "%-20s %5u %5u  %s (%s)\n", pp->name, pp->size, pp->max, pp->why,
                pp->io_bound ? "blocks on I/O" : i == POOL_PROCESSING || i == POOL_MEMORY_MAINTENANCE
                                                     ? "CPU-bound: at most physical"
                                                     : "lightweight");
    }
    fprintf(f, "total: %u threads of %u%s\n\nprocessing weights:", s->total, s->max_threads,
            s->total > s->max_threads ? " (the cap is below one worker per pool: raise max_threads)" : "");
    for (int i = 0; i < PROC_TYPES; i++)
        fprintf(f, " %s %u (%s)%s", proc_type_names[i], s->weight[i], s->weight_why[i],
                i + 1 < PROC_TYPES ? "," : "\n");
    fprintf(f, "queues: capacity %lld, critical reserve %lld, ageing step %lld ms\n",
            (long long)c->queue_capacity, (long long)c->critical_reserve, (long long)c->age_ms);
    fprintf(f, "workers: queue %lld each, grow past size when > %lld queued per worker, retire "
               "after %lld ms idle, maintenance every %lld ms, task deadline %lld ms\n",
            (long long)c->worker_queue, (long long)c->grow_depth, (long long)c->idle_ms,
            (long long)c->monitor_ms, (long long)c->task_deadline_ms);
}

int sizing_plan(const struct config *c, struct topology *t, struct sizing *s,
                struct conf_error *err)
{
    struct pools_conf pc;
    if (sizing_read(c, &pc, err) < 0 || topology_detect(t, err->msg, sizeof err->msg) < 0)
        return -1;
    sizing_compute(t, &pc, s);
    return 0;
}

int sizing_report(FILE *f, const struct config *c, struct conf_error *err)
{
    struct topology t;
    struct sizing s;
    if (sizing_plan(c, &t, &s, err) < 0)
        return -1;
    sizing_print(f, &t, &s);
    return 0;
}

void sizing_queue_config(const struct sizing *s, const char *name, struct queue_config *q)
{
    q->name = name;
    q->capacity = (size_t)s->conf.queue_capacity;
    q->critical_reserve = (size_t)s->conf.critical_reserve;
    q->age_ms = (uint64_t)s->conf.age_ms;
}

size_t sizing_pool_config(const struct sizing *s, enum pool_id id, struct pool_config *pc,
                          struct pool_type types[PROC_TYPES])
{
    const struct pool_plan *pp = &s->pool[id];
    size_t n = id == POOL_PROCESSING ? PROC_TYPES : 1;
    for (size_t i = 0; i < n; i++)
        types[i] = (struct pool_type){id == POOL_PROCESSING ? s->weight[i] : 1,
                                      (uint64_t)s->conf.task_deadline_ms};
    *pc = (struct pool_config){.name = pp->name, .min_workers = pp->size, .max_workers = pp->max,
                               .queue_capacity = (size_t)s->conf.queue_capacity,
                               .worker_queue = (size_t)s->conf.worker_queue,
                               .grow_depth = (unsigned)s->conf.grow_depth,
                               .idle_ms = (uint64_t)s->conf.idle_ms,
                               .monitor_ms = (uint64_t)s->conf.monitor_ms,
                               .types = types, .n_types = n};
    return n;
}
