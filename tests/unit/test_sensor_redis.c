/* sensor/redis against a real redis-server (tests/redisserver.h): reachability, PING
 * latency and INFO fields compared with the server's own INFO; with a password; and a
 * server that goes away is a reading (up = 0, an error text, GGL_RETRY) within the
 * configured timeouts, never a crash or a long hang, and up = 1 again once it is back. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include "redisserver.h"
#include "testhost.h"

extern const struct ggl_plugin ggl_plugin_entry;

#define MAX_READINGS 16

struct readings {
    int n;
    char key[MAX_READINGS][48];
    double value[MAX_READINGS];
    char text[MAX_READINGS][160];
};

static void emit(void *sink, const char *key, double value, const char *text)
{
    struct readings *r = sink;
    if (r->n < MAX_READINGS) {
        snprintf(r->key[r->n], sizeof r->key[0], "%s", key);
        snprintf(r->text[r->n], sizeof r->text[0], "%s", text ? text : "");
        r->value[r->n++] = value;
    }
}

static int find(const struct readings *r, const char *key)
{
    for (int i = 0; i < r->n; i++)
        if (strcmp(r->key[i], key) == 0)
            return i;
    fail_msg("no reading %s", key);
    return -1;
}

static double value_of(const struct readings *r, const char *key) { return r->value[find(r, key)]; }
static const char *text_of(const struct readings *r, const char *key) { return r->text[find(r, key)]; }

/* A numeric INFO field as the server reports it to a direct client. */
static double server_info(const struct redis_server *s, const char *field)
{
    redisContext *c = redis_server_client(s, 0);
    assert_non_null(c);
    redisReply *rep = redisCommand(c, "INFO");
    assert_non_null(rep);
    char pat[64];
    snprintf(pat, sizeof pat, "\n%s:", field);
    const char *at = strstr(rep->str, pat);
    assert_non_null(at);
    double v = strtod(at + strlen(pat), NULL);
    freeReplyObject(rep);
    redisFree(c);
    return v;
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void test_readings_match_server_info(void **state)
{
    (void)state;
    struct redis_server s = {0};
    assert_int_equal(redis_server_start(&s, 0, NULL), 0);
    testhost_init(0);
    const struct ggl_sensor *vt = ggl_plugin_entry.vtable;
    const char *const pairs[] = {"port", s.port_text, "fields",
                                 "used_memory,connected_clients,role,no_such_field", NULL};
    void *self = testhost_open(&ggl_plugin_entry, pairs, GGL_OK);
    struct readings r = {0};
    assert_int_equal(vt->sample(self, emit, &r), GGL_OK);
    assert_true(value_of(&r, "up") == 1);
    assert_true(value_of(&r, "latency_ms") > 0 && value_of(&r, "latency_ms") < 1000);
    assert_string_equal(text_of(&r, "role"), "master");
    assert_int_equal(r.n, 5); /* up, latency_ms, and the three fields the server has */
    double mem = server_info(&s, "used_memory");
    assert_true(value_of(&r, "used_memory") > mem * 0.8 && value_of(&r, "used_memory") < mem * 1.25);
    memset(&r, 0, sizeof r);
    assert_int_equal(vt->sample(self, emit, &r), GGL_OK); /* the same connection, reused */
    /* the sensor's connection, and the direct client asking now */
    assert_true(value_of(&r, "connected_clients") == server_info(&s, "connected_clients") - 1);
    vt->close(self);
    redis_server_stop(&s);
}

static void test_password_and_unix_socket(void **state)
{
    (void)state;
    struct redis_server s = {0};
    assert_int_equal(redis_server_start(&s, 0, "sesame"), 0);
    testhost_init(0);
    const struct ggl_sensor *vt = ggl_plugin_entry.vtable;
    const char *const good[] = {"unix_socket", s.socket, "password", "sesame", NULL};
    void *self = testhost_open(&ggl_plugin_entry, good, GGL_OK);
    struct readings r = {0};
    assert_int_equal(vt->sample(self, emit, &r), GGL_OK);
    assert_true(value_of(&r, "up") == 1);
    vt->close(self);
    const char *const bad[] = {"port", s.port_text, "password", "wrong", NULL};
    self = testhost_open(&ggl_plugin_entry, bad, GGL_OK);
    memset(&r, 0, sizeof r);
    assert_int_equal(vt->sample(self, emit, &r), GGL_RETRY);
    assert_true(value_of(&r, "up") == 0);
    assert_non_null(strstr(text_of(&r, "error"), "AUTH"));
    vt->close(self);
    redis_server_stop(&s);
}

static void test_unreachable_is_a_reading_and_recovers(void **state)
{
    (void)state;
    struct redis_server s = {0};
    assert_int_equal(redis_server_start(&s, 0, NULL), 0);
    int port = s.port;
    testhost_init(0);
    const struct ggl_sensor *vt = ggl_plugin_entry.vtable;
    const char *const pairs[] = {"port", s.port_text, "connect_timeout_ms", "300",
                                 "command_timeout_ms", "300", NULL};
    void *self = testhost_open(&ggl_plugin_entry, pairs, GGL_OK);
    struct readings r = {0};
    assert_int_equal(vt->sample(self, emit, &r), GGL_OK);
    redis_server_kill(&s);
    for (int i = 0; i < 2; i++) { /* the dead connection, then a refused reconnect */
        memset(&r, 0, sizeof r);
        double t0 = now_ms();
        assert_int_equal(vt->sample(self, emit, &r), GGL_RETRY);
        assert_true(now_ms() - t0 < 300 + 2 * 300 + 200);
        assert_true(value_of(&r, "up") == 0);
        assert_non_null(strstr(text_of(&r, "error"), "redis 127.0.0.1:"));
        assert_non_null(strstr(testhost_reason(), "redis 127.0.0.1:"));
    }
    assert_int_equal(redis_server_start(&s, port, NULL), 0);
    memset(&r, 0, sizeof r);
    assert_int_equal(vt->sample(self, emit, &r), GGL_OK);
    assert_true(value_of(&r, "up") == 1);
    vt->close(self);
    redis_server_stop(&s);
}

static void test_bad_settings_refused(void **state)
{
    (void)state;
    testhost_init(0);
    const char *const pairs[] = {"port", "70000", NULL};
    testhost_open(&ggl_plugin_entry, pairs, GGL_INVALID);
    assert_non_null(strstr(testhost_reason(), "port"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_readings_match_server_info),
        cmocka_unit_test(test_password_and_unix_socket),
        cmocka_unit_test(test_unreachable_is_a_reading_and_recovers),
        cmocka_unit_test(test_bad_settings_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
