/* CPU counts for "workers: auto": cgroup v2 quotas read from a made-up
 * cgroup tree (rounded up, the smallest of the cgroup and its ancestors,
 * "max" meaning none), and the affinity mask of this very process. */
#include "core/cpus.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../tap.h"

static char root[] = "/tmp/sp-cpus-XXXXXX";

static void put(const char *rel, const char *text)
{
    char path[512];
    snprintf(path, sizeof(path), "%s%s", root, rel);
    FILE *f = fopen(path, "w");
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

static void dir(const char *rel)
{
    char path[512];
    snprintf(path, sizeof(path), "%s%s", root, rel);
    mkdir(path, 0700);
}

static int limit(void)
{
    char file[512], mount[512];
    snprintf(file, sizeof(file), "%s/self-cgroup", root);
    snprintf(mount, sizeof(mount), "%s/fs", root);
    return sp_cgroup_cpu_limit(file, mount);
}

int main(void)
{
    if (mkdtemp(root) == NULL)
        return 1;
    dir("/fs");
    dir("/fs/kubepods");
    dir("/fs/kubepods/pod1");
    dir("/fs/kubepods/pod1/ctr");
    put("/self-cgroup", "12:cpu:/ignored-v1\n0::/kubepods/pod1/ctr\n");

    is_int(limit(), 0, "no cpu.max anywhere: no limit");
    put("/fs/kubepods/pod1/ctr/cpu.max", "max 100000\n");
    is_int(limit(), 0, "\"max\": no limit");
    put("/fs/kubepods/pod1/cpu.max", "150000 100000\n");
    is_int(limit(), 2, "1.5 CPUs on the parent round up to 2");
    put("/fs/kubepods/cpu.max", "400000 100000\n");
    is_int(limit(), 2, "the smallest quota up the tree wins");
    put("/fs/kubepods/pod1/ctr/cpu.max", "50000 100000\n");
    is_int(limit(), 1, "half a CPU is one");
    put("/fs/kubepods/pod1/ctr/cpu.max", "garbage\n");
    is_int(limit(), 2, "an unreadable cpu.max is skipped");
    put("/self-cgroup", "12:cpu:/only-v1\n");
    is_int(limit(), 0, "no cgroup v2 line: no limit");
    put("/self-cgroup", "0::/\n");
    put("/fs/cpu.max", "300000 100000\n");
    is_int(limit(), 3, "the root cgroup's own quota");

    int affinity = sp_cpus_affinity();
    int mask = 0, quota = -1;
    int usable = sp_cpus_usable(&mask, &quota);
    ok(affinity >= 1 && affinity <= sysconf(_SC_NPROCESSORS_CONF), "affinity: %d", affinity);
    is_int(mask, affinity, "usable reports the same affinity");
    ok(quota >= 0, "and a quota (0: none): %d", quota);
    is_int(usable, quota > 0 && quota < affinity ? quota : affinity, "usable: the smaller");
    is_int(sp_cpus_usable(NULL, NULL), usable, "the figures are optional");

    char cmd[600];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", root);
    if (system(cmd) != 0)
        return 1;
    return tap_done();
}
