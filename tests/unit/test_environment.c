/* The environment with the fake clock: rules refuse bad values (and the section's
 * errors name file:line), updates apply in order, the history keeps only its bound, a
 * full queue refuses with GGL_RETRY, stale keys go (at read time and by housekeeping),
 * observers and watches fire as documented, and a snapshot restores the state (with
 * source and time) in a new start. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "environment.h"
#include "hostapi.h"
#include "log.h"
#include "metrics.h"

static _Atomic uint64_t fake_now = 1700000000000ull;
static uint64_t fake_clock(void) { return atomic_load(&fake_now); }
static void advance(uint64_t ms) { atomic_fetch_add(&fake_now, ms); }

static struct config *conf;
static char dir[] = "/tmp/ggl-env-XXXXXX";

struct metric_query {
    const char *name;
    double v;
};

static void visit(const struct ggl_metric *m, void *arg)
{
    struct metric_query *q = arg;
    if (strcmp(m->name, q->name) == 0)
        q->v = metrics_value(m);
}

static double metric(const char *name)
{
    struct metric_query q = {name, -1};
    metrics_foreach(visit, &q);
    return q.v;
}

/* The values of STATE.HISTORY-style reads, oldest first. */
struct taken {
    int n;
    char v[8][16];
};

static void take(void *arg, const struct env_change *c)
{
    struct taken *h = arg;
    if (h->n < 8)
        snprintf(h->v[h->n++], sizeof h->v[0], "%s", c->value ? c->value : "(nil)");
}

static void record(void *arg, enum ggl_status st) { *(enum ggl_status *)arg = st; }

static void start(const char *section)
{
    char text[2048];
    struct conf_error err = {{0}};
    snprintf(text, sizeof text, "environment = { %s };\n", section);
    conf = config_load_string(text, "fixture.conf", &err);
    if (!conf)
        fail_msg("config: %s", err.msg);
    if (environment_start(conf, NULL, 0, &err) < 0)
        fail_msg("start: %s", err.msg);
}

static void stop(void)
{
    environment_stop();
    config_free(conf);
    conf = NULL;
}

static enum ggl_status set(const char *key, const char *value)
{
    return environment_set(key, value, strlen(value), "test", NULL, NULL);
}

/* The value of key after everything queued was applied, or NULL (caller frees). */
static char *get(const char *key)
{
    char *v = NULL;
    size_t len;
    environment_housekeep(); /* a barrier too: it runs behind the queued updates */
    return environment_get(key, &v, &len, NULL, NULL, 0) == GGL_OK ? v : NULL;
}

static void assert_value(const char *key, const char *want)
{
    char *v = get(key);
    if (!want && v)
        fail_msg("%s is '%s', expected absent", key, v);
    if (want && (!v || strcmp(v, want) != 0))
        fail_msg("%s is '%s', expected '%s'", key, v ? v : "(absent)", want);
    free(v);
}

static int setup(void **state)
{
    (void)state;
    clock_set(fake_clock);
    log_set_level(GGL_LOG_ERROR);
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char path[128];
    snprintf(path, sizeof path, "%s/state.db", dir);
    unlink(path);
    rmdir(dir);
    clock_set(NULL);
    return 0;
}

static void test_rules_refuse_bad_values(void **state)
{
    (void)state;
    start("rules = ( { key = \"agent.mode\"; type = \"string\"; allowed = [\"idle\", \"busy\"]; },"
          " { key = \"cpu.load\"; type = \"float\"; min = 0.0; max = 100.0; },"
          " { key = \"n.*\"; type = \"int\"; min = 1; },"
          " { key = \"flag\"; type = \"bool\"; } );");
    double rejected = metric("environment_rejected");
    assert_int_equal(set("agent.mode", "busy"), GGL_OK);
    assert_int_equal(set("agent.mode", "asleep"), GGL_INVALID);
    assert_non_null(strstr(hostapi_take_reason(), "must be one of idle busy"));
    assert_int_equal(set("cpu.load", "42.5"), GGL_OK);
    assert_int_equal(set("cpu.load", "100.5"), GGL_INVALID);
    assert_non_null(strstr(hostapi_take_reason(), "between 0 and 100"));
    assert_int_equal(set("cpu.load", "high"), GGL_INVALID);
    assert_int_equal(set("n.one", "3"), GGL_OK);
    assert_int_equal(set("n.two", "0"), GGL_INVALID);   /* the prefix rule's min */
    assert_int_equal(set("n.three", "1.5"), GGL_INVALID); /* not an integer */
    assert_int_equal(set("flag", "true"), GGL_OK);
    assert_int_equal(set("flag", "yes"), GGL_INVALID);
    assert_int_equal(set("free.text", "anything at all"), GGL_OK); /* no rule: anything */
    assert_int_equal(set("", "x"), GGL_INVALID);
    assert_true(metric("environment_rejected") - rejected == 7);
    assert_value("agent.mode", "busy");
    assert_value("cpu.load", "42.5");
    assert_value("n.two", NULL);
    stop();
}

static void assert_conf_refused(const char *section, const char *want)
{
    char text[1024];
    struct conf_error err = {{0}};
    snprintf(text, sizeof text, "log_level = \"warn\";\nenvironment = {\n%s\n};\n", section);
    struct config *c = config_load_string(text, "fixture.conf", &err);
    assert_non_null(c);
    if (environment_check_config(c, &err) == 0)
        fail_msg("accepted: %s", section);
    if (!strstr(err.msg, want))
        fail_msg("message \"%s\" lacks \"%s\"", err.msg, want);
    config_free(c);
}

static void test_config_errors_name_file_and_line(void **state)
{
    (void)state;
    assert_conf_refused("histroy = 5;", "fixture.conf:3: unknown key 'histroy'");
    assert_conf_refused("history = 0;", "fixture.conf:3: 'history' in environment must be between");
    assert_conf_refused("rules = { a = 1; };", "fixture.conf:3: rules must be a list");
    assert_conf_refused("rules = (\n { key = \"a\"; type = \"number\"; } );", "fixture.conf:4: rule 'a': type");
    assert_conf_refused("rules = (\n { key = \"a\"; colour = 1; } );", "fixture.conf:4: unknown key 'colour'");
    assert_conf_refused("rules = (\n { type = \"int\"; } );", "fixture.conf:4: environment rule needs key");
    assert_conf_refused("rules = (\n { key = \"a\"; type = \"int\"; min = 5; max = 1; } );",
                        "min 5 is above max 1");
    assert_conf_refused("rules = (\n { key = \"a\"; type = \"string\"; min = 1; } );",
                        "min/max are for int and float");
    assert_conf_refused("rules = ( { key = \"a\"; },\n { key = \"a\"; } );", "fixture.conf:4: rule for 'a' given twice");
    assert_conf_refused("rules = ( { key = \"a\";\n allowed = [1, 2]; } );", "allowed must hold strings");
}

struct seen {
    int n, changed, removed;
    char last_key[64], last_value[64];
};

static void observe(void *arg, const struct env_change *c)
{
    struct seen *s = arg; /* applier thread: only recorded, checked by the test thread */
    s->n++;
    s->changed += c->changed;
    s->removed += !c->value;
    snprintf(s->last_key, sizeof s->last_key, "%s", c->key);
    snprintf(s->last_value, sizeof s->last_value, "%s", c->value ? c->value : "(removed)");
}

static void test_updates_apply_in_order_and_history_is_bounded(void **state)
{
    (void)state;
    start("history = 5;");
    struct seen s = {0};
    int id = environment_observe("k", observe, &s);
    assert_true(id >= 0);
    char v[16];
    for (int i = 0; i < 1000; i++) {
        snprintf(v, sizeof v, "%d", i);
        assert_int_equal(set("k", v), GGL_OK);
    }
    assert_value("k", "999");
    assert_int_equal(s.n, 1000);
    assert_int_equal(s.changed, 1000);
    struct taken h = {0};
    assert_int_equal(environment_history(100, take, &h), 5);
    for (int i = 0; i < 5; i++) { /* the last five, oldest first */
        snprintf(v, sizeof v, "%d", 995 + i);
        assert_string_equal(h.v[i], v);
    }
    memset(&h, 0, sizeof h);
    assert_int_equal(environment_history(2, take, &h), 2);
    assert_string_equal(h.v[1], "999");
    assert_int_equal(set("k", "999"), GGL_OK); /* the same value: an update, not a change */
    assert_value("k", "999");
    assert_int_equal(s.n, 1001);
    assert_int_equal(s.changed, 1000);
    assert_int_equal(set("other", "1"), GGL_OK); /* outside the observer's prefix */
    assert_value("other", "1");
    assert_int_equal(s.n, 1001);
    environment_unobserve(id);
    stop();
}

/* An observer that holds the applier until the test lets it go. */
static pthread_mutex_t gate_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_cond = PTHREAD_COND_INITIALIZER;
static int gate_open, gate_reached;

static void hold(void *arg, const struct env_change *c)
{
    (void)arg, (void)c;
    pthread_mutex_lock(&gate_lock);
    gate_reached = 1;
    pthread_cond_broadcast(&gate_cond);
    while (!gate_open)
        pthread_cond_wait(&gate_cond, &gate_lock);
    pthread_mutex_unlock(&gate_lock);
}

static void test_full_queue_returns_retry(void **state)
{
    (void)state;
    start("queue_capacity = 8;");
    int id = environment_observe("block", hold, NULL);
    assert_int_equal(set("block", "1"), GGL_OK);
    pthread_mutex_lock(&gate_lock);
    while (!gate_reached) /* the applier is inside the observer now: the queue is empty */
        pthread_cond_wait(&gate_cond, &gate_lock);
    pthread_mutex_unlock(&gate_lock);
    double busy = metric("environment_queue_full");
    for (int i = 0; i < 8; i++)
        assert_int_equal(set("q", "v"), GGL_OK);
    assert_int_equal(set("q", "v"), GGL_RETRY);
    assert_non_null(strstr(hostapi_take_reason(), "queue full"));
    assert_true(metric("environment_queue_full") - busy == 1);
    pthread_mutex_lock(&gate_lock);
    gate_open = 1;
    pthread_cond_broadcast(&gate_cond);
    pthread_mutex_unlock(&gate_lock);
    assert_value("q", "v");
    environment_unobserve(id);
    stop();
}

static void test_max_keys_refuses_new_keys(void **state)
{
    (void)state;
    start("max_keys = 2;");
    enum ggl_status results[3] = {GGL_ERROR, GGL_ERROR, GGL_ERROR};
    const char *keys[] = {"a", "b", "c"};
    for (int i = 0; i < 3; i++)
        assert_int_equal(environment_set(keys[i], "1", 1, "t", record, &results[i]), GGL_OK);
    assert_value("a", "1");
    assert_int_equal(results[0], GGL_OK);
    assert_int_equal(results[1], GGL_OK);
    assert_int_equal(results[2], GGL_RETRY);
    assert_value("c", NULL);
    assert_int_equal(set("a", "2"), GGL_OK); /* an existing key still updates */
    assert_value("a", "2");
    stop();
}

static void test_stale_keys_are_removed(void **state)
{
    (void)state;
    start("max_age_ms = 1000; rules = ( { key = \"slow.*\"; max_age_ms = 5000; } );");
    struct seen s = {0};
    int id = environment_observe("", observe, &s);
    double expired = metric("environment_expired");
    assert_int_equal(set("fast", "1"), GGL_OK);
    assert_int_equal(set("slow.x", "1"), GGL_OK);
    advance(600);
    assert_value("fast", "1");
    advance(600); /* 1200 ms old: gone from reads, and housekeeping removes it */
    assert_value("fast", NULL);
    assert_value("slow.x", "1");
    assert_int_equal(s.removed, 1);
    assert_string_equal(s.last_key, "fast");
    assert_string_equal(s.last_value, "(removed)");
    assert_true(metric("environment_expired") - expired == 1);
    struct taken h = {0};
    environment_history(1, take, &h);
    assert_string_equal(h.v[0], "(nil)");
    advance(4000);
    assert_value("slow.x", NULL);
    environment_unobserve(id);
    stop();
}

struct fired {
    int n;
    char key[64], value[64], why[64];
};

static void watch_cb(void *arg, const struct env_change *c, const char *why)
{
    struct fired *f = arg;
    f->n++;
    snprintf(f->key, sizeof f->key, "%s", c ? c->key : "");
    snprintf(f->value, sizeof f->value, "%s", c && c->value ? c->value : "");
    snprintf(f->why, sizeof f->why, "%s", why ? why : "");
}

static void test_watches_fire_once_on_change_timeout_or_release(void **state)
{
    (void)state;
    start("max_watchers = 2;");
    struct fired a = {0}, b = {0}, c = {0};
    uint64_t now = clock_now_ms();
    assert_int_equal(environment_watch("door", now + 10000, watch_cb, &a), GGL_OK);
    assert_int_equal(environment_watch("room.*", now + 100, watch_cb, &b), GGL_OK);
    assert_int_equal(environment_watch("x", now + 100, watch_cb, &c), GGL_RETRY);
    assert_int_equal(set("window", "open"), GGL_OK);
    assert_value("window", "open");
    assert_int_equal(a.n + b.n, 0);
    assert_int_equal(set("door", "open"), GGL_OK);
    assert_value("door", "open");
    assert_int_equal(a.n, 1);
    assert_string_equal(a.value, "open");
    assert_int_equal(set("door", "shut"), GGL_OK); /* fired once: gone */
    assert_value("door", "shut");
    assert_int_equal(a.n, 1);
    advance(200);
    environment_housekeep();
    assert_int_equal(b.n, 1);
    assert_string_equal(b.why, "timeout");
    assert_int_equal(environment_watch("room.*", now + 100000, watch_cb, &c), GGL_OK);
    assert_int_equal(set("room.kitchen", "warm"), GGL_OK);
    assert_value("room.kitchen", "warm");
    assert_int_equal(c.n, 1);
    assert_string_equal(c.key, "room.kitchen");
    struct fired d = {0};
    assert_int_equal(environment_watch("y", now + 100000, watch_cb, &d), GGL_OK);
    environment_release_watches();
    assert_int_equal(d.n, 1);
    assert_string_equal(d.why, "ERR shutting down");
    assert_int_equal(environment_watch("y", now + 100000, watch_cb, &d), GGL_UNAVAILABLE);
    stop();
}

static void test_snapshot_restores_state_after_restart(void **state)
{
    (void)state;
    char section[512];
    snprintf(section, sizeof section,
             "snapshot_path = \"%s/state.db\"; rules = ( { key = \"short\"; max_age_ms = 1000; } );", dir);
    start(section);
    assert_int_equal(environment_set("plan", "step 3", 6, "planner", NULL, NULL), GGL_OK);
    assert_int_equal(set("short", "lived"), GGL_OK);
    assert_int_equal(environment_set("bin", "a\0b", 3, "t", NULL, NULL), GGL_OK);
    assert_value("plan", "step 3");
    uint64_t when = clock_now_ms();
    stop(); /* the final snapshot */
    advance(5000); /* "short" goes stale while the host is down */
    start(section);
    char *v, source[64];
    size_t len;
    uint64_t at;
    assert_int_equal(environment_get("plan", &v, &len, &at, source, sizeof source), GGL_OK);
    assert_string_equal(v, "step 3");
    assert_string_equal(source, "planner");
    assert_true(at == when);
    free(v);
    assert_int_equal(environment_get("bin", &v, &len, NULL, NULL, 0), GGL_OK);
    assert_int_equal(len, 3);
    assert_memory_equal(v, "a\0b", 3);
    free(v);
    assert_value("short", NULL);
    assert_int_equal(set("plan", "step 4"), GGL_OK);
    assert_value("plan", "step 4");
    assert_int_equal(environment_snapshot(), 0); /* a periodic one, asked for now */
    stop();
    start(section);
    assert_value("plan", "step 4");
    stop();
}

static void test_periodic_snapshot_runs_on_the_clock(void **state)
{
    (void)state;
    char section[512];
    snprintf(section, sizeof section, "snapshot_path = \"%s/state.db\"; snapshot_interval_ms = 1000;", dir);
    start(section);
    double before = metric("environment_snapshots");
    assert_int_equal(set("p", "1"), GGL_OK);
    assert_value("p", "1");
    assert_true(metric("environment_snapshots") == before);
    advance(1000);
    environment_housekeep();
    assert_true(metric("environment_snapshots") == before + 1);
    stop();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rules_refuse_bad_values),
        cmocka_unit_test(test_config_errors_name_file_and_line),
        cmocka_unit_test(test_updates_apply_in_order_and_history_is_bounded),
        cmocka_unit_test(test_full_queue_returns_retry),
        cmocka_unit_test(test_max_keys_refuses_new_keys),
        cmocka_unit_test(test_stale_keys_are_removed),
        cmocka_unit_test(test_watches_fire_once_on_change_timeout_or_release),
        cmocka_unit_test(test_snapshot_restores_state_after_restart),
        cmocka_unit_test(test_periodic_snapshot_runs_on_the_clock),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
