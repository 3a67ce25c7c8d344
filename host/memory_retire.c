/* The retire of older copies after a batch of writes (memory.c's rules: a write removes
 * older copies from the other tiers): one del_older_batch call per tier where the backend
 * has it, else a get_batch and a compare-and-delete of each copy found older. */
#include "ggl-build.h"

#include <stdlib.h>

#include "hostapi.h"
#include "memory_impl.h"

static int failed(enum ggl_status st)
{
    return st == GGL_RETRY || st == GGL_ERROR || st == GGL_NOMEM || st == GGL_UNAVAILABLE;
}

/* Key's copy on binding b removed if older than version (no del_older_batch there). */
static enum ggl_status retire_one(struct binding *b, const void *key, size_t len, uint64_t version)
{
    struct ggl_entry e = {.size = sizeof e};
    enum ggl_status st = b->vt->get(b->self, key, len, &e);
    if (st != GGL_OK)
        return st;
    free(e.value);
    return e.version < version ? b->vt->del(b->self, key, len, e.version) : GGL_CONFLICT;
}

/* The n retires on one binding of tier t; the worst status, for the breaker.  Without
 * del_older_batch (or when the batch did not run: out of memory) key by key, a cache
 * invalidated outright, which is always safe for a cache. */
static enum ggl_status retire_on(struct binding *b, int t, const void *const *keys,
                                 const size_t *lens, size_t n, const uint64_t *versions,
                                 enum ggl_status *status)
{
    enum ggl_status worst = GGL_OK;
    if (!GGL_HAS_SLOT(b->vt, struct ggl_tier, del_older_batch) ||
        b->vt->del_older_batch(b->self, keys, lens, n, versions, status) != GGL_OK)
        for (size_t i = 0; i < n; i++)
            status[i] = t == SLOT_CACHE ? b->vt->del(b->self, keys[i], lens[i], GGL_VERSION_ANY)
                                        : retire_one(b, keys[i], lens[i], versions[i]);
    for (size_t i = 0; i < n && worst == GGL_OK; i++)
        if (failed(status[i]))
            worst = status[i];
    return worst;
}

/* Without del_older_batch below the cache: the copies read in one get_batch (one
 * pipeline, one transaction), then each older one compare-and-deleted. */
static void retire_by_reading(int t, const void *const *keys, const size_t *lens, size_t n,
                              const uint64_t *versions, uint64_t now)
{
    struct ggl_entry *found = malloc(n * sizeof *found);
    enum ggl_status *st = malloc(n * sizeof *st);
    for (size_t i = 0; i < n && (!found || !st); i++) /* no memory for the batch: one by one */
        mem_retire_older(t, keys[i], lens[i], versions[i], now);
    if (found && st) {
        mem_tier_get_batch(t, keys, lens, n, found, st);
        for (size_t i = 0; i < n; i++)
            mem_retire_found(t, keys[i], lens[i], st[i], found[i], versions[i], now);
    }
    free(found);
    free(st);
}

void mem_retire_batch(int t, const void *const *keys, const size_t *lens, size_t n,
                      const uint64_t *versions, uint64_t now)
{
    struct slot *s = &mm.slots[t];
    struct binding *b = atomic_load(&s->current);
    /* A peek: a rebind in between only means retire_on reads the copies one by one. */
    if (t != SLOT_CACHE && (!b || !GGL_HAS_SLOT(b->vt, struct ggl_tier, del_older_batch))) {
        retire_by_reading(t, keys, lens, n, versions, now);
        return;
    }
    enum ggl_status *status = malloc(n * sizeof *status);
    if (!status) { /* no memory for the batch: one by one */
        for (size_t i = 0; i < n; i++)
            mem_retire_older(t, keys[i], lens[i], versions[i], now);
        return;
    }
    enum ggl_status st = slot_acquire(s, SLOT_WRITES, &b);
    if (st != GGL_OK) {
        if (st != GGL_NOTFOUND) /* unbound meanwhile: nothing to retire */
            metrics_add(mm.unretired, (double)n); /* may reappear: counted in INFO memory */
        free(status);
        return;
    }
    hostapi_clear_reason();
    struct binding *p = mem_previous_of(s);
    enum ggl_status worst = retire_on(b, t, keys, lens, n, versions, status);
    slot_release(s, SLOT_WRITES, b, worst, worst == GGL_OK ? NULL : hostapi_peek_reason());
    size_t unretired = 0;
    for (size_t i = 0; i < n; i++)
        unretired += (size_t)failed(status[i]);
    if (p) { /* a migration: the binding it replaces keeps no older copy either */
        retire_on(p, t, keys, lens, n, versions, status);
        binding_put(p);
    }
    if (unretired)
        metrics_add(mm.unretired, (double)unretired);
    free(status);
}
