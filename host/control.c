/* Control socket lifecycle: the `control { }` settings, the listeners (unix 0600 in a
 * directory that is not world-writable; optional loopback TCP), the I/O thread running
 * the libuv loop, and the drain-to-deadline shutdown.  Connections live in conn.c. */
#include "ggl-build.h"

#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "conn.h"
#include "log.h"
#include "metrics.h"

#define KEY(name, type, field, def, min, max, help) \
    {name, type, offsetof(struct control_settings, field), def, min, max, help}

static const struct conf_key control_keys[] = {
    KEY("unix", GGL_SETTING_STRING, unix_path, "/run/ganglion/ganglion.sock", 0, 0,
        "unix socket path (relative: to the working directory); \"\" disables it"),
    KEY("tcp_port", GGL_SETTING_INT, tcp_port, "0", 0, 65535, "TCP port; 0 disables TCP"),
    KEY("tcp_bind", GGL_SETTING_STRING, tcp_bind, "127.0.0.1", 0, 0, "TCP bind address"),
    KEY("password", GGL_SETTING_STRING, password, "", 0, 0, "AUTH password; \"\": none"),
    KEY("max_clients", GGL_SETTING_INT, max_clients, "1024", 1, 1000000, "connections at once"),
    KEY("max_request_bytes", GGL_SETTING_INT, max_request_bytes, "4194304", 1024, 1073741824,
        "largest request, and bytes buffered per connection"),
    KEY("max_args", GGL_SETTING_INT, max_args, "4096", 1, 1048576, "arguments per request"),
    KEY("max_output_bytes", GGL_SETTING_INT, max_output_bytes, "8388608", 4096, 4294967296.0,
        "replies queued per connection; a client over it is disconnected"),
    KEY("shutdown_deadline_ms", GGL_SETTING_INT, shutdown_deadline_ms, "5000", 0, 600000,
        "time in-flight requests get at shutdown"),
    KEY("request_timeout_ms", GGL_SETTING_INT, request_timeout_ms, "30000", 0, 3600000,
        "a request begun must be complete within this (slow clients); 0: no limit"),
    KEY("workers", GGL_SETTING_INT, workers, "1", 1, 64, "threads for off-loop commands"),
    KEY("worker_queue", GGL_SETTING_INT, worker_queue, "1024", 1, 1000000,
        "commands waiting for a worker before -BUSY"),
    KEY("debug_commands", GGL_SETTING_BOOL, debug_commands, "false", 0, 0,
        "enable DEBUG.* commands (tests)"),
};

int control_check(const struct config *c, struct control_settings *s, struct conf_error *err)
{
    if (config_read_section(c, c->control, control_keys,
                            sizeof control_keys / sizeof control_keys[0], s, err) < 0)
        return -1;
    if (!s->unix_path[0] && s->tcp_port == 0) {
        config_error_at(err, c, c->control, "control: set 'unix' or 'tcp_port' (or both)");
        return -1;
    }
    if (strlen(s->unix_path) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
        config_error_at(err, c, config_setting_get_member(c->control, "unix"),
                        "control: 'unix' path longer than %zu bytes",
                        sizeof(((struct sockaddr_un *)0)->sun_path) - 1);
        return -1;
    }
    return 0;
}

/* --- listeners --------------------------------------------------------------- */

/* A world-writable directory would let anyone replace the socket. */
static int check_socket_dir(const char *path, struct conf_error *err)
{
    char copy[PATH_MAX];
    snprintf(copy, sizeof copy, "%s", path);
    const char *dir = dirname(copy);
    struct stat st;
    if (stat(dir, &st) < 0) {
        snprintf(err->msg, sizeof err->msg, "control: socket directory %s: %s", dir, strerror(errno));
        return -1;
    }
    if (st.st_mode & S_IWOTH) {
        snprintf(err->msg, sizeof err->msg,
                 "control: socket directory %s is world-writable; refusing to listen there", dir);
        return -1;
    }
    return 0;
}

/* Remove a socket file nobody listens on (left by a crash); refuse a live one. */
static int clear_stale_socket(const char *path, struct conf_error *err)
{
    struct stat st;
    if (lstat(path, &st) < 0)
        return 0;
    if (!S_ISSOCK(st.st_mode)) {
        snprintf(err->msg, sizeof err->msg, "control: %s exists and is not a socket", path);
        return -1;
    }
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int live = fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
    if (fd >= 0)
        close(fd);
    if (live) {
        snprintf(err->msg, sizeof err->msg, "control: %s: another process is listening", path);
        return -1;
    }
    unlink(path);
    return 0;
}

static int listen_unix(struct control *ctl, struct conf_error *err)
{
    const char *path = ctl->set.unix_path;
    if (check_socket_dir(path, err) < 0 || clear_stale_socket(path, err) < 0)
        return -1;
    int rc = uv_pipe_init(&ctl->loop, &ctl->unix_srv, 0);
    if (rc == 0)
        rc = uv_pipe_bind(&ctl->unix_srv, path);
    if (rc == 0)
        ctl->unix_bound = 1;
    if (rc == 0 && chmod(path, 0600) < 0) /* before listen: nobody can connect yet */
        rc = uv_translate_sys_error(errno);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&ctl->unix_srv, 511, conn_accept);
    if (rc < 0) {
        snprintf(err->msg, sizeof err->msg, "control: unix socket %s: %s", path, uv_strerror(rc));
        return -1;
    }
    ctl->have_unix = 1;
    log_info("control: listening on %s", path);
    return 0;
}

static int listen_tcp(struct control *ctl, struct conf_error *err)
{
    struct sockaddr_storage sa;
    const char *host = ctl->set.tcp_bind;
    int port = (int)ctl->set.tcp_port;
    int rc = strchr(host, ':') ? uv_ip6_addr(host, port, (struct sockaddr_in6 *)&sa)
                               : uv_ip4_addr(host, port, (struct sockaddr_in *)&sa);
    if (rc == 0)
        rc = uv_tcp_init(&ctl->loop, &ctl->tcp_srv);
    if (rc == 0) {
        ctl->have_tcp = 1;
        rc = uv_tcp_bind(&ctl->tcp_srv, (struct sockaddr *)&sa, 0);
    }
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&ctl->tcp_srv, 511, conn_accept);
    if (rc < 0) {
        snprintf(err->msg, sizeof err->msg, "control: tcp %s:%d: %s", host, port, uv_strerror(rc));
        return -1;
    }
    log_info("control: listening on %s:%d", host, port);
    return 0;
}

/* --- shutdown ---------------------------------------------------------------- */

static void close_handle(uv_handle_t *h)
{
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

/* Everything is drained (or the deadline passed): release the loop's last handles. */
void control_maybe_finish(struct control *ctl)
{
    if (!ctl->stopping || ctl->conns || ctl->finished)
        return;
    ctl->finished = 1;
    offload_stop(ctl->pool);
    close_handle((uv_handle_t *)&ctl->deadline);
    close_handle((uv_handle_t *)&ctl->sweep);
    close_handle((uv_handle_t *)&ctl->stop_async);
}

static void on_deadline(uv_timer_t *t)
{
    struct control *ctl = t->data;
    if (ctl->conns)
        log_warn("control: shutdown deadline passed; closing %zu connections", ctl->n_conns);
    while (ctl->conns) /* conn_close unlinks it at once */
        conn_close(ctl->conns);
    control_maybe_finish(ctl);
}

static void on_stop(uv_async_t *a)
{
    struct control *ctl = a->data;
    if (ctl->stopping)
        return;
    ctl->stopping = 1;
    if (ctl->have_unix)
        close_handle((uv_handle_t *)&ctl->unix_srv);
    if (ctl->have_tcp)
        close_handle((uv_handle_t *)&ctl->tcp_srv);
    for (struct conn *c = ctl->conns, *next; c; c = next) {
        next = c->next;
        conn_drain(c);
    }
    uv_timer_start(&ctl->deadline, on_deadline, (uint64_t)ctl->set.shutdown_deadline_ms, 0);
    control_maybe_finish(ctl);
}

/* --- the I/O thread ------------------------------------------------------- */

static void *io_main(void *arg)
{
    struct control *ctl = arg;
    uv_run(&ctl->loop, UV_RUN_DEFAULT);
    return NULL;
}

static void register_metrics(struct control *ctl)
{
    struct control_metrics *m = &ctl->m;
#define M(field, type, name, help) m->field = metrics_register_in("control", type, name, help, NULL)
    M(clients, GGL_METRIC_GAUGE, "control_clients", "connected clients");
    M(connections, GGL_METRIC_COUNTER, "control_connections", "connections accepted");
    M(rejected, GGL_METRIC_COUNTER, "control_rejected", "connections refused: max_clients");
    M(commands, GGL_METRIC_COUNTER, "control_commands", "requests processed");
    M(protocol_errors, GGL_METRIC_COUNTER, "control_protocol_errors",
      "connections closed for a malformed or oversized request");
    M(output_limit, GGL_METRIC_COUNTER, "control_output_limit",
      "connections closed at max_output_bytes (client not reading)");
    M(request_timeouts, GGL_METRIC_COUNTER, "control_request_timeouts",
      "connections closed: a request not completed within request_timeout_ms");
#undef M
}

static void close_walked(uv_handle_t *h, void *arg)
{
    (void)arg;
    close_handle(h);
}

/* Free a control whose loop is not running (stopped, or half built). */
static void control_free(struct control *ctl)
{
    uv_walk(&ctl->loop, close_walked, NULL);
    uv_run(&ctl->loop, UV_RUN_DEFAULT);
    uv_loop_close(&ctl->loop);
    if (ctl->unix_bound)
        unlink(ctl->set.unix_path);
    free(ctl);
}

/* Everything but the listeners and the I/O thread: settings, loop, metrics, workers. */
static struct control *control_new(const struct config *c, const struct instance *inst, size_t n,
                                   struct conf_error *err)
{
    struct control *ctl = calloc(1, sizeof *ctl);
    if (!ctl) {
        snprintf(err->msg, sizeof err->msg, "control: out of memory");
        return NULL;
    }
    if (control_check(c, &ctl->set, err) < 0) {
        free(ctl);
        return NULL;
    }
    if (!c->control) { /* an explicit choice: a config without the section has no socket */
        log_info("control: no 'control' section; control socket disabled");
        ctl->disabled = 1;
        return ctl;
    }
    if (uv_loop_init(&ctl->loop) != 0) {
        snprintf(err->msg, sizeof err->msg, "control: cannot start an event loop");
        free(ctl);
        return NULL;
    }
    ctl->conf = c;
    ctl->inst = inst;
    ctl->n_inst = n;
    clock_gettime(CLOCK_MONOTONIC, &ctl->started);
    register_metrics(ctl);
    uv_async_init(&ctl->loop, &ctl->stop_async, on_stop);
    ctl->stop_async.data = ctl;
    uv_timer_init(&ctl->loop, &ctl->deadline);
    ctl->deadline.data = ctl;
    uv_timer_init(&ctl->loop, &ctl->sweep);
    ctl->sweep.data = ctl;
    ctl->loop.data = ctl;
    ctl->pool = offload_new(&ctl->loop, (int)ctl->set.workers, (size_t)ctl->set.worker_queue,
                            conn_job_done, ctl);
    if (!ctl->pool) {
        snprintf(err->msg, sizeof err->msg, "control: cannot start worker threads");
        control_free(ctl);
        return NULL;
    }
    return ctl;
}

struct control *control_start(const struct config *c, const struct instance *inst, size_t n,
                              struct conf_error *err)
{
    struct control *ctl = control_new(c, inst, n, err);
    if (!ctl || ctl->disabled)
        return ctl;
    if ((ctl->set.unix_path[0] && listen_unix(ctl, err) < 0) ||
        (ctl->set.tcp_port && listen_tcp(ctl, err) < 0))
        goto fail;
    if (ctl->set.request_timeout_ms) { /* a late request is closed within a quarter more */
        uint64_t every = (uint64_t)ctl->set.request_timeout_ms / 4 + 1;
        uv_timer_start(&ctl->sweep, conn_sweep, every, every);
    }
    if (pthread_create(&ctl->thread, NULL, io_main, ctl) != 0) {
        snprintf(err->msg, sizeof err->msg, "control: cannot start the I/O thread");
        goto fail;
    }
    return ctl;
fail:
    offload_stop(ctl->pool);
    control_free(ctl);
    return NULL;
}

struct control *control_new_offline(const struct config *c, const struct instance *inst,
                                    size_t n, struct conf_error *err)
{
    struct control *ctl = control_new(c, inst, n, err);
    if (ctl && ctl->disabled) {
        snprintf(err->msg, sizeof err->msg, "control: no 'control' section");
        free(ctl);
        return NULL;
    }
    return ctl;
}

void control_free_offline(struct control *ctl)
{
    if (!ctl)
        return;
    ctl->stopping = 1;
    control_maybe_finish(ctl); /* stops the workers */
    control_free(ctl);
}

void control_stop(struct control *ctl)
{
    if (!ctl)
        return;
    if (ctl->disabled) {
        free(ctl);
        return;
    }
    uv_async_send(&ctl->stop_async);
    pthread_join(ctl->thread, NULL);
    control_free(ctl);
}

/* --- for command handlers ------------------------------------------------- */

const struct control_settings *control_settings_of(const struct control *ctl) { return &ctl->set; }

const struct instance *control_instances(const struct control *ctl, size_t *n)
{
    *n = ctl->n_inst;
    return ctl->inst;
}

const char *control_config_path(const struct control *ctl) { return ctl->conf->path; }

double control_uptime(const struct control *ctl)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - ctl->started.tv_sec) +
           (double)(now.tv_nsec - ctl->started.tv_nsec) / 1e9;
}

/* main() sigwaits for SIGTERM (blocked in every thread), then calls control_stop. */
void control_request_shutdown(struct control *ctl)
{
    (void)ctl;
    log_info("control: SHUTDOWN requested");
    kill(getpid(), SIGTERM);
}
