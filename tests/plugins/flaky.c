/* tier/flaky, for tests: tier/mem whose every call answers GGL_RETRY while the file named
 * by its `fail_file` setting exists — a backend that goes down and comes back — and whose
 * writes alone do while `write_fail_file` exists (a full disk: it still reads). */
#include <unistd.h>

#define ggl_plugin_entry mem_plugin_entry
#include "../../plugins/tier/mem.c"
#undef ggl_plugin_entry

struct flaky {
    void *mem;
    const struct ggl_host *host;
    const char *fail_file, *write_fail_file;
};

static const struct ggl_setting flaky_settings[] = {
    GGL_SETTING("max_entries", GGL_SETTING_INT, "100000", "as tier/mem"),
    GGL_SETTING("fail_file", GGL_SETTING_STRING, "/nonexistent", "calls fail while this exists"),
    GGL_SETTING("write_fail_file", GGL_SETTING_STRING, "/nonexistent",
                "writes fail while this exists"),
    GGL_SETTINGS_END};

static int exists(struct flaky *f, const char *path, const char *what)
{
    if (access(path, F_OK) != 0)
        return 0;
    f->host->set_reason(f->host, "%s (%s exists)", what, path);
    return 1;
}

static int down(struct flaky *f) { return exists(f, f->fail_file, "down"); }

static int full(struct flaky *f) { return down(f) || exists(f, f->write_fail_file, "full"); }

static enum ggl_status f_open(const struct ggl_host *host, const struct ggl_conf *conf, void **self)
{
    struct flaky *f = calloc(1, sizeof *f);
    if (!f)
        return GGL_NOMEM;
    f->host = host;
    host->conf_string(conf, "fail_file", &f->fail_file);
    host->conf_string(conf, "write_fail_file", &f->write_fail_file);
    enum ggl_status st = mem_open(host, conf, &f->mem);
    if (st != GGL_OK)
        free(f);
    else
        *self = f;
    return st;
}

static void f_close(void *self)
{
    struct flaky *f = self;
    mem_close(f->mem);
    free(f);
}

static enum ggl_status f_get(void *self, const void *k, size_t kl, struct ggl_entry *out)
{
    struct flaky *f = self;
    return down(f) ? GGL_RETRY : mem_get(f->mem, k, kl, out);
}

static enum ggl_status f_put(void *self, const struct ggl_entry *e, uint64_t expect)
{
    struct flaky *f = self;
    return full(f) ? GGL_RETRY : mem_put(f->mem, e, expect);
}

static enum ggl_status f_del(void *self, const void *k, size_t kl, uint64_t expect)
{
    struct flaky *f = self;
    return full(f) ? GGL_RETRY : mem_del(f->mem, k, kl, expect);
}

static const struct ggl_tier flaky_vtable = {
    .size = sizeof(struct ggl_tier),
    .flags = GGL_READS_CONCURRENT | GGL_WRITES_CONCURRENT,
    .open = f_open, .close = f_close, .get = f_get, .put = f_put, .del = f_del};

GGL_PLUGIN_DEFINE(GGL_KIND_TIER, "flaky", "0.1.0", "tier/mem that fails while a file exists",
                  flaky_settings, &flaky_vtable);
