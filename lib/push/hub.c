#include "push/hub.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "core/cache.h"
#include "core/clock.h"
#include "core/digest.h"
#include "core/hmap.h"

#define DEDUP_MAX 100000
#define SWEEP_MS 1000

TAILQ_HEAD(sub_list, sp_sub);

/* Small when idle: a channel of one subscriber that has carried nothing
 * costs this struct with its name inline, and its map entry; the history
 * ring grows with the messages it holds. */
struct sp_channel {
    struct sub_list subs;
    /* History: a ring of the newest messages, oldest at head; len slots
     * allocated, growing by doubling up to cap. */
    struct sp_msg **ring;
    struct sp_msg *snapshot;
    /* Every message of this channel with seq <= floor that is not in the
     * ring is gone: evicted, expired, or from before the channel existed. */
    uint64_t floor;
    uint32_t nsubs;
    uint32_t cap; /* channels.history when the channel was made (a reload may change it) */
    uint32_t len, head, count;
    uint32_t busy; /* inside a fan-out: must not be freed under it */
    char name[];
};

struct sp_hub {
    struct sp_hub_options opts;
    struct sp_hmap *channels;
    /* "<channel>\n<SHA-256 of the dedup id>" -> the first message's id,
     * for channels.history_ttl */
    struct sp_cache *dedup;
    struct event *sweeper;
    sp_hub_watch watch;
    void *watch_ctx;
    uint64_t seq;
    char epoch[16];
};

const char *sp_hub_error_text(int err)
{
    switch (err) {
    case SP_HUB_BAD_CHANNEL:
        return "invalid channel name (1-256 of A-Z a-z 0-9 _ . : @ ~ = + -)";
    case SP_HUB_TOO_BIG:
        return "message is larger than channels.max_message_size";
    case SP_HUB_BAD_EVENT:
        return "invalid event name (1-128 printable ASCII characters, no ':')";
    case SP_HUB_NO_MEMORY:
        return "out of memory";
    case SP_HUB_NO_CHANNEL:
        return "no such channel";
    case SP_HUB_UNAVAILABLE:
        return "the push engine (Redis) is unavailable; nothing was published, retry later";
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
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  (c != '\0' && strchr("_.:@~=+-", c) != NULL);
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

void sp_hub_format_id(const struct sp_hub *hub, uint64_t seq, char out[SP_MSG_ID_MAX])
{
    snprintf(out, SP_MSG_ID_MAX, "%s-%" PRIu64, hub->epoch, seq);
}

/* ---- channels --------------------------------------------------------------------- */

static struct sp_msg *ring_at(const struct sp_hub *hub, const struct sp_channel *ch, size_t i)
{
    (void)hub;
    return ch->ring[(ch->head + i) % ch->len];
}

static void drop_oldest(struct sp_hub *hub, struct sp_channel *ch)
{
    struct sp_msg *m = ch->ring[ch->head];
    ch->floor = sp_msg_seq(m);
    sp_msg_unref(m);
    ch->ring[ch->head] = NULL;
    ch->head = (ch->head + 1) % ch->len;
    ch->count--;
}

static void channel_free(struct sp_hub *hub, struct sp_channel *ch)
{
    while (ch->count > 0)
        drop_oldest(hub, ch);
    sp_msg_unref(ch->snapshot);
    free(ch->ring);
    free(ch);
}

static struct sp_channel *channel_get(struct sp_hub *hub, const char *name, bool create)
{
    struct sp_channel *ch = sp_hmap_get(hub->channels, name);

    if (ch != NULL || !create)
        return ch;
    size_t name_len = strlen(name);
    ch = calloc(1, sizeof(*ch) + name_len + 1);
    if (ch == NULL)
        return NULL;
    TAILQ_INIT(&ch->subs);
    memcpy(ch->name, name, name_len + 1);
    ch->cap = (uint32_t)hub->opts.history;
    /* Nothing is known of what this channel carried before it existed. */
    ch->floor = hub->seq;
    if (sp_hmap_put(hub->channels, ch->name, ch) < 0) {
        channel_free(hub, ch);
        return NULL;
    }
    return ch;
}

static void channel_maybe_remove(struct sp_hub *hub, struct sp_channel *ch)
{
    if (ch->nsubs == 0 && ch->count == 0 && ch->busy == 0) {
        sp_hmap_del(hub->channels, ch->name);
        channel_free(hub, ch);
    }
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
    while (ch->count > 0 &&
           sp_msg_created(ring_at(s->hub, ch, 0)) + s->hub->opts.history_ttl_ms <= s->now)
        drop_oldest(s->hub, ch);
    channel_maybe_remove(s->hub, ch);
}

static void sweep(evutil_socket_t fd, short what, void *arg)
{
    struct sp_hub *hub = arg;
    struct sweep s = {hub, sp_now_ms()};

    sp_hmap_each(hub->channels, sweep_channel, &s);
    sp_cache_expire(hub->dedup, s.now);
}

/* ---- hub ----------------------------------------------------------------------------- */

struct sp_hub *sp_hub_new(struct event_base *base, const struct sp_hub_options *opts)
{
    struct sp_hub *hub = calloc(1, sizeof(*hub));

    if (hub == NULL)
        return NULL;
    hub->opts = *opts;
    sp_random_base36(hub->epoch, 8);
    hub->channels = sp_hmap_new();
    hub->dedup = sp_cache_new(DEDUP_MAX);
    hub->sweeper = event_new(base, -1, EV_PERSIST, sweep, hub);
    struct timeval tv = sp_timeval_ms(SWEEP_MS);
    if (hub->channels == NULL || hub->dedup == NULL || hub->sweeper == NULL ||
        event_add(hub->sweeper, &tv) < 0) {
        sp_hub_free(hub);
        return NULL;
    }
    return hub;
}

static void free_channel_entry(const char *key, void *value, void *hub)
{
    (void)key;
    channel_free(hub, value);
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
    sp_cache_free(hub->dedup);
    free(hub);
}

size_t sp_hub_channel_count(const struct sp_hub *hub)
{
    return sp_hmap_count(hub->channels);
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
static void dedup_remember(struct sp_hub *hub, const char *key, const char *msg_id)
{
    uint64_t now = sp_now_ms();

    sp_cache_put(hub->dedup, key, msg_id, strlen(msg_id) + 1, now + hub->opts.history_ttl_ms, now,
                 true);
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

static void store(struct sp_hub *hub, struct sp_channel *ch, struct sp_msg *m)
{
    if (ch->cap == 0) {
        ch->floor = sp_msg_seq(m);
        return;
    }
    /* Out of memory to grow: the oldest message makes room (history is
     * shorter, and its floor says so). */
    if (ch->count == ch->len && (ch->len == ch->cap || ring_grow(ch) < 0) && ch->count > 0)
        drop_oldest(hub, ch);
    if (ch->len == 0) {
        ch->floor = sp_msg_seq(m);
        return;
    }
    ch->ring[(ch->head + ch->count) % ch->len] = sp_msg_ref(m);
    ch->count++;
}

int sp_hub_check(const struct sp_hub *hub, const struct sp_publish *p)
{
    if (!sp_hub_channel_name_valid(p->channel, strlen(p->channel)))
        return SP_HUB_BAD_CHANNEL;
    if (p->len > hub->opts.max_message_size)
        return SP_HUB_TOO_BIG;
    if (p->event != NULL && p->event[0] != '\0' && !event_name_valid(p->event))
        return SP_HUB_BAD_EVENT;
    return SP_HUB_OK;
}

/* Hands m to every subscriber of ch; returns how many there were. */
static size_t fan_out(struct sp_hub *hub, struct sp_channel *ch, struct sp_msg *m)
{
    size_t reached = ch->nsubs;
    struct sp_sub *sub, *next;

    ch->busy++;
    for (sub = TAILQ_FIRST(&ch->subs); sub != NULL; sub = next) {
        next = TAILQ_NEXT(sub, link); /* deliver may unsubscribe sub (itself only) */
        sub->ops->deliver(sub, m);
    }
    ch->busy--;
    return reached;
}

int sp_hub_publish(struct sp_hub *hub, const struct sp_publish *p, struct sp_publish_result *res)
{
    char key[SP_CHANNEL_MAX + 512];
    char id[SP_MSG_ID_MAX];
    int rc = sp_hub_check(hub, p);

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
    struct sp_channel *ch = channel_get(hub, p->channel, true);
    if (ch == NULL)
        return SP_HUB_NO_MEMORY;
    sp_hub_format_id(hub, hub->seq + 1, id);
    struct sp_msg *m =
        sp_msg_new(p->channel, hub->seq + 1, id, p->event, p->data, p->len, sp_now_ms());
    if (m == NULL) {
        channel_maybe_remove(hub, ch);
        return SP_HUB_NO_MEMORY;
    }
    hub->seq++;
    if (p->grip != NULL)
        sp_msg_set_grip(m, p->grip);
    store(hub, ch, m);
    if (p->dedup_id != NULL && p->dedup_id[0] != '\0')
        dedup_remember(hub, key, id);

    size_t reached = fan_out(hub, ch, m);
    memset(res, 0, sizeof(*res));
    snprintf(res->id, sizeof(res->id), "%s", id);
    res->seq = sp_msg_seq(m);
    res->subscribers = reached;
    sp_msg_unref(m);
    channel_maybe_remove(hub, ch);
    return SP_HUB_OK;
}

/* ---- subscribing ----------------------------------------------------------------------- */

int sp_hub_subscribe(struct sp_hub *hub, struct sp_sub *sub, const char *channel,
                     const struct sp_sub_ops *ops)
{
    if (!sp_hub_channel_name_valid(channel, strlen(channel)))
        return SP_HUB_BAD_CHANNEL;
    struct sp_channel *ch = channel_get(hub, channel, true);
    if (ch == NULL)
        return SP_HUB_NO_MEMORY;
    sub->channel = ch;
    sub->ops = ops;
    TAILQ_INSERT_TAIL(&ch->subs, sub, link);
    ch->nsubs++;
    if (hub->watch)
        hub->watch(hub->watch_ctx, ch->name, ch->nsubs);
    return SP_HUB_OK;
}

void sp_hub_unsubscribe(struct sp_hub *hub, struct sp_sub *sub)
{
    struct sp_channel *ch = sub->channel;

    if (ch == NULL)
        return;
    TAILQ_REMOVE(&ch->subs, sub, link);
    ch->nsubs--;
    sub->channel = NULL;
    if (hub->watch)
        hub->watch(hub->watch_ctx, ch->name, ch->nsubs);
    channel_maybe_remove(hub, ch);
}

void sp_hub_set_options(struct sp_hub *hub, const struct sp_hub_options *opts)
{
    hub->opts = *opts;
}

void sp_hub_set_watch(struct sp_hub *hub, sp_hub_watch watch, void *ctx)
{
    hub->watch = watch;
    hub->watch_ctx = ctx;
}

void sp_hub_set_snapshot(struct sp_hub *hub, const char *channel, struct sp_msg *msg)
{
    struct sp_channel *ch = channel_get(hub, channel, false);

    if (ch == NULL)
        return;
    sp_msg_unref(ch->snapshot);
    ch->snapshot = msg ? sp_msg_ref(msg) : NULL;
}

/* ---- cursors and replay ------------------------------------------------------------------ */

int sp_hub_parse_cursor(const struct sp_hub *hub, const char *text, struct sp_cursor *c)
{
    struct sp_cursor r = {0};

    if (text == NULL || text[0] == '\0') {
        *c = r;
        return 0;
    }
    const char *dash = strrchr(text, '-');
    if (dash == NULL || dash == text || dash[1] == '\0' || strlen(text) >= SP_MSG_ID_MAX)
        return -1;
    char *end;
    errno = 0;
    unsigned long long seq = strtoull(dash + 1, &end, 10);
    if (*end != '\0' || errno != 0 || dash[1] < '0' || dash[1] > '9')
        return -1;
    r.present = true;
    r.this_epoch = (size_t)(dash - text) == strlen(hub->epoch) &&
                   memcmp(text, hub->epoch, (size_t)(dash - text)) == 0 && seq <= hub->seq;
    r.seq = r.this_epoch ? seq : 0;
    *c = r;
    return 0;
}

struct sp_cursor sp_hub_now(const struct sp_hub *hub)
{
    return (struct sp_cursor){.present = true, .this_epoch = true, .seq = hub->seq};
}

static int by_seq(const void *a, const void *b)
{
    uint64_t x = sp_msg_seq(*(struct sp_msg *const *)a);
    uint64_t y = sp_msg_seq(*(struct sp_msg *const *)b);
    return x < y ? -1 : x > y;
}

int sp_hub_backlog(struct sp_hub *hub, struct sp_sub *const *subs, size_t nsubs,
                   const struct sp_cursor *cur, struct sp_msg **out, size_t max, bool *missed)
{
    size_t total = 0, n = 0;
    struct sp_msg **all;

    *missed = cur->present && !cur->this_epoch;
    if (cur->latest && !cur->present) {
        for (size_t i = 0; i < nsubs && n < max; i++) {
            const struct sp_channel *ch = subs[i]->channel;
            struct sp_msg *m = ch == NULL     ? NULL
                               : ch->snapshot ? ch->snapshot
                               : ch->count    ? ring_at(hub, ch, ch->count - 1)
                                              : NULL;
            if (m != NULL)
                out[n++] = sp_msg_ref(m);
        }
        if (n > 1)
            qsort(out, n, sizeof(*out), by_seq);
        return (int)n;
    }
    for (size_t i = 0; i < nsubs; i++) {
        const struct sp_channel *ch = subs[i]->channel;
        if (ch == NULL)
            continue;
        total += ch->count;
        if (cur->present && cur->seq < ch->floor)
            *missed = true;
    }
    if (total == 0 || max == 0)
        return 0;
    all = malloc(total * sizeof(*all));
    if (all == NULL)
        return -1;
    for (size_t i = 0; i < nsubs; i++) {
        const struct sp_channel *ch = subs[i]->channel;
        for (size_t j = 0; ch != NULL && j < ch->count; j++) {
            struct sp_msg *m = ring_at(hub, ch, j);
            if (!cur->present || sp_msg_seq(m) > cur->seq)
                all[n++] = m;
        }
    }
    if (nsubs > 1)
        qsort(all, n, sizeof(*all), by_seq);
    if (n > max)
        n = max;
    for (size_t i = 0; i < n; i++)
        out[i] = sp_msg_ref(all[i]);
    free(all);
    return (int)n;
}

/* ---- channel administration ------------------------------------------------------------- */

int sp_hub_channel_info(struct sp_hub *hub, const char *channel, struct sp_channel_info *info)
{
    struct sp_channel *ch = channel_get(hub, channel, false);

    if (ch == NULL)
        return SP_HUB_NO_CHANNEL;
    memset(info, 0, sizeof(*info));
    info->subscribers = ch->nsubs;
    info->messages = ch->count;
    if (ch->count > 0) {
        snprintf(info->first_id, sizeof(info->first_id), "%s", sp_msg_id(ring_at(hub, ch, 0)));
        snprintf(info->last_id, sizeof(info->last_id), "%s",
                 sp_msg_id(ring_at(hub, ch, ch->count - 1)));
    }
    return SP_HUB_OK;
}

int sp_hub_channel_delete(struct sp_hub *hub, const char *channel)
{
    struct sp_channel *ch = channel_get(hub, channel, false);
    struct sp_sub *sub;
    int closed = 0;

    if (ch == NULL)
        return SP_HUB_NO_CHANNEL;
    sp_hmap_del(hub->channels, ch->name);
    while ((sub = TAILQ_FIRST(&ch->subs)) != NULL) {
        TAILQ_REMOVE(&ch->subs, sub, link);
        ch->nsubs--;
        sub->channel = NULL;
        closed++;
        sub->ops->deleted(sub);
    }
    if (closed > 0 && hub->watch)
        hub->watch(hub->watch_ctx, ch->name, 0);
    channel_free(hub, ch);
    return closed;
}

/* ---- engine-numbered messages --------------------------------------------------------- */

const char *sp_hub_epoch(const struct sp_hub *hub)
{
    return hub->epoch;
}

static void forget_history(const char *key, void *value, void *arg)
{
    struct sp_channel *ch = value;

    (void)key;
    while (ch->count > 0)
        drop_oldest(arg, ch);
    ch->floor = 0;
    sp_msg_unref(ch->snapshot);
    ch->snapshot = NULL;
}

bool sp_hub_set_epoch(struct sp_hub *hub, const char *epoch, uint64_t seq)
{
    if (strcmp(hub->epoch, epoch) == 0) {
        sp_hub_note_seq(hub, seq);
        return false;
    }
    snprintf(hub->epoch, sizeof(hub->epoch), "%s", epoch);
    hub->seq = seq;
    sp_hmap_each(hub->channels, forget_history, hub);
    return true;
}

void sp_hub_note_seq(struct sp_hub *hub, uint64_t seq)
{
    if (seq > hub->seq)
        hub->seq = seq;
}

int sp_hub_reset_channel(struct sp_hub *hub, const char *channel, uint64_t floor)
{
    struct sp_channel *ch = channel_get(hub, channel, true);

    if (ch == NULL)
        return SP_HUB_NO_MEMORY;
    forget_history(ch->name, ch, hub);
    ch->floor = floor;
    return SP_HUB_OK;
}

void sp_hub_drop_history(struct sp_hub *hub, const char *channel)
{
    struct sp_channel *ch = channel_get(hub, channel, false);

    if (ch != NULL)
        forget_history(ch->name, ch, hub);
}

int sp_hub_inject(struct sp_hub *hub, struct sp_msg *msg, bool deliver)
{
    struct sp_channel *ch = channel_get(hub, sp_msg_channel(msg), true);

    if (ch == NULL)
        return SP_HUB_NO_MEMORY;
    sp_hub_note_seq(hub, sp_msg_seq(msg));
    store(hub, ch, msg);
    size_t reached = deliver ? fan_out(hub, ch, msg) : 0;
    channel_maybe_remove(hub, ch);
    return (int)(reached > INT32_MAX ? INT32_MAX : reached);
}
