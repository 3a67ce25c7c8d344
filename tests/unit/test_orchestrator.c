/* The orchestrator's bus and agent state: messages reach their topic's subscribers in
 * publication order, topics and subscribers are bounded, a full bus refuses with
 * GGL_RETRY, and components talk only through it: an environment change makes a
 * stand-in action system publish an outcome, which becomes the agent's last outcome
 * (and "agent.last_outcome" in the environment).  The agent state survives a restart
 * of the orchestrator through the environment. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "environment.h"
#include "hostapi.h"
#include "log.h"
#include "metrics.h"
#include "orchestrator.h"

static struct config *conf;

static int setup(void **state)
{
    (void)state;
    struct conf_error err = {{0}};
    log_set_level(GGL_LOG_ERROR);
    conf = config_load_string("environment = { rules = ( { key = \"agent.step\"; type = \"int\"; } ); };",
                              "t.conf", &err);
    if (!conf || environment_start(conf, NULL, 0, &err) < 0 || orchestrator_start(&err) < 0)
        return -1;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    orchestrator_stop();
    environment_stop();
    config_free(conf);
    return 0;
}

struct heard {
    int n;
    char what[300][32];
};

static void hear(void *arg, const struct orch_msg *m)
{
    struct heard *h = arg; /* dispatcher thread: recorded, checked by the test thread */
    if (h->n < 300)
        snprintf(h->what[h->n++], sizeof h->what[0], "%s/%s/%s", m->topic, m->key, m->payload);
}

static void test_messages_reach_subscribers_in_order(void **state)
{
    (void)state;
    struct heard all = {0}, one = {0};
    int a = orchestrator_subscribe("t.*", hear, &all), b = orchestrator_subscribe("t.one", hear, &one);
    assert_true(a >= 0 && b >= 0);
    char key[16];
    for (int i = 0; i < 200; i++) {
        snprintf(key, sizeof key, "%d", i);
        struct orch_msg m = {i % 2 ? "t.two" : "t.one", "test", key, "p", 1, 0};
        assert_int_equal(orchestrator_publish(&m), GGL_OK);
    }
    struct orch_msg other = {"u.one", "test", "x", "", 0, 0};
    assert_int_equal(orchestrator_publish(&other), GGL_OK);
    orchestrator_drain();
    assert_int_equal(all.n, 200);
    assert_int_equal(one.n, 100);
    for (int i = 0; i < 200; i++) {
        char want[32];
        snprintf(want, sizeof want, "%s/%d/p", i % 2 ? "t.two" : "t.one", i);
        assert_string_equal(all.what[i], want);
    }
    assert_string_equal(one.what[99], "t.one/198/p");
    orchestrator_unsubscribe(a);
    orchestrator_unsubscribe(b);
}

static void ignore(void *arg, const struct orch_msg *m) { (void)arg, (void)m; }

static void test_topics_and_subscribers_are_bounded(void **state)
{
    (void)state;
    struct orch_msg empty = {"", "test", "k", "", 0, 0};
    assert_int_equal(orchestrator_publish(&empty), GGL_INVALID);
    char long_topic[ORCH_TOPIC_MAX + 2];
    memset(long_topic, 'a', sizeof long_topic - 1);
    long_topic[sizeof long_topic - 1] = '\0';
    struct orch_msg longer = {long_topic, "test", "k", "", 0, 0};
    assert_int_equal(orchestrator_publish(&longer), GGL_INVALID);
    int ids[ORCH_MAX_SUBSCRIBERS], n = 0;
    while (n < ORCH_MAX_SUBSCRIBERS && (ids[n] = orchestrator_subscribe("x", ignore, NULL)) >= 0)
        n++;
    assert_true(n > 0 && n < ORCH_MAX_SUBSCRIBERS); /* the orchestrator holds one itself */
    assert_int_equal(orchestrator_subscribe("x", ignore, NULL), -1);
    while (n--)
        orchestrator_unsubscribe(ids[n]);
}

static pthread_mutex_t gate_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_cond = PTHREAD_COND_INITIALIZER;
static int gate_open, gate_reached;

static void hold(void *arg, const struct orch_msg *m)
{
    (void)arg, (void)m;
    pthread_mutex_lock(&gate_lock);
    gate_reached = 1;
    pthread_cond_broadcast(&gate_cond);
    while (!gate_open)
        pthread_cond_wait(&gate_cond, &gate_lock);
    pthread_mutex_unlock(&gate_lock);
}

static void test_full_bus_returns_retry(void **state)
{
    (void)state;
    int id = orchestrator_subscribe("hold", hold, NULL);
    struct orch_msg m = {"hold", "test", "", "", 0, 0};
    assert_int_equal(orchestrator_publish(&m), GGL_OK);
    pthread_mutex_lock(&gate_lock);
    while (!gate_reached)
        pthread_cond_wait(&gate_cond, &gate_lock);
    pthread_mutex_unlock(&gate_lock);
    struct orch_msg filler = {"nobody", "test", "", "", 0, 0};
    for (int i = 0; i < ORCH_QUEUE_CAPACITY; i++)
        assert_int_equal(orchestrator_publish(&filler), GGL_OK);
    assert_int_equal(orchestrator_publish(&filler), GGL_RETRY);
    assert_non_null(strstr(hostapi_take_reason(), "queue full"));
    pthread_mutex_lock(&gate_lock);
    gate_open = 1;
    pthread_cond_broadcast(&gate_cond);
    pthread_mutex_unlock(&gate_lock);
    orchestrator_drain();
    orchestrator_unsubscribe(id);
}

/* A stand-in for the action system: a door that opens gets closed, and the outcome is
 * published as the action system will publish it. */
static void door_watcher(void *arg, const struct orch_msg *m)
{
    int *heard = arg;
    if (strcmp(m->key, "door") != 0 || strcmp(m->payload, "open") != 0)
        return;
    ++*heard;
    static const char outcome[] = "{\"action\":\"close_door\",\"status\":\"OK\"}";
    struct orch_msg out = {"action.outcome", "action", "1", outcome, sizeof outcome - 1, 0};
    orchestrator_publish(&out);
}

static void settle(void)
{
    environment_housekeep(); /* updates applied: their state.* messages are published */
    orchestrator_drain();    /* the handlers ran, and published what they publish */
    orchestrator_drain();
    environment_housekeep();
}

static void test_component_messages_update_agent_state(void **state)
{
    (void)state;
    int heard = 0;
    int id = orchestrator_subscribe("state.changed", door_watcher, &heard);
    assert_int_equal(environment_set("door", "open", 4, "sensor/fake[door]", NULL, NULL), GGL_OK);
    settle();
    assert_int_equal(heard, 1);
    struct agent_state a;
    orchestrator_agent_state(&a);
    assert_string_equal(a.last_outcome, "{\"action\":\"close_door\",\"status\":\"OK\"}");
    assert_string_equal(a.outcome_source, "action");
    assert_true(a.updated_at_ms > 0);
    char *v;
    size_t len;
    assert_int_equal(environment_get("agent.last_outcome", &v, &len, NULL, NULL, 0), GGL_OK);
    assert_string_equal(v, a.last_outcome);
    free(v);
    assert_int_equal(environment_set("door", "open", 4, "sensor/fake[door]", NULL, NULL), GGL_OK);
    settle(); /* the same value again: an update, no state.changed */
    assert_int_equal(heard, 1);
    orchestrator_unsubscribe(id);
}

static void test_agent_state_is_set_checked_and_restored(void **state)
{
    (void)state;
    struct heard changes = {0};
    int id = orchestrator_subscribe("agent.changed", hear, &changes);
    assert_int_equal(orchestrator_agent_set("goal", "find food", 9, "test"), GGL_OK);
    assert_int_equal(orchestrator_agent_set("step", "2", 1, "test"), GGL_OK);
    assert_int_equal(orchestrator_agent_set("mood", "x", 1, "test"), GGL_INVALID);
    assert_int_equal(orchestrator_agent_set("step", "two", 3, "test"), GGL_INVALID); /* the rule */
    settle();
    assert_int_equal(changes.n, 2);
    assert_string_equal(changes.what[0], "agent.changed/goal/find food");
    struct agent_state a;
    orchestrator_agent_state(&a);
    assert_string_equal(a.step, "2");
    orchestrator_unsubscribe(id);
    struct conf_error err;
    orchestrator_stop();
    assert_int_equal(orchestrator_start(&err), 0);
    orchestrator_agent_state(&a);
    assert_string_equal(a.goal, "find food");
    assert_string_equal(a.step, "2");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_messages_reach_subscribers_in_order),
        cmocka_unit_test(test_topics_and_subscribers_are_bounded),
        cmocka_unit_test(test_full_bus_returns_retry),
        cmocka_unit_test(test_component_messages_update_agent_state),
        cmocka_unit_test(test_agent_state_is_set_checked_and_restored),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
