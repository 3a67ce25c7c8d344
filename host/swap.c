/* Hot-swap of tier slots (PLUGIN.SWAP): rebinding a slot to another declared backend
 * instance, and the migration that copies the old backend's live entries into the new
 * one insert-if-newer while reads fall back to the old one and writes reach both. */
#include "ggl-build.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "hostapi.h"
#include "log.h"
#include "memory.h"
#include "swap.h"

/* A migration: entries of the old binding copied into the new one, insert-if-newer. */
struct migration {
    pthread_t thread;
    int running, joined;
    int tier;
    struct binding *from, *to;
    _Atomic uint64_t copied, scanned, skipped;
    uint64_t started_ms;
    _Atomic uint64_t finished_ms; /* set last, after outcome: the copy is over */
    char from_label[160], to_label[160], outcome[160];
};

static struct migration M;
static pthread_mutex_t swap_lock = PTHREAD_MUTEX_INITIALIZER;

static void migration_join(void)
{
    if (M.running && !M.joined) {
        pthread_join(M.thread, NULL);
        M.joined = 1;
    }
}

/* Copy one scanned entry into the new binding unless a newer copy is there. */
static int migrate_one(void *arg, const struct ggl_entry *e)
{
    struct migration *m = arg;
    atomic_fetch_add(&m->scanned, 1);
    if ((e->flags & GGL_ENTRY_TOMBSTONE) || !memory_entry_live(e, clock_now_ms())) {
        atomic_fetch_add(&m->skipped, 1);
        return 0;
    }
    /* Values stay as the old tier stored them (compressed or not: same tier, same rule). */
    if (m->to->vt->put(m->to->self, e, GGL_VERSION_OLDER) == GGL_OK)
        atomic_fetch_add(&m->copied, 1);
    return 0;
}

static void *migrate(void *arg)
{
    struct migration *m = arg;
    uint64_t cursor = 0;
    enum ggl_status st;
    do
        st = m->from->vt->scan(m->from->self, &cursor, 512, migrate_one, m);
    while (st == GGL_OK && cursor != 0);
    slot_forget_previous(memory_slot(m->tier)); /* reads and writes now reach only the new one */
    int drained = binding_drain(m->from, 5000);
    snprintf(m->outcome, sizeof m->outcome, "%s%s", st == GGL_OK ? "done" : "scan failed",
             drained == 0 ? "" : ", old binding still in use after 5 s");
    m->finished_ms = clock_now_ms();
    log_info("memory: migration of %s from %s to %s %s: %llu copied, %llu scanned",
             tier_slot_names[m->tier], m->from_label, m->to_label, m->outcome,
             (unsigned long long)m->copied, (unsigned long long)m->scanned);
    return NULL;
}

enum ggl_status memory_swap(int tier, const char *name, int migrate_entries)
{
    size_t ninst;
    const struct instance *all = memory_instances(&ninst), *inst = NULL;
    for (size_t i = 0; i < ninst && !inst; i++)
        if (all[i].conf->kind == GGL_KIND_TIER && strcmp(all[i].conf->name, name) == 0)
            inst = &all[i];
    if (!inst || inst->state != INSTANCE_OPEN) {
        hostapi_set_reason("'%s' is not an open backend instance%s", name,
                           inst ? " (it failed to open)" : "");
        return GGL_INVALID;
    }
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
    if (M.running && !M.finished_ms) {
        pthread_mutex_unlock(&swap_lock);
        hostapi_set_reason("a migration of slot %s is still running", tier_slot_names[M.tier]);
        return GGL_RETRY;
    }
    migration_join();
    int err;
    struct binding *old =
        slot_rebind(memory_slot(tier), vt, inst->self, inst->label, migrate_entries, &err);
    enum ggl_status st = err ? GGL_NOMEM : GGL_OK;
    if (st == GGL_OK && migrate_entries) {
        struct migration *m = &M;
        memset(m, 0, sizeof *m);
        m->tier = tier;
        m->from = old;
        m->to = atomic_load(&memory_slot(tier)->current);
        m->started_ms = clock_now_ms();
        snprintf(m->from_label, sizeof m->from_label, "%s", old->label);
        snprintf(m->to_label, sizeof m->to_label, "%s", inst->label);
        if (pthread_create(&m->thread, NULL, migrate, m) == 0) {
            m->running = 1;
        } else {
            slot_forget_previous(memory_slot(tier));
            snprintf(m->outcome, sizeof m->outcome, "could not start");
        }
    } else if (st == GGL_OK && old) {
        binding_drain(old, 5000);
    }
    pthread_mutex_unlock(&swap_lock);
    log_info("memory: slot %s now bound to %s%s", tier_slot_names[tier], inst->label,
             migrate_entries ? " (migrating)" : "");
    return st;
}

size_t swap_info(char *buf, size_t len)
{
    const struct migration *m = &M;
    if (!m->started_ms) /* set before the copy starts; read-only after */
        return 0;
    uint64_t done = atomic_load(&m->finished_ms); /* outcome is written before this */
    uint64_t end = done ? done : clock_now_ms();
    double secs = end > m->started_ms ? (double)(end - m->started_ms) / 1000.0 : 0.0;
    int n = snprintf(buf, len,
                     "swap_slot:%s\r\nswap_from:%s\r\nswap_to:%s\r\nswap_state:%s\r\n"
                     "swap_copied:%llu\r\nswap_scanned:%llu\r\nswap_skipped:%llu\r\n"
                     "swap_seconds:%.3f\r\nswap_rate_per_sec:%.0f\r\n",
                     tier_slot_names[m->tier], m->from_label, m->to_label,
                     done ? m->outcome : "copying", (unsigned long long)m->copied,
                     (unsigned long long)m->scanned, (unsigned long long)m->skipped, secs,
                     secs > 0 ? (double)m->copied / secs : 0.0);
    return n < 0 ? 0 : (size_t)n < len ? (size_t)n : (len ? len - 1 : 0);
}

void swap_fini(void)
{
    pthread_mutex_lock(&swap_lock);
    migration_join();
    memset(&M, 0, sizeof M);
    pthread_mutex_unlock(&swap_lock);
}
