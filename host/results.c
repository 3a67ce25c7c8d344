/* The results store (policy in results.h): a chained hash of entries by id under one
 * mutex, finished entries in a FIFO (one TTL, so finish order is expiry order), and the
 * life of an id.  Parked waiters and the timer thread are in results_wait.c. */
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

/* Ids are handed out in sequence, so their low bits spread them evenly and neighbours
 * share cache lines: no hash function needed. */
static size_t bucket_of(const struct results *r, uint64_t id) { return (size_t)id & r->mask; }

static struct result_entry *find(struct results *r, uint64_t id)
{
    struct result_entry *e = r->buckets[bucket_of(r, id)];
    while (e && e->id != id)
        e = e->chain;
    return e;
}

static void unlink_finished(struct results *r, struct result_entry *e)
{
    if (e->older)
        e->older->newer = e->newer;
    else
        r->oldest = e->newer;
    if (e->newer)
        e->newer->older = e->older;
    else
        r->newest = e->older;
    r->finished--;
}

/* Unlink e and keep it for the next reserve; its data and reason go to the caller,
 * which frees them (after unlocking, on a hot path). */
static void detach_entry(struct results *r, struct result_entry *e, void **data, char **reason)
{
    struct result_entry **p = &r->buckets[bucket_of(r, e->id)];
    while (*p != e)
        p = &(*p)->chain;
    *p = e->chain;
    if (entry_state(e) == RESULT_DONE)
        unlink_finished(r, e);
    r->held--;
    *data = e->data;
    *reason = e->reason;
    atomic_store(&e->tag, 0); /* a stale lock-free start now fails */
    e->id = 0, e->data = NULL, e->len = 0, e->reason = NULL, e->waiters = NULL;
    e->older = e->newer = NULL;
    e->chain = r->spare; /* kept for the next reserve */
    r->spare = e;
}

static void remove_entry(struct results *r, struct result_entry *e)
{
    void *data;
    char *reason;
    detach_entry(r, e, &data, &reason);
    free(data);
    free(reason);
}

/* An unused entry (lock held): a spare one, else from a new slab; NULL without memory.
 * Entries are never more than max_results plus one slab. */
static struct result_entry *entry_alloc(struct results *r)
{
    if (!r->spare) {
        struct result_slab *s = calloc(1, sizeof *s);
        if (!s)
            return NULL;
        s->next = r->slabs;
        r->slabs = s;
        for (size_t i = 0; i < RESULTS_SLAB; i++) {
            s->e[i].chain = r->spare;
            r->spare = &s->e[i];
        }
    }
    struct result_entry *e = r->spare;
    r->spare = e->chain;
    e->chain = NULL;
    return e;
}

static int expired(const struct results *r, const struct result_entry *e, uint64_t now)
{
    return entry_state(e) == RESULT_DONE && now - e->finished_ms >= r->cfg.ttl_ms &&
           now >= e->finished_ms;
}

/* Drop expired results, oldest first; returns when the next one expires (or MAX). */
uint64_t purge_expired(struct results *r, uint64_t now)
{
    while (r->oldest && expired(r, r->oldest, now)) {
        remove_entry(r, r->oldest);
        r->st.expired++;
        metrics_add(r->m_expired, 1);
    }
    return r->oldest ? r->oldest->finished_ms + r->cfg.ttl_ms : UINT64_MAX;
}

/* A live entry: pending, or finished and not expired (an expired one is dropped). */
struct result_entry *find_live(struct results *r, uint64_t id)
{
    struct result_entry *e = find(r, id);
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
    struct results *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->cfg = *cfg;
    size_t nb = 16;
    while (nb < cfg->max_results && nb < ((size_t)1 << 30))
        nb <<= 1;
    r->mask = nb - 1;
    r->buckets = calloc(nb, sizeof *r->buckets);
    r->heap = calloc(cfg->max_waiters ? cfg->max_waiters : 1, sizeof *r->heap);
    static _Atomic uint64_t gens;
    r->next_id = 1;
    r->gen = atomic_fetch_add(&gens, 1) + 1;
    mutex_init_adaptive(&r->lock);
    cond_init_monotonic(&r->timer_cond);
    register_metrics(r);
    if (!r->buckets || !r->heap ||
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
    if (r->buckets)
        results_close_waiters(r);
    if (r->have_timer) {
        pthread_mutex_lock(&r->lock);
        r->stopping = 1;
        pthread_cond_signal(&r->timer_cond);
        pthread_mutex_unlock(&r->lock);
        pthread_join(r->timer, NULL);
    }
    for (size_t b = 0; r->buckets && b <= r->mask; b++)
        while (r->buckets[b])
            remove_entry(r, r->buckets[b]);
    while (r->slabs) {
        struct result_slab *next = r->slabs->next;
        free(r->slabs);
        r->slabs = next;
    }
    free(r->buckets);
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

/* One fresh queued entry (lock held), or NULL with *st the reason. */
static struct result_entry *reserve_locked(struct results *r, uint64_t now, enum ggl_status *st,
                                           struct evicted *ev)
{
    if (r->held >= r->cfg.max_results)
        purge_expired(r, now);
    if (r->held >= r->cfg.max_results && r->cfg.evict_unread && r->oldest) {
        /* the oldest finished result, unread */
        detach_entry(r, r->oldest, &ev->data[ev->n], &ev->reason[ev->n]);
        ev->n++;
        r->st.evicted++;
        if (r->oldest) { /* the next to go is cold (max_results ago): start fetching it */
            __builtin_prefetch(r->oldest, 1);
            if (r->oldest->newer)
                __builtin_prefetch(r->oldest->newer, 1);
        }
    }
    if (r->held >= r->cfg.max_results) {
        r->st.refused++;
        metrics_add(r->m_refused, 1);
        *st = GGL_RETRY;
        return NULL;
    }
    struct result_entry *e = entry_alloc(r);
    if (!e) {
        *st = GGL_NOMEM;
        return NULL;
    }
    e->id = r->next_id++;
    entry_set_state(e, RESULT_QUEUED);
    size_t b = bucket_of(r, e->id);
    e->chain = r->buckets[b];
    r->buckets[b] = e;
    r->held++;
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
        struct evicted ev = {.n = 0};
        unsigned n = 0;
        pthread_mutex_lock(&r->lock);
        while (n < want && (n == 0 || r->held < r->cfg.max_results) &&
               (got[n] = reserve_locked(r, now, &st, &ev)) != NULL)
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
    struct result_entry *e = (struct result_entry *)h;
    uint64_t want = id << 2 | RESULT_QUEUED;
    if (atomic_compare_exchange_strong(&e->tag, &want, id << 2 | RESULT_RUNNING))
        return 0;
    return want == (id << 2 | RESULT_RUNNING) ? 0 : -1; /* else done, or reused */
}

int results_handle_pending(const struct result_handle *h, uint64_t id)
{
    const struct result_entry *e = (const struct result_entry *)h;
    uint64_t tag = atomic_load(&e->tag);
    return tag == (id << 2 | RESULT_RUNNING) || tag == (id << 2 | RESULT_QUEUED);
}

/* Move a pending id to `state`; -1 when it is not pending. */
static int set_pending_state(struct results *r, uint64_t id, enum result_state state)
{
    pthread_mutex_lock(&r->lock);
    struct result_entry *e = find(r, id);
    int ok = e && entry_state(e) != RESULT_DONE;
    if (ok)
        entry_set_state(e, state);
    pthread_mutex_unlock(&r->lock);
    return ok ? 0 : -1;
}

int results_start(struct results *r, uint64_t id) { return set_pending_state(r, id, RESULT_RUNNING); }

int results_requeue(struct results *r, uint64_t id) { return set_pending_state(r, id, RESULT_QUEUED); }

/* Fill a pending entry's outcome (lock held); data is taken over (may be NULL). */
static void settle(struct results *r, struct result_entry *e, enum result_status status, void *data,
                   size_t len, char *reason, uint64_t now)
{
    entry_set_state(e, RESULT_DONE);
    e->status = status;
    e->data = data;
    e->len = len;
    e->reason = reason;
    e->finished_ms = now;
    e->older = r->newest;
    e->newer = NULL;
    if (r->newest)
        r->newest->newer = e;
    else
        r->oldest = e;
    r->newest = e;
    r->finished++;
}

static char *reason_copy(const char *reason)
{
    return reason && reason[0] ? strndup(reason, 255) : NULL;
}

int results_finish(struct results *r, uint64_t id, enum result_status status, const void *data,
                   size_t len, const char *reason)
{
    char oversized[128];
    int too_big = r->cfg.max_data && len > r->cfg.max_data;
    if (too_big) {
        snprintf(oversized, sizeof oversized, "result of %zu bytes is over the limit of %zu",
                 len, r->cfg.max_data);
        status = RESULT_FAILED, data = NULL, len = 0, reason = oversized;
        metrics_add(r->m_oversized, 1);
    }
    void *copy = len ? malloc(len) : NULL;
    char *why = reason_copy(reason);
    if (len && !copy) {
        status = RESULT_FAILED, len = 0;
        free(why);
        why = strdup("out of memory storing the result");
    } else if (len) {
        memcpy(copy, data, len);
    }
    struct job *done = NULL;
    uint64_t now = clock_now_ms(); /* outside the lock */
    pthread_mutex_lock(&r->lock);
    r->st.oversized += too_big;
    struct result_entry *e = find(r, id);
    int pending = e && entry_state(e) != RESULT_DONE;
    if (pending) {
        settle(r, e, status, copy, len, why, now);
        release_waiters(r, e, 0, &done);
    } else {
        r->st.late++;
    }
    pthread_mutex_unlock(&r->lock);
    complete_all(r, done);
    if (pending)
        return 0;
    metrics_add(r->m_late, 1);
    free(copy);
    free(why);
    return -1;
}

#define FINISH_CHUNK 16

static void finish_ok_chunk(struct results *r, struct result_ok *items, size_t n)
{
    void *copy[FINISH_CHUNK];
    size_t locked = 0; /* items[0..locked) go under the lock, the rest one by one */
    for (; locked < n; locked++) {
        struct result_ok *it = &items[locked];
        if (r->cfg.max_data && it->len > r->cfg.max_data)
            break; /* stored as failed, with its reason: results_finish */
        if ((copy[locked] = it->len ? malloc(it->len) : NULL) == NULL && it->len)
            break;
        if (it->len)
            memcpy(copy[locked], it->data, it->len);
    }
    struct job *done = NULL;
    uint64_t now = clock_now_ms();
    pthread_mutex_lock(&r->lock);
    for (size_t i = 0; i < locked; i++) {
        struct result_entry *e = find(r, items[i].id);
        if ((items[i].won = e && entry_state(e) != RESULT_DONE)) {
            settle(r, e, RESULT_OK, copy[i], items[i].len, NULL, now);
            release_waiters(r, e, 0, &done);
        } else {
            r->st.late++;
        }
    }
    pthread_mutex_unlock(&r->lock);
    complete_all(r, done);
    for (size_t i = 0; i < locked; i++)
        if (!items[i].won) {
            metrics_add(r->m_late, 1);
            free(copy[i]);
        }
    for (size_t i = locked; i < n; i++)
        items[i].won = results_finish(r, items[i].id, RESULT_OK, items[i].data, items[i].len, NULL) == 0;
}

void results_finish_ok(struct results *r, struct result_ok *items, size_t n)
{
    for (size_t off = 0; off < n; off += FINISH_CHUNK)
        finish_ok_chunk(r, items + off, n - off < FINISH_CHUNK ? n - off : FINISH_CHUNK);
}

int results_cancel(struct results *r, uint64_t id, const char *reason)
{
    char *why = reason_copy(reason ? reason : "cancelled");
    struct job *done = NULL;
    uint64_t now = clock_now_ms();
    pthread_mutex_lock(&r->lock);
    struct result_entry *e = find_live(r, id);
    int rc = !e ? -1 : entry_state(e) == RESULT_DONE ? 0 : 1;
    if (rc == 1) {
        settle(r, e, RESULT_CANCELLED, NULL, 0, why, now);
        release_waiters(r, e, 0, &done);
        why = NULL;
    }
    pthread_mutex_unlock(&r->lock);
    complete_all(r, done);
    free(why);
    return rc;
}

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
    out->finished = r->finished;
    out->pending = r->held - r->finished;
    out->waiters = r->n_waiters;
    pthread_mutex_unlock(&r->lock);
}
