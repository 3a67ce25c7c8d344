/* ganglionctl: a thin client of the control socket (hiredis).  Sends one command and
 * prints the reply for people; `plugins` prints PLUGIN.LIST as a table.  redis-cli
 * speaks the same protocol. */
#include "ggl-build.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <hiredis/hiredis.h>

#include "demo.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: ganglionctl [-s SOCKET] [-a PASSWORD] COMMAND [ARG...]\n"
               "  -s SOCKET    control socket (default $GANGLION_SOCKET, else %s)\n"
               "  -a PASSWORD  send AUTH first (default $GANGLION_PASSWORD)\n"
               "commands: ping, info [SECTION], plugins, demo, shutdown, or any raw command\n",
            GGL_DEFAULT_SOCKET);
}

/* Bulk text as lines: INFO uses CRLF, people want LF. */
static void print_text(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (s[i] != '\r')
            putchar(s[i]);
    if (len && s[len - 1] != '\n')
        putchar('\n');
}

static void print_reply(const redisReply *r, int indent)
{
    switch (r->type) {
    case REDIS_REPLY_STATUS: printf("%s\n", r->str); break;
    case REDIS_REPLY_ERROR: printf("(error) %s\n", r->str); break;
    case REDIS_REPLY_INTEGER: printf("(integer) %lld\n", r->integer); break;
    case REDIS_REPLY_NIL: printf("(nil)\n"); break;
    case REDIS_REPLY_STRING: print_text(r->str, r->len); break;
    case REDIS_REPLY_ARRAY:
        if (r->elements == 0)
            printf("(empty)\n");
        for (size_t i = 0; i < r->elements; i++) {
            printf("%*s%zu) ", indent, "", i + 1);
            print_reply(r->element[i], indent + 3);
        }
        break;
    }
}

/* PLUGIN.LIST rows are field/value arrays; print the values as columns. */
static void print_plugins(const redisReply *r)
{
    printf("%-10s %-10s %-14s %-8s %-5s %-8s %s\n", "KIND", "NAME", "INSTANCE", "VERSION", "ABI",
           "STATE", "FILE / REASON");
    for (size_t i = 0; i < r->elements; i++) {
        const redisReply *row = r->element[i];
        const char *v[8] = {0};
        for (size_t k = 0; row->type == REDIS_REPLY_ARRAY && k + 1 < row->elements && k / 2 < 8; k += 2)
            v[k / 2] = row->element[k + 1]->str;
        if (!v[6])
            continue;
        const char *where = strcmp(v[6], "open") == 0 ? v[5] : v[7];
        printf("%-10s %-10s %-14s %-8s %-5s %-8s %s\n", v[0], v[1], v[2], v[3], v[4], v[6],
               where ? where : "");
    }
}

static int authenticate(redisContext *ctx, const char *password)
{
    redisReply *r = redisCommand(ctx, "AUTH %s", password);
    int ok = r && r->type == REDIS_REPLY_STATUS;
    if (!ok)
        fprintf(stderr, "ganglionctl: AUTH: %s\n", r ? r->str : ctx->errstr);
    freeReplyObject(r);
    return ok ? 0 : -1;
}

int main(int argc, char **argv)
{
    const char *sock = getenv("GANGLION_SOCKET"), *password = getenv("GANGLION_PASSWORD");
    int opt;
    while ((opt = getopt(argc, argv, "+s:a:h")) != -1) {
        switch (opt) {
        case 's': sock = optarg; break;
        case 'a': password = optarg; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind >= argc) {
        usage(stderr);
        return 2;
    }
    int plugins = strcasecmp(argv[optind], "plugins") == 0;
    if (plugins)
        argv[optind] = "PLUGIN.LIST";
    if (!sock)
        sock = GGL_DEFAULT_SOCKET;
    struct timeval tv = {5, 0};
    redisContext *ctx = redisConnectUnixWithTimeout(sock, tv);
    if (!ctx || ctx->err) {
        fprintf(stderr, "ganglionctl: %s: %s\n", sock, ctx ? ctx->errstr : "out of memory");
        redisFree(ctx);
        return 1;
    }
    int rc = 1;
    if (password && password[0] && authenticate(ctx, password) < 0)
        goto out;
    if (strcasecmp(argv[optind], "demo") == 0) {
        struct timeval long_tv = {30, 0}; /* WAITs of several seconds */
        redisSetTimeout(ctx, long_tv);
        rc = demo_run(ctx);
        goto out;
    }
    redisReply *r = redisCommandArgv(ctx, argc - optind, (const char **)argv + optind, NULL);
    if (!r) {
        fprintf(stderr, "ganglionctl: %s\n", ctx->errstr);
        goto out;
    }
    if (plugins && r->type == REDIS_REPLY_ARRAY)
        print_plugins(r);
    else
        print_reply(r, 0);
    rc = r->type == REDIS_REPLY_ERROR;
    freeReplyObject(r);
out:
    redisFree(ctx);
    return rc;
}
