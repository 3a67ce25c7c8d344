/* Baselines shared by the benchmarks (bench/queue, bench/engine): GLib's GThreadPool
 * and a minimal mutex+condvar pool behind one submit interface, the cross-CPU condvar
 * wake-up reference latency, percentiles and monotonic time. */
#ifndef GGL_BENCH_BASELINE_H
#define GGL_BENCH_BASELINE_H

#include <stddef.h>
#include <stdint.h>

#define SAMPLES 2000       /* paced latency samples, at most LATENCY_BUDGET_NS */
#define LATENCY_BUDGET_NS 3000000000ull
#define PACE_NS 200000     /* gap between paced submits: the workers go back to sleep */

typedef void (*task_fn)(void *arg);

struct impl {
    const char *name;
    void *(*create)(unsigned workers);
    int (*submit)(void *ctx, task_fn fn, void *arg);            /* 0, or -1 to retry */
    size_t (*submit_batch)(void *ctx, task_fn fn, void **args, size_t n);
    void (*destroy)(void *ctx);                                 /* runs all, joins */
};

extern const struct impl baseline_glib;  /* "GThreadPool" (a batch is n pushes) */
extern const struct impl baseline_mini;  /* "mutex+condvar pool" */

uint64_t now_ns(void);  /* CLOCK_MONOTONIC */
void pause_ns(long ns);
/* Sorts v; p50 and p99 in microseconds. */
void percentiles(uint64_t *v, size_t n, double *p50, double *p99);
/* One condvar handoff to a thread sleeping on the other CPU, paced: p50/p99 in us. */
void wakeup_reference(double *p50, double *p99);
/* Pin the calling thread to one CPU. */
void pin(int cpu);

#endif
