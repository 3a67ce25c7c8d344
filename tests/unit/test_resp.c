/* resp.c: requests parsed the same however the bytes are split, inline and multibulk
 * mixed, every limit refused with our own reason, reply encoders. */
#include "ggl-build.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "resp.h"

static const struct resp_limits limits = {1024, 8};

/* Requests rendered as "ARG|ARG;" for comparison. */
static int collect(void *arg, const struct request *req)
{
    struct buf *b = arg;
    for (int i = 0; i < req->argc; i++) {
        assert_int_equal(req->argv[i][req->lens[i]], '\0');
        buf_append(b, req->argv[i], req->lens[i]);
        buf_append(b, i + 1 < req->argc ? "|" : ";", 1);
    }
    return 0;
}

static char *parse_all(const char *in, size_t len, size_t chunk, int *rc)
{
    struct resp_parser *p = resp_parser_new(&limits);
    struct buf out = {0};
    *rc = 0;
    for (size_t off = 0; off < len && *rc == 0; off += chunk)
        *rc = resp_parse(p, in + off, off + chunk <= len ? chunk : len - off, collect, &out);
    buf_append(&out, "", 1);
    if (*rc < 0) {
        free(out.data);
        out.data = strdup(resp_error(p));
    }
    resp_parser_free(p);
    return out.data;
}

static const char stream[] = "*2\r\n$4\r\nECHO\r\n$5\r\nhe\nlo\r\n"
                             "PING\r\n"
                             "ECHO  a\tb\n"
                             "\r\n"
                             "*0\r\n"
                             "*1\r\n$4\r\nPING\r\n"
                             "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n"
                             "INFO\r\n";
static const char expected[] = "ECHO|he\nlo;PING;ECHO|a|b;PING;SET|k|;INFO;";

static void test_same_requests_at_every_chunk_size(void **state)
{
    (void)state;
    for (size_t chunk = 1; chunk <= sizeof stream; chunk++) {
        int rc;
        char *got = parse_all(stream, sizeof stream - 1, chunk, &rc);
        assert_int_equal(rc, 0);
        assert_string_equal(got, expected);
        free(got);
    }
}

static void expect_refused(const char *in, const char *reason)
{
    int rc;
    char *got = parse_all(in, strlen(in), strlen(in), &rc);
    assert_int_equal(rc, -1);
    if (!strstr(got, reason))
        fail_msg("reason '%s' lacks '%s'", got, reason);
    free(got);
}

static void test_huge_array_header_refused(void **state)
{
    (void)state;
    expect_refused("*2147483647\r\n", "too many arguments (2147483647, limit 8)");
    expect_refused("*9\r\n", "too many arguments");
}

static void test_only_arrays_of_bulk_strings(void **state)
{
    (void)state;
    expect_refused("*1\r\n:5\r\n", "only arrays of bulk strings");
    expect_refused("*-1\r\n", "only arrays of bulk strings");
    expect_refused("*1\r\n$-1\r\n", "only arrays of bulk strings");
    expect_refused("*1\r\n+OK\r\n", "only arrays of bulk strings");
    expect_refused("*2\r\n*1\r\n$1\r\na\r\n", "nested arrays");
    expect_refused("*1\r\n!x\r\n", "protocol error");
}

static void test_bulk_length_must_match_its_data(void **state)
{
    (void)state; /* found by the hostile suite: "abc" was taken and "d\r" skipped */
    expect_refused("*1\r\n$3\r\nabcd\r\n\r\n", "bulk string of 3 bytes not followed by CRLF");
    expect_refused("*2\r\n$4\r\nECHO\r\n$1\r\nab\r\n", "not followed by CRLF");
}

static void test_bulk_over_limit_refused_at_its_header(void **state)
{
    (void)state;
    expect_refused("*1\r\n$99999999999\r\n", "request larger than 1024 bytes (bulk length 99999999999)");
}

static void test_request_bytes_capped(void **state)
{
    (void)state;
    char big[2048];
    int n = 0;
    n += sprintf(big + n, "*4\r\n");
    for (int i = 0; i < 4; i++) { /* each argument fits, together they do not */
        n += sprintf(big + n, "$300\r\n");
        memset(big + n, 'a', 300);
        n += 300;
        n += sprintf(big + n, "\r\n");
    }
    int rc;
    char *got = parse_all(big, (size_t)n, 7, &rc);
    assert_int_equal(rc, -1);
    assert_non_null(strstr(got, "request larger than 1024 bytes"));
    free(got);
}

static void test_unterminated_line_capped(void **state)
{
    (void)state;
    struct resp_parser *p = resp_parser_new(&limits);
    struct buf out = {0};
    char chunk[1000];
    memset(chunk, '7', sizeof chunk);
    memcpy(chunk, "*", 1); /* a multibulk header that never ends */
    int rc = 0;
    for (int i = 0; i < 3 && rc == 0; i++)
        rc = resp_parse(p, chunk, sizeof chunk, collect, &out);
    assert_int_equal(rc, -1);
    assert_true(resp_buffered(p) <= limits.max_request_bytes);
    resp_parser_free(p);
    free(out.data);
    memset(chunk, 'x', sizeof chunk);
    p = resp_parser_new(&limits);
    rc = 0;
    for (int i = 0; i < 80 && rc == 0; i++) /* inline: 64 KiB, as Redis */
        rc = resp_parse(p, chunk, sizeof chunk, collect, &out);
    assert_int_equal(rc, -1);
    assert_non_null(strstr(resp_error(p), "inline request longer"));
    resp_parser_free(p);
    free(out.data);
}

static void test_inline_too_many_args(void **state)
{
    (void)state;
    expect_refused("a b c d e f g h i\r\n", "too many arguments");
}

static int stop_after_first(void *arg, const struct request *req)
{
    (void)req;
    (*(int *)arg)++;
    return 1;
}

static void test_callback_stops_parsing(void **state)
{
    (void)state;
    struct resp_parser *p = resp_parser_new(&limits);
    int calls = 0;
    assert_int_equal(resp_parse(p, "PING\r\nPING\r\n*1\r\n$4\r\nPING\r\n", 26, stop_after_first,
                                &calls), 0);
    assert_int_equal(calls, 1);
    resp_parser_free(p);
}

static void test_reply_encoders(void **state)
{
    (void)state;
    struct buf b = {0};
    reply_status(&b, "OK");
    reply_error(&b, "ERR two\r\nlines %d", 7);
    reply_int(&b, -42);
    reply_bulk(&b, "a\0b", 3);
    reply_nil(&b);
    reply_array(&b, 2);
    buf_append(&b, "", 1);
    assert_memory_equal(b.data, "+OK\r\n-ERR two  lines 7\r\n:-42\r\n$3\r\na\0b\r\n$-1\r\n*2\r\n", 47);
    buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_same_requests_at_every_chunk_size),
        cmocka_unit_test(test_huge_array_header_refused),
        cmocka_unit_test(test_only_arrays_of_bulk_strings),
        cmocka_unit_test(test_bulk_length_must_match_its_data),
        cmocka_unit_test(test_bulk_over_limit_refused_at_its_header),
        cmocka_unit_test(test_request_bytes_capped),
        cmocka_unit_test(test_unterminated_line_capped),
        cmocka_unit_test(test_inline_too_many_args),
        cmocka_unit_test(test_callback_stops_parsing),
        cmocka_unit_test(test_reply_encoders),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
