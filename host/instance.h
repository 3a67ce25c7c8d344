/* Plugin instances: each named block of the config opened on its plugin, in file order
 * (backends, processors, executors, sensors), closed in reverse. */
#ifndef GGL_HOST_INSTANCE_H
#define GGL_HOST_INSTANCE_H

#include <stdatomic.h>

#include "config.h"
#include "hostapi.h"
#include "loader.h"

enum instance_state { INSTANCE_OPEN, INSTANCE_REFUSED, INSTANCE_FAILED };
/* Where an instance is in its life (registry.c): serving, replaced or removed and waiting
 * for its callers, past the drain deadline and still in use, or closed. */
enum instance_life { LIFE_LIVE, LIFE_DRAINING, LIFE_ZOMBIE, LIFE_CLOSED };

struct instance {
    const struct conf_instance *conf;
    struct module *mod;          /* NULL when refused */
    void *self;                  /* the plugin's state, from open */
    struct ggl_host host;
    struct ggl_conf pconf;
    char label[160];             /* "tier/mem[stm]": log prefix and metric label */
    enum instance_state state;
    char reason[384];
    enum instance_life life;     /* LIFE_LIVE from open; registry.c moves it on */
    uint64_t retired_ms;         /* host clock: when it was replaced or removed */
    _Atomic long pending;        /* its done callbacks not yet run (hostapi.c) */
};

/* Load every instance's plugin and check its block (no open): what `ganglion -t` does.
 * Returns -1 on the first config error or refused required plugin. */
int instances_check(const struct config *c, struct conf_error *err);
/* Load, check and open every instance.  A refused or failing instance is kept with its
 * reason; returns -1 (err filled) only if one marked required failed. */
int instances_open(const struct config *c, struct instance **out, size_t *n,
                   struct conf_error *err);
void instances_close(struct instance *v, size_t n);
/* Open one instance of block ci on module mod (NULL: load it by name) into inst; 0, or
 * -1 with inst->reason set (and its state REFUSED or FAILED).  Used by reload. */
int instance_open_one(const struct config *c, const struct conf_instance *ci,
                      struct module *mod, struct instance *inst);
/* Close an open instance (its module stays loaded). */
void instance_close_one(struct instance *inst);

/* The vtable prefix common to all four kinds. */
struct vtable_head {
    uint32_t size;
    uint32_t flags;
    enum ggl_status (*open)(const struct ggl_host *host, const struct ggl_conf *conf, void **self);
    void (*close)(void *self);
};

#endif
