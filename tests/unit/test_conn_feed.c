/* A detached connection (what fuzz/fuzz_request.c drives): bytes fed with conn_feed
 * reach the real command table and memory workers, replies come out in request order,
 * a malformed request gets its -ERR and ends the connection, QUIT stops reading. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "conn.h"
#include "host_fixture.h"
#include "memory_async.h"

static struct host_fixture fx;
static struct control *ctl;

static int setup(void **state)
{
    (void)state;
    if (host_fixture_open(&fx, "control = { unix = \"%1$s/unused.sock\"; max_request_bytes = 1024;"
                               " max_output_bytes = 4096; };\n"
                               "backends = { c = { plugin = \"cache\"; }; s = { plugin = \"mem\"; }; };\n"
                               "tiers = { cache = \"c\"; stm = \"s\"; };\n") < 0)
        return -1;
    struct memory_async_conf ac = {1, 1, 64, 16, 0, 1, 100};
    struct conf_error err;
    if (memory_async_start(&ac) < 0 || !(ctl = control_new_offline(fx.conf, fx.inst, fx.n, &err)))
        return -1;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    control_free_offline(ctl);
    memory_async_stop();
    memory_async_free();
    host_fixture_close(&fx);
    return 0;
}

/* Feed text in pieces of `chunk` bytes; the replies, once every one owed has arrived. */
static const char *feed(struct conn *c, const char *text, size_t chunk)
{
    static char got[8192];
    size_t len = strlen(text);
    for (size_t off = 0; off < len && !c->closing; off += chunk)
        conn_feed(c, text + off, len - off < chunk ? len - off : chunk);
    for (int spins = 0; !c->closing && conn_has_pending(c) && spins < 100000; spins++)
        uv_run(&ctl->loop, UV_RUN_ONCE);
    assert_false(conn_has_pending(c));
    snprintf(got, sizeof got, "%.*s", (int)c->out.len, c->out.data);
    c->out.len = 0;
    return got;
}

static void test_requests_reach_the_command_table(void **state)
{
    (void)state;
    struct conn *c = conn_new_detached(ctl);
    assert_non_null(c);
    assert_string_equal(feed(c, "PING\r\n*2\r\n$4\r\nECHO\r\n$2\r\nhi\r\nNOSUCH x\r\n", 3),
                        "+PONG\r\n$2\r\nhi\r\n-ERR unknown command 'NOSUCH'\r\n");
    conn_free_detached(c);
}

static void test_memory_replies_keep_request_order(void **state)
{
    (void)state;
    struct conn *c = conn_new_detached(ctl);
    assert_string_equal(feed(c, "SET k v1\r\nGET k\r\nSET k v2\r\nGET k\r\nDEL k\r\nGET k\r\nPING\r\n", 5),
                        "+OK\r\n$2\r\nv1\r\n+OK\r\n$2\r\nv2\r\n:1\r\n$-1\r\n+PONG\r\n");
    conn_free_detached(c);
}

static void test_malformed_request_ends_connection(void **state)
{
    (void)state;
    struct conn *c = conn_new_detached(ctl);
    assert_int_equal(conn_feed(c, "*1\r\n$x\r\n", 8), -1);
    assert_true(c->close_when_flushed);
    assert_memory_equal(c->out.data, "-ERR ", 5);
    conn_free_detached(c);
}

static void test_quit_stops_reading(void **state)
{
    (void)state;
    struct conn *c = conn_new_detached(ctl);
    assert_string_equal(feed(c, "QUIT\r\nPING\r\n", 64), "+OK\r\n");
    assert_true(c->close_when_flushed);
    conn_free_detached(c);
}

static void test_output_limit_closes(void **state)
{
    (void)state;
    struct conn *c = conn_new_detached(ctl);
    char req[1024];
    snprintf(req, sizeof req, "ECHO %0900d\r\n", 0);
    for (int i = 0; i < 10 && !c->closing; i++) /* replies never taken: over 4096 bytes */
        conn_feed(c, req, strlen(req));
    assert_true(c->closing);
    conn_free_detached(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_requests_reach_the_command_table),
        cmocka_unit_test(test_memory_replies_keep_request_order),
        cmocka_unit_test(test_malformed_request_ends_connection),
        cmocka_unit_test(test_quit_stops_reading),
        cmocka_unit_test(test_output_limit_closes),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
