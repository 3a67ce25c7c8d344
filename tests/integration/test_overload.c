/* Overload on the real binary: for LOAD_S seconds clients offer TASK.SUBMIT and
 * ACTION.SUBMIT (pipelined) at more than ten times what two workers of 10 ms each can
 * do, with bounded queues.  Clients get -BUSY; nothing is dropped silently (accepted +
 * refused = attempts; once drained, the host's outcome counters add up to the accepted
 * and its refusal counters to the -BUSY seen); peak RSS stays within idle RSS + the
 * configured bounds + 64 MiB; round trips return to their idle latency when load stops.
 * The figures (RSS, bounds, counts, recovery time) are printed for the test log. */
#include "ggl-build.h"

#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"

#define LOAD_S 30
#define WORK_MS 10                 /* each task and action sleeps this long */
#define WORKERS 2                  /* processing and action_execution pools */
#define OFFER_PER_S 2500           /* per kind: 12.5 x WORKERS * 1000 / WORK_MS */
#define CLIENTS 2                  /* per kind */
#define BATCH 25                   /* pipelined submissions per write */
#define QUEUE 256                  /* engine.queue_capacity, pools.queue_capacity */
#define RESULTS 4096               /* engine.max_results, actions.results_max */
#define RESULT_BYTES 64            /* max_result_bytes of both */
#define PAYLOAD "0123456789abcdef" /* 16 bytes */
#define PROBES 21                  /* round trips per latency figure */
#define SLACK_MIB 64
#define STR(x) #x
#define TO_STR(x) STR(x)
#define SLOW \
    " slow = { plugin = \"faulty\"; name = \"slow\"; mode = \"sleep\"; sleep_ms = " TO_STR(WORK_MS) "; };"
#define BODY                                                                                  \
    "plugin_dirs = [ \"" TEST_PLUGINDIR "\", \"" BUILD_PLUGINDIR "\" ];\n"                   \
    "pools = { processing = " TO_STR(WORKERS) "; action_execution = " TO_STR(WORKERS) ";"    \
    " pool_max = " TO_STR(WORKERS) "; queue_capacity = " TO_STR(QUEUE) "; };\n"               \
    "engine = { queue_capacity = " TO_STR(QUEUE) "; critical_reserve = 0; max_results = "     \
    TO_STR(RESULTS) "; max_result_bytes = " TO_STR(RESULT_BYTES) "; result_ttl_ms = 1000; };\n" \
    "actions = { results_max = " TO_STR(RESULTS) "; max_result_bytes = " TO_STR(RESULT_BYTES) \
    "; result_ttl_ms = 1000; dedup_window_ms = 1000; default_retries = 0; };\n"               \
    "processors = {" SLOW " };\nexecutors = {" SLOW " };\n"

/* What one kind's bounds allow the host to hold, by the config above: each queued task
 * or action (its record, payload, queue node and bookkeeping: 1 KiB is generous) and
 * each held result (entry and its bytes). */
#define PER_ITEM (1024 + sizeof PAYLOAD)
#define PER_RESULT (512 + RESULT_BYTES)
#define BOUNDS_BYTES (2 * ((size_t)QUEUE * PER_ITEM + (size_t)RESULTS * PER_RESULT))

static long long now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* --- a buffered reply reader for the pipelined clients ----------------------------- */

struct conn {
    int fd;
    size_t have, at;
    char buf[65536];
};

/* The next reply line (all replies to SUBMIT are one line); 0 on EOF or timeout. */
static int next_line(struct conn *c, char *line, size_t size)
{
    for (size_t k = 0;;) {
        if (c->at == c->have) {
            struct pollfd p = {c->fd, POLLIN, 0};
            ssize_t n = poll(&p, 1, TIMEOUT_MS) == 1 ? recv(c->fd, c->buf, sizeof c->buf, 0) : 0;
            if (n <= 0)
                return 0;
            c->have = (size_t)n, c->at = 0;
        }
        char ch = c->buf[c->at++];
        if (ch == '\n') {
            line[k && line[k - 1] == '\r' ? k - 1 : k] = '\0';
            return 1;
        }
        if (k + 1 < size)
            line[k++] = ch;
    }
}

/* --- the load ---------------------------------------------------------------------- */

struct load {
    const struct host *h;
    const char *kind;          /* "TASK" or "ACTION" */
    long long until_ms;
    long long attempts, accepted, refused, other;
    char first_other[160];
    struct conn c;
};

static void *offer(void *arg)
{
    struct load *l = arg;
    char batch[BATCH * 64], line[256];
    size_t len = 0;
    for (int i = 0; i < BATCH; i++)
        len += (size_t)snprintf(batch + len, sizeof batch - len, "%s.SUBMIT slow " PAYLOAD "\r\n",
                                l->kind);
    struct conn *c = &l->c;
    c->fd = try_connect(l->h->sock), c->have = c->at = 0;
    long long start = now_ms();
    while (c->fd >= 0 && now_ms() < l->until_ms) {
        long long due = (now_ms() - start) * (OFFER_PER_S / CLIENTS) / 1000;
        if (l->attempts >= due) { /* paced: ahead of the offered rate */
            poll(NULL, 0, 2);
            continue;
        }
        if (send(c->fd, batch, len, MSG_NOSIGNAL) != (ssize_t)len)
            break;
        for (int i = 0; i < BATCH; i++) {
            if (!next_line(c, line, sizeof line)) {
                snprintf(l->first_other, sizeof l->first_other, "no reply");
                l->other++;
                goto out;
            }
            l->attempts++;
            if (line[0] == ':')
                l->accepted++;
            else if (strncmp(line, "-BUSY", 5) == 0)
                l->refused++;
            else if (!l->other++)
                snprintf(l->first_other, sizeof l->first_other, "%s", line);
        }
    }
out:
    if (c->fd >= 0)
        close(c->fd);
    return NULL;
}

/* --- RSS ------------------------------------------------------------------------------ */

static long status_kib(pid_t pid, const char *field)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    long kib = -1;
    size_t n = strlen(field);
    while (f && kib < 0 && fgets(line, sizeof line, f))
        if (strncmp(line, field, n) == 0 && line[n] == ':')
            kib = strtol(line + n + 1, NULL, 10);
    if (f)
        fclose(f);
    return kib;
}

struct sampler {
    pid_t pid;
    atomic_int stop;
    long peak_kib, samples;
};

static void *sample_rss(void *arg)
{
    struct sampler *s = arg;
    while (!atomic_load(&s->stop)) {
        long kib = status_kib(s->pid, "VmRSS");
        if (kib > s->peak_kib)
            s->peak_kib = kib;
        s->samples++;
        poll(NULL, 0, 100);
    }
    return NULL;
}

/* --- latency ------------------------------------------------------------------------ */

/* One SUBMIT + RESULT WAIT round trip in ms; -2 if the SUBMIT was refused with -BUSY,
 * -1 if an answer was not the expected one (no cmocka assertion: recovery runs on a
 * thread per kind). */
static double round_trip(struct conn *c, const char *kind)
{
    char id[64], line[7][64];
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    int n = dprintf(c->fd, "%s.SUBMIT slow " PAYLOAD "\r\n", kind);
    if (n <= 0 || !next_line(c, id, sizeof id))
        return -1;
    if (id[0] != ':')
        return strncmp(id, "-BUSY", 5) == 0 ? -2 : -1;
    dprintf(c->fd, "%s.RESULT %s WAIT 10000\r\n", kind, id + 1);
    for (int i = 0; i < 7; i++) /* *3, $2, ok, $4, done, $0, "" */
        if (!next_line(c, line[i], sizeof line[i]))
            return -1;
    clock_gettime(CLOCK_MONOTONIC, &b);
    if (strcmp(line[2], "ok") != 0 || strcmp(line[4], "done") != 0)
        return -1;
    return (double)(b.tv_sec - a.tv_sec) * 1e3 + (double)(b.tv_nsec - a.tv_nsec) / 1e6;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The median of PROBES round trips; -1 if one failed. */
static double p50_round_trip(struct conn *c, const char *kind)
{
    double v[PROBES];
    for (int i = 0; i < PROBES; i++)
        if ((v[i] = round_trip(c, kind)) < 0)
            return -1;
    qsort(v, PROBES, sizeof v[0], cmp_double);
    return v[PROBES / 2];
}

/* --- the test ----------------------------------------------------------------------- */

struct kind {
    const char *name;
    struct load l[CLIENTS];
    long long attempts, accepted, refused, probes, probes_refused;
    double idle_p50, after_p50;
    long long stop_ms, recovery;
    int trips;
    struct conn probe;         /* its own connection for the round trips */
};

/* From load stop: round trips (bounded) until one is within 3x the idle p50 (recovery:
 * the ms from stop until then), then the p50 after.  -1 in either when it failed. */
static void *recover(void *arg)
{
    struct kind *k = arg;
    k->recovery = k->after_p50 = -1;
    for (k->trips = 1; k->trips <= 2000 && now_ms() - k->stop_ms < 20000; k->trips++) {
        double ms = round_trip(&k->probe, k->name);
        if (ms == -2) { /* the queue is still full: not recovered */
            k->probes_refused++;
            poll(NULL, 0, 2);
            continue;
        }
        if (ms < 0)
            return NULL;
        k->probes++;
        if (ms <= 3 * k->idle_p50) {
            k->recovery = now_ms() - k->stop_ms;
            break;
        }
    }
    if (k->recovery >= 0)
        k->after_p50 = p50_round_trip(&k->probe, k->name);
    k->probes += PROBES;
    return NULL;
}

static void sum_clients(struct kind *k)
{
    for (int i = 0; i < CLIENTS; i++) {
        k->attempts += k->l[i].attempts;
        k->accepted += k->l[i].accepted;
        k->refused += k->l[i].refused;
        if (k->l[i].other)
            fail_msg("%s: %lld unexpected replies, first: %s", k->name, k->l[i].other,
                     k->l[i].first_other);
    }
}

/* Outcomes and refusals the host counted for this kind. */
static void host_counts(const struct host *h, const struct kind *k, double *settled, double *busy)
{
    if (strcmp(k->name, "TASK") == 0) {
        static const char *const outcomes[] = {"completed", "failed", "invalid", "timed_out",
                                               "cancelled"};
        char key[64];
        *settled = 0;
        for (size_t i = 0; i < sizeof outcomes / sizeof outcomes[0]; i++) {
            snprintf(key, sizeof key, "engine_%s{slow}", outcomes[i]);
            *settled += info_value(h, "engine", key);
        }
        *busy = info_value(h, "engine", "engine_refused_busy");
    } else {
        *settled = info_value(h, "actions", "actions_completed") +
                   info_value(h, "actions", "actions_failed") +
                   info_value(h, "actions", "actions_cancelled");
        *busy = info_value(h, "actions", "actions_refused");
    }
}

/* Bounded: until neither queue holds anything. */
static void wait_drained(const struct host *h)
{
    for (int i = 0; i < 500; i++) {
        if (info_value(h, "engine", "engine_admitted{slow}") == 0 &&
            info_value(h, "actions", "actions_live") == 0)
            return;
        poll(NULL, 0, 20);
    }
    fail_msg("the queues did not drain within 10 s of the load's end");
}

static void test_overload_refuses_loses_nothing_and_recovers(void **state)
{
    (void)state;
    struct host h;
    start_host_with(&h, NULL, BODY);
    static struct kind kinds[2] = {{.name = "TASK"}, {.name = "ACTION"}};
    for (int k = 0; k < 2; k++) {
        kinds[k].probe.fd = client(&h);
        kinds[k].idle_p50 = p50_round_trip(&kinds[k].probe, kinds[k].name);
        assert_true(kinds[k].idle_p50 > 0);
        kinds[k].probes += PROBES;
    }
    long idle_kib = status_kib(h.pid, "VmRSS");
    assert_true(idle_kib > 0);

    static struct sampler s;
    s = (struct sampler){.pid = h.pid, .peak_kib = idle_kib};
    pthread_t sampler, th[2][CLIENTS];
    assert_int_equal(pthread_create(&sampler, NULL, sample_rss, &s), 0);
    long long until = now_ms() + LOAD_S * 1000;
    for (int k = 0; k < 2; k++)
        for (int i = 0; i < CLIENTS; i++) {
            kinds[k].l[i] = (struct load){.h = &h, .kind = kinds[k].name, .until_ms = until};
            assert_int_equal(pthread_create(&th[k][i], NULL, offer, &kinds[k].l[i]), 0);
        }
    for (int k = 0; k < 2; k++)
        for (int i = 0; i < CLIENTS; i++)
            pthread_join(th[k][i], NULL);
    for (int k = 0; k < 2; k++) {
        kinds[k].stop_ms = now_ms();
        assert_int_equal(pthread_create(&th[k][0], NULL, recover, &kinds[k]), 0);
    }
    double queued_at_stop = info_value(&h, "engine", "engine_queued{slow}");
    for (int k = 0; k < 2; k++) {
        pthread_join(th[k][0], NULL);
        close(kinds[k].probe.fd);
        sum_clients(&kinds[k]);
        assert_true(kinds[k].recovery >= 0 && kinds[k].after_p50 > 0);
    }
    wait_drained(&h);
    atomic_store(&s.stop, 1);
    pthread_join(sampler, NULL);
    long hwm_kib = status_kib(h.pid, "VmHWM");
    long peak_kib = hwm_kib > s.peak_kib ? hwm_kib : s.peak_kib;
    long limit_kib = idle_kib + (long)(BOUNDS_BYTES / 1024) + SLACK_MIB * 1024;

    printf("overload: %d s, %d workers x %d ms per kind (capacity %d/s), offered %d/s per kind\n",
           LOAD_S, WORKERS, WORK_MS, WORKERS * 1000 / WORK_MS, OFFER_PER_S);
    printf("overload: RSS idle %ld KiB, peak %ld KiB (VmHWM %ld, sampled max %ld over %ld "
           "samples), bounds %zu KiB + %d MiB slack = limit %ld KiB\n", idle_kib, peak_kib,
           hwm_kib, s.peak_kib, s.samples, BOUNDS_BYTES / 1024, SLACK_MIB, limit_kib);
    printf("overload: tasks queued when the load stopped: %.0f (INFO gauge, <= %d)\n",
           queued_at_stop, QUEUE);
    for (int k = 0; k < 2; k++) {
        struct kind *x = &kinds[k];
        double settled, busy;
        host_counts(&h, x, &settled, &busy);
        printf("overload: %s attempts %lld = accepted %lld + refused(-BUSY) %lld (%.0f/s taken); "
               "host settled %.0f (accepted + %lld probes), refused %.0f; round trip p50 idle "
               "%.2f ms, after %.2f ms; recovery %lld ms (%d round trips, %lld refused)\n", x->name,
               x->attempts, x->accepted, x->refused, (double)x->accepted / LOAD_S, settled,
               x->probes, busy, x->idle_p50, x->after_p50, x->recovery, x->trips,
               x->probes_refused);
        assert_true(x->refused > 0);
        assert_true(x->attempts >= 10 * x->accepted); /* offered >= 10x what was taken */
        /* and both workers kept busy: the work is sleeps, so CPU contention does not
         * explain less (one worker idle behind the other's loop took half this) */
        assert_true(x->accepted >= LOAD_S * WORKERS * 1000 / WORK_MS * 3 / 4);
        assert_int_equal(x->attempts, x->accepted + x->refused);
        assert_int_equal((long long)settled, x->accepted + x->probes);
        assert_int_equal((long long)busy, x->refused + x->probes_refused);
        assert_true(x->after_p50 <= 3 * x->idle_p50);
    }
    assert_true(peak_kib <= limit_kib);
    stop_host(&h);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_overload_refuses_loses_nothing_and_recovers,
                                  kill_leftover_hosts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
