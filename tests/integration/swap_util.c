/* Helpers of the hot-swap tests: a buffered RESP reader, one-shot commands, the host's
 * mapped plugin copies (/proc/PID/maps) and instance states from PLUGIN.LIST. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <time.h>
#include <unistd.h>
#include <sys/socket.h>
#include <cmocka.h>

#include "swap_util.h"

static int rd_byte(struct reader *r)
{
    if (r->pos == r->len) {
        struct pollfd p = {r->fd, POLLIN, 0};
        if (poll(&p, 1, TIMEOUT_MS) != 1)
            return -1;
        ssize_t n = recv(r->fd, r->buf, sizeof r->buf, 0);
        if (n <= 0)
            return -1;
        r->pos = 0, r->len = (size_t)n;
    }
    return (unsigned char)r->buf[r->pos++];
}

/* One reply line without CRLF; -1 on EOF or timeout. */
int rd_line(struct reader *r, char *out, size_t max)
{
    size_t k = 0;
    for (int c; (c = rd_byte(r)) >= 0;) {
        if (c == '\n') {
            out[k && out[k - 1] == '\r' ? k - 1 : k] = '\0';
            return 0;
        }
        if (k < max - 1)
            out[k++] = (char)c;
    }
    return -1;
}

/* One simple reply: status, error, integer, or a bulk string's payload ("(nil)"). */
int rd_reply(struct reader *r, char *out, size_t max)
{
    if (rd_line(r, out, max) < 0)
        return -1;
    if (out[0] != '$')
        return 0;
    long n = atol(out + 1);
    if (n < 0) {
        snprintf(out, max, "(nil)");
        return 0;
    }
    char line[512];
    if (rd_line(r, line, sizeof line) < 0)
        return -1;
    snprintf(out, max, "%s", line);
    return 0;
}

uint64_t mono_us(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000u + (uint64_t)t.tv_nsec / 1000u;
}

int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

/* A command's whole reply (one bulk or a few lines) as text, via a fresh connection. */
void command(const struct host *h, const char *cmd, char *out, size_t len)
{
    int fd = client(h);
    sendf(fd, "%s\r\n", cmd);
    size_t got = 0;
    /* The reply is complete when no byte follows for 100 ms (replies here are small). */
    while (got < len - 1) {
        ssize_t n = read_n(fd, out + got, 1, got ? 100 : TIMEOUT_MS) == 1;
        if (n == 0)
            break;
        got++;
    }
    out[got] = '\0';
    close(fd);
}

/* The host's mapped private copies of plugin `base` ("mem"), space separated. */
void mapped_copies(const struct host *h, const char *base, char *out, size_t len)
{
    char path[64], line[1024], needle[64];
    snprintf(path, sizeof path, "/proc/%d/maps", (int)h->pid);
    snprintf(needle, sizeof needle, "/%s-", base);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    out[0] = '\0';
    while (fgets(line, sizeof line, f)) {
        char *p = strstr(line, "/ganglion-");
        char *q = p ? strstr(p, needle) : NULL;
        if (!q)
            continue;
        char *end = strstr(q, ".so");
        if (!end)
            continue;
        char copy[256];
        snprintf(copy, sizeof copy, "%.*s", (int)(end + 3 - p), p);
        if (!strstr(out, copy) && strlen(out) + strlen(copy) + 2 < len)
            strcat(strcat(out, copy), " ");
    }
    fclose(f);
}

/* How many PLUGIN.LIST rows of `instance` are in `state`. */
int instance_in_state(const struct host *h, const char *instance, const char *state)
{
    char list[16384], want[160];
    command(h, "PLUGIN.LIST", list, sizeof list);
    snprintf(want, sizeof want, "instance\r\n$%zu\r\n%s\r\n", strlen(instance), instance);
    int hits = 0;
    for (const char *p = strstr(list, want); p; p = strstr(p + 1, want)) {
        const char *s = strstr(p, "state\r\n");
        char st[64];
        if (s && sscanf(s, "state\r\n$%*d\r\n%63[^\r]", st) == 1 && strcmp(st, state) == 0)
            hits++;
    }
    if (!hits)
        printf("# no %s instance %s in PLUGIN.LIST: %s\n", state, instance, list);
    return hits;
}

