/* Value compression for tiers configured with it (zstd), transparent to callers and
 * backends: the host compresses before a put and decompresses after a get. */
#ifndef GGL_HOST_COMPRESS_H
#define GGL_HOST_COMPRESS_H

#include <stddef.h>
#include <stdint.h>
#include <ganglion/tier.h>

/* Compress e's value into *buf when it is worth it (at least min_bytes and at least
 * 1/8 smaller): then e points at *buf with GGL_ENTRY_COMPRESSED set and 1 is returned.
 * 0: e is unchanged.  *buf is malloc'd; the caller frees it. */
int compress_entry(struct ggl_entry *e, size_t min_bytes, int level, void **buf);
/* Undo compress_entry on an entry returned by a get (its value malloc'd): replaces the
 * value with the original bytes.  GGL_ERROR (reason set) when the data is corrupt. */
enum ggl_status decompress_entry(struct ggl_entry *e, size_t max_bytes);

#endif
