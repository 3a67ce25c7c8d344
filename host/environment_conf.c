/* The `environment` section: its keys with defaults and ranges, the validation rules
 * (a list, since libconfig 1.5 names cannot hold dots: `rules = ( { key = "cpu.load";
 * type = "float"; min = 0.0; max = 100.0; } );`) and the check of a value against its rule. */
#include "ggl-build.h"

#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "environment.h"

#define EKEY(name, type, field, def, min, max, help) \
    {name, type, offsetof(struct env_conf, field), def, min, max, help}

static const struct conf_key env_keys[] = {
    EKEY("snapshot_path", GGL_SETTING_STRING, snapshot_path, "", 0, 0,
         "SQLite file the state is saved to and restored from; \"\": none"),
    EKEY("snapshot_interval_ms", GGL_SETTING_INT, snapshot_interval_ms, "60000", 100, 1e12,
         "time between periodic snapshots (one more at shutdown)"),
    EKEY("history", GGL_SETTING_INT, history, "1000", 1, 1e7, "updates kept for STATE.HISTORY"),
    EKEY("max_age_ms", GGL_SETTING_INT, max_age_ms, "0", 0, 1e12,
         "a key not updated for this long is removed; 0: never"),
    EKEY("max_keys", GGL_SETTING_INT, max_keys, "10000", 1, 1e8,
         "keys at most; an update creating one more is refused (-BUSY)"),
    EKEY("queue_capacity", GGL_SETTING_INT, queue_capacity, "4096", 1, 1e7,
         "updates waiting to be applied; more are refused (-BUSY / GGL_RETRY)"),
    EKEY("max_watchers", GGL_SETTING_INT, max_watchers, "1024", 0, 1e6,
         "STATE.WATCH requests parked at once; more are refused (-BUSY)"),
    EKEY("watch_max_ms", GGL_SETTING_INT, watch_max_ms, "300000", 1, 86400000,
         "longest STATE.WATCH timeout"),
    EKEY("sensor_backoff_after", GGL_SETTING_INT, sensor_backoff_after, "3", 1, 1e6,
         "consecutive failed samples before a sensor's interval doubles"),
    EKEY("sensor_backoff_max_ms", GGL_SETTING_INT, sensor_backoff_max_ms, "300000", 10, 1e12,
         "longest interval a failing sensor backs off to"),
};

/* One rule block as read by config_read_section_with. */
struct rule_block {
    const char *key;
    const char *type;
    double min, max;
    int64_t max_age_ms;
};

static const struct conf_key rule_keys[] = {
    {"key", GGL_SETTING_STRING, offsetof(struct rule_block, key), NULL, 0, 0,
     "the key, or a prefix ending in '*'"},
    {"type", GGL_SETTING_STRING, offsetof(struct rule_block, type), "string", 0, 0,
     "string | int | float | bool"},
    {"min", GGL_SETTING_FLOAT, offsetof(struct rule_block, min), "0", 0, 0, "smallest number"},
    {"max", GGL_SETTING_FLOAT, offsetof(struct rule_block, max), "0", 0, 0, "largest number"},
    {"max_age_ms", GGL_SETTING_INT, offsetof(struct rule_block, max_age_ms), "0", 0, 1e12,
     "this key's max age (0: the section's)"},
};
static const char *const rule_others[] = {"allowed", NULL};
static const char *const type_names[] = {"string", "int", "float", "bool"};

static int read_allowed(const struct config *c, const config_setting_t *list, struct env_rule *r,
                        struct conf_error *err)
{
    if (!config_setting_is_array(list) && !config_setting_is_list(list)) {
        config_error_at(err, c, list, "allowed must be an array of strings [ \"...\" ]");
        return -1;
    }
    int n = config_setting_length(list);
    r->allowed = calloc((size_t)n + 1, sizeof *r->allowed);
    if (!r->allowed) {
        config_error_at(err, c, list, "out of memory");
        return -1;
    }
    for (int i = 0; i < n; i++) {
        const config_setting_t *e = config_setting_get_elem(list, (unsigned)i);
        if (config_setting_type(e) != CONFIG_TYPE_STRING) {
            config_error_at(err, c, e, "allowed must hold strings");
            return -1;
        }
        r->allowed[i] = config_setting_get_string(e);
    }
    return 0;
}

static int read_rule(const struct config *c, const config_setting_t *g, struct env_rule *r,
                     struct conf_error *err)
{
    struct rule_block b;
    if (!config_setting_is_group(g)) {
        config_error_at(err, c, g, "each environment rule is a group { key = \"...\"; ... }");
        return -1;
    }
    if (config_read_section_with(c, g, rule_keys, sizeof rule_keys / sizeof rule_keys[0],
                                 rule_others, &b, err) < 0)
        return -1;
    if (!b.key || !b.key[0] || strlen(b.key) > ENV_KEY_MAX) {
        config_error_at(err, c, g, "environment rule needs key = \"...\" (1..%d bytes)", ENV_KEY_MAX);
        return -1;
    }
    size_t t = 0;
    while (t < 4 && strcmp(b.type, type_names[t]) != 0)
        t++;
    if (t == 4) {
        config_error_at(err, c, config_setting_get_member(g, "type"),
                        "rule '%s': type must be string, int, float or bool", b.key);
        return -1;
    }
    *r = (struct env_rule){.key = b.key, .type = (enum rule_type)t, .min = b.min, .max = b.max,
                           .max_age_ms = b.max_age_ms};
    r->has_min = config_setting_get_member(g, "min") != NULL;
    r->has_max = config_setting_get_member(g, "max") != NULL;
    if ((r->has_min || r->has_max) && r->type != RULE_INT && r->type != RULE_FLOAT) {
        config_error_at(err, c, g, "rule '%s': min/max are for int and float keys", b.key);
        return -1;
    }
    if (r->has_min && r->has_max && r->min > r->max) {
        config_error_at(err, c, g, "rule '%s': min %g is above max %g", b.key, r->min, r->max);
        return -1;
    }
    const config_setting_t *allowed = config_setting_get_member(g, "allowed");
    return allowed ? read_allowed(c, allowed, r, err) : 0;
}

static int read_rules(const struct config *c, const config_setting_t *list, struct env_conf *ec,
                      struct conf_error *err)
{
    if (!config_setting_is_list(list)) {
        config_error_at(err, c, list, "rules must be a list ( { key = \"...\"; type = ...; }, ... )");
        return -1;
    }
    size_t n = (size_t)config_setting_length(list);
    ec->rules = calloc(n ? n : 1, sizeof *ec->rules);
    if (!ec->rules) {
        config_error_at(err, c, list, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        const config_setting_t *g = config_setting_get_elem(list, (unsigned)i);
        if (read_rule(c, g, &ec->rules[ec->n_rules], err) < 0) {
            ec->n_rules++; /* its allowed list, if any, is freed with the rest */
            return -1;
        }
        for (size_t j = 0; j < ec->n_rules; j++)
            if (strcmp(ec->rules[j].key, ec->rules[ec->n_rules].key) == 0) {
                config_error_at(err, c, g, "rule for '%s' given twice", ec->rules[j].key);
                ec->n_rules++;
                return -1;
            }
        ec->n_rules++;
    }
    return 0;
}

int env_conf_read(const struct config *c, struct env_conf *ec, struct conf_error *err)
{
    static const char *const section_others[] = {"rules", NULL};
    memset(ec, 0, sizeof *ec);
    if (config_read_section_with(c, c->environment, env_keys, sizeof env_keys / sizeof env_keys[0],
                                 section_others, ec, err) < 0)
        return -1;
    const config_setting_t *rules =
        c->environment ? config_setting_get_member(c->environment, "rules") : NULL;
    if (rules && read_rules(c, rules, ec, err) < 0) {
        env_conf_free(ec);
        return -1;
    }
    return 0;
}

void env_conf_free(struct env_conf *ec)
{
    for (size_t i = 0; i < ec->n_rules; i++)
        free(ec->rules[i].allowed);
    free(ec->rules);
    ec->rules = NULL;
    ec->n_rules = 0;
}

/* The exact rule for key, else the longest prefix rule ("proc.*") that covers it. */
const struct env_rule *env_rule_for(const struct env_conf *ec, const char *key)
{
    const struct env_rule *best = NULL;
    size_t best_len = 0;
    for (size_t i = 0; i < ec->n_rules; i++) {
        const struct env_rule *r = &ec->rules[i];
        size_t n = strlen(r->key);
        if (r->key[n - 1] != '*') {
            if (strcmp(r->key, key) == 0)
                return r;
        } else if (strncmp(r->key, key, n - 1) == 0 && (!best || n > best_len)) {
            best = r;
            best_len = n;
        }
    }
    return best;
}

/* The value as a number, if all of it is one. */
static int parse_number(const char *v, int integer, double *out)
{
    char *end;
    errno = 0;
    *out = integer ? (double)strtoll(v, &end, 10) : strtod(v, &end);
    return end != v && *end == '\0' && errno == 0 && isfinite(*out);
}

int env_rule_check(const struct env_rule *r, const char *value, size_t len, char *why,
                   size_t why_len)
{
    if (!r)
        return 0;
    double num = 0;
    int ok = 1;
    if (strlen(value) != len) { /* an embedded NUL is text, never a number or a flag */
        ok = r->type == RULE_STRING;
    } else if (r->type == RULE_INT || r->type == RULE_FLOAT) {
        ok = parse_number(value, r->type == RULE_INT, &num);
    } else if (r->type == RULE_BOOL) {
        ok = !strcmp(value, "true") || !strcmp(value, "false") || !strcmp(value, "1") ||
             !strcmp(value, "0");
    }
    if (!ok) {
        snprintf(why, why_len, "'%s' must be %s", r->key,
                 r->type == RULE_INT ? "an integer" : r->type == RULE_FLOAT ? "a number"
                 : r->type == RULE_BOOL ? "true, false, 1 or 0" : "text");
        return -1;
    }
    if ((r->has_min && num < r->min) || (r->has_max && num > r->max)) {
        snprintf(why, why_len, "'%s' must be between %g and %g (got %s)", r->key,
                 r->has_min ? r->min : -INFINITY, r->has_max ? r->max : INFINITY, value);
        return -1;
    }
    if (r->allowed) {
        const char **a = r->allowed;
        while (*a && (strlen(*a) != len || memcmp(*a, value, len) != 0))
            a++;
        if (!*a) {
            size_t n = (size_t)snprintf(why, why_len, "'%s' must be one of", r->key);
            for (a = r->allowed; *a && n < why_len; a++)
                n += (size_t)snprintf(why + n, why_len - n, " %s", *a);
            return -1;
        }
    }
    return 0;
}
