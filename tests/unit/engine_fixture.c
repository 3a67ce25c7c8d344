/* The engine tests' fixture (see engine_fixture.h). */
#include "ggl-build.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include "deadline.h"
#include "engine_fixture.h"
#include "hostapi.h"
#include "pool.h"

_Atomic uint64_t fake_now = 1000000;
uint64_t fake_clock(void) { return atomic_load(&fake_now); }
void advance(uint64_t ms) { atomic_fetch_add(&fake_now, ms); }

/* --- what the test processors record, under one lock ------------------------------ */

pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
char order[256];          /* first payload byte of each task run, in run order */
static size_t n_order;
static int gate_open;            /* block tasks wait for it */
static int hang_open;            /* ... those with payload "H" for this, opened by stop() */
int64_t gate_limit_ms;    /* ... at most this long (real time) */
unsigned blocked;         /* block tasks waiting at the gate */
unsigned attempts;        /* flaky calls */
unsigned callbacks;
enum ggl_status last_cb_status;

static void record(const struct ggl_task *t)
{
    pthread_mutex_lock(&mu);
    if (n_order < sizeof order - 1)
        order[n_order++] = t->payload_len ? *(const char *)t->payload : '?';
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
}

static enum ggl_status noop_process(void *self, const struct ggl_task *t, struct ggl_result *r)
{
    (void)self;
    record(t);
    r->data = malloc(t->payload_len ? t->payload_len : 1);
    if (t->payload_len)
        memcpy(r->data, t->payload, t->payload_len);
    r->data_len = t->payload_len;
    return GGL_OK;
}

static enum ggl_status block_process(void *self, const struct ggl_task *t, struct ggl_result *r)
{
    (void)self, (void)r;
    record(t);
    pthread_mutex_lock(&mu);
    blocked++;
    pthread_cond_broadcast(&cv);
    struct timespec until = deadline_after_ms(CLOCK_REALTIME, (uint64_t)gate_limit_ms);
    int *gate = t->payload_len && *(const char *)t->payload == 'H' ? &hang_open : &gate_open;
    while (!*gate && pthread_cond_timedwait(&cv, &mu, &until) == 0)
        ;
    blocked--;
    pthread_mutex_unlock(&mu);
    return GGL_OK;
}

static enum ggl_status flaky_process(void *self, const struct ggl_task *t, struct ggl_result *r)
{
    (void)self, (void)r;
    record(t);
    pthread_mutex_lock(&mu);
    attempts++;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
    return t->payload_len && *(const char *)t->payload == 'I' ? GGL_INVALID : GGL_RETRY;
}

struct ggl_host services; /* what a plugin would get: submit_task is tested */
_Atomic uint64_t sub_id, sub_parent_seen;

static void on_sub_done(void *arg, uint64_t id, const struct ggl_result *r);

/* Submits a sub-task of type "a" and returns at once (payload "W": then waits at the
 * gate, a parent that runs on): the sub-task's result comes by callback. */
static enum ggl_status parent_process(void *self, const struct ggl_task *t, struct ggl_result *r)
{
    (void)self;
    if (!t->payload_len || *(const char *)t->payload != 'W')
        record(t);
    struct ggl_task sub = {.size = sizeof sub, .type = "a", .priority = GGL_PRIO_HIGH,
                           .payload = "s", .payload_len = 1};
    uint64_t id = 0;
    enum ggl_status st = services.submit_task(&services, &sub, on_sub_done, (void *)"ctx", &id);
    atomic_store(&sub_id, id);
    atomic_store(&sub_parent_seen, engine_current_task());
    if (st == GGL_OK && t->payload_len && *(const char *)t->payload == 'W')
        return block_process(self, t, r);
    return st;
}

static const char *const noop_types[] = {"a", "b", NULL};
static const char *const block_types[] = {"block", NULL};
static const char *const flaky_types[] = {"flaky", NULL};
static const char *const parent_types[] = {"parent", NULL};
static const char *const tl_types[] = {"tl", NULL};
static const char *const *tl_list(void *s) { (void)s; return tl_types; }
_Atomic unsigned thread_inits, thread_finis;
int tl_instance; /* processor/tl's self: an instance a test can replace */
static enum ggl_status tl_init(void *self) { (void)self; atomic_fetch_add(&thread_inits, 1); return GGL_OK; }
static void tl_fini(void *self) { (void)self; atomic_fetch_add(&thread_finis, 1); }
static const char *const *parent_list(void *s) { (void)s; return parent_types; }
static const char *const *noop_list(void *s) { (void)s; return noop_types; }
static const char *const *block_list(void *s) { (void)s; return block_types; }
static const char *const *flaky_list(void *s) { (void)s; return flaky_types; }

static const struct ggl_processor noop_vt = {.size = sizeof noop_vt, .flags = GGL_READS_CONCURRENT,
                                             .task_types = noop_list, .process = noop_process};
static const struct ggl_processor block_vt = {.size = sizeof block_vt, .flags = GGL_READS_CONCURRENT,
                                              .task_types = block_list, .process = block_process};
static const struct ggl_processor flaky_vt = {.size = sizeof flaky_vt, .flags = GGL_READS_CONCURRENT,
                                              .task_types = flaky_list, .process = flaky_process};
static const struct ggl_processor parent_vt = {.size = sizeof parent_vt,
                                               .task_types = parent_list, .process = parent_process};
static const struct ggl_processor tl_vt = {.size = sizeof tl_vt, .flags = GGL_READS_CONCURRENT,
                                           .task_types = tl_list, .process = noop_process,
                                           .thread_init = tl_init, .thread_fini = tl_fini};
static const struct engine_processor procs[] = {
    {"processor/noop", &noop_vt, NULL}, {"processor/block", &block_vt, NULL},
    {"processor/flaky", &flaky_vt, NULL}, {"processor/parent", &parent_vt, NULL},
    {"processor/tl", &tl_vt, &tl_instance}};

char sub_result[8];
const char *sub_arg;

static void on_sub_done(void *arg, uint64_t id, const struct ggl_result *r)
{
    pthread_mutex_lock(&mu);
    sub_arg = arg;
    if (id == atomic_load(&sub_id) && r->status == GGL_OK && r->data_len < sizeof sub_result)
        memcpy(sub_result, r->data, r->data_len);
    callbacks++;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
}

static void on_done(void *arg, uint64_t id, const struct ggl_result *r)
{
    (void)arg, (void)id;
    pthread_mutex_lock(&mu);
    callbacks++;
    last_cb_status = r->status;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
}

/* Wait (bounded, on the condition) until *counter reaches n. */
int wait_for(const unsigned *counter, unsigned n)
{
    struct timespec until = deadline_after_ms(CLOCK_REALTIME, 10000);
    pthread_mutex_lock(&mu);
    int rc = 0;
    while (*counter < n && rc == 0)
        rc = pthread_cond_timedwait(&cv, &mu, &until);
    int ok = *counter >= n;
    pthread_mutex_unlock(&mu);
    return ok;
}

unsigned get(const unsigned *counter)
{
    pthread_mutex_lock(&mu);
    unsigned v = *counter;
    pthread_mutex_unlock(&mu);
    return v;
}

static void open_flag(int *gate)
{
    pthread_mutex_lock(&mu);
    *gate = 1;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
}

struct engine_config config(unsigned min_w, unsigned max_w)
{
    struct engine_config c;
    engine_config_defaults(&c);
    c.min_workers = min_w;
    c.max_workers = max_w;
    c.timer_threads = 0;
    c.monitor_ms = 0;
    c.queue_capacity = 64;
    c.critical_reserve = 0;
    c.age_ms = 0;
    c.result_ttl_ms = 1000;
    c.default_timeout_ms = 0;
    return c;
}

struct engine *start(const struct engine_config *c)
{
    struct engine *e = engine_new(c, procs, sizeof procs / sizeof procs[0]);
    assert_non_null(e);
    return e;
}

uint64_t submit(struct engine *e, const char *type, const char *payload,
                       enum ggl_priority prio, uint64_t timeout_ms)
{
    struct engine_task_spec s = {.type = type, .payload = payload, .payload_len = strlen(payload),
                                 .priority = prio, .timeout_ms = timeout_ms, .max_retries = -1};
    uint64_t id = 0;
    assert_int_equal(engine_submit(e, &s, on_done, NULL, &id), GGL_OK);
    return id;
}

void open_gate(void) { open_flag(&gate_open); }

void stop(struct engine *e)
{
    open_gate();
    open_flag(&hang_open);
    pool_wait_abandoned(5000); /* an abandoned worker returns into the engine */
    engine_stop(e, clock_now_ms() + 10000);
    engine_free(e);
}

enum result_status outcome(struct engine *e, uint64_t id)
{
    struct result_view v;
    assert_int_equal(results_get(engine_results(e), id, &v), RESULT_DONE);
    result_view_free(&v);
    return v.status;
}

int setup(void **state)
{
    (void)state;
    clock_set(fake_clock);
    n_order = 0;
    memset(order, 0, sizeof order);
    gate_open = hang_open = 0;
    gate_limit_ms = 10000;
    attempts = callbacks = 0;
    return 0;
}

int teardown(void **state)
{
    (void)state;
    clock_set(NULL);
    return 0;
}
