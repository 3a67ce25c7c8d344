/* Log-spaced latency histogram (see latency.h): bucket b = 4 * octave + quarter + 1
 * (linear quarters of an octave), reported as 2^(b/4) ns: within 20% of any value in it. */
#include "ggl-build.h"

#include <math.h>
#include <time.h>

#include "latency.h"

static unsigned bucket_of(uint64_t ns)
{
    if (ns < 2)
        return 0;
    unsigned octave = 63u - (unsigned)__builtin_clzll(ns); /* 2^octave <= ns */
    /* the two bits below the top one pick the quarter-octave */
    unsigned quarter = octave >= 2 ? (unsigned)((ns >> (octave - 2)) & 3u) : (unsigned)((ns << (2 - octave)) & 3u);
    unsigned b = octave * 4 + quarter + 1;
    return b < LATENCY_BUCKETS ? b : LATENCY_BUCKETS - 1;
}

void latency_record(struct latency *l, uint64_t ns)
{
    atomic_fetch_add_explicit(&l->bucket[bucket_of(ns)], 1, memory_order_relaxed);
}

double latency_quantile_ms(const struct latency *l, double q)
{
    uint64_t counts[LATENCY_BUCKETS], total = 0;
    for (unsigned b = 0; b < LATENCY_BUCKETS; b++)
        total += counts[b] = atomic_load_explicit(&l->bucket[b], memory_order_relaxed);
    if (!total)
        return 0;
    uint64_t rank = (uint64_t)ceil(q * (double)total), seen = 0;
    for (unsigned b = 0; b < LATENCY_BUCKETS; b++) {
        seen += counts[b];
        if (seen >= rank && counts[b])
            return pow(2.0, (double)b / 4.0) / 1e6;
    }
    return pow(2.0, (double)LATENCY_BUCKETS / 4.0) / 1e6;
}

uint64_t latency_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}
