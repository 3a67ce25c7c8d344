/* Exponential backoff with equal jitter (formula and why in backoff.h), and a cheap
 * thread-safe random source for it. */
#include "ggl-build.h"

#include <stdatomic.h>
#include <time.h>

#include "backoff.h"

uint64_t backoff_cap_ms(const struct backoff *b, unsigned attempt)
{
    uint64_t cap = b->max_ms ? b->max_ms : UINT64_MAX;
    uint64_t d = b->base_ms;
    /* double until the cap, never past it: no shift can overflow */
    for (unsigned i = 0; i < attempt && d < cap; i++)
        d = d > cap / 2 ? cap : d * 2;
    return d < cap ? d : cap;
}

uint64_t backoff_delay_ms(const struct backoff *b, unsigned attempt, uint64_t rand)
{
    uint64_t d = backoff_cap_ms(b, attempt);
    uint64_t half = d / 2;
    uint64_t span = d - half; /* d/2 rounded up (at most 2^63): the range is half .. d */
    return half + rand % (span + 1);
}

/* splitmix64 (Steele, Lea, Flood 2014): one add and three xor-multiply steps. */
static uint64_t splitmix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15u;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9u;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebu;
    return x ^ (x >> 31);
}

uint64_t backoff_random(void)
{
    static _Atomic uint64_t counter;
    static _Atomic int seeded;
    if (!atomic_load_explicit(&seeded, memory_order_acquire)) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        uint64_t zero = 0;
        atomic_compare_exchange_strong(&counter, &zero,
                                       (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec);
        atomic_store_explicit(&seeded, 1, memory_order_release);
    }
    return splitmix64(atomic_fetch_add_explicit(&counter, 0x9e3779b97f4a7c15u,
                                                memory_order_relaxed));
}
