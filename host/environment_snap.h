/* Environment snapshots in SQLite (environment_snap.c): one table
 * state(key, value, updated_ms, source), rewritten whole in one transaction. */
#ifndef GGL_HOST_ENVIRONMENT_SNAP_H
#define GGL_HOST_ENVIRONMENT_SNAP_H

#include <stddef.h>
#include <stdint.h>

struct env_snap;

typedef void (*env_snap_row_fn)(void *arg, const char *key, const void *value, size_t len,
                                uint64_t at_ms, const char *source);

/* Open (creating) the file and its table; NULL with err filled. */
struct env_snap *env_snap_open(const char *path, char *err, size_t err_len);
void env_snap_close(struct env_snap *s);
/* begin, put every key, commit(ok): the previous snapshot stays until the commit. */
int env_snap_begin(struct env_snap *s);
int env_snap_put(struct env_snap *s, const char *key, const char *value, size_t len,
                 uint64_t at_ms, const char *source);
int env_snap_commit(struct env_snap *s, int ok);
/* Every stored row, by key; the number of rows or -1. */
long env_snap_load(struct env_snap *s, env_snap_row_fn fn, void *arg);

#endif
