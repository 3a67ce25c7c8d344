/* RESP2 requests and replies.  Multibulk requests go through hiredis 0.14's reader with
 * our own object functions (argv built in place, limits enforced, only arrays of bulk
 * strings); a request whose first byte is not '*' is an inline command split here on
 * spaces and tabs (no quoting, unlike Redis: inline is for PING_INLINE and nc). */
#include "ggl-build.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/read.h>

#include "resp.h"

#define INLINE_MAX (64 * 1024) /* longest inline line, as Redis's PROTO_INLINE_MAX_SIZE */

/* --- buffers ----------------------------------------------------------------- */

int buf_reserve(struct buf *b, size_t extra)
{
    if (b->cap - b->len >= extra)
        return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap - b->len < extra)
        cap *= 2;
    char *d = realloc(b->data, cap);
    if (!d)
        return -1;
    b->data = d;
    b->cap = cap;
    return 0;
}

int buf_append(struct buf *b, const void *p, size_t n)
{
    if (n == 0)
        return 0;
    if (buf_reserve(b, n) < 0)
        return -1;
    memcpy(b->data + b->len, p, n);
    b->len += n;
    return 0;
}

void buf_consume(struct buf *b, size_t n)
{
    if (n >= b->len) {
        b->len = 0;
        return;
    }
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
}

void buf_free(struct buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

/* --- replies ----------------------------------------------------------------- */

static void reply_header(struct buf *b, char type, long long n)
{
    char tmp[32];
    int k = snprintf(tmp, sizeof tmp, "%c%lld\r\n", type, n);
    buf_append(b, tmp, (size_t)k);
}

void reply_status(struct buf *b, const char *s)
{
    size_t n = strlen(s);
    if (buf_reserve(b, n + 3) < 0)
        return;
    b->data[b->len++] = '+';
    memcpy(b->data + b->len, s, n);
    b->len += n;
    memcpy(b->data + b->len, "\r\n", 2);
    b->len += 2;
}

void reply_error(struct buf *b, const char *fmt, ...)
{
    char line[260];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line + 1, sizeof line - 3, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    size_t len = (size_t)n < sizeof line - 4 ? (size_t)n : sizeof line - 4;
    line[0] = '-';
    for (size_t i = 1; i <= len; i++) /* an error is one line */
        if (line[i] == '\r' || line[i] == '\n')
            line[i] = ' ';
    memcpy(line + 1 + len, "\r\n", 2);
    buf_append(b, line, len + 3);
}

void reply_int(struct buf *b, long long v) { reply_header(b, ':', v); }
void reply_array(struct buf *b, long long n) { reply_header(b, '*', n); }
void reply_nil(struct buf *b) { buf_append(b, "$-1\r\n", 5); }

void reply_bulk(struct buf *b, const void *p, size_t n)
{
    if (buf_reserve(b, n + 32) < 0)
        return;
    reply_header(b, '$', (long long)n);
    buf_append(b, p, n);
    buf_append(b, "\r\n", 2);
}

void reply_cstr(struct buf *b, const char *s) { reply_bulk(b, s, strlen(s)); }

/* --- the parser ------------------------------------------------------------ */

enum mode { MODE_IDLE, MODE_MULTIBULK, MODE_INLINE };

struct resp_parser {
    redisReader *reader;
    struct resp_limits lim;
    enum mode mode;
    struct buf pending;   /* a partial inline line, or bytes the reader handed back */
    struct buf arena;     /* argument bytes of the request being built, NUL-terminated */
    size_t *offs, *lens;  /* per argument: offset in arena, length */
    char **argv;
    int cap_args, argc;
    char reason[160];     /* why the request was refused (the reader says "Out of memory") */
};

static void *refuse(struct resp_parser *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void *refuse(struct resp_parser *p, const char *fmt, ...)
{
    if (!p->reason[0]) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(p->reason, sizeof p->reason, fmt, ap);
        va_end(ap);
    }
    return NULL;
}

static int request_grow(struct resp_parser *p, int nargs)
{
    if (nargs <= p->cap_args)
        return 0;
    size_t n = (size_t)nargs;
    size_t *offs = realloc(p->offs, n * sizeof *offs);
    if (offs)
        p->offs = offs;
    size_t *lens = realloc(p->lens, n * sizeof *lens);
    if (lens)
        p->lens = lens;
    char **argv = realloc(p->argv, (n + 1) * sizeof *argv);
    if (argv)
        p->argv = argv;
    if (!offs || !lens || !argv)
        return -1;
    p->cap_args = nargs;
    return 0;
}

static void request_reset(struct resp_parser *p)
{
    p->argc = 0;
    p->arena.len = 0;
}

static int request_add(struct resp_parser *p, const char *s, size_t len)
{
    if (p->arena.len + len > p->lim.max_request_bytes) {
        refuse(p, "request larger than %zu bytes", p->lim.max_request_bytes);
        return -1;
    }
    size_t off = p->arena.len;
    if (buf_reserve(&p->arena, len + 1) < 0) {
        refuse(p, "out of memory");
        return -1;
    }
    memcpy(p->arena.data + off, s, len);
    p->arena.data[off + len] = '\0';
    p->arena.len += len + 1;
    p->offs[p->argc] = off;
    p->lens[p->argc] = len;
    p->argc++;
    return 0;
}

static void *obj_array(const redisReadTask *t, int n)
{
    struct resp_parser *p = t->privdata;
    if (t->parent)
        return refuse(p, "nested arrays are not accepted as requests");
    if (n > p->lim.max_args)
        return refuse(p, "too many arguments (%d, limit %d)", n, p->lim.max_args);
    if (request_grow(p, n) < 0)
        return refuse(p, "out of memory");
    request_reset(p);
    return p;
}

static void *obj_string(const redisReadTask *t, char *s, size_t len)
{
    struct resp_parser *p = t->privdata;
    if (!t->parent || t->type != REDIS_REPLY_STRING)
        return refuse(p, "only arrays of bulk strings are accepted as requests");
    /* The reader skips the two bytes after a bulk string unread (they are in its
     * buffer): a length that does not match the data must not slide into the next. */
    if (s[len] != '\r' || s[len + 1] != '\n')
        return refuse(p, "bulk string of %zu bytes not followed by CRLF", len);
    return request_add(p, s, len) < 0 ? NULL : p;
}

static void *obj_integer(const redisReadTask *t, long long v)
{
    (void)v;
    return refuse(t->privdata, "only arrays of bulk strings are accepted as requests");
}

static void *obj_nil(const redisReadTask *t)
{
    return refuse(t->privdata, "only arrays of bulk strings are accepted as requests");
}

static void obj_free(void *obj)
{
    (void)obj; /* the request lives in the parser and is reused */
}

static redisReplyObjectFunctions object_fns = {obj_string, obj_array, obj_integer, obj_nil,
                                               obj_free};

struct resp_parser *resp_parser_new(const struct resp_limits *lim)
{
    struct resp_parser *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->lim = *lim;
    p->reader = redisReaderCreateWithFunctions(&object_fns);
    if (!p->reader || request_grow(p, 8) < 0) {
        resp_parser_free(p);
        return NULL;
    }
    p->reader->privdata = p;
    p->reader->maxbuf = 64 * 1024;
    return p;
}

void resp_parser_free(struct resp_parser *p)
{
    if (!p)
        return;
    if (p->reader)
        redisReaderFree(p->reader);
    buf_free(&p->pending);
    buf_free(&p->arena);
    free(p->offs);
    free(p->lens);
    free(p->argv);
    free(p);
}

const char *resp_error(const struct resp_parser *p) { return p->reason; }

/* Bytes the reader holds but has not turned into arguments yet. */
static size_t reader_held(const redisReader *r) { return r->len - r->pos; }

size_t resp_buffered(const struct resp_parser *p)
{
    return reader_held(p->reader) + p->pending.len;
}

static int deliver(struct resp_parser *p, request_fn fn, void *arg)
{
    if (p->argc == 0)
        return 0; /* "*0\r\n" and blank inline lines are ignored, as Redis does */
    for (int i = 0; i < p->argc; i++)
        p->argv[i] = p->arena.data + p->offs[i];
    p->argv[p->argc] = NULL;
    const struct request req = {p->argc, p->argv, p->lens};
    return fn(arg, &req);
}

/* The reader buffers a bulk string until all of it has arrived; refuse a declared
 * length over the limit as soon as its header line is in (hiredis 0.14 layout). */
static int bulk_header_too_long(struct resp_parser *p)
{
    const redisReader *r = p->reader;
    if (r->ridx < 0 || r->rstack[r->ridx].type != REDIS_REPLY_STRING)
        return 0;
    const char *s = r->buf + r->pos, *end = memchr(s, '\r', r->len - r->pos);
    if (!end)
        return 0;
    long long n = strtoll(s, NULL, 10);
    size_t max = p->lim.max_request_bytes, room = p->arena.len < max ? max - p->arena.len : 0;
    if (n < 0 || (unsigned long long)n <= room)
        return 0;
    refuse(p, "request larger than %zu bytes (bulk length %lld)", p->lim.max_request_bytes, n);
    return 1;
}

/* Feed as much of data as the limit allows and deliver complete requests.  Returns the
 * bytes consumed (fewer than fed when the reader hands back an inline command that
 * followed a multibulk one), or -1. */
static long parse_multibulk(struct resp_parser *p, const char *data, size_t len, request_fn fn,
                            void *arg, int *stop)
{
    redisReader *r = p->reader;
    size_t held = reader_held(r);
    if (held >= p->lim.max_request_bytes) {
        refuse(p, "request larger than %zu bytes", p->lim.max_request_bytes);
        return -1;
    }
    size_t n = len < p->lim.max_request_bytes - held ? len : p->lim.max_request_bytes - held;
    if (redisReaderFeed(r, data, n) != REDIS_OK) {
        refuse(p, "out of memory");
        return -1;
    }
    for (;;) {
        void *obj = NULL;
        if (redisReaderGetReply(r, &obj) != REDIS_OK) {
            refuse(p, "protocol error: %s", r->errstr);
            return -1;
        }
        if (!obj)
            return bulk_header_too_long(p) ? -1 : (long)n;
        if (deliver(p, fn, arg)) {
            *stop = 1;
            return (long)n;
        }
        size_t left = reader_held(r);
        if (left == 0) {
            p->mode = MODE_IDLE;
            return (long)n;
        }
        if (r->buf[r->pos] != '*') {
            if (left > n) { /* cannot happen: a reply ends inside the bytes just fed */
                refuse(p, "protocol error: mixed request framing");
                return -1;
            }
            r->pos = r->len; /* give the inline tail back; the reader forgets it */
            p->mode = MODE_IDLE;
            return (long)(n - left);
        }
    }
}

/* One inline line (without its '\n'): arguments separated by spaces or tabs. */
static int parse_inline_line(struct resp_parser *p, const char *s, size_t len, request_fn fn,
                             void *arg)
{
    if (len && s[len - 1] == '\r')
        len--;
    request_reset(p);
    for (size_t i = 0; i < len;) {
        while (i < len && (s[i] == ' ' || s[i] == '\t'))
            i++;
        size_t start = i;
        while (i < len && s[i] != ' ' && s[i] != '\t')
            i++;
        if (i == start)
            break;
        if (p->argc >= p->lim.max_args) {
            refuse(p, "too many arguments (limit %d)", p->lim.max_args);
            return -1;
        }
        if (request_grow(p, p->argc + 1 > p->cap_args ? p->cap_args * 2 : 0) < 0) {
            refuse(p, "out of memory");
            return -1;
        }
        if (request_add(p, s + start, i - start) < 0)
            return -1;
    }
    return deliver(p, fn, arg);
}

/* Consume one inline line if it is complete.  Returns bytes consumed, 0 when the line
 * is still incomplete (the caller keeps it), or -1. */
static long parse_inline(struct resp_parser *p, const char *data, size_t len, request_fn fn,
                         void *arg, int *stop)
{
    const char *nl = memchr(data, '\n', len < INLINE_MAX ? len : INLINE_MAX);
    if (!nl) {
        if (len >= INLINE_MAX) {
            refuse(p, "inline request longer than %d bytes", INLINE_MAX);
            return -1;
        }
        return 0;
    }
    p->mode = MODE_IDLE;
    int rc = parse_inline_line(p, data, (size_t)(nl - data), fn, arg);
    if (rc < 0)
        return -1;
    *stop = rc;
    return nl - data + 1;
}

/* Parse data; whatever is left incomplete of an inline line goes to p->pending. */
static int parse_bytes(struct resp_parser *p, const char *data, size_t len, request_fn fn,
                       void *arg)
{
    size_t used = 0;
    int stop = 0;
    while (used < len && !stop) {
        if (p->mode == MODE_IDLE)
            p->mode = data[used] == '*' ? MODE_MULTIBULK : MODE_INLINE;
        long k = p->mode == MODE_MULTIBULK
                     ? parse_multibulk(p, data + used, len - used, fn, arg, &stop)
                     : parse_inline(p, data + used, len - used, fn, arg, &stop);
        if (k < 0)
            return -1;
        if (k == 0)
            break;
        used += (size_t)k;
    }
    if (!stop && used < len && buf_append(&p->pending, data + used, len - used) < 0) {
        refuse(p, "out of memory");
        return -1;
    }
    return 0;
}

int resp_parse(struct resp_parser *p, const char *data, size_t len, request_fn fn, void *arg)
{
    if (p->reason[0])
        return -1;
    if (!p->pending.len)
        return parse_bytes(p, data, len, fn, arg);
    struct buf in = p->pending; /* parse pending + data from one buffer of our own */
    p->pending = (struct buf){0};
    int rc = buf_append(&in, data, len);
    if (rc < 0)
        refuse(p, "out of memory");
    else
        rc = parse_bytes(p, in.data, in.len, fn, arg);
    buf_free(&in);
    return rc;
}
