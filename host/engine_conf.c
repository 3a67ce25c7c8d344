/* The `engine` section of the config: every key with its default, range and meaning,
 * the `weights` list ("type:weight, ..."), and the processing pool's workers and the seed
 * types' base weights taken from the pools plan (sizing.c). */
#include "ggl-build.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine_conf.h"

struct engine_keys {
    int64_t queue_capacity, critical_reserve, age_ms, max_results, max_waiters, max_result_bytes,
        result_ttl_ms, default_timeout_ms, stuck_grace_ms, max_retries, backoff_base_ms,
        backoff_max_ms, monitor_ms, idle_ms, grow_depth, drain_ms;
    const char *weights;
    int result_evict;
};

#define K(name, def, min, max, help) \
    {#name, GGL_SETTING_INT, offsetof(struct engine_keys, name), def, min, max, help}
static const struct conf_key engine_keys[] = {
    K(queue_capacity, "4096", 1, 1e7, "tasks admitted and unfinished per type; more get -BUSY"),
    K(critical_reserve, "64", 0, 1e6, "queue slots of each type only CRITICAL tasks may take"),
    K(age_ms, "1000", 0, 1e9, "ageing step: a task gains a priority level per step waited"),
    K(max_results, "65536", 1, 1e8, "task ids held (pending + finished); more get -BUSY"),
    K(max_waiters, "1024", 0, 1e6, "parked TASK.RESULT ... WAIT requests; more get -BUSY"),
    K(max_result_bytes, "1048576", 0, 1e9, "bytes of one result kept (larger: failed)"),
    K(result_ttl_ms, "300000", 1, 1e12, "how long a finished result stays readable"),
    K(default_timeout_ms, "30000", 0, 1e12, "deadline of a task submitted without TIMEOUT (0: none)"),
    K(stuck_grace_ms, "5000", 0, 1e9, "a worker still in a task this long past its deadline is "
                                      "abandoned and replaced, its processor marked failed"),
    K(max_retries, "3", 0, 100, "default and upper bound of a task's retries after GGL_RETRY"),
    K(backoff_base_ms, "100", 0, 1e9, "retry k waits between d/2 and d, d = min(max, base * 2^k)"),
    K(backoff_max_ms, "10000", 0, 1e12, "cap of the retry backoff step"),
    K(monitor_ms, "100", 1, 60000, "monitor period: timeouts, rebalancing, grow/shrink"),
    K(idle_ms, "30000", 1, 1e12, "a worker above the pool's size idle this long retires"),
    K(grow_depth, "4", 0, 1e6, "grow when more tasks than this are queued per worker"),
    K(drain_ms, "5000", 0, 1e9, "at shutdown, how long queued tasks may still run"),
    {"result_evict", GGL_SETTING_BOOL, offsetof(struct engine_keys, result_evict), "true", 0, 0,
     "full result store: evict the oldest finished result (counted) rather than refuse tasks"},
    {"weights", GGL_SETTING_STRING, offsetof(struct engine_keys, weights), "", 0, 0,
     "base weights by type, e.g. \"reasoning:4, exec:1\" (seed types: the pools section)"},
};
#undef K

/* "type:weight, type:weight" into cfg->weights (after the seed defaults). */
static int parse_weights(const char *text, struct engine_config *cfg, const struct config *c,
                         const config_setting_t *at, struct conf_error *err)
{
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", text ? text : "");
    for (char *save = NULL, *item = strtok_r(buf, ", ", &save); item;
         item = strtok_r(NULL, ", ", &save)) {
        char *colon = strchr(item, ':'), *end = NULL;
        long w = colon ? strtol(colon + 1, &end, 10) : 0;
        if (!colon || colon == item || !end || *end || w < 1 || w > 1000 ||
            (size_t)(colon - item) >= ENGINE_TYPE_NAME) {
            config_error_at(err, c, at, "engine.weights wants \"type:weight, ...\" with weights "
                                        "1..1000 and types < %d bytes (at '%.40s')",
                            ENGINE_TYPE_NAME, item);
            return -1;
        }
        *colon = '\0';
        size_t i = 0;
        while (i < cfg->n_weights && strcmp(cfg->weights[i].type, item) != 0)
            i++;
        if (i == ENGINE_MAX_TYPES) {
            config_error_at(err, c, at, "engine.weights: at most %d types", ENGINE_MAX_TYPES);
            return -1;
        }
        snprintf(cfg->weights[i].type, ENGINE_TYPE_NAME, "%s", item);
        cfg->weights[i].weight = (unsigned)w;
        cfg->n_weights += i == cfg->n_weights;
    }
    return 0;
}

int engine_read_config(const struct config *c, const struct sizing *s, struct engine_config *cfg,
                       uint64_t *drain_ms, struct conf_error *err)
{
    const config_setting_t *sec = c ? c->engine : NULL;
    struct engine_keys k;
    if (config_read_section(c, sec, engine_keys, sizeof engine_keys / sizeof engine_keys[0], &k,
                            err) < 0)
        return -1;
    if (k.critical_reserve >= k.queue_capacity || k.backoff_max_ms < k.backoff_base_ms) {
        config_error_at(err, c, sec, "engine: critical_reserve must be below queue_capacity and "
                                     "backoff_max_ms at least backoff_base_ms");
        return -1;
    }
    engine_config_defaults(cfg);
    *cfg = (struct engine_config){
        .queue_capacity = (size_t)k.queue_capacity, .critical_reserve = (size_t)k.critical_reserve,
        .age_ms = (uint64_t)k.age_ms, .max_results = (size_t)k.max_results,
        .max_waiters = (size_t)k.max_waiters, .max_result_bytes = (size_t)k.max_result_bytes,
        .result_ttl_ms = (uint64_t)k.result_ttl_ms,
        .default_timeout_ms = (uint64_t)k.default_timeout_ms,
        .stuck_grace_ms = (uint64_t)k.stuck_grace_ms, .max_retries = (unsigned)k.max_retries,
        .backoff = {(uint64_t)k.backoff_base_ms, (uint64_t)k.backoff_max_ms},
        .min_workers = 1, .max_workers = 4, .grow_depth = (unsigned)k.grow_depth,
        .idle_ms = (uint64_t)k.idle_ms, .monitor_ms = (uint64_t)k.monitor_ms, .timer_threads = 1,
        .evict_results = k.result_evict};
    if (s) { /* the processing pool's size and the seed types' weights from the plan */
        cfg->min_workers = s->pool[POOL_PROCESSING].size;
        cfg->max_workers = s->pool[POOL_PROCESSING].max;
        for (int t = 0; t < PROC_TYPES; t++) {
            snprintf(cfg->weights[t].type, ENGINE_TYPE_NAME, "%s", proc_type_names[t]);
            cfg->weights[t].weight = s->weight[t];
        }
        cfg->n_weights = PROC_TYPES;
    }
    if (drain_ms)
        *drain_ms = (uint64_t)k.drain_ms;
    return parse_weights(k.weights, cfg, c, sec ? config_setting_get_member(sec, "weights") : NULL,
                         err);
}
