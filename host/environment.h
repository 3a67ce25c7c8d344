/* The environment (seed section 5): the agent's view of the world as key -> text value
 * with the time and source of its last update.  Updates are validated at admission
 * against per-key rules from config, queued (bounded) and applied in order by one
 * applier thread, which also records a bounded history, notifies observers and parked
 * watchers, removes stale keys and writes SQLite snapshots. */
#ifndef GGL_HOST_ENVIRONMENT_H
#define GGL_HOST_ENVIRONMENT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "config.h"
#include "instance.h"

#define ENV_KEY_MAX 256         /* bytes of a key, NUL excluded */
#define ENV_VALUE_MAX 65536     /* bytes of a value */
#define ENV_SOURCE_MAX 96       /* bytes of a source label kept */
#define ENV_MAX_OBSERVERS 32    /* C API observers at once; more: -1 */

enum rule_type { RULE_STRING, RULE_INT, RULE_FLOAT, RULE_BOOL };

/* A validation rule for a key, or for every key under a prefix ("proc.*"). */
struct env_rule {
    const char *key;            /* exact key, or a prefix when it ends in '*' */
    enum rule_type type;
    int has_min, has_max;
    double min, max;
    const char **allowed;       /* NULL-terminated, or NULL: any */
    int64_t max_age_ms;         /* 0: the section's max_age_ms */
};

struct env_conf {
    const char *snapshot_path;  /* "" : no snapshots */
    int64_t snapshot_interval_ms;
    int64_t history;            /* updates kept for STATE.HISTORY */
    int64_t max_age_ms;         /* a key not updated for this long is removed; 0: never */
    int64_t max_keys;
    int64_t queue_capacity;     /* updates waiting to be applied; more: GGL_RETRY */
    int64_t max_watchers;       /* parked watches at once; more: GGL_RETRY */
    int64_t watch_max_ms;       /* longest STATE.WATCH timeout */
    int64_t sensor_backoff_after;   /* consecutive failures before a sensor backs off */
    int64_t sensor_backoff_max_ms;  /* longest backed-off sensor interval */
    struct env_rule *rules;
    size_t n_rules;
};

/* One applied update, as observers see it (borrowed for the call). */
struct env_change {
    const char *key;
    const char *value;          /* NULL: the key was removed (stale) */
    size_t value_len;
    const char *source;
    uint64_t at_ms;
    int changed;                /* the value differs from the one it replaced */
};

/* Observers run on the applier thread after each update and must not block (queue the
 * work elsewhere: orchestrator_publish does). */
typedef void (*env_observer_fn)(void *arg, const struct env_change *c);
/* A parked watch fires once: on a change under its key (c != NULL), at its deadline or
 * at release (c == NULL; `why` says which). */
typedef void (*env_watch_fn)(void *arg, const struct env_change *c, const char *why);
/* Completion of a queued update, on the applier thread: GGL_OK applied, GGL_RETRY the
 * table is full of other keys. */
typedef void (*env_done_fn)(void *arg, enum ggl_status st);

/* Read and check the `environment { }` section (what `ganglion -t` runs). */
int environment_check_config(const struct config *c, struct conf_error *err);
/* Read the section, restore the snapshot, start the applier and the sensors of inst[n]
 * (the open ones).  -1 with err filled on failure. */
int environment_start(const struct config *c, struct instance *inst, size_t n,
                      struct conf_error *err);
/* Answer every parked watch and refuse new ones (before the control socket drains). */
void environment_release_watches(void);
/* Stop the sensors, apply what is queued, write the final snapshot, free everything. */
void environment_stop(void);
int environment_ready(void);

/* Queue an update.  GGL_OK queued (done, if given, runs once applied), GGL_INVALID the
 * rule refuses it (reason left with hostapi_set_reason, counted), GGL_RETRY the queue is
 * full (counted), GGL_UNAVAILABLE not started. */
enum ggl_status environment_set(const char *key, const char *value, size_t len,
                                const char *source, env_done_fn done, void *arg);
/* Queue a no-op behind every queued update: done runs once they are applied. */
enum ggl_status environment_barrier(env_done_fn done, void *arg);
/* The current value (malloc'ed, NUL-terminated), GGL_NOTFOUND when absent or stale.
 * Optional: when it was set and by whom. */
enum ggl_status environment_get(const char *key, char **value, size_t *len, uint64_t *at_ms,
                                char *source, size_t source_len);
/* Every key, sorted, with its value: fn called under the state lock (must not block). */
size_t environment_foreach(void (*fn)(void *arg, const char *key, const char *value, size_t len),
                           void *arg);
/* The last n updates, oldest first: fn called under the history lock. */
size_t environment_history(size_t n, void (*fn)(void *arg, const struct env_change *c), void *arg);

/* Observers of every update to a key starting with `prefix` ("" for all).  Returns an
 * id >= 0, or -1 when ENV_MAX_OBSERVERS are registered. */
int environment_observe(const char *prefix, env_observer_fn fn, void *arg);
void environment_unobserve(int id);
/* Park a watch on `key` (or prefix "k*") until it changes or deadline_ms passes on the
 * host clock.  GGL_RETRY when max_watchers are parked, GGL_UNAVAILABLE once released. */
enum ggl_status environment_watch(const char *key, uint64_t deadline_ms, env_watch_fn fn,
                                  void *arg);

/* Run the applier's timed work now (stale keys, expired watches, a due snapshot): for
 * tests that move the fake clock.  Blocks until it ran. */
void environment_housekeep(void);
/* Write a snapshot now.  0, or -1 (logged). */
int environment_snapshot(void);
/* INFO environment: rules, keys, sensors. */
void environment_info(FILE *f);
const struct env_conf *environment_conf(void);

/* environment_conf.c: the section and its rules; value checks against them. */
int env_conf_read(const struct config *c, struct env_conf *out, struct conf_error *err);
void env_conf_free(struct env_conf *ec);
const struct env_rule *env_rule_for(const struct env_conf *ec, const char *key);
/* 0 if value fits the rule (NULL rule: anything), else -1 with why filled. */
int env_rule_check(const struct env_rule *r, const char *value, size_t len, char *why,
                   size_t why_len);

#endif
