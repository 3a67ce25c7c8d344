/* Work that must not run on the control I/O thread: a small worker pool behind a
 * bounded queue.  Finished jobs return to the loop through a lock-free multi-producer
 * stack and one uv_async wake-up; workers never see connections. */
#ifndef GGL_HOST_OFFLOAD_H
#define GGL_HOST_OFFLOAD_H

#include <stdint.h>
#include <uv.h>

#include "resp.h"

struct offload;

struct job {
    struct job *next;                /* queue link, then completion-stack link */
    void (*run)(struct job *j);      /* on a worker: read req, write reply */
    const void *fn;                  /* what to run (the command), for run() */
    struct offload *pool;            /* for offload_wait() */
    struct request req;              /* owned copy of the arguments */
    struct buf reply;                /* written by the worker only */
    int cancelled;                   /* never ran: the pool stopped first */
    uint64_t queued_ns;
    void *owner;                     /* loop thread only: who waits (NULL: nobody) */
};

/* Called on the loop thread for each finished (or cancelled) job. */
typedef void (*job_done_fn)(struct job *j, void *arg);

struct offload *offload_new(uv_loop_t *loop, int threads, size_t max_queue, job_done_fn done,
                            void *arg);
/* A job owning a copy of req's arguments, or NULL. */
struct job *job_new(const struct request *req, void (*run)(struct job *), const void *fn);
void job_free(struct job *j);
/* Queue a job; -1 when the queue is full or the pool is stopping (answer -BUSY). */
int offload_submit(struct offload *o, struct job *j);
/* Any thread: hand back a job finished outside the pool (a deferred reply: the job was
 * created by conn_defer and its reply written by whoever completed it). */
void offload_complete(struct offload *o, struct job *j);
/* On a worker: wait ms milliseconds; returns -1 early when the pool is stopping. */
int offload_wait(struct offload *o, int64_t ms);
/* Loop thread: wake waiters, join the workers, complete what is left as cancelled,
 * then close the wake-up handle and free the pool once the loop has let go of it. */
void offload_stop(struct offload *o);

#endif
