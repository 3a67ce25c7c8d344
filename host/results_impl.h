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

/* An entry's tag: id << TAG_SHIFT | TAG_* flags | enum result_state; 0 when unused.
 * Every change of state is a compare-and-swap on it, so a worker can finish its task
 * without the store's lock (results_finish_ok) while others cancel, time out, park on
 * or read the id under the lock; and a stale handle's start fails. */
#define TAG_SHIFT 4
#define TAG_STATE 3u
#define TAG_SETTLING 4u   /* a lock-free finish is writing the outcome: it has won */
#define TAG_WAITED 8u     /* requests are parked on it: it is finished under the lock */

struct result_entry {
    uint64_t id;
    _Atomic uint64_t tag;
    enum result_status status;       /* the outcome: written before the tag says done */
    uint64_t finished_ms;
    void *data;
    size_t len;
    char *reason;
    _Atomic(struct result_entry *) newer;   /* finished FIFO (see fifo_push) */
    struct waiter *waiters;          /* parked on this id (lock) */
};

struct waiter {
    struct job *job;
    struct result_entry *e;
    uint64_t deadline_ms;
    size_t heap_at;
    struct waiter *prev, *next;      /* the entry's list */
};

/* Entries live in a table indexed by id (id & mask), of at least twice max_results
 * slots, allocated a chunk at a time as ids first reach it.  Ids are handed out in
 * sequence, so the entries a stream of tasks touches, and the oldest results it evicts,
 * are neighbours in memory: the CPU's prefetcher fetches them ahead (a chained hash
 * and a spare list scattered them, and each eviction cost dependent cache misses). */
#define RESULTS_CHUNK_SHIFT 10
#define RESULTS_CHUNK ((size_t)1 << RESULTS_CHUNK_SHIFT)

struct results {
    struct results_config cfg;
    pthread_mutex_t lock;
    pthread_cond_t timer_cond;
    pthread_t timer;
    int have_timer, stopping, waiters_closed;
    struct result_entry **chunks;    /* table of mask + 1 slots, RESULTS_CHUNK a chunk */
    size_t mask, chunk_mask, held;
    size_t removed;                  /* finished entries taken out of the FIFO */
    uint64_t purge_at;               /* a full store's reserve purges from then on */
    uint64_t next_id;
    uint64_t gen;                    /* tells stores apart in threads' reserve caches */
    /* Finished entries in finish order: a multi-producer queue (any thread appends
     * without the lock, one exchange per batch) that the lock's holder consumes from
     * the oldest end, through a stub entry (Vyukov's intrusive MPSC queue).  The end
     * the finishers write has a cache line of its own, away from what reserves touch. */
    struct result_entry *fifo_head;  /* lock */
    struct result_entry stub;
    _Atomic(struct result_entry *) fifo_tail __attribute__((aligned(64)));
    _Atomic size_t pushed;           /* entries ever appended (finished = pushed - removed) */
    char fifo_pad[64 - sizeof(void *) - sizeof(size_t)];
    struct waiter **heap;
    size_t n_waiters;
    struct results_stats st;
    struct ggl_metric *m_refused, *m_expired, *m_late, *m_oversized, *m_wrefused, *m_held,
        *m_evicted, *m_waiters;
};

static inline enum result_state entry_state(const struct result_entry *e)
{
    return (enum result_state)(atomic_load((_Atomic uint64_t *)&e->tag) & TAG_STATE);
}

static inline uint64_t tag_for(uint64_t id, enum result_state s)
{
    return id << TAG_SHIFT | (uint64_t)s;
}

/* results.c: mark pending e as having parked requests (lock held): 0, or -1 when it is
 * done (a lock-free finish got there first). */
int entry_mark_waited(struct result_entry *e);
/* results.c: id's entry (lock held), NULL when the store holds no such id. */
struct result_entry *entry_find(struct results *r, uint64_t id);
/* results.c: append the n entries first..last (linked by newer, already done) to the
 * finished FIFO, counted in pushed; any thread, no lock. */
void fifo_push(struct results *r, struct result_entry *first, struct result_entry *last, size_t n);

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
