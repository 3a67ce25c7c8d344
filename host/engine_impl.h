/* Private to the engine's files (engine.c: submission and workers; engine_monitor.c:
 * the monitor, rebalancing and stats): the engine, its types and its tasks. */
#ifndef GGL_HOST_ENGINE_IMPL_H
#define GGL_HOST_ENGINE_IMPL_H

#include <pthread.h>
#include <stdatomic.h>

#include <stdlib.h>

#include "blockpool.h"
#include "engine.h"
#include "latency.h"
#include "metrics.h"
#include "pool.h"
#include "queue.h"
#include "slot.h"

#define ENGINE_SPARE_PROCS 32     /* room for processors swapped in by PLUGIN.RELOAD */

struct eproc {                      /* a processor as the engine drives it */
    const struct engine_processor *p;
    int concurrent;                 /* GGL_READS_CONCURRENT: no serialising mutex */
    pthread_mutex_t serial;
    _Atomic int failed;             /* a worker got stuck in it: refuse its tasks */
    _Atomic int retired;            /* replaced (engine_swap.c): no type points at it */
    _Atomic long thread_states;     /* threads it ran thread_init on, thread_fini not yet */
    struct engine_processor own;    /* a swapped-in processor's copy (p points here) */
    struct {
        _Atomic long n;
    } __attribute__((aligned(64))) refs[REF_STRIPES]; /* calls in flight (engine_swap.c) */
};

struct etype {
    char name[ENGINE_TYPE_NAME];
    const char *label;              /* interned name: metric label outliving the engine */
    _Atomic(struct eproc *) proc;  /* swapped by engine_replace_processor */
    struct queue *q;
    /* Admitted and not yet settled (<= queue_capacity): admitted_in - released, two
     * counters on lines of their own, so a submit writes only what submits write and
     * a settle only what settles write (see admit_task). */
    _Atomic size_t admitted_in __attribute__((aligned(64)));
    _Atomic size_t released_seen;   /* a recent value of released (never above it) */
    _Atomic size_t released __attribute__((aligned(64)));
    /* its timed tasks ran long: time every one (engine.c); read by every submit and
     * task, written when it changes, so alone on a line that stays shared */
    _Atomic int time_all __attribute__((aligned(64)));
    /* what only workers write, from here on */
    unsigned base_weight __attribute__((aligned(64)));
    _Atomic unsigned weight;        /* as last rebalanced */
    _Atomic uint64_t wait_ns_sum, wait_n; /* since the last pass: for rebalancing */
    struct latency run, wait;
    _Atomic uint64_t outcomes[6];   /* by enum result_status, then [OUTCOME_RETRIED] */
    struct ggl_metric *completed, *failed, *timed_out, *retried, *cancelled, *invalid,
        *g_weight, *g_assigned, *g_queued, *g_admitted, *g_proc_failed, *g_run_p50, *g_run_p99,
        *g_wait_p50, *g_wait_p99;
};

#define OUTCOME_RETRIED 5

struct etask {
    uint64_t id, parent;
    struct result_handle *handle;   /* its entry in the result store: a start takes no lock */
    unsigned type;
    enum ggl_priority prio;
    unsigned attempt, max_retries;
    uint64_t deadline_ms;           /* host clock; 0 = none */
    uint64_t queued_ns;             /* when it was queued (monotonic), 0: not timed */
    _Atomic int settled;            /* callback run and admission released */
    int reported_stuck;
    ggl_done_fn done;
    void *arg;
    size_t len;
    unsigned char payload[];
};

/* A task's memory: a recycled block when it fits (see blockpool.h), else malloc's. */
static inline struct etask *task_alloc(size_t payload_len)
{
    size_t size = sizeof(struct etask) + payload_len;
    return size <= BLOCK_SIZE ? block_get() : malloc(size);
}

static inline void task_free(struct etask *t)
{
    if (sizeof *t + t->len <= BLOCK_SIZE)
        block_put(t);
    else
        free(t);
}

/* Tasks a loop takes from a queue at once while its tasks are short (engine.c). */
#define ENGINE_BATCH 8
#define ENGINE_SHORT_NS 20000
#define ENGINE_SAMPLE 4           /* short tasks timed: one in this many (engine.c) */
/* How long a loop that ran dry waits for more work before leaving (engine.c). */
#define ENGINE_LINGER_NS 30000

/* A token loop's record, on its stack and in e->loops while it runs: the task it runs
 * (the monitor times it out) and the tasks it took ahead of running them, which idle
 * loops may take and the monitor hands back to the queues should the loop get stuck. */
struct eloop {
    pthread_mutex_t mu;             /* the worker, a stealer, the monitor: rarely contended */
    struct etask *cur;
    _Atomic int running_type;       /* the type of the task it is in, -1 between tasks */
    /* Taken ahead, not started: ahead[head..end) of span = gen << 32 | head << 16 | end.
     * Only the loop fills ahead[] (when the span is empty, with a new gen) and takes
     * from head; a stealer or the monitor takes from the end: each claims by a
     * compare-and-swap on span, having copied the tasks first (engine_loop.c). */
    _Atomic(struct etask *) ahead[ENGINE_BATCH];
    _Atomic uint64_t span;
    struct edone {                  /* ran OK while more were ahead: results stored together */
        struct etask *t;
        void *data;
        size_t len;
    } done[ENGINE_BATCH];
    _Atomic unsigned n_done;        /* changed under mu; the loop peeks without it */
    struct eproc *held;             /* processor the loop holds a reference on (engine.c) */
    struct eloop *prev, *next;      /* e->loops, under e->mu */
};

/* The pool's idle hook (engine_life.c): a worker out of work runs the thread_fini it
 * owes replaced processors (engine.c). */
void engine_idle_hook(void *arg);

struct retry {                      /* a delayed retry: its token is due at due_ms */
    uint64_t due_ms;
    unsigned type;
};

struct engine {
    struct engine_config cfg;
    _Atomic int publish_done;       /* someone subscribed to task.done (monitor refreshes) */
    struct etype types[ENGINE_MAX_TYPES];
    size_t n_types;
    struct eproc *procs;            /* room for n_procs + ENGINE_SPARE_PROCS, never moved */
    _Atomic size_t n_procs;
    _Atomic unsigned retire_gen;    /* bumped by each swap: workers look for thread_fini to run */
    size_t procs_cap;
    struct pool *pool;
    struct results *results;
    _Atomic int stopping;
    _Atomic size_t tokens;          /* token loops on the pool, queued or running */
    _Atomic unsigned stuck;         /* tasks reported stuck, their thread not back yet */
    _Atomic size_t delayed;         /* retries waiting in the heap (n_retries, lock-free) */
    _Atomic unsigned thread_seq;    /* hands each worker thread its preference index */
    _Atomic unsigned char assign[64]; /* preferred type of worker index i % 64 */
    /* time spent in tasks, for utilisation: workers add to it, on a line of its own
     * (submits read tokens and stuck, just above, every time) */
    _Atomic uint64_t busy_ns __attribute__((aligned(64)));
    pthread_mutex_t mu __attribute__((aligned(64))); /* the loops list, the retry heap */
    pthread_cond_t cv;              /* the monitor thread sleeps on it */
    pthread_mutex_t drain_mu;       /* engine_stop waits on drain_cv for the last settle */
    pthread_cond_t drain_cv;
    struct eloop *loops;            /* token loops running (their tasks, for the monitor) */
    struct retry *retries;
    size_t n_retries, max_retries_heap;
    pthread_key_t thread_key;       /* a worker's thread_init record (engine.c) */
    int have_key;
    _Atomic int workers_gone;       /* pool joined: a late thread must not call fini */
    pthread_t monitor;
    int have_monitor, monitor_stop;
    uint64_t last_pass_ns;
    double utilisation;
    struct ggl_metric *g_workers, *g_util, *abandoned_tasks, *busy_refused;
};

/* engine.c */
void engine_thread_fini(void *record);  /* pthread key destructor */
size_t engine_unsettled(struct engine *e);
/* Tasks of ty admitted and not yet settled. */
size_t engine_admitted(struct etype *ty);
size_t engine_ready(struct engine *e);  /* the types' ready tasks together */
/* Store st (with reason) as t's outcome unless another came first; settle t. */
void engine_settle(struct engine *e, struct etask *t, enum result_status st, const char *reason);
/* engine_loop.c: a token loop's record in e->loops from enter to leave (leave hands
 * back what it still holds); its next task, NULL when there is none (batch: it may take
 * a batch); the task it runs, for the monitor; 1 when work came while it lingered. */
void engine_loop_enter(struct engine *e, struct eloop *l);
void engine_loop_leave(struct engine *e, struct eloop *l);
struct etask *engine_next_task(struct engine *e, struct eloop *l, int batch);
void engine_loop_running(struct eloop *l, struct etask *t);
int engine_ahead(struct eloop *l);      /* 1 while the loop has tasks taken ahead */
void engine_loop_ran(struct engine *e, struct eloop *l, struct etask *t);
int engine_linger(struct engine *e);
/* engine.c: store together the results of the tasks a loop finished and kept, and
 * settle them (the loop, or the monitor for a loop that may be stuck). */
void engine_flush_done(struct engine *e, struct eloop *l);
/* The monitor, e->mu held: hand the tasks a stuck loop took ahead back to their queues;
 * returns how many became ready again. */
size_t engine_hand_back(struct engine *e, struct eloop *l);
/* A task became ready: start one more token loop if fewer run than the work needs. */
void engine_wake(struct engine *e);
/* engine_swap.c: a reference on the processor serving type ty, and its release. */
struct eproc *engine_proc_get(struct etype *ty);
void engine_proc_put(struct eproc *p);
/* engine_monitor.c */
void engine_rebalance(struct engine *e);
void engine_publish(struct engine *e);
int engine_monitor_start(struct engine *e);
void engine_monitor_stop(struct engine *e);
void engine_schedule_retry(struct engine *e, unsigned type, uint64_t due_ms); /* mu held */
const char *engine_intern(const char *name);

#endif
