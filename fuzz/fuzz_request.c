/* libFuzzer target: the whole request path without a socket.  Bytes go into a detached
 * connection (conn_feed: parser, command table, handlers, memory workers, reply order)
 * and every reply that comes out must be well-formed RESP.  Must never crash or hang. */
#include "ggl-build.h"

#include <hiredis/hiredis.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "conn.h"
#include "loader.h"
#include "log.h"
#include "memory.h"
#include "memory_async.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char conf_text[] =
    "control = { unix = \"/nonexistent/fuzz.sock\"; max_request_bytes = 65536;\n"
    "  max_args = 256; max_output_bytes = 1048576; workers = 1; worker_queue = 8; };\n"
    "backends = { c = { plugin = \"cache\"; }; s = { plugin = \"mem\"; };"
    " s2 = { plugin = \"mem\"; }; };\n"
    "tiers = { cache = \"c\"; stm = \"s\"; };\n";

static struct control *ctl;

static void die(const char *what, const char *why)
{
    fprintf(stderr, "fuzz_request: %s: %s\n", what, why);
    exit(1);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    static const char *const dirs[] = {GGL_BUILD_PLUGINDIR, NULL};
    (void)argc;
    (void)argv;
    sigset_t term; /* SHUTDOWN raises SIGTERM: keep it pending, never delivered */
    sigemptyset(&term);
    sigaddset(&term, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &term, NULL);
    log_set_level(GGL_LOG_ERROR);
    char err[256];
    struct conf_error cerr = {{0}};
    struct config *c;
    struct instance *inst;
    size_t n = 0;
    if (loader_init(dirs, err, sizeof err) < 0)
        die("loader", err);
    if (!(c = config_load_string(conf_text, "fuzz_request.conf", &cerr)) ||
        instances_open(c, &inst, &n, &cerr) < 0 || memory_init(c, inst, n, &cerr) < 0)
        die("host", cerr.msg);
    struct memory_async_conf ac = {1, 1, 64, 16, 0, 1, 100};
    if (memory_async_start(&ac) < 0)
        die("memory", "workers did not start");
    if (!(ctl = control_new_offline(c, inst, n, &cerr)))
        die("control", cerr.msg);
    return 0;
}

/* Every byte the host wrote must parse as complete RESP replies. */
static void check_replies(redisReader *r, struct buf *out)
{
    if (redisReaderFeed(r, out->data, out->len) != REDIS_OK)
        abort();
    out->len = 0;
    void *reply;
    do {
        if (redisReaderGetReply(r, &reply) != REDIS_OK)
            abort();
        freeReplyObject(reply);
    } while (reply);
}

/* Until the replies owed are in c->out (memory workers, the offload pool). */
static void wait_replies(struct conn *c)
{
    while (!c->closing && conn_has_pending(c))
        uv_run(&ctl->loop, UV_RUN_ONCE);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    ctl->set.password = (data[0] & 1) ? "fuzz" : ""; /* both sides of AUTH */
    size_t chunk = (size_t)(data[0] >> 1) + 1;
    struct conn *c = conn_new_detached(ctl);
    redisReader *r = redisReaderCreate();
    if (!c || !r)
        abort();
    r->maxbuf = 0;
    for (size_t off = 1; off < size && !c->closing && !c->close_when_flushed; off += chunk) {
        size_t n = size - off < chunk ? size - off : chunk;
        conn_feed(c, (const char *)data + off, n);
        wait_replies(c);
        if (!c->closing)
            check_replies(r, &c->out);
    }
    wait_replies(c);
    if (!c->closing)
        check_replies(r, &c->out);
    if (!c->closing && (r->ridx > 0 || r->pos != r->len)) /* a reply cut short */
        abort();
    redisReaderFree(r);
    conn_free_detached(c);
    return 0;
}
