/* The health checks every host has: one per plugin instance (refused or failed at
 * open, or marked failed later, e.g. a worker abandoned in its code) and one per bound
 * tier slot (its circuit breaker, and the backend's own health slot when it has one). */
#include "ggl-build.h"

#include <stddef.h>
#include <stdio.h>

#include "actions.h"
#include "config.h"
#include "engine.h"
#include "environment.h"
#include "health.h"
#include "hostapi.h"
#include "instance.h"
#include "memory.h"
#include "slot.h"

static const struct conf_key health_keys[] = {
    {"interval_ms", GGL_SETTING_INT, offsetof(struct health_settings, interval_ms), "5000", 10,
     3600000, "how often plugin instances and tier slots are checked"},
    {"recover_ratio", GGL_SETTING_FLOAT, offsetof(struct health_settings, recover_ratio), "0.9",
     0.5, 1.0, "leave load shedding when every reading is within limit x this (max) or / this (min)"},
    {"shed_priority", GGL_SETTING_STRING, offsetof(struct health_settings, shed_priority), "low",
     0, 0, "while shedding, refuse submissions of this priority and below: high, normal, low"},
};

int health_read_config(const struct config *c, struct health_settings *s, struct conf_error *err)
{
    return config_read_section(c, c->health, health_keys, sizeof health_keys / sizeof health_keys[0],
                               s, err);
}

static enum health_state check_instance(void *arg, char *reason, size_t len)
{
    const struct instance *i = arg;
    if (i->state == INSTANCE_OPEN && i->life == LIFE_CLOSED) {
        snprintf(reason, len, "closed: replaced or removed by a reload");
        return HEALTH_OK;
    }
    if (i->state == INSTANCE_OPEN)
        return HEALTH_OK;
    snprintf(reason, len, "%s", i->reason[0] ? i->reason : "not open");
    return HEALTH_FAILED;
}

/* The breaker says whether calls pass; the backend says whether it serves. */
static enum health_state check_slot(void *arg, char *reason, size_t len)
{
    struct slot *s = arg;
    struct binding *b;
    int writes = slot_refusing(s, SLOT_WRITES); /* refused writes count too */
    enum ggl_status st = slot_acquire(s, SLOT_READS, &b);
    if (st != GGL_OK || writes) {
        if (st != GGL_OK) { /* the reason says why: its breaker, or calls in flight */
            snprintf(reason, len, "%s%s", hostapi_take_reason(),
                     writes ? " (writes refused too)" : "");
        } else {
            char why[256];
            slot_last_error(s, why, sizeof why);
            snprintf(reason, len, "%s (breaker open for writes)", why);
        }
        if (st == GGL_OK)
            slot_release(s, SLOT_READS, b, GGL_OK, NULL);
        return HEALTH_DEGRADED;
    }
    st = GGL_HAS_SLOT(b->vt, struct ggl_tier, health) ? b->vt->health(b->self) : GGL_OK;
    const char *why = st == GGL_OK ? "" : hostapi_take_reason();
    snprintf(reason, len, "%s: %s%s%s", b->label, ggl_status_str(st), why[0] ? ": " : "", why);
    slot_release(s, SLOT_READS, b, st, why);
    if (st == GGL_OK)
        return HEALTH_OK;
    return st == GGL_RETRY || st == GGL_UNAVAILABLE ? HEALTH_DEGRADED : HEALTH_FAILED;
}

/* The processing engine: failed when not running, degraded while a processor is marked
 * failed (a worker abandoned in it): its tasks are refused. */
static enum health_state check_engine(void *arg, char *reason, size_t len)
{
    (void)arg;
    struct engine *e = engine_global();
    if (!e) {
        snprintf(reason, len, "not running");
        return HEALTH_FAILED;
    }
    char names[200];
    if (!engine_failed_types(e, names, sizeof names))
        return HEALTH_OK;
    snprintf(reason, len, "processor failed for task types %s: their tasks are refused", names);
    return HEALTH_DEGRADED;
}

static enum health_state running_or_failed(int running, char *reason, size_t len)
{
    if (running)
        return HEALTH_OK;
    snprintf(reason, len, "not running");
    return HEALTH_FAILED;
}

static enum health_state check_actions(void *arg, char *reason, size_t len)
{
    (void)arg;
    return running_or_failed(actions_running(), reason, len);
}

static enum health_state check_environment(void *arg, char *reason, size_t len)
{
    (void)arg;
    return running_or_failed(environment_ready(), reason, len);
}

static uint64_t builtin_interval_ms;

void health_register_instance(const struct instance *inst)
{
    char name[200];
    snprintf(name, sizeof name, "plugin:%s", inst->label);
    health_register(name, check_instance, (void *)inst, builtin_interval_ms);
}

void health_register_components(void)
{
    health_register("engine", check_engine, NULL, builtin_interval_ms);
    health_register("actions", check_actions, NULL, builtin_interval_ms);
    health_register("environment", check_environment, NULL, builtin_interval_ms);
}

void health_register_builtin(uint64_t interval_ms)
{
    builtin_interval_ms = interval_ms;
    char name[96];
    size_t n;
    const struct instance *v = memory_instances(&n);
    for (size_t i = 0; i < n; i++)
        health_register_instance(&v[i]);
    for (int t = 0; t < SLOT_COUNT; t++)
        if (memory_tier_bound(t)) {
            snprintf(name, sizeof name, "memory:%s", tier_slot_names[t]);
            health_register(name, check_slot, memory_slot(t), interval_ms);
        }
}
