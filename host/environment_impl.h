/* Private to the environment (environment.c, environment_watch.c): the state table,
 * the update ring and the applier's bookkeeping. */
#ifndef GGL_HOST_ENVIRONMENT_IMPL_H
#define GGL_HOST_ENVIRONMENT_IMPL_H

#include <pthread.h>

#include "environment.h"
#include "environment_snap.h"
#include "metrics.h"

enum env_op { ENV_OP_SET, ENV_OP_BARRIER, ENV_OP_HOUSEKEEP, ENV_OP_SNAPSHOT };

struct env_update {             /* key and value follow in the same allocation */
    enum env_op op;
    char *key, *value;
    size_t len;
    char source[ENV_SOURCE_MAX];
    uint64_t at_ms;             /* host clock at admission */
    env_done_fn done;
    void *arg;
};

struct env_entry {
    struct env_entry *next;
    char *key, *value;
    size_t len;
    uint64_t at_ms;
    int64_t max_age_ms;         /* 0: never stale */
    char source[ENV_SOURCE_MAX];
};

struct env {
    struct env_conf conf;
    int inited, running, accepting, stopping, thread_started;
    pthread_mutex_t lock;       /* table, history, watches, observers */
    pthread_mutex_t qlock;      /* the ring */
    pthread_cond_t q_work;      /* the applier waits here (CLOCK_MONOTONIC) */
    struct env_update **ring;
    size_t q_head, q_count, q_cap;
    pthread_t thread;
    struct env_entry **buckets;
    size_t n_buckets, n_keys;
    struct env_snap *snap;
    uint64_t sweep_every, next_sweep, next_snapshot;
    int last_snapshot_rc;
    struct {
        struct ggl_metric *updates, *rejected, *busy, *full, *expired, *keys, *queue, *snapshots,
            *snapshot_failures, *watchers, *watch_refused;
    } m;
};

extern struct env env;

struct env_entry *env_find(const char *key);
int env_entry_stale(const struct env_entry *e, uint64_t now);
enum ggl_status env_enqueue_op(enum env_op op, env_done_fn done, void *arg);
void env_housekeep_now(uint64_t now);
int env_snapshot_write(void);
void env_kick(void);

/* environment_watch.c */
int env_watch_init(void);
void env_watch_fini(void);
int env_history_init(void);
void env_history_fini(void);
void env_history_clear(void);
void env_history_add_locked(const char *key, const char *value, size_t len, const char *source,
                            uint64_t at_ms);
/* Applier thread, no lock held: observers, then the watches the change fires. */
void env_notify(const struct env_change *c);
void env_expire_watches(uint64_t now);
uint64_t env_next_watch_deadline(void);
void env_release_watches(const char *why);

#endif
