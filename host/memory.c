/* The memory manager.  How DESIGN.md section 5's rules hold here:
 * - Versions: one 64-bit counter seeded from the wall clock in microseconds, so it keeps
 *   rising across restarts unless writes averaged over 1 M/s since the last start.
 * - Every write is insert-if-newer (GGL_VERSION_OLDER): whatever order concurrent writes
 *   to a key land in, each tier keeps the highest version; a write that loses to a newer
 *   one is still acknowledged (the newer value is what a reader must see).
 * - A PUT removes older copies from the other tiers (compare-and-delete), so an old LTM
 *   copy cannot reappear when the new STM copy expires.
 * - DEL writes a tombstone (a new version) into the top tier and the cache; a racing
 *   promotion or migration of an old copy then conflicts instead of resurrecting it.
 * - Moves copy insert-if-newer and delete the source only if its version is unchanged:
 *   a crash in between leaves a duplicate, never a loss; a newer write always wins.
 * - Reads go top down and stop at the first copy: a tombstone or an entry past its
 *   expiry on the host clock ends the read as "not found", whatever the backend did. */
#include "ggl-build.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "access.h"
#include "compress.h"
#include "hostapi.h"
#include "log.h"
#include "memory.h"
#include "metrics.h"
#include "swap.h"


#define MAX_VALUE_BYTES (512u << 20) /* a decompressed value larger than this is refused */

static struct {
    int ready;
    struct instance *inst; /* every opened instance: a swap may bind any tier one */
    size_t ninst;

    struct memory_conf conf;
    struct slot slots[SLOT_COUNT];
    _Atomic uint64_t version;
    memory_hook_fn hook;
    unsigned compress_mask; /* bit t: tier t compresses */
    struct ggl_metric *hits[SLOT_COUNT], *misses, *writes, *deletes, *promotions, *conflicts,
        *unretired, *zin, *zout;
} M;

enum op { OP_GET, OP_PUT, OP_DEL };

/* The entry to hand tier t: *e itself, or a compressed copy in *tmp (whose buffer,
 * *zbuf, the caller frees) when t compresses and it pays. */
static const struct ggl_entry *for_tier(int t, const struct ggl_entry *e, struct ggl_entry *tmp,
                                        void **zbuf)
{
    *zbuf = NULL;
    if (!(M.compress_mask & (1u << t)))
        return e;
    *tmp = *e;
    if (!compress_entry(tmp, (size_t)M.conf.compress_min_bytes, (int)M.conf.compress_level, zbuf))
        return e;
    metrics_add(M.zin, (double)e->value_len);
    metrics_add(M.zout, (double)tmp->value_len);
    return tmp;
}

/* One call on a binding (compressing a put's value where tier t compresses). */
static enum ggl_status call_binding(struct binding *b, int t, enum op op, const void *key,
                                    size_t len, const struct ggl_entry *in, struct ggl_entry *out,
                                    uint64_t expect)
{
    struct ggl_entry tmp;
    void *zbuf = NULL;
    enum ggl_status st = GGL_ERROR;
    switch (op) {
    case OP_GET: st = b->vt->get(b->self, key, len, out); break;
    case OP_PUT: st = b->vt->put(b->self, for_tier(t, in, &tmp, &zbuf), expect); break;
    case OP_DEL: st = b->vt->del(b->self, key, len, expect); break;
    }
    free(zbuf);
    return st;
}

/* A swap back to an instance that kept entries from before (PLUGIN.SWAP a MIGRATE, then
 * b MIGRATE) finds older copies there until the copy overwrites them: during a
 * migration a read takes whichever of the two bindings holds the newer version. */
static void newer_of_previous(struct binding *p, int t, const void *key, size_t len,
                              struct ggl_entry *out)
{
    struct ggl_entry old = {.size = sizeof old};
    if (call_binding(p, t, OP_GET, key, len, NULL, &old, 0) != GGL_OK)
        return;
    if (old.version > out->version) {
        free(out->value);
        *out = old;
    } else {
        free(old.value);
    }
}

/* During a migration the old binding still answers what was not copied yet, and every
 * write reaches it too, so an abandoned migration loses nothing.  p is the previous
 * binding taken *before* the call on the current one (NULL: none; released here): had
 * it been looked up after, a migration ending in between could hide a key the current
 * one did not have yet. */
static enum ggl_status with_previous(struct binding *p, int t, enum op op, enum ggl_status st,
                                     const void *key, size_t len, const struct ggl_entry *in,
                                     struct ggl_entry *out, uint64_t expect)
{
    if (!p)
        return st;
    if (op == OP_GET && st == GGL_NOTFOUND)
        st = call_binding(p, t, OP_GET, key, len, NULL, out, 0);
    else if (op == OP_GET && st == GGL_OK) /* the new one may hold a stale copy of its own */
        newer_of_previous(p, t, key, len, out);
    else if (op != OP_GET)
        call_binding(p, t, op, key, len, in, NULL, expect);
    return st;
}

static struct binding *previous_of(struct slot *s)
{
    /* A migration is rare: a relaxed look first keeps the hot path to one plain load. */
    return atomic_load_explicit(&s->previous, memory_order_relaxed) ? slot_get_previous(s) : NULL;
}

/* One tier call through its slot: acquire, call, release with the plugin's reason.
 * Values are compressed on the way in and out where the tier is configured so. */
static enum ggl_status tier_call(int t, enum op op, const void *key, size_t len,
                                 const struct ggl_entry *in, struct ggl_entry *out,
                                 uint64_t expect)
{
    struct binding *b;
    struct slot *s = &M.slots[t];
    enum ggl_status st = slot_acquire(s, &b);
    if (st != GGL_OK)
        return st == GGL_NOTFOUND ? GGL_UNAVAILABLE : st;
    hostapi_clear_reason();
    struct binding *p = previous_of(s);
    st = call_binding(b, t, op, key, len, in, out, expect);
    int failed = st == GGL_RETRY || st == GGL_ERROR || st == GGL_NOMEM;
    slot_release(s, b, st, failed ? hostapi_peek_reason() : NULL);
    st = with_previous(p, t, op, st, key, len, in, out, expect);
    if (p)
        binding_put(p);
    if (st == GGL_CONFLICT)
        metrics_add(M.conflicts, 1);
    if (st == GGL_OK && op == OP_GET && (out->flags & GGL_ENTRY_COMPRESSED) &&
        (st = decompress_entry(out, MAX_VALUE_BYTES)) != GGL_OK) {
        free(out->value);
        out->value = NULL;
    }
    return st;
}

static int bound(int t) { return M.ready && atomic_load(&M.slots[t].current) != NULL; }

static uint64_t next_version(void) { return atomic_fetch_add(&M.version, 1) + 1; }

static int dead(const struct ggl_entry *e, uint64_t now)
{
    return (e->flags & GGL_ENTRY_TOMBSTONE) ||
           (!(e->flags & GGL_ENTRY_PINNED) && e->expires_ms && e->expires_ms <= now);
}

/* The top-most copy of key: *tier gets where, or -1.  `failed` counts tiers that
 * could not be asked.  The caller frees e->value. */
static enum ggl_status find_top(const void *key, size_t len, struct ggl_entry *e, int *tier,
                                int *failed)
{
    *tier = -1;
    *failed = 0;
    for (int t = 0; t < SLOT_COUNT; t++) {
        if (!bound(t))
            continue;
        *e = (struct ggl_entry){.size = sizeof *e};
        enum ggl_status st = tier_call(t, OP_GET, key, len, NULL, e, 0);
        if (st == GGL_OK) {
            *tier = t;
            return GGL_OK;
        }
        if (st != GGL_NOTFOUND)
            (*failed)++;
    }
    return GGL_NOTFOUND;
}

/* retire_older's second half, given what the get of tier t's copy returned (st, e). */
static int retire_found(int t, const void *key, size_t len, enum ggl_status st,
                        struct ggl_entry e, uint64_t version, uint64_t now)
{
    if (st == GGL_NOTFOUND)
        return 0;
    if (st != GGL_OK) {
        metrics_add(M.unretired, 1); /* may reappear: counted in INFO memory */
        return 0;
    }
    int live = !dead(&e, now);
    free(e.value);
    if (e.version < version) {
        st = tier_call(t, OP_DEL, key, len, NULL, NULL, e.version);
        if (st != GGL_OK && st != GGL_CONFLICT && st != GGL_NOTFOUND)
            metrics_add(M.unretired, 1);
    }
    return live;
}

/* Remove tier t's copy of key if it is older than `version`.  Returns 1 if a live
 * copy was there. */
static int retire_older(int t, const void *key, size_t len, uint64_t version, uint64_t now)
{
    struct ggl_entry e = {.size = sizeof e};
    enum ggl_status st = tier_call(t, OP_GET, key, len, NULL, &e, 0);
    return retire_found(t, key, len, st, e, version, now);
}

/* What a read found — e from tier t, or nothing (t < 0) with `failed` tiers unasked —
 * made into the answer: expiry and tombstones checked, counted, promoted into the cache
 * when found below it (insert-if-newer: a newer write in between wins). */
static enum ggl_status finish_read(const void *key, size_t len, int t, struct ggl_entry *e,
                                   int failed, uint64_t now, struct memory_value *out)
{
    if (t < 0) {
        metrics_add(M.misses, 1);
        if (failed) {
            hostapi_set_reason("%d tier(s) unreachable; the key may be there", failed);
            return GGL_RETRY;
        }
        return GGL_NOTFOUND;
    }
    if (dead(e, now)) {
        free(e->value);
        metrics_add(M.misses, 1);
        return GGL_NOTFOUND;
    }
    metrics_add(M.hits[t], 1);
    access_record(key, len, now);
    if (t != SLOT_CACHE && bound(SLOT_CACHE)) {
        if (M.hook)
            M.hook(HOOK_BEFORE_PROMOTE, key, len);
        struct ggl_entry copy = *e;
        copy.key = key;
        copy.key_len = len;
        copy.flags &= ~GGL_ENTRY_PENDING;
        if (tier_call(SLOT_CACHE, OP_PUT, key, len, &copy, NULL, GGL_VERSION_OLDER) == GGL_OK)
            metrics_add(M.promotions, 1);
    }
    out->data = e->value;
    out->len = e->value_len;
    out->tier = t;
    if (e != &out->meta)
        out->meta = *e;
    out->meta.key = NULL;
    out->meta.value = NULL;
    return GGL_OK;
}

enum ggl_status memory_get(const void *key, size_t len, struct memory_value *out)
{
    int t, failed; /* the entry is read straight into out->meta: no copy on a hit */
    find_top(key, len, &out->meta, &t, &failed);
    return finish_read(key, len, t, &out->meta, failed, clock_now_ms(), out);
}

/* n reads from tier t in one backend call (get_batch, else a loop), values decompressed. */
static void tier_get_batch(int t, const void *const *keys, const size_t *lens, size_t n,
                           struct ggl_entry *out, enum ggl_status *status)
{
    struct binding *b;
    struct slot *s = &M.slots[t];
    enum ggl_status st = slot_acquire(s, &b), health = GGL_OK;
    for (size_t i = 0; i < n; i++)
        out[i] = (struct ggl_entry){.size = sizeof out[i]}, status[i] = st;
    if (st != GGL_OK)
        return;
    hostapi_clear_reason();
    struct binding *p = previous_of(s);
    if (GGL_HAS_SLOT(b->vt, struct ggl_tier, get_batch)) {
        if ((st = b->vt->get_batch(b->self, keys, lens, n, out, status)) != GGL_OK)
            for (size_t i = 0; i < n; i++)
                status[i] = st;
    } else {
        for (size_t i = 0; i < n; i++)
            status[i] = b->vt->get(b->self, keys[i], lens[i], &out[i]);
    }
    for (size_t i = 0; i < n; i++)
        if (status[i] == GGL_RETRY || status[i] == GGL_ERROR || status[i] == GGL_NOMEM)
            health = status[i];
    slot_release(s, b, health, health == GGL_OK ? NULL : hostapi_peek_reason());
    for (size_t i = 0; i < n; i++)
        if (p && (status[i] == GGL_NOTFOUND || status[i] == GGL_OK))
            status[i] = with_previous(p, t, OP_GET, status[i], keys[i], lens[i], NULL, &out[i], 0);
    if (p)
        binding_put(p);
    for (size_t i = 0; i < n; i++)
        if (status[i] == GGL_OK && (status[i] = decompress_entry(&out[i], MAX_VALUE_BYTES)) != GGL_OK) {
            free(out[i].value);
            out[i].value = NULL;
        }
}

enum ggl_status memory_get_batch(const void *const *keys, const size_t *lens, size_t n,
                                 struct memory_value *out, enum ggl_status *status)
{
    int *tier = malloc(n * sizeof *tier), *failed = calloc(n, sizeof *failed);
    size_t *idx = malloc(n * sizeof *idx), *sub_lens = malloc(n * sizeof *sub_lens);
    const void **sub_keys = malloc(n * sizeof *sub_keys);
    struct ggl_entry *es = malloc(n * sizeof *es), *found = malloc(n * sizeof *found);
    enum ggl_status *st = malloc(n * sizeof *st), rc = GGL_OK;
    if (!tier || !failed || !idx || !sub_lens || !sub_keys || !es || !found || !st) {
        rc = GGL_NOMEM;
        goto out;
    }
    for (size_t i = 0; i < n; i++)
        tier[i] = -1;
    for (int t = 0; t < SLOT_COUNT; t++) {
        size_t m = 0;
        for (size_t i = 0; i < n; i++)
            if (tier[i] < 0)
                idx[m] = i, sub_keys[m] = keys[i], sub_lens[m++] = lens[i];
        if (!m)
            break;
        if (!bound(t))
            continue;
        tier_get_batch(t, sub_keys, sub_lens, m, found, st);
        for (size_t j = 0; j < m; j++) {
            if (st[j] == GGL_OK)
                es[idx[j]] = found[j], tier[idx[j]] = t;
            else if (st[j] != GGL_NOTFOUND)
                failed[idx[j]]++;
        }
    }
    uint64_t now = clock_now_ms();
    for (size_t i = 0; i < n; i++)
        status[i] = finish_read(keys[i], lens[i], tier[i], &es[i], failed[i], now, &out[i]);
out:
    free(tier), free(failed), free(idx), free(sub_lens), free(sub_keys), free(es), free(found), free(st);
    return rc;
}

enum ggl_status memory_get_cached(const void *key, size_t len, struct memory_value *out)
{
    struct binding *b = M.ready ? atomic_load(&M.slots[SLOT_CACHE].current) : NULL;
    if (!b || !b->nonblocking)
        return GGL_RETRY;
    struct ggl_entry e = {.size = sizeof e};
    if (tier_call(SLOT_CACHE, OP_GET, key, len, NULL, &e, 0) != GGL_OK)
        return GGL_RETRY;
    if (e.flags & GGL_ENTRY_TOMBSTONE) {
        free(e.value);
        metrics_add(M.misses, 1);
        return GGL_NOTFOUND;
    }
    if (dead(&e, clock_now_ms())) {
        free(e.value);
        return GGL_RETRY;
    }
    metrics_add(M.hits[SLOT_CACHE], 1);
    access_record(key, len, clock_now_ms());
    out->data = e.value;
    out->len = e.value_len;
    out->tier = SLOT_CACHE;
    out->meta = e;
    out->meta.key = NULL;
    out->meta.value = NULL;
    return GGL_OK;
}

/* The default target: STM, else the first bound tier below it, else the cache. */
static int default_target(void)
{
    for (int t = SLOT_STM; t < SLOT_COUNT; t++)
        if (bound(t))
            return t;
    return SLOT_CACHE;
}

static uint64_t default_ttl(int tier)
{
    switch (tier) {
    case SLOT_CACHE:
    case SLOT_STM: return (uint64_t)M.conf.stm_ttl_ms;
    case SLOT_IM: return (uint64_t)M.conf.im_ttl_ms;
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
        if (t == target || !bound(t))
            continue;
        if (t == SLOT_CACHE && cache_copy)
            tier_call(t, OP_PUT, e->key, e->key_len, e, NULL, GGL_VERSION_OLDER);
        else if (t == SLOT_CACHE)
            tier_call(t, OP_DEL, e->key, e->key_len, NULL, NULL, GGL_VERSION_ANY);
        else if (retire_older(t, e->key, e->key_len, e->version, now) && existed)
            *existed = 1;
    }
}

/* spread() for the n entries of a batch written to `target` (those with ok[i] set):
 * each other tier below the cache is asked for all of them in one get_batch. */
static void spread_batch(int target, const struct ggl_entry *es, const char *ok, size_t n)
{
    const void **keys = malloc(n * sizeof *keys);
    size_t *lens = malloc(n * sizeof *lens), *idx = malloc(n * sizeof *idx), m = 0;
    struct ggl_entry *found = malloc(n * sizeof *found);
    enum ggl_status *st = malloc(n * sizeof *st);
    int fallback = !keys || !lens || !idx || !found || !st;
    uint64_t now = clock_now_ms();
    for (size_t i = 0; i < n; i++)
        if (ok[i] && fallback)
            spread(target, &es[i], NULL); /* no memory for the batch: one by one */
        else if (ok[i])
            keys[m] = es[i].key, lens[m] = es[i].key_len, idx[m++] = i;
    int cache_copy = target == default_target();
    for (int t = 0; m && t < SLOT_COUNT; t++) {
        if (t == target || !bound(t))
            continue;
        if (t == SLOT_CACHE) {
            for (size_t j = 0; j < m; j++)
                tier_call(t, cache_copy ? OP_PUT : OP_DEL, keys[j], lens[j], &es[idx[j]], NULL,
                          cache_copy ? GGL_VERSION_OLDER : GGL_VERSION_ANY);
            continue;
        }
        tier_get_batch(t, keys, lens, m, found, st);
        for (size_t j = 0; j < m; j++)
            retire_found(t, keys[j], lens[j], st[j], found[j], es[idx[j]].version, now);
    }
    free(keys), free(lens), free(idx), free(found), free(st);
}

/* Write e into `target`, then spread it.  A lost race to a newer version counts as OK. */
static enum ggl_status write_through(int target, const struct ggl_entry *e, int *existed)
{
    enum ggl_status st = tier_call(target, OP_PUT, e->key, e->key_len, e, NULL, GGL_VERSION_OLDER);
    if (st == GGL_CONFLICT)
        st = GGL_OK;
    if (st == GGL_OK)
        spread(target, e, existed);
    return st;
}

/* The target a write names, or GGL_INVALID (reason set) when it is not bound. */
static int write_target(const struct memory_write *w)
{
    int target = w->tier >= 0 ? w->tier : default_target();
    if (!bound(target)) {
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
    if (!M.ready)
        return GGL_UNAVAILABLE;
    int target = write_target(w);
    if (target < 0)
        return GGL_INVALID;
    struct ggl_entry e = new_entry(key, len, value, vlen, w, target, clock_now_ms(), next_version());
    enum ggl_status st = write_through(target, &e, NULL);
    if (st == GGL_OK) {
        metrics_add(M.writes, 1);
        if (version)
            *version = e.version;
    }
    return st;
}

int memory_prepare(const struct memory_item *items, size_t n, const struct memory_write *w,
                   struct ggl_entry *es)
{
    if (!M.ready)
        return hostapi_set_reason("memory is not ready"), -1;
    int target = write_target(w);
    if (target < 0)
        return target;
    /* The batch's n versions in one atomic add, not n: callers writing batches at once
     * would otherwise bounce the counter's cache line between CPUs per entry. */
    uint64_t now = clock_now_ms(), first = atomic_fetch_add(&M.version, n) + 1;
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
        es[i] = *for_tier(target, &entries[i], &tmp, &zbufs[i]);
        es[i].flags &= ~GGL_ENTRY_PENDING;
    }
    struct binding *b, *p = previous_of(&M.slots[target]);
    enum ggl_status st = slot_acquire(&M.slots[target], &b);
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
        slot_release(&M.slots[target], b, health,
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
            with_previous(p, target, OP_PUT, GGL_OK, es[i].key, es[i].key_len, &es[i], NULL,
                          GGL_VERSION_OLDER);
        acked += (size_t)ok[i];
    }
    spread_batch(target, es, ok, n);
    for (size_t i = 0; i < n; i++)
        if (ok[i] && (entries[i].flags & GGL_ENTRY_PENDING)) /* settle the cache's pending copy */
            tier_call(SLOT_CACHE, OP_PUT, es[i].key, es[i].key_len, &es[i], NULL, es[i].version);
    if (acked)
        metrics_add(M.writes, (double)acked);
    free(ok);
    if (p)
        binding_put(p);
    free(zbufs);
    free(es);
    return st;
}

enum ggl_status memory_hold_in_cache(const struct ggl_entry *e)
{
    if (!bound(SLOT_CACHE))
        return hostapi_set_reason("no cache to hold a queued write"), GGL_RETRY;
    struct ggl_entry pending = *e;
    pending.flags |= GGL_ENTRY_PENDING;
    return tier_call(SLOT_CACHE, OP_PUT, e->key, e->key_len, &pending, NULL, GGL_VERSION_OLDER);
}

enum ggl_status memory_put_batch(const struct memory_item *items, size_t n,
                                 const struct memory_write *w, enum ggl_status *status)
{
    struct ggl_entry *es = malloc(n * sizeof *es);
    if (!es)
        return GGL_NOMEM;
    int target = memory_prepare(items, n, w, es);
    enum ggl_status st = target < 0 ? (M.ready ? GGL_INVALID : GGL_UNAVAILABLE)
                                    : memory_write_entries(target, es, n, GGL_VERSION_ANY, status);
    free(es);
    return st;
}

enum ggl_status memory_del(const void *key, size_t len, int *existed)
{
    if (!M.ready)
        return GGL_UNAVAILABLE;
    uint64_t now = clock_now_ms();
    *existed = 0;
    int target = default_target();
    /* Was there a live value?  The target's own copy is replaced by the tombstone, so
     * look at it (and the cache) first; retire_older reports the tiers below. */
    int t, failed;
    struct ggl_entry top;
    if (find_top(key, len, &top, &t, &failed) == GGL_OK) {
        *existed = !dead(&top, now);
        free(top.value);
    }
    struct ggl_entry tomb = {.size = sizeof tomb, .key = key, .key_len = len, .value = "",
                             .version = next_version(), .flags = GGL_ENTRY_TOMBSTONE,
                             .created_ms = now, .last_access_ms = now,
                             .expires_ms = now + (uint64_t)M.conf.tombstone_ttl_ms};
    enum ggl_status st = write_through(target, &tomb, NULL);
    if (st == GGL_OK)
        metrics_add(M.deletes, 1);
    return st;
}

enum ggl_status memory_move(const void *key, size_t len, int from, int to)
{
    struct ggl_entry e = {.size = sizeof e};
    enum ggl_status st = tier_call(from, OP_GET, key, len, NULL, &e, 0);
    if (st != GGL_OK)
        return st;
    e.key = key;
    e.key_len = len;
    /* The copy lives as long as its new tier keeps things (pinned: for ever). */
    uint64_t ttl = default_ttl(to);
    e.expires_ms = (e.flags & GGL_ENTRY_PINNED) || !ttl ? 0 : clock_now_ms() + ttl;
    if (M.hook)
        M.hook(HOOK_BEFORE_COPY, key, len);
    st = tier_call(to, OP_PUT, key, len, &e, NULL, GGL_VERSION_OLDER);
    free(e.value);
    if (st != GGL_OK && st != GGL_CONFLICT)
        return st; /* the source keeps its copy */
    if (M.hook)
        M.hook(HOOK_BETWEEN_COPY_AND_DELETE, key, len);
    st = tier_call(from, OP_DEL, key, len, NULL, NULL, e.version);
    if (st == GGL_CONFLICT) {
        /* A newer write replaced the source meanwhile; if it retired older copies below
         * before ours landed, ours would outlive it and come back when it expires: take
         * ours away again (only if it is still ours, by version). */
        tier_call(to, OP_DEL, key, len, NULL, NULL, e.version);
        return GGL_OK;
    }
    return st == GGL_NOTFOUND ? GGL_OK : st;
}

size_t memory_info(char *buf, size_t len)
{
    size_t n = 0;
#define OUT(...) (n += (size_t)snprintf(buf + n, n < len ? len - n : 0, __VA_ARGS__))
    OUT("memory_ready:%d\r\n", M.ready);
    for (int t = 0; M.ready && t < SLOT_COUNT; t++) {
        struct slot *s = &M.slots[t];
        struct binding *b = atomic_load(&s->current);
        char reason[sizeof s->reason];
        pthread_mutex_lock(&s->lock);
        memcpy(reason, s->reason, sizeof reason);
        pthread_mutex_unlock(&s->lock);
        OUT("slot_%s:backend=%s,breaker=%s,in_flight=%ld,refused_busy=%llu,refused_open=%llu,"
            "errors=%llu,compress=%d,last_error=%s\r\n",
            s->name, b ? b->label : "(unbound)", breaker_state_name(atomic_load(&s->state)),
            (long)atomic_load(&s->in_flight), (unsigned long long)atomic_load(&s->refused_busy),
            (unsigned long long)atomic_load(&s->refused_open),
            (unsigned long long)atomic_load(&s->errors), !!(M.compress_mask & (1u << t)),
            reason[0] ? reason : "-");
        struct ggl_tier_stats st = {.size = sizeof st};
        /* Counts only where they are cheap: a nonblocking (in-process) backend. */
        if (b && b->nonblocking && GGL_HAS_SLOT(b->vt, struct ggl_tier, stats) &&
            b->vt->stats(b->self, &st) == GGL_OK)
            OUT("slot_%s_counts:entries=%llu,bytes=%llu,evictions=%llu,expirations=%llu\r\n",
                s->name, (unsigned long long)st.entries, (unsigned long long)st.bytes,
                (unsigned long long)st.evictions, (unsigned long long)st.expirations);
    }
    if (M.ready)
        n += swap_info(buf + n, n < len ? len - n : 0);
#undef OUT
    return n < len ? n : (len ? len - 1 : 0);
}

struct slot *memory_slot(int tier) { return &M.slots[tier]; }
const struct instance *memory_instances(size_t *n) { return *n = M.ninst, M.inst; }
int memory_entry_live(const struct ggl_entry *e, uint64_t now) { return !dead(e, now); }
int memory_tier_bound(int tier) { return bound(tier); }

int memory_where(const void *key, size_t len, int *live)
{
    int n = 0, failed = 0;
    uint64_t now = clock_now_ms();
    for (int t = 0; t < SLOT_COUNT; t++) {
        struct ggl_entry e = {.size = sizeof e};
        enum ggl_status st = bound(t) ? tier_call(t, OP_GET, key, len, NULL, &e, 0) : GGL_NOTFOUND;
        live[t] = st == GGL_OK && !(e.flags & GGL_ENTRY_TOMBSTONE) && !dead(&e, now);
        n += live[t];
        failed |= st != GGL_OK && st != GGL_NOTFOUND;
        if (st == GGL_OK)
            free(e.value);
    }
    return failed ? -1 : n;
}
const struct memory_conf *memory_conf(void) { return &M.conf; }
const struct memory_async_conf *memory_async_settings(void) { return &M.conf.async; }

enum ggl_status memory_scan(int tier, uint64_t *cursor, size_t count, ggl_scan_fn fn, void *arg)
{
    struct binding *b;
    struct slot *s = &M.slots[tier];
    enum ggl_status st = slot_acquire(s, &b);
    if (st != GGL_OK)
        return st;
    if (!GGL_HAS_SLOT(b->vt, struct ggl_tier, scan)) {
        slot_release(s, b, GGL_OK, NULL);
        hostapi_set_reason("%s has no scan slot", b->label);
        return GGL_UNAVAILABLE;
    }
    hostapi_clear_reason();
    st = b->vt->scan(b->self, cursor, count, fn, arg);
    slot_release(s, b, st, st == GGL_OK ? NULL : hostapi_peek_reason());
    return st;
}

void memory_touch(void *arg, const void *key, size_t len, uint64_t count, uint64_t last_ms)
{
    (void)arg;
    for (int t = SLOT_STM; t < SLOT_COUNT; t++) {
        if (!bound(t))
            continue;
        struct ggl_entry e = {.size = sizeof e};
        enum ggl_status st = tier_call(t, OP_GET, key, len, NULL, &e, 0);
        if (st == GGL_NOTFOUND)
            continue;
        if (st == GGL_OK && !(e.flags & GGL_ENTRY_TOMBSTONE)) {
            e.key = key;
            e.key_len = len;
            e.access_count += count;
            if (last_ms > e.last_access_ms)
                e.last_access_ms = last_ms;
            /* Same version, new counters: a newer write meanwhile wins (CONFLICT). */
            tier_call(t, OP_PUT, key, len, &e, NULL, e.version);
        }
        free(e.value);
        return;
    }
}

enum ggl_status memory_purge_tombstone(const void *key, size_t len, int tier, uint64_t version)
{
    struct ggl_entry e;
    for (int t = tier + 1; t < SLOT_COUNT; t++) {
        if (!bound(t))
            continue;
        e = (struct ggl_entry){.size = sizeof e};
        enum ggl_status st = tier_call(t, OP_GET, key, len, NULL, &e, 0);
        if (st == GGL_OK)
            free(e.value);
        if (st != GGL_NOTFOUND)
            return GGL_CONFLICT; /* a lower copy (or an unreachable tier): keep shadowing */
    }
    enum ggl_status st = tier_call(tier, OP_DEL, key, len, NULL, NULL, version);
    if (bound(SLOT_CACHE) && tier != SLOT_CACHE)
        tier_call(SLOT_CACHE, OP_DEL, key, len, NULL, NULL, version);
    return st;
}
void memory_set_hook(memory_hook_fn fn) { M.hook = fn; }
int memory_ready(void) { return M.ready; }

static void register_metrics(void)
{
    static const char *const hit_names[SLOT_COUNT] = {
        "memory_hits_cache_total", "memory_hits_stm_total", "memory_hits_im_total",
        "memory_hits_ltm_total"};
    for (int t = 0; t < SLOT_COUNT; t++)
        M.hits[t] = metrics_register(GGL_METRIC_COUNTER, hit_names[t], "reads answered by this tier", NULL);
    M.misses = metrics_register(GGL_METRIC_COUNTER, "memory_misses_total", "reads that found nothing", NULL);
    M.writes = metrics_register(GGL_METRIC_COUNTER, "memory_writes_total", "acknowledged writes", NULL);
    M.deletes = metrics_register(GGL_METRIC_COUNTER, "memory_deletes_total", "acknowledged deletes", NULL);
    M.promotions = metrics_register(GGL_METRIC_COUNTER, "memory_promotions_total", "copies promoted into the cache", NULL);
    M.conflicts = metrics_register(GGL_METRIC_COUNTER, "memory_conflicts_total", "conditional tier writes that lost to a newer version", NULL);
    M.zin = metrics_register(GGL_METRIC_COUNTER, "memory_compress_in_bytes_total", "value bytes before compression", NULL);
    M.zout = metrics_register(GGL_METRIC_COUNTER, "memory_compress_out_bytes_total", "value bytes after compression", NULL);
    M.unretired = metrics_register(GGL_METRIC_COUNTER, "memory_unretired_total", "older copies a write could not remove (tier unreachable)", NULL);
}

int memory_check_config(const struct config *c, struct conf_error *err)
{
    return memory_read_config(c, &M.conf, &M.compress_mask, err);
}

int memory_init(const struct config *c, struct instance *v, size_t n, struct conf_error *err)
{
    if (memory_check_config(c, err) < 0)
        return -1;
    for (int t = 0; t < SLOT_COUNT; t++)
        slot_init(&M.slots[t], tier_slot_names[t], (long)M.conf.max_in_flight,
                  (long)M.conf.breaker_threshold, (uint64_t)M.conf.breaker_cooldown_ms);
    atomic_store(&M.version, clock_now_ms() * 1000u);
    if (access_init((size_t)M.conf.access_table_size) < 0)
        return snprintf(err->msg, sizeof err->msg, "out of memory"), -1;
    register_metrics();
    memory_read_init(M.hits[SLOT_CACHE], M.misses, (M.compress_mask & (1u << SLOT_CACHE)) != 0);
    for (int t = 0; t < SLOT_COUNT; t++) {
        if (!c->slots[t])
            continue;
        for (size_t i = 0; i < n; i++) {
            struct instance *inst = &v[i];
            if (inst->conf->kind != GGL_KIND_TIER || strcmp(inst->conf->name, c->slots[t]) != 0)
                continue;
            if (inst->state != INSTANCE_OPEN)
                log_warn("memory: slot %s stays unbound: %s: %s", tier_slot_names[t], inst->label,
                         inst->reason);
            else if (slot_bind(&M.slots[t], inst->mod->desc->vtable, inst->self, inst->label) < 0)
                return snprintf(err->msg, sizeof err->msg, "out of memory"), -1;
            else
                log_info("memory: slot %s bound to %s", tier_slot_names[t], inst->label);
        }
    }
    M.inst = v;
    M.ninst = n;
    M.ready = 1;
    return 0;
}

void memory_fini(void)
{
    if (!M.ready)
        return;
    swap_fini();
    M.ready = 0;
    access_fini();
    for (int t = 0; t < SLOT_COUNT; t++)
        slot_fini(&M.slots[t]);
}
