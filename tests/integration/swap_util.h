/* Helpers of the hot-swap tests (swap_util.c). */
#ifndef GGL_TEST_SWAP_UTIL_H
#define GGL_TEST_SWAP_UTIL_H

#include <stddef.h>
#include <stdint.h>

#include "harness.h"

/* A buffered RESP reader over one connection. */
struct reader {
    int fd;
    char buf[65536];
    size_t pos, len;
};

/* One reply line without CRLF; -1 on EOF or timeout. */
int rd_line(struct reader *r, char *out, size_t max);
/* One simple reply: status, error, integer, or a bulk string's payload ("(nil)"). */
int rd_reply(struct reader *r, char *out, size_t max);
uint64_t mono_us(void);
int cmp_u32(const void *a, const void *b);
/* A command's whole reply as text, via a fresh connection. */
void command(const struct host *h, const char *cmd, char *out, size_t len);
/* The host's mapped private copies of plugin `base` ("mem"), space separated. */
void mapped_copies(const struct host *h, const char *base, char *out, size_t len);
/* How many PLUGIN.LIST rows of `instance` are in `state` (open, draining, closed...). */
int instance_in_state(const struct host *h, const char *instance, const char *state);

#endif
