/* host/blockpool.c: blocks freed on one thread reach another a magazine at a time, a
 * thread allocating what it freed itself takes its own back, and the blocks stay usable
 * (the pool keeps its links inside free blocks only). */
#include "ggl-build.h"

#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "blockpool.h"

#define MAG 32 /* blockpool.c's MAG_BLOCKS */

static void *given[MAG];

static void *put_a_magazine(void *arg)
{
    (void)arg;
    for (int i = 0; i < MAG; i++) {
        given[i] = block_get();
        memset(given[i], 0xab, BLOCK_SIZE); /* the whole block is the caller's */
    }
    for (int i = 0; i < MAG; i++)
        block_put(given[i]);
    return NULL;
}

static int was_given(const void *b)
{
    for (int i = 0; i < MAG; i++)
        if (given[i] == b)
            return 1;
    return 0;
}

static void *get_one(void *arg)
{
    *(void **)arg = block_get();
    return NULL;
}

/* Runs first: nothing else has touched the pool in this process. */
static void test_a_full_magazine_goes_to_another_thread(void **state)
{
    (void)state;
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, put_a_magazine, NULL), 0);
    pthread_join(t, NULL); /* its magazine was full: it went to the depot */
    void *got = NULL;
    assert_int_equal(pthread_create(&t, NULL, get_one, &got), 0);
    pthread_join(t, NULL);
    assert_non_null(got);
    assert_true(was_given(got));
    block_put(got);
}

static void test_a_thread_takes_back_what_it_freed(void **state)
{
    (void)state;
    void *a = block_get(), *b = block_get();
    assert_non_null(a);
    assert_non_null(b);
    assert_ptr_not_equal(a, b);
    memset(a, 1, BLOCK_SIZE);
    memset(b, 2, BLOCK_SIZE);
    block_put(a);
    block_put(b);
    void *c = block_get(), *d = block_get();
    assert_true((c == a && d == b) || (c == b && d == a));
    block_put(c);
    block_put(d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_full_magazine_goes_to_another_thread),
        cmocka_unit_test(test_a_thread_takes_back_what_it_freed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
