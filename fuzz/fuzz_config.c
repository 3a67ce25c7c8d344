/* libFuzzer target: the config loader (parse, top-level and instance checks, the
 * section reader) on arbitrary text.  Must never crash, leak or hang. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

static const struct conf_key keys[] = {
    {"unix", GGL_SETTING_STRING, 0, "/tmp/x", 0, 0, ""},
    {"port", GGL_SETTING_INT, 8, "0", 0, 65535, ""},
    {"ratio", GGL_SETTING_FLOAT, 16, "0.5", 0, 1, ""},
    {"on", GGL_SETTING_BOOL, 24, "false", 0, 0, ""},
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    struct conf_error err;
    struct config *c = config_load_string(text, "fuzz.conf", &err);
    if (c) {
        char dst[32];
        config_read_section(c, c->control, keys, 4, dst, &err);
        config_free(c);
    }
    free(text);
    return 0;
}
