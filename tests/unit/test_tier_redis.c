/* tier/redis against a real redis-server this program starts (free loopback port, no
 * persistence) and stops by pid: the conformance suite, then what only Redis shows —
 * its own PX expiry, reconnect after a restart, db/prefix isolation, AUTH, a unix
 * socket, a lost script cache, and values written by other clients.  No redis-server
 * installed is a failure, never a skip. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <stdatomic.h>
#include <pthread.h>
#include <time.h>
#include <cmocka.h>

#include "redis_wire.h"
#include "redisserver.h"
#include "testhost.h"
#include "tier_conformance.h"

#define T0 1700000000000ull

extern const struct ggl_plugin ggl_plugin_entry;
static const struct ggl_tier *vt;
static struct redis_server server;
static const char *pairs[] = {"port", server.port_text, "prefix", "conf:", NULL};

/* Run a command on a fresh client of `srv`, db `db`; returns the reply (caller frees). */
static redisReply *raw(const struct redis_server *srv, int db, const char *fmt, ...)
{
    redisContext *c = redis_server_client(srv, db);
    assert_non_null(c);
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(c, fmt, ap);
    va_end(ap);
    redisFree(c);
    assert_non_null(r);
    return r;
}

static void raw_ok(const struct redis_server *srv, int db, const char *cmd)
{
    freeReplyObject(raw(srv, db, cmd));
}

static void flush_all(void) { raw_ok(&server, 0, "FLUSHALL"); }

static struct ggl_entry entry(const char *key, const char *value, uint64_t version)
{
    return (struct ggl_entry){.size = sizeof(struct ggl_entry), .key = key,
                              .key_len = strlen(key), .value = (void *)value,
                              .value_len = strlen(value), .version = version};
}

static enum ggl_status put(void *t, const char *key, const char *value, uint64_t version,
                           uint64_t expect)
{
    struct ggl_entry e = entry(key, value, version);
    return vt->put(t, &e, expect);
}

/* get key: its status; on OK the value must be `want`. */
static enum ggl_status get(void *t, const char *key, const char *want)
{
    struct ggl_entry out = {.size = sizeof out};
    enum ggl_status s = vt->get(t, key, strlen(key), &out);
    if (s == GGL_OK) {
        assert_non_null(want);
        assert_int_equal(out.value_len, strlen(want));
        assert_memory_equal(out.value, want, out.value_len);
        free(out.value);
    }
    return s;
}

static void assert_reason(const char *part)
{
    const char *r = testhost_reason();
    if (!strstr(r, part))
        fail_msg("reason \"%s\" lacks \"%s\"", r, part);
}

static void test_redis_px_expires_the_key(void **state)
{
    (void)state;
    const struct ggl_host *host = testhost_init(T0);
    void *t = testhost_open(&ggl_plugin_entry, pairs, GGL_OK);
    struct ggl_entry e = entry("px", "v", 1);
    e.expires_ms = host->now(host) + 150;
    assert_int_equal(vt->put(t, &e, GGL_VERSION_ANY), GGL_OK);
    assert_int_equal(put(t, "forever", "v", 1, GGL_VERSION_ANY), GGL_OK);
    redisReply *r = raw(&server, 0, "PTTL conf:px");
    assert_true(r->integer > 0 && r->integer <= 150);
    freeReplyObject(r);
    r = raw(&server, 0, "PTTL conf:forever");
    assert_int_equal(r->integer, -1);
    freeReplyObject(r);
    long long exists = 1;
    for (int i = 0; i < 300 && exists; i++) { /* bounded: 3 s of real time */
        nanosleep(&(struct timespec){0, 10 * 1000 * 1000}, NULL);
        r = raw(&server, 0, "EXISTS conf:px");
        exists = r->integer;
        freeReplyObject(r);
    }
    assert_int_equal(exists, 0);
    /* The host clock has not moved: gone anyway, because Redis dropped it. */
    assert_int_equal(get(t, "px", NULL), GGL_NOTFOUND);
    assert_int_equal(get(t, "forever", "v"), GGL_OK);
    vt->close(t);
}

static int count_bad(void *arg, const struct ggl_entry *e)
{
    if ((e->key_len == 3 && !memcmp(e->key, "bad", 3)) || (e->key_len == 4 && !memcmp(e->key, "long", 4)))
        ++*(int *)arg;
    return 0;
}

/* More entries than one pipeline window, conditional, after the server lost the script:
 * every item gets its own status, in order. */
#define MANY 700

static void test_batch_larger_than_a_window(void **state)
{
    (void)state;
    static char keys[MANY][16];
    static struct ggl_entry es[MANY], out[MANY];
    static enum ggl_status st[MANY];
    static const void *kp[MANY];
    static size_t kl[MANY];
    testhost_init(T0);
    void *t = testhost_open(&ggl_plugin_entry, pairs, GGL_OK);
    for (size_t i = 0; i < MANY; i++) {
        snprintf(keys[i], sizeof keys[i], "w%zu", i);
        es[i] = entry(keys[i], keys[i], 10);
        kp[i] = keys[i];
        kl[i] = strlen(keys[i]);
    }
    assert_int_equal(put(t, "w300", "newer", 11, GGL_VERSION_ANY), GGL_OK);
    raw_ok(&server, 0, "SCRIPT FLUSH");
    assert_int_equal(vt->put_batch(t, es, MANY, GGL_VERSION_OLDER, st), GGL_OK);
    for (size_t i = 0; i < MANY; i++)
        assert_int_equal(st[i], i == 300 ? GGL_CONFLICT : GGL_OK);
    assert_int_equal(vt->get_batch(t, kp, kl, MANY, out, st), GGL_OK);
    for (size_t i = 0; i < MANY; i++) {
        const char *want = i == 300 ? "newer" : keys[i];
        assert_int_equal(st[i], GGL_OK);
        assert_int_equal(out[i].value_len, strlen(want));
        assert_memory_equal(out[i].value, want, out[i].value_len);
        free(out[i].value);
    }
    vt->close(t);
}

/* Commands are built as RESP by hand (redis_wire.c): binary keys and values of sizes
 * around the pipeline buffer's growth steps, an empty value, CR LF inside, and a TTL,
 * all arrive byte for byte (read back by another client, not through the plugin). */
static void test_awkward_bytes_arrive_exactly(void **state)
{
    (void)state;
    static const size_t sizes[] = {0, 1, 2, 4095 - WIRE_HEADER, 4096, 70000, 300000};
    enum { N = sizeof sizes / sizeof sizes[0] };
    static char keys[N][8], *values[N];
    struct ggl_entry es[N];
    enum ggl_status st[N];
    testhost_init(T0);
    void *t = testhost_open(&ggl_plugin_entry, pairs, GGL_OK);
    for (size_t i = 0; i < N; i++) {
        memcpy(keys[i], (char[]){'k', '\r', '\n', '\0', '$', (char)('0' + i), '*'}, 7);
        assert_non_null(values[i] = malloc(sizes[i] + 1));
        for (size_t j = 0; j < sizes[i]; j++)
            values[i][j] = "\r\n$*\0x"[j % 6];
        es[i] = (struct ggl_entry){.size = sizeof es[i], .key = keys[i], .key_len = 7,
                                   .value = values[i], .value_len = sizes[i],
                                   .version = 5 + i, .expires_ms = i % 2 ? T0 + 60000 : 0};
    }
    assert_int_equal(vt->put_batch(t, es, N, GGL_VERSION_ANY, st), GGL_OK);
    for (size_t i = 0; i < N; i++) {
        assert_int_equal(st[i], GGL_OK);
        char name[16] = "conf:";
        memcpy(name + 5, keys[i], 7);
        redisReply *r = raw(&server, 0, "GET %b", name, (size_t)12);
        assert_int_equal(r->type, REDIS_REPLY_STRING);
        assert_int_equal((size_t)r->len, WIRE_HEADER + sizes[i]);
        struct ggl_entry got = {.size = sizeof got};
        assert_int_equal(wire_decode(r->str, (size_t)r->len, &got), 0);
        assert_int_equal(got.version, 5 + i);
        assert_memory_equal(got.value, values[i], sizes[i]);
        freeReplyObject(r);
        r = raw(&server, 0, "PTTL %b", name, (size_t)12);
        if (i % 2) /* PX from the entry's expiry on the host clock: 60 s */
            assert_in_range(r->integer, 55000, 60000);
        else
            assert_int_equal(r->integer, -1);
        freeReplyObject(r);
        free(values[i]);
    }
    vt->close(t);
}

static void test_wire_digits(void **state)
{
    (void)state;
    char out[24];
    static const struct {
        uint64_t v;
        const char *text;
    } cases[] = {{0, "0"}, {9, "9"}, {10, "10"}, {3600000, "3600000"},
                 {UINT64_MAX, "18446744073709551615"}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t n = wire_digits(out, cases[i].v);
        assert_int_equal(n, strlen(cases[i].text));
        assert_memory_equal(out, cases[i].text, n);
    }
}

/* A put of an entry already past its expiry stores nothing and removes the old copy. */
static void test_expired_put_removes_the_key(void **state)
{
    (void)state;
    const struct ggl_host *host = testhost_init(T0);
    void *t = testhost_open(&ggl_plugin_entry, pairs, GGL_OK);
    assert_int_equal(put(t, "old", "v", 1, GGL_VERSION_ANY), GGL_OK);
    assert_int_equal(put(t, "old2", "v", 1, GGL_VERSION_ANY), GGL_OK);
    struct ggl_entry e = entry("old", "w", 2);
    e.expires_ms = host->now(host);
    assert_int_equal(vt->put(t, &e, GGL_VERSION_ANY), GGL_OK);
    e = entry("old2", "w", 2);
    e.expires_ms = host->now(host) - 1;
    assert_int_equal(vt->put(t, &e, GGL_VERSION_OLDER), GGL_OK);
    redisReply *r = raw(&server, 0, "EXISTS conf:old conf:old2");
    assert_int_equal(r->integer, 0);
    freeReplyObject(r);
    assert_int_equal(get(t, "old", NULL), GGL_NOTFOUND);
    vt->close(t);
}

/* A stopped (not dead) server: the call gives up after command_timeout_ms with RETRY. */
static void test_command_timeout_answers_retry(void **state)
{
    (void)state;
    struct redis_server own = {0};
    assert_int_equal(redis_server_start(&own, 0, NULL), 0);
    testhost_init(T0);
    static const char *p[] = {"port", NULL, "command_timeout_ms", "200", "backoff_min_ms", "10",
                              "backoff_max_ms", "10", NULL};
    p[1] = own.port_text;
    void *t = testhost_open(&ggl_plugin_entry, p, GGL_OK);
    assert_int_equal(kill(own.pid, SIGSTOP), 0);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    assert_int_equal(put(t, "k", "v", 1, GGL_VERSION_ANY), GGL_RETRY);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    long ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
    assert_true(ms >= 150 && ms < 2000);
    assert_reason("redis 127.0.0.1:");
    assert_int_equal(kill(own.pid, SIGCONT), 0);
    testhost_advance(10);
    assert_int_equal(put(t, "k", "v", 2, GGL_VERSION_ANY), GGL_OK);
    assert_int_equal(get(t, "k", "v"), GGL_OK);
    vt->close(t);
    redis_server_stop(&own);
}

static void test_malformed_value_is_an_error_not_a_crash(void **state)
{
    (void)state;
    testhost_init(T0);
    void *t = testhost_open(&ggl_plugin_entry, pairs, GGL_OK);
    raw_ok(&server, 0, "SET conf:bad hello");
    raw_ok(&server, 0, "SET conf:long xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
    assert_int_equal(get(t, "bad", NULL), GGL_ERROR);
    assert_reason("conf:bad: stored value has no ganglion header");
    assert_int_equal(get(t, "long", NULL), GGL_ERROR);
    assert_int_equal(put(t, "bad", "v", 1, GGL_VERSION_OLDER), GGL_ERROR);
    assert_reason("GGLFORMAT");
    assert_int_equal(vt->del(t, "bad", 3, 5), GGL_ERROR);
    assert_int_equal(vt->del(t, "bad", 3, GGL_VERSION_ANY), GGL_ERROR);
    uint64_t cursor = 0;
    int seen = 0;
    do /* scan passes over them */
        assert_int_equal(vt->scan(t, &cursor, 10, count_bad, &seen), GGL_OK);
    while (cursor);
    assert_int_equal(seen, 0);
    assert_int_equal(put(t, "bad", "fixed", 2, GGL_VERSION_ANY), GGL_OK);
    assert_int_equal(get(t, "bad", "fixed"), GGL_OK);
    vt->close(t);
}

static void test_db_and_prefix_isolate_instances(void **state)
{
    (void)state;
    testhost_init(T0);
    static const char *a_pairs[] = {"port", server.port_text, "prefix", "a:", NULL};
    static const char *b_pairs[] = {"port", server.port_text, "prefix", "b:", NULL};
    static const char *c_pairs[] = {"port", server.port_text, "prefix", "a:", "db", "3", NULL};
    void *a = testhost_open(&ggl_plugin_entry, a_pairs, GGL_OK);
    void *b = testhost_open(&ggl_plugin_entry, b_pairs, GGL_OK);
    void *c = testhost_open(&ggl_plugin_entry, c_pairs, GGL_OK);
    assert_int_equal(put(a, "k", "in a", 1, GGL_VERSION_ANY), GGL_OK);
    assert_int_equal(get(b, "k", NULL), GGL_NOTFOUND);
    assert_int_equal(get(c, "k", NULL), GGL_NOTFOUND);
    assert_int_equal(put(c, "k", "in c", 1, GGL_VERSION_ANY), GGL_OK);
    assert_int_equal(get(a, "k", "in a"), GGL_OK);
    assert_int_equal(get(c, "k", "in c"), GGL_OK);
    struct ggl_tier_stats st = {.size = sizeof st};
    assert_int_equal(vt->stats(b, &st), GGL_OK);
    assert_int_equal(st.entries, 0);
    assert_int_equal(vt->stats(a, &st), GGL_OK);
    assert_int_equal(st.entries, 1);
    redisReply *r = raw(&server, 3, "EXISTS a:k");
    assert_int_equal(r->integer, 1);
    freeReplyObject(r);
    vt->close(a);
    vt->close(b);
    vt->close(c);
    raw_ok(&server, 3, "FLUSHDB");
}

static void test_auth_with_password(void **state)
{
    (void)state;
    struct redis_server locked = {0};
    assert_int_equal(redis_server_start(&locked, 0, "s3cret"), 0);
    testhost_init(T0);
    static const char *no_pw[] = {"port", NULL, NULL};
    static const char *bad_pw[] = {"port", NULL, "password", "nope", NULL};
    static const char *good_pw[] = {"port", NULL, "password", "s3cret", NULL};
    no_pw[1] = bad_pw[1] = good_pw[1] = locked.port_text;
    testhost_open(&ggl_plugin_entry, no_pw, GGL_INVALID);
    assert_reason("NOAUTH");
    testhost_open(&ggl_plugin_entry, bad_pw, GGL_INVALID);
    assert_reason("AUTH");
    void *t = testhost_open(&ggl_plugin_entry, good_pw, GGL_OK);
    assert_int_equal(put(t, "k", "v", 1, GGL_VERSION_OLDER), GGL_OK);
    assert_int_equal(get(t, "k", "v"), GGL_OK);
    vt->close(t);
    redis_server_stop(&locked);
}

static void test_unix_socket(void **state)
{
    (void)state;
    testhost_init(T0);
    static const char *unix_pairs[] = {"unix_socket", server.socket, "port", "1", NULL};
    void *t = testhost_open(&ggl_plugin_entry, unix_pairs, GGL_OK);
    assert_int_equal(put(t, "over-unix", "v", 1, GGL_VERSION_ANY), GGL_OK);
    assert_int_equal(get(t, "over-unix", "v"), GGL_OK);
    assert_int_equal(vt->health(t), GGL_OK);
    vt->close(t);
}

static void test_script_reloaded_after_script_flush(void **state)
{
    (void)state;
    testhost_init(T0);
    void *t = testhost_open(&ggl_plugin_entry, pairs, GGL_OK);
    assert_int_equal(put(t, "k", "v1", 1, GGL_VERSION_OLDER), GGL_OK);
    raw_ok(&server, 0, "SCRIPT FLUSH");
    assert_int_equal(put(t, "k", "v2", 2, GGL_VERSION_OLDER), GGL_OK);
    raw_ok(&server, 0, "SCRIPT FLUSH");
    assert_int_equal(vt->del(t, "k", 1, 2), GGL_OK);
    assert_int_equal(get(t, "k", NULL), GGL_NOTFOUND);
    vt->close(t);
}

/* Kill the server under an open instance: calls answer RETRY at once (backoff on the
 * fake clock), then work again after a restart once the backoff has passed. */
static void test_reconnect_after_restart(void **state)
{
    (void)state;
    struct redis_server own = {0};
    assert_int_equal(redis_server_start(&own, 0, NULL), 0);
    testhost_init(T0);
    static const char *p[] = {"port", NULL, "backoff_min_ms", "100", "backoff_max_ms", "1000",
                              "command_timeout_ms", "500", NULL};
    p[1] = own.port_text;
    void *t = testhost_open(&ggl_plugin_entry, p, GGL_OK);
    assert_int_equal(put(t, "k", "before", 1, GGL_VERSION_ANY), GGL_OK);
    redis_server_kill(&own);
    assert_int_equal(put(t, "k", "during", 2, GGL_VERSION_ANY), GGL_RETRY);
    assert_reason("redis 127.0.0.1:");
    assert_int_equal(get(t, "k", NULL), GGL_RETRY); /* fails fast: no connect attempt */
    assert_reason("down, next attempt in");
    assert_int_equal(vt->health(t), GGL_RETRY);
    testhost_advance(1000);
    assert_int_equal(get(t, "k", NULL), GGL_RETRY); /* tried, refused, backs off again */
    assert_reason("connect");
    assert_int_equal(redis_server_start(&own, own.port, NULL), 0);
    testhost_advance(1000);
    assert_int_equal(vt->health(t), GGL_OK);
    assert_int_equal(get(t, "k", NULL), GGL_NOTFOUND); /* no persistence: a new server */
    assert_int_equal(put(t, "k", "after", 3, GGL_VERSION_OLDER), GGL_OK);
    assert_int_equal(get(t, "k", "after"), GGL_OK);
    vt->close(t);
    redis_server_stop(&own);
}

#define THREADS 4
#define LOOPS 3000

struct worker {
    void *tier;
    int id;
    _Atomic int *progress;
    int ok, retry, bad; /* read by the test thread after join */
};

/* Writes and reads its own keys; records every status instead of asserting. */
static void *worker_run(void *arg)
{
    struct worker *w = arg;
    char key[32];
    for (int i = 0; i < LOOPS; i++) {
        snprintf(key, sizeof key, "t%d-%d", w->id, i % 20);
        struct ggl_entry e = entry(key, key, (uint64_t)i + 1), out = {.size = sizeof out};
        enum ggl_status s = vt->put(w->tier, &e, GGL_VERSION_OLDER);
        enum ggl_status g = vt->get(w->tier, key, strlen(key), &out);
        if (g == GGL_OK)
            free(out.value);
        w->ok += s == GGL_OK;
        w->retry += s == GGL_RETRY;
        w->bad += (s != GGL_OK && s != GGL_RETRY) || (g != GGL_OK && g != GGL_RETRY && g != GGL_NOTFOUND);
        atomic_fetch_add(w->progress, 1);
    }
    return NULL;
}

/* Threads share the pool while the server dies under them: every call answers OK or
 * RETRY (never a crash or another status), and the instance works after a restart. */
static void test_threads_through_a_server_kill(void **state)
{
    (void)state;
    struct redis_server own = {0};
    assert_int_equal(redis_server_start(&own, 0, NULL), 0);
    testhost_init(T0);
    static const char *p[] = {"port", NULL, "backoff_min_ms", "10", "backoff_max_ms", "10", NULL};
    p[1] = own.port_text;
    void *t = testhost_open(&ggl_plugin_entry, p, GGL_OK);
    _Atomic int progress = 0;
    pthread_t th[THREADS];
    struct worker w[THREADS];
    for (int i = 0; i < THREADS; i++) {
        w[i] = (struct worker){.tier = t, .id = i, .progress = &progress};
        assert_int_equal(pthread_create(&th[i], NULL, worker_run, &w[i]), 0);
    }
    for (int i = 0; i < 500 && atomic_load(&progress) < 400; i++) /* bounded: 5 s */
        nanosleep(&(struct timespec){0, 10 * 1000 * 1000}, NULL);
    redis_server_kill(&own);
    int ok = 0, retry = 0;
    for (int i = 0; i < THREADS; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(w[i].bad, 0);
        ok += w[i].ok;
        retry += w[i].retry;
    }
    assert_true(ok >= 1 && retry >= 1);
    assert_int_equal(redis_server_start(&own, own.port, NULL), 0);
    testhost_advance(10);
    assert_int_equal(put(t, "after", "v", 1, GGL_VERSION_OLDER), GGL_OK);
    vt->close(t);
    redis_server_stop(&own);
}

static void test_unreachable_at_open_starts_degraded(void **state)
{
    (void)state;
    struct redis_server gone = {0};
    assert_int_equal(redis_server_start(&gone, 0, NULL), 0);
    redis_server_kill(&gone);
    testhost_init(T0);
    static const char *p[] = {"port", NULL, "backoff_min_ms", "10", "backoff_max_ms", "10", NULL};
    p[1] = gone.port_text;
    void *t = testhost_open(&ggl_plugin_entry, p, GGL_OK);
    assert_int_equal(get(t, "k", NULL), GGL_RETRY);
    assert_int_equal(redis_server_start(&gone, gone.port, NULL), 0);
    testhost_advance(10);
    assert_int_equal(put(t, "k", "v", 1, GGL_VERSION_OLDER), GGL_OK);
    vt->close(t);
    redis_server_stop(&gone);
}

static void test_bad_settings_refused(void **state)
{
    (void)state;
    testhost_init(T0);
    static const char *bad_port[] = {"port", "70000", NULL};
    testhost_open(&ggl_plugin_entry, bad_port, GGL_INVALID);
    assert_reason("port must be");
    static const char *bad_backoff[] = {"backoff_min_ms", "50", "backoff_max_ms", "10", NULL};
    testhost_open(&ggl_plugin_entry, bad_backoff, GGL_INVALID);
    assert_reason("backoff");
    static const char *bad_db[] = {"port", server.port_text, "db", "99999", NULL};
    testhost_open(&ggl_plugin_entry, bad_db, GGL_INVALID);
    assert_reason("SELECT");
}

int main(void)
{
    vt = ggl_plugin_entry.vtable;
    if (redis_server_start(&server, 0, NULL) != 0) {
        fprintf(stderr, "test_tier_redis: needs redis-server (scripts/deps.sh installs it)\n");
        return 1;
    }
    static const struct tier_fixture fixture = {&ggl_plugin_entry, pairs, flush_all, NULL};
    int failed = tier_conformance_run("tier/redis conformance", &fixture);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_redis_px_expires_the_key),
        cmocka_unit_test(test_batch_larger_than_a_window),
        cmocka_unit_test(test_awkward_bytes_arrive_exactly),
        cmocka_unit_test(test_wire_digits),
        cmocka_unit_test(test_expired_put_removes_the_key),
        cmocka_unit_test(test_command_timeout_answers_retry),
        cmocka_unit_test(test_malformed_value_is_an_error_not_a_crash),
        cmocka_unit_test(test_db_and_prefix_isolate_instances),
        cmocka_unit_test(test_auth_with_password),
        cmocka_unit_test(test_unix_socket),
        cmocka_unit_test(test_script_reloaded_after_script_flush),
        cmocka_unit_test(test_reconnect_after_restart),
        cmocka_unit_test(test_threads_through_a_server_kill),
        cmocka_unit_test(test_unreachable_at_open_starts_degraded),
        cmocka_unit_test(test_bad_settings_refused),
    };
    failed |= cmocka_run_group_tests(tests, NULL, NULL);
    redis_server_stop(&server);
    return failed;
}
