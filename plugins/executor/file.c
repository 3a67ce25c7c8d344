/* executor/file: appends each action's payload as one line to a file (opened once with
 * O_APPEND, so concurrent actions never interleave within a line: each line is one
 * write()), optionally fsync'd before the action counts as done.  A payload holding a
 * newline or longer than max_line is refused (INVALID); a full disk answers RETRY. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ganglion/ganglion.h>

static const struct ggl_setting settings[] = {
    GGL_SETTING("action", GGL_SETTING_STRING, "file", "action name this instance serves"),
    GGL_SETTING("path", GGL_SETTING_STRING, NULL, "file the lines are appended to (created 0640)"),
    GGL_SETTING("fsync", GGL_SETTING_BOOL, "false", "fsync after each line before answering OK"),
    GGL_SETTING("max_line", GGL_SETTING_INT, "65536", "longest payload accepted, bytes"),
    GGL_SETTINGS_END};

struct fileexec {
    const struct ggl_host *host;
    const char *names[2];
    const char *path;
    int fd, fsync;
    size_t max_line;
};

static enum ggl_status fileexec_open(const struct ggl_host *host, const struct ggl_conf *conf,
                                     void **self)
{
    struct fileexec *f = calloc(1, sizeof *f);
    if (!f)
        return GGL_NOMEM;
    int64_t max_line = 65536;
    f->host = host;
    f->names[0] = "file";
    host->conf_string(conf, "action", &f->names[0]);
    host->conf_bool(conf, "fsync", &f->fsync);
    host->conf_int(conf, "max_line", &max_line);
    f->max_line = max_line > 0 ? (size_t)max_line : 1;
    if (host->conf_string(conf, "path", &f->path) != GGL_OK || !*f->path) {
        host->set_reason(host, "path is required");
        free(f);
        return GGL_INVALID;
    }
    f->fd = open(f->path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (f->fd < 0) {
        host->set_reason(host, "cannot open %s: %s", f->path, strerror(errno));
        free(f);
        return GGL_ERROR;
    }
    *self = f;
    return GGL_OK;
}

static void fileexec_close(void *self)
{
    struct fileexec *f = self;
    if (f)
        close(f->fd);
    free(f);
}

static const char *const *fileexec_names(void *self) { return ((struct fileexec *)self)->names; }

static enum ggl_status io_error(struct fileexec *f, const char *what)
{
    int e = errno;
    f->host->set_reason(f->host, "%s %s: %s", what, f->path, strerror(e));
    return e == ENOSPC || e == EDQUOT || e == EINTR || e == EAGAIN ? GGL_RETRY : GGL_ERROR;
}

static enum ggl_status fileexec_execute(void *self, const struct ggl_action *a, struct ggl_result *r)
{
    struct fileexec *f = self;
    (void)r;
    if (a->payload_len > f->max_line || memchr(a->payload, '\n', a->payload_len)) {
        f->host->set_reason(f->host, "payload holds a newline or exceeds max_line (%zu)",
                            f->max_line);
        return GGL_INVALID;
    }
    char *line = malloc(a->payload_len + 1);
    if (!line)
        return GGL_NOMEM;
    if (a->payload_len)
        memcpy(line, a->payload, a->payload_len);
    line[a->payload_len] = '\n';
    ssize_t n = write(f->fd, line, a->payload_len + 1);
    free(line);
    if (n < 0)
        return io_error(f, "write");
    if ((size_t)n != a->payload_len + 1) {
        f->host->set_reason(f->host, "short write to %s (%zd of %zu bytes)", f->path, n,
                            a->payload_len + 1);
        return GGL_ERROR;
    }
    if (f->fsync && fsync(f->fd) != 0)
        return io_error(f, "fsync");
    return GGL_OK;
}

static const struct ggl_executor vtable = {
    .size = sizeof(struct ggl_executor),
    .flags = GGL_READS_CONCURRENT,
    .open = fileexec_open,
    .close = fileexec_close,
    .action_names = fileexec_names,
    .execute = fileexec_execute,
};

GGL_PLUGIN_DEFINE(GGL_KIND_EXECUTOR, "file", "1.0.0", "appends each payload as a line to a file",
                  settings, &vtable);
