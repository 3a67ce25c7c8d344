/* The thread pool that runs the host's tasks.  Each worker owns a slot: a bounded ring
 * under its own mutex and condvar, plus the batch it is running.  Wake-ups cost up to
 * ~30 us across CPUs here (shared/PERF.md), so a submit signals only a worker that is
 * idle; a submit that finds every worker busy just queues.  Workers take batches of up
 * to POOL_BATCH, and an idle worker steals half of a busy one's ring before sleeping.
 *
 * Weights: type t may have  queue_capacity * weight_t / sum(weights)  tasks admitted
 * and unfinished (at least 1); beyond that it gets GGL_RETRY.  Under contention each
 * type therefore holds its weighted share of the queued work, and FIFO service turns
 * that into its share of the workers.
 *
 * Stuck workers, growing and retiring live in poolmaint.c. */
#include "ggl-build.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "deadline.h"
#include "hostapi.h"
#include "log.h"
#include "metrics.h"
#include "pool.h"
#include "pool_impl.h"

static _Thread_local unsigned cursor; /* round-robin start for this submitting thread */
static _Thread_local struct slot *guarded; /* the slot whose deadline task runs here */
static _Thread_local struct worker *guarded_worker; /* and this thread's context */

/* --- rings (caller holds the slot's mu) ----------------------------------- */

static size_t ring_push(struct slot *s, unsigned type, const struct pool_task *t, size_t n)
{
    size_t room = s->mask + 1 - (s->tail - s->head);
    if (n > room)
        n = room;
    for (size_t i = 0; i < n; i++)
        s->ring[(s->tail + i) & s->mask] = (struct entry){t[i].fn, t[i].arg, type};
    s->tail += n;
    atomic_store(&s->depth, s->tail - s->head);
    return n;
}

static size_t ring_take(struct slot *s, struct entry *out, size_t max)
{
    size_t n = s->tail - s->head;
    if (n > max)
        n = max;
    for (size_t i = 0; i < n; i++)
        out[i] = s->ring[(s->head + i) & s->mask];
    s->head += n;
    atomic_store(&s->depth, s->tail - s->head);
    return n;
}

/* --- workers -------------------------------------------------------------- */

static void finish_types(struct pool *p, size_t *done)
{
    for (size_t t = 0; t < p->n_types; t++)
        if (done[t]) {
            atomic_fetch_sub_explicit(&p->inflight[t], done[t], memory_order_relaxed);
            done[t] = 0;
        }
}

/* Run a task that has a deadline.  Returns -1 if this thread was abandoned meanwhile:
 * then the slot and the pool belong to others and must not be touched. */
static int run_guarded(struct worker *w, struct slot *s, const struct entry *e, uint64_t deadline)
{
    uint64_t seq = ++s->seq;
    s->task_type = e->type;
    atomic_store(&s->task_start, clock_now_ms());
    atomic_store(&s->task_deadline, deadline);
    atomic_store_explicit(&w->busy, seq, memory_order_release);
    guarded = s, guarded_worker = w;
    e->fn(e->arg);
    guarded = NULL, guarded_worker = NULL;
    uint64_t expect = seq;
    if (atomic_compare_exchange_strong(&w->busy, &expect, 0))
        return 0;
    pool_zombie_exit(w);
    return -1;
}

int pool_abandoned_self(void)
{
    struct worker *w = guarded_worker;
    return w && atomic_load(&w->busy) == ABANDONED;
}

unsigned pool_workers(struct pool *p) { return atomic_load(&p->active); }

void pool_task_deadline(uint64_t ms)
{
    struct slot *s = guarded;
    if (!s || pool_abandoned_self()) /* the slot is a replacement's now */
        return;
    atomic_store(&s->task_deadline, ms);
    atomic_store(&s->task_start, clock_now_ms());
}

/* Run the slot's batch from pos.  Returns -1 if this thread was abandoned. */
static int run_batch(struct worker *w, struct slot *s)
{
    struct pool *p = w->pool;
    size_t done[POOL_MAX_TYPES] = {0};
    while (s->pos < s->n) {
        struct entry e = s->batch[s->pos++];
        uint64_t deadline = p->types[e.type].deadline_ms;
        if (deadline) {
            finish_types(p, done); /* an abandoned thread cannot report them later */
            if (run_guarded(w, s, &e, deadline) < 0)
                return -1;
        } else {
            e.fn(e.arg);
        }
        done[e.type]++;
    }
    finish_types(p, done);
    return 0;
}

/* Take half of the fullest-looking other ring, up to a batch.  Returns tasks taken. */
static size_t steal(struct pool *p, struct slot *self)
{
    unsigned me = (unsigned)(self - p->slots);
    for (unsigned k = 1; k < p->n_slots; k++) {
        struct slot *v = &p->slots[(me + k) % p->n_slots];
        size_t depth = atomic_load(&v->depth);
        if (depth == 0)
            continue;
        pthread_mutex_lock(&v->mu);
        size_t want = (v->tail - v->head + 1) / 2;
        size_t n = ring_take(v, self->batch, want < p->batch ? want : p->batch);
        pthread_mutex_unlock(&v->mu);
        if (n) {
            metrics_add(p->steals, 1);
            return n;
        }
    }
    return 0;
}

static size_t take_own(struct pool *p, struct slot *s)
{
    pthread_mutex_lock(&s->mu);
    size_t n = ring_take(s, s->batch, p->batch);
    pthread_mutex_unlock(&s->mu);
    return n;
}

/* Find work for the slot's worker: its own ring, then others'.  Sleeps when there is
 * none; returns 0 when the slot is being retired or stopped and nothing is left. */
static int refill(struct pool *p, struct slot *s)
{
    s->pos = 0;
    if ((s->n = take_own(p, s)) || (!p->no_steal && (s->n = steal(p, s))))
        return 1;
    /* Announce idleness before the last look at other rings: a submitter that queues
     * elsewhere after this sees idle > 0 and kicks us (see wake_idle). */
    if (p->idle_hook)
        p->idle_hook(p->idle_arg);
    atomic_store(&s->idle_since, clock_now_ms());
    atomic_store(&s->idle, 1);
    atomic_fetch_add(&p->idle, 1);
    s->n = p->no_steal ? 0 : steal(p, s);
    pthread_mutex_lock(&s->mu);
    if (!s->n && s->tail == s->head && !s->kicked) {
        if (atomic_load(&s->state) != SLOT_ACTIVE) {
            pthread_mutex_unlock(&s->mu);
            atomic_fetch_sub(&p->idle, 1);
            atomic_store(&s->idle, 0);
            return 0;
        }
        s->sleeping = 1;
        pthread_cond_wait(&s->cv, &s->mu);
        s->sleeping = 0;
    }
    s->kicked = 0;
    pthread_mutex_unlock(&s->mu);
    atomic_fetch_sub(&p->idle, 1);
    atomic_store(&s->idle, 0);
    return 1;
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct pool *p = w->pool;
    struct slot *s = w->slot;
    do {
        if (run_batch(w, s) < 0)
            return NULL;
    } while (refill(p, s));
    return NULL;
}

/* Start a thread on slot s (caller holds maint_mu); the slot's batch resumes at pos. */
int pool_start_worker(struct pool *p, struct slot *s)
{
    struct worker *w = calloc(1, sizeof *w);
    if (!w)
        return -1;
    w->pool = p;
    w->slot = s;
    s->w = w;
    atomic_store(&s->state, SLOT_ACTIVE);
    if (pthread_create(&s->tid, NULL, worker_main, w) != 0) {
        s->w = NULL;
        atomic_store(&s->state, SLOT_NEEDS_THREAD);
        free(w);
        log_error("pool: cannot start a worker thread");
        return -1;
    }
    atomic_fetch_add(&p->active, 1);
    metrics_set(p->workers, atomic_load(&p->active));
    return 0;
}

/* Tell the slot's worker to leave once its queue is empty. */
void pool_ask_to_leave(struct slot *s)
{
    pthread_mutex_lock(&s->mu);
    atomic_store(&s->state, SLOT_RETIRING);
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

/* --- submission ----------------------------------------------------------- */

/* Reserve up to n admissions for `type` within its weighted share. */
static size_t admit(struct pool *p, unsigned type, size_t n)
{
    size_t old = atomic_fetch_add_explicit(&p->inflight[type], n, memory_order_relaxed);
    size_t lim = p->limit[type];
    size_t ok = old >= lim ? 0 : (lim - old < n ? lim - old : n);
    if (ok < n)
        atomic_fetch_sub_explicit(&p->inflight[type], n - ok, memory_order_relaxed);
    return ok;
}

/* Queue tasks on slot s if it is active; wake its worker if it is idle. */
static size_t push_to(struct slot *s, unsigned type, const struct pool_task *t, size_t n)
{
    if (atomic_load_explicit(&s->state, memory_order_relaxed) != SLOT_ACTIVE)
        return 0; /* cheap skip of slots above the live workers; re-checked under mu */
    pthread_mutex_lock(&s->mu);
    if (atomic_load(&s->state) != SLOT_ACTIVE) {
        pthread_mutex_unlock(&s->mu);
        return 0;
    }
    n = ring_push(s, type, t, n);
    int wake = n && s->sleeping;
    s->sleeping &= !wake; /* one signal per sleep, not one per push while it wakes up */
    if (n && atomic_load(&s->idle))
        s->kicked = 1;
    pthread_mutex_unlock(&s->mu);
    if (wake)
        pthread_cond_signal(&s->cv);
    return n;
}

/* Kick idle workers (the first one, or all): a sleeping one wakes, and one about to
 * sleep looks again. */
static void kick_idle(struct pool *p, int all)
{
    if (atomic_load(&p->idle) == 0)
        return;
    for (unsigned i = 0; i < p->n_slots; i++) {
        struct slot *s = &p->slots[i];
        if (!atomic_load(&s->idle))
            continue;
        pthread_mutex_lock(&s->mu);
        int wake = s->sleeping;
        s->sleeping = 0;
        s->kicked = 1;
        pthread_mutex_unlock(&s->mu);
        if (wake)
            pthread_cond_signal(&s->cv);
        if (!all)
            return;
    }
}

/* Work was queued on a busy worker: if some worker is idle, kick it to steal. */
static void wake_idle(struct pool *p) { kick_idle(p, 0); }

void pool_wake_all(struct pool *p) { kick_idle(p, 1); }

/* The slot to try first: an idle worker's with nothing queued yet if any, else the next
 * in round-robin order.  An idle slot already given work has a worker about to wake for
 * it: a second push there would wait behind the first however long it runs (an engine
 * token loop runs until the queues are empty) while other workers sleep. */
static unsigned first_slot(struct pool *p)
{
    if (atomic_load(&p->idle) > 0)
        for (unsigned i = 0; i < p->n_slots; i++)
            if (atomic_load(&p->slots[i].idle) && atomic_load(&p->slots[i].depth) == 0 &&
                atomic_load(&p->slots[i].state) == SLOT_ACTIVE)
                return i;
    return cursor++ % p->n_slots;
}

size_t pool_submit_batch(struct pool *p, unsigned type, const struct pool_task *tasks, size_t n)
{
    if (type >= p->n_types || n == 0)
        return 0;
    size_t ok = admit(p, type, n), done = 0;
    unsigned active = atomic_load(&p->active);
    size_t chunk = active ? (ok + active - 1) / active : ok;
    unsigned start = first_slot(p);
    int queued_on_busy = 0;
    /* Two rounds: the first spreads chunks, the second fills whatever room is left. */
    for (unsigned k = 0; done < ok && k < 2 * p->n_slots; k++) {
        struct slot *s = &p->slots[(start + k) % p->n_slots];
        size_t want = k < p->n_slots && ok - done > chunk ? chunk : ok - done;
        int was_idle = atomic_load(&s->idle);
        size_t got = push_to(s, type, tasks + done, want);
        done += got;
        queued_on_busy |= got && !was_idle;
    }
    if (ok > done) /* admitted, but every queue was full */
        atomic_fetch_sub_explicit(&p->inflight[type], ok - done, memory_order_relaxed);
    if (done < n)
        metrics_add(p->refused, (double)(n - done));
    if (queued_on_busy)
        wake_idle(p);
    return done;
}

enum ggl_status pool_submit(struct pool *p, unsigned type, pool_fn fn, void *arg)
{
    struct pool_task t = {fn, arg};
    if (type >= p->n_types)
        return GGL_INVALID;
    return pool_submit_batch(p, type, &t, 1) == 1 ? GGL_OK : GGL_RETRY;
}

/* --- life cycle ----------------------------------------------------------- */

static int slot_init(struct slot *s, size_t ring_size)
{
    size_t size = 1;
    while (size < ring_size)
        size <<= 1;
    memset(s, 0, sizeof *s);
    s->ring = calloc(size, sizeof *s->ring);
    if (!s->ring)
        return -1;
    s->mask = size - 1;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    return 0;
}

static void set_types(struct pool *p, const struct pool_config *cfg)
{
    static const struct pool_type one = {1, 0};
    p->n_types = cfg->types ? cfg->n_types : 1;
    memcpy(p->types, cfg->types ? cfg->types : &one, p->n_types * sizeof *p->types);
    uint64_t total = 0;
    for (size_t t = 0; t < p->n_types; t++)
        total += p->types[t].weight ? p->types[t].weight : 1;
    for (size_t t = 0; t < p->n_types; t++) {
        uint64_t w = p->types[t].weight ? p->types[t].weight : 1;
        size_t share = (size_t)(cfg->queue_capacity * w / total);
        p->limit[t] = share ? share : 1;
    }
}

static void register_metrics(struct pool *p, const char *label)
{
    static const struct {
        size_t offset;
        enum ggl_metric_type type;
        const char *name, *help;
    } m[] = {
        {offsetof(struct pool, refused), GGL_METRIC_COUNTER, "pool_refused_total",
         "tasks refused at admission (type share or queues full)"},
        {offsetof(struct pool, abandoned), GGL_METRIC_COUNTER, "pool_abandoned_total",
         "workers abandoned past a task deadline"},
        {offsetof(struct pool, grown), GGL_METRIC_COUNTER, "pool_grown_total", "workers started under backlog"},
        {offsetof(struct pool, retired), GGL_METRIC_COUNTER, "pool_retired_total", "idle workers retired"},
        {offsetof(struct pool, steals), GGL_METRIC_COUNTER, "pool_steals_total",
         "batches an idle worker took from another's queue"},
        {offsetof(struct pool, dropped), GGL_METRIC_COUNTER, "pool_dropped_total",
         "queued tasks never run: their worker was abandoned at shutdown"},
        {offsetof(struct pool, workers), GGL_METRIC_GAUGE, "pool_workers", "live workers"},
    };
    for (size_t i = 0; i < sizeof m / sizeof m[0]; i++)
        *(struct ggl_metric **)((char *)p + m[i].offset) =
            metrics_register(m[i].type, m[i].name, m[i].help, label);
}

struct pool *pool_new(const struct pool_config *cfg)
{
    if (cfg->min_workers < 1 || cfg->max_workers < cfg->min_workers || !cfg->queue_capacity ||
        !cfg->worker_queue || (cfg->types && (!cfg->n_types || cfg->n_types > POOL_MAX_TYPES)))
        return NULL;
    struct pool *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->slots = aligned_alloc(64, cfg->max_workers * sizeof *p->slots);
    if (!p->slots)
        goto fail;
    for (; p->n_slots < cfg->max_workers; p->n_slots++)
        if (slot_init(&p->slots[p->n_slots], cfg->worker_queue) < 0)
            goto fail;
    p->min = cfg->min_workers;
    p->max = cfg->max_workers;
    p->grow_depth = cfg->grow_depth;
    p->no_steal = cfg->no_steal;
    p->idle_hook = cfg->idle_hook;
    p->idle_arg = cfg->idle_arg;
    p->batch = cfg->batch && cfg->batch < POOL_BATCH ? cfg->batch : POOL_BATCH;
    p->idle_ms = cfg->idle_ms;
    p->monitor_ms = cfg->monitor_ms;
    set_types(p, cfg);
    register_metrics(p, cfg->name);
    pthread_mutex_init(&p->maint_mu, NULL);
    pthread_mutex_lock(&p->maint_mu);
    int started = 0;
    for (unsigned i = 0; i < p->min; i++)
        started += pool_start_worker(p, &p->slots[i]) == 0;
    pthread_mutex_unlock(&p->maint_mu);
    if (started == 0 || (p->monitor_ms && pool_monitor_add(p) < 0))
        goto fail_workers;
    return p;
fail_workers:
    pool_free(p);
    return NULL;
fail:
    for (unsigned i = 0; i < p->n_slots; i++)
        free(p->slots[i].ring);
    free(p->slots);
    free(p);
    return NULL;
}

void pool_free(struct pool *p)
{
    if (!p)
        return;
    pool_monitor_remove(p);
    pthread_mutex_lock(&p->maint_mu);
    for (unsigned i = 0; i < p->n_slots; i++)
        if (p->slots[i].w)
            pool_ask_to_leave(&p->slots[i]);
    for (unsigned i = 0; i < p->n_slots; i++)
        if (p->slots[i].w)
            pool_join_worker(p, &p->slots[i]);
    size_t left = pool_queued(p);
    if (left) {
        metrics_add(p->dropped, (double)left);
        log_warn("pool: %zu queued tasks dropped at shutdown (no worker left)", left);
    }
    metrics_set(p->workers, 0);
    pthread_mutex_unlock(&p->maint_mu);
    for (unsigned i = 0; i < p->n_slots; i++) {
        pthread_mutex_destroy(&p->slots[i].mu);
        pthread_cond_destroy(&p->slots[i].cv);
        free(p->slots[i].ring);
    }
    pthread_mutex_destroy(&p->maint_mu);
    free(p->slots);
    free(p);
}
