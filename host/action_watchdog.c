/* The action system's execution workers and their watchdog.  A worker pops one action
 * at a time in service order and runs it.  The watchdog wakes every watchdog_ms (real
 * time; actions_kick wakes it at once) and abandons a worker whose action has run past
 * its timeout + abandon_grace_ms on the host clock, the executor having ignored the
 * timeout it was given: the action goes on as a copy (same id) through the timeout path
 * (retry or dead letter), a replacement worker is started, and when the stuck call
 * returns its output is discarded.  No pthread_cancel: the stuck thread is detached and
 * left alone.  Abandonment is counted (actions_abandoned) and logged.
 *
 * Shutdown: close the queue, let workers run what is ready until the deadline, then
 * cancel what is still ready; workers still inside an executor by then are detached and
 * the system is deliberately never freed (they could still touch it). */
#include "ggl-build.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "actions_impl.h"
#include "health.h"
#include "hostapi.h"
#include "log.h"
#include "metrics.h"

static uint64_t realtime_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    return (uint64_t)t.tv_sec * 1000 + (uint64_t)t.tv_nsec / 1000000;
}

static struct timespec realtime_at(uint64_t ms)
{
    return (struct timespec){(time_t)(ms / 1000), (long)(ms % 1000) * 1000000};
}

/* --- the watch ------------------------------------------------------------------- */

void watch_begin(struct actions *s, struct worker *w, struct act *a, struct exec_impl *x,
                 uint64_t now_ms)
{
    if (!w)
        return;
    pthread_mutex_lock(&s->watch_lock);
    w->current = a;
    w->impl = x;
    w->deadline_ms = now_ms + a->spec.timeout_ms + (uint64_t)s->conf.abandon_grace_ms;
    pthread_mutex_unlock(&s->watch_lock);
}

int watch_end(struct actions *s, struct worker *w)
{
    if (!w)
        return 0;
    pthread_mutex_lock(&s->watch_lock);
    int abandoned = w->abandoned;
    if (abandoned)
        atomic_fetch_sub(&w->impl->stuck, 1);
    w->current = NULL;
    pthread_mutex_unlock(&s->watch_lock);
    return abandoned;
}

/* --- workers --------------------------------------------------------------------- */

static void worker_exit(struct actions *s, int abandoned)
{
    pthread_mutex_lock(&s->fb_lock);
    if (abandoned)
        s->abandoned_alive--;
    else
        s->running_workers--;
    pthread_cond_broadcast(&s->idle_cond);
    pthread_mutex_unlock(&s->fb_lock);
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct actions *s = w->s;
    executors_thread(s, 1);
    void *item;
    int mine = 1;
    while (mine && queue_pop_batch(s->q, &item, 1, -1) > 0) /* 0: closed, nothing ready */
        mine = action_take(s, w, item);
    executors_thread(s, 0);
    worker_exit(s, !mine);
    return NULL;
}

static int worker_spawn(struct actions *s)
{
    struct worker *w = calloc(1, sizeof *w);
    if (!w)
        return -1;
    w->s = s;
    pthread_mutex_lock(&s->fb_lock);
    s->running_workers++;
    pthread_mutex_unlock(&s->fb_lock);
    if (pthread_create(&w->thread, NULL, worker_main, w) != 0) {
        worker_exit(s, 0);
        free(w);
        return -1;
    }
    pthread_mutex_lock(&s->watch_lock);
    w->next = s->wlist;
    s->wlist = w;
    s->n_workers++;
    pthread_mutex_unlock(&s->watch_lock);
    return 0;
}

/* Under watch_lock: a copy of the action of the first worker past its deadline, which
 * is then marked abandoned; NULL when none is (or the copy cannot be made yet). */
static struct act *take_stuck(struct actions *s, uint64_t now)
{
    for (struct worker *w = s->wlist; w; w = w->next)
        if (w->current && !w->abandoned && now > w->deadline_ms) {
            struct act *c = act_clone(s, w->current);
            if (!c)
                return NULL; /* try again next round */
            w->abandoned = 1;
            atomic_fetch_add(&w->impl->stuck, 1); /* until watch_end sees it back */
            pthread_detach(w->thread);
            return c;
        }
    return NULL;
}

/* The stuck worker keeps its act (the executor still holds its payload); the copy made
 * under the watch lock, with the same id, carries on and takes over the act's place in
 * the capacity. */
static void abandon(struct actions *s, struct act *c)
{
    char why[300];
    snprintf(why, sizeof why, "timed out: %s still running %llu ms past its %llu ms timeout; "
             "worker abandoned", atomic_load(&c->exec->cur)->ex.label,
             (unsigned long long)s->conf.abandon_grace_ms, (unsigned long long)c->spec.timeout_ms);
    log_warn("actions: action %llu: %s", (unsigned long long)c->id, why);
    metrics_add(s->m_abandoned, 1);
    health_plugin_failed(atomic_load(&c->exec->cur)->ex.label,
                         "a worker was stuck in it past an action's timeout and abandoned");
    pthread_mutex_lock(&s->fb_lock);
    s->abandoned_alive++;
    s->running_workers--; /* the replacement counts instead */
    pthread_mutex_unlock(&s->fb_lock);
    action_timed_out(s, c, why);
    if (worker_spawn(s) < 0)
        log_error("actions: cannot start a replacement worker");
}

static void *watchdog_main(void *arg)
{
    struct actions *s = arg;
    pthread_mutex_lock(&s->watch_lock);
    while (!s->watch_stop) {
        struct act *c = take_stuck(s, clock_now_ms());
        if (c) {
            pthread_mutex_unlock(&s->watch_lock);
            abandon(s, c);
            pthread_mutex_lock(&s->watch_lock);
            continue;
        }
        struct timespec until = realtime_at(realtime_ms() + (uint64_t)s->conf.watchdog_ms);
        pthread_cond_timedwait(&s->watch_cond, &s->watch_lock, &until);
    }
    pthread_mutex_unlock(&s->watch_lock);
    return NULL;
}

int workers_start(struct actions *s, unsigned n)
{
    s->m_abandoned = metrics_register_in("actions", GGL_METRIC_COUNTER, "actions_abandoned",
                                         "workers abandoned inside an executor past its timeout", NULL);
    for (unsigned i = 0; i < n; i++)
        if (worker_spawn(s) < 0)
            return -1;
    if (n > 0 && pthread_create(&s->watchdog, NULL, watchdog_main, s) != 0)
        return -1;
    s->have_watchdog = n > 0;
    return 0;
}

void watch_kick(struct actions *s)
{
    pthread_mutex_lock(&s->watch_lock);
    pthread_cond_broadcast(&s->watch_cond);
    pthread_mutex_unlock(&s->watch_lock);
}

/* Wait until no worker runs (with `abandoned`, no abandoned one either), or the
 * real-time deadline. */
static void wait_workers(struct actions *s, uint64_t deadline_ms, int abandoned)
{
    struct timespec until = realtime_at(deadline_ms);
    pthread_mutex_lock(&s->fb_lock);
    while ((s->running_workers > 0 || (abandoned && s->abandoned_alive > 0)) &&
           pthread_cond_timedwait(&s->idle_cond, &s->fb_lock, &until) != ETIMEDOUT)
        ;
    pthread_mutex_unlock(&s->fb_lock);
}

void workers_stop(struct actions *s)
{
    queue_close(s->q); /* workers run what is ready, then leave */
    wait_workers(s, realtime_ms() + (uint64_t)s->conf.shutdown_deadline_ms, 0);
    atomic_store(&s->abort_ready, 1); /* what is still ready is cancelled, not run */
    queue_kick(s->q);
    wait_workers(s, realtime_ms() + 1000, 1); /* a last chance for abandoned ones */
    if (s->have_watchdog) {
        pthread_mutex_lock(&s->watch_lock);
        s->watch_stop = 1;
        pthread_cond_broadcast(&s->watch_cond);
        pthread_mutex_unlock(&s->watch_lock);
        pthread_join(s->watchdog, NULL);
        s->have_watchdog = 0;
    }
    pthread_mutex_lock(&s->fb_lock);
    int stuck = s->running_workers, abandoned = (int)s->abandoned_alive;
    pthread_mutex_unlock(&s->fb_lock);
    for (struct worker *w = s->wlist; w; w = w->next)
        if (!w->abandoned)
            stuck ? pthread_detach(w->thread) : pthread_join(w->thread, NULL);
    if (stuck || abandoned) {
        log_error("actions: %d workers still inside executors at shutdown (%d abandoned "
                  "earlier); left running, the action system is not freed", stuck, abandoned);
        s->leaked = 1;
    }
}

void workers_free(struct actions *s)
{
    while (s->wlist) {
        struct worker *w = s->wlist;
        s->wlist = w->next;
        free(w);
    }
}
