/* bench/redis: STM on a real redis-server through the memory manager (no cache: every
 * write and read reaches Redis), as a ratio to redis-benchmark against the same server
 * in the same run.  Both sides keep the same number of requests in flight: THREADS
 * callers of memory_put_batch/memory_get_batch with batches of DEPTH against
 * `redis-benchmark -c THREADS -P DEPTH -r 100000 -d 256`.  A third SET line runs
 * redis-benchmark with the very command the manager sends (prefixed key, header+value,
 * PX ttl): what the server itself allows for that command, so the SET ratio splits into
 * the manager's overhead and the server's cost of the command.  The machine may be shared:
 * ROUNDS rounds, each measuring every side back to back, and the medians are reported,
 * with the CPU time each op costs the server and the client (steadier than rates under
 * load: a rate also counts time the server waited for a CPU).  Bounded in time. */
#include "ggl-build.h"

#include <pthread.h>
#include <stdio.h>
#include <sys/resource.h>
#include <unistd.h>
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
#define ROUNDS 3
#define RB_REQUESTS 1000000

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

static double run_callers(int reads, uint64_t *failed, uint64_t *done)
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
    *done = ops;
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
             "redis-benchmark -s %s -c %d -P %d -r %d -d %d -n %d -q %s 2>/dev/null",
             s->socket, THREADS, DEPTH, KEYSPACE, VALUE, RB_REQUESTS, test);
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

/* The manager's SET as redis-benchmark sends it: a prefix as long as the tier's default
 * "ggl:" (not that one: the manager's reads would find these values, which have no
 * header) before the same 16-byte keys, the header's length before the value, and STM's
 * default TTL. */
static double redis_benchmark_same_command(const struct redis_server *s)
{
    char test[64 + VALUE + WIRE_HEADER];
    int n = snprintf(test, sizeof test, "SET ggb:key:__rand_int__ ");
    memset(test + n, 'x', VALUE + WIRE_HEADER);
    snprintf(test + n + VALUE + WIRE_HEADER, sizeof test - (size_t)n - VALUE - WIRE_HEADER,
             " PX %lld", (long long)memory_conf()->stm_ttl_ms);
    return redis_benchmark(s, test);
}

/* CPU seconds (user + system) process pid has used. */
static double cpu_of(pid_t pid)
{
    char path[64];
    unsigned long long ut = 0, st = 0;
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (f && fscanf(f, "%*d %*s %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
        ut = st = 0;
    if (f)
        fclose(f);
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static double rusage_cpu(int who)
{
    struct rusage ru;
    getrusage(who, &ru);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

/* One side's figures in one round: rate, and CPU microseconds per op on the server and
 * on the client (this process for the manager; redis-benchmark, a waited-for child). */
struct figure {
    double rate, server_us, client_us;
};

enum side { MGR_SET, RB_SET, RB_SAME, MGR_GET, RB_GET, SIDES };

static struct figure measure(enum side side, const struct redis_server *rs, uint64_t *failed)
{
    int rb = side == RB_SET || side == RB_SAME || side == RB_GET;
    int who = rb ? RUSAGE_CHILDREN : RUSAGE_SELF;
    double srv0 = cpu_of(rs->pid), cli0 = rusage_cpu(who);
    uint64_t ops = RB_REQUESTS, bad = 0;
    struct figure f;
    if (side == MGR_SET || side == MGR_GET)
        f.rate = run_callers(side == MGR_GET, &bad, &ops);
    else
        f.rate = side == RB_SAME ? redis_benchmark_same_command(rs)
                                 : redis_benchmark(rs, side == RB_SET ? "-t set" : "-t get");
    f.server_us = ops ? (cpu_of(rs->pid) - srv0) * 1e6 / (double)ops : 0;
    f.client_us = ops ? (rusage_cpu(who) - cli0) * 1e6 / (double)ops : 0;
    *failed += bad;
    return f;
}

static double median(double *v)
{
    for (int i = 1; i < ROUNDS; i++) /* insertion sort: ROUNDS is small */
        for (int j = i; j > 0 && v[j] < v[j - 1]; j--) {
            double t = v[j];
            v[j] = v[j - 1];
            v[j - 1] = t;
        }
    return v[ROUNDS / 2];
}

/* Median over the rounds of field `at` (a member offset in struct figure) of one side. */
static double median_of(struct figure f[][SIDES], enum side side, size_t at)
{
    double v[ROUNDS];
    for (int r = 0; r < ROUNDS; r++)
        v[r] = *(const double *)((const char *)&f[r][side] + at);
    return median(v);
}

/* Median over the rounds of a / b, each round's pair measured back to back. */
static double median_ratio(struct figure f[][SIDES], enum side a, enum side b)
{
    double v[ROUNDS];
    for (int r = 0; r < ROUNDS; r++)
        v[r] = f[r][b].rate > 0 ? f[r][a].rate / f[r][b].rate : 0;
    return median(v);
}

static void report(struct figure f[][SIDES], uint64_t failed_w, uint64_t failed_r)
{
    for (int r = 0; r < ROUNDS; r++)
        printf("round %d: SET manager %.0f, redis-benchmark %.0f, manager's command %.0f;"
               " GET manager %.0f, redis-benchmark %.0f\n", r + 1, f[r][MGR_SET].rate,
               f[r][RB_SET].rate, f[r][RB_SAME].rate, f[r][MGR_GET].rate, f[r][RB_GET].rate);
    size_t rate = offsetof(struct figure, rate), srv = offsetof(struct figure, server_us),
           cli = offsetof(struct figure, client_us);
    printf("SET  manager %9.0f ops/s  redis-benchmark %9.0f req/s  ratio %.2f (goal >= 0.80)%s\n",
           median_of(f, MGR_SET, rate), median_of(f, RB_SET, rate),
           median_ratio(f, MGR_SET, RB_SET), failed_w ? "  [some writes failed]" : "");
    printf("     redis-benchmark sending the manager's command (SET ggb:key PX, %d-byte value):"
           " %.0f req/s = %.2f of plain SET; manager/that %.2f\n", VALUE + WIRE_HEADER,
           median_of(f, RB_SAME, rate), median_ratio(f, RB_SAME, RB_SET),
           median_ratio(f, MGR_SET, RB_SAME));
    printf("GET  manager %9.0f ops/s  redis-benchmark %9.0f req/s  ratio %.2f%s\n",
           median_of(f, MGR_GET, rate), median_of(f, RB_GET, rate),
           median_ratio(f, MGR_GET, RB_GET), failed_r ? "  [some reads failed]" : "");
    printf("CPU us/op server: SET manager %.2f, redis-benchmark %.2f, manager's command %.2f;"
           " GET manager %.2f, redis-benchmark %.2f\n", median_of(f, MGR_SET, srv),
           median_of(f, RB_SET, srv), median_of(f, RB_SAME, srv), median_of(f, MGR_GET, srv),
           median_of(f, RB_GET, srv));
    printf("CPU us/op client: SET manager %.2f, redis-benchmark %.2f, manager's command %.2f;"
           " GET manager %.2f, redis-benchmark %.2f\n", median_of(f, MGR_SET, cli),
           median_of(f, RB_SET, cli), median_of(f, RB_SAME, cli), median_of(f, MGR_GET, cli),
           median_of(f, RB_GET, cli));
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
           " vs redis-benchmark -c %d -P %d -r %d -d %d; medians of %d rounds\n", THREADS, DEPTH,
           THREADS, DEPTH, KEYSPACE, VALUE, ROUNDS);
    static struct figure f[ROUNDS][SIDES];
    uint64_t failed_w = 0, failed_r = 0;
    int missing = 0;
    for (int r = 0; r < ROUNDS; r++)
        for (int side = 0; side < SIDES; side++) {
            f[r][side] = measure((enum side)side, &rs, side == MGR_GET ? &failed_r : &failed_w);
            missing |= f[r][side].rate <= 0;
        }
    report(f, failed_w, failed_r);
    host_fixture_close(&fx);
    redis_server_stop(&rs);
    return failed_w || failed_r || missing;
}
