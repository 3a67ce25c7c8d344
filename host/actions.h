/* The action system (the seed's ActionSystem): a bounded priority queue of actions with
 * retries held in the same queue's due-time heap, execution workers from the `action`
 * pool size, executors chosen by action name, results in the shared results store,
 * dead letters, idempotency keys, and feedback (callback, memory, environment state)
 * delivered by feedback threads so execution never waits for it.  Rules in actions.c. */
#ifndef GGL_HOST_ACTIONS_H
#define GGL_HOST_ACTIONS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <ganglion/ganglion.h>

#include "action_dead.h"
#include "config.h"
#include "queue.h"

struct cmd_call;

/* The `actions` config section (documented key by key in actions_conf.c). */
struct actions_conf {
    int64_t default_timeout_ms, max_timeout_ms;
    int64_t default_retries, max_retries;
    int64_t backoff_base_ms, backoff_max_ms;
    int64_t max_payload;
    int64_t results_max, result_ttl_ms, max_waiters, max_result_bytes;
    int64_t dead_max, dedup_max, dedup_window_ms;
    const char *feedback_memory_prefix; /* "": no memory feedback */
    int64_t feedback_memory_ttl_ms;
    const char *feedback_state_prefix;  /* "": no state feedback */
    int64_t shutdown_deadline_ms, abandon_grace_ms, watchdog_ms;
    int timer_thread;                   /* not a key: 0 in tests driving results_tick */
};

/* Read and check the section (absent: defaults).  -1 with err as FILE:LINE. */
int actions_read_config(const struct config *c, struct actions_conf *ac, struct conf_error *err);

/* An executor instance the system may call. */
struct action_executor {
    const char *label;               /* "executor/shell[shell]"; borrowed */
    const struct ggl_executor *vt;
    void *self;
};

/* Start: the queue from qc (capacity bounds every admitted, unfinished action), `workers`
 * execution threads and `feedback_workers` feedback threads.  0, or -1 (logged).  With 0
 * workers nothing runs until actions_run_ready is called (tests on a fake clock). */
/* Serve the actions of executor instance old_self with nx instead (PLUGIN.RELOAD); runs
 * in flight finish on the old one.  -1 (reason set) when it is not running or has
 * per-thread slots. */
int actions_replace_executor(const void *old_self, const struct action_executor *nx);
/* Runs in flight on executor instance self, or -1 while it still serves its actions. */
long actions_executor_refs(const void *self);

int actions_start(const struct actions_conf *ac, const struct queue_config *qc,
                  const struct action_executor *ex, size_t n_ex, unsigned workers,
                  unsigned feedback_workers);
/* Stop admitting; run ready actions until the shutdown deadline; cancel what is left
 * (actions waiting for a retry, and ready ones the deadline left), counted and logged;
 * deliver every outcome's feedback; join the threads.  Then actions_free (which keeps
 * the system allocated if a worker is still stuck inside an executor). */
void actions_stop(void);
void actions_free(void);
int actions_running(void);
/* After actions_stop: a worker is still inside an executor (its plugin must stay). */
int actions_leaked(void);

/* Admit one action (spec borrowed).  GGL_OK and *id; *repeat = 1 when an idempotency key
 * matched an earlier action, whose id is returned instead (done then gets its result).
 * GGL_NOTFOUND: no executor serves the name; GGL_INVALID: out of bounds; GGL_RETRY: full;
 * GGL_UNAVAILABLE: not running.  A reason is left with hostapi_set_reason. */
enum ggl_status actions_submit(const struct action_spec *spec, ggl_done_fn done, void *arg,
                               uint64_t *id, int *repeat);
/* The spec with the configured defaults for what the caller left out (0 timeout). */
uint32_t actions_default_retries(void);

/* ACTION.* support for actions_cmds.c. */
void actions_answer_result(struct cmd_call *call, uint64_t id, uint64_t wait_ms);
size_t actions_dead_letters(struct dead_letter **out, size_t max);
/* Resubmit dead letter `id` (without its idempotency key) as a new action. */
enum ggl_status actions_replay(uint64_t id, uint64_t *new_id);

/* INFO actions: the lines computed at read time (percentiles, depths). */
void actions_info(FILE *f);
/* Tests with a fake clock: make workers and the results store re-read the clock. */
void actions_kick(void);
/* Tests with 0 workers: run up to max ready actions on this thread; how many ran. */
size_t actions_run_ready(size_t max);
/* Tests: answer results waiters and expire results by the host clock. */
void actions_tick(void);

#endif
