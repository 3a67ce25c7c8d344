/* Health registry and its thread.  A fixed table (HEALTH_MAX) under one mutex; checks
 * run outside the lock, one at a time on the health thread, so a slow check delays
 * only other checks, never a caller of health_snapshot. */
#include "ggl-build.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "deadline.h"
#include "health.h"
#include "hostapi.h"
#include "log.h"
#include "metrics.h"

struct component {
    struct health_entry e;
    health_check_fn fn;
    void *arg;
    uint64_t interval_ms, due_ms;
    int running;             /* its check is executing: not due again until it returns */
    int pushed_failure;      /* health_report said failed: checks no longer override it */
    struct ggl_metric *gauge;
};

static struct {
    pthread_mutex_t lock;
    pthread_cond_t wake;
    struct component c[HEALTH_MAX];
    size_t n;
    pthread_t thread;
    int started, stopping;
} H = {.lock = PTHREAD_MUTEX_INITIALIZER, .wake = PTHREAD_COND_INITIALIZER};

const char *health_state_name(enum health_state st)
{
    static const char *const names[] = {"ok", "degraded", "failed"};
    return st <= HEALTH_FAILED ? names[st] : "unknown";
}

static struct component *find_locked(const char *name)
{
    for (size_t i = 0; i < H.n; i++)
        if (strcmp(H.c[i].e.name, name) == 0)
            return &H.c[i];
    return NULL;
}

static struct component *add_locked(const char *name)
{
    struct component *c = find_locked(name);
    if (c || H.n == HEALTH_MAX)
        return c;
    c = &H.c[H.n++];
    memset(c, 0, sizeof *c);
    snprintf(c->e.name, sizeof c->e.name, "%s", name);
    c->gauge = metrics_register_in("health", GGL_METRIC_GAUGE, "health_state",
                                   "0 ok, 1 degraded, 2 failed", c->e.name);
    return c;
}

/* Record a state; a transition is logged once, not on every check. */
static void store_locked(struct component *c, enum health_state st, const char *reason)
{
    if (c->e.checked_ms && c->e.state != st) {
        c->e.changes++;
        log_msg(st == HEALTH_OK ? GGL_LOG_INFO : GGL_LOG_WARN, "health: %s %s -> %s%s%s",
                c->e.name, health_state_name(c->e.state), health_state_name(st),
                st != HEALTH_OK && reason && reason[0] ? ": " : "",
                st != HEALTH_OK && reason ? reason : "");
    }
    c->e.state = st;
    snprintf(c->e.reason, sizeof c->e.reason, "%s", st == HEALTH_OK || !reason ? "" : reason);
    c->e.checked_ms = clock_now_ms();
    if (!c->e.checked_ms)
        c->e.checked_ms = 1;
    metrics_set(c->gauge, (double)st);
}

int health_register(const char *name, health_check_fn fn, void *arg, uint64_t interval_ms)
{
    pthread_mutex_lock(&H.lock);
    struct component *c = add_locked(name);
    if (c) {
        c->fn = fn;
        c->arg = arg;
        c->interval_ms = interval_ms;
        c->due_ms = 0; /* due on the next pass */
        pthread_cond_signal(&H.wake);
    }
    pthread_mutex_unlock(&H.lock);
    return c ? 0 : -1;
}

int health_report(const char *name, enum health_state st, const char *reason)
{
    pthread_mutex_lock(&H.lock);
    struct component *c = add_locked(name);
    if (c) {
        store_locked(c, st, reason);
        c->pushed_failure = st == HEALTH_FAILED;
    }
    pthread_mutex_unlock(&H.lock);
    return c ? 0 : -1;
}

void health_plugin_failed(const char *label, const char *reason)
{
    char name[96];
    snprintf(name, sizeof name, "plugin:%s", label);
    health_report(name, HEALTH_FAILED, reason);
}

/* Run one due check (lock held on entry and exit, released around the call).  Returns
 * 1 if one ran, 0 if none is due; *next_ms gets the earliest future due time. */
static int run_one_due(int force, uint64_t *next_ms)
{
    uint64_t now = clock_now_ms();
    *next_ms = UINT64_MAX;
    for (size_t i = 0; i < H.n; i++) {
        struct component *c = &H.c[i];
        if (!c->fn || c->running || (!force && !c->interval_ms && c->e.checked_ms))
            continue;
        if (!force && c->due_ms > now) {
            if (c->due_ms < *next_ms)
                *next_ms = c->due_ms;
            continue;
        }
        if (force && c->due_ms == UINT64_MAX)
            continue; /* this forced pass ran it already */
        health_check_fn fn = c->fn;
        void *arg = c->arg;
        c->running = 1;
        pthread_mutex_unlock(&H.lock);
        char reason[HEALTH_REASON] = "";
        enum health_state st = fn(arg, reason, sizeof reason);
        pthread_mutex_lock(&H.lock);
        c->running = 0;
        if (!c->pushed_failure)
            store_locked(c, st, reason);
        c->due_ms = force ? UINT64_MAX : clock_now_ms() + c->interval_ms;
        return 1;
    }
    return 0;
}

void health_check_now(int force)
{
    uint64_t next;
    pthread_mutex_lock(&H.lock);
    while (run_one_due(force, &next))
        ;
    if (force) /* back to the schedule: each due one interval after this pass */
        for (size_t i = 0; i < H.n; i++)
            if (H.c[i].due_ms == UINT64_MAX)
                H.c[i].due_ms = clock_now_ms() + H.c[i].interval_ms;
    pthread_mutex_unlock(&H.lock);
}

static void *health_main(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&H.lock);
    while (!H.stopping) {
        uint64_t next;
        if (run_one_due(0, &next))
            continue;
        /* Sleep until the earliest due check (host-clock distance, at most 1 s so a
         * clock that jumps is noticed), or until a registration wakes us. */
        uint64_t now = clock_now_ms(), wait_ms = next > now ? next - now : 0;
        if (wait_ms > 1000)
            wait_ms = 1000;
        struct timespec ts = deadline_after_ms(CLOCK_REALTIME, wait_ms);
        pthread_cond_timedwait(&H.wake, &H.lock, &ts);
    }
    pthread_mutex_unlock(&H.lock);
    return NULL;
}

int health_start(void)
{
    pthread_mutex_lock(&H.lock);
    H.stopping = 0;
    int rc = H.started ? 0 : pthread_create(&H.thread, NULL, health_main, NULL);
    H.started = rc == 0;
    pthread_mutex_unlock(&H.lock);
    return rc ? -1 : 0;
}

void health_stop(void)
{
    pthread_mutex_lock(&H.lock);
    int started = H.started;
    H.stopping = 1;
    H.started = 0;
    pthread_cond_broadcast(&H.wake);
    pthread_mutex_unlock(&H.lock);
    if (started)
        pthread_join(H.thread, NULL);
}

/* Tests and shutdown only: the health_state gauges keep the names they were given. */
void health_reset(void)
{
    pthread_mutex_lock(&H.lock);
    H.n = 0;
    pthread_mutex_unlock(&H.lock);
}

size_t health_snapshot(struct health_entry *out, size_t max, enum health_state *overall)
{
    pthread_mutex_lock(&H.lock);
    enum health_state worst = HEALTH_OK;
    for (size_t i = 0; i < H.n; i++) {
        if (H.c[i].e.checked_ms && H.c[i].e.state > worst)
            worst = H.c[i].e.state;
        if (i < max)
            out[i] = H.c[i].e;
    }
    size_t n = H.n;
    pthread_mutex_unlock(&H.lock);
    if (overall)
        *overall = worst;
    return n;
}
