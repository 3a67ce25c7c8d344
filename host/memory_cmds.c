/* Memory commands.  A read the cache can answer is answered here, on the I/O thread (a
 * hop to a worker costs up to ~30 us, PERF.md), and so is a write or delete when every
 * bound tier is in-process (memory_writes_nonblocking); anything else holds its place
 * in the connection's reply order (conn_defer) and is finished by a memory worker,
 * which writes the reply and hands the job back to the loop.  Every queued request on a
 * key runs in order on that key's worker, and a request that follows unfinished
 * requests of its connection is queued too, so a pipelining client reads its own
 * writes, as with Redis.  A write made here and a worker's write to the same key (from
 * another connection) may land in either order: both are insert-if-newer, so every
 * tier keeps the newer.  Replies match Redis: GET of a missing key is a nil bulk, SET
 * is +OK, DEL an integer count. */
#include "ggl-build.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "conn.h"
#include "hostapi.h"
#include "maintenance.h"
#include "memory_args.h"
#include "memory_async.h"
#include "memory_cmds.h"

/* An error reply for a status other than OK/NOTFOUND, with its reason. */
static void reply_failure(struct buf *out, enum ggl_status st, const char *why)
{
    why = why && why[0] ? why : ggl_status_str(st);
    if (st == GGL_RETRY)
        reply_error(out, "BUSY %s", why);
    else if (st == GGL_INVALID)
        reply_error(out, "INVALID %s", why);
    else
        reply_error(out, "ERR %s: %s", ggl_status_str(st), why);
}

static int withmeta_of(const struct request *req)
{
    return req->argc == 3; /* checked by the parser before anything was deferred */
}

/* The reply of a read: the value (nil when absent), or the value with its metadata.
 * The value is freed unless it is the caller's buffer `own`. */
static void reply_read(struct buf *out, struct memory_result *r, int withmeta, const void *own)
{
    if (r->status == GGL_NOTFOUND) {
        reply_nil(out);
    } else if (r->status != GGL_OK) {
        reply_failure(out, r->status, r->reason);
    } else if (!withmeta) {
        reply_bulk(out, r->value.data, r->value.len);
    } else {
        char num[4][32];
        const struct ggl_entry *m = &r->value.meta;
        snprintf(num[0], sizeof num[0], "%llu", (unsigned long long)m->version);
        snprintf(num[1], sizeof num[1], "%g", m->importance);
        snprintf(num[2], sizeof num[2], "%llu", (unsigned long long)m->access_count);
        snprintf(num[3], sizeof num[3], "%llu", (unsigned long long)m->expires_ms);
        reply_array(out, 12);
        reply_cstr(out, "value");
        reply_bulk(out, r->value.data, r->value.len);
        reply_cstr(out, "tier");
        reply_cstr(out, tier_slot_names[r->value.tier]);
        reply_cstr(out, "version");
        reply_cstr(out, num[0]);
        reply_cstr(out, "importance");
        reply_cstr(out, num[1]);
        reply_cstr(out, "access_count");
        reply_cstr(out, num[2]);
        reply_cstr(out, "expires_ms");
        reply_cstr(out, num[3]);
    }
    if (r->status == GGL_OK && r->value.data != own)
        free(r->value.data);
}

/* A memory worker finished a deferred request: reply into the job, hand it back. */
static void finish_job(void *arg, struct memory_result *r)
{
    struct job *j = arg;
    switch (r->op) {
    case MEM_OP_GET: reply_read(&j->reply, r, withmeta_of(&j->req), NULL); break;
    case MEM_OP_PUT:
        if (r->status == GGL_OK)
            reply_status(&j->reply, r->queued ? "QUEUED" : "OK");
        else
            reply_failure(&j->reply, r->status, r->reason);
        break;
    case MEM_OP_DEL: break; /* multi-key: see del_done */
    }
    offload_complete(j->pool, j);
}

#define HERE_MAX_VALUE 65536 /* larger values are copied on a worker */
#define HERE_MAX_KEYS 16      /* a DEL of more keys runs on a worker */

/* May this write run here, on the I/O thread?  Nothing of its connection is still
 * running (it must not overtake that), no tier it writes can block, it is small, and a
 * refusal would not be queued (only the workers hold writes for QUEUED). */
static int write_here(const struct cmd_call *call, size_t bytes, int keys)
{
    return bytes <= HERE_MAX_VALUE && keys <= HERE_MAX_KEYS && !conn_has_pending(call->conn) &&
           !memory_async_queues_writes() && memory_writes_nonblocking();
}

/* Submission refused (queue full, stopping): the deferred slot gets the error now. */
static void refuse_job(struct job *j, enum ggl_status st)
{
    reply_failure(&j->reply, st, hostapi_take_reason());
    offload_complete(j->pool, j);
}

void cmd_mem_get(struct cmd_call *call)
{
    const struct request *req = call->req;
    int withmeta;
    char err[160];
    if (memory_parse_get_options(req->argc - 2, (const char *const *)req->argv + 2,
                                 req->lens + 2, &withmeta, err, sizeof err) < 0 ||
        (withmeta && strcasecmp(req->argv[0], "GET") == 0)) {
        reply_error(call->out, "ERR %s", withmeta ? "GET takes one key" : err);
        return;
    }
    /* With earlier requests of this connection still running, the read must come after
     * them: it queues behind the key's earlier requests.  Otherwise the cache may answer
     * at once. */
    int behind = conn_has_pending(call->conn);
    struct memory_result r = {.op = MEM_OP_GET};
    char value[4096]; /* a hit this size is copied here, not allocated */
    if (!behind && (r.status = memory_get_cached_into(req->argv[1], req->lens[1], value,
                                                      sizeof value, &r.value)) != GGL_RETRY) {
        reply_read(call->out, &r, withmeta, value);
        return;
    }
    struct job *j = conn_defer(call);
    if (!j) {
        reply_error(call->out, "ERR out of memory");
        return;
    }
    enum ggl_status st = memory_async_read(req->argv[1], req->lens[1], finish_job, j);
    if (st != GGL_OK)
        refuse_job(j, st);
}

/* MEM.WHERE key: the tiers holding a live copy, top first (on a control worker: every
 * tier is asked, LTM included). */
void cmd_mem_where(struct cmd_call *call)
{
    int live[SLOT_COUNT];
    int n = memory_where(call->req->argv[1], call->req->lens[1], live);
    if (n < 0) {
        reply_failure(call->out, GGL_RETRY, hostapi_take_reason());
        return;
    }
    reply_array(call->out, n);
    for (int t = 0; t < SLOT_COUNT; t++)
        if (live[t])
            reply_cstr(call->out, tier_slot_names[t]);
}

void cmd_mem_put(struct cmd_call *call)
{
    const struct request *req = call->req;
    struct memory_write w;
    char err[200];
    if (memory_parse_put_options(req->argc - 3, (const char *const *)req->argv + 3,
                                 req->lens + 3, &w, err, sizeof err) < 0) {
        reply_error(call->out, "INVALID %s", err);
        return;
    }
    if (w.tier >= 0 && !memory_tier_bound(w.tier)) {
        reply_error(call->out, "INVALID tier %s is not bound to a backend", tier_slot_names[w.tier]);
        return;
    }
    if (write_here(call, req->lens[2], 1)) {
        enum ggl_status st = memory_put(req->argv[1], req->lens[1], req->argv[2], req->lens[2],
                                        &w, NULL);
        if (st == GGL_OK)
            reply_status(call->out, "OK");
        else
            reply_failure(call->out, st, hostapi_take_reason());
        return;
    }
    struct job *j = conn_defer(call);
    if (!j) {
        reply_error(call->out, "ERR out of memory");
        return;
    }
    enum ggl_status st = memory_async_put(req->argv[1], req->lens[1], req->argv[2], req->lens[2],
                                          &w, finish_job, j);
    if (st != GGL_OK)
        refuse_job(j, st);
}

/* DEL of several keys: one deferred reply counting the keys that existed. */
struct del_batch {
    struct job *job;
    _Atomic int remaining, deleted, failed;
    enum ggl_status first_error;
    char reason[160];
};

/* Count one key's outcome (the first failure kept); 1 when it was the last key. */
static int del_count(struct del_batch *b, enum ggl_status st, int existed, const char *why)
{
    if (st != GGL_OK && !atomic_fetch_add(&b->failed, 1)) {
        b->first_error = st;
        snprintf(b->reason, sizeof b->reason, "%s", why ? why : "");
    }
    if (st == GGL_OK && existed)
        atomic_fetch_add(&b->deleted, 1);
    return atomic_fetch_sub(&b->remaining, 1) == 1;
}

/* Every key counted: the first failure, else how many existed. */
static void del_reply(struct del_batch *b, struct buf *out)
{
    if (atomic_load(&b->failed))
        reply_failure(out, b->first_error, b->reason);
    else
        reply_int(out, atomic_load(&b->deleted));
}

static void del_one_done(struct del_batch *b, enum ggl_status st, int existed, const char *why)
{
    if (!del_count(b, st, existed, why))
        return;
    del_reply(b, &b->job->reply);
    offload_complete(b->job->pool, b->job);
    free(b);
}

static void del_done(void *arg, struct memory_result *r)
{
    del_one_done(arg, r->status, r->existed, r->reason);
}

/* DEL on the I/O thread (write_here): every key deleted, then the same reply. */
static void del_here(struct cmd_call *call)
{
    const struct request *req = call->req;
    struct del_batch b = {.job = NULL};
    atomic_init(&b.remaining, req->argc - 1);
    for (int i = 1; i < req->argc; i++) {
        int existed = 0;
        enum ggl_status st = memory_del(req->argv[i], req->lens[i], &existed);
        del_count(&b, st, existed, st == GGL_OK ? NULL : hostapi_take_reason());
    }
    del_reply(&b, call->out);
}

void cmd_mem_del(struct cmd_call *call)
{
    const struct request *req = call->req;
    if (write_here(call, 0, req->argc - 1)) {
        del_here(call);
        return;
    }
    struct del_batch *b = calloc(1, sizeof *b);
    struct job *j = b ? conn_defer(call) : NULL;
    if (!j) {
        free(b);
        reply_error(call->out, "ERR out of memory");
        return;
    }
    b->job = j;
    /* One extra count held while submitting, so the reply cannot go before the last. */
    atomic_store(&b->remaining, req->argc);
    for (int i = 1; i < req->argc; i++) {
        enum ggl_status st = memory_async_del(req->argv[i], req->lens[i], del_done, b);
        if (st != GGL_OK)
            del_one_done(b, st, 0, hostapi_take_reason());
    }
    del_one_done(b, GGL_OK, 0, NULL);
}

void cmd_mem_stats(struct cmd_call *call)
{
    char text[4096];
    size_t n = memory_info(text, sizeof text);
    reply_bulk(call->out, text, n);
}

/* MEM.MAINTAIN: one maintenance cycle now (on a worker: it scans whole tiers). */
void cmd_mem_maintain(struct cmd_call *call)
{
    struct maintenance_report r;
    char text[256];
    maintenance_cycle(&r);
    int n = snprintf(text, sizeof text,
                     "scanned:%zu\r\nmoved_stm_im:%zu\r\nmoved_im_ltm:%zu\r\npurged:%zu\r\n"
                     "failed:%zu\r\naccess_flushed:%zu\r\nduration_us:%llu\r\n",
                     r.scanned, r.moved_stm_im, r.moved_im_ltm, r.purged, r.failed, r.touched,
                     (unsigned long long)r.duration_us);
    reply_bulk(call->out, text, (size_t)n);
}

/* PLUGIN.SWAP slot instance [MIGRATE] (on a worker: the swap waits for the old binding's
 * calls to drain). */
void cmd_plugin_swap(struct cmd_call *call)
{
    const struct request *req = call->req;
    int tier = memory_tier_by_name(req->argv[1], req->lens[1]);
    int migrate = req->argc == 4 && strcasecmp(req->argv[3], "MIGRATE") == 0;
    if (tier < 0 || (req->argc == 4 && !migrate)) {
        reply_error(call->out, "INVALID PLUGIN.SWAP slot instance [MIGRATE], slot one of cache, stm, im, ltm");
        return;
    }
    enum ggl_status st = memory_swap(tier, req->argv[2], migrate);
    if (st == GGL_OK)
        reply_status(call->out, "OK");
    else
        reply_failure(call->out, st, hostapi_take_reason());
}
