/* A tier plugin built against the frozen ABI 1.0 headers (tests/abi/1.0), with only
 * the mandatory slots: its vtable's size ends right after `del`, as an older plugin's
 * would.  One key at a time is enough for the host to exercise every mandatory slot. */
#include <stdlib.h>
#include <string.h>

#include <ganglion/ganglion.h>

struct one {
    const struct ggl_host *host;
    char key[64], value[256];
    size_t klen, vlen;
    struct ggl_entry meta;
    int full;
};

static enum ggl_status o_open(const struct ggl_host *host, const struct ggl_conf *conf, void **self)
{
    (void)conf;
    struct one *o = calloc(1, sizeof *o);
    if (!o)
        return GGL_NOMEM;
    o->host = host;
    *self = o;
    return GGL_OK;
}

static void o_close(void *self) { free(self); }

static int same(struct one *o, const void *key, size_t len)
{
    return o->full && o->klen == len && memcmp(o->key, key, len) == 0;
}

static enum ggl_status o_get(void *self, const void *key, size_t len, struct ggl_entry *out)
{
    struct one *o = self;
    if (!same(o, key, len))
        return GGL_NOTFOUND;
    if (!(out->value = o->host->alloc(o->vlen)))
        return GGL_NOMEM;
    memcpy(out->value, o->value, o->vlen);
    out->value_len = o->vlen;
    out->version = o->meta.version;
    out->flags = o->meta.flags;
    out->expires_ms = o->meta.expires_ms;
    return GGL_OK;
}

static enum ggl_status o_put(void *self, const struct ggl_entry *e, uint64_t expect)
{
    struct one *o = self;
    int here = same(o, e->key, e->key_len);
    if (e->key_len > sizeof o->key || e->value_len > sizeof o->value)
        return GGL_INVALID;
    if ((expect == GGL_VERSION_OLDER && here && o->meta.version >= e->version) ||
        (expect != GGL_VERSION_ANY && expect != GGL_VERSION_OLDER && (!here || o->meta.version != expect)))
        return GGL_CONFLICT;
    memcpy(o->key, e->key, e->key_len);
    memcpy(o->value, e->value, e->value_len);
    o->klen = e->key_len;
    o->vlen = e->value_len;
    o->meta = *e;
    o->full = 1;
    return GGL_OK;
}

static enum ggl_status o_del(void *self, const void *key, size_t len, uint64_t expect)
{
    struct one *o = self;
    if (!same(o, key, len))
        return GGL_NOTFOUND;
    if (expect != GGL_VERSION_ANY && o->meta.version != expect)
        return GGL_CONFLICT;
    o->full = 0;
    return GGL_OK;
}

static const struct ggl_tier vtable = {
    .size = offsetof(struct ggl_tier, put_batch), /* mandatory slots only */
    .open = o_open, .close = o_close, .get = o_get, .put = o_put, .del = o_del};

GGL_PLUGIN_DEFINE(GGL_KIND_TIER, "old_tier", "1.0.0", "built against the frozen 1.0 headers",
                  NULL, &vtable);
