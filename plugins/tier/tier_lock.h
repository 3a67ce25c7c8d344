/* A small mutex for the bundled tier plugins' short critical sections (a cache hit, a
 * bucket's update): one word, taken and released inline with one atomic instruction
 * each, spinning briefly before it sleeps on a futex (a sleep and a cross-CPU wake-up
 * cost up to ~30 us here, PERF.md, while a holder on the other CPU is out within a few
 * hundred ns).  pthread_mutex_lock/unlock of an adaptive mutex cost ~95 instructions a
 * pair through their type dispatch, a fifth of a cache hit.  The word is 0 free, 1 held,
 * 2 held with sleepers (Drepper, "Futexes are tricky", mutex 3).  Not for the SDK: only
 * plugins built in this tree include it. */
#ifndef GGL_TIER_LOCK_H
#define GGL_TIER_LOCK_H

#include <stdatomic.h>
#include <stdint.h>
#include <sched.h>
#ifdef __linux__
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

struct tier_lock {
    _Atomic uint32_t word;
};

#define TIER_LOCK_SPINS 200 /* looks at the word before sleeping (~1-2 us) */

static inline void tier_lock_init(struct tier_lock *l) { atomic_init(&l->word, 0); }

static inline void tier_lock_sleep(struct tier_lock *l)
{
#ifdef __linux__
    syscall(SYS_futex, &l->word, FUTEX_WAIT_PRIVATE, 2u, NULL, NULL, 0);
#else
    (void)l;
    sched_yield();
#endif
}

static inline void tier_lock_wake(struct tier_lock *l)
{
#ifdef __linux__
    syscall(SYS_futex, &l->word, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
#else
    (void)l;
#endif
}

static inline void tier_lock_pause(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

/* Contended: spin while the holder is likely running, then mark sleepers and sleep. */
static __attribute__((noinline, cold, unused)) void tier_lock_contended(struct tier_lock *l)
{
    uint32_t w = 0;
    for (int i = 0; i < TIER_LOCK_SPINS; i++) {
        if (atomic_load_explicit(&l->word, memory_order_relaxed) == 0 &&
            atomic_compare_exchange_weak_explicit(&l->word, &w, 1, memory_order_acquire,
                                                  memory_order_relaxed))
            return;
        w = 0;
        tier_lock_pause();
    }
    while (atomic_exchange_explicit(&l->word, 2, memory_order_acquire) != 0)
        tier_lock_sleep(l);
}

static inline void tier_lock_acquire(struct tier_lock *l)
{
    uint32_t w = 0;
    if (!atomic_compare_exchange_strong_explicit(&l->word, &w, 1, memory_order_acquire,
                                                 memory_order_relaxed))
        tier_lock_contended(l);
}

static inline void tier_lock_release(struct tier_lock *l)
{
    if (atomic_exchange_explicit(&l->word, 0, memory_order_release) == 2)
        tier_lock_wake(l);
}

#endif
