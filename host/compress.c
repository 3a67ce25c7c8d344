/* zstd compression of tier values.  Each thread keeps one compression and one
 * decompression context (creating them per call would cost more than compressing a
 * small value); they are freed when the thread exits. */
#include "ggl-build.h"

#include <pthread.h>
#include <stdlib.h>
#include <zstd.h>

#include "compress.h"
#include "hostapi.h"

static pthread_key_t cctx_key, dctx_key;
static pthread_once_t keys_once = PTHREAD_ONCE_INIT;

static void free_cctx(void *p) { ZSTD_freeCCtx(p); }
static void free_dctx(void *p) { ZSTD_freeDCtx(p); }

static void make_keys(void)
{
    pthread_key_create(&cctx_key, free_cctx);
    pthread_key_create(&dctx_key, free_dctx);
}

static ZSTD_CCtx *cctx(void)
{
    pthread_once(&keys_once, make_keys);
    ZSTD_CCtx *c = pthread_getspecific(cctx_key);
    if (!c && (c = ZSTD_createCCtx()))
        pthread_setspecific(cctx_key, c);
    return c;
}

static ZSTD_DCtx *dctx(void)
{
    pthread_once(&keys_once, make_keys);
    ZSTD_DCtx *d = pthread_getspecific(dctx_key);
    if (!d && (d = ZSTD_createDCtx()))
        pthread_setspecific(dctx_key, d);
    return d;
}

int compress_entry(struct ggl_entry *e, size_t min_bytes, int level, void **buf)
{
    *buf = NULL;
    if (e->value_len < min_bytes || (e->flags & (GGL_ENTRY_TOMBSTONE | GGL_ENTRY_COMPRESSED)))
        return 0;
    ZSTD_CCtx *c = cctx();
    size_t bound = ZSTD_compressBound(e->value_len);
    void *out = c ? malloc(bound) : NULL;
    if (!out)
        return 0; /* stored uncompressed: correct, only larger */
    size_t n = ZSTD_compressCCtx(c, out, bound, e->value, e->value_len, level);
    if (ZSTD_isError(n) || n > e->value_len - e->value_len / 8) {
        free(out);
        return 0;
    }
    e->value = out;
    e->value_len = n;
    e->flags |= GGL_ENTRY_COMPRESSED;
    *buf = out;
    return 1;
}

enum ggl_status decompress_entry(struct ggl_entry *e, size_t max_bytes)
{
    if (!(e->flags & GGL_ENTRY_COMPRESSED))
        return GGL_OK;
    unsigned long long size = ZSTD_getFrameContentSize(e->value, e->value_len);
    if (size == ZSTD_CONTENTSIZE_ERROR || size == ZSTD_CONTENTSIZE_UNKNOWN || size > max_bytes) {
        hostapi_set_reason("compressed value is corrupt or too large");
        return GGL_ERROR;
    }
    ZSTD_DCtx *d = dctx();
    void *out = d ? malloc(size ? size : 1) : NULL;
    if (!out)
        return GGL_NOMEM;
    size_t n = ZSTD_decompressDCtx(d, out, size, e->value, e->value_len);
    if (ZSTD_isError(n) || n != size) {
        free(out);
        hostapi_set_reason("corrupt compressed value: %s",
                           ZSTD_isError(n) ? ZSTD_getErrorName(n) : "short");
        return GGL_ERROR;
    }
    free(e->value);
    e->value = out;
    e->value_len = n;
    e->flags &= ~GGL_ENTRY_COMPRESSED;
    return GGL_OK;
}
