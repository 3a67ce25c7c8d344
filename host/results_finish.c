/* The ends of an id's life: a result stored (results_finish, and results_finish_ok for a
 * worker's batch without the lock), or a cancel.  Policy in results.h, structures in
 * results_impl.h; the rest of the store is in results.c. */
#include "ggl-build.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hostapi.h"
#include "results_impl.h"

static void fill(struct result_entry *e, enum result_status status, void *data, size_t len,
                 char *reason, uint64_t now)
{
    e->status = status;
    e->data = data;
    e->len = len;
    e->reason = reason;
    e->finished_ms = now;
}

/* Finish pending e (lock held) with this outcome (data and reason taken over), answer
 * its waiters, and append it to the FIFO: 0, or -1 when it is not pending (done, or a
 * lock-free finish is under way: that one won). */
static int settle(struct results *r, struct result_entry *e, enum result_status status, void *data,
                  size_t len, char *reason, uint64_t now, struct job **done)
{
    uint64_t t = atomic_load(&e->tag);
    do {
        if ((t & TAG_STATE) == RESULT_DONE || (t & TAG_SETTLING))
            return -1;
    } while (!atomic_compare_exchange_weak(&e->tag, &t, tag_for(e->id, RESULT_DONE)));
    fill(e, status, data, len, reason, now); /* readers of the outcome hold the lock */
    release_waiters(r, e, 0, done);
    fifo_push(r, e, e, 1);
    return 0;
}

static char *reason_copy(const char *reason)
{
    return reason && reason[0] ? strndup(reason, 255) : NULL;
}

int results_finish(struct results *r, uint64_t id, enum result_status status, const void *data,
                   size_t len, const char *reason)
{
    char oversized[128];
    int too_big = r->cfg.max_data && len > r->cfg.max_data;
    if (too_big) {
        snprintf(oversized, sizeof oversized, "result of %zu bytes is over the limit of %zu",
                 len, r->cfg.max_data);
        status = RESULT_FAILED, data = NULL, len = 0, reason = oversized;
        metrics_add(r->m_oversized, 1);
    }
    void *copy = len ? malloc(len) : NULL;
    char *why = reason_copy(reason);
    if (len && !copy) {
        status = RESULT_FAILED, len = 0;
        free(why);
        why = strdup("out of memory storing the result");
    } else if (len) {
        memcpy(copy, data, len);
    }
    struct job *done = NULL;
    uint64_t now = clock_now_ms(); /* outside the lock */
    pthread_mutex_lock(&r->lock);
    r->st.oversized += too_big;
    struct result_entry *e = entry_find(r, id);
    int pending = e && settle(r, e, status, copy, len, why, now, &done) == 0;
    r->st.late += !pending;
    pthread_mutex_unlock(&r->lock);
    complete_all(r, done);
    if (pending)
        return 0;
    metrics_add(r->m_late, 1);
    free(copy);
    free(why);
    return -1;
}

#define FINISH_CHUNK 16

/* Claim pending e for a lock-free finish: the tag it now has (SETTLING set), or 0 when
 * it is not pending (*lock 0), or has parked requests (*lock 1: finish under the lock). */
static uint64_t claim(struct result_entry *e, uint64_t id, int *lock)
{
    uint64_t t = atomic_load(&e->tag);
    *lock = 0;
    do {
        if (t >> TAG_SHIFT != id || (t & TAG_STATE) == RESULT_DONE || (t & TAG_SETTLING))
            return 0;
        if (t & TAG_WAITED) {
            *lock = 1;
            return 0;
        }
    } while (!atomic_compare_exchange_weak(&e->tag, &t, t | TAG_SETTLING));
    return t | TAG_SETTLING;
}

/* How an item of a chunk ends (finish_ok_chunk). */
enum ok_way { OK_DONE, OK_LATE, OK_SETTLE_LOCKED, OK_WAITERS_LOCKED };

/* The items the lock-free pass could not end, under the lock: settled ones whose
 * requests parked meanwhile get their answers; the others are settled (or late). */
static void finish_locked(struct results *r, struct result_ok *items, const enum ok_way *way,
                          void **copy, size_t n, uint64_t now)
{
    struct job *done = NULL;
    pthread_mutex_lock(&r->lock);
    for (size_t i = 0; i < n; i++) {
        struct result_entry *e = (struct result_entry *)items[i].handle;
        if (way[i] == OK_WAITERS_LOCKED) { /* SETTLING: nobody else changes it */
            atomic_store(&e->tag, tag_for(items[i].id, RESULT_DONE));
            release_waiters(r, e, 0, &done);
            fifo_push(r, e, e, 1);
        } else if (way[i] == OK_SETTLE_LOCKED) {
            e = entry_find(r, items[i].id);
            items[i].won = e && settle(r, e, RESULT_OK, copy[i], items[i].len, NULL, now, &done) == 0;
        }
        r->st.late += !items[i].won;
    }
    pthread_mutex_unlock(&r->lock);
    complete_all(r, done);
}

/* Workers finish their own tasks: with no requests parked on them (the common case),
 * each entry is claimed, filled and marked done by compare-and-swap, and the chunk's
 * entries join the FIFO with one exchange, all without the store's lock. */
static void finish_ok_chunk(struct results *r, struct result_ok *items, size_t n)
{
    void *copy[FINISH_CHUNK];
    enum ok_way way[FINISH_CHUNK];
    size_t ready = 0; /* items[0..ready) are copied; the rest go one by one */
    for (; ready < n; ready++) {
        struct result_ok *it = &items[ready];
        if (r->cfg.max_data && it->len > r->cfg.max_data)
            break; /* stored as failed, with its reason: results_finish */
        if ((copy[ready] = it->len ? malloc(it->len) : NULL) == NULL && it->len)
            break;
        if (it->len)
            memcpy(copy[ready], it->data, it->len);
    }
    uint64_t now = clock_now_ms();
    struct result_entry *first = NULL, *last = NULL;
    size_t joined = 0, locked = 0;
    for (size_t i = 0; i < ready; i++) {
        struct result_entry *e = (struct result_entry *)items[i].handle;
        int lock = 1;
        uint64_t t = e ? claim(e, items[i].id, &lock) : 0;
        items[i].won = t != 0;
        way[i] = t ? OK_DONE : lock ? OK_SETTLE_LOCKED : OK_LATE;
        if (t) {
            fill(e, RESULT_OK, copy[i], items[i].len, NULL, now);
            if (!atomic_compare_exchange_strong(&e->tag, &t, tag_for(items[i].id, RESULT_DONE))) {
                way[i] = OK_WAITERS_LOCKED; /* a request parked while we filled it */
            } else {
                if (last)
                    atomic_store_explicit(&last->newer, e, memory_order_relaxed);
                else
                    first = e;
                last = e;
                joined++;
            }
        }
        locked += way[i] != OK_DONE;
    }
    if (joined)
        fifo_push(r, first, last, joined);
    if (locked)
        finish_locked(r, items, way, copy, ready, now);
    for (size_t i = 0; i < ready; i++)
        if (!items[i].won) {
            metrics_add(r->m_late, 1);
            free(copy[i]);
        }
    for (size_t i = ready; i < n; i++)
        items[i].won = results_finish(r, items[i].id, RESULT_OK, items[i].data, items[i].len, NULL) == 0;
}

void results_finish_ok(struct results *r, struct result_ok *items, size_t n)
{
    for (size_t off = 0; off < n; off += FINISH_CHUNK)
        finish_ok_chunk(r, items + off, n - off < FINISH_CHUNK ? n - off : FINISH_CHUNK);
}

int results_cancel(struct results *r, uint64_t id, const char *reason)
{
    char *why = reason_copy(reason ? reason : "cancelled");
    struct job *done = NULL;
    uint64_t now = clock_now_ms();
    pthread_mutex_lock(&r->lock);
    struct result_entry *e = find_live(r, id);
    int rc = !e ? -1 : settle(r, e, RESULT_CANCELLED, NULL, 0, why, now, &done) == 0 ? 1 : 0;
    if (rc == 1)
        why = NULL;
    pthread_mutex_unlock(&r->lock);
    complete_all(r, done);
    free(why);
    return rc;
}
