/* Host configuration: parses the libconfig file, checks every key at the top level and
 * in instance blocks (unknown keys list the allowed ones; wrong types name the expected
 * type), and offers one table-driven reader for component sections. */
#include "ggl-build.h"

#include <errno.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config.h"

const char *const tier_slot_names[SLOT_COUNT] = {"cache", "stm", "im", "ltm"};

static const char *const top_keys[] = {"plugin_dirs", "log_level", "control", "pools", "memory",
                                       "engine",
                                       "backends", "tiers", "processors", "executors",
                                       "sensors", "health", "shed",
                                       "actions", /* actions_conf.c */
                                       "environment", /* environment_conf.c */
                                       "swap", /* swap_state.c */
                                       "plugins", /* probe.c */
                                       NULL};
/* Instance sections, in the order instances are opened. */
static const struct {
    const char *name;
    enum ggl_kind kind;
} instance_sections[] = {{"backends", GGL_KIND_TIER},
                         {"processors", GGL_KIND_PROCESSOR},
                         {"executors", GGL_KIND_EXECUTOR},
                         {"sensors", GGL_KIND_SENSOR}};
/* Host keys allowed in instance blocks besides the plugin's own settings. */
static const char *const instance_host_keys[] = {"plugin", "required", NULL};
static const char *const sensor_host_keys[] = {"plugin", "required", "interval_ms", NULL};

static const char *type_name(enum ggl_setting_type t)
{
    switch (t) {
    case GGL_SETTING_INT: return "an integer";
    case GGL_SETTING_FLOAT: return "a number";
    case GGL_SETTING_BOOL: return "a boolean (true/false)";
    case GGL_SETTING_STRING: return "a string";
    }
    return "?";
}

void config_error_at(struct conf_error *err, const struct config *c, const config_setting_t *s,
                     const char *fmt, ...)
{
    const char *file = s ? config_setting_source_file(s) : NULL;
    int line = s ? (int)config_setting_source_line(s) : 0;
    int n = snprintf(err->msg, sizeof err->msg, "%s:%d: ", file ? file : c->path, line);
    va_list ap;
    va_start(ap, fmt);
    if (n > 0 && (size_t)n < sizeof err->msg)
        vsnprintf(err->msg + n, sizeof err->msg - (size_t)n, fmt, ap);
    va_end(ap);
}

/* A table of allowed keys: rows of `stride` bytes holding a name pointer and a type. */
struct key_table {
    const void *rows;
    size_t stride, count, name_off, type_off;
};

static const char *row_name(const struct key_table *t, size_t i)
{
    return *(const char *const *)((const char *)t->rows + i * t->stride + t->name_off);
}

static enum ggl_setting_type row_type(const struct key_table *t, size_t i)
{
    return *(const enum ggl_setting_type *)((const char *)t->rows + i * t->stride + t->type_off);
}

/* "a, b, c" of the allowed names, for unknown-key errors. */
static void join_names(char *buf, size_t len, const char *const *fixed, const struct key_table *t)
{
    size_t n = 0;
    buf[0] = '\0';
    for (; fixed && *fixed; fixed++)
        n += (size_t)snprintf(buf + n, n < len ? len - n : 0, "%s%s", n ? ", " : "", *fixed);
    for (size_t i = 0; t && i < t->count; i++)
        n += (size_t)snprintf(buf + n, n < len ? len - n : 0, "%s%s", n ? ", " : "", row_name(t, i));
}

static int in_list(const char *name, const char *const *list)
{
    for (; list && *list; list++)
        if (strcmp(name, *list) == 0)
            return 1;
    return 0;
}

/* Is s of the wanted type?  Integers are accepted where a float is wanted. */
static int type_matches(const config_setting_t *s, enum ggl_setting_type t)
{
    int st = config_setting_type(s);
    switch (t) {
    case GGL_SETTING_INT: return st == CONFIG_TYPE_INT || st == CONFIG_TYPE_INT64;
    case GGL_SETTING_FLOAT:
        return st == CONFIG_TYPE_FLOAT || st == CONFIG_TYPE_INT || st == CONFIG_TYPE_INT64;
    case GGL_SETTING_BOOL: return st == CONFIG_TYPE_BOOL;
    case GGL_SETTING_STRING: return st == CONFIG_TYPE_STRING;
    }
    return 0;
}

/* Every member of `group` must be in fixed[] or in the table, with the row's type. */
static int check_members(const struct config *c, const config_setting_t *group,
                         const char *what, const char *const *fixed, const struct key_table *t,
                         struct conf_error *err)
{
    if (!config_setting_is_group(group)) {
        config_error_at(err, c, group, "%s must be a group { ... }", what);
        return -1;
    }
    for (int i = 0; i < config_setting_length(group); i++) {
        const config_setting_t *m = config_setting_get_elem(group, (unsigned)i);
        const char *name = config_setting_name(m);
        if (in_list(name, fixed))
            continue;
        size_t row = 0;
        while (row < t->count && strcmp(row_name(t, row), name) != 0)
            row++;
        if (row == t->count) {
            char allowed[384];
            join_names(allowed, sizeof allowed, fixed, t);
            config_error_at(err, c, m, "unknown key '%s' in %s (allowed: %s)", name, what,
                            allowed[0] ? allowed : "none");
            return -1;
        }
        if (!type_matches(m, row_type(t, row))) {
            config_error_at(err, c, m, "'%s' in %s must be %s", name, what,
                            type_name(row_type(t, row)));
            return -1;
        }
    }
    return 0;
}

static size_t count_settings(const struct ggl_setting *s)
{
    size_t n = 0;
    while (s && s[n].name)
        n++;
    return n;
}

int config_check_instance(const struct config *c, const struct conf_instance *inst,
                          const struct ggl_setting *settings, struct conf_error *err)
{
    char what[160];
    snprintf(what, sizeof what, "%s '%s' (plugin %s/%s)", ggl_kind_str(inst->kind), inst->name,
             ggl_kind_str(inst->kind), inst->plugin);
    const struct key_table t = {settings, sizeof *settings, count_settings(settings),
                                offsetof(struct ggl_setting, name),
                                offsetof(struct ggl_setting, type)};
    return check_members(c, inst->block, what,
                         inst->kind == GGL_KIND_SENSOR ? sensor_host_keys : instance_host_keys, &t,
                         err);
}

int config_read_section(const struct config *c, const config_setting_t *section,
                        const struct conf_key *keys, size_t n, void *dst, struct conf_error *err)
{
    return config_read_section_with(c, section, keys, n, NULL, dst, err);
}

int config_read_section_with(const struct config *c, const config_setting_t *section,
                             const struct conf_key *keys, size_t n, const char *const *others,
                             void *dst, struct conf_error *err)
{
    const char *what = section ? config_setting_name(section) : "section";
    if (section && !what)
        what = "list element";
    const struct key_table t = {keys, sizeof *keys, n, offsetof(struct conf_key, name),
                                offsetof(struct conf_key, type)};
    if (section && check_members(c, section, what, others, &t, err) < 0)
        return -1;
    for (size_t i = 0; i < n; i++) {
        const struct conf_key *k = &keys[i];
        const config_setting_t *s = section ? config_setting_get_member(section, k->name) : NULL;
        char *field = (char *)dst + k->offset;
        double num = 0;
        switch (k->type) {
        case GGL_SETTING_INT:
            num = (double)(s ? config_setting_get_int64(s) : strtoll(k->def ? k->def : "0", NULL, 10));
            *(int64_t *)field = (int64_t)num;
            break;
        case GGL_SETTING_FLOAT:
            num = s ? (config_setting_type(s) == CONFIG_TYPE_FLOAT ? config_setting_get_float(s)
                                                                   : (double)config_setting_get_int64(s))
                    : strtod(k->def ? k->def : "0", NULL);
            *(double *)field = num;
            break;
        case GGL_SETTING_BOOL:
            *(int *)field = s ? config_setting_get_bool(s) : (k->def && strcmp(k->def, "true") == 0);
            break;
        case GGL_SETTING_STRING:
            *(const char **)field = s ? config_setting_get_string(s) : k->def;
            break;
        }
        if ((k->type == GGL_SETTING_INT || k->type == GGL_SETTING_FLOAT) && k->min < k->max &&
            (num < k->min || num > k->max)) {
            config_error_at(err, c, s, "'%s' in %s must be between %g and %g (got %g)", k->name,
                            what, k->min, k->max, num);
            return -1;
        }
    }
    return 0;
}

const struct conf_instance *config_instance(const struct config *c, enum ggl_kind kind,
                                           const char *name)
{
    for (size_t i = 0; i < c->n_instances; i++)
        if (c->instances[i].kind == kind && strcmp(c->instances[i].name, name) == 0)
            return &c->instances[i];
    return NULL;
}

static int read_instance(struct config *c, config_setting_t *block, enum ggl_kind kind,
                         struct conf_error *err)
{
    struct conf_instance *inst = &c->instances[c->n_instances];
    if (!config_setting_is_group(block)) {
        config_error_at(err, c, block, "'%s' must be a group { plugin = \"...\"; ... }",
                        config_setting_name(block));
        return -1;
    }
    memset(inst, 0, sizeof *inst);
    inst->name = config_setting_name(block);
    inst->kind = kind;
    inst->block = block;
    inst->interval_ms = 1000;
    if (config_instance(c, kind, inst->name)) {
        config_error_at(err, c, block, "%s instance '%s' declared twice", ggl_kind_str(kind),
                        inst->name);
        return -1;
    }
    const config_setting_t *p = config_setting_get_member(block, "plugin");
    if (!p || config_setting_type(p) != CONFIG_TYPE_STRING) {
        config_error_at(err, c, p ? p : block, "%s '%s' needs plugin = \"<name>\";",
                        ggl_kind_str(kind), inst->name);
        return -1;
    }
    inst->plugin = config_setting_get_string(p);
    const config_setting_t *r = config_setting_get_member(block, "required");
    if (r && config_setting_type(r) != CONFIG_TYPE_BOOL) {
        config_error_at(err, c, r, "'required' must be %s", type_name(GGL_SETTING_BOOL));
        return -1;
    }
    inst->required = r ? config_setting_get_bool(r) : 0;
    const config_setting_t *iv = config_setting_get_member(block, "interval_ms");
    if (iv) {
        if (kind != GGL_KIND_SENSOR || !type_matches(iv, GGL_SETTING_INT) ||
            config_setting_get_int64(iv) < 10) {
            config_error_at(err, c, iv, "'interval_ms' is for sensors only, an integer >= 10");
            return -1;
        }
        inst->interval_ms = config_setting_get_int64(iv);
    }
    c->n_instances++;
    return 0;
}

static int read_instances(struct config *c, struct conf_error *err)
{
    size_t total = 0;
    config_setting_t *root = config_root_setting(&c->cfg);
    for (size_t i = 0; i < sizeof instance_sections / sizeof instance_sections[0]; i++) {
        config_setting_t *sec = config_setting_get_member(root, instance_sections[i].name);
        if (!sec)
            continue;
        if (!config_setting_is_group(sec)) {
            config_error_at(err, c, sec, "%s must be a group of named instances",
                            instance_sections[i].name);
            return -1;
        }
        total += (size_t)config_setting_length(sec);
    }
    c->instances = calloc(total ? total : 1, sizeof *c->instances);
    if (!c->instances) {
        snprintf(err->msg, sizeof err->msg, "%s: out of memory", c->path);
        return -1;
    }
    for (size_t i = 0; i < sizeof instance_sections / sizeof instance_sections[0]; i++) {
        config_setting_t *sec = config_setting_get_member(root, instance_sections[i].name);
        for (int j = 0; sec && j < config_setting_length(sec); j++)
            if (read_instance(c, config_setting_get_elem(sec, (unsigned)j),
                              instance_sections[i].kind, err) < 0)
                return -1;
    }
    return 0;
}

static int read_slots(struct config *c, struct conf_error *err)
{
    config_setting_t *tiers = config_lookup(&c->cfg, "tiers");
    if (!tiers)
        return 0;
    static const struct ggl_setting slot_keys[] = {
        GGL_SETTING("cache", GGL_SETTING_STRING, NULL, NULL),
        GGL_SETTING("stm", GGL_SETTING_STRING, NULL, NULL),
        GGL_SETTING("im", GGL_SETTING_STRING, NULL, NULL),
        GGL_SETTING("ltm", GGL_SETTING_STRING, NULL, NULL)};
    const struct key_table t = {slot_keys, sizeof slot_keys[0], SLOT_COUNT,
                                offsetof(struct ggl_setting, name),
                                offsetof(struct ggl_setting, type)};
    if (check_members(c, tiers, "tiers", NULL, &t, err) < 0)
        return -1;
    for (int i = 0; i < SLOT_COUNT; i++) {
        config_setting_t *s = config_setting_get_member(tiers, tier_slot_names[i]);
        if (!s)
            continue;
        const char *name = config_setting_get_string(s);
        if (!config_instance(c, GGL_KIND_TIER, name)) {
            config_error_at(err, c, s, "tier slot '%s' names '%s', which is not declared in backends",
                            tier_slot_names[i], name);
            return -1;
        }
        c->slots[i] = name;
    }
    return 0;
}

static int read_top(struct config *c, struct conf_error *err)
{
    config_setting_t *root = config_root_setting(&c->cfg);
    for (int i = 0; i < config_setting_length(root); i++) {
        const config_setting_t *m = config_setting_get_elem(root, (unsigned)i);
        if (!in_list(config_setting_name(m), top_keys)) {
            char allowed[256];
            join_names(allowed, sizeof allowed, top_keys, NULL);
            config_error_at(err, c, m, "unknown key '%s' (allowed: %s)", config_setting_name(m),
                            allowed);
            return -1;
        }
    }
    config_setting_t *dirs = config_setting_get_member(root, "plugin_dirs");
    int n = dirs ? config_setting_length(dirs) : 0;
    if (dirs && !config_setting_is_array(dirs) && !config_setting_is_list(dirs)) {
        config_error_at(err, c, dirs, "plugin_dirs must be an array of strings [ \"...\" ]");
        return -1;
    }
    c->plugin_dirs = calloc((size_t)n + 1, sizeof *c->plugin_dirs);
    if (!c->plugin_dirs) {
        snprintf(err->msg, sizeof err->msg, "%s: out of memory", c->path);
        return -1;
    }
    for (int i = 0; i < n; i++) {
        config_setting_t *d = config_setting_get_elem(dirs, (unsigned)i);
        if (config_setting_type(d) != CONFIG_TYPE_STRING) {
            config_error_at(err, c, d, "plugin_dirs must hold strings");
            return -1;
        }
        c->plugin_dirs[i] = config_setting_get_string(d);
    }
    const config_setting_t *lvl = config_setting_get_member(root, "log_level");
    if (lvl) {
        static const char *const levels[] = {"error", "warn", "info", "debug", NULL};
        c->log_level = config_setting_get_string(lvl);
        if (!c->log_level || !in_list(c->log_level, levels)) {
            config_error_at(err, c, lvl, "log_level must be one of \"error\", \"warn\", \"info\", \"debug\"");
            return -1;
        }
    }
    c->control = config_setting_get_member(root, "control");
    c->pools = config_setting_get_member(root, "pools");
    c->memory = config_setting_get_member(root, "memory");
    c->health = config_setting_get_member(root, "health");
    c->environment = config_setting_get_member(root, "environment");
    c->engine = config_setting_get_member(root, "engine");
    c->plugins = config_setting_get_member(root, "plugins");
    return 0;
}

static struct config *config_new(const char *path)
{
    struct config *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->path = strdup(path);
    if (!c->path) {
        free(c);
        return NULL;
    }
    config_init(&c->cfg);
    config_set_options(&c->cfg, 0); /* no autoconvert: types are checked, not coerced */
    /* libconfig 1.5 has no include hook: resolve @include against the file's folder. */
    char *copy = strdup(path);
    if (copy) {
        config_set_include_dir(&c->cfg, dirname(copy));
        free(copy);
    }
    return c;
}

static struct config *config_finish(struct config *c, int parsed, struct conf_error *err)
{
    if (!parsed) {
        snprintf(err->msg, sizeof err->msg, "%s:%d: %s",
                 config_error_file(&c->cfg) ? config_error_file(&c->cfg) : c->path,
                 config_error_line(&c->cfg), config_error_text(&c->cfg));
        config_free(c);
        return NULL;
    }
    if (read_top(c, err) < 0 || read_instances(c, err) < 0 || read_slots(c, err) < 0) {
        config_free(c);
        return NULL;
    }
    return c;
}

struct config *config_load(const char *path, struct conf_error *err)
{
    struct config *c = config_new(path);
    if (!c) {
        snprintf(err->msg, sizeof err->msg, "%s: out of memory", path);
        return NULL;
    }
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err->msg, sizeof err->msg, "%s: %s", path, strerror(errno));
        config_free(c);
        return NULL;
    }
    fclose(f);
    return config_finish(c, config_read_file(&c->cfg, path) == CONFIG_TRUE, err);
}

struct config *config_load_string(const char *text, const char *name, struct conf_error *err)
{
    struct config *c = config_new(name);
    if (!c) {
        snprintf(err->msg, sizeof err->msg, "%s: out of memory", name);
        return NULL;
    }
    return config_finish(c, config_read_string(&c->cfg, text) == CONFIG_TRUE, err);
}

void config_free(struct config *c)
{
    if (!c)
        return;
    config_destroy(&c->cfg);
    free(c->plugin_dirs);
    free(c->instances);
    free(c->path);
    free(c);
}
