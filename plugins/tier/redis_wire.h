/* tier/redis wire format: the fixed-size header stored in front of every value, the
 * server-side script that applies conditional writes against it, and RESP command
 * building into one buffer per pipeline. */
#ifndef GGL_REDIS_WIRE_H
#define GGL_REDIS_WIRE_H

#include <ganglion/ganglion.h>

/* Header, little-endian, 56 bytes (offsets in bytes; Lua's are one more):
 *    0  magic 0xC7         1  format 1           2..3  reserved, 0
 *    4  flags (u32)        8  version (u64)      16  importance (IEEE-754 double)
 *   24  created_ms         32  last_access_ms    40  access_count
 *   48  expires_ms (absolute, host clock; 0 = never), then the value bytes. */
#define WIRE_HEADER 56
#define WIRE_MAGIC 0xC7
#define WIRE_FORMAT 1
#define WIRE_VERSION_AT 8
#define WIRE_EXPIRES_AT 48

/* Write e's header into out[WIRE_HEADER]. */
void wire_encode(unsigned char *out, const struct ggl_entry *e);
/* Fill out's metadata from a stored value and point out->value into it (borrowed).
 * Returns 0, or -1 when the bytes carry no header of this format. */
int wire_decode(const void *stored, size_t len, struct ggl_entry *out);
/* 8 bytes little-endian. */
void wire_u64(unsigned char *out, uint64_t v);

/* The conditional-write script (EVALSHA).  KEYS[1] key.  ARGV[1] "put" or "del",
 * ARGV[2] "any", "newer" or "equal", ARGV[3] now (8 bytes LE), ARGV[4] expected version
 * (8 bytes LE), ARGV[5] header+value, ARGV[6] PX in ms ("0" none, "-1" already expired:
 * delete).  Returns 1 applied, 0 condition failed, -1 absent (del), or an error
 * "GGLFORMAT ..." when the stored value has no header. */
extern const char wire_script[];

/* A pipeline's commands in RESP, built in one buffer and handed to hiredis in one piece
 * (redisAppendFormattedCommand): no allocation, format parsing or copy per command. */
struct wire_out {
    char *buf;
    size_t len, cap;
};

/* "*argc": the start of a command of argc arguments.  0, or -1 when out of memory. */
int wire_array(struct wire_out *o, unsigned argc);
/* One argument of n bytes: returns where to write them (valid until the next call on
 * o), or NULL when out of memory. */
char *wire_bulk(struct wire_out *o, size_t n);
/* One argument copied from p[n].  0, or -1 when out of memory. */
int wire_arg(struct wire_out *o, const void *p, size_t n);
/* v in decimal into out (at least 20 bytes, no NUL); returns the length. */
size_t wire_digits(char *out, uint64_t v);

#endif
