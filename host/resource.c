/* Resource control.  Each rule watches one state key with an upper (`max`) or lower
 * (`min`) limit.  The host enters shedding when any reading crosses its limit and
 * leaves it only when every watched reading is back inside with a margin (max ×
 * recover_ratio, min ÷ recover_ratio), so a reading hovering at the limit does not
 * flap.  While shedding, submissions at or below `shed_priority` are refused and the
 * pools are held at their minimum.  State changes are pushed to health ("resources"). */
#include "ggl-build.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "environment.h"
#include "health.h"
#include "hostapi.h"
#include "log.h"
#include "metrics.h"
#include "pool.h"
#include "resource.h"

struct rule {
    char key[96];
    double max, min;        /* NaN: no such limit */
    double value;           /* last reading; NaN until one arrives */
};

static struct {
    pthread_mutex_t lock;
    struct rule rules[RESOURCE_MAX_RULES];
    size_t n;
    enum ggl_priority shed_from;    /* refuse priorities >= this (lower urgency) */
    double recover_ratio;
    _Atomic int shedding;
    char why[192];
    struct ggl_metric *shedding_gauge, *refused, *episodes;
    int observer;           /* environment observer id, or -1 */
} R = {.lock = PTHREAD_MUTEX_INITIALIZER, .observer = -1};

/* A `shed` entry as read (the key points into the config until copied). */
struct rule_read {
    const char *key;
    double max, min;
};

static const struct conf_key rule_keys[] = {
    {"key", GGL_SETTING_STRING, offsetof(struct rule_read, key), NULL, 0, 0,
     "environment state key, e.g. \"proc.memory_used_pct\""},
    {"max", GGL_SETTING_FLOAT, offsetof(struct rule_read, max), "nan", 0, 0, "shed above this"},
    {"min", GGL_SETTING_FLOAT, offsetof(struct rule_read, min), "nan", 0, 0, "shed below this"},
};

static int read_all(const struct config *c, struct rule *out, size_t *n,
                    struct health_settings *hs, enum ggl_priority *from, struct conf_error *err)
{
    static const char *const prios[] = {"critical", "high", "normal", "low"};
    if (health_read_config(c, hs, err) < 0)
        return -1;
    int found = 0;
    for (int p = GGL_PRIO_HIGH; p <= GGL_PRIO_LOW; p++)
        if (strcmp(hs->shed_priority, prios[p]) == 0)
            *from = (enum ggl_priority)p, found = 1;
    if (!found) {
        config_error_at(err, c, c->health ? config_setting_get_member(c->health, "shed_priority") : NULL,
                        "'shed_priority' in health must be \"high\", \"normal\" or \"low\"");
        return -1;
    }
    const config_setting_t *list = config_lookup(&c->cfg, "shed");
    *n = 0;
    if (!list)
        return 0;
    if (!config_setting_is_list(list) && !config_setting_is_array(list)) {
        config_error_at(err, c, list, "'shed' must be a list of { key = \"...\"; max = N; } groups");
        return -1;
    }
    for (int i = 0; i < config_setting_length(list); i++) {
        const config_setting_t *g = config_setting_get_elem(list, (unsigned)i);
        struct rule_read rr;
        if (!config_setting_is_group(g)) {
            config_error_at(err, c, g, "each 'shed' entry must be a group { key = ...; max = ...; }");
            return -1;
        }
        if (config_read_section(c, g, rule_keys, sizeof rule_keys / sizeof rule_keys[0], &rr, err) < 0)
            return -1;
        if (!rr.key || !rr.key[0] || strlen(rr.key) >= sizeof out->key) {
            config_error_at(err, c, g, "'shed' entry needs a 'key' (a state key under %zu bytes)",
                            sizeof out->key);
            return -1;
        }
        if (isnan(rr.max) == isnan(rr.min)) {
            config_error_at(err, c, g, "'shed' entry for %s needs exactly one of 'max' and 'min'", rr.key);
            return -1;
        }
        if (*n == RESOURCE_MAX_RULES) {
            config_error_at(err, c, g, "at most %d 'shed' entries", RESOURCE_MAX_RULES);
            return -1;
        }
        struct rule *r = &out[(*n)++];
        snprintf(r->key, sizeof r->key, "%s", rr.key);
        r->max = rr.max, r->min = rr.min, r->value = NAN;
    }
    return 0;
}

int resource_check_config(const struct config *c, struct conf_error *err)
{
    struct rule rules[RESOURCE_MAX_RULES];
    size_t n;
    struct health_settings hs;
    enum ggl_priority from;
    return read_all(c, rules, &n, &hs, &from, err);
}

int resource_init(const struct config *c, struct conf_error *err)
{
    struct health_settings hs;
    pthread_mutex_lock(&R.lock);
    int rc = read_all(c, R.rules, &R.n, &hs, &R.shed_from, err);
    R.recover_ratio = hs.recover_ratio;
    atomic_store(&R.shedding, 0);
    R.why[0] = '\0';
    pthread_mutex_unlock(&R.lock);
    R.shedding_gauge = metrics_register_in("resources", GGL_METRIC_GAUGE, "resources_shedding",
                                           "1 while readings over their limits shed load", NULL);
    R.refused = metrics_register_in("resources", GGL_METRIC_COUNTER, "resources_refused_total",
                                    "submissions refused while shedding", NULL);
    R.episodes = metrics_register_in("resources", GGL_METRIC_COUNTER, "resources_shed_episodes_total",
                                     "times the host entered shedding", NULL);
    if (rc == 0 && R.n)
        health_report("resources", HEALTH_OK, NULL);
    return rc;
}

/* Every numeric state change is a reading (sensors store "<instance>.<key>"). */
static void on_state_change(void *arg, const struct env_change *c)
{
    (void)arg;
    if (!c->value || !R.n)
        return;
    char text[64], *end;
    size_t n = c->value_len < sizeof text - 1 ? c->value_len : sizeof text - 1;
    memcpy(text, c->value, n);
    text[n] = '\0';
    double v = strtod(text, &end);
    if (end != text)
        resource_observe(c->key, v);
}

int resource_attach(void)
{
    if (R.n && R.observer < 0)
        R.observer = environment_observe("", on_state_change, NULL);
    return R.n && R.observer < 0 ? -1 : 0;
}

void resource_fini(void)
{
    if (R.observer >= 0)
        environment_unobserve(R.observer);
    R.observer = -1;
    pthread_mutex_lock(&R.lock);
    R.n = 0;
    atomic_store(&R.shedding, 0);
    pthread_mutex_unlock(&R.lock);
    pool_hold_at_min(0);
}

static int over(const struct rule *r, double margin)
{
    if (isnan(r->value))
        return 0;
    return !isnan(r->max) ? r->value > r->max * margin : r->value < r->min / margin;
}

/* Enter when a reading crosses its limit; leave when all are inside with the margin. */
static void evaluate_locked(void)
{
    int was = atomic_load(&R.shedding), now = 0;
    for (size_t i = 0; i < R.n && !now; i++) {
        const struct rule *r = &R.rules[i];
        if (over(r, was ? R.recover_ratio : 1.0)) {
            now = 1;
            snprintf(R.why, sizeof R.why, "%s is %g, limit %s %g", r->key, r->value,
                     isnan(r->max) ? "min" : "max", isnan(r->max) ? r->min : r->max);
        }
    }
    if (now == was)
        return;
    atomic_store(&R.shedding, now);
    metrics_set(R.shedding_gauge, now);
    pool_hold_at_min(now);
    if (now) {
        metrics_add(R.episodes, 1);
        log_warn("resources: shedding load: %s", R.why);
        health_report("resources", HEALTH_DEGRADED, R.why);
    } else {
        log_info("resources: readings back within limits; load shedding ends");
        health_report("resources", HEALTH_OK, NULL);
    }
}

void resource_observe(const char *key, double value)
{
    pthread_mutex_lock(&R.lock);
    int watched = 0;
    for (size_t i = 0; i < R.n; i++)
        if (strcmp(R.rules[i].key, key) == 0)
            R.rules[i].value = value, watched = 1;
    if (watched)
        evaluate_locked();
    pthread_mutex_unlock(&R.lock);
}

int resource_shedding(void) { return atomic_load(&R.shedding); }

int resource_admit(enum ggl_priority prio)
{
    if (!atomic_load(&R.shedding) || prio < R.shed_from)
        return 1;
    metrics_add(R.refused, 1);
    pthread_mutex_lock(&R.lock);
    hostapi_set_reason("shedding load: %s", R.why);
    pthread_mutex_unlock(&R.lock);
    return 0;
}
