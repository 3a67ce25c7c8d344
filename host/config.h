/* Host configuration (libconfig 1.5): the file's top level, named plugin instances,
 * tier slots, and a table-driven reader that components use for their own sections.
 * Every error is "FILE:LINE: message". */
#ifndef GGL_HOST_CONFIG_H
#define GGL_HOST_CONFIG_H

#include <stddef.h>
#include <libconfig.h>
#include <ganglion/abi.h>

struct conf_error {
    char msg[512];
};

enum tier_slot { SLOT_CACHE, SLOT_STM, SLOT_IM, SLOT_LTM, SLOT_COUNT };
extern const char *const tier_slot_names[SLOT_COUNT];

/* One named instance: a block under backends/processors/executors/sensors. */
struct conf_instance {
    const char *name;           /* the block's name */
    const char *plugin;         /* plugin = "..." */
    enum ggl_kind kind;         /* from the section it is declared in */
    int required;               /* required = true: refusal stops the host */
    int64_t interval_ms;        /* sensors: sampling interval */
    config_setting_t *block;
};

struct config {
    config_t cfg;
    char *path;
    const char **plugin_dirs;   /* NULL-terminated; empty = the default directory */
    const char *log_level;
    config_setting_t *control;  /* sections read by their components (may be NULL) */
    config_setting_t *pools;
    config_setting_t *memory;
    config_setting_t *health;
    config_setting_t *environment;
    config_setting_t *engine;
    config_setting_t *plugins;  /* plugins { probe ... } (host/probe.c) */
    struct conf_instance *instances; /* backends, processors, executors, sensors in file order */
    size_t n_instances;
    const char *slots[SLOT_COUNT];   /* instance bound to each tier slot, or NULL */
};

/* One key of a host section: read into *(dst + offset) as int64_t, double, int or
 * const char *.  Numbers outside [min, max] are errors (min == max: no range). */
struct conf_key {
    const char *name;
    enum ggl_setting_type type;
    size_t offset;
    const char *def;
    double min, max;
    const char *help;
};

/* Parse and check the file.  On error returns NULL and fills err. */
struct config *config_load(const char *path, struct conf_error *err);
/* Parse text as if it were a file named `name` in directory `dir` (fuzzing, tests). */
struct config *config_load_string(const char *text, const char *name, struct conf_error *err);
void config_free(struct config *c);

/* Read a host section (a group, or NULL for all defaults) into dst via keys[n]. */
int config_read_section(const struct config *c, const config_setting_t *section,
                        const struct conf_key *keys, size_t n, void *dst,
                        struct conf_error *err);

/* The same, also allowing the member names in `others` (NULL-terminated), whatever
 * their type: lists and arrays the caller reads itself. */
int config_read_section_with(const struct config *c, const config_setting_t *section,
                             const struct conf_key *keys, size_t n, const char *const *others,
                             void *dst, struct conf_error *err);

/* Check an instance's block against the plugin's declared settings. */
int config_check_instance(const struct config *c, const struct conf_instance *inst,
                          const struct ggl_setting *settings, struct conf_error *err);

/* The instance of `kind` named `name`, or NULL.  Names are unique per kind. */
const struct conf_instance *config_instance(const struct config *c, enum ggl_kind kind,
                                           const char *name);

/* Format "FILE:LINE: " for a setting into err and append the message. */
void config_error_at(struct conf_error *err, const struct config *c,
                     const config_setting_t *s, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif
