/* Absolute deadlines for timed waits: pthread_cond_timedwait on a CLOCK_MONOTONIC
 * condvar, or pthread_timedjoin_np (CLOCK_REALTIME). */
#ifndef GGL_HOST_DEADLINE_H
#define GGL_HOST_DEADLINE_H

#include <pthread.h>
#include <stdint.h>
#include <time.h>

/* A condition variable whose timed waits run on CLOCK_MONOTONIC (immune to clock steps). */
static inline int cond_init_monotonic(pthread_cond_t *cv)
{
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    int rc = pthread_cond_init(cv, &ca);
    pthread_condattr_destroy(&ca);
    return rc;
}

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
