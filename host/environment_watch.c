/* Who hears about environment updates: C observers (a key prefix and a callback, at
 * most ENV_MAX_OBSERVERS), parked watches (at most max_watchers, each firing once on a
 * change, at its deadline or at release) and the bounded history of updates (a ring of
 * `history` entries; the oldest is dropped).  Also the synchronous wrappers that run
 * timed work on the applier, and INFO environment. */
#include "ggl-build.h"

#include <stdlib.h>
#include <string.h>

#include "environment_impl.h"
#include "sensors.h"

struct observer {
    int used;
    char prefix[ENV_KEY_MAX + 1];
    env_observer_fn fn;
    void *arg;
};

struct watch {
    int used, is_prefix;
    char key[ENV_KEY_MAX + 1];  /* without the '*' of a prefix */
    uint64_t deadline_ms;
    env_watch_fn fn;
    void *arg;
};

struct hist {
    char *key, *value;          /* value NULL: removed */
    size_t len;
    char source[ENV_SOURCE_MAX];
    uint64_t at_ms;
};

static struct observer observers[ENV_MAX_OBSERVERS];
static struct watch *watches;
static size_t n_watches, watch_cap;
static int released;
static struct hist *ring;
static size_t ring_head, ring_count, ring_cap;

/* --- history --------------------------------------------------------------------- */

int env_history_init(void)
{
    ring_cap = (size_t)env.conf.history;
    ring_head = ring_count = 0;
    ring = calloc(ring_cap, sizeof *ring);
    return ring ? 0 : -1;
}

void env_history_clear(void)
{
    pthread_mutex_lock(&env.lock);
    for (size_t i = 0; ring && i < ring_cap; i++) {
        free(ring[i].key);
        free(ring[i].value);
        ring[i] = (struct hist){0};
    }
    ring_head = ring_count = 0;
    pthread_mutex_unlock(&env.lock);
}

void env_history_fini(void)
{
    env_history_clear();
    free(ring);
    ring = NULL;
}

void env_history_add_locked(const char *key, const char *value, size_t len, const char *source,
                            uint64_t at_ms)
{
    size_t slot = (ring_head + ring_count) % ring_cap;
    if (ring_count == ring_cap) { /* full: the oldest goes */
        ring_head = (ring_head + 1) % ring_cap;
        ring_count--;
    }
    struct hist *h = &ring[slot];
    free(h->key);
    free(h->value);
    h->key = strdup(key);
    h->value = value ? malloc(len + 1) : NULL;
    if (h->value)
        memcpy(h->value, value, len), h->value[len] = '\0';
    h->len = len;
    snprintf(h->source, sizeof h->source, "%s", source);
    h->at_ms = at_ms;
    if (h->key)
        ring_count++;
}

size_t environment_history(size_t n, void (*fn)(void *arg, const struct env_change *c), void *arg)
{
    if (!env.running)
        return 0;
    pthread_mutex_lock(&env.lock);
    if (n > ring_count)
        n = ring_count;
    for (size_t i = ring_count - n; i < ring_count; i++) {
        const struct hist *h = &ring[(ring_head + i) % ring_cap];
        struct env_change c = {h->key, h->value, h->len, h->source, h->at_ms, 1};
        fn(arg, &c);
    }
    pthread_mutex_unlock(&env.lock);
    return n;
}

/* --- observers --------------------------------------------------------------------- */

int environment_observe(const char *prefix, env_observer_fn fn, void *arg)
{
    int id = -1;
    if (!env.inited || strlen(prefix) > ENV_KEY_MAX)
        return -1;
    pthread_mutex_lock(&env.lock);
    for (int i = 0; i < ENV_MAX_OBSERVERS && id < 0; i++)
        if (!observers[i].used) {
            observers[i] = (struct observer){1, "", fn, arg};
            snprintf(observers[i].prefix, sizeof observers[i].prefix, "%s", prefix);
            id = i;
        }
    pthread_mutex_unlock(&env.lock);
    return id;
}

void environment_unobserve(int id)
{
    if (id < 0 || id >= ENV_MAX_OBSERVERS || !env.inited)
        return;
    pthread_mutex_lock(&env.lock);
    observers[id].used = 0;
    pthread_mutex_unlock(&env.lock);
}

static int watch_matches(const struct watch *w, const char *key)
{
    return w->is_prefix ? strncmp(w->key, key, strlen(w->key)) == 0 : strcmp(w->key, key) == 0;
}

/* lock held: fire and free one watch (its fn must not call back into the environment). */
static void fire_locked(struct watch *w, const struct env_change *c, const char *why)
{
    w->used = 0;
    n_watches--;
    metrics_set(env.m.watchers, (double)n_watches);
    w->fn(w->arg, c, why);
}

void env_notify(const struct env_change *c)
{
    struct observer copy[ENV_MAX_OBSERVERS];
    size_t n = 0;
    pthread_mutex_lock(&env.lock);
    for (int i = 0; i < ENV_MAX_OBSERVERS; i++)
        if (observers[i].used && strncmp(observers[i].prefix, c->key, strlen(observers[i].prefix)) == 0)
            copy[n++] = observers[i];
    for (size_t i = 0; c->changed && n_watches && i < watch_cap; i++)
        if (watches[i].used && watch_matches(&watches[i], c->key))
            fire_locked(&watches[i], c, NULL);
    pthread_mutex_unlock(&env.lock);
    for (size_t i = 0; i < n; i++) /* outside the lock: an observer may read the state */
        copy[i].fn(copy[i].arg, c);
}

/* --- watches ----------------------------------------------------------------------- */

int env_watch_init(void)
{
    watch_cap = (size_t)env.conf.max_watchers;
    n_watches = 0;
    released = 0;
    memset(observers, 0, sizeof observers);
    watches = calloc(watch_cap ? watch_cap : 1, sizeof *watches);
    return watches ? 0 : -1;
}

void env_watch_fini(void)
{
    free(watches);
    watches = NULL;
    watch_cap = n_watches = 0;
}

enum ggl_status environment_watch(const char *key, uint64_t deadline_ms, env_watch_fn fn, void *arg)
{
    size_t len = strlen(key);
    if (!env.running || !len || len > ENV_KEY_MAX)
        return env.running ? GGL_INVALID : GGL_UNAVAILABLE;
    enum ggl_status st = GGL_RETRY;
    pthread_mutex_lock(&env.lock);
    if (released) {
        st = GGL_UNAVAILABLE;
    } else if (n_watches < watch_cap) {
        size_t i = 0;
        while (watches[i].used)
            i++;
        struct watch *w = &watches[i];
        *w = (struct watch){.used = 1, .is_prefix = key[len - 1] == '*',
                            .deadline_ms = deadline_ms, .fn = fn, .arg = arg};
        memcpy(w->key, key, len - (size_t)w->is_prefix);
        n_watches++;
        metrics_set(env.m.watchers, (double)n_watches);
        st = GGL_OK;
    }
    pthread_mutex_unlock(&env.lock);
    if (st == GGL_RETRY)
        metrics_add(env.m.watch_refused, 1);
    if (st == GGL_OK)
        env_kick(); /* its deadline may be the earliest */
    return st;
}

void env_expire_watches(uint64_t now)
{
    pthread_mutex_lock(&env.lock);
    for (size_t i = 0; n_watches && i < watch_cap; i++)
        if (watches[i].used && watches[i].deadline_ms <= now)
            fire_locked(&watches[i], NULL, "timeout");
    pthread_mutex_unlock(&env.lock);
}

uint64_t env_next_watch_deadline(void)
{
    uint64_t d = UINT64_MAX;
    pthread_mutex_lock(&env.lock);
    for (size_t i = 0; n_watches && i < watch_cap; i++)
        if (watches[i].used && watches[i].deadline_ms < d)
            d = watches[i].deadline_ms;
    pthread_mutex_unlock(&env.lock);
    return d;
}

void env_release_watches(const char *why)
{
    if (!env.inited)
        return;
    pthread_mutex_lock(&env.lock);
    released = 1;
    for (size_t i = 0; n_watches && i < watch_cap; i++)
        if (watches[i].used)
            fire_locked(&watches[i], NULL, why);
    pthread_mutex_unlock(&env.lock);
}

void environment_release_watches(void) { env_release_watches("ERR shutting down"); }

/* --- synchronous timed work -------------------------------------------------------- */

struct sync_wait {
    pthread_mutex_t m;
    pthread_cond_t c;
    int done;
};

static void sync_done(void *arg, enum ggl_status st)
{
    struct sync_wait *w = arg;
    (void)st;
    pthread_mutex_lock(&w->m);
    w->done = 1;
    pthread_cond_signal(&w->c);
    pthread_mutex_unlock(&w->m);
}

/* Queue op and wait until the applier ran it; -1 when it could not be queued. */
static int run_on_applier(enum env_op op)
{
    struct sync_wait w = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0};
    if (env_enqueue_op(op, sync_done, &w) != GGL_OK)
        return -1;
    pthread_mutex_lock(&w.m);
    while (!w.done)
        pthread_cond_wait(&w.c, &w.m);
    pthread_mutex_unlock(&w.m);
    pthread_mutex_destroy(&w.m);
    pthread_cond_destroy(&w.c);
    return 0;
}

void environment_housekeep(void) { run_on_applier(ENV_OP_HOUSEKEEP); }

int environment_snapshot(void)
{
    if (!env.snap || run_on_applier(ENV_OP_SNAPSHOT) < 0)
        return -1;
    return env.last_snapshot_rc; /* written by the applier before it signalled us */
}

void environment_info(FILE *f)
{
    fprintf(f, "rules:%zu\r\nmax_keys:%lld\r\nhistory_capacity:%lld\r\nmax_age_ms:%lld\r\n"
               "snapshot_path:%s\r\nsnapshot_interval_ms:%lld\r\nmax_watchers:%lld\r\n",
            env.conf.n_rules, (long long)env.conf.max_keys, (long long)env.conf.history,
            (long long)env.conf.max_age_ms, env.conf.snapshot_path ? env.conf.snapshot_path : "",
            (long long)env.conf.snapshot_interval_ms, (long long)env.conf.max_watchers);
    sensors_info(f);
}
