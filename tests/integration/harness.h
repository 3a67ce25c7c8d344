/* The integration harness (harness.c): start the real binary on a temporary socket,
 * talk raw RESP to it, stop it and check its exit status. */
#ifndef GGL_TEST_HARNESS_H
#define GGL_TEST_HARNESS_H

#include <stddef.h>
#include <sys/types.h>

#define TIMEOUT_MS 10000

struct host {
    char dir[64], sock[128], conf[128];
    pid_t pid;
};

/* Start with `extra` inside the control section; start_host_with also appends `body`
 * (a printf format whose one %s, or %1$s, is the host's temporary directory). */
void start_host(struct host *h, const char *extra);
void start_host_with(struct host *h, const char *extra, const char *body);
void write_config(struct host *h, const char *extra, const char *body); /* h->conf */
pid_t spawn_host(struct host *h);          /* run h->conf; no readiness wait */
void stop_host(struct host *h);            /* SIGTERM, exit status 0, directory removed */
void cleanup_dir(struct host *h);
int kill_leftover_hosts(void **state);     /* teardown: SIGKILL hosts a failed test left */
void keep_host(const struct host *h);      /* not a leftover: a group's shared host */
int wait_exit(pid_t pid);                  /* exit status, or -1 after TIMEOUT_MS */
int try_connect(const char *path);
int free_port(void);                       /* a loopback port free right now */
int client(const struct host *h);          /* a connected socket (asserted) */
void send_all(int fd, const void *p, size_t n);
void sendf(int fd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
size_t read_n(int fd, char *buf, size_t n, int timeout_ms);
void expect(int fd, const char *want);     /* exactly these bytes next */
/* One reply line, CRLF stripped: 1, or 0 on EOF, TIMEOUT_MS without a byte, or a line
 * longer than size. */
int read_line(int fd, char *line, size_t size);
void need_line(int fd, char *line, size_t size); /* the same; no line fails the test */
void expect_error_then_eof(int fd, const char *prefix);
void assert_still_serving(const struct host *h);
/* The next whole reply, flattened: an array's elements joined by '|', a bulk string's
 * bytes, a simple reply's line with its type byte ("+OK", "-ERR ...", ":3"); asserts
 * that it arrives.  Cut to cap - 1 bytes. */
const char *reply_flat(int fd, char *out, size_t cap);
/* The number after "key:" in INFO section ("": every section; asserts the key is there). */
double info_value(const struct host *h, const char *section, const char *key);

#endif
