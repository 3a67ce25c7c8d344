/* Plugin loader (libltdl): finds <dir>/<kind>/<name>.so, copies it into a private 0700
 * directory under a unique name, opens that copy locally by absolute path and checks
 * its descriptor and vtable against this host's ABI. */
#ifndef GGL_HOST_LOADER_H
#define GGL_HOST_LOADER_H

#include <stddef.h>
#include <ganglion/abi.h>

struct module {
    enum ggl_kind kind;
    char *name;
    char *path;                     /* the file it was loaded from */
    void *handle;                   /* lt_dlhandle */
    const struct ggl_plugin *desc;
    int superseded;                 /* a newer copy was loaded (loader_reload) */
    struct module *next;
};

/* Start the loader over NULL-terminated `dirs` (copied). */
int loader_init(const char *const *dirs, char *err, size_t errlen);
/* Load (or return the already loaded) plugin (kind, name).  On refusal logs one line
 * naming file, plugin and versions, writes it to err and returns NULL. */
struct module *loader_load(enum ggl_kind kind, const char *name, char *err, size_t errlen);
/* Load a plugin from an explicit file, expecting `kind` (0: any).  Used by the probe. */
struct module *loader_load_file(const char *path, enum ggl_kind kind, char *err, size_t errlen);
/* Load (kind, name) again from its file as a new module (a new private copy: new code
 * if the file changed), checked like any load; older copies become `superseded` and
 * loader_load returns the new one from now on.  NULL (err filled): nothing changed. */
struct module *loader_reload(enum ggl_kind kind, const char *name, char *err, size_t errlen);
/* Close and forget a module no instance uses any more (hot-swap). */
void loader_unload(struct module *m);
/* Loaded modules, oldest first. */
struct module *loader_modules(void);
/* Unload everything and remove the private directory. */
void loader_fini(void);

/* The vtable checks alone, for tests: 0 if acceptable, else -1 with a reason. */
int loader_check(const struct ggl_plugin *desc, enum ggl_kind expect, char *why, size_t len);

#endif
