/* Following channels in Redis: SUBSCRIBE while they have local
 * subscribers, read their streams into the hub, hand pub/sub messages on in
 * order, and let new subscribers wait until that is done. */
#include <event2/dns.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/digest.h"
#include "engine/engine-internal.h"

/* ---- channels: subscribing and loading --------------------------------------------------- */

static void on_subscription(redisAsyncContext *ac, void *reply, void *arg);

/* A channel's messages come on "c:<name>"; a pattern's, on "under:<its
 * prefix>" (publish.lua), so that Redis matches no patterns. */
static int send_subscription(struct sp_engine *e, struct echan *c, const char *verb)
{
    char chan[KEY_MAX];
    const char *argv[2] = {verb, chan};
    int n = c->pattern ? snprintf(chan, sizeof(chan), "%sunder:%.*s", e->prefix,
                                  (int)strlen(c->name) - 1, c->name)
                       : snprintf(chan, sizeof(chan), "%sc:%s", e->prefix, c->name);

    if (n < 0 || (size_t)n >= sizeof(chan))
        return -1;
    return sp_redis_command(e->sub, on_subscription, e, 2, argv, NULL);
}

void engine_buffered_clear(struct echan *c)
{
    struct buffered *b;

    while ((b = c->head) != NULL) {
        c->head = b->next;
        sp_msg_unref(b->msg);
        free(b->snapshot);
        free(b);
    }
    c->tail = &c->head;
}

static void echan_free(struct sp_engine *e, struct echan *c)
{
    sp_hmap_del(e->chans, c->name);
    sp_delay_cancel(e->lingering, &c->linger);
    engine_buffered_clear(c);
    free(c->name);
    free(c);
}

static bool wanted(const struct echan *c)
{
    return c->subs + c->pins > 0;
}

/* Keeps an unwanted channel subscribed for LINGER_MS. Returns true while it
 * lingers. */
static bool linger(struct sp_engine *e, struct echan *c)
{
    if (c->lingered || e->freeing || (c->state != C_SYNCED && c->state != C_LOADING))
        return false;
    if (!c->linger.queued)
        sp_delay_add(e->lingering, &c->linger, LINGER_MS);
    return true;
}

/* Brings a channel's Redis subscription in line with whether it is wanted. */
static void settle(struct sp_engine *e, struct echan *c)
{
    if (wanted(c)) {
        c->lingered = false;
        sp_delay_cancel(e->lingering, &c->linger);
        if (c->state == C_IDLE && sp_redis_is_up(e->sub) &&
            send_subscription(e, c, "SUBSCRIBE") == 0)
            c->state = C_SUBSCRIBING;
        return; /* C_UNSUBSCRIBING: subscribes again when that is confirmed */
    }
    if (linger(e, c))
        return;
    if (c->state == C_SUBSCRIBING || c->state == C_LOADING || c->state == C_SYNCED) {
        engine_buffered_clear(c);
        /* Its history in the hub would go stale from here: dropped; the next
         * subscriber reads the stream again. */
        c->resync = false;
        if (c->pattern)
            engine_pattern_dropped(e, c);
        else if (!engine_pattern_covers(e, c->name))
            sp_hub_drop_history(e->env.hub, c->name);
        if (sp_redis_is_up(e->sub) && send_subscription(e, c, "UNSUBSCRIBE") == 0) {
            c->state = C_UNSUBSCRIBING;
            return;
        }
        c->state = C_IDLE;
    }
    if (c->state == C_IDLE && !c->loading)
        echan_free(e, c);
}

static struct echan *echan_get(struct sp_engine *e, const char *name, bool create)
{
    struct echan *c = sp_hmap_get(e->chans, name);

    if (c != NULL || !create)
        return c;
    c = calloc(1, sizeof(*c));
    if (c == NULL || (c->name = strdup(name)) == NULL || sp_hmap_put(e->chans, c->name, c) < 0) {
        if (c)
            free(c->name);
        free(c);
        return NULL;
    }
    c->tail = &c->head;
    c->e = e;
    c->pattern = name[strlen(name) - 1] == '*';
    return c;
}

bool engine_channel_owned(struct sp_engine *e, const char *channel)
{
    const struct echan *c = sp_hmap_get(e->chans, channel);
    return c != NULL && !c->pattern && (c->state == C_LOADING || c->state == C_SYNCED);
}

void engine_lingered(void *ctx, struct sp_delay_entry *entry)
{
    struct echan *c = SP_DELAY_OWNER(entry, struct echan, linger);

    c->lingered = true;
    settle(c->e, c); /* may free c */
}

void sp_engine_watch(struct sp_engine *e, const char *channel, size_t count)
{
    struct echan *c = echan_get(e, channel, count > 0);

    if (c == NULL)
        return;
    c->subs = count;
    settle(e, c);
}

/* Builds a message from the fields of a stream entry or pub/sub payload. */
static struct sp_msg *make_msg(struct sp_engine *e, const char *channel, uint64_t seq,
                               uint64_t created_ms, struct sp_slice event, struct sp_slice data,
                               struct sp_slice grip)
{
    char id[SP_MSG_ID_MAX], ev[160];

    snprintf(id, sizeof(id), "%s-%" PRIu64, sp_hub_epoch(e->env.hub), seq);
    if (event.len >= sizeof(ev))
        event.len = 0; /* validated at publish; never longer */
    memcpy(ev, event.ptr, event.len);
    ev[event.len] = '\0';
    struct sp_msg *m =
        sp_msg_new(channel, seq, id, event.len ? ev : NULL, data.ptr, data.len, created_ms);
    if (m != NULL && grip.len > 0) {
        json_t *formats = json_loadb(grip.ptr, grip.len, 0, NULL);
        if (formats != NULL)
            sp_msg_set_grip(m, formats);
        json_decref(formats);
    }
    return m;
}

/* A message's "s" field: the channel's whole state for new subscribers. */
static void apply_snapshot(struct sp_engine *e, struct sp_msg *m, const char *s, size_t len)
{
    if (len == 0 || s[0] == '-')
        return;
    if (s[0] == '=') {
        sp_hub_set_snapshot(e->env.hub, sp_msg_channel(m), m);
        return;
    }
    struct sp_msg *snap = sp_msg_new(sp_msg_channel(m), sp_msg_seq(m), sp_msg_id(m),
                                     sp_msg_event(m), s + 1, len - 1, sp_msg_created(m));
    if (snap != NULL) {
        sp_hub_set_snapshot(e->env.hub, sp_msg_channel(m), snap);
        sp_msg_unref(snap);
    }
}

static void inject(struct sp_engine *e, struct sp_msg *m, bool deliver, const char *snap,
                   size_t snap_len)
{
    struct timespec a, b;

    clock_gettime(CLOCK_MONOTONIC, &a);
    sp_hub_inject(e->env.hub, m, deliver);
    clock_gettime(CLOCK_MONOTONIC, &b);
    if (deliver)
        sp_histogram_observe(&e->stats.fanout,
                             (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9);
    apply_snapshot(e, m, snap, snap_len);
}

struct sp_slice engine_field(const redisReply *fields, const char *name)
{
    for (size_t i = 0; i + 1 < fields->elements; i += 2) {
        const redisReply *k = fields->element[i], *v = fields->element[i + 1];
        if (k->type == REDIS_REPLY_STRING && strcmp(k->str, name) == 0 &&
            v->type == REDIS_REPLY_STRING)
            return (struct sp_slice){v->str, v->len};
    }
    return (struct sp_slice){"", 0};
}

static bool entry_valid(const redisReply *en)
{
    return engine_reply_is(en, REDIS_REPLY_ARRAY, 2) &&
           en->element[0]->type == REDIS_REPLY_STRING && en->element[1]->type == REDIS_REPLY_ARRAY;
}

static uint64_t entry_created(const redisReply *en)
{
    struct sp_slice t = engine_field(en->element[1], "t");
    return t.len ? strtoull(t.ptr, NULL, 10) : 0;
}

uint64_t engine_each_entry(struct sp_engine *e, const char *channel, const redisReply *entries,
                           uint64_t redis_now, uint64_t floor,
                           void (*fn)(struct sp_engine *e, struct sp_msg *m, struct sp_slice snap,
                                      void *ctx),
                           void *ctx)
{
    uint64_t ttl = sp_hub_channel_options(e->env.hub, channel).history_ttl_ms;
    uint64_t now = sp_now_ms();

    for (size_t i = 0; i < entries->elements; i++) {
        const redisReply *en = entries->element[i];
        if (entry_valid(en) && entry_created(en) + ttl <= redis_now)
            floor = strtoull(en->element[0]->str, NULL, 10);
    }
    for (size_t i = 0; fn != NULL && i < entries->elements; i++) {
        const redisReply *en = entries->element[i];
        if (!entry_valid(en) || entry_created(en) + ttl <= redis_now)
            continue;
        const redisReply *f = en->element[1];
        uint64_t age = redis_now > entry_created(en) ? redis_now - entry_created(en) : 0;
        struct sp_msg *m =
            make_msg(e, channel, strtoull(en->element[0]->str, NULL, 10), now > age ? now - age : 0,
                     engine_field(f, "e"), engine_field(f, "d"), engine_field(f, "g"));
        if (m == NULL)
            continue;
        fn(e, m, engine_field(f, "s"), ctx);
        sp_msg_unref(m);
    }
    return floor;
}

struct injecting {
    bool deliver;
    size_t count;
};

static void inject_entry(struct sp_engine *e, struct sp_msg *m, struct sp_slice snap, void *arg)
{
    struct injecting *in = arg;

    inject(e, m, in->deliver, snap.ptr, snap.len);
    in->count++;
}

void engine_count_gap(struct sp_engine *e, size_t missed)
{
    e->stats.gaps += missed > 0;
    e->stats.backfilled += missed;
}

/* Puts a load's entries into the hub: a first load replaces the channel's
 * history (entries past channels.history_ttl raise its floor); a resync
 * delivers the entries it missed. */
static void apply_entries(struct sp_engine *e, struct echan *c, const redisReply *entries,
                          uint64_t redis_now, uint64_t floor, bool deliver)
{
    if (!deliver) {
        bool none = false;
        floor = engine_each_entry(e, c->name, entries, redis_now, floor, NULL, &none);
        sp_hub_reset_channel(e->env.hub, c->name, floor);
    }
    struct injecting in = {deliver, 0};
    engine_each_entry(e, c->name, entries, redis_now, floor, inject_entry, &in);
    if (deliver)
        engine_count_gap(e, in.count);
}

struct echan *engine_load_answered(struct op *op, const redisReply *r, size_t elements)
{
    struct sp_engine *e = op->e;
    struct echan *c = e->freeing ? NULL : echan_get(e, op->channel, false);

    free(op);
    if (c == NULL)
        return NULL;
    c->loading = false;
    if (c->state != C_LOADING) {
        settle(e, c); /* unsubscribed meanwhile */
        return NULL;
    }
    if (r == NULL)
        return NULL; /* the command connection was lost: loads again when it is back */
    if (!engine_reply_is(r, REDIS_REPLY_ARRAY, elements) ||
        r->element[0]->type != REDIS_REPLY_STRING ||
        r->element[elements - 1]->type != REDIS_REPLY_ARRAY) {
        engine_script_failed(e, r);
        return NULL;
    }
    const char *epoch = r->element[0]->str;
    if (strcmp(epoch, sp_hub_epoch(e->env.hub)) != 0) {
        /* Redis lost its data since this load was asked for: read it all. */
        engine_epoch_changed(e, epoch, engine_reply_u64(r->element[1]));
        c->after = 0;
        engine_load_channel(e, c);
        return NULL;
    }
    e->stats.loads++;
    e->stats.resyncs += c->resync;
    return c;
}

static void on_load(redisAsyncContext *ac, void *reply, void *arg)
{
    struct sp_engine *e = ((struct op *)arg)->e;
    redisReply *r = reply;
    struct echan *c = engine_load_answered(arg, r, 5);

    if (c == NULL)
        return;
    uint64_t seq = engine_reply_u64(r->element[1]), floor = engine_reply_u64(r->element[2]);
    apply_entries(e, c, r->element[4], engine_reply_u64(r->element[3]), floor, c->resync);
    sp_hub_note_seq(e->env.hub, seq);
    /* Pub/sub messages that came during the load: those it did not cover. */
    for (struct buffered *b = c->head; b != NULL; b = b->next) {
        if (sp_msg_seq(b->msg) > seq)
            inject(e, b->msg, true, b->snapshot, b->snapshot_len);
        if (sp_msg_seq(b->msg) > seq)
            seq = sp_msg_seq(b->msg);
    }
    engine_buffered_clear(c);
    c->after = seq;
    c->resync = true;
    c->state = C_SYNCED;
    engine_check_waits(e);
}

void engine_load_channel(struct sp_engine *e, struct echan *c)
{
    char seqk[KEY_MAX], epochk[KEY_MAX], streamk[KEY_MAX], metak[KEY_MAX], glob[2 * KEY_MAX];
    char fresh[9], after[24], max[16];
    const char *keys[4] = {seqk, epochk, streamk, metak};
    /* A pattern's load reads every channel under it (engine_pattern.c). */
    const char *args[4] = {fresh, c->pattern ? glob : after, e->prefix, max};
    struct op *op;
    int rc;

    if (c->loading || e->scripts_loaded != S_COUNT || !e->hello_done)
        return; /* started when the command connection is ready */
    op = calloc(1, sizeof(*op));
    if (op == NULL)
        return;
    op->e = e;
    snprintf(op->channel, sizeof(op->channel), "%s", c->name);
    engine_key(e, seqk, sizeof(seqk), "seq", NULL);
    engine_key(e, epochk, sizeof(epochk), "epoch", NULL);
    engine_fresh_epoch(fresh);
    if (c->pattern) {
        /* The pattern's own '*' ends the glob of its channels' meta keys. */
        snprintf(glob, sizeof(glob), "%sm:%s", e->glob_prefix, c->name);
        snprintf(max, sizeof(max), "%d", PATTERN_LOAD_MAX);
        rc = engine_eval(e, S_PATTERN_LOAD, engine_pattern_loaded, op, 2, keys, 4, args, NULL);
    } else {
        engine_key(e, streamk, sizeof(streamk), "s:", c->name);
        engine_key(e, metak, sizeof(metak), "m:", c->name);
        snprintf(after, sizeof(after), "%" PRIu64, c->resync ? c->after : 0);
        rc = engine_eval(e, S_LOAD, on_load, op, 4, keys, 2, args, NULL);
    }
    if (rc < 0) {
        free(op);
        return;
    }
    c->loading = true;
}

/* ---- pub/sub ------------------------------------------------------------------------------- */

/* "M <epoch> <seq> <t> <elen> <dlen> <glen> <slen>[ <olen>]\n" then the
 * fields: the origin (a Pusher socket_id the message is not for) only when
 * there is one, so a replica of before it reads every other message. */
static int read_head(const char *p, const char *nl, char epoch[16], unsigned long long *seq,
                     unsigned long long *t, size_t l[5])
{
    int used = 0;

    l[4] = 0;
    if (sscanf(p, "M %15s %llu %llu %zu %zu %zu %zu %zu%n", epoch, seq, t, &l[0], &l[1], &l[2],
               &l[3], &l[4], &used) == 8 &&
        p + used == nl)
        return 0;
    used = 0;
    l[4] = 0;
    if (sscanf(p, "M %15s %llu %llu %zu %zu %zu %zu%n", epoch, seq, t, &l[0], &l[1], &l[2], &l[3],
               &used) == 7 &&
        p + used == nl)
        return 0;
    return -1;
}

/* Wall clocks, Redis's and ours: a skew between the hosts shows in the
 * figure (a negative lag counts as none). */
static void observe_lag(struct sp_engine *e, uint64_t published_ms)
{
    struct timespec now;

    clock_gettime(CLOCK_REALTIME, &now);
    uint64_t now_ms = (uint64_t)now.tv_sec * 1000 + (uint64_t)now.tv_nsec / 1000000;
    sp_histogram_observe(&e->stats.lag,
                         now_ms > published_ms ? (double)(now_ms - published_ms) / 1e3 : 0);
}

struct sp_msg *engine_read_message(struct sp_engine *e, const char *channel, const char *p,
                                   size_t len, const char **snap, size_t *snap_len)
{
    char epoch[16], origin[48];
    unsigned long long seq, published_at;
    size_t l[5];
    const char *nl = memchr(p, '\n', len);

    if (nl == NULL || read_head(p, nl, epoch, &seq, &published_at, l) < 0 ||
        l[0] + l[1] + l[2] + l[3] + l[4] != len - (size_t)(nl + 1 - p) || l[4] >= sizeof(origin)) {
        sp_log_warn(e->env.log, "redis_message", "unreadable message on channel %s", channel);
        return NULL;
    }
    size_t el = l[0], dl = l[1], gl = l[2];
    const char *f = nl + 1;
    observe_lag(e, published_at);
    if (strcmp(epoch, sp_hub_epoch(e->env.hub)) != 0)
        engine_epoch_changed(e, epoch, seq - 1); /* the channel now reloads: this one is buffered */
    struct sp_msg *m = make_msg(e, channel, seq, sp_now_ms(), (struct sp_slice){f, el},
                                (struct sp_slice){f + el, dl}, (struct sp_slice){f + el + dl, gl});
    if (m == NULL)
        return NULL;
    *snap = f + el + dl + gl;
    *snap_len = l[3];
    memcpy(origin, *snap + l[3], l[4]);
    origin[l[4]] = '\0';
    if (l[4] > 0 && sp_msg_set_origin(m, origin) < 0) {
        sp_msg_unref(m);
        return NULL;
    }
    return m;
}

static void on_message(struct sp_engine *e, struct echan *c, const char *p, size_t len)
{
    const char *snap;
    size_t sl;

    if (len == 1 && p[0] == 'D') {
        c->resync = false;
        sp_hub_channel_delete(e->env.hub, c->name);
        return;
    }
    struct sp_msg *m = engine_read_message(e, c->name, p, len, &snap, &sl);
    if (m == NULL)
        return;
    uint64_t seq = sp_msg_seq(m);
    if (c->state == C_LOADING) {
        struct buffered *b = calloc(1, sizeof(*b));
        if (b != NULL && (sl == 0 || (b->snapshot = malloc(sl)) != NULL)) {
            b->msg = m;
            if (sl)
                memcpy(b->snapshot, snap, sl);
            b->snapshot_len = sl;
            *c->tail = b;
            c->tail = &b->next;
            return;
        }
        free(b);
    } else if (c->state == C_SYNCED && seq > c->after) {
        c->after = seq;
        inject(e, m, true, snap, sl);
    }
    sp_msg_unref(m);
}

/* The channel or pattern a subscription's key names: "c:<channel>", or
 * "under:<prefix>" for the pattern "<prefix>*". */
static struct echan *echan_of_key(struct sp_engine *e, const redisReply *key)
{
    char name[SP_CHANNEL_MAX + 2];
    size_t plen = strlen(e->prefix);
    const char *k = key->str + plen;

    if (key->len <= plen + 2)
        return NULL;
    if (strncmp(k, "c:", 2) == 0)
        return echan_get(e, k + 2, false);
    if (strncmp(k, "under:", 6) != 0 || key->len - plen - 6 > SP_CHANNEL_MAX)
        return NULL;
    snprintf(name, sizeof(name), "%s*", k + 6);
    return echan_get(e, name, false);
}

static void on_subscription(redisAsyncContext *ac, void *reply, void *arg)
{
    struct sp_engine *e = arg;
    redisReply *r = reply;

    if (r == NULL || e->freeing || !engine_reply_is(r, REDIS_REPLY_ARRAY, 3) ||
        r->element[0]->type != REDIS_REPLY_STRING || r->element[1]->type != REDIS_REPLY_STRING)
        return;
    const char *kind = r->element[0]->str;
    const redisReply *body = r->element[2];
    struct echan *c = echan_of_key(e, r->element[1]);
    if (c == NULL)
        return;
    if (strcmp(kind, "message") == 0 && body->type == REDIS_REPLY_STRING) {
        /* A pattern's: "<channel>\n" first. */
        const char *nl = c->pattern ? memchr(body->str, '\n', body->len) : NULL;
        char channel[SP_CHANNEL_MAX + 1];
        if (!c->pattern)
            on_message(e, c, body->str, body->len);
        else if (nl != NULL && (size_t)(nl - body->str) <= SP_CHANNEL_MAX) {
            snprintf(channel, sizeof(channel), "%.*s", (int)(nl - body->str), body->str);
            engine_pattern_message(e, c, channel, nl + 1, body->len - (size_t)(nl + 1 - body->str));
        }
    } else if (strcmp(kind, "subscribe") == 0 && c->state == C_SUBSCRIBING) {
        c->state = C_LOADING;
        engine_load_channel(e, c);
    } else if (strcmp(kind, "unsubscribe") == 0 && c->state == C_UNSUBSCRIBING) {
        c->state = C_IDLE;
        settle(e, c); /* subscribes again if wanted meanwhile */
    }
}

static void subscribe_wanted(const char *name, void *value, void *arg)
{
    (void)name;
    settle(arg, value);
}

static void sub_up(void *arg)
{
    struct sp_engine *e = arg;

    e->sub_was_up = true;
    engine_each_chan(e, subscribe_wanted);
    engine_update_up(e, "ok");
}

static void mark_unsubscribed(const char *name, void *value, void *arg)
{
    struct echan *c = value;
    (void)name;
    (void)arg;
    engine_buffered_clear(c);
    c->state = C_IDLE;
}

static void free_unwanted(const char *name, void *value, void *arg)
{
    (void)name;
    if (!wanted(value) && !((struct echan *)value)->loading)
        echan_free(arg, value);
}

static void sub_down(void *arg, const char *why, uint64_t retry_ms)
{
    struct sp_engine *e = arg;

    if (e->freeing)
        return;
    /* Subscribers stay; each channel resubscribes and reads what it missed
     * from its stream when the connection is back. */
    engine_each_chan(e, mark_unsubscribed);
    engine_each_chan(e, free_unwanted);
    sp_log_write(e->env.log, e->sub_was_up ? SP_LOG_WARN : SP_LOG_DEBUG, "redis_connection",
                 "pub/sub: %s; reconnecting in %llu ms", why, (unsigned long long)retry_ms);
    e->sub_was_up = false;
    engine_update_up(e, why);
    engine_sentinel_ask(e->sentinel); /* it names the server to retry */
}

const struct sp_redis_ops engine_sub_ops = {sub_up, sub_down};

/* ---- waiting --------------------------------------------------------------------------------- */

bool engine_synced(struct sp_engine *e, const char *name)
{
    const struct echan *c = echan_get(e, name, false);
    return e->up && c != NULL && c->state == C_SYNCED;
}

static void wait_free(struct sp_engine_wait *w)
{
    struct sp_engine *e = w->e;

    LIST_REMOVE(w, link);
    if (w->timer)
        event_free(w->timer);
    for (size_t i = 0; i < w->count; i++) {
        struct echan *c = echan_get(e, w->names[i], false);
        if (c != NULL && c->pins > 0) {
            c->pins--;
            settle(e, c);
        }
        free(w->names[i]);
    }
    free(w);
}

void engine_wait_finish(struct sp_engine_wait *w, bool ok)
{
    /* Unpinned only after cb: a subscription made in it keeps the channels. */
    w->cb(w->arg, ok);
    wait_free(w);
}

void engine_check_waits(struct sp_engine *e)
{
    struct sp_engine_wait *w, *next;

    for (w = LIST_FIRST(&e->waits); w != NULL; w = next) {
        bool all = true;
        next = LIST_NEXT(w, link);
        for (size_t i = 0; i < w->count && all; i++)
            all = engine_synced(e, w->names[i]);
        if (all) {
            engine_wait_finish(w, true);
            next = LIST_FIRST(&e->waits); /* cb may have changed the list */
        }
    }
}

static void on_wait_timeout(evutil_socket_t fd, short what, void *arg)
{
    engine_wait_finish(arg, false);
}

int sp_engine_wait(struct sp_engine *e, const char *spec, sp_engine_synced cb, void *arg,
                   struct sp_engine_wait **out)
{
    char *names[256];
    size_t n = 0;
    bool all = true;
    char *copy = strdup(spec);

    if (copy == NULL)
        return -1;
    for (char *save, *tok = strtok_r(copy, ",", &save); tok && n < 256;
         tok = strtok_r(NULL, ",", &save)) {
        if (!sp_hub_subscription_name_valid(tok, strlen(tok)))
            continue; /* the subscription reports it */
        names[n++] = tok;
        all = all && engine_synced(e, tok);
    }
    if (all) {
        free(copy);
        return 1;
    }
    struct sp_engine_wait *w = calloc(1, sizeof(*w) + n * sizeof(char *));
    if (w == NULL) {
        free(copy);
        return -1;
    }
    *w = (struct sp_engine_wait){.e = e, .cb = cb, .arg = arg};
    LIST_INSERT_HEAD(&e->waits, w, link);
    uint64_t ms = e->subscribe_wait_ms;
    struct timeval tv = sp_timeval_ms(ms);
    w->timer = evtimer_new(e->env.base, on_wait_timeout, w);
    for (size_t i = 0; i < n; i++) {
        struct echan *c = echan_get(e, names[i], true);
        w->names[w->count] = strdup(names[i]);
        if (c == NULL || w->names[w->count] == NULL) {
            free(w->names[w->count]);
            break;
        }
        w->count++;
        c->pins++;
        settle(e, c);
    }
    free(copy);
    if (w->count < n || w->timer == NULL || evtimer_add(w->timer, &tv) < 0) {
        wait_free(w);
        return -1;
    }
    *out = w;
    return 0;
}

void sp_engine_wait_cancel(struct sp_engine_wait *w)
{
    if (w != NULL)
        wait_free(w);
}
