/* The environment's state and its applier.  Updates are checked against their rule at
 * admission and queued in a bounded ring (full: GGL_RETRY, counted); one applier thread
 * applies them in order, records them in the history, then calls observers and fires
 * watches outside the lock.  Only the applier changes the table, so it reads the table
 * without the lock (snapshots); readers on other threads take the lock.  Timed work
 * (stale keys, expired watches, snapshots) runs on the same thread at deadlines on the
 * host clock, waiting on a condition variable in between. */
#include "ggl-build.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "deadline.h"
#include "environment_impl.h"
#include "hostapi.h"
#include "log.h"
#include "sensors.h"

struct env env;

static uint64_t key_hash(const char *k)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    while (*k)
        h = (h ^ (unsigned char)*k++) * 1099511628211ull;
    return h;
}

struct env_entry *env_find(const char *key)
{
    struct env_entry *e = env.buckets[key_hash(key) & (env.n_buckets - 1)];
    while (e && strcmp(e->key, key) != 0)
        e = e->next;
    return e;
}

int env_entry_stale(const struct env_entry *e, uint64_t now)
{
    return e->max_age_ms > 0 && now > e->at_ms && now - e->at_ms > (uint64_t)e->max_age_ms;
}

/* --- admission --------------------------------------------------------------- */

/* The ring holds queue_capacity updates plus ENV_OP_RESERVE slots that only the host's
 * own operations (barriers, housekeeping, snapshots) may use, so a queue full of updates
 * never refuses them. */
#define ENV_OP_RESERVE 64

static enum ggl_status enqueue(struct env_update *u)
{
    size_t cap = u->op == ENV_OP_SET ? env.q_cap - ENV_OP_RESERVE : env.q_cap;
    pthread_mutex_lock(&env.qlock);
    if (!env.accepting || env.q_count >= cap) {
        int busy = env.accepting;
        pthread_mutex_unlock(&env.qlock);
        if (busy)
            metrics_add(env.m.busy, 1);
        hostapi_set_reason(busy ? "environment update queue full (%zu)" : "environment stopped",
                           cap);
        free(u);
        return busy ? GGL_RETRY : GGL_UNAVAILABLE;
    }
    env.ring[(env.q_head + env.q_count++) % env.q_cap] = u;
    metrics_set(env.m.queue, (double)env.q_count);
    pthread_cond_signal(&env.q_work);
    pthread_mutex_unlock(&env.qlock);
    return GGL_OK;
}

static struct env_update *update_new(enum env_op op, const char *key, const char *value,
                                     size_t len, const char *source)
{
    size_t klen = key ? strlen(key) : 0;
    struct env_update *u = malloc(sizeof *u + klen + 1 + len + 1);
    if (!u)
        return NULL;
    memset(u, 0, sizeof *u);
    u->op = op;
    u->key = (char *)(u + 1);
    memcpy(u->key, key ? key : "", klen + 1);
    u->value = u->key + klen + 1;
    if (len)
        memcpy(u->value, value, len);
    u->value[len] = '\0';
    u->len = len;
    snprintf(u->source, sizeof u->source, "%s", source ? source : "");
    u->at_ms = clock_now_ms();
    return u;
}

enum ggl_status environment_set(const char *key, const char *value, size_t len,
                                const char *source, env_done_fn done, void *arg)
{
    if (!env.running)
        return hostapi_set_reason("environment not started"), GGL_UNAVAILABLE;
    char why[256];
    size_t klen = key ? strlen(key) : 0;
    if (!klen || klen > ENV_KEY_MAX || !value || len > ENV_VALUE_MAX) {
        snprintf(why, sizeof why, "state keys are 1..%d bytes, values up to %d bytes",
                 ENV_KEY_MAX, ENV_VALUE_MAX);
    } else if (env_rule_check(env_rule_for(&env.conf, key), value, len, why, sizeof why) == 0) {
        struct env_update *u = update_new(ENV_OP_SET, key, value, len, source);
        if (!u)
            return hostapi_set_reason("out of memory"), GGL_NOMEM;
        u->done = done;
        u->arg = arg;
        return enqueue(u);
    }
    metrics_add(env.m.rejected, 1);
    hostapi_set_reason("%s", why);
    return GGL_INVALID;
}

enum ggl_status env_enqueue_op(enum env_op op, env_done_fn done, void *arg)
{
    if (!env.running)
        return GGL_UNAVAILABLE;
    struct env_update *u = update_new(op, NULL, NULL, 0, NULL);
    if (!u)
        return GGL_NOMEM;
    u->done = done;
    u->arg = arg;
    return enqueue(u);
}

enum ggl_status environment_barrier(env_done_fn done, void *arg)
{
    return env_enqueue_op(ENV_OP_BARRIER, done, arg);
}

/* --- applying ---------------------------------------------------------------- */

static int64_t max_age_for(const char *key)
{
    const struct env_rule *r = env_rule_for(&env.conf, key);
    return r && r->max_age_ms ? r->max_age_ms : env.conf.max_age_ms;
}

/* Replace or insert under the lock; GGL_RETRY when a new key would pass max_keys. */
static enum ggl_status store(const struct env_update *u, int *changed)
{
    char *value = malloc(u->len + 1);
    if (!value)
        return GGL_NOMEM;
    memcpy(value, u->value, u->len + 1);
    pthread_mutex_lock(&env.lock);
    struct env_entry *e = env_find(u->key);
    if (!e) {
        if (env.n_keys >= (size_t)env.conf.max_keys || !(e = calloc(1, sizeof *e)) ||
            !(e->key = strdup(u->key))) {
            pthread_mutex_unlock(&env.lock);
            if (e)
                free(e);
            free(value);
            return GGL_RETRY;
        }
        size_t b = key_hash(u->key) & (env.n_buckets - 1);
        e->next = env.buckets[b];
        env.buckets[b] = e;
        env.n_keys++;
        *changed = 1;
    } else {
        *changed = env_entry_stale(e, u->at_ms) || e->len != u->len ||
                   memcmp(e->value, u->value, u->len) != 0;
        free(e->value);
    }
    e->value = value;
    e->len = u->len;
    e->at_ms = u->at_ms;
    e->max_age_ms = max_age_for(u->key);
    snprintf(e->source, sizeof e->source, "%s", u->source);
    env_history_add_locked(u->key, u->value, u->len, u->source, u->at_ms);
    pthread_mutex_unlock(&env.lock);
    metrics_set(env.m.keys, (double)env.n_keys);
    return GGL_OK;
}

static void apply_set(struct env_update *u)
{
    int changed = 0;
    enum ggl_status st = store(u, &changed);
    if (st == GGL_OK) {
        metrics_add(env.m.updates, 1);
        struct env_change c = {u->key, u->value, u->len, u->source, u->at_ms, changed};
        env_notify(&c);
    } else {
        metrics_add(env.m.full, 1);
    }
    if (u->done)
        u->done(u->arg, st);
}

static void apply(struct env_update *u)
{
    switch (u->op) {
    case ENV_OP_SET: apply_set(u); return;
    case ENV_OP_HOUSEKEEP:
        env.next_sweep = 0; /* asked for: look for stale keys whatever the clock says */
        env_housekeep_now(clock_now_ms());
        break;
    case ENV_OP_SNAPSHOT: env_snapshot_write(); break;
    case ENV_OP_BARRIER: break;
    }
    if (u->done)
        u->done(u->arg, GGL_OK);
}

/* Remove every stale key (history and observers see a removal). */
static void remove_stale(uint64_t now)
{
    for (size_t b = 0; b < env.n_buckets; b++) {
        for (struct env_entry **p = &env.buckets[b]; *p;) {
            struct env_entry *e = *p;
            if (!env_entry_stale(e, now)) {
                p = &e->next;
                continue;
            }
            pthread_mutex_lock(&env.lock);
            *p = e->next;
            env.n_keys--;
            env_history_add_locked(e->key, NULL, 0, "expired", now);
            pthread_mutex_unlock(&env.lock);
            metrics_add(env.m.expired, 1);
            struct env_change c = {e->key, NULL, 0, "expired", now, 1};
            env_notify(&c);
            free(e->key);
            free(e->value);
            free(e);
        }
    }
    metrics_set(env.m.keys, (double)env.n_keys);
}

/* The shortest max age in force: stale keys are looked for every quarter of it. */
static uint64_t sweep_period(void)
{
    int64_t p = env.conf.max_age_ms;
    for (size_t i = 0; i < env.conf.n_rules; i++)
        if (env.conf.rules[i].max_age_ms && (!p || env.conf.rules[i].max_age_ms < p))
            p = env.conf.rules[i].max_age_ms;
    return p ? (uint64_t)(p / 4 > 10 ? p / 4 : 10) : 0;
}

void env_housekeep_now(uint64_t now)
{
    if (env.sweep_every && now >= env.next_sweep) {
        remove_stale(now);
        env.next_sweep = now + env.sweep_every;
    }
    env_expire_watches(now);
    if (env.snap && now >= env.next_snapshot) {
        env_snapshot_write();
        env.next_snapshot = now + (uint64_t)env.conf.snapshot_interval_ms;
    }
}

static uint64_t next_deadline(void)
{
    uint64_t d = env.snap ? env.next_snapshot : UINT64_MAX;
    if (env.sweep_every && env.next_sweep < d)
        d = env.next_sweep;
    uint64_t w = env_next_watch_deadline();
    return w < d ? w : d;
}

/* qlock held: wait for work or the next deadline (host clock, waited in real time). */
static void wait_for_work(void)
{
    uint64_t due = next_deadline(), now = clock_now_ms();
    if (due == UINT64_MAX) {
        pthread_cond_wait(&env.q_work, &env.qlock);
        return;
    }
    uint64_t ms = due > now ? due - now : 0;
    if (!ms)
        return;
    struct timespec ts = deadline_after_ms(CLOCK_MONOTONIC, ms);
    pthread_cond_timedwait(&env.q_work, &env.qlock, &ts);
}

static void *applier_main(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&env.qlock);
    for (;;) {
        if (env.q_count) {
            struct env_update *u = env.ring[env.q_head];
            env.q_head = (env.q_head + 1) % env.q_cap;
            env.q_count--;
            metrics_set(env.m.queue, (double)env.q_count);
            pthread_mutex_unlock(&env.qlock);
            apply(u);
            free(u);
            pthread_mutex_lock(&env.qlock);
            continue;
        }
        if (env.stopping)
            break;
        if (clock_now_ms() >= next_deadline()) {
            pthread_mutex_unlock(&env.qlock);
            env_housekeep_now(clock_now_ms());
            pthread_mutex_lock(&env.qlock);
            continue;
        }
        wait_for_work();
    }
    pthread_mutex_unlock(&env.qlock);
    return NULL;
}

/* Wake the applier: a new watch may have an earlier deadline. */
void env_kick(void)
{
    pthread_mutex_lock(&env.qlock);
    pthread_cond_signal(&env.q_work);
    pthread_mutex_unlock(&env.qlock);
}

/* --- reading ------------------------------------------------------------------ */

enum ggl_status environment_get(const char *key, char **value, size_t *len, uint64_t *at_ms,
                                char *source, size_t source_len)
{
    if (!env.running)
        return GGL_UNAVAILABLE;
    enum ggl_status st = GGL_NOTFOUND;
    pthread_mutex_lock(&env.lock);
    struct env_entry *e = env_find(key);
    if (e && !env_entry_stale(e, clock_now_ms())) {
        st = (*value = malloc(e->len + 1)) ? GGL_OK : GGL_NOMEM;
        if (st == GGL_OK) {
            memcpy(*value, e->value, e->len + 1);
            *len = e->len;
            if (at_ms)
                *at_ms = e->at_ms;
            if (source)
                snprintf(source, source_len, "%s", e->source);
        }
    }
    pthread_mutex_unlock(&env.lock);
    return st;
}

static int by_key(const void *a, const void *b)
{
    return strcmp((*(struct env_entry *const *)a)->key, (*(struct env_entry *const *)b)->key);
}

size_t environment_foreach(void (*fn)(void *arg, const char *key, const char *value, size_t len),
                           void *arg)
{
    if (!env.running)
        return 0;
    pthread_mutex_lock(&env.lock);
    uint64_t now = clock_now_ms();
    struct env_entry **v = malloc((env.n_keys ? env.n_keys : 1) * sizeof *v);
    size_t n = 0;
    for (size_t b = 0; v && b < env.n_buckets; b++)
        for (struct env_entry *e = env.buckets[b]; e; e = e->next)
            if (!env_entry_stale(e, now))
                v[n++] = e;
    if (v)
        qsort(v, n, sizeof *v, by_key);
    for (size_t i = 0; i < n; i++)
        fn(arg, v[i]->key, v[i]->value, v[i]->len);
    pthread_mutex_unlock(&env.lock);
    free(v);
    return n;
}

/* --- snapshots ---------------------------------------------------------------- */

/* Applier thread (or after it stopped): the table is not changing under us. */
int env_snapshot_write(void)
{
    if (!env.snap)
        return 0;
    int ok = env_snap_begin(env.snap) == 0;
    for (size_t b = 0; ok && b < env.n_buckets; b++)
        for (struct env_entry *e = env.buckets[b]; ok && e; e = e->next)
            ok = env_snap_put(env.snap, e->key, e->value, e->len, e->at_ms, e->source) == 0;
    ok = env_snap_commit(env.snap, ok) == 0 && ok;
    metrics_add(ok ? env.m.snapshots : env.m.snapshot_failures, 1);
    return env.last_snapshot_rc = ok ? 0 : -1;
}

static void restore_row(void *arg, const char *key, const void *value, size_t len,
                        uint64_t at_ms, const char *source)
{
    size_t *kept = arg;
    char why[256];
    if (strlen(key) > ENV_KEY_MAX || len > ENV_VALUE_MAX ||
        env_rule_check(env_rule_for(&env.conf, key), value, len, why, sizeof why) < 0) {
        log_warn("environment: snapshot key '%.64s' dropped: no longer valid", key);
        return;
    }
    struct env_update *u = update_new(ENV_OP_SET, key, value, len, source);
    if (!u)
        return;
    u->at_ms = at_ms;
    int changed;
    struct env_entry probe = {.at_ms = at_ms, .max_age_ms = max_age_for(key)};
    if (env_entry_stale(&probe, clock_now_ms()))
        metrics_add(env.m.expired, 1); /* went stale while the host was down */
    else if (store(u, &changed) == GGL_OK)
        (*kept)++;
    free(u);
}

static int open_snapshot(struct conf_error *err)
{
    if (!env.conf.snapshot_path[0])
        return 0;
    if (!(env.snap = env_snap_open(env.conf.snapshot_path, err->msg, sizeof err->msg)))
        return -1;
    size_t kept = 0;
    long rows = env_snap_load(env.snap, restore_row, &kept);
    log_info("environment: restored %zu of %ld keys from %s", kept, rows < 0 ? 0 : rows,
             env.conf.snapshot_path);
    env_history_clear(); /* the restore is not an update anyone made */
    return 0;
}

/* --- lifecycle ------------------------------------------------------------------ */

int environment_check_config(const struct config *c, struct conf_error *err)
{
    struct env_conf ec;
    if (env_conf_read(c, &ec, err) < 0)
        return -1;
    env_conf_free(&ec);
    return 0;
}

static void register_metrics(void)
{
#define EM(field, type, name, help) env.m.field = metrics_register_in("environment", type, name, help, NULL)
    EM(updates, GGL_METRIC_COUNTER, "environment_updates", "state updates applied");
    EM(rejected, GGL_METRIC_COUNTER, "environment_rejected", "updates refused by a rule (-INVALID)");
    EM(busy, GGL_METRIC_COUNTER, "environment_queue_full", "updates refused: queue full (-BUSY)");
    EM(full, GGL_METRIC_COUNTER, "environment_keys_full", "new keys refused: max_keys reached");
    EM(expired, GGL_METRIC_COUNTER, "environment_expired", "keys removed after max_age_ms");
    EM(keys, GGL_METRIC_GAUGE, "environment_keys", "keys in the state");
    EM(queue, GGL_METRIC_GAUGE, "environment_queue", "updates waiting to be applied");
    EM(snapshots, GGL_METRIC_COUNTER, "environment_snapshots", "snapshots written");
    EM(snapshot_failures, GGL_METRIC_COUNTER, "environment_snapshot_failures", "snapshots that failed");
    EM(watchers, GGL_METRIC_GAUGE, "environment_watchers", "STATE.WATCH requests parked");
    EM(watch_refused, GGL_METRIC_COUNTER, "environment_watch_refused", "watches refused: max_watchers");
#undef EM
}

static int alloc_tables(void)
{
    env.n_buckets = 64;
    while (env.n_buckets < (size_t)env.conf.max_keys && env.n_buckets < (1u << 20))
        env.n_buckets <<= 1;
    env.q_cap = (size_t)env.conf.queue_capacity + ENV_OP_RESERVE;
    env.buckets = calloc(env.n_buckets, sizeof *env.buckets);
    env.ring = calloc(env.q_cap, sizeof *env.ring);
    return env.buckets && env.ring && env_watch_init() == 0 && env_history_init() == 0 ? 0 : -1;
}

int environment_start(const struct config *c, struct instance *inst, size_t n,
                      struct conf_error *err)
{
    memset(&env, 0, sizeof env);
    if (env_conf_read(c, &env.conf, err) < 0)
        return -1;
    pthread_mutex_init(&env.lock, NULL);
    pthread_mutex_init(&env.qlock, NULL);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&env.q_work, &attr);
    pthread_condattr_destroy(&attr);
    register_metrics();
    env.inited = 1;
    if (alloc_tables() < 0) {
        snprintf(err->msg, sizeof err->msg, "environment: out of memory");
        goto fail;
    }
    if (open_snapshot(err) < 0)
        goto fail;
    size_t restored = env.n_keys; /* before the threads start changing it */
    uint64_t now = clock_now_ms();
    env.sweep_every = sweep_period();
    env.next_sweep = now + env.sweep_every;
    env.next_snapshot = now + (uint64_t)env.conf.snapshot_interval_ms;
    env.running = env.accepting = 1;
    if (pthread_create(&env.thread, NULL, applier_main, NULL) != 0) {
        snprintf(err->msg, sizeof err->msg, "environment: cannot start the applier thread");
        env.running = env.accepting = 0;
        goto fail;
    }
    env.thread_started = 1;
    if (sensors_start(inst, n, &env.conf, err) < 0)
        goto fail;
    log_info("environment: %zu rules, %zu keys, snapshots %s", env.conf.n_rules, restored,
             env.snap ? env.conf.snapshot_path : "off");
    return 0;
fail:
    environment_stop();
    return -1;
}

int environment_ready(void) { return env.running; }
const struct env_conf *environment_conf(void) { return &env.conf; }

void environment_stop(void)
{
    if (!env.inited)
        return;
    sensors_stop();
    env_release_watches("ERR shutting down");
    pthread_mutex_lock(&env.qlock);
    env.accepting = 0;
    env.stopping = 1;
    pthread_cond_signal(&env.q_work);
    pthread_mutex_unlock(&env.qlock);
    if (env.thread_started)
        pthread_join(env.thread, NULL); /* it applies what is queued first */
    env.running = 0;
    if (env.snap && env_snapshot_write() == 0)
        log_info("environment: final snapshot of %zu keys in %s", env.n_keys, env.conf.snapshot_path);
    env_snap_close(env.snap);
    for (size_t b = 0; env.buckets && b < env.n_buckets; b++)
        for (struct env_entry *e = env.buckets[b], *next; e; e = next) {
            next = e->next;
            free(e->key);
            free(e->value);
            free(e);
        }
    free(env.buckets);
    free(env.ring);
    env_watch_fini();
    env_history_fini();
    env_conf_free(&env.conf);
    pthread_mutex_destroy(&env.lock);
    pthread_mutex_destroy(&env.qlock);
    pthread_cond_destroy(&env.q_work);
    memset(&env, 0, sizeof env);
}
