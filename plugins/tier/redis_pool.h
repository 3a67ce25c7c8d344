/* tier/redis connections: the instance's settings, a pool of hiredis contexts (each
 * used by one thread at a time, never shared) and reconnect backoff on the host clock. */
#ifndef GGL_REDIS_POOL_H
#define GGL_REDIS_POOL_H

#include <pthread.h>
#include <hiredis/hiredis.h>

#include <ganglion/ganglion.h>
#include "redis_wire.h"

struct redis_conn {
    redisContext *ctx; /* NULL once it failed: hiredis 0.14 contexts do not recover */
    uint64_t gen;      /* r->gen when it was opened */
    char sha[41];      /* the script's SHA1 as this server knows it */
    struct wire_out out; /* one window's commands, built before they are sent */
    struct redis_conn *next;
};

struct redis {
    const struct ggl_host *host;
    const char *addr, *unix_path, *password, *prefix;
    int64_t port, db, connect_ms, command_ms, pool_size, backoff_min, backoff_max;
    size_t prefix_len;
    char where[200];   /* "host:port/db" for reasons */
    char *pattern;     /* SCAN MATCH: the prefix, glob-escaped, then '*' */
    pthread_mutex_t lock;
    struct redis_conn *idle; /* contexts not in use, at most pool_size */
    int64_t nidle;
    uint64_t gen;      /* bumped on every failure: idle contexts older than it are dropped */
    uint64_t retry_at; /* host clock: no connection attempt before it */
    unsigned failures; /* consecutive failed outages, for the backoff exponent */
    uint64_t rng;
    char last_error[160];
};

/* A context for this call: an idle one or a new one.  NULL with *s = GGL_RETRY (and a
 * reason) while backing off after a failure, or the failure of a new connection. */
struct redis_conn *pool_acquire(struct redis *r, enum ggl_status *s);
/* Back to the pool; a failed or outdated context is freed instead. */
void pool_release(struct redis *r, struct redis_conn *c);
/* Free the idle contexts (close). */
void pool_drain(struct redis *r);
/* The context failed (I/O, timeout, EOF): free it, arm the backoff.  Returns GGL_RETRY. */
enum ggl_status conn_failed(struct redis *r, struct redis_conn *c, const char *what);
/* Status and reason for an error reply. */
enum ggl_status server_error(struct redis *r, const redisReply *rep, const char *what);
/* One command and its reply; NULL (with *s set) on failure or an error reply. */
redisReply *conn_command(struct redis *r, struct redis_conn *c, int argc, const char **argv,
                         const size_t *len, enum ggl_status *s);
/* A command of one or two text arguments whose reply only needs to be no error. */
enum ggl_status conn_command_text(struct redis *r, struct redis_conn *c, const char *a0,
                                  const char *a1, const char *a2);
/* SCRIPT LOAD wire_script; c->sha gets its SHA1. */
enum ggl_status conn_load_script(struct redis *r, struct redis_conn *c);

#endif
