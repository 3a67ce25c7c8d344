/* The access table: 64 shards, each an open-addressing array under its own mutex.  A
 * read does not touch it: each thread counts into a small table of its own (a line
 * only it writes, so two readers never bounce one) and merges that into the shards,
 * shard by shard, when it is half full, when the thread ends, and at every flush.  A
 * flush merges every thread's table, then swaps each shard's array for an empty one
 * under the lock and applies the old one after. */
#include "ggl-build.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "access.h"
#include "metrics.h"

#define SHARDS 64
#define LOCAL_SLOTS 256 /* per thread (16 KiB, stays in L1); merged at half full */
#define INLINE_KEY 32
#define SHARED_INLINE 24 /* a shard record holds a key this short itself: no extra miss */

/* One cache line: keys up to SHARED_INLINE bytes in place, longer ones malloc'd. */
struct slot_rec {
    uint64_t hash; /* 0: empty */
    uint64_t count, last;
    uint32_t len;
    union {
        char bytes[SHARED_INLINE];
        char *ptr;
    } key;
} __attribute__((aligned(64)));

static const char *rec_key(const struct slot_rec *r)
{
    return r->len <= SHARED_INLINE ? r->key.bytes : r->key.ptr;
}

static struct shard {
    pthread_mutex_t lock;
    struct slot_rec *recs;
    size_t cap, used;
} __attribute__((aligned(64))) shards[SHARDS];

/* A thread's own counts: keys up to INLINE_KEY bytes; longer ones go to the shards. */
struct local_rec {
    uint64_t hash; /* 0: empty */
    uint64_t count, last;
    uint32_t len;
    char key[INLINE_KEY];
};

struct local {
    /* Held by its thread while counting (never contended then: a flush that holds it
     * sends that one access to the shards instead) or by whoever merges it.  A spin
     * lock: one atomic exchange, and only merges ever wait on it, briefly. */
    pthread_spinlock_t lock;
    struct local *next;     /* every table ever made: reused after their thread ends */
    int owned;
    size_t used;
    uint16_t slots[LOCAL_SLOTS / 2]; /* the used slots, in the order filled */
    uint16_t order[LOCAL_SLOTS / 2]; /* scratch for merge: used slots by shard */
    struct local_rec recs[LOCAL_SLOTS];
};

static size_t shard_cap;
static struct ggl_metric *dropped;
static _Atomic int ready; /* between access_init and access_fini */
/* Thread tables outlive access_fini (a thread keeps its table across memory restarts
 * in tests); they are reachable from `locals` until the process ends. */
static pthread_mutex_t locals_lock = PTHREAD_MUTEX_INITIALIZER;
static struct local *locals;
static pthread_key_t local_key;
static pthread_once_t key_once = PTHREAD_ONCE_INIT;

static uint64_t hash_key(const void *key, size_t len)
{
    const unsigned char *p = key;
    uint64_t h = 1469598103934665603ull;
    while (len--)
        h = (h ^ *p++) * 1099511628211ull;
    return (h ^ (h >> 31)) | 1; /* never 0: 0 marks an empty record */
}

/* An empty shard array (its records are cache-line aligned). */
static struct slot_rec *new_recs(size_t cap)
{
    struct slot_rec *r = aligned_alloc(64, cap * sizeof *r);
    if (r)
        memset(r, 0, cap * sizeof *r);
    return r;
}

static struct shard *shard_of(uint64_t h) { return &shards[(h >> 40) % SHARDS]; }

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
        if (!(shards[i].recs = new_recs(shard_cap))) {
            access_fini();
            return -1;
        }
    }
    ready = 1;
    return 0;
}

static void free_recs(struct slot_rec *r, size_t cap)
{
    for (size_t i = 0; r && i < cap; i++)
        if (r[i].hash && r[i].len > SHARED_INLINE)
            free(r[i].key.ptr);
    free(r);
}

static void clear_local(struct local *l)
{
    for (size_t i = 0; i < l->used; i++)
        l->recs[l->slots[i]].hash = 0;
    l->used = 0;
}

void access_fini(void)
{
    pthread_mutex_lock(&locals_lock);
    ready = 0; /* what threads still hold is dropped with the shards */
    for (struct local *l = locals; l; l = l->next) {
        pthread_spin_lock(&l->lock);
        clear_local(l);
        pthread_spin_unlock(&l->lock);
    }
    pthread_mutex_unlock(&locals_lock);
    for (int i = 0; i < SHARDS; i++) {
        free_recs(shards[i].recs, shards[i].cap);
        shards[i].recs = NULL;
        pthread_mutex_destroy(&shards[i].lock);
    }
}

/* Add count accesses (the latest at last) to key's record.  Shard lock held. */
static void add_to_shard(struct shard *s, uint64_t h, const void *key, size_t len,
                         uint64_t count, uint64_t last)
{
    if (!s->recs)
        return;
    size_t mask = s->cap - 1;
    for (size_t i = (h >> 1) & mask, probes = 0; probes < s->cap; i = (i + 1) & mask, probes++) {
        struct slot_rec *r = &s->recs[i];
        if (r->hash == h && r->len == len && memcmp(rec_key(r), key, len) == 0) {
            r->count += count;
            if (last > r->last)
                r->last = last;
            return;
        }
        if (r->hash)
            continue;
        if (s->used * 2 >= s->cap ||
            (len > SHARED_INLINE && !(r->key.ptr = malloc(len))))
            break;
        memcpy(len > SHARED_INLINE ? r->key.ptr : r->key.bytes, key, len);
        r->hash = h, r->count = count, r->last = last, r->len = (uint32_t)len;
        s->used++;
        return;
    }
    metrics_add(dropped, (double)count);
}

/* Move a thread table's counts into the shards, taking each shard's lock once.  The
 * table's lock held. */
static void merge_local(struct local *l)
{
    size_t start[SHARDS + 1] = {0};
    if (!atomic_load(&ready) || !l->used) {
        clear_local(l); /* nothing to merge, or no table to merge into */
        return;
    }
    for (size_t i = 0; i < l->used; i++) /* counting sort of the used slots by shard */
        start[(l->recs[l->slots[i]].hash >> 40) % SHARDS + 1]++;
    for (int s = 0; s < SHARDS; s++)
        start[s + 1] += start[s];
    size_t fill[SHARDS];
    memcpy(fill, start, sizeof fill);
    for (size_t i = 0; i < l->used; i++)
        l->order[fill[(l->recs[l->slots[i]].hash >> 40) % SHARDS]++] = l->slots[i];
    for (int s = 0; s < SHARDS; s++) {
        if (start[s] == start[s + 1])
            continue;
        pthread_mutex_lock(&shards[s].lock);
        for (size_t j = start[s]; j < start[s + 1]; j++) {
            struct local_rec *r = &l->recs[l->order[j]];
            add_to_shard(&shards[s], r->hash, r->key, r->len, r->count, r->last);
            r->hash = 0;
        }
        pthread_mutex_unlock(&shards[s].lock);
    }
    l->used = 0;
}

/* A thread ends: its counts go to the shards and its table to the next new thread. */
static void release_local(void *arg)
{
    struct local *l = arg;
    pthread_spin_lock(&l->lock);
    merge_local(l);
    l->owned = 0;
    pthread_spin_unlock(&l->lock);
}

static void make_key(void) { pthread_key_create(&local_key, release_local); }

/* This thread's table: a free one from an ended thread, or a new one (NULL: none). */
static struct local *my_local(void)
{
    static _Thread_local struct local *mine;
    if (mine)
        return mine;
    pthread_once(&key_once, make_key);
    pthread_mutex_lock(&locals_lock);
    struct local *l = locals;
    for (; l; l = l->next) {
        pthread_spin_lock(&l->lock);
        int taken = !l->owned && (l->owned = 1);
        pthread_spin_unlock(&l->lock);
        if (taken)
            break;
    }
    if (!l && (l = calloc(1, sizeof *l))) {
        pthread_spin_init(&l->lock, PTHREAD_PROCESS_PRIVATE);
        l->owned = 1;
        l->next = locals;
        locals = l;
    }
    pthread_mutex_unlock(&locals_lock);
    if (l && pthread_setspecific(local_key, l) != 0)
        release_local(l); /* no destructor would give it back: use the shards */
    else
        mine = l;
    return mine;
}

/* Count in the thread's table.  0, or -1 when the key is too long for it or a flush is
 * merging it right now. */
static int record_local(struct local *l, uint64_t h, const void *key, size_t len, uint64_t now)
{
    if (len > INLINE_KEY || pthread_spin_trylock(&l->lock) != 0)
        return -1;
    if (l->used * 2 >= LOCAL_SLOTS)
        merge_local(l);
    for (size_t i = (h >> 1) % LOCAL_SLOTS;; i = (i + 1) % LOCAL_SLOTS) {
        struct local_rec *r = &l->recs[i];
        if (r->hash == h && r->len == len && memcmp(r->key, key, len) == 0) {
            r->count++;
            if (now > r->last)
                r->last = now;
            break;
        }
        if (!r->hash) {
            r->hash = h, r->count = 1, r->last = now, r->len = (uint32_t)len;
            memcpy(r->key, key, len);
            l->slots[l->used++] = (uint16_t)i;
            break;
        }
    }
    pthread_spin_unlock(&l->lock);
    return 0;
}

void access_record(const void *key, size_t len, uint64_t now_ms)
{
    uint64_t h = hash_key(key, len);
    struct local *l = my_local();
    if (l && record_local(l, h, key, len, now_ms) == 0)
        return;
    struct shard *s = shard_of(h);
    pthread_mutex_lock(&s->lock);
    add_to_shard(s, h, key, len, 1, now_ms);
    pthread_mutex_unlock(&s->lock);
}

size_t access_flush(access_apply_fn apply, void *arg)
{
    size_t n = 0;
    pthread_mutex_lock(&locals_lock);
    for (struct local *l = locals; l; l = l->next) {
        pthread_spin_lock(&l->lock);
        merge_local(l);
        pthread_spin_unlock(&l->lock);
    }
    pthread_mutex_unlock(&locals_lock);
    for (int i = 0; i < SHARDS; i++) {
        struct shard *s = &shards[i];
        struct slot_rec *fresh = new_recs(shard_cap), *old;
        if (!fresh)
            continue; /* counts stay until the next flush */
        pthread_mutex_lock(&s->lock);
        old = s->recs;
        s->recs = fresh;
        s->used = 0;
        pthread_mutex_unlock(&s->lock);
        for (size_t j = 0; old && j < shard_cap; j++)
            if (old[j].hash) {
                apply(arg, rec_key(&old[j]), old[j].len, old[j].count, old[j].last);
                n++;
            }
        free_recs(old, shard_cap);
    }
    return n;
}
