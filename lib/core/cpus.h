/* How many CPUs this process may use: what a worker count of "auto" means.
 *
 * Two things limit it: the affinity mask (taskset, a cpuset, Kubernetes'
 * static CPU manager) and the cgroup v2 CPU quota (a container's CPU limit:
 * "cpu.max" holds "<quota> <period>", or "max"). A limit of 1.5 CPUs allows
 * 2 threads to run part of the time, so the quota rounds up.
 */
#ifndef SP_CORE_CPUS_H
#define SP_CORE_CPUS_H

/* The CPUs in this process's affinity mask (at least 1). */
int sp_cpus_affinity(void);

/* The CPU quota of the cgroup v2 named in cgroup_file (a /proc/PID/cgroup
 * whose "0::/path" line names it) under mount (where cgroup2 is mounted):
 * the smallest quota of that cgroup and its ancestors, in CPUs rounded up.
 * 0 when none applies (no cgroup v2, "max" all the way up, unreadable). */
int sp_cgroup_cpu_limit(const char *cgroup_file, const char *mount);

/* min(affinity, quota), at least 1, for this process (/proc/self/cgroup
 * under /sys/fs/cgroup). The two figures go to *affinity and *quota (0: no
 * quota) unless those are NULL. */
int sp_cpus_usable(int *affinity, int *quota);

#endif
