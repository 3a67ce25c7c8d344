/* The processing engine's test fixture (engine_fixture.c): a fake clock, test
 * processors (noop types "a" and "b", "block" waiting at a gate (payload "H": at a
 * second one that only stop() opens), "flaky" answering
 * GGL_RETRY or, for payload "I", GGL_INVALID, "parent" submitting a sub-task, "tl"
 * with thread_init/thread_fini) recording what ran, and helpers to start engines and
 * submit and wait without sleeping. */
#ifndef GGL_TEST_ENGINE_FIXTURE_H
#define GGL_TEST_ENGINE_FIXTURE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "engine.h"

/* Type indices in engine_stats: a 0, b 1, block 2, flaky 3, parent 4, tl 5. */

extern _Atomic uint64_t fake_now;
uint64_t fake_clock(void);
void advance(uint64_t ms);

/* Recorded by the processors and callbacks, under mu (read with get()). */
extern pthread_mutex_t mu;
extern char order[256];            /* first payload byte of each task run, in run order */
extern int64_t gate_limit_ms;      /* block tasks wait for the gate at most this long */
extern unsigned blocked, attempts, callbacks;
extern enum ggl_status last_cb_status;
extern struct ggl_host services;   /* what a plugin would get: submit_task is tested */
extern _Atomic uint64_t sub_id, sub_parent_seen;
extern char sub_result[8];
extern const char *sub_arg;
extern _Atomic unsigned thread_inits, thread_finis;
extern int tl_instance;

int wait_for(const unsigned *counter, unsigned n);  /* bounded wait on the condition */
unsigned get(const unsigned *counter);
void open_gate(void);
struct engine_config config(unsigned min_w, unsigned max_w); /* no timer threads */
struct engine *start(const struct engine_config *c);
uint64_t submit(struct engine *e, const char *type, const char *payload, enum ggl_priority prio,
                uint64_t timeout_ms);
void stop(struct engine *e);       /* opens the gate, drains, frees */
enum result_status outcome(struct engine *e, uint64_t id);
int setup(void **state);           /* fake clock, records cleared */
int teardown(void **state);

#endif
