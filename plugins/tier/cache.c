/* tier/cache: the in-process cache in front of the other tiers.  Bounded by entries and
 * bytes, GGL_NONBLOCKING, sharded.  Each shard is locked by READ_STRIPES plain mutexes
 * (no rwlock — see PERF.md), each on its own cache line: a reader takes only its
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
#include <pthread.h>

#include <ganglion/ganglion.h>

#define READ_STRIPES 4 /* a writer takes all: a few, for the I/O thread and workers */

/* An entry.  What a hit reads and writes fills the first cache line, and the key and
 * value follow the metadata directly (no pointers to chase): a hit touches the bytes
 * from the item's start to the end of its value, usually three lines. */
struct item {
    struct item *next;      /* hash chain */
    uint64_t hash;
    uint64_t expires_ms;
    _Atomic uint64_t hits;  /* cache-local, for the score; readers update them */
    _Atomic uint64_t last_hit_ms;
    size_t slot;            /* index in the shard's dense array */
    uint32_t flags, key_len, value_len;
    _Atomic uint32_t reads; /* get_into reads since the last take_reads (saturating) */
    /* The rest of the entry's metadata, then key_len + value_len bytes. */
    uint64_t version, created_ms, last_access_ms, access_count;
    double importance;
    char data[];
};

/* One stripe of one shard's lock, alone on its cache line. */
struct stripe_lock {
    pthread_mutex_t m;
} __attribute__((aligned(64)));

struct shard {
    struct item **buckets;
    size_t mask;
    struct item **dense;    /* every item, for O(1) random sampling */
    size_t count, max_entries;
    uint64_t bytes, max_bytes, evictions, expirations, rng;
} __attribute__((aligned(64)));

struct cache {
    const struct ggl_host *host;
    struct shard *shards;
    struct stripe_lock *locks; /* [stripe * nshards + shard] */
    size_t nshards;
    int64_t samples;
    double freq_weight, recency_weight, half_life_ms;
};

static const struct ggl_setting settings[] = {
    GGL_SETTING("max_entries", GGL_SETTING_INT, "100000", "entries held in all"),
    GGL_SETTING("max_bytes", GGL_SETTING_INT, "268435456", "key + value bytes held in all"),
    GGL_SETTING("shards", GGL_SETTING_INT, "16", "independently locked shards (power of two)"),
    GGL_SETTING("samples", GGL_SETTING_INT, "5", "entries sampled per eviction"),
    GGL_SETTING("freq_weight", GGL_SETTING_FLOAT, "1.0", "score weight of ln(1 + hits)"),
    GGL_SETTING("recency_weight", GGL_SETTING_FLOAT, "1.0", "score weight of recency"),
    GGL_SETTING("half_life_ms", GGL_SETTING_INT, "60000", "idle time that halves recency"),
    GGL_SETTINGS_END};

/* Eight bytes per step (a byte at a time cost a third of a hit's instructions), then
 * splitmix64's finaliser, so the low bits (shard) and bits 10+ (bucket) are both mixed. */
static uint64_t hash(const void *key, size_t len)
{
    const unsigned char *p = key;
    uint64_t h = 0x9E3779B97F4A7C15ull ^ len, w;
    for (; len >= 8; p += 8, len -= 8) {
        memcpy(&w, p, 8);
        h = (h ^ w) * 0xff51afd7ed558ccdull;
        h ^= h >> 32;
    }
    for (w = 0; len--;)
        w = (w << 8) | p[len];
    h ^= w;
    h = (h ^ (h >> 30)) * 0xbf58476d1ce4e5b9ull;
    h = (h ^ (h >> 27)) * 0x94d049bb133111ebull;
    return h ^ (h >> 31);
}

static size_t item_bytes(const struct item *it) { return (size_t)it->key_len + it->value_len; }
static const char *item_key(const struct item *it) { return it->data; }
static const char *item_value(const struct item *it) { return it->data + it->key_len; }

/* The item's entry as the SDK shows it (key and value pointing into the item). */
static void item_entry(const struct item *it, struct ggl_entry *e)
{
    uint32_t size = e->size;
    *e = (struct ggl_entry){.size = size, .flags = it->flags, .key = item_key(it),
                            .key_len = it->key_len, .value = (void *)item_value(it),
                            .value_len = it->value_len, .version = it->version,
                            .importance = it->importance, .created_ms = it->created_ms,
                            .last_access_ms = it->last_access_ms,
                            .access_count = it->access_count, .expires_ms = it->expires_ms};
}

static void cache_close(void *self);

/* Critical sections are a few hundred ns: spin briefly before sleeping, since a futex
 * sleep and cross-CPU wake-up costs up to ~30 us here (PERF.md). */
static void init_lock(pthread_mutex_t *m)
{
    pthread_mutexattr_t attr;
    pthread_mutexattr_init(&attr);
    pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_ADAPTIVE_NP);
    pthread_mutex_init(m, &attr);
    pthread_mutexattr_destroy(&attr);
}

/* This thread's read stripe: the first READ_STRIPES threads get one each. */
static unsigned my_stripe(void)
{
    static _Atomic unsigned next_stripe;
    static _Thread_local unsigned stripe = ~0u;
    if (stripe == ~0u)
        stripe = atomic_fetch_add_explicit(&next_stripe, 1, memory_order_relaxed) % READ_STRIPES;
    return stripe;
}

static size_t shard_index(const struct cache *c, uint64_t h) { return h & (c->nshards - 1); }

static pthread_mutex_t *read_lock(struct cache *c, size_t si)
{
    pthread_mutex_t *m = &c->locks[my_stripe() * c->nshards + si].m;
    pthread_mutex_lock(m);
    return m;
}

/* Every stripe of shard si, always in stripe order (so two writers cannot deadlock). */
static void write_lock(struct cache *c, size_t si)
{
    for (size_t i = 0; i < READ_STRIPES; i++)
        pthread_mutex_lock(&c->locks[i * c->nshards + si].m);
}

static void write_unlock(struct cache *c, size_t si)
{
    for (size_t i = READ_STRIPES; i-- > 0;)
        pthread_mutex_unlock(&c->locks[i * c->nshards + si].m);
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
        init_lock(&c->locks[i].m);
    for (size_t i = 0; i < c->nshards; i++) {
        struct shard *s = &c->shards[i];
        memset(s, 0, sizeof *s);
        s->max_entries = (size_t)max_entries / c->nshards;
        s->max_bytes = (uint64_t)max_bytes / c->nshards;
        s->rng = 0x9E3779B97F4A7C15ull * (i + 1);
        size_t nb = 8;
        while (nb < 2 * s->max_entries)
            nb <<= 1;
        s->mask = nb - 1;
        s->buckets = calloc(nb, sizeof *s->buckets);
        s->dense = calloc(s->max_entries, sizeof *s->dense);
        if (!s->buckets || !s->dense) {
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
        free(s->buckets);
        free(s->dense);
    }
    for (size_t i = 0; c->locks && i < READ_STRIPES * c->nshards; i++)
        pthread_mutex_destroy(&c->locks[i].m);
    free(c->locks);
    free(c->shards);
    free(c);
}

static struct item **find(struct shard *s, uint64_t h, const void *key, size_t len)
{
    struct item **p = &s->buckets[(h >> 10) & s->mask];
    for (; *p; p = &(*p)->next)
        if ((*p)->hash == h && (*p)->key_len == len && memcmp(item_key(*p), key, len) == 0)
            break;
    return p;
}

/* Remove the item *p points at from chain and dense array, and free it.  Write lock
 * held (as for everything below that changes a shard). */
static void drop(struct shard *s, struct item **p)
{
    struct item *it = *p;
    *p = it->next;
    struct item *last = s->dense[--s->count];
    s->dense[it->slot] = last;
    last->slot = it->slot;
    s->bytes -= item_bytes(it);
    free(it);
}

static int expired(struct cache *c, const struct item *it, uint64_t now)
{
    (void)c;
    return it->expires_ms && it->expires_ms <= now;
}

/* The link to key's item, an expired one dropped (and counted) on sight.  Lock held. */
static struct item **find_live(struct cache *c, struct shard *s, uint64_t h, const void *key,
                               size_t len, uint64_t now)
{
    struct item **p = find(s, h, key, len);
    if (*p && expired(c, *p, now)) {
        drop(s, p);
        s->expirations++;
        p = find(s, h, key, len);
    }
    return p;
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
        double sc = expired(c, it, now) ? -INFINITY : score(c, it, now);
        if (sc < best)
            best = sc, victim = it;
    }
    if (!victim)
        return -1;
    if (best == -INFINITY)
        s->expirations++;
    else
        s->evictions++;
    drop(s, find(s, victim->hash, item_key(victim), victim->key_len));
    return 0;
}

/* Count a hit for the score (and, for get_into, a read for take_reads).  Two readers
 * may race and lose an increment: the score is an estimate, access counts may be
 * approximate (README), and a plain store writes the line only when something changes. */
static void count_hit(struct item *it, uint64_t now, int read)
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
    write_lock(c, si);
    find_live(c, &c->shards[si], h, key, len, now);
    write_unlock(c, si);
}

/* key's live item with its shard's read stripe held in *m, or NULL with nothing held
 * (an expired item is dropped on the way). */
static struct item *lookup(struct cache *c, const void *key, size_t len, uint64_t now,
                           pthread_mutex_t **m)
{
    uint64_t h = hash(key, len);
    size_t si = shard_index(c, h);
    *m = read_lock(c, si);
    struct item *it = *find(&c->shards[si], h, key, len);
    if (it && !expired(c, it, now))
        return it;
    pthread_mutex_unlock(*m);
    if (it)
        drop_if_expired(c, si, h, key, len, now);
    return NULL;
}

/* out gets the item's metadata, with the caller's key and no value yet. */
static void answer(const struct item *it, const void *key, struct ggl_entry *out)
{
    item_entry(it, out);
    out->key = key;
    out->value = NULL;
}

static enum ggl_status cache_get(void *self, const void *key, size_t len, struct ggl_entry *out)
{
    struct cache *c = self;
    uint64_t now = c->host->now(c->host);
    pthread_mutex_t *m;
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
    pthread_mutex_unlock(m);
    return st;
}

static enum ggl_status cache_get_into(void *self, const void *key, size_t len, void *buf,
                                      size_t cap, uint64_t now, struct ggl_entry *out)
{
    pthread_mutex_t *m;
    struct item *it = lookup(self, key, len, now, &m);
    if (!it)
        return GGL_NOTFOUND;
    answer(it, key, out);
    if (it->value_len <= cap) {
        out->value = memcpy(buf, item_value(it), it->value_len);
        count_hit(it, now, 1);
    }
    pthread_mutex_unlock(m);
    return GGL_OK;
}

static int condition_holds(const struct item *it, uint64_t expect, uint64_t version)
{
    return ggl_condition_holds(it != NULL, it ? it->version : 0, expect, version);
}

/* A detached item holding a copy of e. */
static struct item *new_item(const struct ggl_entry *e, uint64_t h, uint64_t now)
{
    struct item *it = malloc(sizeof *it + e->key_len + e->value_len);
    if (!it)
        return NULL;
    *it = (struct item){.hash = h, .expires_ms = e->expires_ms, .flags = e->flags,
                        .key_len = (uint32_t)e->key_len, .value_len = (uint32_t)e->value_len,
                        .version = e->version, .created_ms = e->created_ms,
                        .last_access_ms = e->last_access_ms, .access_count = e->access_count,
                        .importance = e->importance};
    atomic_init(&it->hits, 0);
    atomic_init(&it->last_hit_ms, now);
    atomic_init(&it->reads, 0);
    memcpy(it->data, e->key, e->key_len);
    memcpy(it->data + e->key_len, e->value, e->value_len);
    return it;
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
    struct item *it = new_item(e, h, now);
    if (!it)
        return GGL_NOMEM;

    enum ggl_status st = GGL_OK;
    write_lock(c, si);
    struct item **p = find_live(c, s, h, e->key, e->key_len, now);
    if (!condition_holds(*p, expect, e->version)) {
        st = GGL_CONFLICT;
        goto out;
    }
    if (*p) { /* replace in place, keeping its history for the score and its reads */
        struct item *old = *p;
        atomic_store_explicit(&it->hits, atomic_load_explicit(&old->hits, memory_order_relaxed),
                              memory_order_relaxed);
        atomic_store_explicit(&it->reads, atomic_load_explicit(&old->reads, memory_order_relaxed),
                              memory_order_relaxed);
        it->next = old->next;
        it->slot = old->slot;
        s->dense[it->slot] = it;
        s->bytes += item_bytes(it) - item_bytes(old);
        *p = it;
        free(old);
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
    if (it) {
        p = find(s, h, e->key, e->key_len); /* eviction may have moved the chain */
        it->next = NULL;
        *p = it;
        it->slot = s->count;
        s->dense[s->count++] = it;
        s->bytes += item_bytes(it);
        it = NULL;
    }
out:
    write_unlock(c, si);
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
    pthread_mutex_t *m = read_lock(c, si);
    int absent = *find(s, h, key, len) == NULL;
    pthread_mutex_unlock(m);
    if (absent)
        return GGL_NOTFOUND;
    write_lock(c, si);
    struct item **p = find_live(c, s, h, key, len, now);
    if (*p && !condition_holds(*p, expect, 0)) {
        st = GGL_CONFLICT;
    } else if (*p) {
        drop(s, p);
        st = GGL_OK;
    }
    write_unlock(c, si);
    return st;
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
        write_lock(c, si);
        while (pos < s->count && seen < count && !stop && !nomem) {
            struct item *it = s->dense[pos];
            if (expired(c, it, now)) { /* dense[pos] then holds the former last entry */
                if (take && (nomem = take_item(take, it) < 0))
                    break;
                seen += take != NULL; /* bounds what take holds to `count` */
                drop(s, find(s, it->hash, item_key(it), it->key_len));
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
        write_unlock(c, si);
        if (take)
            stop = deliver(take, fn, arg);
        if (!done || nomem)
            break;
    }
    *cursor = si >= c->nshards ? 0 : ((uint64_t)si << 40) | pos;
    return nomem ? GGL_NOMEM : GGL_OK;
}

static enum ggl_status cache_scan(void *self, uint64_t *cursor, size_t count, ggl_scan_fn fn,
                                  void *arg)
{
    return walk(self, cursor, count, fn, arg, NULL);
}

static enum ggl_status cache_take_reads(void *self, uint64_t *cursor, size_t count,
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

static enum ggl_status cache_stats(void *self, struct ggl_tier_stats *out)
{
    struct cache *c = self;
    out->entries = out->bytes = out->evictions = out->expirations = 0;
    for (size_t i = 0; i < c->nshards; i++) {
        struct shard *s = &c->shards[i];
        write_lock(c, i);
        out->entries += s->count;
        out->bytes += s->bytes;
        out->evictions += s->evictions;
        out->expirations += s->expirations;
        write_unlock(c, i);
    }
    return GGL_OK;
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
};

GGL_PLUGIN_DEFINE(GGL_KIND_TIER, "cache", "0.1.0",
                  "in-process cache: sharded, bounded, evicts by frequency and recency",
                  settings, &vtable);
