/* ganglion plugin ABI: version numbers, status codes, kinds, flags and the one
 * descriptor every plugin exports as `ggl_plugin_entry`.  Append-only: every struct
 * that crosses the boundary begins with `uint32_t size`; readers check it. */
#ifndef GANGLION_ABI_H
#define GANGLION_ABI_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define GGL_ABI_MAJOR 1
#define GGL_ABI_MINOR 4  /* 1.1: tier get_into, take_reads; 1.2: host task_cancelled;
                            1.3: tier del_older_batch; 1.4: tier max_version */

/* Return codes of every fallible call.  After a non-OK return a plugin may leave a
 * human-readable reason with host->set_reason(); dead letters and HEALTH show it. */
enum ggl_status {
    GGL_OK = 0,
    GGL_NOTFOUND = 1,    /* no such key / task / action */
    GGL_RETRY = 2,       /* transient: backend down, busy; the host may retry */
    GGL_INVALID = 3,     /* bad input; never retried */
    GGL_NOMEM = 4,       /* allocation failed */
    GGL_ERROR = 5,       /* anything else; not retried */
    GGL_CONFLICT = 6,    /* a conditional write's condition did not hold */
    GGL_UNAVAILABLE = 7  /* the service is not provided by this host (yet) */
};

enum ggl_kind {
    GGL_KIND_TIER = 1,
    GGL_KIND_PROCESSOR = 2,
    GGL_KIND_EXECUTOR = 3,
    GGL_KIND_SENSOR = 4
};

/* Concurrency flags, set in a vtable's `flags`. */
#define GGL_READS_CONCURRENT  (1u << 0) /* read slots may run on many threads at once */
#define GGL_WRITES_CONCURRENT (1u << 1) /* write slots may run on many threads at once */
#define GGL_NONBLOCKING       (1u << 2) /* no slot ever blocks: callable on the I/O thread */

/* Types of a plugin's configuration settings. */
enum ggl_setting_type {
    GGL_SETTING_INT = 1,    /* 64-bit integer */
    GGL_SETTING_FLOAT = 2,  /* double; an integer literal is accepted */
    GGL_SETTING_BOOL = 3,
    GGL_SETTING_STRING = 4
};

/* One configuration key a plugin accepts.  Arrays end with an entry whose name is NULL. */
struct ggl_setting {
    uint32_t size;                  /* sizeof(struct ggl_setting) the plugin was built with */
    const char *name;               /* key in the instance's config block */
    enum ggl_setting_type type;
    const char *default_value;      /* default as text ("64", "0.5", "true", "x"); NULL = none */
    const char *description;        /* one line for `ganglion --describe` */
};

/* The descriptor.  A host accepts it when abi_major matches its own and
 * min_host_minor <= the host's minor. */
struct ggl_plugin {
    uint32_t size;                  /* sizeof(struct ggl_plugin) at build time */
    uint32_t abi_major;             /* GGL_ABI_MAJOR the plugin was built against */
    uint32_t min_host_minor;        /* oldest host minor whose services it needs */
    uint32_t kind;                  /* enum ggl_kind */
    const char *name;               /* unique within its kind: (kind, name) identifies it */
    const char *version;            /* the plugin's own version, free text */
    const char *description;        /* one line */
    const struct ggl_setting *settings; /* NULL-name-terminated, or NULL for none */
    const void *vtable;             /* struct ggl_tier / ggl_processor / ggl_executor / ggl_sensor */
};

#if defined(__GNUC__)
#define GGL_EXPORT __attribute__((visibility("default")))
#else
#define GGL_EXPORT
#endif

/* Defines the plugin's one exported symbol.  `settings` may be NULL.  The plugin loads
 * on every host of this major: one that uses a service or slot added in minor N says
 * so with GGL_PLUGIN_DEFINE_MIN(N, ...) (and still checks GGL_HAS_SLOT at run time). */
#define GGL_PLUGIN_DEFINE(kind_, name_, version_, description_, settings_, vtable_) \
    GGL_PLUGIN_DEFINE_MIN(0, kind_, name_, version_, description_, settings_, vtable_)
#define GGL_PLUGIN_DEFINE_MIN(minor_, kind_, name_, version_, description_, settings_, vtable_) \
    GGL_EXPORT const struct ggl_plugin ggl_plugin_entry = {                         \
        sizeof(struct ggl_plugin), GGL_ABI_MAJOR, (minor_), (kind_), (name_),       \
        (version_), (description_), (settings_), (vtable_)}

/* Shorthand for one row of a settings array. */
#define GGL_SETTING(name_, type_, default_, description_) \
    {sizeof(struct ggl_setting), (name_), (type_), (default_), (description_)}
#define GGL_SETTINGS_END {sizeof(struct ggl_setting), NULL, 0, NULL, NULL}

/* Plain text for a status ("OK", "NOTFOUND", ...).  Static inline: needs no host. */
static inline const char *ggl_status_str(enum ggl_status s)
{
    static const char *const names[] = {"OK", "NOTFOUND", "RETRY", "INVALID",
                                        "NOMEM", "ERROR", "CONFLICT", "UNAVAILABLE"};
    return (unsigned)s < sizeof(names) / sizeof(names[0]) ? names[s] : "UNKNOWN";
}

/* Plain text for a kind ("tier", ...), the directory plugins of that kind live in. */
static inline const char *ggl_kind_str(uint32_t kind)
{
    static const char *const names[] = {NULL, "tier", "processor", "executor", "sensor"};
    return kind >= 1 && kind <= 4 ? names[kind] : NULL;
}

#ifdef __cplusplus
}
#endif
#endif
