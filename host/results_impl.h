/* Private to results.c (entries, the life of an id) and results_wait.c (parked
 * waiters, the timer thread, replies): the store's structures and shared helpers. */
#ifndef GGL_HOST_RESULTS_IMPL_H
#define GGL_HOST_RESULTS_IMPL_H

#include <pthread.h>
#include <stdatomic.h>

#include "metrics.h"
#include "offload.h"
#include "results.h"

struct waiter;

struct result_entry {
    uint64_t id;
    _Atomic uint64_t tag;            /* id << 2 | enum result_state; 0 when unused: a
                                      * lock-free start (results_start_handle) checks both */
    enum result_status status;
    uint64_t finished_ms;
    void *data;
    size_t len;
    char *reason;
    struct result_entry *chain;             /* hash bucket */
    struct result_entry *older, *newer;     /* finished FIFO */
    struct waiter *waiters;          /* parked on this id */
};

struct waiter {
    struct job *job;
    struct result_entry *e;
    uint64_t deadline_ms;
    size_t heap_at;
    struct waiter *prev, *next;      /* the entry's list */
};

#define RESULTS_SLAB 256 /* entries allocated at once; freed ones are reused */

struct result_slab {
    struct result_slab *next;
    struct result_entry e[RESULTS_SLAB];
};

struct results {
    struct results_config cfg;
    pthread_mutex_t lock;
    pthread_cond_t timer_cond;
    pthread_t timer;
    int have_timer, stopping, waiters_closed;
    struct result_entry **buckets;
    struct result_entry *spare;      /* unused entries (chained), from slabs */
    struct result_slab *slabs;
    size_t mask, held, finished;
    uint64_t next_id;
    uint64_t gen;                    /* tells stores apart in threads' reserve caches */
    struct result_entry *oldest, *newest;   /* finished FIFO */
    struct waiter **heap;
    size_t n_waiters;
    struct results_stats st;
    struct ggl_metric *m_refused, *m_expired, *m_late, *m_oversized, *m_wrefused, *m_held,
        *m_evicted, *m_waiters;
};

static inline enum result_state entry_state(const struct result_entry *e)
{
    return (enum result_state)(atomic_load((_Atomic uint64_t *)&e->tag) & 3u);
}

static inline void entry_set_state(struct result_entry *e, enum result_state s)
{
    atomic_store(&e->tag, e->id << 2 | (uint64_t)s);
}

/* results.c (lock held) */
struct result_entry *find_live(struct results *r, uint64_t id);
uint64_t purge_expired(struct results *r, uint64_t now);
/* results_wait.c: a view of e (data borrowed) */
void view_of(const struct result_entry *e, struct result_view *v);
/* results_wait.c: answer e's waiters (lock held), adding their jobs to *done; then,
 * without the lock, hand the jobs back */
void release_waiters(struct results *r, struct result_entry *e, int closing, struct job **done);
void complete_all(struct results *r, struct job *list);
void *timer_main(void *arg);

#endif
