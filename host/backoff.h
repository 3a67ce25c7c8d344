/* Retry delays: exponential backoff with "equal jitter", deterministic given the random
 * input so tests can check a schedule exactly.  Shared by the processing engine (task
 * retries) and the action system (executor retries). */
#ifndef GGL_HOST_BACKOFF_H
#define GGL_HOST_BACKOFF_H

#include <stdint.h>

struct backoff {
    uint64_t base_ms; /* delay scale of the first retry (attempt 0); 0: no delay */
    uint64_t max_ms;  /* cap on the un-jittered delay; 0: base_ms * 2^62 (no cap) */
};

/* The delay before retry number `attempt` (0 = the first retry):
 *     d = min(max_ms, base_ms * 2^attempt)
 *     delay = d/2 + rand % (d/2 + 1)          ("equal jitter": d/2 .. d)
 * Equal rather than full jitter (0 .. d): retries of many tasks that failed together
 * still spread out, but no retry comes back almost at once, which against a backend
 * that just refused us (GGL_RETRY) would only be refused again.  `rand` is any 64-bit
 * random value (the caller's generator; tests pass fixed values: 0 gives the shortest
 * delay d/2, UINT64_MAX a value near d).  Never overflows. */
uint64_t backoff_delay_ms(const struct backoff *b, unsigned attempt, uint64_t rand);

/* The un-jittered step min(max_ms, base_ms * 2^attempt): the upper bound of the delay. */
uint64_t backoff_cap_ms(const struct backoff *b, unsigned attempt);

/* A small, fast, thread-safe source for `rand` (splitmix64 over an atomic counter seeded
 * from the clock at first use).  Not for anything secret. */
uint64_t backoff_random(void);

#endif
