/* tier/redis: STM and IM in Redis through hiredis 0.14.  One key per entry (SET
 * <prefix><key> <header+value> PX ttl), conditional writes checked on the server by one
 * script (EVALSHA), batches pipelined, a pool of contexts (each used by one thread at a
 * time), and reconnects with exponential backoff and jitter on the host clock. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ganglion/ganglion.h>
#include "redis_pool.h"
#include "redis_wire.h"

/* Internal states of a batch item, never returned to the host. */
#define PENDING ((enum ggl_status)100)  /* not answered yet */
#define NOSCRIPT ((enum ggl_status)101) /* EVALSHA answered NOSCRIPT: load, send again */
#define PRESENT ((enum ggl_status)102)  /* SET NX found the key: send the script */

static const struct ggl_setting settings[] = {
    GGL_SETTING("host", GGL_SETTING_STRING, "127.0.0.1", "server address"),
    GGL_SETTING("port", GGL_SETTING_INT, "6379", "server port"),
    GGL_SETTING("unix_socket", GGL_SETTING_STRING, "", "unix socket path; overrides host/port"),
    GGL_SETTING("db", GGL_SETTING_INT, "0", "database index (Redis Cluster: 0 only)"),
    GGL_SETTING("password", GGL_SETTING_STRING, "", "AUTH password; empty = none"),
    GGL_SETTING("prefix", GGL_SETTING_STRING, "ggl:", "prepended to every key of this tier"),
    GGL_SETTING("connect_timeout_ms", GGL_SETTING_INT, "1000", "connect timeout"),
    GGL_SETTING("command_timeout_ms", GGL_SETTING_INT, "1000", "per-command timeout; then RETRY"),
    GGL_SETTING("pool_size", GGL_SETTING_INT, "8", "idle connections kept"),
    GGL_SETTING("backoff_min_ms", GGL_SETTING_INT, "100", "first reconnect delay"),
    GGL_SETTING("backoff_max_ms", GGL_SETTING_INT, "10000", "reconnect delay ceiling"),
    GGL_SETTINGS_END};

/* ---- one batch of commands, pipelined ----------------------------------------------- */

enum op { OP_GET, OP_PUT, OP_DEL, OP_LEN, OP_OLDER };

struct batch {
    enum op op;
    const struct ggl_entry *entries;   /* OP_PUT */
    const void *const *keys;           /* the others: keys without the prefix */
    const size_t *lens;
    struct ggl_entry *out;             /* OP_GET: entries; OP_LEN: value_len */
    const uint64_t *versions;          /* OP_OLDER: delete what is older than these */
    uint64_t expect, now;
    int scripted;                      /* OP_PUT: insert-if-newer skips the SET NX try */
    enum ggl_status *status;
};

/* <prefix><key> as one argument. */
static int arg_key(struct redis *r, struct wire_out *o, const void *key, size_t len)
{
    char *p = wire_bulk(o, r->prefix_len + len);
    if (!p)
        return -1;
    memcpy(p, r->prefix, r->prefix_len);
    if (len)
        memcpy(p + r->prefix_len, key, len);
    return 0;
}

/* <header><value> as one argument, written in place (no concatenation first); an empty
 * one for e == NULL. */
static int arg_entry(struct wire_out *o, const struct ggl_entry *e)
{
    size_t vlen = e ? e->value_len : 0;
    unsigned char *p = (unsigned char *)wire_bulk(o, e ? WIRE_HEADER + vlen : 0);
    if (!p)
        return -1;
    if (e)
        wire_encode(p, e);
    if (vlen)
        memcpy(p + WIRE_HEADER, e->value, vlen);
    return 0;
}

static int append_script(struct redis *r, struct redis_conn *c, const char *op, uint64_t expect,
                         const void *key, size_t klen, uint64_t now, const struct ggl_entry *e,
                         const char *px, size_t pxlen)
{
    unsigned char now8[8], expect8[8];
    wire_u64(now8, now);
    wire_u64(expect8, expect);
    const char *mode = expect == GGL_VERSION_ANY ? "any"
                       : expect == GGL_VERSION_OLDER ? "newer" : "equal";
    struct wire_out *o = &c->out;
    return wire_array(o, 10) || wire_arg(o, "EVALSHA", 7) || wire_arg(o, c->sha, strlen(c->sha)) ||
                   wire_arg(o, "1", 1) || arg_key(r, o, key, klen) || wire_arg(o, op, 3) ||
                   wire_arg(o, mode, strlen(mode)) || wire_arg(o, now8, 8) ||
                   wire_arg(o, expect8, 8) || arg_entry(o, e) || wire_arg(o, px, pxlen)
               ? -1
               : 0;
}

/* Unconditional writes of live entries are a plain SET.  Insert-if-newer first tries SET
 * NX, which applies exactly when the key is absent (most STM/IM writes and promotions
 * are of new keys) at native speed; a key that is there goes to the script, like
 * compare-and-set and entries already expired.  A script call costs several times a
 * SET on the server (two redis.call()s from Lua). */
static int append_put(struct redis *r, struct redis_conn *c, const struct ggl_entry *e,
                      uint64_t expect, uint64_t now, int scripted)
{
    char px[24] = "0";
    size_t pxlen = 1;
    int expired = e->expires_ms && e->expires_ms <= now;
    if (expired)
        px[0] = '-', px[1] = '1', pxlen = 2;
    else if (e->expires_ms)
        pxlen = wire_digits(px, e->expires_ms - now);
    int nx = expect == GGL_VERSION_OLDER && !scripted;
    if ((expect != GGL_VERSION_ANY && !nx) || expired)
        return append_script(r, c, "put", expect, e->key, e->key_len, now, e, px, pxlen);
    struct wire_out *o = &c->out;
    unsigned argc = 3 + (e->expires_ms ? 2u : 0u) + (nx ? 1u : 0u);
    return wire_array(o, argc) || wire_arg(o, "SET", 3) || arg_key(r, o, e->key, e->key_len) ||
                   arg_entry(o, e) ||
                   (e->expires_ms && (wire_arg(o, "PX", 2) || wire_arg(o, px, pxlen))) ||
                   (nx && wire_arg(o, "NX", 2))
               ? -1
               : 0;
}

static int append_one(struct redis *r, struct redis_conn *c, const struct batch *b, size_t i)
{
    if (b->op == OP_PUT)
        return append_put(r, c, &b->entries[i], b->expect, b->now, b->scripted);
    if (b->op == OP_DEL || b->op == OP_OLDER)
        return append_script(r, c, b->op == OP_DEL ? "del" : "old",
                             b->op == OP_DEL ? b->expect : b->versions[i], b->keys[i], b->lens[i],
                             b->now, NULL, "0", 1);
    const char *cmd = b->op == OP_GET ? "GET" : "STRLEN";
    return wire_array(&c->out, 2) || wire_arg(&c->out, cmd, strlen(cmd)) ||
                   arg_key(r, &c->out, b->keys[i], b->lens[i])
               ? -1
               : 0;
}

/* A stored value into *out (value copied with host->alloc); expired on the host clock
 * is absent whatever Redis's own expiry did. */
static enum ggl_status read_value(struct redis *r, const struct batch *b, size_t i,
                                  const redisReply *rep)
{
    struct ggl_entry e = {.size = sizeof e};
    if (rep->type == REDIS_REPLY_NIL)
        return GGL_NOTFOUND;
    if (rep->type != REDIS_REPLY_STRING || wire_decode(rep->str, (size_t)rep->len, &e) != 0) {
        r->host->set_reason(r->host, "redis %s: key %s%.*s: stored value has no ganglion header",
                            r->where, r->prefix, (int)b->lens[i], (const char *)b->keys[i]);
        return GGL_ERROR;
    }
    if (e.expires_ms && e.expires_ms <= b->now)
        return GGL_NOTFOUND;
    void *copy = r->host->alloc(e.value_len);
    if (!copy)
        return GGL_NOMEM;
    if (e.value_len)
        memcpy(copy, e.value, e.value_len);
    e.value = copy;
    e.key = b->keys[i];
    e.key_len = b->lens[i];
    b->out[i] = e;
    return GGL_OK;
}

static enum ggl_status reply_one(struct redis *r, const struct batch *b, size_t i,
                                 const redisReply *rep)
{
    if (rep->type == REDIS_REPLY_ERROR)
        return strncmp(rep->str, "NOSCRIPT", 8) == 0 ? NOSCRIPT : server_error(r, rep, "write");
    switch (b->op) {
    case OP_GET:
        return read_value(r, b, i, rep);
    case OP_LEN:
        b->out[i].value_len = (size_t)rep->integer;
        return GGL_OK;
    default: /* SET answers +OK (nil: NX found the key); the script 1 applied, 0 condition
              * failed, -1 absent */
        if (rep->type == REDIS_REPLY_NIL)
            return PRESENT;
        if (rep->type == REDIS_REPLY_STATUS || (rep->type == REDIS_REPLY_INTEGER && rep->integer == 1))
            return GGL_OK;
        if (rep->type == REDIS_REPLY_INTEGER)
            return rep->integer == 0 ? GGL_CONFLICT : GGL_NOTFOUND;
        r->host->set_reason(r->host, "redis %s: unexpected reply type %d", r->where, rep->type);
        return GGL_ERROR;
    }
}

/* Send the commands of items whose status is `which` in pipelines of up to WINDOW, reading
 * each window's replies in order: one round trip per window instead of per command
 * (PERF.md: ~60x), while the output buffer stays bounded for large batches.  A window's
 * commands are built in c->out and handed to hiredis in one piece (in pieces of about
 * OUT_FLUSH when values are large, so a window is not held twice). */
#define WINDOW 256
#define OUT_FLUSH (64 * 1024) /* large values: hiredis queues them as they are built */

/* What c->out holds, queued in hiredis's output buffer in one piece. */
static int hand_over(struct redis_conn *c)
{
    int rc = c->out.len ? redisAppendFormattedCommand(c->ctx, c->out.buf, c->out.len) : REDIS_OK;
    c->out.len = 0;
    return rc == REDIS_OK ? 0 : -1;
}

static enum ggl_status pipeline(struct redis *r, struct redis_conn *c, const struct batch *b,
                                size_t n, enum ggl_status which)
{
    for (size_t start = 0; start < n; start += WINDOW) {
        size_t end = n - start > WINDOW ? start + WINDOW : n;
        c->out.len = 0;
        for (size_t i = start; i < end; i++) {
            if (b->status[i] == which && append_one(r, c, b, i) < 0)
                return conn_failed(r, c, "build"); /* part of the window may be queued */
            if ((c->out.len >= OUT_FLUSH || i + 1 == end) && hand_over(c) < 0)
                return conn_failed(r, c, "send");
        }
        for (size_t i = start; i < end; i++) {
            redisReply *rep;
            if (b->status[i] != which)
                continue;
            if (redisGetReply(c->ctx, (void **)&rep) != REDIS_OK || !rep)
                return conn_failed(r, c, "reply");
            b->status[i] = reply_one(r, b, i, rep);
            freeReplyObject(rep);
        }
    }
    return GGL_OK;
}

static int any(const struct batch *b, size_t n, enum ggl_status which)
{
    for (size_t i = 0; i < n; i++)
        if (b->status[i] == which)
            return 1;
    return 0;
}

/* Run a batch on a context: a first pipeline for everything, a second with the script
 * for keys SET NX found, and items the server did not know the script for (it restarted
 * or flushed scripts) sent again once after SCRIPT LOAD. */
static enum ggl_status run_on(struct redis *r, struct redis_conn *c, const struct batch *b, size_t n)
{
    struct batch scripted = *b;
    scripted.scripted = 1;
    for (size_t i = 0; i < n; i++)
        b->status[i] = PENDING;
    enum ggl_status s = pipeline(r, c, b, n, PENDING);
    if (s == GGL_OK && any(b, n, PRESENT))
        s = pipeline(r, c, &scripted, n, PRESENT);
    if (s == GGL_OK && any(b, n, NOSCRIPT) && (s = conn_load_script(r, c)) == GGL_OK)
        s = pipeline(r, c, &scripted, n, NOSCRIPT);
    for (size_t i = 0; i < n; i++) {
        if (b->status[i] == NOSCRIPT && s == GGL_OK) {
            r->host->set_reason(r->host, "redis %s: NOSCRIPT again after SCRIPT LOAD", r->where);
            b->status[i] = GGL_ERROR;
        } else if (b->status[i] >= PENDING) {
            b->status[i] = s; /* the connection failed before this item's reply */
        }
    }
    return s;
}

static enum ggl_status run(struct redis *r, const struct batch *b, size_t n)
{
    enum ggl_status s;
    struct redis_conn *c = pool_acquire(r, &s);
    if (!c) {
        for (size_t i = 0; i < n; i++)
            b->status[i] = s;
        return s;
    }
    s = run_on(r, c, b, n);
    pool_release(r, c);
    return s;
}

/* ---- the vtable ---------------------------------------------------------------------- */

static enum ggl_status rd_get_batch(void *self, const void *const *keys, const size_t *lens,
                                    size_t n, struct ggl_entry *out, enum ggl_status *status)
{
    struct redis *r = self;
    struct batch b = {.op = OP_GET, .keys = keys, .lens = lens, .out = out,
                      .now = r->host->now(r->host), .status = status};
    enum ggl_status s = run(r, &b, n);
    return s == GGL_RETRY ? s : GGL_OK;
}

static enum ggl_status rd_get(void *self, const void *key, size_t len, struct ggl_entry *out)
{
    enum ggl_status s;
    rd_get_batch(self, &key, &len, 1, out, &s);
    return s;
}

static enum ggl_status rd_put_batch(void *self, const struct ggl_entry *es, size_t n,
                                    uint64_t expect, enum ggl_status *status)
{
    struct redis *r = self;
    struct batch b = {.op = OP_PUT, .entries = es, .expect = expect,
                      .now = r->host->now(r->host), .status = status};
    enum ggl_status s = run(r, &b, n);
    return s == GGL_RETRY ? s : GGL_OK;
}

static enum ggl_status rd_put(void *self, const struct ggl_entry *e, uint64_t expect)
{
    enum ggl_status s;
    rd_put_batch(self, e, 1, expect, &s);
    return s;
}

static enum ggl_status rd_del(void *self, const void *key, size_t len, uint64_t expect)
{
    struct redis *r = self;
    enum ggl_status s;
    struct batch b = {.op = OP_DEL, .keys = &key, .lens = &len, .expect = expect,
                      .now = r->host->now(r->host), .status = &s};
    run(r, &b, 1);
    return s;
}

/* The retire of a batch's older copies: one pipeline of script calls, not a read and
 * then a round trip per key found. */
static enum ggl_status rd_del_older_batch(void *self, const void *const *keys,
                                          const size_t *lens, size_t n,
                                          const uint64_t *versions, enum ggl_status *status)
{
    struct redis *r = self;
    struct batch b = {.op = OP_OLDER, .keys = keys, .lens = lens, .versions = versions,
                      .now = r->host->now(r->host), .status = status};
    enum ggl_status s = run(r, &b, n);
    return s == GGL_RETRY ? s : GGL_OK;
}

/* One SCAN reply and what was fetched for its keys. */
struct page {
    redisReply *rep;
    const void **keys;
    size_t *lens, n;
    struct ggl_entry *out;
    enum ggl_status *status;
};

/* One SCAN step under the prefix (never KEYS), then `op` pipelined over the keys it
 * returned.  The caller frees the page with page_free, whatever the status. */
static enum ggl_status scan_page(struct redis *r, struct redis_conn *c, uint64_t *cursor,
                                 size_t count, enum op op, struct page *p)
{
    char cur[24], cnt[24];
    snprintf(cur, sizeof cur, "%llu", (unsigned long long)*cursor);
    snprintf(cnt, sizeof cnt, "%zu", count ? count : 1);
    const char *argv[] = {"SCAN", cur, "MATCH", r->pattern, "COUNT", cnt};
    size_t len[] = {4, strlen(cur), 5, strlen(r->pattern), 5, strlen(cnt)};
    enum ggl_status s;
    memset(p, 0, sizeof *p);
    if (!(p->rep = conn_command(r, c, 6, argv, len, &s)))
        return s;
    if (p->rep->type != REDIS_REPLY_ARRAY || p->rep->elements != 2) {
        r->host->set_reason(r->host, "redis %s: SCAN: unexpected reply", r->where);
        return GGL_ERROR;
    }
    *cursor = strtoull(p->rep->element[0]->str, NULL, 10);
    const redisReply *keys = p->rep->element[1];
    p->n = keys->elements;
    p->keys = calloc(p->n + 1, sizeof *p->keys);
    p->lens = calloc(p->n + 1, sizeof *p->lens);
    p->out = calloc(p->n + 1, sizeof *p->out);
    p->status = calloc(p->n + 1, sizeof *p->status);
    if (!p->keys || !p->lens || !p->out || !p->status)
        return GGL_NOMEM;
    for (size_t i = 0; i < p->n; i++) { /* SCAN returns full names: strip the prefix */
        p->keys[i] = keys->element[i]->str + r->prefix_len;
        p->lens[i] = (size_t)keys->element[i]->len - r->prefix_len;
    }
    struct batch b = {.op = op, .keys = p->keys, .lens = p->lens, .out = p->out,
                      .now = r->host->now(r->host), .status = p->status};
    return p->n ? run_on(r, c, &b, p->n) : GGL_OK;
}

static void page_free(struct page *p)
{
    if (p->rep)
        freeReplyObject(p->rep);
    free(p->keys);
    free(p->lens);
    free(p->out);
    free(p->status);
}

/* Redis's SCAN cursor is passed through (0 starts and ends).  A key may be visited twice
 * (SCAN's guarantee is at least once); if fn stops mid-page, the rest of that page is
 * skipped when the scan resumes from the returned cursor. */
static enum ggl_status rd_scan(void *self, uint64_t *cursor, size_t count, ggl_scan_fn fn, void *arg)
{
    struct redis *r = self;
    struct page p;
    enum ggl_status s;
    struct redis_conn *c = pool_acquire(r, &s);
    if (!c)
        return s;
    s = scan_page(r, c, cursor, count, OP_GET, &p);
    int stop = 0;
    for (size_t i = 0; i < p.n && s == GGL_OK; i++) {
        if (p.status[i] != GGL_OK)
            continue; /* gone since SCAN, expired on the host clock, or not ours */
        if (!stop)
            stop = fn(arg, &p.out[i]);
        r->host->free(p.out[i].value);
    }
    page_free(&p);
    pool_release(r, c);
    return s;
}

/* Entries and bytes under the prefix, by SCAN + STRLEN: DBSIZE would be O(1) but counts
 * every key of the db, and tiers may share one db separated by prefixes (Redis Cluster
 * has only db 0).  O(keys) round trips of 1000: stats is for INFO, not hot paths. */
static enum ggl_status rd_stats(void *self, struct ggl_tier_stats *out)
{
    struct redis *r = self;
    enum ggl_status s;
    struct redis_conn *c = pool_acquire(r, &s);
    if (!c)
        return s;
    uint64_t cursor = 0, entries = 0, bytes = 0;
    do {
        struct page p;
        s = scan_page(r, c, &cursor, 1000, OP_LEN, &p);
        for (size_t i = 0; i < p.n && s == GGL_OK; i++)
            if (p.status[i] == GGL_OK) {
                entries++;
                bytes += r->prefix_len + p.lens[i] + p.out[i].value_len;
            }
        page_free(&p);
    } while (s == GGL_OK && cursor != 0);
    if (s == GGL_OK) {
        out->entries = entries;
        out->bytes = bytes;
    }
    pool_release(r, c);
    return s;
}

static enum ggl_status rd_health(void *self)
{
    struct redis *r = self;
    enum ggl_status s;
    struct redis_conn *c = pool_acquire(r, &s);
    if (!c)
        return s;
    s = conn_command_text(r, c, "PING", NULL, NULL);
    pool_release(r, c);
    return s;
}

/* ---- open / close ---------------------------------------------------------------------- */

static enum ggl_status check_settings(struct redis *r)
{
    const struct ggl_host *h = r->host;
    if (r->port < 1 || r->port > 65535)
        return h->set_reason(h, "port must be 1..65535"), GGL_INVALID;
    if (r->db < 0)
        return h->set_reason(h, "db must be >= 0"), GGL_INVALID;
    if (r->connect_ms < 1 || r->command_ms < 1)
        return h->set_reason(h, "timeouts must be >= 1 ms"), GGL_INVALID;
    if (r->pool_size < 1)
        return h->set_reason(h, "pool_size must be >= 1"), GGL_INVALID;
    if (r->backoff_min < 1 || r->backoff_max < r->backoff_min)
        return h->set_reason(h, "need 1 <= backoff_min_ms <= backoff_max_ms"), GGL_INVALID;
    return GGL_OK;
}

/* The prefix with glob characters escaped, then '*'. */
static char *match_pattern(const char *prefix)
{
    char *p = malloc(2 * strlen(prefix) + 2), *o = p;
    if (!p)
        return NULL;
    for (; *prefix; prefix++) {
        if (strchr("*?[]\\", *prefix))
            *o++ = '\\';
        *o++ = *prefix;
    }
    strcpy(o, "*");
    return p;
}

static void read_settings(struct redis *r, const struct ggl_conf *conf)
{
    const struct ggl_host *h = r->host;
    h->conf_string(conf, "host", &r->addr);
    h->conf_string(conf, "unix_socket", &r->unix_path);
    h->conf_string(conf, "password", &r->password);
    h->conf_string(conf, "prefix", &r->prefix);
    h->conf_int(conf, "port", &r->port);
    h->conf_int(conf, "db", &r->db);
    h->conf_int(conf, "connect_timeout_ms", &r->connect_ms);
    h->conf_int(conf, "command_timeout_ms", &r->command_ms);
    h->conf_int(conf, "pool_size", &r->pool_size);
    h->conf_int(conf, "backoff_min_ms", &r->backoff_min);
    h->conf_int(conf, "backoff_max_ms", &r->backoff_max);
}

static void rd_close(void *self)
{
    struct redis *r = self;
    pool_drain(r);
    pthread_mutex_destroy(&r->lock);
    free(r->pattern);
    free(r);
}

/* Opens one context now so bad settings (password, db) fail here; an unreachable server
 * does not: the instance starts degraded and reconnects after backoff. */
static enum ggl_status rd_open(const struct ggl_host *host, const struct ggl_conf *conf, void **self)
{
    struct redis *r = calloc(1, sizeof *r);
    if (!r)
        return GGL_NOMEM;
    r->host = host;
    read_settings(r, conf);
    enum ggl_status s = check_settings(r);
    if (s != GGL_OK) {
        free(r);
        return s;
    }
    r->prefix_len = strlen(r->prefix);
    r->rng = host->now(host) ^ (uint64_t)(uintptr_t)r;
    if (r->unix_path[0])
        snprintf(r->where, sizeof r->where, "unix:%s/%lld", r->unix_path, (long long)r->db);
    else
        snprintf(r->where, sizeof r->where, "%s:%lld/%lld", r->addr, (long long)r->port,
                 (long long)r->db);
    pthread_mutex_init(&r->lock, NULL);
    if (!(r->pattern = match_pattern(r->prefix))) {
        rd_close(r);
        return GGL_NOMEM;
    }
    struct redis_conn *c = pool_acquire(r, &s);
    if (c)
        pool_release(r, c);
    else if (s == GGL_RETRY)
        host->log(host, GGL_LOG_WARN, "redis %s unreachable at open (%s); retrying later",
                  r->where, r->last_error);
    else {
        rd_close(r);
        return s;
    }
    *self = r;
    return GGL_OK;
}

static const struct ggl_tier vtable = {
    .size = sizeof(struct ggl_tier),
    .flags = GGL_READS_CONCURRENT | GGL_WRITES_CONCURRENT,
    .open = rd_open,
    .close = rd_close,
    .get = rd_get,
    .put = rd_put,
    .del = rd_del,
    .put_batch = rd_put_batch,
    .get_batch = rd_get_batch,
    .scan = rd_scan,
    .stats = rd_stats,
    .health = rd_health,
    .del_older_batch = rd_del_older_batch,
};

GGL_PLUGIN_DEFINE(GGL_KIND_TIER, "redis", "0.1.0", "STM/IM in Redis (hiredis, pipelined, scripted CAS)",
                  settings, &vtable);
