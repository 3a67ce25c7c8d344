/* The action system on a fake clock with an in-test executor: the backoff schedule and
 * its jitter, dead letters after max retries, INVALID/ERROR never retried, replay,
 * idempotency keys (and their bound), priority order, timeouts, the capacity bound with
 * its critical reserve, state feedback counted when the host has no state, and shutdown
 * with actions pending in the ready queue, waiting for a retry and running, the
 * submit_action service, abandonment of a worker stuck past its timeout, and the
 * config section.  Most tests
 * use no worker threads and run ready actions on the test thread (actions_run_ready),
 * so every step is deterministic; the shutdown drain uses one real worker. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include "actions_impl.h"
#include "hostapi.h"
#include "metrics.h"

static _Atomic uint64_t fake_now = 1000000;
static uint64_t fake_clock(void) { return atomic_load(&fake_now); }

/* --- the test executor: behaviour by payload ------------------------------------- */

#define MAX_RUNS 4096
static pthread_mutex_t rec_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t rec_cond = PTHREAD_COND_INITIALIZER;
static struct run_rec {
    uint64_t id, at_ms;
    uint32_t attempt;
    char payload[16];
} runs[MAX_RUNS];
static size_t n_runs;
static int healthy, gate_open;
static struct done_rec {
    uint64_t id;
    enum ggl_status status;
} dones[MAX_RUNS];
static size_t n_dones;

static const char *const names[] = {"test", NULL};
static const char *const *t_names(void *self) { (void)self; return names; }

static int is(const struct ggl_action *a, const char *w)
{
    return a->payload_len == strlen(w) && memcmp(a->payload, w, a->payload_len) == 0;
}

static void record(const struct ggl_action *a)
{
    pthread_mutex_lock(&rec_lock);
    struct run_rec *r = &runs[n_runs < MAX_RUNS ? n_runs++ : MAX_RUNS - 1];
    *r = (struct run_rec){a->id, clock_now_ms(), a->attempt, ""};
    snprintf(r->payload, sizeof r->payload, "%.*s", (int)a->payload_len, (const char *)a->payload);
    pthread_cond_broadcast(&rec_cond);
    pthread_mutex_unlock(&rec_lock);
}

static enum ggl_status t_execute(void *self, const struct ggl_action *a, struct ggl_result *r)
{
    (void)self;
    record(a);
    if (is(a, "retry"))
        return hostapi_set_reason("busy (attempt %u)", a->attempt), GGL_RETRY;
    if (is(a, "invalid"))
        return hostapi_set_reason("bad input"), GGL_INVALID;
    if (is(a, "flaky") && !healthy)
        return hostapi_set_reason("broken"), GGL_ERROR;
    if (is(a, "slow"))
        atomic_fetch_add(&fake_now, 5000); /* overruns a 1000 ms timeout */
    if (is(a, "block") || (is(a, "hang") && a->attempt == 0)) {
        pthread_mutex_lock(&rec_lock);
        while (!gate_open)
            pthread_cond_wait(&rec_cond, &rec_lock);
        pthread_mutex_unlock(&rec_lock);
    }
    r->data = strdup("done");
    r->data_len = 4;
    return GGL_OK;
}

static const struct ggl_executor vt = {.size = sizeof vt, .flags = GGL_READS_CONCURRENT,
                                       .action_names = t_names, .execute = t_execute};

static void on_done(void *arg, uint64_t id, const struct ggl_result *res)
{
    (void)arg;
    pthread_mutex_lock(&rec_lock);
    dones[n_dones < MAX_RUNS ? n_dones++ : MAX_RUNS - 1] = (struct done_rec){id, res->status};
    pthread_cond_broadcast(&rec_cond);
    pthread_mutex_unlock(&rec_lock);
}

/* Wait (bounded, real time) until `count` callbacks arrived; feedback runs on threads. */
static void wait_dones(size_t count)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 5;
    pthread_mutex_lock(&rec_lock);
    while (n_dones < count && pthread_cond_timedwait(&rec_cond, &rec_lock, &until) == 0)
        ;
    size_t n = n_dones;
    pthread_mutex_unlock(&rec_lock);
    assert_true(n >= count);
}

/* --- set-up ------------------------------------------------------------------------- */

static struct actions_conf conf(void)
{
    struct actions_conf ac;
    struct conf_error err;
    assert_int_equal(actions_read_config(NULL, &ac, &err), 0);
    ac.timer_thread = 0;
    ac.backoff_base_ms = 100;
    ac.backoff_max_ms = 400;
    ac.feedback_state_prefix = "action.";
    return ac;
}

static void start(struct actions_conf ac, size_t capacity, size_t reserve, unsigned workers)
{
    struct queue_config qc = {"actions_test", capacity, reserve, 0};
    struct action_executor ex = {"executor/test", &vt, NULL};
    n_runs = n_dones = 0;
    healthy = gate_open = 0;
    assert_int_equal(actions_start(&ac, &qc, &ex, 1, workers, 1), 0);
}

static void stop(void)
{
    actions_stop();
    actions_free();
}

static uint64_t submit(const char *payload, uint32_t prio, uint32_t retries, const char *key,
                       enum ggl_status want)
{
    struct action_spec sp = {"test", payload, strlen(payload), prio, retries, 0, key};
    uint64_t id = 0;
    int repeat;
    assert_int_equal(actions_submit(&sp, on_done, NULL, &id, &repeat), want);
    return id;
}

static enum result_status status_of(uint64_t id)
{
    struct result_view v;
    assert_int_equal(results_get(actions_sys->results, id, &v), RESULT_DONE);
    result_view_free(&v);
    return v.status;
}

static double metric(const char *name)
{
    return metrics_value(metrics_register_in("actions", GGL_METRIC_COUNTER, name, "", NULL));
}

/* Step the fake clock 1 ms at a time until one ready action runs; the time it ran. */
static uint64_t run_next_retry(uint64_t limit_ms)
{
    for (uint64_t waited = 0; waited <= limit_ms; waited++) {
        if (actions_run_ready(1) == 1)
            return runs[n_runs - 1].at_ms;
        atomic_fetch_add(&fake_now, 1);
    }
    fail_msg("no retry within %llu ms", (unsigned long long)limit_ms);
    return 0;
}

/* --- tests ---------------------------------------------------------------------------- */

static void test_backoff_schedule_doubles_within_jitter(void **state)
{
    (void)state;
    start(conf(), 64, 0, 0);
    uint64_t id = submit("retry", GGL_PRIO_NORMAL, 4, NULL, GGL_OK);
    assert_int_equal(actions_run_ready(1), 1);
    uint64_t prev = runs[0].at_ms;
    const uint64_t caps[] = {100, 200, 400, 400}; /* base 100 doubling, capped at 400 */
    for (int k = 0; k < 4; k++) {
        uint64_t at = run_next_retry(caps[k]);
        assert_true(at - prev >= caps[k] / 2 && at - prev <= caps[k]);
        assert_int_equal(runs[n_runs - 1].attempt, (uint32_t)k + 1);
        prev = at;
    }
    assert_int_equal(status_of(id), RESULT_FAILED);
    stop();
}

static void test_jitter_spreads_retries(void **state)
{
    (void)state;
    start(conf(), 512, 0, 0);
    for (int i = 0; i < 200; i++)
        submit("retry", GGL_PRIO_NORMAL, 1, NULL, GGL_OK);
    assert_int_equal(actions_run_ready(200), 200);
    int seen[101] = {0}, distinct = 0;
    for (uint64_t d = 0; d <= 100; d++, atomic_fetch_add(&fake_now, 1)) {
        size_t before = n_runs;
        actions_run_ready(200);
        for (size_t i = before; i < n_runs; i++) {
            assert_true(d >= 50); /* equal jitter: never before d/2 */
            distinct += !seen[d]++;
        }
    }
    assert_int_equal(n_runs, 400);
    assert_true(distinct >= 25); /* 51 possible delays, 200 draws */
    stop();
}

static void test_dead_letter_after_max_retries(void **state)
{
    (void)state;
    start(conf(), 64, 0, 0);
    double dead0 = metric("actions_dead");
    uint64_t id = submit("retry", GGL_PRIO_NORMAL, 2, NULL, GGL_OK);
    actions_run_ready(1);
    run_next_retry(100);
    run_next_retry(200);
    assert_int_equal(n_runs, 3);
    assert_int_equal(status_of(id), RESULT_FAILED);
    struct dead_letter *l[4];
    assert_int_equal(actions_dead_letters(l, 4), 1);
    assert_int_equal(l[0]->id, id);
    assert_int_equal(l[0]->attempts, 3);
    assert_string_equal(l[0]->reason, "gave up after 3 attempts: busy (attempt 2)");
    dead_letter_free(l[0]);
    assert_true(metric("actions_dead") == dead0 + 1);
    wait_dones(1);
    assert_int_equal(dones[0].status, GGL_ERROR);
    stop();
}

static void test_invalid_and_error_are_never_retried_and_replay_runs_again(void **state)
{
    (void)state;
    start(conf(), 64, 0, 0);
    uint64_t bad = submit("invalid", GGL_PRIO_NORMAL, 5, NULL, GGL_OK);
    uint64_t flaky = submit("flaky", GGL_PRIO_NORMAL, 5, NULL, GGL_OK);
    assert_int_equal(actions_run_ready(10), 2);
    atomic_fetch_add(&fake_now, 10000);
    assert_int_equal(actions_run_ready(10), 0); /* nothing was scheduled for a retry */
    assert_int_equal(status_of(bad), RESULT_INVALID);
    assert_int_equal(status_of(flaky), RESULT_FAILED);
    healthy = 1;
    uint64_t again;
    assert_int_equal(actions_replay(flaky, &again), GGL_OK);
    assert_true(again != flaky);
    assert_int_equal(actions_replay(flaky, &again), GGL_NOTFOUND); /* taken off the list */
    assert_int_equal(actions_run_ready(1), 1);
    assert_int_equal(status_of(again), RESULT_OK);
    struct dead_letter *l[4];
    assert_int_equal(actions_dead_letters(l, 4), 1); /* the invalid one stays */
    assert_int_equal(l[0]->id, bad);
    assert_non_null(strstr(l[0]->reason, "bad input"));
    dead_letter_free(l[0]);
    stop();
}

static void test_idempotency_key_returns_first_action(void **state)
{
    (void)state;
    struct actions_conf ac = conf();
    ac.dedup_max = 2;
    ac.dedup_window_ms = 60000;
    start(ac, 64, 0, 0);
    double dedup0 = metric("actions_deduplicated");
    uint64_t first = submit("ok", GGL_PRIO_NORMAL, 0, "k1", GGL_OK);
    assert_int_equal(submit("ok", GGL_PRIO_NORMAL, 0, "k1", GGL_OK), first); /* pending */
    assert_int_equal(actions_run_ready(10), 1);                             /* ran once */
    assert_int_equal(submit("ok", GGL_PRIO_NORMAL, 0, "k1", GGL_OK), first); /* finished */
    wait_dones(3); /* the first, the parked repeat, the late repeat: same id and result */
    for (int i = 0; i < 3; i++) {
        assert_int_equal(dones[i].id, first);
        assert_int_equal(dones[i].status, GGL_OK);
    }
    assert_true(metric("actions_deduplicated") == dedup0 + 2);
    submit("ok", GGL_PRIO_NORMAL, 0, "k2", GGL_OK);
    submit("ok", GGL_PRIO_NORMAL, 0, "k3", GGL_RETRY); /* table bound: 2 keys */
    atomic_fetch_add(&fake_now, 60001);                 /* both windows passed */
    uint64_t later = submit("ok", GGL_PRIO_NORMAL, 0, "k1", GGL_OK);
    assert_true(later != first);
    stop();
}

static void test_priority_order(void **state)
{
    (void)state;
    start(conf(), 64, 0, 0);
    const char *order[] = {"low", "normal", "high", "critical", "normal2"};
    const uint32_t prio[] = {GGL_PRIO_LOW, GGL_PRIO_NORMAL, GGL_PRIO_HIGH, GGL_PRIO_CRITICAL,
                             GGL_PRIO_NORMAL};
    for (int i = 0; i < 5; i++)
        submit(order[i], prio[i], 0, NULL, GGL_OK);
    const char *want[] = {"critical", "high", "normal", "normal2", "low"};
    for (int i = 0; i < 5; i++) {
        assert_int_equal(actions_run_ready(1), 1);
        assert_string_equal(runs[i].payload, want[i]);
    }
    stop();
}

static void test_timeout_goes_to_retry(void **state)
{
    (void)state;
    start(conf(), 64, 0, 0);
    double t0 = metric("actions_timeouts");
    struct action_spec sp = {"test", "slow", 4, GGL_PRIO_NORMAL, 1, 1000, NULL};
    uint64_t id;
    int repeat;
    assert_int_equal(actions_submit(&sp, NULL, NULL, &id, &repeat), GGL_OK);
    assert_int_equal(actions_run_ready(1), 1);
    assert_true(metric("actions_timeouts") == t0 + 1);
    assert_int_equal(atomic_load(&actions_sys->retry_depth), 1);
    run_next_retry(100);
    assert_int_equal(status_of(id), RESULT_FAILED);
    struct dead_letter *l[1];
    assert_int_equal(actions_dead_letters(l, 1), 1);
    assert_non_null(strstr(l[0]->reason, "timed out: ran 5000 ms, timeout 1000 ms"));
    dead_letter_free(l[0]);
    stop();
}

static void test_capacity_bound_keeps_critical_reserve(void **state)
{
    (void)state;
    start(conf(), 4, 1, 0);
    for (int i = 0; i < 3; i++)
        submit("ok", GGL_PRIO_NORMAL, 0, NULL, GGL_OK);
    submit("ok", GGL_PRIO_LOW, 0, NULL, GGL_RETRY);
    submit("ok", GGL_PRIO_CRITICAL, 0, NULL, GGL_OK);
    submit("ok", GGL_PRIO_CRITICAL, 0, NULL, GGL_RETRY);
    struct action_spec sp = {"nope", "x", 1, GGL_PRIO_NORMAL, 0, 0, NULL};
    uint64_t id;
    int repeat;
    assert_int_equal(actions_submit(&sp, NULL, NULL, &id, &repeat), GGL_NOTFOUND);
    sp.name = "test", sp.max_retries = 1001;
    assert_int_equal(actions_submit(&sp, NULL, NULL, &id, &repeat), GGL_INVALID);
    stop();
}

static void test_state_feedback_counts_unavailable_host(void **state)
{
    (void)state;
    start(conf(), 8, 0, 0);
    double u0 = metric("actions_feedback_state_unavailable");
    uint64_t id = submit("ok", GGL_PRIO_NORMAL, 0, NULL, GGL_OK);
    actions_run_ready(1);
    wait_dones(1);
    stop(); /* feedback is delivered before stop returns */
    (void)id;
    assert_true(metric("actions_feedback_state_unavailable") == u0 + 1);
}

static void test_shutdown_cancels_pending_retries_and_unrun_actions(void **state)
{
    (void)state;
    start(conf(), 16, 0, 0);
    double c0 = metric("actions_cancelled");
    uint64_t waiting = submit("retry", GGL_PRIO_NORMAL, 3, NULL, GGL_OK);
    actions_run_ready(1); /* now waiting for its retry */
    uint64_t ready = submit("ok", GGL_PRIO_NORMAL, 0, NULL, GGL_OK);
    actions_stop();
    assert_int_equal(submit("ok", GGL_PRIO_NORMAL, 0, NULL, GGL_UNAVAILABLE), 0);
    assert_int_equal(n_dones, 2); /* both delivered before stop returned */
    assert_true(metric("actions_cancelled") == c0 + 2);
    assert_int_equal(status_of(waiting), RESULT_CANCELLED);
    assert_int_equal(status_of(ready), RESULT_CANCELLED);
    actions_free();
}

static void *stopper(void *arg)
{
    (void)arg;
    actions_stop();
    return NULL;
}

static void test_shutdown_drains_ready_actions_with_a_worker(void **state)
{
    (void)state;
    start(conf(), 16, 0, 1);
    uint64_t waiting = submit("retry", GGL_PRIO_NORMAL, 3, NULL, GGL_OK);
    pthread_mutex_lock(&rec_lock);
    while (n_runs < 1)
        pthread_cond_wait(&rec_cond, &rec_lock);
    pthread_mutex_unlock(&rec_lock);
    submit("block", GGL_PRIO_NORMAL, 0, NULL, GGL_OK);
    uint64_t a = submit("ok", GGL_PRIO_NORMAL, 0, NULL, GGL_OK);
    uint64_t b = submit("ok", GGL_PRIO_NORMAL, 0, NULL, GGL_OK);
    pthread_t t;
    pthread_create(&t, NULL, stopper, NULL);
    while (actions_running())
        sched_yield();
    pthread_mutex_lock(&rec_lock);
    gate_open = 1; /* the blocked run ends after admission closed */
    pthread_cond_broadcast(&rec_cond);
    pthread_mutex_unlock(&rec_lock);
    pthread_join(t, NULL);
    assert_int_equal(n_dones, 4);
    assert_int_equal(status_of(a), RESULT_OK); /* ready actions ran before the deadline */
    assert_int_equal(status_of(b), RESULT_OK);
    assert_int_equal(status_of(waiting), RESULT_CANCELLED);
    actions_free();
}

static void test_submit_action_service_runs_and_calls_back(void **state)
{
    (void)state;
    start(conf(), 8, 0, 0);
    struct ggl_host h;
    hostapi_init(&h, "processor/test[t]");
    struct ggl_action ga = {.size = sizeof ga, .name = "test", .payload = "ok", .payload_len = 2,
                            .priority = GGL_PRIO_HIGH, .max_retries = 1};
    uint64_t id = 0;
    assert_int_equal(h.submit_action(&h, &ga, on_done, NULL, &id), GGL_OK);
    assert_true(id > 0);
    assert_int_equal(actions_run_ready(1), 1);
    wait_dones(1);
    assert_int_equal(dones[0].id, id);
    assert_int_equal(dones[0].status, GGL_OK);
    ga.name = "missing";
    assert_int_equal(h.submit_action(&h, &ga, on_done, NULL, &id), GGL_NOTFOUND);
    assert_string_equal(hostapi_take_reason(), "no executor serves action 'missing'");
    ga.size = 8; /* a writer older than the struct it claims to be */
    assert_int_equal(h.submit_action(&h, &ga, on_done, NULL, &id), GGL_INVALID);
    stop();
}

static void wait_metric(const char *name, double want)
{
    for (long i = 0; i < 100000000 && metric(name) < want; i++)
        sched_yield(); /* bounded: the watchdog thread acts on its own */
    assert_true(metric(name) >= want);
}

static void test_worker_stuck_past_timeout_is_abandoned_and_action_retried(void **state)
{
    (void)state;
    struct actions_conf ac = conf();
    ac.abandon_grace_ms = 500;
    start(ac, 16, 0, 1);
    double ab0 = metric("actions_abandoned"), r0 = metric("actions_retried");
    struct action_spec sp = {"test", "hang", 4, GGL_PRIO_NORMAL, 1, 1000, NULL};
    uint64_t id;
    int repeat;
    assert_int_equal(actions_submit(&sp, on_done, NULL, &id, &repeat), GGL_OK);
    pthread_mutex_lock(&rec_lock);
    while (n_runs < 1)
        pthread_cond_wait(&rec_cond, &rec_lock);
    pthread_mutex_unlock(&rec_lock);
    atomic_fetch_add(&fake_now, 1000 + 500 + 1); /* past timeout + grace */
    actions_kick();
    wait_metric("actions_retried", r0 + 1); /* the copy is waiting for its retry */
    assert_true(metric("actions_abandoned") == ab0 + 1);
    atomic_fetch_add(&fake_now, 100); /* the first retry's longest delay */
    actions_kick();
    wait_dones(1); /* the replacement worker ran attempt 1 */
    assert_int_equal(dones[0].id, id);
    assert_int_equal(dones[0].status, GGL_OK);
    assert_int_equal(status_of(id), RESULT_OK);
    pthread_mutex_lock(&rec_lock);
    gate_open = 1; /* the stuck call returns; its output is discarded */
    pthread_cond_broadcast(&rec_cond);
    pthread_mutex_unlock(&rec_lock);
    actions_stop();
    assert_int_equal(n_dones, 1);
    assert_int_equal(n_runs, 2);
    assert_false(actions_sys->leaked);
    actions_free();
}

static void test_config_section_is_checked(void **state)
{
    (void)state;
    struct conf_error err;
    struct actions_conf ac;
    const char *bad[][2] = {
        {"actions = { bogus = 1; };\n", "t.conf:1: unknown key 'bogus' in actions"},
        {"actions = {\n backoff_max_ms = 0; };\n", "t.conf:2: 'backoff_max_ms' in actions"},
        {"actions = {\n result_ttl_ms = 1000;\n dedup_window_ms = 5000; };\n",
         "t.conf:3: actions: dedup_window_ms exceeds result_ttl_ms"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct config *c = config_load_string(bad[i][0], "t.conf", &err);
        assert_non_null(c);
        assert_int_equal(actions_read_config(c, &ac, &err), -1);
        assert_memory_equal(err.msg, bad[i][1], strlen(bad[i][1]));
        config_free(c);
    }
    struct config *c = config_load_string("actions = { default_retries = 7; };\n", "t.conf", &err);
    assert_int_equal(actions_read_config(c, &ac, &err), 0);
    assert_int_equal(ac.default_retries, 7);
    assert_int_equal(ac.max_retries, 20);
    config_free(c);
}

int main(void)
{
    clock_set(fake_clock);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_backoff_schedule_doubles_within_jitter),
        cmocka_unit_test(test_jitter_spreads_retries),
        cmocka_unit_test(test_dead_letter_after_max_retries),
        cmocka_unit_test(test_invalid_and_error_are_never_retried_and_replay_runs_again),
        cmocka_unit_test(test_idempotency_key_returns_first_action),
        cmocka_unit_test(test_priority_order),
        cmocka_unit_test(test_timeout_goes_to_retry),
        cmocka_unit_test(test_capacity_bound_keeps_critical_reserve),
        cmocka_unit_test(test_state_feedback_counts_unavailable_host),
        cmocka_unit_test(test_shutdown_cancels_pending_retries_and_unrun_actions),
        cmocka_unit_test(test_shutdown_drains_ready_actions_with_a_worker),
        cmocka_unit_test(test_submit_action_service_runs_and_calls_back),
        cmocka_unit_test(test_worker_stuck_past_timeout_is_abandoned_and_action_retried),
        cmocka_unit_test(test_config_section_is_checked),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    clock_set(NULL);
    metrics_fini();
    return rc;
}
