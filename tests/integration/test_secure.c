/* Integration: secure defaults of the real ganglion.  TCP is off unless configured and
 * then listens on 127.0.0.1 only; AUTH compares the whole secret (no prefix, no
 * embedded NUL); a plugin in a world-writable directory is refused; plugins that crash
 * or hang in open are refused by the probe while the host starts and serves. */
#include "ggl-build.h"

#include <dirent.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "copyfile.h"
#include "harness.h"

/* Socket inodes the process holds open. */
static size_t socket_inodes(pid_t pid, unsigned long *out, size_t max)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/fd", (int)pid);
    DIR *d = opendir(path);
    assert_non_null(d);
    size_t n = 0;
    for (struct dirent *e; n < max && (e = readdir(d));) {
        char link[128], target[128];
        snprintf(link, sizeof link, "%s/%s", path, e->d_name);
        ssize_t k = readlink(link, target, sizeof target - 1);
        if (k > 0) {
            target[k] = '\0';
            if (sscanf(target, "socket:[%lu]", &out[n]) == 1)
                n++;
        }
    }
    closedir(d);
    return n;
}

/* The process's listening TCP sockets as "ADDR:PORT" hex pairs from /proc/net/tcp{,6},
 * joined with spaces into out. */
static void tcp_listeners(pid_t pid, char *out, size_t len)
{
    unsigned long mine[256];
    size_t n = socket_inodes(pid, mine, 256);
    out[0] = '\0';
    static const char *const tables[] = {"/proc/net/tcp", "/proc/net/tcp6"};
    for (size_t t = 0; t < 2; t++) {
        FILE *f = fopen(tables[t], "r");
        char line[512];
        while (f && fgets(line, sizeof line, f)) {
            char local[64];
            unsigned state;
            unsigned long inode;
            if (sscanf(line, " %*d: %63s %*s %x %*s %*s %*s %*s %*s %lu", local, &state, &inode) != 3 ||
                state != 0x0A)
                continue;
            for (size_t i = 0; i < n; i++)
                if (mine[i] == inode)
                    snprintf(out + strlen(out), len - strlen(out), "%s ", local);
        }
        if (f)
            fclose(f);
    }
}

static void test_tcp_off_by_default_and_loopback_only(void **state)
{
    (void)state;
    struct host h;
    char got[512], want[64], extra[64];
    start_host(&h, NULL);
    tcp_listeners(h.pid, got, sizeof got);
    assert_string_equal(got, ""); /* no TCP unless configured */
    stop_host(&h);
    int port = free_port();
    snprintf(extra, sizeof extra, "tcp_port = %d;", port);
    start_host(&h, extra);
    tcp_listeners(h.pid, got, sizeof got);
    snprintf(want, sizeof want, "0100007F:%04X ", port); /* 127.0.0.1 only */
    assert_string_equal(got, want);
    stop_host(&h);
}

static void test_auth_compares_the_whole_secret(void **state)
{
    (void)state;
    struct host h;
    start_host(&h, "password = \"s3cret\";");
    int fd = client(&h);
    static const char req[] = "*2\r\n$4\r\nAUTH\r\n$5\r\ns3cre\r\n"  /* a prefix */
                              "*2\r\n$4\r\nAUTH\r\n$7\r\ns3cretX\r\n" /* longer */
                              "*2\r\n$4\r\nAUTH\r\n$7\r\ns3cret\0\r\n" /* a NUL after it */
                              "*2\r\n$4\r\nAUTH\r\n$0\r\n\r\n"
                              "*2\r\n$7\r\nMEM.GET\r\n$1\r\nk\r\n"
                              "*3\r\n$4\r\nAUTH\r\n$5\r\nother\r\n$6\r\ns3cret\r\n"
                              "*2\r\n$4\r\nAUTH\r\n$6\r\ns3cret\r\nPING\r\n";
    send_all(fd, req, sizeof req - 1);
    expect(fd, "-WRONGPASS invalid username-password pair\r\n"
               "-WRONGPASS invalid username-password pair\r\n"
               "-WRONGPASS invalid username-password pair\r\n"
               "-WRONGPASS invalid username-password pair\r\n"
               "-NOAUTH Authentication required.\r\n"
               "-WRONGPASS invalid username-password pair\r\n"
               "+OK\r\n+PONG\r\n");
    close(fd);
    stop_host(&h);
}

/* Start h on its config without the harness's readiness wait having the files yet. */
static void start_prepared(struct host *h)
{
    h->pid = spawn_host(h);
    for (int waited = 0; waited < TIMEOUT_MS; waited += 10) {
        int fd = try_connect(h->sock);
        if (fd >= 0) {
            close(fd);
            return;
        }
        assert_int_equal(waitpid(h->pid, NULL, WNOHANG), 0);
        poll(NULL, 0, 10);
    }
    fail_msg("ganglion did not open %s", h->sock);
}

/* PLUGIN.LIST's reply, read until the host stops sending for a moment. */
static void plugin_list(const struct host *h, char *out, size_t len)
{
    int fd = client(h);
    send_all(fd, "PLUGIN.LIST\r\n", 13);
    size_t got = read_n(fd, out, 1, TIMEOUT_MS);
    for (size_t k; got < len - 1 && (k = read_n(fd, out + got, len - 1 - got, 200)) > 0;)
        got += k;
    out[got] = '\0';
    close(fd);
}

static void test_plugin_in_world_writable_dir_refused(void **state)
{
    (void)state;
    struct host h;
    char plugins[128], tier[160], so[192], list[4096];
    snprintf(h.dir, sizeof h.dir, "/tmp/ggl-secure-XXXXXX");
    assert_non_null(mkdtemp(h.dir));
    snprintf(h.sock, sizeof h.sock, "%s/ctl.sock", h.dir);
    snprintf(h.conf, sizeof h.conf, "%s/ganglion.conf", h.dir);
    snprintf(plugins, sizeof plugins, "%s/plugins", h.dir);
    snprintf(tier, sizeof tier, "%s/tier", plugins);
    snprintf(so, sizeof so, "%s/mem.so", tier);
    assert_int_equal(mkdir(plugins, 0755), 0);
    assert_int_equal(mkdir(tier, 0755), 0);
    chmod(tier, 0777); /* anyone could replace mem.so */
    copy_file(BUILD_PLUGINDIR "/tier/.libs/mem.so", so);
    write_config(&h, NULL, "plugin_dirs = [ \"%1$s/plugins\" ];\n"
                           "backends = { s = { plugin = \"mem\"; }; };\n");
    start_prepared(&h);
    plugin_list(&h, list, sizeof list);
    assert_non_null(strstr(list, "$7\r\nrefused\r\n"));
    assert_non_null(strstr(list, "/tier is world-writable"));
    assert_still_serving(&h);
    kill(h.pid, SIGTERM);
    assert_int_equal(wait_exit(h.pid), 0);
    unlink(so);
    rmdir(tier);
    rmdir(plugins);
    cleanup_dir(&h);
}

static void test_crashing_and_hanging_plugins_refused_by_probe(void **state)
{
    (void)state;
    struct host h;
    char list[8192];
    start_host_with(&h, NULL,
                    "plugin_dirs = [ \"" TEST_PLUGINDIR "\", \"" BUILD_PLUGINDIR "\" ];\n"
                    "plugins = { probe_timeout_ms = 1000; };\n"
                    "backends = { bad = { plugin = \"crash_open\"; }; stuck = { plugin = \"hang_open\"; };"
                    " good = { plugin = \"mem\"; }; };\n");
    plugin_list(&h, list, sizeof list);
    assert_non_null(strstr(list, "crash_open.so: probe: killed by signal 11 (Segmentation fault)"));
    assert_non_null(strstr(list, "hang_open.so: probe: no answer in 1000 ms"));
    assert_non_null(strstr(list, "$4\r\ngood\r\n"));
    assert_non_null(strstr(list, "$4\r\nopen\r\n"));
    assert_still_serving(&h);
    stop_host(&h);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_tcp_off_by_default_and_loopback_only, kill_leftover_hosts),
        cmocka_unit_test_teardown(test_auth_compares_the_whole_secret, kill_leftover_hosts),
        cmocka_unit_test_teardown(test_plugin_in_world_writable_dir_refused, kill_leftover_hosts),
        cmocka_unit_test_teardown(test_crashing_and_hanging_plugins_refused_by_probe, kill_leftover_hosts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
