/* Thread pool: per-worker bounded queues with batch submit and work stealing, workers
 * between min and max, per-type weighted admission, and abandonment of a worker stuck
 * past its task's deadline (a replacement takes its place; no pthread_cancel). */
#ifndef GGL_HOST_POOL_H
#define GGL_HOST_POOL_H

#include <stddef.h>
#include <stdint.h>
#include <ganglion/ganglion.h>

#define POOL_MAX_TYPES 16
#define POOL_BATCH 64 /* tasks a worker takes from a queue at once */

typedef void (*pool_fn)(void *arg);

struct pool_task {
    pool_fn fn;
    void *arg;
};

/* A task type: its share of the pool's admission capacity when contended, and the
 * time after which a worker running one is abandoned (0: trusted to return). */
struct pool_type {
    unsigned weight;
    uint64_t deadline_ms;
};

struct pool_config {
    const char *name;          /* metric label; borrowed, must outlive the pool */
    unsigned min_workers, max_workers;
    size_t queue_capacity;     /* tasks admitted and not finished, all types together */
    size_t worker_queue;       /* each worker's queue (rounded up to a power of two) */
    unsigned grow_depth;       /* grow when queued tasks per worker exceed this */
    uint64_t idle_ms;          /* host-clock idle time after which a worker above min retires */
    uint64_t monitor_ms;       /* real-time period of maintenance passes by the one monitor
                                * thread shared by all pools; 0: only pool_maintain() calls */
    const struct pool_type *types; /* n_types (1..POOL_MAX_TYPES); NULL: one type, weight 1 */
    size_t n_types;
    int no_steal;              /* benchmarks: measure what stealing buys */
    size_t batch;              /* tasks a worker takes at once (0: POOL_BATCH).  1 when a
                                * task may block: the rest stay stealable by idle workers */
    pool_fn idle_hook;         /* NULL, or run on a worker's own thread each time it runs
                                * out of work, before it sleeps (see pool_wake_all) */
    void *idle_arg;
};

struct pool_stats {
    unsigned workers, idle;
    size_t queued;
    double refused, abandoned, grown, retired, steals;
};

struct pool;

struct pool *pool_new(const struct pool_config *cfg);
/* Run every queued task, join the workers and free the pool.  Workers stuck past their
 * task's deadline are abandoned; their unstarted tasks are counted as dropped.  A task
 * of a type without a deadline is trusted and waited for.  No submits may race this. */
void pool_free(struct pool *p);

/* Queue one task of `type`.  GGL_RETRY when the type's share or the queues are full,
 * GGL_INVALID for an unknown type. */
enum ggl_status pool_submit(struct pool *p, unsigned type, pool_fn fn, void *arg);
/* Wake every sleeping worker: each runs the idle hook on its own thread and sleeps again
 * (the engine asks its workers to run a replaced processor's thread_fini so). */
void pool_wake_all(struct pool *p);
/* Queue up to n tasks, spread over the workers; returns how many were accepted. */
size_t pool_submit_batch(struct pool *p, unsigned type, const struct pool_task *tasks, size_t n);

/* Inside a running task of a type with a deadline: abandon this worker if the task is
 * still running ms from now (host clock), instead of the type's deadline.  A task that
 * learns its own deadline late (the engine, after taking a task from its queue) sets
 * it here.  No effect outside such a task. */
void pool_task_deadline(uint64_t ms);
/* Inside a task of a type with a deadline: has this worker been abandoned (it overran
 * and a replacement took its place)?  Then it should return without doing more. */
int pool_abandoned_self(void);
/* Live workers now. */
unsigned pool_workers(struct pool *p);

/* One maintenance pass (the shared monitor thread runs one every monitor_ms): abandon and
 * replace stuck workers, grow under backlog, retire idle workers above min. */
void pool_maintain(struct pool *p);
void pool_stats(struct pool *p, struct pool_stats *out);

/* Resource control: while on, no pool grows, and idle workers above min retire at the
 * next maintenance pass instead of after idle_ms. */
void pool_hold_at_min(int on);

/* Wait up to timeout_ms (real time) until no abandoned worker thread is still alive;
 * returns how many remain.  For shutdown and tests. */
unsigned pool_wait_abandoned(int64_t timeout_ms);

#endif
