/* MEM.* option parsing.  Arguments are binary-safe (pointer + length); numbers must be
 * whole tokens; an option given twice is an error. */
#include "ggl-build.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "memory_args.h"

static int word_is(const char *a, size_t len, const char *word)
{
    return len == strlen(word) && strncasecmp(a, word, len) == 0;
}

int memory_tier_by_name(const char *s, size_t len)
{
    for (int t = 0; t < SLOT_COUNT; t++)
        if (word_is(s, len, tier_slot_names[t]))
            return t;
    return -1;
}

/* Copy a token into a NUL-terminated buffer for strtod/strtoll; -1 if too long. */
static int token(const char *s, size_t len, char *buf, size_t size)
{
    if (len == 0 || len >= size || memchr(s, '\0', len))
        return -1;
    memcpy(buf, s, len);
    buf[len] = '\0';
    return 0;
}

static int parse_double(const char *s, size_t len, double *out)
{
    char buf[64], *end;
    if (token(s, len, buf, sizeof buf) < 0)
        return -1;
    errno = 0;
    *out = strtod(buf, &end);
    return *end || errno || !isfinite(*out) ? -1 : 0;
}

static int parse_int(const char *s, size_t len, int64_t *out)
{
    char buf[32], *end;
    if (token(s, len, buf, sizeof buf) < 0)
        return -1;
    errno = 0;
    long long v = strtoll(buf, &end, 10);
    *out = v;
    return *end || errno ? -1 : 0;
}

int memory_parse_put_options(int argc, const char *const *argv, const size_t *lens,
                             struct memory_write *w, char *err, size_t errlen)
{
    int seen_imp = 0, seen_ttl = 0, seen_tier = 0;
    *w = (struct memory_write)MEMORY_WRITE_DEFAULT;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        size_t n = lens[i];
        int has_value = i + 1 < argc;
        if (word_is(a, n, "PIN")) {
            w->pin = 1;
        } else if (word_is(a, n, "IMPORTANCE") && has_value && !seen_imp++) {
            if (parse_double(argv[i + 1], lens[i + 1], &w->importance) < 0 || w->importance < 0 ||
                w->importance > 1)
                return snprintf(err, errlen, "IMPORTANCE must be a number from 0 to 1"), -1;
            i++;
        } else if (word_is(a, n, "TTL") && has_value && !seen_ttl++) {
            if (parse_int(argv[i + 1], lens[i + 1], &w->ttl_ms) < 0 || w->ttl_ms < 1)
                return snprintf(err, errlen, "TTL must be a positive number of milliseconds"), -1;
            i++;
        } else if (word_is(a, n, "TIER") && has_value && !seen_tier++) {
            if ((w->tier = memory_tier_by_name(argv[i + 1], lens[i + 1])) < 0)
                return snprintf(err, errlen, "TIER must be one of cache, stm, im, ltm"), -1;
            i++;
        } else {
            return snprintf(err, errlen, "unexpected option '%.*s' (options: IMPORTANCE f, "
                            "TTL ms, TIER t, PIN, each once)", (int)(n > 32 ? 32 : n), a), -1;
        }
    }
    return 0;
}

int memory_parse_get_options(int argc, const char *const *argv, const size_t *lens,
                             int *withmeta, char *err, size_t errlen)
{
    *withmeta = 0;
    if (argc == 0)
        return 0;
    if (argc == 1 && word_is(argv[0], lens[0], "WITHMETA"))
        return *withmeta = 1, 0;
    snprintf(err, errlen, "MEM.GET takes a key and optionally WITHMETA");
    return -1;
}
