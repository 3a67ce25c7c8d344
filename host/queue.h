/* A bounded four-priority queue of pointers with ageing, batch pop, blocking consumers
 * and delayed (due-time) items for retries.  Full at admission means GGL_RETRY.  The
 * rules (capacity, reserve, ageing) are in the header comment of queue.c. */
#ifndef GGL_HOST_QUEUE_H
#define GGL_HOST_QUEUE_H

#include <stddef.h>
#include <stdint.h>
#include <ganglion/ganglion.h>

#define QUEUE_LEVELS 4 /* GGL_PRIO_CRITICAL .. GGL_PRIO_LOW */

struct queue_config {
    const char *name;       /* metric label; borrowed, must outlive the queue */
    size_t capacity;        /* ready + delayed items, all priorities together */
    size_t critical_reserve;/* slots only GGL_PRIO_CRITICAL may take (< capacity) */
    uint64_t age_ms;        /* ageing step; 0 = strict priority */
};

struct queue;

struct queue *queue_new(const struct queue_config *cfg);
/* Frees the queue; items still inside are the caller's (see queue_drain). */
void queue_free(struct queue *q);

/* Admit an item now.  GGL_RETRY when full (counted), GGL_UNAVAILABLE once closed. */
enum ggl_status queue_push(struct queue *q, void *item, enum ggl_priority prio);
/* Admit an item that becomes ready at host-clock time due_ms (a delayed retry). */
enum ggl_status queue_push_at(struct queue *q, void *item, enum ggl_priority prio,
                              uint64_t due_ms);

/* Take up to max ready items in service order.  Blocks up to timeout_ms (real time;
 * < 0 forever, 0 never) while nothing is ready.  Returns 0 on timeout, and at once when
 * the queue is closed and nothing is ready. */
size_t queue_pop_batch(struct queue *q, void **out, size_t max, int64_t timeout_ms);

/* Wake every waiting consumer to re-read the clock (after a fake clock moved). */
void queue_kick(struct queue *q);
/* Refuse new items and wake all consumers; ready items can still be popped. */
void queue_close(struct queue *q);
/* Remove up to max items, ready or delayed, without waiting (shutdown). */
size_t queue_drain(struct queue *q, void **out, size_t max);

size_t queue_length(struct queue *q);  /* ready + delayed */
/* Ready items (due, not yet popped), without the lock: a snapshot that pushes and pops
 * may have changed by the time it is used. */
size_t queue_ready(const struct queue *q);
/* Make the delayed items due by host-clock time `now` ready (a pop does it too);
 * returns the ready count. */
size_t queue_promote(struct queue *q, uint64_t now);

#endif
