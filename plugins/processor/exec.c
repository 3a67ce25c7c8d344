/* processor/exec: runs a configured program for each task of its type, the payload on
 * stdin, and returns its stdout (bounded): the bridge for processors written in any
 * language.  The program runs in its own process group, which is killed at the task's
 * deadline or when the task is cancelled; its exit code maps to ok / retry / invalid / error by config; the start of
 * its stderr becomes the reason.  GGL_TASK_ID, _TYPE, _ATTEMPT and _DEADLINE_MS are in
 * its environment. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <ganglion/ganglion.h>

#define MAX_ARGS 32
#define REASON_BYTES 200

extern char **environ;

struct exec {
    const struct ggl_host *host;
    const char *types[2];
    char *argv_store;
    char *argv[MAX_ARGS + 1];
    int64_t max_output, timeout_ms;
    const char *retry_codes, *invalid_codes;
};

static const struct ggl_setting settings[] = {
    GGL_SETTING("task_type", GGL_SETTING_STRING, "exec", "task type served"),
    GGL_SETTING("command", GGL_SETTING_STRING, "", "program and arguments, split on spaces (no shell)"),
    GGL_SETTING("max_output", GGL_SETTING_INT, "1048576", "stdout bytes kept; more fails the task"),
    GGL_SETTING("timeout_ms", GGL_SETTING_INT, "30000", "run limit of a task without a deadline"),
    GGL_SETTING("retry_codes", GGL_SETTING_STRING, "75", "exit codes meaning retry (EX_TEMPFAIL)"),
    GGL_SETTING("invalid_codes", GGL_SETTING_STRING, "64,65", "exit codes meaning invalid input"),
    GGL_SETTINGS_END};

static int split_command(struct exec *x, const char *command)
{
    if (!(x->argv_store = strdup(command)))
        return -1;
    size_t n = 0;
    for (char *save = NULL, *w = strtok_r(x->argv_store, " \t", &save); w;
         w = strtok_r(NULL, " \t", &save)) {
        if (n == MAX_ARGS)
            return -1;
        x->argv[n++] = w;
    }
    x->argv[n] = NULL;
    return n ? 0 : -1;
}

static enum ggl_status exec_open(const struct ggl_host *host, const struct ggl_conf *conf, void **self)
{
    struct exec *x = calloc(1, sizeof *x);
    const char *command = "";
    if (!x)
        return GGL_NOMEM;
    x->host = host;
    host->conf_string(conf, "task_type", &x->types[0]);
    host->conf_string(conf, "command", &command);
    host->conf_int(conf, "max_output", &x->max_output);
    host->conf_int(conf, "timeout_ms", &x->timeout_ms);
    host->conf_string(conf, "retry_codes", &x->retry_codes);
    host->conf_string(conf, "invalid_codes", &x->invalid_codes);
    if (split_command(x, command) < 0 || x->max_output < 0 || x->timeout_ms < 1) {
        host->set_reason(host, "exec: 'command' must name a program (at most %d words); "
                               "max_output >= 0, timeout_ms >= 1", MAX_ARGS);
        free(x->argv_store);
        free(x);
        return GGL_INVALID;
    }
    *self = x;
    return GGL_OK;
}

static void exec_close(void *self)
{
    struct exec *x = self;
    free(x->argv_store);
    free(x);
}

static const char *const *exec_types(void *self) { return ((struct exec *)self)->types; }

/* Is code in the comma-separated list? */
static int code_in(const char *list, int code)
{
    for (const char *p = list; p && *p;) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p)
            break;
        if (v == code)
            return 1;
        p = *end ? end + 1 : end;
    }
    return 0;
}

/* --- one run --------------------------------------------------------------------- */

struct run {
    int in, out, err, pidfd;       /* our ends; -1 once closed */
    pid_t pid;
    const unsigned char *payload;
    size_t payload_len, written;
    char *data;
    size_t len, cap, max;
    char reason[REASON_BYTES + 1];
    size_t reason_len;
    int overflow, exited, status;
};

static void close_fd(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

/* The program's environment: the host's plus GGL_TASK_ID, GGL_TASK_TYPE,
 * GGL_TASK_ATTEMPT and GGL_TASK_DEADLINE_MS (host clock, 0 = none).  NULL without memory;
 * the strings live in vars. */
#define TASK_VARS 4
static char **task_environment(const struct ggl_task *t, char vars[TASK_VARS][96])
{
    size_t n = 0;
    while (environ[n])
        n++;
    char **env = malloc((n + TASK_VARS + 1) * sizeof *env);
    if (!env)
        return NULL;
    memcpy(env, environ, n * sizeof *env);
    snprintf(vars[0], 96, "GGL_TASK_ID=%llu", (unsigned long long)t->id);
    snprintf(vars[1], 96, "GGL_TASK_TYPE=%.70s", t->type ? t->type : "");
    snprintf(vars[2], 96, "GGL_TASK_ATTEMPT=%u", t->attempt);
    snprintf(vars[3], 96, "GGL_TASK_DEADLINE_MS=%llu", (unsigned long long)t->deadline_ms);
    for (size_t i = 0; i < TASK_VARS; i++)
        env[n + i] = vars[i];
    env[n + TASK_VARS] = NULL;
    return env;
}

static int spawn(const struct exec *x, struct run *r, const struct ggl_task *t)
{
    char vars[TASK_VARS][96];
    char **env = task_environment(t, vars);
    if (!env)
        return -1;
    int in[2], out[2], err[2];
    int made = pipe2(in, O_CLOEXEC) == 0;
    made += made == 1 && pipe2(out, O_CLOEXEC) == 0;
    made += made == 2 && pipe2(err, O_CLOEXEC) == 0;
    if (made < 3) {
        if (made >= 1)
            close(in[0]), close(in[1]);
        if (made >= 2)
            close(out[0]), close(out[1]);
        free(env);
        return -1;
    }
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, in[0], 0);
    posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    posix_spawn_file_actions_adddup2(&fa, err[1], 2);
    posix_spawnattr_t at;
    posix_spawnattr_init(&at);
    sigset_t none, dfl;
    sigemptyset(&none);
    sigemptyset(&dfl);
    sigaddset(&dfl, SIGPIPE); /* the host ignores it; the program should not */
    posix_spawnattr_setsigmask(&at, &none);
    posix_spawnattr_setsigdefault(&at, &dfl);
    posix_spawnattr_setpgroup(&at, 0);
    posix_spawnattr_setflags(&at, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
                                      POSIX_SPAWN_SETSIGDEF);
    int rc = posix_spawnp(&r->pid, x->argv[0], &fa, &at, x->argv, env);
    free(env);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&at);
    close(in[0]), close(out[1]), close(err[1]);
    r->in = in[1], r->out = out[0], r->err = err[0];
    fcntl(r->in, F_SETFL, O_NONBLOCK);
    if (rc != 0) {
        errno = rc;
        return -1;
    }
    r->pidfd = (int)syscall(SYS_pidfd_open, r->pid, 0);
    return r->pidfd < 0 ? -1 : 0;
}

static void feed_stdin(struct run *r)
{
    ssize_t n = write(r->in, r->payload + r->written, r->payload_len - r->written);
    if (n > 0)
        r->written += (size_t)n;
    if ((n < 0 && errno != EAGAIN && errno != EINTR) || r->written == r->payload_len)
        close_fd(&r->in); /* EOF for the program (or it stopped reading: EPIPE) */
}

static void read_stdout(const struct ggl_host *h, struct run *r)
{
    char buf[65536];
    ssize_t n = read(r->out, buf, sizeof buf);
    if (n <= 0) {
        if (n == 0 || (errno != EAGAIN && errno != EINTR))
            close_fd(&r->out);
        return;
    }
    if (r->len + (size_t)n > r->max) {
        r->overflow = 1;
        return;
    }
    if (r->len + (size_t)n > r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 65536;
        while (cap < r->len + (size_t)n)
            cap *= 2;
        char *d = h->alloc(cap);
        if (!d) {
            r->overflow = 1;
            return;
        }
        if (r->len)
            memcpy(d, r->data, r->len);
        h->free(r->data);
        r->data = d, r->cap = cap;
    }
    memcpy(r->data + r->len, buf, (size_t)n);
    r->len += (size_t)n;
}

static void read_stderr(struct run *r)
{
    char buf[4096];
    ssize_t n = read(r->err, buf, sizeof buf);
    if (n <= 0) {
        if (n == 0 || (errno != EAGAIN && errno != EINTR))
            close_fd(&r->err);
        return;
    }
    size_t keep = REASON_BYTES - r->reason_len < (size_t)n ? REASON_BYTES - r->reason_len : (size_t)n;
    memcpy(r->reason + r->reason_len, buf, keep);
    r->reason_len += keep;
}

/* How often a run looks whether its task was cancelled (a host with task_cancelled). */
#define CANCEL_POLL_MS 20

static int cancelled(const struct ggl_host *h)
{
    return GGL_HAS_SLOT(h, struct ggl_host, task_cancelled) && h->task_cancelled(h);
}

/* Wait for the program: feed stdin, collect stdout and stderr, until it exited and its
 * pipes closed, its output overflowed, the deadline (host clock) passed or the task was
 * cancelled.  Returns 0, -1 at the deadline, -2 when cancelled. */
static int supervise(const struct exec *x, struct run *r, uint64_t deadline_ms)
{
    int can_cancel = GGL_HAS_SLOT(x->host, struct ggl_host, task_cancelled);
    while (!r->overflow && (!r->exited || r->out >= 0 || r->err >= 0)) {
        uint64_t now = x->host->now(x->host);
        if (now >= deadline_ms)
            return -1;
        if (cancelled(x->host))
            return -2;
        struct pollfd p[4];
        int n = 0, at_in = -1, at_out = -1, at_err = -1, at_pid = -1;
        if (r->in >= 0)
            at_in = n, p[n++] = (struct pollfd){r->in, POLLOUT, 0};
        if (r->out >= 0)
            at_out = n, p[n++] = (struct pollfd){r->out, POLLIN, 0};
        if (r->err >= 0)
            at_err = n, p[n++] = (struct pollfd){r->err, POLLIN, 0};
        if (!r->exited)
            at_pid = n, p[n++] = (struct pollfd){r->pidfd, POLLIN, 0};
        uint64_t wait = deadline_ms - now, cap = can_cancel ? CANCEL_POLL_MS : 60000;
        if (poll(p, (nfds_t)n, wait > cap ? (int)cap : (int)wait) < 0 && errno != EINTR)
            return -1;
        if (at_in >= 0 && p[at_in].revents)
            feed_stdin(r);
        if (at_out >= 0 && p[at_out].revents)
            read_stdout(x->host, r);
        if (at_err >= 0 && p[at_err].revents)
            read_stderr(r);
        if (at_pid >= 0 && p[at_pid].revents && waitpid(r->pid, &r->status, 0) == r->pid) {
            r->exited = 1;
            close_fd(&r->in);
            kill(-r->pid, SIGKILL); /* stragglers holding the pipes open */
        }
    }
    return 0;
}

static enum ggl_status outcome(const struct exec *x, struct run *r)
{
    const struct ggl_host *h = x->host;
    while (r->reason_len && (r->reason[r->reason_len - 1] == '\n' || r->reason[r->reason_len - 1] == '\r'))
        r->reason_len--;
    r->reason[r->reason_len] = '\0';
    if (r->overflow) {
        h->set_reason(h, "%s: output over max_output (%lld bytes)", x->argv[0], (long long)x->max_output);
        return GGL_ERROR;
    }
    if (WIFSIGNALED(r->status)) {
        h->set_reason(h, "%s: killed by signal %d%s%s", x->argv[0], WTERMSIG(r->status),
                      r->reason_len ? ": " : "", r->reason);
        return GGL_ERROR;
    }
    int code = WEXITSTATUS(r->status);
    if (code == 0)
        return GGL_OK;
    enum ggl_status st = code_in(x->retry_codes, code)     ? GGL_RETRY
                         : code_in(x->invalid_codes, code) ? GGL_INVALID
                                                           : GGL_ERROR;
    h->set_reason(h, "%s exited %d%s%s", x->argv[0], code, r->reason_len ? ": " : "", r->reason);
    return st;
}

static enum ggl_status exec_process(void *self, const struct ggl_task *t, struct ggl_result *res)
{
    struct exec *x = self;
    const struct ggl_host *h = x->host;
    struct run r = {.in = -1, .out = -1, .err = -1, .pidfd = -1, .payload = t->payload,
                    .payload_len = t->payload_len, .max = (size_t)x->max_output};
    uint64_t deadline = t->deadline_ms ? t->deadline_ms : h->now(h) + (uint64_t)x->timeout_ms;
    if (spawn(x, &r, t) < 0) {
        h->set_reason(h, "cannot run %s: %s", x->argv[0], strerror(errno));
        if (r.pid > 0 && r.pidfd < 0) { /* spawned, but no pidfd: do not leave it behind */
            kill(-r.pid, SIGKILL);
            waitpid(r.pid, NULL, 0);
        }
        close_fd(&r.in), close_fd(&r.out), close_fd(&r.err);
        return GGL_RETRY;
    }
    if (!r.payload_len)
        close_fd(&r.in);
    int stopped = supervise(x, &r, deadline), late = stopped < 0;
    if (late || r.overflow)
        kill(-r.pid, SIGKILL); /* the whole group: children of a script too */
    if (!r.exited)
        waitpid(r.pid, &r.status, 0);
    close_fd(&r.in), close_fd(&r.out), close_fd(&r.err), close_fd(&r.pidfd);
    enum ggl_status st;
    if (stopped == -2) {
        h->set_reason(h, "%s: task cancelled; process group killed", x->argv[0]);
        st = GGL_ERROR; /* discarded: the task is settled already */
    } else if (late) {
        h->set_reason(h, "%s passed the deadline; process group killed", x->argv[0]);
        st = GGL_RETRY;
    } else {
        st = outcome(x, &r);
    }
    if (st == GGL_OK) {
        res->data = r.data;
        res->data_len = r.len;
    } else {
        h->free(r.data);
    }
    return st;
}

static const struct ggl_processor vtable = {
    .size = sizeof(struct ggl_processor),
    .flags = GGL_READS_CONCURRENT,
    .open = exec_open,
    .close = exec_close,
    .task_types = exec_types,
    .process = exec_process,
};

GGL_PLUGIN_DEFINE(GGL_KIND_PROCESSOR, "exec", "0.1.0",
                  "runs a program per task: payload on stdin, stdout back, exit code mapped",
                  settings, &vtable);
