/* The action system's idempotency table: an idempotency key seen within the window maps
 * to the id of the first action submitted with it, so a repeat is answered with that id
 * (and its result) instead of running twice.  Bounded: see action_dedup.c. */
#ifndef GGL_HOST_ACTION_DEDUP_H
#define GGL_HOST_ACTION_DEDUP_H

#include <stddef.h>
#include <stdint.h>
#include <ganglion/ganglion.h>

#define DEDUP_FOLLOWERS 4 /* callbacks of repeats parked on one pending first action */

struct dedup;

/* A repeat's callback, delivered with the first action's result. */
struct dedup_follower {
    ggl_done_fn done;
    void *arg;
    uint64_t id;
};

struct dedup *dedup_new(size_t max_keys, uint64_t window_ms);
void dedup_free(struct dedup *d);

/* How a claim went. */
enum dedup_claim { DEDUP_NEW, DEDUP_REPEAT, DEDUP_FULL, DEDUP_BUSY };

/* Claim `key` at host time now.  Unseen (or its window passed): reserve(ctx, id) is
 * called under the table's lock to get the new action's id, the key is recorded with it
 * and DEDUP_NEW returned (reserve failing returns its status through *st and nothing is
 * recorded).  Seen: *id is the first action's id, and when `f` is not NULL and the first
 * action is still pending, f is parked on it (DEDUP_BUSY when DEDUP_FOLLOWERS are
 * parked already); *first_done tells whether its result is already final.  DEDUP_FULL:
 * max_keys keys are inside their window. */
enum dedup_claim dedup_claim(struct dedup *d, const char *key, uint64_t now,
                             enum ggl_status (*reserve)(void *ctx, uint64_t *id), void *ctx,
                             const struct dedup_follower *f, uint64_t *id, int *first_done,
                             enum ggl_status *st);
/* The first action of `key` finished: mark it final and take its parked followers
 * (up to DEDUP_FOLLOWERS into out); returns how many. */
size_t dedup_finish(struct dedup *d, const char *key, uint64_t id, struct dedup_follower *out);
/* Forget `key` if it still maps to `id` (the action was refused after the claim). */
void dedup_forget(struct dedup *d, const char *key, uint64_t id);
size_t dedup_count(struct dedup *d);

#endif
