/* The slicer's schedule: the first slice at the end of the turn that
 * started it, each next one only after the loop has polled (a socket that
 * became readable meanwhile is served between two slices), work added by a
 * running slice gets a slice of its own, and repeated starts run one. */
#include "net/slicer.h"

#include <event2/event.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../tap.h"

struct job {
    struct sp_slicer *slicer;
    int left;     /* slices still wanted */
    int slices;   /* slices run */
    int add_once; /* the first slice starts more work from inside */
    char log[64];
    size_t len;
};

static void note(struct job *j, char c)
{
    if (j->len + 1 < sizeof(j->log))
        j->log[j->len++] = c;
    j->log[j->len] = '\0';
}

static void slice(void *arg)
{
    struct job *j = arg;

    j->slices++;
    note(j, 's');
    if (j->add_once) {
        j->add_once = 0;
        j->left++;
        sp_slicer_start(j->slicer); /* from inside: must still get a slice */
    }
    if (--j->left > 0)
        sp_slicer_more(j->slicer);
}

static void on_other(evutil_socket_t fd, short what, void *arg)
{
    struct job *j = arg;
    char c;

    (void)what;
    if (recv(fd, &c, 1, 0) == 1)
        note(j, c);
}

static void on_first(evutil_socket_t fd, short what, void *arg)
{
    struct job *j = arg;

    (void)fd;
    (void)what;
    note(j, 'a');
    sp_slicer_start(j->slicer);
    sp_slicer_start(j->slicer); /* twice: still one slice */
    note(j, 'b');
}

int main(void)
{
    struct event_base *base = event_base_new();
    struct job j = {0};
    int sv[2];

    socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
    j.slicer = sp_slicer_new(base, slice, &j);
    ok(j.slicer != NULL, "made");

    /* One slice, at the end of the turn that started it. */
    j.left = 1;
    event_base_once(base, -1, EV_TIMEOUT, on_first, &j, NULL);
    event_base_dispatch(base);
    ok(strcmp(j.log, "abs") == 0, "the slice runs after its starter returns: %s", j.log);
    is_int(j.slices, 1, "two starts, one slice");

    /* Three slices; a socket readable before the second is served before it. */
    j.len = 0;
    j.slices = 0;
    j.left = 3;
    struct event *other = event_new(base, sv[0], EV_READ | EV_PERSIST, on_other, &j);
    event_add(other, NULL);
    sp_slicer_start(j.slicer);
    event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK); /* first slice */
    ok(write(sv[1], "x", 1) == 1, "the peer writes between slices");
    for (int i = 0; i < 5; i++)
        event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
    ok(strcmp(j.log, "sxss") == 0, "the next slice waits for the poll: %s", j.log);
    is_int(j.slices, 3, "three slices");

    /* Work added by a running slice gets another slice. */
    j.len = 0;
    j.slices = 0;
    j.left = 1;
    j.add_once = 1;
    sp_slicer_start(j.slicer);
    for (int i = 0; i < 5; i++)
        event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
    is_int(j.slices, 2, "a start from inside a slice schedules one more");

    event_free(other);
    sp_slicer_free(j.slicer);
    sp_slicer_free(NULL);
    event_base_free(base);
    close(sv[0]);
    close(sv[1]);
    return tap_done();
}
