/* tier/cache: the walks over every entry — scan (the host's maintenance and
 * migrations), take_reads (maintenance collecting the reads get_into counted) and
 * stats.  Each holds one shard's write lock at a time, for a bounded number of entries.
 * Also the orphans take_reads hands over: dropped items shrunk to their keys. */
#include <stdlib.h>

#include "cache.h"

/* A dropped item with reads not taken yet, shrunk to its key (cache.h). */
struct item *cache_shrink(struct item *it)
{
    struct item *kept;
    if (!atomic_load_explicit(&it->reads, memory_order_relaxed) ||
        !(kept = realloc(it, sizeof *it + it->key_len))) {
        free(it);
        return NULL;
    }
    kept->value_len = 0;
    return kept;
}

void cache_orphan(struct shard *s, struct item *kept)
{
    if (s->norphans >= s->max_entries) {
        free(kept);
        return;
    }
    kept->next = s->orphans;
    s->orphans = kept;
    s->norphans++;
}

/* What take_reads copied out of one shard under its lock, delivered after unlocking
 * (the visitor calls other tiers: readers must not wait for it).  Keys are kept as
 * offsets into `keys` until the walk of the shard ends, since `keys` may move. */
struct taken {
    struct ggl_entry *entries;
    size_t n;
    char *keys;
    size_t keys_len, keys_cap;
};

/* Move it's reads into t (none if it has none).  -1 when out of memory. */
static int take_item(struct taken *t, struct item *it)
{
    uint32_t reads = atomic_load_explicit(&it->reads, memory_order_relaxed);
    if (!reads)
        return 0;
    if (t->keys_len + it->key_len > t->keys_cap) {
        size_t cap = 2 * (t->keys_cap + it->key_len);
        char *k = realloc(t->keys, cap);
        if (!k)
            return -1;
        t->keys = k, t->keys_cap = cap;
    }
    struct ggl_entry *e = &t->entries[t->n++];
    e->size = sizeof *e;
    item_entry(it, e);
    e->value = NULL;
    e->value_len = 0;
    e->key = (const void *)(uintptr_t)t->keys_len;
    e->access_count = reads;
    e->last_access_ms = atomic_load_explicit(&it->last_hit_ms, memory_order_relaxed);
    memcpy(t->keys + t->keys_len, item_key(it), it->key_len);
    t->keys_len += it->key_len;
    atomic_store_explicit(&it->reads, 0, memory_order_relaxed);
    return 0;
}

/* Hand what was taken to fn; returns fn's stop.  Every taken entry is delivered. */
static int deliver(struct taken *t, ggl_scan_fn fn, void *arg)
{
    int stop = 0;
    for (size_t i = 0; i < t->n; i++) {
        t->entries[i].key = t->keys + (uintptr_t)t->entries[i].key;
        stop |= fn(arg, &t->entries[i]);
    }
    t->n = t->keys_len = 0;
    return stop;
}

/* Hand the orphans (items dropped with reads, see keep_reads) to fn and free them. */
static int deliver_orphans(struct item *o, ggl_scan_fn fn, void *arg)
{
    int stop = 0;
    for (struct item *next; o; o = next) {
        struct ggl_entry e = {.size = sizeof e};
        item_entry(o, &e);
        e.value = NULL;
        e.access_count = atomic_load_explicit(&o->reads, memory_order_relaxed);
        e.last_access_ms = atomic_load_explicit(&o->last_hit_ms, memory_order_relaxed);
        stop |= fn(arg, &e);
        next = o->next;
        free(o);
    }
    return stop;
}

/* Cursor: shard index in the high 24 bits, position in its dense array below.  Entries
 * added or dropped during a walk may be missed or seen twice, as with Redis SCAN.  An
 * expired entry met on the way is dropped: the host's maintenance scans the cache every
 * cycle, which trims it of what expired but was never read again.  With `take` (not
 * NULL) the walk takes reads instead of visiting, also those of the expired entries it
 * drops (the copy below lives on): `count` bounds the entries examined. */
static enum ggl_status walk(struct cache *c, uint64_t *cursor, size_t count, ggl_scan_fn fn,
                            void *arg, struct taken *take)
{
    size_t si = (size_t)(*cursor >> 40), pos = (size_t)(*cursor & ((1ull << 40) - 1)), seen = 0;
    uint64_t now = c->host->now(c->host);
    int stop = 0, nomem = 0;
    for (; si < c->nshards && seen < count && !stop; si++, pos = 0) {
        struct shard *s = &c->shards[si];
        cache_write_lock(c, si);
        struct item *orphans = take ? s->orphans : NULL; /* taken whole, at any position */
        if (orphans)
            s->orphans = NULL, s->norphans = 0;
        while (pos < s->count && seen < count && !stop && !nomem) {
            struct item *it = s->dense[pos];
            if (item_expired(it, now)) { /* dense[pos] then holds the former last entry */
                if (take && (nomem = take_item(take, it) < 0))
                    break;
                seen += take != NULL; /* bounds what take holds to `count` */
                cache_drop(s, it);
                s->expirations++;
                continue;
            }
            if (take) {
                nomem = take_item(take, it) < 0;
            } else {
                struct ggl_entry e = {.size = sizeof e};
                item_entry(it, &e);
                stop = fn(arg, &e);
            }
            seen += !nomem;
            pos += !nomem;
        }
        int done = pos >= s->count;
        cache_write_unlock(c, si);
        if (take)
            stop = deliver(take, fn, arg) | deliver_orphans(orphans, fn, arg);
        if (!done || nomem)
            break;
    }
    *cursor = si >= c->nshards ? 0 : ((uint64_t)si << 40) | pos;
    return nomem ? GGL_NOMEM : GGL_OK;
}

enum ggl_status cache_scan(void *self, uint64_t *cursor, size_t count, ggl_scan_fn fn,
                                  void *arg)
{
    return walk(self, cursor, count, fn, arg, NULL);
}

enum ggl_status cache_take_reads(void *self, uint64_t *cursor, size_t count,
                                        ggl_scan_fn fn, void *arg)
{
    struct taken t = {.entries = malloc((count ? count : 1) * sizeof *t.entries)};
    if (!t.entries)
        return GGL_NOMEM;
    enum ggl_status st = walk(self, cursor, count, fn, arg, &t);
    free(t.entries);
    free(t.keys);
    return st;
}

enum ggl_status cache_stats(void *self, struct ggl_tier_stats *out)
{
    struct cache *c = self;
    out->entries = out->bytes = out->evictions = out->expirations = 0;
    for (size_t i = 0; i < c->nshards; i++) {
        struct shard *s = &c->shards[i];
        cache_write_lock(c, i);
        out->entries += s->count;
        out->bytes += s->bytes;
        out->evictions += s->evictions;
        out->expirations += s->expirations;
        cache_write_unlock(c, i);
    }
    return GGL_OK;
}

