/* A tier slot: the binding of one memory tier (cache, STM, IM, LTM) to a backend
 * instance, with the in-flight limit and circuit breaker every call goes through.
 * slot_acquire/slot_release bracket each tier call so a swap can rebind under load. */
#ifndef GGL_HOST_SLOT_H
#define GGL_HOST_SLOT_H

#include <stdatomic.h>
#include <stdint.h>
#include <pthread.h>
#include <ganglion/tier.h>

#define REF_STRIPES 8

/* One backend instance bound to a slot.  Never freed while the host runs: a reader
 * that raced a rebind can still touch its counters safely (see slot_acquire).  The
 * reference count is striped over cache lines so threads do not bounce one line. */
struct binding {
    const struct ggl_tier *vt;
    void *self;
    const char *label;           /* instance label, e.g. "tier/mem[stm_mem]" */
    int nonblocking;             /* GGL_NONBLOCKING: no in-flight accounting needed */
    /* vt->get_into where a cache hit may call it directly (nonblocking, ABI 1.1 slot
     * present), else NULL: one test on the hit path instead of three. */
    enum ggl_status (*get_into)(void *self, const void *key, size_t key_len, void *buf,
                                size_t cap, uint64_t now, struct ggl_entry *out);
    struct binding *next;        /* retired bindings, freed at slot_fini */
    struct {
        _Atomic long n;
    } __attribute__((aligned(64))) refs[REF_STRIPES]; /* calls in flight, summed */
};

/* This thread's stripe (0..REF_STRIPES-1) of a striped reference count: threads spread
 * over cache lines instead of bouncing one (the engine's processors use it too).  Inline:
 * a cache hit takes a reference, and the call would cost a tenth of the hit's work. */
extern _Thread_local unsigned ref_stripe_mine; /* ~0u until ref_stripe_assign */
unsigned ref_stripe_assign(void);
static inline unsigned ref_stripe(void)
{
    return ref_stripe_mine != ~0u ? ref_stripe_mine : ref_stripe_assign();
}

/* Calls in flight on a binding (the sum of its stripes). */
long binding_refs(struct binding *b);

enum breaker_state { BREAKER_CLOSED, BREAKER_OPEN, BREAKER_HALF_OPEN };

/* Reads and writes each have their own breaker: a tier refusing writes (a full disk)
 * still serves what it holds. */
enum slot_dir { SLOT_READS, SLOT_WRITES };

/* Circuit breaker: `threshold` consecutive failures (RETRY/ERROR/NOMEM) open it for
 * `cooldown_ms`; then one probe call is let through (half-open): success closes it,
 * failure opens it again. */
struct breaker {
    _Atomic int state;
    _Atomic long failures;
    _Atomic uint64_t open_until;
    _Atomic int probing;
    char reason[256];            /* why it last failed (the slot's lock) */
};

struct slot {
    const char *name;            /* "cache", "stm", "im", "ltm" */
    _Atomic(struct binding *) current;
    _Atomic(struct binding *) previous; /* during a migration: the binding copied from */
    struct binding *retired;
    pthread_mutex_t lock;        /* rebind and the breakers' reasons */
    long max_in_flight;
    _Atomic long in_flight;
    long threshold;              /* the breakers' (see struct breaker) */
    uint64_t cooldown_ms;
    struct breaker br[2];        /* by enum slot_dir */
    _Atomic int last_failed;     /* the direction that failed last */
    _Atomic uint64_t refused_busy, refused_open, errors;
};

void slot_init(struct slot *s, const char *name, long max_in_flight, long threshold,
               uint64_t cooldown_ms);
void slot_fini(struct slot *s);
/* Bind (or rebind) the slot to a backend instance; the old binding is retired. */
int slot_bind(struct slot *s, const struct ggl_tier *vt, void *self, const char *label);
/* Rebind and return the old binding (NULL if none); with keep_previous it stays
 * reachable as s->previous until slot_forget_previous. */
struct binding *slot_rebind(struct slot *s, const struct ggl_tier *vt, void *self,
                            const char *label, int keep_previous, int *err);
void slot_forget_previous(struct slot *s);
/* A reference on s->previous, if any (NULL: none); drop it with binding_put. */
struct binding *slot_get_previous(struct slot *s);
void binding_put(struct binding *b);
/* Wait (bounded by timeout_ms) for a retired binding's calls to finish; 0 if drained. */
int binding_drain(struct binding *b, int timeout_ms);
int slot_bound(struct slot *s);
/* Calls in flight on retired bindings of instance `self`, or -1 when a binding of it is
 * still current or previous (it may be called at any moment).  0: unused by s. */
long slot_refs_on(struct slot *s, const void *self);

/* Reserve a call that reads or writes (dir): *b receives the binding to call.
 * GGL_RETRY (reason set) when that direction's breaker is open or the in-flight limit
 * is reached; GGL_NOTFOUND when unbound. */
enum ggl_status slot_acquire(struct slot *s, enum slot_dir dir, struct binding **b);
/* End a call with the status it returned; `why` is the plugin's reason, if any. */
void slot_release(struct slot *s, enum slot_dir dir, struct binding *b, enum ggl_status st,
                  const char *why);
/* The worse of the two breakers' states (open, half-open, closed), and a copy of the
 * reason of the last failure in the direction that failed last. */
int slot_breaker_state(struct slot *s);
/* 1 while dir's breaker refuses calls (open, its cooldown not over). */
int slot_refusing(struct slot *s, enum slot_dir dir);
void slot_last_error(struct slot *s, char *out, size_t len);

/* slot_acquire and slot_release for the hot paths (a cache hit, the write-through to a
 * nonblocking tier): when the backend is nonblocking, dir's breaker closed and no
 * failure counted, a call is one reference taken and dropped on this thread's stripe,
 * inline; anything else (unbound, a rebind racing, an open or probing breaker, a
 * failure to count) takes the functions above, so the breaker and swap semantics are
 * theirs. */
static inline enum ggl_status slot_acquire_fast(struct slot *s, enum slot_dir dir,
                                                struct binding **out)
{
    struct binding *b = atomic_load(&s->current);
    if (b && b->nonblocking &&
        atomic_load_explicit(&s->br[dir].state, memory_order_relaxed) == BREAKER_CLOSED) {
        _Atomic long *ref = &b->refs[ref_stripe()].n;
        atomic_fetch_add(ref, 1);
        if (atomic_load(&s->current) == b) { /* the re-check a rebind's drain relies on */
            *out = b;
            return GGL_OK;
        }
        atomic_fetch_sub(ref, 1);
    }
    return slot_acquire(s, dir, out);
}

static inline void slot_release_fast(struct slot *s, enum slot_dir dir, struct binding *b,
                                     enum ggl_status st, const char *why)
{
    struct breaker *br = &s->br[dir];
    if (b->nonblocking && st != GGL_RETRY && st != GGL_ERROR && st != GGL_NOMEM &&
        !atomic_load_explicit(&br->failures, memory_order_relaxed) &&
        atomic_load_explicit(&br->state, memory_order_relaxed) == BREAKER_CLOSED &&
        !atomic_load_explicit(&br->probing, memory_order_relaxed)) {
        atomic_fetch_sub(&b->refs[ref_stripe()].n, 1);
        return;
    }
    slot_release(s, dir, b, st, why);
}

const char *breaker_state_name(int state);

#endif
