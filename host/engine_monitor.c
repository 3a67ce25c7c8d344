/* The engine's monitor: one pass times out running tasks and flags stuck processors,
 * releases retries that fell due, tops tokens up, rebalances the type weights and the
 * workers' preferences, lets the pool grow or shrink, and publishes INFO figures.
 *
 * Rebalancing.  Each pass, for every type k:
 *     weight_k = base_k * (1 + ready_k) * (1 + wait_k / age_ms)
 * where ready_k is the tasks waiting, wait_k the mean queue wait (ms) of the tasks
 * started since the last pass and age_ms the queues' ageing step (100 ms if 0).  Worker
 * preferences are then dealt in proportion to the weights (largest remainder), so a
 * type whose queue grows or whose tasks wait gets more workers looking at it first,
 * and an idle type keeps its base share.  A worker with nothing of its own type steals
 * from the type of largest ready * weight (engine.c). */
#include "ggl-build.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "deadline.h"
#include "engine_impl.h"
#include "health.h"
#include "orchestrator.h"
#include "hostapi.h"
#include "log.h"

/* --- the retry heap (e->mu held) ---------------------------------------------- */

static void retry_swap(struct engine *e, size_t a, size_t b)
{
    struct retry t = e->retries[a];
    e->retries[a] = e->retries[b];
    e->retries[b] = t;
}

void engine_schedule_retry(struct engine *e, unsigned type, uint64_t due_ms)
{
    if (e->n_retries >= e->max_retries_heap)
        return; /* cannot happen: every retry is an admitted task; the monitor's token top-up covers it */
    size_t i = e->n_retries++;
    atomic_fetch_add(&e->delayed, 1);
    e->retries[i] = (struct retry){due_ms, type};
    while (i > 0 && e->retries[(i - 1) / 2].due_ms > e->retries[i].due_ms) {
        retry_swap(e, i, (i - 1) / 2);
        i = (i - 1) / 2;
    }
    pthread_cond_broadcast(&e->cv); /* the monitor may need to wake earlier */
}

static void retry_pop(struct engine *e)
{
    atomic_fetch_sub(&e->delayed, 1);
    e->retries[0] = e->retries[--e->n_retries];
    for (size_t i = 0;;) {
        size_t l = 2 * i + 1, m = i;
        if (l < e->n_retries && e->retries[l].due_ms < e->retries[m].due_ms)
            m = l;
        if (l + 1 < e->n_retries && e->retries[l + 1].due_ms < e->retries[m].due_ms)
            m = l + 1;
        if (m == i)
            break;
        retry_swap(e, i, m);
        i = m;
    }
}

/* Retries due by now become ready; returns how many tokens they need. */
static size_t release_due_retries(struct engine *e, uint64_t now)
{
    size_t n = 0;
    while (e->n_retries && e->retries[0].due_ms <= now) {
        struct etype *ty = &e->types[e->retries[0].type];
        retry_pop(e);
        queue_promote(ty->q, now);
        n++;
    }
    return n;
}

/* --- deadlines of running tasks (e->mu held) ------------------------------------- */

/* Time out the task a loop runs past its deadline; past the grace too, give its worker
 * up (the pool replaces it) and hand the tasks it took ahead back to the queues.
 * Returns how many were handed back (l->mu held). */
static size_t check_loop(struct engine *e, struct eloop *l, uint64_t now)
{
    struct etask *t = l->cur;
    if (!t || !t->deadline_ms || now < t->deadline_ms)
        return 0;
    if (!atomic_load(&t->settled))
        engine_settle(e, t, RESULT_TIMEOUT, "deadline passed while running");
    struct eproc *p = e->types[t->type].proc;
    if (t->reported_stuck || now < t->deadline_ms + e->cfg.stuck_grace_ms)
        return 0;
    t->reported_stuck = 1;
    atomic_fetch_add(&e->stuck, 1); /* its loop is lost: allow one more */
    atomic_store(&p->failed, 1);
    metrics_add(e->abandoned_tasks, 1);
    log_error("engine: task %llu stuck in %s %llu ms past its deadline; worker abandoned, "
              "processor marked failed", (unsigned long long)t->id, p->p->label,
              (unsigned long long)(now - t->deadline_ms));
    health_plugin_failed(p->p->label, "a worker was stuck in it past a task's deadline and abandoned");
    return engine_hand_back(e, l);
}

static size_t check_running(struct engine *e, uint64_t now)
{
    size_t handed = 0;
    for (struct eloop *l = e->loops; l; l = l->next) {
        engine_flush_done(e, l); /* a loop stuck in a task could keep them for good */
        pthread_mutex_lock(&l->mu);
        handed += check_loop(e, l, now);
        pthread_mutex_unlock(&l->mu);
    }
    return handed;
}

/* --- rebalancing ------------------------------------------------------------------ */

void engine_rebalance(struct engine *e)
{
    if (!e->n_types)
        return;
    double age = e->cfg.age_ms ? (double)e->cfg.age_ms : 100.0, w[ENGINE_MAX_TYPES], sum = 0;
    for (size_t k = 0; k < e->n_types; k++) {
        struct etype *ty = &e->types[k];
        uint64_t n = atomic_exchange(&ty->wait_n, 0), ns = atomic_exchange(&ty->wait_ns_sum, 0);
        double wait_ms = n ? (double)ns / (double)n / 1e6 : 0;
        w[k] = ty->base_weight * (1.0 + (double)queue_ready(ty->q)) * (1.0 + wait_ms / age);
        if (w[k] > 1e6)
            w[k] = 1e6;
        atomic_store(&ty->weight, (unsigned)(w[k] < 1 ? 1 : w[k]));
        sum += w[k];
    }
    /* deal preferences for min(64, max_workers) worker indices by largest remainder */
    unsigned slots = e->cfg.max_workers < 64 ? e->cfg.max_workers : 64, count[ENGINE_MAX_TYPES];
    unsigned dealt = 0;
    double rem[ENGINE_MAX_TYPES];
    for (size_t k = 0; k < e->n_types; k++) {
        double share = w[k] / sum * slots;
        count[k] = (unsigned)share;
        rem[k] = share - count[k];
        dealt += count[k];
    }
    while (dealt < slots) {
        size_t best = 0;
        for (size_t k = 1; k < e->n_types; k++)
            if (rem[k] > rem[best])
                best = k;
        count[best]++, rem[best] = -1, dealt++;
    }
    unsigned char pattern[64];
    unsigned at = 0;
    for (size_t k = 0; k < e->n_types; k++)
        for (unsigned c = 0; c < count[k] && at < slots; c++)
            pattern[at++] = (unsigned char)k;
    for (unsigned i = 0; i < 64; i++)
        atomic_store(&e->assign[i], pattern[i % slots]);
}

/* Worker indices (of min(64, max_workers)) whose preferred type is k. */
static unsigned assigned_to(struct engine *e, size_t k)
{
    unsigned n = 0;
    for (unsigned i = 0; i < 64 && i < e->cfg.max_workers; i++)
        n += atomic_load(&e->assign[i]) == k;
    return n;
}

/* --- INFO figures ------------------------------------------------------------------- */

void engine_publish(struct engine *e)
{
    uint64_t now_ns = latency_now_ns(), busy = atomic_exchange(&e->busy_ns, 0);
    struct pool_stats ps;
    pool_stats(e->pool, &ps);
    double span = (double)(now_ns - e->last_pass_ns) * (ps.workers ? ps.workers : 1);
    e->utilisation = span > 0 ? (double)busy / span : 0;
    if (e->utilisation > 1)
        e->utilisation = 1;
    e->last_pass_ns = now_ns;
    metrics_set(e->g_util, e->utilisation);
    struct results_stats rs;
    results_stats(e->results, &rs); /* refreshes the store's gauges for INFO */
    metrics_set(e->g_workers, ps.workers);
    for (size_t k = 0; k < e->n_types; k++) {
        struct etype *ty = &e->types[k];
        metrics_set(ty->g_weight, atomic_load(&ty->weight));
        metrics_set(ty->g_assigned, assigned_to(e, k));
        metrics_set(ty->g_queued, (double)queue_ready(ty->q));
        metrics_set(ty->g_admitted, (double)engine_admitted(ty));
        metrics_set(ty->g_proc_failed, atomic_load(&ty->proc->failed));
        metrics_set(ty->g_run_p50, latency_quantile_ms(&ty->run, 0.50));
        metrics_set(ty->g_run_p99, latency_quantile_ms(&ty->run, 0.99));
        metrics_set(ty->g_wait_p50, latency_quantile_ms(&ty->wait, 0.50));
        metrics_set(ty->g_wait_p99, latency_quantile_ms(&ty->wait, 0.99));
    }
}

void engine_maintain(struct engine *e)
{
    pool_maintain(e->pool);
    uint64_t now = clock_now_ms();
    pthread_mutex_lock(&e->mu);
    size_t due = release_due_retries(e, now);
    due += check_running(e, now);
    pthread_mutex_unlock(&e->mu);
    /* due retries need loops; so does work whose loop could not be started earlier */
    for (size_t i = 0; i < due + e->cfg.max_workers && engine_ready(e); i++)
        engine_wake(e);
    engine_rebalance(e);
    engine_publish(e);
    atomic_store(&e->publish_done, orchestrator_wanted("task.done"));
}

size_t engine_failed_types(struct engine *e, char *out, size_t len)
{
    size_t failed = 0, n = 0;
    if (len)
        out[0] = '\0';
    for (size_t i = 0; i < e->n_types; i++) { /* types and names are fixed after start */
        struct eproc *p = atomic_load(&e->types[i].proc);
        if (p && atomic_load(&p->failed))
            n += (size_t)snprintf(out + n, n < len ? len - n : 0, "%s%s", failed++ ? ", " : "",
                                  e->types[i].name);
    }
    return failed;
}

void engine_stats(struct engine *e, struct engine_stats *out)
{
    memset(out, 0, sizeof *out);
    out->n_types = e->n_types;
    pthread_mutex_lock(&e->mu); /* running: the loops in a task, by its type */
    for (struct eloop *l = e->loops; l; l = l->next) {
        int t = atomic_load_explicit(&l->running_type, memory_order_relaxed);
        if (t >= 0 && (size_t)t < e->n_types)
            out->type[t].running++;
    }
    pthread_mutex_unlock(&e->mu);
    for (size_t k = 0; k < e->n_types; k++) {
        struct etype *ty = &e->types[k];
        struct engine_type_stats *s = &out->type[k];
        snprintf(s->name, sizeof s->name, "%s", ty->name);
        s->queued = queue_ready(ty->q);
        s->completed = (double)atomic_load(&ty->outcomes[RESULT_OK]);
        s->failed = (double)atomic_load(&ty->outcomes[RESULT_FAILED]);
        s->invalid = (double)atomic_load(&ty->outcomes[RESULT_INVALID]);
        s->timed_out = (double)atomic_load(&ty->outcomes[RESULT_TIMEOUT]);
        s->cancelled = (double)atomic_load(&ty->outcomes[RESULT_CANCELLED]);
        s->retried = (double)atomic_load(&ty->outcomes[OUTCOME_RETRIED]);
        s->run_p50_ms = latency_quantile_ms(&ty->run, 0.5);
        s->run_p99_ms = latency_quantile_ms(&ty->run, 0.99);
        s->wait_p50_ms = latency_quantile_ms(&ty->wait, 0.5);
        s->wait_p99_ms = latency_quantile_ms(&ty->wait, 0.99);
        s->base_weight = ty->base_weight;
        s->weight = atomic_load(&ty->weight);
        s->processor_failed = atomic_load(&ty->proc->failed);
        s->assigned = assigned_to(e, k);
    }
    struct pool_stats ps = {0};
    if (e->pool) /* NULL once stopped */
        pool_stats(e->pool, &ps);
    out->workers = ps.workers;
    out->idle = ps.idle;
    out->utilisation = e->utilisation;
    out->abandoned = ps.abandoned;
    out->steals = ps.steals;
}

/* --- the monitor thread ------------------------------------------------------------ */

static void *monitor_main(void *arg)
{
    struct engine *e = arg;
    pthread_mutex_lock(&e->mu);
    uint64_t next_pass = latency_now_ns() / 1000000u + e->cfg.monitor_ms;
    while (!e->monitor_stop) {
        uint64_t mono = latency_now_ns() / 1000000u, wait = next_pass > mono ? next_pass - mono : 0;
        if (e->n_retries) {
            uint64_t now = clock_now_ms(), due = e->retries[0].due_ms;
            uint64_t until_due = due > now ? due - now : 0;
            wait = until_due < wait ? until_due : wait;
        }
        if (wait > 0) {
            struct timespec until = deadline_after_ms(CLOCK_MONOTONIC, wait);
            pthread_cond_timedwait(&e->cv, &e->mu, &until);
            continue; /* woken early (a new retry, a settle): recompute */
        }
        pthread_mutex_unlock(&e->mu);
        engine_maintain(e);
        pthread_mutex_lock(&e->mu);
        if (latency_now_ns() / 1000000u >= next_pass)
            next_pass = latency_now_ns() / 1000000u + e->cfg.monitor_ms;
    }
    pthread_mutex_unlock(&e->mu);
    return NULL;
}

int engine_monitor_start(struct engine *e)
{
    if (!e->cfg.timer_threads || !e->cfg.monitor_ms)
        return 0;
    if (pthread_create(&e->monitor, NULL, monitor_main, e) != 0)
        return -1;
    e->have_monitor = 1;
    return 0;
}

void engine_monitor_stop(struct engine *e)
{
    if (!e->have_monitor)
        return;
    pthread_mutex_lock(&e->mu);
    e->monitor_stop = 1;
    pthread_cond_broadcast(&e->cv);
    pthread_mutex_unlock(&e->mu);
    pthread_join(e->monitor, NULL);
    e->have_monitor = 0;
}

/* Metric labels must outlive any one engine (tests start many): names are interned for
 * the life of the process. */
const char *engine_intern(const char *name)
{
    static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    static char names[64][ENGINE_TYPE_NAME];
    static size_t n;
    const char *found = NULL;
    pthread_mutex_lock(&mu);
    for (size_t i = 0; i < n && !found; i++)
        if (strcmp(names[i], name) == 0)
            found = names[i];
    if (!found && n < 64) {
        snprintf(names[n], ENGINE_TYPE_NAME, "%s", name);
        found = names[n++];
    }
    pthread_mutex_unlock(&mu);
    return found ? found : "other";
}
