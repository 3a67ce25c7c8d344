/* `ganglionctl demo` (demo.c): the demo agent loop over an open connection. */
#ifndef GGL_CTL_DEMO_H
#define GGL_CTL_DEMO_H

#include <hiredis/hiredis.h>

/* Run the loop and print its summary; 0 when every step did what it should. */
int demo_run(redisContext *c);

#endif
