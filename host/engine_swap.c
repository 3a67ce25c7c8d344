/* Swapping a processor under the running engine (PLUGIN.RELOAD, CONFIG.RELOAD): each
 * type's processor pointer is replaced atomically; a call takes a striped reference on
 * the processor it starts on (no shared line written per call), so the old instance is
 * closed only once its last call returned and every worker thread that ran its
 * thread_init has run its thread_fini, at its next task loop or when it exits (registry.c
 * asks engine_processor_refs). */
#include "ggl-build.h"

#include <stdio.h>
#include <string.h>

#include "engine_impl.h"
#include "hostapi.h"
#include "log.h"

struct eproc *engine_proc_get(struct etype *ty)
{
    unsigned k = ref_stripe();
    for (;;) {
        struct eproc *p = atomic_load(&ty->proc);
        atomic_fetch_add(&p->refs[k].n, 1);
        if (atomic_load(&ty->proc) == p)
            return p;
        atomic_fetch_sub(&p->refs[k].n, 1); /* swapped meanwhile: take the new one */
    }
}

void engine_proc_put(struct eproc *p) { atomic_fetch_sub(&p->refs[ref_stripe()].n, 1); }

static int declares(const struct engine_processor *np, const char *type)
{
    const char *const *types = np->vt->task_types(np->self);
    for (size_t k = 0; types && types[k]; k++)
        if (strcmp(types[k], type) == 0)
            return 1;
    return 0;
}

int engine_replace_processor(struct engine *e, const void *old_self,
                             const struct engine_processor *np)
{
    pthread_mutex_lock(&e->mu);
    size_t n = atomic_load(&e->n_procs), first = n;
    for (size_t i = 0; i < n && first == n; i++)
        if (e->procs[i].p->self == old_self)
            first = i;
    int rc = -1;
    for (size_t t = 0; t < e->n_types; t++)
        if (atomic_load(&e->types[t].proc)->p->self == old_self && !declares(np, e->types[t].name)) {
            hostapi_set_reason("%s no longer declares task type '%s'", np->label, e->types[t].name);
            goto out;
        }
    if (first == n) {
        hostapi_set_reason("the engine does not run %s", np->label);
        goto out;
    }
    if (n >= e->procs_cap) {
        hostapi_set_reason("%zu processors swapped in since the start: restart the host", n);
        goto out;
    }
    struct eproc *p = &e->procs[n];
    p->own = *np;
    p->p = &p->own;
    p->concurrent = (np->vt->flags & GGL_READS_CONCURRENT) != 0;
    pthread_mutex_init(&p->serial, NULL);
    atomic_store(&e->n_procs, n + 1); /* after the row is complete */
    for (size_t t = 0; t < e->n_types; t++)
        if (atomic_load(&e->types[t].proc)->p->self == old_self)
            atomic_store(&e->types[t].proc, p);
    for (size_t i = 0; i < n; i++) /* once no type points at it: then it is retired */
        if (e->procs[i].p->self == old_self)
            atomic_store(&e->procs[i].retired, 1);
    atomic_fetch_add(&e->retire_gen, 1); /* workers run thread_fini for it (engine.c) */
    rc = 0;
out:
    pthread_mutex_unlock(&e->mu);
    if (rc == 0)
        pool_wake_all(e->pool); /* the sleeping ones too, now */
    if (rc == 0)
        log_info("engine: %s now serves the types of the instance it replaces", np->label);
    return rc;
}

long engine_processor_refs(struct engine *e, const void *self)
{
    for (size_t t = 0; t < e->n_types; t++)
        if (atomic_load(&e->types[t].proc)->p->self == self)
            return -1;
    long sum = 0;
    size_t n = atomic_load(&e->n_procs);
    for (size_t i = 0; i < n; i++)
        if (e->procs[i].p->self == self) {
            for (int k = 0; k < REF_STRIPES; k++)
                sum += atomic_load(&e->procs[i].refs[k].n);
            sum += atomic_load(&e->procs[i].thread_states); /* thread_fini still to run */
        }
    return sum;
}
