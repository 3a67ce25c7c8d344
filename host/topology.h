/* The machine as the host may use it: allowed physical cores and logical CPUs (hwloc,
 * the process's CPU binding, then the cgroup CPU quota), NUMA nodes and cache sizes.
 * sizing.c turns it into pool sizes. */
#ifndef GGL_HOST_TOPOLOGY_H
#define GGL_HOST_TOPOLOGY_H

#include <stdint.h>

struct topology {
    unsigned physical, logical;     /* usable: bound cores/CPUs capped by the quota */
    unsigned bound_physical, bound_logical; /* before the quota cap */
    unsigned packages, numa_nodes;
    double quota_cpus;              /* cgroup CPU quota in CPUs; 0 = none */
    char quota_source[160];         /* which file said so, or why there is none */
    uint64_t l1d, l2, l3;           /* bytes per cache instance; 0 = none found */
};

/* Read the machine once.  Returns -1 with a message if hwloc fails. */
int topology_detect(struct topology *t, char *err, size_t errlen);

/* The cgroup CPU quota in CPUs (0 = unlimited), looking under `root` ("" for the real
 * /proc and /sys; tests pass a scratch directory).  v2 cpu.max and v1 cfs_quota_us /
 * cfs_period_us; the tightest limit of the cgroup and its ancestors wins.  Describes
 * the file it used in source. */
double topology_cpu_quota(const char *root, char *source, size_t srclen);

#endif
