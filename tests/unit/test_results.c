/* Unit tests for host/results.c: an id's life (queued, running, done), late results
 * discarded after cancel, the lock-free start through a handle (stale once the entry is
 * reused), expiry and both full-store policies on a fake clock, oversized
 * data, parked waiters answered by a result, by their deadline, refused past
 * max_waiters, closed at shutdown, the timer thread on the real clock, and concurrent
 * finishers with waiters (for TSan). */
#include "ggl-build.h"

#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include "hostapi.h"
#include "offload.h"
#include "results.h"

static _Atomic uint64_t fake_now = 1000000;
static uint64_t fake_clock(void) { return atomic_load(&fake_now); }
static void advance(uint64_t ms) { atomic_fetch_add(&fake_now, ms); }

/* Completed jobs land here (results_config.complete). */
#define MAX_DONE 4096
static pthread_mutex_t done_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t done_cond = PTHREAD_COND_INITIALIZER;
static struct job *done_jobs[MAX_DONE];
static size_t n_done;

static void capture(struct job *j)
{
    pthread_mutex_lock(&done_lock);
    if (n_done < MAX_DONE)
        done_jobs[n_done++] = j;
    pthread_cond_broadcast(&done_cond);
    pthread_mutex_unlock(&done_lock);
}

static void clear_done(void)
{
    for (size_t i = 0; i < n_done; i++)
        job_free(done_jobs[i]);
    n_done = 0;
}

/* The reply of the i-th completed job, NUL-terminated in a static buffer. */
static const char *reply_of(size_t i)
{
    static char s[512];
    assert_true(i < n_done);
    struct buf *b = &done_jobs[i]->reply;
    size_t n = b->len < sizeof s - 1 ? b->len : sizeof s - 1;
    memcpy(s, b->data, n);
    s[n] = '\0';
    return s;
}

static struct job *new_job(void)
{
    char *argv[] = {"RESULT", NULL};
    size_t lens[] = {6};
    struct request req = {1, argv, lens};
    struct job *j = job_new(&req, NULL, NULL);
    assert_non_null(j);
    return j;
}

static struct results *make(size_t max_results, size_t max_waiters, size_t max_data, int timer)
{
    struct results_config cfg = {.name = "rtest", .max_results = max_results,
                                 .max_waiters = max_waiters, .max_data = max_data,
                                 .ttl_ms = 1000, .timer_thread = timer, .complete = capture};
    struct results *r = results_new(&cfg);
    assert_non_null(r);
    return r;
}

static int setup(void **state)
{
    (void)state;
    clock_set(fake_clock);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    clock_set(NULL);
    clear_done();
    return 0;
}

static void test_id_goes_queued_running_done(void **state)
{
    (void)state;
    struct results *r = make(8, 4, 0, 0);
    uint64_t a, b;
    assert_int_equal(results_reserve(r, &a), GGL_OK);
    assert_int_equal(results_reserve(r, &b), GGL_OK);
    assert_true(a != 0 && b > a);
    assert_int_equal(results_get(r, a, NULL), RESULT_QUEUED);
    assert_int_equal(results_start(r, a), 0);
    assert_int_equal(results_get(r, a, NULL), RESULT_RUNNING);
    assert_int_equal(results_requeue(r, a), 0);
    assert_int_equal(results_get(r, a, NULL), RESULT_QUEUED);
    assert_int_equal(results_start(r, a), 0);
    assert_int_equal(results_finish(r, a, RESULT_OK, "hello", 5, NULL), 0);
    struct result_view v;
    assert_int_equal(results_get(r, a, &v), RESULT_DONE);
    assert_int_equal(v.status, RESULT_OK);
    assert_int_equal(v.len, 5);
    assert_memory_equal(v.data, "hello", 5);
    assert_string_equal(v.reason, "");
    assert_int_equal(v.finished_ms, fake_clock());
    result_view_free(&v);
    assert_int_equal(results_get(r, 999, NULL), RESULT_UNKNOWN);
    assert_int_equal(results_start(r, 999), -1);
    struct results_stats st;
    results_stats(r, &st);
    assert_int_equal(st.pending, 1);
    assert_int_equal(st.finished, 1);
    results_free(r);
}

static void test_lock_free_start_through_a_handle(void **state)
{
    (void)state;
    struct results *r = make(1, 4, 0, 0);
    uint64_t id;
    struct result_handle *h;
    assert_int_equal(results_reserve_handle(r, &id, &h), GGL_OK);
    assert_int_equal(results_start_handle(r, h, id), 0);
    assert_int_equal(results_get(r, id, NULL), RESULT_RUNNING);
    assert_int_equal(results_start_handle(r, h, id), 0); /* already running: still pending */
    assert_int_equal(results_cancel(r, id, NULL), 1);
    assert_int_equal(results_start_handle(r, h, id), -1); /* cancelled: do not run */
    advance(1000); /* expired: its entry is free for an id to come */
    uint64_t next;
    struct result_handle *h2 = NULL;
    for (int i = 0; i < 64 && h2 != h; i++) { /* ids go round the table to the entry */
        if (h2) {
            assert_int_equal(results_cancel(r, next, NULL), 1);
            advance(1000);
        }
        assert_int_equal(results_reserve_handle(r, &next, &h2), GGL_OK);
    }
    assert_ptr_equal(h2, h);
    assert_int_equal(results_start_handle(r, h, id), -1); /* stale: another id now */
    assert_int_equal(results_get(r, next, NULL), RESULT_QUEUED);
    assert_int_equal(results_start_handle(r, h2, next), 0);
    results_free(r);
}

static void test_late_result_after_cancel_is_discarded(void **state)
{
    (void)state;
    struct results *r = make(8, 4, 0, 0);
    uint64_t id;
    assert_int_equal(results_reserve(r, &id), GGL_OK);
    assert_int_equal(results_cancel(r, id, NULL), 1);
    assert_int_equal(results_start(r, id), -1); /* a worker must not run it */
    assert_int_equal(results_finish(r, id, RESULT_OK, "x", 1, NULL), -1);
    assert_int_equal(results_cancel(r, id, NULL), 0);
    assert_int_equal(results_cancel(r, 12345, NULL), -1);
    struct result_view v;
    assert_int_equal(results_get(r, id, &v), RESULT_DONE);
    assert_int_equal(v.status, RESULT_CANCELLED);
    assert_string_equal(v.reason, "cancelled");
    result_view_free(&v);
    struct results_stats st;
    results_stats(r, &st);
    assert_int_equal(st.late, 1);
    results_free(r);
}

static void test_results_expire_at_ttl(void **state)
{
    (void)state;
    struct results *r = make(8, 4, 0, 0);
    uint64_t id;
    assert_int_equal(results_reserve(r, &id), GGL_OK);
    assert_int_equal(results_finish(r, id, RESULT_FAILED, NULL, 0, "boom"), 0);
    advance(999);
    assert_int_equal(results_get(r, id, NULL), RESULT_DONE);
    advance(1);
    assert_int_equal(results_get(r, id, NULL), RESULT_UNKNOWN);
    struct results_stats st;
    results_stats(r, &st);
    assert_int_equal(st.expired, 1);
    assert_int_equal(st.finished, 0);
    results_free(r);
}

static void test_full_store_refuses_until_a_result_expires(void **state)
{
    (void)state;
    struct results *r = make(3, 4, 0, 0);
    uint64_t ids[3], extra;
    for (int i = 0; i < 3; i++)
        assert_int_equal(results_reserve(r, &ids[i]), GGL_OK);
    assert_int_equal(results_reserve(r, &extra), GGL_RETRY); /* all pending */
    assert_int_equal(results_finish(r, ids[0], RESULT_OK, NULL, 0, NULL), 0);
    advance(10);
    assert_int_equal(results_finish(r, ids[1], RESULT_OK, NULL, 0, NULL), 0);
    assert_int_equal(results_reserve(r, &extra), GGL_RETRY); /* finished but unexpired */
    advance(995); /* ids[0] expired, ids[1] not */
    assert_int_equal(results_reserve(r, &extra), GGL_OK);
    assert_int_equal(results_get(r, ids[0], NULL), RESULT_UNKNOWN);
    assert_int_equal(results_get(r, ids[1], NULL), RESULT_DONE);
    struct results_stats st;
    results_stats(r, &st);
    assert_int_equal(st.refused, 2);
    assert_int_equal(st.expired, 1);
    results_free(r);
}

static void test_evict_unread_takes_the_oldest_finished_result(void **state)
{
    (void)state;
    struct results_config cfg = {.name = "rtest", .max_results = 3, .max_waiters = 1,
                                 .ttl_ms = 1000, .complete = capture, .evict_unread = 1};
    struct results *r = results_new(&cfg);
    assert_non_null(r);
    uint64_t ids[3], extra;
    for (int i = 0; i < 3; i++)
        assert_int_equal(results_reserve(r, &ids[i]), GGL_OK);
    assert_int_equal(results_reserve(r, &extra), GGL_RETRY); /* all pending: refused */
    assert_int_equal(results_finish(r, ids[1], RESULT_OK, NULL, 0, NULL), 0);
    advance(1);
    assert_int_equal(results_finish(r, ids[0], RESULT_OK, NULL, 0, NULL), 0);
    assert_int_equal(results_reserve(r, &extra), GGL_OK); /* ids[1] finished first: evicted */
    assert_int_equal(results_get(r, ids[1], NULL), RESULT_UNKNOWN);
    assert_int_equal(results_get(r, ids[0], NULL), RESULT_DONE);
    assert_int_equal(results_get(r, ids[2], NULL), RESULT_QUEUED);
    struct results_stats st;
    results_stats(r, &st);
    assert_int_equal(st.evicted, 1);
    assert_int_equal(st.refused, 1);
    results_free(r);
}

static void test_oversized_data_is_stored_as_failed(void **state)
{
    (void)state;
    struct results *r = make(4, 4, 4, 0);
    uint64_t id;
    assert_int_equal(results_reserve(r, &id), GGL_OK);
    assert_int_equal(results_finish(r, id, RESULT_OK, "12345", 5, NULL), 0);
    struct result_view v;
    assert_int_equal(results_get(r, id, &v), RESULT_DONE);
    assert_int_equal(v.status, RESULT_FAILED);
    assert_int_equal(v.len, 0);
    assert_non_null(strstr(v.reason, "over the limit"));
    result_view_free(&v);
    results_free(r);
}

static void test_parked_waiter_gets_the_result(void **state)
{
    (void)state;
    struct results *r = make(4, 4, 0, 0);
    uint64_t id;
    assert_int_equal(results_reserve(r, &id), GGL_OK);
    assert_int_equal(results_park(r, id, new_job(), fake_clock() + 500), GGL_OK);
    assert_int_equal(results_park(r, id, new_job(), fake_clock() + 100), GGL_OK);
    assert_int_equal(n_done, 0);
    assert_int_equal(results_finish(r, id, RESULT_OK, "42", 2, NULL), 0);
    assert_int_equal(n_done, 2);
    assert_string_equal(reply_of(0), "*3\r\n$2\r\nok\r\n$2\r\n42\r\n$0\r\n\r\n");
    assert_string_equal(reply_of(1), reply_of(0));
    struct results_stats st;
    results_stats(r, &st);
    assert_int_equal(st.waiters, 0);
    results_free(r);
}

static void test_waiter_deadline_answers_nil(void **state)
{
    (void)state;
    struct results *r = make(4, 4, 0, 0);
    uint64_t id;
    assert_int_equal(results_reserve(r, &id), GGL_OK);
    assert_int_equal(results_park(r, id, new_job(), fake_clock() + 300), GGL_OK);
    assert_int_equal(results_park(r, id, new_job(), fake_clock() + 100), GGL_OK);
    assert_int_equal(results_tick(r), fake_clock() + 100);
    advance(100);
    assert_int_equal(results_tick(r), fake_clock() + 200);
    assert_int_equal(n_done, 1);
    assert_string_equal(reply_of(0), "$-1\r\n");
    advance(200);
    assert_int_equal(results_tick(r), UINT64_MAX);
    assert_int_equal(n_done, 2);
    assert_int_equal(results_finish(r, id, RESULT_OK, NULL, 0, NULL), 0);
    assert_int_equal(n_done, 2); /* nobody waits any more */
    assert_int_equal(results_tick(r), fake_clock() + 1000); /* the result's expiry */
    struct results_stats st;
    results_stats(r, &st);
    assert_int_equal(st.waiters_timed_out, 2);
    results_free(r);
}

static void test_waiters_beyond_max_are_refused(void **state)
{
    (void)state;
    struct results *r = make(4, 2, 0, 0);
    uint64_t id;
    assert_int_equal(results_reserve(r, &id), GGL_OK);
    assert_int_equal(results_park(r, id, new_job(), fake_clock() + 100), GGL_OK);
    assert_int_equal(results_park(r, id, new_job(), fake_clock() + 100), GGL_OK);
    struct job *j = new_job();
    assert_int_equal(results_park(r, id, j, fake_clock() + 100), GGL_RETRY);
    job_free(j);
    struct results_stats st;
    results_stats(r, &st);
    assert_int_equal(st.waiters_refused, 1);
    assert_int_equal(st.waiters, 2);
    results_free(r); /* answers the two parked ones */
    assert_int_equal(n_done, 2);
    assert_string_equal(reply_of(0), "-ERR shutting down\r\n");
}

static void test_park_on_unknown_or_finished_answers_at_once(void **state)
{
    (void)state;
    struct results *r = make(4, 2, 0, 0);
    uint64_t id;
    assert_int_equal(results_park(r, 77, new_job(), fake_clock() + 100), GGL_OK);
    assert_int_equal(n_done, 1);
    assert_non_null(strstr(reply_of(0), "-NOTFOUND"));
    assert_int_equal(results_reserve(r, &id), GGL_OK);
    assert_int_equal(results_finish(r, id, RESULT_INVALID, NULL, 0, "bad payload"), 0);
    assert_int_equal(results_park(r, id, new_job(), fake_clock() + 100), GGL_OK);
    assert_int_equal(n_done, 2);
    assert_string_equal(reply_of(1), "*3\r\n$7\r\ninvalid\r\n$0\r\n\r\n$11\r\nbad payload\r\n");
    results_free(r);
}

static void test_closed_waiters_are_answered_and_no_more_park(void **state)
{
    (void)state;
    struct results *r = make(4, 4, 0, 0);
    uint64_t id;
    assert_int_equal(results_reserve(r, &id), GGL_OK);
    assert_int_equal(results_park(r, id, new_job(), fake_clock() + 100000), GGL_OK);
    results_close_waiters(r);
    assert_int_equal(n_done, 1);
    assert_string_equal(reply_of(0), "-ERR shutting down\r\n");
    assert_int_equal(results_park(r, id, new_job(), fake_clock() + 100000), GGL_OK);
    assert_int_equal(n_done, 2);
    assert_int_equal(results_finish(r, id, RESULT_OK, NULL, 0, NULL), 0);
    assert_int_equal(results_park(r, id, new_job(), fake_clock() + 100000), GGL_OK);
    assert_int_equal(n_done, 3);
    assert_string_equal(reply_of(2), "*3\r\n$2\r\nok\r\n$0\r\n\r\n$0\r\n\r\n");
    results_free(r);
}

/* Wait (bounded, on a condition) until n jobs were completed by another thread. */
static int wait_done(size_t n, int seconds)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += seconds;
    pthread_mutex_lock(&done_lock);
    int rc = 0;
    while (n_done < n && rc == 0)
        rc = pthread_cond_timedwait(&done_cond, &done_lock, &ts);
    size_t got = n_done;
    pthread_mutex_unlock(&done_lock);
    return got >= n;
}

static void test_timer_thread_answers_at_the_real_deadline(void **state)
{
    (void)state;
    clock_set(NULL);
    struct results *r = make(4, 4, 0, 1);
    uint64_t id;
    assert_int_equal(results_reserve(r, &id), GGL_OK);
    uint64_t t0 = clock_now_ms();
    assert_int_equal(results_park(r, id, new_job(), t0 + 30), GGL_OK);
    assert_true(wait_done(1, 5));
    assert_true(clock_now_ms() >= t0 + 30);
    assert_string_equal(reply_of(0), "$-1\r\n");
    results_free(r);
    clock_set(fake_clock);
}

struct finisher {
    struct results *r;
    uint64_t first, n;
};

static void *finish_range(void *arg)
{
    struct finisher *f = arg;
    for (uint64_t id = f->first; id < f->first + f->n; id++)
        results_finish(f->r, id, RESULT_OK, &id, sizeof id, NULL);
    return NULL;
}

static void test_concurrent_finishers_answer_every_waiter(void **state)
{
    (void)state;
    enum { N = 1000, THREADS = 4 };
    struct results *r = make(N, N, 0, 1);
    uint64_t first = 0, id;
    for (int i = 0; i < N; i++) {
        assert_int_equal(results_reserve(r, &id), GGL_OK);
        if (!first)
            first = id;
    }
    struct finisher f[THREADS];
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++) {
        f[i] = (struct finisher){r, first + (uint64_t)i * (N / THREADS), N / THREADS};
        assert_int_equal(pthread_create(&t[i], NULL, finish_range, &f[i]), 0);
    }
    for (uint64_t k = first; k < first + N; k++) /* races the finishers */
        assert_int_equal(results_park(r, k, new_job(), fake_clock() + 60000), GGL_OK);
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    assert_true(wait_done(N, 10));
    for (size_t i = 0; i < N; i++)
        assert_non_null(strstr(reply_of(i), "*3\r\n$2\r\nok\r\n$8\r\n"));
    results_free(r);
}

enum { RACE_N = 2000, RACE_THREADS = 2 };
static struct result_handle *race_handle[RACE_N];
static int race_won[RACE_N];

struct ok_finisher {
    struct results *r;
    uint64_t first; /* the id of race_handle[0] */
    size_t from, n;
};

/* Finish ids [from, from + n) through their handles, 8 at a time, as a worker does. */
static void *finish_ok_range(void *arg)
{
    struct ok_finisher *f = arg;
    for (size_t i = f->from; i < f->from + f->n; i += 8) {
        struct result_ok ok[8];
        uint64_t data[8];
        size_t k = f->from + f->n - i < 8 ? f->from + f->n - i : 8;
        for (size_t j = 0; j < k; j++) {
            data[j] = f->first + i + j;
            ok[j] = (struct result_ok){.id = data[j], .handle = race_handle[i + j],
                                       .data = &data[j], .len = sizeof data[j]};
        }
        results_finish_ok(f->r, ok, k);
        for (size_t j = 0; j < k; j++)
            race_won[i + j] = ok[j].won;
    }
    return NULL;
}

/* Lock-free finishes race requests parking on the same ids and cancels of them: each id
 * ends done exactly once, ok when the finish won and cancelled when the cancel did, and
 * every parked request is answered with that outcome. */
static void test_lock_free_finishes_race_parks_and_cancels(void **state)
{
    (void)state;
    struct results *r = make(RACE_N, RACE_N, 0, 1);
    uint64_t first = 0, id;
    for (size_t i = 0; i < RACE_N; i++) {
        assert_int_equal(results_reserve_handle(r, &id, &race_handle[i]), GGL_OK);
        if (!first)
            first = id;
        assert_int_equal(id, first + i);
        assert_int_equal(results_start_handle(r, race_handle[i], id), 0);
    }
    struct ok_finisher f[RACE_THREADS];
    pthread_t t[RACE_THREADS];
    for (size_t i = 0; i < RACE_THREADS; i++) {
        f[i] = (struct ok_finisher){r, first, i * (RACE_N / RACE_THREADS), RACE_N / RACE_THREADS};
        assert_int_equal(pthread_create(&t[i], NULL, finish_ok_range, &f[i]), 0);
    }
    int cancelled[RACE_N] = {0};
    size_t parked = 0;
    for (size_t i = 0; i < RACE_N; i++) {
        if (i % 2 == 0) {
            assert_int_equal(results_park(r, first + i, new_job(), fake_clock() + 60000), GGL_OK);
            parked++;
        }
        if (i % 3 == 0)
            cancelled[i] = results_cancel(r, first + i, NULL);
    }
    for (size_t i = 0; i < RACE_THREADS; i++)
        pthread_join(t[i], NULL);
    assert_true(wait_done(parked, 10));
    assert_int_equal(n_done, parked);
    for (size_t i = 0; i < RACE_N; i++) {
        struct result_view v;
        assert_int_equal(results_get(r, first + i, &v), RESULT_DONE);
        assert_int_equal(race_won[i], !cancelled[i]);
        assert_int_equal(v.status, race_won[i] ? RESULT_OK : RESULT_CANCELLED);
        if (race_won[i]) {
            assert_int_equal(v.len, sizeof(uint64_t));
            assert_memory_equal(v.data, &(uint64_t){first + i}, sizeof(uint64_t));
        }
        result_view_free(&v);
    }
    for (size_t k = 0; k < parked; k++) /* each answer is an outcome, never nil */
        assert_true(strncmp(reply_of(k), "*3\r\n", 4) == 0);
    struct results_stats st;
    results_stats(r, &st);
    assert_int_equal(st.finished, RACE_N);
    assert_int_equal(st.pending, 0);
    assert_int_equal(st.waiters, 0);
    results_free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_id_goes_queued_running_done, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lock_free_start_through_a_handle, setup, teardown),
        cmocka_unit_test_setup_teardown(test_late_result_after_cancel_is_discarded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_results_expire_at_ttl, setup, teardown),
        cmocka_unit_test_setup_teardown(test_full_store_refuses_until_a_result_expires, setup, teardown),
        cmocka_unit_test_setup_teardown(test_evict_unread_takes_the_oldest_finished_result, setup, teardown),
        cmocka_unit_test_setup_teardown(test_oversized_data_is_stored_as_failed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_parked_waiter_gets_the_result, setup, teardown),
        cmocka_unit_test_setup_teardown(test_waiter_deadline_answers_nil, setup, teardown),
        cmocka_unit_test_setup_teardown(test_waiters_beyond_max_are_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_park_on_unknown_or_finished_answers_at_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_closed_waiters_are_answered_and_no_more_park, setup, teardown),
        cmocka_unit_test_setup_teardown(test_timer_thread_answers_at_the_real_deadline, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_finishers_answer_every_waiter, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lock_free_finishes_race_parks_and_cancels, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
