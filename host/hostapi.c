/* The services table.  Every plugin instance gets its own copy whose ctx names it, so
 * log lines and metrics say which instance spoke.  Slots whose components are not built
 * yet answer GGL_UNAVAILABLE; their issues fill them in place (ABI 1.0 is complete). */
#include "ggl-build.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "actions.h"
#include "environment.h"
#include "engine.h"
#include "hostapi.h"
#include "log.h"
#include "memory.h"
#include "metrics.h"

static _Thread_local char reason[256];

clock_fn clock_override;

void clock_set(clock_fn fn) { clock_override = fn; }

const char *hostapi_take_reason(void)
{
    static _Thread_local char taken[sizeof reason];
    if (!reason[0]) /* the common case, once per task: no copy */
        return "";
    memcpy(taken, reason, sizeof taken);
    reason[0] = '\0';
    return taken;
}

const char *hostapi_peek_reason(void) { return reason; }

void hostapi_clear_reason(void) { reason[0] = '\0'; }

void hostapi_set_reason(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof reason, fmt, ap);
    va_end(ap);
}

static void api_log(const struct ggl_host *h, enum ggl_log_level level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_vmsg(level, h->ctx, fmt, ap);
    va_end(ap);
}

static void api_set_reason(const struct ggl_host *h, const char *fmt, ...)
{
    (void)h;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof reason, fmt, ap);
    va_end(ap);
}

static void *api_alloc(size_t n) { return malloc(n ? n : 1); }
static void api_free(void *p) { free(p); }
static uint64_t api_now(const struct ggl_host *h) { (void)h; return clock_now_ms(); }

/* The block's setting for key, or the declared default's text via *def. */
static const config_setting_t *conf_find(const struct ggl_conf *c, const char *key,
                                         enum ggl_setting_type *type, const char **def)
{
    const struct ggl_setting *s = c->settings;
    while (s && s->name && strcmp(s->name, key) != 0)
        s++;
    if (!s || !s->name)
        return *def = NULL, NULL;
    *type = s->type;
    *def = s->default_value;
    return c->block ? config_setting_get_member(c->block, key) : NULL;
}

static enum ggl_status conf_int(const struct ggl_conf *c, const char *key, int64_t *out)
{
    enum ggl_setting_type t = 0;
    const char *def;
    const config_setting_t *s = conf_find(c, key, &t, &def);
    if (t != GGL_SETTING_INT || (!s && !def))
        return GGL_NOTFOUND;
    *out = s ? config_setting_get_int64(s) : strtoll(def, NULL, 0);
    return GGL_OK;
}

static enum ggl_status conf_float(const struct ggl_conf *c, const char *key, double *out)
{
    enum ggl_setting_type t = 0;
    const char *def;
    const config_setting_t *s = conf_find(c, key, &t, &def);
    if (t != GGL_SETTING_FLOAT || (!s && !def))
        return GGL_NOTFOUND;
    if (!s)
        *out = strtod(def, NULL);
    else
        *out = config_setting_type(s) == CONFIG_TYPE_FLOAT ? config_setting_get_float(s)
                                                            : (double)config_setting_get_int64(s);
    return GGL_OK;
}

static enum ggl_status conf_bool(const struct ggl_conf *c, const char *key, int *out)
{
    enum ggl_setting_type t = 0;
    const char *def;
    const config_setting_t *s = conf_find(c, key, &t, &def);
    if (t != GGL_SETTING_BOOL || (!s && !def))
        return GGL_NOTFOUND;
    *out = s ? config_setting_get_bool(s) : strcasecmp(def, "true") == 0;
    return GGL_OK;
}

static enum ggl_status conf_string(const struct ggl_conf *c, const char *key, const char **out)
{
    enum ggl_setting_type t = 0;
    const char *def;
    const config_setting_t *s = conf_find(c, key, &t, &def);
    if (t != GGL_SETTING_STRING || (!s && !def))
        return GGL_NOTFOUND;
    *out = s ? config_setting_get_string(s) : def;
    return GGL_OK;
}

static struct ggl_metric *api_metric_new(const struct ggl_host *h, enum ggl_metric_type type,
                                         const char *name, const char *help)
{
    return metrics_register(type, name, help, h->ctx);
}

/* Services whose components come in later issues. */
static enum ggl_status unavailable(const char *what)
{
    snprintf(reason, sizeof reason, "%s is not provided by this host yet", what);
    return GGL_UNAVAILABLE;
}

/* Memory services: synchronous, the tier calls run on the calling plugin's thread. */
static enum ggl_status api_mem_get(const struct ggl_host *h, const void *k, size_t kl, void **v,
                                   size_t *vl)
{
    (void)h;
    struct memory_value mv;
    if (!memory_ready())
        return unavailable("mem_get");
    enum ggl_status st = memory_get(k, kl, &mv);
    if (st == GGL_OK)
        *v = mv.data, *vl = mv.len;
    return st;
}

static enum ggl_status api_mem_put(const struct ggl_host *h, const void *k, size_t kl,
                                   const void *v, size_t vl, uint64_t ttl, double imp)
{
    (void)h;
    struct memory_write w = MEMORY_WRITE_DEFAULT;
    w.ttl_ms = (int64_t)ttl;
    w.importance = imp < 0 ? 0 : imp > 1 ? 1 : imp;
    return memory_ready() ? memory_put(k, kl, v, vl, &w, NULL) : unavailable("mem_put");
}

static enum ggl_status api_mem_del(const struct ggl_host *h, const void *k, size_t kl)
{
    (void)h;
    int existed;
    if (!memory_ready())
        return unavailable("mem_del");
    enum ggl_status st = memory_del(k, kl, &existed);
    return st == GGL_OK && !existed ? GGL_NOTFOUND : st;
}

/* --- callbacks into plugin code ---------------------------------------------------
 * A plugin's done callback is its own code: while one is pending its instance counts it
 * (the registry's pending_of), so a replaced instance is not closed, nor its module
 * unloaded, before the callback ran. */
typedef _Atomic long *(*pending_fn)(const struct ggl_host *h);
static _Atomic(pending_fn) pending_of;

void hostapi_set_pending_of(pending_fn fn) { atomic_store(&pending_of, fn); }

struct guarded {
    ggl_done_fn done;
    void *arg;
    _Atomic long *pending;
};

static void guarded_done(void *arg, uint64_t id, const struct ggl_result *result)
{
    struct guarded *g = arg;
    g->done(g->arg, id, result);
    atomic_fetch_sub(g->pending, 1);
    free(g);
}

/* Wrap *done so that h's instance counts it until it ran; NULL when nothing to count. */
static struct guarded *guard(const struct ggl_host *h, ggl_done_fn *done, void **arg)
{
    pending_fn find = atomic_load(&pending_of);
    _Atomic long *p = *done && find ? find(h) : NULL;
    struct guarded *g = p ? malloc(sizeof *g) : NULL;
    if (!g)
        return NULL; /* out of memory: unguarded, as before reloads existed */
    *g = (struct guarded){*done, *arg, p};
    atomic_fetch_add(p, 1);
    *done = guarded_done;
    *arg = g;
    return g;
}

/* A refused submission never calls back: undo the count. */
static enum ggl_status unguard(struct guarded *g, enum ggl_status st)
{
    if (g && st != GGL_OK) {
        atomic_fetch_sub(g->pending, 1);
        free(g);
    }
    return st;
}

/* A sub-task: queued on the engine like any task, never waited for (done runs later on a
 * host thread); its parent is the task running on this thread, if any. */
static enum ggl_status api_submit_task(const struct ggl_host *h, const struct ggl_task *t,
                                       ggl_done_fn done, void *arg, uint64_t *id)
{
    struct engine *e = engine_global();
    if (!e)
        return unavailable("submit_task");
    if (!t || !id || t->size < offsetof(struct ggl_task, deadline_ms) + sizeof t->deadline_ms ||
        !t->type) {
        snprintf(reason, sizeof reason, "submit_task: a struct ggl_task with size, type and id");
        return GGL_INVALID;
    }
    uint64_t now = clock_now_ms();
    if (t->deadline_ms && t->deadline_ms <= now) {
        snprintf(reason, sizeof reason, "submit_task: the deadline has already passed");
        return GGL_INVALID;
    }
    struct engine_task_spec spec = {.type = t->type, .payload = t->payload,
                                    .payload_len = t->payload_len,
                                    .priority = (enum ggl_priority)t->priority,
                                    .timeout_ms = t->deadline_ms ? t->deadline_ms - now : 0,
                                    .max_retries = -1, .parent = engine_current_task()};
    struct guarded *g = guard(h, &done, &arg);
    return unguard(g, engine_submit(e, &spec, done, arg, id));
}

/* The action system's admission (actions.c); the action is copied. */
static enum ggl_status api_submit_action(const struct ggl_host *h, const struct ggl_action *a,
                                         ggl_done_fn done, void *arg, uint64_t *id)
{
    if (!a || a->size < offsetof(struct ggl_action, idempotency_key) + sizeof a->idempotency_key)
        return GGL_INVALID;
    struct action_spec sp = {a->name, a->payload, a->payload_len, a->priority, a->max_retries,
                             a->timeout_ms, a->idempotency_key};
    int repeat;
    uint64_t ignored;
    struct guarded *g = guard(h, &done, &arg);
    return unguard(g, actions_submit(&sp, done, arg, id ? id : &ignored, &repeat)); /* reason left */
}

/* Environment services: a read of the current value (GGL_NOTFOUND when absent or
 * stale); a write validated now and queued, applied in order by the environment's
 * applier (GGL_OK queued, GGL_INVALID refused by a rule, GGL_RETRY queue full). */
static enum ggl_status api_state_get(const struct ggl_host *h, const char *k, char **v, size_t *vl)
{
    (void)h;
    if (!environment_ready())
        return unavailable("state_get");
    return k ? environment_get(k, v, vl, NULL, NULL, 0) : GGL_INVALID;
}

static int api_task_cancelled(const struct ggl_host *h)
{
    (void)h;
    return engine_task_cancelled();
}

static enum ggl_status api_state_set(const struct ggl_host *h, const char *k, const char *v,
                                     size_t vl)
{
    if (!environment_ready())
        return unavailable("state_set");
    return environment_set(k, v, vl, h->ctx, NULL, NULL);
}

void hostapi_init(struct ggl_host *h, const char *label)
{
    *h = (struct ggl_host){
        .size = sizeof *h,
        .abi_minor = GGL_ABI_MINOR,
        .ctx = (void *)label,
        .log = api_log,
        .set_reason = api_set_reason,
        .alloc = api_alloc,
        .free = api_free,
        .now = api_now,
        .conf_int = conf_int,
        .conf_float = conf_float,
        .conf_bool = conf_bool,
        .conf_string = conf_string,
        .metric_new = api_metric_new,
        .metric_add = metrics_add,
        .metric_set = metrics_set,
        .metric_observe = metrics_observe,
        .mem_get = api_mem_get,
        .mem_put = api_mem_put,
        .mem_del = api_mem_del,
        .submit_task = api_submit_task,
        .submit_action = api_submit_action,
        .state_get = api_state_get,
        .state_set = api_state_set,
        .task_cancelled = api_task_cancelled,
    };
}
