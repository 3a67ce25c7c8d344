/* Small fixed-size blocks recycled between threads a batch at a time, for objects one
 * thread allocates and another frees at a high rate (the engine's tasks: made by the
 * submitter, freed by a worker).  glibc's malloc took an arena lock per such pair. */
#ifndef GGL_HOST_BLOCKPOOL_H
#define GGL_HOST_BLOCKPOOL_H

#include <stddef.h>

#define BLOCK_SIZE 256

/* A block of BLOCK_SIZE bytes (uninitialised), or NULL without memory. */
void *block_get(void);
/* Give back a block from block_get (any thread). */
void block_put(void *b);

#endif
