/* bench/redis: STM on a real redis-server through the memory manager (no cache: every
 * write and read reaches Redis), as a ratio to redis-benchmark against the same server
 * in the same run.  Both sides keep the same number of requests in flight: THREADS
 * callers of memory_put_batch/memory_get_batch with batches of DEPTH against
 * `redis-benchmark -c THREADS -P DEPTH -r 100000 -d 256`.  A third SET line runs
 * redis-benchmark with the very command the manager sends (prefixed key, header+value,
 * PX ttl): what the server itself allows for that command, so the SET ratio splits into
 * the manager's overhead and the server's cost of the command.  Bounded in time. */
#include "ggl-build.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "host_fixture.h"
#include "redisserver.h"
#include "redis_wire.h" /* WIRE_HEADER: the bytes the redis tier stores before a value */

#define THREADS 2
#define DEPTH 64
#define KEYSPACE 100000
#define VALUE 256
#define RUN_NS 2000000000ull

static char keys[KEYSPACE][24];
static char value[VALUE];

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t rng(uint64_t *s)
{
    *s ^= *s << 13, *s ^= *s >> 7, *s ^= *s << 17;
    return *s;
}

struct caller {
    int reads;
    uint64_t ops, failed, seed;
};

static void *call_loop(void *arg)
{
    struct caller *c = arg;
    struct memory_item items[DEPTH];
    const void *kp[DEPTH];
    size_t kl[DEPTH];
    struct memory_value out[DEPTH];
    enum ggl_status st[DEPTH];
    struct memory_write w = MEMORY_WRITE_DEFAULT;
    w.tier = SLOT_STM;
    for (uint64_t end = now_ns() + RUN_NS; now_ns() < end; c->ops += DEPTH) {
        for (int i = 0; i < DEPTH; i++) {
            const char *k = keys[rng(&c->seed) % KEYSPACE];
            items[i] = (struct memory_item){k, strlen(k), value, VALUE};
            kp[i] = k, kl[i] = items[i].len;
        }
        if (!c->reads) {
            if (memory_put_batch(items, DEPTH, &w, st) != GGL_OK)
                st[0] = GGL_ERROR;
        } else if (memory_get_batch(kp, kl, DEPTH, out, st) == GGL_OK) {
            for (int i = 0; i < DEPTH; i++)
                if (st[i] == GGL_OK)
                    free(out[i].data);
        }
        for (int i = 0; i < DEPTH; i++)
            c->failed += st[i] != GGL_OK && st[i] != GGL_NOTFOUND;
    }
    return NULL;
}

static double run_callers(int reads, uint64_t *failed)
{
    pthread_t th[THREADS];
    struct caller c[THREADS];
    uint64_t t0 = now_ns(), ops = 0;
    for (int i = 0; i < THREADS; i++) {
        c[i] = (struct caller){reads, 0, 0, 88172645463325252ull + (uint64_t)i * 7919};
        pthread_create(&th[i], NULL, call_loop, &c[i]);
    }
    *failed = 0;
    for (int i = 0; i < THREADS; i++) {
        pthread_join(th[i], NULL);
        ops += c[i].ops;
        *failed += c[i].failed;
    }
    return (double)ops / ((double)(now_ns() - t0) / 1e9);
}

/* The rate in redis-benchmark -q's output: its progress lines, each rewritten in place
 * after \r and padded with spaces, end in "<test>: 512345.67 requests per second, ...". */
static double rate_in(const char *out)
{
    const char *at = NULL, *p;
    for (p = out; (p = strstr(p, " requests per second")); p++)
        at = p;
    if (!at)
        return 0;
    while (at > out && at[-1] != ' ') /* back to the start of the number */
        at--;
    return strtod(at, NULL);
}

/* redis-benchmark's requests per second for one test (`-t set`, or a command), or 0. */
static double redis_benchmark(const struct redis_server *s, const char *test)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "redis-benchmark -s %s -c %d -P %d -r %d -d %d -n 1000000 -q %s 2>/dev/null",
             s->socket, THREADS, DEPTH, KEYSPACE, VALUE, test);
    FILE *p = popen(cmd, "r");
    size_t len = 0, cap = 1 << 16;
    char *out = malloc(cap);
    while (p && out) {
        if (cap - len < 4096) {
            char *more = realloc(out, cap * 2);
            if (!more)
                break;
            out = more;
            cap *= 2;
        }
        size_t got = fread(out + len, 1, cap - len - 1, p);
        if (!got)
            break;
        len += got;
    }
    double rate = 0;
    if (out) {
        out[len] = 0;
        rate = rate_in(out);
    }
    free(out);
    if (p)
        pclose(p);
    return rate;
}

/* The manager's SET as redis-benchmark sends it: the tier's default prefix "ggl:" before
 * the same 16-byte keys, the header before the value, and STM's default TTL. */
static double redis_benchmark_same_command(const struct redis_server *s)
{
    char test[64 + VALUE + WIRE_HEADER];
    int n = snprintf(test, sizeof test, "SET ggl:key:__rand_int__ ");
    memset(test + n, 'x', VALUE + WIRE_HEADER);
    snprintf(test + n + VALUE + WIRE_HEADER, sizeof test - (size_t)n - VALUE - WIRE_HEADER,
             " PX %lld", (long long)memory_conf()->stm_ttl_ms);
    return redis_benchmark(s, test);
}

int main(void)
{
    struct redis_server rs = {0};
    if (redis_server_start(&rs, 0, NULL) < 0)
        return 2;
    for (int i = 0; i < KEYSPACE; i++)
        snprintf(keys[i], sizeof keys[i], "key:%012d", i);
    memset(value, 'x', sizeof value);
    char conf[1024];
    snprintf(conf, sizeof conf,
             "backends = { stm = { plugin = \"redis\"; unix_socket = \"%s\"; pool_size = %d; }; };\n"
             "tiers = { stm = \"stm\"; };\n",
             rs.socket, THREADS * 2);
    struct host_fixture fx;
    if (host_fixture_open(&fx, conf) < 0) {
        redis_server_stop(&rs);
        return 2;
    }
    printf("bench/redis: STM on redis-server (unix socket), no cache; %d callers x batches of %d"
           " vs redis-benchmark -c %d -P %d -r %d -d %d\n", THREADS, DEPTH, THREADS, DEPTH,
           KEYSPACE, VALUE);
    uint64_t failed_w, failed_r;
    double set_m = run_callers(0, &failed_w), get_m = run_callers(1, &failed_r);
    double set_r = redis_benchmark(&rs, "-t set"), get_r = redis_benchmark(&rs, "-t get");
    double same_r = redis_benchmark_same_command(&rs);
    printf("SET  manager %9.0f ops/s  redis-benchmark %9.0f req/s  ratio %.2f (goal >= 0.80)%s\n",
           set_m, set_r, set_r > 0 ? set_m / set_r : 0, failed_w ? "  [some writes failed]" : "");
    printf("     redis-benchmark sending the manager's command (SET ggl:key PX, %d-byte value):"
           " %.0f req/s = %.2f of plain SET; manager/that %.2f\n", VALUE + WIRE_HEADER, same_r,
           set_r > 0 ? same_r / set_r : 0, same_r > 0 ? set_m / same_r : 0);
    printf("GET  manager %9.0f ops/s  redis-benchmark %9.0f req/s  ratio %.2f%s\n", get_m, get_r,
           get_r > 0 ? get_m / get_r : 0, failed_r ? "  [some reads failed]" : "");
    host_fixture_close(&fx);
    redis_server_stop(&rs);
    return failed_w || failed_r || !set_r || !get_r || !same_r;
}
