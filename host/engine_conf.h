/* Reading the `engine` config section (engine_conf.c) into an engine_config. */
#ifndef GGL_HOST_ENGINE_CONF_H
#define GGL_HOST_ENGINE_CONF_H

#include "config.h"
#include "engine.h"
#include "sizing.h"

/* c may be NULL (all defaults); s (may be NULL) gives the workers and seed weights.
 * *drain_ms (may be NULL) gets the shutdown drain time.  Errors are FILE:LINE. */
int engine_read_config(const struct config *c, const struct sizing *s, struct engine_config *cfg,
                       uint64_t *drain_ms, struct conf_error *err);

#endif
