/* plugins/tier/tier_lock.h: mutual exclusion under contention, including the path where
 * waiters sleep on the futex (a holder that sleeps inside its critical section), and
 * the word back at "free" once every thread has left. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include <cmocka.h>

#include "tier_lock.h"

#define THREADS 4
#define ROUNDS 20000

static struct tier_lock lock;
static long counter;   /* plain: only the lock keeps the increments whole */
static int inside;     /* plain: a second thread inside would see it set */
static int overlaps;

static void *hammer(void *arg)
{
    long id = (long)(intptr_t)arg;
    for (int i = 0; i < ROUNDS; i++) {
        tier_lock_acquire(&lock);
        if (inside)
            overlaps++;
        inside = 1;
        long c = counter;
        /* now and then hold the lock long enough that the others stop spinning and
         * sleep, so the release has sleepers to wake */
        if (id == 0 && i % 500 == 0)
            nanosleep(&(struct timespec){0, 200000}, NULL);
        counter = c + 1;
        inside = 0;
        tier_lock_release(&lock);
    }
    return NULL;
}

static void test_contended_increments_are_whole(void **state)
{
    (void)state;
    pthread_t th[THREADS];
    tier_lock_init(&lock);
    for (long i = 0; i < THREADS; i++)
        assert_int_equal(pthread_create(&th[i], NULL, hammer, (void *)(intptr_t)i), 0);
    for (int i = 0; i < THREADS; i++)
        pthread_join(th[i], NULL);
    assert_int_equal(overlaps, 0);
    assert_int_equal(counter, (long)THREADS * ROUNDS);
    assert_int_equal(atomic_load(&lock.word), 0);
}

static void *take_and_count(void *arg)
{
    tier_lock_acquire(&lock);
    atomic_store((_Atomic int *)arg, 1);
    tier_lock_release(&lock);
    return NULL;
}

/* A waiter that went to sleep (the word says so) is woken by the release. */
static void test_a_sleeping_waiter_is_woken(void **state)
{
    (void)state;
    pthread_t th;
    _Atomic int done = 0;
    tier_lock_init(&lock);
    tier_lock_acquire(&lock);
    assert_int_equal(pthread_create(&th, NULL, take_and_count, &done), 0);
    for (int i = 0; i < 5000 && atomic_load(&lock.word) != 2; i++) /* bounded: 5 s */
        nanosleep(&(struct timespec){0, 1000000}, NULL);
    assert_int_equal(atomic_load(&lock.word), 2);
    tier_lock_release(&lock);
    for (int i = 0; i < 5000 && !atomic_load(&done); i++) /* a missed wake-up fails, not hangs */
        nanosleep(&(struct timespec){0, 1000000}, NULL);
    assert_int_equal(atomic_load(&done), 1);
    pthread_join(th, NULL);
    assert_int_equal(atomic_load(&lock.word), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_contended_increments_are_whole),
        cmocka_unit_test(test_a_sleeping_waiter_is_woken),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
