/* The processing engine: the workers' side, taking, running and settling tasks
 * (submits are in engine_submit.c).
 *
 * Each type has a bounded priority queue (queue.c: four levels with ageing, due times
 * for retries).  Workers run "token" loops on the processing pool (pool.c).  A token
 * carries no task: its loop takes the best task for its worker, first from the type the
 * worker prefers (the monitor assigns preferences in proportion to the rebalanced
 * weights), else from the other type with the most weighted work (the seed's task
 * stealing), runs it, and goes on until the queues are empty (engine_loop.c, which also
 * covers batches, what loops take ahead and lingering).  A submit starts a new
 * token only while fewer loops run than workers (more, up to max_workers, when more
 * than grow_depth tasks per worker wait: the pool sees them queued and grows), so a
 * steady stream costs no pool hop or wake-up per task.  A loop leaving decrements the
 * count and then looks at the ready counts once more; a submit's push counts the task
 * ready in its queue and then looks at the loops (each side with a seq_cst fence or
 * read-modify-write between): one of them always sees the other, so no task is left
 * without a loop.
 *
 * Each task is settled exactly once (callback run, admission released) by whoever holds
 * it last: the worker, or the monitor when it times out a task whose worker is stuck.
 * The result store (results.c) decides races: the first results_finish wins, a late
 * result is discarded. */
#include "ggl-build.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "deadline.h"
#include "engine_impl.h"
#include "orchestrator.h"
#include "resource.h"
#include "hostapi.h"
#include "log.h"

static struct engine *_Atomic global_engine;
static _Thread_local uint64_t current_task;
static _Thread_local struct result_handle *current_handle;

void engine_set_global(struct engine *e) { atomic_store(&global_engine, e); }
struct engine *engine_global(void) { return atomic_load(&global_engine); }
uint64_t engine_current_task(void) { return current_task; }

int engine_task_cancelled(void)
{
    return current_task && !results_handle_pending(current_handle, current_task);
}
struct results *engine_results(struct engine *e) { return e->results; }

void engine_config_defaults(struct engine_config *c)
{
    *c = (struct engine_config){
        .queue_capacity = 4096, .critical_reserve = 64, .age_ms = 1000, .max_results = 65536,
        .max_waiters = 1024, .max_result_bytes = 1 << 20, .result_ttl_ms = 300000,
        .default_timeout_ms = 30000, .stuck_grace_ms = 5000, .max_retries = 3,
        .backoff = {.base_ms = 100, .max_ms = 10000}, .min_workers = 1, .max_workers = 4,
        .grow_depth = 4, .idle_ms = 30000, .monitor_ms = 100, .timer_threads = 1,
        .evict_results = 1};
}

/* --- settling ------------------------------------------------------------- */

static enum ggl_status callback_status(enum result_status st)
{
    static const enum ggl_status map[] = {GGL_OK, GGL_ERROR, GGL_INVALID, GGL_RETRY, GGL_NOTFOUND};
    return (unsigned)st < 5 ? map[st] : GGL_ERROR;
}

static void count_outcome(struct etype *ty, enum result_status st, unsigned n)
{
    struct ggl_metric *const m[] = {ty->completed, ty->failed, ty->invalid, ty->timed_out,
                                    ty->cancelled};
    unsigned i = (unsigned)st < 5 ? (unsigned)st : RESULT_FAILED;
    metrics_add(m[i], n);
    atomic_fetch_add(&ty->outcomes[i], n);
}

size_t engine_ready(struct engine *e)
{
    size_t n = 0; /* the queues' counts, read without their locks */
    for (size_t k = 0; k < e->n_types; k++)
        n += queue_ready(e->types[k].q);
    return n;
}

size_t engine_admitted(struct etype *ty)
{
    size_t released = atomic_load(&ty->released); /* first: admitted_in is never below it */
    return atomic_load(&ty->admitted_in) - released;
}

size_t engine_unsettled(struct engine *e)
{
    size_t n = 0;
    for (size_t k = 0; k < e->n_types; k++)
        n += engine_admitted(&e->types[k]);
    return n;
}

/* The task is done with (its result stored by us or by someone else): run its callback
 * once and count its outcome (unless `counted`: the caller counts a batch).  status < 0:
 * look the stored outcome up.  1 when this call settled it; its admission is then the
 * caller's to release. */
static int settle_one(struct engine *e, struct etask *t, int status, const void *data,
                      size_t len, int counted)
{
    int zero = 0;
    if (!atomic_compare_exchange_strong(&t->settled, &zero, 1))
        return 0;
    struct result_view v; /* not zeroed: its reason is 256 bytes, and unread here */
    v.status = RESULT_CANCELLED, v.data = NULL, v.len = 0;
    if (status < 0) {
        results_get(e->results, t->id, &v);
        status = (int)v.status, data = v.data, len = v.len;
    }
    if (!counted)
        count_outcome(&e->types[t->type], (enum result_status)status, 1);
    if (t->done) {
        struct ggl_result r = {.size = sizeof r, .status = callback_status((enum result_status)status),
                               .data = (void *)data, .data_len = len};
        t->done(t->arg, t->id, &r);
    }
    result_view_free(&v);
    return 1;
}

/* n settled tasks of type ty give their admissions back. */
static void release(struct engine *e, struct etype *ty, size_t n)
{
    atomic_fetch_add(&ty->released, n);
    if (atomic_load(&e->stopping) && engine_unsettled(e) <= atomic_load(&e->delayed)) {
        /* engine_stop waits for the last settle (only retries left waiting) */
        pthread_mutex_lock(&e->drain_mu);
        pthread_cond_broadcast(&e->drain_cv);
        pthread_mutex_unlock(&e->drain_mu);
    }
}

static void settle(struct engine *e, struct etask *t, int status, const void *data, size_t len)
{
    if (settle_one(e, t, status, data, len, 0))
        release(e, &e->types[t->type], 1);
}

/* task.done on the orchestrator's bus, when someone listens: {"type", "status",
 * "bytes"} (the result itself stays in the store, TASK.RESULT reads it). */
static void publish_done(struct engine *e, const struct etask *t, enum result_status st, size_t len)
{
    char id[24], payload[160];
    snprintf(id, sizeof id, "%llu", (unsigned long long)t->id);
    int n = snprintf(payload, sizeof payload, "{\"type\":\"%.64s\",\"status\":\"%s\",\"bytes\":%zu}",
                     e->types[t->type].name, result_status_str(st), len);
    struct orch_msg m = {.topic = "task.done", .source = "engine", .key = id, .payload = payload,
                         .payload_len = (size_t)n < sizeof payload ? (size_t)n : sizeof payload - 1};
    orchestrator_publish(&m);
}

/* Store an outcome and settle; the task's memory stays the caller's. */
static void finish(struct engine *e, struct etask *t, enum result_status st, const void *data,
                   size_t len, const char *reason)
{
    if (atomic_load_explicit(&e->publish_done, memory_order_relaxed))
        publish_done(e, t, st, len);
    struct result_ok ok = {.id = t->id, .handle = t->handle, .data = data, .len = len};
    if (st == RESULT_OK) /* without the results lock, as a batch's */
        results_finish_ok(e->results, &ok, 1);
    else
        ok.won = results_finish(e->results, t->id, st, data, len, reason) == 0;
    if (ok.won)
        settle(e, t, (int)st, data, len);
    else
        settle(e, t, -1, NULL, 0); /* cancelled or timed out first: ours is discarded */
}

void engine_settle(struct engine *e, struct etask *t, enum result_status st, const char *reason)
{
    finish(e, t, st, NULL, 0, reason);
}

/* A task that ran OK while its loop has more ahead keeps its result with the loop, to be
 * stored with the others in one go (a results lock per batch, not per task).  1: kept. */
static int keep_done(struct engine *e, struct eloop *l, struct etask *t, void *data, size_t len)
{
    if (!engine_ahead(l) ||
        (e->cfg.max_result_bytes && len > e->cfg.max_result_bytes))
        return 0;
    pthread_mutex_lock(&l->mu);
    int kept = l->n_done < ENGINE_BATCH;
    if (kept)
        l->done[l->n_done++] = (struct edone){t, data, len};
    pthread_mutex_unlock(&l->mu);
    return kept;
}

void engine_flush_done(struct engine *e, struct eloop *l)
{
    struct edone d[ENGINE_BATCH];
    struct result_ok ok[ENGINE_BATCH];
    pthread_mutex_lock(&l->mu);
    unsigned n = l->n_done;
    memcpy(d, l->done, n * sizeof *d);
    l->n_done = 0;
    pthread_mutex_unlock(&l->mu);
    if (!n)
        return;
    for (unsigned i = 0; i < n; i++)
        ok[i] = (struct result_ok){.id = d[i].t->id, .handle = d[i].t->handle, .data = d[i].data,
                                   .len = d[i].len};
    results_finish_ok(e->results, ok, n);
    unsigned won[ENGINE_MAX_TYPES] = {0}, settled[ENGINE_MAX_TYPES] = {0};
    for (unsigned i = 0; i < n; i++) {
        unsigned type = d[i].t->type;
        if (atomic_load_explicit(&e->publish_done, memory_order_relaxed))
            publish_done(e, d[i].t, RESULT_OK, d[i].len);
        if (ok[i].won) /* counted below, a batch at a time: shared lines */
            won[type] += settle_one(e, d[i].t, RESULT_OK, d[i].data, d[i].len, 1);
        else /* cancelled or timed out first */
            settled[type] += settle_one(e, d[i].t, -1, NULL, 0, 0);
        free(d[i].data);
        task_free(d[i].t);
    }
    for (size_t k = 0; k < e->n_types; k++)
        if (won[k] + settled[k]) {
            if (won[k])
                count_outcome(&e->types[k], RESULT_OK, won[k]);
            release(e, &e->types[k], won[k] + settled[k]);
        }
}

/* --- taking work ---------------------------------------------------------- */

static void task_runner(void *arg);

/* Token loops the work needs: one per worker, up to max_workers under a backlog, plus
 * one for each loop stuck in a task past its deadline. */
static size_t token_limit(struct engine *e)
{
    size_t active = pool_workers(e->pool);
    size_t want = engine_ready(e) > (size_t)e->cfg.grow_depth * active
                      ? e->cfg.max_workers : active;
    return want + atomic_load(&e->stuck);
}

/* Count one more loop if below the limit. */
static int claim_token(struct engine *e)
{
    size_t n = atomic_load(&e->tokens);
    while (n < token_limit(e))
        if (atomic_compare_exchange_weak(&e->tokens, &n, n + 1))
            return 1;
    return 0;
}

/* The engine whose token loop runs on this thread (NULL elsewhere). */
static _Thread_local struct engine *loop_of;

void engine_wake(struct engine *e)
{
    /* Submitted from inside a task and the only task waiting: this loop takes it as soon
     * as the current task returns (a sub-task's parent returns without waiting for it),
     * which saves a cross-CPU wake-up and a hop per hand-off.  Should the parent run on,
     * the monitor starts another loop within monitor_ms.  More waiting: wake as usual. */
    if (loop_of == e && engine_ready(e) <= 1)
        return;
    if (atomic_load(&e->tokens) >= e->cfg.max_workers && !atomic_load(&e->stuck))
        return; /* as many loops as there can be: the common case under a stream */
    if (claim_token(e) && pool_submit(e->pool, 0, task_runner, e) != GGL_OK)
        atomic_fetch_sub(&e->tokens, 1); /* the monitor tries again */
}

/* --- running one task ------------------------------------------------------ */

/* A processor without GGL_READS_CONCURRENT runs one task at a time; waiting for it
 * counts against the task's deadline.  Returns 0 when locked. */
static int lock_processor(struct eproc *p, uint64_t deadline_ms)
{
    if (p->concurrent)
        return 0;
    if (!deadline_ms)
        return pthread_mutex_lock(&p->serial);
    uint64_t now = clock_now_ms();
    struct timespec until = deadline_after_ms(CLOCK_REALTIME, deadline_ms > now ? deadline_ms - now : 0);
    return pthread_mutex_timedlock(&p->serial, &until);
}

static void unlock_processor(struct eproc *p)
{
    if (!p->concurrent)
        pthread_mutex_unlock(&p->serial);
}

/* Which processors this worker thread has run thread_init for.  thread_fini runs for
 * them when the thread exits (the pthread key's destructor), and for a replaced one
 * before: at the thread's next task loop or, idle, when the swap wakes it (the pool's
 * idle hook).  Until then the processor counts the thread in thread_states, which keeps
 * its instance open (engine_processor_refs). */
struct thread_record {
    struct engine *e;
    unsigned retire_gen;            /* e->retire_gen when this thread last looked */
    unsigned char inited[];         /* by processor index */
};

/* thread_fini for processor i on this thread, if it ran thread_init there. */
static void fini_one(struct engine *e, struct thread_record *tr, size_t i)
{
    struct eproc *p = &e->procs[i];
    if (!tr->inited[i])
        return;
    tr->inited[i] = 0;
    if (GGL_HAS_SLOT(p->p->vt, struct ggl_processor, thread_fini))
        p->p->vt->thread_fini(p->p->self);
    atomic_fetch_sub(&p->thread_states, 1); /* after the call: the instance may close now */
}

void engine_thread_fini(void *record)
{
    struct thread_record *tr = record;
    struct engine *e = tr->e;
    size_t n = atomic_load(&e->n_procs);
    for (size_t i = 0; !atomic_load(&e->workers_gone) && i < n; i++)
        fini_one(e, tr, i);
    free(tr);
}

/* After a swap: thread_fini on this thread for the processors replaced since it last
 * looked.  One load per task loop otherwise; also run by each pool worker as it runs out
 * of work (engine_idle_hook), and a swap wakes the sleeping ones for it. */
static void fini_retired(struct engine *e)
{
    unsigned gen = atomic_load_explicit(&e->retire_gen, memory_order_acquire);
    if (gen == 0) /* never swapped: the common case */
        return;
    struct thread_record *tr = e->have_key ? pthread_getspecific(e->thread_key) : NULL;
    if (!tr || tr->retire_gen == gen)
        return;
    int later = 0;
    size_t n = atomic_load(&e->n_procs);
    for (size_t i = 0; i < n; i++) {
        struct eproc *p = &e->procs[i];
        if (!tr->inited[i] || !atomic_load(&p->retired))
            continue;
        /* one call at a time into a processor without GGL_READS_CONCURRENT, thread_fini
         * included; held by a call (a stuck one, say): look again next time */
        if (!p->concurrent && pthread_mutex_trylock(&p->serial) != 0) {
            later = 1;
            continue;
        }
        fini_one(e, tr, i);
        if (!p->concurrent)
            pthread_mutex_unlock(&p->serial);
    }
    tr->retire_gen = later ? gen - 1 : gen;
}

void engine_idle_hook(void *arg) { fini_retired(arg); }

/* Run p's thread_init once on this thread before its first task here. */
static enum ggl_status thread_init_once(struct engine *e, struct eproc *p)
{
    const struct ggl_processor *vt = p->p->vt;
    if (!e->have_key || !GGL_HAS_SLOT(vt, struct ggl_processor, thread_init))
        return GGL_OK;
    struct thread_record *tr = pthread_getspecific(e->thread_key);
    if (!tr) {
        if (!(tr = calloc(1, sizeof *tr + e->n_procs + ENGINE_SPARE_PROCS)))
            return GGL_NOMEM;
        tr->e = e;
        tr->retire_gen = atomic_load(&e->retire_gen);
        pthread_setspecific(e->thread_key, tr);
    }
    size_t i = (size_t)(p - e->procs);
    if (tr->inited[i])
        return GGL_OK;
    atomic_fetch_add(&p->thread_states, 1); /* before: it keeps the instance open */
    enum ggl_status st = vt->thread_init(p->p->self);
    tr->inited[i] = st == GGL_OK;
    if (st != GGL_OK)
        atomic_fetch_sub(&p->thread_states, 1);
    else if (atomic_load(&p->retired)) /* replaced while this call began: fini at next look */
        tr->retire_gen = atomic_load(&e->retire_gen) - 1;
    return st;
}

/* The processor serving ty, referenced for the loop's calls (engine_swap.c): the loop
 * keeps its reference from task to task while the type's processor stays the one it
 * holds, so a stream of calls writes no shared reference count; it lets go when the
 * processor was swapped or when the loop leaves. */
static struct eproc *loop_proc(struct eloop *l, struct etype *ty)
{
    if (l->held && atomic_load(&ty->proc) == l->held)
        return l->held;
    if (l->held)
        engine_proc_put(l->held);
    return l->held = engine_proc_get(ty);
}

/* Call the processor: the task's outcome status, result filled, reason copied. */
static enum ggl_status call_processor(struct engine *e, struct eloop *l, struct etask *t,
                                      struct ggl_result *res, char *reason, size_t reason_len)
{
    struct etype *ty = &e->types[t->type];
    struct eproc *p = loop_proc(l, ty); /* the call finishes on it, even if swapped */
    struct ggl_task gt = {.size = sizeof gt, .attempt = t->attempt, .id = t->id,
                          .type = ty->name, .priority = (uint32_t)t->prio,
                          .payload = t->payload, .payload_len = t->len,
                          .deadline_ms = t->deadline_ms};
    if (lock_processor(p, t->deadline_ms) != 0) {
        snprintf(reason, reason_len, "deadline passed waiting for %s (one task at a time)",
                 p->p->label);
        return GGL_UNAVAILABLE;
    }
    hostapi_clear_reason();
    current_task = t->id, current_handle = t->handle;
    enum ggl_status st = thread_init_once(e, p);
    if (st == GGL_OK)
        st = p->p->vt->process(p->p->self, &gt, res);
    current_task = 0;
    const char *why = hostapi_take_reason();
    size_t n = why[0] ? strnlen(why, reason_len - 1) : 0; /* most tasks leave none */
    memcpy(reason, why, n);
    reason[n] = '\0';
    unlock_processor(p);
    return st;
}

/* GGL_RETRY with retries left: queue it again after its backoff.  0 when requeued. */
static int retry_later(struct engine *e, struct etask *t)
{
    if (t->attempt >= t->max_retries || atomic_load(&e->stopping) ||
        results_requeue(e->results, t->id) < 0)
        return -1;
    struct etype *ty = &e->types[t->type];
    uint64_t due = clock_now_ms() + backoff_delay_ms(&e->cfg.backoff, t->attempt, backoff_random());
    t->attempt++;
    /* its queue slot is still counted in admitted, so the queue has room */
    if (queue_push_at(ty->q, t, t->prio, due) != GGL_OK)
        return -1;
    pthread_mutex_lock(&e->mu);
    engine_schedule_retry(e, t->type, due);
    pthread_mutex_unlock(&e->mu);
    metrics_add(ty->retried, 1); /* last: tests see the retry scheduled once counted */
    atomic_fetch_add(&ty->outcomes[OUTCOME_RETRIED], 1);
    return 0;
}

static void conclude(struct engine *e, struct etask *t, enum ggl_status st,
                     const struct ggl_result *res, const char *reason)
{
    char why[384];
    size_t len = res->data ? res->data_len : 0;
    if (st == GGL_OK && e->cfg.max_result_bytes && len > e->cfg.max_result_bytes) {
        snprintf(why, sizeof why, "result of %zu bytes is over max_result_bytes (%zu)", len,
                 e->cfg.max_result_bytes); /* so the callback and the store agree */
        finish(e, t, RESULT_FAILED, NULL, 0, why);
        return;
    }
    switch (st) {
    case GGL_OK:
        finish(e, t, RESULT_OK, res->data, len, NULL);
        return;
    case GGL_INVALID:
        finish(e, t, RESULT_INVALID, NULL, 0, reason[0] ? reason : "invalid input");
        return;
    case GGL_UNAVAILABLE: /* the deadline passed before it could start */
        finish(e, t, RESULT_TIMEOUT, NULL, 0, reason);
        return;
    case GGL_RETRY:
        snprintf(why, sizeof why, "still failing after %u retries: %s", t->attempt,
                 reason[0] ? reason : "retry");
        break;
    default:
        snprintf(why, sizeof why, "%s%s%s", ggl_status_str(st), reason[0] ? ": " : "", reason);
        break;
    }
    finish(e, t, RESULT_FAILED, NULL, 0, why);
}

/* Tell the pool when to abandon this worker: the task's deadline plus the grace, or
 * never for a task without one (set only when it changes: it reads the clock). */
static void guard_worker(struct engine *e, const struct etask *t, uint64_t now)
{
    static _Thread_local int limited;
    if (t->deadline_ms)
        pool_task_deadline(t->deadline_ms - now + e->cfg.stuck_grace_ms);
    else if (limited)
        pool_task_deadline(UINT64_MAX / 4);
    limited = t->deadline_ms != 0;
}

/* Time in tasks, for utilisation: summed per thread and added about once a ms, not per
 * task (a shared line). */
static void add_busy(struct engine *e, uint64_t ns)
{
    static _Thread_local uint64_t pending;
    pending += ns;
    if (pending >= 1000000) {
        atomic_fetch_add_explicit(&e->busy_ns, pending, memory_order_relaxed);
        pending = 0;
    }
}

/* Timing.  Two monotonic clock reads are a tenth of a no-op task's cost here, so while a
 * type's tasks are short one in ENGINE_SAMPLE is timed, picked at submit (it carries its
 * queued time), and stands for ENGINE_SAMPLE in the busy time; a type whose timed tasks
 * run long (time_all) has every task timed.  0: t is not timed. */
static unsigned task_weight(struct etype *ty, const struct etask *t)
{
    return !t->queued_ns ? 0 : atomic_load_explicit(&ty->time_all, memory_order_relaxed) ? 1 : ENGINE_SAMPLE;
}

static uint64_t task_started(struct etype *ty, const struct etask *t, unsigned weight)
{
    if (!weight)
        return 0;
    uint64_t start_ns = latency_now_ns();
    uint64_t waited = start_ns > t->queued_ns ? start_ns - t->queued_ns : 0;
    latency_record(&ty->wait, waited);
    atomic_fetch_add_explicit(&ty->wait_ns_sum, waited, memory_order_relaxed); /* rebalancing */
    atomic_fetch_add_explicit(&ty->wait_n, 1, memory_order_relaxed);
    return start_ns;
}

/* How long a timed task ran, UINT64_MAX for one not timed. */
static uint64_t task_ran(struct engine *e, struct etype *ty, uint64_t start_ns, unsigned weight)
{
    if (!weight)
        return UINT64_MAX;
    uint64_t ran = latency_now_ns() - start_ns;
    latency_record(&ty->run, ran);
    add_busy(e, ran * weight);
    int time_all = ran >= ENGINE_SHORT_NS;
    if (atomic_load_explicit(&ty->time_all, memory_order_relaxed) != time_all)
        atomic_store_explicit(&ty->time_all, time_all, memory_order_relaxed); /* rarely */
    return ran;
}

/* Run t on this worker; frees t unless it went back to its queue for a retry.  Returns
 * how long the processor took when timed (0 when it was not called, UINT64_MAX when it
 * was not timed). */
static uint64_t run_task(struct engine *e, struct eloop *l, struct etask *t)
{
    struct etype *ty = &e->types[t->type];
    unsigned weight = task_weight(ty, t);
    uint64_t start_ns = task_started(ty, t, weight);
    uint64_t now = t->deadline_ms ? clock_now_ms() : 0;
    if (results_start_handle(e->results, t->handle, t->id) < 0) { /* cancelled while queued */
        settle(e, t, -1, NULL, 0);
        task_free(t);
        return 0;
    }
    if (t->deadline_ms && now >= t->deadline_ms) {
        finish(e, t, RESULT_TIMEOUT, NULL, 0, "deadline passed while queued");
        task_free(t);
        return 0;
    }
    if (atomic_load(&ty->proc->failed)) {
        finish(e, t, RESULT_FAILED, NULL, 0, "processor failed: a worker was stuck in it past a deadline");
        task_free(t);
        return 0;
    }
    guard_worker(e, t, now);
    engine_loop_running(l, t);
    atomic_store_explicit(&l->running_type, (int)t->type, memory_order_relaxed);
    struct ggl_result res = {.size = sizeof res};
    char reason[256];
    enum ggl_status st = call_processor(e, l, t, &res, reason, sizeof reason);
    atomic_store_explicit(&l->running_type, -1, memory_order_relaxed);
    engine_loop_ran(e, l, t);
    uint64_t ran = task_ran(e, ty, start_ns, weight);
    if (t->deadline_ms && clock_now_ms() >= t->deadline_ms) { /* too late, whatever it says */
        finish(e, t, RESULT_TIMEOUT, NULL, 0, "finished after its deadline; result discarded");
        free(res.data);
        task_free(t);
        return ran;
    }
    if (st == GGL_RETRY && retry_later(e, t) == 0) {
        free(res.data);
        return ran;
    }
    if (st == GGL_OK && keep_done(e, l, t, res.data, res.data ? res.data_len : 0))
        return ran;
    conclude(e, t, st, &res, reason);
    free(res.data); /* host->alloc is malloc */
    task_free(t);
    return ran;
}

/* A token loop: run tasks while there are any (see the top of the file). */
static void task_runner(void *arg)
{
    struct engine *e = arg;
    struct eloop l = {.cur = NULL};
    int short_tasks = 0;
    unsigned ran = 0; /* tasks this loop ran: a stream is worth lingering for */
    engine_loop_enter(e, &l);
    loop_of = e;
    for (;;) {
        fini_retired(e);
        struct etask *t = engine_next_task(e, &l, short_tasks);
        if (atomic_load_explicit(&l.n_done, memory_order_relaxed) &&
            !engine_ahead(&l))
            engine_flush_done(e, &l); /* the last of a batch: before it runs */
        if (t) {
            uint64_t took = run_task(e, &l, t);
            if (took != UINT64_MAX) /* timed: batch while they are short */
                short_tasks = took < ENGINE_SHORT_NS;
            ran++;
            if (!pool_abandoned_self())
                continue;
            atomic_fetch_sub(&e->tokens, 1); /* a replacement took over this worker */
            break;
        }
        if (ran >= ENGINE_BATCH && short_tasks && engine_linger(e))
            continue;
        atomic_fetch_sub(&e->tokens, 1);
        atomic_thread_fence(memory_order_seq_cst); /* uncounted, then look at the queues */
        if (engine_ready(e) == 0 || !claim_token(e))
            break;
    }
    if (l.held)
        engine_proc_put(l.held);
    loop_of = NULL;
    engine_loop_leave(e, &l);
}
