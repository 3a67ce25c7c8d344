/* Integration faults on the real binary, each asserting that what was acknowledged
 * survives: the LTM file's disk fills up (a 1 MiB tmpfs: refusals name the cause, the
 * host serves on), and the host is SIGKILLed under write load and restarted (the SQLite
 * file passes integrity_check and holds every acknowledged write).  Mounting needs root,
 * as CI runs; without it the test fails, it does not skip. */
#include "ggl-build.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "harness.h"

#define MAX_OPS 4000
#define VALUE_LEN 1500
#define STR(x) #x
#define TO_STR(x) STR(x)

#define BODY(dbdir)                                                                           \
    "plugin_dirs = [ \"" BUILD_PLUGINDIR "\" ];\n"                                           \
    "backends = { l = { plugin = \"sqlite\"; path = \"%1$s/" dbdir "/ltm.db\"; }; };\n"      \
    "tiers = { ltm = \"l\"; };\n"

/* The value written for key i: its number, then filler, so a torn or stale value shows. */
static void value_of(int i, char *out)
{
    int n = snprintf(out, VALUE_LEN + 1, "%d:", i);
    memset(out + n, 'a' + i % 26, (size_t)(VALUE_LEN - n));
    out[VALUE_LEN] = '\0';
}

/* MEM.PUT k<i> <value> TIER ltm; returns the reply's first line in line. */
/* 0 when the host is gone: the loader thread cannot assert (cmocka's checks belong to
 * the test's own thread), and a SIGKILL may land in the middle of a send. */
static int put(int fd, int i, char *line, size_t size)
{
    char value[VALUE_LEN + 1], key[32], req[VALUE_LEN + 128];
    value_of(i, value);
    int kl = snprintf(key, sizeof key, "k%d", i);
    int n = snprintf(req, sizeof req,
                     "*5\r\n$7\r\nMEM.PUT\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n$4\r\nTIER\r\n$3\r\nltm\r\n",
                     kl, key, VALUE_LEN, value);
    for (int at = 0; at < n;) {
        ssize_t k = send(fd, req + at, (size_t)(n - at), MSG_NOSIGNAL);
        if (k <= 0)
            return 0;
        at += (int)k;
    }
    return read_line(fd, line, size);
}

/* Every acknowledged key reads back with its own value. */
static void expect_acked(const struct host *h, const unsigned char *acked, int n)
{
    int fd = client(h);
    char head[512], got[VALUE_LEN + 2], value[VALUE_LEN + 1];
    for (int i = 0; i < n; i++) {
        if (!acked[i])
            continue;
        sendf(fd, "GET k%d\r\n", i);
        value_of(i, value);
        assert_true(read_line(fd, head, sizeof head));
        if (strcmp(head, "$" TO_STR(VALUE_LEN)) != 0)
            fail_msg("acknowledged k%d: GET answers %s", i, head);
        assert_int_equal(read_n(fd, got, VALUE_LEN + 2, TIMEOUT_MS), VALUE_LEN + 2);
        if (memcmp(got, value, VALUE_LEN) != 0)
            fail_msg("acknowledged k%d reads back as %.40s", i, got);
    }
    close(fd);
}

/* The failed writes opened LTM's breaker for writes; reads have their own and are
 * served at once (a miss answered as a miss, not -BUSY). */
static void expect_reads_served(const struct host *h)
{
    int fd = client(h);
    char line[512];
    sendf(fd, "MEM.GET never-written\r\n");
    assert_true(read_line(fd, line, sizeof line));
    assert_string_equal(line, "$-1");
    close(fd);
}

static void restart(struct host *h)
{
    unlink(h->sock);
    h->pid = spawn_host(h);
    int fd = -1;
    for (int waited = 0; (fd = try_connect(h->sock)) < 0 && waited < TIMEOUT_MS; waited += 10)
        poll(NULL, 0, 10);
    assert_true(fd >= 0);
    close(fd);
}

static char mounted[128]; /* unmounted by the teardown, also after a failed assertion */

static void mount_small_tmpfs(const char *dir, const char *opts)
{
    assert_int_equal(mkdir(dir, 0700) == 0 || errno == EEXIST, 1);
    if (mount("tmpfs", dir, "tmpfs", 0, opts) != 0)
        fail_msg("mount tmpfs on %s: %s (these tests need root)", dir, strerror(errno));
    snprintf(mounted, sizeof mounted, "%s", dir);
}

static int unmount_teardown(void **state)
{
    kill_leftover_hosts(state); /* a failed assertion left its host on the mount */
    if (mounted[0])
        umount2(mounted, MNT_DETACH);
    mounted[0] = '\0';
    return 0;
}

/* The host in h->dir with its LTM on a small tmpfs at h->dir/fs. */
static void start_on_tmpfs(struct host *h, char *fs, size_t fs_len)
{
    snprintf(h->dir, sizeof h->dir, "/tmp/ggl-faults-XXXXXX");
    assert_non_null(mkdtemp(h->dir));
    snprintf(h->sock, sizeof h->sock, "%s/ctl.sock", h->dir);
    snprintf(h->conf, sizeof h->conf, "%s/ganglion.conf", h->dir);
    snprintf(fs, fs_len, "%s/fs", h->dir);
    mount_small_tmpfs(fs, "size=1m,mode=0700");
    write_config(h, NULL, BODY("fs"));
    restart(h);
}

static void stop_and_unmount(struct host *h, const char *fs)
{
    kill(h->pid, SIGTERM);
    assert_int_equal(wait_exit(h->pid), 0);
    assert_int_equal(umount2(fs, MNT_DETACH), 0);
    mounted[0] = '\0';
    rmdir(fs);
    cleanup_dir(h);
}

/* Writes until the disk is full: the refusals say why, the host keeps serving, and
 * everything acknowledged is there — now and after a restart. */
static void test_ltm_disk_full(void **state)
{
    (void)state;
    struct host h;
    char fs[128], line[512];
    start_on_tmpfs(&h, fs, sizeof fs);
    static unsigned char acked[MAX_OPS];
    memset(acked, 0, sizeof acked);
    int fd = client(&h), n = 0, refused = 0;
    for (; n < MAX_OPS && refused < 20; n++) {
        assert_true(put(fd, n, line, sizeof line));
        if (strcmp(line, "+OK") == 0) {
            acked[n] = 1;
        } else {
            if (!refused++ && !strstr(line, "full")) /* "database or disk is full" */
                fail_msg("first refusal does not say the disk is full: %s", line);
            assert_true(line[0] == '-');
        }
    }
    close(fd);
    assert_int_equal(refused, 20);
    assert_true(n > 50); /* some writes fit before the disk filled */
    assert_still_serving(&h);
    expect_reads_served(&h);
    expect_acked(&h, acked, n);
    kill(h.pid, SIGTERM);
    assert_int_equal(wait_exit(h.pid), 0);
    restart(&h);
    expect_acked(&h, acked, n);
    stop_and_unmount(&h, fs);
}

struct loader {
    const struct host *h;
    unsigned char acked[MAX_OPS];
    _Atomic int n_acked;
    int sent;
};

static void *write_until_killed(void *arg)
{
    struct loader *l = arg;
    int fd = try_connect(l->h->sock);
    char line[512];
    for (l->sent = 0; fd >= 0 && l->sent < MAX_OPS; l->sent++) {
        if (!put(fd, l->sent, line, sizeof line))
            break; /* the host died under us: this write's fate is unknown, not acknowledged */
        if (strcmp(line, "+OK") == 0) {
            l->acked[l->sent] = 1;
            atomic_fetch_add(&l->n_acked, 1);
        }
    }
    if (fd >= 0)
        close(fd);
    return NULL;
}

static void test_sigkill_under_write_load(void **state)
{
    (void)state;
    struct host h;
    snprintf(h.dir, sizeof h.dir, "/tmp/ggl-faults-XXXXXX");
    assert_non_null(mkdtemp(h.dir));
    snprintf(h.sock, sizeof h.sock, "%s/ctl.sock", h.dir);
    snprintf(h.conf, sizeof h.conf, "%s/ganglion.conf", h.dir);
    char dbdir[128];
    snprintf(dbdir, sizeof dbdir, "%s/db", h.dir);
    assert_int_equal(mkdir(dbdir, 0700), 0);
    write_config(&h, NULL, BODY("db"));
    restart(&h);
    static struct loader l;
    memset(&l, 0, sizeof l);
    l.h = &h;
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, write_until_killed, &l), 0);
    for (int i = 0; i < 2000 && atomic_load(&l.n_acked) < 500; i++) /* bounded: ~20 s */
        poll(NULL, 0, 10);
    assert_true(atomic_load(&l.n_acked) >= 500);
    kill(h.pid, SIGKILL);
    int st;
    assert_int_equal(waitpid(h.pid, &st, 0), h.pid);
    assert_true(WIFSIGNALED(st));
    pthread_join(th, NULL);
    assert_true(l.sent < MAX_OPS); /* killed mid-load, not after it finished */

    char path[256];
    snprintf(path, sizeof path, "%s/ltm.db", dbdir);
    sqlite3 *db;
    sqlite3_stmt *q;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK); /* recovers the WAL */
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &q, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(q), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(q, 0), "ok");
    sqlite3_finalize(q);
    sqlite3_close(db);

    restart(&h);
    expect_acked(&h, l.acked, l.sent + 1 < MAX_OPS ? l.sent + 1 : MAX_OPS);
    kill(h.pid, SIGTERM);
    assert_int_equal(wait_exit(h.pid), 0);
    unlink(path);
    char side[300];
    snprintf(side, sizeof side, "%s-wal", path), unlink(side);
    snprintf(side, sizeof side, "%s-shm", path), unlink(side);
    rmdir(dbdir);
    cleanup_dir(&h);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_ltm_disk_full, unmount_teardown),
        cmocka_unit_test_teardown(test_sigkill_under_write_load, kill_leftover_hosts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
