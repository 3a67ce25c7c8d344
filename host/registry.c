/* The registry of plugin instances.  Callers never take its lock: a tier call holds a
 * reference on its slot binding (slot.c, striped), and an instance retired by a reload
 * is closed only when no binding of it is current, previous or referenced.  The lock
 * guards the list, taken by reload, PLUGIN.LIST and the reaper only. */
#include "ggl-build.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "actions.h"
#include "engine.h"
#include "health.h"
#include "hostapi.h"
#include "loader.h"
#include "log.h"
#include "memory.h"
#include "registry.h"
#include "sensors.h"

static struct {
    pthread_mutex_t lock;
    int active;
    struct instance *boot;       /* the start's array, freed at fini */
    size_t nboot;
    struct instance **v;         /* every instance, boot ones first */
    size_t n, cap;
    struct config *cur, *boot_config;
    struct config **old;         /* configs replaced by reloads, freed at fini */
    size_t nold;
    int64_t drain_deadline_ms;
    _Atomic uint64_t zombies;
} R = {.lock = PTHREAD_MUTEX_INITIALIZER};

static int push(struct instance *inst)
{
    if (R.n == R.cap) {
        size_t cap = R.cap ? 2 * R.cap : 16;
        struct instance **v = realloc(R.v, cap * sizeof *v);
        if (!v)
            return -1;
        R.v = v, R.cap = cap;
    }
    R.v[R.n++] = inst;
    return 0;
}

/* The reaper's pass, as a health check: drained instances closed, zombies reported. */
static enum health_state check_retired(void *arg, char *reason, size_t len)
{
    (void)arg;
    registry_reap();
    size_t zombies = 0, draining = 0;
    pthread_mutex_lock(&R.lock);
    for (size_t i = 0; i < R.n; i++) {
        zombies += R.v[i]->life == LIFE_ZOMBIE;
        draining += R.v[i]->life == LIFE_DRAINING;
    }
    pthread_mutex_unlock(&R.lock);
    snprintf(reason, len, "%zu draining, %zu zombie instances", draining, zombies);
    return zombies ? HEALTH_DEGRADED : HEALTH_OK;
}

/* The pending-callback count of the instance whose services table is h. */
static _Atomic long *pending_of(const struct ggl_host *h)
{
    _Atomic long *p = NULL;
    pthread_mutex_lock(&R.lock);
    for (size_t i = 0; i < R.n && !p; i++)
        if (&R.v[i]->host == h)
            p = &R.v[i]->pending;
    pthread_mutex_unlock(&R.lock);
    return p;
}

int registry_init(struct instance *v, size_t n, struct config *c, int64_t drain_deadline_ms)
{
    pthread_mutex_lock(&R.lock);
    R.boot = v, R.nboot = n;
    R.cur = R.boot_config = c;
    R.drain_deadline_ms = drain_deadline_ms;
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = push(&v[i]);
    R.active = rc == 0;
    pthread_mutex_unlock(&R.lock);
    hostapi_set_pending_of(pending_of);
    uint64_t every = drain_deadline_ms / 4 < 1000 ? (uint64_t)drain_deadline_ms / 4 : 1000;
    return rc < 0 ? rc : health_register("plugins:retired", check_retired, NULL, every ? every : 1);
}

void registry_fini(void)
{
    pthread_mutex_lock(&R.lock);
    for (size_t i = R.n; i-- > R.nboot;) {
        instance_close_one(R.v[i]);
        free(R.v[i]);
    }
    instances_close(R.boot, R.nboot);
    for (size_t i = 0; i < R.nold; i++)
        if (R.old[i] != R.boot_config)
            config_free(R.old[i]);
    if (R.cur != R.boot_config)
        config_free(R.cur);
    free(R.old);
    free(R.v);
    R.v = NULL, R.old = NULL, R.boot = NULL;
    R.n = R.cap = R.nboot = R.nold = 0;
    R.active = 0;
    pthread_mutex_unlock(&R.lock);
    hostapi_set_pending_of(NULL);
}

int registry_active(void) { return R.active; }

int registry_add(struct instance *inst)
{
    pthread_mutex_lock(&R.lock);
    int rc = push(inst);
    pthread_mutex_unlock(&R.lock);
    return rc;
}

struct instance *registry_find(enum ggl_kind kind, const char *name)
{
    struct instance *found = NULL;
    pthread_mutex_lock(&R.lock);
    for (size_t i = 0; i < R.n && !found; i++)
        if (R.v[i]->life == LIFE_LIVE && R.v[i]->conf->kind == kind &&
            strcmp(R.v[i]->conf->name, name) == 0)
            found = R.v[i];
    pthread_mutex_unlock(&R.lock);
    return found;
}

size_t registry_of_plugin(enum ggl_kind kind, const char *plugin, struct instance **out,
                          size_t max)
{
    size_t k = 0;
    pthread_mutex_lock(&R.lock);
    for (size_t i = 0; i < R.n && k < max; i++)
        if (R.v[i]->life == LIFE_LIVE && R.v[i]->conf->kind == kind &&
            strcmp(R.v[i]->conf->plugin, plugin) == 0)
            out[k++] = R.v[i];
    pthread_mutex_unlock(&R.lock);
    return k;
}

void registry_retire(struct instance *inst)
{
    pthread_mutex_lock(&R.lock);
    inst->retired_ms = clock_now_ms();
    /* Never opened: nothing to drain or close. */
    inst->life = inst->state == INSTANCE_OPEN ? LIFE_DRAINING : LIFE_CLOSED;
    pthread_mutex_unlock(&R.lock);
    log_info("%s: retired, draining", inst->label);
}

/* Does any caller still use inst?  Tiers: a slot binding of it is current or previous,
 * or a retired one still has calls in flight.  Processors: a task type is still served
 * by it, or a task is still inside it.  Executors: the same with actions and runs.
 * Sensors: the scheduler still samples it (a replace waits for the sample in flight). */
static int in_use(const struct instance *inst)
{
    if (atomic_load(&inst->pending)) /* a callback into its code is still to run */
        return 1;
    if (inst->conf->kind == GGL_KIND_PROCESSOR)
        return engine_global() && engine_processor_refs(engine_global(), inst->self) != 0;
    if (inst->conf->kind == GGL_KIND_EXECUTOR)
        return actions_executor_refs(inst->self) != 0;
    if (inst->conf->kind == GGL_KIND_SENSOR)
        return sensors_uses(inst);
    if (inst->conf->kind != GGL_KIND_TIER || !memory_ready())
        return 0;
    for (int t = 0; t < SLOT_COUNT; t++)
        if (slot_refs_on(memory_slot(t), inst->self) != 0)
            return 1;
    return 0;
}

/* Is module m used by an instance not closed?  (R.lock held.) */
static int module_used(const struct module *m)
{
    for (size_t i = 0; i < R.n; i++)
        if (R.v[i]->mod == m && R.v[i]->life != LIFE_CLOSED)
            return 1;
    return 0;
}

void registry_reap(void)
{
    pthread_mutex_lock(&R.lock);
    uint64_t now = clock_now_ms();
    for (size_t i = 0; i < R.n; i++) {
        struct instance *inst = R.v[i];
        if (inst->life != LIFE_DRAINING && inst->life != LIFE_ZOMBIE)
            continue;
        if (!in_use(inst)) {
            instance_close_one(inst);
            struct module *m = inst->mod;
            if (m && !module_used(m)) {
                loader_unload(m);
                for (size_t k = 0; k < R.n; k++) /* closed rows keep their labels only */
                    if (R.v[k]->mod == m)
                        R.v[k]->mod = NULL;
            }
        } else if (inst->life == LIFE_DRAINING &&
                   now - inst->retired_ms > (uint64_t)R.drain_deadline_ms) {
            inst->life = LIFE_ZOMBIE;
            atomic_fetch_add(&R.zombies, 1);
            log_warn("%s: still in use %lld ms after it was retired: kept loaded as a zombie",
                     inst->label, (long long)R.drain_deadline_ms);
        }
    }
    pthread_mutex_unlock(&R.lock);
}

void registry_each(void (*fn)(void *arg, const struct instance *inst), void *arg)
{
    pthread_mutex_lock(&R.lock);
    for (size_t i = 0; i < R.n; i++)
        fn(arg, R.v[i]);
    pthread_mutex_unlock(&R.lock);
}

size_t registry_count(size_t *open)
{
    pthread_mutex_lock(&R.lock);
    size_t n = R.n;
    *open = 0;
    for (size_t i = 0; i < R.n; i++)
        *open += R.v[i]->state == INSTANCE_OPEN && R.v[i]->life != LIFE_CLOSED;
    pthread_mutex_unlock(&R.lock);
    return n;
}

uint64_t registry_zombies(void) { return atomic_load(&R.zombies); }

size_t registry_reloads(void)
{
    pthread_mutex_lock(&R.lock);
    size_t n = R.nold;
    pthread_mutex_unlock(&R.lock);
    return n;
}

struct config *registry_config(void) { return R.cur; }

void registry_set_config(struct config *c)
{
    pthread_mutex_lock(&R.lock);
    struct config **old = realloc(R.old, (R.nold + 1) * sizeof *old);
    if (old) { /* without room the old config leaks: instances may still point into it */
        R.old = old;
        R.old[R.nold++] = R.cur;
    }
    R.cur = c;
    pthread_mutex_unlock(&R.lock);
}
