/* tier/redis connections: a pool of hiredis 0.14 contexts, each used by one thread at a
 * time.  A context that failed is dead (hiredis 0.14 does not recover one): it is freed,
 * and reconnects wait out an exponential backoff with jitter on the host clock. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "redis_pool.h"
#include "redis_wire.h"

/* A connection keeps its pipeline buffer up to this size: windows are handed to hiredis
 * every 64 KiB, so only one large value grows it past that, and does not pin it. */
#define OUT_KEEP (128 * 1024)

static struct timeval ms_tv(int64_t ms)
{
    return (struct timeval){.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
}

static void conn_free(struct redis_conn *c)
{
    if (c->ctx)
        redisFree(c->ctx);
    free(c->out.buf);
    free(c);
}

static void conn_free_list(struct redis_conn *c)
{
    while (c) {
        struct redis_conn *next = c->next;
        conn_free(c);
        c = next;
    }
}

/* After a failure: no new connection before now + delay, where delay doubles per outage
 * up to backoff_max, with "equal jitter" (half fixed, half random: AWS Architecture Blog,
 * "Exponential Backoff and Jitter") so many hosts do not reconnect in step.  Failures
 * inside one backoff window (other threads' in-flight calls) count once. */
static void backoff_arm(struct redis *r, const char *error)
{
    uint64_t now = r->host->now(r->host);
    pthread_mutex_lock(&r->lock);
    if (now >= r->retry_at) {
        uint64_t delay = (uint64_t)r->backoff_min;
        for (unsigned i = 0; i < r->failures && delay < (uint64_t)r->backoff_max; i++)
            delay *= 2;
        if (delay > (uint64_t)r->backoff_max)
            delay = (uint64_t)r->backoff_max;
        r->rng = r->rng * 6364136223846793005ull + 1442695040888963407ull; /* Knuth's LCG */
        r->retry_at = now + delay / 2 + (r->rng >> 33) % (delay / 2 + 1);
        r->failures++;
    }
    r->gen++;
    snprintf(r->last_error, sizeof r->last_error, "%s", error);
    struct redis_conn *stale = r->idle;
    r->idle = NULL;
    r->nidle = 0;
    pthread_mutex_unlock(&r->lock);
    conn_free_list(stale);
}

/* The context failed (I/O, timeout, EOF, or out of memory mid-pipeline): it is dead. */
enum ggl_status conn_failed(struct redis *r, struct redis_conn *c, const char *what)
{
    char error[160];
    snprintf(error, sizeof error, "%s: %s", what,
             c->ctx && c->ctx->err ? c->ctx->errstr : "out of memory");
    r->host->set_reason(r->host, "redis %s: %s", r->where, error);
    if (c->ctx)
        redisFree(c->ctx);
    c->ctx = NULL;
    backoff_arm(r, error);
    return GGL_RETRY;
}

/* An error reply: the server is loading or busy (retry), or refused the command. */
enum ggl_status server_error(struct redis *r, const redisReply *rep, const char *what)
{
    r->host->set_reason(r->host, "redis %s: %s: %s", r->where, what, rep->str);
    if (!strncmp(rep->str, "LOADING", 7) || !strncmp(rep->str, "BUSY", 4) ||
        !strncmp(rep->str, "TRYAGAIN", 8) || !strncmp(rep->str, "MASTERDOWN", 10))
        return GGL_RETRY;
    if (!strncmp(rep->str, "NOAUTH", 6) || !strncmp(rep->str, "WRONGPASS", 9) ||
        !strncmp(rep->str, "ERR invalid password", 20) || !strncmp(rep->str, "ERR DB index", 12))
        return GGL_INVALID;
    return GGL_ERROR;
}

redisReply *conn_command(struct redis *r, struct redis_conn *c, int argc, const char **argv,
                         const size_t *len, enum ggl_status *s)
{
    redisReply *rep = redisCommandArgv(c->ctx, argc, argv, len);
    if (!rep) {
        *s = conn_failed(r, c, argv[0]);
        return NULL;
    }
    if (rep->type == REDIS_REPLY_ERROR) {
        *s = server_error(r, rep, argv[0]);
        freeReplyObject(rep);
        return NULL;
    }
    *s = GGL_OK;
    return rep;
}

enum ggl_status conn_command_text(struct redis *r, struct redis_conn *c, const char *a0,
                                  const char *a1, const char *a2)
{
    const char *argv[] = {a0, a1, a2};
    size_t len[] = {strlen(a0), a1 ? strlen(a1) : 0, a2 ? strlen(a2) : 0};
    enum ggl_status s;
    redisReply *rep = conn_command(r, c, a2 ? 3 : 2, argv, len, &s);
    if (rep)
        freeReplyObject(rep);
    return s;
}

enum ggl_status conn_load_script(struct redis *r, struct redis_conn *c)
{
    const char *argv[] = {"SCRIPT", "LOAD", wire_script};
    size_t len[] = {6, 4, strlen(wire_script)};
    enum ggl_status s;
    redisReply *rep = conn_command(r, c, 3, argv, len, &s);
    if (!rep)
        return s;
    snprintf(c->sha, sizeof c->sha, "%s", rep->type == REDIS_REPLY_STRING ? rep->str : "");
    freeReplyObject(rep);
    return GGL_OK;
}

/* A ready context: connected, timeouts set, authenticated, db selected, script loaded. */
static enum ggl_status conn_open(struct redis *r, uint64_t gen, struct redis_conn **out)
{
    struct redis_conn *c = calloc(1, sizeof *c);
    if (!c)
        return GGL_NOMEM;
    c->gen = gen;
    enum ggl_status s = GGL_RETRY;
    c->ctx = r->unix_path[0]
                 ? redisConnectUnixWithTimeout(r->unix_path, ms_tv(r->connect_ms))
                 : redisConnectWithTimeout(r->addr, (int)r->port, ms_tv(r->connect_ms));
    if (!c->ctx || c->ctx->err || redisSetTimeout(c->ctx, ms_tv(r->command_ms)) != REDIS_OK) {
        s = conn_failed(r, c, "connect");
        goto fail;
    }
    if (r->password[0] && (s = conn_command_text(r, c, "AUTH", r->password, NULL)) != GGL_OK)
        goto fail;
    char db[24];
    snprintf(db, sizeof db, "%lld", (long long)r->db);
    if (r->db && (s = conn_command_text(r, c, "SELECT", db, NULL)) != GGL_OK)
        goto fail;
    if ((s = conn_load_script(r, c)) != GGL_OK)
        goto fail;
    *out = c;
    return GGL_OK;
fail:
    if (c->ctx) /* the server refused setup: still back off, it will refuse again */
        backoff_arm(r, "AUTH, SELECT or SCRIPT LOAD refused");
    conn_free(c);
    return s;
}

/* A context for this call: an idle one or a new one; fails fast while backing off. */
struct redis_conn *pool_acquire(struct redis *r, enum ggl_status *s)
{
    uint64_t now = r->host->now(r->host);
    pthread_mutex_lock(&r->lock);
    if (now < r->retry_at) {
        r->host->set_reason(r->host, "redis %s: down, next attempt in %llu ms (%s)", r->where,
                            (unsigned long long)(r->retry_at - now), r->last_error);
        pthread_mutex_unlock(&r->lock);
        *s = GGL_RETRY;
        return NULL;
    }
    struct redis_conn *c = r->idle;
    if (c) {
        r->idle = c->next;
        r->nidle--;
    }
    uint64_t gen = r->gen;
    pthread_mutex_unlock(&r->lock);
    *s = GGL_OK;
    if (!c && (*s = conn_open(r, gen, &c)) != GGL_OK)
        return NULL;
    return c;
}

void pool_release(struct redis *r, struct redis_conn *c)
{
    pthread_mutex_lock(&r->lock);
    int keep = c->ctx && c->gen == r->gen && r->nidle < r->pool_size;
    if (keep && c->out.cap > OUT_KEEP) {
        free(c->out.buf);
        c->out = (struct wire_out){0};
    }
    if (keep) {
        c->next = r->idle;
        r->idle = c;
        r->nidle++;
        r->failures = 0; /* a context that worked ends the outage */
    }
    pthread_mutex_unlock(&r->lock);
    if (!keep)
        conn_free(c);
}

void pool_drain(struct redis *r)
{
    conn_free_list(r->idle);
    r->idle = NULL;
    r->nidle = 0;
}
