/* Integration: the processing engine over the socket of the real binary.  TASK.SUBMIT
 * and TASK.RESULT WAIT with the exec processor running real scripts (stdout back, exit
 * codes mapped to retry and invalid, the process group killed at the deadline), parked
 * WAITs keep reply order and leave the I/O thread free, STATUS, CANCEL, -BUSY at the
 * queue bound, INFO engine. */
#include "ggl-build.h"

#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "harness.h"

#define EXEC(name, script) \
    " " name " = { plugin = \"exec\"; task_type = \"" name "\"; command = \"/bin/sh %1$s/" script "\"; };"
#define BODY                                                                                 \
    "plugin_dirs = [ \"" BUILD_PLUGINDIR "\" ];\n"                                          \
    "pools = { processing = 2; };\n"                                                        \
    "engine = { queue_capacity = 3; critical_reserve = 0; backoff_base_ms = 10;"            \
    " backoff_max_ms = 20; monitor_ms = 20; stuck_grace_ms = 60000; max_waiters = 8; };\n"  \
    "processors = { echo = { plugin = \"echo\"; };" EXEC("upper", "upper.sh")               \
    EXEC("slow", "slow.sh") EXEC("flaky", "flaky.sh") EXEC("bad", "bad.sh") " };\n"

static struct host shared;

static void write_script(const char *name, const char *text)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", shared.dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/* TASK.SUBMIT ...: the id (asserts an integer reply). */
static long long submit(int fd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static long long submit(int fd, const char *fmt, ...)
{
    char cmd[512], line[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    sendf(fd, "TASK.SUBMIT %s\r\n", cmd);
    need_line(fd, line, sizeof line);
    if (line[0] != ':')
        fail_msg("TASK.SUBMIT %s: %s", cmd, line);
    return atoll(line + 1);
}

static void test_exec_runs_a_script_with_the_payload_on_stdin(void **state)
{
    (void)state;
    int fd = client(&shared);
    long long id = submit(fd, "upper hello");
    sendf(fd, "TASK.RESULT %lld WAIT 5000\r\n", id);
    expect(fd, "*3\r\n$2\r\nok\r\n$11\r\nHELLO upper\r\n$0\r\n\r\n"); /* GGL_TASK_TYPE */
    sendf(fd, "TASK.STATUS %lld\r\nTASK.STATUS 999999\r\n", id);
    expect(fd, "+done\r\n+unknown\r\n");
    id = submit(fd, "echo abc PRIORITY high");
    sendf(fd, "TASK.RESULT %lld WAIT 5000\r\n", id);
    expect(fd, "*3\r\n$2\r\nok\r\n$3\r\nabc\r\n$0\r\n\r\n");
    close(fd);
}

static void test_exit_codes_map_to_retry_and_invalid(void **state)
{
    (void)state;
    int fd = client(&shared);
    long long flaky = submit(fd, "flaky x RETRIES 2");
    long long bad = submit(fd, "bad x");
    sendf(fd, "TASK.RESULT %lld WAIT 5000\r\n", bad);
    expect(fd, "*3\r\n$7\r\ninvalid\r\n$0\r\n\r\n");
    char line[256];
    need_line(fd, line, sizeof line);
    need_line(fd, line, sizeof line);
    if (!strstr(line, "exited 65: no such thing"))
        fail_msg("reason: %s", line);
    sendf(fd, "TASK.RESULT %lld WAIT 5000\r\n", flaky);
    expect(fd, "*3\r\n$6\r\nfailed\r\n$0\r\n\r\n");
    need_line(fd, line, sizeof line);
    need_line(fd, line, sizeof line);
    assert_non_null(strstr(line, "still failing after 2 retries"));
    assert_non_null(strstr(line, "exited 75"));
    char path[256], count[16] = "";
    snprintf(path, sizeof path, "%s/flaky.count", shared.dir);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    assert_non_null(fgets(count, sizeof count, f));
    fclose(f);
    assert_int_equal(strlen(count), 3); /* ran 3 times: one '.' per run */
    sendf(fd, "INFO engine\r\n");
    char info[8192] = "";
    read_n(fd, info, sizeof info - 1, 500);
    assert_non_null(strstr(info, "engine_retried{flaky}:2"));
    assert_non_null(strstr(info, "engine_invalid{bad}:1"));
    assert_non_null(strstr(info, "engine_run_p99_ms{upper}:"));
    assert_non_null(strstr(info, "engine_workers:"));
    close(fd);
}

/* Is pid gone (or a zombie)? */
static int gone(pid_t pid)
{
    char path[64], stat[256] = "";
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return 1;
    char *got = fgets(stat, sizeof stat, f);
    fclose(f);
    char *close_paren = got ? strrchr(stat, ')') : NULL;
    return close_paren && close_paren[1] == ' ' && close_paren[2] == 'Z';
}

static pid_t read_pid(const char *name)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", shared.dir, name);
    for (int waited = 0; waited < TIMEOUT_MS; waited += 10) { /* written by the script */
        FILE *f = fopen(path, "r");
        int pid = 0;
        if (f) {
            int ok = fscanf(f, "%d", &pid) == 1;
            fclose(f);
            if (ok && pid > 0)
                return pid;
        }
        poll(NULL, 0, 10);
    }
    fail_msg("%s not written", name);
    return 0;
}

static void test_deadline_kills_the_whole_process_group(void **state)
{
    (void)state;
    int fd = client(&shared);
    long long id = submit(fd, "slow x TIMEOUT 300");
    pid_t child = read_pid("slow.child");
    sendf(fd, "TASK.RESULT %lld WAIT 5000\r\n", id);
    expect(fd, "*3\r\n$7\r\ntimeout\r\n$0\r\n\r\n");
    char line[256];
    need_line(fd, line, sizeof line);
    need_line(fd, line, sizeof line);
    int dead = 0;
    for (int waited = 0; waited < TIMEOUT_MS && !dead; waited += 10) { /* SIGKILL is async */
        dead = gone(child);
        if (!dead)
            poll(NULL, 0, 10);
    }
    assert_true(dead); /* the script's background child died with its group */
    close(fd);
}

/* TASK.CANCEL of a running exec task: the processor sees it (host->task_cancelled) and
 * kills the process group long before the deadline, freeing its worker. */
static void test_cancel_stops_a_running_exec_task(void **state)
{
    (void)state;
    int fd = client(&shared);
    char path[256];
    snprintf(path, sizeof path, "%s/slow.child", shared.dir);
    unlink(path); /* left by another test */
    long long id = submit(fd, "slow x TIMEOUT 60000");
    pid_t child = read_pid("slow.child");
    sendf(fd, "TASK.CANCEL %lld\r\n", id);
    expect(fd, ":1\r\n");
    int dead = 0;
    for (int waited = 0; waited < TIMEOUT_MS && !dead; waited += 10) {
        dead = gone(child);
        if (!dead)
            poll(NULL, 0, 10);
    }
    assert_true(dead);
    sendf(fd, "TASK.RESULT %lld\r\n", id);
    expect(fd, "*3\r\n$9\r\ncancelled\r\n$0\r\n\r\n$9\r\ncancelled\r\n");
    close(fd);
}

static void test_parked_wait_keeps_order_and_frees_the_io_thread(void **state)
{
    (void)state;
    int a = client(&shared), b = client(&shared);
    long long id = submit(a, "slow x TIMEOUT 400");
    sendf(a, "TASK.RESULT %lld WAIT 5000\r\nPING\r\n", id);
    sendf(b, "PING\r\n"); /* answered while a's request is parked */
    expect(b, "+PONG\r\n");
    long long quick = submit(b, "echo q");
    sendf(b, "TASK.RESULT %lld WAIT 5000\r\nTASK.RESULT %lld WAIT 50\r\n", quick, id);
    expect(b, "*3\r\n$2\r\nok\r\n$1\r\nq\r\n$0\r\n\r\n$-1\r\n"); /* the second waited 50 ms: nil */
    expect(a, "*3\r\n$7\r\ntimeout\r\n$0\r\n\r\n");
    char line[256];
    need_line(a, line, sizeof line);
    need_line(a, line, sizeof line);
    expect(a, "+PONG\r\n"); /* behind the parked reply, in request order */
    close(a);
    close(b);
}

static void test_cancel_and_busy_at_the_queue_bound(void **state)
{
    (void)state;
    int fd = client(&shared);
    long long ids[3];
    for (int i = 0; i < 3; i++)
        ids[i] = submit(fd, "slow x TIMEOUT 2000");
    sendf(fd, "TASK.SUBMIT slow x\r\n");
    expect(fd, "-BUSY task queue full for type slow\r\n");
    for (int i = 0; i < 3; i++) {
        sendf(fd, "TASK.CANCEL %lld\r\n", ids[i]);
        expect(fd, ":1\r\n");
        sendf(fd, "TASK.RESULT %lld\r\n", ids[i]);
        expect(fd, "*3\r\n$9\r\ncancelled\r\n$0\r\n\r\n$9\r\ncancelled\r\n");
    }
    sendf(fd, "TASK.CANCEL %lld\r\nTASK.CANCEL 424242\r\nTASK.RESULT 424242\r\n", ids[0]);
    expect(fd, ":0\r\n-NOTFOUND no such task (never submitted, or expired)\r\n"
               "-NOTFOUND no such id (never submitted, or expired)\r\n");
    sendf(fd, "TASK.SUBMIT nope x\r\nTASK.SUBMIT echo x PRIORITY urgent\r\nTASK.RESULT abc\r\n");
    expect(fd, "-NOTFOUND no processor serves task type nope\r\n"
               "-INVALID PRIORITY is critical, high, normal, low or 0..3\r\n"
               "-INVALID the task id must be an integer 1..18446744073709551615\r\n");
    close(fd);
}

static int setup(void **state)
{
    (void)state;
    start_host_with(&shared, NULL, BODY);
    write_script("upper.sh", "tr a-z A-Z\nprintf \" %s\" \"$GGL_TASK_TYPE\"\n");
    write_script("flaky.sh", "printf . >> \"$(dirname \"$0\")/flaky.count\"\n"
                             "echo busy, try later >&2\nexit 75\n");
    write_script("bad.sh", "echo no such thing >&2\nexit 65\n");
    write_script("slow.sh", "d=$(dirname \"$0\")\nsleep 60 &\necho $! > \"$d/slow.child.tmp\"\n"
                            "mv \"$d/slow.child.tmp\" \"$d/slow.child\"\nwait\n");
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    stop_host(&shared);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exec_runs_a_script_with_the_payload_on_stdin),
        cmocka_unit_test(test_exit_codes_map_to_retry_and_invalid),
        cmocka_unit_test(test_deadline_kills_the_whole_process_group),
        cmocka_unit_test(test_cancel_stops_a_running_exec_task),
        cmocka_unit_test(test_parked_wait_keeps_order_and_frees_the_io_thread),
        cmocka_unit_test(test_cancel_and_busy_at_the_queue_bound),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
