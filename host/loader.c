/* Plugin loader.  Every lt_* call runs under one mutex (lt_dlerror is global state).
 * Each load opens a private copy: dlopen returns the old handle for a path that is
 * already open, so copying is what lets a replaced file load as new code (hot-swap). */
#include "ggl-build.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <ltdl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ganglion/ganglion.h>

#include "loader.h"
#include "log.h"
#include "probe.h"

static pthread_mutex_t lt_lock = PTHREAD_MUTEX_INITIALIZER;
static char **search_dirs;
static char *private_dir;
static unsigned load_seq;
static struct module *modules, **modules_tail = &modules;

#define SLOT(type, field) {offsetof(struct type, field), #field}
struct slot {
    size_t offset;
    const char *name;
};
/* Mandatory slots per kind; the 1.0 minimum vtable size ends at the last one. */
static const struct kind_rule {
    const struct slot *slots;
    size_t n;
} kind_rules[] = {
    [GGL_KIND_TIER] = {(const struct slot[]){SLOT(ggl_tier, open), SLOT(ggl_tier, close),
                                             SLOT(ggl_tier, get), SLOT(ggl_tier, put),
                                             SLOT(ggl_tier, del)}, 5},
    [GGL_KIND_PROCESSOR] = {(const struct slot[]){SLOT(ggl_processor, open),
                                                  SLOT(ggl_processor, close),
                                                  SLOT(ggl_processor, task_types),
                                                  SLOT(ggl_processor, process)}, 4},
    [GGL_KIND_EXECUTOR] = {(const struct slot[]){SLOT(ggl_executor, open),
                                                 SLOT(ggl_executor, close),
                                                 SLOT(ggl_executor, action_names),
                                                 SLOT(ggl_executor, execute)}, 4},
    [GGL_KIND_SENSOR] = {(const struct slot[]){SLOT(ggl_sensor, open), SLOT(ggl_sensor, close),
                                               SLOT(ggl_sensor, sample)}, 3},
};

int loader_check(const struct ggl_plugin *d, enum ggl_kind expect, char *why, size_t len)
{
    if (d->size < offsetof(struct ggl_plugin, vtable) + sizeof d->vtable) {
        snprintf(why, len, "descriptor size %u too small (ABI 1.0 needs %zu)", d->size,
                 offsetof(struct ggl_plugin, vtable) + sizeof d->vtable);
        return -1;
    }
    if (d->abi_major != GGL_ABI_MAJOR) {
        snprintf(why, len, "built for ABI %u.x, host is %d.%d", d->abi_major, GGL_ABI_MAJOR,
                 GGL_ABI_MINOR);
        return -1;
    }
    if (d->min_host_minor > GGL_ABI_MINOR) {
        snprintf(why, len, "needs host ABI %u.%u or newer, host is %d.%d", d->abi_major,
                 d->min_host_minor, GGL_ABI_MAJOR, GGL_ABI_MINOR);
        return -1;
    }
    if (!ggl_kind_str(d->kind)) {
        snprintf(why, len, "unknown kind %u", d->kind);
        return -1;
    }
    if (expect && d->kind != expect) {
        snprintf(why, len, "declares kind '%s' but lives in the '%s' directory",
                 ggl_kind_str(d->kind), ggl_kind_str(expect));
        return -1;
    }
    if (!d->name || !d->name[0] || !d->vtable) {
        snprintf(why, len, "descriptor without %s", d->vtable ? "name" : "vtable");
        return -1;
    }
    const struct kind_rule *r = &kind_rules[d->kind];
    const struct slot *last = &r->slots[r->n - 1];
    uint32_t vsize = *(const uint32_t *)d->vtable;
    if (vsize < last->offset + sizeof(void *)) {
        snprintf(why, len, "%s vtable size %u too small (ABI 1.0 needs %zu)",
                 ggl_kind_str(d->kind), vsize, last->offset + sizeof(void *));
        return -1;
    }
    for (size_t i = 0; i < r->n; i++) {
        void *fn;
        memcpy(&fn, (const char *)d->vtable + r->slots[i].offset, sizeof fn);
        if (!fn) {
            snprintf(why, len, "mandatory %s slot '%s' is NULL", ggl_kind_str(d->kind),
                     r->slots[i].name);
            return -1;
        }
    }
    for (const struct ggl_setting *s = d->settings; s && s->name; s++)
        if (s->size < sizeof *s || s->type < GGL_SETTING_INT || s->type > GGL_SETTING_STRING) {
            snprintf(why, len, "setting '%s' malformed (size %u, type %d)", s->name, s->size,
                     (int)s->type);
            return -1;
        }
    return 0;
}

int loader_init(const char *const *dirs, char *err, size_t errlen)
{
    size_t n = 0;
    while (dirs && dirs[n])
        n++;
    search_dirs = calloc(n + 1, sizeof *search_dirs);
    if (!search_dirs)
        goto nomem;
    for (size_t i = 0; i < n; i++)
        if (!(search_dirs[i] = strdup(dirs[i])))
            goto nomem;
    const char *tmp = getenv("TMPDIR");
    char templ[4096];
    snprintf(templ, sizeof templ, "%s/ganglion-XXXXXX", tmp && tmp[0] ? tmp : "/tmp");
    if (!mkdtemp(templ)) { /* mkdtemp creates it 0700 */
        snprintf(err, errlen, "cannot create private plugin directory %s: %s", templ,
                 strerror(errno));
        return -1;
    }
    if (!(private_dir = strdup(templ)))
        goto nomem;
    pthread_mutex_lock(&lt_lock);
    int rc = lt_dlinit();
    pthread_mutex_unlock(&lt_lock);
    if (rc != 0) {
        snprintf(err, errlen, "lt_dlinit failed");
        return -1;
    }
    return 0;
nomem:
    snprintf(err, errlen, "out of memory");
    return -1;
}

/* Whoever may write a plugin file or its directory runs code in the host: refuse one
 * that is world-writable or owned by anyone but root or the host's user. */
static int check_owner_mode(const struct stat *st, const char *what, const char *name,
                            char *why, size_t len)
{
    if (st->st_mode & S_IWOTH) {
        snprintf(why, len, "%s%s is world-writable", what, name);
        return -1;
    }
    if (st->st_uid != 0 && st->st_uid != geteuid()) {
        snprintf(why, len, "%s%s is owned by uid %u, not root or the host's user (uid %u)", what,
                 name, (unsigned)st->st_uid, (unsigned)geteuid());
        return -1;
    }
    return 0;
}

static int check_trusted(int fd, const char *path, char *why, size_t len)
{
    struct stat st;
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", path);
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        snprintf(why, len, "not a regular file");
        return -1;
    }
    if (check_owner_mode(&st, "the file", "", why, len) < 0)
        return -1;
    const char *d = dirname(dir);
    if (stat(d, &st) < 0) {
        snprintf(why, len, "directory %s: %s", d, strerror(errno));
        return -1;
    }
    return check_owner_mode(&st, "its directory ", d, why, len);
}

/* Copy the open file `in` to a fresh 0700 file in the private directory; returns its
 * path.  Reading the descriptor that was checked leaves no window to swap the file. */
static char *private_copy(int in, const char *src, const char *base, char *err, size_t errlen)
{
    char *dst = NULL;
    int out = -1;
    char buf[65536];
    if (asprintf(&dst, "%s/%s-%u.so", private_dir, base, ++load_seq) < 0) {
        dst = NULL;
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    if ((out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0700)) < 0) {
        snprintf(err, errlen, "%s: %s", dst, strerror(errno));
        goto fail;
    }
    for (;;) {
        ssize_t r = read(in, buf, sizeof buf);
        if (r == 0)
            break;
        if (r < 0 || write(out, buf, (size_t)r) != r) {
            snprintf(err, errlen, "copying %s: %s", src, strerror(errno));
            goto fail;
        }
    }
    if (close(out) != 0) {
        out = -1;
        snprintf(err, errlen, "copying %s: %s", src, strerror(errno));
        goto fail;
    }
    return dst;
fail:
    if (out >= 0) {
        close(out);
        unlink(dst);
    }
    free(dst);
    return NULL;
}

/* Open the copy locally; NULL with lt_dlerror's text in err on failure. */
static lt_dlhandle open_local(const char *path, char *err, size_t errlen)
{
    lt_dladvise advise;
    lt_dlhandle h = NULL;
    pthread_mutex_lock(&lt_lock);
    if (lt_dladvise_init(&advise) == 0 && lt_dladvise_local(&advise) == 0)
        h = lt_dlopenadvise(path, advise);
    if (!h)
        snprintf(err, errlen, "%s", lt_dlerror() ? lt_dlerror() : "lt_dlopenadvise failed");
    lt_dladvise_destroy(&advise);
    pthread_mutex_unlock(&lt_lock);
    return h;
}

static void close_handle(lt_dlhandle h)
{
    pthread_mutex_lock(&lt_lock);
    lt_dlclose(h);
    pthread_mutex_unlock(&lt_lock);
}

struct module *loader_load_file(const char *path, enum ggl_kind kind, char *err, size_t errlen)
{
    char why[320] = "";
    struct module *m = NULL;
    const char *slash = strrchr(path, '/');
    char base[256];
    snprintf(base, sizeof base, "%s", slash ? slash + 1 : path);
    char *dot = strrchr(base, '.');
    if (dot)
        *dot = '\0';

    int in = open(path, O_RDONLY | O_CLOEXEC);
    if (in < 0) {
        snprintf(why, sizeof why, "%s", strerror(errno));
        goto refuse;
    }
    char *copy = NULL;
    if (check_trusted(in, path, why, sizeof why) == 0 && probe_check(path, kind, why, sizeof why) == 0)
        copy = private_copy(in, path, base, why, sizeof why);
    close(in);
    if (!copy)
        goto refuse;
    lt_dlhandle h = open_local(copy, why, sizeof why);
    unlink(copy); /* the mapping stays; nothing is left behind if we die */
    free(copy);
    if (!h)
        goto refuse;
    pthread_mutex_lock(&lt_lock);
    const struct ggl_plugin *d = lt_dlsym(h, "ggl_plugin_entry");
    pthread_mutex_unlock(&lt_lock);
    if (!d) {
        snprintf(why, sizeof why, "no ggl_plugin_entry symbol");
    } else if (loader_check(d, kind, why, sizeof why) == 0) {
        m = calloc(1, sizeof *m);
        if (m && (m->name = strdup(d->name)) && (m->path = strdup(path))) {
            m->kind = (enum ggl_kind)d->kind;
            m->handle = h;
            m->desc = d;
            *modules_tail = m;
            modules_tail = &m->next;
            log_info("loaded plugin %s/%s %s (ABI %u.%u) from %s", ggl_kind_str(d->kind),
                     d->name, d->version ? d->version : "?", d->abi_major, d->min_host_minor, path);
            return m;
        }
        if (m) {
            free(m->name);
            free(m);
        }
        m = NULL;
        snprintf(why, sizeof why, "out of memory");
    }
    /* Name the plugin in the refusal when its descriptor is readable. */
    if (d && d->size >= offsetof(struct ggl_plugin, name) + sizeof d->name && d->name) {
        char tmp[sizeof why];
        snprintf(tmp, sizeof tmp, "%s", why);
        snprintf(why, sizeof why, "plugin '%s' version %s: %s", d->name,
                 d->size >= offsetof(struct ggl_plugin, version) + sizeof d->version && d->version
                     ? d->version : "?", tmp);
    }
    close_handle(h);
refuse:
    snprintf(err, errlen, "refused %s: %s", path, why);
    log_error("%s", err);
    return NULL;
}

/* Find (kind, name)'s file in the plugin directories and load it as a new module. */
static struct module *load_by_name(enum ggl_kind kind, const char *name, char *err,
                                   size_t errlen)
{
    if (strchr(name, '/') || strstr(name, "..")) {
        snprintf(err, errlen, "plugin name '%s' must not contain '/' or '..'", name);
        log_error("%s", err);
        return NULL;
    }
    for (char **d = search_dirs; d && *d; d++) {
        static const char *const layouts[] = {"%s/%s/%s.so", "%s/%s/.libs/%s.so"};
        for (size_t i = 0; i < 2; i++) {
            char path[4096];
            snprintf(path, sizeof path, layouts[i], *d, ggl_kind_str(kind), name);
            if (access(path, R_OK) == 0) {
                struct module *m = loader_load_file(path, kind, err, errlen);
                if (m && strcmp(m->name, name) != 0)
                    log_warn("%s declares name '%s', not '%s'", path, m->name, name);
                return m;
            }
        }
    }
    snprintf(err, errlen, "plugin %s/%s not found in any plugin directory", ggl_kind_str(kind),
             name);
    log_error("%s", err);
    return NULL;
}

struct module *loader_load(enum ggl_kind kind, const char *name, char *err, size_t errlen)
{
    for (struct module *m = modules; m; m = m->next)
        if (m->kind == kind && strcmp(m->name, name) == 0 && !m->superseded)
            return m;
    return load_by_name(kind, name, err, errlen);
}

struct module *loader_reload(enum ggl_kind kind, const char *name, char *err, size_t errlen)
{
    struct module *fresh = load_by_name(kind, name, err, errlen);
    for (struct module *m = modules; fresh && m; m = m->next)
        if (m != fresh && m->kind == kind && strcmp(m->name, name) == 0)
            m->superseded = 1;
    return fresh;
}

void loader_unload(struct module *m)
{
    for (struct module **p = &modules; *p; p = &(*p)->next)
        if (*p == m) {
            *p = m->next;
            if (modules_tail == &m->next)
                modules_tail = p;
            break;
        }
    if (!m->superseded) { /* a failed reload: the newest older copy is current again */
        struct module *prev = NULL;
        for (struct module *o = modules; o; o = o->next)
            if (o->kind == m->kind && strcmp(o->name, m->name) == 0)
                prev = o;
        if (prev)
            prev->superseded = 0;
    }
    log_info("unloaded plugin %s/%s (from %s)", ggl_kind_str(m->kind), m->name, m->path);
    close_handle(m->handle);
    free(m->name);
    free(m->path);
    free(m);
}

struct module *loader_modules(void) { return modules; }

void loader_fini(void)
{
    while (modules) {
        struct module *m = modules;
        modules = m->next;
        close_handle(m->handle);
        free(m->name);
        free(m->path);
        free(m);
    }
    modules_tail = &modules;
    probe_forget();
    for (char **d = search_dirs; d && *d; d++)
        free(*d);
    free(search_dirs);
    search_dirs = NULL;
    if (private_dir) {
        rmdir(private_dir);
        free(private_dir);
        private_dir = NULL;
        pthread_mutex_lock(&lt_lock);
        lt_dlexit();
        pthread_mutex_unlock(&lt_lock);
    }
}
