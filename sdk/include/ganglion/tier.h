/* Tier backend vtable: one memory tier (cache, STM, IM or LTM) behind a slot of the
 * host's memory manager.  Entries are versioned; put and del can be conditional. */
#ifndef GANGLION_TIER_H
#define GANGLION_TIER_H

#include <ganglion/host.h>

#ifdef __cplusplus
extern "C" {
#endif

#define GGL_ENTRY_PINNED    (1u << 0) /* never expires; moves to LTM instead */
#define GGL_ENTRY_TOMBSTONE (1u << 1) /* a delete that shadows lower tiers */
#define GGL_ENTRY_PENDING   (1u << 2) /* a lower-tier write is pending: a cache must not evict it */
#define GGL_ENTRY_COMPRESSED (1u << 3) /* set by the host: the value is zstd-compressed */

/* Conditions for put/del's `expect` argument. */
#define GGL_VERSION_ANY   UINT64_C(0)          /* unconditional */
#define GGL_VERSION_OLDER UINT64_MAX           /* put only: apply if absent or stored version < entry's */
/* Any other value: apply only if the stored version equals it (compare-and-set/delete). */

struct ggl_entry {
    uint32_t size;           /* sizeof(struct ggl_entry) of the writer */
    uint32_t flags;          /* GGL_ENTRY_* */
    const void *key;
    size_t key_len;
    void *value;             /* get: allocated with host->alloc, the host frees it; put: borrowed */
    size_t value_len;
    uint64_t version;        /* assigned by the host; monotonic across restarts */
    double importance;       /* 0..1 */
    uint64_t created_ms;     /* host clock */
    uint64_t last_access_ms; /* host clock */
    uint64_t access_count;
    uint64_t expires_ms;     /* absolute host-clock expiry; 0 = never */
};

/* The rule every backend applies to put's and del's `expect`: does the stored copy
 * (present or not, with version `stored`) allow a write of `version`?  del passes 0. */
static inline int ggl_condition_holds(int present, uint64_t stored, uint64_t expect,
                                      uint64_t version)
{
    if (expect == GGL_VERSION_ANY)
        return 1;
    if (expect == GGL_VERSION_OLDER)
        return !present || stored < version;
    return present && stored == expect;
}

struct ggl_tier_stats {
    uint32_t size;
    uint64_t entries;
    uint64_t bytes;
    uint64_t evictions;
    uint64_t expirations;
};

/* Called by scan for every live entry; return non-zero to stop.  The entry is valid for
 * the call only, and a backend may hold its own lock around it (tier/mem does): copy what
 * is needed, and call no tier from it. */
typedef int (*ggl_scan_fn)(void *arg, const struct ggl_entry *entry);

struct ggl_tier {
    uint32_t size;  /* sizeof(struct ggl_tier) the plugin was built with */
    uint32_t flags; /* GGL_READS_CONCURRENT | GGL_WRITES_CONCURRENT | GGL_NONBLOCKING */

    /* Mandatory. */
    /* Create an instance from its validated config block; *self is passed to every slot. */
    enum ggl_status (*open)(const struct ggl_host *host, const struct ggl_conf *conf, void **self);
    /* Release everything; stop any thread or timer the instance started. */
    void (*close)(void *self);
    /* Fetch a live entry; GGL_NOTFOUND when absent or expired.  out->value via host->alloc. */
    enum ggl_status (*get)(void *self, const void *key, size_t key_len, struct ggl_entry *out);
    /* Store an entry under the `expect` condition (GGL_VERSION_*); GGL_CONFLICT if it fails. */
    enum ggl_status (*put)(void *self, const struct ggl_entry *entry, uint64_t expect);
    /* Remove a key; with expect != GGL_VERSION_ANY only if its version equals expect. */
    enum ggl_status (*del)(void *self, const void *key, size_t key_len, uint64_t expect);

    /* Optional (NULL: the host loops over put/get). */
    /* Store n entries; status[i] receives each result.  Returns GGL_OK if the batch ran. */
    enum ggl_status (*put_batch)(void *self, const struct ggl_entry *entries, size_t n,
                                 uint64_t expect, enum ggl_status *status);
    /* Fetch n keys into out[i] with status[i]. */
    enum ggl_status (*get_batch)(void *self, const void *const *keys, const size_t *key_lens,
                                 size_t n, struct ggl_entry *out, enum ggl_status *status);
    /* Visit up to `count` entries from *cursor (0 = start); *cursor becomes 0 at the end. */
    enum ggl_status (*scan)(void *self, uint64_t *cursor, size_t count, ggl_scan_fn fn, void *arg);
    /* Fill counters. */
    enum ggl_status (*stats)(void *self, struct ggl_tier_stats *out);
    /* GGL_OK when serving; GGL_RETRY (with a reason) when degraded. */
    enum ggl_status (*health)(void *self);
    /* Per-thread state: called on each host thread before its first and after its last call. */
    enum ggl_status (*thread_init)(void *self);
    void (*thread_fini)(void *self);

    /* Optional, added in 1.1 (the host checks GGL_HAS_SLOT before calling them). */
    /* get without an allocation: a live entry whose value fits in cap bytes is copied
     * into buf (out->value = buf); a larger one is not copied, out->value is NULL and
     * out->value_len says how many bytes it needs (still GGL_OK).  `now` is the host
     * clock, read once by the caller.  A copied read that is not a tombstone counts one
     * access for take_reads (get counts none: the host counts what get answers). */
    enum ggl_status (*get_into)(void *self, const void *key, size_t key_len, void *buf,
                                size_t cap, uint64_t now, struct ggl_entry *out);
    /* Visit, as scan does, the entries read through get_into since the last take_reads
     * (access_count = those reads, last_access_ms = the latest; value NULL) and restart
     * their counts at 0; entries dropped since then with reads not taken may be visited
     * too (a key can come twice: counts add up). */
    enum ggl_status (*take_reads)(void *self, uint64_t *cursor, size_t count, ggl_scan_fn fn,
                                  void *arg);

    /* Optional, added in 1.3 (NULL: the host reads each key, then compare-and-deletes). */
    /* Remove each key i whose stored copy (live or expired) is older than versions[i], as
     * one atomic step per key; status[i]: GGL_OK removed, GGL_NOTFOUND no copy, GGL_CONFLICT
     * the copy is not older (kept).  Returns GGL_OK if the batch ran.  The host retires
     * the copies a batch of writes made stale with it: one call, not a get and a del each. */
    enum ggl_status (*del_older_batch)(void *self, const void *const *keys,
                                       const size_t *key_lens, size_t n,
                                       const uint64_t *versions, enum ggl_status *status);

    /* Optional, added in 1.4, for backends whose entries outlive the host (a file): the
     * highest version stored in *out (0 when empty).  At start, and when a slot is bound
     * to the instance, the host moves its version counter above it, so a write never
     * loses to a stored copy even when the wall clock that seeds the counter stepped
     * back across a restart. */
    enum ggl_status (*max_version)(void *self, uint64_t *out);
};

#ifdef __cplusplus
}
#endif
#endif
