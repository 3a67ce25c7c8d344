/* tier/cache: the in-process cache in front of the other tiers.  Bounded by entries and
 * bytes, GGL_NONBLOCKING, sharded; each shard finds its items through an open-addressed
 * index of tagged addresses (cache.h).  Each shard is locked by READ_STRIPES small mutexes
 * (tier_lock.h; no rwlock — see PERF.md), each on its own cache line: a reader takes only its
 * thread's stripe, a writer takes all of them, so a hit writes no line another reading
 * thread uses (a big-reader lock; writes are the rare side).  Eviction samples a few
 * entries of the shard and drops the one with the lowest score (as Redis approximates
 * LRU/LFU), so it is O(1) per eviction:
 *
 *   score = freq_weight * ln(1 + hits) + recency_weight * 2^(-idle_ms / half_life_ms)
 *
 * the seed's cache score "by access frequency and recency".  Entries flagged
 * GGL_ENTRY_PENDING (a lower-tier write not yet done) are never evicted; when a shard
 * holds nothing else, puts answer GGL_RETRY.  get_into (ABI 1.1) copies a hit into the
 * host's buffer and counts the read in the item itself; take_reads hands those counts
 * to maintenance, so the host keeps no table of what the cache answered. */
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <ganglion/ganglion.h>

#include "cache.h"

static const struct ggl_setting settings[] = {
    GGL_SETTING("max_entries", GGL_SETTING_INT, "100000", "entries held in all"),
    GGL_SETTING("max_bytes", GGL_SETTING_INT, "268435456", "key + value bytes held in all"),
    GGL_SETTING("shards", GGL_SETTING_INT, "16", "independently locked shards (power of two)"),
    GGL_SETTING("samples", GGL_SETTING_INT, "5", "entries sampled per eviction"),
    GGL_SETTING("freq_weight", GGL_SETTING_FLOAT, "1.0", "score weight of ln(1 + hits)"),
    GGL_SETTING("recency_weight", GGL_SETTING_FLOAT, "1.0", "score weight of recency"),
    GGL_SETTING("half_life_ms", GGL_SETTING_INT, "60000", "idle time that halves recency"),
    GGL_SETTINGS_END};

/* The hit path's helpers, inlined into get_into (-O2 would call most of them). */
#define HOT inline __attribute__((always_inline))

/* Eight bytes per step (a byte at a time cost a third of a hit's instructions), the
 * last word overlapping the one before (short keys need no byte loop), then
 * splitmix64's finaliser, so the low bits (shard) and bits 16+ (slot) are both mixed. */
static HOT uint64_t hash(const void *key, size_t len)
{
    const unsigned char *p = key;
    uint64_t h = 0x9E3779B97F4A7C15ull ^ len, w;
    if (len >= 8) {
        for (size_t n = len; n > 8; p += 8, n -= 8) {
            memcpy(&w, p, 8);
            h = (h ^ w) * 0xff51afd7ed558ccdull;
            h ^= h >> 32;
        }
        memcpy(&w, (const unsigned char *)key + len - 8, 8);
    } else if (len >= 4) {
        uint32_t a, b;
        memcpy(&a, p, 4), memcpy(&b, p + len - 4, 4);
        w = (uint64_t)a << 32 | b;
    } else {
        w = len ? (uint64_t)p[0] << 16 | (uint64_t)p[len >> 1] << 8 | p[len - 1] : 0;
    }
    h ^= w;
    h = (h ^ (h >> 30)) * 0xbf58476d1ce4e5b9ull;
    h = (h ^ (h >> 27)) * 0x94d049bb133111ebull;
    return h ^ (h >> 31);
}

/* memcmp(a, b, n) == 0 for the short keys of a hit, without a call: words, the last
 * one overlapping the one before. */
static HOT int same_bytes(const char *a, const char *b, size_t n)
{
    uint64_t x, y;
    uint32_t u, v, tu, tv;
    if (n >= 8) {
        for (; n > 8; a += 8, b += 8, n -= 8) {
            memcpy(&x, a, 8), memcpy(&y, b, 8);
            if (x != y)
                return 0;
        }
        memcpy(&x, a + n - 8, 8), memcpy(&y, b + n - 8, 8);
        return x == y;
    }
    if (n >= 4) {
        memcpy(&u, a, 4), memcpy(&v, b, 4);
        memcpy(&tu, a + n - 4, 4), memcpy(&tv, b + n - 4, 4);
        return u == v && tu == tv;
    }
    for (; n; n--)
        if (*a++ != *b++)
            return 0;
    return 1;
}

uint64_t cache_hash(const void *key, size_t len) { return hash(key, len); }

static void cache_close(void *self);

/* This thread's read stripe: the first READ_STRIPES threads get one each. */
static HOT unsigned my_stripe(void)
{
    static _Atomic unsigned next_stripe;
    /* initial-exec: a plain load, where a dlopened library's TLS model calls
     * __tls_get_addr (the static TLS surplus glibc keeps for such libraries holds it;
     * elsewhere the default model) */
#ifdef __GLIBC__
    static _Thread_local unsigned stripe __attribute__((tls_model("initial-exec"))) = ~0u;
#else
    static _Thread_local unsigned stripe = ~0u;
#endif
    if (stripe == ~0u)
        stripe = atomic_fetch_add_explicit(&next_stripe, 1, memory_order_relaxed) % READ_STRIPES;
    return stripe;
}

#define MIN_INDEX 64 /* index slots a shard starts with */

static size_t shard_index(const struct cache *c, uint64_t h) { return h & (c->nshards - 1); }

static HOT struct tier_lock *read_lock(struct cache *c, size_t si)
{
    struct tier_lock *m = &c->locks[my_stripe() * c->nshards + si].l;
    tier_lock_acquire(m);
    return m;
}

void cache_write_lock(struct cache *c, size_t si)
{
    for (size_t i = 0; i < READ_STRIPES; i++)
        tier_lock_acquire(&c->locks[i * c->nshards + si].l);
}

void cache_write_unlock(struct cache *c, size_t si)
{
    for (size_t i = READ_STRIPES; i-- > 0;)
        tier_lock_release(&c->locks[i * c->nshards + si].l);
}

static enum ggl_status cache_open(const struct ggl_host *host, const struct ggl_conf *conf, void **self)
{
    int64_t max_entries, max_bytes, shards, half_life;
    struct cache *c = calloc(1, sizeof *c);
    if (!c)
        return GGL_NOMEM;
    c->host = host;
    host->conf_int(conf, "max_entries", &max_entries);
    host->conf_int(conf, "max_bytes", &max_bytes);
    host->conf_int(conf, "shards", &shards);
    host->conf_int(conf, "samples", &c->samples);
    host->conf_int(conf, "half_life_ms", &half_life);
    host->conf_float(conf, "freq_weight", &c->freq_weight);
    host->conf_float(conf, "recency_weight", &c->recency_weight);
    c->half_life_ms = (double)(half_life > 0 ? half_life : 1);
    if (shards < 1 || shards > 1024 || (shards & (shards - 1)) || max_entries < shards ||
        max_bytes < shards || c->samples < 1) {
        host->set_reason(host, "need shards a power of two in 1..1024, max_entries and max_bytes "
                               ">= shards, samples >= 1");
        free(c);
        return GGL_INVALID;
    }
    c->nshards = (size_t)shards;
    c->shards = aligned_alloc(64, c->nshards * sizeof *c->shards);
    c->locks = aligned_alloc(64, READ_STRIPES * c->nshards * sizeof *c->locks);
    if (!c->shards || !c->locks) {
        free(c->shards);
        free(c->locks);
        free(c);
        return GGL_NOMEM;
    }
    for (size_t i = 0; i < READ_STRIPES * c->nshards; i++)
        tier_lock_init(&c->locks[i].l);
    for (size_t i = 0; i < c->nshards; i++) {
        struct shard *s = &c->shards[i];
        memset(s, 0, sizeof *s);
        s->max_entries = (size_t)max_entries / c->nshards;
        s->max_bytes = (uint64_t)max_bytes / c->nshards;
        s->rng = 0x9E3779B97F4A7C15ull * (i + 1);
        s->mask = MIN_INDEX - 1; /* grows with the entries (index_reserve) */
        s->index = calloc(MIN_INDEX, sizeof *s->index);
        s->dense = calloc(s->max_entries, sizeof *s->dense);
        if (!s->index || !s->dense) {
            c->nshards = i + 1; /* a failed open is not closed by the host: undo it here */
            cache_close(c);
            return GGL_NOMEM;
        }
    }
    *self = c;
    return GGL_OK;
}

static void cache_close(void *self)
{
    struct cache *c = self;
    for (size_t i = 0; i < c->nshards; i++) {
        struct shard *s = &c->shards[i];
        for (size_t j = 0; j < s->count; j++)
            free(s->dense[j]);
        for (struct item *o = s->orphans, *next; o; o = next)
            next = o->next, free(o);
        free(s->index);
        free(s->dense);
    }
    free(c->locks);
    free(c->shards);
    free(c);
}

static size_t home_of(const struct shard *s, uint64_t h) { return (size_t)(h >> 16) & s->mask; }
static uint64_t tag_of(uint64_t h) { return (h >> 48) | 1; } /* never 0: a used slot is not 0 */

/* cache_find's body, inlined into the hit path (lookup). */
static HOT size_t find(const struct shard *s, uint64_t h, const void *key, size_t len)
{
    const uint64_t *index = s->index, tag = tag_of(h);
    size_t mask = s->mask;
    for (size_t i = home_of(s, h);; i = (i + 1) & mask) {
        uint64_t v = index[i];
        if (!v)
            return NOPOS;
        const struct item *it = slot_item(v);
        if ((v >> 48) == tag && it->hash == h && it->key_len == len &&
            same_bytes(item_key(it), key, len))
            return i;
    }
}

size_t cache_find(const struct shard *s, uint64_t h, const void *key, size_t len)
{
    return find(s, h, key, len);
}

/* The index word for item it (new_item refused addresses beyond 48 bits). */
static uint64_t index_word(const struct item *it)
{
    uint64_t addr = (uint64_t)(uintptr_t)it;
    return addr | tag_of(it->hash) << 48;
}

/* Put it into the first free slot of its probe sequence (it is not there yet). */
static void index_insert(struct shard *s, struct item *it)
{
    size_t i = home_of(s, it->hash);
    while (s->index[i])
        i = (i + 1) & s->mask;
    s->index[i] = index_word(it);
}

/* Empty slot i, shifting back the entries after it that probing would no longer reach. */
static void index_remove(struct shard *s, size_t i)
{
    s->index[i] = 0;
    for (size_t j = (i + 1) & s->mask; s->index[j]; j = (j + 1) & s->mask) {
        size_t home = home_of(s, slot_item(s->index[j])->hash);
        if (((j - home) & s->mask) >= ((j - i) & s->mask)) {
            s->index[i] = s->index[j];
            s->index[j] = 0;
            i = j;
        }
    }
}

/* Double the index when one more entry would fill it past 7/8 (amortised O(1): each
 * doubling rehashes what the doublings before it added).  -1 when out of memory. */
static int index_reserve(struct shard *s)
{
    size_t slots = s->mask + 1;
    if (8 * (s->count + 1) <= 7 * slots)
        return 0;
    uint64_t *old = s->index, *grown = calloc(2 * slots, sizeof *grown);
    if (!grown)
        return -1;
    s->index = grown;
    s->mask = 2 * slots - 1;
    for (size_t i = 0; i < slots; i++)
        if (old[i])
            index_insert(s, slot_item(old[i]));
    free(old);
    return 0;
}

/* Write lock held for this, as for everything below that changes a shard. */
/* A dropped item whose reads were not taken yet (a write aimed below the cache
 * invalidated it, or it was evicted or expired) waits, shrunk to its key, on the
 * shard's orphans, which the next take_reads hands over: the counts outlive it. */
static void keep_reads(struct shard *s, struct item *it)
{
    if (s->norphans >= s->max_entries) /* would not be kept: no realloc */
        free(it);
    else if ((it = cache_shrink(it)))
        cache_orphan(s, it);
}

struct item *cache_unlink(struct shard *s, struct item *it)
{
    index_remove(s, cache_find(s, it->hash, item_key(it), it->key_len));
    struct item *last = s->dense[--s->count];
    s->dense[it->slot] = last;
    last->slot = it->slot;
    s->bytes -= item_bytes(it);
    return it;
}

void cache_drop(struct shard *s, struct item *it) { keep_reads(s, cache_unlink(s, it)); }

/* Key's item (NULL: absent), an expired one dropped (and counted) on sight.  Write
 * lock held. */
static struct item *find_live(struct shard *s, uint64_t h, const void *key, size_t len,
                              uint64_t now)
{
    size_t i = cache_find(s, h, key, len);
    struct item *it = i == NOPOS ? NULL : slot_item(s->index[i]);
    if (it && item_expired(it, now)) {
        cache_drop(s, it);
        s->expirations++;
        it = NULL;
    }
    return it;
}

static double score(struct cache *c, const struct item *it, uint64_t now)
{
    uint64_t last = atomic_load_explicit(&it->last_hit_ms, memory_order_relaxed);
    double idle = now > last ? (double)(now - last) : 0.0;
    return c->freq_weight * log1p((double)atomic_load_explicit(&it->hits, memory_order_relaxed)) +
           c->recency_weight * exp2(-idle / c->half_life_ms);
}

/* Evict the lowest-scored of a few sampled entries (expired ones first).  Returns 0, or
 * -1 when every sampled and scanned entry is pending. */
static int evict_one(struct cache *c, struct shard *s, uint64_t now)
{
    struct item *victim = NULL;
    double best = INFINITY;
    if (s->count == 0)
        return -1;
    /* Samples first; if all were pending, walk the array once so a shard that still has
     * an evictable entry never refuses. */
    size_t samples = (size_t)c->samples;
    for (size_t n = 0; n < samples + s->count && (n < samples || !victim); n++) {
        s->rng ^= s->rng << 13, s->rng ^= s->rng >> 7, s->rng ^= s->rng << 17;
        struct item *it = s->dense[n < samples ? s->rng % s->count : n - samples];
        if (it->flags & GGL_ENTRY_PENDING)
            continue;
        double sc = item_expired(it, now) ? -INFINITY : score(c, it, now);
        if (sc < best)
            best = sc, victim = it;
    }
    if (!victim)
        return -1;
    if (best == -INFINITY)
        s->expirations++;
    else
        s->evictions++;
    cache_drop(s, victim);
    return 0;
}

/* Count a hit for the score (and, for get_into, a read for take_reads).  Two readers
 * may race and lose an increment: the score is an estimate, access counts may be
 * approximate (README), and a plain store writes the line only when something changes. */
static HOT void count_hit(struct item *it, uint64_t now, int read)
{
    uint64_t hits = atomic_load_explicit(&it->hits, memory_order_relaxed);
    atomic_store_explicit(&it->hits, hits + 1, memory_order_relaxed);
    if (atomic_load_explicit(&it->last_hit_ms, memory_order_relaxed) != now)
        atomic_store_explicit(&it->last_hit_ms, now, memory_order_relaxed);
    if (read && !(it->flags & GGL_ENTRY_TOMBSTONE)) {
        uint32_t reads = atomic_load_explicit(&it->reads, memory_order_relaxed);
        if (reads != UINT32_MAX)
            atomic_store_explicit(&it->reads, reads + 1, memory_order_relaxed);
    }
}

/* Drop key's item if it expired (under the write lock: readers only look). */
static void drop_if_expired(struct cache *c, size_t si, uint64_t h, const void *key,
                            size_t len, uint64_t now)
{
    cache_write_lock(c, si);
    find_live(&c->shards[si], h, key, len, now);
    cache_write_unlock(c, si);
}

/* key's live item with its shard's read stripe held in *m, or NULL with nothing held
 * (an expired item is dropped on the way). */
static HOT struct item *lookup(struct cache *c, const void *key, size_t len, uint64_t now,
                           struct tier_lock **m)
{
    uint64_t h = hash(key, len);
    size_t si = shard_index(c, h);
    const struct shard *s = &c->shards[si];
    *m = read_lock(c, si);
    size_t i = find(s, h, key, len);
    struct item *it = i == NOPOS ? NULL : slot_item(s->index[i]);
    if (it && !item_expired(it, now))
        return it;
    tier_lock_release(*m);
    if (it)
        drop_if_expired(c, si, h, key, len, now);
    return NULL;
}

/* out gets the item's metadata, with the caller's key and no value yet. */
static HOT void answer(const struct item *it, const void *key, struct ggl_entry *out)
{
    item_entry(it, out);
    out->key = key;
    out->value = NULL;
}

static enum ggl_status cache_get(void *self, const void *key, size_t len, struct ggl_entry *out)
{
    struct cache *c = self;
    uint64_t now = c->host->now(c->host);
    struct tier_lock *m;
    struct item *it = lookup(c, key, len, now, &m);
    if (!it)
        return GGL_NOTFOUND;
    enum ggl_status st = GGL_NOMEM;
    void *v = c->host->alloc(it->value_len);
    if (v) {
        memcpy(v, item_value(it), it->value_len);
        count_hit(it, now, 0);
        answer(it, key, out);
        out->value = v;
        st = GGL_OK;
    }
    tier_lock_release(m);
    return st;
}

static enum ggl_status cache_get_into(void *self, const void *key, size_t len, void *buf,
                                      size_t cap, uint64_t now, struct ggl_entry *out)
{
    struct tier_lock *m;
    struct item *it = lookup(self, key, len, now, &m);
    if (!it)
        return GGL_NOTFOUND;
    answer(it, key, out);
    if (it->value_len <= cap) {
        out->value = memcpy(buf, item_value(it), it->value_len);
        count_hit(it, now, 1);
    }
    tier_lock_release(m);
    return GGL_OK;
}

static int condition_holds(const struct item *it, uint64_t expect, uint64_t version)
{
    return ggl_condition_holds(it != NULL, it ? it->version : 0, expect, version);
}

/* Copy e's value and metadata into it (key and lengths already match), as a new copy:
 * its last hit is now; its hits and reads, the history, stay. */
static void set_entry(struct item *it, const struct ggl_entry *e, uint64_t now)
{
    it->flags = e->flags;
    it->expires_ms = e->expires_ms;
    it->version = e->version;
    it->created_ms = e->created_ms;
    it->last_access_ms = e->last_access_ms;
    it->access_count = e->access_count;
    it->importance = e->importance;
    atomic_store_explicit(&it->last_hit_ms, now, memory_order_relaxed);
    memcpy(it->data + it->key_len, e->value, e->value_len);
}

/* A detached item holding a copy of e. */
static struct item *new_item(const struct ggl_entry *e, uint64_t h, uint64_t now)
{
    struct item *it = malloc(sizeof *it + e->key_len + e->value_len);
    if (!it)
        return NULL;
    if ((uint64_t)(uintptr_t)it >> 48) { /* the index keeps 48-bit addresses (cache.h) */
        free(it);
        return NULL;
    }
    *it = (struct item){.hash = h, .key_len = (uint32_t)e->key_len,
                        .value_len = (uint32_t)e->value_len};
    atomic_init(&it->hits, 0);
    atomic_init(&it->last_hit_ms, now);
    atomic_init(&it->reads, 0);
    memcpy(it->data, e->key, e->key_len);
    set_entry(it, e, now);
    return it;
}

/* Put new item `it` where `old` (same key, another value length) is, keeping old's
 * history for the score and its reads.  Write lock held. */
static void replace(struct shard *s, struct item *old, struct item *it)
{
    atomic_store_explicit(&it->hits, atomic_load_explicit(&old->hits, memory_order_relaxed),
                          memory_order_relaxed);
    atomic_store_explicit(&it->reads, atomic_load_explicit(&old->reads, memory_order_relaxed),
                          memory_order_relaxed);
    it->slot = old->slot;
    s->bytes += item_bytes(it) - item_bytes(old);
    s->index[cache_find(s, old->hash, item_key(old), old->key_len)] = index_word(it);
    s->dense[it->slot] = it;
    free(old);
}

/* Does key hold a value of e's length (which a put rewrites in place, allocating
 * nothing)?  A look under the read stripe; the write lock checks again. */
static int same_length_held(struct cache *c, size_t si, uint64_t h, const struct ggl_entry *e)
{
    const struct shard *s = &c->shards[si];
    struct tier_lock *m = read_lock(c, si);
    size_t i = cache_find(s, h, e->key, e->key_len);
    int same = i != NOPOS && slot_item(s->index[i])->value_len == e->value_len;
    tier_lock_release(m);
    return same;
}

static enum ggl_status cache_put(void *self, const struct ggl_entry *e, uint64_t expect)
{
    struct cache *c = self;
    uint64_t h = hash(e->key, e->key_len), now = c->host->now(c->host);
    size_t si = shard_index(c, h);
    struct shard *s = &c->shards[si];
    if (e->key_len + e->value_len > s->max_bytes || e->value_len > UINT32_MAX ||
        e->key_len > UINT32_MAX) {
        c->host->set_reason(c->host, "entry of %zu bytes exceeds a shard's %llu bytes",
                            e->key_len + e->value_len, (unsigned long long)s->max_bytes);
        return GGL_INVALID;
    }
    /* A rewrite of the same length is copied into the item, so the common rewrite of a
     * key neither allocates nor frees a block another thread allocated (glibc would
     * take that thread's arena lock); anything else gets its new item made before the
     * lock.  If the look was wrong by the time the lock is held, the put starts over
     * allocating. */
    struct item *it = NULL;
    int peek = 1;
again:
    if (!(peek && same_length_held(c, si, h, e)) && !(it = new_item(e, h, now)))
        return GGL_NOMEM;
    enum ggl_status st = GGL_OK;
    cache_write_lock(c, si);
    struct item *old = find_live(s, h, e->key, e->key_len, now);
    if (!condition_holds(old, expect, e->version)) {
        st = GGL_CONFLICT;
        goto out;
    }
    if (old && old->value_len == e->value_len) {
        set_entry(old, e, now);
        goto out;
    }
    if (!it) {
        cache_write_unlock(c, si);
        peek = 0;
        goto again;
    }
    if (old) {
        replace(s, old, it);
        it = NULL;
    }
    while (s->count + (it != NULL) > s->max_entries || s->bytes > s->max_bytes ||
           (it && s->bytes + item_bytes(it) > s->max_bytes)) {
        if (evict_one(c, s, now) < 0) {
            c->host->set_reason(c->host, "cache shard full of entries with pending writes");
            st = GGL_RETRY;
            goto out;
        }
    }
    if (it && index_reserve(s) < 0) {
        st = GGL_NOMEM;
        goto out;
    }
    if (it) {
        index_insert(s, it);
        it->slot = s->count;
        s->dense[s->count++] = it;
        s->bytes += item_bytes(it);
        it = NULL;
    }
out:
    cache_write_unlock(c, si);
    free(it);
    return st;
}

static enum ggl_status cache_del(void *self, const void *key, size_t len, uint64_t expect)
{
    struct cache *c = self;
    uint64_t h = hash(key, len), now = c->host->now(c->host);
    size_t si = shard_index(c, h);
    struct shard *s = &c->shards[si];
    enum ggl_status st = GGL_NOTFOUND;
    /* Most deletes (a write aimed below the cache invalidates it) find nothing: look
     * under the read lock first.  A put racing it is simply ordered after the delete. */
    struct tier_lock *m = read_lock(c, si);
    int absent = cache_find(s, h, key, len) == NOPOS;
    tier_lock_release(m);
    if (absent)
        return GGL_NOTFOUND;
    cache_write_lock(c, si);
    struct item *it = find_live(s, h, key, len, now);
    if (it && !condition_holds(it, expect, 0)) {
        st = GGL_CONFLICT;
    } else if (it) {
        cache_drop(s, it);
        st = GGL_OK;
    }
    cache_write_unlock(c, si);
    return st;
}

static const struct ggl_tier vtable = {
    .size = sizeof(struct ggl_tier),
    .flags = GGL_READS_CONCURRENT | GGL_WRITES_CONCURRENT | GGL_NONBLOCKING,
    .open = cache_open,
    .close = cache_close,
    .get = cache_get,
    .put = cache_put,
    .del = cache_del,
    .scan = cache_scan,
    .stats = cache_stats,
    .get_into = cache_get_into,
    .take_reads = cache_take_reads,
    .del_older_batch = cache_del_older_batch,
};

GGL_PLUGIN_DEFINE(GGL_KIND_TIER, "cache", "0.1.0",
                  "in-process cache: sharded, bounded, evicts by frequency and recency",
                  settings, &vtable);
