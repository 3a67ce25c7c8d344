/* tier/mem: the in-process tier (embedded default for STM and IM when no Redis is set).
 * A chained hash table whose buckets are guarded by STRIPES small mutexes (tier_lock.h;
 * bucket b by stripe b % STRIPES), bounded by max_entries, honouring versions, conditional writes and
 * absolute expiry on the host clock.  One mutex for the whole table made the memory
 * write workers, the control threads and the maintenance scan queue behind each other. */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <ganglion/ganglion.h>

#include "tier_lock.h"

struct item {
    struct item *next;
    struct ggl_entry e; /* e.key and e.value point into the same allocation */
};

#define STRIPES 64

struct stripe {
    struct tier_lock lock;
    uint64_t bytes;     /* of its buckets' entries */
} __attribute__((aligned(64)));

struct mem {
    const struct ggl_host *host;
    struct item **buckets;
    size_t nbuckets, max_entries;
    _Atomic size_t count; /* against max_entries: reserved before an insert */
    struct stripe *stripes;
};

static const struct ggl_setting settings[] = {
    GGL_SETTING("max_entries", GGL_SETTING_INT, "100000", "entries held; puts beyond it get RETRY"),
    GGL_SETTINGS_END};

static uint64_t hash(const void *key, size_t len)
{
    const unsigned char *p = key;
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    while (len--)
        h = (h ^ *p++) * 1099511628211ull;
    return h;
}

static enum ggl_status mem_open(const struct ggl_host *host, const struct ggl_conf *conf, void **self)
{
    int64_t max = 0;
    if (host->conf_int(conf, "max_entries", &max) != GGL_OK || max < 1) {
        host->set_reason(host, "max_entries must be >= 1");
        return GGL_INVALID;
    }
    struct mem *m = calloc(1, sizeof *m);
    if (!m)
        return GGL_NOMEM;
    m->host = host;
    m->max_entries = (size_t)max;
    m->nbuckets = 1024;
    while (m->nbuckets < m->max_entries && m->nbuckets < (1u << 24))
        m->nbuckets <<= 1;
    m->buckets = calloc(m->nbuckets, sizeof *m->buckets);
    m->stripes = aligned_alloc(64, STRIPES * sizeof *m->stripes);
    if (!m->buckets || !m->stripes) {
        free(m->buckets);
        free(m->stripes);
        free(m);
        return GGL_NOMEM;
    }
    for (size_t i = 0; i < STRIPES; i++) {
        tier_lock_init(&m->stripes[i].lock);
        m->stripes[i].bytes = 0;
    }
    *self = m;
    return GGL_OK;
}

static void mem_close(void *self)
{
    struct mem *m = self;
    for (size_t i = 0; i < m->nbuckets; i++)
        for (struct item *it = m->buckets[i], *next; it; it = next) {
            next = it->next;
            free(it);
        }
    free(m->buckets);
    free(m->stripes);
    free(m);
}

/* The link pointing at key's item in the chain from p (or at the NULL ending it). */
static struct item **find_in(struct item **p, const void *key, size_t len)
{
    for (; *p; p = &(*p)->next)
        if ((*p)->e.key_len == len && memcmp((*p)->e.key, key, len) == 0)
            break;
    return p;
}

static size_t bucket_of(const struct mem *m, const void *key, size_t len)
{
    return hash(key, len) & (m->nbuckets - 1);
}

static struct stripe *stripe_of(struct mem *m, size_t bucket)
{
    return &m->stripes[bucket % STRIPES];
}

/* Key's bucket with its stripe locked (in *s). */
static struct item **lock_bucket(struct mem *m, const void *key, size_t len, struct stripe **s)
{
    size_t b = bucket_of(m, key, len);
    *s = stripe_of(m, b);
    tier_lock_acquire(&(*s)->lock);
    return &m->buckets[b];
}

static int expired(struct mem *m, const struct item *it)
{
    return it->e.expires_ms && it->e.expires_ms <= m->host->now(m->host);
}

/* Take the item *p out of the table (its stripe s locked); the caller frees it. */
static struct item *detach(struct mem *m, struct stripe *s, struct item **p)
{
    struct item *it = *p;
    *p = it->next;
    atomic_fetch_sub_explicit(&m->count, 1, memory_order_relaxed);
    s->bytes -= it->e.key_len + it->e.value_len;
    return it;
}

static void unlink_item(struct mem *m, struct stripe *s, struct item **p)
{
    free(detach(m, s, p));
}

/* The link to key's item in bucket chain `chain`, an expired one dropped on sight
 * (stripe s locked). */
static struct item **find_live(struct mem *m, struct stripe *s, struct item **chain,
                               const void *key, size_t len)
{
    struct item **p = find_in(chain, key, len);
    if (*p && expired(m, *p)) {
        unlink_item(m, s, p); /* *p is now the next item, another key's: look on */
        p = find_in(p, key, len);
    }
    return p;
}

static enum ggl_status mem_get(void *self, const void *key, size_t len, struct ggl_entry *out)
{
    struct mem *m = self;
    enum ggl_status st = GGL_NOTFOUND;
    struct stripe *s;
    struct item **chain = lock_bucket(m, key, len, &s);
    struct item **p = find_live(m, s, chain, key, len);
    if (*p) {
        void *v = m->host->alloc((*p)->e.value_len);
        if (!v) {
            st = GGL_NOMEM;
        } else {
            memcpy(v, (*p)->e.value, (*p)->e.value_len);
            uint32_t size = out->size;
            *out = (*p)->e;
            out->size = size;
            out->key = key;
            out->value = v;
            st = GGL_OK;
        }
    }
    tier_lock_release(&s->lock);
    return st;
}

/* Does the stored item (or its absence) satisfy `expect` for a write of `version`? */
static int condition_holds(const struct item *it, uint64_t expect, uint64_t version)
{
    return ggl_condition_holds(it != NULL, it ? it->e.version : 0, expect, version);
}

/* Rewrite key's item in place when the new value has the same length (the common
 * rewrite of a key): no allocation, and no free of a block another thread allocated
 * (glibc takes that thread's arena lock).  1 if done, with *st its outcome; 0 if the
 * caller must allocate.  Stripe s of bucket chain `chain` locked. */
static int put_in_place(struct mem *m, struct stripe *s, struct item **chain,
                        const struct ggl_entry *e, uint64_t expect, enum ggl_status *st)
{
    struct item **p = find_live(m, s, chain, e->key, e->key_len);
    if (!*p || (*p)->e.value_len != e->value_len)
        return 0;
    struct ggl_entry *old = &(*p)->e;
    if (!condition_holds(*p, expect, e->version)) {
        *st = GGL_CONFLICT;
        return 1;
    }
    const void *key = old->key;
    void *value = old->value;
    *old = *e;
    old->size = sizeof *old;
    old->key = key;
    old->value = memcpy(value, e->value, e->value_len);
    *st = GGL_OK;
    return 1;
}

static enum ggl_status mem_put(void *self, const struct ggl_entry *e, uint64_t expect)
{
    struct mem *m = self;
    enum ggl_status st;
    struct stripe *s;
    struct item **chain = lock_bucket(m, e->key, e->key_len, &s);
    int done = put_in_place(m, s, chain, e, expect, &st);
    tier_lock_release(&s->lock);
    if (done)
        return st;
    struct item *it = malloc(sizeof *it + e->key_len + e->value_len);
    if (!it)
        return GGL_NOMEM;
    it->e = *e;
    it->e.size = sizeof it->e;
    it->e.key = memcpy((char *)(it + 1), e->key, e->key_len);
    it->e.value = memcpy((char *)(it + 1) + e->key_len, e->value, e->value_len);

    tier_lock_acquire(&s->lock); /* again: the item may have changed meanwhile */
    struct item **p = find_live(m, s, chain, e->key, e->key_len);
    st = GGL_OK;
    if (!condition_holds(*p, expect, e->version))
        st = GGL_CONFLICT;
    else if (!*p && atomic_fetch_add_explicit(&m->count, 1, memory_order_relaxed) >= m->max_entries) {
        atomic_fetch_sub_explicit(&m->count, 1, memory_order_relaxed); /* a new entry: no room */
        st = GGL_RETRY;
    }
    if (st != GGL_OK) {
        tier_lock_release(&s->lock);
        free(it);
        if (st == GGL_RETRY)
            m->host->set_reason(m->host, "full: %zu entries", m->max_entries);
        return st;
    }
    struct item *old = *p; /* a replacement takes its place: the count stays */
    it->next = old ? old->next : NULL;
    *p = it;
    s->bytes += e->key_len + e->value_len - (old ? old->e.key_len + old->e.value_len : 0);
    tier_lock_release(&s->lock);
    free(old);
    return GGL_OK;
}

static enum ggl_status mem_del(void *self, const void *key, size_t len, uint64_t expect)
{
    struct mem *m = self;
    enum ggl_status st = GGL_NOTFOUND;
    struct stripe *s;
    struct item **chain = lock_bucket(m, key, len, &s);
    struct item **p = find_live(m, s, chain, key, len);
    if (*p && !condition_holds(*p, expect, 0))
        st = GGL_CONFLICT;
    else if (*p) {
        unlink_item(m, s, p);
        st = GGL_OK;
    }
    tier_lock_release(&s->lock);
    return st;
}

#define AHEAD 8 /* del_older_batch's prefetch distance, in keys */

/* The retire of a batch's older copies, nothing copied out.  The keys' buckets are
 * fetched AHEAD keys ahead, so their cache misses (~100 ns each here) overlap.  A batch
 * of BIG_BATCH keys or more holds every stripe (in order: nobody else holds two), a few
 * dozen lock operations for hundreds of keys, and then fetches each key's first item
 * too, half as far ahead: that read of a bucket needs its stripe held.  A smaller batch
 * locks each key's stripe, kept while consecutive keys fall in it. */
#define BIG_BATCH 64

static enum ggl_status mem_del_older_batch(void *self, const void *const *keys,
                                           const size_t *lens, size_t n,
                                           const uint64_t *versions, enum ggl_status *status)
{
    struct mem *m = self;
    size_t mask = m->nbuckets - 1, ring[AHEAD];
    struct item **drop = malloc((n ? n : 1) * sizeof *drop); /* freed after the locks */
    struct stripe *held = NULL;
    int all = n >= BIG_BATCH;
    for (size_t i = 0; all && i < STRIPES; i++)
        tier_lock_acquire(&m->stripes[i].lock);
    for (size_t i = 0; i < n && i < AHEAD; i++)
        __builtin_prefetch(&m->buckets[ring[i] = hash(keys[i], lens[i]) & mask]);
    for (size_t i = 0; i < n; i++) {
        struct stripe *s = stripe_of(m, ring[i % AHEAD]);
        if (!all && s != held) {
            if (held)
                tier_lock_release(&held->lock);
            tier_lock_acquire(&(held = s)->lock);
        }
        struct item **p = find_in(&m->buckets[ring[i % AHEAD]], keys[i], lens[i]);
        if (i + AHEAD < n)
            __builtin_prefetch(&m->buckets[ring[i % AHEAD] =
                                               hash(keys[i + AHEAD], lens[i + AHEAD]) & mask]);
        if (all && i + AHEAD / 2 < n && m->buckets[ring[(i + AHEAD / 2) % AHEAD]])
            __builtin_prefetch(m->buckets[ring[(i + AHEAD / 2) % AHEAD]]);
        status[i] = !*p ? GGL_NOTFOUND : (*p)->e.version >= versions[i] ? GGL_CONFLICT : GGL_OK;
        if (status[i] == GGL_OK && drop)
            drop[i] = detach(m, s, p);
        else if (status[i] == GGL_OK)
            unlink_item(m, s, p);
        else if (drop)
            drop[i] = NULL;
    }
    for (size_t i = STRIPES; all && i-- > 0;)
        tier_lock_release(&m->stripes[i].lock);
    if (held)
        tier_lock_release(&held->lock);
    /* In the caller's order: a batch of keys stored in that order frees neighbouring
     * blocks one after another (fewer cache misses in malloc), and no other thread
     * waits for it. */
    for (size_t i = 0; drop && i < n; i++)
        free(drop[i]);
    free(drop);
    return GGL_OK;
}

/* The cursor is the next bucket index; a call visits whole buckets until it has seen
 * `count` live entries, so an entry is visited once per pass unless it moves buckets
 * (it never does: the table does not resize). */
static enum ggl_status mem_scan(void *self, uint64_t *cursor, size_t count, ggl_scan_fn fn,
                                void *arg)
{
    struct mem *m = self;
    size_t seen = 0, b = (size_t)*cursor;
    for (int stop = 0; b < m->nbuckets && seen < count && !stop; b++) {
        struct stripe *s = stripe_of(m, b); /* one bucket at a time: writers get in */
        tier_lock_acquire(&s->lock);
        for (struct item **p = &m->buckets[b]; *p;) {
            if (expired(m, *p)) {
                unlink_item(m, s, p);
                continue;
            }
            seen++;
            if ((stop = fn(arg, &(*p)->e)) != 0)
                break; /* the callback asked to stop */
            p = &(*p)->next;
        }
        tier_lock_release(&s->lock);
        if (stop)
            b = m->nbuckets;
    }
    *cursor = b >= m->nbuckets ? 0 : b;
    return GGL_OK;
}

static enum ggl_status mem_stats(void *self, struct ggl_tier_stats *out)
{
    struct mem *m = self;
    out->entries = atomic_load_explicit(&m->count, memory_order_relaxed);
    out->bytes = 0;
    for (size_t i = 0; i < STRIPES; i++) {
        tier_lock_acquire(&m->stripes[i].lock);
        out->bytes += m->stripes[i].bytes;
        tier_lock_release(&m->stripes[i].lock);
    }
    return GGL_OK;
}

static const struct ggl_tier vtable = {
    .size = sizeof(struct ggl_tier),
    /* Nonblocking: in-process, no I/O, short critical sections (a scan's visitor copies
     * and returns, tier.h), as tier/cache; the host then keeps no in-flight count for it
     * (one shared atomic less per STM write-through and per retire of an IM copy). */
    .flags = GGL_READS_CONCURRENT | GGL_WRITES_CONCURRENT | GGL_NONBLOCKING,
    .open = mem_open,
    .close = mem_close,
    .get = mem_get,
    .put = mem_put,
    .del = mem_del,
    .scan = mem_scan,
    .stats = mem_stats,
    .del_older_batch = mem_del_older_batch,
};

GGL_PLUGIN_DEFINE(GGL_KIND_TIER, "mem", "0.1.0", "in-process tier with TTL (embedded STM/IM)",
                  settings, &vtable);
