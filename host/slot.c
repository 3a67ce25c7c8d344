/* Tier slots.  The read side takes no lock: load the binding, count a reference, check
 * the binding is still current (else undo and retry).  A rebind stores the new binding
 * and waits for the old one's references to drain before closing its instance, and
 * binding structs outlive the run, so the re-check never touches freed memory. */
#include "ggl-build.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "deadline.h"
#include "hostapi.h"
#include "slot.h"

void slot_init(struct slot *s, const char *name, long max_in_flight, long threshold,
               uint64_t cooldown_ms)
{
    memset(s, 0, sizeof *s);
    s->name = name;
    s->max_in_flight = max_in_flight;
    s->threshold = threshold;
    s->cooldown_ms = cooldown_ms;
    pthread_mutex_init(&s->lock, NULL);
}

void slot_fini(struct slot *s)
{
    free(atomic_load(&s->current)); /* aligned_alloc memory is released by free */
    while (s->retired) {
        struct binding *b = s->retired;
        s->retired = b->next;
        free(b);
    }
    pthread_mutex_destroy(&s->lock);
}

_Thread_local unsigned ref_stripe_mine = ~0u;

unsigned ref_stripe_assign(void)
{
    static _Atomic unsigned next_stripe;
    ref_stripe_mine = atomic_fetch_add_explicit(&next_stripe, 1, memory_order_relaxed) % REF_STRIPES;
    return ref_stripe_mine;
}

/* This thread's stripe of a binding's reference count. */
static _Atomic long *my_ref(struct binding *b) { return &b->refs[ref_stripe()].n; }

long binding_refs(struct binding *b)
{
    long sum = 0;
    for (int i = 0; i < REF_STRIPES; i++)
        sum += atomic_load(&b->refs[i].n);
    return sum;
}

int slot_bind(struct slot *s, const struct ggl_tier *vt, void *self, const char *label)
{
    int err = 0;
    slot_rebind(s, vt, self, label, 0, &err);
    return err ? -1 : 0;
}

static struct binding *binding_new(const struct ggl_tier *vt, void *self, const char *label)
{
    struct binding *b = aligned_alloc(64, sizeof *b);
    if (!b)
        return NULL;
    memset(b, 0, sizeof *b);
    b->nonblocking = (vt->flags & GGL_NONBLOCKING) != 0;
    b->get_into = b->nonblocking && GGL_HAS_SLOT(vt, struct ggl_tier, get_into) ? vt->get_into : NULL;
    b->vt = vt;
    b->self = self;
    b->label = label;
    return b;
}

struct binding *slot_rebind(struct slot *s, const struct ggl_tier *vt, void *self,
                            const char *label, int keep_previous, int *err)
{
    struct binding *b = binding_new(vt, self, label), *prev = NULL;
    pthread_mutex_lock(&s->lock);
    struct binding *cur = atomic_load(&s->current);
    /* The previous binding is a binding of its own, so the old current's references
     * count only calls that started before the switch: binding_drain on it waits for
     * those alone (a migration scans after them: none can land behind its cursor). */
    if (keep_previous && cur && b && !(prev = binding_new(cur->vt, cur->self, cur->label))) {
        free(b);
        b = NULL;
    }
    *err = !b;
    if (!b) {
        pthread_mutex_unlock(&s->lock);
        return NULL;
    }
    if (prev) {
        atomic_store(&s->previous, prev); /* before the switch: no gap */
        prev->next = s->retired;
        s->retired = prev;
    }
    struct binding *old = atomic_exchange(&s->current, b);
    if (old) {
        old->next = s->retired;
        s->retired = old;
    }
    for (int d = 0; d < 2; d++) {
        atomic_store(&s->br[d].state, BREAKER_CLOSED);
        atomic_store(&s->br[d].failures, 0);
    }
    pthread_mutex_unlock(&s->lock);
    return old;
}

void slot_forget_previous(struct slot *s) { atomic_store(&s->previous, NULL); }

struct binding *slot_get_previous(struct slot *s)
{
    for (;;) {
        struct binding *b = atomic_load(&s->previous);
        if (!b)
            return NULL;
        _Atomic long *ref = my_ref(b);
        atomic_fetch_add(ref, 1);
        if (atomic_load(&s->previous) == b)
            return b;
        atomic_fetch_sub(ref, 1);
    }
}

void binding_put(struct binding *b) { atomic_fetch_sub(my_ref(b), 1); }

int binding_drain(struct binding *b, int timeout_ms)
{
    /* Calls in flight are short (a tier call); a timed wait on a private condition
     * gives the CPU away between looks without a sleep call. */
    pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
    pthread_cond_t c = PTHREAD_COND_INITIALIZER;
    pthread_mutex_lock(&m);
    for (int waited = 0; binding_refs(b) > 0 && waited < timeout_ms; waited++) {
        struct timespec t = deadline_after_ms(CLOCK_REALTIME, 1);
        pthread_cond_timedwait(&c, &m, &t);
    }
    pthread_mutex_unlock(&m);
    return binding_refs(b) > 0 ? -1 : 0;
}

int slot_bound(struct slot *s) { return atomic_load(&s->current) != NULL; }

long slot_refs_on(struct slot *s, const void *self)
{
    long n = 0;
    pthread_mutex_lock(&s->lock);
    struct binding *c = atomic_load(&s->current), *p = atomic_load(&s->previous);
    if ((c && c->self == self) || (p && p->self == self))
        n = -1;
    for (struct binding *b = s->retired; b && n >= 0; b = b->next)
        if (b->self == self)
            n += binding_refs(b);
    pthread_mutex_unlock(&s->lock);
    return n;
}

const char *breaker_state_name(int state)
{
    static const char *const names[] = {"closed", "open", "half-open"};
    return state >= 0 && state <= 2 ? names[state] : "?";
}

int slot_breaker_state(struct slot *s)
{
    int r = atomic_load(&s->br[SLOT_READS].state), w = atomic_load(&s->br[SLOT_WRITES].state);
    return r == BREAKER_OPEN || w == BREAKER_OPEN ? BREAKER_OPEN
           : r == BREAKER_HALF_OPEN || w == BREAKER_HALF_OPEN ? BREAKER_HALF_OPEN : BREAKER_CLOSED;
}

void slot_last_error(struct slot *s, char *out, size_t len)
{
    pthread_mutex_lock(&s->lock);
    snprintf(out, len, "%s", s->br[atomic_load(&s->last_failed) & 1].reason);
    pthread_mutex_unlock(&s->lock);
}

int slot_refusing(struct slot *s, enum slot_dir dir)
{
    return atomic_load(&s->br[dir].state) == BREAKER_OPEN &&
           clock_now_ms() < atomic_load(&s->br[dir].open_until);
}

/* May a call pass the breaker?  Open until the cooldown ends, then one probe. */
static int breaker_allows(struct breaker *br)
{
    int st = atomic_load(&br->state);
    if (st == BREAKER_CLOSED)
        return 1;
    if (clock_now_ms() < atomic_load(&br->open_until))
        return 0;
    int expected = 0;
    if (!atomic_compare_exchange_strong(&br->probing, &expected, 1))
        return 0; /* another call is the probe */
    atomic_store(&br->state, BREAKER_HALF_OPEN);
    return 1;
}

enum ggl_status slot_acquire(struct slot *s, enum slot_dir dir, struct binding **out)
{
    struct breaker *br = &s->br[dir];
    struct binding *b;
    _Atomic long *ref;
    for (;;) {
        b = atomic_load(&s->current);
        if (!b)
            return GGL_NOTFOUND;
        ref = my_ref(b);
        atomic_fetch_add(ref, 1);
        if (atomic_load(&s->current) == b)
            break;
        atomic_fetch_sub(ref, 1); /* rebound meanwhile: use the new binding */
    }
    if (!breaker_allows(br)) {
        atomic_fetch_sub(ref, 1);
        atomic_fetch_add_explicit(&s->refused_open, 1, memory_order_relaxed);
        pthread_mutex_lock(&s->lock);
        char why[sizeof br->reason];
        memcpy(why, br->reason, sizeof why);
        pthread_mutex_unlock(&s->lock);
        hostapi_set_reason("%s: circuit breaker open%s: %s", s->name,
                           dir == SLOT_WRITES ? " for writes" : "", why);
        return GGL_RETRY;
    }
    /* A nonblocking backend cannot pile calls up: no shared counter on its hot path. */
    if (!b->nonblocking && atomic_fetch_add(&s->in_flight, 1) >= s->max_in_flight) {
        atomic_fetch_sub(&s->in_flight, 1);
        atomic_fetch_sub(ref, 1);
        atomic_fetch_add_explicit(&s->refused_busy, 1, memory_order_relaxed);
        hostapi_set_reason("%s: %ld calls in flight", s->name, s->max_in_flight);
        return GGL_RETRY;
    }
    *out = b;
    return GGL_OK;
}

void slot_release(struct slot *s, enum slot_dir dir, struct binding *b, enum ggl_status st,
                  const char *why)
{
    struct breaker *br = &s->br[dir];
    int failed = st == GGL_RETRY || st == GGL_ERROR || st == GGL_NOMEM;
    if (failed) {
        atomic_fetch_add_explicit(&s->errors, 1, memory_order_relaxed);
        pthread_mutex_lock(&s->lock);
        snprintf(br->reason, sizeof br->reason, "%s: %s%s%s", b->label, ggl_status_str(st),
                 why && why[0] ? ": " : "", why ? why : "");
        pthread_mutex_unlock(&s->lock);
        atomic_store(&s->last_failed, (int)dir);
        int probe = atomic_load(&br->state) == BREAKER_HALF_OPEN;
        if (probe || atomic_fetch_add(&br->failures, 1) + 1 >= s->threshold) {
            atomic_store(&br->open_until, clock_now_ms() + s->cooldown_ms);
            atomic_store(&br->state, BREAKER_OPEN);
        }
    } else if (atomic_load_explicit(&br->failures, memory_order_relaxed) ||
               atomic_load(&br->state) != BREAKER_CLOSED) { /* read first: no store per call */
        atomic_store(&br->failures, 0);
        atomic_store(&br->state, BREAKER_CLOSED);
    }
    if (atomic_load_explicit(&br->probing, memory_order_relaxed) &&
        atomic_load(&br->state) != BREAKER_HALF_OPEN)
        atomic_store(&br->probing, 0);
    if (!b->nonblocking)
        atomic_fetch_sub(&s->in_flight, 1);
    atomic_fetch_sub(my_ref(b), 1);
}
