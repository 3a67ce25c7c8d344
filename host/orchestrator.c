/* The orchestrator: a bounded message queue with one dispatcher thread calling topic
 * subscribers, and the agent state (goal, step, last outcome), which it updates from
 * action.outcome messages and mirrors into the environment.  See orchestrator.h for the
 * topics and why the bus queues instead of calling handlers on the publisher's thread. */
#include "ggl-build.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "environment.h"
#include "hostapi.h"
#include "log.h"
#include "metrics.h"
#include "orchestrator.h"

struct queued {                 /* the strings follow in the same allocation */
    struct orch_msg m;
};

struct subscriber {
    int used, is_prefix;
    char topic[ORCH_TOPIC_MAX + 1];
    orch_handler_fn fn;
    void *arg;
};

static struct {
    pthread_mutex_t lock;       /* queue, subscribers, counters */
    pthread_cond_t work, idle;
    struct queued *ring[ORCH_QUEUE_CAPACITY];
    size_t head, count;
    uint64_t published, dispatched;
    int running, stopping;
    pthread_t thread;
    struct subscriber subs[ORCH_MAX_SUBSCRIBERS];
    int env_observer;
    pthread_mutex_t agent_lock;
    struct agent_state agent;
    struct ggl_metric *m_published, *m_dropped, *m_queue;
} O = {.lock = PTHREAD_MUTEX_INITIALIZER, .work = PTHREAD_COND_INITIALIZER,
       .idle = PTHREAD_COND_INITIALIZER, .agent_lock = PTHREAD_MUTEX_INITIALIZER,
       .env_observer = -1};

static const char *const agent_fields[] = {"goal", "step", "last_outcome", NULL};

/* --- the bus ------------------------------------------------------------------------ */

static struct queued *copy_msg(const struct orch_msg *m)
{
    const char *source = m->source ? m->source : "", *key = m->key ? m->key : "";
    size_t tl = strlen(m->topic) + 1, sl = strlen(source) + 1, kl = strlen(key) + 1;
    struct queued *q = malloc(sizeof *q + tl + sl + kl + m->payload_len + 1);
    if (!q)
        return NULL;
    char *p = (char *)(q + 1);
    q->m.topic = memcpy(p, m->topic, tl);
    q->m.source = memcpy(p += tl, source, sl);
    q->m.key = memcpy(p += sl, key, kl);
    char *payload = p + kl;
    if (m->payload_len)
        memcpy(payload, m->payload, m->payload_len);
    payload[m->payload_len] = '\0';
    q->m.payload = payload;
    q->m.payload_len = m->payload_len;
    q->m.at_ms = clock_now_ms();
    return q;
}

int orchestrator_running(void)
{
    pthread_mutex_lock(&O.lock);
    int on = O.running && !O.stopping;
    pthread_mutex_unlock(&O.lock);
    return on;
}

enum ggl_status orchestrator_publish(const struct orch_msg *m)
{
    size_t tl = m->topic ? strlen(m->topic) : 0;
    if (!tl || tl > ORCH_TOPIC_MAX)
        return GGL_INVALID;
    struct queued *q = copy_msg(m);
    if (!q)
        return GGL_NOMEM;
    pthread_mutex_lock(&O.lock);
    enum ggl_status st = !O.running || O.stopping ? GGL_UNAVAILABLE
                         : O.count >= ORCH_QUEUE_CAPACITY ? GGL_RETRY : GGL_OK;
    if (st == GGL_OK) {
        O.ring[(O.head + O.count++) % ORCH_QUEUE_CAPACITY] = q;
        O.published++;
        metrics_set(O.m_queue, (double)O.count);
        pthread_cond_signal(&O.work);
    }
    pthread_mutex_unlock(&O.lock);
    if (st != GGL_OK) {
        free(q);
        if (O.m_dropped) /* registered at the first start; before it nothing counts */
            metrics_add(O.m_dropped, 1);
        hostapi_set_reason(st == GGL_RETRY ? "orchestrator queue full (%d messages)"
                                           : "orchestrator not running", ORCH_QUEUE_CAPACITY);
    } else if (O.m_published) {
        metrics_add(O.m_published, 1);
    }
    return st;
}

static int topic_matches(const struct subscriber *s, const char *topic);

int orchestrator_subscribe(const char *topic, orch_handler_fn fn, void *arg)
{
    size_t len = strlen(topic);
    int id = -1;
    if (!len || len > ORCH_TOPIC_MAX)
        return -1;
    pthread_mutex_lock(&O.lock);
    for (int i = 0; i < ORCH_MAX_SUBSCRIBERS && id < 0; i++)
        if (!O.subs[i].used) {
            struct subscriber *s = &O.subs[i];
            *s = (struct subscriber){.used = 1, .is_prefix = topic[len - 1] == '*', .fn = fn, .arg = arg};
            memcpy(s->topic, topic, len - (size_t)s->is_prefix);
            id = i;
        }
    pthread_mutex_unlock(&O.lock);
    return id;
}

int orchestrator_wanted(const char *topic)
{
    int wanted = 0;
    pthread_mutex_lock(&O.lock);
    for (int i = 0; i < ORCH_MAX_SUBSCRIBERS && !wanted; i++)
        wanted = O.subs[i].used && topic_matches(&O.subs[i], topic);
    pthread_mutex_unlock(&O.lock);
    return wanted;
}

void orchestrator_unsubscribe(int id)
{
    if (id < 0 || id >= ORCH_MAX_SUBSCRIBERS)
        return;
    pthread_mutex_lock(&O.lock);
    O.subs[id].used = 0;
    pthread_mutex_unlock(&O.lock);
}

static int topic_matches(const struct subscriber *s, const char *topic)
{
    return s->is_prefix ? strncmp(s->topic, topic, strlen(s->topic)) == 0
                        : strcmp(s->topic, topic) == 0;
}

/* Dispatcher, lock held on entry and exit: call the message's subscribers unlocked. */
static void dispatch(struct queued *q)
{
    struct subscriber copy[ORCH_MAX_SUBSCRIBERS];
    size_t n = 0;
    for (int i = 0; i < ORCH_MAX_SUBSCRIBERS; i++)
        if (O.subs[i].used && topic_matches(&O.subs[i], q->m.topic))
            copy[n++] = O.subs[i];
    pthread_mutex_unlock(&O.lock);
    for (size_t i = 0; i < n; i++)
        copy[i].fn(copy[i].arg, &q->m);
    free(q);
    pthread_mutex_lock(&O.lock);
}

static void *dispatcher_main(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&O.lock);
    for (;;) {
        if (O.count) {
            struct queued *q = O.ring[O.head];
            O.head = (O.head + 1) % ORCH_QUEUE_CAPACITY;
            O.count--;
            metrics_set(O.m_queue, (double)O.count);
            dispatch(q);
            O.dispatched++;
            pthread_cond_broadcast(&O.idle);
            continue;
        }
        if (O.stopping)
            break;
        pthread_cond_wait(&O.work, &O.lock);
    }
    pthread_mutex_unlock(&O.lock);
    return NULL;
}

void orchestrator_drain(void)
{
    pthread_mutex_lock(&O.lock);
    uint64_t target = O.published;
    while (O.running && O.dispatched < target)
        pthread_cond_wait(&O.idle, &O.lock);
    pthread_mutex_unlock(&O.lock);
}

/* --- the agent state ---------------------------------------------------------------- */

static char *agent_field(struct agent_state *a, const char *field)
{
    return !strcmp(field, "goal") ? a->goal : !strcmp(field, "step") ? a->step
           : !strcmp(field, "last_outcome") ? a->last_outcome : NULL;
}

static void agent_store(const char *field, const char *value, size_t len, const char *source)
{
    pthread_mutex_lock(&O.agent_lock);
    char *dst = agent_field(&O.agent, field);
    if (len >= ORCH_VALUE_MAX)
        len = ORCH_VALUE_MAX - 1;
    memcpy(dst, value, len);
    dst[len] = '\0';
    if (!strcmp(field, "last_outcome"))
        snprintf(O.agent.outcome_source, sizeof O.agent.outcome_source, "%s", source);
    O.agent.updated_at_ms = clock_now_ms();
    pthread_mutex_unlock(&O.agent_lock);
}

enum ggl_status orchestrator_agent_set(const char *field, const char *value, size_t len,
                                       const char *source)
{
    if (!agent_field(&O.agent, field)) {
        hostapi_set_reason("agent fields: goal, step, last_outcome");
        return GGL_INVALID;
    }
    char key[32];
    snprintf(key, sizeof key, "agent.%s", field);
    size_t kept = len < ORCH_VALUE_MAX ? len : ORCH_VALUE_MAX - 1;
    enum ggl_status st = environment_ready() ? environment_set(key, value, kept, source, NULL, NULL)
                                             : GGL_OK;
    if (st != GGL_OK)
        return st;
    agent_store(field, value, kept, source ? source : "");
    struct orch_msg m = {"agent.changed", source, field, value, kept, 0};
    orchestrator_publish(&m); /* a full bus loses the notice, not the state (counted) */
    return GGL_OK;
}

void orchestrator_agent_state(struct agent_state *out)
{
    pthread_mutex_lock(&O.agent_lock);
    *out = O.agent;
    pthread_mutex_unlock(&O.agent_lock);
}

/* action.outcome: the outcome becomes the agent's last one. */
static void on_action_outcome(void *arg, const struct orch_msg *m)
{
    (void)arg;
    if (orchestrator_agent_set("last_outcome", m->payload, m->payload_len, m->source) != GGL_OK)
        log_warn("orchestrator: action outcome not recorded: %s", hostapi_take_reason());
}

/* Environment observer (applier thread): changes become state.* messages. */
static void on_state_update(void *arg, const struct env_change *c)
{
    (void)arg;
    if (!c->changed)
        return;
    struct orch_msg m = {c->value ? "state.changed" : "state.removed", c->source, c->key,
                         c->value ? c->value : "", c->value_len, 0};
    orchestrator_publish(&m);
}

static void restore_agent(void)
{
    for (const char *const *f = agent_fields; *f; f++) {
        char key[32], *v;
        size_t len;
        char source[96];
        snprintf(key, sizeof key, "agent.%s", *f);
        if (environment_get(key, &v, &len, NULL, source, sizeof source) == GGL_OK) {
            agent_store(*f, v, len, source);
            free(v);
        }
    }
}

/* --- lifecycle ---------------------------------------------------------------------- */

int orchestrator_start(struct conf_error *err)
{
    O.m_published = metrics_register_in("orchestrator", GGL_METRIC_COUNTER, "orchestrator_published",
                                        "messages published on the bus", NULL);
    O.m_dropped = metrics_register_in("orchestrator", GGL_METRIC_COUNTER, "orchestrator_dropped",
                                      "messages refused: bus full or stopped", NULL);
    O.m_queue = metrics_register_in("orchestrator", GGL_METRIC_GAUGE, "orchestrator_queue",
                                    "messages waiting for the dispatcher", NULL);
    memset(&O.agent, 0, sizeof O.agent);
    memset(O.subs, 0, sizeof O.subs);
    O.head = O.count = 0;
    O.published = O.dispatched = 0;
    O.stopping = 0;
    O.running = 1;
    if (pthread_create(&O.thread, NULL, dispatcher_main, NULL) != 0) {
        O.running = 0;
        snprintf(err->msg, sizeof err->msg, "orchestrator: cannot start the dispatcher thread");
        return -1;
    }
    restore_agent();
    orchestrator_subscribe("action.outcome", on_action_outcome, NULL);
    O.env_observer = environment_observe("", on_state_update, NULL);
    return 0;
}

void orchestrator_stop(void)
{
    if (!O.running)
        return;
    environment_unobserve(O.env_observer);
    O.env_observer = -1;
    pthread_mutex_lock(&O.lock);
    O.stopping = 1;
    pthread_cond_signal(&O.work);
    pthread_mutex_unlock(&O.lock);
    pthread_join(O.thread, NULL);
    pthread_mutex_lock(&O.lock);
    O.running = 0;
    pthread_cond_broadcast(&O.idle);
    pthread_mutex_unlock(&O.lock);
}

void orchestrator_info(FILE *f)
{
    struct agent_state a;
    orchestrator_agent_state(&a);
    pthread_mutex_lock(&O.lock);
    size_t subs = 0;
    for (int i = 0; i < ORCH_MAX_SUBSCRIBERS; i++)
        subs += O.subs[i].used;
    fprintf(f, "subscribers:%zu\r\nqueue_capacity:%d\r\npublished_total:%llu\r\n", subs,
            ORCH_QUEUE_CAPACITY, (unsigned long long)O.published);
    pthread_mutex_unlock(&O.lock);
    fprintf(f, "agent_goal:%s\r\nagent_step:%s\r\nagent_updated_at_ms:%llu\r\n", a.goal, a.step,
            (unsigned long long)a.updated_at_ms);
}
