/* The memory manager.  How DESIGN.md section 5's rules hold here:
 * - Versions: one 64-bit counter seeded from the wall clock in microseconds, so it keeps
 *   rising across restarts unless writes averaged over 1 M/s since the last start, and
 *   moved above the highest version a bound backend stores (max_version, ABI 1.4), so
 *   it rises even when the wall clock stepped back.
 * - Every write is insert-if-newer (GGL_VERSION_OLDER): whatever order concurrent writes
 *   to a key land in, each tier keeps the highest version; a write that loses to a newer
 *   one is still acknowledged (the newer value is what a reader must see).
 * - A PUT removes older copies from the other tiers (compare-and-delete), so an old LTM
 *   copy cannot reappear when the new STM copy expires.
 * - DEL writes a tombstone (a new version) into the top tier and the cache; a racing
 *   promotion or migration of an old copy then conflicts instead of resurrecting it.
 * - Moves copy insert-if-newer and delete the source only if its version is unchanged:
 *   a crash in between leaves a duplicate, never a loss; a newer write always wins.
 * - Reads go top down and stop at the first copy: a tombstone or an entry past its
 *   expiry on the host clock ends the read as "not found", whatever the backend did. */
#include "ggl-build.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "access.h"
#include "compress.h"
#include "hostapi.h"
#include "log.h"
#include "memory.h"
#include "memory_impl.h"
#include "metrics.h"
#include "swap.h"

#define MAX_VALUE_BYTES (512u << 20) /* a decompressed value larger than this is refused */

struct memory_state mm;

/* The entry to hand tier t: *e itself, or a compressed copy in *tmp (whose buffer,
 * *zbuf, the caller frees) when t compresses and it pays. */
const struct ggl_entry *mem_for_tier(int t, const struct ggl_entry *e, struct ggl_entry *tmp,
                                     void **zbuf)
{
    *zbuf = NULL;
    if (!(mm.compress_mask & (1u << t)))
        return e;
    *tmp = *e;
    if (!compress_entry(tmp, (size_t)mm.conf.compress_min_bytes, (int)mm.conf.compress_level, zbuf))
        return e;
    metrics_add(mm.zin, (double)e->value_len);
    metrics_add(mm.zout, (double)tmp->value_len);
    return tmp;
}

/* One call on a binding (compressing a put's value where tier t compresses).  Inline:
 * every write-through and retire makes several. */
static inline __attribute__((always_inline)) enum ggl_status
call_binding(struct binding *b, int t, enum op op, const void *key, size_t len,
             const struct ggl_entry *in, struct ggl_entry *out, uint64_t expect)
{
    struct ggl_entry tmp;
    void *zbuf = NULL;
    enum ggl_status st = GGL_ERROR;
    switch (op) {
    case OP_GET: st = b->vt->get(b->self, key, len, out); break;
    case OP_PUT:
        st = b->vt->put(b->self, mm.compress_mask & (1u << t) ? mem_for_tier(t, in, &tmp, &zbuf) : in,
                        expect);
        break;
    case OP_DEL: st = b->vt->del(b->self, key, len, expect); break;
    }
    if (zbuf)
        free(zbuf);
    return st;
}

/* A swap back to an instance that kept entries from before (PLUGIN.SWAP a MIGRATE, then
 * b MIGRATE) finds older copies there until the copy overwrites them: during a
 * migration a read takes whichever of the two bindings holds the newer version. */
static void newer_of_previous(struct binding *p, int t, const void *key, size_t len,
                              struct ggl_entry *out)
{
    struct ggl_entry old = {.size = sizeof old};
    if (call_binding(p, t, OP_GET, key, len, NULL, &old, 0) != GGL_OK)
        return;
    if (old.version > out->version) {
        free(out->value);
        *out = old;
    } else {
        free(old.value);
    }
}

/* During a migration the old binding still answers what was not copied yet, and every
 * write reaches it too, so an abandoned migration loses nothing.  p is the previous
 * binding taken *before* the call on the current one (NULL: none; released here): had
 * it been looked up after, a migration ending in between could hide a key the current
 * one did not have yet. */
enum ggl_status mem_with_previous(struct binding *p, int t, enum op op, enum ggl_status st,
                                  const void *key, size_t len, const struct ggl_entry *in,
                                  struct ggl_entry *out, uint64_t expect)
{
    if (!p)
        return st;
    if (op == OP_GET && st == GGL_NOTFOUND)
        st = call_binding(p, t, OP_GET, key, len, NULL, out, 0);
    else if (op == OP_GET && st == GGL_OK) /* the new one may hold a stale copy of its own */
        newer_of_previous(p, t, key, len, out);
    else if (op != OP_GET)
        call_binding(p, t, op, key, len, in, NULL, expect);
    return st;
}

struct binding *mem_previous_of(struct slot *s)
{
    /* A migration is rare: a relaxed look first keeps the hot path to one plain load. */
    return atomic_load_explicit(&s->previous, memory_order_relaxed) ? slot_get_previous(s) : NULL;
}

/* One tier call through its slot: acquire, call, release with the plugin's reason.
 * Values are compressed on the way in and out where the tier is configured so. */
enum ggl_status mem_tier_call(int t, enum op op, const void *key, size_t len,
                              const struct ggl_entry *in, struct ggl_entry *out,
                              uint64_t expect)
{
    struct binding *b;
    struct slot *s = &mm.slots[t];
    enum slot_dir dir = op == OP_GET ? SLOT_READS : SLOT_WRITES;
    enum ggl_status st = slot_acquire_fast(s, dir, &b);
    if (st != GGL_OK)
        return st == GGL_NOTFOUND ? GGL_UNAVAILABLE : st;
    hostapi_clear_reason();
    struct binding *p = mem_previous_of(s);
    st = call_binding(b, t, op, key, len, in, out, expect);
    int failed = st == GGL_RETRY || st == GGL_ERROR || st == GGL_NOMEM;
    slot_release_fast(s, dir, b, st, failed ? hostapi_peek_reason() : NULL);
    if (p) {
        st = mem_with_previous(p, t, op, st, key, len, in, out, expect);
        binding_put(p);
    }
    if (st == GGL_CONFLICT)
        metrics_add(mm.conflicts, 1);
    if (st == GGL_OK && op == OP_GET && (out->flags & GGL_ENTRY_COMPRESSED) &&
        (st = decompress_entry(out, MAX_VALUE_BYTES)) != GGL_OK) {
        free(out->value);
        out->value = NULL;
    }
    return st;
}

/* The top-most copy of key: *tier gets where, or -1.  `failed` counts tiers that
 * could not be asked.  The caller frees e->value. */
enum ggl_status mem_find_top(const void *key, size_t len, struct ggl_entry *e, int *tier,
                             int *failed)
{
    *tier = -1;
    *failed = 0;
    for (int t = 0; t < SLOT_COUNT; t++) {
        if (!mem_bound(t))
            continue;
        mem_blank(e);
        enum ggl_status st = mem_tier_call(t, OP_GET, key, len, NULL, e, 0);
        if (st == GGL_OK) {
            *tier = t;
            return GGL_OK;
        }
        if (st != GGL_NOTFOUND)
            (*failed)++;
    }
    return GGL_NOTFOUND;
}

/* retire_older's second half, given what the get of tier t's copy returned (st, e). */
int mem_retire_found(int t, const void *key, size_t len, enum ggl_status st,
                     struct ggl_entry e, uint64_t version, uint64_t now)
{
    if (st == GGL_NOTFOUND)
        return 0;
    if (st != GGL_OK) {
        metrics_add(mm.unretired, 1); /* may reappear: counted in INFO memory */
        return 0;
    }
    int live = !mem_dead(&e, now);
    free(e.value);
    if (e.version < version) {
        st = mem_tier_call(t, OP_DEL, key, len, NULL, NULL, e.version);
        if (st != GGL_OK && st != GGL_CONFLICT && st != GGL_NOTFOUND)
            metrics_add(mm.unretired, 1);
    }
    return live;
}

/* Remove tier t's copy of key if it is older than `version`.  Returns 1 if a live
 * copy was there. */
int mem_retire_older(int t, const void *key, size_t len, uint64_t version, uint64_t now)
{
    struct ggl_entry e;
    mem_blank(&e);
    enum ggl_status st = mem_tier_call(t, OP_GET, key, len, NULL, &e, 0);
    return mem_retire_found(t, key, len, st, e, version, now);
}

/* What a read found — e from tier t, or nothing (t < 0) with `failed` tiers unasked —
 * made into the answer: expiry and tombstones checked, counted, promoted into the cache
 * when found below it (insert-if-newer: a newer write in between wins). */
static enum ggl_status finish_read(const void *key, size_t len, int t, struct ggl_entry *e,
                                   int failed, uint64_t now, uint64_t below,
                                   struct memory_value *out)
{
    if (t < 0) {
        metrics_add(mm.misses, 1);
        if (failed) {
            hostapi_set_reason("%d tier(s) unreachable; the key may be there", failed);
            return GGL_RETRY;
        }
        return GGL_NOTFOUND;
    }
    if (mem_dead(e, now)) {
        free(e->value);
        metrics_add(mm.misses, 1);
        return GGL_NOTFOUND;
    }
    metrics_add(mm.hits[t], 1);
    access_record(key, len, now);
    if (t != SLOT_CACHE && mem_bound(SLOT_CACHE) && below != UINT64_MAX) {
        if (mm.hook)
            mm.hook(HOOK_BEFORE_PROMOTE, key, len);
        struct ggl_entry copy = *e;
        copy.key = key;
        copy.key_len = len;
        copy.flags &= ~GGL_ENTRY_PENDING;
        if (mem_tier_call(SLOT_CACHE, OP_PUT, key, len, &copy, NULL, GGL_VERSION_OLDER) == GGL_OK) {
            if (mem_below_quiet(key, len, below)) /* else a write below may have emptied the
                                                     * cache just before: take ours back */
                metrics_add(mm.promotions, 1);
            else
                mem_tier_call(SLOT_CACHE, OP_DEL, key, len, NULL, NULL, copy.version);
        }
    }
    out->data = e->value;
    out->len = e->value_len;
    out->tier = t;
    if (e != &out->meta)
        out->meta = *e;
    out->meta.key = NULL;
    out->meta.value = NULL;
    return GGL_OK;
}

enum ggl_status memory_get(const void *key, size_t len, struct memory_value *out)
{
    int t, failed; /* the entry is read straight into out->meta: no copy on a hit */
    uint64_t below = mem_below_token(key, len);
    mem_find_top(key, len, &out->meta, &t, &failed);
    return finish_read(key, len, t, &out->meta, failed, clock_now_ms(), below, out);
}

/* n reads from tier t in one backend call (get_batch, else a loop), values decompressed. */
void mem_tier_get_batch(int t, const void *const *keys, const size_t *lens, size_t n,
                        struct ggl_entry *out, enum ggl_status *status)
{
    struct binding *b;
    struct slot *s = &mm.slots[t];
    enum ggl_status st = slot_acquire(s, SLOT_READS, &b), health = GGL_OK;
    for (size_t i = 0; i < n; i++)
        out[i] = (struct ggl_entry){.size = sizeof out[i]}, status[i] = st;
    if (st != GGL_OK)
        return;
    hostapi_clear_reason();
    struct binding *p = mem_previous_of(s);
    if (GGL_HAS_SLOT(b->vt, struct ggl_tier, get_batch)) {
        if ((st = b->vt->get_batch(b->self, keys, lens, n, out, status)) != GGL_OK)
            for (size_t i = 0; i < n; i++)
                status[i] = st;
    } else {
        for (size_t i = 0; i < n; i++)
            status[i] = b->vt->get(b->self, keys[i], lens[i], &out[i]);
    }
    for (size_t i = 0; i < n; i++)
        if (status[i] == GGL_RETRY || status[i] == GGL_ERROR || status[i] == GGL_NOMEM)
            health = status[i];
    slot_release(s, SLOT_READS, b, health, health == GGL_OK ? NULL : hostapi_peek_reason());
    for (size_t i = 0; i < n; i++)
        if (p && (status[i] == GGL_NOTFOUND || status[i] == GGL_OK))
            status[i] = mem_with_previous(p, t, OP_GET, status[i], keys[i], lens[i], NULL,
                                          &out[i], 0);
    if (p)
        binding_put(p);
    for (size_t i = 0; i < n; i++)
        if (status[i] == GGL_OK && (status[i] = decompress_entry(&out[i], MAX_VALUE_BYTES)) != GGL_OK) {
            free(out[i].value);
            out[i].value = NULL;
        }
}

enum ggl_status memory_get_batch(const void *const *keys, const size_t *lens, size_t n,
                                 struct memory_value *out, enum ggl_status *status)
{
    int *tier = malloc(n * sizeof *tier), *failed = calloc(n, sizeof *failed);
    size_t *idx = malloc(n * sizeof *idx), *sub_lens = malloc(n * sizeof *sub_lens);
    const void **sub_keys = malloc(n * sizeof *sub_keys);
    struct ggl_entry *es = malloc(n * sizeof *es), *found = malloc(n * sizeof *found);
    enum ggl_status *st = malloc(n * sizeof *st), rc = GGL_OK;
    uint64_t *below = malloc(n * sizeof *below);
    if (!tier || !failed || !idx || !sub_lens || !sub_keys || !es || !found || !st || !below) {
        rc = GGL_NOMEM;
        goto out;
    }
    for (size_t i = 0; i < n; i++)
        tier[i] = -1, below[i] = mem_below_token(keys[i], lens[i]);
    for (int t = 0; t < SLOT_COUNT; t++) {
        size_t m = 0;
        for (size_t i = 0; i < n; i++)
            if (tier[i] < 0)
                idx[m] = i, sub_keys[m] = keys[i], sub_lens[m++] = lens[i];
        if (!m)
            break;
        if (!mem_bound(t))
            continue;
        mem_tier_get_batch(t, sub_keys, sub_lens, m, found, st);
        for (size_t j = 0; j < m; j++) {
            if (st[j] == GGL_OK)
                es[idx[j]] = found[j], tier[idx[j]] = t;
            else if (st[j] != GGL_NOTFOUND)
                failed[idx[j]]++;
        }
    }
    uint64_t now = clock_now_ms();
    for (size_t i = 0; i < n; i++)
        status[i] = finish_read(keys[i], lens[i], tier[i], &es[i], failed[i], now, below[i], &out[i]);
out:
    free(tier), free(failed), free(idx), free(sub_lens), free(sub_keys), free(es), free(found), free(st);
    free(below);
    return rc;
}

enum ggl_status memory_get_cached(const void *key, size_t len, struct memory_value *out)
{
    struct binding *b = mm.ready ? atomic_load(&mm.slots[SLOT_CACHE].current) : NULL;
    if (!b || !b->nonblocking)
        return GGL_RETRY;
    struct ggl_entry e = {.size = sizeof e};
    if (mem_tier_call(SLOT_CACHE, OP_GET, key, len, NULL, &e, 0) != GGL_OK)
        return GGL_RETRY;
    if (e.flags & GGL_ENTRY_TOMBSTONE) {
        free(e.value);
        metrics_add(mm.misses, 1);
        return GGL_NOTFOUND;
    }
    if (mem_dead(&e, clock_now_ms())) {
        free(e.value);
        return GGL_RETRY;
    }
    metrics_add(mm.hits[SLOT_CACHE], 1);
    access_record(key, len, clock_now_ms());
    out->data = e.value;
    out->len = e.value_len;
    out->tier = SLOT_CACHE;
    out->meta = e;
    out->meta.key = NULL;
    out->meta.value = NULL;
    return GGL_OK;
}

size_t memory_info(char *buf, size_t len)
{
    size_t n = 0;
#define OUT(...) (n += (size_t)snprintf(buf + n, n < len ? len - n : 0, __VA_ARGS__))
    OUT("memory_ready:%d\r\n", mm.ready);
    for (int t = 0; mm.ready && t < SLOT_COUNT; t++) {
        struct slot *s = &mm.slots[t];
        struct binding *b = atomic_load(&s->current);
        char reason[sizeof s->br[0].reason];
        slot_last_error(s, reason, sizeof reason);
        OUT("slot_%s:backend=%s,breaker=%s,in_flight=%ld,refused_busy=%llu,refused_open=%llu,"
            "errors=%llu,compress=%d,breaker_reads=%s,breaker_writes=%s,last_error=%s\r\n",
            s->name, b ? b->label : "(unbound)", breaker_state_name(slot_breaker_state(s)),
            (long)atomic_load(&s->in_flight), (unsigned long long)atomic_load(&s->refused_busy),
            (unsigned long long)atomic_load(&s->refused_open),
            (unsigned long long)atomic_load(&s->errors), !!(mm.compress_mask & (1u << t)),
            breaker_state_name(atomic_load(&s->br[SLOT_READS].state)),
            breaker_state_name(atomic_load(&s->br[SLOT_WRITES].state)), reason[0] ? reason : "-");
        struct ggl_tier_stats st = {.size = sizeof st};
        /* Counts only where they are cheap: a nonblocking (in-process) backend. */
        if (b && b->nonblocking && GGL_HAS_SLOT(b->vt, struct ggl_tier, stats) &&
            b->vt->stats(b->self, &st) == GGL_OK)
            OUT("slot_%s_counts:entries=%llu,bytes=%llu,evictions=%llu,expirations=%llu\r\n",
                s->name, (unsigned long long)st.entries, (unsigned long long)st.bytes,
                (unsigned long long)st.evictions, (unsigned long long)st.expirations);
    }
    if (mm.ready)
        n += swap_info(buf + n, n < len ? len - n : 0);
#undef OUT
    return n < len ? n : (len ? len - 1 : 0);
}

struct slot *memory_slot(int tier) { return &mm.slots[tier]; }
const struct instance *memory_instances(size_t *n) { return *n = mm.ninst, mm.inst; }
int memory_entry_live(const struct ggl_entry *e, uint64_t now) { return !mem_dead(e, now); }
int memory_tier_bound(int tier) { return mem_bound(tier); }

int memory_writes_nonblocking(void)
{
    for (int t = 0; t < SLOT_COUNT; t++) {
        struct binding *b = atomic_load(&mm.slots[t].current);
        if ((b && !b->nonblocking) || atomic_load(&mm.slots[t].previous))
            return 0;
    }
    return mm.ready && !mm.compress_mask;
}

int memory_where(const void *key, size_t len, int *live)
{
    int n = 0, failed = 0;
    uint64_t now = clock_now_ms();
    for (int t = 0; t < SLOT_COUNT; t++) {
        struct ggl_entry e = {.size = sizeof e};
        enum ggl_status st =
            mem_bound(t) ? mem_tier_call(t, OP_GET, key, len, NULL, &e, 0) : GGL_NOTFOUND;
        live[t] = st == GGL_OK && !(e.flags & GGL_ENTRY_TOMBSTONE) && !mem_dead(&e, now);
        n += live[t];
        failed |= st != GGL_OK && st != GGL_NOTFOUND;
        if (st == GGL_OK)
            free(e.value);
    }
    return failed ? -1 : n;
}
const struct memory_conf *memory_conf(void) { return &mm.conf; }
const struct memory_async_conf *memory_async_settings(void) { return &mm.conf.async; }

enum ggl_status memory_scan(int tier, uint64_t *cursor, size_t count, ggl_scan_fn fn, void *arg)
{
    struct binding *b;
    struct slot *s = &mm.slots[tier];
    enum ggl_status st = slot_acquire(s, SLOT_READS, &b);
    if (st != GGL_OK)
        return st;
    if (!GGL_HAS_SLOT(b->vt, struct ggl_tier, scan)) {
        slot_release(s, SLOT_READS, b, GGL_OK, NULL);
        hostapi_set_reason("%s has no scan slot", b->label);
        return GGL_UNAVAILABLE;
    }
    hostapi_clear_reason();
    st = b->vt->scan(b->self, cursor, count, fn, arg);
    slot_release(s, SLOT_READS, b, st, st == GGL_OK ? NULL : hostapi_peek_reason());
    return st;
}

void memory_touch(void *arg, const void *key, size_t len, uint64_t count, uint64_t last_ms)
{
    (void)arg;
    for (int t = SLOT_STM; t < SLOT_COUNT; t++) {
        if (!mem_bound(t))
            continue;
        struct ggl_entry e = {.size = sizeof e};
        enum ggl_status st = mem_tier_call(t, OP_GET, key, len, NULL, &e, 0);
        if (st == GGL_NOTFOUND)
            continue;
        if (st == GGL_OK && !(e.flags & GGL_ENTRY_TOMBSTONE)) {
            e.key = key;
            e.key_len = len;
            e.access_count += count;
            if (last_ms > e.last_access_ms)
                e.last_access_ms = last_ms;
            /* Same version, new counters: a newer write meanwhile wins (CONFLICT). */
            mem_tier_call(t, OP_PUT, key, len, &e, NULL, e.version);
        }
        free(e.value);
        return;
    }
}

enum ggl_status memory_purge_tombstone(const void *key, size_t len, int tier, uint64_t version)
{
    struct ggl_entry e;
    for (int t = tier + 1; t < SLOT_COUNT; t++) {
        if (!mem_bound(t))
            continue;
        e = (struct ggl_entry){.size = sizeof e};
        enum ggl_status st = mem_tier_call(t, OP_GET, key, len, NULL, &e, 0);
        if (st == GGL_OK)
            free(e.value);
        if (st != GGL_NOTFOUND)
            return GGL_CONFLICT; /* a lower copy (or an unreachable tier): keep shadowing */
    }
    enum ggl_status st = mem_tier_call(tier, OP_DEL, key, len, NULL, NULL, version);
    if (mem_bound(SLOT_CACHE) && tier != SLOT_CACHE)
        mem_tier_call(SLOT_CACHE, OP_DEL, key, len, NULL, NULL, version);
    return st;
}
void memory_set_hook(memory_hook_fn fn) { mm.hook = fn; }
int memory_ready(void) { return mm.ready; }

static void register_metrics(void)
{
    static const char *const hit_names[SLOT_COUNT] = {
        "memory_hits_cache_total", "memory_hits_stm_total", "memory_hits_im_total",
        "memory_hits_ltm_total"};
    for (int t = 0; t < SLOT_COUNT; t++)
        mm.hits[t] = metrics_register(GGL_METRIC_COUNTER, hit_names[t], "reads answered by this tier", NULL);
    mm.misses = metrics_register(GGL_METRIC_COUNTER, "memory_misses_total", "reads that found nothing", NULL);
    mm.writes = metrics_register(GGL_METRIC_COUNTER, "memory_writes_total", "acknowledged writes", NULL);
    mm.deletes = metrics_register(GGL_METRIC_COUNTER, "memory_deletes_total", "acknowledged deletes", NULL);
    mm.promotions = metrics_register(GGL_METRIC_COUNTER, "memory_promotions_total", "copies promoted into the cache", NULL);
    mm.conflicts = metrics_register(GGL_METRIC_COUNTER, "memory_conflicts_total", "conditional tier writes that lost to a newer version", NULL);
    mm.zin = metrics_register(GGL_METRIC_COUNTER, "memory_compress_in_bytes_total", "value bytes before compression", NULL);
    mm.zout = metrics_register(GGL_METRIC_COUNTER, "memory_compress_out_bytes_total", "value bytes after compression", NULL);
    mm.unretired = metrics_register(GGL_METRIC_COUNTER, "memory_unretired_total", "older copies a write could not remove (tier unreachable)", NULL);
}

int memory_check_config(const struct config *c, struct conf_error *err)
{
    return memory_read_config(c, &mm.conf, &mm.compress_mask, err);
}

void memory_versions_above(const struct ggl_tier *vt, void *self, const char *label)
{
    uint64_t top = 0;
    if (!GGL_HAS_SLOT(vt, struct ggl_tier, max_version))
        return;
    hostapi_clear_reason();
    if (vt->max_version(self, &top) != GGL_OK) {
        log_warn("memory: %s could not tell the highest version it stores (%s): if the wall "
                 "clock is behind it, fresh writes there may lose to its copies", label,
                 hostapi_take_reason());
        return;
    }
    uint64_t was = atomic_load(&mm.version), cur = was;
    while (cur < top && !atomic_compare_exchange_weak(&mm.version, &cur, top))
        ;
    if (was < top)
        log_warn("memory: %s holds versions up to %llu, above the clock-seeded %llu (the wall "
                 "clock is behind): versions continue above them", label,
                 (unsigned long long)top, (unsigned long long)was);
}

int memory_init(const struct config *c, struct instance *v, size_t n, struct conf_error *err)
{
    if (memory_check_config(c, err) < 0)
        return -1;
    for (int t = 0; t < SLOT_COUNT; t++)
        slot_init(&mm.slots[t], tier_slot_names[t], (long)mm.conf.max_in_flight,
                  (long)mm.conf.breaker_threshold, (uint64_t)mm.conf.breaker_cooldown_ms);
    atomic_store(&mm.version, clock_now_ms() * 1000u);
    if (access_init((size_t)mm.conf.access_table_size) < 0)
        return snprintf(err->msg, sizeof err->msg, "out of memory"), -1;
    register_metrics();
    memory_read_init(mm.hits[SLOT_CACHE], mm.misses, (mm.compress_mask & (1u << SLOT_CACHE)) != 0);
    for (int t = 0; t < SLOT_COUNT; t++) {
        if (!c->slots[t])
            continue;
        for (size_t i = 0; i < n; i++) {
            struct instance *inst = &v[i];
            if (inst->conf->kind != GGL_KIND_TIER || strcmp(inst->conf->name, c->slots[t]) != 0)
                continue;
            if (inst->state != INSTANCE_OPEN)
                log_warn("memory: slot %s stays unbound: %s: %s", tier_slot_names[t], inst->label,
                         inst->reason);
            else if (slot_bind(&mm.slots[t], inst->mod->desc->vtable, inst->self, inst->label) < 0)
                return snprintf(err->msg, sizeof err->msg, "out of memory"), -1;
            else
                log_info("memory: slot %s bound to %s", tier_slot_names[t], inst->label);
            if (inst->state == INSTANCE_OPEN)
                memory_versions_above(inst->mod->desc->vtable, inst->self, inst->label);
        }
    }
    mm.inst = v;
    mm.ninst = n;
    mm.ready = 1;
    return 0;
}

void memory_fini(void)
{
    if (!mm.ready)
        return;
    swap_fini();
    mm.ready = 0;
    access_fini();
    for (int t = 0; t < SLOT_COUNT; t++)
        slot_fini(&mm.slots[t]);
}
