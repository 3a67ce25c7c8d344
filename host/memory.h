/* The memory manager: four tier slots (cache, STM, IM, LTM) bound to backend
 * instances, with versioned writes, tombstones, read-through and promotion.  The
 * consistency rules are DESIGN.md section 5; memory.c's header says how each holds. */
#ifndef GGL_HOST_MEMORY_H
#define GGL_HOST_MEMORY_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "instance.h"
#include "slot.h"

struct memory_async_conf {
    int64_t read_workers, write_workers; /* from the pools sizing (memory_read/write) */
    int64_t queue_capacity, batch;       /* from the memory section */
    int queue_writes;                    /* hold writes for a tier that is down: +QUEUED */
    int64_t pending_max, retry_ms;       /* held writes per worker; retry period */
};

struct memory_conf {
    int64_t stm_ttl_ms, im_ttl_ms, tombstone_ttl_ms, max_in_flight, breaker_threshold,
        breaker_cooldown_ms, maintenance_interval_ms, maintenance_batch, stm_min_age_ms,
        im_min_age_ms, recency_half_life_ms;
    double im_threshold, ltm_threshold, w_importance, w_access, w_recency, access_half;
    const char *compress;
    int64_t compress_min_bytes, compress_level, access_table_size;
    struct memory_async_conf async;
};

struct memory_value {
    void *data;              /* malloc'd; the caller frees */
    size_t len;
    int tier;                /* enum tier_slot it was found in */
    struct ggl_entry meta;   /* version, importance, flags, times (key/value unset) */
};

struct memory_write {
    double importance;       /* 0..1 */
    int64_t ttl_ms;          /* <= 0: the target tier's default */
    int tier;                /* enum tier_slot, or -1: STM (else the first bound below) */
    int pin;                 /* never expires; moves to LTM */
};

#define MEMORY_WRITE_DEFAULT {0.5, 0, -1, 0}

/* Points where tests can act between two steps of an operation. */
enum memory_hook { HOOK_BEFORE_PROMOTE, HOOK_BETWEEN_COPY_AND_DELETE, HOOK_BEFORE_COPY };
typedef void (*memory_hook_fn)(enum memory_hook point, const void *key, size_t len);

/* Read and check a `memory` section into m (memory_conf.c); compress_mask gets bit t
 * for each tier that compresses. */
int memory_read_config(const struct config *c, struct memory_conf *m, unsigned *compress_mask,
                       struct conf_error *err);
/* Check the `memory` section (for ganglion -t). */
int memory_check_config(const struct config *c, struct conf_error *err);
/* Read the `memory` section and bind each configured slot to its open instance. */
int memory_init(const struct config *c, struct instance *v, size_t n, struct conf_error *err);
void memory_fini(void);
int memory_ready(void);

/* Newest live copy, top tier first; promoted into the cache when found below it.
 * GGL_NOTFOUND when absent, deleted or expired; GGL_RETRY when absent from every
 * reachable tier but some tier could not be asked (the key may exist there). */
enum ggl_status memory_get(const void *key, size_t len, struct memory_value *out);
/* n reads at once: each tier is asked once for all keys still unanswered (get_batch:
 * one pipeline on Redis, one transaction on SQLite).  status[i] as memory_get's. */
enum ggl_status memory_get_batch(const void *const *keys, const size_t *lens, size_t n,
                                 struct memory_value *out, enum ggl_status *status);
/* The cache's answer alone, for callers that must not block: GGL_OK (a live copy),
 * GGL_NOTFOUND (a tombstone: definitive), or GGL_RETRY meaning "ask the tiers below" (a
 * miss, an expired copy, or no nonblocking cache bound). */
enum ggl_status memory_get_cached(const void *key, size_t len, struct memory_value *out);
/* memory_get and memory_get_cached without an allocation on a cache hit (memory_read.c):
 * a value of up to cap bytes that the cache answers is copied into buf and out->data is
 * buf; otherwise they answer as the functions above, with a malloc'd out->data that the
 * caller frees when it is not buf. */
enum ggl_status memory_get_into(const void *key, size_t len, void *buf, size_t cap,
                                struct memory_value *out);
enum ggl_status memory_get_cached_into(const void *key, size_t len, void *buf, size_t cap,
                                       struct memory_value *out);
/* memory_read.c's counters (memory_init's), and whether the cache tier compresses. */
struct ggl_metric;
void memory_read_init(struct ggl_metric *cache_hits, struct ggl_metric *misses, int compressed);
/* Collect the reads the cache counted itself (take_reads) into the tiers below, as
 * access_flush does for the host's table; returns the keys touched. */
size_t memory_flush_cache_reads(void);
/* Write with a fresh version.  GGL_OK once the target tier accepted it. */
enum ggl_status memory_put(const void *key, size_t len, const void *value, size_t vlen,
                           const struct memory_write *w, uint64_t *version);
/* One value of a batch. */
struct memory_item {
    const void *key;
    size_t len;
    const void *value;
    size_t vlen;
};

/* Write n values with fresh versions to one target in one backend batch (one SQLite
 * transaction), then the cache, then retire older copies elsewhere.  status[i] gets
 * each value's outcome; returns GGL_OK when the batch ran. */
enum ggl_status memory_put_batch(const struct memory_item *items, size_t n,
                                 const struct memory_write *w, enum ggl_status *status);
/* The two halves of memory_put_batch, for a caller that keeps entries to retry them
 * with the versions they were given (a queued write): entries with fresh versions (key
 * and value borrowed from items) and their target, or -1 (reason set); then the write
 * of prepared entries under `expect`: memory_fresh_expect(target) for a first attempt,
 * GGL_VERSION_OLDER (insert-if-newer) for a retry, which can then never undo a later
 * write. */
int memory_prepare(const struct memory_item *items, size_t n, const struct memory_write *w,
                   struct ggl_entry *es);
/* The condition of a first attempt with fresh versions at `target`.  Insert-if-newer
 * where the version counter is known to be above what the tier stores (an in-process
 * tier, empty at start, or one with max_version: memory_versions_above), so that a newer
 * write to the key made meanwhile on another thread (a plugin's mem_put, the control
 * socket's inline SET) keeps its place in every tier; written unconditionally, the
 * batch's older copy replaced it in the target while the cache kept the newer.
 * Elsewhere (Redis, whose entries outlive the host) unconditional: after a restart with
 * the wall clock behind, a fresh write must not lose to an old copy there. */
uint64_t memory_fresh_expect(int target);
enum ggl_status memory_write_entries(int target, const struct ggl_entry *es, size_t n,
                                     uint64_t expect, enum ggl_status *status);
/* Put a queued write's entry in the cache flagged GGL_ENTRY_PENDING: reads see it, and
 * the cache never evicts it until memory_write_entries settles it.  GGL_RETRY when the
 * cache is full of such entries (or there is no cache). */
enum ggl_status memory_hold_in_cache(const struct ggl_entry *e);
/* Delete: a tombstone in the top tier and the cache, older copies below removed.
 * *existed is 1 when a live value was there (Redis DEL's count). */
enum ggl_status memory_del(const void *key, size_t len, int *existed);
/* Move a key's copy from one tier to another: copy insert-if-newer, then delete the
 * source only if its version is unchanged.  GGL_NOTFOUND if `from` has no copy. */
enum ggl_status memory_move(const void *key, size_t len, int from, int to);

/* Move the version counter above every version the instance stores (its tier's
 * max_version, ABI 1.4), so that no write loses to a stored copy though the wall clock
 * that seeded the counter stepped back across a restart.  Called when a slot is bound;
 * a backend that cannot answer is logged (its fresh writes may then lose to its copies). */
void memory_versions_above(const struct ggl_tier *vt, void *self, const char *label);
/* Bind tier slot `tier` to the open backend instance `name` (PLUGIN.SWAP).  With
 * migrate_entries, the old backend's live entries are copied insert-if-newer on a
 * thread of their own while reads fall back to it and writes reach both; INFO memory
 * shows the progress.  The old instance stays open (it is still declared). */
enum ggl_status memory_swap(int tier, const char *name, int migrate_entries);
/* The slots' state for INFO memory, as "name:value" lines (Redis INFO style) appended
 * to buf; returns the length written (truncated to len). */
size_t memory_info(char *buf, size_t len);
struct slot *memory_slot(int tier);
int memory_tier_bound(int tier);
/* 1 when a write (memory_put, memory_del) calls only nonblocking backends and does no
 * more than copy: every bound slot's is GGL_NONBLOCKING, no migration runs (its old
 * binding is called too) and no tier compresses, so the I/O thread may write itself.  A
 * look: a swap right after it can make one such write call a blocking backend. */
int memory_writes_nonblocking(void);
/* Which tiers hold a live copy of key (live[t] for each enum tier_slot): asks every
 * bound tier, blocking.  The count, or -1 when a tier could not answer. */
int memory_where(const void *key, size_t len, int *live);
/* The plugin instances memory_init was given (a swap may bind any tier one). */
const struct instance *memory_instances(size_t *n);
/* Is e neither a tombstone nor past its expiry at `now`? */
int memory_entry_live(const struct ggl_entry *e, uint64_t now);
const struct memory_conf *memory_conf(void);
/* The memory section's settings for memory_async_start. */
const struct memory_async_conf *memory_async_settings(void);
/* One scan call on a tier through its slot; GGL_UNAVAILABLE if it cannot scan. */
enum ggl_status memory_scan(int tier, uint64_t *cursor, size_t count, ggl_scan_fn fn, void *arg);
/* Add host-kept access counts to a key's top-most copy below the cache (an
 * access_apply_fn: maintenance flushes the access table through it). */
void memory_touch(void *arg, const void *key, size_t len, uint64_t count, uint64_t last_ms);
/* Drop a tombstone from `tier` (and the cache) if no tier below holds a copy. */
enum ggl_status memory_purge_tombstone(const void *key, size_t len, int tier, uint64_t version);
void memory_set_hook(memory_hook_fn fn);

#endif
