/* Integration: STM on a real redis-server that is killed (SIGKILL) while clients write
 * and then restarted.  The host keeps answering throughout, writes during the outage are
 * refused (never falsely acknowledged), and every write it acknowledged is readable
 * afterwards.  Redis runs with an fsync'd AOF so its own acknowledgements survive. */
#include "ggl-build.h"

#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"
#include "redisserver.h"

#define WRITERS 4
#define MAX_OPS 20000

static struct host h;
static _Atomic int acked_total, refused_total, stop;

struct writer {
    int id, n, errors;
    unsigned char *acked; /* acked[i]: "SET w<id>:<i>" got +OK */
};

static void *write_loop(void *arg)
{
    struct writer *w = arg;
    int fd = try_connect(h.sock);
    char cmd[64], line[256];
    if (fd < 0)
        return w->errors++, NULL;
    for (w->n = 0; w->n < MAX_OPS && !atomic_load(&stop); w->n++) {
        int len = snprintf(cmd, sizeof cmd, "SET w%d:%d %d\r\n", w->id, w->n, w->n);
        if (send(fd, cmd, (size_t)len, MSG_NOSIGNAL) != len || !read_line(fd, line, sizeof line)) {
            w->errors++;
            break;
        }
        if (strcmp(line, "+OK") == 0) {
            w->acked[w->n] = 1;
            atomic_fetch_add(&acked_total, 1);
        } else if (strncmp(line, "-BUSY", 5) == 0 || strncmp(line, "-ERR", 4) == 0) {
            atomic_fetch_add(&refused_total, 1); /* refused: the client knows it failed */
        } else {
            w->errors++;
        }
    }
    close(fd);
    return NULL;
}

/* Bounded wait for a counter to reach a value (the writers drive it). */
static void wait_count(_Atomic int *c, int at_least)
{
    for (int i = 0; i < 2000 && atomic_load(c) < at_least; i++)
        poll(NULL, 0, 10);
    assert_true(atomic_load(c) >= at_least);
}

static void expect_pong(void)
{
    int fd = client(&h);
    send_all(fd, "PING\r\n", 6);
    expect(fd, "+PONG\r\n");
    close(fd);
}

static void test_acknowledged_writes_survive_redis_kill(void **state)
{
    (void)state;
    struct redis_server rs = {.durable = 1};
    assert_int_equal(redis_server_start(&rs, 0, NULL), 0);
    char body[1024];
    snprintf(body, sizeof body,
             "plugin_dirs = [ \"%s\" ];\n"
             "backends = { stm = { plugin = \"redis\"; host = \"127.0.0.1\"; port = %d;"
             " connect_timeout_ms = 200; command_timeout_ms = 200; backoff_min_ms = 10;"
             " backoff_max_ms = 100; }; };\n"
             "tiers = { stm = \"stm\"; };\n"
             "memory = { breaker_threshold = 3; breaker_cooldown_ms = 50; };\n",
             BUILD_PLUGINDIR, rs.port);
    start_host_with(&h, NULL, body);

    pthread_t th[WRITERS];
    struct writer w[WRITERS];
    for (int i = 0; i < WRITERS; i++) {
        w[i] = (struct writer){i, 0, 0, calloc(MAX_OPS, 1)};
        assert_int_equal(pthread_create(&th[i], NULL, write_loop, &w[i]), 0);
    }
    wait_count(&acked_total, 200);
    redis_server_kill(&rs);
    int refused_before = atomic_load(&refused_total);
    wait_count(&refused_total, refused_before + 20); /* writes refused while it is down */
    for (int i = 0; i < 20; i++)
        expect_pong(); /* and the host keeps answering */
    assert_int_equal(redis_server_start(&rs, rs.port, NULL), 0);
    int acked_before = atomic_load(&acked_total);
    wait_count(&acked_total, acked_before + 200); /* writes work again */
    atomic_store(&stop, 1);
    for (int i = 0; i < WRITERS; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(w[i].errors, 0);
    }

    int fd = client(&h);
    char cmd[64], line[256], want[32];
    int checked = 0;
    for (int i = 0; i < WRITERS; i++) {
        for (int k = 0; k < w[i].n; k++) {
            if (!w[i].acked[k])
                continue;
            int len = snprintf(cmd, sizeof cmd, "GET w%d:%d\r\n", i, k);
            send_all(fd, cmd, (size_t)len);
            assert_true(read_line(fd, line, sizeof line));
            snprintf(want, sizeof want, "$%d", k < 10 ? 1 : k < 100 ? 2 : k < 1000 ? 3 : 4);
            assert_string_equal(line, want);
            assert_true(read_line(fd, line, sizeof line));
            if (atoi(line) != k)
                fail_msg("w%d:%d acknowledged but reads '%s'", i, k, line);
            checked++;
        }
        free(w[i].acked);
    }
    close(fd);
    assert_true(checked >= 400);
    stop_host(&h);
    redis_server_stop(&rs);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_acknowledged_writes_survive_redis_kill)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
