/* Unit tests for host/topology.c and host/sizing.c: cgroup v1/v2 quotas read from a
 * scratch /proc + /sys tree, the seed's formulas, clamping, the global thread cap and
 * the `pools` config section. */
#include "ggl-build.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <cmocka.h>

#include "sizing.h"
#include "topology.h"

static char root[64];

static void put(const char *rel, const char *text)
{
    char path[512], cmd[600];
    snprintf(path, sizeof path, "%s/%s", root, rel);
    snprintf(cmd, sizeof cmd, "mkdir -p \"$(dirname '%s')\"", path);
    assert_int_equal(system(cmd), 0);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static int make_root(void **state)
{
    (void)state;
    snprintf(root, sizeof root, "/tmp/ggl-topo-XXXXXX");
    return mkdtemp(root) ? 0 : -1;
}

static int remove_root(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    return system(cmd) == 0 ? 0 : -1;
}

static void test_v1_quota_takes_the_tightest_ancestor(void **state)
{
    (void)state;
    char src[160];
    put("proc/self/cgroup", "3:cpuset:/\n2:cpu,cpuacct:/a/b\n0::/\n");
    put("sys/fs/cgroup/cpu,cpuacct/a/b/cpu.cfs_quota_us", "150000\n");
    put("sys/fs/cgroup/cpu,cpuacct/a/b/cpu.cfs_period_us", "100000\n");
    assert_true(topology_cpu_quota(root, src, sizeof src) == 1.5);
    assert_non_null(strstr(src, "/a/b cpu.cfs_quota_us"));
    put("sys/fs/cgroup/cpu,cpuacct/a/cpu.cfs_quota_us", "50000\n");
    put("sys/fs/cgroup/cpu,cpuacct/a/cpu.cfs_period_us", "100000\n");
    assert_true(topology_cpu_quota(root, src, sizeof src) == 0.5);
}

static void test_v1_unlimited_is_no_quota(void **state)
{
    (void)state;
    char src[160];
    put("proc/self/cgroup", "1:cpu:/\n0::/\n");
    put("sys/fs/cgroup/cpu/cpu.cfs_quota_us", "-1\n");
    put("sys/fs/cgroup/cpu/cpu.cfs_period_us", "100000\n");
    assert_true(topology_cpu_quota(root, src, sizeof src) == 0);
}

static void test_v2_cpu_max(void **state)
{
    (void)state;
    char src[160];
    put("proc/self/cgroup", "0::/svc\n");
    put("sys/fs/cgroup/svc/cpu.max", "max 100000\n");
    assert_true(topology_cpu_quota(root, src, sizeof src) == 0);
    put("sys/fs/cgroup/svc/cpu.max", "250000 100000\n");
    assert_true(topology_cpu_quota(root, src, sizeof src) == 2.5);
    assert_non_null(strstr(src, "/svc cpu.max"));
}

static void test_no_cgroup_file_means_no_quota(void **state)
{
    (void)state;
    char src[160];
    assert_true(topology_cpu_quota("/nonexistent-ggl", src, sizeof src) == 0);
}

static void test_detects_this_machine(void **state)
{
    (void)state;
    struct topology t;
    char err[128];
    assert_int_equal(topology_detect(&t, err, sizeof err), 0);
    assert_true(t.physical >= 1 && t.logical >= t.physical);
    assert_true(t.numa_nodes >= 1);
}

static void size_for(unsigned physical, unsigned logical, const char *pools, struct sizing *s)
{
    char text[512];
    struct conf_error err;
    struct pools_conf pc;
    struct topology t = {.physical = physical, .logical = logical};
    snprintf(text, sizeof text, "pools = { %s };\n", pools);
    struct config *c = config_load_string(text, "test.conf", &err);
    assert_non_null(c);
    assert_int_equal(sizing_read(c, &pc, &err), 0);
    sizing_compute(&t, &pc, s);
    config_free(c);
}

static void test_seed_formulas_on_a_roomy_machine(void **state)
{
    (void)state;
    struct sizing s;
    size_for(4, 8, "", &s);
    assert_int_equal(s.max_threads, 64);
    assert_int_equal(s.pool[POOL_MEMORY_READ].size, 16);
    assert_int_equal(s.pool[POOL_MEMORY_WRITE].size, 8);
    assert_int_equal(s.pool[POOL_MEMORY_MAINTENANCE].size, 1);
    assert_int_equal(s.pool[POOL_PROCESSING].size, 4);
    assert_int_equal(s.pool[POOL_ACTION_EXECUTION].size, 8);
    assert_int_equal(s.pool[POOL_ACTION_FEEDBACK].size, 4);
    assert_int_equal(s.pool[POOL_ACTION_RECOVERY].size, 2);
    assert_int_equal(s.pool[POOL_ENV_STATE].size, 2);
    assert_int_equal(s.total, 47);
    assert_true(s.pool[POOL_MEMORY_READ].max > 16);      /* I/O pools may grow */
    assert_int_equal(s.pool[POOL_PROCESSING].max, 4);     /* CPU-bound never does */
    assert_int_equal(s.weight[PROC_LEARNING], 3);
    assert_int_equal(s.weight[PROC_REASONING], 4);
}

static void test_global_cap_holds(void **state)
{
    (void)state;
    struct sizing s;
    size_for(2, 2, "", &s);
    unsigned most = 0;
    for (int i = 0; i < POOL_COUNT; i++)
        most += s.pool[i].max;
    assert_true(s.total <= s.max_threads);
    assert_true(most <= s.max_threads);
    assert_int_equal(s.pool[POOL_PROCESSING].size, 2);
    assert_non_null(strstr(s.pool[POOL_MEMORY_READ].why, "cap"));
    size_for(2, 2, "max_threads = 12;", &s);
    assert_true(s.total <= 12);
}

static void test_overrides_are_clamped(void **state)
{
    (void)state;
    struct sizing s;
    size_for(2, 4, "processing = 16; memory_read = 3; pool_max = 6; action_feedback = 50;"
                   "weight_learning = 7; critical_reserve = 4000; queue_capacity = 100;", &s);
    assert_int_equal(s.pool[POOL_PROCESSING].size, 2);
    assert_non_null(strstr(s.pool[POOL_PROCESSING].why, "clamped"));
    assert_int_equal(s.pool[POOL_MEMORY_READ].size, 3);
    assert_true(s.pool[POOL_ACTION_FEEDBACK].size <= 6);
    assert_int_equal(s.weight[PROC_LEARNING], 7);
    assert_int_equal(s.conf.critical_reserve, 25);
}

static void nothing(void *arg) { (void)arg; }

static void test_sizing_configures_queues_and_pools(void **state)
{
    (void)state;
    struct sizing s;
    struct queue_config qc;
    struct pool_config pc;
    struct pool_type types[PROC_TYPES];
    size_for(2, 2, "queue_capacity = 100; critical_reserve = 10; age_ms = 50; task_deadline_ms = 7;"
                   "weight_planning = 9;", &s);
    sizing_queue_config(&s, "tasks", &qc);
    assert_int_equal(qc.capacity, 100);
    assert_int_equal(qc.critical_reserve, 10);
    assert_int_equal(qc.age_ms, 50);
    assert_int_equal(sizing_pool_config(&s, POOL_PROCESSING, &pc, types), PROC_TYPES);
    assert_int_equal(pc.min_workers, 2);
    assert_int_equal(pc.max_workers, 2);
    assert_int_equal(types[PROC_PLANNING].weight, 9);
    assert_int_equal(types[PROC_LEARNING].deadline_ms, 7);
    struct queue *q = queue_new(&qc);
    assert_non_null(q);
    queue_free(q);
    struct pool *p = pool_new(&pc);
    assert_non_null(p);
    assert_int_equal(pool_submit(p, PROC_LEARNING, nothing, NULL), GGL_OK);
    pool_free(p);
    assert_int_equal(sizing_pool_config(&s, POOL_MEMORY_WRITE, &pc, types), 1);
    assert_true(pc.max_workers >= pc.min_workers);
}

static void test_pools_section_errors_name_file_and_line(void **state)
{
    (void)state;
    struct conf_error err;
    struct pools_conf pc;
    struct config *c = config_load_string("pools = {\n  memory_reed = 4;\n};\n", "bad.conf", &err);
    assert_non_null(c);
    assert_int_equal(sizing_read(c, &pc, &err), -1);
    assert_non_null(strstr(err.msg, "bad.conf:2:"));
    assert_non_null(strstr(err.msg, "memory_reed"));
    config_free(c);
    c = config_load_string("pools = {\n  age_ms = -5;\n};\n", "bad.conf", &err);
    assert_non_null(c);
    assert_int_equal(sizing_read(c, &pc, &err), -1);
    assert_non_null(strstr(err.msg, "bad.conf:2:"));
    config_free(c);
    assert_int_equal(sizing_read(NULL, &pc, &err), 0); /* no file: defaults */
    assert_int_equal(pc.queue_capacity, 4096);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_v1_quota_takes_the_tightest_ancestor, make_root, remove_root),
        cmocka_unit_test_setup_teardown(test_v1_unlimited_is_no_quota, make_root, remove_root),
        cmocka_unit_test_setup_teardown(test_v2_cpu_max, make_root, remove_root),
        cmocka_unit_test(test_no_cgroup_file_means_no_quota),
        cmocka_unit_test(test_detects_this_machine),
        cmocka_unit_test(test_seed_formulas_on_a_roomy_machine),
        cmocka_unit_test(test_global_cap_holds),
        cmocka_unit_test(test_overrides_are_clamped),
        cmocka_unit_test(test_sizing_configures_queues_and_pools),
        cmocka_unit_test(test_pools_section_errors_name_file_and_line),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
