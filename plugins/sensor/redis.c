/* sensor/redis: is a Redis server reachable, how fast does it answer, and selected
 * INFO fields.  Each sample (re)connects if needed (redisConnectWithTimeout: a dead
 * hiredis 0.14 context is freed, never reused), sends PING and INFO under a command
 * timeout, and reports
 *   up           1 reachable, 0 not (then also `error`, text, and the sample answers
 *                GGL_RETRY so the host backs its interval off while it stays down)
 *   latency_ms   PING round trip, measured on CLOCK_MONOTONIC (a duration, not a time
 *                of day: the host clock has whole-millisecond steps and may be fake)
 *   <field>      each INFO field named in `fields`: numbers as values, others as text
 * A sample never waits longer than connect_timeout_ms + 2 * command_timeout_ms. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <hiredis/hiredis.h>

#include <ganglion/ganglion.h>

struct rsensor {
    const struct ggl_host *host;
    const char *addr, *unix_socket, *password, *fields;
    int64_t port, connect_timeout_ms, command_timeout_ms;
    redisContext *ctx;
    char where[160];
    char last_error[256];       /* why the last sample found it down */
};

static const struct ggl_setting settings[] = {
    GGL_SETTING("host", GGL_SETTING_STRING, "127.0.0.1", "Redis server address"),
    GGL_SETTING("port", GGL_SETTING_INT, "6379", "Redis server port"),
    GGL_SETTING("unix_socket", GGL_SETTING_STRING, "", "unix socket path instead of host/port"),
    GGL_SETTING("password", GGL_SETTING_STRING, "", "AUTH password; \"\": none"),
    GGL_SETTING("connect_timeout_ms", GGL_SETTING_INT, "500", "longest wait for a connection"),
    GGL_SETTING("command_timeout_ms", GGL_SETTING_INT, "500", "longest wait for PING or INFO"),
    GGL_SETTING("fields", GGL_SETTING_STRING,
                "used_memory,connected_clients,instantaneous_ops_per_sec,uptime_in_seconds,role",
                "comma list of INFO fields reported"),
    GGL_SETTINGS_END};

static struct timeval ms_tv(int64_t ms)
{
    return (struct timeval){.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
}

static enum ggl_status rs_open(const struct ggl_host *host, const struct ggl_conf *conf, void **self)
{
    struct rsensor *r = calloc(1, sizeof *r);
    if (!r)
        return GGL_NOMEM;
    r->host = host;
    host->conf_string(conf, "host", &r->addr);
    host->conf_int(conf, "port", &r->port);
    host->conf_string(conf, "unix_socket", &r->unix_socket);
    host->conf_string(conf, "password", &r->password);
    host->conf_int(conf, "connect_timeout_ms", &r->connect_timeout_ms);
    host->conf_int(conf, "command_timeout_ms", &r->command_timeout_ms);
    host->conf_string(conf, "fields", &r->fields);
    if (r->port < 1 || r->port > 65535 || r->connect_timeout_ms < 1 || r->command_timeout_ms < 1) {
        host->set_reason(host, "port must be 1..65535 and timeouts >= 1 ms");
        free(r);
        return GGL_INVALID;
    }
    if (r->unix_socket[0])
        snprintf(r->where, sizeof r->where, "%s", r->unix_socket);
    else
        snprintf(r->where, sizeof r->where, "%s:%lld", r->addr, (long long)r->port);
    *self = r;
    return GGL_OK;
}

static void drop_context(struct rsensor *r)
{
    if (r->ctx)
        redisFree(r->ctx);
    r->ctx = NULL;
}

static void rs_close(void *self)
{
    drop_context(self);
    free(self);
}

/* Remember why it is down, leave it as the reason, and drop the dead context. */
static void failed(struct rsensor *r, const char *what, const char *why)
{
    snprintf(r->last_error, sizeof r->last_error, "redis %s: %s: %s", r->where, what, why);
    r->host->set_reason(r->host, "%s", r->last_error);
    drop_context(r);
}

/* Send one command; NULL (context dropped, reason left) unless a non-error reply came. */
static redisReply *command(struct rsensor *r, const char *what, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *rep = redisvCommand(r->ctx, fmt, ap);
    va_end(ap);
    if (rep && rep->type != REDIS_REPLY_ERROR)
        return rep;
    char why[160];
    snprintf(why, sizeof why, "%s", rep ? rep->str : r->ctx->errstr[0] ? r->ctx->errstr : "no reply");
    if (rep)
        freeReplyObject(rep);
    failed(r, what, why);
    return NULL;
}

static int connect_server(struct rsensor *r)
{
    struct timeval tv = ms_tv(r->connect_timeout_ms);
    r->ctx = r->unix_socket[0] ? redisConnectUnixWithTimeout(r->unix_socket, tv)
                               : redisConnectWithTimeout(r->addr, (int)r->port, tv);
    if (!r->ctx || r->ctx->err) {
        char why[160];
        snprintf(why, sizeof why, "%s", r->ctx ? r->ctx->errstr : "out of memory");
        failed(r, "connect", why);
        return -1;
    }
    redisSetTimeout(r->ctx, ms_tv(r->command_timeout_ms));
    if (r->password[0]) {
        redisReply *rep = command(r, "AUTH", "AUTH %s", r->password);
        if (!rep)
            return -1;
        freeReplyObject(rep);
    }
    return 0;
}

static double elapsed_ms(const struct timespec *a)
{
    struct timespec b;
    clock_gettime(CLOCK_MONOTONIC, &b);
    return (double)(b.tv_sec - a->tv_sec) * 1e3 + (double)(b.tv_nsec - a->tv_nsec) / 1e6;
}

/* Report the INFO fields asked for, from "name:value\r\n" lines. */
static void emit_fields(const struct rsensor *r, const char *info, ggl_emit_fn emit, void *sink)
{
    for (const char *f = r->fields; *f;) {
        size_t n = strcspn(f, ",");
        char name[64], pat[68], value[128];
        if (n && n < sizeof name) {
            memcpy(name, f, n);
            name[n] = '\0';
            snprintf(pat, sizeof pat, "\n%s:", name);
            const char *at = strncmp(info, pat + 1, n + 1) == 0 ? info : strstr(info, pat);
            if (at) {
                at += n + 1 + (at != info);
                size_t vl = strcspn(at, "\r\n");
                snprintf(value, sizeof value, "%.*s", (int)vl, at);
                char *end;
                double num = strtod(value, &end);
                if (end != value && *end == '\0')
                    emit(sink, name, num, NULL);
                else
                    emit(sink, name, 0, value);
            }
        }
        f += n + (f[n] == ',');
    }
}

/* Down is a reading, not a crash: up = 0 and why. */
static enum ggl_status report_down(struct rsensor *r, ggl_emit_fn emit, void *sink)
{
    emit(sink, "up", 0, NULL);
    emit(sink, "error", 0, r->last_error);
    return GGL_RETRY;
}

static enum ggl_status rs_sample(void *self, ggl_emit_fn emit, void *sink)
{
    struct rsensor *r = self;
    if (!r->ctx && connect_server(r) < 0)
        return report_down(r, emit, sink);
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    redisReply *rep = command(r, "PING", "PING");
    if (!rep)
        return report_down(r, emit, sink);
    double latency = elapsed_ms(&t0);
    freeReplyObject(rep);
    if (!(rep = command(r, "INFO", "INFO")))
        return report_down(r, emit, sink);
    emit(sink, "up", 1, NULL);
    emit(sink, "latency_ms", latency, NULL);
    if (rep->type == REDIS_REPLY_STRING)
        emit_fields(r, rep->str, emit, sink);
    freeReplyObject(rep);
    return GGL_OK;
}

static const struct ggl_sensor vtable = {
    .size = sizeof(struct ggl_sensor),
    .open = rs_open,
    .close = rs_close,
    .sample = rs_sample,
};

GGL_PLUGIN_DEFINE(GGL_KIND_SENSOR, "redis", "0.1.0",
                  "Redis reachability, PING latency and selected INFO fields", settings, &vtable);
