/* bench/queue: no-op task throughput and submit->start latency of ganglion's pool, GLib's
 * GThreadPool and a minimal mutex+condvar pool, measured side by side in one run, with
 * one cross-CPU wake-up as the reference latency.  Prints ratios against GThreadPool. */
#include "ggl-build.h"

#include <glib.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "baseline.h"
#include "pool.h"

#define TASKS 1000000      /* per throughput run */
#define RUNS 5             /* median of: this VM is noisy */
#define BATCH 64

/* Completed tasks, one padded counter per CPU so that counting does not bounce a line. */
static struct { _Atomic uint64_t n; char pad[56]; } ran[64];

static void noop_task(void *arg)
{
    (void)arg;
    int cpu = sched_getcpu();
    atomic_fetch_add_explicit(&ran[(unsigned)cpu & 63].n, 1, memory_order_relaxed);
}

static uint64_t ran_total(void)
{
    uint64_t n = 0;
    for (int i = 0; i < 64; i++)
        n += atomic_exchange(&ran[i].n, 0);
    return n;
}

/* --- ganglion ------------------------------------------------------------- */

static struct pool *ggl_pool(unsigned workers, int no_steal)
{
    struct pool_config cfg = {.name = "bench", .min_workers = workers, .max_workers = workers,
                              .queue_capacity = TASKS, .worker_queue = TASKS,
                              .grow_depth = 64, .idle_ms = 60000, .no_steal = no_steal};
    return pool_new(&cfg);
}

static void *ggl_create(unsigned workers) { return ggl_pool(workers, 0); }

static int ggl_submit(void *ctx, task_fn fn, void *arg)
{
    return pool_submit(ctx, 0, fn, arg) == GGL_OK ? 0 : -1;
}

static size_t ggl_submit_batch(void *ctx, task_fn fn, void **args, size_t n)
{
    struct pool_task t[BATCH];
    for (size_t i = 0; i < n; i++)
        t[i] = (struct pool_task){fn, args[i]};
    return pool_submit_batch(ctx, 0, t, n);
}

static void ggl_destroy(void *ctx) { pool_free(ctx); }

static const struct impl ggl_impl = {"ganglion pool", ggl_create, ggl_submit, ggl_submit_batch,
                                      ggl_destroy};
static const struct impl *const impls[] = {&ggl_impl, &baseline_glib, &baseline_mini};
#define N_IMPLS (sizeof impls / sizeof impls[0])

/* --- measurements --------------------------------------------------------- */

/* Tasks per second from the first submit until every task has run (destroy drains). */
static double throughput_once(const struct impl *im, unsigned workers, size_t batch)
{
    void *ctx = im->create(workers);
    void *args[BATCH] = {0};
    ran_total();
    uint64_t t0 = now_ns();
    for (size_t sent = 0; sent < TASKS;) {
        size_t want = batch < TASKS - sent ? batch : TASKS - sent, got;
        got = want == 1 ? (im->submit(ctx, noop_task, NULL) == 0) : im->submit_batch(ctx, noop_task, args, want);
        sent += got;
        if (got < want)
            sched_yield(); /* refused: queues full (backpressure) */
    }
    im->destroy(ctx);
    double secs = (double)(now_ns() - t0) / 1e9;
    uint64_t n = ran_total();
    if (n != TASKS)
        fprintf(stderr, "bench/queue: %s ran %llu of %d tasks\n", im->name, (unsigned long long)n, TASKS);
    return TASKS / secs;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double throughput(const struct impl *im, unsigned workers, size_t batch)
{
    double r[RUNS];
    for (int i = 0; i < RUNS; i++)
        r[i] = throughput_once(im, workers, batch);
    qsort(r, RUNS, sizeof *r, cmp_double);
    return r[RUNS / 2];
}

/* Skewed work: the first task of every other batch spins SKEW_NS and the rest are
 * no-ops.  Batches are spread starting at the next worker in turn, so with two workers
 * every long task lands in the same worker's queue and the other one runs dry. */
#define SKEW_TASKS 200000
#define SKEW_EVERY (2 * BATCH)
#define SKEW_NS 100000

/* Long tasks run per thread, to show where they ran (rare: a mutex is fine). */
static struct {
    pthread_mutex_t mu;
    pthread_t tid[16];
    unsigned n[16], threads;
} longs = {.mu = PTHREAD_MUTEX_INITIALIZER};

static void count_long(void)
{
    pthread_mutex_lock(&longs.mu);
    unsigned i = 0;
    while (i < longs.threads && !pthread_equal(longs.tid[i], pthread_self()))
        i++;
    if (i == longs.threads && longs.threads < 16)
        longs.tid[longs.threads++] = pthread_self();
    if (i < 16)
        longs.n[i]++;
    pthread_mutex_unlock(&longs.mu);
}

/* "most/total": the largest share of long tasks one thread ran. */
static void longs_take(char *out, size_t len)
{
    unsigned most = 0, total = 0;
    for (unsigned i = 0; i < longs.threads; i++) {
        most = longs.n[i] > most ? longs.n[i] : most;
        total += longs.n[i];
        longs.n[i] = 0;
    }
    longs.threads = 0;
    snprintf(out, len, "%u/%u", most, total);
}

static void spin_task(void *arg)
{
    uint64_t until = now_ns() + (uint64_t)(uintptr_t)arg;
    while (now_ns() < until)
        ;
    count_long();
    noop_task(NULL);
}

static void *burn(void *arg)
{
    spin_task(arg);
    return NULL;
}

/* How much parallel CPU the run really has: `workers` threads spinning together vs
 * one (other load on a shared machine shows here; stealing cannot beat it). */
static double parallel_speedup(unsigned workers)
{
    pthread_t tid[16];
    void *ns = (void *)(uintptr_t)50000000;
    uint64_t t0 = now_ns();
    burn(ns);
    uint64_t one = now_ns() - t0;
    t0 = now_ns();
    for (unsigned i = 0; i < workers; i++)
        pthread_create(&tid[i], NULL, burn, ns);
    for (unsigned i = 0; i < workers; i++)
        pthread_join(tid[i], NULL);
    ran_total();
    return (double)one * workers / (double)(now_ns() - t0);
}

static double skewed_once(unsigned workers, int no_steal)
{
    struct pool *p = ggl_pool(workers, no_steal);
    struct pool_task t[BATCH];
    uint64_t t0 = now_ns();
    for (size_t sent = 0; sent < SKEW_TASKS;) {
        for (size_t i = 0; i < BATCH; i++)
            t[i] = (sent + i) % SKEW_EVERY ? (struct pool_task){noop_task, NULL}
                                           : (struct pool_task){spin_task, (void *)(uintptr_t)SKEW_NS};
        size_t got = pool_submit_batch(p, 0, t, BATCH);
        sent += got;
        if (got < BATCH)
            sched_yield();
    }
    pool_free(p);
    ran_total();
    return (double)(now_ns() - t0) / 1e9;
}

static double skewed(unsigned workers, int no_steal, char *split, size_t len)
{
    double r[RUNS];
    for (int i = 0; i < RUNS; i++) {
        r[i] = skewed_once(workers, no_steal);
        longs_take(split, len); /* the last run's */
    }
    qsort(r, RUNS, sizeof *r, cmp_double);
    return r[RUNS / 2];
}

struct stamp {
    _Atomic uint64_t started;
};

static void stamp_task(void *arg)
{
    atomic_store_explicit(&((struct stamp *)arg)->started, now_ns(), memory_order_release);
}

/* Submit one task at a time to an idle pool; submit->start in microseconds. */
static void latency(const struct impl *im, unsigned workers, double *p50, double *p99)
{
    static uint64_t v[SAMPLES];
    void *ctx = im->create(workers);
    struct stamp st;
    size_t n = 0;
    uint64_t begin = now_ns();
    while (n < SAMPLES && now_ns() - begin < LATENCY_BUDGET_NS) {
        atomic_store(&st.started, 0);
        pause_ns(PACE_NS);
        uint64_t t0 = now_ns();
        if (im->submit(ctx, stamp_task, &st) < 0)
            continue;
        uint64_t t1;
        while ((t1 = atomic_load_explicit(&st.started, memory_order_acquire)) == 0)
            ;
        v[n++] = t1 > t0 ? t1 - t0 : 0;
    }
    im->destroy(ctx);
    percentiles(v, n, p50, p99);
}

int main(void)
{
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    unsigned workers = cpus < 1 ? 1 : cpus > 16 ? 16 : (unsigned)cpus;
    double tput[N_IMPLS][2], lat[N_IMPLS][2], ref50, ref99;
    wakeup_reference(&ref50, &ref99);
    char split_on[32], split_off[32];
    double speedup = parallel_speedup(workers);
    longs_take(split_on, sizeof split_on);
    double steal_on = skewed(workers, 0, split_on, sizeof split_on);
    double steal_off = skewed(workers, 1, split_off, sizeof split_off);
    for (size_t i = 0; i < N_IMPLS; i++) {
        tput[i][0] = throughput(impls[i], workers, 1);
        tput[i][1] = throughput(impls[i], workers, BATCH);
        latency(impls[i], workers, &lat[i][0], &lat[i][1]);
    }
    printf("bench/queue: %u workers, %d no-op tasks per run, median of %d runs; GLib %u.%u.%u\n",
           workers, TASKS, RUNS, glib_major_version, glib_minor_version, glib_micro_version);
    printf("reference: one cross-CPU condvar wake-up  p50 %.1f us  p99 %.1f us\n\n", ref50, ref99);
    printf("%-20s %-10s %14s %10s %12s %12s\n", "implementation", "submit", "tasks/s",
           "vs GLib", "start p50", "start p99");
    for (size_t i = 0; i < N_IMPLS; i++)
        for (int b = 0; b < 2; b++) {
            printf("%-20s %-10s %14.0f %9.2fx", impls[i]->name, b ? "batch 64" : "single",
                   tput[i][b], tput[i][b] / tput[1][b]);
            if (b == 0)
                printf(" %9.1f us %9.1f us\n", lat[i][0], lat[i][1]);
            else
                printf(" %12s %12s\n", "-", "-");
        }
    printf("\nwork stealing: %d tasks in batches of %d, 1 in %d busy for %d us, all queued on "
           "one worker:\n  with stealing %.3f s (busiest thread ran %s long tasks), without %.3f s "
           "(%s): %.2fx\n", SKEW_TASKS, BATCH, SKEW_EVERY, SKEW_NS / 1000, steal_on, split_on,
           steal_off, split_off, steal_off / steal_on);
    printf("  CPU actually available: %u spinning threads ran %.2fx as fast as one\n", workers, speedup);
    printf("\nGThreadPool has no batch call: its \"batch 64\" is 64 pushes.  Latency: one task\n"
           "submitted every %d us to an idle pool, submit until the task starts.\n", PACE_NS / 1000);
    return 0;
}
