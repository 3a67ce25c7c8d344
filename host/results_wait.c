/* The results store's parked requests (policy in results.h): waiters in a min-heap by
 * deadline, each also linked from its id's entry; the optional timer thread answering
 * them at their deadline; the reply encodings and RESULT/STATUS answers. */
#include "ggl-build.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "commands.h"
#include "conn.h"
#include "deadline.h"
#include "hostapi.h"
#include "results_impl.h"

#define EXPIRY_SWEEP_MS 100

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
void complete_all(struct results *r, struct job *list)
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

void view_of(const struct result_entry *e, struct result_view *v)
{
    v->status = e->status;
    v->data = e->data;
    v->len = e->len;
    snprintf(v->reason, sizeof v->reason, "%s", e->reason ? e->reason : "");
    v->finished_ms = e->finished_ms;
}

/* Write the reply owed to a waiter on e (finished, pending past its wait, or closing). */
static void reply_for(struct buf *out, const struct result_entry *e, int closing)
{
    if (entry_state(e) == RESULT_DONE) {
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
void release_waiters(struct results *r, struct result_entry *e, int closing, struct job **done)
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
    /* Expired results are invisible at once (every lookup checks) and purged when the
     * store is full, so sweeping them can wait: at most one sweep per EXPIRY_SWEEP_MS,
     * not a wake-up per expiring result under a steady stream. */
    if (next != UINT64_MAX && next < now + EXPIRY_SWEEP_MS)
        next = now + EXPIRY_SWEEP_MS;
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

/* The real-time wait until host-clock time due_ms (at most an hour: then look again). */
static struct timespec wake_at(uint64_t due_ms)
{
    uint64_t now = clock_now_ms();
    uint64_t wait = due_ms > now ? due_ms - now : 0;
    return deadline_after_ms(CLOCK_MONOTONIC, wait < 3600000u ? wait : 3600000u);
}

void *timer_main(void *arg)
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
        struct timespec ts = wake_at(next);
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
    struct result_entry *e = find_live(r, id);
    int pending = e && entry_state(e) != RESULT_DONE && !r->waiters_closed;
    if (pending && r->n_waiters >= r->cfg.max_waiters) {
        r->st.waiters_refused++;
        pthread_mutex_unlock(&r->lock);
        metrics_add(r->m_wrefused, 1);
        return GGL_RETRY;
    }
    /* marked first: a lock-free finish racing this then leaves the answer to the lock */
    struct waiter *w = pending && entry_mark_waited(e) == 0 ? calloc(1, sizeof *w) : NULL;
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
