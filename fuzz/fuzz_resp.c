/* libFuzzer target: the control socket's request parser (hiredis reader under our
 * limits, inline split, handing bytes back between the two) on arbitrary bytes, fed in
 * chunks whose size the first input byte picks.  Must never crash, leak or hang. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "resp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int check_request(void *arg, const struct request *req)
{
    size_t *seen = arg;
    for (int i = 0; i < req->argc; i++)
        if (req->argv[i][req->lens[i]] != '\0')
            abort();
    return ++*seen > 1000; /* stop, as a closing connection does */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const struct resp_limits lim = {4096, 16};
    size_t chunk = (size_t)data[0] % 64 + 1, seen = 0;
    struct resp_parser *p = resp_parser_new(&lim);
    if (!p)
        return 0;
    for (size_t off = 1; off < size; off += chunk) {
        size_t n = size - off < chunk ? size - off : chunk;
        if (resp_parse(p, (const char *)data + off, n, check_request, &seen) < 0 ||
            resp_buffered(p) > 2 * lim.max_request_bytes + 64 * 1024)
            break;
    }
    resp_parser_free(p);
    return 0;
}
