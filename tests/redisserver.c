/* Start and stop a private redis-server by pid.  The only waiting is a bounded poll for
 * the server to answer PING after it was started. */
#include <errno.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <fcntl.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include "redisserver.h"

#define READY_POLLS 500 /* x 10 ms */

extern char **environ;

/* Servers still running, killed at exit: a failed assertion longjmps out of a test
 * before its own stop. */
static struct started {
    pid_t pid;
    char dir[64], socket[96];
} started[8];

static void kill_leftovers(void)
{
    for (size_t i = 0; i < sizeof started / sizeof started[0]; i++)
        if (started[i].pid > 0) {
            kill(started[i].pid, SIGKILL);
            waitpid(started[i].pid, NULL, 0);
            unlink(started[i].socket);
            rmdir(started[i].dir);
        }
}

static void track(const struct redis_server *s, pid_t old, pid_t now)
{
    static int registered;
    if (!registered)
        registered = atexit(kill_leftovers) == 0;
    for (size_t i = 0; i < sizeof started / sizeof started[0]; i++)
        if (started[i].pid == old) {
            started[i].pid = now;
            snprintf(started[i].dir, sizeof started[i].dir, "%s", s->dir);
            snprintf(started[i].socket, sizeof started[i].socket, "%s", s->socket);
            return;
        }
}

/* A port the kernel just handed out and nobody listens on (a tiny race, as ever). */
static int free_port(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    int fd = socket(AF_INET, SOCK_STREAM, 0), port = -1;
    if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    if (fd >= 0)
        close(fd);
    return port;
}

static int spawn(struct redis_server *s)
{
    const char *argv[] = {"redis-server", "--port", s->port_text, "--bind", "127.0.0.1",
                          "--save", "", "--appendonly", s->durable ? "yes" : "no",
                          "--appendfsync", "always", "--daemonize", "no",
                          "--dir", s->dir, "--unixsocket", s->socket, "--unixsocketperm", "700",
                          "--loglevel", "warning", "--requirepass", s->password, NULL};
    if (!s->password)
        argv[21] = NULL;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
    int rc = posix_spawnp(&s->pid, "redis-server", &fa, NULL, (char *const *)argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) {
        fprintf(stderr, "redisserver: cannot start redis-server: %s "
                        "(install redis-server: scripts/deps.sh)\n", strerror(rc));
        s->pid = 0;
        return -1;
    }
    track(s, 0, s->pid);
    return 0;
}

static int answers_ping(const struct redis_server *s)
{
    struct timeval tv = {0, 100000};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", s->port, tv);
    int ok = 0;
    if (c && !c->err) {
        redisReply *r = redisCommand(c, "PING");
        ok = r != NULL; /* -NOAUTH also means it is up */
        if (r)
            freeReplyObject(r);
    }
    if (c)
        redisFree(c);
    return ok;
}

static int wait_ready(struct redis_server *s)
{
    for (int i = 0; i < READY_POLLS; i++) {
        int status;
        if (waitpid(s->pid, &status, WNOHANG) == s->pid) {
            fprintf(stderr, "redisserver: redis-server exited (status %d)\n", status);
            track(s, s->pid, 0);
            s->pid = 0;
            return -1;
        }
        if (answers_ping(s))
            return 0;
        nanosleep(&(struct timespec){0, 10 * 1000 * 1000}, NULL);
    }
    fprintf(stderr, "redisserver: no PING answer on port %d after %d ms\n", s->port,
            READY_POLLS * 10);
    redis_server_kill(s);
    return -1;
}

int redis_server_start(struct redis_server *s, int port, const char *password)
{
    if (!s->dir[0]) {
        snprintf(s->dir, sizeof s->dir, "/tmp/ggl-test-redis-XXXXXX");
        if (!mkdtemp(s->dir)) {
            perror("redisserver: mkdtemp");
            return -1;
        }
        snprintf(s->socket, sizeof s->socket, "%s/redis.sock", s->dir);
    }
    s->port = port ? port : free_port();
    s->password = password;
    snprintf(s->port_text, sizeof s->port_text, "%d", s->port);
    if (s->port <= 0 || spawn(s) != 0 || wait_ready(s) != 0) {
        redis_server_stop(s); /* and its temp dir */
        return -1;
    }
    return 0;
}

void redis_server_kill(struct redis_server *s)
{
    if (s->pid <= 0)
        return;
    kill(s->pid, SIGKILL);
    while (waitpid(s->pid, NULL, 0) < 0 && errno == EINTR)
        ;
    track(s, s->pid, 0);
    s->pid = 0;
    unlink(s->socket); /* SIGKILL leaves it behind */
}

void redis_server_stop(struct redis_server *s)
{
    redis_server_kill(s);
    if (s->dir[0])
        rmdir(s->dir);
    s->dir[0] = '\0';
}

redisContext *redis_server_client(const struct redis_server *s, int db)
{
    struct timeval tv = {1, 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", s->port, tv);
    if (!c || c->err)
        goto fail;
    redisReply *r = s->password ? redisCommand(c, "AUTH %s", s->password) : NULL;
    if (r)
        freeReplyObject(r);
    if (!(r = redisCommand(c, "SELECT %d", db)) || r->type == REDIS_REPLY_ERROR)
        goto fail_reply;
    freeReplyObject(r);
    return c;
fail_reply:
    if (r)
        freeReplyObject(r);
fail:
    if (c)
        redisFree(c);
    return NULL;
}
