/* sensor/proc: system load and memory from /proc (loadavg, meminfo). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ganglion/ganglion.h>

struct proc {
    const struct ggl_host *host;
    const char *root; /* "/proc", or a test's directory */
};

static const struct ggl_setting settings[] = {
    GGL_SETTING("proc_root", GGL_SETTING_STRING, "/proc", "where loadavg and meminfo are read"),
    GGL_SETTINGS_END};

static enum ggl_status proc_open(const struct ggl_host *host, const struct ggl_conf *conf, void **self)
{
    struct proc *p = calloc(1, sizeof *p);
    if (!p)
        return GGL_NOMEM;
    p->host = host;
    host->conf_string(conf, "proc_root", &p->root);
    *self = p;
    return GGL_OK;
}

static void proc_close(void *self) { free(self); }

static FILE *open_in(struct proc *p, const char *name)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", p->root, name);
    FILE *f = fopen(path, "r");
    if (!f)
        p->host->set_reason(p->host, "cannot read %s", path);
    return f;
}

static enum ggl_status proc_sample(void *self, ggl_emit_fn emit, void *sink)
{
    struct proc *p = self;
    double l1, l5, l15;
    FILE *f = open_in(p, "loadavg");
    if (!f)
        return GGL_RETRY;
    int ok = fscanf(f, "%lf %lf %lf", &l1, &l5, &l15) == 3;
    fclose(f);
    if (!ok) {
        p->host->set_reason(p->host, "%s/loadavg: unexpected format", p->root);
        return GGL_ERROR;
    }
    emit(sink, "load1", l1, NULL);
    emit(sink, "load5", l5, NULL);
    emit(sink, "load15", l15, NULL);

    if (!(f = open_in(p, "meminfo")))
        return GGL_RETRY;
    char line[256];
    double total = 0, avail = 0;
    while (fgets(line, sizeof line, f)) {
        sscanf(line, "MemTotal: %lf kB", &total);
        sscanf(line, "MemAvailable: %lf kB", &avail);
    }
    fclose(f);
    if (total <= 0) {
        p->host->set_reason(p->host, "%s/meminfo: no MemTotal", p->root);
        return GGL_ERROR;
    }
    emit(sink, "mem_total_bytes", total * 1024, NULL);
    emit(sink, "mem_used_ratio", (total - avail) / total, NULL);
    return GGL_OK;
}

static const struct ggl_sensor vtable = {
    .size = sizeof(struct ggl_sensor),
    .open = proc_open,
    .close = proc_close,
    .sample = proc_sample,
};

GGL_PLUGIN_DEFINE(GGL_KIND_SENSOR, "proc", "0.1.0", "load average and memory use from /proc",
                  settings, &vtable);
