/* Dead letters (API in action_dead.h): a ring of letter pointers under one mutex.  Each
 * letter is one allocation holding its spec's strings and payload, so copies and frees
 * are one call.  Listing copies under the lock; replies are written outside it. */
#include "ggl-build.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "action_dead.h"

struct dead_list {
    pthread_mutex_t lock;
    struct dead_letter **ring;
    size_t cap, head, len; /* head: the oldest */
};

struct dead_list *dead_new(size_t capacity)
{
    struct dead_list *d = calloc(1, sizeof *d);
    if (!d || !(d->ring = calloc(capacity ? capacity : 1, sizeof *d->ring))) {
        free(d);
        return NULL;
    }
    d->cap = capacity ? capacity : 1;
    pthread_mutex_init(&d->lock, NULL);
    return d;
}

void dead_letter_free(struct dead_letter *l) { free(l); }

void dead_free(struct dead_list *d)
{
    if (!d)
        return;
    for (size_t i = 0; i < d->len; i++)
        free(d->ring[(d->head + i) % d->cap]);
    pthread_mutex_destroy(&d->lock);
    free(d->ring);
    free(d);
}

/* One allocation: the letter, then name, key and payload. */
static struct dead_letter *letter_copy(uint64_t id, uint32_t attempts, uint64_t died_ms,
                                       const char *reason, const struct action_spec *s)
{
    size_t nl = strlen(s->name) + 1, kl = s->key ? strlen(s->key) + 1 : 0;
    struct dead_letter *l = malloc(sizeof *l + nl + kl + s->payload_len);
    if (!l)
        return NULL;
    char *p = (char *)(l + 1);
    *l = (struct dead_letter){.id = id, .attempts = attempts, .died_ms = died_ms, .spec = *s};
    snprintf(l->reason, sizeof l->reason, "%s", reason ? reason : "");
    l->spec.name = memcpy(p, s->name, nl);
    l->spec.key = kl ? memcpy(p + nl, s->key, kl) : NULL;
    l->spec.payload = s->payload_len ? memcpy(p + nl + kl, s->payload, s->payload_len) : NULL;
    return l;
}

static struct dead_letter *letter_dup(const struct dead_letter *l)
{
    return letter_copy(l->id, l->attempts, l->died_ms, l->reason, &l->spec);
}

/* Append as the newest; the oldest goes when full.  Caller holds the lock. */
static int push_newest(struct dead_list *d, struct dead_letter *l)
{
    int dropped = d->len == d->cap;
    if (dropped) {
        free(d->ring[d->head]);
        d->head = (d->head + 1) % d->cap;
        d->len--;
    }
    d->ring[(d->head + d->len++) % d->cap] = l;
    return dropped;
}

int dead_add(struct dead_list *d, uint64_t id, uint32_t attempts, uint64_t died_ms,
             const char *reason, const struct action_spec *spec)
{
    struct dead_letter *l = letter_copy(id, attempts, died_ms, reason, spec);
    if (!l)
        return -1;
    pthread_mutex_lock(&d->lock);
    int dropped = push_newest(d, l);
    pthread_mutex_unlock(&d->lock);
    return dropped;
}

void dead_put_back(struct dead_list *d, struct dead_letter *l)
{
    pthread_mutex_lock(&d->lock);
    push_newest(d, l);
    pthread_mutex_unlock(&d->lock);
}

size_t dead_list(struct dead_list *d, struct dead_letter **out, size_t max)
{
    size_t n = 0;
    pthread_mutex_lock(&d->lock);
    for (size_t i = d->len; i > 0 && n < max; i--) {
        struct dead_letter *c = letter_dup(d->ring[(d->head + i - 1) % d->cap]);
        if (c)
            out[n++] = c;
    }
    pthread_mutex_unlock(&d->lock);
    return n;
}

struct dead_letter *dead_take(struct dead_list *d, uint64_t id)
{
    struct dead_letter *l = NULL;
    pthread_mutex_lock(&d->lock);
    for (size_t i = 0; i < d->len && !l; i++) {
        size_t at = (d->head + i) % d->cap;
        if (d->ring[at]->id != id)
            continue;
        l = d->ring[at];
        for (size_t j = i; j + 1 < d->len; j++) /* close the gap, keeping the order */
            d->ring[(d->head + j) % d->cap] = d->ring[(d->head + j + 1) % d->cap];
        d->len--;
    }
    pthread_mutex_unlock(&d->lock);
    return l;
}

size_t dead_count(struct dead_list *d)
{
    pthread_mutex_lock(&d->lock);
    size_t n = d->len;
    pthread_mutex_unlock(&d->lock);
    return n;
}
