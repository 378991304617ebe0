/* A Pusher connection's channels: subscriptions to public, private,
 * presence and cache channels (each one a hub subscription, opened with
 * Redis once the channel is synced), what follows subscription_succeeded
 * (a resume, a cache channel's last event), sign-in and the user's own
 * channel, client events, and subscription counts. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "push/pusher-internal.h"
#include "push/pusher_sign.h"

/* ---- channels ------------------------------------------------------------------------------- */

void sp_pusher_channel_free(struct pchan *c)
{
    sp_push_sync_cancel(c->sync);
    if (c->subs != NULL)
        sp_push_stats(c->conn->kind->base.push)->pusher.subscriptions--;
    sp_subscription_close(c->subs);
    free(c->user_id);
    free(c->user_info);
    free(c->since);
    free(c->origin);
    free(c);
}

static struct pchan **find_channel(struct sp_pusher *p, const char *name)
{
    struct pchan **at = &p->channels;

    while (*at != NULL && strcmp((*at)->name, name) != 0)
        at = &(*at)->next;
    return at;
}

static void drop_channel(struct sp_pusher *p, struct pchan *c)
{
    *find_channel(p, c->name) = c->next;
    p->nchannels--;
    sp_pusher_channel_free(c);
}

static void on_deliver(void *owner, struct sp_msg *msg)
{
    struct pchan *c = owner;
    struct sp_pusher *p = c->conn;
    const char *origin = sp_msg_origin(msg);

    if (c->name[0] == '#' && sp_msg_event(msg) != NULL &&
        strcmp(sp_msg_event(msg), SP_PUSHER_TERMINATE_EVENT) == 0) {
        sp_pusher_close(p, CLOSE_UNAUTHORIZED, "the app terminated this user's connections");
        return;
    }
    /* Not its own events, nor (Pusher tells the others) its own join and leave. */
    if (origin != NULL && (strcmp(origin, p->socket_id) == 0 ||
                           (c->origin != NULL && strcmp(origin, c->origin) == 0)))
        return;
    if (c->hidden)
        return;
    if (sp_push_send_msg(push_of(p), p->stream, msg, p->wire) < 0) {
        sp_log_info(sp_push_log(push_of(p)), "slow_consumer",
                    "Pusher client over limits.subscriber_max_unsent");
        sp_pusher_abort(p);
    }
}

/* DELETE /channels/{c}: the channel is gone for its subscribers; the
 * connection stays, told by a pusher:error naming it. */
static void on_deleted(void *owner)
{
    struct pchan *c = owner;
    struct sp_pusher *p = c->conn;
    char message[PUSHER_CHANNEL_MAX + 32];

    snprintf(message, sizeof(message), "channel %s was deleted", c->name);
    drop_channel(p, c);
    if (sp_pusher_send_error(p, 0, message) < 0)
        sp_pusher_abort(p);
}

/* Pusher's names: at most 164 of [-a-zA-Z0-9_=@,.;], which the hub must
 * also take (it refuses ',' and ';', which separate channels in its own
 * routes). */
static bool channel_name_valid(const char *name)
{
    size_t len = strlen(name);

    if (len == 0 || len > PUSHER_CHANNEL_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  strchr("-_=@,.;", c) != NULL;
        if (!ok)
            return false;
    }
    return sp_hub_channel_name_valid(name, len);
}

/* The member a presence channel's channel_data names: user_id (a string,
 * or a number as Laravel sends it) and user_info, as JSON text. */
static int read_member(const char *channel_data, size_t max_info, char **user_id, char **user_info)
{
    json_t *doc = json_loads(channel_data, 0, NULL);
    json_t *id = json_object_get(doc, "user_id"), *info = json_object_get(doc, "user_info");
    char number[32];
    const char *text = json_string_value(id);

    *user_id = *user_info = NULL;
    if (json_is_integer(id)) {
        snprintf(number, sizeof(number), "%" JSON_INTEGER_FORMAT, json_integer_value(id));
        text = number;
    }
    if (text != NULL && text[0] != '\0' && strlen(text) <= USER_ID_MAX) {
        *user_id = strdup(text);
        *user_info = info != NULL ? json_dumps(info, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    }
    json_decref(doc);
    if (*user_info != NULL && strlen(*user_info) > max_info) {
        free(*user_id);
        free(*user_info);
        *user_id = *user_info = NULL;
    }
    return *user_id != NULL ? 0 : -1;
}

/* {"channel","count","members":[{"user_id","user_info"},..]} (the
 * presence table's list) becomes Pusher's {"presence":{"ids","hash","count"}},
 * with this connection's own member in it even if its join has not been
 * counted yet (it is mailed to the shared loop). */
static json_t *presence_data(json_t *doc, const struct pchan *c)
{
    json_t *ids = json_array(), *hash = json_object();
    json_t *members = json_object_get(doc, "members");
    size_t i, count = (size_t)json_integer_value(json_object_get(doc, "count"));
    json_t *m;

    json_array_foreach(members, i, m)
    {
        const char *id = json_string_value(json_object_get(m, "user_id"));
        json_t *info = json_object_get(m, "user_info");
        if (id == NULL)
            continue;
        json_array_append_new(ids, json_string(id));
        json_object_set(hash, id, info ? info : json_null());
    }
    if (json_object_get(hash, c->user_id) == NULL) {
        json_t *info = c->user_info ? json_loads(c->user_info, JSON_DECODE_ANY, NULL) : NULL;
        json_array_append_new(ids, json_string(c->user_id));
        json_object_set_new(hash, c->user_id, info ? info : json_null());
        count++;
    }
    return json_pack("{s:{s:o, s:o, s:I}}", "presence", "ids", ids, "hash", hash, "count",
                     (json_int_t)count);
}

static bool is_cache_channel(const char *name)
{
    static const char *const prefixes[] = {"cache-", "private-cache-", "private-encrypted-cache-",
                                           "presence-cache-"};

    for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++)
        if (has_prefix(name, prefixes[i]))
            return true;
    return false;
}

/* What follows subscription_succeeded: for a client resuming ("since"),
 * what the channel's history holds after that id (and "sidepush-missed"
 * when some of it is gone); on a cache- channel (a last-value channel, see
 * shared.c), its value if it is younger than pusher.cache_ttl, else
 * pusher:cache_miss. */
static int send_opening(struct pchan *c)
{
    struct sp_pusher *p = c->conn;
    struct sp_push *push = push_of(p);
    struct sp_cursor cur = {.latest = true};
    struct sp_msg *backlog[BACKLOG_MAX];
    bool missed = false;
    int rc = 0;

    if (c->since == NULL && !is_cache_channel(c->name))
        return 0;
    if (c->since != NULL && sp_hub_parse_cursor(sp_push_hub(push), c->since, &cur) < 0)
        cur = (struct sp_cursor){.present = true}; /* not an id: all there is, and missed */
    int n = sp_subscription_backlog(c->subs, &cur, backlog, BACKLOG_MAX, &missed);
    if (n < 0)
        return -1;
    if (c->since != NULL && missed) {
        json_t *data = json_pack("{s:s}", "first", n > 0 ? sp_msg_id(backlog[0]) : "");
        rc = sp_pusher_send_event(p, "sidepush-missed", c->name, data, true);
    }
    /* A cache- channel is a last-value channel kept for pusher.cache_ttl
     * (its class): its value may wait a sweep past that. */
    bool fresh = n > 0 && sp_now_ms() - sp_msg_created(backlog[n - 1]) <
                              sp_hub_channel_options(sp_push_hub(push), c->name).history_ttl_ms;
    for (int i = 0; i < n; i++) {
        if (rc == 0 && (c->since != NULL || fresh))
            rc = sp_push_send_msg(push, p->stream, backlog[i], p->wire);
        sp_msg_unref(backlog[i]);
    }
    if (rc == 0 && c->since == NULL && !fresh) {
        rc = sp_pusher_send_event(p, "pusher:cache_miss", c->name, NULL, false);
        sp_push_cache_miss(push, c->name);
    }
    return rc;
}

static void send_succeeded(struct pchan *c, json_t *data)
{
    struct sp_pusher *p = c->conn;

    c->ready = true;
    if (sp_pusher_send_event(p, "pusher_internal:subscription_succeeded", c->name,
                             data ? data : json_object(), true) < 0 ||
        send_opening(c) < 0)
        sp_pusher_abort(p);
}

/* Pusher's subscription_error on the channel: pusher-js and Echo hand it
 * to the channel's error callback. */
static int send_subscription_error(struct sp_pusher *p, const char *channel, int status,
                                   const char *type, const char *error)
{
    json_t *data = json_pack("{s:s, s:s, s:i}", "type", type, "error", error, "status", status);
    return sp_pusher_send_event(p, "pusher:subscription_error", channel, data, true);
}

/* The presence list arrived (by mail from the shared loop, or from Redis
 * later, while c is open), made after c's own join: a member that makes it
 * more than pusher.max_presence_members is sent away, and the others see it
 * come and go as after a short visit. */
static void on_members(void *ctx, const char *json)
{
    struct pchan *c = ctx;
    struct sp_pusher *p = c->conn;
    json_t *doc = json ? json_loads(json, 0, NULL) : NULL;
    size_t count = (size_t)json_integer_value(json_object_get(doc, "count"));
    bool listed = false;
    size_t i;
    json_t *m;

    json_array_foreach(json_object_get(doc, "members"), i, m)
    {
        const char *id = json_string_value(json_object_get(m, "user_id"));
        listed = listed || (id != NULL && strcmp(id, c->user_id) == 0);
    }
    if (count + !listed > sp_push_config(push_of(p))->pusher.max_presence_members) {
        char channel[PUSHER_CHANNEL_MAX + 1];
        snprintf(channel, sizeof(channel), "%s", c->name);
        drop_channel(p, c);
        if (send_subscription_error(p, channel, 403, "LimitReached",
                                    "the presence channel is full (pusher.max_presence_members)") <
            0)
            sp_pusher_abort(p);
    } else {
        send_succeeded(c, presence_data(doc, c));
    }
    json_decref(doc);
}

static const char *auth_error(const char *channel)
{
    return has_prefix(channel, "presence-")
               ? "Invalid signature: Expected HMAC SHA256 hex digest of socket_id:channel:"
                 "channel_data"
               : "Invalid signature: Expected HMAC SHA256 hex digest of socket_id:channel";
}

/* The subscription opens (the channel synced with Redis, when there is
 * Redis): the channel's deliveries start and the client is told. */
static void activate(struct pchan *c)
{
    struct sp_pusher *p = c->conn;
    const struct sp_identity who = {c->user_id, c->user_info, 0};
    int rc = sp_subscription_open(push_of(p), c->name, on_deliver, on_deleted, c,
                                  c->presence ? &who : NULL, NULL, &c->subs);

    if (rc < 0) {
        char channel[PUSHER_CHANNEL_MAX + sizeof(SP_PUSHER_USER_CHANNEL)];
        snprintf(channel, sizeof(channel), "%s", c->name);
        drop_channel(p, c);
        if (send_subscription_error(p, channel, 503, "SubscriptionFailed", sp_hub_error_text(rc)) <
            0)
            sp_pusher_abort(p);
        return;
    }
    sp_push_stats(push_of(p))->pusher.subscriptions++;
    if (c->presence) {
        sp_subscription_members(c->subs, on_members, c);
    } else if (!c->hidden) {
        send_succeeded(c, NULL);
    }
}

static void on_synced(void *ctx, bool ok)
{
    struct pchan *c = ctx;

    c->sync = NULL;
    if (ok) {
        activate(c);
        return;
    }
    struct sp_pusher *p = c->conn;
    char channel[PUSHER_CHANNEL_MAX + sizeof(SP_PUSHER_USER_CHANNEL)];
    snprintf(channel, sizeof(channel), "%s", c->name);
    drop_channel(p, c);
    if (send_subscription_error(p, channel, 503, "SubscriptionFailed",
                                sp_hub_error_text(SP_HUB_UNAVAILABLE)) < 0)
        sp_pusher_abort(p);
}

/* A channel of p, opened at once or (with Redis) once it is synced, so
 * that nothing published after the client is told is missed and a resume
 * (since: an id, or NULL) reads the shared history. Takes user_id and
 * user_info (a presence member, or NULL). */
static void open_channel(struct sp_pusher *p, const char *name, bool presence, bool hidden,
                         char *user_id, char *user_info, const char *since)
{
    size_t len = strlen(name) + 1;
    struct pchan *c = calloc(1, sizeof(*c) + len);

    if (c != NULL && since != NULL && (c->since = strdup(since)) == NULL) {
        free(c);
        c = NULL;
    }
    if (c == NULL) {
        free(user_id);
        free(user_info);
        sp_pusher_abort(p);
        return;
    }
    memcpy(c->name, name, len);
    c->conn = p;
    c->presence = presence;
    c->hidden = hidden;
    c->user_id = user_id;
    c->user_info = user_info;
    if (presence && user_id != NULL) {
        char origin[SP_MEMBER_ORIGIN];
        sp_push_member_origin(user_id, origin);
        c->origin = strdup(origin); /* out of memory: it hears its own join */
    }
    c->next = p->channels;
    p->channels = c;
    p->nchannels++;
    if (!sp_push_uses_engine(push_of(p)))
        activate(c);
    else if ((c->sync = sp_push_sync(push_of(p), name, on_synced, c)) == NULL)
        sp_pusher_abort(p);
}

/* #server-to-user-{id}: only the user signed in on this connection's, which
 * sign-in opened already (hidden until asked for). */
static void subscribe_user_channel(struct sp_pusher *p, const char *name)
{
    struct pchan *c = *find_channel(p, name);

    if (c == NULL) {
        sp_pusher_send_error(p, CLOSE_UNAUTHORIZED, "sign in (pusher:signin) as this user first");
        return;
    }
    c->hidden = false;
    if (c->subs != NULL) /* else once it is synced */
        send_succeeded(c, NULL);
}

void sp_pusher_subscribe(struct sp_pusher *p, json_t *data)
{
    const struct sp_config *config = sp_push_config(push_of(p));
    const char *name = json_string_value(json_object_get(data, "channel"));
    const char *auth = json_string_value(json_object_get(data, "auth"));
    const char *channel_data = json_string_value(json_object_get(data, "channel_data"));
    const char *since = json_string_value(json_object_get(data, "since"));
    bool presence = name && has_prefix(name, "presence-");
    bool private = name && (has_prefix(name, "private-") || presence);
    char *user_id = NULL, *user_info = NULL;

    if (!config->pusher.enabled) /* removed by a reload: the tick closes p */
        return;
    if (name != NULL && has_prefix(name, SP_PUSHER_USER_CHANNEL)) {
        subscribe_user_channel(p, name);
        return;
    }
    if (name == NULL || !channel_name_valid(name)) {
        sp_pusher_send_error(p, 0, "Invalid channel name: at most 164 of a-z A-Z 0-9 - _ = @ . ;");
        return;
    }
    if (*find_channel(p, name) != NULL)
        return; /* subscribed already: Pusher ignores it */
    if (private &&
        !sp_pusher_channel_auth_valid(config->pusher.key, config->pusher.secret, p->socket_id, name,
                                      presence ? (channel_data ? channel_data : "") : NULL, auth)) {
        sp_push_stats(push_of(p))->pusher.auth_failures++;
        sp_pusher_send_error(p, CLOSE_UNAUTHORIZED, auth_error(name));
        return;
    }
    if (presence && (channel_data == NULL || read_member(channel_data, config->pusher.max_user_info,
                                                         &user_id, &user_info) < 0)) {
        sp_pusher_send_error(p, 0,
                             "presence channel_data must name a user_id of 1-128 characters and a "
                             "user_info of at most pusher.max_user_info");
        return;
    }
    if (p->nchannels >= config->pusher.max_channels_per_connection) {
        sp_pusher_send_error(p, 0,
                             "too many channels on this connection "
                             "(pusher.max_channels_per_connection)");
        free(user_id);
        free(user_info);
        return;
    }
    open_channel(p, name, presence, false, user_id, user_info, since);
}

/* pusher:signin: user_data signed by the app's user-auth route for this
 * socket. The connection then belongs to the user: it hears what
 * sendToUser() sends once it subscribes to #server-to-user-{id}, and
 * terminate_connections ends it. */
void sp_pusher_signin(struct sp_pusher *p, json_t *data)
{
    const struct sp_config *config = sp_push_config(push_of(p));
    const char *auth = json_string_value(json_object_get(data, "auth"));
    const char *user_data = json_string_value(json_object_get(data, "user_data"));
    char channel[sizeof(SP_PUSHER_USER_CHANNEL) + USER_ID_MAX];

    if (user_data == NULL || auth == NULL ||
        !sp_pusher_user_auth_valid(config->pusher.key, config->pusher.secret, p->socket_id,
                                   user_data, auth)) {
        sp_push_stats(push_of(p))->pusher.auth_failures++;
        sp_pusher_send_error(
            p, CLOSE_UNAUTHORIZED,
            "Invalid signature: Expected HMAC SHA256 hex digest of socket_id::user::"
            "user_data");
        return;
    }
    json_t *doc = json_loads(user_data, 0, NULL);
    const char *id = json_string_value(json_object_get(doc, "id"));
    char *info = json_dumps(json_object_get(doc, "user_info"), JSON_COMPACT | JSON_ENCODE_ANY);
    size_t len = id ? strlen(id) : 0;
    const char *why = NULL;

    snprintf(channel, sizeof(channel), SP_PUSHER_USER_CHANNEL "%s", id ? id : "");
    if (len == 0 || len > USER_ID_MAX || !sp_hub_channel_name_valid(channel, strlen(channel)))
        why = "user_data needs an id: 1-128 of a-z A-Z 0-9 _ . : @ ~ = + -";
    else if (info != NULL && strlen(info) > config->pusher.max_user_info)
        why = "user_info is larger than pusher.max_user_info";
    else if (p->user_id != NULL && strcmp(p->user_id, id) != 0)
        why = "this connection is signed in as another user already";
    if (why != NULL) {
        sp_pusher_send_error(p, 0, why);
    } else if (p->user_id == NULL && (p->user_id = strdup(id)) != NULL) {
        sp_push_stats(push_of(p))->pusher.signins++;
        open_channel(p, channel, false, true, NULL, NULL, NULL);
    }
    if (why == NULL && p->user_id != NULL &&
        sp_pusher_send_event(p, "pusher:signin_success", NULL,
                             json_pack("{s:s}", "user_data", user_data), true) < 0)
        sp_pusher_abort(p);
    free(info);
    json_decref(doc);
}

void sp_pusher_unsubscribe(struct sp_pusher *p, json_t *data)
{
    const char *name = json_string_value(json_object_get(data, "channel"));
    struct pchan **at = name ? find_channel(p, name) : NULL;

    if (at == NULL || *at == NULL)
        return;
    if ((*at)->name[0] == '#')
        (*at)->hidden = true; /* the user's channel stays while signed in */
    else
        drop_channel(p, *at);
}

/* ---- client events -----------------------------------------------------------------------------
 */

/* Why a client event may not go out, or NULL. Pusher's rules: enabled for
 * the app, on a private- or presence- channel (not an encrypted one: the
 * server cannot see what it relays) this connection has been told it is
 * subscribed to. */
static const char *client_event_refusal(struct sp_pusher *p, const struct sp_config *config,
                                        const char *channel, struct pchan **out)
{
    struct pchan *c = channel ? *find_channel(p, channel) : NULL;

    if (!config->pusher.client_events)
        return "client events are not enabled on this server (pusher.client_events)";
    if (channel == NULL || (!has_prefix(channel, "private-") && !has_prefix(channel, "presence-")))
        return "client events go on private- and presence- channels only";
    if (has_prefix(channel, "private-encrypted-"))
        return "client events are not accepted on encrypted channels";
    if (c == NULL || !c->ready)
        return "client event on a channel this connection is not subscribed to";
    *out = c;
    return NULL;
}

/* sp_push_stats' pusher.client_events[] */
enum { CLIENT_EVENT_RELAYED, CLIENT_EVENT_LIMITED, CLIENT_EVENT_REFUSED };

/* At most pusher.client_event_rate a second; more are dropped with 4301. */
static bool client_event_allowed(struct sp_pusher *p, const struct sp_config *config)
{
    uint64_t second = sp_now_ms() / 1000;

    if (second != p->rate_second) {
        p->rate_second = second;
        p->rate_used = 0;
    }
    return ++p->rate_used <= config->pusher.client_event_rate;
}

/* Relayed as a publish to the channel from this socket: every other
 * subscriber, native ones and those of other workers and replicas, gets
 * it; the sender does not (its socket_id is the message's origin). data
 * goes as the client gave it: a string's text, or other JSON as its text. */
void sp_pusher_client_event(struct sp_pusher *p, const char *event, json_t *msg)
{
    const struct sp_config *config = sp_push_config(push_of(p));
    const char *channel = json_string_value(json_object_get(msg, "channel"));
    json_t *data = json_object_get(msg, "data");
    struct pchan *c = NULL;
    const char *why = client_event_refusal(p, config, channel, &c);

    struct sp_push_stats *stats = sp_push_stats(push_of(p));

    if (why != NULL) {
        stats->pusher.client_events[CLIENT_EVENT_REFUSED]++;
        sp_pusher_send_error(p, 0, why);
        return;
    }
    if (!client_event_allowed(p, config)) {
        stats->pusher.client_events[CLIENT_EVENT_LIMITED]++;
        sp_pusher_send_error(p, ERROR_CLIENT_EVENT_RATE,
                             "Client event rejected due to rate limit (pusher.client_event_rate)");
        return;
    }
    char *text = json_is_string(data)
                     ? NULL
                     : json_dumps(data ? data : json_null(), JSON_COMPACT | JSON_ENCODE_ANY);
    const struct sp_publish pub = {
        .channel = c->name,
        .event = event,
        .data = text ? text : json_string_value(data),
        .len = text ? strlen(text) : json_string_length(data),
        .origin = p->socket_id,
    };
    int rc = pub.data == NULL ? SP_HUB_NO_MEMORY : sp_hub_check(sp_push_hub(push_of(p)), &pub);
    if (rc == SP_HUB_OK && pub.len > config->pusher.max_event_size)
        rc = SP_HUB_TOO_BIG;
    if (rc == SP_HUB_OK &&
        sp_push_client_event(push_of(p), &pub, c->user_id ? c->user_id : p->user_id) < 0)
        rc = SP_HUB_NO_MEMORY;
    stats->pusher.client_events[rc == SP_HUB_OK ? CLIENT_EVENT_RELAYED : CLIENT_EVENT_REFUSED]++;
    if (rc != SP_HUB_OK)
        sp_pusher_send_error(p, 0, sp_hub_error_text(rc));
    free(text);
}

/* ---- subscription_count ------------------------------------------------------------------- */

static bool counted(const struct pchan *c)
{
    return c->ready && !c->presence && c->name[0] != '#';
}

/* The count of c's channel, read once a tick. */
static struct count *count_of(struct pusher_kind *kind, const struct pchan *c)
{
    struct count *n = sp_hmap_get(kind->counts, c->name);
    size_t len = strlen(c->name) + 1;

    if (n == NULL) {
        n = calloc(1, sizeof(*n) + len);
        if (n == NULL)
            return NULL;
        memcpy(n->channel, c->name, len);
        if (sp_hmap_put(kind->counts, n->channel, n) < 0) {
            free(n);
            return NULL;
        }
    }
    if (n->tick != kind->ticks) {
        n->tick = kind->ticks;
        n->now = sp_hub_subscribers(sp_push_hub(kind->base.push), c->name);
    }
    return n;
}

static void settle_count(const char *key, void *value, void *ctx)
{
    struct pusher_kind *kind = ctx;
    struct count *n = value;

    if (n->tick != kind->ticks) { /* no client here holds it any more */
        sp_hmap_del(kind->counts, key);
        free(n);
    } else {
        n->told = n->now;
    }
}

/* Pusher's subscription_count (when the app enables it): each client of a
 * channel hears the channel's subscribers when their number has changed,
 * read once a tick. */
void sp_pusher_tell_counts(struct pusher_kind *kind)
{
    struct sp_pusher *p, *next;
    struct pchan *c;

    kind->ticks++;
    for (p = LIST_FIRST(&kind->all); p != NULL; p = next) {
        next = LIST_NEXT(p, link);
        for (c = p->channels; c != NULL; c = c->next) {
            struct count *n = counted(c) ? count_of(kind, c) : NULL;
            if (n == NULL || n->now == n->told)
                continue;
            json_t *data = json_pack("{s:I}", "subscription_count", (json_int_t)n->now);
            if (sp_pusher_send_event(p, "pusher_internal:subscription_count", c->name, data, true) <
                0) {
                sp_pusher_abort(p);
                break;
            }
        }
    }
    sp_hmap_each(kind->counts, settle_count, kind);
}

void sp_pusher_counts_free(struct pusher_kind *kind)
{
    kind->ticks++; /* every count is stale: settle_count frees them */
    sp_hmap_each(kind->counts, settle_count, kind);
    sp_hmap_free(kind->counts);
}
