/* Plugin instances: load, validate the config block against the plugin's declared
 * settings, open, and close in reverse order. */
#include "ggl-build.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "instance.h"
#include "log.h"

/* Load the plugin (unless inst->mod is given) and check the block; 0, or -1 with
 * inst->reason set. */
static int instance_prepare(const struct config *c, struct instance *inst)
{
    const struct conf_instance *ci = inst->conf;
    struct conf_error cerr;
    snprintf(inst->label, sizeof inst->label, "%s/%s[%s]", ggl_kind_str(ci->kind), ci->plugin,
             ci->name);
    if (!inst->mod)
        inst->mod = loader_load(ci->kind, ci->plugin, inst->reason, sizeof inst->reason);
    if (!inst->mod) {
        inst->state = INSTANCE_REFUSED;
        return -1;
    }
    if (config_check_instance(c, ci, inst->mod->desc->settings, &cerr) < 0) {
        snprintf(inst->reason, sizeof inst->reason, "%s", cerr.msg);
        inst->state = INSTANCE_REFUSED;
        return -2; /* a config error: fatal whether required or not */
    }
    return 0;
}

int instances_check(const struct config *c, struct conf_error *err)
{
    for (size_t i = 0; i < c->n_instances; i++) {
        struct instance inst = {.conf = &c->instances[i]};
        int rc = instance_prepare(c, &inst);
        if (rc == -2 || (rc < 0 && inst.conf->required)) {
            snprintf(err->msg, sizeof err->msg, "%s", inst.reason);
            return -1;
        }
        if (rc < 0)
            log_warn("%s: %s (not required; the host would start without it)", inst.label,
                     inst.reason);
    }
    return 0;
}

/* Open a prepared instance; 0, or -1 with the plugin's reason. */
static int instance_start(struct instance *inst)
{
    const struct vtable_head *vt = inst->mod->desc->vtable;
    inst->pconf = (struct ggl_conf){inst->conf->block, inst->mod->desc->settings};
    hostapi_init(&inst->host, inst->label);
    hostapi_clear_reason();
    enum ggl_status st = vt->open(&inst->host, &inst->pconf, &inst->self);
    if (st == GGL_OK) {
        inst->state = INSTANCE_OPEN;
        log_info("%s: open", inst->label);
        return 0;
    }
    const char *why = hostapi_take_reason();
    snprintf(inst->reason, sizeof inst->reason, "open failed: %s%s%s", ggl_status_str(st),
             why[0] ? ": " : "", why);
    inst->state = INSTANCE_FAILED;
    return -1;
}

int instance_open_one(const struct config *c, const struct conf_instance *ci,
                      struct module *mod, struct instance *inst)
{
    memset(inst, 0, sizeof *inst);
    inst->conf = ci;
    inst->mod = mod;
    if (instance_prepare(c, inst) < 0)
        return -1;
    return instance_start(inst);
}

void instance_close_one(struct instance *inst)
{
    if (inst->state != INSTANCE_OPEN || inst->life == LIFE_CLOSED)
        return;
    const struct vtable_head *vt = inst->mod->desc->vtable;
    vt->close(inst->self);
    inst->life = LIFE_CLOSED;
    log_info("%s: closed", inst->label);
}

int instances_open(const struct config *c, struct instance **out, size_t *n,
                   struct conf_error *err)
{
    struct instance *v = calloc(c->n_instances ? c->n_instances : 1, sizeof *v);
    if (!v) {
        snprintf(err->msg, sizeof err->msg, "out of memory");
        return -1;
    }
    *out = v;
    *n = 0;
    for (size_t i = 0; i < c->n_instances; i++) {
        struct instance *inst = &v[(*n)++];
        inst->conf = &c->instances[i];
        int rc = instance_prepare(c, inst);
        if (rc == 0 && (rc = instance_start(inst)) == 0)
            continue;
        if (rc == -2 || inst->conf->required) {
            snprintf(err->msg, sizeof err->msg, "%s: %s%s", inst->label, inst->reason,
                     rc == -2 ? "" : " (required)");
            return -1;
        }
        log_warn("%s: %s; continuing without it", inst->label, inst->reason);
    }
    return 0;
}

void instances_close(struct instance *v, size_t n)
{
    while (n-- > 0)
        instance_close_one(&v[n]);
    free(v);
}
