/* Helpers for the JSON processor tests: run one payload through process() on the test
 * host and hand back the parsed result, a host whose memory and submit services are
 * UNAVAILABLE (as in the real host today), and a seeded generator for instances. */
#ifndef GGL_PROCESSOR_CHECK_H
#define GGL_PROCESSOR_CHECK_H

#include <jansson.h>
#include "testhost.h"

/* Run `payload` (text) on the plugin; asserts the status is `expect`.  Answers the
 * parsed result for GGL_OK (caller releases it), else NULL after checking that no data
 * came back and a reason was left. */
json_t *check_run(void *self, const char *payload, enum ggl_status expect);
/* The same for a JSON value (released here). */
json_t *check_run_json(void *self, json_t *payload, enum ggl_status expect);
/* The plain call, for fuzzing and benchmarks: the status, result data freed. */
enum ggl_status check_process(void *self, const void *payload, size_t len);

/* Run `payload` on four threads at once, many times each (the plugin declares
 * GGL_READS_CONCURRENT): asserts, on the calling thread, that every run answered OK
 * with the very bytes a single run gives. */
void check_concurrent(void *self, const char *payload);

/* The test host's table with mem_get/mem_put/mem_del and submit_* answering
 * GGL_UNAVAILABLE, and an open on any table. */
const struct ggl_host *check_unavailable_host(void);
void *check_open_on(const struct ggl_host *host, const char *const *pairs);

/* splitmix64: a small seeded generator; uniform integer in [0, n), double in [0, 1). */
uint64_t check_rand(uint64_t *state);
uint64_t check_below(uint64_t *state, uint64_t n);
double check_unit(uint64_t *state);

#endif
