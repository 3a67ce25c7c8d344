/* tier/kv: a template tier backend.  A small hash map under one mutex, honouring the
 * whole tier contract: versions, conditional writes (insert-if-newer, compare-and-set,
 * compare-and-delete), absolute expiry on the host clock, and a bound on entries.
 * Copy it, rename it, and replace the map with your storage. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <ganglion/ganglion.h>

#define BUCKETS 4096

struct item {
    struct item *next;
    struct ggl_entry e; /* key and value bytes follow the struct */
};

struct kv {
    const struct ggl_host *host;
    pthread_mutex_t lock;
    struct item *buckets[BUCKETS];
    int64_t count, max_entries;
};

/* Every config key the plugin accepts; the host rejects any other. */
static const struct ggl_setting settings[] = {
    GGL_SETTING("max_entries", GGL_SETTING_INT, "10000", "entries held; more answer RETRY"),
    GGL_SETTINGS_END};

static size_t bucket_of(const void *key, size_t len)
{
    const unsigned char *p = key;
    size_t h = 5381;
    while (len--)
        h = h * 33 + *p++;
    return h % BUCKETS;
}

static struct item **find(struct kv *kv, const void *key, size_t len)
{
    struct item **p = &kv->buckets[bucket_of(key, len)];
    while (*p && ((*p)->e.key_len != len || memcmp((*p)->e.key, key, len) != 0))
        p = &(*p)->next;
    return p;
}

/* An expired item is dropped on sight: it must never be returned. */
static struct item **find_live(struct kv *kv, const void *key, size_t len)
{
    struct item **p = find(kv, key, len);
    if (*p && (*p)->e.expires_ms && (*p)->e.expires_ms <= kv->host->now(kv->host)) {
        struct item *dead = *p;
        *p = dead->next;
        free(dead);
        kv->count--;
    }
    return p;
}

static int condition_holds(const struct item *it, uint64_t expect, uint64_t version)
{
    return ggl_condition_holds(it != NULL, it ? it->e.version : 0, expect, version);
}

static enum ggl_status kv_open(const struct ggl_host *host, const struct ggl_conf *conf, void **self)
{
    struct kv *kv = calloc(1, sizeof *kv);
    if (!kv)
        return GGL_NOMEM;
    kv->host = host;
    host->conf_int(conf, "max_entries", &kv->max_entries);
    if (kv->max_entries < 1) {
        host->set_reason(host, "max_entries must be at least 1");
        free(kv);
        return GGL_INVALID;
    }
    pthread_mutex_init(&kv->lock, NULL);
    *self = kv;
    return GGL_OK;
}

static void kv_close(void *self)
{
    struct kv *kv = self;
    for (size_t i = 0; i < BUCKETS; i++)
        while (kv->buckets[i]) {
            struct item *it = kv->buckets[i];
            kv->buckets[i] = it->next;
            free(it);
        }
    pthread_mutex_destroy(&kv->lock);
    free(kv);
}

static enum ggl_status kv_get(void *self, const void *key, size_t len, struct ggl_entry *out)
{
    struct kv *kv = self;
    enum ggl_status st = GGL_NOTFOUND;
    pthread_mutex_lock(&kv->lock);
    struct item *it = *find_live(kv, key, len);
    if (it) {
        void *copy = kv->host->alloc(it->e.value_len); /* the host frees it */
        if (!copy) {
            st = GGL_NOMEM;
        } else {
            memcpy(copy, it->e.value, it->e.value_len);
            uint32_t size = out->size;
            *out = it->e;
            out->size = size;
            out->key = key;
            out->value = copy;
            st = GGL_OK;
        }
    }
    pthread_mutex_unlock(&kv->lock);
    return st;
}

static enum ggl_status kv_put(void *self, const struct ggl_entry *e, uint64_t expect)
{
    struct kv *kv = self;
    struct item *it = malloc(sizeof *it + e->key_len + e->value_len);
    if (!it)
        return GGL_NOMEM;
    it->e = *e; /* the entry is borrowed: keep copies of key and value */
    it->e.key = memcpy((char *)(it + 1), e->key, e->key_len);
    it->e.value = memcpy((char *)(it + 1) + e->key_len, e->value, e->value_len);
    enum ggl_status st = GGL_OK;
    pthread_mutex_lock(&kv->lock);
    struct item **p = find_live(kv, e->key, e->key_len);
    if (!condition_holds(*p, expect, e->version)) {
        st = GGL_CONFLICT;
    } else if (!*p && kv->count >= kv->max_entries) {
        kv->host->set_reason(kv->host, "full: %lld entries", (long long)kv->max_entries);
        st = GGL_RETRY;
    } else {
        if (*p) {
            struct item *old = *p;
            *p = old->next;
            free(old);
            kv->count--;
        }
        it->next = *p;
        *p = it;
        kv->count++;
        it = NULL;
    }
    pthread_mutex_unlock(&kv->lock);
    free(it);
    return st;
}

static enum ggl_status kv_del(void *self, const void *key, size_t len, uint64_t expect)
{
    struct kv *kv = self;
    enum ggl_status st = GGL_NOTFOUND;
    pthread_mutex_lock(&kv->lock);
    struct item **p = find_live(kv, key, len);
    if (*p && !condition_holds(*p, expect, 0)) {
        st = GGL_CONFLICT;
    } else if (*p) {
        struct item *dead = *p;
        *p = dead->next;
        free(dead);
        kv->count--;
        st = GGL_OK;
    }
    pthread_mutex_unlock(&kv->lock);
    return st;
}

static const struct ggl_tier vtable = {
    .size = sizeof(struct ggl_tier),
    .flags = GGL_READS_CONCURRENT | GGL_WRITES_CONCURRENT,
    .open = kv_open,
    .close = kv_close,
    .get = kv_get,
    .put = kv_put,
    .del = kv_del,
};

GGL_PLUGIN_DEFINE(GGL_KIND_TIER, "kv", "1.0.0", "template tier: an in-process hash map",
                  settings, &vtable);
