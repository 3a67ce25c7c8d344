/* Memory maintenance.  The policy, for an entry in STM (resp. IM):
 *
 *   score = w_importance * importance
 *         + w_access     * (1 - 2^(-accesses / access_half))
 *         + w_recency    * 2^(-idle_ms / recency_half_life_ms)
 *
 * An entry moves down one tier (STM -> IM, IM -> LTM; to LTM directly when IM is
 * unbound) once its age (now - created) reaches stm_min_age_ms (resp. im_min_age_ms)
 * and its score reaches im_threshold (resp. ltm_threshold).  A pinned entry always
 * moves down and never expires.  A cycle handles IM before STM, so an entry moves at
 * most one tier per cycle.  Everything else stays until its TTL ends it.  A move
 * copies insert-if-newer and compare-and-deletes the source (memory_move), so a crash
 * between leaves a duplicate and a concurrent newer write wins.  Tombstones are dropped
 * once no tier below holds a copy.  Keys are collected by a full scan first and moved
 * after, so no backend is re-entered from inside its own scan callback.  Each cycle
 * first flushes the host's access counts into the entries (access.c), and ends with a
 * pass over the cache that trims expired entries and the start of a walk over LTM,
 * where tier/sqlite deletes expired rows. */
#include "ggl-build.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "deadline.h"
#include "access.h"
#include "hostapi.h"
#include "log.h"
#include "maintenance.h"
#include "metrics.h"

double maintenance_score(const struct memory_conf *m, const struct ggl_entry *e, uint64_t now)
{
    double idle = now > e->last_access_ms ? (double)(now - e->last_access_ms) : 0.0;
    return m->w_importance * e->importance +
           m->w_access * (1.0 - exp2(-(double)e->access_count / m->access_half)) +
           m->w_recency * exp2(-idle / (double)m->recency_half_life_ms);
}

int maintenance_should_move(const struct memory_conf *m, int tier, const struct ggl_entry *e,
                            uint64_t now)
{
    if (e->flags & GGL_ENTRY_TOMBSTONE)
        return 0;
    if (e->flags & GGL_ENTRY_PINNED)
        return 1;
    uint64_t age = now > e->created_ms ? now - e->created_ms : 0;
    uint64_t min_age = (uint64_t)(tier == SLOT_STM ? m->stm_min_age_ms : m->im_min_age_ms);
    double threshold = tier == SLOT_STM ? m->im_threshold : m->ltm_threshold;
    return age >= min_age && maintenance_score(m, e, now) >= threshold;
}

struct candidate {
    void *key;
    size_t len;
    uint64_t version;
    int tombstone;
};

struct collect {
    const struct memory_conf *m;
    int tier;
    uint64_t now;
    struct candidate *v;
    size_t n, cap, scanned;
};

static int collect_one(void *arg, const struct ggl_entry *e)
{
    struct collect *c = arg;
    c->scanned++;
    int tomb = (e->flags & GGL_ENTRY_TOMBSTONE) != 0;
    if (!tomb && !maintenance_should_move(c->m, c->tier, e, c->now))
        return 0;
    if (c->n == c->cap)
        return 1; /* the batch is full: the rest waits for the next cycle */
    void *key = malloc(e->key_len ? e->key_len : 1);
    if (!key)
        return 1;
    memcpy(key, e->key, e->key_len);
    c->v[c->n++] = (struct candidate){key, e->key_len, e->version, tomb};
    return 0;
}

/* The tier below `tier` that is bound, or -1. */
static int next_down(int tier)
{
    for (int t = tier + 1; t < SLOT_COUNT; t++)
        if (memory_tier_bound(t))
            return t;
    return -1;
}

/* Scan `tier` fully, then move or purge what the policy picked. */
static void maintain_tier(int tier, struct maintenance_report *r, struct ggl_metric *moved)
{
    const struct memory_conf *m = memory_conf();
    struct collect c = {m, tier, clock_now_ms(), NULL, 0, (size_t)m->maintenance_batch, 0};
    if (!memory_tier_bound(tier) || !(c.v = malloc(c.cap * sizeof *c.v)))
        return;
    uint64_t cursor = 0;
    do {
        enum ggl_status st = memory_scan(tier, &cursor, 256, collect_one, &c);
        if (st != GGL_OK) {
            if (st != GGL_UNAVAILABLE)
                log_warn("maintenance: scanning %s: %s: %s", tier_slot_names[tier],
                         ggl_status_str(st), hostapi_take_reason());
            r->failed++;
            break;
        }
    } while (cursor != 0 && c.n < c.cap);
    r->scanned += c.scanned;
    int to = next_down(tier);
    for (size_t i = 0; i < c.n; i++) {
        enum ggl_status st;
        if (c.v[i].tombstone) {
            if ((st = memory_purge_tombstone(c.v[i].key, c.v[i].len, tier, c.v[i].version)) == GGL_OK)
                r->purged++;
        } else if (to >= 0) {
            if ((st = memory_move(c.v[i].key, c.v[i].len, tier, to)) == GGL_OK) {
                tier == SLOT_STM ? r->moved_stm_im++ : r->moved_im_ltm++;
                metrics_add(moved, 1);
            } else if (st != GGL_NOTFOUND) {
                r->failed++;
            }
        }
        free(c.v[i].key);
    }
    free(c.v);
}

static int count_entry(void *arg, const struct ggl_entry *e)
{
    (void)e;
    ++*(size_t *)arg;
    return 0;
}

/* One pass over the cache, which drops what expired on the way (its eviction scores are
 * computed live from hits and recency, so nothing else needs rescoring).  Moves and
 * tombstones do not concern it: writes and promotions keep its copies current. */
static void trim_cache(struct maintenance_report *r)
{
    uint64_t cursor = 0;
    if (!memory_tier_bound(SLOT_CACHE))
        return;
    do
        if (memory_scan(SLOT_CACHE, &cursor, 1024, count_entry, &r->cache_live) != GGL_OK)
            break;
    while (cursor != 0);
}

static int stop_at_first(void *arg, const struct ggl_entry *e)
{
    (void)arg, (void)e;
    return 1;
}

/* The start of a walk over LTM: a backend that keeps expired rows until they are
 * overwritten (tier/sqlite) deletes a bounded number of them there, through its index
 * on expiry.  LTM is not walked otherwise: nothing moves on from it. */
static void trim_ltm(void)
{
    uint64_t cursor = 0;
    if (memory_tier_bound(SLOT_LTM))
        memory_scan(SLOT_LTM, &cursor, 1, stop_at_first, NULL);
}

void maintenance_cycle(struct maintenance_report *r)
{
    static struct ggl_metric *runs, *secs, *stm_im, *im_ltm, *purged;
    if (!runs) {
        runs = metrics_register(GGL_METRIC_COUNTER, "memory_maintenance_runs_total", "maintenance cycles", NULL);
        secs = metrics_register(GGL_METRIC_HISTOGRAM, "memory_maintenance_seconds", "maintenance cycle duration", NULL);
        stm_im = metrics_register(GGL_METRIC_COUNTER, "memory_transitions_stm_im_total", "entries moved STM to IM", NULL);
        im_ltm = metrics_register(GGL_METRIC_COUNTER, "memory_transitions_im_ltm_total", "entries moved IM to LTM", NULL);
        purged = metrics_register(GGL_METRIC_COUNTER, "memory_tombstones_purged_total", "tombstones dropped", NULL);
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    memset(r, 0, sizeof *r);
    /* Counts first: they feed the score.  The host's table, then the cache's own. */
    r->touched = access_flush(memory_touch, NULL) + memory_flush_cache_reads();
    /* Bottom up, so an entry moves at most one tier per cycle. */
    maintain_tier(SLOT_IM, r, im_ltm);
    maintain_tier(SLOT_STM, r, stm_im);
    trim_cache(r);
    trim_ltm();
    clock_gettime(CLOCK_MONOTONIC, &t1);
    r->duration_us = (uint64_t)(t1.tv_sec - t0.tv_sec) * 1000000u +
                     (uint64_t)((t1.tv_nsec - t0.tv_nsec) / 1000);
    metrics_add(runs, 1);
    metrics_add(purged, (double)r->purged);
    metrics_observe(secs, (double)r->duration_us / 1e6);
}

static struct {
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    int running, stop;
} T = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* Waits on a condition with a timeout (never sleeps), so stop is immediate. */
static void *maintenance_thread(void *arg)
{
    (void)arg;
    struct maintenance_report r;
    pthread_mutex_lock(&T.lock);
    while (!T.stop) {
        struct timespec due =
            deadline_after_ms(CLOCK_MONOTONIC, (uint64_t)memory_conf()->maintenance_interval_ms);
        while (!T.stop && pthread_cond_timedwait(&T.wake, &T.lock, &due) == 0)
            ;
        if (T.stop)
            break;
        pthread_mutex_unlock(&T.lock);
        maintenance_cycle(&r);
        log_debug("maintenance: scanned %zu, moved %zu STM->IM and %zu IM->LTM, purged %zu in %llu us",
                  r.scanned, r.moved_stm_im, r.moved_im_ltm, r.purged,
                  (unsigned long long)r.duration_us);
        pthread_mutex_lock(&T.lock);
    }
    pthread_mutex_unlock(&T.lock);
    return NULL;
}

int maintenance_start(void)
{
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&T.wake, &attr);
    pthread_condattr_destroy(&attr);
    T.stop = 0;
    if (pthread_create(&T.thread, NULL, maintenance_thread, NULL) != 0)
        return -1;
    T.running = 1;
    return 0;
}

void maintenance_stop(void)
{
    if (!T.running)
        return;
    pthread_mutex_lock(&T.lock);
    T.stop = 1;
    pthread_cond_signal(&T.wake);
    pthread_mutex_unlock(&T.lock);
    pthread_join(T.thread, NULL);
    pthread_cond_destroy(&T.wake);
    T.running = 0;
}
