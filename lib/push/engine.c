#include "push/engine.h"

#include <event2/dns.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/digest.h"
#include "core/hmap.h"
#include "net/redis.h"
#include "push/push-internal.h"

/* Meta keys (a channel's floor and last id) outlive its stream by this
 * much, so a client returning after the stream expired learns it missed
 * messages rather than getting nothing. */
/* A channel stays subscribed this long after its last local subscriber
 * left: long-poll clients come back between their requests, and a channel
 * that is still followed needs no new read of its stream. */
#define LINGER_MS 5000

#define META_EXTRA_MS ((uint64_t)24 * 3600 * 1000)

/* ---- the scripts ---------------------------------------------------------------------------
 *
 * Keys are passed as KEYS (so the scripts say what they touch); every one of
 * them starts with redis.key_prefix. Stream ids are "<seq>-0": the shared
 * sequence orders them. Entries hold t (Redis time, ms), e (event), d (data),
 * g (GRIP formats, JSON) and s (a snapshot: "-" none, "=" the message itself,
 * "+" and the whole state). */
/* Each script lives in lib/push/lua/<name>.lua (read it there, or run it
 * with redis-cli --eval), embedded here at build time. */
#include "push/lua/engine_scripts.h"

enum script { S_HELLO, S_PUBLISH, S_LOAD, S_DELETE, S_INFO, S_LEASE, S_RELEASE, S_COUNT };

static const char *const scripts[S_COUNT] = {
    engine_script_hello, engine_script_publish, engine_script_load,   engine_script_delete,
    engine_script_info,  engine_script_lease,   engine_script_release};

/* ---- state ----------------------------------------------------------------------------------- */

enum chan_state {
    C_IDLE,          /* not subscribed in Redis */
    C_SUBSCRIBING,   /* SUBSCRIBE sent */
    C_LOADING,       /* subscribed; reading the stream (pub/sub messages are buffered) */
    C_SYNCED,        /* the hub holds the stream; pub/sub messages go to it */
    C_UNSUBSCRIBING, /* UNSUBSCRIBE sent */
};

struct buffered {
    struct buffered *next;
    struct sp_msg *msg;
    char *snapshot; /* the "s" field, or NULL */
    size_t snapshot_len;
};

struct echan {
    char *name;
    enum chan_state state;
    size_t subs;    /* local subscribers (the hub's count) */
    size_t pins;    /* waiters */
    bool resync;    /* the hub has its history: the next load delivers what is new */
    bool loading;   /* a load is in flight */
    uint64_t after; /* the next load reads entries after this seq */
    struct buffered *head, **tail;
    struct event *linger; /* unwanted: unsubscribed when this fires */
    bool lingered;
    struct sp_engine *e;
};

struct sp_engine_wait {
    struct sp_engine *e;
    LIST_ENTRY(sp_engine_wait) link;
    sp_engine_synced cb;
    void *arg;
    struct event *timer;
    size_t count;
    char *names[]; /* count of them, one allocation each */
};

struct engine_stats {
    uint64_t up_transitions, down_transitions;
    uint64_t publish_failures;
    uint64_t loads, resyncs, epoch_changes;
};

struct sp_engine {
    struct sp_push *push;
    struct evdns_base *dns;
    struct sp_redis *cmd, *sub;
    char sha[S_COUNT][41];
    unsigned scripts_loaded;
    bool hello_done;
    bool up;
    bool freeing;
    bool epoch_known;            /* adopted Redis's epoch once */
    bool cmd_was_up, sub_was_up; /* for logging a loss once, then retries at debug */
    char *prefix;
    char replica[24];
    /* From the configuration at start: the redis section needs a restart. */
    uint64_t subscribe_wait_ms, poll_lease_ms;
    bool required_for_ready;
    struct sp_hmap *chans;
    LIST_HEAD(, sp_engine_wait) waits;
    struct engine_stats stats;
};

/* One command in flight. */
struct op {
    struct sp_engine *e;
    union {
        sp_engine_published published;
        sp_engine_channel_done channel_done;
        sp_engine_leased leased;
        sp_engine_claimed claimed;
    } cb;
    void *arg;
    enum script script; /* SCRIPT LOAD */
    char channel[SP_CHANNEL_MAX + 1];
};

static void load_channel(struct sp_engine *e, struct echan *c);
static void check_waits(struct sp_engine *e);

/* ---- keys and small helpers -------------------------------------------------------------- */

static int key(const struct sp_engine *e, char *out, size_t size, const char *kind,
               const char *channel)
{
    int n = snprintf(out, size, "%s%s%s", e->prefix, kind, channel ? channel : "");
    return n > 0 && (size_t)n < size ? 0 : -1;
}

#define KEY_MAX (SP_CHANNEL_MAX + 512)

static void fresh_epoch(char out[9])
{
    sp_random_base36(out, 8);
}

static bool reply_is(const redisReply *r, int type, size_t min_elements)
{
    return r != NULL && r->type == type &&
           (type != REDIS_REPLY_ARRAY || r->elements >= min_elements);
}

static uint64_t reply_u64(const redisReply *r)
{
    if (r == NULL)
        return 0;
    if (r->type == REDIS_REPLY_INTEGER)
        return r->integer > 0 ? (uint64_t)r->integer : 0;
    if (r->type == REDIS_REPLY_STRING)
        return strtoull(r->str, NULL, 10);
    return 0;
}

static int eval(struct sp_engine *e, enum script s, redisCallbackFn *fn, void *privdata, int nkeys,
                const char **keys, int nargs, const char **args, const size_t *arglens)
{
    const char *argv[32];
    size_t lens[32];
    char nk[8];
    int argc = 0;

    /* Publishing needs only this connection, not the pub/sub one. */
    if (e->scripts_loaded != S_COUNT || (!e->hello_done && s != S_HELLO) ||
        3 + nkeys + nargs > (int)(sizeof(argv) / sizeof(argv[0])))
        return -1;
    snprintf(nk, sizeof(nk), "%d", nkeys);
    argv[argc] = "EVALSHA", lens[argc++] = 7;
    argv[argc] = e->sha[s], lens[argc++] = 40;
    argv[argc] = nk, lens[argc++] = strlen(nk);
    for (int i = 0; i < nkeys; i++)
        argv[argc] = keys[i], lens[argc++] = strlen(keys[i]);
    for (int i = 0; i < nargs; i++)
        argv[argc] = args[i], lens[argc++] = arglens ? arglens[i] : strlen(args[i]);
    return sp_redis_command(e->cmd, fn, privdata, argc, argv, lens);
}

/* A script answered an error (NOSCRIPT after a SCRIPT FLUSH, or a bug):
 * the connection is remade, which loads the scripts again. */
static void script_failed(struct sp_engine *e, const redisReply *r)
{
    if (r != NULL && r->type == REDIS_REPLY_ERROR && !e->freeing) {
        sp_log_error(e->push->log, "redis_script_error", "%s", r->str);
        sp_redis_reset(e->cmd, "script error");
    }
}

/* ---- up and down ---------------------------------------------------------------------------- */

static void update_up(struct sp_engine *e, const char *why)
{
    bool up = sp_redis_is_up(e->cmd) && sp_redis_is_up(e->sub) && e->scripts_loaded == S_COUNT &&
              e->hello_done;

    if (up == e->up)
        return;
    e->up = up;
    if (up) {
        e->stats.up_transitions++;
        sp_log_info(e->push->log, "redis_up", "Redis at %s:%u is available",
                    e->push->config->redis.host, e->push->config->redis.port);
    } else {
        e->stats.down_transitions++;
        sp_log_warn(e->push->log, "redis_down",
                    "Redis unavailable (%s): reconnecting; subscribers stay connected", why);
    }
}

static void each_chan(struct sp_engine *e, void (*fn)(const char *, void *, void *))
{
    sp_hmap_each(e->chans, fn, e);
}

/* The hub's history is from an epoch Redis no longer has (it lost its data):
 * every synced channel reads its stream again from the start and delivers
 * it, since all of it is new to this replica. */
static void mark_reload(const char *name, void *value, void *arg)
{
    struct echan *c = value;
    struct sp_engine *e = arg;

    (void)name;
    c->after = 0;
    if (c->state == C_SYNCED) {
        c->state = C_LOADING;
        load_channel(e, c);
    }
}

static void epoch_changed(struct sp_engine *e, const char *epoch, uint64_t seq)
{
    bool first = !e->epoch_known;

    e->epoch_known = true;
    if (!sp_hub_set_epoch(e->push->hub, epoch, seq) || first)
        return;
    e->stats.epoch_changes++;
    sp_log_warn(e->push->log, "redis_epoch",
                "Redis has a new epoch '%s' (its data was lost or restored): history restarts, "
                "resuming clients are told they missed messages",
                epoch);
    each_chan(e, mark_reload);
}

static void start_pending_loads(const char *name, void *value, void *arg)
{
    struct echan *c = value;
    (void)name;
    if (c->state == C_LOADING && !c->loading)
        load_channel(arg, c);
}

static void on_hello(redisAsyncContext *ac, void *reply, void *arg)
{
    struct sp_engine *e = arg;
    redisReply *r = reply;

    if (r == NULL || e->freeing)
        return;
    if (!reply_is(r, REDIS_REPLY_ARRAY, 2) || r->element[0]->type != REDIS_REPLY_STRING ||
        r->element[0]->len >= 16) {
        script_failed(e, r);
        return;
    }
    e->hello_done = true;
    epoch_changed(e, r->element[0]->str, reply_u64(r->element[1]));
    each_chan(e, start_pending_loads);
    update_up(e, "ok");
    check_waits(e);
}

static void send_hello(struct sp_engine *e)
{
    char seqk[KEY_MAX], epochk[KEY_MAX], fresh[9], seq[24];
    const char *keys[2] = {seqk, epochk};
    const char *args[3] = {fresh, sp_hub_epoch(e->push->hub), seq};

    key(e, seqk, sizeof(seqk), "seq", NULL);
    key(e, epochk, sizeof(epochk), "epoch", NULL);
    fresh_epoch(fresh);
    struct sp_cursor now = sp_hub_now(e->push->hub);
    snprintf(seq, sizeof(seq), "%" PRIu64, now.seq);
    if (eval(e, S_HELLO, on_hello, e, 2, keys, 3, args, NULL) < 0)
        sp_redis_reset(e->cmd, "cannot send");
}

static void on_script_loaded(redisAsyncContext *ac, void *reply, void *arg)
{
    struct op *op = arg;
    struct sp_engine *e = op->e;
    redisReply *r = reply;
    enum script which = op->script;

    free(op);
    if (r == NULL || e->freeing)
        return;
    if (r->type != REDIS_REPLY_STRING || r->len != 40) {
        script_failed(e, r);
        return;
    }
    memcpy(e->sha[which], r->str, 40);
    e->sha[which][40] = '\0';
    if (++e->scripts_loaded == S_COUNT)
        send_hello(e);
}

static void cmd_up(void *arg)
{
    struct sp_engine *e = arg;

    e->cmd_was_up = true;
    e->scripts_loaded = 0;
    e->hello_done = false;
    for (int i = 0; i < S_COUNT; i++) {
        struct op *op = calloc(1, sizeof(*op));
        const char *argv[3] = {"SCRIPT", "LOAD", scripts[i]};
        if (op == NULL) {
            sp_redis_reset(e->cmd, "out of memory");
            return;
        }
        op->e = e;
        op->script = (enum script)i;
        if (sp_redis_command(e->cmd, on_script_loaded, op, 3, argv, NULL) < 0) {
            free(op);
            sp_redis_reset(e->cmd, "cannot send");
            return;
        }
    }
}

static void cmd_down(void *arg, const char *why, uint64_t retry_ms)
{
    struct sp_engine *e = arg;

    e->scripts_loaded = 0;
    e->hello_done = false;
    if (e->freeing)
        return;
    sp_log_write(e->push->log, e->cmd_was_up ? SP_LOG_WARN : SP_LOG_DEBUG, "redis_connection",
                 "commands: %s; reconnecting in %llu ms", why, (unsigned long long)retry_ms);
    e->cmd_was_up = false;
    update_up(e, why);
}

static const struct sp_redis_ops cmd_ops = {cmd_up, cmd_down};

/* ---- channels: subscribing and loading --------------------------------------------------- */

static void on_subscription(redisAsyncContext *ac, void *reply, void *arg);

static int send_subscription(struct sp_engine *e, struct echan *c, const char *verb)
{
    char chan[KEY_MAX];
    const char *argv[2] = {verb, chan};

    key(e, chan, sizeof(chan), "c:", c->name);
    return sp_redis_command(e->sub, on_subscription, e, 2, argv, NULL);
}

static void buffered_clear(struct echan *c)
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
    if (c->linger)
        event_free(c->linger);
    buffered_clear(c);
    free(c->name);
    free(c);
}

static bool wanted(const struct echan *c)
{
    return c->subs + c->pins > 0;
}

static void on_linger(evutil_socket_t fd, short what, void *arg);

/* Keeps an unwanted channel subscribed for LINGER_MS. Returns true while it
 * lingers. */
static bool linger(struct sp_engine *e, struct echan *c)
{
    struct timeval tv = sp_timeval_ms(LINGER_MS);

    if (c->lingered || e->freeing || (c->state != C_SYNCED && c->state != C_LOADING))
        return false;
    if (c->linger == NULL && (c->linger = evtimer_new(e->push->base, on_linger, c)) == NULL)
        return false;
    if (!evtimer_pending(c->linger, NULL))
        evtimer_add(c->linger, &tv);
    return true;
}

/* Brings a channel's Redis subscription in line with whether it is wanted. */
static void settle(struct sp_engine *e, struct echan *c)
{
    if (wanted(c)) {
        c->lingered = false;
        if (c->linger)
            evtimer_del(c->linger);
        if (c->state == C_IDLE && sp_redis_is_up(e->sub) &&
            send_subscription(e, c, "SUBSCRIBE") == 0)
            c->state = C_SUBSCRIBING;
        return; /* C_UNSUBSCRIBING: subscribes again when that is confirmed */
    }
    if (linger(e, c))
        return;
    if (c->state == C_SUBSCRIBING || c->state == C_LOADING || c->state == C_SYNCED) {
        buffered_clear(c);
        /* Its history in the hub would go stale from here: dropped; the next
         * subscriber reads the stream again. */
        c->resync = false;
        sp_hub_drop_history(e->push->hub, c->name);
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
    return c;
}

static void on_linger(evutil_socket_t fd, short what, void *arg)
{
    struct echan *c = arg;

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

    snprintf(id, sizeof(id), "%s-%" PRIu64, sp_hub_epoch(e->push->hub), seq);
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
        sp_hub_set_snapshot(e->push->hub, sp_msg_channel(m), m);
        return;
    }
    struct sp_msg *snap = sp_msg_new(sp_msg_channel(m), sp_msg_seq(m), sp_msg_id(m),
                                     sp_msg_event(m), s + 1, len - 1, sp_msg_created(m));
    if (snap != NULL) {
        sp_hub_set_snapshot(e->push->hub, sp_msg_channel(m), snap);
        sp_msg_unref(snap);
    }
}

static void inject(struct sp_engine *e, struct sp_msg *m, bool deliver, const char *snap,
                   size_t snap_len)
{
    struct timespec a, b;

    clock_gettime(CLOCK_MONOTONIC, &a);
    sp_hub_inject(e->push->hub, m, deliver);
    clock_gettime(CLOCK_MONOTONIC, &b);
    if (deliver)
        sp_histogram_observe(&e->push->stats.fanout,
                             (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9);
    apply_snapshot(e, m, snap, snap_len);
}

static struct sp_slice field(const redisReply *fields, const char *name)
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
    return reply_is(en, REDIS_REPLY_ARRAY, 2) && en->element[0]->type == REDIS_REPLY_STRING &&
           en->element[1]->type == REDIS_REPLY_ARRAY;
}

static uint64_t entry_created(const redisReply *en)
{
    struct sp_slice t = field(en->element[1], "t");
    return t.len ? strtoull(t.ptr, NULL, 10) : 0;
}

/* Puts a load's entries into the hub: a first load replaces the channel's
 * history (entries past channels.history_ttl raise its floor); a resync
 * delivers the entries it missed. */
static void apply_entries(struct sp_engine *e, struct echan *c, const redisReply *entries,
                          uint64_t redis_now, uint64_t floor, bool deliver)
{
    uint64_t ttl = e->push->config->channels.history_ttl_ms;
    uint64_t now = sp_now_ms();

    for (size_t i = 0; i < entries->elements; i++) {
        const redisReply *en = entries->element[i];
        if (entry_valid(en) && entry_created(en) + ttl <= redis_now)
            floor = strtoull(en->element[0]->str, NULL, 10);
    }
    if (!deliver)
        sp_hub_reset_channel(e->push->hub, c->name, floor);
    for (size_t i = 0; i < entries->elements; i++) {
        const redisReply *en = entries->element[i];
        if (!entry_valid(en) || entry_created(en) + ttl <= redis_now)
            continue;
        const redisReply *f = en->element[1];
        uint64_t age = redis_now > entry_created(en) ? redis_now - entry_created(en) : 0;
        struct sp_msg *m =
            make_msg(e, c->name, strtoull(en->element[0]->str, NULL, 10), now > age ? now - age : 0,
                     field(f, "e"), field(f, "d"), field(f, "g"));
        if (m == NULL)
            continue;
        struct sp_slice s = field(f, "s");
        inject(e, m, deliver, s.ptr, s.len);
        sp_msg_unref(m);
    }
}

static void on_load(redisAsyncContext *ac, void *reply, void *arg)
{
    struct op *op = arg;
    struct sp_engine *e = op->e;
    redisReply *r = reply;
    struct echan *c = e->freeing ? NULL : echan_get(e, op->channel, false);

    free(op);
    if (c == NULL)
        return;
    c->loading = false;
    if (c->state != C_LOADING) {
        settle(e, c); /* unsubscribed meanwhile */
        return;
    }
    if (r == NULL)
        return; /* the command connection was lost: loads again when it is back */
    if (!reply_is(r, REDIS_REPLY_ARRAY, 5) || r->element[0]->type != REDIS_REPLY_STRING ||
        r->element[4]->type != REDIS_REPLY_ARRAY) {
        script_failed(e, r);
        return;
    }
    const char *epoch = r->element[0]->str;
    uint64_t seq = reply_u64(r->element[1]), floor = reply_u64(r->element[2]);
    if (strcmp(epoch, sp_hub_epoch(e->push->hub)) != 0) {
        /* Redis lost its data since this load was asked for: read it all. */
        epoch_changed(e, epoch, seq);
        c->after = 0;
        load_channel(e, c);
        return;
    }
    e->stats.loads++;
    e->stats.resyncs += c->resync;
    apply_entries(e, c, r->element[4], reply_u64(r->element[3]), floor, c->resync);
    sp_hub_note_seq(e->push->hub, seq);
    /* Pub/sub messages that came during the load: those it did not cover. */
    for (struct buffered *b = c->head; b != NULL; b = b->next) {
        if (sp_msg_seq(b->msg) > seq)
            inject(e, b->msg, true, b->snapshot, b->snapshot_len);
        if (sp_msg_seq(b->msg) > seq)
            seq = sp_msg_seq(b->msg);
    }
    buffered_clear(c);
    c->after = seq;
    c->resync = true;
    c->state = C_SYNCED;
    check_waits(e);
}

static void load_channel(struct sp_engine *e, struct echan *c)
{
    char seqk[KEY_MAX], epochk[KEY_MAX], streamk[KEY_MAX], metak[KEY_MAX];
    char fresh[9], after[24];
    const char *keys[4] = {seqk, epochk, streamk, metak};
    const char *args[2] = {fresh, after};
    struct op *op;

    if (c->loading || e->scripts_loaded != S_COUNT || !e->hello_done)
        return; /* started when the command connection is ready */
    op = calloc(1, sizeof(*op));
    if (op == NULL)
        return;
    op->e = e;
    snprintf(op->channel, sizeof(op->channel), "%s", c->name);
    key(e, seqk, sizeof(seqk), "seq", NULL);
    key(e, epochk, sizeof(epochk), "epoch", NULL);
    key(e, streamk, sizeof(streamk), "s:", c->name);
    key(e, metak, sizeof(metak), "m:", c->name);
    fresh_epoch(fresh);
    snprintf(after, sizeof(after), "%" PRIu64, c->resync ? c->after : 0);
    if (eval(e, S_LOAD, on_load, op, 4, keys, 2, args, NULL) < 0) {
        free(op);
        return;
    }
    c->loading = true;
}

/* ---- pub/sub ------------------------------------------------------------------------------- */

/* "M <epoch> <seq> <t> <elen> <dlen> <glen> <slen>\n" then the four fields. */
static void on_message(struct sp_engine *e, struct echan *c, const char *p, size_t len)
{
    char epoch[16];
    unsigned long long seq, t;
    size_t el, dl, gl, sl;
    int used = 0;
    const char *nl = memchr(p, '\n', len);

    if (len == 1 && p[0] == 'D') {
        c->resync = false;
        sp_hub_channel_delete(e->push->hub, c->name);
        return;
    }
    if (nl == NULL ||
        sscanf(p, "M %15s %llu %llu %zu %zu %zu %zu%n", epoch, &seq, &t, &el, &dl, &gl, &sl,
               &used) != 7 ||
        p + used != nl || el + dl + gl + sl != len - (size_t)(nl + 1 - p)) {
        sp_log_warn(e->push->log, "redis_message", "unreadable message on channel %s", c->name);
        return;
    }
    const char *f = nl + 1;
    if (strcmp(epoch, sp_hub_epoch(e->push->hub)) != 0)
        epoch_changed(e, epoch, seq - 1); /* the channel now reloads: this one is buffered */
    struct sp_msg *m = make_msg(e, c->name, seq, sp_now_ms(), (struct sp_slice){f, el},
                                (struct sp_slice){f + el, dl}, (struct sp_slice){f + el + dl, gl});
    if (m == NULL)
        return;
    const char *snap = f + el + dl + gl;
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

static void on_subscription(redisAsyncContext *ac, void *reply, void *arg)
{
    struct sp_engine *e = arg;
    redisReply *r = reply;
    size_t plen = strlen(e->prefix) + 2;

    if (r == NULL || e->freeing || !reply_is(r, REDIS_REPLY_ARRAY, 3) ||
        r->element[0]->type != REDIS_REPLY_STRING || r->element[1]->type != REDIS_REPLY_STRING ||
        r->element[1]->len <= plen)
        return;
    const char *kind = r->element[0]->str;
    struct echan *c = echan_get(e, r->element[1]->str + plen, false);
    if (c == NULL)
        return;
    if (strcmp(kind, "message") == 0 && r->element[2]->type == REDIS_REPLY_STRING) {
        on_message(e, c, r->element[2]->str, r->element[2]->len);
    } else if (strcmp(kind, "subscribe") == 0 && c->state == C_SUBSCRIBING) {
        c->state = C_LOADING;
        load_channel(e, c);
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
    each_chan(e, subscribe_wanted);
    update_up(e, "ok");
}

static void mark_unsubscribed(const char *name, void *value, void *arg)
{
    struct echan *c = value;
    (void)name;
    (void)arg;
    buffered_clear(c);
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
    each_chan(e, mark_unsubscribed);
    each_chan(e, free_unwanted);
    sp_log_write(e->push->log, e->sub_was_up ? SP_LOG_WARN : SP_LOG_DEBUG, "redis_connection",
                 "pub/sub: %s; reconnecting in %llu ms", why, (unsigned long long)retry_ms);
    e->sub_was_up = false;
    update_up(e, why);
}

static const struct sp_redis_ops sub_ops = {sub_up, sub_down};

/* ---- waiting --------------------------------------------------------------------------------- */

static bool synced(struct sp_engine *e, const char *name)
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

static void wait_finish(struct sp_engine_wait *w, bool ok)
{
    /* Unpinned only after cb: a subscription made in it keeps the channels. */
    w->cb(w->arg, ok);
    wait_free(w);
}

static void check_waits(struct sp_engine *e)
{
    struct sp_engine_wait *w, *next;

    for (w = LIST_FIRST(&e->waits); w != NULL; w = next) {
        bool all = true;
        next = LIST_NEXT(w, link);
        for (size_t i = 0; i < w->count && all; i++)
            all = synced(e, w->names[i]);
        if (all) {
            wait_finish(w, true);
            next = LIST_FIRST(&e->waits); /* cb may have changed the list */
        }
    }
}

static void on_wait_timeout(evutil_socket_t fd, short what, void *arg)
{
    wait_finish(arg, false);
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
        if (!sp_hub_channel_name_valid(tok, strlen(tok)))
            continue; /* the subscription reports it */
        names[n++] = tok;
        all = all && synced(e, tok);
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
    w->timer = evtimer_new(e->push->base, on_wait_timeout, w);
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

/* ---- publishing --------------------------------------------------------------------------------
 */

static void on_published(redisAsyncContext *ac, void *reply, void *arg)
{
    struct op *op = arg;
    struct sp_engine *e = op->e;
    redisReply *r = reply;
    struct sp_publish_result res = {0};

    if (!reply_is(r, REDIS_REPLY_ARRAY, 5) || r->element[1]->type != REDIS_REPLY_STRING) {
        e->stats.publish_failures++;
        script_failed(e, r);
        op->cb.published(op->arg, SP_HUB_UNAVAILABLE, NULL);
        free(op);
        return;
    }
    snprintf(res.id, sizeof(res.id), "%s", r->element[1]->str);
    res.duplicate = reply_u64(r->element[2]) != 0;
    res.subscribers = (size_t)reply_u64(r->element[3]); /* replicas */
    res.seq = reply_u64(r->element[4]);
    e->push->stats.published += !res.duplicate;
    op->cb.published(op->arg, SP_HUB_OK, &res);
    free(op);
}

int sp_engine_publish(struct sp_engine *e, const struct sp_engine_publish *p,
                      sp_engine_published cb, void *arg)
{
    char seqk[KEY_MAX], epochk[KEY_MAX], streamk[KEY_MAX], metak[KEY_MAX], dedupk[KEY_MAX * 2];
    char chan[KEY_MAX], history[24], ttl[24], meta_ttl[24], fresh[9];
    const char *keys[5] = {seqk, epochk, streamk, metak, dedupk};
    const struct sp_config *cfg = e->push->config;
    char *grip = NULL, *snap = NULL;
    int rc = sp_hub_check(e->push->hub, &p->pub);

    if (rc != SP_HUB_OK)
        return rc;
    if (!sp_redis_is_up(e->cmd) || e->scripts_loaded != S_COUNT || !e->hello_done) {
        e->stats.publish_failures++;
        return SP_HUB_UNAVAILABLE;
    }
    bool dedup = p->pub.dedup_id != NULL && p->pub.dedup_id[0] != '\0';
    key(e, seqk, sizeof(seqk), "seq", NULL);
    key(e, epochk, sizeof(epochk), "epoch", NULL);
    key(e, streamk, sizeof(streamk), "s:", p->pub.channel);
    key(e, metak, sizeof(metak), "m:", p->pub.channel);
    key(e, chan, sizeof(chan), "c:", p->pub.channel);
    if (dedup) {
        char digest[SP_SHA256_HEX];
        sp_sha256_hex(p->pub.dedup_id, strlen(p->pub.dedup_id), digest);
        snprintf(dedupk, sizeof(dedupk), "%sd:%s:%s", e->prefix, p->pub.channel, digest);
    }
    snprintf(history, sizeof(history), "%" PRIu64, cfg->channels.history);
    snprintf(ttl, sizeof(ttl), "%" PRIu64, cfg->channels.history_ttl_ms);
    snprintf(meta_ttl, sizeof(meta_ttl), "%" PRIu64, cfg->channels.history_ttl_ms + META_EXTRA_MS);
    fresh_epoch(fresh);
    if (p->pub.grip != NULL)
        grip = json_dumps(p->pub.grip, JSON_COMPACT);
    size_t snap_len = p->snapshot == SP_SNAPSHOT_DATA ? p->snapshot_len + 1 : 1;
    snap = malloc(snap_len);
    struct op *op = calloc(1, sizeof(*op));
    rc = SP_HUB_NO_MEMORY;
    if (snap == NULL || op == NULL || (p->pub.grip != NULL && grip == NULL))
        goto done;
    snap[0] = p->snapshot == SP_SNAPSHOT_DATA ? '+' : p->snapshot == SP_SNAPSHOT_SELF ? '=' : '-';
    if (p->snapshot == SP_SNAPSHOT_DATA && p->snapshot_len)
        memcpy(snap + 1, p->snapshot_data, p->snapshot_len);
    const char *event = p->pub.event ? p->pub.event : "";
    const char *args[9] = {
        chan, event,   p->pub.data ? p->pub.data : "", history, ttl, fresh, grip ? grip : "",
        snap, meta_ttl};
    size_t lens[9] = {
        strlen(chan),  strlen(event),           p->pub.len, strlen(history), strlen(ttl),
        strlen(fresh), grip ? strlen(grip) : 0, snap_len,   strlen(meta_ttl)};
    op->e = e;
    op->cb.published = cb;
    op->arg = arg;
    if (eval(e, S_PUBLISH, on_published, op, dedup ? 5 : 4, keys, 9, args, lens) < 0) {
        e->stats.publish_failures++;
        rc = SP_HUB_UNAVAILABLE;
        goto done;
    }
    op = NULL;
    rc = SP_HUB_OK;
done:
    free(op);
    free(grip);
    free(snap);
    return rc;
}

/* ---- channel administration ----------------------------------------------------------------- */

static void format_id(const char *epoch, const redisReply *seq, char out[SP_MSG_ID_MAX])
{
    out[0] = '\0';
    if (seq->type == REDIS_REPLY_STRING && seq->len > 0)
        snprintf(out, SP_MSG_ID_MAX, "%s-%s", epoch, seq->str);
}

static void on_info(redisAsyncContext *ac, void *reply, void *arg)
{
    struct op *op = arg;
    redisReply *r = reply;
    struct sp_engine_channel info = {.rc = SP_HUB_UNAVAILABLE};

    if (reply_is(r, REDIS_REPLY_ARRAY, 4) && r->element[1]->type == REDIS_REPLY_STRING) {
        info.messages = (size_t)reply_u64(r->element[0]);
        info.rc = SP_HUB_OK;
        format_id(r->element[1]->str, r->element[2], info.first_id);
        format_id(r->element[1]->str, r->element[3], info.last_id);
    } else {
        script_failed(op->e, r);
    }
    op->cb.channel_done(op->arg, &info);
    free(op);
}

static void on_deleted(redisAsyncContext *ac, void *reply, void *arg)
{
    struct op *op = arg;
    redisReply *r = reply;
    struct sp_engine_channel info = {.rc = SP_HUB_UNAVAILABLE};

    if (reply_is(r, REDIS_REPLY_ARRAY, 2)) {
        info.rc = reply_u64(r->element[0]) ? SP_HUB_OK : SP_HUB_NO_CHANNEL;
        info.replicas = (size_t)reply_u64(r->element[1]);
    } else {
        script_failed(op->e, r);
    }
    op->cb.channel_done(op->arg, &info);
    free(op);
}

static int channel_op(struct sp_engine *e, enum script s, const char *channel,
                      sp_engine_channel_done cb, void *arg)
{
    char streamk[KEY_MAX], second[KEY_MAX], chan[KEY_MAX], meta_ttl[24];
    const char *keys[2] = {streamk, second};
    const char *args[2] = {chan, meta_ttl};
    struct op *op = calloc(1, sizeof(*op));

    if (op == NULL)
        return SP_HUB_NO_MEMORY;
    *op = (struct op){.e = e, .arg = arg};
    op->cb.channel_done = cb;
    key(e, streamk, sizeof(streamk), "s:", channel);
    key(e, chan, sizeof(chan), "c:", channel);
    if (s == S_INFO)
        key(e, second, sizeof(second), "epoch", NULL);
    else
        key(e, second, sizeof(second), "m:", channel);
    snprintf(meta_ttl, sizeof(meta_ttl), "%" PRIu64,
             e->push->config->channels.history_ttl_ms + META_EXTRA_MS);
    if (eval(e, s, s == S_INFO ? on_info : on_deleted, op, 2, keys, s == S_INFO ? 0 : 2, args,
             NULL) < 0) {
        free(op);
        return SP_HUB_UNAVAILABLE;
    }
    return SP_HUB_OK;
}

int sp_engine_channel_info(struct sp_engine *e, const char *channel, sp_engine_channel_done cb,
                           void *arg)
{
    return channel_op(e, S_INFO, channel, cb, arg);
}

int sp_engine_channel_delete(struct sp_engine *e, const char *channel, sp_engine_channel_done cb,
                             void *arg)
{
    return channel_op(e, S_DELETE, channel, cb, arg);
}

/* ---- poll leases ------------------------------------------------------------------------------
 */

static void on_lease(redisAsyncContext *ac, void *reply, void *arg)
{
    struct op *op = arg;
    redisReply *r = reply;
    struct sp_engine_poll_state st = {0};
    bool held = reply_is(r, REDIS_REPLY_ARRAY, 2) && reply_u64(r->element[0]) == 1;
    bool fresh = held && reply_u64(r->element[1]) == 1;

    if (r != NULL && r->type == REDIS_REPLY_ERROR)
        script_failed(op->e, r);
    if (fresh && r->elements >= 3 && r->element[2]->type == REDIS_REPLY_ARRAY) {
        const redisReply *f = r->element[2];
        struct sp_slice v;
        if ((v = field(f, "etag")).len)
            st.etag = v.ptr;
        if ((v = field(f, "last_modified")).len)
            st.last_modified = v.ptr;
        if ((v = field(f, "hash")).len == 32)
            st.hash = (const unsigned char *)v.ptr;
        if ((v = field(f, "body")).len || st.hash)
            st.body = v.ptr, st.body_len = v.len;
    }
    op->cb.leased(op->arg, op->channel, held, fresh, &st);
    free(op);
}

int sp_engine_lease(struct sp_engine *e, const char *channel, sp_engine_leased cb, void *arg)
{
    char leasek[KEY_MAX], statek[KEY_MAX], ms[24];
    const char *keys[2] = {leasek, statek};
    const char *args[2] = {e->replica, ms};
    struct op *op = calloc(1, sizeof(*op));

    if (op == NULL)
        return -1;
    *op = (struct op){.e = e, .arg = arg};
    op->cb.leased = cb;
    snprintf(op->channel, sizeof(op->channel), "%s", channel);
    key(e, leasek, sizeof(leasek), "lease:", channel);
    key(e, statek, sizeof(statek), "poll:", channel);
    snprintf(ms, sizeof(ms), "%" PRIu64, e->poll_lease_ms);
    if (eval(e, S_LEASE, on_lease, op, 2, keys, 2, args, NULL) < 0) {
        free(op);
        return -1;
    }
    return 0;
}

void sp_engine_release(struct sp_engine *e, const char *channel)
{
    char leasek[KEY_MAX];
    const char *keys[1] = {leasek};
    const char *args[1] = {e->replica};

    key(e, leasek, sizeof(leasek), "lease:", channel);
    eval(e, S_RELEASE, NULL, NULL, 1, keys, 1, args, NULL);
}

void sp_engine_save_poll_state(struct sp_engine *e, const char *channel,
                               const struct sp_engine_poll_state *st)
{
    char statek[KEY_MAX], ms[24];
    const char *argv[10] = {"HSET",          statek,
                            "etag",          st->etag ? st->etag : "",
                            "last_modified", st->last_modified ? st->last_modified : "",
                            "hash",          (const char *)st->hash,
                            "body",          st->body ? st->body : ""};
    size_t lens[10] = {4,  0,
                       4,  strlen(argv[3]),
                       13, strlen(argv[5]),
                       4,  st->hash ? 32 : 0,
                       4,  st->body ? st->body_len : 0};
    const char *expire[3] = {"PEXPIRE", statek, ms};

    if (!sp_redis_is_up(e->cmd) || st->hash == NULL)
        return;
    key(e, statek, sizeof(statek), "poll:", channel);
    lens[1] = strlen(statek);
    snprintf(ms, sizeof(ms), "%" PRIu64, e->push->config->channels.history_ttl_ms + META_EXTRA_MS);
    sp_redis_command(e->cmd, NULL, NULL, 10, argv, lens);
    sp_redis_command(e->cmd, NULL, NULL, 3, expire, NULL);
}

/* ---- signed webhook ids ---------------------------------------------------------------------- */

static void on_claimed(redisAsyncContext *ac, void *reply, void *arg)
{
    struct op *op = arg;
    redisReply *r = reply;

    if (r != NULL && r->type == REDIS_REPLY_NIL)
        op->cb.claimed(op->arg, SP_HUB_OK, NULL);
    else if (r != NULL && r->type == REDIS_REPLY_STRING)
        op->cb.claimed(op->arg, SP_HUB_OK, r->str);
    else {
        if (r != NULL && r->type == REDIS_REPLY_ERROR)
            sp_log_error(op->e->push->log, "redis_error", "SET NX GET (Redis 7 needed): %s",
                         r->str);
        op->cb.claimed(op->arg, SP_HUB_UNAVAILABLE, NULL);
    }
    free(op);
}

int sp_engine_claim(struct sp_engine *e, const char *k, const char *value, uint64_t ttl_ms,
                    sp_engine_claimed cb, void *arg)
{
    char keyk[KEY_MAX], ms[24];
    struct op *op = calloc(1, sizeof(*op));

    if (op == NULL || !sp_redis_is_up(e->cmd) || key(e, keyk, sizeof(keyk), "w:", k) < 0) {
        free(op);
        return SP_HUB_UNAVAILABLE;
    }
    *op = (struct op){.e = e, .arg = arg};
    op->cb.claimed = cb;
    snprintf(ms, sizeof(ms), "%" PRIu64, ttl_ms > 0 ? ttl_ms : 1);
    const char *argv[7] = {"SET", keyk, value, "NX", "PX", ms, "GET"};
    if (sp_redis_command(e->cmd, on_claimed, op, 7, argv, NULL) < 0) {
        free(op);
        return SP_HUB_UNAVAILABLE;
    }
    return SP_HUB_OK;
}

/* ---- lifecycle ----------------------------------------------------------------------------------
 */

bool sp_engine_up(const struct sp_engine *e)
{
    return e != NULL && e->up;
}

bool sp_engine_ready_for_traffic(const struct sp_engine *e)
{
    return e->up || !e->required_for_ready;
}

uint64_t sp_engine_lease_ms(const struct sp_engine *e)
{
    return e->poll_lease_ms;
}

struct sp_engine *sp_engine_new(struct sp_push *push)
{
    const struct sp_config *cfg = push->config;
    struct sp_engine *e = calloc(1, sizeof(*e));
    struct sp_redis_options opts = {
        .host = cfg->redis.host,
        .port = cfg->redis.port,
        .username = cfg->redis.username,
        .password = cfg->redis.password,
        .database = (unsigned)cfg->redis.database,
        .connect_timeout_ms = cfg->redis.connect_timeout_ms,
        .timeout_ms = cfg->redis.timeout_ms,
        .reconnect_max_ms = cfg->redis.reconnect_max_ms,
    };

    if (e == NULL)
        return NULL;
    e->push = push;
    e->cmd_was_up = e->sub_was_up = true; /* a first failure to connect is worth a warning */
    LIST_INIT(&e->waits);
    snprintf(e->replica, sizeof(e->replica), "%08x%08x", sp_random(), sp_random());
    e->prefix = strdup(cfg->redis.key_prefix);
    e->subscribe_wait_ms = cfg->redis.subscribe_wait_ms;
    e->poll_lease_ms = cfg->redis.poll_lease_ms;
    e->required_for_ready = cfg->redis.required_for_ready;
    e->chans = sp_hmap_new();
    e->dns = evdns_base_new(push->base, EVDNS_BASE_INITIALIZE_NAMESERVERS);
    if (e->dns == NULL) /* no resolv.conf: numeric addresses and /etc/hosts still work */
        e->dns = evdns_base_new(push->base, 0);
    if (e->prefix == NULL || e->chans == NULL || e->dns == NULL)
        goto fail;
    opts.ping = true; /* notices a Redis that stopped answering */
    e->cmd = sp_redis_new(push->base, e->dns, &opts, &cmd_ops, e);
    opts.ping = false; /* a subscribed connection takes no PING in RESP2 hiredis */
    e->sub = sp_redis_new(push->base, e->dns, &opts, &sub_ops, e);
    if (e->cmd == NULL || e->sub == NULL)
        goto fail;
    return e;
fail:
    sp_engine_free(e);
    return NULL;
}

static void free_chan(const char *name, void *value, void *arg)
{
    struct echan *c = value;
    (void)name;
    (void)arg;
    if (c->linger)
        event_free(c->linger);
    buffered_clear(c);
    free(c->name);
    free(c);
}

void sp_engine_free(struct sp_engine *e)
{
    if (e == NULL)
        return;
    while (!LIST_EMPTY(&e->waits))
        wait_finish(LIST_FIRST(&e->waits), false);
    /* Callbacks in flight run now with no reply, while e is whole. */
    sp_redis_free(e->cmd);
    sp_redis_free(e->sub);
    e->cmd = e->sub = NULL;
    e->freeing = true;
    if (e->chans)
        sp_hmap_each(e->chans, free_chan, NULL);
    sp_hmap_free(e->chans);
    if (e->dns)
        evdns_base_free(e->dns, 1);
    free(e->prefix);
    free(e);
}

/* ---- metrics -------------------------------------------------------------------------------- */

static void count_subscribed(const char *name, void *value, void *arg)
{
    const struct echan *c = value;
    (void)name;
    *(size_t *)arg += c->state == C_SYNCED;
}

void sp_engine_metrics(const struct sp_engine *e, struct evbuffer *out)
{
    const struct engine_stats *st = &e->stats;
    size_t subscribed = 0;

    sp_hmap_each(e->chans, count_subscribed, &subscribed);
    sp_metric_one(out, "sidepush_redis_up", "gauge",
                  "1 while both Redis connections are ready, else 0.", e->up ? 1 : 0);
    sp_metric_head(out, "sidepush_redis_transitions_total", "counter",
                   "Changes of sidepush_redis_up, by new state.");
    sp_metric_value(out, "sidepush_redis_transitions_total", "to=\"up\"",
                    (double)st->up_transitions);
    sp_metric_value(out, "sidepush_redis_transitions_total", "to=\"down\"",
                    (double)st->down_transitions);
    sp_metric_head(out, "sidepush_redis_connections_total", "counter",
                   "Redis connections made and lost, by connection.");
    sp_metric_value(out, "sidepush_redis_connections_total", "conn=\"commands\",event=\"made\"",
                    (double)sp_redis_connects(e->cmd));
    sp_metric_value(out, "sidepush_redis_connections_total", "conn=\"commands\",event=\"lost\"",
                    (double)sp_redis_losses(e->cmd));
    sp_metric_value(out, "sidepush_redis_connections_total", "conn=\"pubsub\",event=\"made\"",
                    (double)sp_redis_connects(e->sub));
    sp_metric_value(out, "sidepush_redis_connections_total", "conn=\"pubsub\",event=\"lost\"",
                    (double)sp_redis_losses(e->sub));
    sp_metric_one(out, "sidepush_redis_publish_failures_total", "counter",
                  "Publishes refused with 503 because Redis was unavailable.",
                  (double)st->publish_failures);
    sp_metric_head(out, "sidepush_redis_channel_loads_total", "counter",
                   "Channel streams read from Redis, by reason.");
    sp_metric_value(out, "sidepush_redis_channel_loads_total", "reason=\"subscribe\"",
                    (double)(st->loads - st->resyncs));
    sp_metric_value(out, "sidepush_redis_channel_loads_total", "reason=\"resync\"",
                    (double)st->resyncs);
    sp_metric_one(out, "sidepush_redis_epoch_changes_total", "counter",
                  "Times Redis was found to have lost its data (a new epoch).",
                  (double)st->epoch_changes);
    sp_metric_one(out, "sidepush_redis_channels", "gauge",
                  "Channels this replica is subscribed to in Redis and in step with.",
                  (double)subscribed);
}
