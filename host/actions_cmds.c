/* ACTION.* handlers (I/O thread).  Submission only queues, so it runs here; RESULT with
 * WAIT parks in the results store (conn_defer) instead of holding a worker.  Replies:
 * SUBMIT and REPLAY an integer id; RESULT the results store's *3 (status, output,
 * reason), nil while pending, -NOTFOUND when unknown or expired; DEAD an array, newest
 * first, of *5 (id, action, attempts, last reason, payload). */
#include "ggl-build.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "actions.h"
#include "actions_cmds.h"
#include "hostapi.h"

#define DEAD_DEFAULT 10
#define DEAD_MAX 1000

static int word_is(const char *s, const char *word) { return strcasecmp(s, word) == 0; }

/* A decimal number in [0, max]; -1 otherwise. */
static int parse_u64(const char *s, uint64_t max, uint64_t *out)
{
    char *end;
    if (!*s || *s == '-')
        return -1;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (*end || errno || v > max)
        return -1;
    *out = v;
    return 0;
}

static int parse_priority(const char *s, uint32_t *out)
{
    static const char *const words[] = {"critical", "high", "normal", "low"};
    uint64_t n;
    for (uint32_t i = 0; i < 4; i++)
        if (word_is(s, words[i]))
            return *out = i, 0;
    if (parse_u64(s, 3, &n) < 0)
        return -1;
    *out = (uint32_t)n;
    return 0;
}

static void reply_status_error(struct buf *out, enum ggl_status st, const char *why)
{
    why = why && why[0] ? why : ggl_status_str(st);
    if (st == GGL_RETRY)
        reply_error(out, "BUSY %s", why);
    else if (st == GGL_INVALID)
        reply_error(out, "INVALID %s", why);
    else if (st == GGL_NOTFOUND)
        reply_error(out, "NOTFOUND %s", why);
    else
        reply_error(out, "ERR %s: %s", ggl_status_str(st), why);
}

static int running(struct cmd_call *call)
{
    if (actions_running())
        return 1;
    reply_error(call->out, "ERR the action system is not running");
    return 0;
}

/* The options after name and payload; -1 with the reply written. */
static int parse_submit_options(struct cmd_call *call, struct action_spec *sp)
{
    const struct request *r = call->req;
    unsigned seen = 0;
    for (int i = 3; i < r->argc; i += 2) {
        const char *opt = r->argv[i], *val = i + 1 < r->argc ? r->argv[i + 1] : NULL;
        uint64_t n = 0;
        int bit = word_is(opt, "PRIORITY") ? 1 : word_is(opt, "TIMEOUT") ? 2
                  : word_is(opt, "RETRIES") ? 4 : word_is(opt, "KEY") ? 8 : 0;
        int bad = !bit || !val || (seen & (unsigned)bit);
        if (!bad && bit == 1)
            bad = parse_priority(val, &sp->priority) < 0;
        else if (!bad && (bit == 2 || bit == 4))
            bad = parse_u64(val, bit == 2 ? UINT64_MAX : UINT32_MAX, &n) < 0 || (bit == 2 && n == 0);
        else if (!bad && bit == 8)
            bad = !*val || strlen(val) != r->lens[i + 1] || strlen(val) > 256;
        if (bad) {
            reply_error(call->out, "INVALID options: PRIORITY critical|high|normal|low|0..3, "
                                   "TIMEOUT ms (> 0), RETRIES n, KEY k (1..256 bytes), each once");
            return -1;
        }
        seen |= (unsigned)bit;
        if (bit == 2)
            sp->timeout_ms = n;
        else if (bit == 4)
            sp->max_retries = (uint32_t)n;
        else if (bit == 8)
            sp->key = val;
    }
    return 0;
}

void cmd_action_submit(struct cmd_call *call)
{
    const struct request *r = call->req;
    if (!running(call))
        return;
    struct action_spec sp = {.name = r->argv[1], .payload = r->argv[2], .payload_len = r->lens[2],
                             .priority = GGL_PRIO_NORMAL, .max_retries = actions_default_retries()};
    if (parse_submit_options(call, &sp) < 0)
        return;
    uint64_t id;
    int repeat;
    enum ggl_status st = actions_submit(&sp, NULL, NULL, &id, &repeat);
    if (st == GGL_OK)
        reply_int(call->out, (long long)id);
    else
        reply_status_error(call->out, st, hostapi_take_reason());
}

static int parse_id(struct cmd_call *call, const char *s, uint64_t *id)
{
    if (parse_u64(s, UINT64_MAX, id) == 0 && *id > 0)
        return 0;
    reply_error(call->out, "INVALID an action id is a positive integer");
    return -1;
}

void cmd_action_result(struct cmd_call *call)
{
    const struct request *r = call->req;
    uint64_t id, wait = 0;
    if (!running(call) || parse_id(call, r->argv[1], &id) < 0)
        return;
    if (r->argc != 2 && (r->argc != 4 || !word_is(r->argv[2], "WAIT") ||
                         parse_u64(r->argv[3], 3600000, &wait) < 0)) {
        reply_error(call->out, "INVALID ACTION.RESULT id [WAIT ms (0..3600000)]");
        return;
    }
    actions_answer_result(call, id, wait);
}

static void reply_letter(struct buf *out, const struct dead_letter *l)
{
    reply_array(out, 5);
    reply_int(out, (long long)l->id);
    reply_cstr(out, l->spec.name);
    reply_int(out, (long long)l->attempts);
    reply_cstr(out, l->reason);
    reply_bulk(out, l->spec.payload ? l->spec.payload : "", l->spec.payload_len);
}

void cmd_action_dead(struct cmd_call *call)
{
    const struct request *r = call->req;
    uint64_t count = DEAD_DEFAULT;
    if (!running(call))
        return;
    if (r->argc != 1 && (r->argc != 3 || !word_is(r->argv[1], "COUNT") ||
                         parse_u64(r->argv[2], DEAD_MAX, &count) < 0)) {
        reply_error(call->out, "INVALID ACTION.DEAD [COUNT n (0..1000)]");
        return;
    }
    struct dead_letter *letters[DEAD_MAX];
    size_t n = actions_dead_letters(letters, (size_t)count);
    reply_array(call->out, (long long)n);
    for (size_t i = 0; i < n; i++) {
        reply_letter(call->out, letters[i]);
        dead_letter_free(letters[i]);
    }
}

void cmd_action_replay(struct cmd_call *call)
{
    uint64_t id, new_id;
    if (!running(call) || parse_id(call, call->req->argv[1], &id) < 0)
        return;
    enum ggl_status st = actions_replay(id, &new_id);
    if (st == GGL_OK)
        reply_int(call->out, (long long)new_id);
    else
        reply_status_error(call->out, st, hostapi_take_reason());
}
