/* Absolute deadlines for timed waits: pthread_cond_timedwait on a CLOCK_MONOTONIC
 * condvar, or pthread_timedjoin_np (CLOCK_REALTIME). */
#ifndef GGL_HOST_DEADLINE_H
#define GGL_HOST_DEADLINE_H

#include <stdint.h>
#include <time.h>

static inline struct timespec deadline_after_ms(clockid_t clock, uint64_t ms)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    ts.tv_sec += (time_t)(ms / 1000);
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return ts;
}

#endif
