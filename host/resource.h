/* Resource control (the seed's resource controller): limits on environment readings
 * (system memory in use, load average, free disk for the LTM file, any state key) put
 * the host into shedding — low-priority submissions refused with -BUSY, pools held at
 * their minimum — until every reading is back inside its limit with a margin. */
#ifndef GGL_HOST_RESOURCE_H
#define GGL_HOST_RESOURCE_H

#include <ganglion/host.h>

struct config;
struct conf_error;

#define RESOURCE_MAX_RULES 32

/* Check the `shed` list and the shedding keys of `health` (for ganglion -t). */
int resource_check_config(const struct config *c, struct conf_error *err);
/* Read them; no rules means the host never sheds. */
int resource_init(const struct config *c, struct conf_error *err);
/* Feed it every numeric environment update (after environment_start). */
int resource_attach(void);
void resource_fini(void);

/* A reading of state key `key` (from the environment, or a test): re-evaluates the
 * rules that watch it.  Keys no rule names are ignored cheaply. */
void resource_observe(const char *key, double value);
/* Is the host shedding? */
int resource_shedding(void);
/* May a submission of this priority be admitted now?  A refusal is counted; the
 * reason (which reading is over which limit) is left with hostapi_set_reason. */
int resource_admit(enum ggl_priority prio);

#endif
