/* Integration: the real ganglion on a temporary unix socket, driven with raw RESP —
 * ordering, many clients, hostile input, slow readers, AUTH, SHUTDOWN and SIGTERM.
 * Waits are bounded polls on sockets and on the child, never sleeps. */
#include "ggl-build.h"

#include <errno.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"

static struct host shared; /* the server most tests talk to */

/* --- tests: shared server ---------------------------------------------------- */

static void test_socket_is_private(void **state)
{
    (void)state;
    struct stat st;
    assert_int_equal(stat(shared.sock, &st), 0);
    assert_true(S_ISSOCK(st.st_mode));
    assert_int_equal(st.st_mode & 0777, 0600);
}

static void test_ping_inline_and_multibulk(void **state)
{
    (void)state;
    int fd = client(&shared);
    send_all(fd, "PING\r\n", 6);
    expect(fd, "+PONG\r\n");
    sendf(fd, "*1\r\n$4\r\nPING\r\n");
    expect(fd, "+PONG\r\n");
    sendf(fd, "ECHO  hello\tworld\n\r\n*2\r\n$4\r\nECHO\r\n$3\r\nabc\r\nPING\r\n");
    expect(fd, "-ERR wrong number of arguments for 'ECHO' command\r\n$3\r\nabc\r\n+PONG\r\n");
    close(fd);
}

static void test_pipelined_replies_in_order(void **state)
{
    (void)state;
    int fd = client(&shared);
    char *req = malloc(1000 * 40), *want = malloc(1000 * 40);
    size_t rn = 0, wn = 0;
    for (int i = 0; i < 1000; i++) {
        char v[16];
        int k = snprintf(v, sizeof v, "v%d", i);
        rn += (size_t)sprintf(req + rn, "*2\r\n$4\r\nECHO\r\n$%d\r\n%s\r\n", k, v);
        wn += (size_t)sprintf(want + wn, "$%d\r\n%s\r\n", k, v);
    }
    send_all(fd, req, rn);
    want[wn] = '\0';
    expect(fd, want);
    free(req);
    free(want);
    close(fd);
}

static void test_slow_request_holds_later_replies(void **state)
{
    (void)state;
    int a = client(&shared), b = client(&shared);
    sendf(a, "*2\r\n$11\r\nDEBUG.SLEEP\r\n$3\r\n300\r\n*1\r\n$4\r\nPING\r\nECHO later\r\n");
    send_all(b, "PING\r\n", 6); /* another client is served meanwhile */
    expect(b, "+PONG\r\n");
    char c;
    assert_int_equal(read_n(a, &c, 1, 50), 0); /* PING finished first but must wait */
    expect(a, "+OK\r\n+PONG\r\n$5\r\nlater\r\n");
    close(a);
    close(b);
}

static void test_hundred_concurrent_clients(void **state)
{
    (void)state;
    int fds[100];
    for (int i = 0; i < 100; i++)
        fds[i] = client(&shared);
    for (int i = 0; i < 100; i++)
        sendf(fds[i], "*2\r\n$4\r\nECHO\r\n$8\r\nclient%02d\r\n", i);
    for (int i = 99; i >= 0; i--) {
        char want[32];
        snprintf(want, sizeof want, "$8\r\nclient%02d\r\n", i);
        expect(fds[i], want);
        close(fds[i]);
    }
}

static void test_oversized_bulk_length_closes(void **state)
{
    (void)state;
    int fd = client(&shared);
    sendf(fd, "*2\r\n$4\r\nECHO\r\n$99999999999\r\n");
    expect_error_then_eof(fd, "-ERR request larger than");
    close(fd);
    assert_still_serving(&shared);
}

static void test_huge_array_header_closes(void **state)
{
    (void)state;
    int fd = client(&shared);
    sendf(fd, "*2147483647\r\n");
    expect_error_then_eof(fd, "-ERR too many arguments");
    close(fd);
    assert_still_serving(&shared);
}

static void test_non_bulk_requests_close(void **state)
{
    (void)state;
    static const char *const bad[] = {"*1\r\n:5\r\n", "*-1\r\n", "*1\r\n$-1\r\n",
                                      "*1\r\n+PING\r\n", "*2\r\n*1\r\n$1\r\na\r\n"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int fd = client(&shared);
        sendf(fd, "PING\r\n%s", bad[i]);
        expect(fd, "+PONG\r\n");
        expect_error_then_eof(fd, "-ERR ");
        close(fd);
    }
    assert_still_serving(&shared);
}

static void test_endless_inline_line_closes(void **state)
{
    (void)state;
    int fd = client(&shared);
    char chunk[4096];
    memset(chunk, 'x', sizeof chunk);
    for (int i = 0; i < 20; i++) /* 80 KiB without a newline, over the 64 KiB line cap */
        if (send(fd, chunk, sizeof chunk, MSG_NOSIGNAL) <= 0)
            break;
    expect_error_then_eof(fd, "-ERR inline request longer");
    close(fd);
    assert_still_serving(&shared);
}

static void test_unknown_command_and_arity(void **state)
{
    (void)state;
    int fd = client(&shared);
    sendf(fd, "NOSUCH a b\r\n*1\r\n$4\r\nECHO\r\nDEBUG.SLEEP\r\n");
    expect(fd, "-ERR unknown command 'NOSUCH'\r\n"
               "-ERR wrong number of arguments for 'ECHO' command\r\n"
               "-ERR wrong number of arguments for 'DEBUG.SLEEP' command\r\n");
    close(fd);
}

static void test_config_get_answers_arrays(void **state)
{
    (void)state;
    int fd = client(&shared);
    sendf(fd, "CONFIG GET save\r\nCONFIG GET appendonly\r\nCONFIG GET nothing\r\n");
    expect(fd, "*2\r\n$4\r\nsave\r\n$0\r\n\r\n*2\r\n$10\r\nappendonly\r\n$2\r\nno\r\n*0\r\n");
    close(fd);
}

/* Read one bulk reply whole (INFO). */
static char *read_bulk(int fd)
{
    char hdr[32] = {0};
    size_t n = 0;
    while (n < sizeof hdr - 1 && read_n(fd, hdr + n, 1, TIMEOUT_MS) == 1 && hdr[n] != '\n')
        n++;
    assert_int_equal(hdr[0], '$');
    size_t len = (size_t)atol(hdr + 1);
    char *body = calloc(1, len + 3);
    assert_int_equal(read_n(fd, body, len + 2, TIMEOUT_MS), len + 2);
    body[len] = '\0';
    return body;
}

static char *info(const struct host *h, const char *section)
{
    int fd = client(h);
    sendf(fd, "INFO %s\r\n", section);
    char *text = read_bulk(fd);
    close(fd);
    return text;
}

static void test_info_sections_and_plugin_list(void **state)
{
    (void)state;
    char *all = info(&shared, "");
    assert_non_null(strstr(all, "# Server\r\n"));
    assert_non_null(strstr(all, "# Control\r\ncontrol_clients:"));
    free(all);
    char *ctl = info(&shared, "control");
    assert_null(strstr(ctl, "# Server"));
    assert_non_null(strstr(ctl, "control_protocol_errors:"));
    free(ctl);
    int fd = client(&shared);
    sendf(fd, "PLUGIN.LIST\r\n");
    expect(fd, "*0\r\n"); /* this config declares no instances */
    close(fd);
}

static void test_client_that_never_reads_is_disconnected(void **state)
{
    (void)state;
    int fd = client(&shared);
    fcntl(fd, F_SETFL, O_NONBLOCK);
    static char req[8192 + 64];
    int hdr = sprintf(req, "*2\r\n$4\r\nECHO\r\n$8192\r\n");
    memset(req + hdr, 'y', 8192);
    memcpy(req + hdr + 8192, "\r\n", 2);
    size_t one = (size_t)hdr + 8194, sent = 0;
    int closed = 0;
    while (!closed && sent < (64u << 20)) { /* bounded: 64 MiB */
        ssize_t k = send(fd, req, one, MSG_NOSIGNAL);
        if (k > 0) {
            sent += (size_t)k; /* a partial send leaves the stream misaligned; fine here */
            continue;
        }
        if (errno == EPIPE || errno == ECONNRESET)
            closed = 1;
        else if (errno == EAGAIN) {
            struct pollfd p = {fd, POLLOUT, 0};
            int r = poll(&p, 1, TIMEOUT_MS);
            assert_true(r == 1);
            if (p.revents & (POLLHUP | POLLERR))
                closed = 1;
        } else
            fail_msg("send: %s", strerror(errno));
    }
    assert_true(closed);
    close(fd);
    assert_still_serving(&shared);
    char *text = info(&shared, "control");
    assert_null(strstr(text, "control_output_limit:0\r\n"));
    free(text);
}

/* --- tests: their own server ---------------------------------------------- */

static void test_auth_required_when_configured(void **state)
{
    (void)state;
    struct host h;
    start_host(&h, "password = \"s3cret\";");
    int fd = client(&h);
    sendf(fd, "PING\r\nAUTH wrong\r\nPING\r\nAUTH s3cret\r\nPING\r\n");
    expect(fd, "-NOAUTH Authentication required.\r\n"
               "-WRONGPASS invalid username-password pair\r\n"
               "-NOAUTH Authentication required.\r\n+OK\r\n+PONG\r\n");
    close(fd);
    stop_host(&h);
}

/* Is the worker running DEBUG.SLEEP yet?  (INFO counts requests picked up.) */
static int worker_started(const struct host *h)
{
    char *text = info(h, "control");
    int started = strstr(text, "control_worker_wait_seconds:count=1,") != NULL;
    free(text);
    return started;
}

static void test_full_worker_queue_answers_busy_in_order(void **state)
{
    (void)state;
    struct host h;
    start_host(&h, "workers = 1; worker_queue = 1;");
    int a = client(&h), b = client(&h);
    sendf(a, "*2\r\n$11\r\nDEBUG.SLEEP\r\n$3\r\n300\r\n");
    for (int i = 0; i < 1000 && !worker_started(&h); i++)
        poll(NULL, 0, 5);
    /* The worker is busy: the first waits in the queue, the second finds it full. */
    sendf(b, "DEBUG.SLEEP 1\r\nDEBUG.SLEEP 1\r\nPING\r\n");
    expect(b, "+OK\r\n-BUSY too many commands waiting for a worker\r\n+PONG\r\n");
    expect(a, "+OK\r\n");
    send_all(b, "DEBUG.SLEEP 1\r\n", 15); /* and the queue works again */
    expect(b, "+OK\r\n");
    close(a);
    close(b);
    stop_host(&h);
}

static void test_sigterm_finishes_inflight_request(void **state)
{
    (void)state;
    struct host h;
    start_host(&h, NULL);
    int fd = client(&h);
    sendf(fd, "*2\r\n$11\r\nDEBUG.SLEEP\r\n$3\r\n300\r\n");
    for (int i = 0; i < 1000 && !worker_started(&h); i++)
        poll(NULL, 0, 5);
    kill(h.pid, SIGTERM);
    expect(fd, "+OK\r\n");
    char c;
    assert_int_equal(read_n(fd, &c, 1, TIMEOUT_MS), 0);
    close(fd);
    assert_int_equal(wait_exit(h.pid), 0);
    cleanup_dir(&h);
}

static void test_shutdown_command_exits_zero(void **state)
{
    (void)state;
    struct host h;
    start_host(&h, NULL);
    int fd = client(&h);
    sendf(fd, "SHUTDOWN\r\n");
    expect(fd, "+OK\r\n");
    close(fd);
    assert_int_equal(wait_exit(h.pid), 0);
    struct stat st;
    assert_int_not_equal(stat(h.sock, &st), 0); /* the socket file is removed */
    cleanup_dir(&h);
}

static void test_tcp_loopback_and_client_limit(void **state)
{
    (void)state;
    struct host h;
    char extra[128];
    int port = free_port();
    snprintf(extra, sizeof extra, "tcp_port = %d; max_clients = 2;", port);
    start_host(&h, extra);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int t = socket(AF_INET, SOCK_STREAM, 0);
    assert_int_equal(connect(t, (struct sockaddr *)&sa, sizeof sa), 0);
    send_all(t, "PING\r\n", 6);
    expect(t, "+PONG\r\n");
    int u = client(&h); /* second client: fine */
    send_all(u, "PING\r\n", 6);
    expect(u, "+PONG\r\n");
    int third = client(&h);
    expect_error_then_eof(third, "-ERR max number of clients reached");
    close(third);
    close(u);
    close(t);
    stop_host(&h);
}

static void test_world_writable_directory_refused(void **state)
{
    (void)state;
    struct host h;
    snprintf(h.dir, sizeof h.dir, "/tmp/ggl-control-XXXXXX");
    assert_non_null(mkdtemp(h.dir));
    chmod(h.dir, 0777);
    snprintf(h.sock, sizeof h.sock, "%s/ctl.sock", h.dir);
    snprintf(h.conf, sizeof h.conf, "%s/ganglion.conf", h.dir);
    write_config(&h, NULL, NULL);
    h.pid = spawn_host(&h);
    assert_int_equal(wait_exit(h.pid), 1);
    struct stat st;
    assert_int_not_equal(stat(h.sock, &st), 0);
    cleanup_dir(&h);
}

static int group_setup(void **state)
{
    (void)state;
    signal(SIGPIPE, SIG_IGN);
    start_host(&shared, NULL);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    kill(shared.pid, SIGTERM);
    int rc = wait_exit(shared.pid);
    cleanup_dir(&shared);
    return rc == 0 ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_socket_is_private),
        cmocka_unit_test(test_ping_inline_and_multibulk),
        cmocka_unit_test(test_pipelined_replies_in_order),
        cmocka_unit_test(test_slow_request_holds_later_replies),
        cmocka_unit_test(test_hundred_concurrent_clients),
        cmocka_unit_test(test_oversized_bulk_length_closes),
        cmocka_unit_test(test_huge_array_header_closes),
        cmocka_unit_test(test_non_bulk_requests_close),
        cmocka_unit_test(test_endless_inline_line_closes),
        cmocka_unit_test(test_unknown_command_and_arity),
        cmocka_unit_test(test_config_get_answers_arrays),
        cmocka_unit_test(test_info_sections_and_plugin_list),
        cmocka_unit_test(test_client_that_never_reads_is_disconnected),
        cmocka_unit_test(test_auth_required_when_configured),
        cmocka_unit_test(test_full_worker_queue_answers_busy_in_order),
        cmocka_unit_test(test_sigterm_finishes_inflight_request),
        cmocka_unit_test(test_shutdown_command_exits_zero),
        cmocka_unit_test(test_tcp_loopback_and_client_limit),
        cmocka_unit_test(test_world_writable_directory_refused),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
