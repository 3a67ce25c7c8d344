/* processor/faulty and (built with -DFAULTY_EXECUTOR) executor/faulty, for the fault and
 * overload tests: every call of the task type or action `name` fails with a reason
 * (mode "fail"), never returns (mode "hang": the host must abandon the thread), or
 * takes `sleep_ms` and answers "done" (mode "sleep": a fixed cost per call). */
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <ganglion/ganglion.h>

struct faulty {
    const struct ggl_host *host;
    const char *names[2];
    const char *mode;
    int64_t sleep_ms;
};

static const struct ggl_setting settings[] = {
    GGL_SETTING("name", GGL_SETTING_STRING, "faulty", "task type or action served"),
    GGL_SETTING("mode", GGL_SETTING_STRING, "fail", "fail, hang or sleep"),
    GGL_SETTING("sleep_ms", GGL_SETTING_INT, "5", "mode sleep: time each call takes"),
    GGL_SETTINGS_END};

static enum ggl_status f_open(const struct ggl_host *host, const struct ggl_conf *conf, void **self)
{
    struct faulty *f = calloc(1, sizeof *f);
    if (!f)
        return GGL_NOMEM;
    f->host = host;
    host->conf_string(conf, "name", &f->names[0]);
    host->conf_string(conf, "mode", &f->mode);
    host->conf_int(conf, "sleep_ms", &f->sleep_ms);
    if (strcmp(f->mode, "fail") && strcmp(f->mode, "hang") && strcmp(f->mode, "sleep")) {
        host->set_reason(host, "mode '%s' is not fail, hang or sleep", f->mode);
        free(f);
        return GGL_INVALID;
    }
    *self = f;
    return GGL_OK;
}

static void f_close(void *self) { free(self); }

static const char *const *f_names(void *self) { return ((struct faulty *)self)->names; }

/* One call, whatever the kind. */
static enum ggl_status misbehave(struct faulty *f, uint64_t id, struct ggl_result *r)
{
    if (strcmp(f->mode, "fail") == 0) {
        f->host->set_reason(f->host, "faulty: call %llu refused on purpose", (unsigned long long)id);
        return GGL_ERROR;
    }
    if (strcmp(f->mode, "hang") == 0)
        for (;;)
            sleep(3600); /* never returns: the host abandons this thread */
    struct timespec d = {(time_t)(f->sleep_ms / 1000), (long)(f->sleep_ms % 1000) * 1000000};
    while (nanosleep(&d, &d) != 0) {
    }
    if (!(r->data = f->host->alloc(4)))
        return GGL_NOMEM;
    memcpy(r->data, "done", 4);
    r->data_len = 4;
    return GGL_OK;
}

#ifdef FAULTY_EXECUTOR
static enum ggl_status f_execute(void *self, const struct ggl_action *a, struct ggl_result *r)
{
    return misbehave(self, a->id, r);
}

static const struct ggl_executor vt = {.size = sizeof vt, .flags = GGL_READS_CONCURRENT,
                                       .open = f_open, .close = f_close,
                                       .action_names = f_names, .execute = f_execute};
GGL_PLUGIN_DEFINE(GGL_KIND_EXECUTOR, "faulty", "1.0", "fails, hangs or sleeps (tests)", settings, &vt);
#else
static enum ggl_status f_process(void *self, const struct ggl_task *t, struct ggl_result *r)
{
    return misbehave(self, t->id, r);
}

static const struct ggl_processor vt = {.size = sizeof vt, .flags = GGL_READS_CONCURRENT,
                                        .open = f_open, .close = f_close,
                                        .task_types = f_names, .process = f_process};
GGL_PLUGIN_DEFINE(GGL_KIND_PROCESSOR, "faulty", "1.0", "fails, hangs or sleeps (tests)", settings, &vt);
#endif
