/* Processor vtable: handles tasks of the types it declares (reasoning, planning,
 * learning, optimization or any named type) on the host's processing pool. */
#ifndef GANGLION_PROCESSOR_H
#define GANGLION_PROCESSOR_H

#include <ganglion/host.h>

#ifdef __cplusplus
extern "C" {
#endif

struct ggl_task {
    uint32_t size;          /* sizeof(struct ggl_task) of the writer */
    uint32_t attempt;       /* 0 on the first run */
    uint64_t id;            /* assigned by the host */
    const char *type;       /* task type, e.g. "planning" */
    uint32_t priority;      /* enum ggl_priority */
    const void *payload;    /* borrowed for the call */
    size_t payload_len;
    uint64_t deadline_ms;   /* host clock; 0 = none */
};

/* What a processor or executor produced.  The host zeroes it and sets size before the
 * call; `data` is allocated with host->alloc and freed by the host. */
struct ggl_result {
    uint32_t size;
    enum ggl_status status;
    void *data;
    size_t data_len;
};

struct ggl_processor {
    uint32_t size;  /* sizeof(struct ggl_processor) the plugin was built with */
    uint32_t flags; /* GGL_READS_CONCURRENT: process() may run on many threads at once */

    /* Mandatory. */
    enum ggl_status (*open)(const struct ggl_host *host, const struct ggl_conf *conf, void **self);
    void (*close)(void *self);
    /* NULL-terminated task types this instance serves; valid until close. */
    const char *const *(*task_types)(void *self);
    /* Run one task; the returned status is the task's outcome (GGL_RETRY may be retried). */
    enum ggl_status (*process)(void *self, const struct ggl_task *task, struct ggl_result *result);

    /* Optional.  Per-thread state: thread_init runs on a worker thread before its first
     * task for this instance there, thread_fini on the same thread when the thread exits,
     * or, after the instance was replaced (PLUGIN.RELOAD), as soon as that thread is out
     * of the task it is in (an idle one is woken for it); close comes after every
     * thread_fini.  Without GGL_READS_CONCURRENT, thread_fini too is one call at a time. */
    enum ggl_status (*thread_init)(void *self);
    void (*thread_fini)(void *self);
};

#ifdef __cplusplus
}
#endif
#endif
