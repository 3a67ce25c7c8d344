/* The registry of plugin instances: those opened at start and those a reload or a
 * PLUGIN.RELOAD opened later, each live, draining (replaced or removed, callers still
 * inside), zombie (past the drain deadline, still in use: never unloaded) or closed. */
#ifndef GGL_HOST_REGISTRY_H
#define GGL_HOST_REGISTRY_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "instance.h"

/* Adopt the instances opened at start (v[n], freed at registry_fini) and the config
 * they came from (owned by the caller until registry_set_config takes another). */
int registry_init(struct instance *v, size_t n, struct config *c, int64_t drain_deadline_ms);
/* Close every instance still open (newest first) and unload nothing: loader_fini does. */
void registry_fini(void);
int registry_active(void);

/* Take ownership of a heap instance opened by reload. */
int registry_add(struct instance *inst);
/* The live instance of kind named name, or NULL.  Instances are never freed while the
 * host runs, so the pointer stays valid. */
struct instance *registry_find(enum ggl_kind kind, const char *name);
/* Live instances of kind on plugin `plugin` (up to max), for PLUGIN.RELOAD. */
size_t registry_of_plugin(enum ggl_kind kind, const char *plugin, struct instance **out,
                          size_t max);
/* Mark a replaced or removed instance draining: it is closed once no caller uses it. */
void registry_retire(struct instance *inst);
/* Close drained instances and unload modules no instance uses; mark zombies. */
void registry_reap(void);
/* Call fn for every instance (PLUGIN.LIST), in open order, under the registry lock. */
void registry_each(void (*fn)(void *arg, const struct instance *inst), void *arg);
size_t registry_count(size_t *open);
uint64_t registry_zombies(void);
size_t registry_reloads(void);   /* configs installed by reloads since the start */

/* The config running now; a reload installs the new one (the old stays allocated:
 * instances still point into it). */
struct config *registry_config(void);
void registry_set_config(struct config *c);

#endif
