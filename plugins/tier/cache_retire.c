/* tier/cache: del_older_batch, the retire of copies a batch of writes aimed below the
 * cache made stale.  The keys are grouped by shard, and a shard's write lock is taken
 * once for up to RETIRE_HOLD of them (not twice a key, as del does), so its readers wait
 * a few microseconds at most. */
#include <stdlib.h>

#include "cache.h"

#define RETIRE_HOLD 32
#define AHEAD 8    /* keys between a key's item prefetch and its retire (its slot: twice) */
#define RUN_MAX 12 /* index slots whose items are prefetched from a key's first slot */

/* Key's item removed if older than version, *drop the item to free (or NULL).  Write
 * lock held. */
static enum ggl_status retire_item(struct shard *s, uint64_t h, const void *key, size_t len,
                                   uint64_t version, uint64_t now, struct item **drop)
{
    *drop = NULL;
    size_t i = cache_find(s, h, key, len);
    if (i == NOPOS)
        return GGL_NOTFOUND;
    struct item *it = slot_item(s->index[i]);
    if (it->version >= version)
        return GGL_CONFLICT;
    if (item_expired(it, now))
        s->expirations++;
    *drop = cache_unlink(s, it);
    return GGL_OK;
}

/* Key hash h's first index slot (cache.c's home_of). */
static size_t home(const struct shard *s, uint64_t h) { return (size_t)(h >> 16) & s->mask; }

/* While key order[j] of a shard's order[.. end) is retired, fetch the index slot of the
 * key 2 AHEAD after it, and the items in the probe run from the first slot of the key
 * AHEAD after it: retire_item reads that key's item, and removing it from the index
 * reads the hash of every item after it in the run (each a cache miss, ~100 ns here,
 * which the prefetches overlap).  Write lock held. */
static void prefetch_ahead(const struct shard *s, const uint64_t *h, const size_t *order,
                           size_t j, size_t end)
{
    if (j + 2 * AHEAD < end)
        __builtin_prefetch(&s->index[home(s, h[order[j + 2 * AHEAD]])]);
    if (j + AHEAD >= end)
        return;
    size_t i = home(s, h[order[j + AHEAD]]);
    for (int run = 0; run < RUN_MAX && s->index[i]; run++, i = (i + 1) & s->mask)
        __builtin_prefetch(slot_item(s->index[i]));
}

/* The keys' indices in order of shard: order[from[si] .. from[si + 1]) hash to shard si. */
static void by_shard(const struct cache *c, const uint64_t *h, size_t n, size_t *order,
                     size_t *from)
{
    for (size_t i = 0; i < n; i++)
        from[(h[i] & (c->nshards - 1)) + 1]++; /* shard_index() */
    for (size_t si = 0; si < c->nshards; si++)
        from[si + 1] += from[si];
    for (size_t i = 0; i < n; i++)
        order[from[h[i] & (c->nshards - 1)]++] = i; /* from[si] moves to shard si + 1's start */
    for (size_t si = c->nshards; si > 0; si--)
        from[si] = from[si - 1];
    from[0] = 0;
}

/* Shard si's shrunk items among drop[order[0 .. m)] onto its orphans, one lock for all. */
static void keep_orphans(struct cache *c, size_t si, struct item **drop, const size_t *order,
                         size_t m)
{
    size_t j = 0;
    while (j < m && !drop[order[j]])
        j++;
    if (j == m)
        return;
    cache_write_lock(c, si);
    for (; j < m; j++)
        if (drop[order[j]])
            cache_orphan(&c->shards[si], drop[order[j]]);
    cache_write_unlock(c, si);
}

enum ggl_status cache_del_older_batch(void *self, const void *const *keys, const size_t *lens,
                                      size_t n, const uint64_t *versions, enum ggl_status *status)
{
    struct cache *c = self;
    uint64_t *h = malloc(n * sizeof *h), now = c->host->now(c->host);
    size_t *order = malloc(n * sizeof *order), *from = calloc(c->nshards + 1, sizeof *from);
    struct item **drop = malloc(n * sizeof *drop);
    enum ggl_status st = h && order && from && drop ? GGL_OK : GGL_NOMEM;
    for (size_t i = 0; st == GGL_OK && i < n; i++)
        h[i] = cache_hash(keys[i], lens[i]);
    if (st == GGL_OK)
        by_shard(c, h, n, order, from);
    for (size_t si = 0; st == GGL_OK && si < c->nshards; si++)
        for (size_t j = from[si]; j < from[si + 1];) {
            size_t end = j + RETIRE_HOLD < from[si + 1] ? j + RETIRE_HOLD : from[si + 1];
            struct shard *s = &c->shards[si];
            cache_write_lock(c, si);
            for (size_t a = j; j == from[si] && a < from[si + 1] && a < j + 2 * AHEAD; a++)
                __builtin_prefetch(&s->index[home(s, h[order[a]])]); /* the first keys' */
            for (; j < end; j++) {
                prefetch_ahead(s, h, order, j, from[si + 1]);
                size_t k = order[j];
                status[k] = retire_item(s, h[k], keys[k], lens[k], versions[k], now, &drop[k]);
            }
            cache_write_unlock(c, si);
        }
    /* Freed (or shrunk, to keep their reads) after the locks, in the caller's order: a
     * batch written in the order its keys were first stored frees neighbouring blocks
     * one after another, which costs malloc far fewer cache misses (~25 ns an item
     * here, ~130 ns in the shards' scattered order under the lock). */
    int kept = 0;
    for (size_t k = 0; st == GGL_OK && k < n; k++)
        kept |= drop[k] && (drop[k] = cache_shrink(drop[k])) != NULL;
    for (size_t si = 0; kept && si < c->nshards; si++)
        keep_orphans(c, si, drop, order + from[si], from[si + 1] - from[si]);
    free(drop);
    free(h);
    free(order);
    free(from);
    return st;
}
