/* Helpers for the JSON processor tests (see processor_check.h).  The plugin under test
 * is compiled into the same program and exports ggl_plugin_entry. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "processor_check.h"

extern const struct ggl_plugin ggl_plugin_entry;

static const struct ggl_processor *vt(void) { return ggl_plugin_entry.vtable; }

static enum ggl_status run(void *self, const void *payload, size_t len, struct ggl_result *r)
{
    struct ggl_task t = {.size = sizeof t, .id = 1, .type = vt()->task_types(self)[0],
                         .payload = payload, .payload_len = len};
    *r = (struct ggl_result){.size = sizeof *r};
    return vt()->process(self, &t, r);
}

enum ggl_status check_process(void *self, const void *payload, size_t len)
{
    struct ggl_result r;
    enum ggl_status st = run(self, payload, len, &r);
    free(r.data);
    return st;
}

json_t *check_run(void *self, const char *payload, enum ggl_status expect)
{
    struct ggl_result r;
    testhost_reason(); /* clear */
    enum ggl_status st = run(self, payload, strlen(payload), &r);
    if (st != expect)
        fail_msg("status %s, expected %s (%s) for %.200s", ggl_status_str(st),
                 ggl_status_str(expect), testhost_reason(), payload);
    if (st != GGL_OK) {
        assert_null(r.data);
        assert_true(testhost_reason()[0] != '\0');
        return NULL;
    }
    json_error_t err;
    json_t *out = json_loadb(r.data, r.data_len, 0, &err);
    if (!out)
        fail_msg("result is not JSON: %s: %.*s", err.text, (int)r.data_len, (char *)r.data);
    free(r.data);
    return out;
}

json_t *check_run_json(void *self, json_t *payload, enum ggl_status expect)
{
    char *text = json_dumps(payload, JSON_COMPACT);
    json_decref(payload);
    assert_non_null(text);
    json_t *out = check_run(self, text, expect);
    free(text);
    return out;
}

struct runner {
    void *self;
    const char *payload;
    const struct ggl_result *expect;
    int mismatches;
};

static void *run_many(void *arg)
{
    struct runner *w = arg;
    for (int i = 0; i < 200; i++) {
        struct ggl_result r;
        enum ggl_status st = run(w->self, w->payload, strlen(w->payload), &r);
        w->mismatches += st != GGL_OK || r.data_len != w->expect->data_len ||
                         memcmp(r.data, w->expect->data, r.data_len) != 0;
        free(r.data);
    }
    return NULL;
}

void check_concurrent(void *self, const char *payload)
{
    struct ggl_result expect;
    pthread_t tid[4];
    struct runner w[4];
    assert_true(vt()->flags & GGL_READS_CONCURRENT);
    assert_int_equal(run(self, payload, strlen(payload), &expect), GGL_OK);
    for (int i = 0; i < 4; i++) {
        w[i] = (struct runner){self, payload, &expect, 0};
        assert_int_equal(pthread_create(&tid[i], NULL, run_many, &w[i]), 0);
    }
    for (int i = 0; i < 4; i++)
        pthread_join(tid[i], NULL);
    for (int i = 0; i < 4; i++)
        assert_int_equal(w[i].mismatches, 0);
    free(expect.data);
}

static enum ggl_status no_get(const struct ggl_host *h, const void *k, size_t kl, void **v, size_t *vl)
{
    (void)h, (void)k, (void)kl, (void)v, (void)vl;
    return GGL_UNAVAILABLE;
}

static enum ggl_status no_put(const struct ggl_host *h, const void *k, size_t kl, const void *v,
                              size_t vl, uint64_t ttl, double imp)
{
    (void)h, (void)k, (void)kl, (void)v, (void)vl, (void)ttl, (void)imp;
    return GGL_UNAVAILABLE;
}

static enum ggl_status no_del(const struct ggl_host *h, const void *k, size_t kl)
{
    (void)h, (void)k, (void)kl;
    return GGL_UNAVAILABLE;
}

static enum ggl_status no_submit(const struct ggl_host *h, const struct ggl_action *a,
                                 ggl_done_fn done, void *arg, uint64_t *id)
{
    (void)h, (void)a, (void)done, (void)arg, (void)id;
    return GGL_UNAVAILABLE;
}

static enum ggl_status no_task(const struct ggl_host *h, const struct ggl_task *t,
                               ggl_done_fn done, void *arg, uint64_t *id)
{
    (void)h, (void)t, (void)done, (void)arg, (void)id;
    return GGL_UNAVAILABLE;
}

const struct ggl_host *check_unavailable_host(void)
{
    static struct ggl_host h;
    h = *testhost_init(0);
    h.mem_get = no_get, h.mem_put = no_put, h.mem_del = no_del;
    h.submit_action = no_submit, h.submit_task = no_task;
    return &h;
}

void *check_open_on(const struct ggl_host *host, const char *const *pairs)
{
    static struct ggl_conf confs[8];
    static size_t n;
    struct ggl_conf *c = &confs[n++ % 8];
    *c = (struct ggl_conf){pairs, ggl_plugin_entry.settings};
    void *self = NULL;
    assert_int_equal(vt()->open(host, c, &self), GGL_OK);
    return self;
}

uint64_t check_rand(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

uint64_t check_below(uint64_t *state, uint64_t n) { return n ? check_rand(state) % n : 0; }

double check_unit(uint64_t *state) { return (double)(check_rand(state) >> 11) / 9007199254740992.0; }
