#include "core/cpus.h"

#include <limits.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int sp_cpus_affinity(void)
{
    cpu_set_t set;

    if (sched_getaffinity(0, sizeof(set), &set) < 0)
        return 1;
    int n = CPU_COUNT(&set);
    return n > 0 ? n : 1;
}

/* The cgroup's path from a /proc/PID/cgroup file: the "0::" line of v2. */
static int cgroup_path(const char *cgroup_file, char *out, size_t size)
{
    FILE *f = fopen(cgroup_file, "r");
    char line[PATH_MAX + 8];
    int found = -1;

    if (f == NULL)
        return -1;
    while (found < 0 && fgets(line, sizeof(line), f) != NULL) {
        if (strncmp(line, "0::", 3) != 0)
            continue;
        line[strcspn(line, "\n")] = '\0';
        if ((size_t)snprintf(out, size, "%s", line + 3) < size)
            found = 0;
    }
    fclose(f);
    return found;
}

/* One cpu.max: the quota in CPUs rounded up, or 0 for "max" or none. */
static int read_cpu_max(const char *dir)
{
    char path[PATH_MAX], text[64];
    long long quota, period;

    if ((size_t)snprintf(path, sizeof(path), "%s/cpu.max", dir) >= sizeof(path))
        return 0;
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return 0;
    char *got = fgets(text, sizeof(text), f);
    fclose(f);
    if (got == NULL || sscanf(text, "%lld %lld", &quota, &period) != 2 || quota <= 0 || period <= 0)
        return 0; /* "max 100000", or nothing readable */
    long long cpus = (quota + period - 1) / period;
    return cpus > INT_MAX ? INT_MAX : (int)cpus;
}

int sp_cgroup_cpu_limit(const char *cgroup_file, const char *mount)
{
    char rel[PATH_MAX], dir[PATH_MAX];
    int limit = 0;

    if (cgroup_path(cgroup_file, rel, sizeof(rel)) < 0)
        return 0;
    /* A quota anywhere above applies too: walk up to the mount. */
    for (;;) {
        if ((size_t)snprintf(dir, sizeof(dir), "%s%s", mount, rel) >= sizeof(dir))
            return limit;
        int here = read_cpu_max(dir);
        if (here > 0 && (limit == 0 || here < limit))
            limit = here;
        char *slash = strrchr(rel, '/');
        if (slash == NULL || rel[0] == '\0' || strcmp(rel, "/") == 0)
            break;
        if (slash == rel)
            rel[1] = '\0'; /* "/a" -> "/" */
        else
            *slash = '\0';
    }
    return limit;
}

int sp_cpus_usable(int *affinity, int *quota)
{
    int mask = sp_cpus_affinity();
    int limit = sp_cgroup_cpu_limit("/proc/self/cgroup", "/sys/fs/cgroup");

    if (affinity)
        *affinity = mask;
    if (quota)
        *quota = limit;
    return limit > 0 && limit < mask ? limit : mask;
}
