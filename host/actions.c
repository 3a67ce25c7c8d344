/* The action system's admission, execution, retries and shutdown (API in actions.h).
 *
 * Queue.  One host/queue.c queue holds ready actions in four priority lists (with its
 * ageing rule) and actions waiting for a retry in its min-heap by due time: workers
 * block on the queue's condition until the earliest due time or a push, so no thread
 * sleeps through a backoff and waiting costs O(log n) per retry.  Our own workers
 * (action_watchdog.c) pop one action at a time in service order; host/pool.c's
 * per-worker queues and stealing would not keep priority order across workers.
 *
 * Bounds.  `live` counts actions from admission until their feedback is delivered; it
 * never exceeds the queue's capacity (the last critical_reserve places admit only
 * critical actions), and a refused admission is GGL_RETRY (-BUSY), counted.  Since every
 * queued or delayed action is live, the queue can never be full when an action comes
 * back for a retry: retry capacity is reserved at admission.  Results, dead letters,
 * idempotency keys and parked waiters have their own bounds (actions_conf.c).
 *
 * Outcomes.  GGL_OK finishes the action.  GGL_RETRY, or a run that took longer than its
 * timeout on the host clock (its output discarded), schedules retry number k (k = 0 for
 * the first) after  d/2 + rand % (d/2 + 1)  ms with d = min(backoff_max_ms,
 * backoff_base_ms * 2^k)  (host/backoff.h: equal jitter); after max_retries retries it
 * fails.  An executor that ignores its timeout altogether is caught by the watchdog
 * (action_watchdog.c), which abandons the worker and sends a copy of the action down the
 * same timeout path.  GGL_INVALID and every other status fail at once, never retried.  A failed
 * action becomes a dead letter with its last reason.  Each outcome goes to the results
 * store (waiters answered there), then to the feedback threads. */
#include "ggl-build.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "actions_impl.h"
#include "orchestrator.h"
#include "resource.h"
#include "hostapi.h"
#include "log.h"
#include "metrics.h"

struct actions *actions_sys;

uint64_t actions_mono_us(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000 + (uint64_t)t.tv_nsec / 1000;
}

static struct ggl_metric *counter(const char *name, const char *help)
{
    return metrics_register_in("actions", GGL_METRIC_COUNTER, name, help, NULL);
}

static void register_metrics(struct actions *s)
{
    s->m_submitted = counter("actions_submitted", "actions admitted");
    s->m_completed = counter("actions_completed", "actions that succeeded");
    s->m_failed = counter("actions_failed", "actions that failed for good");
    s->m_retried = counter("actions_retried", "retries scheduled");
    s->m_dead = counter("actions_dead", "dead letters written");
    s->m_dead_dropped = counter("actions_dead_dropped", "oldest dead letters dropped for newer ones");
    s->m_dedup = counter("actions_deduplicated", "submissions answered by an earlier action's key");
    s->m_refused = counter("actions_refused", "submissions refused: queue, results or keys full");
    s->m_timeouts = counter("actions_timeouts", "runs that overran their timeout");
    s->m_cancelled = counter("actions_cancelled", "actions cancelled at shutdown");
    s->m_callbacks = counter("actions_callbacks", "completion callbacks delivered");
    s->m_fb_mem = counter("actions_feedback_memory", "outcomes written to memory");
    s->m_fb_mem_failed = counter("actions_feedback_memory_failed", "outcome writes memory refused");
    s->m_fb_state = counter("actions_feedback_state", "outcomes set in environment state");
    s->m_fb_state_unavailable =
        counter("actions_feedback_state_unavailable", "state updates the host could not take");
}

/* --- executors ---------------------------------------------------------------- */

static struct executor_slot *executor_for(struct actions *s, const char *name)
{
    for (size_t i = 0; i < s->n_execs; i++) {
        struct exec_impl *x = exec_get(&s->execs[i]);
        const char *const *names = x->ex.vt->action_names(x->ex.self);
        int serves = 0;
        for (size_t k = 0; names && names[k] && !serves; k++)
            serves = strcmp(names[k], name) == 0;
        exec_put(x);
        if (serves)
            return &s->execs[i];
    }
    return NULL;
}

/* Optional slots are called only when the plugin's vtable has them (ABI rule). */
static int has_thread_slots(const struct ggl_executor *vt)
{
    return vt->size >= offsetof(struct ggl_executor, thread_fini) + sizeof vt->thread_fini;
}

void executors_thread(struct actions *s, int init)
{
    for (size_t i = 0; i < s->n_execs; i++) { /* never swapped: action_swap.c refuses */
        const struct action_executor *ex = &atomic_load(&s->execs[i].cur)->ex;
        const struct ggl_executor *vt = ex->vt;
        if (!has_thread_slots(vt))
            continue;
        if (init && vt->thread_init && vt->thread_init(ex->self) != GGL_OK)
            log_warn("%s: thread_init failed: %s", ex->label, hostapi_take_reason());
        if (!init && vt->thread_fini)
            vt->thread_fini(ex->self);
    }
}

/* --- finishing ------------------------------------------------------------------ */

static void release_place(struct actions *s)
{
    pthread_mutex_lock(&s->fb_lock);
    if (atomic_fetch_sub(&s->live, 1) == 1)
        pthread_cond_broadcast(&s->idle_cond);
    pthread_mutex_unlock(&s->fb_lock);
}

void act_release(struct actions *s, struct act *a)
{
    free(a->data);
    free(a);
    release_place(s);
}

/* Record the final outcome, write a dead letter for a failure, hand it to feedback. */
static void finish(struct actions *s, struct act *a, enum result_status st, void *data,
                   size_t len, const char *reason)
{
    a->status = st;
    a->data = data, a->len = len;
    if (reason)
        snprintf(a->reason, sizeof a->reason, "%s", reason);
    else
        a->reason[0] = '\0';
    results_finish(s->results, a->id, st, data, len, a->reason);
    if (st == RESULT_OK)
        metrics_add(s->m_completed, 1);
    else if (st == RESULT_CANCELLED)
        metrics_add(s->m_cancelled, 1);
    else
        metrics_add(s->m_failed, 1);
    if (st != RESULT_OK && st != RESULT_CANCELLED) {
        int r = dead_add(s->dead, a->id, a->attempt + 1, clock_now_ms(), a->reason, &a->spec);
        metrics_add(s->m_dead, r >= 0);
        metrics_add(s->m_dead_dropped, r == 1);
    }
    if (a->done || a->followers_of_key || s->feedback_configured || s->bus)
        feedback_push(s, a);
    else
        act_release(s, a); /* nothing to deliver: no hop to a feedback thread */
}

static void schedule_retry(struct actions *s, struct act *a, const char *reason)
{
    uint64_t delay = backoff_delay_ms(&s->backoff, a->attempt, backoff_random());
    a->attempt++;
    snprintf(a->reason, sizeof a->reason, "%s", reason);
    if (results_requeue(s->results, a->id) < 0) { /* cancelled meanwhile: nobody wants it */
        act_release(s, a);
        return;
    }
    a->in_retry = 1;
    a->ready_us = actions_mono_us() + delay * 1000; /* its wait counts from its due time */
    atomic_fetch_add(&s->retry_depth, 1);
    metrics_add(s->m_retried, 1);
    if (queue_push_at(s->q, a, (enum ggl_priority)a->spec.priority, clock_now_ms() + delay) != GGL_OK) {
        atomic_fetch_sub(&s->retry_depth, 1); /* closed: the host is stopping */
        char why[300];
        snprintf(why, sizeof why, "retry refused at shutdown; last: %s", reason);
        finish(s, a, RESULT_CANCELLED, NULL, 0, why);
    }
}

static void outcome(struct actions *s, struct act *a, enum ggl_status st, struct ggl_result *r,
                    const char *reason)
{
    if (st == GGL_OK) {
        void *copy = NULL;
        if (r->data_len && (copy = malloc(r->data_len)))
            memcpy(copy, r->data, r->data_len);
        finish(s, a, copy || !r->data_len ? RESULT_OK : RESULT_FAILED, copy,
               copy ? r->data_len : 0, copy || !r->data_len ? NULL : "out of memory for the output");
        return;
    }
    if (st == GGL_RETRY && a->attempt < a->spec.max_retries) {
        schedule_retry(s, a, reason);
        return;
    }
    char why[300];
    if (st == GGL_RETRY)
        snprintf(why, sizeof why, "gave up after %u attempts: %s", a->attempt + 1, reason);
    else
        snprintf(why, sizeof why, "%s: %s", ggl_status_str(st), reason);
    finish(s, a, st == GGL_INVALID ? RESULT_INVALID : RESULT_FAILED, NULL, 0, why);
}

/* --- execution ------------------------------------------------------------------ */

#define EXEC_FAILED "calls stuck past their timeout; none until one returns or PLUGIN.RELOAD"


static void execute(struct actions *s, struct worker *w, struct act *a)
{
    if (results_start(s->results, a->id) < 0) {
        act_release(s, a);
        return;
    }
    uint64_t now_us = actions_mono_us();
    latency_add(&s->wait_lat, now_us > a->ready_us ? now_us - a->ready_us : 0);
    struct ggl_action ga = {.size = sizeof ga, .attempt = a->attempt, .id = a->id,
                            .name = a->spec.name, .priority = a->spec.priority,
                            .payload = a->spec.payload, .payload_len = a->spec.payload_len,
                            .timeout_ms = a->spec.timeout_ms, .max_retries = a->spec.max_retries,
                            .idempotency_key = a->spec.key};
    struct ggl_result r = {.size = sizeof r};
    struct exec_impl *e = exec_get(a->exec); /* the run finishes on it, even if swapped */
    if (atomic_load(&e->stuck) >= EXEC_MAX_STUCK) { /* queued before it got stuck */
        exec_put(e);
        outcome(s, a, GGL_ERROR, &r, EXEC_FAILED);
        return;
    }
    hostapi_clear_reason();
    uint64_t t0 = clock_now_ms(), us0 = actions_mono_us();
    watch_begin(s, w, a, e, t0);
    if (!e->concurrent)
        pthread_mutex_lock(&e->serial);
    enum ggl_status st = e->ex.vt->execute(e->ex.self, &ga, &r);
    if (!e->concurrent)
        pthread_mutex_unlock(&e->serial);
    exec_put(e);
    if (watch_end(s, w)) { /* abandoned: a copy of the action went on without us */
        free(r.data);
        free(a);
        return;
    }
    uint64_t took = clock_now_ms() - t0;
    latency_add(&s->exec_lat, actions_mono_us() - us0);
    char reason[256];
    snprintf(reason, sizeof reason, "%s", hostapi_take_reason());
    if (took > a->spec.timeout_ms) {
        metrics_add(s->m_timeouts, 1);
        snprintf(reason, sizeof reason, "timed out: ran %llu ms, timeout %llu ms",
                 (unsigned long long)took, (unsigned long long)a->spec.timeout_ms);
        st = GGL_RETRY;
    }
    outcome(s, a, st, &r, reason[0] ? reason : ggl_status_str(st));
    free(r.data); /* host->alloc is malloc */
}

void action_timed_out(struct actions *s, struct act *a, const char *reason)
{
    struct ggl_result r = {.size = sizeof r};
    metrics_add(s->m_timeouts, 1);
    outcome(s, a, GGL_RETRY, &r, reason);
}

int action_take(struct actions *s, struct worker *w, struct act *a)
{
    if (a->in_retry) {
        a->in_retry = 0;
        atomic_fetch_sub(&s->retry_depth, 1);
    }
    if (atomic_load(&s->abort_ready))
        finish(s, a, RESULT_CANCELLED, NULL, 0, "shutdown deadline passed before it ran");
    else
        execute(s, w, a);
    return !w || !w->abandoned; /* set under the watch lock, read by its own thread */
}

size_t actions_run_ready(size_t max)
{
    size_t n = 0;
    void *item;
    while (n < max && queue_pop_batch(actions_sys->q, &item, 1, 0) > 0) {
        action_take(actions_sys, NULL, item);
        n++;
    }
    return n;
}

/* --- admission ------------------------------------------------------------------ */

static enum ggl_status refuse(const char *why, const char *arg, enum ggl_status st)
{
    hostapi_set_reason(why, arg);
    return st;
}

static enum ggl_status check_spec(struct actions *s, const struct action_spec *sp,
                                  struct executor_slot **e)
{
    if (!sp->name || !(*e = executor_for(s, sp->name)))
        return refuse("no executor serves action '%s'", sp->name ? sp->name : "", GGL_NOTFOUND);
    if (atomic_load(&atomic_load(&(*e)->cur)->stuck) >= EXEC_MAX_STUCK)
        return refuse("executor for '%s' is stuck (" EXEC_FAILED ")", sp->name, GGL_ERROR);
    if (sp->priority > GGL_PRIO_LOW)
        return refuse("%s", "priority must be 0..3 (critical..low)", GGL_INVALID);
    if (sp->payload_len > (uint64_t)s->conf.max_payload)
        return refuse("%s", "payload exceeds actions.max_payload", GGL_INVALID);
    if (sp->max_retries > (uint64_t)s->conf.max_retries)
        return refuse("%s", "retries exceed actions.max_retries", GGL_INVALID);
    if (sp->timeout_ms > (uint64_t)s->conf.max_timeout_ms)
        return refuse("%s", "timeout exceeds actions.max_timeout_ms", GGL_INVALID);
    return GGL_OK;
}

/* Take one place of the capacity (critical actions may use the reserve). */
static int take_place(struct actions *s, uint32_t prio)
{
    size_t limit = prio == GGL_PRIO_CRITICAL ? s->capacity : s->capacity - s->reserve;
    size_t n = atomic_load(&s->live);
    do {
        if (n >= limit)
            return 0;
    } while (!atomic_compare_exchange_weak(&s->live, &n, n + 1));
    return 1;
}

static struct act *act_new(struct actions *s, const struct action_spec *sp, struct executor_slot *e)
{
    size_t nl = strlen(sp->name) + 1, kl = sp->key ? strlen(sp->key) + 1 : 0;
    struct act *a = calloc(1, sizeof *a + nl + kl + sp->payload_len);
    if (!a)
        return NULL;
    char *p = (char *)(a + 1);
    a->spec = *sp;
    a->spec.name = memcpy(p, sp->name, nl);
    a->spec.key = kl ? memcpy(p + nl, sp->key, kl) : NULL;
    a->spec.payload = sp->payload_len ? memcpy(p + nl + kl, sp->payload, sp->payload_len) : NULL;
    a->spec.timeout_ms = sp->timeout_ms ? sp->timeout_ms : (uint64_t)s->conf.default_timeout_ms;
    a->exec = e;
    return a;
}

struct act *act_clone(struct actions *s, const struct act *a)
{
    struct act *c = act_new(s, &a->spec, a->exec);
    if (c) {
        c->id = a->id, c->attempt = a->attempt, c->done = a->done, c->arg = a->arg;
        c->followers_of_key = a->followers_of_key;
    }
    return c;
}

static enum ggl_status reserve_id(void *ctx, uint64_t *id)
{
    return results_reserve(ctx, id);
}

/* A repeated key: the act becomes a carrier of the first action's finished result to
 * this caller's callback, or is dropped (a pending first action delivers to it). */
static void answer_repeat(struct actions *s, struct act *a, uint64_t first, int first_done)
{
    struct result_view v;
    metrics_add(s->m_dedup, 1);
    if (!a->done || !first_done) {
        act_release(s, a);
        return;
    }
    a->id = first;
    a->feedback_only = 1;
    if (results_get(s->results, first, &v) == RESULT_DONE) {
        a->status = v.status, a->data = v.data, a->len = v.len;
        snprintf(a->reason, sizeof a->reason, "%s", v.reason);
    } else {
        a->status = RESULT_CANCELLED;
        snprintf(a->reason, sizeof a->reason, "the first action's result has expired");
    }
    feedback_push(s, a);
}

/* Reserve the id, through the idempotency table when the action has a key. */
static enum ggl_status admit_id(struct actions *s, struct act *a, uint64_t *id, int *repeat)
{
    enum ggl_status st = GGL_OK;
    if (!a->spec.key)
        return results_reserve(s->results, &a->id);
    int first_done;
    struct dedup_follower f = {a->done, a->arg, 0};
    switch (dedup_claim(s->dedup, a->spec.key, clock_now_ms(), reserve_id, s->results,
                        a->done ? &f : NULL, id, &first_done, &st)) {
    case DEDUP_NEW:
        a->id = *id;
        a->followers_of_key = 1;
        return st;
    case DEDUP_REPEAT:
        *repeat = 1;
        answer_repeat(s, a, *id, first_done);
        return GGL_OK;
    case DEDUP_BUSY:
        return refuse("%s", "too many repeats wait on this idempotency key", GGL_RETRY);
    default:
        return refuse("%s", "idempotency table is full (actions.dedup_max)", GGL_RETRY);
    }
}

enum ggl_status actions_submit(const struct action_spec *spec, ggl_done_fn done, void *arg,
                               uint64_t *id, int *repeat)
{
    struct actions *s = actions_sys;
    struct executor_slot *e = NULL;
    *repeat = 0;
    if (!s || atomic_load(&s->stopping))
        return refuse("%s", "the action system is not running", GGL_UNAVAILABLE);
    enum ggl_status st = check_spec(s, spec, &e);
    if (st != GGL_OK)
        return st;
    if (!resource_admit((enum ggl_priority)spec->priority)) { /* reason set: the reading */
        metrics_add(s->m_refused, 1);
        return GGL_RETRY;
    }
    if (!take_place(s, spec->priority)) {
        metrics_add(s->m_refused, 1);
        return refuse("%s", "action queue full", GGL_RETRY);
    }
    struct act *a = act_new(s, spec, e);
    if (!a) {
        release_place(s);
        return GGL_NOMEM;
    }
    a->done = done, a->arg = arg;
    if ((st = admit_id(s, a, id, repeat)) != GGL_OK || *repeat) {
        if (st != GGL_OK) {
            metrics_add(s->m_refused, 1);
            act_release(s, a);
        }
        return st;
    }
    *id = a->id;
    a->ready_us = actions_mono_us();
    if (queue_push(s->q, a, (enum ggl_priority)spec->priority) != GGL_OK) { /* closing */
        finish(s, a, RESULT_CANCELLED, NULL, 0, "the host is shutting down");
        return refuse("%s", "the action system is stopping", GGL_UNAVAILABLE);
    }
    metrics_add(s->m_submitted, 1);
    return GGL_OK;
}

uint32_t actions_default_retries(void)
{
    return actions_sys ? (uint32_t)actions_sys->conf.default_retries : 0;
}

/* --- start and stop --------------------------------------------------------------- */

static int make_stores(struct actions *s, const struct actions_conf *ac)
{
    struct results_config rc = {.name = "actions", .max_results = (size_t)ac->results_max,
                                .max_waiters = (size_t)ac->max_waiters,
                                .max_data = (size_t)ac->max_result_bytes,
                                .ttl_ms = (uint64_t)ac->result_ttl_ms,
                                .timer_thread = ac->timer_thread};
    s->results = results_new(&rc);
    s->dead = dead_new((size_t)ac->dead_max);
    s->dedup = dedup_new((size_t)ac->dedup_max, (uint64_t)ac->dedup_window_ms);
    return s->results && s->dead && s->dedup ? 0 : -1;
}

int actions_start(const struct actions_conf *ac, const struct queue_config *qc,
                  const struct action_executor *ex, size_t n_ex, unsigned workers,
                  unsigned feedback_workers)
{
    struct actions *s = calloc(1, sizeof *s);
    if (!s)
        return -1;
    s->conf = *ac;
    s->bus = orchestrator_running();
    s->feedback_configured = (ac->feedback_memory_prefix && *ac->feedback_memory_prefix) ||
                             (ac->feedback_state_prefix && *ac->feedback_state_prefix);
    s->backoff = (struct backoff){(uint64_t)ac->backoff_base_ms, (uint64_t)ac->backoff_max_ms};
    s->capacity = qc->capacity, s->reserve = qc->critical_reserve;
    struct queue_config own = *qc;
    own.critical_reserve = 0; /* admission applies the reserve; the queue must take retries */
    pthread_mutex_init(&s->fb_lock, NULL);
    pthread_cond_init(&s->fb_cond, NULL);
    pthread_cond_init(&s->idle_cond, NULL);
    pthread_mutex_init(&s->watch_lock, NULL);
    pthread_cond_init(&s->watch_cond, NULL);
    pthread_mutex_init(&s->exec_lat.lock, NULL);
    pthread_mutex_init(&s->wait_lat.lock, NULL);
    hostapi_init(&s->state_host, "actions");
    register_metrics(s);
    s->execs = calloc(n_ex ? n_ex : 1, sizeof *s->execs);
    size_t made = 0;
    for (size_t i = 0; s->execs && i < n_ex; i++) {
        struct exec_impl *x = exec_impl_new(s, &ex[i]);
        atomic_store(&s->execs[i].cur, x);
        made += x != NULL;
    }
    if (made < n_ex) {
        free(s->execs);
        s->execs = NULL;
    }
    s->n_execs = s->execs ? n_ex : 0;
    actions_sys = s;
    if (!s->execs || make_stores(s, ac) < 0 || !(s->q = queue_new(&own)) ||
        feedback_start(s, feedback_workers ? feedback_workers : 1) < 0 ||
        workers_start(s, workers) < 0) {
        log_error("actions: cannot start");
        actions_stop();
        actions_free();
        return -1;
    }
    log_info("actions: %u workers, %u feedback threads, capacity %zu, %zu executors",
             s->n_workers, s->n_feeders, s->capacity, s->n_execs);
    return 0;
}

/* Cancel whatever is still queued: retries waiting for their due time, and ready
 * actions the deadline left.  Each is a counted, logged, delivered outcome. */
static void cancel_queued(struct actions *s)
{
    void *items[256];
    size_t n, retries = 0, ready = 0;
    while ((n = queue_drain(s->q, items, 256)) > 0)
        for (size_t i = 0; i < n; i++) {
            struct act *a = items[i];
            char why[320];
            if (a->in_retry) {
                atomic_fetch_sub(&s->retry_depth, 1);
                retries++;
                snprintf(why, sizeof why, "cancelled at shutdown while waiting for retry %u; last: %s",
                         a->attempt, a->reason);
            } else {
                ready++;
                snprintf(why, sizeof why, "cancelled at shutdown before it ran");
            }
            finish(s, a, RESULT_CANCELLED, NULL, 0, why);
        }
    if (retries + ready)
        log_warn("actions: shutdown cancelled %zu actions waiting for a retry and %zu not yet run",
                 retries, ready);
}

void actions_stop(void)
{
    struct actions *s = actions_sys;
    if (!s || atomic_exchange(&s->stopping, 1))
        return;
    if (s->q) {
        workers_stop(s); /* ready actions run until the deadline */
        cancel_queued(s);
    }
    feedback_stop(s);
    if (s->results)
        results_close_waiters(s->results);
}

void actions_free(void)
{
    struct actions *s = actions_sys;
    if (!s || s->leaked)
        return;
    actions_sys = NULL;
    queue_free(s->q);
    results_free(s->results);
    dead_free(s->dead);
    dedup_free(s->dedup);
    while (s->impls) {
        struct exec_impl *x = s->impls;
        s->impls = x->next;
        pthread_mutex_destroy(&x->serial);
        free(x);
    }
    free(s->execs);
    workers_free(s);
    free(s->feeders);
    pthread_cond_destroy(&s->watch_cond);
    pthread_mutex_destroy(&s->watch_lock);
    pthread_mutex_destroy(&s->exec_lat.lock);
    pthread_mutex_destroy(&s->wait_lat.lock);
    pthread_cond_destroy(&s->fb_cond);
    pthread_cond_destroy(&s->idle_cond);
    pthread_mutex_destroy(&s->fb_lock);
    free(s);
}

int actions_running(void) { return actions_sys && !atomic_load(&actions_sys->stopping); }
int actions_leaked(void) { return actions_sys && actions_sys->leaked; }
