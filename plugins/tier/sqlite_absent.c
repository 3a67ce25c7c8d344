/* tier/sqlite's absent-key set: 16 shards, each an open-addressing table of key hashes
 * and copies under its own small mutex (tier_lock.h).  A lookup that found no row is
 * noted only if no write to the shard began or ended while it ran: writers count themselves in
 * (`writing`) before their statement and bump `gen` after it, and a noting reader
 * checks both against what it saw before its query.  A full shard forgets the key in
 * the new one's home slot (the set is only a shortcut: forgetting is always safe). */
#include <stdlib.h>
#include <string.h>

#include "sqlite_absent.h"
#include "tier_lock.h"

#define SHARDS 16

struct rec {
    uint64_t hash; /* 0: empty */
    size_t len;
    char *key;
};

struct absent {
    struct shard {
        struct tier_lock lock;
        uint64_t gen;
        long writing;
        struct rec *recs;
        size_t cap, used;
    } __attribute__((aligned(64))) shard[SHARDS];
};

static uint64_t hash_key(const void *key, size_t len)
{
    const unsigned char *p = key;
    uint64_t h = 1469598103934665603ull;
    while (len--)
        h = (h ^ *p++) * 1099511628211ull;
    return (h ^ (h >> 31)) | 1;
}

struct absent *absent_new(size_t capacity)
{
    struct absent *a = aligned_alloc(64, sizeof *a);
    if (!a)
        return NULL;
    memset(a, 0, sizeof *a);
    size_t cap = 0;
    if (capacity) /* at most half full */
        for (cap = 16; cap * SHARDS < capacity * 2; cap <<= 1)
            ;
    for (int i = 0; i < SHARDS; i++) {
        tier_lock_init(&a->shard[i].lock);
        a->shard[i].cap = cap;
        if (cap && !(a->shard[i].recs = calloc(cap, sizeof(struct rec)))) {
            absent_free(a);
            return NULL;
        }
    }
    return a;
}

void absent_free(struct absent *a)
{
    for (int i = 0; a && i < SHARDS; i++) {
        for (size_t j = 0; a->shard[i].recs && j < a->shard[i].cap; j++)
            free(a->shard[i].recs[j].key);
        free(a->shard[i].recs);
    }
    free(a);
}

/* The record holding key, or the empty one where it would go.  Lock held, cap > 0. */
static struct rec *probe(struct shard *s, uint64_t h, const void *key, size_t len)
{
    size_t mask = s->cap - 1;
    for (size_t i = (h >> 1) & mask;; i = (i + 1) & mask) {
        struct rec *r = &s->recs[i];
        if (!r->hash || (r->hash == h && r->len == len && memcmp(r->key, key, len) == 0))
            return r;
    }
}

/* Remove r, re-placing the records after it so probes still find them.  Lock held. */
static void remove_rec(struct shard *s, struct rec *r)
{
    size_t mask = s->cap - 1, i = (size_t)(r - s->recs);
    free(r->key);
    s->recs[i] = (struct rec){0};
    s->used--;
    for (size_t j = (i + 1) & mask; s->recs[j].hash; j = (j + 1) & mask) {
        struct rec moved = s->recs[j];
        s->recs[j] = (struct rec){0};
        *probe(s, moved.hash, moved.key, moved.len) = moved;
    }
}

int absent_known(struct absent *a, const void *key, size_t len, uint64_t *token)
{
    uint64_t h = hash_key(key, len);
    struct shard *s = &a->shard[(h >> 40) % SHARDS];
    if (!s->cap)
        return 0;
    tier_lock_acquire(&s->lock);
    int known = probe(s, h, key, len)->hash != 0;
    *token = s->writing ? UINT64_MAX : s->gen;
    tier_lock_release(&s->lock);
    return known;
}

void absent_note(struct absent *a, const void *key, size_t len, uint64_t token)
{
    uint64_t h = hash_key(key, len);
    struct shard *s = &a->shard[(h >> 40) % SHARDS];
    if (!s->cap || token == UINT64_MAX)
        return;
    tier_lock_acquire(&s->lock);
    if (!s->writing && s->gen == token) {
        struct rec *r = probe(s, h, key, len);
        if (!r->hash && s->used * 2 >= s->cap) { /* full: make room at its home slot */
            struct rec *home = &s->recs[(h >> 1) & (s->cap - 1)];
            if (home->hash)
                remove_rec(s, home);
            r = probe(s, h, key, len);
        }
        if (!r->hash && (r->key = malloc(len ? len : 1))) {
            memcpy(r->key, key, len);
            r->hash = h;
            r->len = len;
            s->used++;
        }
    }
    tier_lock_release(&s->lock);
}

static void forget(struct shard *s, uint64_t h, const void *key, size_t len)
{
    struct rec *r = probe(s, h, key, len);
    if (r->hash)
        remove_rec(s, r);
}

void absent_write_begin(struct absent *a, const void *key, size_t len)
{
    uint64_t h = hash_key(key, len);
    struct shard *s = &a->shard[(h >> 40) % SHARDS];
    if (!s->cap)
        return;
    tier_lock_acquire(&s->lock);
    s->writing++;
    forget(s, h, key, len);
    tier_lock_release(&s->lock);
}

static void write_done(struct shard *s, long n)
{
    tier_lock_acquire(&s->lock);
    s->writing -= n;
    s->gen++;
    tier_lock_release(&s->lock);
}

void absent_write_end(struct absent *a, const void *key, size_t len)
{
    struct shard *s = &a->shard[(hash_key(key, len) >> 40) % SHARDS];
    if (s->cap)
        write_done(s, 1);
}

static size_t shard_of(uint64_t h) { return (size_t)(h >> 40) % SHARDS; }

uint64_t *absent_batch_begin(struct absent *a, const struct ggl_entry *es, size_t n)
{
    /* The keys' hashes, then their indices in order of shard (a counting sort). */
    size_t cap = a->shard[0].cap, from[SHARDS + 1] = {0};
    uint64_t *h = cap ? malloc((2 * n + 1) * sizeof *h) : NULL, *order = h ? h + n : NULL;
    for (size_t i = 0; !h && i < n; i++) /* no memory (or no set): key by key */
        absent_write_begin(a, es[i].key, es[i].key_len);
    for (size_t i = 0; h && i < n; i++) { /* and each key's first slot on its way (the
                                              batch's slots fit in the CPU caches) */
        from[shard_of(h[i] = hash_key(es[i].key, es[i].key_len)) + 1]++;
        __builtin_prefetch(&a->shard[shard_of(h[i])].recs[(h[i] >> 1) & (cap - 1)]);
    }
    for (size_t si = 0; h && si < SHARDS; si++)
        from[si + 1] += from[si];
    for (size_t i = 0; h && i < n; i++)
        order[from[shard_of(h[i])]++] = i; /* from[si] ends at shard si + 1's start */
    for (size_t si = 0, start = 0; h && si < SHARDS; start = from[si++]) {
        struct shard *s = &a->shard[si];
        tier_lock_acquire(&s->lock); /* one lock for the shard's keys */
        s->writing += (long)(from[si] - start);
        for (size_t j = start; j < from[si]; j++) { /* the keys forget compares, ahead */
            const struct rec *r = &s->recs[(h[order[j]] >> 1) & (cap - 1)];
            if (r->hash == h[order[j]])
                __builtin_prefetch(r->key);
        }
        for (size_t j = start; j < from[si]; j++)
            forget(s, h[order[j]], es[order[j]].key, es[order[j]].key_len);
        tier_lock_release(&s->lock);
    }
    return h;
}

void absent_batch_end(struct absent *a, const struct ggl_entry *es, size_t n, uint64_t *h)
{
    long count[SHARDS] = {0};
    for (size_t i = 0; !h && a->shard[0].cap && i < n; i++)
        absent_write_end(a, es[i].key, es[i].key_len);
    for (size_t i = 0; h && i < n; i++)
        count[shard_of(h[i])]++;
    for (int si = 0; h && si < SHARDS; si++)
        if (count[si])
            write_done(&a->shard[si], count[si]);
    free(h);
}
