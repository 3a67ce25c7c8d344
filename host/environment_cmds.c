/* Environment and agent commands: STATE.GET/SET/HISTORY/WATCH and AGENT.STATE/SET,
 * ORCH.PUBLISH.  A STATE.SET is answered once the applier applied it (so a client that
 * read +OK reads its write back); a STATE.GET behind unfinished requests of its
 * connection waits behind the queued updates (a barrier), so a pipeline reads its own
 * writes.  STATE.WATCH parks its reply (conn_defer) until the key changes, its timeout
 * passes or the host stops; at most environment.max_watchers are parked (-BUSY beyond). */
#include "ggl-build.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "conn.h"
#include "environment.h"
#include "environment_cmds.h"
#include "hostapi.h"
#include "orchestrator.h"

/* A refusal as an error reply with its word first. */
static void reply_refusal(struct buf *out, enum ggl_status st, const char *why)
{
    const char *word = "ERR";
    switch (st) {
    case GGL_RETRY: word = "BUSY"; break;
    case GGL_INVALID: word = "INVALID"; break;
    case GGL_NOTFOUND: word = "NOTFOUND"; break;
    default: break;
    }
    reply_error(out, "%s %s", word, why && why[0] ? why : ggl_status_str(st));
}

/* A deferred reply that could not be queued: answer it now. */
static void finish_refused(struct job *j, enum ggl_status st)
{
    reply_refusal(&j->reply, st, hostapi_take_reason());
    offload_complete(j->pool, j);
}

static int parse_count(const char *s, long long lo, long long hi, long long *out)
{
    char *end;
    *out = strtoll(s, &end, 10);
    return end != s && !*end && *out >= lo && *out <= hi;
}

/* --- STATE.GET [key [WITHMETA]] ----------------------------------------------------- */

static void reply_pair(void *arg, const char *key, const char *value, size_t len)
{
    reply_cstr(arg, key);
    reply_bulk(arg, value, len);
}

static void reply_key(struct buf *out, const struct request *req)
{
    char *v, source[ENV_SOURCE_MAX];
    size_t len;
    uint64_t at;
    enum ggl_status st = environment_get(req->argv[1], &v, &len, &at, source, sizeof source);
    if (st == GGL_NOTFOUND) {
        reply_nil(out);
        return;
    }
    if (st != GGL_OK) {
        reply_refusal(out, st, "state not available");
        return;
    }
    if (req->argc == 3) {
        reply_array(out, 6);
        reply_cstr(out, "value");
        reply_bulk(out, v, len);
        reply_cstr(out, "updated_ms");
        reply_int(out, (long long)at);
        reply_cstr(out, "source");
        reply_cstr(out, source);
    } else {
        reply_bulk(out, v, len);
    }
    free(v);
}

/* Every key and value, flat like HGETALL, from one pass under the state lock. */
static void reply_all(struct buf *out)
{
    struct buf body = {0};
    size_t got = environment_foreach(reply_pair, &body);
    reply_array(out, 2 * (long long)got);
    buf_append(out, body.data, body.len);
    buf_free(&body);
}

static void get_after_barrier(void *arg, enum ggl_status st)
{
    struct job *j = arg;
    (void)st;
    reply_key(&j->reply, &j->req);
    offload_complete(j->pool, j);
}

void cmd_state_get(struct cmd_call *call)
{
    const struct request *req = call->req;
    if (req->argc > 3 || (req->argc == 3 && strcasecmp(req->argv[2], "WITHMETA") != 0)) {
        reply_error(call->out, "ERR STATE.GET [key [WITHMETA]]");
        return;
    }
    if (req->argc == 1) {
        reply_all(call->out);
        return;
    }
    if (!conn_has_pending(call->conn)) {
        reply_key(call->out, req);
        return;
    }
    struct job *j = conn_defer(call);
    if (!j) {
        reply_error(call->out, "ERR out of memory");
        return;
    }
    enum ggl_status st = environment_barrier(get_after_barrier, j);
    if (st != GGL_OK)
        finish_refused(j, st);
}

/* --- STATE.SET key value -------------------------------------------------------------- */

static void set_applied(void *arg, enum ggl_status st)
{
    struct job *j = arg;
    if (st == GGL_OK)
        reply_status(&j->reply, "OK");
    else
        reply_refusal(&j->reply, st, "environment max_keys reached");
    offload_complete(j->pool, j);
}

void cmd_state_set(struct cmd_call *call)
{
    const struct request *req = call->req;
    struct job *j = conn_defer(call);
    if (!j) {
        reply_error(call->out, "ERR out of memory");
        return;
    }
    hostapi_clear_reason();
    enum ggl_status st = environment_set(req->argv[1], req->argv[2], req->lens[2], "client",
                                         set_applied, j);
    if (st != GGL_OK)
        finish_refused(j, st);
}

/* --- STATE.HISTORY n ---------------------------------------------------------------- */

static void reply_change(void *arg, const struct env_change *c)
{
    struct buf *out = arg;
    reply_array(out, 4);
    reply_int(out, (long long)c->at_ms);
    reply_cstr(out, c->key);
    if (c->value)
        reply_bulk(out, c->value, c->value_len);
    else
        reply_nil(out);
    reply_cstr(out, c->source);
}

void cmd_state_history(struct cmd_call *call)
{
    long long n;
    if (!parse_count(call->req->argv[1], 1, 1LL << 40, &n)) {
        reply_error(call->out, "INVALID STATE.HISTORY wants a count >= 1");
        return;
    }
    struct buf body = {0};
    size_t got = environment_history((size_t)n, reply_change, &body);
    reply_array(call->out, (long long)got);
    buf_append(call->out, body.data, body.len);
    buf_free(&body);
}

/* --- STATE.WATCH key timeout_ms ---------------------------------------------------- */

/* On the applier (or the releasing thread): the watch fired. */
static void watch_fired(void *arg, const struct env_change *c, const char *why)
{
    struct job *j = arg;
    if (c) {
        reply_array(&j->reply, 2);
        reply_cstr(&j->reply, c->key);
        if (c->value)
            reply_bulk(&j->reply, c->value, c->value_len);
        else
            reply_nil(&j->reply);
    } else if (why && strcmp(why, "timeout") == 0) {
        reply_nil(&j->reply);
    } else {
        reply_error(&j->reply, "%s", why ? why : "ERR watch released");
    }
    offload_complete(j->pool, j);
}

void cmd_state_watch(struct cmd_call *call)
{
    const struct request *req = call->req;
    long long ms;
    const struct env_conf *ec = environment_conf();
    if (!parse_count(req->argv[2], 1, ec->watch_max_ms, &ms)) {
        reply_error(call->out, "INVALID STATE.WATCH key timeout_ms, timeout 1..%lld",
                    (long long)ec->watch_max_ms);
        return;
    }
    struct job *j = conn_defer(call);
    if (!j) {
        reply_error(call->out, "ERR out of memory");
        return;
    }
    enum ggl_status st = environment_watch(req->argv[1], clock_now_ms() + (uint64_t)ms, watch_fired, j);
    if (st == GGL_RETRY)
        hostapi_set_reason("too many parked watches (environment.max_watchers = %lld)",
                           (long long)ec->max_watchers);
    else if (st == GGL_UNAVAILABLE)
        hostapi_set_reason("shutting down");
    else if (st == GGL_INVALID)
        hostapi_set_reason("state keys are 1..%d bytes", ENV_KEY_MAX);
    if (st != GGL_OK)
        finish_refused(j, st);
}

/* --- AGENT.STATE, AGENT.SET field value, ORCH.PUBLISH topic key payload --------------- */

void cmd_agent_state(struct cmd_call *call)
{
    struct agent_state a;
    orchestrator_agent_state(&a);
    reply_array(call->out, 10);
    const char *pairs[][2] = {{"goal", a.goal}, {"step", a.step}, {"last_outcome", a.last_outcome},
                              {"outcome_source", a.outcome_source}};
    for (size_t i = 0; i < 4; i++) {
        reply_cstr(call->out, pairs[i][0]);
        reply_cstr(call->out, pairs[i][1]);
    }
    reply_cstr(call->out, "updated_at_ms");
    reply_int(call->out, (long long)a.updated_at_ms);
}

void cmd_agent_set(struct cmd_call *call)
{
    const struct request *req = call->req;
    hostapi_clear_reason();
    enum ggl_status st = orchestrator_agent_set(req->argv[1], req->argv[2], req->lens[2], "client");
    if (st == GGL_OK)
        reply_status(call->out, "OK");
    else
        reply_refusal(call->out, st, hostapi_take_reason());
}

void cmd_orch_publish(struct cmd_call *call)
{
    const struct request *req = call->req;
    struct orch_msg m = {req->argv[1], "client", req->argv[2], req->argv[3], req->lens[3], 0};
    hostapi_clear_reason();
    enum ggl_status st = orchestrator_publish(&m);
    if (st == GGL_OK)
        reply_status(call->out, "OK");
    else
        reply_refusal(call->out, st, st == GGL_INVALID ? "topic is 1..64 bytes" : hostapi_take_reason());
}
