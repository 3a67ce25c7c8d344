/* MEM.* option parsing: every option, any order and case, and each malformed form
 * refused with a message (never accepted half-parsed). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "memory_args.h"

static int parse(struct memory_write *w, char *err, int argc, ...)
{
    const char *argv[16];
    size_t lens[16];
    va_list ap;
    va_start(ap, argc);
    for (int i = 0; i < argc; i++) {
        argv[i] = va_arg(ap, const char *);
        lens[i] = strlen(argv[i]);
    }
    va_end(ap);
    return memory_parse_put_options(argc, argv, lens, w, err, 256);
}

static void test_defaults_and_every_option(void **state)
{
    (void)state;
    struct memory_write w;
    char err[256];
    assert_int_equal(parse(&w, err, 0), 0);
    assert_int_equal(w.tier, -1);
    assert_int_equal(w.pin, 0);
    assert_true(w.importance == 0.5);
    assert_int_equal(parse(&w, err, 7, "ttl", "1500", "PIN", "Tier", "LTM", "IMPORTANCE", "0.9"), 0);
    assert_int_equal(w.ttl_ms, 1500);
    assert_int_equal(w.pin, 1);
    assert_int_equal(w.tier, SLOT_LTM);
    assert_true(w.importance == 0.9);
}

static void test_malformed_options_refused(void **state)
{
    (void)state;
    struct memory_write w;
    char err[256];
    assert_int_equal(parse(&w, err, 2, "IMPORTANCE", "1.5"), -1);
    assert_string_equal(err, "IMPORTANCE must be a number from 0 to 1");
    assert_int_equal(parse(&w, err, 2, "IMPORTANCE", "0.5x"), -1);
    assert_int_equal(parse(&w, err, 2, "IMPORTANCE", "nan"), -1);
    assert_int_equal(parse(&w, err, 2, "TTL", "-5"), -1);
    assert_string_equal(err, "TTL must be a positive number of milliseconds");
    assert_int_equal(parse(&w, err, 2, "TTL", "99999999999999999999999"), -1);
    assert_int_equal(parse(&w, err, 2, "TIER", "disk"), -1);
    assert_string_equal(err, "TIER must be one of cache, stm, im, ltm");
    assert_int_equal(parse(&w, err, 1, "TTL"), -1); /* missing value */
    assert_int_equal(parse(&w, err, 4, "TTL", "5", "TTL", "6"), -1); /* twice */
    assert_int_equal(parse(&w, err, 1, "BOGUS"), -1);
    assert_non_null(strstr(err, "unexpected option 'BOGUS'"));
    /* A NUL inside a number token is not a number. */
    const char *argv[] = {"TTL", "12\0003"};
    size_t lens[] = {3, 4};
    assert_int_equal(memory_parse_put_options(2, argv, lens, &w, err, sizeof err), -1);
}

static void test_get_options(void **state)
{
    (void)state;
    int meta;
    char err[256];
    const char *argv[] = {"withmeta", "x"};
    size_t lens[] = {8, 1};
    assert_int_equal(memory_parse_get_options(0, argv, lens, &meta, err, sizeof err), 0);
    assert_int_equal(meta, 0);
    assert_int_equal(memory_parse_get_options(1, argv, lens, &meta, err, sizeof err), 0);
    assert_int_equal(meta, 1);
    assert_int_equal(memory_parse_get_options(2, argv, lens, &meta, err, sizeof err), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults_and_every_option),
        cmocka_unit_test(test_malformed_options_refused),
        cmocka_unit_test(test_get_options),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
