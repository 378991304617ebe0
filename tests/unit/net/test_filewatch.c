/* The file watcher against real files: rewritten in place, rewritten with
 * the same bytes, and swapped the way the kubelet swaps a ConfigMap volume
 * (a new timestamped directory, then a "..data" symlink renamed over). */
#include "net/filewatch.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../tap.h"

struct seen {
    struct event_base *base;
    int calls;
};

static void changed(void *ctx)
{
    struct seen *s = ctx;
    s->calls++;
    event_base_loopbreak(s->base);
}

static void give_up(evutil_socket_t fd, short what, void *arg)
{
    event_base_loopbreak(arg);
}

/* Runs the loop until a change is reported or 1.5 s pass (a timer of its
 * own: a loopexit left pending would cut the next run short). */
static void run_for_a_while(struct seen *s)
{
    struct timeval limit = {1, 500000};
    struct event *timer = evtimer_new(s->base, give_up, s->base);

    evtimer_add(timer, &limit);
    event_base_dispatch(s->base);
    event_free(timer);
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

static void test_in_place(struct event_base *base, const char *dir)
{
    char path[256];
    struct seen s = {base, 0};

    snprintf(path, sizeof(path), "%s/plain.yaml", dir);
    write_file(path, "a: 1\n");
    const char *paths[] = {path};
    struct sp_filewatch *w = sp_filewatch_new(base, paths, 1, NULL, 20, changed, &s);
    ok(w != NULL, "a watcher on a plain file");
    write_file(path, "a: 2\n");
    run_for_a_while(&s);
    ok(s.calls == 1, "a rewrite with new contents is reported once");
    write_file(path, "a: 2\n");
    run_for_a_while(&s);
    ok(s.calls == 1, "a rewrite with the same bytes is not");
    unlink(path);
    run_for_a_while(&s);
    ok(s.calls == 2, "a removal is a change");
    write_file(path, "a: 3\n");
    run_for_a_while(&s);
    ok(s.calls == 3, "and so is the file coming back");
    sp_filewatch_free(w);
    unlink(path);
}

static void kubelet_publish(const char *dir, const char *version, const char *text)
{
    char path[256], target[64], tmp[256], data[256];

    snprintf(path, sizeof(path), "%s/%s", dir, version);
    mkdir(path, 0700);
    snprintf(path, sizeof(path), "%s/%s/sidepush.yaml", dir, version);
    write_file(path, text);
    snprintf(target, sizeof(target), "%s", version);
    snprintf(tmp, sizeof(tmp), "%s/..data_tmp", dir);
    snprintf(data, sizeof(data), "%s/..data", dir);
    symlink(target, tmp);
    rename(tmp, data);
}

static void test_configmap_swap(struct event_base *base, const char *dir)
{
    char path[256], link[256];
    struct seen s = {base, 0};

    kubelet_publish(dir, "..2026_12_01_v1", "a: 1\n");
    snprintf(path, sizeof(path), "%s/sidepush.yaml", dir);
    symlink("..data/sidepush.yaml", path);
    const char *paths[] = {path};
    struct sp_filewatch *w = sp_filewatch_new(base, paths, 1, NULL, 20, changed, &s);
    kubelet_publish(dir, "..2026_12_01_v2", "a: 2\n");
    run_for_a_while(&s);
    ok(w != NULL && s.calls == 1, "a ConfigMap-style symlink swap is seen");
    kubelet_publish(dir, "..2026_12_01_v3", "a: 2\n");
    run_for_a_while(&s);
    ok(s.calls == 1, "a swap to the same contents is not reported");
    sp_filewatch_free(w);
    const char *versions[] = {"..2026_12_01_v1", "..2026_12_01_v2", "..2026_12_01_v3"};
    for (size_t i = 0; i < 3; i++) {
        snprintf(link, sizeof(link), "%s/%s/sidepush.yaml", dir, versions[i]);
        unlink(link);
        snprintf(link, sizeof(link), "%s/%s", dir, versions[i]);
        rmdir(link);
    }
    unlink(path);
    snprintf(link, sizeof(link), "%s/..data", dir);
    unlink(link);
}

/* A change made while one watcher is replaced by another (which inotify
 * cannot report: nothing watched then) is still noticed. */
static void test_inherited_look(struct event_base *base, const char *dir)
{
    char path[256], seen[SP_FILEWATCH_SEEN];
    struct seen s = {base, 0};

    snprintf(path, sizeof(path), "%s/inherit.yaml", dir);
    write_file(path, "a: 1\n");
    const char *paths[] = {path};
    struct sp_filewatch *w = sp_filewatch_new(base, paths, 1, NULL, 20, changed, &s);
    sp_filewatch_seen(w, seen);
    sp_filewatch_free(w);
    write_file(path, "a: 2\n"); /* between the two watchers */
    w = sp_filewatch_new(base, paths, 1, seen, 20, changed, &s);
    run_for_a_while(&s);
    ok(s.calls == 1, "a change between two watchers is reported by the second");
    struct sp_filewatch *same = sp_filewatch_new(base, paths, 1, NULL, 20, changed, &s);
    sp_filewatch_seen(same, seen);
    sp_filewatch_free(same);
    sp_filewatch_free(w);
    w = sp_filewatch_new(base, paths, 1, seen, 20, changed, &s);
    run_for_a_while(&s);
    ok(s.calls == 1, "and nothing when the files are as the first saw them");
    sp_filewatch_free(w);
    unlink(path);
}

int main(void)
{
    struct event_base *base = event_base_new();
    char dir[] = "/tmp/sidepush-watch-XXXXXX";

    if (base == NULL || mkdtemp(dir) == NULL) {
        ok(false, "a loop and a temporary directory");
        return tap_done();
    }
    test_in_place(base, dir);
    test_configmap_swap(base, dir);
    test_inherited_look(base, dir);
    const char *missing[] = {"/nonexistent-dir/sidepush.yaml"};
    ok(sp_filewatch_new(base, missing, 1, NULL, 20, changed, NULL) == NULL,
       "a directory that does not exist is refused");
    rmdir(dir);
    event_base_free(base);
    return tap_done();
}
