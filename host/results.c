/* The results store (policy in results.h): a table of entries indexed by id under one
 * mutex, finished entries in a FIFO (one TTL, so finish order is expiry order), and the
 * life of an id up to its end (results_finish.c).  Parked waiters and the timer thread
 * are in results_wait.c. */
#include "ggl-build.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "deadline.h"
#include "hostapi.h"
#include "lock.h"
#include "results_impl.h"

static const char *const status_words[] = {"ok", "failed", "invalid", "timeout", "cancelled"};
static const char *const state_words[] = {"unknown", "queued", "running", "done"};

const char *result_status_str(enum result_status s)
{
    return (unsigned)s < 5 ? status_words[s] : "failed";
}

const char *result_state_str(enum result_state s)
{
    return (unsigned)s < 4 ? state_words[s] : "unknown";
}

/* --- entries ---------------------------------------------------------------- */

/* The slot of id (NULL: its chunk was never needed).  See RESULTS_CHUNK. */
static struct result_entry *slot_of(const struct results *r, uint64_t id)
{
    size_t i = (size_t)id & r->mask;
    struct result_entry *chunk = r->chunks[i >> RESULTS_CHUNK_SHIFT];
    return chunk ? &chunk[i & r->chunk_mask] : NULL;
}

struct result_entry *entry_find(struct results *r, uint64_t id)
{
    struct result_entry *e = slot_of(r, id);
    return e && e->id == id ? e : NULL;
}

/* --- the finished FIFO (see struct results) ------------------------------------- */

void fifo_push(struct results *r, struct result_entry *first, struct result_entry *last, size_t n)
{
    atomic_fetch_add_explicit(&r->pushed, n, memory_order_relaxed);
    atomic_store_explicit(&last->newer, NULL, memory_order_relaxed);
    struct result_entry *prev = atomic_exchange_explicit(&r->fifo_tail, last, memory_order_acq_rel);
    atomic_store_explicit(&prev->newer, first, memory_order_release);
}

/* Take the oldest finished entry (lock held); NULL when none, or when the only ones
 * left are still being appended (an exchange done, its link not yet written). */
static struct result_entry *fifo_pop(struct results *r)
{
    struct result_entry *head = r->fifo_head;
    struct result_entry *next = atomic_load_explicit(&head->newer, memory_order_acquire);
    if (head == &r->stub) {
        if (!next)
            return NULL;
        r->fifo_head = head = next;
        next = atomic_load_explicit(&head->newer, memory_order_acquire);
    }
    if (!next) { /* head is the last: put the stub behind it, so it can leave */
        if (head != atomic_load_explicit(&r->fifo_tail, memory_order_acquire))
            return NULL;
        fifo_push(r, &r->stub, &r->stub, 0);
        if (!(next = atomic_load_explicit(&head->newer, memory_order_acquire)))
            return NULL;
    }
    r->fifo_head = next;
    return head;
}

/* Put back what fifo_pop just returned (its link is unchanged). */
static void fifo_unpop(struct results *r, struct result_entry *e) { r->fifo_head = e; }

/* --- states ------------------------------------------------------------------------ */

/* Move pending (queued or running, not being finished) entry id to `to`, keeping its
 * flags; -1 when it is not pending. */
static int move_pending(struct result_entry *e, uint64_t id, enum result_state to)
{
    uint64_t t = atomic_load(&e->tag);
    do {
        enum result_state s = (enum result_state)(t & TAG_STATE);
        if (t >> TAG_SHIFT != id || (s != RESULT_QUEUED && s != RESULT_RUNNING) || (t & TAG_SETTLING))
            return -1;
    } while (!atomic_compare_exchange_weak(&e->tag, &t, (t & ~(uint64_t)TAG_STATE) | to));
    return 0;
}

int entry_mark_waited(struct result_entry *e)
{
    uint64_t t = atomic_load(&e->tag);
    do {
        if ((t & TAG_STATE) == RESULT_DONE)
            return -1;
    } while (!atomic_compare_exchange_weak(&e->tag, &t, t | TAG_WAITED));
    return 0;
}

/* Empty e's slot (lock held; a finished e was taken from the FIFO); its data and reason
 * go to the caller, which frees them (after unlocking, on a hot path). */
static void detach_entry(struct results *r, struct result_entry *e, void **data, char **reason)
{
    if (entry_state(e) == RESULT_DONE)
        r->removed++;
    r->held--;
    *data = e->data;
    *reason = e->reason;
    atomic_store_explicit(&e->tag, 0, memory_order_release); /* a stale start now fails */
    e->id = 0, e->data = NULL, e->len = 0, e->reason = NULL, e->waiters = NULL;
    atomic_store_explicit(&e->newer, NULL, memory_order_relaxed);
}

static void remove_entry(struct results *r, struct result_entry *e)
{
    void *data;
    char *reason;
    detach_entry(r, e, &data, &reason);
    free(data);
    free(reason);
}

/* The slot for the next id (lock held), its chunk allocated on first use; NULL without
 * memory.  A slot still held (a task pending, or a result kept, since the table went
 * round) is skipped, and its id number with it: at most max_results of the table's
 * 2 * max_results or more slots are held, so a free one is near. */
static struct result_entry *entry_alloc(struct results *r)
{
    for (;; r->next_id++) {
        size_t i = (size_t)r->next_id & r->mask;
        struct result_entry **chunk = &r->chunks[i >> RESULTS_CHUNK_SHIFT];
        if (!*chunk && !(*chunk = calloc(r->chunk_mask + 1, sizeof **chunk)))
            return NULL;
        struct result_entry *e = &(*chunk)[i & r->chunk_mask];
        if (!e->id)
            return e;
    }
}

static int expired(const struct results *r, const struct result_entry *e, uint64_t now)
{
    return entry_state(e) == RESULT_DONE && now - e->finished_ms >= r->cfg.ttl_ms &&
           now >= e->finished_ms;
}

/* Drop expired results, oldest first; returns when the next one expires (or MAX). */
uint64_t purge_expired(struct results *r, uint64_t now)
{
    struct result_entry *e;
    while ((e = fifo_pop(r)) != NULL) {
        if (!expired(r, e, now)) {
            fifo_unpop(r, e);
            return e->finished_ms + r->cfg.ttl_ms;
        }
        remove_entry(r, e);
        r->st.expired++;
        metrics_add(r->m_expired, 1);
    }
    return UINT64_MAX;
}

/* A live entry: pending, or finished and not expired (an expired one is dropped). */
struct result_entry *find_live(struct results *r, uint64_t id)
{
    struct result_entry *e = entry_find(r, id);
    if (e && expired(r, e, clock_now_ms())) {
        purge_expired(r, clock_now_ms());
        e = NULL;
    }
    return e;
}

/* --- life cycle ---------------------------------------------------------------- */

static void register_metrics(struct results *r)
{
    const char *s = r->cfg.name;
    char name[96];
#define M(field, type, suffix, help)                                                         \
    (snprintf(name, sizeof name, "%s_" suffix, s),                                         \
     r->field = metrics_register_in(s, type, name, help, NULL))
    M(m_held, GGL_METRIC_GAUGE, "results_held", "ids held: pending plus finished results");
    M(m_refused, GGL_METRIC_COUNTER, "results_refused",
      "admissions refused: max_results ids held, none expired (-BUSY)");
    M(m_expired, GGL_METRIC_COUNTER, "results_expired", "finished results dropped at their TTL");
    M(m_late, GGL_METRIC_COUNTER, "results_late",
      "results discarded: their id had already timed out or been cancelled");
    M(m_oversized, GGL_METRIC_COUNTER, "results_oversized",
      "results over max_data bytes, stored as failed");
    M(m_evicted, GGL_METRIC_COUNTER, "results_evicted",
      "finished results evicted unread before their TTL (store full, evict_unread)");
    M(m_waiters, GGL_METRIC_GAUGE, "waiters", "parked RESULT ... WAIT requests");
    M(m_wrefused, GGL_METRIC_COUNTER, "waiters_refused", "WAIT requests refused: max_waiters (-BUSY)");
#undef M
}

struct results *results_new(const struct results_config *cfg)
{
    if (!cfg->max_results || !cfg->ttl_ms || !cfg->name)
        return NULL;
    struct results *r;
    if (posix_memalign((void **)&r, 64, sizeof *r) != 0) /* fifo_tail's own cache line */
        return NULL;
    memset(r, 0, sizeof *r);
    r->cfg = *cfg;
    size_t slots = 16;
    while (slots < 2 * cfg->max_results && slots < ((size_t)1 << 31))
        slots <<= 1;
    size_t chunk = slots < RESULTS_CHUNK ? slots : RESULTS_CHUNK;
    r->mask = slots - 1;
    r->chunk_mask = chunk - 1;
    r->chunks = calloc(slots / chunk, sizeof *r->chunks);
    r->heap = calloc(cfg->max_waiters ? cfg->max_waiters : 1, sizeof *r->heap);
    static _Atomic uint64_t gens;
    r->next_id = 1;
    r->gen = atomic_fetch_add(&gens, 1) + 1;
    r->fifo_head = &r->stub;
    atomic_init(&r->fifo_tail, &r->stub);
    mutex_init_adaptive(&r->lock);
    cond_init_monotonic(&r->timer_cond);
    register_metrics(r);
    if (!r->chunks || !r->heap ||
        (cfg->timer_thread && pthread_create(&r->timer, NULL, timer_main, r) != 0)) {
        results_free(r);
        return NULL;
    }
    r->have_timer = cfg->timer_thread;
    return r;
}

void results_free(struct results *r)
{
    if (!r)
        return;
    if (r->chunks)
        results_close_waiters(r);
    if (r->have_timer) {
        pthread_mutex_lock(&r->lock);
        r->stopping = 1;
        pthread_cond_signal(&r->timer_cond);
        pthread_mutex_unlock(&r->lock);
        pthread_join(r->timer, NULL);
    }
    for (size_t c = 0; r->chunks && c <= r->mask >> RESULTS_CHUNK_SHIFT; c++) {
        for (size_t i = 0; r->chunks[c] && i <= r->chunk_mask; i++)
            if (r->chunks[c][i].id)
                remove_entry(r, &r->chunks[c][i]);
        free(r->chunks[c]);
    }
    free(r->chunks);
    free(r->heap);
    pthread_cond_destroy(&r->timer_cond);
    pthread_mutex_destroy(&r->lock);
    free(r);
}

/* --- the life of an id ----------------------------------------------------------- */

enum ggl_status results_reserve(struct results *r, uint64_t *id)
{
    return results_reserve_handle(r, id, NULL);
}

#define RESERVE_AHEAD 8 /* see results_reserve_handle */

/* What a reserve evicted, freed and counted once the lock is released. */
struct evicted {
    void *data[RESERVE_AHEAD];
    char *reason[RESERVE_AHEAD];
    unsigned n;
};

/* One fresh queued entry (lock held), or NULL with *st the reason; one reserved ahead
 * (see results_reserve_handle) is no admission refused when it finds no room. */
static struct result_entry *reserve_locked(struct results *r, uint64_t now, enum ggl_status *st,
                                           struct evicted *ev, int ahead)
{
    if (r->held >= r->cfg.max_results && now >= r->purge_at) {
        /* the oldest finished result expires then: until that time, nothing has (the
         * FIFO is in finish order); none finished: look again next time */
        uint64_t next = purge_expired(r, now);
        r->purge_at = next == UINT64_MAX ? 0 : next;
    }
    struct result_entry *old;
    if (r->held >= r->cfg.max_results && r->cfg.evict_unread && (old = fifo_pop(r)) != NULL) {
        /* the oldest finished result, unread */
        uint64_t gone = old->id;
        detach_entry(r, old, &ev->data[ev->n], &ev->reason[ev->n]);
        ev->n++;
        r->st.evicted++;
        /* those to go next are cold (max_results ago), and mostly next in id order */
        struct result_entry *next = slot_of(r, gone + 2 * RESERVE_AHEAD);
        if (next)
            __builtin_prefetch(next, 1);
    }
    if (r->held >= r->cfg.max_results) {
        if (!ahead) {
            r->st.refused++;
            metrics_add(r->m_refused, 1);
        }
        *st = GGL_RETRY;
        return NULL;
    }
    struct result_entry *e = entry_alloc(r);
    if (!e) {
        *st = GGL_NOMEM;
        return NULL;
    }
    e->id = r->next_id++;
    /* a plain store: the one who starts the id got it through a lock (the queue's) */
    atomic_store_explicit(&e->tag, tag_for(e->id, RESULT_QUEUED), memory_order_release);
    r->held++;
    /* the slots ahead were last used max_results ids or more ago: fetch them early */
    struct result_entry *soon = slot_of(r, r->next_id + 2 * RESERVE_AHEAD);
    if (soon)
        __builtin_prefetch(soon, 1);
    return e;
}

/* A thread submitting through handles (the engine) takes up to RESERVE_AHEAD ids under
 * one lock and hands them out one by one: reserving was a contended lock per task.  The
 * ids it holds count as pending (at most RESERVE_AHEAD - 1 more per submitting thread)
 * and nobody knows them until they are handed out.  Only a store with room for more
 * than that gets them ahead, so a small store refuses exactly when full. */
static _Thread_local struct {
    uint64_t gen;                    /* the store they belong to */
    unsigned n, next;
    struct result_entry *e[RESERVE_AHEAD];
} ahead;

enum ggl_status results_reserve_handle(struct results *r, uint64_t *id, struct result_handle **h)
{
    enum ggl_status st = GGL_OK;
    if (!h || ahead.gen != r->gen || ahead.next == ahead.n) {
        unsigned want = h && r->cfg.max_results >= 64 * RESERVE_AHEAD ? RESERVE_AHEAD : 1;
        uint64_t now = clock_now_ms();
        struct result_entry *got[RESERVE_AHEAD];
        struct evicted ev;
        ev.n = 0;
        unsigned n = 0;
        pthread_mutex_lock(&r->lock);
        /* a full store evicts for the ids ahead too (it kept them at one per lock) */
        while (n < want && (got[n] = reserve_locked(r, now, &st, &ev, n > 0)) != NULL)
            n++;
        pthread_mutex_unlock(&r->lock);
        for (unsigned i = 0; i < ev.n; i++)
            free(ev.data[i]), free(ev.reason[i]);
        if (ev.n)
            metrics_add(r->m_evicted, ev.n);
        if (!n)
            return st;
        *id = got[0]->id;
        if (!h)
            return GGL_OK;
        *h = (struct result_handle *)got[0];
        if (ahead.gen == r->gen && ahead.next < ahead.n) /* not ours to drop */
            return GGL_OK;
        ahead.gen = r->gen, ahead.next = 0, ahead.n = n - 1;
        memcpy(ahead.e, got + 1, (n - 1) * sizeof *got);
        return GGL_OK;
    }
    struct result_entry *e = ahead.e[ahead.next++];
    *id = e->id;
    *h = (struct result_handle *)e;
    return GGL_OK;
}

int results_start_handle(struct results *r, struct result_handle *h, uint64_t id)
{
    (void)r;
    return move_pending((struct result_entry *)h, id, RESULT_RUNNING); /* -1: done, or reused */
}

int results_handle_pending(const struct result_handle *h, uint64_t id)
{
    const struct result_entry *e = (const struct result_entry *)h;
    uint64_t t = atomic_load(&e->tag);
    return t >> TAG_SHIFT == id && (t & TAG_STATE) != RESULT_DONE;
}

/* Move a pending id to `state`; -1 when it is not pending. */
static int set_pending_state(struct results *r, uint64_t id, enum result_state state)
{
    pthread_mutex_lock(&r->lock);
    struct result_entry *e = entry_find(r, id);
    int rc = e ? move_pending(e, id, state) : -1;
    pthread_mutex_unlock(&r->lock);
    return rc;
}

int results_start(struct results *r, uint64_t id) { return set_pending_state(r, id, RESULT_RUNNING); }

int results_requeue(struct results *r, uint64_t id) { return set_pending_state(r, id, RESULT_QUEUED); }

enum result_state results_get(struct results *r, uint64_t id, struct result_view *out)
{
    pthread_mutex_lock(&r->lock);
    struct result_entry *e = find_live(r, id);
    enum result_state s = e ? entry_state(e) : RESULT_UNKNOWN;
    if (s == RESULT_DONE && out) {
        view_of(e, out);
        out->data = e->len ? malloc(e->len) : NULL;
        if (out->data)
            memcpy(out->data, e->data, e->len);
        else
            out->len = 0;
    }
    pthread_mutex_unlock(&r->lock);
    return s;
}

void result_view_free(struct result_view *v)
{
    free(v->data);
    v->data = NULL;
}

void results_stats(struct results *r, struct results_stats *out)
{
    pthread_mutex_lock(&r->lock);
    metrics_set(r->m_held, (double)r->held); /* not on every reserve: a shared line */
    *out = r->st;
    size_t finished = atomic_load_explicit(&r->pushed, memory_order_relaxed) - r->removed;
    out->finished = finished < r->held ? finished : r->held;
    out->pending = r->held - out->finished;
    out->waiters = r->n_waiters;
    pthread_mutex_unlock(&r->lock);
}
