/* Private to the control socket (control.c, conn.c): the server state and one client
 * connection with its parser, its reply slots kept in request order, and its bounded
 * output. */
#ifndef GGL_HOST_CONN_H
#define GGL_HOST_CONN_H

#include <time.h>
#include <uv.h>

#include "commands.h"
#include "control.h"
#include "offload.h"
#include "resp.h"

struct control_metrics {
    struct ggl_metric *clients, *connections, *rejected, *commands, *protocol_errors,
        *output_limit, *request_timeouts;
};

struct control {
    struct control_settings set;
    const struct config *conf;
    const struct instance *inst;
    size_t n_inst;
    uv_loop_t loop;
    uv_pipe_t unix_srv;
    uv_tcp_t tcp_srv;
    int have_unix, have_tcp, unix_bound;
    uv_async_t stop_async;     /* control_stop -> the loop */
    uv_timer_t deadline;       /* shutdown drain deadline */
    uv_timer_t sweep;          /* closes requests not completed in request_timeout_ms */
    struct offload *pool;
    struct conn *conns;        /* every open connection */
    size_t n_conns;
    int stopping, finished;
    int disabled;              /* no control section: nothing runs */
    pthread_t thread;
    struct timespec started;
    struct control_metrics m;
    char read_buf[64 * 1024];  /* one read at a time on the loop: shared by all */
};

/* A reply that cannot leave yet because an earlier request is still running. */
struct reply_slot {
    struct reply_slot *next;
    struct conn *conn;
    struct job *job;           /* running on a worker; NULL once done */
    struct buf data;           /* the reply (replies, for a slot of inline results) */
};

struct conn {
    union {
        uv_stream_t stream;
        uv_pipe_t pipe;
        uv_tcp_t tcp;
    } h;                       /* first: libuv callbacks get the conn from the handle */
    struct control *ctl;
    struct conn *prev, *next;
    struct resp_parser *parser;
    struct session sess;
    struct buf out;            /* replies ready to send, in order */
    struct buf wbuf;           /* the write in flight */
    uv_write_t wreq;
    int writing;
    int closing;               /* uv_close called */
    int close_when_flushed;    /* EOF, protocol error, drain: no more requests */
    int detached;              /* no socket (conn_new_detached): replies stay in out */
    uint64_t request_started;  /* loop ms when a request's first bytes came; 0: none */
    struct reply_slot *head, *tail;  /* replies waiting for an earlier one, in request order */
};

/* I/O thread, inside a command handler: hold this request's place in the reply order
 * for a reply produced elsewhere.  Whoever finishes writes job->reply (the job owns a
 * copy of the request) and calls offload_complete(job->pool, job), from any thread.
 * NULL when out of memory. */
struct job *conn_defer(struct cmd_call *call);
/* Does the connection wait for a reply produced elsewhere (a deferred or worker job)?
 * A command that must see its predecessors' effects cannot then take a shortcut. */
int conn_has_pending(const struct conn *c);
void conn_accept(uv_stream_t *server, int status);
/* Bytes read from the client: run the requests they complete; a malformed one gets its
 * -ERR and ends reading (returns -1).  Replies go to c->out or wait in slots. */
int conn_feed(struct conn *c, const char *data, size_t n);
/* A connection without a socket, on a control from control_new_offline (one thread
 * runs both): feed it with conn_feed, take its replies from c->out, run ctl->loop while
 * conn_has_pending, then conn_free_detached.  NULL when out of memory. */
struct conn *conn_new_detached(struct control *ctl);
void conn_free_detached(struct conn *c);
void conn_drain(struct conn *c);
/* Loop timer: close every connection whose request began over request_timeout_ms ago. */
void conn_sweep(uv_timer_t *t);
void conn_close(struct conn *c);
/* Loop thread: a worker finished (offload's done callback). */
void conn_job_done(struct job *j, void *arg);
/* control.c: shutdown may complete once the last connection is gone. */
void control_maybe_finish(struct control *ctl);

#endif
