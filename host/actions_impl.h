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

struct executor_slot {
    struct action_executor ex;
    pthread_mutex_t serial; /* taken around execute() unless GGL_READS_CONCURRENT */
    int concurrent;
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
    struct results *results;
    struct dead_list *dead;
    struct dedup *dedup;
    struct executor_slot *execs;
    size_t n_execs;
    pthread_t *workers, *feeders;
    unsigned n_workers, n_feeders;
    /* feedback list and the live count's waiters */
    pthread_mutex_t fb_lock;
    pthread_cond_t fb_cond, idle_cond;
    struct act *fb_head, *fb_tail;
    int fb_closed, running_workers;
    struct ggl_host state_host; /* the services table whose state_set feedback calls */
    struct latency exec_lat, wait_lat;
    struct ggl_metric *m_submitted, *m_completed, *m_failed, *m_retried, *m_dead, *m_dedup,
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

#endif
