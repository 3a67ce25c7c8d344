/* Integration: hostile clients against the real ganglion.  Each case must be answered
 * or disconnected within BOUND_MS, grow the host's RSS by at most RSS_BOUND_KB, and a
 * bystander connection must be served meanwhile; each prints its time and RSS change
 * ("# hostile ..." lines in the test log).  Waits are bounded polls, never sleeps. */
#include "ggl-build.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"

#define BOUND_MS 3000          /* answered or disconnected by then (sanitizer builds too) */
#define BYSTANDER_MS 1000      /* a PING on another connection, meanwhile */
#ifdef __SANITIZE_THREAD__ /* the host is a TSan build too: its shadow memory grows with it */
#define RSS_BOUND_KB (8 * 64 * 1024)
#else
#define RSS_BOUND_KB (64 * 1024)
#endif
#define REQUEST_TIMEOUT_MS 400 /* request_timeout_ms of the shared host */

static struct host shared;
static int bystander;

static uint64_t now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000 + (uint64_t)t.tv_nsec / 1000000;
}

static long rss_kb(pid_t pid)
{
    char path[64], line[256];
    long kb = -1;
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
            break;
    fclose(f);
    assert_true(kb > 0);
    return kb;
}

/* The bystander's PING round trip, asserted under BYSTANDER_MS. */
static void bystander_served(void)
{
    uint64_t t0 = now_ms();
    send_all(bystander, "PING\r\n", 6);
    char got[8] = {0};
    assert_int_equal(read_n(bystander, got, 7, BYSTANDER_MS), 7);
    assert_string_equal(got, "+PONG\r\n");
    assert_true(now_ms() - t0 < BYSTANDER_MS);
}

struct bound {
    uint64_t t0;
    long rss0;
};

static void begin(struct bound *b)
{
    b->rss0 = rss_kb(shared.pid);
    b->t0 = now_ms();
}

static void end(const struct bound *b, const char *what)
{
    uint64_t took = now_ms() - b->t0;
    bystander_served();
    long grew = rss_kb(shared.pid) - b->rss0;
    printf("# hostile %-34s %5llu ms, host RSS %+6ld KiB\n", what, (unsigned long long)took, grew);
    assert_true(took <= BOUND_MS);
    assert_true(grew <= RSS_BOUND_KB);
}

/* One line (through '\n') into line[n]; its length, 0 at EOF or timeout. */
static size_t read_raw_line(int fd, char *line, size_t n)
{
    size_t k = 0;
    while (k < n - 1 && read_n(fd, line + k, 1, BOUND_MS) == 1 && line[k++] != '\n')
        ;
    line[k] = '\0';
    return k;
}

/* Send n bytes of a stream the host may cut short; returns 1 if it closed on us. */
static int send_until_closed(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
        if (k < 0)
            return errno == EPIPE || errno == ECONNRESET;
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

/* --- cases ------------------------------------------------------------------ */

static void test_malformed_resp_closes(void **state)
{
    (void)state;
    static const char *const bad[] = {"*abc\r\n", "*1\r\n$abc\r\n", "*1\r\n$-5\r\n",
                                      "*1\r\n\x01\x02\x03\r\n", "*1\r\n$3\r\nabcd\r\n\r\n",
                                      "*2\r\n$4\r\nECHO\r\n*1\r\n$1\r\nx\r\n"};
    struct bound b;
    begin(&b);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int fd = client(&shared);
        send_all(fd, bad[i], strlen(bad[i]));
        expect_error_then_eof(fd, "-ERR ");
        close(fd);
    }
    int cut = client(&shared); /* a request cut off by the client's close */
    sendf(cut, "*3\r\n$3\r\nSET\r\n$1\r\nk");
    close(cut);
    end(&b, "malformed RESP (6 kinds)");
}

static void test_oversized_bulk_strings_close(void **state)
{
    (void)state;
    size_t each = 3u << 20; /* two of these pass the 4 MiB max_request_bytes */
    char *req = malloc(2 * each + 64);
    size_t n = (size_t)sprintf(req, "*3\r\n$4\r\nECHO\r\n$%zu\r\n", each);
    memset(req + n, 'a', each);
    n += each;
    n += (size_t)sprintf(req + n, "\r\n$%zu\r\n", each);
    memset(req + n, 'b', each);
    n += each;
    struct bound b;
    begin(&b);
    int fd = client(&shared);
    send_until_closed(fd, req, n);
    expect_error_then_eof(fd, "-ERR request larger than");
    close(fd);
    free(req);
    end(&b, "oversized bulk strings (2 x 3 MiB)");
}

static void test_huge_array_headers(void **state)
{
    (void)state;
    struct bound b;
    begin(&b);
    int fd = client(&shared);
    sendf(fd, "*4097\r\n"); /* one over max_args */
    expect_error_then_eof(fd, "-ERR too many arguments");
    close(fd);
    fd = client(&shared); /* max_args itself is served */
    char *req = malloc(4096 * 8 + 16);
    size_t n = (size_t)sprintf(req, "*4096\r\n$4\r\nPING\r\n");
    for (int i = 1; i < 4096; i++)
        n += (size_t)sprintf(req + n, "$1\r\nx\r\n");
    send_all(fd, req, n);
    expect(fd, "$1\r\nx\r\n");
    close(fd);
    free(req);
    end(&b, "huge array headers (*4097, *4096)");
}

static void test_million_small_arguments(void **state)
{
    (void)state;
    struct host h;
    start_host(&h, "max_args = 1048576;");
    int by = client(&h);
    long rss0 = rss_kb(h.pid);
    size_t n = 0, count = 1000000;
    char *req = malloc(count * 7 + 64);
    n += (size_t)sprintf(req, "*%zu\r\n$4\r\nECHO\r\n", count);
    for (size_t i = 1; i < count; i++, n += 7)
        memcpy(req + n, "$1\r\na\r\n", 7);
    uint64_t t0 = now_ms();
    int fd = client(&h);
    int closed = send_until_closed(fd, req, n);
    char line[128];
    read_raw_line(fd, line, sizeof line);
    uint64_t took = now_ms() - t0;
    send_all(by, "PING\r\n", 6);
    expect(by, "+PONG\r\n");
    long grew = rss_kb(h.pid) - rss0;
    printf("# hostile %-34s %5llu ms, host RSS %+6ld KiB: %s", "a million small arguments",
           (unsigned long long)took, grew, line);
    /* 1 MB of argument bytes fits max_request_bytes (framing is not counted): parsed
     * whole, then refused by ECHO's arity. */
    assert_false(closed);
    assert_string_equal(line, "-ERR wrong number of arguments for 'ECHO' command\r\n");
    assert_true(took <= BOUND_MS);
    assert_true(grew <= RSS_BOUND_KB);
    close(fd);
    close(by);
    free(req);
    stop_host(&h);
}

static void test_slowloris_clients_time_out(void **state)
{
    (void)state;
    enum { SLOW = 50 };
    int fds[SLOW], closed_at[SLOW] = {0};
    struct bound b;
    begin(&b);
    for (int i = 0; i < SLOW; i++) {
        fds[i] = client(&shared);
        sendf(fds[i], "*2\r\n$4\r\nECHO\r\n$100\r\n");
    }
    int open = SLOW;
    for (int round = 0; open && round < 100; round++) { /* a byte each per 20 ms, bounded */
        bystander_served(); /* served while every slow client holds a request open */
        for (int i = 0; i < SLOW; i++) {
            if (closed_at[i])
                continue;
            struct pollfd p = {fds[i], POLLIN, 0};
            if (poll(&p, 1, 0) == 1) {
                expect_error_then_eof(fds[i], "-ERR request not complete within");
                closed_at[i] = (int)(now_ms() - b.t0) + 1;
                open--;
            } else {
                send(fds[i], "z", 1, MSG_NOSIGNAL);
            }
        }
        poll(NULL, 0, 20);
    }
    assert_int_equal(open, 0);
    for (int i = 0; i < SLOW; i++) {
        assert_true(closed_at[i] >= REQUEST_TIMEOUT_MS);
        assert_true(closed_at[i] <= REQUEST_TIMEOUT_MS * 2 + 500);
        close(fds[i]);
    }
    end(&b, "50 slowloris clients");
}

static void test_clients_that_never_read(void **state)
{
    (void)state;
    enum { LAZY = 20 };
    static char req[8192 + 64];
    int hdr = sprintf(req, "*2\r\n$4\r\nECHO\r\n$8192\r\n");
    memset(req + hdr, 'y', 8192);
    memcpy(req + hdr + 8192, "\r\n", 2);
    size_t one = (size_t)hdr + 8194;
    int fds[LAZY], open = LAZY;
    for (int i = 0; i < LAZY; i++) {
        fds[i] = client(&shared);
        fcntl(fds[i], F_SETFL, O_NONBLOCK);
    }
    struct bound b;
    begin(&b);
    for (int round = 0; open && round < 20000; round++) { /* bounded: 20000 x 8 KiB each */
        for (int i = 0; i < LAZY; i++) {
            if (fds[i] < 0)
                continue;
            ssize_t k = send(fds[i], req, one, MSG_NOSIGNAL);
            if (k < 0 && (errno == EPIPE || errno == ECONNRESET)) {
                close(fds[i]);
                fds[i] = -1;
                open--;
            } else if (k < 0) {
                struct pollfd p = {fds[i], POLLOUT, 0};
                poll(&p, 1, 10);
            }
        }
    }
    assert_int_equal(open, 0);
    end(&b, "20 clients that never read");
}

static void test_unknown_commands_answered(void **state)
{
    (void)state;
    enum { N = 10000 };
    char name[1001];
    memset(name, 'Q', 1000);
    name[1000] = '\0';
    char *req = malloc((size_t)N * 1002 + 1);
    for (int i = 0; i < N; i++)
        sprintf(req + (size_t)i * 1002, "%s\r\n", name);
    char got[100 * 128], want[128];
    snprintf(want, sizeof want, "-ERR unknown command '%.64s'\r\n", name); /* name cut at 64 */
    struct bound b;
    begin(&b);
    int fd = client(&shared);
    for (int batch = 0; batch < N / 100; batch++) { /* read as we go: output is bounded */
        send_all(fd, req + (size_t)batch * 100 * 1002, 100 * 1002);
        size_t w = strlen(want);
        assert_int_equal(read_n(fd, got, 100 * w, BOUND_MS), 100 * w);
        for (int i = 0; i < 100; i++)
            assert_memory_equal(got + (size_t)i * w, want, w);
    }
    close(fd);
    free(req);
    end(&b, "10000 unknown 1000-byte commands");
}

static void test_wrong_types_answered(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "MEM.PUT k v IMPORTANCE abc", "MEM.PUT k v IMPORTANCE 7", "MEM.PUT k v TTL -1x",
        "MEM.PUT k v TIER nosuch", "MEM.PUT k v NOSUCHOPTION", "MEM.GET k WITHNOTHING",
        "CONFIG SET a b", "DEBUG.SLEEP abc", "DEBUG.SLEEP -1", "PLUGIN.SWAP nosuch x",
        "AUTH a b c d"};
    struct bound b;
    begin(&b);
    int fd = client(&shared);
    char line[512];
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        sendf(fd, "%s\r\n", bad[i]);
        assert_true(read_raw_line(fd, line, sizeof line) > 0);
        printf("#   %-28s -> %s", bad[i], line);
        assert_true(!strncmp(line, "-ERR ", 5) || !strncmp(line, "-INVALID ", 9));
    }
    close(fd);
    end(&b, "wrong types and options (11)");
}

static void test_binary_and_empty_keys(void **state)
{
    (void)state;
    struct bound b;
    begin(&b);
    int fd = client(&shared);
    static const char req[] = "*3\r\n$3\r\nSET\r\n$4\r\n\xff\xfe\x00\x80\r\n$2\r\nv1\r\n"
                              "*2\r\n$3\r\nGET\r\n$4\r\n\xff\xfe\x00\x80\r\n"
                              "*3\r\n$3\r\nSET\r\n$0\r\n\r\n$2\r\nv2\r\n*2\r\n$3\r\nGET\r\n$0\r\n\r\n"
                              "*2\r\n$3\r\nDEL\r\n$0\r\n\r\n";
    send_all(fd, req, sizeof req - 1);
    char line[512];
    expect(fd, "+OK\r\n$2\r\nv1\r\n");
    read_raw_line(fd, line, sizeof line); /* the empty key: refused, or stored and read back */
    printf("#   SET \"\" v2 -> %s", line);
    if (line[0] == '+') {
        expect(fd, "$2\r\nv2\r\n:1\r\n");
    } else {
        assert_true(!strncmp(line, "-INVALID ", 9));
        read_raw_line(fd, line, sizeof line);
        assert_true(line[0] == '-' || !strcmp(line, "$-1\r\n"));
        read_raw_line(fd, line, sizeof line);
        assert_true(line[0] == '-' || !strcmp(line, ":0\r\n"));
    }
    close(fd);
    end(&b, "non-UTF-8 and empty keys");
}

static void test_huge_values(void **state)
{
    (void)state;
    size_t len = 3u << 20;
    char *req = malloc(len + 64), *got = malloc(len + 16);
    size_t n = (size_t)sprintf(req, "*3\r\n$3\r\nSET\r\n$3\r\nbig\r\n$%zu\r\n", len);
    for (size_t i = 0; i < len; i++)
        req[n + i] = (char)('a' + i % 26);
    memcpy(req + n + len, "\r\n", 2);
    struct host h; /* the default max_output_bytes (8 MiB): a 3 MiB reply fits */
    start_host_with(&h, "max_output_bytes = 8388608;",
                    "backends = { c = { plugin = \"cache\"; }; s = { plugin = \"mem\"; }; };\n"
                    "tiers = { cache = \"c\"; stm = \"s\"; };\n");
    int by = client(&h);
    long rss0 = rss_kb(h.pid);
    uint64_t t0 = now_ms();
    int fd = client(&h);
    send_all(fd, req, n + len + 2);
    expect(fd, "+OK\r\n");
    sendf(fd, "GET big\r\n");
    char hdr[32];
    snprintf(hdr, sizeof hdr, "$%zu\r\n", len);
    expect(fd, hdr);
    assert_int_equal(read_n(fd, got, len + 2, BOUND_MS), len + 2);
    assert_memory_equal(got, req + n, len);
    sendf(fd, "DEL big\r\n");
    expect(fd, ":1\r\n");
    uint64_t took = now_ms() - t0;
    send_all(by, "PING\r\n", 6);
    expect(by, "+PONG\r\n");
    long grew = rss_kb(h.pid) - rss0;
    printf("# hostile %-34s %5llu ms, host RSS %+6ld KiB\n", "a 3 MiB value stored and read",
           (unsigned long long)took, grew);
    assert_true(took <= BOUND_MS);
    assert_true(grew <= RSS_BOUND_KB);
    close(fd);
    close(by);
    free(req);
    free(got);
    stop_host(&h);
}

/* --- setup ------------------------------------------------------------------ */

static int group_setup(void **state)
{
    (void)state;
    signal(SIGPIPE, SIG_IGN);
    char extra[128];
    snprintf(extra, sizeof extra, "request_timeout_ms = %d; max_clients = 200;", REQUEST_TIMEOUT_MS);
    start_host_with(&shared, extra,
                    "backends = { c = { plugin = \"cache\"; }; s = { plugin = \"mem\"; }; };\n"
                    "tiers = { cache = \"c\"; stm = \"s\"; };\n");
    keep_host(&shared);
    bystander = client(&shared);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    close(bystander);
    kill(shared.pid, SIGTERM);
    int rc = wait_exit(shared.pid);
    cleanup_dir(&shared);
    return rc == 0 ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_malformed_resp_closes, kill_leftover_hosts),
        cmocka_unit_test_teardown(test_oversized_bulk_strings_close, kill_leftover_hosts),
        cmocka_unit_test_teardown(test_huge_array_headers, kill_leftover_hosts),
        cmocka_unit_test_teardown(test_million_small_arguments, kill_leftover_hosts),
        cmocka_unit_test_teardown(test_slowloris_clients_time_out, kill_leftover_hosts),
        cmocka_unit_test_teardown(test_clients_that_never_read, kill_leftover_hosts),
        cmocka_unit_test_teardown(test_unknown_commands_answered, kill_leftover_hosts),
        cmocka_unit_test_teardown(test_wrong_types_answered, kill_leftover_hosts),
        cmocka_unit_test_teardown(test_binary_and_empty_keys, kill_leftover_hosts),
        cmocka_unit_test_teardown(test_huge_values, kill_leftover_hosts),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
