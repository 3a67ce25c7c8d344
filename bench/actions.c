/* bench/actions: the action system with a no-op executor.  Prints
 *  - throughput (submit -> callback) against a bare mutex+condvar ring handing the same
 *    number of items from one producer to the same number of consumers (the floor of
 *    any queue hop), measured in the same run;
 *  - the retry scheduler with 100,000 actions waiting in the due-time heap: the cost of
 *    parking one (admit, run, fail, schedule), throughput while they wait as a ratio of
 *    the throughput without them, and the CPU the process burns while they wait idle.
 * Rates are medians of three runs.
 * Usage: bench/actions [actions] (default 200000). */
#include "ggl-build.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "actions.h"
#include "hostapi.h"
#include "log.h"
#include "metrics.h"

#define WORKERS 2
#define RING 4096
#define WAITING 100000

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* --- baseline: a bounded ring, one producer, WORKERS consumers -------------------- */

static struct {
    pthread_mutex_t mu;
    pthread_cond_t not_empty, not_full;
    void *items[RING];
    size_t head, len, done, total;
} ring = {.mu = PTHREAD_MUTEX_INITIALIZER, .not_empty = PTHREAD_COND_INITIALIZER,
        .not_full = PTHREAD_COND_INITIALIZER};

static void *ring_consumer(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&ring.mu);
    for (;;) {
        while (ring.len == 0 && ring.done < ring.total)
            pthread_cond_wait(&ring.not_empty, &ring.mu);
        if (ring.len == 0)
            break;
        ring.head = (ring.head + 1) % RING;
        ring.len--;
        if (++ring.done == ring.total)
            pthread_cond_broadcast(&ring.not_empty);
        pthread_cond_signal(&ring.not_full);
    }
    pthread_mutex_unlock(&ring.mu);
    return NULL;
}

static double baseline_rate(size_t n)
{
    pthread_t t[WORKERS];
    ring.total = n;
    ring.done = 0;
    for (int i = 0; i < WORKERS; i++)
        pthread_create(&t[i], NULL, ring_consumer, NULL);
    double t0 = now_s();
    for (size_t i = 0; i < n; i++) {
        pthread_mutex_lock(&ring.mu);
        while (ring.len == RING)
            pthread_cond_wait(&ring.not_full, &ring.mu);
        ring.items[(ring.head + ring.len++) % RING] = &ring;
        pthread_cond_signal(&ring.not_empty);
        pthread_mutex_unlock(&ring.mu);
    }
    for (int i = 0; i < WORKERS; i++)
        pthread_join(t[i], NULL);
    return (double)n / (now_s() - t0);
}

/* --- the action system ------------------------------------------------------------- */

static _Atomic size_t completed;
static const char *const names[] = {"noop", NULL};
static const char *const *b_names(void *self) { (void)self; return names; }

static enum ggl_status b_execute(void *self, const struct ggl_action *a, struct ggl_result *r)
{
    (void)self, (void)r;
    return a->payload_len == 4 && memcmp(a->payload, "park", 4) == 0 ? GGL_RETRY : GGL_OK;
}

static const struct ggl_executor vt = {.size = sizeof vt, .flags = GGL_READS_CONCURRENT,
                                       .action_names = b_names, .execute = b_execute};

static pthread_mutex_t done_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t done_cv = PTHREAD_COND_INITIALIZER;
static size_t done_target;

static void on_done(void *arg, uint64_t id, const struct ggl_result *res)
{
    (void)arg, (void)id, (void)res;
    if (atomic_fetch_add(&completed, 1) + 1 == done_target) {
        pthread_mutex_lock(&done_mu);
        pthread_cond_signal(&done_cv);
        pthread_mutex_unlock(&done_mu);
    }
}

/* Block (no spinning: it would take a CPU from the workers) until `target` completed. */
static void wait_completed(size_t target)
{
    pthread_mutex_lock(&done_mu);
    while (atomic_load(&completed) < target)
        pthread_cond_wait(&done_cv, &done_mu);
    pthread_mutex_unlock(&done_mu);
}

/* Submit n actions with `payload`, retrying refusals (a full queue) until admitted. */
static size_t submit_all(size_t n, const char *payload, int with_callback)
{
    struct action_spec sp = {"noop", payload, strlen(payload), GGL_PRIO_NORMAL, 1, 0, NULL};
    size_t refused = 0;
    for (size_t i = 0; i < n; i++) {
        uint64_t id;
        int repeat;
        while (actions_submit(&sp, with_callback ? on_done : NULL, NULL, &id, &repeat) == GGL_RETRY)
            refused++, sched_yield();
    }
    return refused;
}

static double action_rate(size_t n)
{
    size_t base = atomic_load(&completed);
    done_target = base + n;
    double t0 = now_s();
    submit_all(n, "noop", 1);
    wait_completed(base + n);
    return (double)n / (now_s() - t0);
}

/* The median of three runs of fn(n): this machine's neighbours make single runs noisy. */
static double median3(double (*fn)(size_t), size_t n)
{
    double a = fn(n), b = fn(n), c = fn(n);
    return a > b ? (b > c ? b : a > c ? c : a) : (a > c ? a : b > c ? c : b);
}

static double cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static double metric(const char *name)
{
    return metrics_value(metrics_register_in("actions", GGL_METRIC_COUNTER, name, "", NULL));
}

int main(int argc, char **argv)
{
    size_t n = argc > 1 ? strtoul(argv[1], NULL, 10) : 200000;
    log_set_level(GGL_LOG_WARN);
    struct actions_conf ac;
    struct conf_error err;
    actions_read_config(NULL, &ac, &err);
    ac.results_max = 1000000; /* more than one run's ids; older results expire */
    ac.result_ttl_ms = ac.dedup_window_ms = 1000;
    ac.backoff_base_ms = 3600000; /* parked retries stay parked */
    ac.backoff_max_ms = 3600000;
    struct queue_config qc = {"bench_actions", WAITING + RING, 0, 0};
    struct action_executor ex = {"executor/noop", &vt, NULL};
    if (actions_start(&ac, &qc, &ex, 1, WORKERS, 1) < 0)
        return 1;

    double base = median3(baseline_rate, n);
    double rate = median3(action_rate, n);
    printf("no-op throughput, %zu actions, %d workers\n", n, WORKERS);
    printf("  %-44s %12.0f /s\n", "baseline: mutex+condvar ring handoff", base);
    printf("  %-44s %12.0f /s   ratio %.2f\n", "ACTION submit -> executor -> callback", rate,
           rate / base);

    double t0 = now_s();
    submit_all(WAITING, "park", 0);
    while (metric("actions_retried") < WAITING)
        sched_yield();
    double park_us = (now_s() - t0) / WAITING * 1e6;
    double c0 = cpu_s(), w0 = now_s();
    struct timespec one = {1, 0};
    nanosleep(&one, NULL); /* the benchmark measures idle cost; it is not a test */
    double idle_cpu_ms = (cpu_s() - c0) / (now_s() - w0) * 1e3;
    double rate_waiting = median3(action_rate, n);
    printf("retry scheduler, %d actions waiting for a retry\n", WAITING);
    printf("  %-44s %12.2f us\n", "admit + run + park one in the due-time heap", park_us);
    printf("  %-44s %12.0f /s   ratio %.2f (vs none waiting)\n", "no-op throughput while they wait",
           rate_waiting, rate_waiting / rate);
    printf("  %-44s %12.2f ms CPU per second\n", "idle cost while they wait", idle_cpu_ms);
    actions_stop();
    actions_free();
    metrics_fini();
    return 0;
}
