/* Memory maintenance: moves entries STM -> IM -> LTM by a documented score, purges
 * tombstones that no longer shadow anything; a thread runs one cycle per interval. */
#ifndef GGL_HOST_MAINTENANCE_H
#define GGL_HOST_MAINTENANCE_H

#include <stddef.h>
#include <stdint.h>

#include "memory.h"

struct maintenance_report {
    size_t scanned, moved_stm_im, moved_im_ltm, purged, failed, touched, cache_live;
    uint64_t duration_us;
};

/* The score of an entry at `now` (see maintenance.c). */
double maintenance_score(const struct memory_conf *m, const struct ggl_entry *e, uint64_t now);
/* Would the policy move e out of `tier` at `now`? */
int maintenance_should_move(const struct memory_conf *m, int tier, const struct ggl_entry *e,
                            uint64_t now);
/* One cycle over every tier pair, on the calling thread. */
void maintenance_cycle(struct maintenance_report *r);
/* Run a cycle every maintenance_interval_ms on a thread of its own. */
int maintenance_start(void);
void maintenance_stop(void);

#endif
