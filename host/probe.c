/* The plugin probe, host side: the `plugins { }` section, spawning `ganglion-probe`
 * (posix_spawn: fork in a threaded host copies only the calling thread, and dlopen of
 * an unknown file in the host itself is what the probe exists to avoid), waiting for it
 * with a deadline, naming a crash's signal, and the bounded verdict cache. */
#include "ggl-build.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <ganglion/ganglion.h>

#include "log.h"
#include "probe.h"

extern char **environ;

#define CACHE_SIZE 64 /* files remembered; past it the oldest verdict is forgotten */

static const struct conf_key probe_keys[] = {
    {"probe", GGL_SETTING_BOOL, offsetof(struct probe_settings, enabled), "true", 0, 0,
     "probe each plugin file in a ganglion-probe helper before loading it"},
    {"probe_timeout_ms", GGL_SETTING_INT, offsetof(struct probe_settings, timeout_ms), "2000", 10,
     600000, "a probe not done by then is killed and the file refused"},
};

struct verdict {
    char *path;
    struct timespec mtime;
    off_t size;
    int ok;
    char why[256];
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct probe_settings settings;
static char helper[PATH_MAX];
static struct verdict cache[CACHE_SIZE];
static size_t cache_next;
static unsigned spawned;

int probe_read_config(const struct config *c, struct probe_settings *out, struct conf_error *err)
{
    return config_read_section(c, c->plugins, probe_keys, sizeof probe_keys / sizeof probe_keys[0],
                               out, err);
}

/* The build tree's helper when this binary runs from there; else the one installed
 * beside it (sbin/../libexec/ganglion: a relocated prefix), else the configured path. */
static void default_helper(char *out, size_t len)
{
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    exe[n > 0 ? n : 0] = '\0';
    size_t top = strlen(GGL_BUILD_TOP);
    if (strncmp(exe, GGL_BUILD_TOP "/", top + 1) == 0) {
        snprintf(out, len, "%s", GGL_PROBE_BUILD);
        return;
    }
    char *slash = strrchr(exe, '/');
    if (slash)
        *slash = '\0';
    snprintf(out, len, "%s/../libexec/ganglion/ganglion-probe", exe);
    if (access(out, X_OK) != 0)
        snprintf(out, len, "%s", GGL_PROBE_INSTALLED);
}

void probe_enable(const struct probe_settings *s, const char *path)
{
    pthread_mutex_lock(&lock);
    settings = *s;
    if (path)
        snprintf(helper, sizeof helper, "%s", path);
    else
        default_helper(helper, sizeof helper);
    pthread_mutex_unlock(&lock);
}

void probe_disable(void)
{
    pthread_mutex_lock(&lock);
    settings.enabled = 0;
    pthread_mutex_unlock(&lock);
}

void probe_forget(void)
{
    pthread_mutex_lock(&lock);
    for (size_t i = 0; i < CACHE_SIZE; i++) {
        free(cache[i].path);
        cache[i] = (struct verdict){0};
    }
    cache_next = 0;
    pthread_mutex_unlock(&lock);
}

unsigned probe_spawned(void)
{
    pthread_mutex_lock(&lock);
    unsigned n = spawned;
    pthread_mutex_unlock(&lock);
    return n;
}

/* --- one run of the helper ------------------------------------------------ */

static int64_t mono_ms(void) /* real time: a child's deadline, not the host clock */
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* The environment with TMPDIR pointing at the probe's own directory; NULL: no memory. */
static char **env_with_tmpdir(const char *dir)
{
    size_t n = 0;
    while (environ[n])
        n++;
    char **env = calloc(n + 2, sizeof *env), *tmp = NULL;
    if (!env || asprintf(&tmp, "TMPDIR=%s", dir) < 0) {
        free(env);
        return NULL;
    }
    size_t k = 0;
    env[k++] = tmp;
    for (size_t i = 0; i < n; i++)
        if (strncmp(environ[i], "TMPDIR=", 7) != 0)
            env[k++] = environ[i];
    return env;
}

/* What a probe left in its directory (a killed one cannot clean up): a few levels. */
static void remove_tree(int parent, const char *name, int depth)
{
    int fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    for (struct dirent *e; d && depth > 0 && (e = readdir(d));)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..") &&
            unlinkat(dirfd(d), e->d_name, 0) < 0)
            remove_tree(dirfd(d), e->d_name, depth - 1);
    if (d)
        closedir(d);
    else if (fd >= 0)
        close(fd);
    unlinkat(parent, name, AT_REMOVEDIR);
}

static pid_t spawn_helper(const char *exe, const char *path, enum ggl_kind kind, int out_fd,
                          const char *dir)
{
    posix_spawn_file_actions_t fa;
    pid_t pid = -1;
    const char *k = kind ? ggl_kind_str(kind) : "any";
    char *argv[] = {(char *)exe, (char *)k, (char *)path, NULL};
    char **env = env_with_tmpdir(dir);
    if (!env || posix_spawn_file_actions_init(&fa) != 0) {
        free(env ? env[0] : NULL);
        free(env);
        return -1;
    }
    posix_spawn_file_actions_adddup2(&fa, out_fd, 1);
    posix_spawn_file_actions_adddup2(&fa, out_fd, 2);
    if (posix_spawn(&pid, exe, &fa, NULL, argv, env) != 0)
        pid = -1;
    posix_spawn_file_actions_destroy(&fa);
    free(env[0]);
    free(env);
    return pid;
}

/* Read the helper's output until it exits or the deadline; returns 1 if it exited. */
static int collect(pid_t pid, int rfd, int64_t timeout_ms, char *msg, size_t len)
{
    int pidfd = (int)syscall(SYS_pidfd_open, pid, 0); /* -1 on old kernels: EOF decides */
    size_t got = 0;
    int exited = 0, eof = 0;
    int64_t due = mono_ms() + timeout_ms;
    while (!exited) {
        int64_t left = due - mono_ms();
        if (left <= 0)
            break;
        struct pollfd p[2] = {{eof ? -1 : rfd, POLLIN, 0}, {pidfd, POLLIN, 0}};
        if (poll(p, pidfd >= 0 ? 2 : 1, (int)left) < 0 && errno != EINTR)
            break;
        if (p[0].revents) {
            char tmp[512];
            ssize_t r = read(rfd, tmp, sizeof tmp);
            eof = r <= 0;
            size_t keep = r > 0 && got < len - 1 ? (size_t)r : 0;
            keep = keep < len - 1 - got ? keep : len - 1 - got;
            memcpy(msg + got, tmp, keep);
            got += keep;
        }
        exited = (pidfd >= 0 && p[1].revents) || (pidfd < 0 && eof);
    }
    msg[got] = '\0';
    if (pidfd >= 0)
        close(pidfd);
    return exited;
}

/* 1 if the helper loaded, checked, opened and closed the file; else 0 with why. */
static int run_probe(const char *exe, const char *path, enum ggl_kind kind, int64_t timeout_ms,
                     char *why, size_t len)
{
    int fds[2];
    const char *tmp = getenv("TMPDIR");
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s/ganglion-probe-XXXXXX", tmp && tmp[0] ? tmp : "/tmp");
    if (!mkdtemp(dir) || pipe2(fds, O_CLOEXEC) < 0) {
        snprintf(why, len, "probe: %s: %s", dir, strerror(errno));
        return 0;
    }
    pid_t pid = spawn_helper(exe, path, kind, fds[1], dir);
    close(fds[1]);
    if (pid < 0) {
        close(fds[0]);
        remove_tree(AT_FDCWD, dir, 0);
        snprintf(why, len, "probe: cannot start %s", exe);
        return 0;
    }
    char msg[512];
    int exited = collect(pid, fds[0], timeout_ms, msg, sizeof msg);
    close(fds[0]);
    if (!exited)
        kill(pid, SIGKILL);
    int st = 0;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    remove_tree(AT_FDCWD, dir, 3);
    msg[strcspn(msg, "\n")] = '\0';
    if (!exited)
        snprintf(why, len, "probe: no answer in %lld ms (a hang in load or open?); killed",
                 (long long)timeout_ms);
    else if (WIFSIGNALED(st))
        snprintf(why, len, "probe: killed by signal %d (%s)", WTERMSIG(st), strsignal(WTERMSIG(st)));
    else if (WEXITSTATUS(st) != 0)
        snprintf(why, len, "probe: %s", msg[0] ? msg : "failed");
    return exited && WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

/* --- the verdict cache ------------------------------------------------------ */

static struct verdict *find(const char *path, const struct stat *st)
{
    for (size_t i = 0; i < CACHE_SIZE; i++) {
        struct verdict *v = &cache[i];
        if (v->path && strcmp(v->path, path) == 0 && v->size == st->st_size &&
            v->mtime.tv_sec == st->st_mtim.tv_sec && v->mtime.tv_nsec == st->st_mtim.tv_nsec)
            return v;
    }
    return NULL;
}

static void remember(const char *path, const struct stat *st, int ok, const char *why)
{
    struct verdict *v = NULL;
    for (size_t i = 0; i < CACHE_SIZE && !v; i++) /* a changed file replaces its entry */
        if (cache[i].path && strcmp(cache[i].path, path) == 0)
            v = &cache[i];
    if (!v) {
        v = &cache[cache_next];
        cache_next = (cache_next + 1) % CACHE_SIZE;
    }
    char *copy = strdup(path);
    if (!copy)
        return;
    free(v->path);
    *v = (struct verdict){copy, st->st_mtim, st->st_size, ok, ""};
    snprintf(v->why, sizeof v->why, "%s", why);
}

int probe_check(const char *path, enum ggl_kind kind, char *why, size_t len)
{
    struct stat st;
    pthread_mutex_lock(&lock);
    struct probe_settings s = settings;
    char exe[PATH_MAX];
    snprintf(exe, sizeof exe, "%s", helper);
    if (!s.enabled || stat(path, &st) < 0) { /* a missing file: the loader says so */
        pthread_mutex_unlock(&lock);
        return 0;
    }
    struct verdict *v = find(path, &st);
    if (v) {
        int ok = v->ok;
        snprintf(why, len, "%s (remembered until the file changes)", v->why);
        pthread_mutex_unlock(&lock);
        return ok ? 0 : -1;
    }
    spawned++;
    pthread_mutex_unlock(&lock);
    why[0] = '\0';
    int64_t t0 = mono_ms();
    int ok = run_probe(exe, path, kind, s.timeout_ms, why, len);
    log_debug("probe: %s %s in %lld ms", path, ok ? "passed" : "refused",
              (long long)(mono_ms() - t0));
    pthread_mutex_lock(&lock);
    remember(path, &st, ok, why);
    pthread_mutex_unlock(&lock);
    return ok ? 0 : -1;
}
