/* Hot-swap of tier slots (PLUGIN.SWAP): rebinding a slot to another declared backend
 * instance, and the migration that copies the old backend's live entries into the new
 * one insert-if-newer while reads fall back to the old one and writes reach both. */
#include "ggl-build.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hostapi.h"
#include "log.h"
#include "memory.h"
#include "registry.h"
#include "swap.h"

#define PAUSE_SAMPLES 256 /* recent rebinds behind the pause p50/max */

/* A migration: entries of the old binding copied into the new one, insert-if-newer. */
struct migration {
    pthread_t thread;
    int running, joined;
    int tier;
    struct binding *from, *to;
    _Atomic uint64_t copied, scanned, skipped, failed;
    uint64_t total;               /* entries the old backend held at the start, 0: unknown */
    uint64_t started_ms, started_us;
    _Atomic uint64_t finished_ms, took_us; /* took_us: monotonic, for the rate */ /* set last, after outcome: the copy is over */
    char from_label[160], to_label[160], outcome[160];
};

static struct migration M;
static pthread_mutex_t swap_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t swap_done = PTHREAD_COND_INITIALIZER;
/* How long each rebind held the slot (the only moment callers are switched): the pause. */
static struct {
    uint32_t us[PAUSE_SAMPLES];
    size_t n, next;
    uint64_t swaps;
} P;

static uint64_t mono_us(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000u + (uint64_t)t.tv_nsec / 1000u;
}

static void migration_join(void)
{
    if (M.running && !M.joined) {
        pthread_join(M.thread, NULL);
        M.joined = 1;
    }
}

/* One scan call's live entries, copied: they are put into the new binding after the
 * scan returns, since a backend may hold its lock around the visitor (tier/mem does), and
 * a put there, a round trip to Redis say, would stall every call on the old one. */
struct chunk {
    struct migration *m;
    struct ggl_entry *e;
    size_t n, cap;
};

static int collect_one(void *arg, const struct ggl_entry *e)
{
    struct chunk *c = arg;
    atomic_fetch_add(&c->m->scanned, 1);
    if ((e->flags & GGL_ENTRY_TOMBSTONE) || !memory_entry_live(e, clock_now_ms())) {
        atomic_fetch_add(&c->m->skipped, 1);
        return 0;
    }
    if (c->n == c->cap) {
        size_t cap = c->cap ? 2 * c->cap : 512;
        struct ggl_entry *grown = realloc(c->e, cap * sizeof *grown);
        if (!grown) {
            atomic_fetch_add(&c->m->failed, 1); /* not copied: counted in swap_failed */
            return 0;
        }
        c->e = grown, c->cap = cap;
    }
    char *buf = malloc(e->key_len + e->value_len + 1);
    if (!buf) {
        atomic_fetch_add(&c->m->failed, 1);
        return 0;
    }
    memcpy(buf, e->key, e->key_len);
    if (e->value_len)
        memcpy(buf + e->key_len, e->value, e->value_len);
    c->e[c->n] = *e;
    c->e[c->n].key = buf;
    c->e[c->n].value = buf + e->key_len;
    c->n++;
    return 0;
}

/* Copy the chunk into the new binding unless a newer copy is there, in one put_batch
 * where the backend has it (one transaction, one pipeline); values stay as the old tier
 * stored them (compressed or not: same tier, same rule). */
static void put_chunk(struct chunk *c)
{
    struct migration *m = c->m;
    const struct ggl_tier *vt = m->to->vt;
    enum ggl_status st[512];
    for (size_t i = 0; i < c->n; i += 512) {
        size_t k = c->n - i < 512 ? c->n - i : 512;
        if (!GGL_HAS_SLOT(vt, struct ggl_tier, put_batch) ||
            vt->put_batch(m->to->self, &c->e[i], k, GGL_VERSION_OLDER, st) != GGL_OK)
            for (size_t j = 0; j < k; j++) /* one by one: what the batch could not say */
                st[j] = vt->put(m->to->self, &c->e[i + j], GGL_VERSION_OLDER);
        for (size_t j = 0; j < k; j++) {
            /* a busy backend (SQLite's write lock taken by the writes reaching both
             * bindings) is asked again: once the old binding is forgotten, an entry
             * not copied is lost */
            for (int tries = 0; (st[j] == GGL_RETRY || st[j] == GGL_UNAVAILABLE) && tries < 10; tries++)
                st[j] = vt->put(m->to->self, &c->e[i + j], GGL_VERSION_OLDER);
            if (st[j] == GGL_OK)
                atomic_fetch_add(&m->copied, 1);
            else if (st[j] != GGL_CONFLICT) /* newer there: nothing to copy */
                atomic_fetch_add(&m->failed, 1);
        }
    }
    for (size_t i = 0; i < c->n; i++)
        free((void *)c->e[i].key);
    c->n = 0;
}

static void *migrate(void *arg)
{
    struct migration *m = arg;
    uint64_t cursor = 0;
    enum ggl_status st;
    /* Calls that took the old binding before the switch finish first: a write among them
     * could otherwise land behind the scan's cursor and be lost to the new backend. */
    binding_drain(m->from, 5000);
    struct chunk c = {.m = m};
    do {
        st = m->from->vt->scan(m->from->self, &cursor, 512, collect_one, &c);
        put_chunk(&c);
    } while (st == GGL_OK && cursor != 0);
    free(c.e);
    struct binding *prev = atomic_load(&memory_slot(m->tier)->previous);
    slot_forget_previous(memory_slot(m->tier)); /* reads and writes now reach only the new one */
    int drained = binding_drain(m->from, 5000) | (prev ? binding_drain(prev, 5000) : 0);
    snprintf(m->outcome, sizeof m->outcome, "%s%s", st == GGL_OK ? "done" : "scan failed",
             drained == 0 ? "" : ", old binding still in use after 5 s");
    pthread_mutex_lock(&swap_lock);
    m->took_us = mono_us() - m->started_us;
    m->finished_ms = clock_now_ms();
    pthread_cond_broadcast(&swap_done);
    pthread_mutex_unlock(&swap_lock);
    registry_reap(); /* a retired instance may be unused now */
    log_msg(m->failed ? GGL_LOG_WARN : GGL_LOG_INFO,
            "memory: migration of %s from %s to %s %s: %llu copied, %llu scanned, %llu failed",
            tier_slot_names[m->tier], m->from_label, m->to_label, m->outcome,
            (unsigned long long)m->copied, (unsigned long long)m->scanned,
            (unsigned long long)m->failed);
    return NULL;
}

/* The instance named name: the registry's live one, or (unit tests, no registry) one of
 * those memory_init was given. */
static const struct instance *tier_named(const char *name)
{
    if (registry_active())
        return registry_find(GGL_KIND_TIER, name);
    size_t ninst;
    const struct instance *all = memory_instances(&ninst);
    for (size_t i = 0; i < ninst; i++)
        if (all[i].conf->kind == GGL_KIND_TIER && strcmp(all[i].conf->name, name) == 0)
            return &all[i];
    return NULL;
}

enum ggl_status memory_swap(int tier, const char *name, int migrate_entries)
{
    const struct instance *inst = tier_named(name);
    if (!inst || inst->state != INSTANCE_OPEN) {
        hostapi_set_reason("'%s' is not an open backend instance%s", name,
                           inst ? " (it failed to open)" : "");
        return GGL_INVALID;
    }
    enum ggl_status st = swap_to_instance(tier, inst, migrate_entries, 0);
    if (st == GGL_OK && registry_active() &&
        swap_state_record(tier, registry_config()->slots[tier], name) < 0)
        log_warn("memory: slot %s swap not recorded in %s: a restart binds the config's choice",
                 tier_slot_names[tier], swap_state_path());
    return st;
}

/* Wait for the running migration (swap_lock held); 0, or -1 after wait_ms. */
static int wait_locked(int wait_ms)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += wait_ms / 1000;
    until.tv_nsec += (long)(wait_ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L)
        until.tv_sec++, until.tv_nsec -= 1000000000L;
    while (M.running && !M.finished_ms)
        if (pthread_cond_timedwait(&swap_done, &swap_lock, &until) != 0)
            return M.running && !M.finished_ms ? -1 : 0;
    return 0;
}

int swap_wait(int timeout_ms)
{
    pthread_mutex_lock(&swap_lock);
    int rc = wait_locked(timeout_ms);
    pthread_mutex_unlock(&swap_lock);
    return rc;
}

static void pause_add(uint64_t us)
{
    P.us[P.next] = us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
    P.next = (P.next + 1) % PAUSE_SAMPLES;
    if (P.n < PAUSE_SAMPLES)
        P.n++;
    P.swaps++;
}

/* Entries the backend holds, when it can say (0: unknown). */
static uint64_t entries_of(const struct binding *b)
{
    struct ggl_tier_stats st = {.size = sizeof st};
    if (b && GGL_HAS_SLOT(b->vt, struct ggl_tier, stats) && b->vt->stats(b->self, &st) == GGL_OK)
        return st.entries;
    return 0;
}

/* Start copying `old` into the slot's new binding on a thread (swap_lock held). */
static void migration_start(int tier, struct binding *old, const struct instance *inst)
{
    struct migration *m = &M;
    memset(m, 0, sizeof *m);
    m->tier = tier;
    m->from = old;
    m->to = atomic_load(&memory_slot(tier)->current);
    m->total = entries_of(old);
    m->started_ms = clock_now_ms();
    m->started_us = mono_us();
    snprintf(m->from_label, sizeof m->from_label, "%s", old->label);
    snprintf(m->to_label, sizeof m->to_label, "%s", inst->label);
    if (pthread_create(&m->thread, NULL, migrate, m) == 0) {
        m->running = 1;
    } else {
        slot_forget_previous(memory_slot(tier));
        snprintf(m->outcome, sizeof m->outcome, "could not start");
    }
}

enum ggl_status swap_to_instance(int tier, const struct instance *inst, int migrate_entries,
                                 int wait_ms)
{
    const struct ggl_tier *vt = inst->mod->desc->vtable;
    struct binding *cur = atomic_load(&memory_slot(tier)->current);
    if (cur && cur->self == inst->self) {
        hostapi_set_reason("slot %s is already bound to %s", tier_slot_names[tier], inst->label);
        return GGL_INVALID;
    }
    if (migrate_entries && (!cur || !GGL_HAS_SLOT(cur->vt, struct ggl_tier, scan))) {
        hostapi_set_reason("MIGRATE needs a current backend that can scan");
        return GGL_INVALID;
    }
    pthread_mutex_lock(&swap_lock);
    if (wait_locked(wait_ms) < 0) {
        pthread_mutex_unlock(&swap_lock);
        hostapi_set_reason("a migration of slot %s is still running", tier_slot_names[M.tier]);
        return GGL_RETRY;
    }
    migration_join();
    int err;
    memory_versions_above(vt, inst->self, inst->label); /* before writes can reach it */
    uint64_t t0 = mono_us();
    struct binding *old =
        slot_rebind(memory_slot(tier), vt, inst->self, inst->label, migrate_entries, &err);
    pause_add(mono_us() - t0);
    enum ggl_status st = err ? GGL_NOMEM : GGL_OK;
    if (st == GGL_OK && migrate_entries)
        migration_start(tier, old, inst);
    pthread_mutex_unlock(&swap_lock);
    if (st == GGL_OK && old && !migrate_entries) /* outside the lock: INFO takes it */
        binding_drain(old, 5000);
    log_info("memory: slot %s now bound to %s%s", tier_slot_names[tier], inst->label,
             migrate_entries ? " (migrating)" : "");
    return st;
}

static size_t swap_info_locked(char *buf, size_t len);

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

/* "swap_pause_p50_us:..", max and count over the recent rebinds. */
static int pause_info(char *buf, size_t len)
{
    uint32_t v[PAUSE_SAMPLES];
    size_t n = P.n; /* swap_lock held */
    uint64_t swaps = P.swaps;
    memcpy(v, P.us, n * sizeof v[0]);
    qsort(v, n, sizeof v[0], cmp_u32);
    return snprintf(buf, len, "swap_rebinds:%llu\r\nswap_pause_p50_us:%u\r\nswap_pause_max_us:%u\r\n"
                    "swap_zombies:%llu\r\nswap_reloads:%zu\r\n", (unsigned long long)swaps,
                    n ? v[(n - 1) / 2] : 0, n ? v[n - 1] : 0,
                    (unsigned long long)registry_zombies(), registry_reloads());
}

size_t swap_info(char *buf, size_t len)
{
    pthread_mutex_lock(&swap_lock); /* a new migration rewrites M under it */
    size_t n = swap_info_locked(buf, len);
    pthread_mutex_unlock(&swap_lock);
    return n;
}

static size_t swap_info_locked(char *buf, size_t len)
{
    const struct migration *m = &M;
    int p = pause_info(buf, len);
    size_t used = p < 0 ? 0 : (size_t)p < len ? (size_t)p : (len ? len - 1 : 0);
    if (!m->started_ms)
        return used;
    buf += used, len -= used;
    uint64_t done = atomic_load(&m->finished_ms); /* outcome is written before this */
    uint64_t us = done ? atomic_load(&m->took_us) : mono_us() - m->started_us;
    double secs = (double)us / 1e6;
    int n = snprintf(buf, len,
                     "swap_slot:%s\r\nswap_from:%s\r\nswap_to:%s\r\nswap_state:%s\r\n"
                     "swap_copied:%llu\r\nswap_total:%llu\r\nswap_scanned:%llu\r\n"
                     "swap_skipped:%llu\r\nswap_failed:%llu\r\nswap_seconds:%.3f\r\n"
                     "swap_rate_per_sec:%.0f\r\n",
                     tier_slot_names[m->tier], m->from_label, m->to_label,
                     done ? m->outcome : "copying", (unsigned long long)m->copied,
                     (unsigned long long)m->total,
                     (unsigned long long)m->scanned, (unsigned long long)m->skipped,
                     (unsigned long long)m->failed, secs,
                     secs > 0 ? (double)m->copied / secs : 0.0);
    return used + (n < 0 ? 0 : (size_t)n < len ? (size_t)n : (len ? len - 1 : 0));
}

void swap_fini(void)
{
    pthread_mutex_lock(&swap_lock);
    wait_locked(600000); /* the copy takes swap_lock to say it ended: wait, then join */
    migration_join();
    memset(&M, 0, sizeof M);
    pthread_mutex_unlock(&swap_lock);
}
