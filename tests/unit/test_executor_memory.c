/* executor/memory against the test host: the payload's key and value land in memory
 * under the prefix, non-string values as their JSON text, bad payloads are INVALID. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "testhost.h"

extern const struct ggl_plugin ggl_plugin_entry;
static const struct ggl_executor *vt;
static const struct ggl_host *host;

static enum ggl_status run(void *self, const char *payload)
{
    struct ggl_action a = {.size = sizeof a, .name = "memory", .payload = payload,
                           .payload_len = strlen(payload)};
    struct ggl_result r = {.size = sizeof r};
    enum ggl_status st = vt->execute(self, &a, &r);
    assert_null(r.data);
    return st;
}

static void assert_stored(const char *key, const char *want)
{
    void *v = NULL;
    size_t len = 0;
    assert_int_equal(host->mem_get(host, key, strlen(key), &v, &len), GGL_OK);
    assert_int_equal(len, strlen(want));
    assert_memory_equal(v, want, len);
    host->free(v);
}

static void test_payload_is_written_under_prefix(void **state)
{
    (void)state;
    host = testhost_init(0);
    vt = ggl_plugin_entry.vtable;
    const char *conf[] = {"key_prefix", "act:", "action", "remember", NULL};
    void *s = testhost_open(&ggl_plugin_entry, conf, GGL_OK);
    assert_string_equal(vt->action_names(s)[0], "remember");
    assert_int_equal(run(s, "{\"key\": \"k1\", \"value\": \"v1\"}"), GGL_OK);
    assert_stored("act:k1", "v1");
    assert_int_equal(run(s, "{\"key\": \"k2\", \"value\": {\"a\": [1, 2]}, \"ttl_ms\": 5000, "
                            "\"importance\": 0.9}"), GGL_OK);
    assert_stored("act:k2", "{\"a\":[1,2]}");
    vt->close(s);
    testhost_fini();
}

static void test_bad_payloads_are_invalid(void **state)
{
    (void)state;
    host = testhost_init(0);
    const char *conf[] = {"max_key", "8", NULL};
    void *s = testhost_open(&ggl_plugin_entry, conf, GGL_OK);
    const char *bad[] = {"not json", "[1]", "{\"value\": 1}", "{\"key\": 1, \"value\": 1}",
                         "{\"key\": \"k\"}", "{\"key\": \"\", \"value\": 1}",
                         "{\"key\": \"waytoolongkey\", \"value\": 1}",
                         "{\"key\": \"k\", \"value\": 1, \"ttl_ms\": -1}",
                         "{\"key\": \"k\", \"value\": 1, \"importance\": 2}",
                         "{\"key\": \"k\", \"key\": \"j\", \"value\": 1}", NULL};
    for (const char **p = bad; *p; p++) {
        assert_int_equal(run(s, *p), GGL_INVALID);
        assert_true(strlen(testhost_reason()) > 0);
    }
    vt->close(s);
    const char *bad_conf[] = {"importance", "1.5", NULL};
    testhost_open(&ggl_plugin_entry, bad_conf, GGL_INVALID);
    testhost_fini();
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_payload_is_written_under_prefix),
                                       cmocka_unit_test(test_bad_payloads_are_invalid)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
