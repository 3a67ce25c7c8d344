/* TASK.SUBMIT / RESULT / STATUS / CANCEL: run on the I/O thread (submission is a few
 * mutexes, never a wait); TASK.RESULT ... WAIT parks the request in the result store
 * without holding a worker. */
#include "ggl-build.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "engine.h"
#include "engine_cmds.h"
#include "hostapi.h"

#define MAX_WAIT_MS 3600000 /* one hour: a longer WAIT is a client bug */

static struct engine *engine_or_error(struct cmd_call *call)
{
    struct engine *e = engine_global();
    if (!e)
        reply_error(call->out, "ERR the processing engine is not running");
    return e;
}

/* A decimal in [min, max]; -1 (and an -INVALID reply) otherwise. */
static int parse_u64(struct cmd_call *call, const char *what, const char *s, uint64_t min,
                     uint64_t max, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (!*s || *end || errno || s[0] == '-' || v < min || v > max) {
        reply_error(call->out, "INVALID %s must be an integer %llu..%llu", what,
                    (unsigned long long)min, (unsigned long long)max);
        return -1;
    }
    *out = v;
    return 0;
}

static int parse_priority(const char *s, enum ggl_priority *out)
{
    static const char *const names[] = {"critical", "high", "normal", "low"};
    for (int i = 0; i < 4; i++)
        if (!strcasecmp(s, names[i]) || (s[0] == '0' + i && !s[1])) {
            *out = (enum ggl_priority)i;
            return 0;
        }
    return -1;
}

/* The options after type and payload into spec; -1 when a reply was written. */
static int parse_submit_options(struct cmd_call *call, struct engine_task_spec *spec)
{
    const struct request *r = call->req;
    for (int i = 3; i < r->argc; i += 2) {
        const char *opt = r->argv[i], *val = i + 1 < r->argc ? r->argv[i + 1] : NULL;
        uint64_t v;
        if (!val) {
            reply_error(call->out, "INVALID %.32s needs a value", opt);
            return -1;
        }
        if (!strcasecmp(opt, "PRIORITY")) {
            if (parse_priority(val, &spec->priority) < 0) {
                reply_error(call->out, "INVALID PRIORITY is critical, high, normal, low or 0..3");
                return -1;
            }
        } else if (!strcasecmp(opt, "TIMEOUT")) {
            if (parse_u64(call, "TIMEOUT", val, 1, 86400000, &v) < 0)
                return -1;
            spec->timeout_ms = v;
        } else if (!strcasecmp(opt, "RETRIES")) {
            if (parse_u64(call, "RETRIES", val, 0, 100, &v) < 0)
                return -1;
            spec->max_retries = (int)v;
        } else {
            reply_error(call->out, "INVALID unknown option '%.32s' (PRIORITY, TIMEOUT, RETRIES)", opt);
            return -1;
        }
    }
    return 0;
}

static const char *const refusal_word[] = {
    [GGL_NOTFOUND] = "NOTFOUND", [GGL_RETRY] = "BUSY", [GGL_INVALID] = "INVALID",
    [GGL_NOMEM] = "ERR", [GGL_ERROR] = "ERR", [GGL_CONFLICT] = "ERR", [GGL_UNAVAILABLE] = "ERR"};

void cmd_task_submit(struct cmd_call *call)
{
    struct engine *e = engine_or_error(call);
    if (!e)
        return;
    const struct request *r = call->req;
    struct engine_task_spec spec = {.type = r->argv[1], .payload = r->argv[2],
                                    .payload_len = r->lens[2], .priority = GGL_PRIO_NORMAL,
                                    .max_retries = -1};
    if (parse_submit_options(call, &spec) < 0)
        return;
    uint64_t id;
    hostapi_clear_reason();
    enum ggl_status st = engine_submit(e, &spec, NULL, NULL, &id);
    if (st == GGL_OK) {
        reply_int(call->out, (long long)id);
        return;
    }
    const char *word = (unsigned)st <= GGL_UNAVAILABLE && refusal_word[st] ? refusal_word[st] : "ERR";
    reply_error(call->out, "%s %s", word, hostapi_take_reason());
}

/* The id argument; 0 (and a reply) when it is not one. */
static uint64_t task_id_arg(struct cmd_call *call)
{
    uint64_t id;
    return parse_u64(call, "the task id", call->req->argv[1], 1, UINT64_MAX, &id) < 0 ? 0 : id;
}

void cmd_task_result(struct cmd_call *call)
{
    struct engine *e = engine_or_error(call);
    uint64_t id = e ? task_id_arg(call) : 0, wait = 0;
    if (!id)
        return;
    const struct request *r = call->req;
    if (r->argc != 2 && (r->argc != 4 || strcasecmp(r->argv[2], "WAIT") != 0)) {
        reply_error(call->out, "INVALID usage: TASK.RESULT id [WAIT ms]");
        return;
    }
    if (r->argc == 4 && parse_u64(call, "WAIT", r->argv[3], 0, MAX_WAIT_MS, &wait) < 0)
        return;
    results_answer(engine_results(e), call, id, wait);
}

void cmd_task_status(struct cmd_call *call)
{
    struct engine *e = engine_or_error(call);
    uint64_t id = e ? task_id_arg(call) : 0;
    if (id)
        results_answer_status(engine_results(e), call, id);
}

void cmd_task_cancel(struct cmd_call *call)
{
    struct engine *e = engine_or_error(call);
    uint64_t id = e ? task_id_arg(call) : 0;
    if (!id)
        return;
    int rc = engine_cancel(e, id);
    if (rc < 0)
        reply_error(call->out, "NOTFOUND no such task (never submitted, or expired)");
    else
        reply_int(call->out, rc);
}
