/* The sensor scheduler with the fake clock and an in-test sensor: each instance runs
 * at its own interval, readings land in the environment as "<instance>.<key>", a
 * sensor failing `sensor_backoff_after` times in a row backs off (doubling, capped) and
 * comes back to its interval after one good sample, and readings a rule refuses are
 * counted as dropped. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "environment.h"
#include "hostapi.h"
#include "log.h"
#include "sensors.h"

static _Atomic uint64_t fake_now = 1700000000000ull;
static uint64_t fake_clock(void) { return atomic_load(&fake_now); }

/* The in-test sensor: counts its samples; fails while `failing` is set. */
struct fake {
    _Atomic int samples, failing;
};

static enum ggl_status fake_open(const struct ggl_host *h, const struct ggl_conf *c, void **self)
{
    (void)h, (void)c, (void)self;
    return GGL_OK;
}

static void fake_close(void *self) { (void)self; }

static enum ggl_status fake_sample(void *self, ggl_emit_fn emit, void *sink)
{
    struct fake *f = self;
    int n = atomic_fetch_add(&f->samples, 1) + 1;
    emit(sink, "count", n, NULL);
    emit(sink, "state", 0, atomic_load(&f->failing) ? "failing" : "fine");
    emit(sink, "ratio", 7.5, NULL); /* refused by the rule below: counted, not stored */
    if (atomic_load(&f->failing)) {
        hostapi_set_reason("fake: broken on purpose");
        return GGL_RETRY;
    }
    return GGL_OK;
}

static const struct ggl_sensor fake_vt = {sizeof fake_vt, 0, fake_open, fake_close, fake_sample};
static const struct ggl_plugin fake_desc = {.size = sizeof fake_desc, .kind = GGL_KIND_SENSOR,
                                            .name = "fake", .vtable = &fake_vt};
static struct module fake_mod = {.kind = GGL_KIND_SENSOR, .desc = &fake_desc};

static struct fake fast_state, slow_state;
static struct conf_instance confs[2] = {
    {.name = "fast", .plugin = "fake", .kind = GGL_KIND_SENSOR, .interval_ms = 100},
    {.name = "slow", .plugin = "fake", .kind = GGL_KIND_SENSOR, .interval_ms = 1000}};
static struct instance inst[2];
static struct config *conf;

static int setup(void **state)
{
    (void)state;
    clock_set(fake_clock);
    log_set_level(GGL_LOG_ERROR);
    struct conf_error err = {{0}};
    conf = config_load_string("environment = { sensor_backoff_after = 3; sensor_backoff_max_ms = 800;"
                              " rules = ( { key = \"fast.ratio\"; type = \"float\"; max = 1.0; } ); };",
                              "t.conf", &err);
    if (!conf)
        return -1;
    struct fake *selves[2] = {&fast_state, &slow_state};
    for (int i = 0; i < 2; i++) {
        inst[i] = (struct instance){.conf = &confs[i], .mod = &fake_mod, .self = selves[i],
                                    .state = INSTANCE_OPEN};
        snprintf(inst[i].label, sizeof inst[i].label, "sensor/fake[%s]", confs[i].name);
        hostapi_init(&inst[i].host, inst[i].label);
    }
    return environment_start(conf, inst, 2, &err);
}

static int teardown(void **state)
{
    (void)state;
    environment_stop();
    config_free(conf);
    clock_set(NULL);
    return 0;
}

static void advance_and_run(uint64_t ms)
{
    atomic_fetch_add(&fake_now, ms);
    sensors_run_due();
    environment_housekeep(); /* behind the readings: they are applied when it returns */
}

static long state_int(const char *key)
{
    char *v;
    size_t len;
    if (environment_get(key, &v, &len, NULL, NULL, 0) != GGL_OK)
        return -1;
    long n = strtol(v, NULL, 10);
    free(v);
    return n;
}

static void test_backoff_rule(void **state)
{
    (void)state;
    assert_int_equal(sensors_backoff(100, 0, 3, 800), 100);
    assert_int_equal(sensors_backoff(100, 2, 3, 800), 100);
    assert_int_equal(sensors_backoff(100, 3, 3, 800), 200);
    assert_int_equal(sensors_backoff(100, 4, 3, 800), 400);
    assert_int_equal(sensors_backoff(100, 5, 3, 800), 800);
    assert_int_equal(sensors_backoff(100, 50, 3, 800), 800); /* capped, no overflow */
    assert_int_equal(sensors_backoff(1000, 9, 3, 800), 1000); /* never below the interval */
}

static void test_each_sensor_runs_at_its_interval(void **state)
{
    (void)state;
    advance_and_run(0); /* both were due at start */
    int fast0 = atomic_load(&fast_state.samples), slow0 = atomic_load(&slow_state.samples);
    assert_int_equal(fast0, 1);
    assert_int_equal(slow0, 1);
    for (int i = 0; i < 10; i++)
        advance_and_run(100);
    assert_int_equal(atomic_load(&fast_state.samples), fast0 + 10);
    assert_int_equal(atomic_load(&slow_state.samples), slow0 + 1);
    assert_int_equal(state_int("fast.count"), fast0 + 10);
    assert_int_equal(state_int("slow.count"), slow0 + 1);
    char *v, source[64];
    size_t len;
    assert_int_equal(environment_get("fast.state", &v, &len, NULL, source, sizeof source), GGL_OK);
    assert_string_equal(v, "fine");
    assert_string_equal(source, "sensor/fake[fast]");
    free(v);
    assert_int_equal(environment_get("fast.ratio", &v, &len, NULL, NULL, 0), GGL_NOTFOUND);
}

/* Samples of `fast` taken while the clock moves `total` ms in 100 ms steps. */
static int samples_over(uint64_t total)
{
    int before = atomic_load(&fast_state.samples);
    for (uint64_t t = 0; t < total; t += 100)
        advance_and_run(100);
    return atomic_load(&fast_state.samples) - before;
}

static void test_failing_sensor_backs_off_and_recovers(void **state)
{
    (void)state;
    atomic_store(&fast_state.failing, 1);
    /* failures 1 and 2 keep the 100 ms interval; the 3rd waits 200, the 4th 400, then
     * 800 (the cap) from the 5th on */
    assert_int_equal(samples_over(200), 2);  /* failures 1, 2 */
    assert_int_equal(samples_over(100), 1);  /* failure 3: next in 200 */
    assert_int_equal(samples_over(200), 1);  /* failure 4: next in 400 */
    assert_int_equal(samples_over(400), 1);  /* failure 5: next in 800 */
    assert_int_equal(samples_over(800), 1);  /* failure 6: still 800 */
    assert_int_equal(samples_over(700), 0);
    char *v;
    size_t len;
    assert_int_equal(environment_get("fast.state", &v, &len, NULL, NULL, 0), GGL_OK);
    assert_string_equal(v, "failing"); /* readings before the failure are kept */
    free(v);
    char info[2048] = {0};
    FILE *f = fmemopen(info, sizeof info - 1, "w");
    environment_info(f);
    fclose(f);
    assert_non_null(strstr(info, "sensor_fast:plugin=fake,interval_ms=100,effective_ms=800"));
    assert_non_null(strstr(info, "last_error=RETRY: fake: broken on purpose"));
    assert_non_null(strstr(info, "failing=6"));
    atomic_store(&fast_state.failing, 0);
    assert_int_equal(samples_over(100), 1); /* the backed-off sample succeeds ... */
    assert_int_equal(samples_over(500), 5); /* ... and the interval is 100 again */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_backoff_rule),
        cmocka_unit_test(test_each_sensor_runs_at_its_interval),
        cmocka_unit_test(test_failing_sensor_backs_off_and_recovers),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
