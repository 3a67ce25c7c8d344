/* processor/echo against the test host: declared task types from config, the payload
 * returned with its prefix in a host-allocated buffer. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "testhost.h"

extern const struct ggl_plugin ggl_plugin_entry;

static void test_types_and_result(void **state)
{
    (void)state;
    const struct ggl_host *host = testhost_init(0);
    const struct ggl_processor *vt = ggl_plugin_entry.vtable;
    static const char *const pairs[] = {"task_type", "reasoning", "prefix", "re:", NULL};
    void *self = testhost_open(&ggl_plugin_entry, pairs, GGL_OK);
    const char *const *types = vt->task_types(self);
    assert_string_equal(types[0], "reasoning");
    assert_null(types[1]);

    struct ggl_task t = {.size = sizeof t, .id = 1, .type = "reasoning", .payload = "abc", .payload_len = 3};
    struct ggl_result r = {.size = sizeof r};
    assert_int_equal(vt->process(self, &t, &r), GGL_OK);
    assert_int_equal(r.data_len, 6);
    assert_memory_equal(r.data, "re:abc", 6);
    host->free(r.data);
    vt->close(self);
}

static void test_default_type(void **state)
{
    (void)state;
    testhost_init(0);
    const struct ggl_processor *vt = ggl_plugin_entry.vtable;
    void *self = testhost_open(&ggl_plugin_entry, NULL, GGL_OK);
    assert_string_equal(vt->task_types(self)[0], "echo");
    vt->close(self);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_types_and_result),
        cmocka_unit_test(test_default_type),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
