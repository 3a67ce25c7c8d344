/* Machine topology: hwloc 2 for cores, CPUs, packages, NUMA nodes and caches, limited
 * to the CPUs this process is bound to, then capped by the cgroup CPU quota (v2
 * cpu.max, or v1 cpu.cfs_quota_us / cpu.cfs_period_us), read once at start-up. */
#include "ggl-build.h"

#include <hwloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "topology.h"

/* --- cgroup CPU quota ------------------------------------------------------ */

/* Quota in CPUs from one cgroup directory, or 0 if it sets none. */
static double quota_v2(const char *dir)
{
    char path[4096], max[32];
    long long period = 0;
    snprintf(path, sizeof path, "%s/cpu.max", dir);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    int n = fscanf(f, "%31s %lld", max, &period);
    fclose(f);
    if (n != 2 || strcmp(max, "max") == 0 || period <= 0)
        return 0;
    return atof(max) / (double)period;
}

static long long read_ll(const char *dir, const char *name)
{
    char path[4096];
    long long v = -1;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    if (fscanf(f, "%lld", &v) != 1)
        v = -1;
    fclose(f);
    return v;
}

static double quota_v1(const char *dir)
{
    long long quota = read_ll(dir, "cpu.cfs_quota_us");
    long long period = read_ll(dir, "cpu.cfs_period_us");
    return quota > 0 && period > 0 ? (double)quota / (double)period : 0;
}

/* The tightest quota of `cg` and its ancestors under mount point `mnt`. */
static double tightest(const char *root, const char *mnt, const char *cg, int v2,
                       char *source, size_t srclen)
{
    char dir[4096];
    double best = 0;
    snprintf(dir, sizeof dir, "%s%s%s", root, mnt, strcmp(cg, "/") == 0 ? "" : cg);
    size_t base = strlen(root) + strlen(mnt);
    for (;;) {
        double q = v2 ? quota_v2(dir) : quota_v1(dir);
        if (q > 0 && (best == 0 || q < best)) {
            best = q;
            snprintf(source, srclen, "%s %s", dir + strlen(root),
                     v2 ? "cpu.max" : "cpu.cfs_quota_us/cpu.cfs_period_us");
        }
        char *slash = strrchr(dir, '/');
        if (!slash || (size_t)(slash - dir) < base)
            break;
        *slash = '\0';
    }
    return best;
}

static int has_cpu_controller(const char *list)
{
    char copy[256];
    snprintf(copy, sizeof copy, "%s", list);
    for (char *save = NULL, *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save))
        if (strcmp(tok, "cpu") == 0)
            return 1;
    return 0;
}

double topology_cpu_quota(const char *root, char *source, size_t srclen)
{
    static const char *const v1_mounts[] = {"/sys/fs/cgroup/cpu", "/sys/fs/cgroup/cpu,cpuacct",
                                            "/sys/fs/cgroup/cpuacct,cpu"};
    static const char *const v2_mounts[] = {"/sys/fs/cgroup", "/sys/fs/cgroup/unified"};
    char path[4096], line[4096];
    double best = 0;
    snprintf(source, srclen, "cpu.max is \"max\" or cpu.cfs_quota_us is -1");
    snprintf(path, sizeof path, "%s/proc/self/cgroup", root);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = '\0';
        char *c1 = strchr(line, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
        if (!c2)
            continue;
        *c1 = *c2 = '\0'; /* "ID:CONTROLLERS:PATH"; v2 is "0::PATH" */
        int v2 = strcmp(line, "0") == 0 && c1[1] == '\0';
        if (!v2 && !has_cpu_controller(c1 + 1))
            continue;
        const char *const *mounts = v2 ? v2_mounts : v1_mounts;
        size_t n = v2 ? 2 : 3;
        for (size_t i = 0; i < n; i++) {
            char src[256];
            double q = tightest(root, mounts[i], c2 + 1, v2, src, sizeof src);
            if (q > 0 && (best == 0 || q < best)) {
                best = q;
                snprintf(source, srclen, "%s", src);
            }
        }
    }
    fclose(f);
    return best;
}

/* --- hwloc ----------------------------------------------------------------- */

static uint64_t cache_size(hwloc_topology_t topo, hwloc_obj_type_t type)
{
    for (hwloc_obj_t o = hwloc_get_next_obj_by_type(topo, type, NULL); o;
         o = hwloc_get_next_obj_by_type(topo, type, o))
        if (o->attr && o->attr->cache.type != HWLOC_OBJ_CACHE_INSTRUCTION)
            return o->attr->cache.size;
    return 0;
}

static unsigned count_in(hwloc_topology_t topo, hwloc_const_cpuset_t set, hwloc_obj_type_t type)
{
    int n = hwloc_get_nbobjs_inside_cpuset_by_type(topo, set, type);
    return n > 0 ? (unsigned)n : 0;
}

int topology_detect(struct topology *t, char *err, size_t errlen)
{
    hwloc_topology_t topo;
    memset(t, 0, sizeof *t);
    if (hwloc_topology_init(&topo) < 0 || hwloc_topology_load(topo) < 0) {
        snprintf(err, errlen, "hwloc could not read the machine's topology");
        return -1;
    }
    hwloc_bitmap_t bound = hwloc_bitmap_alloc();
    if (!bound) {
        hwloc_topology_destroy(topo);
        snprintf(err, errlen, "out of memory reading the topology");
        return -1;
    }
    if (hwloc_get_cpubind(topo, bound, HWLOC_CPUBIND_PROCESS) < 0)
        hwloc_bitmap_copy(bound, hwloc_topology_get_allowed_cpuset(topo));
    hwloc_bitmap_and(bound, bound, hwloc_topology_get_allowed_cpuset(topo));
    t->bound_logical = count_in(topo, bound, HWLOC_OBJ_PU);
    t->bound_physical = count_in(topo, bound, HWLOC_OBJ_CORE);
    if (t->bound_physical == 0) /* some VMs report PUs without cores */
        t->bound_physical = t->bound_logical;
    t->packages = count_in(topo, bound, HWLOC_OBJ_PACKAGE);
    int numa = hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_NUMANODE);
    t->numa_nodes = numa > 0 ? (unsigned)numa : 1;
    t->l1d = cache_size(topo, HWLOC_OBJ_L1CACHE);
    t->l2 = cache_size(topo, HWLOC_OBJ_L2CACHE);
    t->l3 = cache_size(topo, HWLOC_OBJ_L3CACHE);
    hwloc_bitmap_free(bound);
    hwloc_topology_destroy(topo);

    t->quota_cpus = topology_cpu_quota("", t->quota_source, sizeof t->quota_source);
    unsigned cap = (unsigned)t->quota_cpus; /* rounded up: 1.5 CPUs keep 2 busy */
    if ((double)cap < t->quota_cpus)
        cap++;
    t->logical = cap && cap < t->bound_logical ? cap : t->bound_logical;
    t->physical = cap && cap < t->bound_physical ? cap : t->bound_physical;
    if (t->logical == 0)
        t->logical = 1;
    if (t->physical == 0)
        t->physical = 1;
    return 0;
}
