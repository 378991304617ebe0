#include "channel/hub.h"

#include <event2/event.h>
#include <pthread.h>
#include <stdlib.h>

#include "net/mailbox.h"

#include "../tap.h"

struct fake_sub {
    struct sp_sub sub;
    struct sp_msg *got[16];
    size_t ngot;
    bool deleted;
    bool leave_on_deliver;
    struct sp_hub_port *port;
};

/* The test's one worker: its mailbox and its port (deliveries arrive as
 * mail, so each publish below is followed by running the mailbox). */
static struct sp_mailbox *mailbox;
static struct sp_hub_port *port;

static struct sp_hub *open_hub(struct event_base *base, const struct sp_hub_options *opts)
{
    struct sp_hub *hub = sp_hub_new(base, opts, 1);
    mailbox = sp_mailbox_new(base);
    port = sp_hub_port_new(hub, 0, mailbox);
    return hub;
}

static void close_hub(struct sp_hub *hub)
{
    sp_hub_port_free(port);
    sp_mailbox_free(mailbox);
    sp_hub_free(hub);
}

static void deliver(struct sp_sub *s, struct sp_msg *m)
{
    struct fake_sub *f = (struct fake_sub *)s;
    if (f->ngot < 16)
        f->got[f->ngot++] = sp_msg_ref(m);
    if (f->leave_on_deliver)
        sp_hub_unsubscribe(f->port, s);
}

static void deleted(struct sp_sub *s)
{
    ((struct fake_sub *)s)->deleted = true;
}

static const struct sp_sub_ops ops = {deliver, deleted};

static void drop(struct fake_sub *f)
{
    for (size_t i = 0; i < f->ngot; i++)
        sp_msg_unref(f->got[i]);
    f->ngot = 0;
}

static int publish(struct sp_hub *hub, const char *channel, const char *data, const char *event,
                   const char *dedup, struct sp_publish_result *res)
{
    struct sp_publish p = {channel, event, data, strlen(data), dedup, NULL, NULL};
    int rc = sp_hub_publish(hub, &p, res);
    sp_mailbox_run(mailbox);
    return rc;
}

static void test_publish_and_fanout(struct event_base *base)
{
    struct sp_hub_options opts = {3, 60000, 16, false};
    struct sp_hub *hub = open_hub(base, &opts);
    struct fake_sub a = {.port = port}, b = {.port = port}, c = {.port = port};
    struct sp_publish_result res;

    ok(sp_hub_subscribe(port, &a.sub, "news", &ops) == 0, "subscribe a");
    ok(sp_hub_subscribe(port, &b.sub, "news", &ops) == 0, "subscribe b");
    ok(sp_hub_subscribe(port, &c.sub, "other", &ops) == 0, "subscribe c elsewhere");
    is_int(publish(hub, "news", "hello", "greet", NULL, &res), 0, "publish");
    is_int(res.subscribers, 2, "reached both subscribers of the channel");
    ok(a.ngot == 1 && b.ngot == 1 && c.ngot == 0, "delivered to the channel only");
    ok(a.got[0] == b.got[0], "one message object shared by reference");
    ok(strcmp(sp_msg_id(a.got[0]), res.id) == 0, "the id returned is the id delivered");
    is_str(sp_msg_event(a.got[0]), "greet", "event name kept");

    is_int(publish(hub, "news", "this is far too long", NULL, NULL, &res), SP_HUB_TOO_BIG,
           "oversize refused");
    is_int(publish(hub, "bad channel", "x", NULL, NULL, &res), SP_HUB_BAD_CHANNEL,
           "space in channel refused");
    is_int(publish(hub, "", "x", NULL, NULL, &res), SP_HUB_BAD_CHANNEL, "empty channel refused");
    is_int(publish(hub, "news", "x", "a:b", NULL, &res), SP_HUB_BAD_EVENT, "':' in event refused");
    is_int(publish(hub, "news", "x", "a\nb", NULL, &res), SP_HUB_BAD_EVENT,
           "newline in event refused");
    is_int(a.ngot, 1, "refused publishes reach nobody");

    /* de-duplication */
    is_int(publish(hub, "news", "once", NULL, "w-1", &res), 0, "publish with dedup id");
    char first[SP_MSG_ID_MAX];
    strcpy(first, res.id);
    is_int(publish(hub, "news", "once", NULL, "w-1", &res), 0, "retry with the same id");
    ok(res.duplicate && strcmp(res.id, first) == 0 && res.subscribers == 0,
       "retry is recognised, answers the first id, reaches nobody");
    is_int(a.ngot, 2, "stored and sent once");
    is_int(publish(hub, "other", "once", NULL, "w-1", &res), 0, "same dedup id, other channel");
    ok(!res.duplicate, "dedup ids are per channel");

    /* a subscriber that leaves while being delivered to */
    a.leave_on_deliver = true;
    is_int(publish(hub, "news", "bye", NULL, NULL, &res), 0, "publish while a leaves");
    ok(a.sub.local == NULL && b.ngot == 3, "a left, b still served");

    struct sp_channel_info info;
    ok(sp_hub_channel_info(hub, "news", &info) == 0 && info.subscribers == 1 && info.messages == 3,
       "info: one subscriber, history capped at 3");
    is_int(sp_hub_channel_info(hub, "nope", &info), SP_HUB_NO_CHANNEL, "no info for unknown");
    is_int(sp_hub_channel_delete(hub, "news"), 1, "delete closes one subscriber");
    sp_mailbox_run(mailbox);
    ok(b.deleted && b.sub.local == NULL, "b told of the deletion");
    is_int(sp_hub_channel_info(hub, "news", &info), SP_HUB_NO_CHANNEL, "channel gone");

    sp_hub_unsubscribe(port, &c.sub);
    drop(&a);
    drop(&b);
    drop(&c);
    close_hub(hub);
}

static void test_history_and_cursors(struct event_base *base)
{
    struct sp_hub_options opts = {3, 60000, 1024, false};
    struct sp_hub *hub = open_hub(base, &opts);
    struct fake_sub a = {.port = port}, b = {.port = port};
    struct sp_publish_result res;
    struct sp_msg *out[8];
    struct sp_cursor cur;
    bool missed;
    char ids[6][SP_MSG_ID_MAX];

    sp_hub_subscribe(port, &a.sub, "x", &ops);
    sp_hub_subscribe(port, &b.sub, "y", &ops);
    for (int i = 0; i < 5; i++) {
        publish(hub, i % 2 ? "y" : "x", "m", NULL, NULL, &res); /* x: 1,3,5  y: 2,4 */
        strcpy(ids[i + 1], res.id);
    }
    ok(sp_hub_parse_cursor(hub, ids[2], &cur) == 0 && cur.present && cur.this_epoch && cur.seq == 2,
       "parse our own id");
    struct sp_sub *both[] = {&a.sub, &b.sub};
    int n = sp_hub_backlog(hub, both, 2, &cur, out, 8, &missed);
    ok(n == 3 && !missed && sp_msg_seq(out[0]) == 3 && sp_msg_seq(out[1]) == 4 &&
           sp_msg_seq(out[2]) == 5,
       "two channels merge in id order after the cursor");
    for (int i = 0; i < n; i++)
        sp_msg_unref(out[i]);
    n = sp_hub_backlog(hub, both, 2, &cur, out, 2, &missed);
    ok(n == 2 && sp_msg_seq(out[1]) == 4, "a limit keeps the oldest first");
    for (int i = 0; i < n; i++)
        sp_msg_unref(out[i]);

    /* x holds 1,3,5 (3 max): nothing evicted yet. Publish 2 more to x. */
    publish(hub, "x", "m", NULL, NULL, &res); /* 6 */
    publish(hub, "x", "m", NULL, NULL, &res); /* 7: x now 5,6,7; 1 and 3 evicted */
    sp_hub_parse_cursor(hub, ids[2], &cur);
    struct sp_sub *only_x[] = {&a.sub};
    n = sp_hub_backlog(hub, only_x, 1, &cur, out, 8, &missed);
    ok(n == 3 && missed, "cursor 2 on x: 3 was evicted, so missed is reported");
    for (int i = 0; i < n; i++)
        sp_msg_unref(out[i]);
    sp_hub_parse_cursor(hub, ids[5], &cur);
    n = sp_hub_backlog(hub, only_x, 1, &cur, out, 8, &missed);
    ok(n == 2 && !missed, "cursor 5 on x: exactly 6 and 7, nothing missed");
    for (int i = 0; i < n; i++)
        sp_msg_unref(out[i]);

    ok(sp_hub_parse_cursor(hub, "zzzzzzzz-3", &cur) == 0 && cur.present && !cur.this_epoch,
       "an id from another epoch parses but is foreign");
    n = sp_hub_backlog(hub, only_x, 1, &cur, out, 8, &missed);
    ok(n == 3 && missed, "a foreign epoch replays what there is and reports missed");
    for (int i = 0; i < n; i++)
        sp_msg_unref(out[i]);
    char future[SP_MSG_ID_MAX];
    sp_hub_format_id(hub, 999, future);
    ok(sp_hub_parse_cursor(hub, future, &cur) == 0 && !cur.this_epoch,
       "an id from the future is not trusted");
    ok(sp_hub_parse_cursor(hub, "garbage", &cur) < 0, "garbage is not an id");
    ok(sp_hub_parse_cursor(hub, "a-", &cur) < 0, "no sequence");
    ok(sp_hub_parse_cursor(hub, "a-1x", &cur) < 0, "bad sequence");
    ok(sp_hub_parse_cursor(hub, "", &cur) == 0 && !cur.present, "empty is no cursor");

    struct sp_cursor now = sp_hub_now(hub);
    n = sp_hub_backlog(hub, both, 2, &now, out, 8, &missed);
    ok(n == 0 && !missed, "from now: nothing");
    struct sp_cursor none = {0};
    n = sp_hub_backlog(hub, both, 2, &none, out, 8, &missed);
    ok(n == 5 && !missed, "no cursor: the whole history of both channels");
    for (int i = 0; i < n; i++)
        sp_msg_unref(out[i]);

    sp_hub_unsubscribe(port, &a.sub);
    sp_hub_unsubscribe(port, &b.sub);
    drop(&a);
    drop(&b);
    close_hub(hub);
}

static void test_new_channel_floor(struct event_base *base)
{
    struct sp_hub_options opts = {10, 60000, 1024, false};
    struct sp_hub *hub = open_hub(base, &opts);
    struct fake_sub a = {.port = port};
    struct sp_publish_result res;
    struct sp_msg *out[4];
    struct sp_cursor cur;
    bool missed;

    publish(hub, "gone", "m", NULL, NULL, &res); /* seq 1, no subscribers: kept in history */
    char old[SP_MSG_ID_MAX];
    strcpy(old, res.id);
    sp_hub_channel_delete(hub, "gone"); /* history lost */
    publish(hub, "else", "m", NULL, NULL, &res);
    sp_hub_subscribe(port, &a.sub, "gone", &ops);
    sp_hub_parse_cursor(hub, old, &cur);
    cur.seq = 0;
    int n = sp_hub_backlog(hub, (struct sp_sub *[]){&a.sub}, 1, &cur, out, 4, &missed);
    ok(n == 0 && missed, "a recreated channel cannot vouch for what came before it");
    sp_hub_unsubscribe(port, &a.sub);
    close_hub(hub);
}

static void test_zero_history(struct event_base *base)
{
    struct sp_hub_options opts = {0, 60000, 1024, false};
    struct sp_hub *hub = open_hub(base, &opts);
    struct fake_sub a = {.port = port, .leave_on_deliver = true};
    struct sp_publish_result res;

    sp_hub_subscribe(port, &a.sub, "x", &ops);
    is_int(publish(hub, "x", "m", NULL, NULL, &res), 0, "publish without history");
    ok(a.ngot == 1 && sp_hub_channel_count(hub) == 0,
       "the channel goes once its last subscriber leaves, even mid fan-out");
    drop(&a);
    close_hub(hub);
}

/* Messages numbered by a shared engine (Redis) and handed to the hub. */
static void test_engine_numbered(struct event_base *base)
{
    struct sp_hub_options opts = {3, 60000, 64, false};
    struct sp_hub *hub = open_hub(base, &opts);
    struct fake_sub a = {.port = port};
    struct sp_cursor cur;
    struct sp_msg *out[8];
    bool missed;

    ok(sp_hub_set_epoch(hub, "redis1", 40), "the engine's epoch is adopted");
    is_str(sp_hub_epoch(hub), "redis1", "epoch");
    ok(sp_hub_reset_channel(hub, "c", 35) == 0, "a channel loaded with floor 35");
    sp_hub_subscribe(port, &a.sub, "c", &ops);
    struct sp_msg *m = sp_msg_new("c", 41, "redis1-41", NULL, "x", 1, 0);
    is_int(sp_hub_inject(hub, m, false), 0, "history only: nobody reached");
    sp_msg_unref(m);
    m = sp_msg_new("c", 45, "redis1-45", NULL, "y", 1, 0);
    is_int(sp_hub_inject(hub, m, true), 1, "a new message reaches the subscriber");
    sp_msg_unref(m);
    sp_mailbox_run(mailbox);
    ok(a.ngot == 1 && sp_msg_seq(a.got[0]) == 45, "delivered with the engine's number");
    sp_hub_parse_cursor(hub, "redis1-41", &cur);
    ok(cur.this_epoch, "an engine id is a cursor of this epoch");
    struct sp_sub *subs[1] = {&a.sub};
    int n = sp_hub_backlog(hub, subs, 1, &cur, out, 8, &missed);
    ok(n == 1 && sp_msg_seq(out[0]) == 45 && !missed, "backlog after 41 is 45");
    for (int i = 0; i < n; i++)
        sp_msg_unref(out[i]);
    sp_hub_parse_cursor(hub, "redis1-30", &cur);
    n = sp_hub_backlog(hub, subs, 1, &cur, out, 8, &missed);
    ok(missed && n == 2, "a cursor below the loaded floor is missed history");
    for (int i = 0; i < n; i++)
        sp_msg_unref(out[i]);
    ok(!sp_hub_set_epoch(hub, "redis1", 50), "the same epoch changes nothing");
    ok(sp_hub_set_epoch(hub, "redis2", 3), "a new epoch (Redis lost its data)");
    struct sp_channel_info info;
    sp_hub_channel_info(hub, "c", &info);
    ok(info.messages == 0, "history of the old epoch is dropped");
    sp_hub_parse_cursor(hub, "redis1-45", &cur);
    ok(cur.present && !cur.this_epoch, "old ids are from another epoch");
    drop(&a);
    sp_hub_unsubscribe(port, &a.sub);
    close_hub(hub);
}

/* The ring grows with what it holds (4, 8, then the history limit), keeps
 * order across growth while wrapped, and evicts at the limit. */
static void test_ring_growth(struct event_base *base)
{
    struct sp_hub_options opts = {10, 60000, 64, false};
    struct sp_hub *hub = open_hub(base, &opts);
    struct fake_sub a = {.port = port};
    struct sp_publish_result res;
    struct sp_msg *out[16];
    struct sp_cursor none = {0};
    bool missed;

    sp_hub_subscribe(port, &a.sub, "g", &ops);
    struct sp_sub *subs[] = {&a.sub};
    bool in_order = true;
    for (int i = 1; i <= 25; i++) {
        publish(hub, "g", "m", NULL, NULL, &res);
        drop(&a);
        int n = sp_hub_backlog(hub, subs, 1, &none, out, 16, &missed);
        int want = i < 10 ? i : 10;
        in_order &= n == want;
        for (int j = 0; j < n; j++) {
            in_order &= sp_msg_seq(out[j]) == (uint64_t)(i - want + 1 + j);
            sp_msg_unref(out[j]);
        }
    }
    ok(in_order, "history is the newest 10, oldest first, after every publish");
    struct sp_cursor cur;
    sp_hub_parse_cursor(hub, res.id, &cur);
    cur.seq = 3;
    int n = sp_hub_backlog(hub, subs, 1, &cur, out, 16, &missed);
    ok(missed && n == 10, "a cursor before the evicted ones is told it missed history");
    for (int j = 0; j < n; j++)
        sp_msg_unref(out[j]);
    sp_hub_unsubscribe(port, &a.sub);
    close_hub(hub);
}

static void test_cursor_parsing(struct event_base *base)
{
    struct sp_hub_options opts = {3, 60000, 64, false};
    struct sp_hub *hub = open_hub(base, &opts);
    struct sp_publish_result res;
    struct sp_cursor c;
    char id[SP_MSG_ID_MAX], other[SP_MSG_ID_MAX + 8];

    publish(hub, "c", "m", NULL, NULL, &res); /* seq 1 */
    strcpy(id, res.id);
    ok(sp_hub_parse_cursor(hub, "", &c) == 0 && !c.present, "empty: no cursor");
    ok(sp_hub_parse_cursor(hub, NULL, &c) == 0 && !c.present, "NULL: no cursor");
    ok(sp_hub_parse_cursor(hub, id, &c) == 0 && c.present && c.this_epoch && c.seq == 1,
       "our own id");
    snprintf(other, sizeof(other), "%.*s-99", (int)(strchr(id, '-') - id), id);
    ok(sp_hub_parse_cursor(hub, other, &c) == 0 && c.present && !c.this_epoch,
       "a sequence we never reached is not this epoch's (missed, never trusted)");
    ok(sp_hub_parse_cursor(hub, "zzzzzzzz-1", &c) == 0 && c.present && !c.this_epoch,
       "another epoch: present, missed");
    static const char *const bad[] = {"x",      "-1",     "abc-",
                                      "abc-1x", "abc- 1", "abc-18446744073709551616"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        is_int(sp_hub_parse_cursor(hub, bad[i], &c), -1, "not an id: '%s'", bad[i]);
    char longer[SP_MSG_ID_MAX + 2];
    memset(longer, 'a', sizeof(longer) - 3);
    strcpy(longer + sizeof(longer) - 3, "-1");
    is_int(sp_hub_parse_cursor(hub, longer, &c), -1, "longer than any id");
    c = sp_hub_now(hub);
    ok(c.present && c.this_epoch && c.seq == 1, "now: the newest message");
    close_hub(hub);
}

/* ---- a subscribe on one worker racing publishes on another ----------------------------- */

#define RACE_MESSAGES 3000

struct race {
    struct sp_hub *hub;
    int subscribe_at;
};

static void *race_publisher(void *arg)
{
    struct race *r = arg;
    struct sp_publish_result res;

    for (int i = 0; i < RACE_MESSAGES; i++) {
        struct sp_publish p = {"race", NULL, "m", 1, NULL, NULL, NULL};
        sp_hub_publish(r->hub, &p, &res);
    }
    return NULL;
}

struct collector {
    struct sp_sub sub;
    uint64_t last;
    size_t count;
    bool in_order;
};

static void collect(struct sp_sub *s, struct sp_msg *m)
{
    struct collector *c = (struct collector *)s;
    c->in_order &= sp_msg_seq(m) == c->last + 1;
    c->last = sp_msg_seq(m);
    c->count++;
}

static const struct sp_sub_ops collect_ops = {collect, deleted};

/* Port 1 is this thread; a publisher thread mails it. Whatever moment the
 * subscription lands, backlog then mail must be every message once, in
 * order. */
static void test_subscribe_racing_publishes(struct event_base *base, int subscribe_at)
{
    struct sp_hub_options opts = {RACE_MESSAGES, 600000, 64, false};
    struct sp_hub *hub = sp_hub_new(base, &opts, 2);
    struct sp_mailbox *mb = sp_mailbox_new(base);
    struct sp_hub_port *p = sp_hub_port_new(hub, 1, mb);
    struct race r = {hub, subscribe_at};
    struct collector c = {.in_order = true};
    struct sp_msg *backlog[RACE_MESSAGES];
    struct sp_cursor none = {0};
    pthread_t publisher;
    bool missed;

    pthread_create(&publisher, NULL, race_publisher, &r);
    while (sp_hub_now(hub).seq < (uint64_t)subscribe_at)
        ;
    sp_hub_subscribe(p, &c.sub, "race", &collect_ops);
    int n =
        sp_hub_backlog(hub, (struct sp_sub *[]){&c.sub}, 1, &none, backlog, RACE_MESSAGES, &missed);
    for (int i = 0; i < n; i++) {
        collect(&c.sub, backlog[i]);
        sp_msg_unref(backlog[i]);
    }
    pthread_join(publisher, NULL);
    sp_mailbox_run(mb);
    ok(c.in_order && c.count == RACE_MESSAGES && !missed,
       "subscribed near message %d: %zu of %d, each once, in order (%d from the backlog)",
       subscribe_at, c.count, RACE_MESSAGES, n);
    sp_hub_unsubscribe(p, &c.sub);
    sp_hub_port_free(p);
    sp_mailbox_free(mb);
    sp_hub_free(hub);
}

static void unref_all(struct sp_msg **out, int n)
{
    for (int i = 0; i < n; i++)
        sp_msg_unref(out[i]);
}

static void test_pattern_names(void)
{
    ok(sp_hub_pattern_valid("orders.42.*", 11), "a segment wildcard is a pattern");
    ok(sp_hub_pattern_valid("chat:*", 6) && sp_hub_pattern_valid("user-7-*", 8),
       "after ':' and '-' too");
    ok(!sp_hub_pattern_valid("orders*", 7), "a '*' must follow a separator");
    ok(!sp_hub_pattern_valid("*", 1) && !sp_hub_pattern_valid(".*", 0), "no bare wildcard");
    ok(!sp_hub_pattern_valid("a.*.b", 5) && !sp_hub_pattern_valid("a.**", 4),
       "only one '*', at the end");
    ok(!sp_hub_pattern_valid("#server-to-user-*", 17), "not over Pusher's reserved names");
    ok(!sp_hub_channel_name_valid("orders.*", 8), "a pattern is not a channel (no publishing)");
    ok(sp_hub_subscription_name_valid("orders.*", 8) && sp_hub_subscription_name_valid("orders", 6),
       "a subscription names either");
}

static void test_patterns(struct event_base *base)
{
    struct sp_hub_options opts = {2, 60000, 1024, false};
    struct sp_hub *hub = open_hub(base, &opts);
    struct fake_sub a = {.port = port}, b = {.port = port}, c = {.port = port};
    struct sp_publish_result res;
    struct sp_msg *out[8];
    struct sp_cursor cur;
    bool missed;

    is_int(sp_hub_subscribe(port, &a.sub, "orders.42.*", &ops), SP_HUB_OK, "subscribe a pattern");
    is_int(sp_hub_subscribe(port, &b.sub, "orders.*", &ops), SP_HUB_OK, "and a wider one");
    is_int(sp_hub_subscribe(port, &c.sub, "orders-*", &ops), SP_HUB_OK, "and a sibling");
    publish(hub, "orders.42.paid", "1", NULL, NULL, &res);
    ok(a.ngot == 1 && b.ngot == 1 && c.ngot == 0 && res.subscribers == 2,
       "a channel that did not exist reaches both patterns over it, counted");
    is_str(sp_msg_channel(a.got[0]), "orders.42.paid", "with its own channel's name");
    publish(hub, "orders.42", "2", NULL, NULL, &res);
    ok(a.ngot == 1 && b.ngot == 2, "the prefix itself is not under its pattern");
    publish(hub, "orders.4", "3", NULL, NULL, &res);
    publish(hub, "prices.1", "4", NULL, NULL, &res);
    publish(hub, "orders", "5", NULL, NULL, &res);
    ok(a.ngot == 1 && b.ngot == 3 && c.ngot == 0 && res.subscribers == 0,
       "unrelated channels reach no pattern");
    publish(hub, "orders-9", "6", NULL, NULL, &res);
    ok(c.ngot == 1 && b.ngot == 3, "'-' separates as '.' does");
    is_int((int)sp_hub_subscribers(hub, "orders.*"), 1, "a pattern's subscribers are counted");

    /* Resume: ids order across channels, so one cursor serves a pattern. */
    publish(hub, "orders.42.shipped", "7", NULL, NULL, &res); /* 7 */
    publish(hub, "orders.42.paid", "8", NULL, NULL, &res);    /* 8 */
    sp_hub_parse_cursor(hub, "", &cur);
    char id1[SP_MSG_ID_MAX];
    sp_hub_format_id(hub, 1, id1);
    sp_hub_parse_cursor(hub, id1, &cur);
    struct sp_sub *only_a[] = {&a.sub};
    int n = sp_hub_backlog(hub, only_a, 1, &cur, out, 8, &missed);
    ok(n == 2 && !missed && sp_msg_seq(out[0]) == 7 && sp_msg_seq(out[1]) == 8,
       "a pattern's backlog: every matching channel after the cursor, in id order");
    unref_all(out, n);
    ok(!missed, "a channel made after the cursor is not missed history");
    publish(hub, "orders.42.paid", "9", NULL, NULL, &res); /* 9: evicts 1 (history 2) */
    n = sp_hub_backlog(hub, only_a, 1, &cur, out, 8, &missed);
    ok(n == 3 && !missed, "1 was evicted, but the cursor had it");
    unref_all(out, n);
    sp_hub_format_id(hub, 0, id1);
    sp_hub_parse_cursor(hub, id1, &cur);
    n = sp_hub_backlog(hub, only_a, 1, &cur, out, 8, &missed);
    ok(n == 3 && missed, "from before it: missed");
    unref_all(out, n);

    /* The same message through a pattern and its channel, to one owner. */
    struct fake_sub d = {.port = port};
    sp_hub_subscribe(port, &d.sub, "orders.42.paid", &ops);
    struct sp_sub *both[] = {&a.sub, &d.sub};
    sp_hub_format_id(hub, 8, id1);
    sp_hub_parse_cursor(hub, id1, &cur);
    n = sp_hub_backlog(hub, both, 2, &cur, out, 8, &missed);
    ok(n == 1 && sp_msg_seq(out[0]) == 9, "a channel reached twice gives its backlog once");
    unref_all(out, n);
    sp_hub_unsubscribe(port, &d.sub);
    drop(&d);

    /* The trie lets go of what no pattern needs. */
    sp_hub_unsubscribe(port, &a.sub);
    publish(hub, "orders.42.paid", "10", NULL, NULL, &res);
    ok(a.ngot == 4 && b.ngot == 7, "an unsubscribed pattern gets nothing more");
    sp_hub_unsubscribe(port, &b.sub);
    sp_hub_unsubscribe(port, &c.sub);
    publish(hub, "orders.42.paid", "11", NULL, NULL, &res);
    ok(res.subscribers == 0 && b.ngot == 7, "no pattern left");
    drop(&a);
    drop(&b);
    drop(&c);
    close_hub(hub);
}

static void test_classes(struct event_base *base)
{
    struct sp_hub_options opts = {5, 60000, 1024, false};
    struct sp_hub *hub = open_hub(base, &opts);
    const struct sp_hub_class classes[] = {
        {"price.{sym}", {50, 60000, 1024, true}},
        {"small.{x}", {2, 60000, 10, false}},
        {"broken{a}{b}", {1, 1, 1, true}},
    };
    struct sp_publish_result res;
    struct sp_msg *out[8];
    bool missed;

    is_int(sp_hub_set_classes(hub, classes, 3), 0, "classes set (one that does not compile)");
    ok(sp_hub_channel_options(hub, "price.btc").last_value, "a name takes its class's options");
    ok(!sp_hub_channel_options(hub, "prices").last_value &&
           sp_hub_channel_options(hub, "prices").history == 5,
       "a name no class makes takes the hub's");
    for (int i = 0; i < 3; i++)
        publish(hub, "price.btc", "v", NULL, NULL, &res);
    struct fake_sub a = {.port = port};
    sp_hub_subscribe(port, &a.sub, "price.btc", &ops);
    struct sp_cursor from_now = sp_hub_now(hub);
    from_now.values = true;
    struct sp_sub *subs[] = {&a.sub};
    int n = sp_hub_backlog(hub, subs, 1, &from_now, out, 8, &missed);
    ok(n == 1 && sp_msg_seq(out[0]) == 3 && !missed, "from now, a last value gives its value");
    unref_all(out, n);
    struct sp_cursor old = {.present = true, .this_epoch = true, .seq = 0};
    n = sp_hub_backlog(hub, subs, 1, &old, out, 8, &missed);
    ok(n == 1 && !missed, "an old cursor: the value alone, nothing missed");
    unref_all(out, n);
    sp_hub_unsubscribe(port, &a.sub);
    is_int(publish(hub, "small.x", "01234567890", NULL, NULL, &res), SP_HUB_TOO_BIG,
           "a class's message size limit");
    is_int(publish(hub, "other", "01234567890", NULL, NULL, &res), SP_HUB_OK, "not elsewhere");
    struct sp_channel_info info;
    for (int i = 0; i < 4; i++)
        publish(hub, "small.x", "s", NULL, NULL, &res);
    sp_hub_channel_info(hub, "small.x", &info);
    is_int((int)info.messages, 2, "a class's history size");
    ok(!sp_hub_channel_options(hub, "broken-x").last_value, "a broken template makes nothing");
    is_int(sp_hub_set_classes(hub, NULL, 0), 0, "classes removed");
    ok(!sp_hub_channel_options(hub, "price.btc").last_value, "existing channels sorted again");
    drop(&a);
    close_hub(hub);
}

int main(void)
{
    struct event_base *base = event_base_new();
    test_publish_and_fanout(base);
    test_history_and_cursors(base);
    test_new_channel_floor(base);
    test_zero_history(base);
    test_ring_growth(base);
    test_cursor_parsing(base);
    test_engine_numbered(base);
    test_pattern_names();
    test_patterns(base);
    test_classes(base);
    for (int at = 0; at < RACE_MESSAGES; at += 700)
        test_subscribe_racing_publishes(base, at);
    event_base_free(base);
    return tap_done();
}
