/* Argument parsing for the MEM.* commands, apart from the socket so it can be tested
 * and fuzzed on its own:  MEM.PUT key value [IMPORTANCE f] [TTL ms] [TIER t] [PIN]
 * and MEM.GET key [WITHMETA]. */
#ifndef GGL_HOST_MEMORY_ARGS_H
#define GGL_HOST_MEMORY_ARGS_H

#include <stddef.h>

#include "memory.h"

/* Options after key and value (argv[0] is the first option).  0, or -1 with a message
 * for an "-INVALID ..." reply. */
int memory_parse_put_options(int argc, const char *const *argv, const size_t *lens,
                             struct memory_write *w, char *err, size_t errlen);
/* Options after the key of MEM.GET: *withmeta set for WITHMETA. */
int memory_parse_get_options(int argc, const char *const *argv, const size_t *lens,
                             int *withmeta, char *err, size_t errlen);
/* The tier named by s (cache, stm, im, ltm; any case), or -1. */
int memory_tier_by_name(const char *s, size_t len);

#endif
