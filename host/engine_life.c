/* The engine's life: building types from the processors' declared task types, the
 * pool, queues, result store and monitor; shutdown that drains to a deadline; free. */
#include "ggl-build.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "deadline.h"
#include "engine_impl.h"
#include "hostapi.h"
#include "log.h"

static unsigned base_weight(const struct engine_config *cfg, const char *type)
{
    for (size_t i = 0; i < cfg->n_weights; i++)
        if (strcmp(cfg->weights[i].type, type) == 0)
            return cfg->weights[i].weight ? cfg->weights[i].weight : 1;
    return 1;
}

static void register_type_metrics(struct etype *ty)
{
    const char *l = ty->label;
#define C(field, name, help) ty->field = metrics_register_in("engine", GGL_METRIC_COUNTER, name, help, l)
#define G(field, name, help) ty->field = metrics_register_in("engine", GGL_METRIC_GAUGE, name, help, l)
    C(completed, "engine_completed", "tasks finished ok");
    C(failed, "engine_failed", "tasks failed (errors, retries exhausted)");
    C(invalid, "engine_invalid", "tasks refused by their processor as invalid (never retried)");
    C(timed_out, "engine_timed_out", "tasks past their deadline");
    C(retried, "engine_retried", "retries queued after GGL_RETRY");
    C(cancelled, "engine_cancelled", "tasks cancelled or dropped at shutdown");
    G(g_weight, "engine_weight", "weight after the last rebalance");
    G(g_assigned, "engine_assigned", "worker indices preferring this type");
    G(g_proc_failed, "engine_processor_failed",
      "1: its processor was stuck past a deadline; its tasks are refused");
    G(g_queued, "engine_queued", "tasks waiting in the queue, ready to run");
    G(g_admitted, "engine_admitted", "tasks admitted and not finished (the bound: queue_capacity)");
    G(g_run_p50, "engine_run_p50_ms", "run time p50 (ms)");
    G(g_run_p99, "engine_run_p99_ms", "run time p99 (ms)");
    G(g_wait_p50, "engine_wait_p50_ms", "queue wait p50 (ms)");
    G(g_wait_p99, "engine_wait_p99_ms", "queue wait p99 (ms)");
#undef C
#undef G
}

/* Add a type served by p (the first processor declaring it wins). */
static int add_type(struct engine *e, struct eproc *p, const char *name)
{
    for (size_t i = 0; i < e->n_types; i++)
        if (strcmp(e->types[i].name, name) == 0) {
            log_warn("engine: task type '%s' of %s is already served by %s", name, p->p->label,
                     e->types[i].proc->p->label);
            return 0;
        }
    if (e->n_types >= ENGINE_MAX_TYPES || strlen(name) >= ENGINE_TYPE_NAME) {
        log_error("engine: task type '%.40s' of %s not served (at most %d types of < %d bytes)",
                  name, p->p->label, ENGINE_MAX_TYPES, ENGINE_TYPE_NAME);
        return 0;
    }
    struct etype *ty = &e->types[e->n_types];
    snprintf(ty->name, sizeof ty->name, "%s", name);
    ty->label = engine_intern(name);
    ty->proc = p;
    ty->base_weight = base_weight(&e->cfg, name);
    atomic_store(&ty->weight, ty->base_weight);
    struct queue_config qc = {ty->label, e->cfg.queue_capacity, e->cfg.critical_reserve,
                              e->cfg.age_ms};
    if (!(ty->q = queue_new(&qc)))
        return -1;
    register_type_metrics(ty);
    e->n_types++;
    return 0;
}

static int add_processors(struct engine *e, const struct engine_processor *procs, size_t n)
{
    e->procs = calloc(n + ENGINE_SPARE_PROCS, sizeof *e->procs);
    if (!e->procs)
        return -1;
    e->procs_cap = n + ENGINE_SPARE_PROCS;
    for (size_t i = 0; i < n; i++) {
        struct eproc *p = &e->procs[e->n_procs++];
        p->p = &procs[i];
        p->concurrent = (procs[i].vt->flags & GGL_READS_CONCURRENT) != 0;
        pthread_mutex_init(&p->serial, NULL);
        const char *const *types = procs[i].vt->task_types(procs[i].self);
        for (size_t k = 0; types && types[k]; k++)
            if (add_type(e, p, types[k]) < 0)
                return -1;
    }
    return 0;
}

static int start_pool(struct engine *e)
{
    /* one pool type: tokens; its deadline guards a token until the task inside sets its own */
    static const struct pool_type token = {1, UINT64_MAX / 4};
    size_t total = e->cfg.queue_capacity * (e->n_types ? e->n_types : 1);
    struct pool_config pc = {.name = "processing", .min_workers = e->cfg.min_workers,
                             .max_workers = e->cfg.max_workers,
                             .queue_capacity = total + POOL_BATCH,
                             .worker_queue = total / e->cfg.min_workers + POOL_BATCH,
                             .grow_depth = 0, /* a queued token is a backlog (engine.c) */
                             .idle_ms = e->cfg.idle_ms,
                             .monitor_ms = 0, .types = &token, .n_types = 1,
                             .batch = 1, .idle_hook = engine_idle_hook, .idle_arg = e};
    e->pool = pool_new(&pc);
    return e->pool ? 0 : -1;
}

static void init_sync(struct engine *e)
{
    pthread_mutex_init(&e->mu, NULL);
    pthread_mutex_init(&e->drain_mu, NULL);
    cond_init_monotonic(&e->cv);
    cond_init_monotonic(&e->drain_cv);
}

struct engine *engine_new(const struct engine_config *cfg, const struct engine_processor *procs,
                          size_t n)
{
    if (!cfg->queue_capacity || cfg->critical_reserve >= cfg->queue_capacity ||
        cfg->min_workers < 1 || cfg->max_workers < cfg->min_workers)
        return NULL;
    struct engine *e;
    if (posix_memalign((void **)&e, 64, sizeof *e) != 0) /* its types' cache lines */
        return NULL;
    memset(e, 0, sizeof *e);
    e->cfg = *cfg;
    init_sync(e);
    e->g_workers = metrics_register_in("engine", GGL_METRIC_GAUGE, "engine_workers",
                                       "processing pool workers", NULL);
    e->g_util = metrics_register_in("engine", GGL_METRIC_GAUGE, "engine_utilisation",
                                    "busy share of worker time over the last monitor pass", NULL);
    e->abandoned_tasks = metrics_register_in("engine", GGL_METRIC_COUNTER, "engine_stuck",
                                             "tasks whose worker was abandoned past the deadline", NULL);
    e->busy_refused = metrics_register_in("engine", GGL_METRIC_COUNTER, "engine_refused_busy",
                                          "submissions refused: queue or result store full", NULL);
    struct results_config rc = {.name = "engine", .max_results = cfg->max_results,
                                .max_waiters = cfg->max_waiters, .max_data = cfg->max_result_bytes,
                                .ttl_ms = cfg->result_ttl_ms, .timer_thread = cfg->timer_threads,
                                .evict_unread = cfg->evict_results};
    if (add_processors(e, procs, n) < 0 || !(e->results = results_new(&rc)))
        goto fail;
    e->max_retries_heap = cfg->queue_capacity * (e->n_types ? e->n_types : 1);
    e->retries = calloc(e->max_retries_heap, sizeof *e->retries);
    if (!e->retries || start_pool(e) < 0)
        goto fail;
    e->have_key = pthread_key_create(&e->thread_key, engine_thread_fini) == 0;
    e->last_pass_ns = latency_now_ns();
    engine_rebalance(e);
    if (engine_monitor_start(e) < 0)
        goto fail;
    return e;
fail:
    log_error("engine: cannot start (out of memory or threads)");
    atomic_store(&e->stopping, 1);
    engine_stop(e, 0);
    engine_free(e);
    return NULL;
}

/* Wait until every task not parked for a retry has settled, or deadline_ms passes. */
static void drain(struct engine *e, uint64_t deadline_ms)
{
    pthread_mutex_lock(&e->drain_mu);
    for (;;) {
        uint64_t now = clock_now_ms();
        if (engine_unsettled(e) <= atomic_load(&e->delayed) || now >= deadline_ms)
            break;
        struct timespec until = deadline_after_ms(CLOCK_MONOTONIC, deadline_ms - now);
        pthread_cond_timedwait(&e->drain_cv, &e->drain_mu, &until);
    }
    pthread_mutex_unlock(&e->drain_mu);
}

/* Cancel everything still queued (delayed retries too); returns how many. */
static size_t cancel_queued(struct engine *e)
{
    size_t cancelled = 0;
    void *items[256];
    for (size_t k = 0; k < e->n_types; k++) {
        struct etype *ty = &e->types[k];
        queue_close(ty->q);
        size_t got;
        while ((got = queue_drain(ty->q, items, 256)) > 0)
            for (size_t i = 0; i < got; i++) {
                struct etask *t = items[i];
                engine_settle(e, t, RESULT_CANCELLED, "dropped at shutdown");
                task_free(t);
                cancelled++;
            }
    }
    pthread_mutex_lock(&e->mu);
    e->n_retries = 0;
    atomic_store(&e->delayed, 0);
    pthread_mutex_unlock(&e->mu);
    return cancelled;
}

size_t engine_stop(struct engine *e, uint64_t deadline_ms)
{
    if (!e)
        return 0;
    atomic_store(&e->stopping, 1);
    if (e->pool)
        drain(e, deadline_ms);
    engine_monitor_stop(e);
    size_t cancelled = cancel_queued(e);
    if (cancelled)
        log_warn("engine: %zu queued tasks cancelled at the shutdown deadline", cancelled);
    if (e->results)
        results_close_waiters(e->results);
    pool_free(e->pool); /* runs the leftover tokens (they find nothing), joins workers */
    e->pool = NULL;
    atomic_store(&e->workers_gone, 1);
    return cancelled;
}

void engine_free(struct engine *e)
{
    if (!e)
        return;
    if (pool_wait_abandoned(100) > 0) { /* an abandoned worker may still return into us */
        log_warn("engine: abandoned workers still running; engine memory kept");
        return;
    }
    for (size_t k = 0; k < e->n_types; k++)
        queue_free(e->types[k].q);
    for (size_t i = 0; i < e->n_procs; i++)
        pthread_mutex_destroy(&e->procs[i].serial);
    results_free(e->results);
    if (e->have_key)
        pthread_key_delete(e->thread_key);
    free(e->procs);
    free(e->retries);
    pthread_cond_destroy(&e->cv);
    pthread_cond_destroy(&e->drain_cv);
    pthread_mutex_destroy(&e->mu);
    pthread_mutex_destroy(&e->drain_mu);
    free(e);
}
