/* The sensor scheduler: one thread, a binary min-heap of sensors by due time (host
 * clock), a condition-variable timed wait until the earliest.  A sample runs with no
 * lock held except the tick lock that serialises whole ticks (the thread's and a test's
 * sensors_run_due); its readings go into the environment's queue.  A sample that blocks
 * delays the others, so sensors bound their own I/O (the redis sensor's timeouts). */
#include "ggl-build.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "deadline.h"
#include "hostapi.h"
#include "log.h"
#include "metrics.h"
#include "sensors.h"

struct sensor_run {
    struct instance *inst;
    const struct ggl_sensor *vt;
    int64_t interval_ms, effective_ms;
    uint64_t due_ms;
    unsigned failures;          /* consecutive */
    uint64_t samples, failed, readings, dropped;
    char last_error[160];
};

static struct {
    struct sensor_run *v;
    size_t n;
    size_t *heap;               /* indices into v, earliest due first */
    const struct env_conf *conf;
    pthread_mutex_t lock;       /* stats, stopping; the thread waits on wake with it */
    pthread_mutex_t tick;       /* one tick at a time */
    pthread_cond_t wake;
    pthread_t thread;
    int started, stopping;
    struct ggl_metric *m_samples, *m_failures, *m_backoffs, *m_dropped;
} S = {.lock = PTHREAD_MUTEX_INITIALIZER, .tick = PTHREAD_MUTEX_INITIALIZER};

int64_t sensors_backoff(int64_t interval_ms, unsigned failures, int64_t after, int64_t max_ms)
{
    if (failures < (uint64_t)after)
        return interval_ms;
    int64_t cap = max_ms > interval_ms ? max_ms : interval_ms, d = interval_ms;
    for (unsigned i = (unsigned)after - 1; i < failures && d < cap; i++)
        d *= 2;
    return d < cap ? d : cap;
}

/* --- the heap ---------------------------------------------------------------------- */

static int earlier(size_t a, size_t b) { return S.v[S.heap[a]].due_ms < S.v[S.heap[b]].due_ms; }

static void swap_at(size_t a, size_t b)
{
    size_t t = S.heap[a];
    S.heap[a] = S.heap[b];
    S.heap[b] = t;
}

/* The root's due time changed: move it down to its place. */
static void sift_down(void)
{
    for (size_t i = 0;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < S.n && earlier(l, m))
            m = l;
        if (r < S.n && earlier(r, m))
            m = r;
        if (m == i)
            return;
        swap_at(i, m);
        i = m;
    }
}

/* --- sampling ---------------------------------------------------------------------- */

/* What one sample wrote: counted here, added to the sensor's stats under the lock. */
struct sample_sink {
    const struct sensor_run *s;
    unsigned readings, dropped;
};

static void emit(void *sink, const char *key, double value, const char *text)
{
    struct sample_sink *k = sink;
    char full[ENV_KEY_MAX + 1], num[40];
    int n = key ? snprintf(full, sizeof full, "%s.%s", k->s->inst->conf->name, key) : -1;
    if (!text) {
        snprintf(num, sizeof num, "%.15g", value);
        text = num;
    }
    if (n > 0 && n < (int)sizeof full &&
        environment_set(full, text, strlen(text), k->s->inst->label, NULL, NULL) == GGL_OK) {
        k->readings++;
    } else {
        k->dropped++;
        metrics_add(S.m_dropped, 1);
    }
}

static void sample_one(struct sensor_run *s, uint64_t now)
{
    struct sample_sink sink = {s, 0, 0};
    hostapi_clear_reason();
    enum ggl_status st = s->vt->sample(s->inst->self, emit, &sink);
    const char *why = st == GGL_OK ? "" : hostapi_take_reason();
    pthread_mutex_lock(&S.lock);
    s->samples++;
    s->readings += sink.readings;
    s->dropped += sink.dropped;
    metrics_add(S.m_samples, 1);
    if (st == GGL_OK) {
        if (s->failures >= (unsigned)S.conf->sensor_backoff_after)
            log_info("%s: sampling again every %lld ms", s->inst->label, (long long)s->interval_ms);
        s->failures = 0;
    } else {
        s->failures++;
        s->failed++;
        metrics_add(S.m_failures, 1);
        snprintf(s->last_error, sizeof s->last_error, "%s%s%s", ggl_status_str(st),
                 why[0] ? ": " : "", why);
    }
    int64_t next = sensors_backoff(s->interval_ms, s->failures, S.conf->sensor_backoff_after,
                                   S.conf->sensor_backoff_max_ms);
    if (next > s->effective_ms) {
        metrics_add(S.m_backoffs, 1);
        log_warn("%s: %u failures in a row (%s); next sample in %lld ms", s->inst->label,
                 s->failures, s->last_error, (long long)next);
    }
    s->effective_ms = next;
    pthread_mutex_unlock(&S.lock);
    s->due_ms = now + (uint64_t)next;
}

uint64_t sensors_run_due(void)
{
    pthread_mutex_lock(&S.tick);
    uint64_t now = clock_now_ms();
    while (S.n && S.v[S.heap[0]].due_ms <= now) {
        sample_one(&S.v[S.heap[0]], now);
        sift_down();
    }
    uint64_t next = S.n ? S.v[S.heap[0]].due_ms : UINT64_MAX;
    pthread_mutex_unlock(&S.tick);
    return next;
}

static void *scheduler_main(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&S.lock);
    while (!S.stopping) {
        pthread_mutex_unlock(&S.lock);
        uint64_t next = sensors_run_due(), now = clock_now_ms();
        pthread_mutex_lock(&S.lock);
        if (S.stopping || next <= now)
            continue;
        uint64_t ms = next - now;
        struct timespec ts = deadline_after_ms(CLOCK_MONOTONIC, ms);
        pthread_cond_timedwait(&S.wake, &S.lock, &ts);
    }
    pthread_mutex_unlock(&S.lock);
    return NULL;
}

/* --- lifecycle ----------------------------------------------------------------------- */

static size_t collect(struct instance *inst, size_t n)
{
    size_t k = 0;
    uint64_t now = clock_now_ms();
    for (size_t i = 0; i < n; i++) {
        if (inst[i].conf->kind != GGL_KIND_SENSOR || inst[i].state != INSTANCE_OPEN)
            continue;
        struct sensor_run *s = &S.v[k];
        *s = (struct sensor_run){.inst = &inst[i], .vt = inst[i].mod->desc->vtable,
                                 .interval_ms = inst[i].conf->interval_ms,
                                 .effective_ms = inst[i].conf->interval_ms, .due_ms = now};
        S.heap[k] = k;
        k++;
    }
    return k;
}

int sensors_start(struct instance *inst, size_t n, const struct env_conf *conf,
                  struct conf_error *err)
{
    S.conf = conf;
    S.stopping = 0;
    S.m_samples = metrics_register_in("environment", GGL_METRIC_COUNTER, "environment_sensor_samples",
                                      "sensor samples taken", NULL);
    S.m_failures = metrics_register_in("environment", GGL_METRIC_COUNTER,
                                       "environment_sensor_failures", "sensor samples that failed", NULL);
    S.m_backoffs = metrics_register_in("environment", GGL_METRIC_COUNTER,
                                       "environment_sensor_backoffs",
                                       "times a failing sensor's interval was lengthened", NULL);
    S.m_dropped = metrics_register_in("environment", GGL_METRIC_COUNTER,
                                      "environment_sensor_dropped",
                                      "readings the environment refused (invalid or queue full)", NULL);
    S.v = calloc(n ? n : 1, sizeof *S.v);
    S.heap = calloc(n ? n : 1, sizeof *S.heap);
    if (!S.v || !S.heap) {
        snprintf(err->msg, sizeof err->msg, "environment: out of memory");
        return -1;
    }
    S.n = collect(inst, n);
    if (!S.n)
        return 0;
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&S.wake, &attr);
    pthread_condattr_destroy(&attr);
    if (pthread_create(&S.thread, NULL, scheduler_main, NULL) != 0) {
        snprintf(err->msg, sizeof err->msg, "environment: cannot start the sensor thread");
        pthread_cond_destroy(&S.wake);
        return -1;
    }
    S.started = 1;
    log_info("environment: sampling %zu sensors", S.n);
    return 0;
}

void sensors_stop(void)
{
    if (S.started) {
        pthread_mutex_lock(&S.lock);
        S.stopping = 1;
        pthread_cond_signal(&S.wake);
        pthread_mutex_unlock(&S.lock);
        pthread_join(S.thread, NULL);
        pthread_cond_destroy(&S.wake);
        S.started = 0;
    }
    free(S.v);
    free(S.heap);
    S.v = NULL;
    S.heap = NULL;
    S.n = 0;
}

int sensors_replace(const struct instance *old, struct instance *fresh)
{
    int rc = -1;
    pthread_mutex_lock(&S.tick); /* a sample in flight finishes on old first */
    pthread_mutex_lock(&S.lock);
    for (size_t i = 0; i < S.n; i++)
        if (S.v[i].inst == old) {
            S.v[i].inst = fresh;
            S.v[i].vt = fresh->mod->desc->vtable;
            S.v[i].interval_ms = S.v[i].effective_ms = fresh->conf->interval_ms;
            rc = 0;
        }
    pthread_mutex_unlock(&S.lock);
    pthread_mutex_unlock(&S.tick);
    if (rc < 0)
        hostapi_set_reason("the scheduler does not sample %s", old->label);
    return rc;
}

int sensors_uses(const struct instance *inst)
{
    int used = 0;
    pthread_mutex_lock(&S.lock);
    for (size_t i = 0; i < S.n; i++)
        used |= S.v[i].inst == inst;
    pthread_mutex_unlock(&S.lock);
    return used;
}

void sensors_info(FILE *f)
{
    pthread_mutex_lock(&S.lock);
    fprintf(f, "sensors:%zu\r\n", S.n);
    for (size_t i = 0; i < S.n; i++) {
        const struct sensor_run *s = &S.v[i];
        fprintf(f, "sensor_%s:plugin=%s,interval_ms=%lld,effective_ms=%lld,samples=%llu,"
                   "failed=%llu,failing=%u,readings=%llu,dropped=%llu,last_error=%s\r\n",
                s->inst->conf->name, s->inst->conf->plugin, (long long)s->interval_ms,
                (long long)s->effective_ms, (unsigned long long)s->samples,
                (unsigned long long)s->failed, s->failures, (unsigned long long)s->readings,
                (unsigned long long)s->dropped, s->last_error[0] ? s->last_error : "-");
    }
    pthread_mutex_unlock(&S.lock);
}
