/* A small test host: the services table backed by in-test implementations and a fake
 * clock, which plugin unit tests link instead of the daemon. */
#ifndef GGL_TESTHOST_H
#define GGL_TESTHOST_H

#include <ganglion/ganglion.h>

/* An instance config: "key", "value" pairs (NULL-terminated) plus the plugin's settings
 * for defaults.  Values are text, parsed by the accessor for the declared type. */
struct ggl_conf {
    const char *const *pairs;
    const struct ggl_setting *settings;
};

/* The table, with the fake clock at `start_ms`.  One per process. */
const struct ggl_host *testhost_init(uint64_t start_ms);
void testhost_advance(uint64_t ms);
/* The last reason a plugin left (then cleared). */
const char *testhost_reason(void);
/* What the in-test services saw: submissions, state and memory. */
unsigned testhost_tasks_submitted(void);
unsigned testhost_actions_submitted(void);
const char *testhost_state(const char *key);
/* Open the plugin in `entry` with config pairs; asserts open returned `expect`. */
void *testhost_open(const struct ggl_plugin *entry, const char *const *pairs,
                    enum ggl_status expect);
void testhost_fini(void);

#endif
