/* A lock-free latency histogram with percentiles: log-spaced buckets (four per octave,
 * so an estimate is within ~19% of the truth) over nanoseconds, for the engine's run
 * and queue-wait p50/p99.  Updates are one relaxed atomic add. */
#ifndef GGL_HOST_LATENCY_H
#define GGL_HOST_LATENCY_H

#include <stdatomic.h>
#include <stdint.h>

#define LATENCY_BUCKETS 176 /* 4 per octave up to 2^44 ns (~4.9 hours) */

struct latency {
    _Atomic uint64_t bucket[LATENCY_BUCKETS];
};

void latency_record(struct latency *l, uint64_t ns);
/* The q-quantile (0 < q < 1) in milliseconds, 0 when nothing was recorded. */
double latency_quantile_ms(const struct latency *l, double q);
/* Monotonic nanoseconds (CLOCK_MONOTONIC, or the TSC scaled to it: latency.c), for
 * durations: latencies are real time, not the host clock. */
uint64_t latency_now_ns(void);

#endif
