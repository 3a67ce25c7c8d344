/* processor/echo: the smallest processor.  Serves the task types listed in its config
 * (default "echo") and returns the payload, optionally prefixed. */
#include <stdlib.h>
#include <string.h>

#include <ganglion/ganglion.h>

struct echo {
    const struct ggl_host *host;
    const char *prefix;
    const char *types[2];
};

static const struct ggl_setting settings[] = {
    GGL_SETTING("task_type", GGL_SETTING_STRING, "echo", "task type served"),
    GGL_SETTING("prefix", GGL_SETTING_STRING, "", "text put before the payload"),
    GGL_SETTINGS_END};

static enum ggl_status echo_open(const struct ggl_host *host, const struct ggl_conf *conf, void **self)
{
    struct echo *e = calloc(1, sizeof *e);
    if (!e)
        return GGL_NOMEM;
    e->host = host;
    host->conf_string(conf, "task_type", &e->types[0]);
    host->conf_string(conf, "prefix", &e->prefix);
    *self = e;
    return GGL_OK;
}

static void echo_close(void *self) { free(self); }

static const char *const *echo_types(void *self) { return ((struct echo *)self)->types; }

static enum ggl_status echo_process(void *self, const struct ggl_task *task, struct ggl_result *r)
{
    struct echo *e = self;
    size_t plen = strlen(e->prefix);
    char *out = e->host->alloc(plen + task->payload_len);
    if (!out)
        return GGL_NOMEM;
    memcpy(out, e->prefix, plen);
    if (task->payload_len)
        memcpy(out + plen, task->payload, task->payload_len);
    r->data = out;
    r->data_len = plen + task->payload_len;
    return GGL_OK;
}

static const struct ggl_processor vtable = {
    .size = sizeof(struct ggl_processor),
    .flags = GGL_READS_CONCURRENT,
    .open = echo_open,
    .close = echo_close,
    .task_types = echo_types,
    .process = echo_process,
};

GGL_PLUGIN_DEFINE(GGL_KIND_PROCESSOR, "echo", "0.1.0", "returns each task's payload",
                  settings, &vtable);
