/* Pool sizes from the machine: the seed's formulas (agent-architecture.md section 6),
 * with CPU-bound work in one processing pool of `physical` workers and per-type
 * weights, I/O pools allowed past the core count, and a global thread cap.  Every
 * figure can be overridden in the config's `pools` section and is clamped. */
#ifndef GGL_HOST_SIZING_H
#define GGL_HOST_SIZING_H

#include <stdint.h>
#include <stdio.h>

#include "config.h"
#include "pool.h"
#include "queue.h"
#include "topology.h"

enum pool_id {
    POOL_MEMORY_READ, POOL_MEMORY_WRITE, POOL_MEMORY_MAINTENANCE, POOL_PROCESSING,
    POOL_ACTION_EXECUTION, POOL_ACTION_FEEDBACK, POOL_ACTION_RECOVERY,
    POOL_ENV_MONITOR, POOL_ENV_HEALTH, POOL_ENV_STATE, POOL_COUNT
};

/* Task types of the processing pool, weighted within it. */
enum proc_type { PROC_REASONING, PROC_PLANNING, PROC_LEARNING, PROC_OPTIMIZATION, PROC_TYPES };

/* The `pools` section as written; 0 means "derive it" for every size and weight. */
struct pools_conf {
    int64_t physical, logical;
    int64_t size[POOL_COUNT];
    int64_t weight[PROC_TYPES];
    int64_t max_threads, pool_max;
    int64_t queue_capacity, critical_reserve, age_ms;
    int64_t worker_queue, grow_depth, idle_ms, monitor_ms, task_deadline_ms;
};

struct pool_plan {
    const char *name;
    int io_bound;          /* may exceed the core count */
    unsigned size, max;    /* workers kept, and the most it may grow to */
    char why[192];
};

struct sizing {
    unsigned physical, logical, max_threads, pool_max, total;
    struct pool_plan pool[POOL_COUNT];
    unsigned weight[PROC_TYPES];
    char weight_why[PROC_TYPES][48];
    struct pools_conf conf;
};

extern const char *const proc_type_names[PROC_TYPES];

/* Read the `pools` section (c may be NULL: all defaults).  Errors are FILE:LINE. */
int sizing_read(const struct config *c, struct pools_conf *pc, struct conf_error *err);
/* Size every pool for machine t under the settings pc. */
void sizing_compute(const struct topology *t, const struct pools_conf *pc, struct sizing *s);
/* `ganglion --print-topology`: the machine, then every pool's size and why. */
void sizing_print(FILE *f, const struct topology *t, const struct sizing *s);
/* The settings a component gets from the sizing: a task/action queue named `name`
 * (borrowed), and pool `id` with its task types (the processing pool's four weighted
 * types, else one) written to types[]; returns how many types. */
void sizing_queue_config(const struct sizing *s, const char *name, struct queue_config *q);
size_t sizing_pool_config(const struct sizing *s, enum pool_id id, struct pool_config *pc,
                          struct pool_type types[PROC_TYPES]);
/* Read c's pools section (c may be NULL), detect the machine and size every pool. */
int sizing_plan(const struct config *c, struct topology *t, struct sizing *s,
                struct conf_error *err);
/* Read c's pools section (c may be NULL), detect the machine and print both. */
int sizing_report(FILE *f, const struct config *c, struct conf_error *err);

#endif
