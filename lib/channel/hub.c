#include "channel/hub.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "core/cache.h"
#include "core/clock.h"
#include "core/digest.h"
#include "core/hmap.h"
#include "net/mailbox.h"

#define DEDUP_MAX 100000
#define SWEEP_MS 1000

#include "channel/hub-internal.h"

const char *sp_hub_error_text(int err)
{
    switch (err) {
    case SP_HUB_BAD_CHANNEL:
        return "invalid channel name (1-256 of A-Z a-z 0-9 _ . : @ ~ = + -)";
    case SP_HUB_TOO_BIG:
        return "message is larger than the channel's max_message_size (channels, or the route's "
               "subscribe.channels)";
    case SP_HUB_BAD_EVENT:
        return "invalid event name (1-128 printable ASCII characters, no ':')";
    case SP_HUB_NO_MEMORY:
        return "out of memory";
    case SP_HUB_NO_CHANNEL:
        return "no such channel";
    case SP_HUB_UNAVAILABLE:
        return "the push engine (Redis) is unavailable; nothing was published, retry later";
    case SP_HUB_NOT_REPLICATED:
        return "stored by the Redis primary, but not by redis.wait_replicas replicas in time: a "
               "failover now could lose it; retry with the same id";
    case SP_HUB_USER_FULL:
        return "too many connections for this user (limits.max_connections_per_user)";
    default:
        return "ok";
    }
}

bool sp_hub_channel_name_valid(const char *name, size_t len)
{
    if (len == 0 || len > SP_CHANNEL_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        /* A leading '#': Pusher's reserved names (#server-to-user-{id}),
         * which no URL path can carry. */
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  (c != '\0' && strchr("_.:@~=+-", c) != NULL) || (c == '#' && i == 0);
        if (!ok)
            return false;
    }
    return true;
}

static bool event_name_valid(const char *e)
{
    size_t len = strlen(e);
    if (len == 0 || len > 128)
        return false;
    for (size_t i = 0; i < len; i++) {
        if (e[i] <= 0x20 || e[i] >= 0x7f || e[i] == ':')
            return false;
    }
    return true;
}

static void format_id(const struct sp_hub *hub, uint64_t seq, char out[SP_MSG_ID_MAX])
{
    snprintf(out, SP_MSG_ID_MAX, "%s-%" PRIu64, hub->epoch, seq);
}

void sp_hub_format_id(const struct sp_hub *hub, uint64_t seq, char out[SP_MSG_ID_MAX])
{
    hub_lock(hub);
    format_id(hub, seq, out);
    hub_unlock(hub);
}

/* ---- channels (under the lock) ---------------------------------------------------------- */

/* 1 + the first class whose names make name, or 0 for none. */
static unsigned class_of(const struct sp_hub *hub, const char *name)
{
    struct sp_slice caps[SP_TMPL_MAX_CAPTURES];
    size_t len = strlen(name);

    for (size_t i = 0; i < hub->nclasses; i++)
        if (hub->classes[i].names != NULL && sp_tmpl_match(hub->classes[i].names, name, len, caps))
            return (unsigned)i + 1;
    return 0;
}

static const struct sp_hub_options *class_options(const struct sp_hub *hub, unsigned c)
{
    return c > 0 ? &hub->classes[c - 1].opts : &hub->opts;
}

const struct sp_hub_options *hub_options_of(const struct sp_hub *hub, const struct sp_channel *ch)
{
    return class_options(hub, ch->flags >> CH_CLASS_SHIFT);
}

/* The options a channel named name has, whether it exists or not. */
static const struct sp_hub_options *options_for(const struct sp_hub *hub, const char *name)
{
    const struct sp_channel *ch = sp_hmap_get(hub->channels, name);
    return ch ? hub_options_of(hub, ch) : class_options(hub, class_of(hub, name));
}

struct sp_msg *hub_ring_at(const struct sp_channel *ch, size_t i)
{
    return ch->ring[(ch->head + i) % ch->len];
}

static void drop_oldest(struct sp_channel *ch)
{
    struct sp_msg *m = ch->ring[ch->head];
    ch->floor = sp_msg_seq(m);
    ch->flags &= ~CH_BIRTH_FLOOR;
    sp_msg_unref(m);
    ch->ring[ch->head] = NULL;
    ch->head = (ch->head + 1) % ch->len;
    ch->count--;
}

static void channel_free(struct sp_channel *ch)
{
    while (ch->count > 0)
        drop_oldest(ch);
    sp_msg_unref(ch->snapshot);
    free(ch->ring);
    free(ch);
}

struct sp_channel *hub_channel_get(struct sp_hub *hub, const char *name, bool create)
{
    struct sp_channel *ch = sp_hmap_get(hub->channels, name);

    if (ch != NULL || !create)
        return ch;
    size_t name_len = strlen(name);
    size_t counts = hub->nports * sizeof(uint32_t);
    ch = calloc(1, sizeof(*ch) + counts + name_len + 1);
    if (ch == NULL)
        return NULL;
    char *stored = (char *)ch->counts + counts;
    memcpy(stored, name, name_len + 1);
    ch->name = stored;
    unsigned cls = class_of(hub, name);
    const struct sp_hub_options *o = class_options(hub, cls);
    ch->cap = o->last_value ? 1 : (uint32_t)o->history;
    /* Nothing is known of what this channel carried before it existed. */
    ch->floor = hub->seq;
    ch->flags = CH_BIRTH_FLOOR | cls << CH_CLASS_SHIFT;
    if (name_len > 0 && name[name_len - 1] == '*') {
        ch->cap = 0;
        if (hub_pattern_add(hub, ch) < 0) {
            channel_free(ch);
            return NULL;
        }
    }
    if (sp_hmap_put(hub->channels, ch->name, ch) < 0) {
        hub_pattern_remove(hub, ch);
        channel_free(ch);
        return NULL;
    }
    return ch;
}

void hub_channel_maybe_remove(struct sp_hub *hub, struct sp_channel *ch)
{
    if (ch->nsubs == 0 && ch->count == 0) {
        sp_hmap_del(hub->channels, ch->name);
        hub_pattern_remove(hub, ch);
        channel_free(ch);
    }
}

void hub_forget_history(struct sp_channel *ch)
{
    while (ch->count > 0)
        drop_oldest(ch);
    ch->floor = 0;
    sp_msg_unref(ch->snapshot);
    ch->snapshot = NULL;
}

/* ---- expiry ------------------------------------------------------------------------ */

struct sweep {
    struct sp_hub *hub;
    uint64_t now;
};

static void sweep_channel(const char *key, void *value, void *arg)
{
    struct sweep *s = arg;
    struct sp_channel *ch = value;

    (void)key;
    uint64_t ttl = hub_options_of(s->hub, ch)->history_ttl_ms;

    while (ch->count > 0 && sp_msg_created(hub_ring_at(ch, 0)) + ttl <= s->now)
        drop_oldest(ch);
    hub_channel_maybe_remove(s->hub, ch);
}

static void sweep(evutil_socket_t fd, short what, void *arg)
{
    struct sp_hub *hub = arg;
    struct sweep s = {hub, sp_now_ms()};

    hub_lock(hub);
    sp_hmap_each(hub->channels, sweep_channel, &s);
    sp_cache_expire(hub->dedup, s.now);
    hub_unlock(hub);
}

/* ---- hub ----------------------------------------------------------------------------- */

struct sp_hub *sp_hub_new(struct event_base *base, const struct sp_hub_options *opts,
                          unsigned nports)
{
    struct sp_hub *hub = calloc(1, sizeof(*hub));

    if (hub == NULL)
        return NULL;
    if (pthread_mutex_init(&hub->lock, NULL) != 0) {
        free(hub);
        return NULL;
    }
    hub->opts = *opts;
    hub->nports = nports ? nports : 1;
    sp_random_base36(hub->epoch, 8);
    hub->ports = calloc(hub->nports, sizeof(*hub->ports));
    hub->channels = sp_hmap_new();
    hub->patterns = sp_hmap_new();
    hub->dedup = sp_cache_new(DEDUP_MAX);
    hub->sweeper = event_new(base, -1, EV_PERSIST, sweep, hub);
    struct timeval tv = sp_timeval_ms(SWEEP_MS);
    if (hub->ports == NULL || hub->channels == NULL || hub->patterns == NULL ||
        hub->dedup == NULL || hub->sweeper == NULL || event_add(hub->sweeper, &tv) < 0) {
        sp_hub_free(hub);
        return NULL;
    }
    return hub;
}

static void free_channel_entry(const char *key, void *value, void *hub)
{
    (void)key;
    channel_free(value);
}

void sp_hub_free(struct sp_hub *hub)
{
    if (hub == NULL)
        return;
    if (hub->sweeper)
        event_free(hub->sweeper);
    if (hub->channels)
        sp_hmap_each(hub->channels, free_channel_entry, hub);
    sp_hmap_free(hub->channels);
    hub_patterns_free(hub);
    for (size_t i = 0; i < hub->nclasses; i++)
        sp_tmpl_free(hub->classes[i].names);
    free(hub->classes);
    sp_cache_free(hub->dedup);
    free(hub->ports);
    pthread_mutex_destroy(&hub->lock);
    free(hub);
}

struct each_occupied {
    const char *prefix;
    size_t prefix_len;
    sp_hub_each_fn fn;
    void *ctx;
};

static void each_occupied(const char *key, void *value, void *arg)
{
    struct each_occupied *e = arg;
    const struct sp_channel *ch = value;

    if (ch->nsubs > 0 && (ch->flags & CH_PATTERN) == 0 &&
        strncmp(key, e->prefix, e->prefix_len) == 0)
        e->fn(e->ctx, key, ch->nsubs);
}

void sp_hub_each_occupied(struct sp_hub *hub, const char *prefix, sp_hub_each_fn fn, void *ctx)
{
    struct each_occupied e = {prefix, strlen(prefix), fn, ctx};

    hub_lock(hub);
    sp_hmap_each(hub->channels, each_occupied, &e);
    hub_unlock(hub);
}

size_t sp_hub_channel_count(const struct sp_hub *hub)
{
    hub_lock(hub);
    size_t n = sp_hmap_count(hub->channels);
    hub_unlock(hub);
    return n;
}

/* ---- ports ---------------------------------------------------------------------------- */

struct sp_hub_port *sp_hub_port_new(struct sp_hub *hub, unsigned index, struct sp_mailbox *mailbox)
{
    struct sp_hub_port *port = calloc(1, sizeof(*port));

    if (port == NULL || index >= hub->nports)
        goto fail;
    *port = (struct sp_hub_port){hub, index, mailbox, sp_hmap_new()};
    if (port->locals == NULL)
        goto fail;
    hub_lock(hub);
    hub->ports[index] = port;
    hub_unlock(hub);
    return port;
fail:
    free(port);
    return NULL;
}

void sp_hub_port_free(struct sp_hub_port *port)
{
    if (port == NULL)
        return;
    hub_lock(port->hub);
    port->hub->ports[port->index] = NULL;
    hub_unlock(port->hub);
    sp_hmap_free(port->locals); /* empty: every subscriber has unsubscribed */
    free(port);
}

static void local_maybe_remove(struct sp_hub_port *port, struct sp_hub_local *l)
{
    if (TAILQ_EMPTY(&l->subs) && l->busy == 0) {
        sp_hmap_del(port->locals, l->name);
        free(l);
    }
}

static void delivery_drop(struct sp_mail *mail)
{
    struct delivery *d = (struct delivery *)mail;
    sp_msg_unref(d->msg);
    free(d);
}

/* Hands m to every subscriber of l that does not have it yet. */
static void fan_out(struct sp_hub_local *l, struct sp_msg *m, uint64_t serial)
{
    struct sp_sub *sub, *next;

    l->busy++;
    for (sub = TAILQ_FIRST(&l->subs); sub != NULL; sub = next) {
        next = TAILQ_NEXT(sub, link); /* deliver may unsubscribe sub (itself only) */
        if (sub->seen >= serial)
            continue;
        sub->seen = serial;
        sub->ops->deliver(sub, m);
    }
    l->busy--;
}

static void watch_changed(struct sp_hub_port *port, const char *channel, size_t count)
{
    hub_lock(port->hub);
    sp_hub_watch watch = port->hub->watch;
    void *ctx = port->hub->watch_ctx;
    hub_unlock(port->hub);
    if (watch)
        watch(ctx, port->index, channel, count);
}

/* A deletion: the subscribers from before it are unlinked, counted out
 * of the channel, then told. */
static void end_subscribers(struct sp_hub_port *port, struct sp_hub_local *l, uint64_t serial)
{
    struct sp_hub *hub = port->hub;
    struct sub_list ended = TAILQ_HEAD_INITIALIZER(ended);
    struct sp_sub *sub, *next;
    uint32_t n = 0;

    for (sub = TAILQ_FIRST(&l->subs); sub != NULL; sub = next) {
        next = TAILQ_NEXT(sub, link);
        if (sub->seen >= serial)
            continue;
        TAILQ_REMOVE(&l->subs, sub, link);
        TAILQ_INSERT_TAIL(&ended, sub, link);
        sub->local = NULL;
        n++;
    }
    if (n == 0)
        return;
    hub_lock(hub);
    struct sp_channel *ch = l->shared;
    ch->counts[port->index] -= n;
    ch->nsubs -= n;
    size_t left = ch->nsubs;
    hub_channel_maybe_remove(hub, ch);
    hub_unlock(hub);
    if (left == 0)
        watch_changed(port, l->name, 0);
    local_maybe_remove(port, l);
    while ((sub = TAILQ_FIRST(&ended)) != NULL) {
        TAILQ_REMOVE(&ended, sub, link);
        sub->ops->deleted(sub);
    }
}

static void delivery_run(struct sp_mail *mail)
{
    struct delivery *d = (struct delivery *)mail;
    const char *channel = d->named ? d->channel : sp_msg_channel(d->msg);
    struct sp_hub_local *l = sp_hmap_get(d->port->locals, channel);

    if (l != NULL && d->msg != NULL) {
        fan_out(l, d->msg, d->serial);
        local_maybe_remove(d->port, l);
    } else if (l != NULL) {
        end_subscribers(d->port, l, d->serial);
    }
    delivery_drop(mail);
}

/* Under the lock, so that each port gets a channel's mail in serial order:
 * one more serial for ch, mailed to every port with subscribers on it. */
void hub_mail_ports(struct sp_hub *hub, struct sp_channel *ch, struct sp_msg *m)
{
    /* A deletion, or a message for a pattern's subscribers, names the
     * entry it is for. */
    bool named = m == NULL || (ch->flags & CH_PATTERN);

    ch->serial++;
    for (unsigned i = 0; i < hub->nports; i++) {
        if (ch->counts[i] == 0 || hub->ports[i] == NULL)
            continue;
        size_t extra = named ? strlen(ch->name) + 1 : 0;
        struct delivery *d = malloc(sizeof(*d) + extra);
        if (d == NULL)
            continue; /* out of memory: that worker's subscribers resume from history */
        *d = (struct delivery){.port = hub->ports[i],
                               .msg = m ? sp_msg_ref(m) : NULL,
                               .serial = ch->serial,
                               .named = named};
        if (named)
            memcpy(d->channel, ch->name, extra);
        sp_mailbox_post(hub->ports[i]->mailbox, &d->mail, delivery_run, delivery_drop);
    }
}

/* ---- publishing ---------------------------------------------------------------------- */

/* The first id published under dedup_id in channel, or NULL; key is
 * filled for dedup_remember. Ids of any length count whole: a digest,
 * never a truncated copy. */
static const char *dedup_find(struct sp_hub *hub, const char *channel, const char *dedup_id,
                              char *key, size_t keylen)
{
    char digest[SP_SHA256_HEX];

    sp_sha256_hex(dedup_id, strlen(dedup_id), digest);
    snprintf(key, keylen, "%s\n%s", channel, digest);
    return sp_cache_get(hub->dedup, key, sp_now_ms(), NULL);
}

/* Out of memory: only de-duplication is lost. Past DEDUP_MAX the oldest
 * id is forgotten. */
static void dedup_remember(struct sp_hub *hub, const struct sp_channel *ch, const char *key,
                           const char *msg_id)
{
    uint64_t now = sp_now_ms();

    sp_cache_put(hub->dedup, key, msg_id, strlen(msg_id) + 1,
                 now + hub_options_of(hub, ch)->history_ttl_ms, now, true);
}

/* Doubles the ring (4 slots first, at most cap), oldest first at 0. */
static int ring_grow(struct sp_channel *ch)
{
    uint32_t len = ch->len ? ch->len * 2 : 4;
    if (len > ch->cap)
        len = ch->cap;
    struct sp_msg **ring = malloc(len * sizeof(*ring));

    if (ring == NULL)
        return -1;
    for (uint32_t i = 0; i < ch->count; i++)
        ring[i] = ch->ring[(ch->head + i) % ch->len];
    free(ch->ring);
    ch->ring = ring;
    ch->len = len;
    ch->head = 0;
    return 0;
}

void hub_store(struct sp_channel *ch, struct sp_msg *m)
{
    if (ch->cap == 0) {
        ch->floor = sp_msg_seq(m);
        ch->flags &= ~CH_BIRTH_FLOOR;
        return;
    }
    /* Out of memory to grow: the oldest message makes room (history is
     * shorter, and its floor says so). */
    if (ch->count == ch->len && (ch->len == ch->cap || ring_grow(ch) < 0) && ch->count > 0)
        drop_oldest(ch);
    if (ch->len == 0) {
        ch->floor = sp_msg_seq(m);
        ch->flags &= ~CH_BIRTH_FLOOR;
        return;
    }
    ch->ring[(ch->head + ch->count) % ch->len] = sp_msg_ref(m);
    ch->count++;
}

static int check(const struct sp_hub *hub, const struct sp_publish *p)
{
    if (!sp_hub_channel_name_valid(p->channel, strlen(p->channel)))
        return SP_HUB_BAD_CHANNEL;
    if (p->len > options_for(hub, p->channel)->max_message_size)
        return SP_HUB_TOO_BIG;
    if (p->event != NULL && p->event[0] != '\0' && !event_name_valid(p->event))
        return SP_HUB_BAD_EVENT;
    return SP_HUB_OK;
}

int sp_hub_check(const struct sp_hub *hub, const struct sp_publish *p)
{
    hub_lock(hub);
    int rc = check(hub, p);
    hub_unlock(hub);
    return rc;
}

static int publish(struct sp_hub *hub, const struct sp_publish *p, struct sp_publish_result *res)
{
    char key[SP_CHANNEL_MAX + 512];
    char id[SP_MSG_ID_MAX];
    int rc = check(hub, p);

    if (rc != SP_HUB_OK)
        return rc;
    if (p->dedup_id != NULL && p->dedup_id[0] != '\0') {
        const char *first = dedup_find(hub, p->channel, p->dedup_id, key, sizeof(key));
        if (first != NULL) {
            memset(res, 0, sizeof(*res));
            snprintf(res->id, sizeof(res->id), "%s", first);
            res->duplicate = true;
            return SP_HUB_OK;
        }
    }
    struct sp_channel *ch = hub_channel_get(hub, p->channel, true);
    if (ch == NULL)
        return SP_HUB_NO_MEMORY;
    format_id(hub, hub->seq + 1, id);
    struct sp_msg *m =
        sp_msg_new(p->channel, hub->seq + 1, id, p->event, p->data, p->len, sp_now_ms());
    if (m != NULL && sp_msg_set_origin(m, p->origin) < 0) {
        sp_msg_unref(m);
        m = NULL;
    }
    if (m == NULL) {
        hub_channel_maybe_remove(hub, ch);
        return SP_HUB_NO_MEMORY;
    }
    hub->seq++;
    if (p->grip != NULL)
        sp_msg_set_grip(m, p->grip);
    hub_store(ch, m);
    if (p->dedup_id != NULL && p->dedup_id[0] != '\0')
        dedup_remember(hub, ch, key, id);
    memset(res, 0, sizeof(*res));
    snprintf(res->id, sizeof(res->id), "%s", id);
    res->seq = sp_msg_seq(m);
    res->subscribers = ch->nsubs;
    hub_mail_ports(hub, ch, m);
    res->subscribers += hub_mail_patterns(hub, m);
    sp_msg_unref(m);
    hub_channel_maybe_remove(hub, ch);
    return SP_HUB_OK;
}

int sp_hub_publish(struct sp_hub *hub, const struct sp_publish *p, struct sp_publish_result *res)
{
    hub_lock(hub);
    int rc = publish(hub, p, res);
    hub_unlock(hub);
    return rc;
}

/* ---- subscribing ----------------------------------------------------------------------- */

int sp_hub_subscribe(struct sp_hub_port *port, struct sp_sub *sub, const char *channel,
                     const struct sp_sub_ops *ops)
{
    struct sp_hub *hub = port->hub;
    struct sp_hub_local *l = sp_hmap_get(port->locals, channel);

    if (!sp_hub_subscription_name_valid(channel, strlen(channel)))
        return SP_HUB_BAD_CHANNEL;
    if (l == NULL) {
        size_t len = strlen(channel);
        l = calloc(1, sizeof(*l) + len + 1);
        if (l == NULL)
            return SP_HUB_NO_MEMORY;
        TAILQ_INIT(&l->subs);
        memcpy(l->name, channel, len + 1);
        if (sp_hmap_put(port->locals, l->name, l) < 0) {
            free(l);
            return SP_HUB_NO_MEMORY;
        }
    }
    hub_lock(hub);
    struct sp_channel *ch = hub_channel_get(hub, channel, true);
    if (ch == NULL) {
        hub_unlock(hub);
        local_maybe_remove(port, l);
        return SP_HUB_NO_MEMORY;
    }
    ch->counts[port->index]++;
    size_t total = ++ch->nsubs;
    sub->seen = ch->serial;
    hub_unlock(hub);
    l->shared = ch;
    sub->local = l;
    sub->ops = ops;
    TAILQ_INSERT_TAIL(&l->subs, sub, link);
    if (total == 1)
        watch_changed(port, channel, total);
    return SP_HUB_OK;
}

void sp_hub_unsubscribe(struct sp_hub_port *port, struct sp_sub *sub)
{
    struct sp_hub *hub = port->hub;
    struct sp_hub_local *l = sub->local;
    char name[SP_CHANNEL_MAX + 1];

    if (l == NULL)
        return;
    TAILQ_REMOVE(&l->subs, sub, link);
    sub->local = NULL;
    hub_lock(hub);
    struct sp_channel *ch = l->shared;
    ch->counts[port->index]--;
    size_t left = --ch->nsubs;
    hub_channel_maybe_remove(hub, ch);
    hub_unlock(hub);
    snprintf(name, sizeof(name), "%s", l->name);
    local_maybe_remove(port, l);
    if (left == 0)
        watch_changed(port, name, 0);
}

size_t sp_hub_subscribers(struct sp_hub *hub, const char *channel)
{
    hub_lock(hub);
    struct sp_channel *ch = hub_channel_get(hub, channel, false);
    size_t n = ch ? ch->nsubs : 0;
    hub_unlock(hub);
    return n;
}

void sp_hub_set_options(struct sp_hub *hub, const struct sp_hub_options *opts)
{
    hub_lock(hub);
    hub->opts = *opts;
    hub_unlock(hub);
}

static void reclass(const char *name, void *value, void *arg)
{
    struct sp_channel *ch = value;

    if ((ch->flags & CH_PATTERN) == 0)
        ch->flags = (ch->flags & ((1u << CH_CLASS_SHIFT) - 1)) | class_of(arg, name)
                                                                     << CH_CLASS_SHIFT;
}

int sp_hub_set_classes(struct sp_hub *hub, const struct sp_hub_class *classes, size_t n)
{
    struct hub_class *made = n ? calloc(n, sizeof(*made)) : NULL, *old;
    char err[256];
    size_t i, nold;

    if (n > 0xffff || (n > 0 && made == NULL)) {
        free(made);
        return -1;
    }
    /* A template that does not compile makes no names. */
    for (i = 0; i < n; i++) {
        made[i].opts = classes[i].opts;
        if (sp_tmpl_compile(classes[i].names, &made[i].names, err, sizeof(err)) < 0)
            made[i].names = NULL;
    }
    hub_lock(hub);
    old = hub->classes;
    nold = hub->nclasses;
    hub->classes = made;
    hub->nclasses = n;
    sp_hmap_each(hub->channels, reclass, hub);
    hub_unlock(hub);
    for (i = 0; i < nold; i++)
        sp_tmpl_free(old[i].names);
    free(old);
    return 0;
}

struct sp_hub_options sp_hub_channel_options(const struct sp_hub *hub, const char *channel)
{
    hub_lock(hub);
    struct sp_hub_options o = *options_for(hub, channel);
    hub_unlock(hub);
    return o;
}

void sp_hub_set_watch(struct sp_hub *hub, sp_hub_watch watch, void *ctx)
{
    hub_lock(hub);
    hub->watch = watch;
    hub->watch_ctx = ctx;
    hub_unlock(hub);
}

void sp_hub_set_snapshot(struct sp_hub *hub, const char *channel, struct sp_msg *msg)
{
    hub_lock(hub);
    struct sp_channel *ch = hub_channel_get(hub, channel, false);
    if (ch != NULL) {
        sp_msg_unref(ch->snapshot);
        ch->snapshot = msg ? sp_msg_ref(msg) : NULL;
    }
    hub_unlock(hub);
}

/* ---- channel administration ------------------------------------------------------------- */

int sp_hub_channel_info(struct sp_hub *hub, const char *channel, struct sp_channel_info *info)
{
    int rc = SP_HUB_OK;

    hub_lock(hub);
    struct sp_channel *ch = hub_channel_get(hub, channel, false);
    if (ch == NULL) {
        rc = SP_HUB_NO_CHANNEL;
        goto done;
    }
    memset(info, 0, sizeof(*info));
    info->subscribers = ch->nsubs;
    info->messages = ch->count;
    if (ch->count > 0) {
        snprintf(info->first_id, sizeof(info->first_id), "%s", sp_msg_id(hub_ring_at(ch, 0)));
        snprintf(info->last_id, sizeof(info->last_id), "%s",
                 sp_msg_id(hub_ring_at(ch, ch->count - 1)));
    }
done:
    hub_unlock(hub);
    return rc;
}

int sp_hub_channel_delete(struct sp_hub *hub, const char *channel)
{
    int closed;

    hub_lock(hub);
    struct sp_channel *ch = hub_channel_get(hub, channel, false);
    if (ch == NULL) {
        hub_unlock(hub);
        return SP_HUB_NO_CHANNEL;
    }
    closed = (int)ch->nsubs;
    hub_forget_history(ch);
    /* Nothing from before the deletion can be had any more. */
    ch->floor = hub->seq;
    ch->flags &= ~CH_BIRTH_FLOOR;
    hub_mail_ports(hub, ch, NULL);
    hub_channel_maybe_remove(hub, ch);
    hub_unlock(hub);
    return closed;
}
