/* tier/sqlite's write turns (sqlite_turns.h): a FIFO handoff lock.  The turn passes
 * straight from the holder to the oldest waiter, which is woken on a condition variable
 * of its own, so a holder that asks again at once queues behind it. */
#include <errno.h>
#include <time.h>

#include "sqlite_turns.h"

struct turn {
    pthread_cond_t cv;
    int granted;
    struct turn *next;
};

void turns_init(struct turns *t)
{
    pthread_mutex_init(&t->m, NULL);
    t->held = 0;
    t->head = t->tail = NULL;
}

void turns_fini(struct turns *t) { pthread_mutex_destroy(&t->m); }

/* Take w out of the queue (its wait ran out). */
static void leave(struct turns *t, struct turn *w)
{
    struct turn **p = &t->head, *prev = NULL;
    while (*p != w)
        prev = *p, p = &(*p)->next;
    *p = w->next;
    if (t->tail == w)
        t->tail = prev;
}

int turns_take(struct turns *t, int64_t wait_ms)
{
    pthread_mutex_lock(&t->m);
    if (!t->held && !t->head) {
        t->held = 1;
        pthread_mutex_unlock(&t->m);
        return 0;
    }
    if (wait_ms <= 0) {
        pthread_mutex_unlock(&t->m);
        return -1;
    }
    struct timespec due;
    clock_gettime(CLOCK_MONOTONIC, &due);
    due.tv_sec += wait_ms / 1000;
    due.tv_nsec += (long)(wait_ms % 1000) * 1000000L;
    if (due.tv_nsec >= 1000000000L)
        due.tv_sec++, due.tv_nsec -= 1000000000L;
    struct turn w = {.granted = 0, .next = NULL};
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&w.cv, &attr);
    pthread_condattr_destroy(&attr);
    if (t->tail)
        t->tail->next = &w;
    else
        t->head = &w;
    t->tail = &w;
    int rc = 0;
    while (!w.granted && rc != ETIMEDOUT)
        rc = pthread_cond_timedwait(&w.cv, &t->m, &due);
    if (!w.granted)
        leave(t, &w);
    pthread_mutex_unlock(&t->m);
    pthread_cond_destroy(&w.cv);
    return w.granted ? 0 : -1;
}

void turns_give(struct turns *t)
{
    pthread_mutex_lock(&t->m);
    struct turn *w = t->head;
    if (w) { /* held stays set: the turn passes to w */
        t->head = w->next;
        if (!t->head)
            t->tail = NULL;
        w->granted = 1;
        pthread_cond_signal(&w->cv);
    } else {
        t->held = 0;
    }
    pthread_mutex_unlock(&t->m);
}
