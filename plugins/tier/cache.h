/* tier/cache's private types, shared by cache.c (lookups and writes) and cache_walk.c
 * (scan, take_reads, stats).  Not part of the SDK: nothing outside the plugin sees it. */
#ifndef GGL_TIER_CACHE_H
#define GGL_TIER_CACHE_H

#include <stdatomic.h>
#include <stddef.h>
#include <string.h>

#include <ganglion/ganglion.h>

#include "tier_lock.h"

#define READ_STRIPES 4 /* a writer takes all: a few, for the I/O thread and workers */

/* An entry.  What a hit reads and writes fills the first cache line, and the key and
 * value follow the metadata directly (no pointers to chase): a hit touches the bytes
 * from the item's start to the end of its value, usually three lines, fetched in
 * parallel once the shard's index gave the item's address. */
struct item {
    uint32_t flags, key_len, value_len;
    _Atomic uint32_t reads; /* get_into reads since the last take_reads (saturating) */
    uint64_t hash;
    /* struct ggl_entry's fields from version to expires_ms, in its order, so that a hit
     * copies them in one go (checked below) */
    uint64_t version;
    double importance;
    uint64_t created_ms, last_access_ms, access_count, expires_ms;
    _Atomic uint64_t hits;  /* cache-local, for the score; readers update them */
    _Atomic uint64_t last_hit_ms;
    size_t slot;            /* index in the shard's dense array */
    struct item *next;      /* on the shard's orphans list only */
    char data[];            /* key_len + value_len bytes */
};

#define ITEM_META_BYTES (offsetof(struct item, expires_ms) + 8 - offsetof(struct item, version))
_Static_assert(offsetof(struct ggl_entry, expires_ms) + 8 - offsetof(struct ggl_entry, version) ==
                       ITEM_META_BYTES &&
                   offsetof(struct ggl_entry, importance) - offsetof(struct ggl_entry, version) ==
                       offsetof(struct item, importance) - offsetof(struct item, version) &&
                   offsetof(struct ggl_entry, created_ms) - offsetof(struct ggl_entry, version) ==
                       offsetof(struct item, created_ms) - offsetof(struct item, version) &&
                   offsetof(struct ggl_entry, last_access_ms) - offsetof(struct ggl_entry, version) ==
                       offsetof(struct item, last_access_ms) - offsetof(struct item, version) &&
                   offsetof(struct ggl_entry, access_count) - offsetof(struct ggl_entry, version) ==
                       offsetof(struct item, access_count) - offsetof(struct item, version),
               "struct item mirrors struct ggl_entry from version to expires_ms");

/* One stripe of one shard's lock, alone on its cache line. */
struct stripe_lock {
    struct tier_lock l;
} __attribute__((aligned(64)));

/* A shard's index: open addressing with linear probing, each slot one word holding the
 * item's address and, in the 16 bits above a 48-bit address, a tag of its hash, so a
 * probe rarely touches an item that is not the one sought, and the index stays small
 * (8 bytes an entry, at most 7/8 full: 1 MB for 100,000 entries, a quarter of the chained
 * buckets it replaced) and mostly in the CPU caches.  0 is an empty slot; an item whose
 * address needs more than 48 bits is refused (put answers NOMEM: none does on the
 * x86-64 and arm64 Linux user address spaces).  Deletion shifts the following entries
 * back (no tombstones). */
#define NOPOS ((size_t)-1)

struct shard {
    uint64_t *index;
    size_t mask;            /* index slots - 1 (a power of two minus one) */
    struct item **dense;    /* every item, for O(1) random sampling */
    size_t count, max_entries;
    uint64_t bytes, max_bytes, evictions, expirations, rng;
    struct item *orphans;   /* dropped with reads not yet taken, shrunk to their keys */
    size_t norphans;        /* at most max_entries: beyond, such counts are lost */
} __attribute__((aligned(64)));

struct cache {
    const struct ggl_host *host;
    struct shard *shards;
    struct stripe_lock *locks; /* [stripe * nshards + shard] */

    size_t nshards;
    int64_t samples;
    double freq_weight, recency_weight, half_life_ms;
};

static inline size_t item_bytes(const struct item *it) { return (size_t)it->key_len + it->value_len; }
static inline const char *item_key(const struct item *it) { return it->data; }
static inline const char *item_value(const struct item *it) { return it->data + it->key_len; }

/* The item's entry as the SDK shows it (key and value pointing into the item). */
static inline void item_entry(const struct item *it, struct ggl_entry *e)
{
    e->flags = it->flags;
    e->key = item_key(it);
    e->key_len = it->key_len;
    e->value = (void *)item_value(it);
    e->value_len = it->value_len;
    memcpy(&e->version, &it->version, ITEM_META_BYTES);
}

static inline int item_expired(const struct item *it, uint64_t now)
{
    return it->expires_ms && it->expires_ms <= now;
}

/* Hidden: not exported, and not interposable, so calls inside cache.c stay inlinable. */
#define CACHE_INTERNAL __attribute__((visibility("hidden")))

/* Every stripe of shard si, always in stripe order (so two writers cannot deadlock). */
CACHE_INTERNAL void cache_write_lock(struct cache *c, size_t si);
CACHE_INTERNAL void cache_write_unlock(struct cache *c, size_t si);
static inline struct item *slot_item(uint64_t v)
{
    return (struct item *)(uintptr_t)(v & ((1ull << 48) - 1));
}

/* The index slot of key's item, or NOPOS when absent.  A lock of the shard held. */
CACHE_INTERNAL size_t cache_find(const struct shard *s, uint64_t h, const void *key, size_t len);
/* Remove item `it` from index and dense array, and free it (or keep its reads as an
 * orphan).  Write lock held. */
CACHE_INTERNAL void cache_drop(struct shard *s, struct item *it);
/* cache_drop in parts, so that a batch can free outside the lock: the item taken out
 * (write lock held); then, unlocked, freed or shrunk to its key when it has reads to
 * keep (NULL: freed); and the shrunk item put on the shard's orphans (write lock held;
 * freed when as many wait as the shard holds entries). */
CACHE_INTERNAL struct item *cache_unlink(struct shard *s, struct item *it);
CACHE_INTERNAL struct item *cache_shrink(struct item *it);
CACHE_INTERNAL void cache_orphan(struct shard *s, struct item *kept);

/* The key's hash: its low bits pick the shard (cache.c's shard_index). */
CACHE_INTERNAL uint64_t cache_hash(const void *key, size_t len);
/* del_older_batch (cache_retire.c). */
CACHE_INTERNAL enum ggl_status cache_del_older_batch(void *self, const void *const *keys,
                                                     const size_t *lens, size_t n,
                                                     const uint64_t *versions,
                                                     enum ggl_status *status);
CACHE_INTERNAL enum ggl_status cache_scan(void *self, uint64_t *cursor, size_t count,
                                          ggl_scan_fn fn, void *arg);
CACHE_INTERNAL enum ggl_status cache_take_reads(void *self, uint64_t *cursor, size_t count,
                                                ggl_scan_fn fn, void *arg);
CACHE_INTERNAL enum ggl_status cache_stats(void *self, struct ggl_tier_stats *out);

#endif
