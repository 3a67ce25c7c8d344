/* Integration: the memory commands on the real binary.  Replies byte for byte as Redis
 * gives them, read-your-writes in a pipeline mixing cache hits and worker replies, the
 * MEM.* options, binary-safe keys, many writers at once, and LTM surviving a restart.
 * The commands that do not need LTM run twice: with SQLite's LTM bound, where writes go
 * to the memory workers, and with in-process tiers only, where the I/O thread writes. */
#include "ggl-build.h"

#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"

#define BODY                                                                                  \
    "plugin_dirs = [ \"" BUILD_PLUGINDIR "\" ];\n"                                           \
    "backends = { c = { plugin = \"cache\"; }; s = { plugin = \"mem\"; };"                   \
    " i = { plugin = \"mem\"; }; l = { plugin = \"sqlite\"; path = \"%1$s/ltm.db\"; }; };\n" \
    "tiers = { cache = \"c\"; stm = \"s\"; im = \"i\"; ltm = \"l\"; };\n"

/* In-process tiers only: SET and DEL run on the I/O thread. */
#define BODY_IN_PROCESS                                                                       \
    "plugin_dirs = [ \"" BUILD_PLUGINDIR "\" ];\n"                                           \
    "backends = { c = { plugin = \"cache\"; }; s = { plugin = \"mem\"; };"                   \
    " i = { plugin = \"mem\"; }; };\n"                                                        \
    "tiers = { cache = \"c\"; stm = \"s\"; im = \"i\"; };\n"

static struct host shared;
static int in_process; /* the group running: shared started with BODY_IN_PROCESS */

/* One RESP multibulk request from argv (binary-safe lengths). */
static void request(int fd, int argc, const char *const *argv, const size_t *lens)
{
    char head[32];
    snprintf(head, sizeof head, "*%d\r\n", argc);
    send_all(fd, head, strlen(head));
    for (int i = 0; i < argc; i++) {
        snprintf(head, sizeof head, "$%zu\r\n", lens[i]);
        send_all(fd, head, strlen(head));
        send_all(fd, argv[i], lens[i]);
        send_all(fd, "\r\n", 2);
    }
}

static void test_replies_match_redis(void **state)
{
    (void)state;
    int fd = client(&shared);
    sendf(fd, "SET foo bar\r\n");
    expect(fd, "+OK\r\n");
    sendf(fd, "GET foo\r\n");
    expect(fd, "$3\r\nbar\r\n");
    sendf(fd, "GET missing\r\n");
    expect(fd, "$-1\r\n");
    sendf(fd, "DEL foo foo missing\r\n");
    expect(fd, ":1\r\n");
    sendf(fd, "GET foo\r\n");
    expect(fd, "$-1\r\n");
    sendf(fd, "MEM.GET foo\r\n");
    expect(fd, "$-1\r\n");
    sendf(fd, "GET a b\r\n");
    expect(fd, "-ERR wrong number of arguments for 'GET' command\r\n");
    close(fd);
}

/* Writes go to workers, hits are answered on the I/O thread: in one pipeline every
 * read must still see the writes before it, and replies keep request order. */
static void test_pipeline_reads_its_own_writes(void **state)
{
    (void)state;
    int fd = client(&shared);
    char pipeline[8192], want[8192];
    size_t n = 0, w = 0;
    for (int i = 0; i < 100; i++) {
        n += (size_t)snprintf(pipeline + n, sizeof pipeline - n,
                              "SET p v%d\r\nGET p\r\n%s", i, i % 10 == 9 ? "DEL p\r\nGET p\r\n" : "");
        w += (size_t)snprintf(want + w, sizeof want - w, "+OK\r\n$%d\r\nv%d\r\n%s",
                              i < 10 ? 2 : 3, i, i % 10 == 9 ? ":1\r\n$-1\r\n" : "");
    }
    send_all(fd, pipeline, n);
    expect(fd, want);
    close(fd);
}

static void test_mem_options_and_metadata(void **state)
{
    (void)state;
    int fd = client(&shared);
    sendf(fd, "MEM.PUT deep v1 TIER ltm IMPORTANCE 0.9\r\n");
    expect(fd, "+OK\r\n");
    sendf(fd, "MEM.GET deep WITHMETA\r\n");
    expect(fd, "*12\r\n$5\r\nvalue\r\n$2\r\nv1\r\n$4\r\ntier\r\n$3\r\nltm\r\n$7\r\nversion\r\n");
    char rest[256];
    size_t got = read_n(fd, rest, 200, 500); /* version, importance, accesses, expiry */
    assert_true(got > 0);
    rest[got] = '\0';
    assert_non_null(strstr(rest, "$10\r\nimportance\r\n$3\r\n0.9\r\n"));
    assert_non_null(strstr(rest, "$10\r\nexpires_ms\r\n$1\r\n0\r\n")); /* LTM keeps it */
    sendf(fd, "MEM.GET deep\r\n"); /* promoted: now from the cache */
    expect(fd, "$2\r\nv1\r\n");
    sendf(fd, "MEM.PUT t v TTL 0\r\n");
    expect(fd, "-INVALID TTL must be a positive number of milliseconds\r\n");
    sendf(fd, "MEM.PUT t v TIER disk\r\n");
    expect(fd, "-INVALID TIER must be one of cache, stm, im, ltm\r\n");
    sendf(fd, "MEM.PUT t v PIN PIN TTL 5 FOO\r\n");
    expect(fd, "-INVALID unexpected option 'FOO' (options: IMPORTANCE f, TTL ms, TIER t, PIN, each once)\r\n");
    sendf(fd, "MEM.GET t WITHMETA extra\r\n");
    expect(fd, "-ERR MEM.GET takes a key and optionally WITHMETA\r\n");
    close(fd);
}

static void test_binary_keys_and_values(void **state)
{
    (void)state;
    int fd = client(&shared);
    static const char key[] = "k\0\r\nz", val[] = "\0\0v\r\n\xff";
    const char *set[] = {"SET", key, val}, *get[] = {"GET", key};
    size_t set_lens[] = {3, sizeof key - 1, sizeof val - 1}, get_lens[] = {3, sizeof key - 1};
    request(fd, 3, set, set_lens);
    expect(fd, "+OK\r\n");
    request(fd, 2, get, get_lens);
    char want[64];
    int n = snprintf(want, sizeof want, "$%zu\r\n", sizeof val - 1);
    memcpy(want + n, val, sizeof val - 1);
    memcpy(want + n + sizeof val - 1, "\r\n", 3);
    char got[64];
    size_t len = (size_t)n + sizeof val - 1 + 2;
    assert_int_equal(read_n(fd, got, len, TIMEOUT_MS), len);
    assert_memory_equal(got, want, len);
    close(fd);
}

struct writer {
    int id, errors;
};

static void *write_keys(void *arg)
{
    struct writer *w = arg;
    int fd = try_connect(shared.sock);
    if (fd < 0) {
        w->errors++;
        return NULL;
    }
    char cmd[64], want[64], got[64];
    for (int i = 0; i < 200; i++) {
        int n = snprintf(cmd, sizeof cmd, "SET w%d:%d %d\r\n", w->id, i, i);
        if (send(fd, cmd, (size_t)n, MSG_NOSIGNAL) != n || read_n(fd, got, 5, TIMEOUT_MS) != 5 ||
            memcmp(got, "+OK\r\n", 5) != 0)
            w->errors++;
    }
    for (int i = 0; i < 200; i++) {
        int n = snprintf(cmd, sizeof cmd, "GET w%d:%d\r\n", w->id, i);
        int m = snprintf(want, sizeof want, "$%d\r\n%d\r\n", i < 10 ? 1 : i < 100 ? 2 : 3, i);
        if (send(fd, cmd, (size_t)n, MSG_NOSIGNAL) != n ||
            read_n(fd, got, (size_t)m, TIMEOUT_MS) != (size_t)m || memcmp(got, want, (size_t)m))
            w->errors++;
    }
    close(fd);
    return NULL;
}

static void test_twenty_writers_at_once(void **state)
{
    (void)state;
    pthread_t th[20];
    struct writer w[20];
    for (int i = 0; i < 20; i++) {
        w[i] = (struct writer){i, 0};
        assert_int_equal(pthread_create(&th[i], NULL, write_keys, &w[i]), 0);
    }
    for (int i = 0; i < 20; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(w[i].errors, 0);
    }
}

static void test_info_memory_and_stats(void **state)
{
    (void)state;
    int fd = client(&shared);
    sendf(fd, "MEM.STATS\r\n");
    char buf[4096];
    size_t n = read_n(fd, buf, sizeof buf - 1, 300);
    buf[n] = '\0';
    assert_non_null(strstr(buf, "slot_ltm:backend=tier/sqlite[l],breaker=closed"));
    assert_non_null(strstr(buf, "slot_cache:backend=tier/cache[c]"));
    sendf(fd, "INFO memory\r\n");
    n = read_n(fd, buf, sizeof buf - 1, 300);
    buf[n] = '\0';
    assert_non_null(strstr(buf, "memory_writes_total:"));
    assert_non_null(strstr(buf, "# Memory slots"));
    close(fd);
}

/* LTM is a file: what was acknowledged there is back after a restart. */
static void test_ltm_survives_restart(void **state)
{
    (void)state;
    struct host h;
    start_host_with(&h, NULL, BODY);
    int fd = client(&h);
    sendf(fd, "MEM.PUT keep forever TIER ltm\r\n");
    expect(fd, "+OK\r\n");
    close(fd);
    kill(h.pid, SIGTERM);
    assert_int_equal(wait_exit(h.pid), 0);
    unlink(h.sock);
    h.pid = spawn_host(&h);
    for (int waited = 0; (fd = try_connect(h.sock)) < 0 && waited < TIMEOUT_MS; waited += 10)
        poll(NULL, 0, 10);
    assert_true(fd >= 0);
    sendf(fd, "GET keep\r\n");
    expect(fd, "$7\r\nforever\r\n");
    close(fd);
    stop_host(&h);
}

/* With queue_writes, a write whose tier is down answers +QUEUED, reads see it, and it
 * lands once the tier is back; without it the client gets -BUSY. */
static void test_queued_write_lands_when_tier_returns(void **state)
{
    (void)state;
    struct host h;
    char down[160], buf[4096];
    start_host_with(&h, NULL,
                    "plugin_dirs = [ \"" TEST_PLUGINDIR "\", \"" BUILD_PLUGINDIR "\" ];\n"
                    "backends = { c = { plugin = \"cache\"; };"
                    " s = { plugin = \"flaky\"; fail_file = \"%1$s/down\"; }; };\n"
                    "tiers = { cache = \"c\"; stm = \"s\"; };\n"
                    "memory = { queue_writes = true; retry_ms = 10; breaker_threshold = 1;"
                    " breaker_cooldown_ms = 10; };\n");
    snprintf(down, sizeof down, "%s/down", h.dir);
    fclose(fopen(down, "w"));
    int fd = client(&h);
    sendf(fd, "SET q held\r\nGET q\r\n");
    expect(fd, "+QUEUED\r\n$4\r\nheld\r\n");
    unlink(down);
    int landed = 0;
    for (int i = 0; i < 500 && !landed; i++) { /* bounded: the host retries every 10 ms */
        sendf(fd, "INFO memory\r\n");
        size_t n = read_n(fd, buf, sizeof buf - 1, 200);
        buf[n] = '\0';
        landed = strstr(buf, "memory_pending_writes:0\r\n") != NULL;
        if (!landed)
            poll(NULL, 0, 10);
    }
    assert_true(landed);
    sendf(fd, "MEM.GET q\r\n");
    expect(fd, "$4\r\nheld\r\n");
    close(fd);
    stop_host(&h);
}

/* 10,000 entries written over the socket with mixed importance; one maintenance cycle
 * (MEM.MAINTAIN) moves exactly those the policy picks: with every entry past the minimum
 * age, score = 0.5 * importance + 0.2 * recency (~0.2) against the 0.3 threshold. */
static void test_maintenance_moves_what_policy_picks(void **state)
{
    (void)state;
    struct host h;
    start_host_with(&h, NULL,
                    "plugin_dirs = [ \"" BUILD_PLUGINDIR "\" ];\n"
                    "backends = { s = { plugin = \"mem\"; }; i = { plugin = \"mem\"; }; };\n"
                    "tiers = { stm = \"s\"; im = \"i\"; };\n"
                    "memory = { stm_ttl_ms = 600000; maintenance_interval_ms = 60000;"
                    " stm_min_age_ms = 1; };\n");
    int fd = client(&h);
    static const double importance[] = {0.0, 0.1, 0.5, 0.9};
    char *buf = malloc(1 << 20);
    size_t n = 0;
    for (int i = 0; i < 10000; i++)
        n += (size_t)snprintf(buf + n, (1 << 20) - n, "MEM.PUT e%d v IMPORTANCE %.1f\r\n", i,
                              importance[i % 4]);
    send_all(fd, buf, n);
    for (int i = 0; i < 10000; i++)
        expect(fd, "+OK\r\n");
    poll(NULL, 0, 5); /* every entry a few ms old: past stm_min_age_ms = 1 */
    sendf(fd, "MEM.MAINTAIN\r\n");
    size_t got = read_n(fd, buf, 200, TIMEOUT_MS);
    buf[got] = '\0';
    assert_non_null(strstr(buf, "moved_stm_im:5000\r\n"));
    char line[64];
    for (int base = 0; base < 10000; base += 100) { /* chunks: the output limit is 64 KiB */
        n = 0;
        for (int i = base; i < base + 100; i++)
            n += (size_t)snprintf(buf + n, (1 << 20) - n, "MEM.GET e%d WITHMETA\r\n", i);
        send_all(fd, buf, n);
        for (int i = base; i < base + 100; i++) /* *12, then 12 one-line bulks: tier is line 8 */
            for (int l = 0; l < 25; l++) {
                size_t k = 0;
                while (k < sizeof line - 1 && read_n(fd, line + k, 1, TIMEOUT_MS) == 1 &&
                       line[k] != '\n')
                    k++;
                line[k] = '\0';
                if (l == 8 && strcmp(line, importance[i % 4] >= 0.5 ? "im\r" : "stm\r") != 0)
                    fail_msg("e%d (importance %.1f) is in '%s'", i, importance[i % 4], line);
            }
    }
    free(buf);
    close(fd);
    stop_host(&h);
}

/* PLUGIN.SWAP over the socket: STM moves from one mem instance to another with
 * MIGRATE while a pipeline keeps writing; every acknowledged value reads back. */
static void test_swap_with_migration_over_socket(void **state)
{
    (void)state;
    struct host h;
    start_host_with(&h, NULL,
                    "plugin_dirs = [ \"" BUILD_PLUGINDIR "\" ];\n"
                    "backends = { a = { plugin = \"mem\"; }; b = { plugin = \"mem\"; }; };\n"
                    "tiers = { stm = \"a\"; };\n");
    int fd = client(&h);
    char *buf = malloc(1 << 16);
    size_t n = 0;
    for (int i = 0; i < 1000; i++)
        n += (size_t)snprintf(buf + n, (1 << 16) - n, "SET s%d %d\r\n", i, i);
    send_all(fd, buf, n);
    for (int i = 0; i < 1000; i++)
        expect(fd, "+OK\r\n");
    /* Writes of new values pipelined behind the swap, in one go. */
    n = (size_t)snprintf(buf, 1 << 16, "PLUGIN.SWAP stm b MIGRATE\r\n");
    for (int i = 0; i < 500; i++)
        n += (size_t)snprintf(buf + n, (1 << 16) - n, "SET s%d new%d\r\n", i, i);
    send_all(fd, buf, n);
    expect(fd, "+OK\r\n");
    for (int i = 0; i < 500; i++)
        expect(fd, "+OK\r\n");
    char want[64];
    for (int i = 0; i < 1000; i++) {
        sendf(fd, "GET s%d\r\n", i);
        if (i < 500)
            snprintf(want, sizeof want, "$%zu\r\nnew%d\r\n", strlen("new") + (i < 10 ? 1 : i < 100 ? 2 : 3), i);
        else
            snprintf(want, sizeof want, "$3\r\n%d\r\n", i);
        expect(fd, want);
    }
    sendf(fd, "PLUGIN.SWAP stm nosuch\r\n");
    expect(fd, "-INVALID 'nosuch' is not an open backend instance\r\n");
    free(buf);
    close(fd);
    stop_host(&h);
}

/* memory_queued_total from INFO memory: requests handed to the memory workers. */
static long queued_total(int fd)
{
    char buf[8192];
    sendf(fd, "INFO memory\r\n");
    size_t n = read_n(fd, buf, sizeof buf - 1, 300);
    buf[n] = '\0';
    const char *p = strstr(buf, "memory_queued_total:");
    assert_non_null(p);
    return atol(p + strlen("memory_queued_total:"));
}

/* Where writes run: with a blocking tier bound (SQLite's LTM) on the memory workers;
 * with in-process tiers only on the I/O thread, unless they follow a request of their
 * connection that is still running (then queued behind it, in order). */
static void test_where_writes_run(void **state)
{
    (void)state;
    int fd = client(&shared);
    long before = queued_total(fd);
    sendf(fd, "SET where 1\r\n");
    expect(fd, "+OK\r\n");
    sendf(fd, "DEL where\r\n");
    expect(fd, ":1\r\n");
    long after = queued_total(fd);
    if (in_process)
        assert_int_equal(after, before);
    else
        assert_int_equal(after, before + 2);
    /* behind a MEM.MAINTAIN (run on a worker), pipelined writes still answer in order */
    sendf(fd, "MEM.MAINTAIN\r\nSET where 2\r\nGET where\r\nDEL where\r\nGET where\r\n");
    char buf[1024];
    size_t n = read_n(fd, buf, sizeof buf - 1, 2000);
    buf[n] = '\0';
    const char *tail = strstr(buf, "+OK\r\n$1\r\n2\r\n:1\r\n$-1\r\n");
    assert_non_null(tail);
    assert_string_equal(tail, "+OK\r\n$1\r\n2\r\n:1\r\n$-1\r\n");
    close(fd);
}

/* A tier refusing a write for now (a full STM) is answered the same on either path:
 * -BUSY with its reason, and nothing written; the I/O thread does not retry it on a
 * worker (that would count the failure twice in the slot's breaker). */
static void test_a_refused_write_is_busy_on_either_path(void **state)
{
    (void)state;
    static const char *const ltm[] = {"", " l = { plugin = \"sqlite\"; path = \"%1$s/ltm.db\"; };"};
    for (int worker = 0; worker < 2; worker++) {
        struct host h;
        char body[1024], buf[4096];
        snprintf(body, sizeof body,
                 "plugin_dirs = [ \"" BUILD_PLUGINDIR "\" ];\n"
                 "backends = { c = { plugin = \"cache\"; }; s = { plugin = \"mem\"; max_entries = 1; };%s };\n"
                 "tiers = { cache = \"c\"; stm = \"s\";%s };\n"
                 "memory = { breaker_threshold = 2; };\n",
                 ltm[worker], worker ? " ltm = \"l\";" : "");
        start_host_with(&h, NULL, body);
        int fd = client(&h);
        long before = queued_total(fd);
        sendf(fd, "SET a 1\r\n");
        expect(fd, "+OK\r\n");
        sendf(fd, "SET b 1\r\n");
        expect(fd, "-BUSY full: 1 entries\r\n");
        sendf(fd, "GET b\r\n");
        expect(fd, "$-1\r\n");
        assert_int_equal(queued_total(fd) - before, worker ? 3 : 1); /* GET b: a miss */
        sendf(fd, "MEM.STATS\r\n");
        size_t n = read_n(fd, buf, sizeof buf - 1, 300);
        buf[n] = '\0';
        /* one failure counted, of the breaker's 2 */
        assert_non_null(strstr(buf, "slot_stm:backend=tier/mem[s],breaker=closed,in_flight=0,"
                                    "refused_busy=0,refused_open=0,errors=1,"));
        close(fd);
        stop_host(&h);
    }
}

static int start_shared(int in_process_only)
{
    signal(SIGPIPE, SIG_IGN);
    in_process = in_process_only;
    start_host_with(&shared, NULL, in_process_only ? BODY_IN_PROCESS : BODY);
    return 0;
}

static int group_setup(void **state) { (void)state; return start_shared(0); }
static int group_setup_in_process(void **state) { (void)state; return start_shared(1); }

static int group_teardown(void **state)
{
    (void)state;
    stop_host(&shared);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_replies_match_redis),
        cmocka_unit_test(test_pipeline_reads_its_own_writes),
        cmocka_unit_test(test_mem_options_and_metadata),
        cmocka_unit_test(test_binary_keys_and_values),
        cmocka_unit_test(test_twenty_writers_at_once),
        cmocka_unit_test(test_where_writes_run),
        cmocka_unit_test(test_info_memory_and_stats),
        cmocka_unit_test(test_ltm_survives_restart),
        cmocka_unit_test(test_queued_write_lands_when_tier_returns),
        cmocka_unit_test(test_maintenance_moves_what_policy_picks),
        cmocka_unit_test(test_swap_with_migration_over_socket),
        cmocka_unit_test(test_a_refused_write_is_busy_on_either_path),
    };
    const struct CMUnitTest in_process_tests[] = {
        cmocka_unit_test(test_replies_match_redis),
        cmocka_unit_test(test_pipeline_reads_its_own_writes),
        cmocka_unit_test(test_binary_keys_and_values),
        cmocka_unit_test(test_twenty_writers_at_once),
        cmocka_unit_test(test_where_writes_run),
    };
    int failed = cmocka_run_group_tests(tests, group_setup, group_teardown);
    return failed + cmocka_run_group_tests(in_process_tests, group_setup_in_process, group_teardown);
}
