/* Following patterns in Redis: while a pattern has local subscribers,
 * SUBSCRIBE to "under:<its prefix>" (where publish.lua sends every message
 * of a channel under it, so Redis, which matches PSUBSCRIBE patterns one by
 * one for every PUBLISH, matches none), read the streams of every channel
 * under it into the hub, and hand its messages to the pattern's subscribers
 * in order.
 *
 * A channel's own subscription (SUBSCRIBE, engine_sync.c) and a pattern
 * over it each get every message of the channel, once each: the channel's
 * reach its subscribers, the pattern's its own (sp_hub_inject_pattern), so
 * nobody gets one twice. The hub keeps the history of a channel under a
 * followed pattern from the pattern's messages only while no subscription
 * of the channel itself keeps it (loading or synced), so that a pattern's
 * subscriber resumes from the channel's history on any replica. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine-internal.h"

static bool is_separator(char c)
{
    return c == '.' || c == ':' || c == '-';
}

static bool followed(const struct echan *c)
{
    return c != NULL && c->pattern && (c->state == C_LOADING || c->state == C_SYNCED);
}

/* Is channel under a followed pattern other than except? */
static bool covered(struct sp_engine *e, const char *channel, const struct echan *except)
{
    char name[SP_CHANNEL_MAX + 2];

    for (size_t i = 0; channel[i] != '\0' && channel[i + 1] != '\0'; i++) {
        if (!is_separator(channel[i]))
            continue;
        snprintf(name, sizeof(name), "%.*s*", (int)(i + 1), channel);
        const struct echan *c = sp_hmap_get(e->chans, name);
        if (c != except && followed(c))
            return true;
    }
    return false;
}

bool engine_pattern_covers(struct sp_engine *e, const char *channel)
{
    return covered(e, channel, NULL);
}

struct dropping {
    struct sp_engine *e;
    const struct echan *pattern;
};

static bool kept_otherwise(void *arg, const char *channel)
{
    struct dropping *d = arg;
    return engine_channel_owned(d->e, channel) || covered(d->e, channel, d->pattern);
}

void engine_pattern_dropped(struct sp_engine *e, struct echan *c)
{
    struct dropping d = {e, c};
    sp_hub_drop_histories(e->env.hub, c->name, kept_otherwise, &d);
}

/* ---- loading ------------------------------------------------------------------------------- */

/* A resync's messages for the pattern's subscribers, put in id order. */
struct news {
    struct sp_msg **msgs;
    size_t n, cap;
    uint64_t after;
    bool owned;
};

static void take_entry(struct sp_engine *e, struct sp_msg *m, struct sp_slice snap, void *arg)
{
    struct news *news = arg;

    (void)snap;
    if (!news->owned)
        sp_hub_inject(e->env.hub, m, false);
    if (news->after == UINT64_MAX || sp_msg_seq(m) <= news->after)
        return;
    if (news->n == news->cap) {
        size_t cap = news->cap ? news->cap * 2 : 64;
        struct sp_msg **grown = realloc(news->msgs, cap * sizeof(*grown));
        if (grown == NULL)
            return; /* out of memory: the client resumes from history */
        news->msgs = grown;
        news->cap = cap;
    }
    news->msgs[news->n++] = sp_msg_ref(m);
}

static int by_seq(const void *a, const void *b)
{
    uint64_t x = sp_msg_seq(*(struct sp_msg *const *)a);
    uint64_t y = sp_msg_seq(*(struct sp_msg *const *)b);
    return x < y ? -1 : x > y;
}

/* One channel of a load: {name, floor, entries}. */
static void apply_channel(struct sp_engine *e, struct echan *c, const redisReply *ch,
                          uint64_t redis_now, struct news *news)
{
    if (!engine_reply_is(ch, REDIS_REPLY_ARRAY, 3) || ch->element[0]->type != REDIS_REPLY_STRING ||
        ch->element[2]->type != REDIS_REPLY_ARRAY)
        return;
    const char *name = ch->element[0]->str;
    const redisReply *entries = ch->element[2];
    uint64_t floor = engine_reply_u64(ch->element[1]);
    /* "orders.*" globs "orders." itself too, which it does not cover. */
    if (ch->element[0]->len < strlen(c->name) ||
        !sp_hub_channel_name_valid(name, ch->element[0]->len))
        return;
    news->owned = engine_channel_owned(e, name);
    if (!news->owned) {
        floor = engine_each_entry(e, name, entries, redis_now, floor, NULL, NULL);
        sp_hub_reset_channel(e->env.hub, name, floor);
    }
    engine_each_entry(e, name, entries, redis_now, floor, take_entry, news);
}

static void pattern_message(struct sp_engine *e, struct echan *c, struct sp_msg *m)
{
    c->after = sp_msg_seq(m);
    sp_hub_inject_pattern(e->env.hub, c->name, m, !engine_channel_owned(e, sp_msg_channel(m)));
}

void engine_pattern_loaded(redisAsyncContext *ac, void *reply, void *arg)
{
    struct sp_engine *e = ((struct op *)arg)->e;
    redisReply *r = reply;
    struct echan *c = engine_load_answered(arg, r, 4);

    if (c == NULL)
        return;
    uint64_t seq = engine_reply_u64(r->element[1]);
    /* A first load only fills the histories; a resync also hands the
     * pattern's subscribers what they missed. */
    struct news news = {.after = c->resync ? c->after : UINT64_MAX};
    for (size_t i = 0; i < r->element[3]->elements; i++)
        apply_channel(e, c, r->element[3]->element[i], engine_reply_u64(r->element[2]), &news);
    sp_hub_note_seq(e->env.hub, seq);
    if (c->resync)
        engine_count_gap(e, news.n);
    if (news.n > 1)
        qsort(news.msgs, news.n, sizeof(*news.msgs), by_seq);
    for (size_t i = 0; i < news.n; i++) {
        sp_hub_inject_pattern(e->env.hub, c->name, news.msgs[i], false);
        sp_msg_unref(news.msgs[i]);
    }
    free(news.msgs);
    c->after = seq;
    /* Messages that came during the load: those it did not cover. */
    for (struct buffered *b = c->head; b != NULL; b = b->next)
        if (sp_msg_seq(b->msg) > c->after)
            pattern_message(e, c, b->msg);
    engine_buffered_clear(c);
    c->resync = true;
    c->state = C_SYNCED;
    engine_check_waits(e);
}

/* ---- messages ---------------------------------------------------------------------------------
 */

void engine_pattern_message(struct sp_engine *e, struct echan *c, const char *channel,
                            const char *p, size_t len)
{
    const char *snap;
    size_t snap_len;

    if (!sp_hub_channel_name_valid(channel, strlen(channel)))
        return;
    if (len == 1 && p[0] == 'D') {
        /* The channel's own subscription ends its subscribers; the history
         * this pattern kept goes, and its floor says so. */
        if (!engine_channel_owned(e, channel))
            sp_hub_channel_delete(e->env.hub, channel);
        return;
    }
    struct sp_msg *m = engine_read_message(e, channel, p, len, &snap, &snap_len);
    if (m == NULL)
        return;
    if (c->state == C_LOADING) {
        struct buffered *b = calloc(1, sizeof(*b));
        if (b != NULL) {
            b->msg = m;
            *c->tail = b;
            c->tail = &b->next;
            return;
        }
    } else if (c->state == C_SYNCED && sp_msg_seq(m) > c->after) {
        pattern_message(e, c, m);
    }
    sp_msg_unref(m);
}
