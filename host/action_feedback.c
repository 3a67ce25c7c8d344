/* The action system's feedback and read side: feedback threads deliver each outcome to
 * its callback (and to repeats of its idempotency key), to memory as PREFIX<id> (a JSON
 * record the learning processor can read) and to environment state as PREFIX<name>
 * through the same state_set service plugins call.  The feedback list is intrusive
 * (the action record itself), so it is bounded by the admission capacity and a worker
 * never waits to hand an outcome over.  Also: latency samples, INFO lines, ACTION.*
 * read helpers and replay. */
#include "ggl-build.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "actions_impl.h"
#include "orchestrator.h"
#include "hostapi.h"
#include "log.h"
#include "memory.h"
#include "metrics.h"

static enum ggl_status status_for(enum result_status st)
{
    return st == RESULT_OK ? GGL_OK : st == RESULT_INVALID ? GGL_INVALID : GGL_ERROR;
}

/* s as a JSON string body (quotes, backslashes and control characters escaped). */
static void json_escape(char *out, size_t cap, const char *s)
{
    size_t n = 0;
    for (; *s && n + 7 < cap; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            out[n++] = '\\', out[n++] = (char)c;
        else if (c < 0x20)
            n += (size_t)snprintf(out + n, cap - n, "\\u%04x", c);
        else
            out[n++] = (char)c;
    }
    out[n] = '\0';
}

/* The outcome as one JSON object: what memory feedback stores and the bus carries. */
static int outcome_json(const struct act *a, char *value, size_t cap)
{
    char reason[600], name[300];
    json_escape(reason, sizeof reason, a->reason);
    json_escape(name, sizeof name, a->spec.name);
    int n = snprintf(value, cap,
                     "{\"id\":%llu,\"action\":\"%s\",\"status\":\"%s\",\"attempts\":%u,"
                     "\"reason\":\"%s\",\"at_ms\":%llu}",
                     (unsigned long long)a->id, name, result_status_str(a->status),
                     a->attempt + 1, reason, (unsigned long long)clock_now_ms());
    return n < (int)cap ? n : (int)cap - 1;
}

static void feedback_memory(struct actions *s, const struct act *a)
{
    char key[256], value[1024];
    int kl = snprintf(key, sizeof key, "%s%llu", s->conf.feedback_memory_prefix,
                      (unsigned long long)a->id);
    int vl = outcome_json(a, value, sizeof value);
    struct memory_write w = MEMORY_WRITE_DEFAULT;
    w.ttl_ms = s->conf.feedback_memory_ttl_ms;
    enum ggl_status st = memory_ready() ? memory_put(key, (size_t)kl, value, (size_t)vl, &w, NULL)
                                        : GGL_UNAVAILABLE;
    metrics_add(st == GGL_OK ? s->m_fb_mem : s->m_fb_mem_failed, 1);
}

/* Every outcome goes on the orchestrator's bus as action.outcome, so other components
 * (the agent state's last outcome, a learner) hear of it without calling in here.  A
 * full bus drops the message (counted by the orchestrator); the action stands. */
static void feedback_bus(const struct act *a)
{
    char id[24], value[1024];
    snprintf(id, sizeof id, "%llu", (unsigned long long)a->id);
    int vl = outcome_json(a, value, sizeof value);
    struct orch_msg m = {.topic = "action.outcome", .source = "actions", .key = id,
                         .payload = value, .payload_len = (size_t)vl};
    orchestrator_publish(&m);
}

static void feedback_state(struct actions *s, const struct act *a)
{
    char key[300], value[300];
    snprintf(key, sizeof key, "%s%s", s->conf.feedback_state_prefix, a->spec.name);
    int vl = a->status == RESULT_OK
                 ? snprintf(value, sizeof value, "ok")
                 : snprintf(value, sizeof value, "%s: %s", result_status_str(a->status), a->reason);
    size_t len = (size_t)vl < sizeof value ? (size_t)vl : sizeof value - 1;
    enum ggl_status st = s->state_host.state_set(&s->state_host, key, value, len);
    /* A host without the environment component answers UNAVAILABLE: counted, and the
     * action's outcome stands. */
    metrics_add(st == GGL_OK ? s->m_fb_state : s->m_fb_state_unavailable, 1);
    hostapi_clear_reason();
}

static void deliver(struct actions *s, struct act *a)
{
    struct ggl_result res = {.size = sizeof res, .status = status_for(a->status),
                             .data = a->data, .data_len = a->len};
    if (a->done) {
        a->done(a->arg, a->id, &res);
        metrics_add(s->m_callbacks, 1);
    }
    if (a->feedback_only)
        return;
    if (a->followers_of_key) {
        struct dedup_follower f[DEDUP_FOLLOWERS];
        size_t n = dedup_finish(s->dedup, a->spec.key, a->id, f);
        for (size_t i = 0; i < n; i++)
            f[i].done(f[i].arg, a->id, &res);
        metrics_add(s->m_callbacks, (double)n);
    }
    if (s->conf.feedback_memory_prefix && *s->conf.feedback_memory_prefix)
        feedback_memory(s, a);
    if (s->conf.feedback_state_prefix && *s->conf.feedback_state_prefix)
        feedback_state(s, a);
    if (s->bus)
        feedback_bus(a);
}

void feedback_push(struct actions *s, struct act *a)
{
    a->next = NULL;
    pthread_mutex_lock(&s->fb_lock);
    if (s->fb_tail)
        s->fb_tail->next = a;
    else
        s->fb_head = a;
    s->fb_tail = a;
    pthread_cond_signal(&s->fb_cond);
    pthread_mutex_unlock(&s->fb_lock);
}

/* Take the whole list at once: one lock and at most one wake-up per batch. */
static struct act *feedback_take_all(struct actions *s)
{
    pthread_mutex_lock(&s->fb_lock);
    while (!s->fb_head && !s->fb_closed)
        pthread_cond_wait(&s->fb_cond, &s->fb_lock);
    struct act *a = s->fb_head;
    s->fb_head = s->fb_tail = NULL;
    pthread_mutex_unlock(&s->fb_lock);
    return a;
}

static void *feeder_main(void *arg)
{
    struct actions *s = arg;
    struct act *a;
    while ((a = feedback_take_all(s)) != NULL)
        while (a) {
            struct act *next = a->next;
            deliver(s, a);
            act_release(s, a);
            a = next;
        }
    return NULL;
}

int feedback_start(struct actions *s, unsigned n)
{
    if (!(s->feeders = calloc(n, sizeof *s->feeders)))
        return -1;
    for (; s->n_feeders < n; s->n_feeders++)
        if (pthread_create(&s->feeders[s->n_feeders], NULL, feeder_main, s) != 0)
            return -1;
    return 0;
}

/* Close the list; the feeders deliver everything still in it, then leave. */
void feedback_stop(struct actions *s)
{
    pthread_mutex_lock(&s->fb_lock);
    s->fb_closed = 1;
    pthread_cond_broadcast(&s->fb_cond);
    pthread_mutex_unlock(&s->fb_lock);
    for (unsigned i = 0; i < s->n_feeders; i++)
        pthread_join(s->feeders[i], NULL);
    s->n_feeders = 0;
}

/* --- latency samples and INFO ------------------------------------------------------ */

void latency_add(struct latency *l, uint64_t us)
{
    pthread_mutex_lock(&l->lock);
    l->us[l->next] = us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
    l->next = (l->next + 1) % LAT_SAMPLES;
    l->n += l->n < LAT_SAMPLES;
    pthread_mutex_unlock(&l->lock);
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

/* p50 and p99 of the recent samples (nearest rank), in microseconds. */
static void percentiles(struct latency *l, uint32_t *p50, uint32_t *p99)
{
    static uint32_t copy[LAT_SAMPLES]; /* INFO runs on the one I/O thread */
    pthread_mutex_lock(&l->lock);
    size_t n = l->n;
    memcpy(copy, l->us, n * sizeof *copy);
    pthread_mutex_unlock(&l->lock);
    *p50 = *p99 = 0;
    if (n == 0)
        return;
    qsort(copy, n, sizeof *copy, cmp_u32);
    *p50 = copy[(n - 1) / 2];
    *p99 = copy[(n * 99 + 99) / 100 - 1];
}

void actions_info(FILE *f)
{
    struct actions *s = actions_sys;
    if (!s)
        return;
    uint32_t e50, e99, w50, w99;
    percentiles(&s->exec_lat, &e50, &e99);
    percentiles(&s->wait_lat, &w50, &w99);
    pthread_mutex_lock(&s->watch_lock); /* the watchdog adds replacement workers */
    unsigned workers = s->n_workers;
    pthread_mutex_unlock(&s->watch_lock);
    fprintf(f, "actions_exec_p50_us:%u\r\nactions_exec_p99_us:%u\r\nactions_wait_p50_us:%u\r\n"
               "actions_wait_p99_us:%u\r\nactions_retry_queue_depth:%zu\r\nactions_live:%zu\r\n"
               "actions_capacity:%zu\r\nactions_dead_letters:%zu\r\nactions_dedup_keys:%zu\r\n"
               "actions_workers:%u\r\nactions_executors:%zu\r\n",
            e50, e99, w50, w99, atomic_load(&s->retry_depth), atomic_load(&s->live),
            s->capacity, dead_count(s->dead), dedup_count(s->dedup), workers, s->n_execs);
}

/* --- read side ---------------------------------------------------------------------- */

void actions_answer_result(struct cmd_call *call, uint64_t id, uint64_t wait_ms)
{
    results_answer(actions_sys->results, call, id, wait_ms);
}

size_t actions_dead_letters(struct dead_letter **out, size_t max)
{
    return actions_sys ? dead_list(actions_sys->dead, out, max) : 0;
}

enum ggl_status actions_replay(uint64_t id, uint64_t *new_id)
{
    struct actions *s = actions_sys;
    struct dead_letter *l = s ? dead_take(s->dead, id) : NULL;
    if (!l) {
        hostapi_set_reason("no dead letter %llu", (unsigned long long)id);
        return GGL_NOTFOUND;
    }
    struct action_spec spec = l->spec;
    spec.key = NULL; /* with its key it would only find itself */
    int repeat;
    enum ggl_status st = actions_submit(&spec, NULL, NULL, new_id, &repeat);
    if (st != GGL_OK)
        dead_put_back(s->dead, l);
    else
        dead_letter_free(l);
    return st;
}

void actions_kick(void)
{
    if (actions_sys) {
        queue_kick(actions_sys->q);
        watch_kick(actions_sys);
    }
}

void actions_tick(void)
{
    if (actions_sys)
        results_tick(actions_sys->results);
}
