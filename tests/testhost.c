/* The test host.  Everything is kept in small fixed tables: tests are single-threaded
 * callers except where a test says otherwise, and these tables are guarded anyway. */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "testhost.h"

#define MAX_SLOTS 64

static struct ggl_host table;
static uint64_t fake_now;
static char reason[256];
static unsigned tasks, actions;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct kv {
    char *key;
    char *value;
    size_t len;
} mem[MAX_SLOTS], state[MAX_SLOTS];
static struct ggl_conf confs[16];
static size_t nconfs;
struct ggl_metric {
    double value;
};
static struct ggl_metric metrics[64];
static size_t nmetrics;

static void t_log(const struct ggl_host *h, enum ggl_log_level level, const char *fmt, ...)
{
    (void)h;
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "[testhost %d] ", (int)level);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static void t_reason(const struct ggl_host *h, const char *fmt, ...)
{
    (void)h;
    va_list ap;
    va_start(ap, fmt);
    pthread_mutex_lock(&lock); /* plugins may leave reasons from several threads */
    vsnprintf(reason, sizeof reason, fmt, ap);
    pthread_mutex_unlock(&lock);
    va_end(ap);
}

static void *t_alloc(size_t n) { return malloc(n ? n : 1); }
static uint64_t t_now(const struct ggl_host *h) { (void)h; return fake_now; }

/* The text for key: the pair's value, else the declared default. */
static const char *conf_text(const struct ggl_conf *c, const char *key, enum ggl_setting_type want)
{
    const struct ggl_setting *s = c->settings;
    while (s && s->name && strcmp(s->name, key) != 0)
        s++;
    if (!s || !s->name || s->type != want)
        return NULL;
    for (const char *const *p = c->pairs; p && p[0]; p += 2)
        if (strcmp(p[0], key) == 0)
            return p[1];
    return s->default_value;
}

static enum ggl_status t_conf_int(const struct ggl_conf *c, const char *key, int64_t *out)
{
    const char *t = conf_text(c, key, GGL_SETTING_INT);
    return t ? (*out = strtoll(t, NULL, 0), GGL_OK) : GGL_NOTFOUND;
}

static enum ggl_status t_conf_float(const struct ggl_conf *c, const char *key, double *out)
{
    const char *t = conf_text(c, key, GGL_SETTING_FLOAT);
    return t ? (*out = strtod(t, NULL), GGL_OK) : GGL_NOTFOUND;
}

static enum ggl_status t_conf_bool(const struct ggl_conf *c, const char *key, int *out)
{
    const char *t = conf_text(c, key, GGL_SETTING_BOOL);
    return t ? (*out = strcasecmp(t, "true") == 0, GGL_OK) : GGL_NOTFOUND;
}

static enum ggl_status t_conf_string(const struct ggl_conf *c, const char *key, const char **out)
{
    const char *t = conf_text(c, key, GGL_SETTING_STRING);
    return t ? (*out = t, GGL_OK) : GGL_NOTFOUND;
}

static struct ggl_metric *t_metric_new(const struct ggl_host *h, enum ggl_metric_type type,
                                       const char *name, const char *help)
{
    (void)h, (void)type, (void)name, (void)help;
    pthread_mutex_lock(&lock);
    struct ggl_metric *m = &metrics[nmetrics < 63 ? nmetrics++ : 63];
    pthread_mutex_unlock(&lock);
    return m;
}

static void t_metric_add(struct ggl_metric *m, double d) { m->value += d; }
static void t_metric_set(struct ggl_metric *m, double v) { m->value = v; }
static void t_metric_observe(struct ggl_metric *m, double v) { m->value += v; }

/* One small key/value table serves both memory and state. */
static struct kv *kv_find(struct kv *t, const void *key, size_t len, int create)
{
    struct kv *free_slot = NULL;
    for (size_t i = 0; i < MAX_SLOTS; i++) {
        if (t[i].key && strlen(t[i].key) == len && memcmp(t[i].key, key, len) == 0)
            return &t[i];
        if (!t[i].key && !free_slot)
            free_slot = &t[i];
    }
    if (!create || !free_slot)
        return NULL;
    free_slot->key = strndup(key, len);
    return free_slot;
}

static enum ggl_status kv_get(struct kv *t, const void *k, size_t kl, void **v, size_t *vl)
{
    pthread_mutex_lock(&lock);
    struct kv *e = kv_find(t, k, kl, 0);
    enum ggl_status st = GGL_NOTFOUND;
    if (e && (*v = malloc(e->len + 1))) {
        memcpy(*v, e->value, e->len + 1);
        *vl = e->len;
        st = GGL_OK;
    }
    pthread_mutex_unlock(&lock);
    return st;
}

static enum ggl_status kv_set(struct kv *t, const void *k, size_t kl, const void *v, size_t vl)
{
    pthread_mutex_lock(&lock);
    struct kv *e = kv_find(t, k, kl, 1);
    enum ggl_status st = GGL_NOMEM;
    if (e) {
        free(e->value);
        if ((e->value = malloc(vl + 1))) {
            memcpy(e->value, v, vl);
            e->value[vl] = '\0';
            e->len = vl;
            st = GGL_OK;
        }
    }
    pthread_mutex_unlock(&lock);
    return st;
}

static enum ggl_status t_mem_get(const struct ggl_host *h, const void *k, size_t kl, void **v, size_t *vl)
{
    (void)h;
    return kv_get(mem, k, kl, v, vl);
}

static enum ggl_status t_mem_put(const struct ggl_host *h, const void *k, size_t kl, const void *v,
                                 size_t vl, uint64_t ttl, double imp)
{
    (void)h, (void)ttl, (void)imp;
    return kv_set(mem, k, kl, v, vl);
}

static enum ggl_status t_mem_del(const struct ggl_host *h, const void *k, size_t kl)
{
    (void)h;
    pthread_mutex_lock(&lock);
    struct kv *e = kv_find(mem, k, kl, 0);
    if (e) {
        free(e->key);
        free(e->value);
        *e = (struct kv){0};
    }
    pthread_mutex_unlock(&lock);
    return e ? GGL_OK : GGL_NOTFOUND;
}

static enum ggl_status t_submit_task(const struct ggl_host *h, const struct ggl_task *t,
                                     ggl_done_fn done, void *arg, uint64_t *id)
{
    (void)h, (void)t, (void)done, (void)arg;
    *id = __atomic_add_fetch(&tasks, 1, __ATOMIC_RELAXED);
    return GGL_OK;
}

static enum ggl_status t_submit_action(const struct ggl_host *h, const struct ggl_action *a,
                                       ggl_done_fn done, void *arg, uint64_t *id)
{
    (void)h, (void)a, (void)done, (void)arg;
    *id = __atomic_add_fetch(&actions, 1, __ATOMIC_RELAXED);
    return GGL_OK;
}

static enum ggl_status t_state_get(const struct ggl_host *h, const char *k, char **v, size_t *vl)
{
    (void)h;
    return kv_get(state, k, strlen(k), (void **)v, vl);
}

static enum ggl_status t_state_set(const struct ggl_host *h, const char *k, const char *v, size_t vl)
{
    (void)h;
    return kv_set(state, k, strlen(k), v, vl);
}

const struct ggl_host *testhost_init(uint64_t start_ms)
{
    fake_now = start_ms;
    table = (struct ggl_host){
        .size = sizeof table, .abi_minor = GGL_ABI_MINOR, .ctx = NULL,
        .log = t_log, .set_reason = t_reason, .alloc = t_alloc, .free = free, .now = t_now,
        .conf_int = t_conf_int, .conf_float = t_conf_float, .conf_bool = t_conf_bool,
        .conf_string = t_conf_string, .metric_new = t_metric_new, .metric_add = t_metric_add,
        .metric_set = t_metric_set, .metric_observe = t_metric_observe,
        .mem_get = t_mem_get, .mem_put = t_mem_put, .mem_del = t_mem_del,
        .submit_task = t_submit_task, .submit_action = t_submit_action,
        .state_get = t_state_get, .state_set = t_state_set};
    return &table;
}

void testhost_advance(uint64_t ms) { fake_now += ms; }

const char *testhost_reason(void)
{
    static char taken[sizeof reason];
    pthread_mutex_lock(&lock);
    memcpy(taken, reason, sizeof taken);
    reason[0] = '\0';
    pthread_mutex_unlock(&lock);
    return taken;
}

unsigned testhost_tasks_submitted(void) { return tasks; }
unsigned testhost_actions_submitted(void) { return actions; }

const char *testhost_state(const char *key)
{
    struct kv *e = kv_find(state, key, strlen(key), 0);
    return e ? e->value : NULL;
}

void *testhost_open(const struct ggl_plugin *entry, const char *const *pairs,
                    enum ggl_status expect)
{
    const struct {
        uint32_t size, flags;
        enum ggl_status (*open)(const struct ggl_host *, const struct ggl_conf *, void **);
    } *vt = entry->vtable;
    struct ggl_conf *c = &confs[nconfs < 15 ? nconfs++ : 15];
    *c = (struct ggl_conf){pairs, entry->settings};
    void *self = NULL;
    enum ggl_status st = vt->open(&table, c, &self);
    if (st != expect) {
        fprintf(stderr, "testhost_open(%s): %s, expected %s (%s)\n", entry->name,
                ggl_status_str(st), ggl_status_str(expect), reason);
        abort();
    }
    return self;
}

void testhost_fini(void)
{
    for (size_t i = 0; i < MAX_SLOTS; i++) {
        free(mem[i].key), free(mem[i].value), free(state[i].key), free(state[i].value);
        mem[i] = state[i] = (struct kv){0};
    }
}
