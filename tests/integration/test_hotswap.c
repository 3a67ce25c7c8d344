/* Hot-swap against the running host: two clients pipeline writes and reads (every value
 * "client:sequence") while STM moves mem -> redis (a real redis-server) with MIGRATE and
 * back, LTM moves to a new SQLite file by CONFIG.RELOAD, tier/mem is reloaded from disk,
 * and a config with an error is refused.  After each: no request failed, every read saw
 * the latest acknowledged value, every key reads back its latest value, and replaced
 * instances are closed and their private module copies gone from /proc/PID/maps. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>
#include <sys/socket.h>
#include <cmocka.h>

#include "harness.h"
#include "redisserver.h"
#include "swap_util.h"

#define KEYS 1500       /* per client */
#define BATCH 16        /* writes and as many reads per pipelined round trip */
#define MIN_OPS 3000    /* per client and phase, half before and half after the change */
#define LAT_MAX 65536

/* A client thread: its own keys, its own sequence, every acknowledged value kept. */
struct client_load {
    int id;
    const struct host *h;
    uint64_t seq;
    uint64_t acked[KEYS];        /* latest acknowledged sequence per key, 0: never written */
    _Atomic uint64_t ops;
    _Atomic int stop;
    uint64_t errors;
    char first_error[256];
    uint32_t rtt_us[LAT_MAX];
    size_t n_rtt;
    double seconds;
    pthread_t thread;
};

static void failure(struct client_load *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void failure(struct client_load *c, const char *fmt, ...)
{
    if (c->errors++ == 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(c->first_error, sizeof c->first_error, fmt, ap);
        va_end(ap);
    }
}

/* Client 1 writes its odd keys straight to LTM; everything else goes to STM. */
static int to_ltm(const struct client_load *c, int k) { return c->id == 1 && (k & 1); }

static void expected(const struct client_load *c, int k, char *out, size_t len)
{
    if (c->acked[k])
        snprintf(out, len, "%d:%llu", c->id, (unsigned long long)c->acked[k]);
    else
        snprintf(out, len, "(nil)");
}

static int written(const int *wk, int k)
{
    for (int i = 0; i < BATCH; i++)
        if (wk[i] == k)
            return 1;
    return 0;
}

/* One round trip: BATCH writes of fresh sequences, BATCH reads of keys not written in
 * it (which must show exactly their last acknowledged value). */
static int one_batch(struct client_load *c, int fd, struct reader *r, unsigned *rng)
{
    char req[BATCH * 2 * 96], want[64], got[512];
    int wk[BATCH], rk[BATCH];
    uint64_t ws[BATCH];
    size_t n = 0;
    for (int j = 0; j < BATCH; j++) {
        wk[j] = (int)(rand_r(rng) % KEYS);
        ws[j] = ++c->seq;
        n += (size_t)snprintf(req + n, sizeof req - n, "MEM.PUT c%dk%d %d:%llu%s\r\n", c->id,
                              wk[j], c->id, (unsigned long long)ws[j],
                              to_ltm(c, wk[j]) ? " TIER ltm" : "");
    }
    for (int j = 0; j < BATCH; j++) {
        int k;
        do
            k = (int)(rand_r(rng) % KEYS);
        while (written(wk, k));
        rk[j] = k;
        n += (size_t)snprintf(req + n, sizeof req - n, "GET c%dk%d\r\n", c->id, k);
    }
    uint64_t t0 = mono_us();
    send_all(fd, req, n);
    for (int j = 0; j < BATCH; j++) {
        if (rd_reply(r, got, sizeof got) < 0)
            return failure(c, "no reply to a write"), -1;
        if (strcmp(got, "+OK") != 0)
            failure(c, "write c%dk%d: %s", c->id, wk[j], got);
        else if (ws[j] > c->acked[wk[j]])
            c->acked[wk[j]] = ws[j];
    }
    for (int j = 0; j < BATCH; j++) {
        if (rd_reply(r, got, sizeof got) < 0)
            return failure(c, "no reply to a read"), -1;
        expected(c, rk[j], want, sizeof want);
        if (strcmp(got, want) != 0)
            failure(c, "read c%dk%d: got '%s', want '%s'", c->id, rk[j], got, want);
    }
    if (c->n_rtt < LAT_MAX)
        c->rtt_us[c->n_rtt++] = (uint32_t)(mono_us() - t0);
    atomic_fetch_add(&c->ops, 2 * BATCH);
    return 0;
}

static void *run_client(void *arg)
{
    struct client_load *c = arg;
    int fd = try_connect(c->h->sock);
    if (fd < 0) {
        failure(c, "cannot connect");
        return NULL;
    }
    struct reader *r = calloc(1, sizeof *r);
    r->fd = fd;
    unsigned rng = (unsigned)c->id * 7919u + (unsigned)c->seq;
    uint64_t t0 = mono_us();
    while (!atomic_load(&c->stop) && one_batch(c, fd, r, &rng) == 0)
        ;
    c->seconds = (double)(mono_us() - t0) / 1e6;
    free(r);
    close(fd);
    return NULL;
}

static struct host h;
static struct redis_server rs;
static struct client_load load[2];

static void start_clients(void)
{
    for (int i = 0; i < 2; i++) {
        load[i].id = i;
        load[i].h = &h;
        atomic_store(&load[i].ops, 0);
        atomic_store(&load[i].stop, 0);
        load[i].n_rtt = 0;
        assert_int_equal(pthread_create(&load[i].thread, NULL, run_client, &load[i]), 0);
    }
}

/* Bounded wait until each client did n more operations (or failed). */
static void wait_ops(uint64_t n)
{
    for (int waited = 0; waited < 30000; waited += 5) {
        if (atomic_load(&load[0].ops) >= n && atomic_load(&load[1].ops) >= n)
            return;
        if (load[0].errors || load[1].errors)
            return;
        poll(NULL, 0, 5);
    }
    fail_msg("clients did not reach %llu operations", (unsigned long long)n);
}

/* Stop the clients, check none failed and both kept the pace; print the figures. */
static void stop_clients(const char *phase)
{
    for (int i = 0; i < 2; i++) {
        atomic_store(&load[i].stop, 1);
        pthread_join(load[i].thread, NULL);
    }
    for (int i = 0; i < 2; i++) {
        struct client_load *c = &load[i];
        if (c->errors)
            fail_msg("%s: client %d: %llu failed requests, first: %s", phase, i,
                     (unsigned long long)c->errors, c->first_error);
        double rate = (double)atomic_load(&c->ops) / c->seconds;
        qsort(c->rtt_us, c->n_rtt, sizeof c->rtt_us[0], cmp_u32);
        printf("# %s: client %d: %.0f ops/s, round trip of %d ops p50 %u us, max %u us\n", phase,
               i, rate, 2 * BATCH, c->rtt_us[c->n_rtt / 2], c->rtt_us[c->n_rtt - 1]);
        assert_true(rate >= 1000.0);
    }
}

/* Every key of both clients reads back its latest acknowledged value. */
static void verify_all(const char *phase)
{
    int fd = client(&h);
    struct reader *r = calloc(1, sizeof *r);
    r->fd = fd;
    char req[64 * 100], got[512], want[64];
    for (int i = 0; i < 2; i++)
        for (int base = 0; base < KEYS; base += 100) {
            size_t n = 0;
            for (int k = base; k < base + 100 && k < KEYS; k++)
                n += (size_t)snprintf(req + n, sizeof req - n, "GET c%dk%d\r\n", i, k);
            send_all(fd, req, n);
            for (int k = base; k < base + 100 && k < KEYS; k++) {
                assert_int_equal(rd_reply(r, got, sizeof got), 0);
                expected(&load[i], k, want, sizeof want);
                if (strcmp(got, want) != 0)
                    fail_msg("%s: c%dk%d reads '%s', latest acknowledged '%s'", phase, i, k, got,
                             want);
            }
        }
    free(r);
    close(fd);
}

static void wait_migrated(const char *to)
{
    char info[4096], want[200];
    snprintf(want, sizeof want, "swap_to:%s\r\nswap_state:done", to);
    for (int waited = 0; waited < 30000; waited += 20) {
        command(&h, "INFO swap", info, sizeof info);
        if (strstr(info, want)) {
            char *p = strstr(info, "swap_rebinds");
            for (char *q = p; *q; q++)
                if (*q == '\r' || *q == '\n')
                    *q = ' ';
            printf("# INFO swap after migrating to %s: %s\n", to, p);
            return;
        }
        poll(NULL, 0, 20);
    }
    fail_msg("migration to %s did not finish: %s", to, info);
}

static void write_body(const char *ltm_file, const char *extra)
{
    char body[2048];
    snprintf(body, sizeof body,
             "plugin_dirs = [ \"" BUILD_PLUGINDIR "\" ];\n"
             "backends = {\n"
             "  stm_mem = { plugin = \"mem\"; };\n"
             "  stm_redis = { plugin = \"redis\"; host = \"127.0.0.1\"; port = %d; };\n"
             "  ltm = { plugin = \"sqlite\"; path = \"%%1$s/%s\"; %s };\n"
             "};\n"
             "tiers = { stm = \"stm_mem\"; ltm = \"ltm\"; };\n",
             rs.port, ltm_file, extra);
    write_config(&h, NULL, body);
}

static void prefill(void)
{
    start_clients();
    wait_ops(2 * KEYS);
    stop_clients("prefill");
}

/* Run the clients around `change`, then stop and verify. */
static void under_load(const char *phase, void (*change)(void))
{
    start_clients();
    wait_ops(MIN_OPS / 2);
    change();
    wait_ops(MIN_OPS);
    stop_clients(phase);
    verify_all(phase);
}

static void swap_to_redis(void)
{
    char r[256];
    command(&h, "PLUGIN.SWAP stm stm_redis MIGRATE", r, sizeof r);
    assert_string_equal(r, "+OK\r\n");
    wait_migrated("tier/redis[stm_redis]");
}

static void swap_back_to_mem(void)
{
    char r[256];
    command(&h, "PLUGIN.SWAP stm stm_mem MIGRATE", r, sizeof r);
    assert_string_equal(r, "+OK\r\n");
    wait_migrated("tier/mem[stm_mem]");
}

static void ltm_to_new_file(void)
{
    char r[2048];
    write_body("ltm2.db", "");
    command(&h, "CONFIG.RELOAD", r, sizeof r);
    assert_non_null(strstr(r, "slot ltm rebound to tier/sqlite[ltm] (migrating)"));
    assert_non_null(strstr(r, "tier/sqlite[ltm] replaced"));
    wait_migrated("tier/sqlite[ltm]");
}

static char mem_before[1024];

static void reload_mem(void)
{
    char r[2048];
    mapped_copies(&h, "mem", mem_before, sizeof mem_before);
    assert_true(mem_before[0] != '\0');
    command(&h, "PLUGIN.RELOAD tier/mem", r, sizeof r);
    assert_non_null(strstr(r, "slot stm moved to tier/mem[stm_mem]"));
    wait_migrated("tier/mem[stm_mem]");
}

/* SIGHUP with the file unchanged: the recorded swap to stm_redis stays. */
static void sighup_keeps_the_swap(void)
{
    char info[4096];
    kill(h.pid, SIGHUP);
    for (int waited = 0; waited < TIMEOUT_MS; waited += 10) {
        command(&h, "INFO swap", info, sizeof info);
        if (strstr(info, "swap_reloads:1\r\n"))
            break;
        poll(NULL, 0, 10);
    }
    assert_non_null(strstr(info, "swap_reloads:1\r\n"));
    command(&h, "INFO memory", info, sizeof info);
    assert_non_null(strstr(info, "slot_stm:backend=tier/redis[stm_redis],"));
}

static void test_hotswap_under_load(void **state)
{
    (void)state;
    signal(SIGPIPE, SIG_IGN);
    if (redis_server_start(&rs, 0, NULL) < 0)
        fail_msg("redis-server could not start");
    snprintf(h.dir, sizeof h.dir, "/tmp/ggl-swap-XXXXXX");
    assert_non_null(mkdtemp(h.dir));
    snprintf(h.sock, sizeof h.sock, "%s/ctl.sock", h.dir);
    snprintf(h.conf, sizeof h.conf, "%s/ganglion.conf", h.dir);
    write_body("ltm1.db", "");
    h.pid = spawn_host(&h);
    int probe = -1;
    for (int waited = 0; waited < TIMEOUT_MS && (probe = try_connect(h.sock)) < 0; waited += 10)
        poll(NULL, 0, 10); /* bounded readiness poll */
    assert_true(probe >= 0);
    close(probe);
    prefill();

    under_load("stm mem->redis MIGRATE", swap_to_redis);
    sighup_keeps_the_swap();
    under_load("stm redis->mem MIGRATE", swap_back_to_mem);
    char state_file[256], line[256];
    snprintf(state_file, sizeof state_file, "%s/ganglion-swap.state", h.dir);
    FILE *f = fopen(state_file, "r");
    assert_non_null(f);
    assert_non_null(fgets(line, sizeof line, f));
    fclose(f);
    assert_string_equal(line, "stm stm_mem stm_mem\n");

    under_load("ltm to a new SQLite file (CONFIG.RELOAD)", ltm_to_new_file);
    assert_int_equal(instance_in_state(&h, "ltm", "closed"), 1);
    assert_int_equal(instance_in_state(&h, "ltm", "open"), 1);

    /* A config with an error: refused with FILE:LINE, nothing changes. */
    char before[16384], after[16384], r[1024];
    command(&h, "PLUGIN.LIST", before, sizeof before);
    write_body("ltm3.db", "no_such_setting = 1;");
    command(&h, "CONFIG.RELOAD", r, sizeof r);
    assert_non_null(strstr(r, "-INVALID "));
    assert_non_null(strstr(r, "ganglion.conf:8: unknown key 'no_such_setting'"));
    command(&h, "PLUGIN.LIST", after, sizeof after);
    assert_string_equal(before, after);
    verify_all("after a refused reload");
    write_body("ltm2.db", "");

    under_load("PLUGIN.RELOAD tier/mem (migrating its entries)", reload_mem);
    char mem_after[1024];
    mem_before[strcspn(mem_before, " ")] = '\0'; /* the one copy mapped before */
    for (int waited = 0; waited < 10000; waited += 20) { /* the reaper closes it when drained */
        mapped_copies(&h, "mem", mem_after, sizeof mem_after);
        if (!strstr(mem_after, mem_before))
            break;
        poll(NULL, 0, 20);
    }
    printf("# tier/mem private copy before the reload: %s; after: %s\n", mem_before, mem_after);
    assert_null(strstr(mem_after, mem_before));
    assert_true(mem_after[0] != '\0');
    assert_int_equal(instance_in_state(&h, "stm_mem", "open"), 1);
    assert_true(instance_in_state(&h, "stm_mem", "closed") >= 1);

    stop_host(&h);
    h.pid = 0;
    redis_server_stop(&rs);
}

/* After a failed assertion: the host (and redis-server) must not outlive the test. */
static int teardown(void **state)
{
    (void)state;
    if (h.pid > 0) {
        kill(h.pid, SIGKILL);
        wait_exit(h.pid);
        cleanup_dir(&h);
        h.pid = 0;
    }
    if (rs.pid)
        redis_server_stop(&rs);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test_teardown(test_hotswap_under_load, teardown)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
