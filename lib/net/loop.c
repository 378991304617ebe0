#include "net/loop.h"

#include <stdlib.h>

#include "core/clock.h"

struct event_base *sp_loop_new(void)
{
    struct event_base *base = event_base_new();

    if (base != NULL && event_base_priority_init(base, SP_PRIO_COUNT) < 0) {
        event_base_free(base);
        return NULL;
    }
    return base;
}

void sp_loop_set_priority(struct event *ev, enum sp_prio prio)
{
    /* Fails (harmlessly) while ev is active, and on a base with fewer
     * priorities: it then keeps the one it has. */
    if (event_get_priority(ev) != (int)prio)
        event_priority_set(ev, (int)prio);
}

struct sp_slicer {
    struct event *now;   /* activated: runs at the end of this turn */
    struct event *later; /* a zero timeout: runs after the next poll */
    sp_slice_fn slice;
    void *arg;
    bool due;              /* a slice is scheduled */
    bool running;
    uint64_t normal_since; /* when slices began to run in a row at normal priority */
};

static void run(evutil_socket_t fd, short what, void *arg)
{
    struct sp_slicer *s = arg;

    (void)fd;
    (void)what;
    if (event_get_priority(s->later) == SP_PRIO_DEFERRED) {
        sp_loop_set_priority(s->later, SP_PRIO_NORMAL); /* the deferred had their turn */
        s->normal_since = sp_now_ms();
    }
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
        sp_slicer_more(s); /* work added by the slice itself */
        return;
    }
    if (s->due)
        return;
    s->due = true;
    s->normal_since = sp_now_ms();
    event_active(s->now, EV_TIMEOUT, 0);
}

void sp_slicer_more(struct sp_slicer *s)
{
    static const struct timeval zero = {0, 0};

    if (s->due)
        return;
    s->due = true;
    if (sp_now_ms() - s->normal_since >= SP_SLICER_YIELD_MS)
        sp_loop_set_priority(s->later, SP_PRIO_DEFERRED);
    evtimer_add(s->later, &zero);
}
