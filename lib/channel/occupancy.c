#include "channel/occupancy.h"

#include <stdlib.h>
#include <string.h>

#include "core/delay.h"
#include "core/hmap.h"

struct slot {
    char *channel;                 /* the map's key */
    struct sp_delay_entry vacancy; /* queued while vacant, told when due */
};

struct sp_occupancy {
    struct sp_hmap *held;
    struct sp_delay *vacancies;
    uint64_t grace_ms;
    sp_occupancy_changed changed;
    void *ctx;
};

static void slot_free(struct slot *s)
{
    free(s->channel);
    free(s);
}

/* A channel vacant for the whole grace is told so. */
static void vacated(void *ctx, struct sp_delay_entry *e)
{
    struct sp_occupancy *o = ctx;
    struct slot *s = SP_DELAY_OWNER(e, struct slot, vacancy);

    sp_hmap_del(o->held, s->channel);
    o->changed(o->ctx, s->channel, false);
    slot_free(s);
}

struct sp_occupancy *sp_occupancy_new(struct event_base *base, uint64_t grace_ms,
                                      sp_occupancy_changed changed, void *ctx)
{
    struct sp_occupancy *o = calloc(1, sizeof(*o));

    if (o == NULL)
        return NULL;
    o->grace_ms = grace_ms;
    o->changed = changed;
    o->ctx = ctx;
    o->held = sp_hmap_new();
    o->vacancies = sp_delay_new(base, vacated, o);
    if (o->held == NULL || o->vacancies == NULL) {
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
    sp_delay_free(o->vacancies);
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
        if (s != NULL) /* back within the grace: nothing is told */
            sp_delay_cancel(o->vacancies, &s->vacancy);
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
    if (s == NULL || s->vacancy.queued)
        return;
    sp_delay_add(o->vacancies, &s->vacancy, o->grace_ms);
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
