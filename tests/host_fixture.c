/* The host fixture: everything a test of host components needs up to memory_init, and
 * the matching teardown, in one place. */
#include "ggl-build.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "host_fixture.h"
#include "loader.h"
#include "log.h"

int host_fixture_open(struct host_fixture *f, const char *conf_fmt)
{
    static const char *const dirs[] = {TEST_PLUGINDIR, BUILD_PLUGINDIR, NULL};
    char text[4096], err[256];
    struct conf_error cerr = {{0}};
    memset(f, 0, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/ggl-fixture-XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    snprintf(text, sizeof text, conf_fmt, f->dir);
    log_set_level(GGL_LOG_WARN);
    if (loader_init(dirs, err, sizeof err) < 0) {
        fprintf(stderr, "fixture: %s\n", err);
        return -1;
    }
    if (!(f->conf = config_load_string(text, "fixture.conf", &cerr)) ||
        instances_open(f->conf, &f->inst, &f->n, &cerr) < 0 ||
        memory_init(f->conf, f->inst, f->n, &cerr) < 0) {
        fprintf(stderr, "fixture: %s\n", cerr.msg);
        return -1;
    }
    return 0;
}

void host_fixture_close(struct host_fixture *f)
{
    memory_set_hook(NULL);
    memory_fini();
    instances_close(f->inst, f->n);
    config_free(f->conf);
    loader_fini();
    DIR *d = opendir(f->dir);
    for (struct dirent *e; d && (e = readdir(d));) {
        char p[sizeof f->dir + 260];
        snprintf(p, sizeof p, "%s/%s", f->dir, e->d_name);
        if (e->d_name[0] != '.')
            unlink(p);
    }
    if (d)
        closedir(d);
    rmdir(f->dir);
}
