/* The bounded priority queue behind the task and action queues: four FIFO lists in one
 * node array under one mutex, a min-heap of delayed items, and one condition variable
 * (on CLOCK_MONOTONIC) for consumers.
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
 * Pops that ageing reordered are counted in queue_aged_total. */
#include "ggl-build.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "deadline.h"
#include "hostapi.h"
#include "lock.h"
#include "metrics.h"
#include "queue.h"

#define NIL UINT32_MAX

struct node {
    void *item;
    uint64_t t_ms;      /* arrival (ready lists) or due time (heap) */
    uint32_t next;      /* next in its list, or in the free list */
    uint8_t level;
};

struct queue {
    pthread_mutex_t mu;
    /* Ready items, changed under mu and read without it (queue_ready).  On mu's cache
     * line, which a push or pop owns already: counting costs no miss of its own. */
    _Atomic size_t ready;
    pthread_cond_t ready_cv;
    struct node *nodes;
    uint32_t free_head;
    uint32_t head[QUEUE_LEVELS], tail[QUEUE_LEVELS];
    unsigned levels;        /* bit l: level l's list is not empty */
    uint32_t *heap;         /* node indices, min-heap on t_ms */
    size_t heap_len, capacity, reserve;
    uint64_t age_ms;
    unsigned waiters;
    int closed;
    struct ggl_metric *refused, *aged, *depth;
};

struct queue *queue_new(const struct queue_config *cfg)
{
    if (cfg->capacity == 0 || cfg->capacity >= NIL || cfg->critical_reserve >= cfg->capacity)
        return NULL;
    struct queue *q;
    if (posix_memalign((void **)&q, 64, sizeof *q) != 0) /* mu and ready on one line */
        return NULL;
    memset(q, 0, sizeof *q);
    q->nodes = calloc(cfg->capacity, sizeof *q->nodes);
    q->heap = calloc(cfg->capacity, sizeof *q->heap);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    int cv_rc = pthread_cond_init(&q->ready_cv, &ca);
    pthread_condattr_destroy(&ca);
    if (!q->nodes || !q->heap || cv_rc != 0)
        goto fail;
    mutex_init_adaptive(&q->mu);
    for (uint32_t i = 0; i < cfg->capacity; i++)
        q->nodes[i].next = i + 1 < cfg->capacity ? i + 1 : NIL;
    for (int l = 0; l < QUEUE_LEVELS; l++)
        q->head[l] = q->tail[l] = NIL;
    q->capacity = cfg->capacity;
    q->reserve = cfg->critical_reserve;
    q->age_ms = cfg->age_ms;
    q->refused = metrics_register(GGL_METRIC_COUNTER, "queue_refused_total",
                                  "items refused because the queue was full", cfg->name);
    q->aged = metrics_register(GGL_METRIC_COUNTER, "queue_aged_total",
                               "items served ahead of higher priorities by ageing", cfg->name);
    q->depth = metrics_register(GGL_METRIC_GAUGE, "queue_depth",
                                "items queued, ready or delayed", cfg->name);
    return q;
fail:
    if (cv_rc == 0)
        pthread_cond_destroy(&q->ready_cv);
    free(q->heap);
    free(q->nodes);
    free(q);
    return NULL;
}

void queue_free(struct queue *q)
{
    if (!q)
        return;
    pthread_cond_destroy(&q->ready_cv);
    pthread_mutex_destroy(&q->mu);
    free(q->heap);
    free(q->nodes);
    free(q);
}

/* --- lists and heap (caller holds mu) ------------------------------------- */

size_t queue_ready(const struct queue *q)
{
    return atomic_load_explicit(&((struct queue *)q)->ready, memory_order_relaxed);
}

static void set_ready(struct queue *q, size_t n)
{
    atomic_store_explicit(&q->ready, n, memory_order_relaxed);
}

static void list_append(struct queue *q, uint32_t n)
{
    uint8_t l = q->nodes[n].level;
    q->nodes[n].next = NIL;
    if (q->tail[l] == NIL)
        q->head[l] = n;
    else
        q->nodes[q->tail[l]].next = n;
    q->tail[l] = n;
    q->levels |= 1u << l;
    set_ready(q, queue_ready(q) + 1);
}

static uint32_t list_take(struct queue *q, int l)
{
    uint32_t n = q->head[l];
    q->head[l] = q->nodes[n].next;
    if (q->head[l] == NIL) {
        q->tail[l] = NIL;
        q->levels &= ~(1u << l);
    }
    set_ready(q, queue_ready(q) - 1);
    return n;
}

static void heap_swap(struct queue *q, size_t a, size_t b)
{
    uint32_t t = q->heap[a];
    q->heap[a] = q->heap[b];
    q->heap[b] = t;
}

static uint64_t heap_due(const struct queue *q, size_t i) { return q->nodes[q->heap[i]].t_ms; }

static void heap_insert(struct queue *q, uint32_t n)
{
    size_t i = q->heap_len++;
    q->heap[i] = n;
    while (i > 0 && heap_due(q, (i - 1) / 2) > heap_due(q, i)) {
        heap_swap(q, i, (i - 1) / 2);
        i = (i - 1) / 2;
    }
}

static uint32_t heap_take_min(struct queue *q)
{
    uint32_t top = q->heap[0];
    q->heap[0] = q->heap[--q->heap_len];
    for (size_t i = 0;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < q->heap_len && heap_due(q, l) < heap_due(q, m))
            m = l;
        if (r < q->heap_len && heap_due(q, r) < heap_due(q, m))
            m = r;
        if (m == i)
            break;
        heap_swap(q, i, m);
        i = m;
    }
    return top;
}

/* Move every delayed item whose time has come onto its ready list. */
static void promote_due(struct queue *q, uint64_t now)
{
    while (q->heap_len > 0 && heap_due(q, 0) <= now)
        list_append(q, heap_take_min(q));
}

static int first_nonempty(const struct queue *q)
{
    return q->levels ? __builtin_ctz(q->levels) : -1;
}

/* The level whose head is served next under the ageing rule, or -1 if none is ready.
 * With one level ready (the common case) there is nothing to compare. */
static int next_level(struct queue *q, uint64_t now)
{
    if (!(q->levels & (q->levels - 1)))
        return first_nonempty(q);
    int best = -1;
    uint64_t best_eff = 0, best_t = 0;
    for (int l = 0; l < QUEUE_LEVELS; l++) {
        if (q->head[l] == NIL)
            continue;
        uint64_t t = q->nodes[q->head[l]].t_ms;
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


static void release_node(struct queue *q, uint32_t n)
{
    q->nodes[n].item = NULL;
    q->nodes[n].next = q->free_head;
    q->free_head = n;
}

/* --- admission ------------------------------------------------------------ */

static enum ggl_status admit(struct queue *q, void *item, enum ggl_priority prio, int delayed,
                             uint64_t due_ms)
{
    if ((unsigned)prio >= QUEUE_LEVELS)
        return GGL_INVALID;
    uint64_t now = clock_now_ms(), t_ms = delayed ? due_ms : now; /* outside the lock */
    delayed = delayed && due_ms > now; /* one due already is ready now, counted in ready */
    pthread_mutex_lock(&q->mu);
    size_t used = queue_ready(q) + q->heap_len;
    size_t limit = prio == GGL_PRIO_CRITICAL ? q->capacity : q->capacity - q->reserve;
    if (q->closed || used >= limit) {
        enum ggl_status st = q->closed ? GGL_UNAVAILABLE : GGL_RETRY;
        pthread_mutex_unlock(&q->mu);
        if (st == GGL_RETRY)
            metrics_add(q->refused, 1);
        return st;
    }
    uint32_t n = q->free_head;
    q->free_head = q->nodes[n].next;
    q->nodes[n].item = item;
    q->nodes[n].level = (uint8_t)prio;
    q->nodes[n].t_ms = t_ms;
    int wake = q->waiters > 0;
    if (!delayed)
        list_append(q, n);
    else {
        heap_insert(q, n);
        wake = wake && q->heap[0] == n; /* earlier than what waiters are timing */
    }
    pthread_mutex_unlock(&q->mu);
    metrics_set(q->depth, (double)(used + 1)); /* outside: racing sets may land late */
    if (wake)
        pthread_cond_signal(&q->ready_cv);
    return GGL_OK;
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

static int ts_before(const struct timespec *a, const struct timespec *b)
{
    return a->tv_sec < b->tv_sec || (a->tv_sec == b->tv_sec && a->tv_nsec < b->tv_nsec);
}

/* Wait for a push, a kick, the earliest due time or the caller's deadline.  Returns
 * ETIMEDOUT only when the caller's own deadline passed. */
static int wait_ready(struct queue *q, const struct timespec *deadline, uint64_t now)
{
    struct timespec until = {0, 0};
    int timed = deadline != NULL;
    if (deadline)
        until = *deadline;
    if (q->heap_len > 0) {
        uint64_t due = heap_due(q, 0);
        struct timespec at_due = deadline_after_ms(CLOCK_MONOTONIC, due > now ? due - now : 0);
        if (!timed || ts_before(&at_due, &until))
            until = at_due;
        timed = 1;
    }
    q->waiters++;
    int rc = timed ? pthread_cond_timedwait(&q->ready_cv, &q->mu, &until)
                   : pthread_cond_wait(&q->ready_cv, &q->mu);
    q->waiters--;
    if (rc == ETIMEDOUT && deadline) {
        struct timespec t;
        clock_gettime(CLOCK_MONOTONIC, &t);
        if (!ts_before(&t, deadline))
            return ETIMEDOUT;
    }
    return 0;
}

static size_t take_ready(struct queue *q, void **out, size_t max, uint64_t now)
{
    size_t n = 0;
    while (n < max) {
        int l = next_level(q, now);
        if (l < 0)
            break;
        if (l != first_nonempty(q))
            metrics_add(q->aged, 1);
        uint32_t node = list_take(q, l);
        out[n++] = q->nodes[node].item;
        release_node(q, node);
    }
    return n;
}

size_t queue_pop_batch(struct queue *q, void **out, size_t max, int64_t timeout_ms)
{
    struct timespec deadline;
    if (max == 0)
        return 0;
    if (timeout_ms > 0)
        deadline = deadline_after_ms(CLOCK_MONOTONIC, (uint64_t)timeout_ms);
    size_t n = 0;
    uint64_t now = clock_now_ms(); /* outside the lock; again after each wait */
    pthread_mutex_lock(&q->mu);
    for (;; now = clock_now_ms()) {
        promote_due(q, now);
        n = take_ready(q, out, max, now);
        if (n > 0 || q->closed || timeout_ms == 0)
            break;
        if (wait_ready(q, timeout_ms > 0 ? &deadline : NULL, now) == ETIMEDOUT)
            break;
    }
    int more = n > 0 && queue_ready(q) > 0 && q->waiters > 0;
    size_t depth = queue_ready(q) + q->heap_len;
    pthread_mutex_unlock(&q->mu);
    metrics_set(q->depth, (double)depth);
    if (more) /* pass the baton: a consumer took its fill and work is left */
        pthread_cond_signal(&q->ready_cv);
    return n;
}

void queue_kick(struct queue *q)
{
    pthread_mutex_lock(&q->mu);
    pthread_cond_broadcast(&q->ready_cv);
    pthread_mutex_unlock(&q->mu);
}

void queue_close(struct queue *q)
{
    pthread_mutex_lock(&q->mu);
    q->closed = 1;
    pthread_cond_broadcast(&q->ready_cv);
    pthread_mutex_unlock(&q->mu);
}

size_t queue_drain(struct queue *q, void **out, size_t max)
{
    pthread_mutex_lock(&q->mu);
    size_t n = take_ready(q, out, max, clock_now_ms());
    while (n < max && q->heap_len > 0) {
        uint32_t node = heap_take_min(q);
        out[n++] = q->nodes[node].item;
        release_node(q, node);
    }
    metrics_set(q->depth, (double)(queue_ready(q) + q->heap_len));
    pthread_mutex_unlock(&q->mu);
    return n;
}

size_t queue_promote(struct queue *q, uint64_t now)
{
    pthread_mutex_lock(&q->mu);
    promote_due(q, now);
    size_t n = queue_ready(q);
    pthread_mutex_unlock(&q->mu);
    return n;
}

size_t queue_length(struct queue *q)
{
    pthread_mutex_lock(&q->mu);
    size_t n = queue_ready(q) + q->heap_len;
    pthread_mutex_unlock(&q->mu);
    return n;
}
