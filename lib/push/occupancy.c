#include "push/occupancy.h"

#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include "core/clock.h"
#include "core/hmap.h"

struct slot {
    char *channel; /* the map's key */
    bool vacant;   /* in the queue, told at due_ms */
    uint64_t due_ms;
    TAILQ_ENTRY(slot) link;
};

TAILQ_HEAD(slot_queue, slot);

struct sp_occupancy {
    struct sp_hmap *held;
    struct slot_queue vacant; /* by due_ms: one grace for all */
    struct event *timer;
    uint64_t grace_ms;
    sp_occupancy_changed changed;
    void *ctx;
};

static void arm(struct sp_occupancy *o)
{
    struct slot *s = TAILQ_FIRST(&o->vacant);
    uint64_t now = sp_now_ms();

    if (s == NULL) {
        evtimer_del(o->timer);
        return;
    }
    struct timeval tv = sp_timeval_ms(s->due_ms > now ? s->due_ms - now : 0);
    evtimer_add(o->timer, &tv);
}

static void slot_free(struct slot *s)
{
    free(s->channel);
    free(s);
}

static void expire(evutil_socket_t fd, short what, void *arg)
{
    struct sp_occupancy *o = arg;
    uint64_t now = sp_now_ms();
    struct slot *s;

    while ((s = TAILQ_FIRST(&o->vacant)) != NULL && s->due_ms <= now) {
        TAILQ_REMOVE(&o->vacant, s, link);
        sp_hmap_del(o->held, s->channel);
        o->changed(o->ctx, s->channel, false);
        slot_free(s);
    }
    arm(o);
}

struct sp_occupancy *sp_occupancy_new(struct event_base *base, uint64_t grace_ms,
                                      sp_occupancy_changed changed, void *ctx)
{
    struct sp_occupancy *o = calloc(1, sizeof(*o));

    if (o == NULL)
        return NULL;
    TAILQ_INIT(&o->vacant);
    o->grace_ms = grace_ms;
    o->changed = changed;
    o->ctx = ctx;
    o->held = sp_hmap_new();
    o->timer = evtimer_new(base, expire, o);
    if (o->held == NULL || o->timer == NULL) {
        sp_occupancy_free(o);
        return NULL;
    }
    return o;
}

static void free_slot_entry(const char *key, void *value, void *ctx)
{
    slot_free(value);
}

void sp_occupancy_free(struct sp_occupancy *o)
{
    if (o == NULL)
        return;
    if (o->timer)
        event_free(o->timer);
    if (o->held) {
        sp_hmap_each(o->held, free_slot_entry, NULL);
        sp_hmap_free(o->held);
    }
    free(o);
}

void sp_occupancy_set_grace(struct sp_occupancy *o, uint64_t grace_ms)
{
    o->grace_ms = grace_ms;
}

void sp_occupancy_count(struct sp_occupancy *o, const char *channel, size_t count)
{
    struct slot *s = sp_hmap_get(o->held, channel);

    if (count > 0) {
        if (s != NULL && s->vacant) { /* back within the grace: nothing is told */
            s->vacant = false;
            TAILQ_REMOVE(&o->vacant, s, link);
            arm(o);
        }
        if (s != NULL)
            return;
        s = calloc(1, sizeof(*s));
        if (s == NULL || (s->channel = strdup(channel)) == NULL ||
            sp_hmap_put(o->held, s->channel, s) < 0) {
            if (s)
                slot_free(s);
            return; /* out of memory: this channel's occupancy goes untold */
        }
        o->changed(o->ctx, channel, true);
        return;
    }
    if (s == NULL || s->vacant)
        return;
    s->vacant = true;
    s->due_ms = sp_now_ms() + o->grace_ms;
    TAILQ_INSERT_TAIL(&o->vacant, s, link);
    if (o->grace_ms == 0)
        expire(-1, 0, o);
    else if (TAILQ_FIRST(&o->vacant) == s)
        arm(o);
}

bool sp_occupancy_held(const struct sp_occupancy *o, const char *channel)
{
    return sp_hmap_get(o->held, channel) != NULL;
}

struct each {
    void (*fn)(const char *, void *);
    void *ctx;
};

static void each_entry(const char *key, void *value, void *ctx)
{
    struct each *e = ctx;
    e->fn(key, e->ctx);
}

void sp_occupancy_each(struct sp_occupancy *o, void (*fn)(const char *channel, void *ctx),
                       void *ctx)
{
    struct each e = {fn, ctx};
    sp_hmap_each(o->held, each_entry, &e);
}
