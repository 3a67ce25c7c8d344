/* The `memory` section of the config: every key with its default, range and meaning,
 * and the checks across keys (maintenance interval against the TTLs, tier names in
 * `compress`). */
#include "ggl-build.h"

#include <stddef.h>
#include <string.h>

#include "memory.h"

static const struct conf_key memory_keys[] = {
    {"stm_ttl_ms", GGL_SETTING_INT, offsetof(struct memory_conf, stm_ttl_ms), "3600000", 1000,
     1e12, "default TTL of short-term memory"},
    {"im_ttl_ms", GGL_SETTING_INT, offsetof(struct memory_conf, im_ttl_ms), "86400000", 1000,
     1e12, "default TTL of intermediate memory"},
    {"tombstone_ttl_ms", GGL_SETTING_INT, offsetof(struct memory_conf, tombstone_ttl_ms),
     "86400000", 1000, 1e12, "how long a delete's tombstone shadows lower tiers"},
    {"max_in_flight", GGL_SETTING_INT, offsetof(struct memory_conf, max_in_flight), "256", 1,
     1e6, "tier calls in flight per slot; more answer RETRY"},
    {"breaker_threshold", GGL_SETTING_INT, offsetof(struct memory_conf, breaker_threshold), "5",
     1, 1e6, "consecutive failures that open a slot's circuit breaker"},
    {"breaker_cooldown_ms", GGL_SETTING_INT, offsetof(struct memory_conf, breaker_cooldown_ms),
     "1000", 1, 1e9, "how long an open breaker fails calls fast"},
    {"maintenance_interval_ms", GGL_SETTING_INT, offsetof(struct memory_conf, maintenance_interval_ms),
     "60000", 10, 1e12, "time between maintenance cycles; < half of every tier TTL"},
    {"maintenance_batch", GGL_SETTING_INT, offsetof(struct memory_conf, maintenance_batch), "100000",
     1, 1e9, "entries moved per tier pair per cycle at most"},
    {"stm_min_age_ms", GGL_SETTING_INT, offsetof(struct memory_conf, stm_min_age_ms), "0", 0, 1e12,
     "STM entries younger than this stay (0: half the STM TTL)"},
    {"im_min_age_ms", GGL_SETTING_INT, offsetof(struct memory_conf, im_min_age_ms), "0", 0, 1e12,
     "IM entries younger than this stay (0: half the IM TTL)"},
    {"im_threshold", GGL_SETTING_FLOAT, offsetof(struct memory_conf, im_threshold), "0.3", 0, 1,
     "score an old STM entry needs to move to IM (else it expires)"},
    {"ltm_threshold", GGL_SETTING_FLOAT, offsetof(struct memory_conf, ltm_threshold), "0.5", 0, 1,
     "score an old IM entry needs to move to LTM (else it expires)"},
    {"weight_importance", GGL_SETTING_FLOAT, offsetof(struct memory_conf, w_importance), "0.5", 0, 1,
     "score weight of the entry's importance"},
    {"weight_access", GGL_SETTING_FLOAT, offsetof(struct memory_conf, w_access), "0.3", 0, 1,
     "score weight of 1 - 2^(-accesses / access_half)"},
    {"weight_recency", GGL_SETTING_FLOAT, offsetof(struct memory_conf, w_recency), "0.2", 0, 1,
     "score weight of 2^(-idle / recency_half_life_ms)"},
    {"access_half", GGL_SETTING_FLOAT, offsetof(struct memory_conf, access_half), "4", 0.001, 1e9,
     "accesses that give half the access score"},
    {"recency_half_life_ms", GGL_SETTING_INT, offsetof(struct memory_conf, recency_half_life_ms),
     "600000", 1, 1e12, "idle time that halves the recency score"},
    {"queue_capacity", GGL_SETTING_INT, offsetof(struct memory_conf, async.queue_capacity), "4096", 1,
     1e7, "requests queued per worker queue; more are refused with -BUSY"},
    {"write_batch", GGL_SETTING_INT, offsetof(struct memory_conf, async.batch), "64", 1, 256,
     "queued writes a worker applies as one batch at most"},
    {"queue_writes", GGL_SETTING_BOOL, offsetof(struct memory_conf, async.queue_writes), "false", 0, 0,
     "when a write's tier is down, hold it and answer +QUEUED instead of -BUSY"},
    {"pending_max", GGL_SETTING_INT, offsetof(struct memory_conf, async.pending_max), "10000", 1, 1e7,
     "writes held per memory worker; more answer -BUSY"},
    {"retry_ms", GGL_SETTING_INT, offsetof(struct memory_conf, async.retry_ms), "200", 10, 60000,
     "how often held writes are retried"},
    {"access_table_size", GGL_SETTING_INT, offsetof(struct memory_conf, access_table_size), "65536",
     64, 1e8, "keys whose accesses are counted between two maintenance cycles"},
    {"compress", GGL_SETTING_STRING, offsetof(struct memory_conf, compress), "", 0, 0,
     "tiers whose values are zstd-compressed, e.g. \"im,ltm\""},
    {"compress_min_bytes", GGL_SETTING_INT, offsetof(struct memory_conf, compress_min_bytes), "512",
     1, 1e9, "smaller values are stored as they are"},
    {"compress_level", GGL_SETTING_INT, offsetof(struct memory_conf, compress_level), "3", 1, 19,
     "zstd level"},
};

int memory_read_config(const struct config *c, struct memory_conf *m, unsigned *compress_mask,
                       struct conf_error *err)
{
    if (config_read_section(c, c->memory, memory_keys, sizeof memory_keys / sizeof memory_keys[0],
                            m, err) < 0)
        return -1;
    /* Entries must get a chance to move before their tier drops them (Redis PX). */
    if (2 * m->maintenance_interval_ms >= m->stm_ttl_ms || 2 * m->maintenance_interval_ms >= m->im_ttl_ms) {
        const config_setting_t *s = c->memory ? config_setting_get_member(c->memory, "maintenance_interval_ms") : NULL;
        config_error_at(err, c, s ? s : c->memory,
                        "maintenance_interval_ms (%lld) must be less than half of stm_ttl_ms (%lld) "
                        "and of im_ttl_ms (%lld)", (long long)m->maintenance_interval_ms,
                        (long long)m->stm_ttl_ms, (long long)m->im_ttl_ms);
        return -1;
    }
    *compress_mask = 0;
    for (const char *p = m->compress; p && *p;) {
        size_t n = strcspn(p, ", ");
        int t = 0;
        while (t < SLOT_COUNT && (strlen(tier_slot_names[t]) != n || strncmp(p, tier_slot_names[t], n)))
            t++;
        if (n && t == SLOT_COUNT) {
            const config_setting_t *s = config_setting_get_member(c->memory, "compress");
            config_error_at(err, c, s, "compress: unknown tier '%.*s' (tiers: cache, stm, im, ltm)",
                            (int)n, p);
            return -1;
        }
        if (n)
            *compress_mask |= 1u << t;
        p += n + (p[n] != '\0');
    }
    if (!m->stm_min_age_ms)
        m->stm_min_age_ms = m->stm_ttl_ms / 2;
    if (!m->im_min_age_ms)
        m->im_min_age_ms = m->im_ttl_ms / 2;
    return 0;
}

