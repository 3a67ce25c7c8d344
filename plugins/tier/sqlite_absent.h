/* tier/sqlite's memory of keys it found absent, so that the host's "retire older copies
 * below" lookup on every STM write costs no SQL read transaction (each one takes two
 * fcntl locks on the -shm file here: ~1-2 us).  Sound while this process is the file's
 * only writer: every write here forgets the key first (see sqlite_absent.c). */
#ifndef GGL_TIER_SQLITE_ABSENT_H
#define GGL_TIER_SQLITE_ABSENT_H

#include <stddef.h>
#include <stdint.h>

#include <ganglion/tier.h>

struct absent;

/* A set of at most `capacity` keys (0: none, every call is a no-op); NULL on no memory. */
struct absent *absent_new(size_t capacity);
void absent_free(struct absent *a);
/* Is key known absent?  Otherwise *token receives what absent_note needs to tell
 * whether a write raced the lookup the caller is about to make. */
int absent_known(struct absent *a, const void *key, size_t len, uint64_t *token);
/* The lookup begun after absent_known found no row: remember that, unless a write to
 * the key's shard started or ended meanwhile. */
void absent_note(struct absent *a, const void *key, size_t len, uint64_t token);
/* Bracket every write that may create a row for key: begin forgets it, and until end
 * no lookup of its shard may be noted. */
void absent_write_begin(struct absent *a, const void *key, size_t len);
void absent_write_end(struct absent *a, const void *key, size_t len);
/* The same around a batch's writes, a shard's lock taken once for all its keys: begin
 * returns what end needs (the keys' hashes; NULL: it went key by key, and so will end). */
uint64_t *absent_batch_begin(struct absent *a, const struct ggl_entry *es, size_t n);
void absent_batch_end(struct absent *a, const struct ggl_entry *es, size_t n, uint64_t *h);

#endif
