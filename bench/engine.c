/* bench/engine: no-op tasks through the processing engine's submit path (engine_submit,
 * what TASK.SUBMIT calls: type lookup, admission, result id, priority queue, token,
 * worker, result store) beside GLib's GThreadPool and a minimal mutex+condvar pool, one
 * task per submit call, in one run.  Prints throughput, submit->start latency on an
 * idle pool and at half of each one's own peak rate, and the cross-CPU wake-up
 * reference; ratios against GThreadPool. */
#include "ggl-build.h"

#include <glib.h>
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
#define RUNS 3              /* median of */
#define LOADED 50000        /* tasks in the half-load latency run */

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
    c.max_results = 1 << 21;
    c.result_ttl_ms = 600000; /* every run fits: no expiry work inside the measurement */
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

static void noop_task(void *arg)
{
    (void)arg;
    atomic_fetch_add_explicit(&ran, 1, memory_order_relaxed);
}

/* Tasks per second from the first submit until every task has run. */
static double throughput_once(const struct impl *im, unsigned workers)
{
    void *ctx = im->create(workers);
    atomic_store(&ran, 0);
    uint64_t t0 = now_ns();
    for (size_t sent = 0; sent < TASKS;) {
        if (im->submit(ctx, noop_task, NULL) == 0)
            sent++;
        else
            sched_yield(); /* refused: queue full (backpressure) */
    }
    im->destroy(ctx);
    double secs = (double)(now_ns() - t0) / 1e9;
    if (atomic_load(&ran) != TASKS)
        fprintf(stderr, "bench/engine: %s ran %llu of %d tasks\n", im->name,
                (unsigned long long)atomic_load(&ran), TASKS);
    return TASKS / secs;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double throughput(const struct impl *im, unsigned workers)
{
    double r[RUNS];
    for (int i = 0; i < RUNS; i++)
        r[i] = throughput_once(im, workers);
    qsort(r, RUNS, sizeof *r, cmp_double);
    return r[RUNS / 2];
}

static void stamp_task(void *arg)
{
    atomic_store_explicit((_Atomic uint64_t *)arg, now_ns(), memory_order_release);
}

/* One task every PACE_NS to an idle pool: submit->start. */
static void idle_latency(const struct impl *im, unsigned workers, double *p50, double *p99)
{
    static uint64_t v[SAMPLES];
    void *ctx = im->create(workers);
    _Atomic uint64_t started;
    size_t n = 0;
    uint64_t begin = now_ns(), t1;
    while (n < SAMPLES && now_ns() - begin < LATENCY_BUDGET_NS) {
        atomic_store(&started, 0);
        pause_ns(PACE_NS);
        uint64_t t0 = now_ns();
        if (im->submit(ctx, stamp_task, &started) < 0)
            continue;
        while ((t1 = atomic_load_explicit(&started, memory_order_acquire)) == 0)
            ;
        v[n++] = t1 > t0 ? t1 - t0 : 0;
    }
    im->destroy(ctx);
    percentiles(v, n, p50, p99);
}

/* LOADED tasks submitted at `rate` per second (spin-paced), each stamping its start. */
static void loaded_latency(const struct impl *im, unsigned workers, double rate, double *p50,
                           double *p99)
{
    static _Atomic uint64_t start[LOADED];
    static uint64_t submit[LOADED], v[LOADED];
    void *ctx = im->create(workers);
    uint64_t gap = (uint64_t)(1e9 / rate), due = now_ns();
    for (size_t i = 0; i < LOADED; i++) {
        atomic_store(&start[i], 0);
        while (now_ns() < due)
            ;
        due += gap;
        submit[i] = now_ns();
        while (im->submit(ctx, stamp_task, &start[i]) < 0)
            sched_yield();
    }
    im->destroy(ctx); /* every task has run */
    for (size_t i = 0; i < LOADED; i++) {
        uint64_t s = atomic_load(&start[i]);
        v[i] = s > submit[i] ? s - submit[i] : 0;
    }
    percentiles(v, LOADED, p50, p99);
}

int main(void)
{
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    unsigned workers = cpus < 1 ? 1 : cpus > 16 ? 16 : (unsigned)cpus;
    double tput[N_IMPLS], idle[N_IMPLS][2], load[N_IMPLS][2], ref50, ref99;
    if (getenv("BENCH_PROFILE")) { /* just the engine's throughput, for perf */
        printf("engine: %.0f tasks/s\n", throughput(impls[0], workers));
        return 0;
    }
    wakeup_reference(&ref50, &ref99);
    for (size_t i = 0; i < N_IMPLS; i++) {
        tput[i] = throughput(impls[i], workers);
        idle_latency(impls[i], workers, &idle[i][0], &idle[i][1]);
        loaded_latency(impls[i], workers, tput[i] / 2, &load[i][0], &load[i][1]);
    }
    printf("bench/engine: %u workers, %d no-op tasks per run, one task per submit call, median "
           "of %d runs; GLib %u.%u.%u\n", workers, TASKS, RUNS, glib_major_version,
           glib_minor_version, glib_micro_version);
    printf("reference: one cross-CPU condvar wake-up  p50 %.1f us  p99 %.1f us\n\n", ref50, ref99);
    printf("%-28s %12s %8s %21s %21s\n", "", "", "", "submit->start, idle", "at half its peak");
    printf("%-28s %12s %8s %10s %10s %10s %10s\n", "implementation", "tasks/s", "vs GLib", "p50 us",
           "p99 us", "p50 us", "p99 us");
    for (size_t i = 0; i < N_IMPLS; i++)
        printf("%-28s %12.0f %7.2fx %10.1f %10.1f %10.1f %10.1f\n", impls[i]->name, tput[i],
               tput[i] / tput[1], idle[i][0], idle[i][1], load[i][0], load[i][1]);
    printf("\ngoals: throughput >= 2x GThreadPool: %s (%.2fx); p99 submit->start at half load "
           "<= one wake-up's p99: %s (%.1f vs %.1f us)\n", tput[0] >= 2 * tput[1] ? "met" : "NOT met",
           tput[0] / tput[1], load[0][1] <= ref99 ? "met" : "NOT met", load[0][1], ref99);
    printf("Idle: one task every %d us to an idle pool.  Half load: %d tasks spin-paced at half of "
           "that implementation's own measured peak.\n", PACE_NS / 1000, LOADED);
    return 0;
}
