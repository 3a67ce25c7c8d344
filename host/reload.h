/* CONFIG.RELOAD / SIGHUP and PLUGIN.RELOAD: validate and open everything new before
 * touching what runs, then apply only the differences (reload.c). */
#ifndef GGL_HOST_RELOAD_H
#define GGL_HOST_RELOAD_H

#include <ganglion/abi.h>

#define RELOAD_LINES 48

/* What a reload did, one line per change, or why it changed nothing. */
struct reload_report {
    int n;
    char lines[RELOAD_LINES][256];
    enum ggl_status status;      /* GGL_OK, or the refusal: INVALID (config), ERROR (open) */
    char error[600];             /* "FILE:LINE: message" for a config or open failure */
};

/* Reload the running config file (registry_config()->path).  -1: nothing changed. */
int reload_config(struct reload_report *rep);
/* Load kind/name's file again and move its instances onto the new code. */
int reload_plugin(const char *spec, struct reload_report *rep);

struct cmd_call;
void cmd_config_reload(struct cmd_call *call);
void cmd_plugin_reload(struct cmd_call *call);

#endif
