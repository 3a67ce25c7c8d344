/* The access table: 64 shards, each an open-addressing array under its own mutex, so
 * two readers rarely meet.  Keys are copied on first access in an interval; a flush
 * swaps a shard's array for an empty one under the lock and applies the old one after. */
#include "ggl-build.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "access.h"
#include "metrics.h"

#define SHARDS 64

struct slot_rec {
    uint64_t hash; /* 0: empty */
    uint64_t count, last;
    size_t len;
    char *key;
};

static struct shard {
    pthread_mutex_t lock;
    struct slot_rec *recs;
    size_t cap, used;
} __attribute__((aligned(64))) shards[SHARDS];

static size_t shard_cap;
static struct ggl_metric *dropped;

static uint64_t hash_key(const void *key, size_t len)
{
    const unsigned char *p = key;
    uint64_t h = 1469598103934665603ull;
    while (len--)
        h = (h ^ *p++) * 1099511628211ull;
    return h | 1; /* never 0: 0 marks an empty record */
}

int access_init(size_t capacity)
{
    shard_cap = 16;
    while (shard_cap * SHARDS < capacity * 2) /* at most half full */
        shard_cap <<= 1;
    dropped = metrics_register(GGL_METRIC_COUNTER, "memory_access_dropped_total",
                               "accesses not counted: the access table was full", NULL);
    for (int i = 0; i < SHARDS; i++) {
        pthread_mutex_init(&shards[i].lock, NULL);
        shards[i].cap = shard_cap;
        shards[i].used = 0;
        if (!(shards[i].recs = calloc(shard_cap, sizeof *shards[i].recs))) {
            access_fini();
            return -1;
        }
    }
    return 0;
}

static void free_recs(struct slot_rec *r, size_t cap)
{
    for (size_t i = 0; r && i < cap; i++)
        free(r[i].key);
    free(r);
}

void access_fini(void)
{
    for (int i = 0; i < SHARDS; i++) {
        free_recs(shards[i].recs, shards[i].cap);
        shards[i].recs = NULL;
        pthread_mutex_destroy(&shards[i].lock);
    }
}

void access_record(const void *key, size_t len, uint64_t now_ms)
{
    uint64_t h = hash_key(key, len);
    struct shard *s = &shards[h % SHARDS];
    pthread_mutex_lock(&s->lock);
    if (!s->recs)
        goto out;
    size_t mask = s->cap - 1;
    for (size_t i = (h / SHARDS) & mask, probes = 0; probes < s->cap; i = (i + 1) & mask, probes++) {
        struct slot_rec *r = &s->recs[i];
        if (r->hash == h && r->len == len && memcmp(r->key, key, len) == 0) {
            r->count++;
            if (now_ms > r->last)
                r->last = now_ms;
            goto out;
        }
        if (r->hash)
            continue;
        if (s->used * 2 >= s->cap || !(r->key = malloc(len ? len : 1)))
            break;
        memcpy(r->key, key, len);
        *r = (struct slot_rec){h, 1, now_ms, len, r->key};
        s->used++;
        goto out;
    }
    metrics_add(dropped, 1);
out:
    pthread_mutex_unlock(&s->lock);
}

size_t access_flush(access_apply_fn apply, void *arg)
{
    size_t n = 0;
    for (int i = 0; i < SHARDS; i++) {
        struct shard *s = &shards[i];
        struct slot_rec *fresh = calloc(shard_cap, sizeof *fresh), *old;
        if (!fresh)
            continue; /* counts stay until the next flush */
        pthread_mutex_lock(&s->lock);
        old = s->recs;
        s->recs = fresh;
        s->used = 0;
        pthread_mutex_unlock(&s->lock);
        for (size_t j = 0; old && j < shard_cap; j++)
            if (old[j].hash) {
                apply(arg, old[j].key, old[j].len, old[j].count, old[j].last);
                n++;
            }
        free_recs(old, shard_cap);
    }
    return n;
}
