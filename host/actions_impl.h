/* Inside the action system: the action record and the system's state, shared by
 * actions.c (admission, execution, retries, shutdown) and action_feedback.c (feedback
 * threads, latency samples, INFO). */
#ifndef GGL_HOST_ACTIONS_IMPL_H
#define GGL_HOST_ACTIONS_IMPL_H

#include <pthread.h>
#include <stdatomic.h>

#include "action_dead.h"
#include "action_dedup.h"
#include "actions.h"
#include "backoff.h"
#include "results.h"

#define LAT_SAMPLES 4096 /* recent samples behind the p50/p99 lines */

/* One executor instance as the system calls it.  PLUGIN.RELOAD may replace the impl
 * behind a slot (action_swap.c); a call holds a reference on the impl it started on.
 * One counter, not striped: an action costs far more than its increment. */
struct exec_impl {
    struct action_executor ex;
    pthread_mutex_t serial; /* taken around execute() unless GGL_READS_CONCURRENT */
    int concurrent;
    _Atomic long refs;
    _Atomic int stuck;      /* workers abandoned in it and not back: at EXEC_MAX_STUCK,
                             * its actions fail until one returns or it is replaced */
    struct exec_impl *next; /* every impl ever bound, freed with the system */
};

/* A hung executor would take one more worker with each action it is given: with this
 * many of its calls stuck past their timeout it gets no more (the engine refuses a
 * processor at its first). */
#define EXEC_MAX_STUCK 2

struct executor_slot {
    _Atomic(struct exec_impl *) cur;
};

/* An execution worker.  `current` and `abandoned` are under the system's watch_lock. */
struct worker {
    struct actions *s;
    pthread_t thread;
    struct act *current;         /* running now, or NULL */
    struct exec_impl *impl;      /* ... on this executor */
    uint64_t deadline_ms;        /* host clock: past it (timeout + abandon grace) it is stuck */
    int abandoned;
    struct worker *next;         /* the system's list of every worker started */
};

/* One admitted action, one allocation with its name, key and payload after it.  It
 * counts against the queue capacity from admission until its feedback is delivered. */
struct act {
    struct act *next;            /* feedback list */
    uint64_t id;
    struct action_spec spec;     /* points into the allocation */
    struct executor_slot *exec;
    uint32_t attempt;
    ggl_done_fn done;
    void *arg;
    uint64_t ready_us;           /* monotonic: when it last became ready (queue wait) */
    int in_retry;                /* waiting in the queue's due-time heap */
    int feedback_only;           /* a repeat's copy of a finished first result */
    int followers_of_key;        /* the first action of its key: deliver to repeats */
    enum result_status status;   /* the outcome, for feedback */
    void *data;                  /* malloc'd output */
    size_t len;
    char reason[256];
};

struct latency {
    pthread_mutex_t lock;
    uint32_t us[LAT_SAMPLES];
    size_t n, next;
};

struct actions {
    struct actions_conf conf;
    struct backoff backoff;
    struct queue *q;
    size_t capacity, reserve;
    _Atomic size_t live;         /* admitted, feedback not yet delivered */
    _Atomic size_t retry_depth;  /* waiting for their retry's due time */
    _Atomic int abort_ready;     /* shutdown deadline passed: cancel instead of running */
    _Atomic int stopping;        /* admission closed */
    int leaked;                  /* workers stuck at shutdown: never freed */
    int feedback_configured;     /* outcomes go to memory or state */
    int bus;                     /* the orchestrator ran at start: outcomes go on its bus */
    struct results *results;
    struct dead_list *dead;
    struct dedup *dedup;
    struct executor_slot *execs;
    size_t n_execs;
    struct exec_impl *impls;     /* all of them (action_swap.c); swap_lock guards adding */
    pthread_t *feeders;
    unsigned n_workers, n_feeders;
    /* workers and the watchdog that abandons a worker stuck past its action's timeout */
    pthread_mutex_t watch_lock;
    pthread_cond_t watch_cond;
    pthread_t watchdog;
    int have_watchdog, watch_stop;
    struct worker *wlist;
    unsigned abandoned_alive;    /* abandoned workers still inside an executor (fb_lock) */
    /* feedback list and the live count's waiters */
    pthread_mutex_t fb_lock;
    pthread_cond_t fb_cond, idle_cond;
    struct act *fb_head, *fb_tail;
    int fb_closed, running_workers;
    struct ggl_host state_host; /* the services table whose state_set feedback calls */
    struct latency exec_lat, wait_lat;
    struct ggl_metric *m_abandoned, *m_submitted, *m_completed, *m_failed, *m_retried, *m_dead, *m_dedup,
        *m_refused, *m_timeouts, *m_cancelled, *m_dead_dropped, *m_fb_mem, *m_fb_mem_failed,
        *m_fb_state, *m_fb_state_unavailable, *m_callbacks;
};

extern struct actions *actions_sys;

uint64_t actions_mono_us(void);
/* action_feedback.c */
int feedback_start(struct actions *s, unsigned n);
void feedback_push(struct actions *s, struct act *a);
void feedback_stop(struct actions *s);
void latency_add(struct latency *l, uint64_t us);
/* Free the act and give its capacity back. */
void act_release(struct actions *s, struct act *a);
/* actions.c for action_watchdog.c */
struct act *act_clone(struct actions *s, const struct act *a);
int action_take(struct actions *s, struct worker *w, struct act *a); /* 0: w was abandoned */
void action_timed_out(struct actions *s, struct act *a, const char *reason);
void executors_thread(struct actions *s, int init);
/* action_swap.c: a reference on the impl behind e, its release; a new impl. */
struct exec_impl *exec_get(struct executor_slot *e);
void exec_put(struct exec_impl *x);
struct exec_impl *exec_impl_new(struct actions *s, const struct action_executor *ex);
/* action_watchdog.c */
int workers_start(struct actions *s, unsigned n);
void workers_stop(struct actions *s);
void workers_free(struct actions *s);
void watch_begin(struct actions *s, struct worker *w, struct act *a, struct exec_impl *x,
                 uint64_t now_ms);
int watch_end(struct actions *s, struct worker *w); /* 1: abandoned meanwhile */
void watch_kick(struct actions *s);

#endif
