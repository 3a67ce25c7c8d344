/* Log-spaced latency histogram (see latency.h): bucket b = 4 * octave + quarter + 1
 * (linear quarters of an octave), reported as 2^(b/4) ns: within 20% of any value in it. */
#include "ggl-build.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#if defined(__x86_64__)
#include <x86intrin.h>
#endif

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

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* On x86-64, where the kernel itself keeps time by the TSC (its clocksource is "tsc":
 * invariant and in step across CPUs), the TSC is read directly and scaled by a rate
 * measured once against CLOCK_MONOTONIC over 2 ms: 12 ns a reading here against 28, and
 * an engine task is stamped up to three times when it is timed.  Elsewhere, and
 * whenever the kernel does not trust the TSC, CLOCK_MONOTONIC. */
#if defined(__x86_64__)
static struct {
    uint64_t tsc0, ns0, mult; /* mult: nanoseconds per tick, << 32 */
    int on;
} tsc;
static pthread_once_t tsc_once = PTHREAD_ONCE_INIT;

static void tsc_calibrate(void)
{
    char src[32] = "";
    FILE *f = fopen("/sys/devices/system/clocksource/clocksource0/current_clocksource", "r");
    if (!f)
        return;
    if (!fgets(src, sizeof src, f))
        src[0] = '\0';
    fclose(f);
    if (strcmp(src, "tsc\n") != 0)
        return;
    uint64_t n0 = mono_ns(), t0 = __rdtsc(), n1, t1;
    do
        n1 = mono_ns(), t1 = __rdtsc();
    while (n1 - n0 < 2000000u);
    if (t1 <= t0)
        return;
    tsc.mult = (uint64_t)(((unsigned __int128)(n1 - n0) << 32) / (t1 - t0));
    tsc.tsc0 = t1, tsc.ns0 = n1;
    tsc.on = tsc.mult != 0;
}
#endif

uint64_t latency_now_ns(void)
{
#if defined(__x86_64__)
    pthread_once(&tsc_once, tsc_calibrate);
    if (tsc.on) {
        int64_t d = (int64_t)(__rdtsc() - tsc.tsc0); /* a CPU a few ticks behind: 0 */
        return tsc.ns0 + (uint64_t)(((unsigned __int128)(uint64_t)(d > 0 ? d : 0) * tsc.mult) >> 32);
    }
#endif
    return mono_ns();
}
