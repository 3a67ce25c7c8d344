/* The sensor scheduler (sensors.c): one thread runs every open sensor instance at its
 * own interval from a timer heap on the host clock, writing each reading into the
 * environment as "<instance>.<key>".  A sensor failing `sensor_backoff_after` times in
 * a row has its interval doubled per further failure, up to sensor_backoff_max_ms; one
 * good sample restores it. */
#ifndef GGL_HOST_SENSORS_H
#define GGL_HOST_SENSORS_H

#include <stdint.h>
#include <stdio.h>

#include "environment.h"
#include "instance.h"

/* Start the thread over the open sensors of inst[n] (none: no thread).  Each is sampled
 * once at start.  -1 with err filled. */
int sensors_start(struct instance *inst, size_t n, const struct env_conf *conf,
                  struct conf_error *err);
void sensors_stop(void);
/* Sample every sensor due at the host clock's now on the calling thread (serialised
 * with the scheduler thread): tests move the fake clock, then call this.  Returns when
 * the next one is due. */
uint64_t sensors_run_due(void);
/* The interval a sensor waits after `failures` consecutive failed samples. */
int64_t sensors_backoff(int64_t interval_ms, unsigned failures, int64_t after, int64_t max_ms);
/* One line per sensor for INFO environment. */
void sensors_info(FILE *f);
/* Sample fresh instead of old from now on (hot-swap); a sample in flight ends first, so
 * once this returns nothing calls old.  -1 (reason set): old is not sampled. */
int sensors_replace(const struct instance *old, struct instance *fresh);
/* Is inst sampled by the scheduler? */
int sensors_uses(const struct instance *inst);

#endif
