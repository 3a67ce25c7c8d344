/* A processor replaced by a newer build under load: two clients pipeline TASK.SUBMIT
 * and TASK.RESULT WAIT (payload "client:sequence") against processor/versioned v1; its
 * file on disk is replaced by v2 and PLUGIN.RELOAD switches over.  No task is lost or
 * fails, results change from "v1:" to "v2:" (every task submitted after the reload
 * answered gets v2), and the old instance is closed and its private copy unmapped. */
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
#include <unistd.h>
#include <sys/stat.h>
#include <cmocka.h>

#include "harness.h"
#include "swap_util.h"

#define BATCH 16
#define MIN_OPS 4000

static struct host h;
static _Atomic uint64_t reload_done_us; /* when PLUGIN.RELOAD answered; 0 before */

struct task_load {
    int id;
    uint64_t seq;
    _Atomic uint64_t ops;
    _Atomic int stop;
    uint64_t v1, v2, v1_after, errors;
    char first_error[256];
    double seconds;
    pthread_t thread;
};

static void failure(struct task_load *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void failure(struct task_load *c, const char *fmt, ...)
{
    if (c->errors++ == 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(c->first_error, sizeof c->first_error, fmt, ap);
        va_end(ap);
    }
}

/* TASK.RESULT's [status, data, reason]: status and data; -1 on a malformed reply. */
static int rd_result(struct reader *r, char *status, char *data, size_t len)
{
    char head[64], reason[256];
    if (rd_line(r, head, sizeof head) < 0 || strcmp(head, "*3") != 0)
        return snprintf(status, len, "%s", head), -1;
    return rd_reply(r, status, len) < 0 || rd_reply(r, data, len) < 0 ||
                   rd_reply(r, reason, sizeof reason) < 0
               ? -1
               : 0;
}

/* One round trip of submissions, then one of their results. */
static int task_batch(struct task_load *c, int fd, struct reader *r)
{
    char req[BATCH * 96], got[256], status[256], want[64];
    uint64_t ids[BATCH], seqs[BATCH];
    size_t n = 0;
    uint64_t sent_us = mono_us();
    for (int j = 0; j < BATCH; j++) {
        seqs[j] = ++c->seq;
        n += (size_t)snprintf(req + n, sizeof req - n, "TASK.SUBMIT versioned %d:%llu\r\n", c->id,
                              (unsigned long long)seqs[j]);
    }
    send_all(fd, req, n);
    for (int j = 0; j < BATCH; j++) {
        if (rd_reply(r, got, sizeof got) < 0)
            return failure(c, "no reply to TASK.SUBMIT"), -1;
        if (got[0] != ':')
            return failure(c, "TASK.SUBMIT: %s", got), -1;
        ids[j] = strtoull(got + 1, NULL, 10);
    }
    n = 0;
    for (int j = 0; j < BATCH; j++)
        n += (size_t)snprintf(req + n, sizeof req - n, "TASK.RESULT %llu WAIT 5000\r\n",
                              (unsigned long long)ids[j]);
    send_all(fd, req, n);
    for (int j = 0; j < BATCH; j++) {
        if (rd_result(r, status, got, sizeof got) < 0 || strcmp(status, "ok") != 0)
            return failure(c, "task %llu: status '%s'", (unsigned long long)ids[j], status), -1;
        snprintf(want, sizeof want, ":%d:%llu", c->id, (unsigned long long)seqs[j]);
        if (strncmp(got, "v1", 2) != 0 && strncmp(got, "v2", 2) != 0)
            failure(c, "task %llu: result '%s'", (unsigned long long)ids[j], got);
        else if (strcmp(got + 2, want) != 0)
            failure(c, "task %llu: result '%s', want v?%s", (unsigned long long)ids[j], got, want);
        else if (got[1] == '1') {
            c->v1++;
            uint64_t done = atomic_load(&reload_done_us);
            c->v1_after += done && sent_us > done;
        } else {
            c->v2++;
        }
    }
    atomic_fetch_add(&c->ops, 2 * BATCH);
    return 0;
}

static void *run_tasks(void *arg)
{
    struct task_load *c = arg;
    int fd = try_connect(h.sock);
    if (fd < 0)
        return failure(c, "cannot connect"), NULL;
    struct reader *r = calloc(1, sizeof *r);
    r->fd = fd;
    uint64_t t0 = mono_us();
    while (!atomic_load(&c->stop) && task_batch(c, fd, r) == 0)
        ;
    c->seconds = (double)(mono_us() - t0) / 1e6;
    free(r);
    close(fd);
    return NULL;
}

static void wait_ops(struct task_load *load, uint64_t n)
{
    for (int waited = 0; waited < 30000; waited += 5) {
        if ((atomic_load(&load[0].ops) >= n && atomic_load(&load[1].ops) >= n) ||
            load[0].errors || load[1].errors)
            return;
        poll(NULL, 0, 5);
    }
    fail_msg("task clients did not reach %llu operations", (unsigned long long)n);
}

/* Copy a built plugin to dst (through a temporary name and rename, as an installer). */
static void install(const char *src, const char *dst)
{
    char tmp[256], buf[65536];
    snprintf(tmp, sizeof tmp, "%s.tmp", dst);
    FILE *in = fopen(src, "rb"), *out = fopen(tmp, "wb");
    assert_non_null(in);
    assert_non_null(out);
    for (size_t n; (n = fread(buf, 1, sizeof buf, in)) > 0;)
        assert_int_equal(fwrite(buf, 1, n, out), n);
    fclose(in);
    assert_int_equal(fclose(out), 0);
    assert_int_equal(rename(tmp, dst), 0);
}

static void write_body(int sensor_interval_ms)
{
    char body[1024];
    snprintf(body, sizeof body,
             "plugin_dirs = [ \"%%1$s/plugins\", \"" BUILD_PLUGINDIR "\" ];\n"
             "backends = { stm = { plugin = \"mem\"; }; };\ntiers = { stm = \"stm\"; };\n"
             "processors = { ver = { plugin = \"versioned\"; }; };\n"
             "executors = { echo = { plugin = \"echo\"; }; };\n"
             "sensors = { host = { plugin = \"proc\"; interval_ms = %d; }; };\n",
             sensor_interval_ms);
    write_config(&h, NULL, body);
}

/* A sensor whose settings changed in the file: CONFIG.RELOAD opens the new one, the
 * scheduler samples it (after the sample in flight), the old one is closed. */
static void sensor_changed_by_reload(void)
{
    char r[2048], info[8192];
    write_body(200);
    command(&h, "CONFIG.RELOAD", r, sizeof r);
    assert_non_null(strstr(r, "sensor/proc[host] opened"));
    assert_non_null(strstr(r, "sensor/proc[host] replaced"));
    assert_int_equal(instance_in_state(&h, "host", "closed"), 1);
    assert_int_equal(instance_in_state(&h, "host", "open"), 1);
    command(&h, "INFO environment", info, sizeof info);
    assert_non_null(strstr(info, "sensor_host:plugin=proc,interval_ms=200,"));
}

/* Submit one action and wait for its result's data. */
static void action_roundtrip(const char *payload, char *data, size_t len)
{
    int fd = client(&h);
    struct reader *rd = calloc(1, sizeof *rd);
    rd->fd = fd;
    char id[64], status[64];
    sendf(fd, "ACTION.SUBMIT echo %s\r\n", payload);
    assert_int_equal(rd_reply(rd, id, sizeof id), 0);
    assert_int_equal(id[0], ':');
    sendf(fd, "ACTION.RESULT %s WAIT 5000\r\n", id + 1);
    assert_int_equal(rd_result(rd, status, data, len), 0);
    assert_string_equal(status, "ok");
    free(rd);
    close(fd);
}

/* PLUGIN.RELOAD executor/echo: the action system runs the new instance, the old one
 * is closed once its runs returned. */
static void executor_reloaded(void)
{
    char data[256], r[1024];
    action_roundtrip("before", data, sizeof data);
    assert_string_equal(data, "before");
    command(&h, "PLUGIN.RELOAD executor/echo", r, sizeof r);
    assert_non_null(strstr(r, "executor/echo[echo] now runs version 0.1.0"));
    action_roundtrip("after", data, sizeof data);
    assert_string_equal(data, "after");
    for (int waited = 0; waited < 10000 && !instance_in_state(&h, "echo", "closed"); waited += 20)
        poll(NULL, 0, 20);
    assert_int_equal(instance_in_state(&h, "echo", "closed"), 1);
    assert_int_equal(instance_in_state(&h, "echo", "open"), 1);
}

static void test_processor_replaced_by_newer_build(void **state)
{
    (void)state;
    signal(SIGPIPE, SIG_IGN);
    snprintf(h.dir, sizeof h.dir, "/tmp/ggl-swapp-XXXXXX");
    assert_non_null(mkdtemp(h.dir));
    snprintf(h.sock, sizeof h.sock, "%s/ctl.sock", h.dir);
    snprintf(h.conf, sizeof h.conf, "%s/ganglion.conf", h.dir);
    char plugdir[128], procdir[160], so[200];
    snprintf(plugdir, sizeof plugdir, "%s/plugins", h.dir);
    snprintf(procdir, sizeof procdir, "%s/processor", plugdir);
    snprintf(so, sizeof so, "%s/versioned.so", procdir);
    assert_int_equal(mkdir(plugdir, 0700), 0);
    assert_int_equal(mkdir(procdir, 0700), 0);
    install(TEST_PLUGINDIR "/processor/.libs/versioned_v1.so", so);
    write_body(1000);
    h.pid = spawn_host(&h);
    int probe = -1;
    for (int waited = 0; waited < TIMEOUT_MS && (probe = try_connect(h.sock)) < 0; waited += 10)
        poll(NULL, 0, 10); /* bounded readiness poll */
    assert_true(probe >= 0);
    close(probe);

    static struct task_load load[2];
    for (int i = 0; i < 2; i++) {
        load[i].id = i;
        assert_int_equal(pthread_create(&load[i].thread, NULL, run_tasks, &load[i]), 0);
    }
    wait_ops(load, MIN_OPS / 2);
    char before[512], after[512], r[2048];
    mapped_copies(&h, "versioned", before, sizeof before);
    install(TEST_PLUGINDIR "/processor/.libs/versioned_v2.so", so);
    command(&h, "PLUGIN.RELOAD processor/versioned", r, sizeof r);
    atomic_store(&reload_done_us, mono_us());
    assert_non_null(strstr(r, "processor/versioned[ver] now runs version 2.0.0"));
    wait_ops(load, MIN_OPS);
    for (int i = 0; i < 2; i++) {
        atomic_store(&load[i].stop, 1);
        pthread_join(load[i].thread, NULL);
    }
    for (int i = 0; i < 2; i++) {
        struct task_load *c = &load[i];
        if (c->errors)
            fail_msg("client %d: %llu failed, first: %s", i, (unsigned long long)c->errors,
                     c->first_error);
        double rate = (double)atomic_load(&c->ops) / c->seconds;
        printf("# processor v1->v2: client %d: %.0f ops/s, %llu tasks on v1, %llu on v2\n", i,
               rate, (unsigned long long)c->v1, (unsigned long long)c->v2);
        assert_true(rate >= 1000.0);
        assert_true(c->v1 > 0 && c->v2 > 0);
        assert_int_equal(c->v1_after, 0);
    }
    before[strcspn(before, " ")] = '\0';
    for (int waited = 0; waited < 10000; waited += 20) { /* the reaper closes it when drained */
        mapped_copies(&h, "versioned", after, sizeof after);
        if (!strstr(after, before))
            break;
        poll(NULL, 0, 20);
    }
    printf("# processor/versioned copy before: %s; after: %s\n", before, after);
    assert_true(before[0] != '\0');
    assert_null(strstr(after, before));
    assert_int_equal(instance_in_state(&h, "ver", "open"), 1);
    assert_int_equal(instance_in_state(&h, "ver", "closed"), 1);

    /* A broken newer file: refused, the running version stays. */
    install(TEST_PLUGINDIR "/processor/.libs/bad_kind.so", so);
    command(&h, "PLUGIN.RELOAD processor/versioned", r, sizeof r);
    assert_non_null(strstr(r, "-ERR "));
    assert_int_equal(instance_in_state(&h, "ver", "open"), 1);
    int fd = client(&h);
    sendf(fd, "TASK.SUBMIT versioned again\r\n");
    struct reader *rd = calloc(1, sizeof *rd);
    rd->fd = fd;
    assert_int_equal(rd_reply(rd, r, sizeof r), 0);
    sendf(fd, "TASK.RESULT %s WAIT 5000\r\n", r + 1);
    char status[64];
    assert_int_equal(rd_result(rd, status, r, sizeof r), 0);
    assert_string_equal(r, "v2:again");
    free(rd);
    close(fd);
    executor_reloaded();
    sensor_changed_by_reload();
    unlink(so);
    rmdir(procdir);
    rmdir(plugdir);
    stop_host(&h);
    h.pid = 0;
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
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test_teardown(test_processor_replaced_by_newer_build, teardown)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
