/* bench/engine: no-op tasks through the processing engine's submit path (engine_submit,
 * what TASK.SUBMIT calls: type lookup, admission, result id, priority queue, token,
 * worker, result store) beside GLib's GThreadPool and a minimal mutex+condvar pool, one
 * task per submit call, in one run.  Prints throughput, submit->start latency on an
 * idle pool and with half its workers busy, and the cross-CPU wake-up reference;
 * ratios against GThreadPool. */
#include "ggl-build.h"

#include <glib.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "baseline.h"
#include "engine.h"
#include "hostapi.h"

#define TASKS 300000        /* per throughput run */
#define RUNS 7              /* rounds; medians of */

/* --- the engine behind the bench's submit interface ------------------------------ */

struct call {
    task_fn fn;
    void *arg;
};

/* The processor: the payload names the function to run. */
static enum ggl_status call_process(void *self, const struct ggl_task *t, struct ggl_result *r)
{
    (void)self, (void)r;
    struct call c;
    memcpy(&c, t->payload, sizeof c);
    c.fn(c.arg);
    return GGL_OK;
}

static const char *const call_types[] = {"noop", NULL};
static const char *const *call_list(void *self) { (void)self; return call_types; }
static const struct ggl_processor call_vt = {.size = sizeof call_vt, .flags = GGL_READS_CONCURRENT,
                                             .task_types = call_list, .process = call_process};
static const struct engine_processor call_proc = {"processor/bench", &call_vt, NULL};

static void *engine_create(unsigned workers)
{
    struct engine_config c;
    engine_config_defaults(&c);
    c.min_workers = c.max_workers = workers;
    c.queue_capacity = 1 << 20;
    /* the default store: once max_results are held, each submit evicts the oldest
     * finished result (never read here) and reuses its entry */
    c.default_timeout_ms = 0;
    return engine_new(&c, &call_proc, 1);
}

static int engine_submit_one(void *ctx, task_fn fn, void *arg)
{
    struct call c = {fn, arg};
    struct engine_task_spec s = {.type = "noop", .payload = &c, .payload_len = sizeof c,
                                 .priority = GGL_PRIO_NORMAL, .max_retries = 0};
    uint64_t id;
    return engine_submit(ctx, &s, NULL, NULL, &id) == GGL_OK ? 0 : -1;
}

static void engine_destroy(void *ctx)
{
    engine_stop(ctx, clock_now_ms() + 600000);
    engine_free(ctx);
}

static const struct impl engine_impl = {"engine (TASK.SUBMIT C path)", engine_create,
                                        engine_submit_one, NULL, engine_destroy};
static const struct impl *const impls[] = {&engine_impl, &baseline_glib, &baseline_mini};
#define N_IMPLS (sizeof impls / sizeof impls[0])

/* --- measurements ------------------------------------------------------------------ */

static _Atomic uint64_t ran;

/* The task that completes a round wakes the bench thread, which waits blocked (on two
 * CPUs a spinning waiter would take a CPU from the workers). */
static pthread_mutex_t round_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t round_cv = PTHREAD_COND_INITIALIZER;

static void noop_task(void *arg)
{
    (void)arg;
    if (atomic_fetch_add_explicit(&ran, 1, memory_order_relaxed) + 1 == TASKS) {
        pthread_mutex_lock(&round_mu);
        pthread_cond_signal(&round_cv);
        pthread_mutex_unlock(&round_mu);
    }
}

/* Tasks per second from the first submit until every task has run, on a running pool
 * or engine (each is created once and warmed up by a first round: a long-running host
 * is past its first page faults and allocator growth). */
static uint64_t cpu_ns(clockid_t clock)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static double throughput_once(const struct impl *im, void *ctx)
{
    atomic_store(&ran, 0);
    uint64_t t0 = now_ns();
    for (size_t sent = 0; sent < TASKS;) {
        if (im->submit(ctx, noop_task, NULL) == 0)
            sent++;
        else
            sched_yield(); /* refused: queue full (backpressure) */
    }
    pthread_mutex_lock(&round_mu);
    while (atomic_load(&ran) < TASKS)
        pthread_cond_wait(&round_cv, &round_mu);
    pthread_mutex_unlock(&round_mu);
    return TASKS / ((double)(now_ns() - t0) / 1e9);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, size_t n)
{
    qsort(v, n, sizeof *v, cmp_double);
    return v[n / 2];
}

/* Rounds of one run of each implementation in turn, so that whatever else loads the
 * machine loads them alike: each one's median throughput into tput, and the median of
 * the rounds' engine/GLib ratios (the figure the goal is about) returned. */
static double rounds[N_IMPLS][RUNS]; /* M tasks/s of each round, printed after the table */

static double throughputs(unsigned workers, double *tput)
{
    double r[N_IMPLS][RUNS], ratio[RUNS];
    void *ctx[N_IMPLS];
    for (size_t i = 0; i < N_IMPLS; i++) {
        ctx[i] = impls[i]->create(workers);
        throughput_once(impls[i], ctx[i]); /* warm-up */
    }
    for (int k = 0; k < RUNS; k++) {
        for (size_t i = 0; i < N_IMPLS; i++)
            rounds[i][k] = (r[i][k] = throughput_once(impls[i], ctx[i])) / 1e6;
        ratio[k] = r[0][k] / r[1][k];
    }
    for (size_t i = 0; i < N_IMPLS; i++) {
        impls[i]->destroy(ctx[i]);
        tput[i] = median(r[i], RUNS);
    }
    return median(ratio, RUNS);
}

/* A probe stamps when it starts and wakes the bench thread, which waits blocked: on two
 * CPUs a spinning waiter would take the CPU the probe needs. */
struct probe {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    uint64_t started;
};

static void probe_task(void *arg)
{
    struct probe *p = arg;
    uint64_t t = now_ns();
    pthread_mutex_lock(&p->mu);
    p->started = t;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

/* Submit probes every PACE_NS to ctx: submit->start of each into v; returns how many. */
static size_t probe_latency(const struct impl *im, void *ctx, uint64_t *v)
{
    struct probe p = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0};
    size_t n = 0;
    uint64_t begin = now_ns();
    while (n < SAMPLES && now_ns() - begin < LATENCY_BUDGET_NS) {
        p.started = 0;
        pause_ns(PACE_NS);
        uint64_t t0 = now_ns();
        if (im->submit(ctx, probe_task, &p) < 0)
            continue;
        pthread_mutex_lock(&p.mu);
        while (!p.started)
            pthread_cond_wait(&p.cv, &p.mu);
        uint64_t t1 = p.started;
        pthread_mutex_unlock(&p.mu);
        v[n++] = t1 > t0 ? t1 - t0 : 0;
    }
    return n;
}

/* One task every PACE_NS to an idle pool: submit->start. */
static void idle_latency(const struct impl *im, unsigned workers, double *p50, double *p99)
{
    static uint64_t v[SAMPLES];
    void *ctx = im->create(workers);
    size_t n = probe_latency(im, ctx, v);
    im->destroy(ctx);
    percentiles(v, n, p50, p99);
}

/* Half load: half the workers stay busy with tasks that spin BUSY_NS and submit
 * themselves again; meanwhile one probe every PACE_NS measures submit->start, which
 * must reach the idle half. */
#define BUSY_NS 500000

struct busy {
    const struct impl *im;
    void *ctx;
    _Atomic int stop;
};

static void busy_task(void *arg)
{
    struct busy *b = arg;
    uint64_t until = now_ns() + BUSY_NS;
    while (now_ns() < until)
        ;
    while (!atomic_load(&b->stop) && b->im->submit(b->ctx, busy_task, b) < 0)
        sched_yield();
}

static void loaded_latency(const struct impl *im, unsigned workers, double *p50, double *p99)
{
    static uint64_t v[SAMPLES];
    struct busy b = {im, im->create(workers), 0};
    for (unsigned i = 0; i < (workers + 1) / 2; i++)
        im->submit(b.ctx, busy_task, &b);
    pause_ns(2 * BUSY_NS); /* the busy half is running */
    size_t n = probe_latency(im, b.ctx, v);
    atomic_store(&b.stop, 1);
    im->destroy(b.ctx);
    percentiles(v, n, p50, p99);
}

int main(void)
{
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    unsigned workers = cpus < 1 ? 1 : cpus > 16 ? 16 : (unsigned)cpus;
    double tput[N_IMPLS], idle[N_IMPLS][2], load[N_IMPLS][2], ref50, ref99;
    if (getenv("BENCH_PROFILE")) { /* just the engine's throughput, for perf */
        double r[RUNS], sub[RUNS], all[RUNS];
        void *ctx = impls[0]->create(workers);
        for (int k = 0; k < RUNS; k++) { /* CPU per task: what a loaded machine changes least */
            uint64_t s0 = cpu_ns(CLOCK_THREAD_CPUTIME_ID), a0 = cpu_ns(CLOCK_PROCESS_CPUTIME_ID);
            r[k] = throughput_once(impls[0], ctx);
            sub[k] = (double)(cpu_ns(CLOCK_THREAD_CPUTIME_ID) - s0) / TASKS;
            all[k] = (double)(cpu_ns(CLOCK_PROCESS_CPUTIME_ID) - a0) / TASKS;
        }
        impls[0]->destroy(ctx);
        printf("engine: %.0f tasks/s; CPU per task: submitter %.0f ns, all threads %.0f ns\n",
               median(r, RUNS), median(sub, RUNS), median(all, RUNS));
        return 0;
    }
    wakeup_reference(&ref50, &ref99);
    double ratio = throughputs(workers, tput);
    for (size_t i = 0; i < N_IMPLS; i++) {
        idle_latency(impls[i], workers, &idle[i][0], &idle[i][1]);
        loaded_latency(impls[i], workers, &load[i][0], &load[i][1]);
    }
    printf("bench/engine: %u workers, %d no-op tasks per run, one task per submit call, median "
           "of %d interleaved rounds; GLib %u.%u.%u\n", workers, TASKS, RUNS, glib_major_version,
           glib_minor_version, glib_micro_version);
    printf("reference: one cross-CPU condvar wake-up  p50 %.1f us  p99 %.1f us\n\n", ref50, ref99);
    printf("%-28s %12s %8s %21s %21s\n", "", "", "", "submit->start, idle", "at half load");
    printf("%-28s %12s %8s %10s %10s %10s %10s\n", "implementation", "tasks/s", "vs GLib", "p50 us",
           "p99 us", "p50 us", "p99 us");
    for (size_t i = 0; i < N_IMPLS; i++)
        printf("%-28s %12.0f %7.2fx %10.1f %10.1f %10.1f %10.1f\n", impls[i]->name, tput[i],
               tput[i] / tput[1], idle[i][0], idle[i][1], load[i][0], load[i][1]);
    printf("\ngoals: throughput >= 2x GThreadPool (median of the rounds' ratios): %s (%.2fx); "
           "p99 submit->start at half load <= one wake-up's p99: %s (%.1f vs %.1f us)\n",
           ratio >= 2 ? "met" : "NOT met", ratio, load[0][1] <= ref99 ? "met" : "NOT met",
           load[0][1], ref99);
    printf("Idle: one task every %d us to an idle pool.  Half load: the same while half the workers "
           "run %d us busy tasks back to back.\n", PACE_NS / 1000, BUSY_NS / 1000);
    for (size_t i = 0; i < N_IMPLS; i++) { /* how far each moved between rounds */
        printf("%s rounds, M tasks/s:", i ? impls[i]->name : "engine");
        for (int k = 0; k < RUNS; k++)
            printf(" %.2f", rounds[i][k]);
        printf("\n");
    }
    return 0;
}
