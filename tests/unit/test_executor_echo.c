/* executor/echo against the test host: the output, and RETRY/INVALID with reasons. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "testhost.h"

extern const struct ggl_plugin ggl_plugin_entry;

static enum ggl_status run(void *self, const char *payload, struct ggl_result *r, uint32_t attempt)
{
    const struct ggl_executor *vt = ggl_plugin_entry.vtable;
    struct ggl_action a = {.size = sizeof a, .name = "echo", .payload = payload,
                           .payload_len = strlen(payload), .attempt = attempt};
    *r = (struct ggl_result){.size = sizeof *r};
    return vt->execute(self, &a, r);
}

static void test_outcomes(void **state)
{
    (void)state;
    const struct ggl_host *host = testhost_init(0);
    const struct ggl_executor *vt = ggl_plugin_entry.vtable;
    void *self = testhost_open(&ggl_plugin_entry, NULL, GGL_OK);
    assert_string_equal(vt->action_names(self)[0], "echo");
    struct ggl_result r;
    assert_int_equal(run(self, "hello", &r, 0), GGL_OK);
    assert_int_equal(r.data_len, 5);
    assert_memory_equal(r.data, "hello", 5);
    host->free(r.data);
    assert_int_equal(run(self, "fail", &r, 2), GGL_RETRY);
    assert_string_equal(testhost_reason(), "asked to fail (attempt 2)");
    assert_null(r.data);
    assert_int_equal(run(self, "invalid", &r, 0), GGL_INVALID);
    assert_string_equal(testhost_reason(), "asked to refuse");
    vt->close(self);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_outcomes)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
