/* The bounded priority queue behind the task and action queues: per priority level a
 * lock-free ring of ready items, a min-heap of delayed items under a mutex, and one
 * condition variable (on CLOCK_MONOTONIC) for consumers that block.
 *
 * Bounds.  `capacity` counts ready and delayed items of every priority together; a
 * delayed retry holds its slot from admission, so a retry can never be refused later.
 * The last `critical_reserve` slots admit only GGL_PRIO_CRITICAL.  A refused push returns
 * GGL_RETRY and is counted in queue_refused_total.
 *
 * Ageing.  Within a priority items leave in arrival order.  Across priorities, the head
 * of each level competes at level  p - floor(waited / age_ms)  (never above critical),
 * and the lowest competing level wins, the earlier arrival on a tie.  So a low item
 * that waited 3 * age_ms competes as critical and, being older than any critical item
 * that arrived after it, is served: no item waits more than about 3 * age_ms plus the
 * time to serve what arrived before it.  A delayed item's wait counts from its due time.
 * Pops that ageing reordered are counted in queue_aged_total.
 *
 * Concurrency.  A push and a pop of ready items take no lock: the submitting thread and
 * the workers used to meet on the queue's mutex for every task, and spun there (a fifth
 * of the engine's CPU under a stream).  Admission is a compare-and-swap on `pushed`, a
 * word producers alone write, checked against `popped`, which consumers alone write,
 * through a copy that is read again only when the queue looks full.  Each level's ring
 * is Vyukov's bounded multi-producer, multi-consumer array: a cell's sequence word says
 * whether it is free or published for a given lap, a producer claims the tail and a
 * consumer claims a run of published cells at the head, each with one compare-and-swap.
 * A ring has a power of two >= capacity cells, so admission always finds room (a
 * consumer still copying out a cell a whole lap behind is waited for).  A deep queue
 * walks its ring in order, which the CPU prefetches; a ring of a few thousand cells with
 * an overflow list under the mutex was tried and was slower under a deep stream.  The
 * mutex guards the delayed heap and the sleep of blocking consumers only. */
#include "ggl-build.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "deadline.h"
#include "hostapi.h"
#include "lock.h"
#include "metrics.h"
#include "queue.h"

/* One ring cell.  seq is the lap's base (pos & ~mask) while the cell is free for the
 * push at pos, base + 1 once that push published it; a consumer frees it for the next
 * lap.  Zeroed memory is every cell free for lap 0. */
struct cell {
    _Atomic uint64_t seq;
    _Atomic(void *) item;
    _Atomic uint64_t t_ms; /* arrival, or due time for a promoted delayed item */
};

struct delayed {
    void *item;
    uint64_t due_ms;
    unsigned level;
};

#define CLOSED (1ull << 63) /* in pushed */

struct queue {
    /* Written by producers only. */
    _Alignas(64) _Atomic uint64_t pushed;   /* admitted ever: ready + delayed + popped; and
                                             * CLOSED, set by queue_close: no more counts */
    _Atomic uint64_t popped_seen;           /* a recent `popped`, never above it */
    _Atomic uint64_t tail[QUEUE_LEVELS];
    /* Written by consumers only. */
    _Alignas(64) _Atomic uint64_t popped;   /* taken ever (cells already freed) */
    _Atomic uint64_t head[QUEUE_LEVELS];
    /* Set once, or rarely. */
    _Alignas(64) _Atomic(struct cell *) ring[QUEUE_LEVELS]; /* allocated on first push */
    uint64_t mask;                          /* ring cells - 1 */
    size_t capacity, reserve;
    uint64_t age_ms;
    _Atomic unsigned waiters;               /* consumers asleep or about to be */
    _Atomic size_t delayed;                 /* heap_len, for the lock-free counts */
    _Atomic uint64_t next_due;              /* the heap's earliest due time; UINT64_MAX: none */
    struct ggl_metric *refused, *aged, *depth;
    /* The delayed items and the sleepers. */
    _Alignas(64) pthread_mutex_t mu;
    pthread_cond_t ready_cv;
    struct delayed *heap;                   /* min-heap on due_ms */
    size_t heap_len;
};

struct queue *queue_new(const struct queue_config *cfg)
{
    if (cfg->capacity == 0 || cfg->capacity >= UINT32_MAX || cfg->critical_reserve >= cfg->capacity)
        return NULL;
    struct queue *q;
    if (posix_memalign((void **)&q, 64, sizeof *q) != 0)
        return NULL;
    memset(q, 0, sizeof *q);
    q->heap = calloc(cfg->capacity, sizeof *q->heap);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    int cv_rc = pthread_cond_init(&q->ready_cv, &ca);
    pthread_condattr_destroy(&ca);
    if (!q->heap || cv_rc != 0) {
        if (cv_rc == 0)
            pthread_cond_destroy(&q->ready_cv);
        free(q->heap);
        free(q);
        return NULL;
    }
    mutex_init_adaptive(&q->mu);
    uint64_t cells = 1;
    while (cells < cfg->capacity)
        cells <<= 1;
    q->mask = cells - 1;
    q->capacity = cfg->capacity;
    q->reserve = cfg->critical_reserve;
    q->age_ms = cfg->age_ms;
    atomic_init(&q->next_due, UINT64_MAX);
    q->refused = metrics_register(GGL_METRIC_COUNTER, "queue_refused_total",
                                  "items refused because the queue was full", cfg->name);
    q->aged = metrics_register(GGL_METRIC_COUNTER, "queue_aged_total",
                               "items served ahead of higher priorities by ageing", cfg->name);
    q->depth = metrics_register(GGL_METRIC_GAUGE, "queue_depth",
                                "items queued, ready or delayed", cfg->name);
    return q;
}

void queue_free(struct queue *q)
{
    if (!q)
        return;
    pthread_cond_destroy(&q->ready_cv);
    pthread_mutex_destroy(&q->mu);
    for (int l = 0; l < QUEUE_LEVELS; l++)
        free(atomic_load(&q->ring[l]));
    free(q->heap);
    free(q);
}

/* --- counts (no lock) ------------------------------------------------------- */

/* pushed - popped - delayed, read in an order that can only overstate (popped first).
 * An item counted here may not be published yet: its producer is between its count and
 * its cell (ring_put), a few instructions.  The load of `pushed` is seq_cst: a consumer
 * that counted itself a waiter and then reads 0 here cannot miss the wake-up (see
 * wake_one). */
size_t queue_ready(const struct queue *q)
{
    struct queue *w = (struct queue *)q;
    uint64_t popped = atomic_load_explicit(&w->popped, memory_order_acquire);
    uint64_t pushed = atomic_load(&w->pushed) & ~CLOSED;
    size_t delayed = atomic_load_explicit(&w->delayed, memory_order_relaxed);
    int64_t n = (int64_t)(pushed - popped) - (int64_t)delayed;
    return n > 0 ? (size_t)n : 0;
}

size_t queue_length(struct queue *q)
{
    uint64_t popped = atomic_load(&q->popped);
    return (size_t)((atomic_load(&q->pushed) & ~CLOSED) - popped);
}

/* --- rings ---------------------------------------------------------------------- */

static uint64_t lap(const struct queue *q, uint64_t pos) { return pos & ~q->mask; }

static struct cell *cell_at(struct cell *ring, const struct queue *q, uint64_t pos)
{
    return &ring[pos & q->mask];
}

#define RING_TOUCH_MAX (64u << 20) /* bytes of ring written when allocated; beyond, lazily */

/* Level l's ring, allocated by the first push there (NULL: out of memory).  Its pages
 * are written once here: left to the first lap, a consumer reading a cell first would
 * map the shared zero page, and the producer's write after it would cost a copy and a
 * TLB shootdown of the other CPUs, in the middle of a stream (3% of a profile).  A ring
 * over RING_TOUCH_MAX (a queue_capacity in the millions) is left to fault in as it
 * fills rather than stall its first push for that long. */
static struct cell *ring_of(struct queue *q, unsigned l)
{
    struct cell *r = atomic_load_explicit(&q->ring[l], memory_order_acquire);
    if (r)
        return r;
    pthread_mutex_lock(&q->mu);
    size_t bytes = (q->mask + 1) * sizeof *r;
    if (!(r = atomic_load_explicit(&q->ring[l], memory_order_relaxed)) &&
        (r = bytes > RING_TOUCH_MAX ? calloc(q->mask + 1, sizeof *r) : malloc(bytes)) != NULL) {
        /* cell by cell, atomically: gcc turns malloc + memset(0) into calloc, which
         * leaves fresh pages untouched */
        for (uint64_t i = 0; bytes <= RING_TOUCH_MAX && i <= q->mask; i++) {
            atomic_init(&r[i].item, NULL);
            atomic_init(&r[i].t_ms, 0);
            atomic_store_explicit(&r[i].seq, 0, memory_order_relaxed);
        }
        atomic_store_explicit(&q->ring[l], r, memory_order_release);
    }
    pthread_mutex_unlock(&q->mu);
    return r;
}

/* Publish item at level l's tail.  Admission counted it below capacity, so the cell is
 * free, or about to be: a consumer a lap behind may still be copying it out. */
static void ring_put(struct queue *q, unsigned l, struct cell *ring, void *item, uint64_t t_ms)
{
    uint64_t pos = atomic_load_explicit(&q->tail[l], memory_order_relaxed);
    struct cell *c;
    for (unsigned spins = 0;;) {
        c = cell_at(ring, q, pos);
        uint64_t seq = atomic_load_explicit(&c->seq, memory_order_acquire);
        if (seq == lap(q, pos)) {
            if (atomic_compare_exchange_weak_explicit(&q->tail[l], &pos, pos + 1,
                                                      memory_order_relaxed, memory_order_relaxed))
                break;
        } else if (seq < lap(q, pos)) {
            if (++spins % 64 == 0) /* its consumer was preempted mid-copy */
                sched_yield();
        } else {
            pos = atomic_load_explicit(&q->tail[l], memory_order_relaxed); /* taken: move on */
        }
    }
    atomic_store_explicit(&c->item, item, memory_order_relaxed);
    atomic_store_explicit(&c->t_ms, t_ms, memory_order_relaxed);
    atomic_store_explicit(&c->seq, lap(q, pos) + 1, memory_order_release);
}

/* Level l's head when it is published: its arrival time in *t_ms.  A snapshot that a
 * racing consumer may already have taken (the claim in ring_take decides). */
static int ring_head(struct queue *q, unsigned l, uint64_t *t_ms)
{
    struct cell *ring = atomic_load_explicit(&q->ring[l], memory_order_acquire);
    if (!ring)
        return 0;
    uint64_t h = atomic_load_explicit(&q->head[l], memory_order_acquire);
    struct cell *c = cell_at(ring, q, h);
    if (atomic_load_explicit(&c->seq, memory_order_acquire) != lap(q, h) + 1)
        return 0;
    *t_ms = atomic_load_explicit(&c->t_ms, memory_order_relaxed);
    return 1;
}

/* Claim up to max published items at level l's head, in order, into out. */
static size_t ring_take(struct queue *q, unsigned l, void **out, size_t max)
{
    struct cell *ring = atomic_load_explicit(&q->ring[l], memory_order_acquire);
    uint64_t h = atomic_load_explicit(&q->head[l], memory_order_acquire);
    size_t k;
    do {
        for (k = 0; k < max; k++)
            if (atomic_load_explicit(&cell_at(ring, q, h + k)->seq, memory_order_acquire) !=
                lap(q, h + k) + 1)
                break;
        if (k == 0)
            return 0;
    } while (!atomic_compare_exchange_weak_explicit(&q->head[l], &h, h + k, memory_order_acquire,
                                                    memory_order_acquire));
    for (size_t i = 0; i < k; i++) {
        struct cell *c = cell_at(ring, q, h + i);
        out[i] = atomic_load_explicit(&c->item, memory_order_relaxed);
        atomic_store_explicit(&c->seq, lap(q, h + i) + q->mask + 1, memory_order_release);
    }
    return k;
}

/* --- the delayed heap (mu held) ----------------------------------------------- */

static void heap_swap(struct queue *q, size_t a, size_t b)
{
    struct delayed t = q->heap[a];
    q->heap[a] = q->heap[b];
    q->heap[b] = t;
}

static void heap_changed(struct queue *q)
{
    atomic_store_explicit(&q->delayed, q->heap_len, memory_order_relaxed);
    atomic_store_explicit(&q->next_due, q->heap_len ? q->heap[0].due_ms : UINT64_MAX,
                          memory_order_relaxed);
}

static void heap_insert(struct queue *q, struct delayed d)
{
    size_t i = q->heap_len++;
    q->heap[i] = d;
    while (i > 0 && q->heap[(i - 1) / 2].due_ms > q->heap[i].due_ms) {
        heap_swap(q, i, (i - 1) / 2);
        i = (i - 1) / 2;
    }
    heap_changed(q);
}

static struct delayed heap_take_min(struct queue *q)
{
    struct delayed top = q->heap[0];
    q->heap[0] = q->heap[--q->heap_len];
    for (size_t i = 0;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < q->heap_len && q->heap[l].due_ms < q->heap[m].due_ms)
            m = l;
        if (r < q->heap_len && q->heap[r].due_ms < q->heap[m].due_ms)
            m = r;
        if (m == i)
            break;
        heap_swap(q, i, m);
        i = m;
    }
    heap_changed(q);
    return top;
}

/* Move every delayed item whose time has come onto its level's ring (its ring exists:
 * admission made it). */
static void promote_due_locked(struct queue *q, uint64_t now)
{
    while (q->heap_len > 0 && q->heap[0].due_ms <= now) {
        struct delayed d = heap_take_min(q);
        ring_put(q, d.level, atomic_load_explicit(&q->ring[d.level], memory_order_relaxed),
                 d.item, d.due_ms);
    }
}

/* Promote what is due, taking the lock only when something is. */
static void promote_due(struct queue *q, uint64_t now)
{
    if (atomic_load_explicit(&q->next_due, memory_order_relaxed) > now)
        return;
    pthread_mutex_lock(&q->mu);
    promote_due_locked(q, now);
    pthread_mutex_unlock(&q->mu);
}

/* --- admission ------------------------------------------------------------ */

/* Count one more item against the bound: 0; -1 full, -2 closed.  The consumers' count
 * is read again only when the copy says full.  The closed bit lives in the same word,
 * so a close and a count are ordered by the compare-and-swap itself: no push counts
 * after queue_close, at no cost per push. */
static int count_in(struct queue *q, size_t limit)
{
    uint64_t p = atomic_load_explicit(&q->pushed, memory_order_relaxed);
    for (;;) {
        if (p & CLOSED)
            return -2;
        uint64_t seen = atomic_load_explicit(&q->popped_seen, memory_order_relaxed);
        if ((int64_t)(p - seen) >= (int64_t)limit) {
            seen = atomic_load_explicit(&q->popped, memory_order_acquire);
            atomic_store_explicit(&q->popped_seen, seen, memory_order_relaxed);
            if ((int64_t)(p - seen) >= (int64_t)limit &&
                p == atomic_load_explicit(&q->pushed, memory_order_relaxed))
                return -1;
        }
        /* seq_cst: counted before a consumer deciding to sleep reads the count */
        if (atomic_compare_exchange_weak(&q->pushed, &p, p + 1))
            return 0;
    }
}

/* Wake a blocked consumer, if any, once the item is published.  No fence: the count
 * (count_in's seq_cst compare-and-swap) came before this seq_cst load, and a consumer
 * counts itself a waiter before it reads the count; so either this sees the waiter, or
 * the waiter sees the item counted and does not sleep (queue_pop_batch). */
static void wake_one(struct queue *q)
{
    if (!atomic_load(&q->waiters))
        return;
    pthread_mutex_lock(&q->mu);
    pthread_cond_signal(&q->ready_cv);
    pthread_mutex_unlock(&q->mu);
}

/* Counted and in its place, or refused.  A delayed item is counted under mu, with its
 * heap insert: a consumer holding mu never sees it counted and not yet there. */
static enum ggl_status place(struct queue *q, void *item, enum ggl_priority prio, int delayed,
                             uint64_t t_ms)
{
    size_t limit = prio == GGL_PRIO_CRITICAL ? q->capacity : q->capacity - q->reserve;
    struct cell *ring = ring_of(q, (unsigned)prio);
    if (!ring)
        return GGL_NOMEM;
    int counted;
    if (!delayed) {
        if ((counted = count_in(q, limit)) == 0) {
            ring_put(q, (unsigned)prio, ring, item, t_ms);
            wake_one(q);
        }
    } else {
        pthread_mutex_lock(&q->mu);
        if ((counted = count_in(q, limit)) == 0)
            heap_insert(q, (struct delayed){item, t_ms, (unsigned)prio});
        int wake = counted == 0 && atomic_load_explicit(&q->waiters, memory_order_relaxed) > 0 &&
                   q->heap[0].item == item; /* earlier than what the waiters are timing */
        pthread_mutex_unlock(&q->mu);
        if (wake)
            pthread_cond_signal(&q->ready_cv);
    }
    return counted == 0 ? GGL_OK : counted == -2 ? GGL_UNAVAILABLE : GGL_RETRY;
}

static enum ggl_status admit(struct queue *q, void *item, enum ggl_priority prio, int delayed,
                             uint64_t due_ms)
{
    if ((unsigned)prio >= QUEUE_LEVELS)
        return GGL_INVALID;
    uint64_t now = clock_now_ms(), t_ms = delayed ? due_ms : now;
    delayed = delayed && due_ms > now; /* one due already is ready now */
    enum ggl_status st = place(q, item, prio, delayed, t_ms); /* count_in refuses once closed */
    if (st == GGL_OK)
        metrics_add(q->depth, 1); /* this thread's stripe: no line shared with the consumers */
    else if (st == GGL_RETRY)
        metrics_add(q->refused, 1);
    return st;
}

enum ggl_status queue_push(struct queue *q, void *item, enum ggl_priority prio)
{
    return admit(q, item, prio, 0, 0);
}

enum ggl_status queue_push_at(struct queue *q, void *item, enum ggl_priority prio, uint64_t due_ms)
{
    return admit(q, item, prio, 1, due_ms);
}

/* --- consumers ------------------------------------------------------------ */

/* The level whose head is served next under the ageing rule, or -1 if none is ready;
 * *lowest gets the highest priority (lowest level) that is ready, *nready how many are. */
static int next_level(struct queue *q, uint64_t now, int *lowest, unsigned *nready)
{
    int best = -1;
    uint64_t best_eff = 0, best_t = 0;
    *lowest = -1;
    *nready = 0;
    for (int l = 0; l < QUEUE_LEVELS; l++) {
        uint64_t t;
        if (!ring_head(q, (unsigned)l, &t))
            continue;
        if ((*nready)++ == 0)
            *lowest = l;
        uint64_t steps = q->age_ms && now > t ? (now - t) / q->age_ms : 0;
        uint64_t eff = steps >= (uint64_t)l ? 0 : (uint64_t)l - steps;
        if (best < 0 || eff < best_eff || (eff == best_eff && t < best_t)) {
            best = l;
            best_eff = eff;
            best_t = t;
        }
    }
    return best;
}

/* Up to max ready items in service order.  With one level ready (the common case) a
 * run is claimed at once; otherwise one item at a time, each by the ageing rule.  The
 * items are counted out of the queue. */
static size_t take_ready(struct queue *q, void **out, size_t max, uint64_t now)
{
    size_t n = 0;
    for (unsigned races = 0; n < max && races < 64;) {
        unsigned nready;
        int lowest, l = next_level(q, now, &lowest, &nready);
        if (l < 0)
            break;
        size_t got = ring_take(q, (unsigned)l, out + n, nready == 1 ? max - n : 1);
        if (!got) {
            races++; /* another consumer took it first: look again */
            continue;
        }
        if (l != lowest)
            metrics_add(q->aged, (double)got);
        n += got;
    }
    if (n) {
        atomic_fetch_add_explicit(&q->popped, n, memory_order_release); /* cells freed first */
        metrics_add(q->depth, -(double)n);
    }
    return n;
}

static int ts_before(const struct timespec *a, const struct timespec *b)
{
    return a->tv_sec < b->tv_sec || (a->tv_sec == b->tv_sec && a->tv_nsec < b->tv_nsec);
}

static int deadline_passed(const struct timespec *deadline)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return !ts_before(&t, deadline);
}

/* Wait (mu held, counted in waiters) for a push, a kick, the earliest due time or the
 * caller's deadline.  Returns ETIMEDOUT only when the caller's own deadline passed. */
static int wait_ready(struct queue *q, const struct timespec *deadline, uint64_t now)
{
    struct timespec until = {0, 0};
    int timed = deadline != NULL;
    if (deadline)
        until = *deadline;
    if (q->heap_len > 0) {
        uint64_t due = q->heap[0].due_ms;
        struct timespec at_due = deadline_after_ms(CLOCK_MONOTONIC, due > now ? due - now : 0);
        if (!timed || ts_before(&at_due, &until))
            until = at_due;
        timed = 1;
    }
    int rc = timed ? pthread_cond_timedwait(&q->ready_cv, &q->mu, &until)
                   : pthread_cond_wait(&q->ready_cv, &q->mu);
    return rc == ETIMEDOUT && deadline && deadline_passed(deadline) ? ETIMEDOUT : 0;
}

size_t queue_pop_batch(struct queue *q, void **out, size_t max, int64_t timeout_ms)
{
    if (max == 0)
        return 0;
    uint64_t now = clock_now_ms();
    promote_due(q, now);
    size_t n = take_ready(q, out, max, now);
    if (n > 0 || timeout_ms == 0)
        return n;
    struct timespec deadline;
    if (timeout_ms > 0)
        deadline = deadline_after_ms(CLOCK_MONOTONIC, (uint64_t)timeout_ms);
    pthread_mutex_lock(&q->mu);
    atomic_fetch_add(&q->waiters, 1); /* seq_cst: counted, then look (see wake_one) */
    for (;; now = clock_now_ms()) {
        promote_due_locked(q, now);
        n = take_ready(q, out, max, now);
        if (n > 0 || (atomic_load(&q->pushed) & CLOSED))
            break;
        if (queue_ready(q) > 0) { /* counted, not yet published: its producer is on it */
            pthread_mutex_unlock(&q->mu); /* which may need mu (ring_of) */
            sched_yield();
            pthread_mutex_lock(&q->mu);
            if (timeout_ms > 0 && deadline_passed(&deadline))
                break;
            continue;
        }
        if (wait_ready(q, timeout_ms > 0 ? &deadline : NULL, now) == ETIMEDOUT)
            break;
    }
    unsigned others = atomic_fetch_sub(&q->waiters, 1) - 1;
    pthread_mutex_unlock(&q->mu);
    if (n > 0 && others > 0 && queue_ready(q) > 0) /* pass the baton: work is left */
        pthread_cond_signal(&q->ready_cv);
    return n;
}

void queue_kick(struct queue *q)
{
    pthread_mutex_lock(&q->mu);
    pthread_cond_broadcast(&q->ready_cv);
    pthread_mutex_unlock(&q->mu);
}

/* No push counts after this (count_in); one counted before it may still be on its way
 * into its cell, which queue_drain waits for. */
void queue_close(struct queue *q)
{
    atomic_fetch_or(&q->pushed, CLOSED);
    queue_kick(q);
}

size_t queue_drain(struct queue *q, void **out, size_t max)
{
    for (;;) {
        pthread_mutex_lock(&q->mu);
        size_t n = take_ready(q, out, max, clock_now_ms()), late = 0;
        while (n + late < max && q->heap_len > 0)
            out[n + late++] = heap_take_min(q).item;
        pthread_mutex_unlock(&q->mu);
        if (late) {
            atomic_fetch_add(&q->popped, late);
            metrics_add(q->depth, -(double)late);
        }
        /* closed and something counted is not takeable yet: a push that counted itself
         * just before the close is between its count and its cell (a few instructions) */
        if (n + late > 0 || !(atomic_load(&q->pushed) & CLOSED) || queue_length(q) == 0)
            return n + late;
        sched_yield();
    }
}

size_t queue_promote(struct queue *q, uint64_t now)
{
    promote_due(q, now);
    return queue_ready(q);
}
