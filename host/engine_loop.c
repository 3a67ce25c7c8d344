/* The engine's token loops take their tasks here: from the preferred type's queue or by
 * stealing from the type with the most weighted ready work (the seed's task stealing), a
 * batch at a time while the tasks are short, else from what another loop took ahead;
 * and the loop records the monitor reads (the running task, the tasks taken ahead). */
#include "ggl-build.h"

#include <sched.h>
#include <stdlib.h>

#include "engine_impl.h"
#include "hostapi.h"

/* Up to max of type's tasks, no more than the loops' fair share of what is ready. */
static size_t pop_type(struct engine *e, unsigned type, void **out, size_t max)
{
    struct etype *ty = &e->types[type];
    size_t ready = queue_ready(ty->q);
    if (ready == 0)
        return 0;
    size_t loops = atomic_load_explicit(&e->tokens, memory_order_relaxed);
    size_t share = loops > 1 ? (ready + loops - 1) / loops : ready;
    return queue_pop_batch(ty->q, out, max < share ? max : share, 0);
}

/* This worker thread's preferred type, from the monitor's assignment table. */
static unsigned preferred_type(struct engine *e)
{
    static _Thread_local struct engine *seen;
    static _Thread_local unsigned index;
    if (seen != e) {
        seen = e;
        index = atomic_fetch_add(&e->thread_seq, 1);
    }
    unsigned t = atomic_load_explicit(&e->assign[index % 64], memory_order_relaxed);
    return t < e->n_types ? t : 0;
}

/* The preferred type's next tasks, else steal from the type with the most weighted
 * ready work.  A few rounds cover a racing worker taking the tasks we looked at. */
static size_t take_tasks(struct engine *e, void **out, size_t max)
{
    unsigned own = preferred_type(e);
    for (int round = 0; round < 3 && e->n_types; round++) {
        size_t n = pop_type(e, own, out, max);
        if (n)
            return n;
        for (size_t tries = 0; tries < 2 * e->n_types; tries++) { /* bounded: counts race */
            unsigned best = own;
            uint64_t best_score = 0;
            for (unsigned k = 0; k < e->n_types; k++) {
                uint64_t score = (uint64_t)queue_ready(e->types[k].q) *
                                 atomic_load_explicit(&e->types[k].weight, memory_order_relaxed);
                if (k != own && score > best_score)
                    best = k, best_score = score;
            }
            if (!best_score)
                break;
            if ((n = pop_type(e, best, out, max)) != 0)
                return n;
        }
    }
    return 0;
}

/* --- token loops and the tasks they took ahead ------------------------------ */

void engine_loop_enter(struct engine *e, struct eloop *l)
{
    pthread_mutex_init(&l->mu, NULL);
    atomic_store(&l->running_type, -1);
    pthread_mutex_lock(&e->mu);
    l->prev = NULL;
    l->next = e->loops;
    if (e->loops)
        e->loops->prev = l;
    e->loops = l;
    pthread_mutex_unlock(&e->mu);
}

void engine_loop_leave(struct engine *e, struct eloop *l)
{
    engine_flush_done(e, l); /* kept only when this worker was abandoned mid-batch */
    pthread_mutex_lock(&e->mu);
    pthread_mutex_lock(&l->mu);
    size_t handed = engine_hand_back(e, l); /* left only when this worker was abandoned */
    pthread_mutex_unlock(&l->mu);
    if (l->prev)
        l->prev->next = l->next;
    else
        e->loops = l->next;
    if (l->next)
        l->next->prev = l->prev;
    pthread_mutex_unlock(&e->mu);
    pthread_mutex_destroy(&l->mu);
    while (handed--)
        engine_wake(e);
}

static unsigned span_head(uint64_t s) { return (unsigned)(s >> 16) & 0xffffu; }
static unsigned span_end(uint64_t s) { return (unsigned)s & 0xffffu; }
static uint64_t span_with(uint64_t s, unsigned head, unsigned end)
{
    return (s >> 32) << 32 | (uint64_t)head << 16 | end;
}

int engine_ahead(struct eloop *l)
{
    uint64_t s = atomic_load_explicit(&l->span, memory_order_relaxed);
    return span_head(s) < span_end(s);
}

/* Take from the end of l's tasks ahead (not its own loop): all of them, or half
 * (rounded up).  Returns how many went to out. */
static size_t take_from_end(struct eloop *l, void **out, int all)
{
    uint64_t s = atomic_load_explicit(&l->span, memory_order_acquire);
    for (;;) {
        unsigned head = span_head(s), end = span_end(s);
        unsigned k = all ? end - head : (end - head + 1) / 2;
        if (!k)
            return 0;
        for (unsigned i = 0; i < k; i++) /* copied first: once claimed, the loop may refill */
            out[i] = atomic_load_explicit(&l->ahead[end - k + i], memory_order_relaxed);
        if (atomic_compare_exchange_weak_explicit(&l->span, &s, span_with(s, head, end - k),
                                                  memory_order_acq_rel, memory_order_acquire))
            return k;
    }
}

size_t engine_hand_back(struct engine *e, struct eloop *l)
{
    void *back[ENGINE_BATCH];
    size_t ready = 0, n = take_from_end(l, back, 1);
    for (size_t i = 0; i < n; i++) {
        struct etask *t = back[i];
        struct etype *ty = &e->types[t->type];
        /* its slot is still counted in admitted, so the queue has room but perhaps not
         * outside the critical reserve: then it fails rather than wait behind a stuck loop */
        if (queue_push_at(ty->q, t, t->prio, clock_now_ms()) == GGL_OK) { /* due: ready */
            ready++;
        } else {
            engine_settle(e, t, RESULT_FAILED, "its worker got stuck and the queue was full");
            task_free(t);
        }
    }
    return ready;
}

/* Half the tasks another loop took ahead (an idle loop's last look before leaving). */
static size_t steal_ahead(struct engine *e, struct eloop *self, void **out)
{
    size_t n = 0;
    pthread_mutex_lock(&e->mu);
    for (struct eloop *l = e->loops; l && !n; l = l->next) {
        if (l != self)
            n = take_from_end(l, out, 0);
    }
    pthread_mutex_unlock(&e->mu);
    return n;
}

/* The loop's next task: one it took ahead, else from the queues (up to ENGINE_BATCH
 * while its tasks are short, so a steady stream costs a queue lock per batch, not per
 * task), else from another loop. */
struct etask *engine_next_task(struct engine *e, struct eloop *l, int batch)
{
    uint64_t s = atomic_load_explicit(&l->span, memory_order_acquire);
    while (span_head(s) < span_end(s)) { /* only this loop writes ahead[]: read, then claim */
        struct etask *t = atomic_load_explicit(&l->ahead[span_head(s)], memory_order_relaxed);
        if (atomic_compare_exchange_weak_explicit(&l->span, &s,
                                                  span_with(s, span_head(s) + 1, span_end(s)),
                                                  memory_order_acq_rel, memory_order_acquire))
            return t;
    }
    void *got[ENGINE_BATCH];
    size_t n = take_tasks(e, got, batch ? ENGINE_BATCH : 1);
    if (!n && !(n = steal_ahead(e, l, got)))
        return NULL;
    if (n > 1) { /* the span is empty: nobody else changes it now; a new gen fails old claims */
        for (size_t i = 1; i < n; i++)
            atomic_store_explicit(&l->ahead[i - 1], got[i], memory_order_relaxed);
        s = atomic_load_explicit(&l->span, memory_order_relaxed);
        atomic_store_explicit(&l->span, ((s >> 32) + 1) << 32 | (uint64_t)(n - 1),
                              memory_order_release);
    }
    return got[0];
}

/* The task the loop runs, where the monitor looks for deadlines (tasks without one it
 * never times out, so they skip the lock).  Clearing reports whether the monitor gave
 * the task up as stuck meanwhile. */
void engine_loop_running(struct eloop *l, struct etask *t)
{
    if (!t->deadline_ms)
        return;
    pthread_mutex_lock(&l->mu);
    l->cur = t;
    pthread_mutex_unlock(&l->mu);
}

void engine_loop_ran(struct engine *e, struct eloop *l, struct etask *t)
{
    if (!t->deadline_ms)
        return;
    pthread_mutex_lock(&l->mu);
    l->cur = NULL;
    int stuck = t->reported_stuck;
    pthread_mutex_unlock(&l->mu);
    if (stuck) /* back after all: its loop no longer needs a stand-in */
        atomic_fetch_sub(&e->stuck, 1);
}

/* A loop that ran dry after a stream of short tasks (task_runner asks) waits up to
 * ENGINE_LINGER_NS for more work, yielding the CPU, before it gives its worker back: a
 * steady stream slightly slower than the loops then costs no cross-CPU wake-up (up to
 * ~30 us here, PERF.md) per task.  A loop that ran a task or two sleeps at once: its
 * spinning would compete for the CPU the next submitter wants.  1: work came. */
int engine_linger(struct engine *e)
{
    uint64_t until = latency_now_ns() + ENGINE_LINGER_NS;
    do {
        sched_yield();
        if (engine_ready(e))
            return 1;
    } while (!atomic_load_explicit(&e->stopping, memory_order_relaxed) && latency_now_ns() < until);
    return 0;
}

