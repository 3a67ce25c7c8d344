/* executor/memory: writes an action's payload into memory through the host's memory
 * manager (host->mem_put, which picks the tier by its own rules).  The payload is a JSON
 * object {"key": "k", "value": <string or any JSON, stored as its text>, "ttl_ms": n,
 * "importance": f}; the last two are optional and default to the settings.  The key is
 * stored as key_prefix + key.  A memory manager that is down answers RETRY, so the
 * host's retry queue carries the write until it lands. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include <ganglion/ganglion.h>

static const struct ggl_setting settings[] = {
    GGL_SETTING("action", GGL_SETTING_STRING, "memory", "action name this instance serves"),
    GGL_SETTING("key_prefix", GGL_SETTING_STRING, "", "prepended to every key written"),
    GGL_SETTING("ttl_ms", GGL_SETTING_INT, "0", "TTL when the payload names none (0: the tier's)"),
    GGL_SETTING("importance", GGL_SETTING_FLOAT, "0.5", "importance when the payload names none"),
    GGL_SETTING("max_key", GGL_SETTING_INT, "512", "longest key accepted, bytes (prefix included)"),
    GGL_SETTINGS_END};

struct memexec {
    const struct ggl_host *host;
    const char *names[2];
    const char *prefix;
    int64_t ttl_ms, max_key;
    double importance;
};

static enum ggl_status memexec_open(const struct ggl_host *host, const struct ggl_conf *conf,
                                    void **self)
{
    struct memexec *m = calloc(1, sizeof *m);
    if (!m)
        return GGL_NOMEM;
    m->host = host;
    m->names[0] = "memory", m->prefix = "", m->max_key = 512, m->importance = 0.5;
    host->conf_string(conf, "action", &m->names[0]);
    host->conf_string(conf, "key_prefix", &m->prefix);
    host->conf_int(conf, "ttl_ms", &m->ttl_ms);
    host->conf_int(conf, "max_key", &m->max_key);
    host->conf_float(conf, "importance", &m->importance);
    if (m->ttl_ms < 0 || m->importance < 0 || m->importance > 1 || m->max_key < 1) {
        host->set_reason(host, "ttl_ms must be >= 0, importance in [0, 1], max_key >= 1");
        free(m);
        return GGL_INVALID;
    }
    *self = m;
    return GGL_OK;
}

static void memexec_close(void *self) { free(self); }

static const char *const *memexec_names(void *self) { return ((struct memexec *)self)->names; }

static enum ggl_status refuse(const struct ggl_host *h, const char *why)
{
    h->set_reason(h, "%s", why);
    return GGL_INVALID;
}

/* The payload's optional ttl_ms and importance over the instance defaults. */
static enum ggl_status read_options(struct memexec *m, const json_t *doc, uint64_t *ttl, double *imp)
{
    const json_t *t = json_object_get(doc, "ttl_ms"), *i = json_object_get(doc, "importance");
    *ttl = (uint64_t)m->ttl_ms, *imp = m->importance;
    if (t && (!json_is_integer(t) || json_integer_value(t) < 0))
        return refuse(m->host, "ttl_ms must be an integer >= 0");
    if (i && (!json_is_number(i) || json_number_value(i) < 0 || json_number_value(i) > 1))
        return refuse(m->host, "importance must be a number in [0, 1]");
    if (t)
        *ttl = (uint64_t)json_integer_value(t);
    if (i)
        *imp = json_number_value(i);
    return GGL_OK;
}

/* prefix + key in a malloc'd buffer, or GGL_INVALID when too long. */
static enum ggl_status full_key(struct memexec *m, const char *key, char **out, size_t *len)
{
    size_t pl = strlen(m->prefix), kl = strlen(key);
    if (kl == 0 || pl + kl > (size_t)m->max_key)
        return refuse(m->host, "key is empty or longer than max_key");
    if (!(*out = malloc(pl + kl + 1)))
        return GGL_NOMEM;
    memcpy(*out, m->prefix, pl);
    memcpy(*out + pl, key, kl + 1);
    *len = pl + kl;
    return GGL_OK;
}

static enum ggl_status write_entry(struct memexec *m, const json_t *doc)
{
    const json_t *k = json_object_get(doc, "key"), *v = json_object_get(doc, "value");
    if (!json_is_string(k) || !v)
        return refuse(m->host, "payload needs \"key\" (a string) and \"value\"");
    uint64_t ttl;
    double imp;
    enum ggl_status st = read_options(m, doc, &ttl, &imp);
    char *key = NULL, *text = NULL;
    size_t key_len = 0;
    if (st == GGL_OK)
        st = full_key(m, json_string_value(k), &key, &key_len);
    if (st == GGL_OK && !json_is_string(v) &&
        !(text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY)))
        st = GGL_NOMEM;
    if (st == GGL_OK) {
        const char *value = text ? text : json_string_value(v);
        size_t len = text ? strlen(text) : json_string_length(v);
        st = m->host->mem_put(m->host, key, key_len, value, len, ttl, imp);
        if (st == GGL_UNAVAILABLE) /* the memory manager is not up yet: try again later */
            st = GGL_RETRY;
    }
    free(text);
    free(key);
    return st;
}

static enum ggl_status memexec_execute(void *self, const struct ggl_action *a, struct ggl_result *r)
{
    struct memexec *m = self;
    (void)r;
    json_error_t err;
    json_t *doc = json_loadb(a->payload, a->payload_len, JSON_REJECT_DUPLICATES, &err);
    if (!doc) {
        m->host->set_reason(m->host, "payload is not a JSON object: %s", err.text);
        return GGL_INVALID;
    }
    enum ggl_status st = write_entry(m, doc);
    json_decref(doc);
    return st;
}

static const struct ggl_executor vtable = {
    .size = sizeof(struct ggl_executor),
    .flags = GGL_READS_CONCURRENT,
    .open = memexec_open,
    .close = memexec_close,
    .action_names = memexec_names,
    .execute = memexec_execute,
};

GGL_PLUGIN_DEFINE(GGL_KIND_EXECUTOR, "memory", "1.0.0", "writes the payload into memory",
                  settings, &vtable);
