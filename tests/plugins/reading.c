/* sensor/reading, for tests: reports the number in the file its `path` names as
 * `<instance>.value` on every sample, so a test feeds the environment any reading it
 * likes (memory in use, load, free disk) by rewriting one file. */
#include <stdio.h>
#include <stdlib.h>

#include <ganglion/ganglion.h>

struct reading {
    const struct ggl_host *host;
    const char *path;
};

static const struct ggl_setting settings[] = {
    GGL_SETTING("path", GGL_SETTING_STRING, "/nonexistent", "file holding the reading"),
    GGL_SETTINGS_END};

static enum ggl_status r_open(const struct ggl_host *host, const struct ggl_conf *conf, void **self)
{
    struct reading *r = calloc(1, sizeof *r);
    if (!r)
        return GGL_NOMEM;
    r->host = host;
    host->conf_string(conf, "path", &r->path);
    *self = r;
    return GGL_OK;
}

static void r_close(void *self) { free(self); }

static enum ggl_status r_sample(void *self, ggl_emit_fn emit, void *sink)
{
    struct reading *r = self;
    FILE *f = fopen(r->path, "r");
    double v;
    int ok = f && fscanf(f, "%lf", &v) == 1;
    if (f)
        fclose(f);
    if (!ok) {
        r->host->set_reason(r->host, "no number in %s", r->path);
        return GGL_RETRY;
    }
    emit(sink, "value", v, NULL);
    return GGL_OK;
}

static const struct ggl_sensor vt = {
    .size = sizeof vt, .open = r_open, .close = r_close, .sample = r_sample};
GGL_PLUGIN_DEFINE(GGL_KIND_SENSOR, "reading", "1.0", "a reading taken from a file (tests)", settings, &vt);
