/* Private to the memory manager's files (memory.c: tier calls, reads, info, set-up;
 * memory_write.c: writes, deletes, moves): its state and the calls they share. */
#ifndef GGL_HOST_MEMORY_IMPL_H
#define GGL_HOST_MEMORY_IMPL_H

#include <stdatomic.h>
#include <stdint.h>

#include "memory.h"
#include "metrics.h"
#include "swap.h"

/* A write aimed below the cache only takes the cache's copy away, so a read that fetched
 * the older copy below before that write could promote it after, into the emptied
 * cache.  Such writes are counted, begun and done, per slot of their key's hash; a read
 * notes the counts before it looks below (mem_below_token) and keeps a promotion only if
 * no such write on its slot was under way then or began since (mem_below_quiet). */
#define BELOW_SLOTS 1024
struct mem_below {
    _Atomic uint32_t begun, done;
};

struct memory_state {
    int ready;
    struct instance *inst; /* every opened instance: a swap may bind any tier one */
    size_t ninst;

    struct memory_conf conf;
    struct slot slots[SLOT_COUNT];
    _Atomic uint64_t version;
    memory_hook_fn hook;
    unsigned compress_mask; /* bit t: tier t compresses */
    struct ggl_metric *hits[SLOT_COUNT], *misses, *writes, *deletes, *promotions, *conflicts,
        *unretired, *zin, *zout;
    struct mem_below below[BELOW_SLOTS];
};

extern struct memory_state mm; /* the one memory manager (memory.c) */

enum op { OP_GET, OP_PUT, OP_DEL };

static inline int mem_bound(int t)
{
    return mm.ready && atomic_load(&mm.slots[t].current) != NULL;
}

static inline uint64_t mem_next_version(void) { return atomic_fetch_add(&mm.version, 1) + 1; }

static inline struct mem_below *mem_below_of(const void *key, size_t len)
{
    const unsigned char *p = key;
    uint32_t h = 2166136261u; /* FNV-1a: on the miss path only */
    while (len--)
        h = (h ^ *p++) * 16777619u;
    return &mm.below[h & (BELOW_SLOTS - 1)];
}

static inline void mem_below_begin(const void *key, size_t len)
{
    atomic_fetch_add(&mem_below_of(key, len)->begun, 1);
}

static inline void mem_below_end(const void *key, size_t len)
{
    atomic_fetch_add(&mem_below_of(key, len)->done, 1);
}

/* Before a read looks below the cache: a token, UINT64_MAX when such a write is under
 * way on the key's slot (its promotion is then not tried). */
static inline uint64_t mem_below_token(const void *key, size_t len)
{
    struct mem_below *b = mem_below_of(key, len);
    uint32_t done = atomic_load(&b->done), begun = atomic_load(&b->begun);
    return begun == done ? begun : UINT64_MAX;
}

/* After the promotion's put: 1 when no such write began since the token was taken. */
static inline int mem_below_quiet(const void *key, size_t len, uint64_t token)
{
    return token != UINT64_MAX && atomic_load(&mem_below_of(key, len)->begun) == (uint32_t)token;
}

/* The entry to hand tier t: *e itself, or a compressed copy in *tmp (whose buffer,
 * *zbuf, the caller frees) when t compresses and it pays. */
const struct ggl_entry *mem_for_tier(int t, const struct ggl_entry *e, struct ggl_entry *tmp,
                                     void **zbuf);
/* One call on tier t through its slot (acquire, breaker, release), and during a
 * migration also on the binding it replaces (p: mem_previous_of the slot). */
enum ggl_status mem_tier_call(int t, enum op op, const void *key, size_t len,
                              const struct ggl_entry *in, struct ggl_entry *out, uint64_t expect);
struct binding *mem_previous_of(struct slot *s);
enum ggl_status mem_with_previous(struct binding *p, int t, enum op op, enum ggl_status st,
                                  const void *key, size_t len, const struct ggl_entry *in,
                                  struct ggl_entry *out, uint64_t expect);
void mem_tier_get_batch(int t, const void *const *keys, const size_t *lens, size_t n,
                        struct ggl_entry *out, enum ggl_status *status);
/* An empty entry for a tier's get to fill: field by field, since gcc clears the
 * literal `{.size = sizeof e}` with `rep stos`, slow to start, on every write's retire
 * and every read below the cache. */
static inline void mem_blank(struct ggl_entry *e)
{
    e->size = sizeof *e;
    e->flags = 0;
    e->key = NULL;
    e->key_len = 0;
    e->value = NULL;
    e->value_len = 0;
    e->version = 0;
    e->importance = 0;
    e->created_ms = e->last_access_ms = e->access_count = e->expires_ms = 0;
}

/* A tombstone or past its expiry on the host clock.  Inline: every cache hit asks. */
static inline int mem_dead(const struct ggl_entry *e, uint64_t now)
{
    return (e->flags & GGL_ENTRY_TOMBSTONE) ||
           (!(e->flags & GGL_ENTRY_PINNED) && e->expires_ms && e->expires_ms <= now);
}
/* The first copy top down (value allocated); *tier where, *failed tiers that failed. */
enum ggl_status mem_find_top(const void *key, size_t len, struct ggl_entry *e, int *tier,
                             int *failed);
/* Compare-and-delete copies of key older than version in the tiers below t. */
int mem_retire_found(int t, const void *key, size_t len, enum ggl_status st,
                     struct ggl_entry e, uint64_t version, uint64_t now);
int mem_retire_older(int t, const void *key, size_t len, uint64_t version, uint64_t now);
/* The same for n keys at once (memory_retire.c): tier t's copies older than versions[i]
 * removed (the cache's invalidated), in one backend call where it has del_older_batch. */
void mem_retire_batch(int t, const void *const *keys, const size_t *lens, size_t n,
                      const uint64_t *versions, uint64_t now);

#endif
