/* The cache-hit read path: a read the bundled cache (or any backend with the 1.1
 * get_into slot) answers is copied straight into the caller's buffer, with one clock
 * read, one slot reference and no allocation; the cache counts the access in its own
 * entry and maintenance collects those counts with take_reads.  Everything else (a miss,
 * a migration, a compressed cache, a value larger than the buffer) takes the general
 * path in memory.c.  The consistency rules stay memory.c's: the host checks expiry on
 * its clock and tombstones on every answer, whatever the backend did. */
#include "ggl-build.h"

#include <stdatomic.h>

#include "hostapi.h"
#include "memory_impl.h"
#include "metrics.h"

static struct {
    struct ggl_metric *hits, *misses; /* memory.c's cache hit and miss counters */
    int compressed;                   /* the cache tier compresses: values need unpacking */
} R;

void memory_read_init(struct ggl_metric *cache_hits, struct ggl_metric *misses, int compressed)
{
    R.hits = cache_hits;
    R.misses = misses;
    R.compressed = compressed;
}

enum cache_answer {
    ANSWER_LIVE,      /* a live copy, its value in buf */
    ANSWER_GONE,      /* a tombstone or a copy past its expiry: the read ends "not found" */
    ANSWER_ABSENT,    /* not in the cache: ask the tiers below */
    ANSWER_ELSEWHERE  /* the fast path cannot answer: take the general path */
};

/* Ask the cache through get_into when that is one plain call: a nonblocking backend
 * that has the slot, no migration whose old binding would need asking too, no
 * compression to undo.  A value over cap is ANSWER_ELSEWHERE (not copied, not counted).
 * The slot is entered through its inline fast path (slot.h): same checks, no calls. */
static inline __attribute__((always_inline)) enum cache_answer ask_cache(const void *key, size_t len, void *buf, size_t cap,
                                          uint64_t now, struct ggl_entry *e)
{
    struct slot *s = &mm.slots[SLOT_CACHE];
    struct binding *b;
    if (!mm.ready || R.compressed || slot_acquire_fast(s, SLOT_READS, &b) != GGL_OK)
        return ANSWER_ELSEWHERE;
    if (!b->get_into || atomic_load_explicit(&s->previous, memory_order_relaxed)) {
        slot_release_fast(s, SLOT_READS, b, GGL_OK, NULL);
        return ANSWER_ELSEWHERE;
    }
    hostapi_clear_reason();
    /* cleared as ABI 1.1 promised (a backend may leave fields it has no value for), but
     * field by field: gcc clears a zeroed compound literal with `rep stos`, slow to start,
     * on every hit */
    mem_blank(e);
    enum ggl_status st = b->get_into(b->self, key, len, buf, cap, now, e);
    if (st == GGL_OK) {
        slot_release_fast(s, SLOT_READS, b, st, NULL);
        if (mem_dead(e, now))
            return ANSWER_GONE;
        return e->value_len > cap ? ANSWER_ELSEWHERE : ANSWER_LIVE;
    }
    int failed = st != GGL_NOTFOUND;
    slot_release_fast(s, SLOT_READS, b, st, failed ? hostapi_peek_reason() : NULL);
    return failed ? ANSWER_ELSEWHERE : ANSWER_ABSENT;
}

/* A live answer (in out->meta) as a memory_value whose data is buf. */
static inline enum ggl_status hit(void *buf, struct memory_value *out)
{
    metrics_add(R.hits, 1);
    out->data = buf;
    out->len = out->meta.value_len;
    out->tier = SLOT_CACHE;
    out->meta.key = NULL;
    out->meta.value = NULL;
    return GGL_OK;
}

enum ggl_status memory_get_into(const void *key, size_t len, void *buf, size_t cap,
                                struct memory_value *out)
{
    switch (ask_cache(key, len, buf, cap, clock_now_ms(), &out->meta)) {
    case ANSWER_LIVE: return hit(buf, out);
    case ANSWER_GONE: metrics_add(R.misses, 1); return GGL_NOTFOUND; /* as memory_get's */
    default: return memory_get(key, len, out);
    }
}

enum ggl_status memory_get_cached_into(const void *key, size_t len, void *buf, size_t cap,
                                       struct memory_value *out)
{
    switch (ask_cache(key, len, buf, cap, clock_now_ms(), &out->meta)) {
    case ANSWER_LIVE: return hit(buf, out);
    case ANSWER_GONE:
        if (!(out->meta.flags & GGL_ENTRY_TOMBSTONE))
            return GGL_RETRY; /* expired here: a lower tier may hold a live copy */
        metrics_add(R.misses, 1);
        return GGL_NOTFOUND;
    case ANSWER_ABSENT: return GGL_RETRY;
    default: return memory_get_cached(key, len, out);
    }
}

struct harvest {
    size_t touched;
};

static int touch_taken(void *arg, const struct ggl_entry *e)
{
    struct harvest *h = arg;
    memory_touch(NULL, e->key, e->key_len, e->access_count, e->last_access_ms);
    h->touched++;
    return 0;
}

size_t memory_flush_cache_reads(void)
{
    struct slot *s = &mm.slots[SLOT_CACHE];
    struct harvest h = {0};
    uint64_t cursor = 0;
    do {
        struct binding *b;
        if (!mm.ready || slot_acquire(s, SLOT_READS, &b) != GGL_OK)
            break;
        enum ggl_status st = GGL_HAS_SLOT(b->vt, struct ggl_tier, take_reads)
                                 ? b->vt->take_reads(b->self, &cursor, 1024, touch_taken, &h)
                                 : GGL_UNAVAILABLE;
        slot_release(s, SLOT_READS, b, GGL_OK, NULL); /* a count not taken is no failure */
        if (st != GGL_OK)
            break;
    } while (cursor != 0);
    return h.touched;
}
