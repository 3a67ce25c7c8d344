/* A host assembled for tests and benchmarks: a temporary directory, the loader over
 * the test and build plugin directories, a config given as text, its plugin instances
 * and the memory manager bound to them. */
#ifndef GGL_HOST_FIXTURE_H
#define GGL_HOST_FIXTURE_H

#include "instance.h"
#include "memory.h"

struct host_fixture {
    char dir[64];          /* the temporary directory, removed with its files on close */
    struct config *conf;
    struct instance *inst;
    size_t n;
};

/* conf_fmt may use %1$s for the directory (e.g. path = "%1$s/ltm.db").  0, or -1 with
 * the reason on stderr. */
int host_fixture_open(struct host_fixture *f, const char *conf_fmt);
void host_fixture_close(struct host_fixture *f);

#endif
