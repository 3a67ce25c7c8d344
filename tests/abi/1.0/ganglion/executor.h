/* Executor vtable: carries out the named actions it declares.  GGL_RETRY sends an
 * action to the host's retry queue; GGL_INVALID is never retried. */
#ifndef GANGLION_EXECUTOR_H
#define GANGLION_EXECUTOR_H

#include <ganglion/processor.h>

#ifdef __cplusplus
extern "C" {
#endif

struct ggl_action {
    uint32_t size;              /* sizeof(struct ggl_action) of the writer */
    uint32_t attempt;           /* 0 on the first run */
    uint64_t id;                /* assigned by the host */
    const char *name;           /* action name, e.g. "shell" */
    uint32_t priority;          /* enum ggl_priority */
    const void *payload;        /* borrowed for the call */
    size_t payload_len;
    uint64_t timeout_ms;        /* 0 = the host's default */
    uint32_t max_retries;
    const char *idempotency_key; /* NULL = none */
};

struct ggl_executor {
    uint32_t size;  /* sizeof(struct ggl_executor) the plugin was built with */
    uint32_t flags; /* GGL_READS_CONCURRENT: execute() may run on many threads at once */

    /* Mandatory. */
    enum ggl_status (*open)(const struct ggl_host *host, const struct ggl_conf *conf, void **self);
    void (*close)(void *self);
    /* NULL-terminated action names this instance serves; valid until close. */
    const char *const *(*action_names)(void *self);
    /* Carry out one action; result->data is its output. */
    enum ggl_status (*execute)(void *self, const struct ggl_action *action, struct ggl_result *result);

    /* Optional. */
    enum ggl_status (*thread_init)(void *self);
    void (*thread_fini)(void *self);
};

#ifdef __cplusplus
}
#endif
#endif
