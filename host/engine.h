/* The processing engine (the seed's ProcessingEngine): a bounded priority queue per task
 * type in front of the processing pool, per-type weights that a monitor rebalances,
 * deadlines, retries with backoff, results with expiry and parked waiters, stats. */
#ifndef GGL_HOST_ENGINE_H
#define GGL_HOST_ENGINE_H

#include <stddef.h>
#include <stdint.h>
#include <ganglion/ganglion.h>

#include "backoff.h"
#include "results.h"

#define ENGINE_MAX_TYPES 16 /* task types (POOL_MAX_TYPES) */
#define ENGINE_TYPE_NAME 32

/* A processor the engine may call: an open instance, or a test's own vtable. */
struct engine_processor {
    const char *label;                   /* "processor/echo[echo]"; borrowed */
    const struct ggl_processor *vt;
    void *self;
};

struct engine_weight {
    char type[ENGINE_TYPE_NAME];
    unsigned weight;
};

struct engine_config {
    size_t queue_capacity;      /* tasks admitted and unfinished, per type */
    size_t critical_reserve;    /* of each type's queue, for GGL_PRIO_CRITICAL only */
    uint64_t age_ms;            /* ageing step of the priority queues */
    size_t max_results, max_waiters, max_result_bytes;
    uint64_t result_ttl_ms;
    uint64_t default_timeout_ms;/* a task without a timeout gets this; 0: none */
    uint64_t stuck_grace_ms;    /* a worker still in a task this long past its deadline is
                                 * abandoned and its processor marked failed */
    unsigned max_retries;       /* default and upper bound of a task's retries */
    struct backoff backoff;
    unsigned min_workers, max_workers;
    unsigned grow_depth;        /* grow when more tasks than this are queued per worker */
    uint64_t idle_ms;           /* retire a worker above min idle this long */
    uint64_t monitor_ms;        /* monitor period (real time); 0: only engine_maintain() */
    int timer_threads;          /* 0 (tests): no monitor or results timer thread */
    struct engine_weight weights[ENGINE_MAX_TYPES]; /* base weights by type (default 1) */
    size_t n_weights;
    int evict_results;          /* a full result store evicts its oldest finished result
                                 * (results.h evict_unread) instead of refusing tasks */
};

/* What a submitter asks for.  Payload is copied. */
struct engine_task_spec {
    const char *type;
    const void *payload;
    size_t payload_len;
    enum ggl_priority priority;
    uint64_t timeout_ms;        /* 0: the default */
    int max_retries;            /* < 0: the default; capped at the config's */
    uint64_t parent;            /* 0, or the id of the task that submitted it */
};

struct engine;

/* Defaults for every field (what an empty `engine` section gives). */
void engine_config_defaults(struct engine_config *cfg);

/* Start the engine over processors[n] (borrowed, must outlive it).  A type is served by
 * the first processor declaring it.  NULL when the config or threads fail. */
struct engine *engine_new(const struct engine_config *cfg, const struct engine_processor *procs,
                          size_t n);
/* Shutdown, part one: refuse new tasks, let queued and running ones finish until the
 * host clock passes deadline_ms (real waits, no polling), then cancel what is left
 * (reported cancelled), answer parked waiters and stop the workers.  Results stay
 * readable.  Returns how many tasks were cancelled. */
size_t engine_stop(struct engine *e, uint64_t deadline_ms);
/* Part two, once nothing can call in any more (the control socket stopped). */
void engine_free(struct engine *e);

/* Submit a task.  GGL_OK with *id; GGL_RETRY when its type's queue or the result store is
 * full or the engine stops (-BUSY); GGL_NOTFOUND for a type no processor serves;
 * GGL_INVALID for a bad spec.  `done` (may be NULL) runs once on a host thread with the
 * outcome: status GGL_OK with the data; GGL_ERROR failed (retries exhausted too),
 * GGL_INVALID, GGL_RETRY timed out, GGL_NOTFOUND cancelled.  A timeout's callback runs
 * at the deadline (on the monitor); a cancelled task's when its holder lets go of it.
 * A refusal's reason goes through hostapi_set_reason. */
enum ggl_status engine_submit(struct engine *e, const struct engine_task_spec *spec,
                              ggl_done_fn done, void *arg, uint64_t *id);
/* Cancel a task: 1 cancelled (it will not start, or its late result is discarded),
 * 0 already finished, -1 unknown. */
int engine_cancel(struct engine *e, uint64_t id);
/* The result store (TASK.RESULT / TASK.STATUS answer from it). */
struct results *engine_results(struct engine *e);

/* One monitor pass: time out running tasks past their deadline, abandon workers stuck
 * past it, queue retries that are due, rebalance weights, grow or shrink the pool,
 * publish the INFO figures.  The monitor thread runs it every monitor_ms and at retry
 * due times; tests with a fake clock call it. */
void engine_maintain(struct engine *e);
/* The id of the task running on this thread (0 outside a task): sub-task parents. */
uint64_t engine_current_task(void);
/* 1 when the task running on this thread was cancelled or timed out (0 outside a task). */
int engine_task_cancelled(void);

struct engine_type_stats {
    char name[ENGINE_TYPE_NAME];
    size_t queued, running;
    double completed, failed, timed_out, retried, cancelled, invalid;
    double run_p50_ms, run_p99_ms, wait_p50_ms, wait_p99_ms;
    unsigned base_weight, weight;   /* configured, and as last rebalanced */
    unsigned assigned;              /* workers preferring this type */
    int processor_failed;
};
struct engine_stats {
    size_t n_types;
    struct engine_type_stats type[ENGINE_MAX_TYPES];
    unsigned workers, idle;
    double utilisation;             /* busy share of worker time since the last pass */
    double abandoned, steals;
};
void engine_stats(struct engine *e, struct engine_stats *out);
/* How many task types have their processor marked failed; their names, comma-separated,
 * into out.  Reads only atomics: safe from any thread while the engine runs. */
size_t engine_failed_types(struct engine *e, char *out, size_t len);

/* The engine the control commands and the submit_task service use (NULL: none). */
void engine_set_global(struct engine *e);
/* Serve every type the processor old_self serves with np instead (copied); calls in
 * flight finish on the old one.  -1 (reason set) when np lacks one of those types or
 * the room for swapped-in processors is used up. */
int engine_replace_processor(struct engine *e, const void *old_self,
                             const struct engine_processor *np);
/* Calls in flight on processor instance self plus the worker threads that still owe it a
 * thread_fini, or -1 while a type is still served by it. */
long engine_processor_refs(struct engine *e, const void *self);
struct engine *engine_global(void);

#endif
