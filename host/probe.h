/* The plugin probe: before the host first opens a plugin file, a `ganglion-probe`
 * helper (posix_spawn, never fork in the threaded host) loads it, checks its descriptor
 * and opens and closes it once; a file that crashes or hangs there is refused.  Each
 * verdict is remembered by (path, mtime, size) until the file changes. */
#ifndef GGL_HOST_PROBE_H
#define GGL_HOST_PROBE_H

#include <stddef.h>
#include <stdint.h>
#include <ganglion/abi.h>

#include "config.h"

struct probe_settings {
    int enabled;           /* plugins.probe */
    int64_t timeout_ms;    /* plugins.probe_timeout_ms */
};

/* Read and check the `plugins { }` section (defaults when absent). */
int probe_read_config(const struct config *c, struct probe_settings *out, struct conf_error *err);
/* Turn probing on for later loads, running `helper` (NULL: the one beside this binary
 * in the build tree, else the installed one).  Off until called: the helper itself and
 * unit tests load plugins directly. */
void probe_enable(const struct probe_settings *s, const char *helper);
void probe_disable(void);
/* Probe the file once per (path, mtime, size): 0 if it may be loaded, else -1 with why
 * ("probe: killed by signal 11 (Segmentation fault)", "probe: no answer in 2000 ms").
 * 0 at once when probing is off. */
int probe_check(const char *path, enum ggl_kind kind, char *why, size_t len);
/* Helpers started so far (tests: a remembered verdict starts none). */
unsigned probe_spawned(void);
/* Forget every remembered verdict. */
void probe_forget(void);

#endif
