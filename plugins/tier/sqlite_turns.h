/* tier/sqlite's write turns: the instance's own connections take SQLite's write lock one
 * at a time, in the order they asked.  Left to SQLite, a connection that finds the lock
 * taken sleeps in its busy handler and tries again (after 1, 2, 5, ... 100 ms), while a
 * connection writing in a tight loop takes the lock again within microseconds of each
 * commit: a batch (a migration into LTM) could wait out busy_timeout_ms behind such a
 * writer and fail.  Turns hand the lock over first come, first served.  Other processes
 * writing the file still meet SQLite's lock and its busy handler. */
#ifndef GGL_TIER_SQLITE_TURNS_H
#define GGL_TIER_SQLITE_TURNS_H

#include <stdint.h>
#include <pthread.h>

struct turn; /* a waiter, on its thread's stack */

struct turns {
    pthread_mutex_t m;
    int held;
    struct turn *head, *tail; /* waiting, oldest first */
};

void turns_init(struct turns *t);
void turns_fini(struct turns *t);
/* Wait for our turn, at most wait_ms (0: only if free now).  0 when taken, -1 when the
 * wait ran out (nothing taken). */
int turns_take(struct turns *t, int64_t wait_ms);
/* Hand the turn to the oldest waiter, or free it. */
void turns_give(struct turns *t);

#endif
