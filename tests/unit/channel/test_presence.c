/* Presence: a user is one member however many connections, leaves after
 * the grace, a reconnect within it changes nothing, counts and lookups
 * follow, and every connection change is heard (what Redis is told). */
#include "channel/presence.h"

#include <event2/event.h>
#include <stdlib.h>

#include "../tap.h"

struct heard {
    char log[256];
    size_t len;
    int counted;
};

static void changed(void *ctx, enum sp_presence_change change, const char *channel,
                    const char *user_id, const char *info)
{
    struct heard *h = ctx;

    if (change == SP_PRESENCE_COUNTED) {
        h->counted++;
        return;
    }
    int n = snprintf(h->log + h->len, sizeof(h->log) - h->len, "%c%s/%s ",
                     change == SP_PRESENCE_JOINED ? '+' : '-', channel, user_id);
    if (n > 0 && h->len + (size_t)n < sizeof(h->log))
        h->len += (size_t)n;
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
    struct heard h = {{0}, 0, 0};
    struct sp_presence *p = sp_presence_new(base, 50, changed, &h);
    unsigned conns = 0;
    const char *info = NULL;

    ok(sp_presence_join(p, "room", "alice", "{\"n\":1}") == 0, "alice joins");
    ok(sp_presence_join(p, "room", "alice", NULL) == 0, "alice's second tab");
    ok(sp_presence_join(p, "room", "bob", NULL) == 0, "bob joins");
    is_str(h.log, "+room/alice +room/bob ", "two members, each told once");
    is_int(h.counted, 1, "the second tab is a count change");
    is_int(sp_presence_count(p, "room"), 2, "two members");
    ok(sp_presence_lookup(p, "room", "alice", &conns, &info), "alice is found");
    is_int(conns, 2, "with two connections");
    is_str(info, "{\"n\":1}", "and the info of her first join");
    ok(!sp_presence_lookup(p, "room", "carol", &conns, &info), "carol is not a member");

    sp_presence_leave(p, "room", "alice");
    sp_presence_leave(p, "room", "alice");
    ok(sp_presence_lookup(p, "room", "alice", &conns, &info) && conns == 0,
       "in her grace alice is still a member, with no connection");
    run_for(base, 10);
    sp_presence_join(p, "room", "alice", NULL); /* a reload within the grace */
    run_for(base, 100);
    is_str(h.log, "+room/alice +room/bob ", "a reconnect within the grace tells nothing");

    sp_presence_leave(p, "room", "bob");
    run_for(base, 100);
    is_str(h.log, "+room/alice +room/bob -room/bob ", "bob leaves after the grace");
    is_int(sp_presence_total(p), 1, "one member in all");
    is_int(sp_presence_rooms(p), 1, "in one room");
    sp_presence_leave(p, "room", "nobody"); /* never joined: ignored */

    struct evbuffer *out = evbuffer_new();
    sp_presence_write_json(p, "room", 10, out);
    evbuffer_add(out, "", 1);
    is_str((const char *)evbuffer_pullup(out, -1),
           "{\"channel\":\"room\",\"count\":1,\"members\":[{\"user_id\":\"alice\","
           "\"user_info\":{\"n\":1},\"connections\":1}]}",
           "the list");
    evbuffer_free(out);

    sp_presence_set_grace(p, 0);
    sp_presence_leave(p, "room", "alice");
    is_str(h.log, "+room/alice +room/bob -room/bob -room/alice ", "no grace: gone at once");
    is_int(sp_presence_rooms(p), 0, "the empty room is dropped");
    sp_presence_join(p, "other", "dave", NULL);
    sp_presence_free(p); /* members still there go silently */
    sp_presence_free(NULL);
    event_base_free(base);
    return tap_done();
}
