/* Hot-swap of tier slots: memory_swap (memory.h) and its migration's progress. */
#ifndef GGL_HOST_SWAP_H
#define GGL_HOST_SWAP_H

#include <stddef.h>

/* The current or last migration as INFO lines; the length written. */
size_t swap_info(char *buf, size_t len);
/* Wait for a running migration to end (memory_fini). */
void swap_fini(void);

#endif
