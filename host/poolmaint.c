/* Pool maintenance: abandoning workers stuck past a task's deadline, growing under
 * backlog, retiring idle workers, and the one monitor thread that runs each pool's
 * pass every monitor_ms (tests call pool_maintain() directly with a fake clock).
 *
 * Stuck workers: before a task with a deadline runs, its worker publishes the start
 * time and a sequence number; afterwards it compare-exchanges the number back to 0.
 * The maintenance pass compare-exchanges it to ABANDONED instead once the deadline has
 * passed; whichever wins decides.  An abandoned thread, if its task ever returns, frees
 * its own context and exits without touching the pool; a replacement thread takes over
 * its slot and resumes the batch after the stuck task. */
#include "ggl-build.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

#include "deadline.h"
#include "hostapi.h"
#include "log.h"
#include "metrics.h"
#include "pool.h"
#include "pool_impl.h"

/* Abandoned threads still alive, process-wide: their pools may be gone. */
static pthread_mutex_t zombie_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t zombie_cv = PTHREAD_COND_INITIALIZER;
static unsigned zombies;

void pool_zombie_exit(struct worker *w)
{
    free(w);
    pthread_mutex_lock(&zombie_mu);
    if (--zombies == 0)
        pthread_cond_broadcast(&zombie_cv);
    pthread_mutex_unlock(&zombie_mu);
}

/* Abandon the slot's worker if its task is past its deadline; with `replace`, start a
 * new thread on the slot (which resumes the rest of the batch). */
static void abandon_if_stuck(struct pool *p, struct slot *s, uint64_t now, int replace)
{
    struct worker *w = s->w;
    uint64_t seq = w ? atomic_load_explicit(&w->busy, memory_order_acquire) : 0;
    uint64_t start = atomic_load(&s->task_start), limit = atomic_load(&s->task_deadline);
    if (seq == 0 || now < start || now - start < limit)
        return;
    if (!atomic_compare_exchange_strong(&w->busy, &seq, ABANDONED))
        return; /* it returned just now */
    pthread_mutex_lock(&zombie_mu);
    zombies++;
    pthread_mutex_unlock(&zombie_mu);
    pthread_detach(s->tid);
    atomic_fetch_sub(&p->inflight[s->task_type], 1);
    metrics_add(p->abandoned, 1);
    log_error("pool: worker stuck in a task for %llu ms, %llu ms past its deadline; abandoned",
              (unsigned long long)(now - start), (unsigned long long)(now - start - limit));
    s->w = NULL;
    atomic_fetch_sub(&p->active, 1);
    if (!replace || pool_start_worker(p, s) < 0) {
        atomic_store(&s->state, replace ? SLOT_NEEDS_THREAD : SLOT_OFF);
        metrics_set(p->workers, atomic_load(&p->active));
    }
}

size_t pool_queued(struct pool *p)
{
    size_t q = 0;
    for (unsigned i = 0; i < p->n_slots; i++)
        q += atomic_load(&p->slots[i].depth);
    return q;
}

static _Atomic int hold_at_min;

void pool_hold_at_min(int on) { atomic_store(&hold_at_min, on); }

/* Grow by one worker when two passes in a row found no idle worker and more than
 * grow_depth tasks queued per worker (one burst is not a backlog); retire workers
 * above min that have been idle for idle_ms.  Held at min: never grow, retire at once. */
static void grow_or_shrink(struct pool *p, uint64_t now)
{
    int hold = atomic_load(&hold_at_min);
    unsigned active = atomic_load(&p->active);
    int backlog = atomic_load(&p->idle) == 0 && pool_queued(p) > (size_t)p->grow_depth * active;
    p->backlog_passes = backlog ? p->backlog_passes + 1 : 0;
    if (!hold && active < p->max && p->backlog_passes >= 2) {
        p->backlog_passes = 0;
        for (unsigned i = 0; i < p->n_slots; i++)
            if (atomic_load(&p->slots[i].state) == SLOT_OFF) {
                if (pool_start_worker(p, &p->slots[i]) == 0)
                    metrics_add(p->grown, 1);
                return;
            }
    }
    for (unsigned i = 0; i < p->n_slots && atomic_load(&p->active) > p->min; i++) {
        struct slot *s = &p->slots[i];
        if (atomic_load(&s->state) != SLOT_ACTIVE)
            continue;
        uint64_t since = atomic_load(&s->idle_since);
        if (atomic_load(&s->idle) && now >= since && (hold || now - since >= p->idle_ms)) {
            pool_ask_to_leave(s);
            pool_join_worker(p, s);
            metrics_add(p->retired, 1);
        }
    }
}

void pool_maintain(struct pool *p)
{
    pthread_mutex_lock(&p->maint_mu);
    uint64_t now = clock_now_ms();
    for (unsigned i = 0; i < p->n_slots; i++) {
        struct slot *s = &p->slots[i];
        if (atomic_load(&s->state) == SLOT_ACTIVE)
            abandon_if_stuck(p, s, now, 1);
        else if (atomic_load(&s->state) == SLOT_NEEDS_THREAD)
            pool_start_worker(p, s);
    }
    grow_or_shrink(p, now);
    pthread_mutex_unlock(&p->maint_mu);
}

/* One maintenance thread serves every pool, so the thread cap counts it once.  It
 * sleeps on a CLOCK_MONOTONIC condvar until the next pool is due.  `ctl` serialises
 * adding and removing pools, including starting the thread and joining it once the
 * last pool is gone; `mu` guards the list and is held during passes (then maint_mu). */
static struct {
    pthread_once_t once;
    pthread_mutex_t ctl, mu;
    pthread_cond_t cv;
    struct pool *pools;
    pthread_t tid;
    int running, stop;
} monitor = {.once = PTHREAD_ONCE_INIT, .ctl = PTHREAD_MUTEX_INITIALIZER,
             .mu = PTHREAD_MUTEX_INITIALIZER};

static void monitor_init(void)
{
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&monitor.cv, &ca);
    pthread_condattr_destroy(&ca);
}

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void *monitor_main(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&monitor.mu);
    while (!monitor.stop) {
        uint64_t now = mono_ms(), next = UINT64_MAX;
        for (struct pool *p = monitor.pools; p; p = p->monitor_next) {
            if (p->monitor_due <= now) {
                pool_maintain(p);
                p->monitor_due = now + p->monitor_ms;
            }
            next = p->monitor_due < next ? p->monitor_due : next;
        }
        struct timespec until = deadline_after_ms(CLOCK_MONOTONIC, next > now ? next - now : 1);
        pthread_cond_timedwait(&monitor.cv, &monitor.mu, &until);
    }
    pthread_mutex_unlock(&monitor.mu);
    return NULL;
}

static void monitor_unlink(struct pool *p)
{
    for (struct pool **pp = &monitor.pools; *pp; pp = &(*pp)->monitor_next)
        if (*pp == p) {
            *pp = p->monitor_next;
            break;
        }
}

int pool_monitor_add(struct pool *p)
{
    pthread_once(&monitor.once, monitor_init);
    pthread_mutex_lock(&monitor.ctl);
    pthread_mutex_lock(&monitor.mu);
    p->monitor_due = mono_ms() + p->monitor_ms;
    p->monitor_next = monitor.pools;
    monitor.pools = p;
    p->monitored = 1;
    if (!monitor.running) {
        monitor.stop = 0;
        monitor.running = pthread_create(&monitor.tid, NULL, monitor_main, NULL) == 0;
        if (!monitor.running) {
            monitor_unlink(p);
            p->monitored = 0;
        }
    }
    pthread_cond_signal(&monitor.cv); /* recompute the next due time */
    pthread_mutex_unlock(&monitor.mu);
    pthread_mutex_unlock(&monitor.ctl);
    return p->monitored ? 0 : -1;
}

void pool_monitor_remove(struct pool *p)
{
    if (!p->monitored)
        return;
    pthread_mutex_lock(&monitor.ctl);
    pthread_mutex_lock(&monitor.mu);
    monitor_unlink(p);
    p->monitored = 0;
    int last = monitor.pools == NULL;
    if (last) {
        monitor.stop = 1;
        pthread_cond_signal(&monitor.cv);
    }
    pthread_mutex_unlock(&monitor.mu);
    if (last) {
        pthread_join(monitor.tid, NULL);
        monitor.running = 0;
    }
    pthread_mutex_unlock(&monitor.ctl);
}

void pool_stats(struct pool *p, struct pool_stats *out)
{
    out->workers = atomic_load(&p->active);
    out->idle = atomic_load(&p->idle);
    out->queued = pool_queued(p);
    out->refused = metrics_value(p->refused);
    out->abandoned = metrics_value(p->abandoned);
    out->grown = metrics_value(p->grown);
    out->retired = metrics_value(p->retired);
    out->steals = metrics_value(p->steals);
}

unsigned pool_wait_abandoned(int64_t timeout_ms)
{
    /* zombie_cv is statically initialised, so it times on CLOCK_REALTIME */
    struct timespec until = deadline_after_ms(CLOCK_REALTIME, timeout_ms > 0 ? (uint64_t)timeout_ms : 0);
    pthread_mutex_lock(&zombie_mu);
    while (zombies > 0 && pthread_cond_timedwait(&zombie_cv, &zombie_mu, &until) != ETIMEDOUT)
        ;
    unsigned n = zombies;
    pthread_mutex_unlock(&zombie_mu);
    return n;
}

/* Join slot s's worker (asked to leave), abandoning it if it sits in a task past its
 * deadline; holds maint_mu. */
void pool_join_worker(struct pool *p, struct slot *s)
{
    for (;;) {
        struct timespec until = deadline_after_ms(CLOCK_REALTIME, 10);
        if (pthread_timedjoin_np(s->tid, NULL, &until) == 0)
            break;
        abandon_if_stuck(p, s, clock_now_ms(), 0);
        if (!s->w) {
            metrics_add(p->dropped, (double)(s->n - s->pos));
            return;
        }
    }
    free(s->w);
    s->w = NULL;
    atomic_store(&s->state, SLOT_OFF);
    atomic_fetch_sub(&p->active, 1);
    metrics_set(p->workers, atomic_load(&p->active));
}
