/* A bounded store of the outcomes of asynchronous work (tasks, actions) keyed by a
 * 64-bit id: the ids still pending (queued or running), the finished results with
 * expiry on the host clock, and the bounded set of parked `RESULT id WAIT ms` requests.
 * Shared by the processing engine (TASK.*) and the action system (ACTION.*). */
#ifndef GGL_HOST_RESULTS_H
#define GGL_HOST_RESULTS_H

#include <stddef.h>
#include <stdint.h>
#include <ganglion/ganglion.h>

#include "resp.h"

struct job;
struct cmd_call;

/* How a piece of work ended. */
enum result_status {
    RESULT_OK = 0,     /* the plugin returned GGL_OK; data is its output */
    RESULT_FAILED,     /* an error, or GGL_RETRY after the last retry */
    RESULT_INVALID,    /* GGL_INVALID: bad input, never retried */
    RESULT_TIMEOUT,    /* its deadline passed first; a late result is discarded */
    RESULT_CANCELLED,  /* cancelled (or dropped at shutdown) before it finished */
};

/* Where an id is. */
enum result_state { RESULT_UNKNOWN = 0, RESULT_QUEUED, RESULT_RUNNING, RESULT_DONE };

/* "ok", "failed", "invalid", "timeout", "cancelled" */
const char *result_status_str(enum result_status s);
/* "unknown", "queued", "running", "done" */
const char *result_state_str(enum result_state s);

struct results_config {
    const char *name;      /* INFO section and metric prefix, e.g. "engine"; borrowed */
    size_t max_results;    /* ids held at once, pending and finished together (>= 1) */
    size_t max_waiters;    /* parked WAIT requests at once */
    size_t max_data;       /* bytes of one result's data (0: no limit) */
    uint64_t ttl_ms;       /* a finished result is kept this long (host clock; >= 1) */
    int timer_thread;      /* 1: a thread of the store answers waiters at their deadline
                            * and drops expired results; 0: the owner calls results_tick */
    /* How a parked request's reply is handed back (NULL: offload_complete(job->pool,
     * job)).  Tests capture replies with it. */
    void (*complete)(struct job *job);
    /* Appended.  1: a full store evicts its oldest finished result, even one not yet
     * expired (counted in <name>_results_evicted), and refuses only when every id it
     * holds is pending; 0: refuse while full of unexpired results (see below). */
    int evict_unread;
};

/* Capacity policy (nothing is dropped silently):
 *  - Admission reserves the id's place: results_reserve refuses (GGL_RETRY, counted in
 *    <name>_results_refused; the client sees -BUSY) when max_results ids are held and
 *    none of the finished ones has expired.  Expired results go first, oldest first,
 *    so a finished result always has its place and is never evicted before its TTL.
 *    With evict_unread, the oldest finished result goes instead of the refusal, so
 *    admission is bounded by the pending ids alone (a result not read within
 *    max_results later submissions is lost, counted).  Without it the sustained rate is
 *    at most max_results / ttl_ms.
 *  - Data longer than max_data is not kept: the result is stored as RESULT_FAILED with
 *    a reason saying so (counted in <name>_results_oversized).
 *  - A result arriving for an id no longer pending (cancelled, timed out, expired) is
 *    discarded and counted in <name>_results_late.
 *  - At most max_waiters requests park; one more is answered -BUSY (counted in
 *    <name>_waiters_refused).
 *
 * Thread safety: every function may be called from any thread, except results_answer*
 * (the control I/O thread, inside a command handler). */
struct results;

struct results *results_new(const struct results_config *cfg);
/* Answers parked waiters (as results_close_waiters), stops the timer thread, frees. */
void results_free(struct results *r);

/* Admit new work: a fresh id (never 0; increasing), state queued.  GGL_RETRY when full. */
enum ggl_status results_reserve(struct results *r, uint64_t *id);
/* The id starts running.  Returns 0, or -1 when it is no longer pending (cancelled or
 * timed out meanwhile): then do not run it. */
int results_start(struct results *r, uint64_t id);
/* Back to queued (waiting for a retry).  0, or -1 when no longer pending. */
int results_requeue(struct results *r, uint64_t id);
/* Store the outcome (data and reason are copied; reason may be NULL) and answer the
 * id's waiters.  Returns 0, or -1 when the id was not pending: the late result is
 * discarded (counted). */
int results_finish(struct results *r, uint64_t id, enum result_status status,
                   const void *data, size_t len, const char *reason);
/* Finish a pending id as RESULT_CANCELLED (reason may be NULL).  Returns 1 when it was
 * pending, 0 when it had already finished, -1 when unknown. */
int results_cancel(struct results *r, uint64_t id, const char *reason);

/* A copy of a finished result. */
struct result_view {
    enum result_status status;
    void *data;             /* malloc'd copy (NULL when len is 0); result_view_free */
    size_t len;
    char reason[256];
    uint64_t finished_ms;   /* host clock */
};
/* The id's state; when RESULT_DONE and out is not NULL, *out gets a copy. */
enum result_state results_get(struct results *r, uint64_t id, struct result_view *out);
void result_view_free(struct result_view *v);

/* Reply encodings, the same for every user of the store:
 *  a result: *3 status-word, data (bulk), reason (bulk, "" when none);
 *  a state:  +queued / +running / +done / +unknown. */
void results_reply(struct buf *out, const struct result_view *v);
void results_reply_state(struct buf *out, enum result_state s);

/* I/O thread, in a command handler: answer `RESULT id [WAIT ms]`.  Finished: the result.
 * Unknown (never existed or expired): -NOTFOUND.  Pending and wait_ms 0: nil.  Pending
 * and wait_ms > 0: the request is parked (conn_defer; no worker held, the I/O thread
 * goes on) until the result arrives, answered as above, or wait_ms passes (nil);
 * -BUSY when max_waiters are parked. */
void results_answer(struct results *r, struct cmd_call *call, uint64_t id, uint64_t wait_ms);
/* I/O thread: answer `STATUS id` with results_reply_state. */
void results_answer_status(struct results *r, struct cmd_call *call, uint64_t id);

/* The layer under results_answer: park `job` (from conn_defer) until id finishes or the
 * host clock reaches deadline_ms; it is completed through cfg.complete with its reply
 * written.  GGL_RETRY (counted) when max_waiters are parked: the job is untouched and
 * the caller answers it.  Otherwise GGL_OK: parked, or answered at once when the id is
 * already finished or unknown or waiters are closed. */
enum ggl_status results_park(struct results *r, uint64_t id, struct job *job,
                             uint64_t deadline_ms);

/* Answer waiters whose deadline has passed and drop expired results, by the host clock.
 * Returns the host-clock time of the next waiter deadline or expiry (UINT64_MAX: none;
 * expiry sweeps at most every 100 ms: an expired result is invisible anyway).
 * The timer thread calls it; with timer_thread 0 (tests with a fake clock) call it. */
uint64_t results_tick(struct results *r);
/* Timer thread: re-read the host clock now (after a fake clock moved). */
void results_kick(struct results *r);
/* Shutdown, before the control socket stops: answer every parked waiter now (-ERR
 * shutting down when still pending) and park no more. */
void results_close_waiters(struct results *r);

/* Appended for hot paths (the engine): results_reserve that also hands back the id's
 * entry, and a start through it that takes no lock: 0 when the id was pending (now
 * running), -1 when it was cancelled, timed out or has gone (the handle is then stale;
 * it stays safe to pass: entries live as long as the store). */
struct result_handle;
enum ggl_status results_reserve_handle(struct results *r, uint64_t *id, struct result_handle **h);
int results_start_handle(struct results *r, struct result_handle *h, uint64_t id);
/* results_finish(id, RESULT_OK, data, len, NULL) of n ids (a worker's batch of short
 * tasks), through their handles without the store's lock unless requests are parked on
 * them; won is set as that call's return would be 0. */
struct result_ok {
    uint64_t id;
    struct result_handle *handle; /* from results_reserve_handle (NULL: by id, locked) */
    const void *data;       /* copied */
    size_t len;
    int won;
};
void results_finish_ok(struct results *r, struct result_ok *items, size_t n);
/* 1 while the id is still queued or running (not cancelled, timed out or finished);
 * lock-free, for a running task to poll. */
int results_handle_pending(const struct result_handle *h, uint64_t id);

struct results_stats {
    size_t pending, finished, waiters;
    double refused, expired, late, oversized, waiters_refused, waiters_timed_out;
    double evicted; /* appended: finished results evicted before their TTL */
};
/* Also refreshes the <name>_results_held gauge (not updated on every reserve). */
void results_stats(struct results *r, struct results_stats *out);

#endif
