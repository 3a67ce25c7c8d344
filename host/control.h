/* The control socket: RESP2 on a unix socket (and optionally loopback TCP), served by
 * a libuv loop on its own I/O thread.  main() starts it after the plugins are open and
 * stops it on SIGTERM/SIGINT; SHUTDOWN raises SIGTERM so both paths are one. */
#ifndef GGL_HOST_CONTROL_H
#define GGL_HOST_CONTROL_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "instance.h"

struct control_settings {
    const char *unix_path;        /* "" disables the unix socket */
    int64_t tcp_port;             /* 0 disables TCP */
    const char *tcp_bind;
    const char *password;         /* "" : no AUTH */
    int64_t max_clients;
    int64_t max_request_bytes;
    int64_t max_args;
    int64_t max_output_bytes;
    int64_t shutdown_deadline_ms;
    int64_t request_timeout_ms;   /* a request begun must be complete by then; 0: never */
    int64_t workers;
    int64_t worker_queue;
    int debug_commands;
};

struct control;

/* Read and check the `control { }` section (what `ganglion -t` runs). */
int control_check(const struct config *c, struct control_settings *out, struct conf_error *err);
/* Bind the sockets and start the I/O thread.  inst[n] is borrowed for PLUGIN.LIST and
 * must outlive control_stop.  Returns NULL with err filled on failure.  A config
 * without a `control` section gets a handle that serves nothing. */
struct control *control_start(const struct config *c, const struct instance *inst, size_t n,
                              struct conf_error *err);
/* Stop accepting, let in-flight requests finish until the deadline, close every
 * connection, join the I/O thread and free everything.  NULL is a no-op. */
void control_stop(struct control *ctl);
/* A control with its workers but no listeners and no I/O thread: the caller runs
 * ctl's loop and feeds connections made with conn_new_detached (fuzz/fuzz_request.c).
 * NULL with err filled on failure, or when c has no control section. */
struct control *control_new_offline(const struct config *c, const struct instance *inst,
                                    size_t n, struct conf_error *err);
void control_free_offline(struct control *ctl); /* its connections freed first */

/* For command handlers (I/O thread). */
const struct control_settings *control_settings_of(const struct control *ctl);
const struct instance *control_instances(const struct control *ctl, size_t *n);
const char *control_config_path(const struct control *ctl);
double control_uptime(const struct control *ctl);
/* Begin a clean shutdown of the whole process (SHUTDOWN). */
void control_request_shutdown(struct control *ctl);

#endif
