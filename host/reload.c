/* CONFIG.RELOAD (and SIGHUP) and PLUGIN.RELOAD.  A reload first does everything that can
 * fail without touching what runs: parse and check the whole file (the checks of
 * `ganglion -t`), open every new or changed instance.  Any failure closes what it
 * opened and reports FILE:LINE.  Only then it applies the differences: slots rebound
 * (MIGRATE when the backend behind a slot changed), changed processors, executors and
 * sensors swapped under their component, replaced and removed instances retired (closed
 * when drained, module unloaded when unused).  What this version cannot change live is
 * listed in the reply as "restart needed", never silently ignored. */
#include "ggl-build.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "actions.h"
#include "commands.h"
#include "control.h"
#include "engine.h"
#include "engine_conf.h"
#include "environment.h"
#include "health.h"
#include "hostapi.h"
#include "log.h"
#include "memory.h"
#include "registry.h"
#include "reload.h"
#include "resource.h"
#include "sensors.h"
#include "sizing.h"
#include "swap.h"

#define MIGRATION_WAIT_MS 60000 /* a rebind waits this long for the previous migration */
#define MAX_NEW 64              /* instances one reload may open */

static pthread_mutex_t reload_lock = PTHREAD_MUTEX_INITIALIZER;

static void say(struct reload_report *rep, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void say(struct reload_report *rep, const char *fmt, ...)
{
    if (rep->n >= RELOAD_LINES)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(rep->lines[rep->n++], sizeof rep->lines[0], fmt, ap);
    va_end(ap);
    log_info("reload: %s", rep->lines[rep->n - 1]);
}

static int refuse(struct reload_report *rep, enum ggl_status st, const char *msg)
{
    rep->status = st;
    snprintf(rep->error, sizeof rep->error, "%s", msg);
    log_error("reload refused, nothing changed: %s", msg);
    return -1;
}

/* --- comparing settings ----------------------------------------------------------- */

/* A setting's value as text in one canonical form (types and values, not layout). */
static void dump(FILE *f, const config_setting_t *s)
{
    switch (config_setting_type(s)) {
    case CONFIG_TYPE_GROUP:
    case CONFIG_TYPE_LIST:
    case CONFIG_TYPE_ARRAY:
        fputc(config_setting_is_group(s) ? '{' : '(', f);
        for (int i = 0; i < config_setting_length(s); i++) {
            const config_setting_t *e = config_setting_get_elem(s, (unsigned)i);
            if (config_setting_name(e))
                fprintf(f, "%s=", config_setting_name(e));
            dump(f, e);
            fputc(';', f);
        }
        fputc(config_setting_is_group(s) ? '}' : ')', f);
        break;
    case CONFIG_TYPE_INT: fprintf(f, "%d", config_setting_get_int(s)); break;
    case CONFIG_TYPE_INT64: fprintf(f, "%lldL", (long long)config_setting_get_int64(s)); break;
    case CONFIG_TYPE_FLOAT: fprintf(f, "%.17g", config_setting_get_float(s)); break;
    case CONFIG_TYPE_BOOL: fputs(config_setting_get_bool(s) ? "true" : "false", f); break;
    case CONFIG_TYPE_STRING: fprintf(f, "\"%s\"", config_setting_get_string(s)); break;
    default: fputc('?', f);
    }
}

/* Do two settings (either may be NULL: absent) hold the same thing? */
static int same_setting(const config_setting_t *a, const config_setting_t *b)
{
    if (!a || !b)
        return a == b;
    char *ta = NULL, *tb = NULL;
    size_t la = 0, lb = 0;
    FILE *fa = open_memstream(&ta, &la), *fb = open_memstream(&tb, &lb);
    if (fa)
        dump(fa, a), fclose(fa);
    if (fb)
        dump(fb, b), fclose(fb);
    int same = ta && tb && la == lb && memcmp(ta, tb, la) == 0;
    free(ta);
    free(tb);
    return same;
}

static const config_setting_t *top(const struct config *c, const char *name)
{
    return config_setting_get_member(config_root_setting(&c->cfg), name);
}

/* Sections this version applies only at start: named in the reply when they change. */
static void report_restart_needed(const struct config *o, const struct config *n,
                                  struct reload_report *rep)
{
    static const char *const sections[] = {"control", "pools", "memory", "health", "shed",
                                           "actions", "environment", "plugin_dirs",
                                           "log_level", "swap", "engine", "plugins", NULL};
    for (const char *const *s = sections; *s; s++)
        if (!same_setting(top(o, *s), top(n, *s)))
            say(rep, "restart needed: section '%s' changed (not applied)", *s);
}

/* --- checking and opening ------------------------------------------------------------ */

/* Everything `ganglion -t` checks, on the new file. */
static int check_all(const struct config *c, struct conf_error *err)
{
    struct control_settings cs;
    struct pools_conf pools;
    struct actions_conf ac;
    struct health_settings hs;
    struct memory_conf mc;
    struct swap_conf sc;
    unsigned mask;
    return sizing_read(c, &pools, err) < 0 || memory_read_config(c, &mc, &mask, err) < 0 ||
                   health_read_config(c, &hs, err) < 0 || resource_check_config(c, err) < 0 ||
                   actions_read_config(c, &ac, err) < 0 || instances_check(c, err) < 0 ||
                   control_check(c, &cs, err) < 0 || environment_check_config(c, err) < 0 ||
                   swap_read_config(c, &sc, err) < 0 ||
                   engine_read_config(c, NULL, &(struct engine_config){0}, NULL, err) < 0
               ? -1
               : 0;
}

/* The plan of one reload: for each instance of the new file, the live one it keeps
 * or the one opened for it. */
struct plan {
    const struct config *c;
    struct instance *keep[MAX_NEW * 4];  /* per new conf_instance: kept live one, or NULL */
    struct instance *opened[MAX_NEW * 4]; /* per new conf_instance: newly opened, or NULL */
};

static int same_instance(const struct conf_instance *a, const struct conf_instance *b)
{
    return strcmp(a->plugin, b->plugin) == 0 && a->interval_ms == b->interval_ms &&
           same_setting(a->block, b->block);
}

static void close_opened(struct plan *p)
{
    for (size_t i = 0; i < p->c->n_instances; i++)
        if (p->opened[i]) {
            instance_close_one(p->opened[i]);
            free(p->opened[i]);
            p->opened[i] = NULL;
        }
}

/* Open every new or changed tier instance; the others are reported. */
static int open_new(struct plan *p, struct reload_report *rep)
{
    const struct config *c = p->c;
    for (size_t i = 0; i < c->n_instances; i++) {
        const struct conf_instance *ci = &c->instances[i];
        struct instance *old = registry_find(ci->kind, ci->name);
        if (old && same_instance(old->conf, ci)) {
            p->keep[i] = old;
            continue;
        }
        /* a changed processor, executor or sensor is swapped live; an added one waits for
         * a restart (its component's tables are sized at start) */
        int swappable = ci->kind == GGL_KIND_TIER ||
                        (old && ci->kind == GGL_KIND_PROCESSOR && engine_global()) ||
                        (old && ci->kind == GGL_KIND_EXECUTOR && actions_running()) ||
                        (old && ci->kind == GGL_KIND_SENSOR && sensors_uses(old));
        if (!swappable) {
            say(rep, "restart needed: %s '%s' %s (not applied)", ggl_kind_str(ci->kind),
                ci->name, old ? "changed" : "added");
            p->keep[i] = old;
            continue;
        }
        struct instance *inst = calloc(1, sizeof *inst);
        if (!inst || instance_open_one(c, ci, NULL, inst) < 0) {
            struct conf_error err;
            config_error_at(&err, c, ci->block, "%s: %s", inst ? inst->label : ci->name,
                            inst ? inst->reason : "out of memory");
            if (inst)
                instance_close_one(inst);
            free(inst);
            close_opened(p);
            return refuse(rep, GGL_ERROR, err.msg);
        }
        p->opened[i] = inst;
    }
    return 0;
}

/* --- applying ------------------------------------------------------------------------ */

static int switch_over(struct instance *old, struct instance *fresh, struct reload_report *rep);

/* Rebind slot t to inst: MIGRATE when the current backend can be scanned (its entries
 * move with the slot), else a plain rebind. */
static void rebind(int t, const struct instance *inst, struct reload_report *rep)
{
    struct binding *cur = atomic_load(&memory_slot(t)->current);
    if (cur && cur->self == inst->self)
        return;
    int migrate = cur && GGL_HAS_SLOT(cur->vt, struct ggl_tier, scan);
    enum ggl_status st = swap_to_instance(t, inst, migrate, MIGRATION_WAIT_MS);
    if (st == GGL_OK)
        say(rep, "slot %s rebound to %s%s", tier_slot_names[t], inst->label,
            migrate ? " (migrating)" : "");
    else
        say(rep, "slot %s not rebound to %s: %s", tier_slot_names[t], inst->label,
            hostapi_take_reason());
}

/* The instance slot t should be bound to under the plan (state file merged). */
static const struct instance *slot_target(struct plan *p, int t, struct reload_report *rep)
{
    char buf[128];
    const char *want = swap_state_wanted(p->c, t, buf, sizeof buf);
    if (!want) {
        if (slot_bound(memory_slot(t)))
            say(rep, "restart needed: slot %s unbound in the file (still bound)", tier_slot_names[t]);
        return NULL;
    }
    for (size_t i = 0; i < p->c->n_instances; i++) {
        const struct conf_instance *ci = &p->c->instances[i];
        if (ci->kind == GGL_KIND_TIER && strcmp(ci->name, want) == 0)
            return p->opened[i] ? p->opened[i] : p->keep[i];
    }
    return NULL;
}

/* Retire live instances the new file replaced or no longer declares. */
static void retire_replaced(struct plan *p, const struct config *old, struct reload_report *rep)
{
    for (size_t i = 0; i < old->n_instances; i++) {
        const struct conf_instance *oi = &old->instances[i];
        struct instance *live = registry_find(oi->kind, oi->name);
        if (!live)
            continue;
        const struct conf_instance *ni = config_instance(p->c, oi->kind, oi->name);
        size_t k = ni ? (size_t)(ni - p->c->instances) : 0;
        if (ni && p->keep[k] == live)
            continue; /* kept as it is */
        if (oi->kind != GGL_KIND_TIER) {
            if (!ni)
                say(rep, "restart needed: %s '%s' removed (still running)",
                    ggl_kind_str(oi->kind), oi->name);
            continue;
        }
        registry_retire(live);
        say(rep, "%s %s", live->label, ni ? "replaced" : "removed");
    }
}

static void apply(struct plan *p, struct reload_report *rep)
{
    struct config *old = registry_config();
    for (size_t i = 0; i < p->c->n_instances; i++)
        if (p->opened[i]) {
            struct instance *was = registry_find(p->opened[i]->conf->kind, p->opened[i]->conf->name);
            registry_add(p->opened[i]);
            health_register_instance(p->opened[i]);
            say(rep, "%s opened", p->opened[i]->label);
            if (p->opened[i]->conf->kind != GGL_KIND_TIER &&
                switch_over(was, p->opened[i], rep) == 0)
                say(rep, "%s replaced", was->label);
        }
    for (int t = 0; t < SLOT_COUNT; t++) {
        const struct instance *target = slot_target(p, t, rep);
        if (target && target->state == INSTANCE_OPEN)
            rebind(t, target, rep);
    }
    retire_replaced(p, old, rep);
    report_restart_needed(old, p->c, rep);
    registry_reap();
}

int reload_config(struct reload_report *rep)
{
    memset(rep, 0, sizeof *rep);
    pthread_mutex_lock(&reload_lock);
    struct conf_error err;
    const char *path = registry_config()->path;
    struct config *c = config_load(path, &err);
    int rc = -1;
    if (!c || check_all(c, &err) < 0) {
        refuse(rep, GGL_INVALID, err.msg);
        config_free(c);
        goto out;
    }
    struct plan *p = calloc(1, sizeof *p);
    if (!p || c->n_instances > MAX_NEW * 4) {
        refuse(rep, GGL_ERROR, p ? "too many instances for one reload" : "out of memory");
        free(p);
        config_free(c);
        goto out;
    }
    p->c = c;
    if (open_new(p, rep) < 0) {
        free(p);
        config_free(c);
        goto out;
    }
    apply(p, rep);
    registry_set_config(c);
    free(p);
    rc = 0;
    if (rep->n == 0)
        say(rep, "no changes");
out:
    pthread_mutex_unlock(&reload_lock);
    return rc;
}

/* --- PLUGIN.RELOAD --------------------------------------------------------------------- */

/* Move the slots bound to old onto fresh, migrating when old can be scanned: an
 * in-process backend's (mem, cache) entries live in the instance and must move; for an
 * external one (Redis, SQLite on the same settings) the copy finds every entry already
 * there (insert-if-newer: no change) and costs one scan, a price paid for not having to
 * know which backends keep their data outside. */
static void move_slots(struct instance *old, struct instance *fresh, struct reload_report *rep)
{
    for (int t = 0; t < SLOT_COUNT; t++) {
        struct binding *cur = atomic_load(&memory_slot(t)->current);
        if (!cur || cur->self != old->self)
            continue;
        int migrate = GGL_HAS_SLOT(cur->vt, struct ggl_tier, scan);
        enum ggl_status st = swap_to_instance(t, fresh, migrate, MIGRATION_WAIT_MS);
        say(rep, "slot %s %s %s version %s%s%s", tier_slot_names[t],
            st == GGL_OK ? "moved to" : "not moved to", fresh->label,
            fresh->mod->desc->version ? fresh->mod->desc->version : "?",
            migrate ? " (migrating)" : "", st == GGL_OK ? "" : hostapi_take_reason());
    }
}

/* Hand what old served to fresh (slots, task types, actions or sampling) and retire
 * old.  -1 when the component refused (fresh is retired instead; old keeps serving). */
static int switch_over(struct instance *old, struct instance *fresh, struct reload_report *rep)
{
    if (old->conf->kind == GGL_KIND_TIER) {
        move_slots(old, fresh, rep);
    } else {
        struct engine_processor np = {fresh->label, fresh->mod->desc->vtable, fresh->self};
        struct action_executor nx = {fresh->label, fresh->mod->desc->vtable, fresh->self};
        enum ggl_kind k = old->conf->kind;
        if ((k == GGL_KIND_PROCESSOR ? engine_replace_processor(engine_global(), old->self, &np)
             : k == GGL_KIND_EXECUTOR ? actions_replace_executor(old->self, &nx)
                                      : sensors_replace(old, fresh)) < 0) {
            say(rep, "%s kept: %s", old->label, hostapi_take_reason());
            registry_retire(fresh);
            return -1;
        }
    }
    registry_retire(old);
    return 0;
}

static int parse_spec(const char *spec, enum ggl_kind *kind, const char **name)
{
    const char *slash = strchr(spec, '/');
    if (!slash)
        return -1;
    for (uint32_t k = GGL_KIND_TIER; k <= GGL_KIND_SENSOR; k++)
        if (strlen(ggl_kind_str(k)) == (size_t)(slash - spec) &&
            strncmp(spec, ggl_kind_str(k), (size_t)(slash - spec)) == 0) {
            *kind = (enum ggl_kind)k;
            *name = slash + 1;
            return 0;
        }
    return -1;
}

static int reload_plugin_locked(enum ggl_kind kind, const char *name, struct reload_report *rep)
{
    struct instance *olds[MAX_NEW], *fresh[MAX_NEW];
    size_t n = registry_of_plugin(kind, name, olds, MAX_NEW);
    char why[512];
    if (n == 0) {
        snprintf(why, sizeof why, "no live instance of %s/%s", ggl_kind_str(kind), name);
        return refuse(rep, GGL_NOTFOUND, why);
    }
    if (kind == GGL_KIND_PROCESSOR && !engine_global()) {
        snprintf(why, sizeof why, "reloading a %s plugin needs a restart in this version",
                 ggl_kind_str(kind));
        return refuse(rep, GGL_INVALID, why);
    }
    struct module *mod = loader_reload(kind, name, why, sizeof why);
    if (!mod)
        return refuse(rep, GGL_ERROR, why);
    for (size_t i = 0; i < n; i++) {
        fresh[i] = calloc(1, sizeof *fresh[i]);
        if (!fresh[i] || instance_open_one(registry_config(), olds[i]->conf, mod, fresh[i]) < 0) {
            snprintf(why, sizeof why, "%s: %s", olds[i]->label,
                     fresh[i] ? fresh[i]->reason : "out of memory");
            for (size_t k = 0; k <= i; k++) {
                if (fresh[k])
                    instance_close_one(fresh[k]);
                free(fresh[k]);
            }
            loader_unload(mod);
            return refuse(rep, GGL_ERROR, why);
        }
    }
    for (size_t i = 0; i < n; i++) {
        registry_add(fresh[i]);
        if (switch_over(olds[i], fresh[i], rep) < 0)
            continue;
        health_register_instance(fresh[i]);
        say(rep, "%s now runs version %s", fresh[i]->label,
            mod->desc->version ? mod->desc->version : "?");
    }
    registry_reap();
    return 0;
}

int reload_plugin(const char *spec, struct reload_report *rep)
{
    memset(rep, 0, sizeof *rep);
    enum ggl_kind kind;
    const char *name;
    if (parse_spec(spec, &kind, &name) < 0)
        return refuse(rep, GGL_INVALID, "PLUGIN.RELOAD wants kind/name, kind one of tier, "
                                        "processor, executor, sensor");
    pthread_mutex_lock(&reload_lock);
    int rc = reload_plugin_locked(kind, name, rep);
    pthread_mutex_unlock(&reload_lock);
    return rc;
}

/* --- commands ------------------------------------------------------------------------- */

static void reply_report(struct buf *out, int rc, const struct reload_report *rep)
{
    if (rc < 0) {
        const char *word = rep->status == GGL_INVALID ? "INVALID"
                           : rep->status == GGL_NOTFOUND ? "NOTFOUND" : "ERR";
        reply_error(out, "%s %s", word, rep->error);
        return;
    }
    reply_array(out, rep->n);
    for (int i = 0; i < rep->n; i++)
        reply_cstr(out, rep->lines[i]);
}

/* CONFIG.RELOAD: the lines of what changed, or an error naming FILE:LINE. */
void cmd_config_reload(struct cmd_call *call)
{
    struct reload_report *rep = malloc(sizeof *rep);
    if (!rep) {
        reply_error(call->out, "ERR out of memory");
        return;
    }
    int rc = registry_active() ? reload_config(rep) : -1;
    if (!registry_active())
        rep->status = GGL_ERROR, snprintf(rep->error, sizeof rep->error, "no registry");
    reply_report(call->out, rc, rep);
    free(rep);
}

/* PLUGIN.RELOAD kind/name */
void cmd_plugin_reload(struct cmd_call *call)
{
    struct reload_report *rep = malloc(sizeof *rep);
    if (!rep) {
        reply_error(call->out, "ERR out of memory");
        return;
    }
    int rc = reload_plugin(call->req->argv[1], rep);
    reply_report(call->out, rc, rep);
    free(rep);
}
