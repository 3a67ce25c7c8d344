/* executor/echo: the smallest executor.  Serves the action "echo" and returns its
 * payload; a payload of "fail" answers RETRY, "invalid" answers INVALID, so the host's
 * retry and dead-letter paths can be driven end to end. */
#include <string.h>

#include <ganglion/ganglion.h>

static const char *const names[] = {"echo", NULL};

static enum ggl_status echo_open(const struct ggl_host *host, const struct ggl_conf *conf, void **self)
{
    (void)conf;
    *self = (void *)host;
    return GGL_OK;
}

static void echo_close(void *self) { (void)self; }

static const char *const *echo_names(void *self)
{
    (void)self;
    return names;
}

static int payload_is(const struct ggl_action *a, const char *word)
{
    return a->payload_len == strlen(word) && memcmp(a->payload, word, a->payload_len) == 0;
}

static enum ggl_status echo_execute(void *self, const struct ggl_action *a, struct ggl_result *r)
{
    const struct ggl_host *host = self;
    if (payload_is(a, "fail")) {
        host->set_reason(host, "asked to fail (attempt %u)", a->attempt);
        return GGL_RETRY;
    }
    if (payload_is(a, "invalid")) {
        host->set_reason(host, "asked to refuse");
        return GGL_INVALID;
    }
    r->data = host->alloc(a->payload_len);
    if (!r->data)
        return GGL_NOMEM;
    if (a->payload_len)
        memcpy(r->data, a->payload, a->payload_len);
    r->data_len = a->payload_len;
    return GGL_OK;
}

static const struct ggl_executor vtable = {
    .size = sizeof(struct ggl_executor),
    .flags = GGL_READS_CONCURRENT,
    .open = echo_open,
    .close = echo_close,
    .action_names = echo_names,
    .execute = echo_execute,
};

GGL_PLUGIN_DEFINE(GGL_KIND_EXECUTOR, "echo", "0.1.0", "returns each action's payload",
                  NULL, &vtable);
