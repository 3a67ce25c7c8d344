/* The memory manager's writes (the rules are at the top of memory.c): the target tier
 * and its TTL, write-through with the cache copy refreshed, older copies below retired,
 * batches, deletes as tombstones, and moves between tiers. */
#include "ggl-build.h"

#include <stdlib.h>
#include <string.h>

#include "access.h"
#include "compress.h"
#include "hostapi.h"
#include "log.h"
#include "memory_impl.h"

/* The default target: STM, else the first bound tier below it, else the cache. */
static int default_target(void)
{
    for (int t = SLOT_STM; t < SLOT_COUNT; t++)
        if (mem_bound(t))
            return t;
    return SLOT_CACHE;
}

static uint64_t default_ttl(int tier)
{
    switch (tier) {
    case SLOT_CACHE:
    case SLOT_STM: return (uint64_t)mm.conf.stm_ttl_ms;
    case SLOT_IM: return (uint64_t)mm.conf.im_ttl_ms;
    default: return 0;
    }
}

/* After e reached `target`: refresh the cache and retire older copies from the other
 * tiers; *existed is set if one was live.  A write to the default tier puts its copy
 * (a tombstone included) in the cache; a write aimed lower only invalidates the cache
 * entry, which is always safe for a cache and cheaper than copying the value in. */
static void spread(int target, const struct ggl_entry *e, int *existed)
{
    uint64_t now = clock_now_ms();
    int cache_copy = target == default_target();
    for (int t = 0; t < SLOT_COUNT; t++) {
        if (t == target || !mem_bound(t))
            continue;
        if (t == SLOT_CACHE && cache_copy)
            mem_tier_call(t, OP_PUT, e->key, e->key_len, e, NULL, GGL_VERSION_OLDER);
        else if (t == SLOT_CACHE)
            mem_tier_call(t, OP_DEL, e->key, e->key_len, NULL, NULL, GGL_VERSION_ANY);
        else if (mem_retire_older(t, e->key, e->key_len, e->version, now) && existed)
            *existed = 1;
    }
}

/* spread() for the n entries of a batch written to `target` (those with ok[i] set):
 * each other tier's older copies of them retired in one mem_retire_batch. */
static void spread_batch(int target, const struct ggl_entry *es, const char *ok, size_t n)
{
    const void **keys = malloc(n * sizeof *keys);
    size_t *lens = malloc(n * sizeof *lens), *idx = malloc(n * sizeof *idx), m = 0;
    uint64_t *versions = malloc(n * sizeof *versions);
    int fallback = !keys || !lens || !idx || !versions;
    for (size_t i = 0; i < n; i++)
        if (ok[i] && fallback)
            spread(target, &es[i], NULL); /* no memory for the batch: one by one */
        else if (ok[i])
            keys[m] = es[i].key, lens[m] = es[i].key_len, versions[m] = es[i].version, idx[m++] = i;
    int cache_copy = target == default_target();
    for (int t = 0; m && t < SLOT_COUNT; t++) {
        if (t == target || !mem_bound(t))
            continue;
        if (t == SLOT_CACHE && cache_copy)
            for (size_t j = 0; j < m; j++)
                mem_tier_call(t, OP_PUT, keys[j], lens[j], &es[idx[j]], NULL, GGL_VERSION_OLDER);
        else
            mem_retire_batch(t, keys, lens, m, versions, clock_now_ms());
    }
    free(keys), free(lens), free(idx), free(versions);
}

/* Write e into `target`, then spread it.  A lost race to a newer version counts as OK. */
static enum ggl_status write_through(int target, const struct ggl_entry *e, int *existed)
{
    int below = target != default_target() && mem_bound(SLOT_CACHE); /* see mem_below */
    if (below)
        mem_below_begin(e->key, e->key_len);
    enum ggl_status st = mem_tier_call(target, OP_PUT, e->key, e->key_len, e, NULL, GGL_VERSION_OLDER);
    if (st == GGL_CONFLICT)
        st = GGL_OK;
    if (st == GGL_OK)
        spread(target, e, existed);
    if (below)
        mem_below_end(e->key, e->key_len);
    return st;
}

/* The target a write names, or GGL_INVALID (reason set) when it is not bound. */
static int write_target(const struct memory_write *w)
{
    int target = w->tier >= 0 ? w->tier : default_target();
    if (!mem_bound(target)) {
        hostapi_set_reason("tier %s is not bound to a backend", tier_slot_names[target]);
        return -1;
    }
    return target;
}

static struct ggl_entry new_entry(const void *key, size_t len, const void *value, size_t vlen,
                                  const struct memory_write *w, int target, uint64_t now,
                                  uint64_t version)
{
    uint64_t ttl = w->ttl_ms > 0 ? (uint64_t)w->ttl_ms : default_ttl(target);
    return (struct ggl_entry){.size = sizeof(struct ggl_entry), .key = key, .key_len = len,
                              .value = (void *)value, .value_len = vlen,
                              .version = version, .importance = w->importance,
                              .created_ms = now, .last_access_ms = now,
                              .flags = w->pin ? GGL_ENTRY_PINNED : 0,
                              .expires_ms = w->pin || !ttl ? 0 : now + ttl};
}

enum ggl_status memory_put(const void *key, size_t len, const void *value, size_t vlen,
                           const struct memory_write *w, uint64_t *version)
{
    if (!mm.ready)
        return GGL_UNAVAILABLE;
    int target = write_target(w);
    if (target < 0)
        return GGL_INVALID;
    struct ggl_entry e = new_entry(key, len, value, vlen, w, target, clock_now_ms(), mem_next_version());
    enum ggl_status st = write_through(target, &e, NULL);
    if (st == GGL_OK) {
        metrics_add(mm.writes, 1);
        if (version)
            *version = e.version;
    }
    return st;
}

uint64_t memory_fresh_expect(int target)
{
    struct binding *b = atomic_load(&mm.slots[target].current);
    return !b || b->nonblocking || GGL_HAS_SLOT(b->vt, struct ggl_tier, max_version)
               ? GGL_VERSION_OLDER : GGL_VERSION_ANY;
}

int memory_prepare(const struct memory_item *items, size_t n, const struct memory_write *w,
                   struct ggl_entry *es)
{
    if (!mm.ready)
        return hostapi_set_reason("memory is not ready"), -1;
    int target = write_target(w);
    if (target < 0)
        return target;
    /* The batch's n versions in one atomic add, not n: callers writing batches at once
     * would otherwise bounce the counter's cache line between CPUs per entry. */
    uint64_t now = clock_now_ms(), first = atomic_fetch_add(&mm.version, n) + 1;
    for (size_t i = 0; i < n; i++)
        es[i] = new_entry(items[i].key, items[i].len, items[i].value, items[i].vlen, w, target,
                          now, first + i);
    return target;
}

enum ggl_status memory_write_entries(int target, const struct ggl_entry *entries, size_t n,
                                     uint64_t expect, enum ggl_status *status)
{
    struct ggl_entry *es = malloc(n * sizeof *es);
    void **zbufs = calloc(n, sizeof *zbufs);
    char *ok = malloc(n ? n : 1); /* acknowledged: spread to the other tiers */
    if (!es || !zbufs || !ok) {
        free(es);
        free(zbufs);
        free(ok);
        return GGL_NOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        struct ggl_entry tmp;
        es[i] = *mem_for_tier(target, &entries[i], &tmp, &zbufs[i]);
        es[i].flags &= ~GGL_ENTRY_PENDING;
    }
    int below = target != default_target() && mem_bound(SLOT_CACHE); /* see mem_below */
    for (size_t i = 0; below && i < n; i++)
        mem_below_begin(entries[i].key, entries[i].key_len);
    struct binding *b, *p = mem_previous_of(&mm.slots[target]);
    enum ggl_status st = slot_acquire(&mm.slots[target], SLOT_WRITES, &b);
    if (st == GGL_OK) {
        hostapi_clear_reason();
        enum ggl_status health = GGL_OK; /* what the breaker hears: the batch's worst */
        if (GGL_HAS_SLOT(b->vt, struct ggl_tier, put_batch)) { /* an older plugin may lack it */
            st = health = b->vt->put_batch(b->self, es, n, expect, status);
        } else {
            for (size_t i = 0; i < n; i++)
                if ((status[i] = b->vt->put(b->self, &es[i], expect)) == GGL_RETRY ||
                    status[i] == GGL_ERROR)
                    health = status[i];
        }
        slot_release(&mm.slots[target], SLOT_WRITES, b, health,
                     health == GGL_OK ? NULL : hostapi_peek_reason());
    }
    size_t acked = 0;
    for (size_t i = 0; i < n; i++) {
        free(zbufs[i]);
        if (st != GGL_OK)
            status[i] = st;
        else if (status[i] == GGL_CONFLICT)
            status[i] = GGL_OK;
        ok[i] = status[i] == GGL_OK;
        es[i] = entries[i]; /* the other tiers get it as it was given */
        es[i].flags &= ~GGL_ENTRY_PENDING;
        if (ok[i] && p)
            mem_with_previous(p, target, OP_PUT, GGL_OK, es[i].key, es[i].key_len, &es[i], NULL,
                          GGL_VERSION_OLDER);
        acked += (size_t)ok[i];
    }
    spread_batch(target, es, ok, n);
    for (size_t i = 0; below && i < n; i++)
        mem_below_end(entries[i].key, entries[i].key_len);
    for (size_t i = 0; i < n; i++)
        if (ok[i] && (entries[i].flags & GGL_ENTRY_PENDING)) /* settle the cache's pending copy */
            mem_tier_call(SLOT_CACHE, OP_PUT, es[i].key, es[i].key_len, &es[i], NULL, es[i].version);
    if (acked)
        metrics_add(mm.writes, (double)acked);
    free(ok);
    if (p)
        binding_put(p);
    free(zbufs);
    free(es);
    return st;
}

enum ggl_status memory_hold_in_cache(const struct ggl_entry *e)
{
    if (!mem_bound(SLOT_CACHE))
        return hostapi_set_reason("no cache to hold a queued write"), GGL_RETRY;
    struct ggl_entry pending = *e;
    pending.flags |= GGL_ENTRY_PENDING;
    return mem_tier_call(SLOT_CACHE, OP_PUT, e->key, e->key_len, &pending, NULL, GGL_VERSION_OLDER);
}

enum ggl_status memory_put_batch(const struct memory_item *items, size_t n,
                                 const struct memory_write *w, enum ggl_status *status)
{
    struct ggl_entry *es = malloc(n * sizeof *es);
    if (!es)
        return GGL_NOMEM;
    int target = memory_prepare(items, n, w, es);
    enum ggl_status st = target < 0 ? (mm.ready ? GGL_INVALID : GGL_UNAVAILABLE)
                                    : memory_write_entries(target, es, n, memory_fresh_expect(target),
                                                           status);
    free(es);
    return st;
}

enum ggl_status memory_del(const void *key, size_t len, int *existed)
{
    if (!mm.ready)
        return GGL_UNAVAILABLE;
    uint64_t now = clock_now_ms();
    *existed = 0;
    int target = default_target();
    /* Was there a live value?  The target's own copy is replaced by the tombstone, so
     * look at it (and the cache) first; retire_older reports the tiers below. */
    int t, failed;
    struct ggl_entry top;
    if (mem_find_top(key, len, &top, &t, &failed) == GGL_OK) {
        *existed = !mem_dead(&top, now);
        free(top.value);
    }
    struct ggl_entry tomb = {.size = sizeof tomb, .key = key, .key_len = len, .value = "",
                             .version = mem_next_version(), .flags = GGL_ENTRY_TOMBSTONE,
                             .created_ms = now, .last_access_ms = now,
                             .expires_ms = now + (uint64_t)mm.conf.tombstone_ttl_ms};
    enum ggl_status st = write_through(target, &tomb, NULL);
    if (st == GGL_OK)
        metrics_add(mm.deletes, 1);
    return st;
}

enum ggl_status memory_move(const void *key, size_t len, int from, int to)
{
    struct ggl_entry e = {.size = sizeof e};
    enum ggl_status st = mem_tier_call(from, OP_GET, key, len, NULL, &e, 0);
    if (st != GGL_OK)
        return st;
    e.key = key;
    e.key_len = len;
    /* The copy lives as long as its new tier keeps things (pinned: for ever). */
    uint64_t ttl = default_ttl(to);
    e.expires_ms = (e.flags & GGL_ENTRY_PINNED) || !ttl ? 0 : clock_now_ms() + ttl;
    if (mm.hook)
        mm.hook(HOOK_BEFORE_COPY, key, len);
    st = mem_tier_call(to, OP_PUT, key, len, &e, NULL, GGL_VERSION_OLDER);
    free(e.value);
    if (st != GGL_OK && st != GGL_CONFLICT)
        return st; /* the source keeps its copy */
    if (mm.hook)
        mm.hook(HOOK_BETWEEN_COPY_AND_DELETE, key, len);
    st = mem_tier_call(from, OP_DEL, key, len, NULL, NULL, e.version);
    if (st == GGL_CONFLICT) {
        /* A newer write replaced the source meanwhile; if it retired older copies below
         * before ours landed, ours would outlive it and come back when it expires: take
         * ours away again (only if it is still ours, by version). */
        mem_tier_call(to, OP_DEL, key, len, NULL, NULL, e.version);
        return GGL_OK;
    }
    return st == GGL_NOTFOUND ? GGL_OK : st;
}
