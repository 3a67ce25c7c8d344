/* ganglion-probe KIND FILE: load one plugin file, check its descriptor, open it once
 * with its default settings and close it, in a process of its own.  The host reads the
 * verdict from how this ends: exit 0 (loadable), exit 3 with a line saying why, or the
 * signal that killed it (a crash) -- or no end at all (a hang, killed at the deadline). */
#include "ggl-build.h"

#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ganglion/ganglion.h>

#include "hostapi.h"
#include "instance.h"
#include "loader.h"
#include "log.h"

static void quiet(enum ggl_log_level level, const char *line, void *arg)
{
    (void)level, (void)line, (void)arg; /* refusals are printed once, below */
}

/* A plugin that writes files with its defaults (a database path) writes them here. */
static void enter_scratch_dir(char *dir, size_t len)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, len, "%s/ganglion-probe-XXXXXX", tmp && tmp[0] ? tmp : "/tmp");
    if (!mkdtemp(dir) || chdir(dir) < 0)
        dir[0] = '\0';
}

static void remove_scratch_dir(const char *dir)
{
    DIR *d = dir[0] ? opendir(dir) : NULL;
    for (struct dirent *e; d && (e = readdir(d));)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            unlinkat(dirfd(d), e->d_name, 0);
    if (d)
        closedir(d);
    if (dir[0] && chdir("/") == 0)
        rmdir(dir);
}

static enum ggl_kind kind_of(const char *s)
{
    for (uint32_t k = GGL_KIND_TIER; k <= GGL_KIND_SENSOR; k++)
        if (strcmp(s, ggl_kind_str(k)) == 0)
            return (enum ggl_kind)k;
    return 0; /* "any" */
}

int main(int argc, char **argv)
{
    /* The kernel's verdict, not a sanitizer's report: the host names the signal. */
    static const int fatal[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT};
    for (size_t i = 0; i < sizeof fatal / sizeof fatal[0]; i++)
        signal(fatal[i], SIG_DFL);
    if (argc != 3) {
        fprintf(stderr, "usage: ganglion-probe KIND FILE\n");
        return 2;
    }
    log_set_sink(quiet, NULL);
    char err[512], dir[512];
    if (loader_init(NULL, err, sizeof err) < 0) {
        printf("%s\n", err);
        return 3;
    }
    struct module *m = loader_load_file(argv[2], kind_of(argv[1]), err, sizeof err);
    if (!m) {
        printf("%s\n", err);
        loader_fini();
        return 3;
    }
    enter_scratch_dir(dir, sizeof dir);
    const struct vtable_head *vt = m->desc->vtable;
    struct ggl_conf conf = {NULL, m->desc->settings}; /* every setting at its default */
    struct ggl_host host;
    void *self = NULL;
    hostapi_init(&host, m->name);
    enum ggl_status st = vt->open(&host, &conf, &self);
    if (st == GGL_OK)
        vt->close(self);
    printf("open: %s\n", ggl_status_str(st)); /* a refusal to open is not a crash */
    remove_scratch_dir(dir);
    loader_fini();
    return 0;
}
