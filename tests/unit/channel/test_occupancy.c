/* Occupancy: a channel is told occupied once and vacated once, the
 * vacancy only after the grace, a return within it cancels it, and a
 * channel in its grace is still held (what a replica tells Redis). */
#include "channel/occupancy.h"

#include <event2/event.h>
#include <unistd.h>

#include "../tap.h"

struct heard {
    char log[128];
    size_t len;
};

static void changed(void *ctx, const char *channel, bool occupied)
{
    struct heard *h = ctx;
    int n =
        snprintf(h->log + h->len, sizeof(h->log) - h->len, "%c%s ", occupied ? '+' : '-', channel);
    if (n > 0 && h->len + (size_t)n < sizeof(h->log))
        h->len += (size_t)n;
}

static void run_for(struct event_base *base, int ms)
{
    struct timeval tv = {0, ms * 1000};
    event_base_loopexit(base, &tv);
    event_base_dispatch(base);
}

static void count_held(const char *channel, void *ctx)
{
    (*(int *)ctx)++;
}

int main(void)
{
    struct event_base *base = event_base_new();
    struct heard h = {{0}, 0};
    struct sp_occupancy *o = sp_occupancy_new(base, 50, changed, &h);

    sp_occupancy_count(o, "a", 1);
    sp_occupancy_count(o, "a", 2);
    sp_occupancy_count(o, "b", 1);
    is_str(h.log, "+a +b ", "each channel told occupied once");
    sp_occupancy_count(o, "a", 0);
    ok(sp_occupancy_held(o, "a"), "a vacated channel is held through its grace");
    run_for(base, 10);
    sp_occupancy_count(o, "a", 1); /* back within the grace */
    run_for(base, 100);
    is_str(h.log, "+a +b ", "a return within the grace tells nothing");
    sp_occupancy_count(o, "b", 0);
    sp_occupancy_count(o, "b", 0);
    run_for(base, 100);
    is_str(h.log, "+a +b -b ", "vacated once, after the grace");
    ok(!sp_occupancy_held(o, "b"), "then no longer held");
    int held = 0;
    sp_occupancy_each(o, count_held, &held);
    is_int(held, 1, "one channel held");

    sp_occupancy_set_grace(o, 0);
    sp_occupancy_count(o, "a", 0);
    is_str(h.log, "+a +b -b -a ", "no grace: vacated at once");
    sp_occupancy_count(o, "c", 1);
    sp_occupancy_set_grace(o, 1000);
    sp_occupancy_count(o, "c", 0);
    sp_occupancy_free(o); /* with a vacancy pending: nothing more is told */
    sp_occupancy_free(NULL);
    is_str(h.log, "+a +b -b -a +c ", "nothing told after free");
    event_base_free(base);
    return tap_done();
}
