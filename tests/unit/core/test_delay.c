/* The delay queue for grace periods (core/delay): due in time order, one
 * timer, cancelled entries never due, a zero delay at once. */
#include "core/delay.h"

#include <string.h>

#include "../tap.h"

struct item {
    char name;
    struct sp_delay_entry entry;
};

static char order[16];
static size_t n;

static void due(void *ctx, struct sp_delay_entry *e)
{
    order[n++] = SP_DELAY_OWNER(e, struct item, entry)->name;
    order[n] = '\0';
}

static void run_for(struct event_base *base, int ms)
{
    struct timeval tv = {0, ms * 1000};
    event_base_loopexit(base, &tv);
    event_base_dispatch(base);
}

int main(void)
{
    struct event_base *base = event_base_new();
    struct sp_delay *q = sp_delay_new(base, due, NULL);
    struct item a = {.name = 'a'}, b = {.name = 'b'}, c = {.name = 'c'}, d = {.name = 'd'},
                z = {.name = 'z'};

    sp_delay_add(q, &a.entry, 30);
    sp_delay_add(q, &b.entry, 60);
    sp_delay_add(q, &c.entry, 10); /* a shorter grace (a reload): before the others */
    sp_delay_add(q, &d.entry, 40);
    sp_delay_cancel(q, &d.entry); /* came back within its grace */
    ok(!d.entry.queued && a.entry.queued, "queued and cancelled entries say so");
    run_for(base, 20);
    is_str(order, "c", "the earliest first, alone");
    run_for(base, 100);
    is_str(order, "cab", "then in time order; the cancelled one never");
    sp_delay_cancel(q, &d.entry);
    ok(true, "cancelling an entry not queued changes nothing");
    sp_delay_add(q, &z.entry, 0);
    is_str(order, "cabz", "a zero delay is due before add returns");
    sp_delay_add(q, &a.entry, 1000);
    sp_delay_free(q); /* drops a untold */
    is_str(order, "cabz", "freeing drops what is queued, untold");
    event_base_free(base);
    return tap_done();
}
