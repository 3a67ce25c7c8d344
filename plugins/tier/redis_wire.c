/* tier/redis wire format: header encoding (fixed size, little-endian, so any host reads
 * any other host's entries), the Lua script that checks it on the server, and RESP
 * command building. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "redis_wire.h"

void wire_u64(unsigned char *out, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        out[i] = (unsigned char)(v >> (8 * i));
}

static uint64_t read_u64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

void wire_encode(unsigned char *out, const struct ggl_entry *e)
{
    uint64_t bits;
    memcpy(&bits, &e->importance, sizeof bits);
    out[0] = WIRE_MAGIC;
    out[1] = WIRE_FORMAT;
    out[2] = out[3] = 0;
    for (int i = 0; i < 4; i++)
        out[4 + i] = (unsigned char)(e->flags >> (8 * i));
    wire_u64(out + WIRE_VERSION_AT, e->version);
    wire_u64(out + 16, bits);
    wire_u64(out + 24, e->created_ms);
    wire_u64(out + 32, e->last_access_ms);
    wire_u64(out + 40, e->access_count);
    wire_u64(out + WIRE_EXPIRES_AT, e->expires_ms);
}

int wire_decode(const void *stored, size_t len, struct ggl_entry *out)
{
    const unsigned char *p = stored;
    if (len < WIRE_HEADER || p[0] != WIRE_MAGIC || p[1] != WIRE_FORMAT || p[2] || p[3])
        return -1;
    uint64_t bits = read_u64(p + 16);
    out->flags = (uint32_t)p[4] | (uint32_t)p[5] << 8 | (uint32_t)p[6] << 16 | (uint32_t)p[7] << 24;
    out->version = read_u64(p + WIRE_VERSION_AT);
    memcpy(&out->importance, &bits, sizeof bits);
    out->created_ms = read_u64(p + 24);
    out->last_access_ms = read_u64(p + 32);
    out->access_count = read_u64(p + 40);
    out->expires_ms = read_u64(p + WIRE_EXPIRES_AT);
    out->value = (void *)(p + WIRE_HEADER);
    out->value_len = len - WIRE_HEADER;
    return 0;
}

/* Only the header is read (GETRANGE), so a large value is not copied into Lua; a key
 * holding an empty string reads as absent.  op 'old' (del_older_batch) deletes the key
 * if its stored version, live or expired, is below ARGV[4].  Versions and times are compared as (high,
 * low) 32-bit halves: Lua 5.1 numbers are doubles, exact only below 2^53.  Strings
 * compare byte for byte only with ==. */
const char wire_script[] =
    "local function u64(s, at)\n"
    "  local lo, hi = struct.unpack('<I4I4', s, at)\n"
    "  return hi, lo\n"
    "end\n"
    "local function less(ah, al, bh, bl) return ah < bh or (ah == bh and al < bl) end\n"
    "local cur = redis.call('GETRANGE', KEYS[1], 0, 55)\n"
    "local live = false\n"
    "if #cur > 0 then\n"
    "  if #cur < 56 or string.byte(cur, 1) ~= 199 or string.byte(cur, 2) ~= 1 then\n"
    "    return redis.error_reply('GGLFORMAT stored value has no ganglion header')\n"
    "  end\n"
    "  local eh, el = u64(cur, 49)\n"
    "  local nh, nl = u64(ARGV[3], 1)\n"
    "  live = (eh == 0 and el == 0) or less(nh, nl, eh, el)\n"
    "end\n"
    "local op, mode = ARGV[1], ARGV[2]\n"
    "if op == 'old' then\n"
    "  if #cur == 0 then return -1 end\n"
    "  local sh, sl = u64(cur, 9)\n"
    "  local vh, vl = u64(ARGV[4], 1)\n"
    "  if not less(sh, sl, vh, vl) then return 0 end\n"
    "  redis.call('DEL', KEYS[1])\n"
    "  return 1\n"
    "end\n"
    "local same = live and string.sub(cur, 9, 16) == ARGV[4]\n"
    "if op == 'del' then\n"
    "  if not live then return -1 end\n"
    "  if mode == 'equal' and not same then return 0 end\n"
    "  redis.call('DEL', KEYS[1])\n"
    "  return 1\n"
    "end\n"
    "if mode == 'equal' and not same then return 0 end\n"
    "if mode == 'newer' and live then\n"
    "  local sh, sl = u64(cur, 9)\n"
    "  local vh, vl = u64(ARGV[5], 9)\n"
    "  if not less(sh, sl, vh, vl) then return 0 end\n"
    "end\n"
    "if ARGV[6] == '-1' then redis.call('DEL', KEYS[1])\n"
    "elseif ARGV[6] == '0' then redis.call('SET', KEYS[1], ARGV[5])\n"
    "else redis.call('SET', KEYS[1], ARGV[5], 'PX', ARGV[6]) end\n"
    "return 1\n";

size_t wire_digits(char *out, uint64_t v)
{
    char tmp[20];
    size_t n = 0;
    do
        tmp[n++] = (char)('0' + v % 10);
    while (v /= 10);
    for (size_t i = 0; i < n; i++)
        out[i] = tmp[n - 1 - i];
    return n;
}

/* Room for n more bytes at o->buf + o->len, growing by doubling. */
static char *room(struct wire_out *o, size_t n)
{
    if (o->cap - o->len < n) {
        if (n > SIZE_MAX / 4 - o->len) /* doubling below would overflow */
            return NULL;
        size_t cap = o->cap ? o->cap : 4096;
        while (cap - o->len < n)
            cap *= 2;
        char *p = realloc(o->buf, cap);
        if (!p)
            return NULL;
        o->buf = p;
        o->cap = cap;
    }
    return o->buf + o->len;
}

/* <mark><n>\r\n, with `extra` more bytes reserved after it. */
static char *length_line(struct wire_out *o, char mark, uint64_t n, size_t extra)
{
    char *p = room(o, 23 + extra);
    if (!p)
        return NULL;
    p[0] = mark;
    size_t d = wire_digits(p + 1, n);
    p[1 + d] = '\r';
    p[2 + d] = '\n';
    o->len += 3 + d;
    return p + 3 + d;
}

int wire_array(struct wire_out *o, unsigned argc)
{
    return length_line(o, '*', argc, 0) ? 0 : -1;
}

char *wire_bulk(struct wire_out *o, size_t n)
{
    char *p = length_line(o, '$', n, n + 2);
    if (!p)
        return NULL;
    p[n] = '\r';
    p[n + 1] = '\n';
    o->len += n + 2;
    return p;
}

int wire_arg(struct wire_out *o, const void *p, size_t n)
{
    char *at = wire_bulk(o, n);
    if (!at)
        return -1;
    if (n)
        memcpy(at, p, n);
    return 0;
}
