/* sensor/proc: the machine and the host process from /proc.
 *   load1, load5, load15                    /proc/loadavg
 *   mem_total_bytes, mem_available_bytes,   /proc/meminfo (MemTotal, MemAvailable)
 *   mem_used_ratio                          1 - available / total
 *   cpu_busy_ratio, cpu_user_ratio,         /proc/stat "cpu" line: shares of the jiffies
 *   cpu_system_ratio, cpu_iowait_ratio      since the previous sample (not on the first)
 *   host_cpu_ratio                          /proc/self/stat utime+stime since the previous
 *                                           sample over the elapsed host-clock time (1.0 =
 *                                           one CPU busy; not on the first sample)
 *   host_rss_bytes, host_threads            /proc/self/stat rss (pages) and num_threads */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ganglion/ganglion.h>

struct cpu_times {
    unsigned long long user, nice, system, idle, iowait, irq, softirq, steal;
};

struct proc {
    const struct ggl_host *host;
    const char *root; /* "/proc", or a test's directory */
    int have_prev;
    struct cpu_times prev;
    unsigned long long prev_self_ticks;
    uint64_t prev_ms;
};

static const struct ggl_setting settings[] = {
    GGL_SETTING("proc_root", GGL_SETTING_STRING, "/proc", "where loadavg, meminfo, stat and self/ are read"),
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

static enum ggl_status bad_format(struct proc *p, const char *name)
{
    p->host->set_reason(p->host, "%s/%s: unexpected format", p->root, name);
    return GGL_ERROR;
}

static enum ggl_status sample_load(struct proc *p, ggl_emit_fn emit, void *sink)
{
    double l1, l5, l15;
    FILE *f = open_in(p, "loadavg");
    if (!f)
        return GGL_RETRY;
    int ok = fscanf(f, "%lf %lf %lf", &l1, &l5, &l15) == 3;
    fclose(f);
    if (!ok)
        return bad_format(p, "loadavg");
    emit(sink, "load1", l1, NULL);
    emit(sink, "load5", l5, NULL);
    emit(sink, "load15", l15, NULL);
    return GGL_OK;
}

static enum ggl_status sample_memory(struct proc *p, ggl_emit_fn emit, void *sink)
{
    FILE *f = open_in(p, "meminfo");
    if (!f)
        return GGL_RETRY;
    char line[256];
    double total = 0, avail = -1;
    while (fgets(line, sizeof line, f)) {
        sscanf(line, "MemTotal: %lf kB", &total);
        sscanf(line, "MemAvailable: %lf kB", &avail);
    }
    fclose(f);
    if (total <= 0 || avail < 0) {
        p->host->set_reason(p->host, "%s/meminfo: no MemTotal or MemAvailable", p->root);
        return GGL_ERROR;
    }
    emit(sink, "mem_total_bytes", total * 1024, NULL);
    emit(sink, "mem_available_bytes", avail * 1024, NULL);
    emit(sink, "mem_used_ratio", (total - avail) / total, NULL);
    return GGL_OK;
}

static int read_cpu(struct proc *p, struct cpu_times *t)
{
    FILE *f = open_in(p, "stat");
    if (!f)
        return -1;
    *t = (struct cpu_times){0};
    int n = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &t->user, &t->nice,
                   &t->system, &t->idle, &t->iowait, &t->irq, &t->softirq, &t->steal);
    fclose(f);
    return n >= 4 ? 0 : -2;
}

/* utime + stime (clock ticks), resident pages and threads from self/stat. */
static int read_self(struct proc *p, unsigned long long *ticks, long *rss, long *threads)
{
    char buf[2048];
    FILE *f = open_in(p, "self/stat");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *s = strrchr(buf, ')'); /* the command name may hold spaces and parentheses */
    /* After the name come fields 3 (state) onwards; proc(5): 14 utime, 15 stime,
     * 20 num_threads, 24 rss (pages). */
    unsigned long long v[25] = {0};
    int field = 3;
    for (char *tok = s ? s + 1 : NULL, *end; tok && field <= 24; field++) {
        while (*tok == ' ')
            tok++;
        if (!*tok)
            break;
        v[field] = strtoull(tok, &end, 10);
        tok = end + strcspn(end, " ");
    }
    if (field <= 24)
        return -2;
    unsigned long long ut = v[14], st = v[15];
    *threads = (long)v[20];
    *rss = (long)v[24];
    *ticks = ut + st;
    return 0;
}

static enum ggl_status sample_cpu(struct proc *p, ggl_emit_fn emit, void *sink)
{
    struct cpu_times t;
    unsigned long long ticks;
    long rss, threads;
    int rc = read_cpu(p, &t);
    if (rc < 0)
        return rc == -1 ? GGL_RETRY : bad_format(p, "stat");
    if ((rc = read_self(p, &ticks, &rss, &threads)) < 0)
        return rc == -1 ? GGL_RETRY : bad_format(p, "self/stat");
    uint64_t now = p->host->now(p->host);
    const struct cpu_times *o = &p->prev;
    double busy = (double)(t.user - o->user + t.nice - o->nice + t.system - o->system + t.irq -
                           o->irq + t.softirq - o->softirq + t.steal - o->steal);
    double total = busy + (double)(t.idle - o->idle + t.iowait - o->iowait);
    if (p->have_prev && total > 0) {
        emit(sink, "cpu_busy_ratio", busy / total, NULL);
        emit(sink, "cpu_user_ratio", (double)(t.user - o->user + t.nice - o->nice) / total, NULL);
        emit(sink, "cpu_system_ratio", (double)(t.system - o->system) / total, NULL);
        emit(sink, "cpu_iowait_ratio", (double)(t.iowait - o->iowait) / total, NULL);
    }
    if (p->have_prev && now > p->prev_ms)
        emit(sink, "host_cpu_ratio",
             (double)(ticks - p->prev_self_ticks) / (double)sysconf(_SC_CLK_TCK) /
                 ((double)(now - p->prev_ms) / 1000.0), NULL);
    emit(sink, "host_rss_bytes", (double)rss * (double)sysconf(_SC_PAGESIZE), NULL);
    emit(sink, "host_threads", (double)threads, NULL);
    p->prev = t;
    p->prev_self_ticks = ticks;
    p->prev_ms = now;
    p->have_prev = 1;
    return GGL_OK;
}

static enum ggl_status proc_sample(void *self, ggl_emit_fn emit, void *sink)
{
    struct proc *p = self;
    enum ggl_status st = sample_load(p, emit, sink);
    if (st == GGL_OK)
        st = sample_memory(p, emit, sink);
    if (st == GGL_OK)
        st = sample_cpu(p, emit, sink);
    return st;
}

static const struct ggl_sensor vtable = {
    .size = sizeof(struct ggl_sensor),
    .open = proc_open,
    .close = proc_close,
    .sample = proc_sample,
};

GGL_PLUGIN_DEFINE(GGL_KIND_SENSOR, "proc", "0.2.0",
                  "load average, memory and CPU use of the machine and of the host from /proc",
                  settings, &vtable);
