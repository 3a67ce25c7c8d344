/* The results store (policy in results.h): a chained hash of entries by id under one
 * mutex, finished entries in a FIFO (one TTL, so finish order is expiry order), and
 * parked waiters in a min-heap by deadline served by an optional timer thread. */
#include "ggl-build.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "commands.h"
#include "conn.h"
#include "hostapi.h"
#include "metrics.h"
#include "offload.h"
#include "results.h"

struct waiter;

struct entry {
    uint64_t id;
    enum result_state state;
    enum result_status status;
    uint64_t finished_ms;
    void *data;
    size_t len;
    char *reason;
    struct entry *chain;             /* hash bucket */
    struct entry *older, *newer;     /* finished FIFO */
    struct waiter *waiters;          /* parked on this id */
};

struct waiter {
    struct job *job;
    struct entry *e;
    uint64_t deadline_ms;
    size_t heap_at;
    struct waiter *prev, *next;      /* the entry's list */
};

struct results {
    struct results_config cfg;
    pthread_mutex_t lock;
    pthread_cond_t timer_cond;
    pthread_t timer;
    int have_timer, stopping, waiters_closed;
    struct entry **buckets;
    size_t mask, held, finished;
    uint64_t next_id;
    struct entry *oldest, *newest;   /* finished FIFO */
    struct waiter **heap;
    size_t n_waiters;
    struct results_stats st;
    struct ggl_metric *m_refused, *m_expired, *m_late, *m_oversized, *m_wrefused, *m_held,
        *m_waiters;
};

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

static struct entry *find(struct results *r, uint64_t id)
{
    struct entry *e = r->buckets[bucket_of(r, id)];
    while (e && e->id != id)
        e = e->chain;
    return e;
}

static void unlink_finished(struct results *r, struct entry *e)
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

static void remove_entry(struct results *r, struct entry *e)
{
    struct entry **p = &r->buckets[bucket_of(r, e->id)];
    while (*p != e)
        p = &(*p)->chain;
    *p = e->chain;
    if (e->state == RESULT_DONE)
        unlink_finished(r, e);
    r->held--;
    free(e->data);
    free(e->reason);
    free(e);
}

static int expired(const struct results *r, const struct entry *e, uint64_t now)
{
    return e->state == RESULT_DONE && now - e->finished_ms >= r->cfg.ttl_ms &&
           now >= e->finished_ms;
}

/* Drop expired results, oldest first; returns when the next one expires (or MAX). */
static uint64_t purge_expired(struct results *r, uint64_t now)
{
    while (r->oldest && expired(r, r->oldest, now)) {
        remove_entry(r, r->oldest);
        r->st.expired++;
        metrics_add(r->m_expired, 1);
    }
    return r->oldest ? r->oldest->finished_ms + r->cfg.ttl_ms : UINT64_MAX;
}

/* A live entry: pending, or finished and not expired (an expired one is dropped). */
static struct entry *find_live(struct results *r, uint64_t id)
{
    struct entry *e = find(r, id);
    if (e && expired(r, e, clock_now_ms())) {
        purge_expired(r, clock_now_ms());
        e = NULL;
    }
    return e;
}

/* --- waiters: a min-heap by deadline ---------------------------------------- */

static void heap_swap(struct results *r, size_t a, size_t b)
{
    struct waiter *t = r->heap[a];
    r->heap[a] = r->heap[b];
    r->heap[b] = t;
    r->heap[a]->heap_at = a;
    r->heap[b]->heap_at = b;
}

static void heap_up(struct results *r, size_t i)
{
    while (i > 0 && r->heap[(i - 1) / 2]->deadline_ms > r->heap[i]->deadline_ms) {
        heap_swap(r, i, (i - 1) / 2);
        i = (i - 1) / 2;
    }
}

static void heap_down(struct results *r, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, m = i;
        if (l < r->n_waiters && r->heap[l]->deadline_ms < r->heap[m]->deadline_ms)
            m = l;
        if (l + 1 < r->n_waiters && r->heap[l + 1]->deadline_ms < r->heap[m]->deadline_ms)
            m = l + 1;
        if (m == i)
            return;
        heap_swap(r, i, m);
        i = m;
    }
}

/* Take w out of the heap and its entry's list. */
static void waiter_unlink(struct results *r, struct waiter *w)
{
    size_t i = w->heap_at;
    r->n_waiters--;
    if (i != r->n_waiters) {
        r->heap[i] = r->heap[r->n_waiters];
        r->heap[i]->heap_at = i;
        heap_down(r, i);
        heap_up(r, i);
    }
    if (w->prev)
        w->prev->next = w->next;
    else
        w->e->waiters = w->next;
    if (w->next)
        w->next->prev = w->prev;
    metrics_set(r->m_waiters, (double)r->n_waiters);
}

/* Replies are written under the lock (they copy the entry), handed back outside it. */
static void complete_all(struct results *r, struct job *list)
{
    while (list) {
        struct job *next = list->next;
        list->next = NULL;
        if (r->cfg.complete)
            r->cfg.complete(list);
        else
            offload_complete(list->pool, list);
        list = next;
    }
}

static void push_done(struct job **list, struct job *j)
{
    j->next = *list;
    *list = j;
}

static void view_of(const struct entry *e, struct result_view *v)
{
    v->status = e->status;
    v->data = e->data;
    v->len = e->len;
    snprintf(v->reason, sizeof v->reason, "%s", e->reason ? e->reason : "");
    v->finished_ms = e->finished_ms;
}

/* Write the reply owed to a waiter on e (finished, pending past its wait, or closing). */
static void reply_for(struct buf *out, const struct entry *e, int closing)
{
    if (e->state == RESULT_DONE) {
        struct result_view v;
        view_of(e, &v);
        results_reply(out, &v);
    } else if (closing) {
        reply_error(out, "ERR shutting down");
    } else {
        reply_nil(out);
    }
}

/* Answer every waiter of e; adds their jobs to *done. */
static void release_waiters(struct results *r, struct entry *e, int closing, struct job **done)
{
    while (e->waiters) {
        struct waiter *w = e->waiters;
        waiter_unlink(r, w);
        reply_for(&w->job->reply, e, closing);
        push_done(done, w->job);
        free(w);
    }
}

/* --- the timer thread --------------------------------------------------------- */

static uint64_t serve_deadlines(struct results *r, struct job **done)
{
    uint64_t now = clock_now_ms();
    while (r->n_waiters && r->heap[0]->deadline_ms <= now) {
        struct waiter *w = r->heap[0];
        waiter_unlink(r, w);
        reply_for(&w->job->reply, w->e, 0);
        push_done(done, w->job);
        free(w);
        r->st.waiters_timed_out++;
    }
    uint64_t next = purge_expired(r, now);
    if (r->n_waiters && r->heap[0]->deadline_ms < next)
        next = r->heap[0]->deadline_ms;
    return next;
}

uint64_t results_tick(struct results *r)
{
    struct job *done = NULL;
    pthread_mutex_lock(&r->lock);
    uint64_t next = serve_deadlines(r, &done);
    metrics_set(r->m_held, (double)r->held);
    pthread_mutex_unlock(&r->lock);
    complete_all(r, done);
    return next;
}

static void deadline_to_timespec(uint64_t due_ms, struct timespec *ts)
{
    uint64_t now = clock_now_ms();
    uint64_t wait = due_ms > now ? due_ms - now : 0;
    if (wait > 3600 * 1000u)
        wait = 3600 * 1000u; /* re-read the clock at least hourly */
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_sec += (time_t)(wait / 1000);
    ts->tv_nsec += (long)(wait % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

static void *timer_main(void *arg)
{
    struct results *r = arg;
    pthread_mutex_lock(&r->lock);
    while (!r->stopping) {
        struct job *done = NULL;
        uint64_t next = serve_deadlines(r, &done);
        if (done) {
            pthread_mutex_unlock(&r->lock);
            complete_all(r, done);
            pthread_mutex_lock(&r->lock);
            continue;
        }
        struct timespec ts;
        deadline_to_timespec(next, &ts);
        pthread_cond_timedwait(&r->timer_cond, &r->lock, &ts);
    }
    pthread_mutex_unlock(&r->lock);
    return NULL;
}

void results_kick(struct results *r)
{
    pthread_mutex_lock(&r->lock);
    pthread_cond_signal(&r->timer_cond);
    pthread_mutex_unlock(&r->lock);
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
    r->next_id = 1;
    pthread_mutex_init(&r->lock, NULL);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&r->timer_cond, &attr);
    pthread_condattr_destroy(&attr);
    register_metrics(r);
    if (!r->buckets || !r->heap ||
        (cfg->timer_thread && pthread_create(&r->timer, NULL, timer_main, r) != 0)) {
        results_free(r);
        return NULL;
    }
    r->have_timer = cfg->timer_thread;
    return r;
}

void results_close_waiters(struct results *r)
{
    struct job *done = NULL;
    pthread_mutex_lock(&r->lock);
    r->waiters_closed = 1;
    while (r->n_waiters)
        release_waiters(r, r->heap[0]->e, 1, &done);
    pthread_mutex_unlock(&r->lock);
    complete_all(r, done);
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
    free(r->buckets);
    free(r->heap);
    pthread_cond_destroy(&r->timer_cond);
    pthread_mutex_destroy(&r->lock);
    free(r);
}

/* --- the life of an id ----------------------------------------------------------- */

enum ggl_status results_reserve(struct results *r, uint64_t *id)
{
    struct entry *e = calloc(1, sizeof *e);
    if (!e)
        return GGL_NOMEM;
    pthread_mutex_lock(&r->lock);
    if (r->held >= r->cfg.max_results)
        purge_expired(r, clock_now_ms());
    if (r->held >= r->cfg.max_results) {
        r->st.refused++;
        pthread_mutex_unlock(&r->lock);
        metrics_add(r->m_refused, 1);
        free(e);
        return GGL_RETRY;
    }
    e->id = r->next_id++;
    e->state = RESULT_QUEUED;
    size_t b = bucket_of(r, e->id);
    e->chain = r->buckets[b];
    r->buckets[b] = e;
    r->held++;
    pthread_mutex_unlock(&r->lock);
    *id = e->id;
    return GGL_OK;
}

/* Move a pending id to `state`; -1 when it is not pending. */
static int set_pending_state(struct results *r, uint64_t id, enum result_state state)
{
    pthread_mutex_lock(&r->lock);
    struct entry *e = find(r, id);
    int ok = e && e->state != RESULT_DONE;
    if (ok)
        e->state = state;
    pthread_mutex_unlock(&r->lock);
    return ok ? 0 : -1;
}

int results_start(struct results *r, uint64_t id) { return set_pending_state(r, id, RESULT_RUNNING); }

int results_requeue(struct results *r, uint64_t id) { return set_pending_state(r, id, RESULT_QUEUED); }

/* Fill a pending entry's outcome (lock held); data is taken over (may be NULL). */
static void settle(struct results *r, struct entry *e, enum result_status status, void *data,
                   size_t len, char *reason)
{
    e->state = RESULT_DONE;
    e->status = status;
    e->data = data;
    e->len = len;
    e->reason = reason;
    e->finished_ms = clock_now_ms();
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
    pthread_mutex_lock(&r->lock);
    r->st.oversized += too_big;
    struct entry *e = find(r, id);
    int pending = e && e->state != RESULT_DONE;
    if (pending) {
        settle(r, e, status, copy, len, why);
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

int results_cancel(struct results *r, uint64_t id, const char *reason)
{
    char *why = reason_copy(reason ? reason : "cancelled");
    struct job *done = NULL;
    pthread_mutex_lock(&r->lock);
    struct entry *e = find_live(r, id);
    int rc = !e ? -1 : e->state == RESULT_DONE ? 0 : 1;
    if (rc == 1) {
        settle(r, e, RESULT_CANCELLED, NULL, 0, why);
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
    struct entry *e = find_live(r, id);
    enum result_state s = e ? e->state : RESULT_UNKNOWN;
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

/* --- replies and parked requests -------------------------------------------- */

void results_reply(struct buf *out, const struct result_view *v)
{
    reply_array(out, 3);
    reply_cstr(out, result_status_str(v->status));
    reply_bulk(out, v->data ? v->data : "", v->len);
    reply_cstr(out, v->reason);
}

void results_reply_state(struct buf *out, enum result_state s) { reply_status(out, result_state_str(s)); }

enum ggl_status results_park(struct results *r, uint64_t id, struct job *job, uint64_t deadline_ms)
{
    struct job *done = NULL;
    pthread_mutex_lock(&r->lock);
    struct entry *e = find_live(r, id);
    if (e && e->state != RESULT_DONE && !r->waiters_closed && r->n_waiters >= r->cfg.max_waiters) {
        r->st.waiters_refused++;
        pthread_mutex_unlock(&r->lock);
        metrics_add(r->m_wrefused, 1);
        return GGL_RETRY;
    }
    struct waiter *w = e && e->state != RESULT_DONE && !r->waiters_closed ? calloc(1, sizeof *w)
                                                                          : NULL;
    if (w) {
        *w = (struct waiter){.job = job, .e = e, .deadline_ms = deadline_ms};
        w->next = e->waiters;
        if (e->waiters)
            e->waiters->prev = w;
        e->waiters = w;
        w->heap_at = r->n_waiters;
        r->heap[r->n_waiters++] = w;
        heap_up(r, w->heap_at);
        metrics_set(r->m_waiters, (double)r->n_waiters);
        if (w->heap_at == 0)
            pthread_cond_signal(&r->timer_cond); /* a new earliest deadline */
    } else {
        if (e)
            reply_for(&job->reply, e, r->waiters_closed);
        else
            reply_error(&job->reply, "NOTFOUND no such id (never submitted, or expired)");
        push_done(&done, job);
    }
    pthread_mutex_unlock(&r->lock);
    complete_all(r, done);
    return GGL_OK;
}

void results_answer(struct results *r, struct cmd_call *call, uint64_t id, uint64_t wait_ms)
{
    struct result_view v;
    enum result_state s = results_get(r, id, &v);
    if (s == RESULT_DONE) {
        results_reply(call->out, &v);
        result_view_free(&v);
        return;
    }
    if (s == RESULT_UNKNOWN) {
        reply_error(call->out, "NOTFOUND no such id (never submitted, or expired)");
        return;
    }
    if (!wait_ms) {
        reply_nil(call->out);
        return;
    }
    struct job *j = conn_defer(call);
    if (!j) {
        reply_error(call->out, "ERR out of memory");
        return;
    }
    if (results_park(r, id, j, clock_now_ms() + wait_ms) != GGL_OK) {
        reply_error(&j->reply, "BUSY too many parked WAIT requests");
        complete_all(r, j);
    }
}

void results_answer_status(struct results *r, struct cmd_call *call, uint64_t id)
{
    results_reply_state(call->out, results_get(r, id, NULL));
}
