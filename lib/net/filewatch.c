#include "net/filewatch.h"

#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

#include "core/digest.h"

#define MAX_READ (4 * 1024 * 1024) /* larger files count by their first 4 MiB */
_Static_assert(SP_FILEWATCH_SEEN == SP_SHA256_HEX, "a fingerprint is a SHA-256 digest in hex");
#define DIR_EVENTS                                                                                 \
    (IN_CREATE | IN_DELETE | IN_MOVED_TO | IN_MOVED_FROM | IN_CLOSE_WRITE | IN_ATTRIB |            \
     IN_DELETE_SELF | IN_MOVE_SELF)

struct sp_filewatch {
    int fd; /* inotify */
    struct event *readable;
    struct event *settle;
    struct timeval settle_tv;
    char **paths;
    size_t npaths;
    char seen[SP_FILEWATCH_SEEN]; /* the files' contents at the last look */
    sp_filewatch_changed changed;
    void *ctx;
};

/* One digest over every file: its contents, or "absent". */
static void fingerprint(const struct sp_filewatch *w, char out[SP_SHA256_HEX])
{
    struct sp_digest *d = sp_digest_new();
    char *buf = malloc(MAX_READ);

    for (size_t i = 0; d != NULL && i < w->npaths; i++) {
        FILE *f = buf ? fopen(w->paths[i], "rb") : NULL;
        size_t n = f ? fread(buf, 1, MAX_READ, f) : 0;
        sp_digest_field(d, w->paths[i], strlen(w->paths[i]));
        sp_digest_field(d, f ? buf : NULL, n);
        if (f)
            fclose(f);
    }
    free(buf);
    sp_digest_finish(d, out);
}

static void settled(evutil_socket_t fd, short what, void *arg)
{
    struct sp_filewatch *w = arg;
    char now[SP_SHA256_HEX];

    fingerprint(w, now);
    if (strcmp(now, w->seen) == 0)
        return;
    memcpy(w->seen, now, sizeof(now));
    w->changed(w->ctx); /* last: it may free the watcher */
}

/* Any event in a watched directory (re)starts the quiet spell. */
static void on_events(evutil_socket_t fd, short what, void *arg)
{
    struct sp_filewatch *w = arg;
    char buf[8192] __attribute__((aligned(__alignof__(struct inotify_event))));

    while (read(fd, buf, sizeof(buf)) > 0)
        ;
    event_add(w->settle, &w->settle_tv);
}

static int watch_directory(struct sp_filewatch *w, const char *path)
{
    char dir[PATH_MAX];
    const char *slash = strrchr(path, '/');
    int n = slash == NULL   ? snprintf(dir, sizeof(dir), ".")
            : slash == path ? snprintf(dir, sizeof(dir), "/")
                            : snprintf(dir, sizeof(dir), "%.*s", (int)(slash - path), path);

    if (n < 0 || (size_t)n >= sizeof(dir))
        return -1;
    return inotify_add_watch(w->fd, dir, DIR_EVENTS) < 0 ? -1 : 0;
}

void sp_filewatch_seen(const struct sp_filewatch *w, char out[SP_FILEWATCH_SEEN])
{
    memcpy(out, w->seen, SP_FILEWATCH_SEEN);
}

struct sp_filewatch *sp_filewatch_new(struct event_base *base, const char *const *paths, size_t n,
                                      const char *seen, uint64_t settle_ms,
                                      sp_filewatch_changed changed, void *ctx)
{
    struct sp_filewatch *w = calloc(1, sizeof(*w));

    if (w == NULL)
        return NULL;
    w->fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    w->changed = changed;
    w->ctx = ctx;
    w->settle_tv =
        (struct timeval){(time_t)(settle_ms / 1000), (suseconds_t)(settle_ms % 1000) * 1000};
    w->paths = calloc(n ? n : 1, sizeof(*w->paths));
    if (w->fd < 0 || w->paths == NULL)
        goto fail;
    for (size_t i = 0; i < n; i++) {
        if ((w->paths[i] = strdup(paths[i])) == NULL)
            goto fail;
        w->npaths++;
        if (watch_directory(w, paths[i]) < 0)
            goto fail;
    }
    w->readable = event_new(base, w->fd, EV_READ | EV_PERSIST, on_events, w);
    w->settle = evtimer_new(base, settled, w);
    if (w->readable == NULL || w->settle == NULL || event_add(w->readable, NULL) < 0)
        goto fail;
    fingerprint(w, w->seen);
    if (seen != NULL && strcmp(seen, w->seen) != 0) {
        memcpy(w->seen, seen, sizeof(w->seen)); /* so that the settled look reports it */
        event_add(w->settle, &w->settle_tv);
    }
    return w;

fail:
    sp_filewatch_free(w);
    return NULL;
}

void sp_filewatch_free(struct sp_filewatch *w)
{
    if (w == NULL)
        return;
    if (w->readable)
        event_free(w->readable);
    if (w->settle)
        event_free(w->settle);
    if (w->fd >= 0)
        close(w->fd);
    for (size_t i = 0; i < w->npaths; i++)
        free(w->paths[i]);
    free(w->paths);
    free(w);
}
