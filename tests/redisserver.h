/* A real redis-server for tests of the Redis tier: started on a free loopback port (and
 * a unix socket in a temp dir) with no persistence, stopped by pid. */
#ifndef GGL_REDISSERVER_H
#define GGL_REDISSERVER_H

#include <sys/types.h>
#include <hiredis/hiredis.h>

struct redis_server {
    pid_t pid;           /* 0 when not running */
    int port;
    char port_text[8];
    char dir[64];        /* temp dir: --dir and the unix socket */
    char socket[96];
    const char *password;
    int durable;         /* set before start: AOF with fsync on every write (kill -9 safe) */
};

/* Start redis-server (port 0: pick a free one; password NULL: none) and wait, bounded,
 * until it answers PING.  Returns 0, or -1 with the cause on stderr (redis-server
 * missing, exited, or not answering). */
int redis_server_start(struct redis_server *s, int port, const char *password);
/* SIGKILL the server and reap it; the dir stays for a restart on the same port. */
void redis_server_kill(struct redis_server *s);
/* Kill it and remove its temp dir. */
void redis_server_stop(struct redis_server *s);
/* A plain client on db `db`, authenticated; NULL on failure. */
redisContext *redis_server_client(const struct redis_server *s, int db);

#endif
