/* The action system's dead letters: actions that failed for good (retries exhausted,
 * invalid, an error), each with its last reason and a copy of what was submitted so
 * ACTION.REPLAY can run it again.  A bounded ring: when full the oldest letter is
 * dropped and counted (actions_dead_dropped), never the newest. */
#ifndef GGL_HOST_ACTION_DEAD_H
#define GGL_HOST_ACTION_DEAD_H

#include <stddef.h>
#include <stdint.h>

/* What was submitted: everything a replay needs.  Strings and payload are owned by
 * whoever holds the spec (borrowed when passed in). */
struct action_spec {
    const char *name;
    const void *payload;
    size_t payload_len;
    uint32_t priority, max_retries;
    uint64_t timeout_ms;
    const char *key; /* NULL: none */
};

struct dead_letter {
    uint64_t id;
    uint32_t attempts;
    uint64_t died_ms;   /* host clock */
    char reason[256];
    struct action_spec spec; /* points into the letter's own copy */
};

struct dead_list;

struct dead_list *dead_new(size_t capacity);
void dead_free(struct dead_list *d);
/* Add a letter (spec and reason copied).  Returns 1 when the oldest was dropped for it,
 * 0 when it fit, -1 when out of memory (not added). */
int dead_add(struct dead_list *d, uint64_t id, uint32_t attempts, uint64_t died_ms,
             const char *reason, const struct action_spec *spec);
/* Up to max letters, newest first, as copies (dead_letter_free each). */
size_t dead_list(struct dead_list *d, struct dead_letter **out, size_t max);
/* Remove the letter of `id` and hand it over (NULL when none). */
struct dead_letter *dead_take(struct dead_list *d, uint64_t id);
/* Put back a letter taken by dead_take (a replay that was refused), as the newest. */
void dead_put_back(struct dead_list *d, struct dead_letter *l);
void dead_letter_free(struct dead_letter *l);
size_t dead_count(struct dead_list *d);

#endif
