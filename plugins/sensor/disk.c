/* sensor/disk: free space of configured paths by statvfs(3).  `paths` is a comma list
 * of `name=path` (or a bare path, named after its last component, "/" as "root"); per
 * name it reports
 *   <name>.total_bytes    f_blocks * f_frsize
 *   <name>.free_bytes     f_bfree * f_frsize (root's reserve included)
 *   <name>.avail_bytes    f_bavail * f_frsize (what an unprivileged writer gets)
 *   <name>.used_ratio     used / (used + avail), used = blocks - bfree: df's Use%
 *   <name>.inodes_avail   f_favail
 * A path that cannot be read is skipped, the others still reported, and the sample
 * answers GGL_RETRY naming it. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>

#include <ganglion/ganglion.h>

#define DISK_MAX_PATHS 16
#define DISK_NAME_MAX 48

struct disk_path {
    char name[DISK_NAME_MAX];
    char path[512];
};

struct disk {
    const struct ggl_host *host;
    struct disk_path p[DISK_MAX_PATHS];
    size_t n;
};

static const struct ggl_setting settings[] = {
    GGL_SETTING("paths", GGL_SETTING_STRING, "root=/",
                "comma list of name=path (or path) whose file system is measured"),
    GGL_SETTINGS_END};

/* "/var/lib/x/" -> "x", "/" -> "root"; only [A-Za-z0-9_-] kept, others become '_'. */
static void name_from_path(const char *path, char *name, size_t len)
{
    size_t end = strlen(path);
    while (end > 1 && path[end - 1] == '/')
        end--;
    size_t start = end;
    while (start > 0 && path[start - 1] != '/')
        start--;
    if (start == end) {
        snprintf(name, len, "root");
        return;
    }
    size_t n = 0;
    for (size_t i = start; i < end && n + 1 < len; i++) {
        char ch = path[i];
        int keep = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
                   ch == '_' || ch == '-';
        name[n++] = keep ? ch : '_';
    }
    name[n] = '\0';
}

/* [*s, *s + *n) without surrounding blanks. */
static void trim(const char **s, size_t *n)
{
    while (*n && (**s == ' ' || **s == '\t'))
        (*s)++, (*n)--;
    while (*n && ((*s)[*n - 1] == ' ' || (*s)[*n - 1] == '\t'))
        (*n)--;
}

/* One "name=path" or "path" item of length len. */
static enum ggl_status add_path(struct disk *d, const char *item, size_t len)
{
    const char *eq = memchr(item, '=', len), *name = item, *path = eq ? eq + 1 : item;
    size_t nlen = eq ? (size_t)(eq - item) : 0, plen = len - (size_t)(path - item);
    trim(&name, &nlen);
    trim(&path, &plen);
    if (d->n == DISK_MAX_PATHS || !plen || plen >= sizeof d->p[0].path ||
        (eq && (!nlen || nlen >= DISK_NAME_MAX))) {
        d->host->set_reason(d->host, "paths: bad item '%.*s' (name=path, at most %d paths)",
                            (int)len, item, DISK_MAX_PATHS);
        return GGL_INVALID;
    }
    struct disk_path *p = &d->p[d->n++];
    memcpy(p->path, path, plen);
    p->path[plen] = '\0';
    if (eq)
        snprintf(p->name, sizeof p->name, "%.*s", (int)nlen, name);
    else
        name_from_path(p->path, p->name, sizeof p->name);
    return GGL_OK;
}

static enum ggl_status disk_open(const struct ggl_host *host, const struct ggl_conf *conf, void **self)
{
    struct disk *d = calloc(1, sizeof *d);
    const char *paths = "";
    if (!d)
        return GGL_NOMEM;
    d->host = host;
    host->conf_string(conf, "paths", &paths);
    enum ggl_status st = GGL_OK;
    for (const char *s = paths; st == GGL_OK && *s;) {
        size_t n = strcspn(s, ","), m = n;
        const char *item = s;
        trim(&item, &m);
        if (m)
            st = add_path(d, item, m);
        s += n + (s[n] == ',');
    }
    if (st == GGL_OK && !d->n) {
        host->set_reason(host, "paths: no path given");
        st = GGL_INVALID;
    }
    if (st != GGL_OK) {
        free(d);
        return st;
    }
    *self = d;
    return GGL_OK;
}

static void disk_close(void *self) { free(self); }

static void emit_named(ggl_emit_fn emit, void *sink, const char *name, const char *what, double v)
{
    char key[DISK_NAME_MAX + 32];
    snprintf(key, sizeof key, "%s.%s", name, what);
    emit(sink, key, v, NULL);
}

static enum ggl_status disk_sample(void *self, ggl_emit_fn emit, void *sink)
{
    struct disk *d = self;
    enum ggl_status st = GGL_OK;
    for (size_t i = 0; i < d->n; i++) {
        struct statvfs v;
        const struct disk_path *p = &d->p[i];
        if (statvfs(p->path, &v) < 0) {
            d->host->set_reason(d->host, "statvfs %s: %s", p->path, strerror(errno));
            st = GGL_RETRY;
            continue;
        }
        double unit = (double)v.f_frsize, used = (double)(v.f_blocks - v.f_bfree);
        emit_named(emit, sink, p->name, "total_bytes", (double)v.f_blocks * unit);
        emit_named(emit, sink, p->name, "free_bytes", (double)v.f_bfree * unit);
        emit_named(emit, sink, p->name, "avail_bytes", (double)v.f_bavail * unit);
        emit_named(emit, sink, p->name, "used_ratio",
                   used + (double)v.f_bavail > 0 ? used / (used + (double)v.f_bavail) : 0);
        emit_named(emit, sink, p->name, "inodes_avail", (double)v.f_favail);
    }
    return st;
}

static const struct ggl_sensor vtable = {
    .size = sizeof(struct ggl_sensor),
    .open = disk_open,
    .close = disk_close,
    .sample = disk_sample,
};

GGL_PLUGIN_DEFINE(GGL_KIND_SENSOR, "disk", "0.1.0", "free space of configured paths (statvfs)",
                  settings, &vtable);
