/* Mutexes for short critical sections that a submitter and workers share: they spin a
 * little before sleeping.  Contended, a plain mutex sleeps at once, and the futex sleep
 * plus the wake-up cost several microseconds here (a cross-CPU wake-up up to ~30 us,
 * PERF.md), while the holder, running on the other CPU, is out within a few hundred ns. */
#ifndef GGL_HOST_LOCK_H
#define GGL_HOST_LOCK_H

#include <pthread.h>

static inline int mutex_init_adaptive(pthread_mutex_t *m)
{
    pthread_mutexattr_t attr;
    pthread_mutexattr_init(&attr);
#ifdef PTHREAD_ADAPTIVE_MUTEX_INITIALIZER_NP
    pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_ADAPTIVE_NP);
#endif
    int rc = pthread_mutex_init(m, &attr);
    pthread_mutexattr_destroy(&attr);
    return rc;
}

#endif
