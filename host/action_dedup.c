/* The idempotency table (API in action_dedup.h): a chained hash of keys under one mutex
 * plus a FIFO in claim order.  Every key lives for the same window, so claim order is
 * expiry order and the oldest key is the only one that can have expired first: expiry
 * is O(1) per key, done as claims arrive.  Bound: max_keys keys; a claim with the table
 * full of keys still inside their window is refused (DEDUP_FULL; the client sees -BUSY)
 * rather than forgetting a key early, which would let an action run twice. */
#include "ggl-build.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "action_dedup.h"

struct key_entry {
    char *key;
    uint64_t id, expires_ms;
    int done;
    size_t n_followers;
    struct dedup_follower followers[DEDUP_FOLLOWERS];
    struct key_entry *chain, *older, *newer;
};

struct dedup {
    pthread_mutex_t lock;
    struct key_entry **buckets;
    size_t mask, count, max_keys;
    uint64_t window_ms;
    struct key_entry *oldest, *newest;
};

static size_t hash_key(const char *s)
{
    uint64_t h = 1469598103934665603u; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211u;
    return (size_t)h;
}

struct dedup *dedup_new(size_t max_keys, uint64_t window_ms)
{
    struct dedup *d = calloc(1, sizeof *d);
    size_t n = 16;
    while (n < max_keys)
        n *= 2;
    if (!d || !(d->buckets = calloc(n, sizeof *d->buckets))) {
        free(d);
        return NULL;
    }
    pthread_mutex_init(&d->lock, NULL);
    d->mask = n - 1;
    d->max_keys = max_keys ? max_keys : 1;
    d->window_ms = window_ms;
    return d;
}

static struct key_entry **slot_of(struct dedup *d, const char *key)
{
    struct key_entry **p = &d->buckets[hash_key(key) & d->mask];
    while (*p && strcmp((*p)->key, key) != 0)
        p = &(*p)->chain;
    return p;
}

/* Unlink e from its bucket and the FIFO and free it. */
static void drop(struct dedup *d, struct key_entry *e)
{
    struct key_entry **p = slot_of(d, e->key);
    *p = e->chain;
    if (e->older)
        e->older->newer = e->newer;
    else
        d->oldest = e->newer;
    if (e->newer)
        e->newer->older = e->older;
    else
        d->newest = e->older;
    d->count--;
    free(e->key);
    free(e);
}

static void expire(struct dedup *d, uint64_t now)
{
    while (d->oldest && d->oldest->expires_ms <= now)
        drop(d, d->oldest);
}

void dedup_free(struct dedup *d)
{
    if (!d)
        return;
    while (d->oldest)
        drop(d, d->oldest);
    pthread_mutex_destroy(&d->lock);
    free(d->buckets);
    free(d);
}

static enum dedup_claim repeat(struct key_entry *e, const struct dedup_follower *f, uint64_t *id,
                               int *first_done)
{
    *id = e->id;
    *first_done = e->done;
    if (!f || e->done)
        return DEDUP_REPEAT;
    if (e->n_followers == DEDUP_FOLLOWERS)
        return DEDUP_BUSY;
    e->followers[e->n_followers++] = *f;
    return DEDUP_REPEAT;
}

static struct key_entry *entry_new(const char *key)
{
    struct key_entry *e = calloc(1, sizeof *e);
    if (e && !(e->key = strdup(key))) {
        free(e);
        return NULL;
    }
    return e;
}

static void record(struct dedup *d, struct key_entry **slot, struct key_entry *e, uint64_t now,
                   uint64_t id)
{
    e->id = id;
    e->expires_ms = now + d->window_ms;
    *slot = e;
    e->older = d->newest;
    if (d->newest)
        d->newest->newer = e;
    else
        d->oldest = e;
    d->newest = e;
    d->count++;
}

enum dedup_claim dedup_claim(struct dedup *d, const char *key, uint64_t now,
                             enum ggl_status (*reserve)(void *ctx, uint64_t *id), void *ctx,
                             const struct dedup_follower *f, uint64_t *id, int *first_done,
                             enum ggl_status *st)
{
    enum dedup_claim c;
    *st = GGL_OK;
    *first_done = 0;
    pthread_mutex_lock(&d->lock);
    expire(d, now);
    struct key_entry **slot = slot_of(d, key), *e = NULL;
    if (*slot)
        c = repeat(*slot, f, id, first_done);
    else if (d->count >= d->max_keys || !(e = entry_new(key)))
        c = DEDUP_FULL;
    else if ((*st = reserve(ctx, id)) != GGL_OK) {
        free(e->key);
        free(e);
        c = DEDUP_NEW;
    } else {
        record(d, slot, e, now, *id);
        c = DEDUP_NEW;
    }
    pthread_mutex_unlock(&d->lock);
    return c;
}

size_t dedup_finish(struct dedup *d, const char *key, uint64_t id, struct dedup_follower *out)
{
    size_t n = 0;
    pthread_mutex_lock(&d->lock);
    struct key_entry *e = *slot_of(d, key);
    if (e && e->id == id) {
        e->done = 1;
        n = e->n_followers;
        memcpy(out, e->followers, n * sizeof *out);
        e->n_followers = 0;
    }
    pthread_mutex_unlock(&d->lock);
    return n;
}

void dedup_forget(struct dedup *d, const char *key, uint64_t id)
{
    pthread_mutex_lock(&d->lock);
    struct key_entry *e = *slot_of(d, key);
    if (e && e->id == id)
        drop(d, e);
    pthread_mutex_unlock(&d->lock);
}

size_t dedup_count(struct dedup *d)
{
    pthread_mutex_lock(&d->lock);
    size_t n = d->count;
    pthread_mutex_unlock(&d->lock);
    return n;
}
