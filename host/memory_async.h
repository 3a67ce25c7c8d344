/* The asynchronous front of the memory manager, for callers that must not block (the
 * control socket's I/O thread): cache hits can be answered on the calling thread; all
 * else is partitioned by hash(key) over workers that keep each key's requests in order
 * and turn queued writes into one batch per target tier.  Completions run on the worker. */
#ifndef GGL_HOST_MEMORY_ASYNC_H
#define GGL_HOST_MEMORY_ASYNC_H

#include "memory.h"

enum memory_op { MEM_OP_GET, MEM_OP_PUT, MEM_OP_DEL };

struct memory_result {
    enum memory_op op;
    enum ggl_status status;
    struct memory_value value; /* GET: data is malloc'd and owned by the callback */
    int existed;               /* DEL: a live value was there */
    int queued;                /* PUT: held for a tier that is down (status OK): +QUEUED */
    char reason[160];          /* why, when status is not OK/NOTFOUND */
};

/* Called once per request, on the calling thread (cache hit) or a worker. */
typedef void (*memory_done_fn)(void *arg, struct memory_result *r);

int memory_async_start(const struct memory_async_conf *c);
/* Finish everything queued and stop the workers; later submissions answer
 * GGL_UNAVAILABLE.  The queues stay until memory_async_free, so a submitter racing the
 * stop never touches freed memory: free only once nothing can submit any more. */
void memory_async_stop(void);
void memory_async_free(void);

/* Submit.  GGL_OK: accepted, and `done` runs exactly once — before the call returns
 * for a cache hit, later on a worker otherwise.  GGL_RETRY (reason set, `done` never
 * runs): the queue is full.  GGL_UNAVAILABLE: not started.  Keys and values are copied. */
enum ggl_status memory_async_get(const void *key, size_t len, memory_done_fn done, void *arg);
/* A read for the workers, queued behind every request on the same key submitted before
 * it, without asking the cache first (the caller did, or must not). */
enum ggl_status memory_async_read(const void *key, size_t len, memory_done_fn done, void *arg);
enum ggl_status memory_async_put(const void *key, size_t len, const void *value, size_t vlen,
                                 const struct memory_write *w, memory_done_fn done, void *arg);
enum ggl_status memory_async_del(const void *key, size_t len, memory_done_fn done, void *arg);
/* 1 when a put its tier refuses for now is held and answered QUEUED (queue_writes):
 * only the workers hold writes, so such puts must be submitted, not made in place. */
int memory_async_queues_writes(void);

#endif
