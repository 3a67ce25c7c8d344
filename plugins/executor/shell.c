/* executor/shell: runs one program per action.  The payload is a JSON array of strings:
 * argv, argv[0] an absolute path (or, with `program` set, only the arguments).  No shell
 * is involved unless `use_shell = true`, and then a JSON string payload runs as
 * `/bin/sh -c STRING`.
 *
 * The child runs in its own process group with stdin on /dev/null and only the variables
 * named in `env_allow` (copied from the host's environment).  stdout is the result, cut at
 * `max_output` bytes (the rest is read and discarded so the child never blocks); the head
 * of stderr becomes the reason of a failure.  Exit 0 is GGL_OK, an exit code listed in
 * `retry_exit_codes` GGL_RETRY, any other exit or a signal GGL_ERROR.  Past the action's
 * timeout (real time: the child runs in real time) the whole group is SIGKILLed and the
 * answer is GGL_RETRY; when the leader exits, stragglers left in its group are killed too,
 * so an action's background processes never outlive it.  Waiting is poll() on the two
 * pipes and a pidfd: no sleeping, no SIGCHLD handler. */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <ganglion/ganglion.h>

extern char **environ;

#define MAX_ARGS 256
#define MAX_ENV 64
#define MAX_RETRY_CODES 16
#define ERR_HEAD 240 /* bytes of stderr kept for the reason */

static const struct ggl_setting settings[] = {
    GGL_SETTING("action", GGL_SETTING_STRING, "shell", "action name this instance serves"),
    GGL_SETTING("program", GGL_SETTING_STRING, "", "fixed program (absolute path); the payload is then only its arguments"),
    GGL_SETTING("use_shell", GGL_SETTING_BOOL, "false", "allow a JSON string payload run by /bin/sh -c"),
    GGL_SETTING("env_allow", GGL_SETTING_STRING, "PATH", "comma-separated variables passed from the host's environment"),
    GGL_SETTING("retry_exit_codes", GGL_SETTING_STRING, "75", "comma-separated exit codes answered RETRY (75 = EX_TEMPFAIL)"),
    GGL_SETTING("max_output", GGL_SETTING_INT, "65536", "stdout bytes kept as the result; the rest is discarded"),
    GGL_SETTING("timeout_ms", GGL_SETTING_INT, "30000", "timeout when the action names none"),
    GGL_SETTING("cwd", GGL_SETTING_STRING, "", "working directory of the child (empty: the host's)"),
    GGL_SETTINGS_END};

struct shell {
    const struct ggl_host *host;
    const char *names[2];
    const char *program; /* NULL: argv[0] from the payload */
    const char *cwd;     /* NULL: inherit */
    int use_shell;
    char *env[MAX_ENV + 1];
    int retry_codes[MAX_RETRY_CODES];
    size_t n_retry_codes;
    size_t max_output;
    uint64_t timeout_ms;
};

/* What one run collected. */
struct run {
    char *out;
    size_t out_len, out_cap;
    int truncated;
    char err[ERR_HEAD + 1];
    size_t err_len;
    int timed_out;
    int wstatus;
};

static enum ggl_status invalid(const struct ggl_host *h, const char *fmt, const char *arg)
{
    h->set_reason(h, fmt, arg);
    return GGL_INVALID;
}

/* --- settings ------------------------------------------------------------- */

static const char *conf_str(const struct ggl_host *h, const struct ggl_conf *c, const char *key)
{
    const char *s = "";
    h->conf_string(c, key, &s);
    return s;
}

static enum ggl_status read_env(struct shell *s, const char *allow)
{
    size_t n = 0;
    char names[1024];
    if (strlen(allow) >= sizeof names)
        return invalid(s->host, "env_allow is too long (%s)", "over 1023 bytes");
    strcpy(names, allow);
    for (char *save = NULL, *name = strtok_r(names, ", ", &save); name;
         name = strtok_r(NULL, ", ", &save)) {
        const char *v = getenv(name);
        if (!v)
            continue;
        if (n == MAX_ENV)
            return invalid(s->host, "env_allow names more than %s variables", "64");
        size_t len = strlen(name) + strlen(v) + 2;
        if (!(s->env[n] = malloc(len)))
            return GGL_NOMEM;
        snprintf(s->env[n++], len, "%s=%s", name, v);
    }
    return GGL_OK;
}

static enum ggl_status read_retry_codes(struct shell *s, const char *list)
{
    for (const char *p = list; *p;) {
        char *end;
        long code = strtol(p, &end, 10);
        if (end == p || code < 0 || code > 255 || s->n_retry_codes == MAX_RETRY_CODES)
            return invalid(s->host, "retry_exit_codes: bad list \"%s\" (0..255, at most 16)", list);
        s->retry_codes[s->n_retry_codes++] = (int)code;
        p = end + strspn(end, ", ");
    }
    return GGL_OK;
}

static void shell_close(void *self)
{
    struct shell *s = self;
    if (!s)
        return;
    for (size_t i = 0; s->env[i]; i++)
        free(s->env[i]);
    free(s);
}

static enum ggl_status shell_open(const struct ggl_host *host, const struct ggl_conf *conf, void **self)
{
    struct shell *s = calloc(1, sizeof *s);
    if (!s)
        return GGL_NOMEM;
    s->host = host;
    s->names[0] = conf_str(host, conf, "action");
    s->program = *conf_str(host, conf, "program") ? conf_str(host, conf, "program") : NULL;
    s->cwd = *conf_str(host, conf, "cwd") ? conf_str(host, conf, "cwd") : NULL;
    host->conf_bool(conf, "use_shell", &s->use_shell);
    int64_t v = 65536;
    host->conf_int(conf, "max_output", &v);
    s->max_output = v > 0 ? (size_t)v : 0;
    v = 30000;
    host->conf_int(conf, "timeout_ms", &v);
    s->timeout_ms = v > 0 ? (uint64_t)v : 30000;
    enum ggl_status st = GGL_OK;
    if (s->program && s->program[0] != '/')
        st = invalid(host, "program \"%s\" is not an absolute path", s->program);
    if (st == GGL_OK)
        st = read_env(s, conf_str(host, conf, "env_allow"));
    if (st == GGL_OK)
        st = read_retry_codes(s, conf_str(host, conf, "retry_exit_codes"));
    if (st != GGL_OK) {
        shell_close(s);
        return st;
    }
    *self = s;
    return GGL_OK;
}

static const char *const *shell_names(void *self) { return ((struct shell *)self)->names; }

/* --- argv from the payload -------------------------------------------------- */

/* Fill argv (strings borrowed from doc) from the payload; GGL_INVALID with a reason. */
static enum ggl_status build_argv(struct shell *s, const json_t *doc, const char **argv)
{
    size_t n = 0;
    if (json_is_string(doc)) {
        if (!s->use_shell)
            return invalid(s->host, "%s", "a string payload needs use_shell = true; send an array");
        argv[n++] = "/bin/sh", argv[n++] = "-c", argv[n++] = json_string_value(doc);
        argv[n] = NULL;
        return GGL_OK;
    }
    if (!json_is_array(doc) || json_array_size(doc) + 2 > MAX_ARGS)
        return invalid(s->host, "%s", "payload must be a JSON array of at most 254 strings");
    if (s->program)
        argv[n++] = s->program;
    size_t i;
    json_t *e;
    json_array_foreach(doc, i, e) {
        if (!json_is_string(e))
            return invalid(s->host, "%s", "payload must be a JSON array of strings");
        argv[n++] = json_string_value(e);
    }
    argv[n] = NULL;
    if (n == 0)
        return invalid(s->host, "%s", "payload names no program");
    if (argv[0][0] != '/')
        return invalid(s->host, "program \"%s\" is not an absolute path", argv[0]);
    return GGL_OK;
}

/* --- running the child ------------------------------------------------------- */

static enum ggl_status spawn_child(struct shell *s, const char **argv, int out_fd, int err_fd,
                                   pid_t *pid)
{
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    /* glibc's posix_spawn reports a missing program as an error; some runtimes (valgrind)
     * only as exit 127: check an absolute path first so the reason says why. */
    if (argv[0][0] == '/' && access(argv[0], X_OK) != 0) {
        s->host->set_reason(s->host, "cannot run %s: %s", argv[0], strerror(errno));
        return GGL_ERROR;
    }
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, out_fd, 1);
    posix_spawn_file_actions_adddup2(&fa, err_fd, 2);
    if (s->cwd)
        posix_spawn_file_actions_addchdir_np(&fa, s->cwd);
    posix_spawnattr_init(&at);
    posix_spawnattr_setpgroup(&at, 0); /* its own group: a timeout kills all of it */
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    posix_spawnattr_setsigmask(&at, &none); /* the host blocks signals in its threads */
    posix_spawnattr_setsigdefault(&at, &all);
    posix_spawnattr_setflags(&at, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
                                      POSIX_SPAWN_SETSIGDEF);
    int rc = posix_spawn(pid, argv[0], &fa, &at, (char *const *)argv, s->env);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&at);
    if (rc != 0) {
        s->host->set_reason(s->host, "cannot run %s: %s", argv[0], strerror(rc));
        return rc == EAGAIN || rc == ENOMEM ? GGL_RETRY : GGL_ERROR;
    }
    return GGL_OK;
}

static uint64_t mono_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000 + (uint64_t)t.tv_nsec / 1000000;
}

/* Read what is there from fd into the run's stdout or stderr buffer; 0 at EOF. */
static int drain_fd(struct shell *s, struct run *r, int fd, int is_err)
{
    char buf[4096];
    ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0)
        return errno == EINTR || errno == EAGAIN;
    if (n == 0)
        return 0;
    if (is_err) {
        size_t take = (size_t)n < ERR_HEAD - r->err_len ? (size_t)n : ERR_HEAD - r->err_len;
        memcpy(r->err + r->err_len, buf, take);
        r->err_len += take;
        return 1;
    }
    size_t take = (size_t)n < s->max_output - r->out_len ? (size_t)n : s->max_output - r->out_len;
    r->truncated |= take < (size_t)n;
    if (take && r->out_len + take > r->out_cap) {
        size_t cap = r->out_cap ? r->out_cap * 2 : 4096;
        while (cap < r->out_len + take)
            cap *= 2;
        char *p = realloc(r->out, cap > s->max_output ? s->max_output : cap);
        if (!p)
            return 1; /* keep what we have; the rest is discarded like overflow */
        r->out = p;
        r->out_cap = cap > s->max_output ? s->max_output : cap;
    }
    memcpy(r->out + r->out_len, buf, take);
    r->out_len += take;
    return 1;
}

/* Has the leader exited?  Asked without reaping it (WNOWAIT), so its group id stays
 * reserved for the kill that follows. */
static int leader_exited(pid_t pid)
{
    siginfo_t info = {0};
    return waitid(P_PID, (id_t)pid, &info, WEXITED | WNOHANG | WNOWAIT) == 0 && info.si_pid == pid;
}

/* Wait for the leader to exit and both pipes to close, or for the deadline.  Without a
 * pidfd (pidfd_open answered ENOSYS: a kernel before 5.3, or valgrind) the leader is
 * checked every NO_PIDFD_POLL_MS instead of being waited for. */
#define NO_PIDFD_POLL_MS 10
static void collect(struct shell *s, struct run *r, pid_t pid, int pidfd, int out_fd, int err_fd,
                    uint64_t deadline)
{
    struct pollfd p[3] = {{out_fd, POLLIN, 0}, {err_fd, POLLIN, 0}, {pidfd, POLLIN, 0}};
    int exited = 0;
    while (p[0].fd >= 0 || p[1].fd >= 0 || !exited) {
        uint64_t now = mono_ms();
        if (now >= deadline) {
            r->timed_out = !exited;
            break;
        }
        int wait = (int)(deadline - now);
        if (pidfd < 0 && !exited && wait > NO_PIDFD_POLL_MS)
            wait = NO_PIDFD_POLL_MS;
        if (poll(p, 3, wait) < 0 && errno != EINTR)
            break;
        for (int i = 0; i < 2; i++)
            if (p[i].fd >= 0 && (p[i].revents & (POLLIN | POLLHUP | POLLERR)) &&
                !drain_fd(s, r, p[i].fd, i == 1))
                p[i].fd = -1; /* poll ignores negative fds */
        if ((p[2].fd >= 0 && (p[2].revents & POLLIN)) || (pidfd < 0 && !exited && leader_exited(pid))) {
            exited = 1;
            p[2].fd = -1;
            kill(-pid, SIGKILL); /* before the reap: stragglers hold the pipes open */
            waitpid(pid, &r->wstatus, 0);
        }
    }
    if (!exited) { /* the leader is unreaped, so its group id cannot have been reused */
        kill(-pid, SIGKILL);
        waitpid(pid, &r->wstatus, 0);
    }
}

static int is_retry_code(const struct shell *s, int code)
{
    for (size_t i = 0; i < s->n_retry_codes; i++)
        if (s->retry_codes[i] == code)
            return 1;
    return 0;
}

static enum ggl_status outcome(struct shell *s, struct run *r, const char *prog, uint64_t timeout)
{
    const struct ggl_host *h = s->host;
    r->err[r->err_len] = '\0';
    if (r->timed_out) {
        h->set_reason(h, "%s timed out after %llu ms; process group killed", prog,
                      (unsigned long long)timeout);
        return GGL_RETRY;
    }
    if (WIFSIGNALED(r->wstatus)) {
        h->set_reason(h, "%s killed by signal %d: %s", prog, WTERMSIG(r->wstatus), r->err);
        return GGL_ERROR;
    }
    int code = WEXITSTATUS(r->wstatus);
    if (code == 0)
        return GGL_OK;
    h->set_reason(h, "%s exited %d: %s", prog, code, r->err);
    return is_retry_code(s, code) ? GGL_RETRY : GGL_ERROR;
}

static enum ggl_status run_child(struct shell *s, const char **argv, uint64_t timeout,
                                 struct run *r)
{
    int out[2], err[2];
    if (pipe2(out, O_CLOEXEC) != 0)
        return GGL_RETRY;
    if (pipe2(err, O_CLOEXEC) != 0) {
        close(out[0]), close(out[1]);
        return GGL_RETRY;
    }
    pid_t pid;
    enum ggl_status st = spawn_child(s, argv, out[1], err[1], &pid);
    close(out[1]), close(err[1]);
    if (st == GGL_OK) {
        int pidfd = (int)pidfd_open(pid, 0);
        if (pidfd < 0 && errno == ENOSYS) {
            collect(s, r, pid, -1, out[0], err[0], mono_ms() + timeout);
            st = outcome(s, r, argv[0], timeout);
        } else if (pidfd < 0) { /* never leave the child behind */
            kill(-pid, SIGKILL);
            waitpid(pid, &r->wstatus, 0);
            s->host->set_reason(s->host, "pidfd_open: %s", strerror(errno));
            st = GGL_ERROR;
        } else {
            collect(s, r, pid, pidfd, out[0], err[0], mono_ms() + timeout);
            close(pidfd);
            st = outcome(s, r, argv[0], timeout);
        }
    }
    close(out[0]), close(err[0]);
    return st;
}

static enum ggl_status shell_execute(void *self, const struct ggl_action *a, struct ggl_result *res)
{
    struct shell *s = self;
    json_error_t jerr;
    json_t *doc = json_loadb(a->payload, a->payload_len, JSON_DECODE_ANY, &jerr);
    if (!doc)
        return invalid(s->host, "payload is not JSON: %s", jerr.text);
    const char *argv[MAX_ARGS + 1];
    enum ggl_status st = build_argv(s, doc, argv);
    struct run r = {0};
    if (st == GGL_OK)
        st = run_child(s, argv, a->timeout_ms ? a->timeout_ms : s->timeout_ms, &r);
    json_decref(doc);
    if (st == GGL_OK && r.out_len) {
        if (!(res->data = s->host->alloc(r.out_len))) {
            free(r.out);
            return GGL_NOMEM;
        }
        memcpy(res->data, r.out, r.out_len);
        res->data_len = r.out_len;
    }
    if (r.truncated)
        s->host->log(s->host, GGL_LOG_DEBUG, "action %llu: output cut at %zu bytes",
                     (unsigned long long)a->id, s->max_output);
    free(r.out);
    return st;
}

static const struct ggl_executor vtable = {
    .size = sizeof(struct ggl_executor),
    .flags = GGL_READS_CONCURRENT,
    .open = shell_open,
    .close = shell_close,
    .action_names = shell_names,
    .execute = shell_execute,
};

GGL_PLUGIN_DEFINE(GGL_KIND_EXECUTOR, "shell", "1.0.0",
                  "runs a program per action (argv array, no shell by default)", settings, &vtable);
