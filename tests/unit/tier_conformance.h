/* The tier conformance suite: the behaviour every tier backend must have, run by each
 * backend's test program against the test host (fake clock). */
#ifndef GGL_TIER_CONFORMANCE_H
#define GGL_TIER_CONFORMANCE_H

#include <ganglion/ganglion.h>

struct tier_fixture {
    const struct ggl_plugin *entry;   /* the backend under test */
    const char *const *pairs;         /* its config, "key", "value", ..., NULL */
    void (*before)(void);             /* optional: runs before each open (e.g. fresh file) */
    void (*after)(void);              /* optional: runs after each close */
};

/* Run the whole suite; returns the number of failed tests (cmocka's result). */
int tier_conformance_run(const char *name, const struct tier_fixture *f);

#endif
