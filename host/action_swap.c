/* Swapping an executor under the running action system (PLUGIN.RELOAD executor/NAME):
 * the impl behind each executor slot is replaced atomically; a run, and each lookup of
 * the action names, holds a reference on the impl it started on, so the old instance
 * is closed only when its last call returned (registry.c asks actions_executor_refs). */
#include "ggl-build.h"

#include <stdlib.h>

#include "actions_impl.h"
#include "hostapi.h"
#include "log.h"

static pthread_mutex_t swap_lock = PTHREAD_MUTEX_INITIALIZER;

struct exec_impl *exec_get(struct executor_slot *e)
{
    for (;;) {
        struct exec_impl *x = atomic_load(&e->cur);
        atomic_fetch_add(&x->refs, 1);
        if (atomic_load(&e->cur) == x)
            return x;
        atomic_fetch_sub(&x->refs, 1); /* swapped meanwhile: take the new one */
    }
}

void exec_put(struct exec_impl *x) { atomic_fetch_sub(&x->refs, 1); }

struct exec_impl *exec_impl_new(struct actions *s, const struct action_executor *ex)
{
    struct exec_impl *x = calloc(1, sizeof *x);
    if (!x)
        return NULL;
    x->ex = *ex;
    x->concurrent = (ex->vt->flags & GGL_READS_CONCURRENT) != 0;
    pthread_mutex_init(&x->serial, NULL);
    pthread_mutex_lock(&swap_lock);
    x->next = s->impls;
    s->impls = x;
    pthread_mutex_unlock(&swap_lock);
    return x;
}

/* Per-thread slots are called on each worker at its start and end: an impl swapped in
 * later would miss its thread_init, so such executors are not swapped live. */
static int per_thread(const struct ggl_executor *vt)
{
    return vt->size >= offsetof(struct ggl_executor, thread_fini) + sizeof vt->thread_fini &&
           (vt->thread_init || vt->thread_fini);
}

int actions_replace_executor(const void *old_self, const struct action_executor *nx)
{
    struct actions *s = actions_sys;
    if (!s) {
        hostapi_set_reason("the action system is not running");
        return -1;
    }
    size_t hit = s->n_execs;
    for (size_t i = 0; i < s->n_execs && hit == s->n_execs; i++)
        if (atomic_load(&s->execs[i].cur)->ex.self == old_self)
            hit = i;
    if (hit == s->n_execs) {
        hostapi_set_reason("the action system does not run %s", nx->label);
        return -1;
    }
    struct exec_impl *cur = atomic_load(&s->execs[hit].cur);
    if (per_thread(cur->ex.vt) || per_thread(nx->vt)) {
        hostapi_set_reason("%s has per-thread slots: a restart replaces it", nx->label);
        return -1;
    }
    struct exec_impl *x = exec_impl_new(s, nx);
    if (!x) {
        hostapi_set_reason("out of memory");
        return -1;
    }
    atomic_store(&s->execs[hit].cur, x);
    log_info("actions: %s now serves the actions of the instance it replaces", nx->label);
    return 0;
}

long actions_executor_refs(const void *self)
{
    struct actions *s = actions_sys;
    if (!s)
        return 0;
    for (size_t i = 0; i < s->n_execs; i++)
        if (atomic_load(&s->execs[i].cur)->ex.self == self)
            return -1;
    long sum = 0;
    pthread_mutex_lock(&swap_lock);
    for (const struct exec_impl *x = s->impls; x; x = x->next)
        if (x->ex.self == self)
            sum += atomic_load(&x->refs);
    pthread_mutex_unlock(&swap_lock);
    return sum;
}
