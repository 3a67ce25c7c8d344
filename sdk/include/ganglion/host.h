/* The services table the host passes to every plugin instance.  A plugin reaches the
 * host only through it.  Append-only; check `size` before any slot added after 1.0.
 * Services not provided yet answer GGL_UNAVAILABLE. */
#ifndef GANGLION_HOST_H
#define GANGLION_HOST_H

#include <stdarg.h>
#include <ganglion/abi.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define GGL_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#else
#define GGL_PRINTF(fmt, args)
#endif

enum ggl_log_level { GGL_LOG_ERROR = 0, GGL_LOG_WARN = 1, GGL_LOG_INFO = 2, GGL_LOG_DEBUG = 3 };
enum ggl_metric_type { GGL_METRIC_COUNTER = 1, GGL_METRIC_GAUGE = 2, GGL_METRIC_HISTOGRAM = 3 };
enum ggl_priority { GGL_PRIO_CRITICAL = 0, GGL_PRIO_HIGH = 1, GGL_PRIO_NORMAL = 2, GGL_PRIO_LOW = 3 };

struct ggl_conf;    /* an instance's config block; opaque, valid until close */
struct ggl_metric;  /* a registered metric; opaque, owned by the host */
struct ggl_task;    /* <ganglion/processor.h> */
struct ggl_action;  /* <ganglion/executor.h> */
struct ggl_result;  /* <ganglion/processor.h> */

/* Completion of a submitted task or action; `result` is borrowed for the call. */
typedef void (*ggl_done_fn)(void *arg, uint64_t id, const struct ggl_result *result);

struct ggl_host {
    uint32_t size;        /* sizeof(struct ggl_host) of the host */
    uint32_t abi_minor;   /* the host's GGL_ABI_MINOR */
    void *ctx;            /* host-owned; plugins pass the table back, never read this */

    /* Log one line, prefixed by the host with the instance's kind and name. */
    void (*log)(const struct ggl_host *h, enum ggl_log_level level, const char *fmt, ...)
        GGL_PRINTF(3, 4);
    /* Leave a reason for the non-OK status the current call is about to return. */
    void (*set_reason)(const struct ggl_host *h, const char *fmt, ...) GGL_PRINTF(2, 3);

    /* Memory for buffers handed to the host (values, results).  Never NULL on success. */
    void *(*alloc)(size_t n);
    void (*free)(void *p);

    /* Host clock: milliseconds since the Unix epoch.  Tests replace it; plugins must
     * use it for TTLs, expiry and backoff instead of reading the system clock. */
    uint64_t (*now)(const struct ggl_host *h);

    /* Config accessors on the instance's block.  The host validated the block against
     * the plugin's settings and filled defaults, so a declared key answers GGL_OK;
     * an undeclared or unset key answers GGL_NOTFOUND.  Strings live until close. */
    enum ggl_status (*conf_int)(const struct ggl_conf *c, const char *key, int64_t *out);
    enum ggl_status (*conf_float)(const struct ggl_conf *c, const char *key, double *out);
    enum ggl_status (*conf_bool)(const struct ggl_conf *c, const char *key, int *out);
    enum ggl_status (*conf_string)(const struct ggl_conf *c, const char *key, const char **out);

    /* Metrics: register once (name in Prometheus style, e.g. "redis_reconnects_total"),
     * then update from any thread.  The host labels it with the instance. */
    struct ggl_metric *(*metric_new)(const struct ggl_host *h, enum ggl_metric_type type,
                                     const char *name, const char *help);
    void (*metric_add)(struct ggl_metric *m, double delta);   /* counter or gauge */
    void (*metric_set)(struct ggl_metric *m, double value);   /* gauge */
    void (*metric_observe)(struct ggl_metric *m, double value); /* histogram */

    /* Memory manager: read-through get (value allocated with alloc), put with TTL in ms
     * (0 = the tier's default) and importance 0..1, delete. */
    enum ggl_status (*mem_get)(const struct ggl_host *h, const void *key, size_t key_len,
                               void **value, size_t *value_len);
    enum ggl_status (*mem_put)(const struct ggl_host *h, const void *key, size_t key_len,
                               const void *value, size_t value_len, uint64_t ttl_ms,
                               double importance);
    enum ggl_status (*mem_del)(const struct ggl_host *h, const void *key, size_t key_len);

    /* Submit work without waiting: `done` (may be NULL) runs later on a host thread.
     * The task/action is copied; *id receives its id. */
    enum ggl_status (*submit_task)(const struct ggl_host *h, const struct ggl_task *task,
                                   ggl_done_fn done, void *arg, uint64_t *id);
    enum ggl_status (*submit_action)(const struct ggl_host *h, const struct ggl_action *action,
                                     ggl_done_fn done, void *arg, uint64_t *id);

    /* Environment state: text values under string keys (value allocated with alloc). */
    enum ggl_status (*state_get)(const struct ggl_host *h, const char *key, char **value,
                                 size_t *value_len);
    enum ggl_status (*state_set)(const struct ggl_host *h, const char *key, const char *value,
                                 size_t value_len);

    /* Appended in ABI 1.2 (check with GGL_HAS_SLOT).  Inside a processor's process():
     * 1 once the task it is working on was cancelled (TASK.CANCEL) or timed out, so a
     * long computation can stop early (what it returns is discarded); else 0. */
    int (*task_cancelled)(const struct ggl_host *h);
};

/* True when the host table has slot `field` (it was built against a header that had it). */
#define GGL_HAS_SLOT(ptr, type, field) \
    ((ptr)->size >= offsetof(type, field) + sizeof(((type *)0)->field) && (ptr)->field != NULL)

#ifdef __cplusplus
}
#endif
#endif
