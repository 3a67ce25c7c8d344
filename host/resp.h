/* RESP2 for the control socket: a growable byte buffer, reply encoders, and a request
 * parser that runs Debian's hiredis 0.14 reader under the host's limits and splits
 * inline commands (`PING\r\n`) itself. */
#ifndef GGL_HOST_RESP_H
#define GGL_HOST_RESP_H

#include <stddef.h>
#include <stdint.h>

struct buf {
    char *data;
    size_t len, cap;
};

int buf_reserve(struct buf *b, size_t extra);
int buf_append(struct buf *b, const void *p, size_t n);
void buf_consume(struct buf *b, size_t n); /* drop n bytes from the front */
void buf_free(struct buf *b);

/* Reply encoders.  On allocation failure they leave the buffer unchanged; the caller
 * sees it only as a shorter reply, and the connection's limit check still holds. */
void reply_status(struct buf *b, const char *s);               /* +s */
void reply_error(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void reply_int(struct buf *b, long long v);                    /* :v */
void reply_bulk(struct buf *b, const void *p, size_t n);       /* $n p */
void reply_cstr(struct buf *b, const char *s);                 /* bulk of a C string */
void reply_nil(struct buf *b);                                 /* $-1 */
void reply_array(struct buf *b, long long n);                  /* *n header */

/* One parsed request.  argv[i] is NUL-terminated and lens[i] long; all point into
 * storage owned by the parser, valid until the callback returns. */
struct request {
    int argc;
    char **argv;
    size_t *lens;
};

struct resp_limits {
    size_t max_request_bytes; /* bytes of one request, and bytes buffered unparsed */
    int max_args;             /* elements of one request */
};

struct resp_parser;

/* Called for every complete request, in order.  Return non-zero to stop parsing: the
 * rest of the input is dropped (the connection is closing). */
typedef int (*request_fn)(void *arg, const struct request *req);

struct resp_parser *resp_parser_new(const struct resp_limits *lim);
void resp_parser_free(struct resp_parser *p);
/* Parse `len` bytes, calling fn for each complete request.  Returns 0, or -1 on a
 * malformed or oversized request: resp_error() then says why, and the parser is dead. */
int resp_parse(struct resp_parser *p, const char *data, size_t len, request_fn fn, void *arg);
const char *resp_error(const struct resp_parser *p);
/* Bytes held unparsed (the request in progress). */
size_t resp_buffered(const struct resp_parser *p);

#endif
