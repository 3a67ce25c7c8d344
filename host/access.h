/* Access counts and last-access times, kept in the host so that reads never become
 * tier writes; maintenance flushes them into the entries once per cycle.  A restart
 * loses the counts of at most one maintenance interval. */
#ifndef GGL_HOST_ACCESS_H
#define GGL_HOST_ACCESS_H

#include <stddef.h>
#include <stdint.h>

typedef void (*access_apply_fn)(void *arg, const void *key, size_t len, uint64_t count,
                                uint64_t last_ms);

/* Size the table (keys tracked between two flushes); keys beyond it are not counted
 * and the loss shows in the memory_access_dropped_total metric. */
int access_init(size_t capacity);
void access_fini(void);
void access_record(const void *key, size_t len, uint64_t now_ms);
/* Take every recorded key (the table starts empty again) and call apply on each. */
size_t access_flush(access_apply_fn apply, void *arg);

#endif
