/* processor/upper: a template processor.  Serves one task type (setting `task_type`,
 * default "upper") and returns the payload in upper case; an empty payload is refused
 * with GGL_INVALID and a reason, as any malformed input should be. */
#include <ctype.h>
#include <stdlib.h>

#include <ganglion/ganglion.h>

struct upper {
    const struct ggl_host *host;
    const char *types[2];
};

static const struct ggl_setting settings[] = {
    GGL_SETTING("task_type", GGL_SETTING_STRING, "upper", "task type served"),
    GGL_SETTINGS_END};

static enum ggl_status up_open(const struct ggl_host *host, const struct ggl_conf *conf, void **self)
{
    struct upper *u = calloc(1, sizeof *u);
    if (!u)
        return GGL_NOMEM;
    u->host = host;
    host->conf_string(conf, "task_type", &u->types[0]); /* valid until close */
    *self = u;
    return GGL_OK;
}

static void up_close(void *self) { free(self); }

static const char *const *up_types(void *self) { return ((struct upper *)self)->types; }

static enum ggl_status up_process(void *self, const struct ggl_task *task, struct ggl_result *r)
{
    struct upper *u = self;
    if (task->payload_len == 0) {
        u->host->set_reason(u->host, "empty payload");
        return GGL_INVALID;
    }
    unsigned char *out = u->host->alloc(task->payload_len); /* the host frees it */
    if (!out)
        return GGL_NOMEM;
    const unsigned char *in = task->payload;
    for (size_t i = 0; i < task->payload_len; i++)
        out[i] = (unsigned char)toupper(in[i]);
    r->data = out;
    r->data_len = task->payload_len;
    return GGL_OK;
}

static const struct ggl_processor vtable = {
    .size = sizeof(struct ggl_processor),
    .flags = GGL_READS_CONCURRENT, /* process() keeps no state: any thread, any time */
    .open = up_open,
    .close = up_close,
    .task_types = up_types,
    .process = up_process,
};

GGL_PLUGIN_DEFINE(GGL_KIND_PROCESSOR, "upper", "1.0.0", "template processor: upper-cases text",
                  settings, &vtable);
