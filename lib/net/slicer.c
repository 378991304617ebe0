#include "net/slicer.h"

#include <stdlib.h>

struct sp_slicer {
    /* Activated, an event runs in this same loop turn, after the events
     * already active; a zero timeout runs only after the next poll. */
    struct event *now;
    struct event *later;
    sp_slice_fn slice;
    void *arg;
    bool due; /* a slice is scheduled */
    bool running;
};

static void run(evutil_socket_t fd, short what, void *arg)
{
    struct sp_slicer *s = arg;

    (void)fd;
    (void)what;
    s->due = false;
    s->running = true;
    s->slice(s->arg);
    s->running = false;
}

struct sp_slicer *sp_slicer_new(struct event_base *base, sp_slice_fn slice, void *arg)
{
    struct sp_slicer *s = calloc(1, sizeof(*s));

    if (s == NULL)
        return NULL;
    s->slice = slice;
    s->arg = arg;
    s->now = event_new(base, -1, 0, run, s);
    s->later = evtimer_new(base, run, s);
    if (s->now == NULL || s->later == NULL) {
        sp_slicer_free(s);
        return NULL;
    }
    return s;
}

void sp_slicer_free(struct sp_slicer *s)
{
    if (s == NULL)
        return;
    if (s->now)
        event_free(s->now);
    if (s->later)
        event_free(s->later);
    free(s);
}

void sp_slicer_start(struct sp_slicer *s)
{
    if (s->running) {
        sp_slicer_more(s);
        return;
    }
    if (s->due)
        return;
    s->due = true;
    event_active(s->now, EV_TIMEOUT, 0);
}

void sp_slicer_more(struct sp_slicer *s)
{
    static const struct timeval zero = {0, 0};

    if (s->due)
        return;
    s->due = true;
    evtimer_add(s->later, &zero);
}
