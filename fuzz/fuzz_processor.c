/* libFuzzer target for a JSON processor plugin: the bytes are one task's payload, run
 * through process() on the test host.  Built once per plugin (fuzz_reasoning, ...) by
 * linking that plugin's source; must never crash, leak or hang.  The same bytes are
 * also stored at the memory keys the seeds name ("facts/kb", "graph/g", "bandit/ads"),
 * so a payload naming them feeds the plugins' memory readers as well. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "testhost.h"

extern const struct ggl_plugin ggl_plugin_entry;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const keys[] = {"facts/kb", "graph/g", "bandit/ads"};
    static const struct ggl_host *host;
    static void *self;
    const struct ggl_processor *vt = ggl_plugin_entry.vtable;
    if (!self) {
        host = testhost_init(0);
        self = testhost_open(&ggl_plugin_entry, NULL, GGL_OK);
    }
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        host->mem_put(host, keys[i], strlen(keys[i]), data, size, 0, 1);
    struct ggl_task t = {.size = sizeof t, .id = 1, .type = vt->task_types(self)[0],
                         .payload = data, .payload_len = size};
    struct ggl_result r = {.size = sizeof r};
    enum ggl_status st = vt->process(self, &t, &r);
    if ((st == GGL_OK) != (r.data != NULL))
        abort(); /* a result comes with OK and only with OK */
    free(r.data);
    testhost_advance(1);
    return 0;
}
