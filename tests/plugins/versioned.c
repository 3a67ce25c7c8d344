/* processor/versioned: a test processor built twice (-DVERSION=1 and 2) so a test can
 * replace the file on disk and PLUGIN.RELOAD it: each result is "vVERSION:" + payload. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ganglion/ganglion.h>

#ifndef VERSION
#define VERSION 1
#endif
#define STR2(x) #x
#define STR(x) STR2(x)

static const char *const types[] = {"versioned", NULL};

static enum ggl_status v_open(const struct ggl_host *host, const struct ggl_conf *conf, void **self)
{
    (void)conf;
    *self = (void *)host;
    return GGL_OK;
}

static void v_close(void *self) { (void)self; }

static const char *const *v_types(void *self)
{
    (void)self;
    return types;
}

static enum ggl_status v_process(void *self, const struct ggl_task *task, struct ggl_result *r)
{
    const struct ggl_host *host = self;
    const char *tag = "v" STR(VERSION) ":";
    size_t tlen = strlen(tag);
    char *out = host->alloc(tlen + task->payload_len);
    if (!out)
        return GGL_NOMEM;
    memcpy(out, tag, tlen);
    if (task->payload_len)
        memcpy(out + tlen, task->payload, task->payload_len);
    r->data = out;
    r->data_len = tlen + task->payload_len;
    return GGL_OK;
}

static const struct ggl_processor vtable = {
    .size = sizeof(struct ggl_processor),
    .flags = GGL_READS_CONCURRENT,
    .open = v_open,
    .close = v_close,
    .task_types = v_types,
    .process = v_process,
};

GGL_PLUGIN_DEFINE(GGL_KIND_PROCESSOR, "versioned", STR(VERSION) ".0.0",
                  "returns vVERSION: and the payload (hot-swap tests)", NULL, &vtable);
