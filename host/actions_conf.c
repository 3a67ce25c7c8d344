/* The `actions` config section: every key with its default, range and meaning, and the
 * checks across keys.  Unknown keys are errors with FILE:LINE, as in every section. */
#include "ggl-build.h"

#include <stddef.h>

#include "actions.h"

#define KEY(name, field, def, min, max, help) \
    {name, GGL_SETTING_INT, offsetof(struct actions_conf, field), def, min, max, help}

static const struct conf_key action_keys[] = {
    KEY("default_timeout_ms", default_timeout_ms, "30000", 1, 86400000,
        "timeout of an action that names none"),
    KEY("max_timeout_ms", max_timeout_ms, "600000", 1, 86400000, "longest timeout accepted"),
    KEY("default_retries", default_retries, "3", 0, 1000, "retries of an action that names none"),
    KEY("max_retries", max_retries, "20", 0, 1000, "most retries an action may ask for"),
    KEY("backoff_base_ms", backoff_base_ms, "100", 0, 3600000,
        "first retry waits base/2..base; each retry doubles it"),
    KEY("backoff_max_ms", backoff_max_ms, "30000", 1, 86400000, "cap on the doubled delay"),
    KEY("max_payload", max_payload, "1048576", 1, 1073741824, "largest payload accepted, bytes"),
    KEY("results_max", results_max, "100000", 1, 1e8,
        "action ids held (pending and finished); beyond that -BUSY"),
    KEY("result_ttl_ms", result_ttl_ms, "600000", 1, 1e12, "how long a result stays readable"),
    KEY("max_waiters", max_waiters, "1024", 1, 1e6, "parked ACTION.RESULT WAIT requests"),
    KEY("max_result_bytes", max_result_bytes, "1048576", 1, 1073741824,
        "a longer output is stored as a failure saying so"),
    KEY("dead_max", dead_max, "1000", 1, 1e7, "dead letters kept; the oldest goes first"),
    KEY("dedup_max", dedup_max, "100000", 1, 1e8,
        "idempotency keys held; a new key beyond that is -BUSY"),
    KEY("dedup_window_ms", dedup_window_ms, "600000", 1, 1e12,
        "a repeated key within this window returns the first action (<= result_ttl_ms)"),
    {"feedback_memory_prefix", GGL_SETTING_STRING, offsetof(struct actions_conf, feedback_memory_prefix),
     "", 0, 0, "write each outcome to memory as PREFIX<id> (\"\": off)"},
    KEY("feedback_memory_ttl_ms", feedback_memory_ttl_ms, "0", 0, 1e12,
        "TTL of those entries (0: the tier's)"),
    {"feedback_state_prefix", GGL_SETTING_STRING, offsetof(struct actions_conf, feedback_state_prefix),
     "", 0, 0, "set environment state PREFIX<name> to each outcome (\"\": off)"},
    KEY("shutdown_deadline_ms", shutdown_deadline_ms, "5000", 0, 3600000,
        "at shutdown, ready actions run until this passes; the rest are cancelled"),
    KEY("abandon_grace_ms", abandon_grace_ms, "5000", 0, 3600000,
        "a worker still inside an executor this long past the timeout is abandoned"),
    KEY("watchdog_ms", watchdog_ms, "1000", 10, 3600000, "how often stuck workers are looked for"),
};

int actions_read_config(const struct config *c, struct actions_conf *ac, struct conf_error *err)
{
    const config_setting_t *s = c ? config_setting_get_member(config_root_setting(&c->cfg), "actions")
                                  : NULL;
    *ac = (struct actions_conf){.timer_thread = 1};
    if (config_read_section(c, s, action_keys, sizeof action_keys / sizeof action_keys[0], ac,
                            err) < 0)
        return -1;
    /* Each rule names the key whose line the error points at. */
    const struct {
        int broken;
        const char *key, *what;
    } rules[] = {{ac->default_timeout_ms > ac->max_timeout_ms, "default_timeout_ms", "exceeds max_timeout_ms"},
                 {ac->default_retries > ac->max_retries, "default_retries", "exceeds max_retries"},
                 {ac->dedup_window_ms > ac->result_ttl_ms, "dedup_window_ms",
                  "exceeds result_ttl_ms (a repeat must still find the first result)"}};
    for (size_t i = 0; i < sizeof rules / sizeof rules[0]; i++)
        if (rules[i].broken) {
            const config_setting_t *at = s ? config_setting_get_member(s, rules[i].key) : NULL;
            config_error_at(err, c, at ? at : s, "actions: %s %s", rules[i].key, rules[i].what);
            return -1;
        }
    return 0;
}
