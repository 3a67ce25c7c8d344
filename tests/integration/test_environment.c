/* The environment, the orchestrator and the command table over the real binary's
 * socket: every command in the table (from COMMAND INFO) refuses a wrong arity naming
 * itself and reaches its handler with a right one, unknown commands are refused; the
 * STATE.* commands (rules, history bound, pipelined read-your-write, watches with
 * their bound, timeout and shutdown); the state and agent state back after a restart of
 * the binary; sensors writing readings that match /proc, statvfs and a real
 * redis-server; an action outcome published on the bus becoming the agent's. */
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/statvfs.h>
#include <unistd.h>
#include <cmocka.h>
#include <hiredis/hiredis.h>

#include "harness.h"
#include "redisserver.h"

static redisContext *connect_to(const struct host *h)
{
    redisContext *c = redisConnectUnix(h->sock);
    assert_non_null(c);
    assert_int_equal(c->err, 0);
    struct timeval tv = {TIMEOUT_MS / 1000, 0};
    redisSetTimeout(c, tv);
    return c;
}

static redisReply *run(redisContext *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(c, fmt, ap);
    va_end(ap);
    assert_non_null(r);
    return r;
}

static void expect_status(redisContext *c, const char *want, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(c, fmt, ap);
    va_end(ap);
    assert_non_null(r);
    if (!r->str || strncmp(r->str, want, strlen(want)) != 0)
        fail_msg("%s: got type %d '%s', expected '%s'", fmt, r->type, r->str ? r->str : "", want);
    freeReplyObject(r);
}

/* The value of a key (NULL for nil), polled until `ready` says it is what we wait for. */
static char *poll_state(redisContext *c, const char *key, int (*ready)(const char *v))
{
    for (int waited = 0; waited < TIMEOUT_MS; waited += 20) {
        redisReply *r = run(c, "STATE.GET %s", key);
        char *v = r->type == REDIS_REPLY_STRING ? strdup(r->str) : NULL;
        freeReplyObject(r);
        if (v && ready(v))
            return v;
        free(v);
        poll(NULL, 0, 20); /* a bounded wait for the real host's sensor thread */
    }
    fail_msg("%s never became ready", key);
    return NULL;
}

/* Wait (bounded) until n watches are parked: a's requests were read before b's. */
static void wait_watchers(redisContext *c, int n)
{
    char want[64];
    snprintf(want, sizeof want, "environment_watchers:%d\r\n", n);
    for (int waited = 0; waited < TIMEOUT_MS; waited += 10) {
        redisReply *r = run(c, "INFO environment");
        int parked = strstr(r->str, want) != NULL;
        freeReplyObject(r);
        if (parked)
            return;
        poll(NULL, 0, 10);
    }
    fail_msg("never %d parked watches", n);
}

static int any(const char *v) { (void)v; return 1; }
static int is_one(const char *v) { return strcmp(v, "1") == 0; }
static int is_zero(const char *v) { return strcmp(v, "0") == 0; }

/* Send argc arguments "x" after the name; the reply (caller frees). */
static redisReply *send_with(redisContext *c, const char *name, int argc)
{
    const char *argv[32];
    argv[0] = name;
    for (int i = 1; i < argc; i++)
        argv[i] = "x";
    redisReply *r = redisCommandArgv(c, argc, argv, NULL);
    assert_non_null(r);
    return r;
}

static void expect_arity_error(redisContext *c, const char *name, int argc)
{
    char want[128];
    snprintf(want, sizeof want, "ERR wrong number of arguments for '%s' command", name);
    redisReply *r = send_with(c, name, argc);
    if (r->type != REDIS_REPLY_ERROR || strcmp(r->str, want) != 0)
        fail_msg("%s with %d arguments: '%s'", name, argc, r->str ? r->str : "(not an error)");
    freeReplyObject(r);
}

static void test_every_command_routes_and_checks_arity(void **state)
{
    (void)state;
    struct host h;
    start_host(&h, NULL);
    redisContext *c = connect_to(&h);
    redisReply *table = run(c, "COMMAND INFO");
    assert_int_equal(table->type, REDIS_REPLY_ARRAY);
    assert_true(table->elements >= 25);
    size_t checked = 0;
    for (size_t i = 0; i < table->elements; i++) {
        const char *name = table->element[i]->element[0]->str;
        int arity = (int)table->element[i]->element[1]->integer;
        if (arity > 0)
            expect_arity_error(c, name, arity + 1);
        if (arity > 1)
            expect_arity_error(c, name, arity - 1);
        if (arity < -1)
            expect_arity_error(c, name, -arity - 1);
        checked += arity != -1; /* at least -1 (the name alone): nothing can be too few */
        if (!strcmp(name, "SHUTDOWN") || !strcmp(name, "QUIT"))
            continue;
        redisReply *r = send_with(c, name, arity > 0 ? arity : -arity);
        char refused[128];
        snprintf(refused, sizeof refused, "ERR wrong number of arguments for '%s' command", name);
        if (r->type == REDIS_REPLY_ERROR &&
            (!strncmp(r->str, "ERR unknown command", 19) || !strcmp(r->str, refused)))
            fail_msg("%s did not reach its handler: %s", name, r->str);
        freeReplyObject(r);
    }
    assert_true(checked >= 20);
    freeReplyObject(table);
    expect_status(c, "ERR unknown command 'NOPE'", "NOPE");
    expect_status(c, "ERR unknown command 'STATE.NOPE'", "STATE.NOPE a b");
    expect_status(c, "OK", "state.set lower case");  /* names are case-insensitive */
    redisReply *r = run(c, "COMMAND INFO STATE.SET nope");
    assert_int_equal(r->elements, 2);
    assert_int_equal(r->element[0]->element[1]->integer, 3);
    assert_int_equal(r->element[1]->type, REDIS_REPLY_NIL);
    freeReplyObject(r);
    redisFree(c);
    stop_host(&h);
}

static void test_state_commands(void **state)
{
    (void)state;
    struct host h;
    start_host_with(&h, NULL,
                    "environment = { history = 3; rules = ( { key = \"agent.mode\";"
                    " allowed = [\"idle\", \"busy\"]; }, { key = \"cpu.load\"; type = \"float\";"
                    " min = 0.0; max = 100.0; } ); };\n");
    redisContext *c = connect_to(&h);
    expect_status(c, "OK", "STATE.SET agent.mode busy");
    expect_status(c, "INVALID 'agent.mode' must be one of idle busy", "STATE.SET agent.mode asleep");
    expect_status(c, "INVALID 'cpu.load' must be between 0 and 100", "STATE.SET cpu.load 120");
    expect_status(c, "OK", "STATE.SET cpu.load 42");
    expect_status(c, "OK", "STATE.SET cpu.load 43");
    expect_status(c, "busy", "STATE.GET agent.mode");
    redisReply *r = run(c, "STATE.GET nothing");
    assert_int_equal(r->type, REDIS_REPLY_NIL);
    freeReplyObject(r);
    r = run(c, "STATE.GET cpu.load WITHMETA");
    assert_int_equal(r->elements, 6);
    assert_string_equal(r->element[1]->str, "43");
    assert_true(r->element[3]->integer > 1600000000000LL);
    assert_string_equal(r->element[5]->str, "client");
    freeReplyObject(r);
    r = run(c, "STATE.GET");
    assert_int_equal(r->elements, 4);
    assert_string_equal(r->element[0]->str, "agent.mode"); /* sorted by key */
    assert_string_equal(r->element[3]->str, "43");
    freeReplyObject(r);
    r = run(c, "STATE.HISTORY 100");
    assert_int_equal(r->elements, 3); /* history = 3 of the 3 applied updates */
    assert_string_equal(r->element[2]->element[1]->str, "cpu.load");
    assert_string_equal(r->element[2]->element[2]->str, "43");
    freeReplyObject(r);
    expect_status(c, "OK", "STATE.SET extra 1");
    r = run(c, "STATE.HISTORY 100");
    assert_int_equal(r->elements, 3);
    assert_string_equal(r->element[0]->element[2]->str, "42"); /* the oldest went */
    freeReplyObject(r);
    expect_status(c, "INVALID STATE.HISTORY wants a count", "STATE.HISTORY 0");
    expect_status(c, "ERR STATE.GET [key [WITHMETA]]", "STATE.GET a b");
    for (int i = 0; i < 50; i++) { /* pipelined: each read sees the write before it */
        redisAppendCommand(c, "STATE.SET p %d", i);
        redisAppendCommand(c, "STATE.GET p");
    }
    for (int i = 0; i < 50; i++) {
        void *rep;
        char want[16];
        snprintf(want, sizeof want, "%d", i);
        assert_int_equal(redisGetReply(c, &rep), REDIS_OK);
        assert_string_equal(((redisReply *)rep)->str, "OK");
        freeReplyObject(rep);
        assert_int_equal(redisGetReply(c, &rep), REDIS_OK);
        assert_string_equal(((redisReply *)rep)->str, want);
        freeReplyObject(rep);
    }
    r = run(c, "INFO environment");
    assert_non_null(strstr(r->str, "environment_rejected:2"));
    assert_non_null(strstr(r->str, "rules:2"));
    freeReplyObject(r);
    redisFree(c);
    stop_host(&h);
}

static void test_watches_over_the_socket(void **state)
{
    (void)state;
    struct host h;
    start_host_with(&h, NULL, "environment = { max_watchers = 2; watch_max_ms = 60000; };\n");
    redisContext *a = connect_to(&h), *b = connect_to(&h);
    redisAppendCommand(a, "STATE.WATCH door 30000");
    redisAppendCommand(a, "STATE.WATCH room.* 30000");
    int done = 0;
    while (!done)
        assert_int_equal(redisBufferWrite(a, &done), REDIS_OK);
    wait_watchers(b, 2);
    expect_status(b, "BUSY too many parked watches", "STATE.WATCH third 30000");
    expect_status(b, "OK", "STATE.SET door open");
    void *rep;
    assert_int_equal(redisGetReply(a, &rep), REDIS_OK);
    redisReply *r = rep;
    assert_int_equal(r->type, REDIS_REPLY_ARRAY);
    assert_string_equal(r->element[0]->str, "door");
    assert_string_equal(r->element[1]->str, "open");
    freeReplyObject(r);
    expect_status(b, "OK", "STATE.SET room.kitchen warm");
    assert_int_equal(redisGetReply(a, &rep), REDIS_OK);
    r = rep;
    assert_string_equal(r->element[0]->str, "room.kitchen");
    freeReplyObject(r);
    r = run(b, "STATE.WATCH quiet 50");
    assert_int_equal(r->type, REDIS_REPLY_NIL); /* the timeout */
    freeReplyObject(r);
    expect_status(b, "INVALID STATE.WATCH key timeout_ms", "STATE.WATCH quiet 0");
    /* A watch parked at shutdown is answered at once; the host exits 0 well before the
     * drain deadline. */
    redisAppendCommand(a, "STATE.WATCH never 60000");
    done = 0;
    while (!done)
        assert_int_equal(redisBufferWrite(a, &done), REDIS_OK);
    wait_watchers(b, 1);
    expect_status(b, "OK", "SHUTDOWN");
    assert_int_equal(redisGetReply(a, &rep), REDIS_OK);
    assert_string_equal(((redisReply *)rep)->str, "ERR shutting down");
    freeReplyObject(rep);
    redisFree(a);
    redisFree(b);
    assert_int_equal(wait_exit(h.pid), 0);
    cleanup_dir(&h);
}

static void restart(struct host *h)
{
    kill(h->pid, SIGTERM);
    assert_int_equal(wait_exit(h->pid), 0);
    h->pid = spawn_host(h);
    for (int waited = 0; waited < TIMEOUT_MS; waited += 10) {
        int fd = try_connect(h->sock);
        if (fd >= 0) {
            close(fd);
            return;
        }
        poll(NULL, 0, 10);
    }
    fail_msg("ganglion did not come back");
}

static void test_state_survives_a_restart(void **state)
{
    (void)state;
    struct host h;
    start_host_with(&h, NULL, "environment = { snapshot_path = \"%1$s/state.db\"; };\n");
    redisContext *c = connect_to(&h);
    expect_status(c, "OK", "STATE.SET plan %s", "step three");
    expect_status(c, "OK", "AGENT.SET goal %s", "find food");
    expect_status(c, "OK", "AGENT.SET step 3");
    expect_status(c, "INVALID agent fields", "AGENT.SET mood happy");
    redisFree(c);
    restart(&h);
    c = connect_to(&h);
    expect_status(c, "step three", "STATE.GET plan");
    redisReply *r = run(c, "AGENT.STATE");
    assert_int_equal(r->elements, 10);
    assert_string_equal(r->element[0]->str, "goal");
    assert_string_equal(r->element[1]->str, "find food");
    assert_string_equal(r->element[3]->str, "3");
    freeReplyObject(r);
    r = run(c, "STATE.GET plan WITHMETA");
    assert_string_equal(r->element[5]->str, "client");
    freeReplyObject(r);
    redisFree(c);
    stop_host(&h);
}

static void test_outcome_published_on_the_bus_becomes_the_agents(void **state)
{
    (void)state;
    struct host h;
    start_host(&h, NULL);
    redisContext *a = connect_to(&h), *b = connect_to(&h);
    redisAppendCommand(a, "STATE.WATCH agent.last_outcome 30000");
    int done = 0;
    while (!done)
        assert_int_equal(redisBufferWrite(a, &done), REDIS_OK);
    wait_watchers(b, 1);
    expect_status(b, "OK", "ORCH.PUBLISH action.outcome 7 %s", "{\"action\":\"eat\",\"status\":\"OK\"}");
    void *rep;
    assert_int_equal(redisGetReply(a, &rep), REDIS_OK);
    assert_string_equal(((redisReply *)rep)->element[1]->str, "{\"action\":\"eat\",\"status\":\"OK\"}");
    freeReplyObject(rep);
    redisReply *r = run(b, "AGENT.STATE");
    assert_string_equal(r->element[5]->str, "{\"action\":\"eat\",\"status\":\"OK\"}");
    assert_string_equal(r->element[7]->str, "client");
    freeReplyObject(r);
    expect_status(b, "INVALID topic", "ORCH.PUBLISH %s k v", "");
    r = run(b, "INFO orchestrator");
    assert_non_null(strstr(r->str, "orchestrator_published:"));
    assert_non_null(strstr(r->str, "subscribers:1"));
    freeReplyObject(r);
    redisFree(a);
    redisFree(b);
    stop_host(&h);
}

static double number(redisContext *c, const char *key)
{
    char *v = poll_state(c, key, any);
    double d = strtod(v, NULL);
    free(v);
    return d;
}

static void test_sensors_write_readings_into_the_state(void **state)
{
    (void)state;
    struct redis_server rs = {0};
    assert_int_equal(redis_server_start(&rs, 0, NULL), 0);
    char body[1024];
    snprintf(body, sizeof body,
             "sensors = { proc = { plugin = \"proc\"; interval_ms = 50; };\n"
             "  disk = { plugin = \"disk\"; interval_ms = 50; paths = \"work=%%1$s\"; };\n"
             "  redis = { plugin = \"redis\"; interval_ms = 50; port = %d; connect_timeout_ms = 200;"
             " command_timeout_ms = 200; fields = \"role\"; }; };\n"
             "environment = { sensor_backoff_after = 2; sensor_backoff_max_ms = 400; };\n", rs.port);
    struct host h;
    start_host_with(&h, NULL, body);
    redisContext *c = connect_to(&h);
    FILE *f = fopen("/proc/meminfo", "r");
    double total = 0;
    char line[256];
    while (f && fgets(line, sizeof line, f))
        sscanf(line, "MemTotal: %lf kB", &total);
    if (f)
        fclose(f);
    assert_true(number(c, "proc.mem_total_bytes") == total * 1024);
    double load = number(c, "proc.load1");
    assert_true(load >= 0 && load < 1000);
    free(poll_state(c, "proc.cpu_busy_ratio", any)); /* from the second sample on */
    struct statvfs v;
    assert_int_equal(statvfs(h.dir, &v), 0);
    assert_true(number(c, "disk.work.total_bytes") == (double)v.f_blocks * (double)v.f_frsize);
    free(poll_state(c, "redis.up", is_one));
    expect_status(c, "master", "STATE.GET redis.role");
    redisReply *r = run(c, "STATE.GET redis.up WITHMETA");
    assert_string_equal(r->element[5]->str, "sensor/redis[redis]");
    freeReplyObject(r);
    redis_server_kill(&rs);
    free(poll_state(c, "redis.up", is_zero));
    char *err = poll_state(c, "redis.error", any);
    assert_non_null(strstr(err, "redis 127.0.0.1:"));
    free(err);
    for (int waited = 0;; waited += 20) { /* backed off: the interval is longer now */
        r = run(c, "INFO environment");
        int backed_off = strstr(r->str, "sensor_redis:plugin=redis,interval_ms=50,effective_ms=50,") == NULL;
        freeReplyObject(r);
        if (backed_off)
            break;
        assert_true(waited < TIMEOUT_MS);
        poll(NULL, 0, 20);
    }
    assert_int_equal(redis_server_start(&rs, rs.port, NULL), 0);
    free(poll_state(c, "redis.up", is_one));
    redisFree(c);
    stop_host(&h);
    redis_server_stop(&rs);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_command_routes_and_checks_arity),
        cmocka_unit_test(test_state_commands),
        cmocka_unit_test(test_watches_over_the_socket),
        cmocka_unit_test(test_state_survives_a_restart),
        cmocka_unit_test(test_outcome_published_on_the_bus_becomes_the_agents),
        cmocka_unit_test(test_sensors_write_readings_into_the_state),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
