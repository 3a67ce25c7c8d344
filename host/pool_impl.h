/* Private to pool.c (workers, submission, life cycle) and poolmaint.c (stuck workers,
 * growing and retiring, the monitor thread): the slot and pool structures. */
#ifndef GGL_HOST_POOL_IMPL_H
#define GGL_HOST_POOL_IMPL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "metrics.h"
#include "pool.h"

#define ABANDONED UINT64_MAX

enum slot_state { SLOT_OFF, SLOT_ACTIVE, SLOT_RETIRING, SLOT_NEEDS_THREAD };

struct entry {
    pool_fn fn;
    void *arg;
    unsigned type;
};

struct worker {                   /* one thread's context; the thread frees it if abandoned */
    struct pool *pool;
    struct slot *slot;
    _Atomic uint64_t busy;        /* seq of the deadline task running, 0, or ABANDONED */
};

struct slot {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct entry *ring;           /* under mu */
    size_t mask, head, tail;
    _Atomic size_t depth;         /* tail - head, readable without mu */
    _Atomic int state;            /* enum slot_state; changed under mu */
    _Atomic int idle;             /* the worker found nothing and is about to sleep */
    int sleeping, kicked;         /* under mu */
    _Atomic uint64_t idle_since;  /* host ms */
    struct entry batch[POOL_BATCH]; /* being run; a replacement resumes at pos */
    size_t pos, n;
    _Atomic uint64_t task_start, task_deadline;
    unsigned task_type;
    uint64_t seq;
    struct worker *w;             /* under the pool's maint_mu */
    pthread_t tid;
} __attribute__((aligned(64)));

struct pool {
    struct slot *slots;
    unsigned n_slots, min, max;
    _Atomic unsigned active, idle;
    struct pool_type types[POOL_MAX_TYPES];
    size_t n_types;
    _Atomic size_t inflight[POOL_MAX_TYPES];
    size_t limit[POOL_MAX_TYPES];
    unsigned grow_depth;
    int no_steal;
    size_t batch;                 /* 1..POOL_BATCH */
    uint64_t idle_ms, monitor_ms;
    pool_fn idle_hook;
    void *idle_arg;
    pthread_mutex_t maint_mu;     /* one maintenance pass at a time; slot threads */
    unsigned backlog_passes;      /* consecutive passes that saw a backlog */
    struct pool *monitor_next;    /* the shared monitor's list (under its mutex) */
    uint64_t monitor_due;         /* CLOCK_MONOTONIC ms of the next pass */
    int monitored;
    struct ggl_metric *refused, *abandoned, *grown, *retired, *steals, *dropped, *workers;
};

/* pool.c */
int pool_start_worker(struct pool *p, struct slot *s);  /* caller holds maint_mu */
void pool_ask_to_leave(struct slot *s);

/* poolmaint.c */
void pool_join_worker(struct pool *p, struct slot *s);  /* caller holds maint_mu */
void pool_zombie_exit(struct worker *w);  /* an abandoned thread's last act */
size_t pool_queued(struct pool *p);
int pool_monitor_add(struct pool *p);      /* passes every monitor_ms from now on */
void pool_monitor_remove(struct pool *p);  /* returns once no pass is running on p */

#endif
