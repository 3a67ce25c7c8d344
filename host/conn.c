/* One control connection: bytes in -> requests (resp.c) -> the command table -> replies
 * out in request order.  Replies produced while an earlier request still runs on a
 * worker wait in slots; output is bounded and a client that does not read is dropped. */
#include "ggl-build.h"

#include <stdlib.h>
#include <string.h>

#include "conn.h"
#include "log.h"
#include "metrics.h"

#define NAME_SHOWN 64 /* bytes of an unknown command's name echoed in the error */

static void conn_free(struct conn *c)
{
    resp_parser_free(c->parser);
    buf_free(&c->out);
    buf_free(&c->wbuf);
    free(c);
}

static void on_closed(uv_handle_t *h)
{
    struct control *ctl = ((struct conn *)h)->ctl;
    conn_free((struct conn *)h);
    control_maybe_finish(ctl);
}

static void stop_reading(struct conn *c)
{
    if (!c->detached)
        uv_read_stop(&c->h.stream);
}

static void slots_free(struct conn *c)
{
    while (c->head) {
        struct reply_slot *s = c->head;
        c->head = s->next;
        if (s->job)
            s->job->owner = NULL; /* the worker finishes; the loop frees the job */
        buf_free(&s->data);
        free(s);
    }
    c->tail = NULL;
}

void conn_close(struct conn *c)
{
    if (c->closing)
        return;
    c->closing = 1;
    struct control *ctl = c->ctl;
    if (c->prev)
        c->prev->next = c->next;
    else
        ctl->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    ctl->n_conns--;
    metrics_set(ctl->m.clients, (double)ctl->n_conns);
    slots_free(c);
    if (!c->detached) /* a detached one is freed by conn_free_detached */
        uv_close((uv_handle_t *)&c->h, on_closed);
}

/* Close once everything owed to the client has been written. */
static void maybe_close(struct conn *c)
{
    if (c->close_when_flushed && !c->writing && !c->out.len && !c->head)
        conn_close(c);
}

/* --- output ---------------------------------------------------------------- */

static size_t output_bytes(const struct conn *c)
{
    size_t n = c->out.len + c->wbuf.len;
    for (const struct reply_slot *s = c->head; s; s = s->next)
        n += s->data.len;
    return n;
}

/* A client that stopped reading is dropped at its limit.  Returns -1 if dropped. */
static int check_output_limit(struct conn *c)
{
    if (output_bytes(c) <= (size_t)c->ctl->set.max_output_bytes)
        return 0;
    log_warn("control: client not reading; over %lld bytes of replies queued, disconnecting",
             (long long)c->ctl->set.max_output_bytes);
    metrics_add(c->ctl->m.output_limit, 1);
    conn_close(c);
    return -1;
}

static void flush(struct conn *c);

static void on_written(uv_write_t *req, int status)
{
    struct conn *c = req->data;
    c->writing = 0;
    c->wbuf.len = 0;
    if (c->closing)
        return;
    if (status < 0) {
        conn_close(c);
        return;
    }
    flush(c);
}

/* Write what is ready: try at once, queue the rest as one uv_write. */
static void flush(struct conn *c)
{
    if (c->detached)
        return;
    if (c->closing || c->writing || !c->out.len) {
        if (!c->closing)
            maybe_close(c);
        return;
    }
    uv_buf_t b = uv_buf_init(c->out.data, (unsigned)c->out.len);
    int n = uv_try_write(&c->h.stream, &b, 1);
    if (n < 0 && n != UV_EAGAIN) {
        conn_close(c);
        return;
    }
    buf_consume(&c->out, n > 0 ? (size_t)n : 0);
    if (!c->out.len) {
        maybe_close(c);
        return;
    }
    struct buf t = c->wbuf; /* swap: the in-flight buffer must stay put until written */
    c->wbuf = c->out;
    c->out = t;
    c->out.len = 0;
    c->wreq.data = c;
    b = uv_buf_init(c->wbuf.data, (unsigned)c->wbuf.len);
    if (uv_write(&c->wreq, &c->h.stream, &b, 1, on_written) < 0) {
        conn_close(c);
        return;
    }
    c->writing = 1;
}

/* Move finished slots at the head to the output, in order. */
static void release_slots(struct conn *c)
{
    while (c->head && !c->head->job) {
        struct reply_slot *s = c->head;
        if (!c->out.len) {
            struct buf t = c->out;
            c->out = s->data;
            s->data = t;
        } else {
            buf_append(&c->out, s->data.data, s->data.len);
        }
        c->head = s->next;
        if (!c->head)
            c->tail = NULL;
        buf_free(&s->data);
        free(s);
    }
}

static struct reply_slot *slot_add(struct conn *c, struct job *j)
{
    struct reply_slot *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->conn = c;
    s->job = j;
    if (c->tail)
        c->tail->next = s;
    else
        c->head = s;
    c->tail = s;
    return s;
}

/* Where the next reply goes: straight out when nothing is pending, else behind it. */
static struct buf *reply_target(struct conn *c)
{
    if (!c->tail)
        return &c->out;
    if (!c->tail->job)
        return &c->tail->data;
    struct reply_slot *s = slot_add(c, NULL);
    return s ? &s->data : &c->out; /* out of memory: order is lost, never a reply */
}

/* --- requests ------------------------------------------------------------- */

int conn_has_pending(const struct conn *c)
{
    for (const struct reply_slot *s = c->head; s; s = s->next)
        if (s->job)
            return 1;
    return 0;
}

struct job *conn_defer(struct cmd_call *call)
{
    struct conn *c = call->conn;
    struct job *j = job_new(call->req, NULL, NULL);
    struct reply_slot *s = j ? slot_add(c, j) : NULL;
    if (!s) {
        job_free(j);
        return NULL;
    }
    j->owner = s;
    j->pool = c->ctl->pool;
    return j;
}

static void run_on_worker(struct job *j)
{
    const struct command *cmd = j->fn;
    struct cmd_call call = {.req = &j->req, .out = &j->reply, .job = j};
    cmd->fn(&call);
}

static void submit(struct conn *c, const struct command *cmd, const struct request *req)
{
    struct job *j = job_new(req, run_on_worker, cmd);
    struct reply_slot *s = j ? slot_add(c, j) : NULL;
    if (s) {
        j->owner = s;
        if (offload_submit(c->ctl->pool, j) == 0)
            return;
        s->job = NULL; /* the slot stays, holding the -BUSY below */
    }
    job_free(j);
    reply_error(reply_target(c), "BUSY too many commands waiting for a worker");
}

static void execute(struct conn *c, const struct request *req)
{
    const struct control_settings *set = &c->ctl->set;
    const struct command *cmd = command_find(req->argv[0]);
    if (!cmd || ((cmd->flags & CMD_DEBUG) && !set->debug_commands)) {
        reply_error(reply_target(c), "ERR unknown command '%.*s'", NAME_SHOWN, req->argv[0]);
        return;
    }
    if (!command_arity_ok(cmd, req->argc)) {
        reply_error(reply_target(c), "ERR wrong number of arguments for '%s' command", cmd->name);
        return;
    }
    if (set->password[0] && !c->sess.authed && !(cmd->flags & CMD_NOAUTH)) {
        reply_error(reply_target(c), "NOAUTH Authentication required.");
        return;
    }
    if (cmd->flags & CMD_WORKER) {
        submit(c, cmd, req);
        return;
    }
    struct cmd_call call = {.req = req, .out = reply_target(c), .ctl = c->ctl, .sess = &c->sess,
                            .conn = c};
    cmd->fn(&call);
}

/* resp_parse callback: non-zero stops parsing (the connection is going away). */
static int on_request(void *arg, const struct request *req)
{
    struct conn *c = arg;
    c->request_started = 0;
    execute(c, req);
    release_slots(c); /* a -BUSY may have finished a slot at the head */
    metrics_add(c->ctl->m.commands, 1);
    if (check_output_limit(c) < 0)
        return 1;
    if (c->sess.close_after_reply) {
        c->close_when_flushed = 1;
        stop_reading(c);
        return 1;
    }
    return 0;
}

static void protocol_error(struct conn *c)
{
    const char *why = resp_error(c->parser);
    log_info("control: closing a connection: %s", why);
    metrics_add(c->ctl->m.protocol_errors, 1);
    reply_error(reply_target(c), "ERR %s", why);
    c->close_when_flushed = 1;
    stop_reading(c);
}

int conn_feed(struct conn *c, const char *data, size_t n)
{
    if (resp_parse(c->parser, data, n, on_request, c) >= 0)
        return 0;
    protocol_error(c);
    return -1;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
    struct conn *c = (struct conn *)h;
    (void)suggested;
    *b = uv_buf_init(c->ctl->read_buf, sizeof c->ctl->read_buf);
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    struct conn *c = (struct conn *)s;
    if (n < 0) { /* EOF or error: answer what was asked, then close */
        uv_read_stop(s);
        c->close_when_flushed = 1;
        if (n != UV_EOF)
            conn_close(c);
        else
            maybe_close(c);
        return;
    }
    if (n == 0) /* EAGAIN */
        return;
    uint64_t now = uv_now(s->loop) + 1; /* never 0 */
    if (!c->request_started)
        c->request_started = now;
    conn_feed(c, b->base, (size_t)n);
    if (!c->request_started && resp_buffered(c->parser))
        c->request_started = now; /* the next request began in this read */
    flush(c);
}

/* --- worker results ------------------------------------------------------ */

void conn_job_done(struct job *j, void *arg)
{
    struct reply_slot *s = j->owner;
    (void)arg;
    if (!s) { /* its connection is gone */
        job_free(j);
        return;
    }
    struct conn *c = s->conn;
    if (j->cancelled)
        reply_error(&j->reply, "ERR shutting down");
    struct buf t = s->data;
    s->data = j->reply;
    j->reply = t;
    s->job = NULL;
    job_free(j);
    release_slots(c);
    if (check_output_limit(c) == 0)
        flush(c);
}

/* --- accept and drain --------------------------------------------------- */

static void refuse_client(struct conn *c)
{
    static const char msg[] = "-ERR max number of clients reached\r\n";
    uv_buf_t b = uv_buf_init((char *)msg, sizeof msg - 1);
    uv_try_write(&c->h.stream, &b, 1);
    metrics_add(c->ctl->m.rejected, 1);
    conn_close(c);
}

static int conn_init_handle(struct conn *c, uv_stream_t *server)
{
    return server->type == UV_NAMED_PIPE ? uv_pipe_init(server->loop, &c->h.pipe, 0)
                                         : uv_tcp_init(server->loop, &c->h.tcp);
}

static void conn_link(struct control *ctl, struct conn *c)
{
    c->ctl = ctl;
    c->next = ctl->conns;
    if (ctl->conns)
        ctl->conns->prev = c;
    ctl->conns = c;
    ctl->n_conns++;
    metrics_set(ctl->m.clients, (double)ctl->n_conns);
    metrics_add(ctl->m.connections, 1);
}

static struct resp_parser *parser_for(const struct control *ctl)
{
    const struct resp_limits lim = {(size_t)ctl->set.max_request_bytes, (int)ctl->set.max_args};
    return resp_parser_new(&lim);
}

struct conn *conn_new_detached(struct control *ctl)
{
    struct conn *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->detached = 1;
    if (!(c->parser = parser_for(ctl))) {
        free(c);
        return NULL;
    }
    conn_link(ctl, c);
    return c;
}

void conn_free_detached(struct conn *c)
{
    conn_close(c);
    conn_free(c);
}

void conn_accept(uv_stream_t *server, int status)
{
    struct control *ctl = server->loop->data;
    if (status < 0 || ctl->stopping)
        return;
    struct conn *c = calloc(1, sizeof *c);
    if (!c || conn_init_handle(c, server) < 0) {
        free(c);
        return;
    }
    conn_link(ctl, c); /* linked first so conn_close can always unlink it */
    if (uv_accept(server, &c->h.stream) < 0) {
        conn_close(c);
        return;
    }
    if (ctl->n_conns > (size_t)ctl->set.max_clients) {
        refuse_client(c);
        return;
    }
    if (server->type == UV_TCP)
        uv_tcp_nodelay(&c->h.tcp, 1);
    c->parser = parser_for(ctl);
    if (!c->parser || uv_read_start(&c->h.stream, on_alloc, on_read) < 0)
        conn_close(c);
}

static void request_timed_out(struct conn *c)
{
    log_info("control: closing a connection: request not complete after %lld ms",
             (long long)c->ctl->set.request_timeout_ms);
    metrics_add(c->ctl->m.request_timeouts, 1);
    reply_error(reply_target(c), "ERR request not complete within %lld ms",
                (long long)c->ctl->set.request_timeout_ms);
    c->close_when_flushed = 1;
    c->request_started = 0;
    stop_reading(c);
    flush(c);
}

void conn_sweep(uv_timer_t *t)
{
    struct control *ctl = t->data;
    uint64_t now = uv_now(t->loop) + 1, limit = (uint64_t)ctl->set.request_timeout_ms;
    for (struct conn *c = ctl->conns, *next; c; c = next) {
        next = c->next; /* flush may close c */
        if (c->request_started && !c->close_when_flushed && now - c->request_started >= limit)
            request_timed_out(c);
    }
}

/* Shutdown: read no more requests; close once the replies owed are written. */
void conn_drain(struct conn *c)
{
    uv_read_stop(&c->h.stream);
    c->close_when_flushed = 1;
    maybe_close(c);
}
