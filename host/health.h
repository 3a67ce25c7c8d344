/* Health: every component and plugin instance reports ok / degraded / failed with a
 * reason.  Checks are registered with their own interval and run on one health thread
 * (host clock); components may also push a state.  HEALTH renders the whole picture. */
#ifndef GGL_HOST_HEALTH_H
#define GGL_HOST_HEALTH_H

#include <stddef.h>
#include <stdint.h>

enum health_state { HEALTH_OK = 0, HEALTH_DEGRADED = 1, HEALTH_FAILED = 2 };

#define HEALTH_MAX 128       /* components; registrations beyond it are refused (-1) */
#define HEALTH_REASON 256

/* A check: the component's state now, with a reason unless ok.  Runs on the health
 * thread; must not block for long (a tier's health slot is bounded by its timeouts). */
typedef enum health_state (*health_check_fn)(void *arg, char *reason, size_t len);

struct health_entry {
    char name[96];
    enum health_state state;
    char reason[HEALTH_REASON];
    uint64_t checked_ms;     /* host clock of the last check or report; 0: never */
    uint64_t changes;        /* state transitions seen */
};

/* Register a check run every interval_ms (0: only on health_check_now).  The first run
 * happens on the next pass.  -1 when the table is full. */
int health_register(const char *name, health_check_fn fn, void *arg, uint64_t interval_ms);
/* Push a state (registers the name without a check if new).  A pushed HEALTH_FAILED
 * holds: the name's check no longer overrides it, only another push does. */
int health_report(const char *name, enum health_state st, const char *reason);
/* A plugin instance failed while running (a worker abandoned in its code): its entry
 * "plugin:<label>" turns failed and stays so. */
void health_plugin_failed(const char *label, const char *reason);
struct config;
struct conf_error;
struct health_settings {
    int64_t interval_ms;     /* how often the built-in checks run */
    double recover_ratio;    /* resource control (resource.c): leave shedding with this margin */
    const char *shed_priority; /* refuse this priority and below while shedding */
};
/* Read and check the `health` section (health_builtin.c). */
int health_read_config(const struct config *c, struct health_settings *s, struct conf_error *err);
/* Checks for every plugin instance and tier slot (health_builtin.c). */
void health_register_builtin(uint64_t interval_ms);
/* Checks of the engine, the action system and the environment, once they started. */
void health_register_components(void);
/* The plugin:LABEL check of one instance (a reload's replacement takes over the row). */
struct instance;
void health_register_instance(const struct instance *inst);

/* Run every check that is due on the host clock (all of them with force). */
void health_check_now(int force);
/* The health thread: runs due checks; wakes when the next one is due. */
int health_start(void);
void health_stop(void);
/* Forget every registration (shutdown, tests). */
void health_reset(void);

/* Copy up to max entries; returns how many exist; *overall is the worst state. */
size_t health_snapshot(struct health_entry *out, size_t max, enum health_state *overall);
const char *health_state_name(enum health_state st);

#endif
