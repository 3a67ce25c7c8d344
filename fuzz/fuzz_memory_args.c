/* libFuzzer target: MEM.PUT / MEM.GET option parsing on arbitrary argument vectors
 * (the input is split at NUL-free boundaries: each byte 0x01 starts a new argument). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "memory_args.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *argv[32];
    size_t lens[32];
    int argc = 0;
    size_t start = 0;
    for (size_t i = 0; i <= size && argc < 32; i++)
        if (i == size || data[i] == 0x01) {
            argv[argc] = (const char *)data + start;
            lens[argc++] = i - start;
            start = i + 1;
        }
    struct memory_write w;
    char err[256];
    int meta;
    memory_parse_put_options(argc, argv, lens, &w, err, sizeof err);
    memory_parse_get_options(argc, argv, lens, &meta, err, sizeof err);
    return 0;
}
