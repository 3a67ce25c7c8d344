/* The integration harness: the real ganglion started on a temporary unix socket
 * (posix_spawn), raw RESP over it, bounded waits on sockets and on the child (never
 * sleeps), and a clean stop checked for exit status 0. */
#include "ggl-build.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"


extern char **environ;



/* --- the child ----------------------------------------------------------- */

void write_config(struct host *h, const char *extra, const char *body)
{
    FILE *f = fopen(h->conf, "w");
    assert_non_null(f);
    const char *out = extra && strstr(extra, "max_output_bytes") ? "" : "max_output_bytes = 65536;";
    fprintf(f, "log_level = \"warn\";\ncontrol = { unix = \"%s\"; debug_commands = true;\n"
               "  %s shutdown_deadline_ms = 5000; %s };\n",
            h->sock, out, extra ? extra : "");
    if (body)
        fprintf(f, body, h->dir);
    fclose(f);
}

/* Hosts started and not yet reaped: a test that fails half-way leaves one running. */
static pid_t live[64];
static size_t n_live;

static void forget_host(pid_t pid)
{
    for (size_t i = 0; i < n_live; i++)
        if (live[i] == pid)
            live[i] = live[--n_live];
}

void keep_host(const struct host *h) { forget_host(h->pid); }

int kill_leftover_hosts(void **state)
{
    (void)state;
    while (n_live) {
        pid_t pid = live[--n_live];
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
    }
    return 0;
}

pid_t spawn_host(struct host *h)
{
    char bin[512];
    snprintf(bin, sizeof bin, "%s/host/ganglion", getenv("top_builddir") ? getenv("top_builddir") : ".");
    char *argv[] = {bin, "-c", h->conf, NULL};
    pid_t pid;
    assert_int_equal(posix_spawn(&pid, bin, NULL, NULL, argv, environ), 0);
    if (n_live < sizeof live / sizeof live[0])
        live[n_live++] = pid;
    return pid;
}

int try_connect(const char *path)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0)
        return fd;
    if (fd >= 0)
        close(fd);
    return -1;
}

/* Exit status of the child, waiting at most TIMEOUT_MS; -1 if it is still running. */
int wait_exit(pid_t pid)
{
    for (int waited = 0; waited < TIMEOUT_MS; waited += 10) {
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid) {
            forget_host(pid);
            return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        }
        poll(NULL, 0, 10);
    }
    return -1;
}

void start_host_with(struct host *h, const char *extra, const char *body)
{
    snprintf(h->dir, sizeof h->dir, "/tmp/ggl-control-XXXXXX");
    assert_non_null(mkdtemp(h->dir));
    snprintf(h->sock, sizeof h->sock, "%s/ctl.sock", h->dir);
    snprintf(h->conf, sizeof h->conf, "%s/ganglion.conf", h->dir);
    write_config(h, extra, body);
    h->pid = spawn_host(h);
    for (int waited = 0; waited < TIMEOUT_MS; waited += 10) { /* bounded readiness poll */
        int fd = try_connect(h->sock);
        if (fd >= 0) {
            close(fd);
            return;
        }
        assert_int_equal(waitpid(h->pid, NULL, WNOHANG), 0);
        poll(NULL, 0, 10);
    }
    fail_msg("ganglion did not open %s", h->sock);
}

void start_host(struct host *h, const char *extra) { start_host_with(h, extra, NULL); }

void cleanup_dir(struct host *h)
{
    DIR *d = opendir(h->dir); /* the config, the socket, and whatever backends wrote */
    for (struct dirent *e; d && (e = readdir(d));) {
        char p[sizeof h->dir + 260];
        snprintf(p, sizeof p, "%s/%s", h->dir, e->d_name);
        if (e->d_name[0] != '.')
            unlink(p);
    }
    if (d)
        closedir(d);
    rmdir(h->dir);
}

void stop_host(struct host *h)
{
    kill(h->pid, SIGTERM);
    assert_int_equal(wait_exit(h->pid), 0);
    cleanup_dir(h);
}

/* A loopback port free right now (the host binds it a moment later). */
int free_port(void)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof sa;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    close(fd);
    return ntohs(sa.sin_port);
}

/* --- raw RESP --------------------------------------------------------------- */

int client(const struct host *h)
{
    int fd = try_connect(h->sock);
    assert_true(fd >= 0);
    return fd;
}

void send_all(int fd, const void *p, size_t n)
{
    const char *s = p;
    while (n) {
        ssize_t k = send(fd, s, n, MSG_NOSIGNAL);
        assert_true(k > 0);
        s += k;
        n -= (size_t)k;
    }
}

void sendf(int fd, const char *fmt, ...)
{
    char tmp[4096];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    send_all(fd, tmp, (size_t)n);
}

/* Read exactly n bytes (or until EOF/timeout); returns the count read. */
size_t read_n(int fd, char *buf, size_t n, int timeout_ms)
{
    size_t got = 0;
    while (got < n) {
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, timeout_ms) <= 0)
            break;
        ssize_t k = recv(fd, buf + got, n - got, 0);
        if (k <= 0)
            break;
        got += (size_t)k;
    }
    return got;
}

int read_line(int fd, char *line, size_t size)
{
    size_t k = 0;
    while (k + 1 < size) {
        if (read_n(fd, line + k, 1, TIMEOUT_MS) != 1)
            return 0;
        if (line[k] == '\n') {
            line[k > 0 && line[k - 1] == '\r' ? k - 1 : k] = '\0';
            return 1;
        }
        k++;
    }
    line[k] = '\0';
    return 0;
}

void need_line(int fd, char *line, size_t size)
{
    if (!read_line(fd, line, size))
        fail_msg("no reply line (got \"%.80s\")", line);
}

void expect(int fd, const char *want)
{
    size_t n = strlen(want);
    char *got = calloc(1, n + 1);
    assert_int_equal(read_n(fd, got, n, TIMEOUT_MS), n);
    assert_string_equal(got, want);
    free(got);
}

/* An error line starting with `prefix`, then the server closes the connection. */
void expect_error_then_eof(int fd, const char *prefix)
{
    char line[512] = {0};
    size_t n = 0;
    while (n < sizeof line - 1 && read_n(fd, line + n, 1, TIMEOUT_MS) == 1 && line[n] != '\n')
        n++;
    assert_true(strncmp(line, prefix, strlen(prefix)) == 0);
    char c;
    assert_int_equal(read_n(fd, &c, 1, TIMEOUT_MS), 0);
    struct pollfd p = {fd, POLLIN, 0};
    assert_int_equal(poll(&p, 1, 0), 1); /* readable because closed, not because of a timeout */
}

void assert_still_serving(const struct host *h)
{
    int fd = client(h);
    send_all(fd, "PING\r\n", 6);
    expect(fd, "+PONG\r\n");
    close(fd);
}


/* One reply line without CRLF; 0 on timeout, EOF or a line longer than size. */
static int reply_line(int fd, char *line, size_t size)
{
    for (size_t k = 0; k + 1 < size; k++) {
        if (read_n(fd, line + k, 1, TIMEOUT_MS) != 1)
            return 0;
        if (line[k] == '\n') {
            line[k && line[k - 1] == '\r' ? k - 1 : k] = '\0';
            return 1;
        }
    }
    return 0;
}

/* Append one reply to out[*at..cap): recursion for arrays; -1 on a broken reply. */
static int reply_into(int fd, char *out, size_t cap, size_t *at)
{
    char line[512]; /* error lines can be long */
    if (!reply_line(fd, line, sizeof line))
        return -1;
    long n = strtol(line + 1, NULL, 10);
    if (line[0] == '*') {
        for (long i = 0; i < n; i++) {
            if (i && *at + 1 < cap)
                out[(*at)++] = '|';
            if (reply_into(fd, out, cap, at) < 0)
                return -1;
        }
    } else if (line[0] == '$' && n >= 0) {
        char *body = malloc((size_t)n + 2);
        if (!body || read_n(fd, body, (size_t)n + 2, TIMEOUT_MS) != (size_t)n + 2) {
            free(body);
            return -1;
        }
        size_t take = (size_t)n < cap - 1 - *at ? (size_t)n : cap - 1 - *at;
        memcpy(out + *at, body, take);
        *at += take;
        free(body);
    } else {
        size_t take = strnlen(line, cap - 1 - *at);
        memcpy(out + *at, line, take);
        *at += take;
    }
    out[*at] = '\0';
    return 0;
}

const char *reply_flat(int fd, char *out, size_t cap)
{
    size_t at = 0;
    out[0] = '\0';
    if (reply_into(fd, out, cap, &at) < 0)
        fail_msg("no complete reply (so far: %.80s)", out);
    return out;
}

double info_value(const struct host *h, const char *section, const char *key)
{
    static char text[65536];
    char want[160];
    int fd = client(h);
    sendf(fd, "INFO%s%s\r\n", section[0] ? " " : "", section);
    reply_flat(fd, text, sizeof text);
    close(fd);
    snprintf(want, sizeof want, "\n%s:", key);
    const char *at = strstr(text, want);
    if (!at)
        fail_msg("INFO %s has no %s", section[0] ? section : "(all)", key);
    return strtod(at + strlen(want), NULL);
}
