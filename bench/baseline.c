/* The benchmarks' shared baselines (see baseline.h): GThreadPool, a mutex+condvar pool,
 * the cross-CPU wake-up reference. */
#include "ggl-build.h"

#include <glib.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "baseline.h"

uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void pause_ns(long ns)
{
    struct timespec ts = {0, ns};
    nanosleep(&ts, NULL);
}

/* --- GThreadPool (no batch API: a batch is n pushes) ---------------------- */

struct gtask {
    task_fn fn;
    void *arg;
};

static void glib_run(gpointer data, gpointer user)
{
    (void)user;
    struct gtask *t = data;
    t->fn(t->arg);
    free(t);
}

static void *glib_create(unsigned workers)
{
    return g_thread_pool_new(glib_run, NULL, (gint)workers, TRUE, NULL);
}

static int glib_submit(void *ctx, task_fn fn, void *arg)
{
    struct gtask *t = malloc(sizeof *t);
    if (!t)
        return -1;
    *t = (struct gtask){fn, arg};
    g_thread_pool_push(ctx, t, NULL);
    return 0;
}

static size_t glib_submit_batch(void *ctx, task_fn fn, void **args, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (glib_submit(ctx, fn, args[i]) < 0)
            return i;
    return n;
}

static void glib_destroy(void *ctx) { g_thread_pool_free(ctx, FALSE, TRUE); }

/* --- a minimal mutex+condvar pool: one ring, one lock, one condvar each way ---- */

#define MINI_CAP (1 << 20) /* >= TASKS: no backpressure in any of the three */

struct mini {
    pthread_mutex_t mu;
    pthread_cond_t not_empty, not_full;
    struct gtask ring[MINI_CAP];
    size_t head, tail;
    int stop;
    unsigned n;
    pthread_t tid[16];
};

static void *mini_worker(void *arg)
{
    struct mini *m = arg;
    pthread_mutex_lock(&m->mu);
    for (;;) {
        while (m->head == m->tail && !m->stop)
            pthread_cond_wait(&m->not_empty, &m->mu);
        if (m->head == m->tail)
            break;
        struct gtask t = m->ring[m->head++ % MINI_CAP];
        pthread_cond_signal(&m->not_full);
        pthread_mutex_unlock(&m->mu);
        t.fn(t.arg);
        pthread_mutex_lock(&m->mu);
    }
    pthread_mutex_unlock(&m->mu);
    return NULL;
}

static void *mini_create(unsigned workers)
{
    struct mini *m = calloc(1, sizeof *m);
    pthread_mutex_init(&m->mu, NULL);
    pthread_cond_init(&m->not_empty, NULL);
    pthread_cond_init(&m->not_full, NULL);
    for (m->n = 0; m->n < workers && m->n < 16; m->n++)
        pthread_create(&m->tid[m->n], NULL, mini_worker, m);
    return m;
}

static size_t mini_submit_batch(void *ctx, task_fn fn, void **args, size_t n)
{
    struct mini *m = ctx;
    pthread_mutex_lock(&m->mu);
    for (size_t i = 0; i < n; i++) {
        while (m->tail - m->head == MINI_CAP)
            pthread_cond_wait(&m->not_full, &m->mu);
        m->ring[m->tail++ % MINI_CAP] = (struct gtask){fn, args[i]};
    }
    pthread_mutex_unlock(&m->mu);
    if (n > 1)
        pthread_cond_broadcast(&m->not_empty);
    else
        pthread_cond_signal(&m->not_empty);
    return n;
}

static int mini_submit(void *ctx, task_fn fn, void *arg)
{
    return mini_submit_batch(ctx, fn, &arg, 1) == 1 ? 0 : -1;
}

static void mini_destroy(void *ctx)
{
    struct mini *m = ctx;
    pthread_mutex_lock(&m->mu);
    m->stop = 1;
    pthread_cond_broadcast(&m->not_empty);
    pthread_mutex_unlock(&m->mu);
    for (unsigned i = 0; i < m->n; i++)
        pthread_join(m->tid[i], NULL);
    free(m);
}

const struct impl baseline_glib = {"GThreadPool", glib_create, glib_submit, glib_submit_batch,
                                   glib_destroy};
const struct impl baseline_mini = {"mutex+condvar pool", mini_create, mini_submit,
                                   mini_submit_batch, mini_destroy};

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

void percentiles(uint64_t *v, size_t n, double *p50, double *p99)
{
    qsort(v, n, sizeof *v, cmp_u64);
    *p50 = n ? (double)v[n / 2] / 1e3 : 0;
    *p99 = n ? (double)v[n * 99 / 100] / 1e3 : 0;
}

/* The reference: a condvar handoff to a thread sleeping on the other CPU. */
struct ping {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int go, stop;
    _Atomic uint64_t woke;
};

void pin(int cpu)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    pthread_setaffinity_np(pthread_self(), sizeof set, &set);
}

static void *ping_waiter(void *arg)
{
    struct ping *p = arg;
    pin(1);
    pthread_mutex_lock(&p->mu);
    while (!p->stop) {
        while (!p->go && !p->stop)
            pthread_cond_wait(&p->cv, &p->mu);
        if (p->go) {
            atomic_store(&p->woke, now_ns());
            p->go = 0;
        }
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

void wakeup_reference(double *p50, double *p99)
{
    static uint64_t v[SAMPLES];
    struct ping p = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, 0};
    pthread_t tid;
    cpu_set_t old;
    pthread_getaffinity_np(pthread_self(), sizeof old, &old);
    pin(0);
    pthread_create(&tid, NULL, ping_waiter, &p);
    size_t n = 0;
    uint64_t begin = now_ns(), t1;
    while (n < SAMPLES && now_ns() - begin < LATENCY_BUDGET_NS) {
        atomic_store(&p.woke, 0);
        pause_ns(PACE_NS);
        uint64_t t0 = now_ns();
        pthread_mutex_lock(&p.mu);
        p.go = 1;
        pthread_cond_signal(&p.cv);
        pthread_mutex_unlock(&p.mu);
        while ((t1 = atomic_load(&p.woke)) == 0)
            ;
        v[n++] = t1 > t0 ? t1 - t0 : 0;
    }
    pthread_mutex_lock(&p.mu);
    p.stop = 1;
    pthread_cond_signal(&p.cv);
    pthread_mutex_unlock(&p.mu);
    pthread_join(tid, NULL);
    pthread_setaffinity_np(pthread_self(), sizeof old, &old);
    percentiles(v, n, p50, p99);
}
