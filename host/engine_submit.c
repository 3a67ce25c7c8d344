/* Submitting tasks to the engine (the TASK.SUBMIT C path, submit_task, sub-tasks), and
 * cancelling them.  What a submit writes is kept off the lines the workers write (see
 * struct etype): a stream of submits is the engine's hottest path. */
#include "ggl-build.h"

#include <string.h>

#include "engine_impl.h"
#include "hostapi.h"
#include "resource.h"

/* Admit one task of type ty if fewer than queue_capacity are unsettled: 1, or 0.  The
 * check runs against the last released count seen, which can only be low: only when
 * that says full is the settles' line read for the current count. */
static int admit_task(struct engine *e, struct etype *ty)
{
    size_t in = atomic_fetch_add(&ty->admitted_in, 1);
    if (in - atomic_load_explicit(&ty->released_seen, memory_order_relaxed) < e->cfg.queue_capacity)
        return 1;
    size_t released = atomic_load(&ty->released);
    atomic_store_explicit(&ty->released_seen, released, memory_order_relaxed);
    if (in - released < e->cfg.queue_capacity)
        return 1;
    atomic_fetch_sub(&ty->admitted_in, 1);
    return 0;
}

static int find_type(const struct engine *e, const char *name)
{
    for (size_t i = 0; i < e->n_types; i++)
        if (strcmp(e->types[i].name, name) == 0)
            return (int)i;
    return -1;
}

static enum ggl_status refuse(enum ggl_status st, const char *why, const char *type)
{
    hostapi_set_reason("%s%s%.64s", why, type ? " " : "", type ? type : "");
    return st;
}

/* A submit that got its admission and failed after: the task (if made) freed, the
 * admission given back, a refusal for lack of room counted. */
static enum ggl_status unadmit(struct engine *e, struct etype *ty, struct etask *t,
                               enum ggl_status st, const char *why, const char *type)
{
    if (t)
        task_free(t);
    atomic_fetch_sub(&ty->admitted_in, 1);
    metrics_add(e->busy_refused, st == GGL_RETRY);
    return refuse(st, why, type);
}

static struct etask *new_task(struct engine *e, const struct engine_task_spec *s, unsigned type,
                              ggl_done_fn done, void *arg)
{
    struct etask *t = task_alloc(s->payload_len);
    if (!t)
        return NULL;
    uint64_t timeout = s->timeout_ms ? s->timeout_ms : e->cfg.default_timeout_ms;
    unsigned retries = s->max_retries < 0 ? e->cfg.max_retries : (unsigned)s->max_retries;
    *t = (struct etask){.parent = s->parent, .type = type, .prio = s->priority,
                        .max_retries = retries < e->cfg.max_retries ? retries : e->cfg.max_retries,
                        .deadline_ms = timeout ? clock_now_ms() + timeout : 0,
                        .done = done, .arg = arg, .len = s->payload_len};
    if (s->payload_len)
        memcpy(t->payload, s->payload, s->payload_len);
    return t;
}

enum ggl_status engine_submit(struct engine *e, const struct engine_task_spec *s, ggl_done_fn done,
                              void *arg, uint64_t *id)
{
    if (atomic_load(&e->stopping))
        return refuse(GGL_RETRY, "the engine is shutting down", NULL);
    if (!s->type || (unsigned)s->priority > GGL_PRIO_LOW)
        return refuse(GGL_INVALID, "a task needs a type and a priority 0..3", NULL);
    if (!resource_admit((enum ggl_priority)s->priority)) { /* reason: the reading over its limit */
        metrics_add(e->busy_refused, 1);
        return GGL_RETRY;
    }
    int type = find_type(e, s->type);
    if (type < 0)
        return refuse(GGL_NOTFOUND, "no processor serves task type", s->type);
    struct etype *ty = &e->types[type];
    if (atomic_load(&ty->proc->failed))
        return refuse(GGL_ERROR, "processor failed (stuck past a deadline) for type", s->type);
    if (!admit_task(e, ty)) {
        metrics_add(e->busy_refused, 1);
        return refuse(GGL_RETRY, "task queue full for type", s->type);
    }
    struct etask *t = new_task(e, s, (unsigned)type, done, arg);
    enum ggl_status st = t ? results_reserve_handle(e->results, &t->id, &t->handle) : GGL_NOMEM;
    if (st != GGL_OK)
        return unadmit(e, ty, t, st, st == GGL_RETRY ? "result store full" : "out of memory", NULL);
    uint64_t task_id = t->id; /* t may be run and freed as soon as it is queued */
    static _Thread_local unsigned submits; /* which tasks are timed: see task_weight */
    t->queued_ns = atomic_load_explicit(&ty->time_all, memory_order_relaxed) ||
                           submits++ % ENGINE_SAMPLE == 0 ? latency_now_ns() : 0;
    enum ggl_status qs = queue_push(ty->q, t, t->prio);
    if (qs == GGL_NOMEM) { /* no memory for a priority level's ring */
        results_cancel(e->results, task_id, "refused: out of memory");
        return unadmit(e, ty, t, GGL_NOMEM, "out of memory for the queue of type", s->type);
    }
    if (qs != GGL_OK) { /* full: cancelled tasks still hold slots */
        results_cancel(e->results, task_id, "refused: queue full");
        return unadmit(e, ty, t, GGL_RETRY, "task queue full for type", s->type);
    }
    atomic_thread_fence(memory_order_seq_cst); /* counted ready, then look at the loops */
    engine_wake(e);
    *id = task_id;
    return GGL_OK;
}

int engine_cancel(struct engine *e, uint64_t id)
{
    /* The task's holder settles it (callback, admission) when it next looks: a worker
     * taking it from the queue skips it; a running one's late result is discarded. */
    return results_cancel(e->results, id, "cancelled");
}
