/* The orchestrator (seed section 4): the one routing point between components, and the
 * agent state.  Components publish messages to the bus and subscribe handlers by topic;
 * none calls another's internals.  Publishing copies the message into a bounded queue
 * and returns at once (full: GGL_RETRY, counted in orchestrator_dropped); one dispatcher
 * thread calls the subscribers in publication order.  A queue and a thread rather than
 * calls on the publisher's thread: a publisher (the environment's applier, an action
 * worker) never runs foreign code while holding its own locks, and a handler that
 * publishes again cannot recurse.  Handlers run on the dispatcher and must not block.
 *
 * Topics (payloads are text; "JSON" means one JSON object):
 *   state.changed   source: the update's source  key: state key  payload: new value.
 *                   Published by the orchestrator for every environment update that
 *                   changed a value.
 *   state.removed   source: "expired"  key: state key  payload: empty.  A stale key went.
 *   agent.changed   source: who set it  key: goal | step | last_outcome  payload: value.
 *   action.outcome  source: "actions"  key: the action id (decimal)
 *                   payload: JSON {"id", "action": name, "status": "ok"|"failed"|...,
 *                   "attempts", "reason", "at_ms"} — as memory feedback stores it.
 *                   Published for every finished action (action_feedback.c); the
 *                   orchestrator stores it as the agent's last_outcome (first
 *                   ORCH_VALUE_MAX bytes).
 *   task.done       source: the processing engine  key: the task id (decimal)
 *                   payload: JSON {"type": task type, "status": ..., "result": ...}.
 *                   To be published by the engine; a subscriber may turn it into an action.
 * Subscribing to "state.*" (a trailing '*') receives every topic with that prefix. */
#ifndef GGL_HOST_ORCHESTRATOR_H
#define GGL_HOST_ORCHESTRATOR_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <ganglion/abi.h>

#define ORCH_QUEUE_CAPACITY 4096 /* messages waiting for the dispatcher */
#define ORCH_MAX_SUBSCRIBERS 64
#define ORCH_TOPIC_MAX 64
#define ORCH_VALUE_MAX 512      /* bytes of an agent state field */

struct orch_msg {
    const char *topic;          /* e.g. "action.outcome" */
    const char *source;         /* who published, e.g. "tier/mem[stm]", "client" */
    const char *key;            /* the subject: a state key, an action or task id; may be "" */
    const char *payload;
    size_t payload_len;
    uint64_t at_ms;             /* host clock at publication (set by publish) */
};

typedef void (*orch_handler_fn)(void *arg, const struct orch_msg *m);

/* Start the dispatcher, restore the agent state from the environment (agent.* keys)
 * and observe the environment to publish state.* messages.  -1 with err filled. */
struct conf_error;
int orchestrator_start(struct conf_error *err);
/* Dispatch what is queued, then stop. */
void orchestrator_stop(void);

/* Is the bus taking messages? */
int orchestrator_running(void);
/* Queue a copy of m.  GGL_OK, GGL_RETRY when full, GGL_UNAVAILABLE when stopped,
 * GGL_INVALID for an empty or too long topic. */
enum ggl_status orchestrator_publish(const struct orch_msg *m);
/* Call fn for every message whose topic is `topic` (or starts with it, for "x.*").
 * Returns an id >= 0, or -1 when ORCH_MAX_SUBSCRIBERS are taken. */
int orchestrator_subscribe(const char *topic, orch_handler_fn fn, void *arg);
void orchestrator_unsubscribe(int id);
/* Does any subscriber take `topic`?  (Publishers of frequent messages check it now and
 * then instead of publishing into the void.) */
int orchestrator_wanted(const char *topic);
/* Wait until everything published before the call has been dispatched (tests). */
void orchestrator_drain(void);

/* The agent state: what the agent is doing. */
struct agent_state {
    char goal[ORCH_VALUE_MAX];
    char step[ORCH_VALUE_MAX];
    char last_outcome[ORCH_VALUE_MAX];
    char outcome_source[96];
    uint64_t updated_at_ms;     /* 0: never set */
};

void orchestrator_agent_state(struct agent_state *out);
/* Set goal, step or last_outcome: recorded here, mirrored to the environment as
 * "agent.<field>" (so it is snapshotted and watchable) and published as agent.changed.
 * GGL_INVALID for another field or a value the environment's rules refuse. */
enum ggl_status orchestrator_agent_set(const char *field, const char *value, size_t len,
                                       const char *source);
void orchestrator_info(FILE *f);

#endif
