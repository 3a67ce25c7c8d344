/* Unit tests for host/backoff.c: the exponential schedule, its cap, the equal-jitter
 * range at both ends of the random input, no overflow at huge attempts, and that the
 * random source varies. */
#include "ggl-build.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "backoff.h"

static void test_schedule_doubles_from_base_until_the_cap(void **state)
{
    (void)state;
    const struct backoff b = {.base_ms = 100, .max_ms = 1000};
    const uint64_t want[] = {100, 200, 400, 800, 1000, 1000, 1000};
    for (unsigned a = 0; a < sizeof want / sizeof want[0]; a++)
        assert_int_equal(backoff_cap_ms(&b, a), want[a]);
}

static void test_equal_jitter_spans_half_to_full_step(void **state)
{
    (void)state;
    const struct backoff b = {.base_ms = 100, .max_ms = 10000};
    /* attempt 2: step 400, so the delay lies in 200 .. 400 */
    assert_int_equal(backoff_delay_ms(&b, 2, 0), 200);
    assert_int_equal(backoff_delay_ms(&b, 2, 200), 400);
    assert_int_equal(backoff_delay_ms(&b, 2, 201), 200); /* 201 % 201 */
    assert_int_equal(backoff_delay_ms(&b, 2, 57), 257);
    for (uint64_t r = 0; r < 5000; r += 7) {
        uint64_t d = backoff_delay_ms(&b, 2, r * 2654435761u);
        assert_true(d >= 200 && d <= 400);
    }
}

static void test_odd_step_keeps_the_full_step_reachable(void **state)
{
    (void)state;
    const struct backoff b = {.base_ms = 5, .max_ms = 0};
    /* step 5: half 2, jitter 0..3 -> 2..5 */
    assert_int_equal(backoff_delay_ms(&b, 0, 0), 2);
    assert_int_equal(backoff_delay_ms(&b, 0, 3), 5);
}

static void test_zero_base_means_no_delay(void **state)
{
    (void)state;
    const struct backoff b = {.base_ms = 0, .max_ms = 1000};
    assert_int_equal(backoff_delay_ms(&b, 0, 12345), 0);
    assert_int_equal(backoff_delay_ms(&b, 40, UINT64_MAX), 0);
}

static void test_huge_attempts_do_not_overflow(void **state)
{
    (void)state;
    const struct backoff uncapped = {.base_ms = 3, .max_ms = 0};
    uint64_t prev = 0;
    for (unsigned a = 0; a < 200; a++) {
        uint64_t cap = backoff_cap_ms(&uncapped, a);
        assert_true(cap >= prev); /* monotonic: no wrap-around */
        prev = cap;
        uint64_t d = backoff_delay_ms(&uncapped, a, UINT64_MAX);
        assert_true(d <= cap && d >= cap / 2);
    }
    assert_true(prev >= UINT64_MAX / 2);
    const struct backoff capped = {.base_ms = 1000, .max_ms = 30000};
    assert_int_equal(backoff_cap_ms(&capped, 4000000000u), 30000);
}

static void test_random_source_varies(void **state)
{
    (void)state;
    uint64_t a = backoff_random(), b = backoff_random(), c = backoff_random();
    assert_true(a != b || b != c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_schedule_doubles_from_base_until_the_cap),
        cmocka_unit_test(test_equal_jitter_spans_half_to_full_step),
        cmocka_unit_test(test_odd_step_keeps_the_full_step_reachable),
        cmocka_unit_test(test_zero_base_means_no_delay),
        cmocka_unit_test(test_huge_attempts_do_not_overflow),
        cmocka_unit_test(test_random_source_varies),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
