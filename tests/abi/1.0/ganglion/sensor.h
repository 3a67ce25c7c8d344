/* Sensor vtable: samples the environment (CPU, memory, disk, backend health) at the
 * interval its config gives and reports readings through the host's emit callback. */
#ifndef GANGLION_SENSOR_H
#define GANGLION_SENSOR_H

#include <ganglion/host.h>

#ifdef __cplusplus
extern "C" {
#endif

/* One reading: a numeric value and, optionally, text (NULL when none).  The host
 * stores it in the environment state under "<instance>.<key>". */
typedef void (*ggl_emit_fn)(void *sink, const char *key, double value, const char *text);

struct ggl_sensor {
    uint32_t size;  /* sizeof(struct ggl_sensor) the plugin was built with */
    uint32_t flags; /* unused for now; 0 */

    /* Mandatory. */
    enum ggl_status (*open)(const struct ggl_host *host, const struct ggl_conf *conf, void **self);
    void (*close)(void *self);
    /* Take one sample, calling emit(sink, ...) once per reading. */
    enum ggl_status (*sample)(void *self, ggl_emit_fn emit, void *sink);
};

#ifdef __cplusplus
}
#endif
#endif
