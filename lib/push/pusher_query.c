/* The Pusher HTTP API's questions about channels and users, asked once the
 * request's signature has been checked (pusher_api.c):
 *   GET  /apps/{id}/channels?filter_by_prefix=&info=user_count
 *   GET  /apps/{id}/channels/{name}?info=user_count,subscription_count
 *   GET  /apps/{id}/channels/{name}/users
 *   POST /apps/{id}/users/{user_id}/terminate_connections
 * Members are the deployment's (with Redis, every replica's); subscribers
 * are this process's, every worker's. A terminate is a message on the
 * user's #server-to-user- channel, so it reaches every worker and replica
 * as any publish does. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "push/push-internal.h"
#include "push/pusher.h"

#define INFO_MAX 128

static void answer(struct sp_push *push, struct sp_http_conn *conn, json_t *obj)
{
    char *text = obj ? json_dumps(obj, JSON_COMPACT) : NULL;

    if (text == NULL)
        sp_push_publish_refuse(push, conn, 500, "out of memory");
    else
        sp_http_respond(conn, 200, "application/json", text, strlen(text));
    free(text);
    json_decref(obj);
}

static bool is_presence(const char *channel)
{
    return strncmp(channel, "presence-", 9) == 0;
}

/* Does the comma-separated info parameter ask for what? */
static bool info_wants(const char *info, const char *what)
{
    size_t n = strlen(what);

    for (const char *at = info; *at != '\0'; at += strcspn(at, ",") + (at[strcspn(at, ",")] != 0))
        if (strncmp(at, what, n) == 0 && (at[n] == ',' || at[n] == '\0'))
            return true;
    return false;
}

/* A query parameter, "" when absent; false (answered 400) when unreadable. */
static bool query_param(struct sp_push *push, struct sp_http_conn *conn, struct sp_slice query,
                        const char *name, char *out, size_t size)
{
    int n = sp_http_query_get(query, name, out, size);

    if (n == SP_HTTP_QUERY_ABSENT)
        out[0] = '\0';
    if (n == SP_HTTP_QUERY_BAD)
        sp_push_publish_refuse(push, conn, 400, "a query parameter cannot be read");
    return n != SP_HTTP_QUERY_BAD;
}

/* ---- waiting for Redis -------------------------------------------------------------------- */

struct wait {
    struct sp_push *push;
    struct sp_http_conn *conn; /* NULL once the client is gone */
    bool user_count, subscription_count;
    size_t subscribers;
    char channel[];
};

static void on_wait_gone(void *ctx)
{
    ((struct wait *)ctx)->conn = NULL;
}

static const struct sp_http_ops wait_ops = {NULL, NULL, on_wait_gone, NULL};

static struct wait *wait_new(struct sp_push *push, struct sp_http_conn *conn, const char *channel)
{
    size_t len = strlen(channel) + 1;
    struct wait *w = calloc(1, sizeof(*w) + len);

    if (w == NULL)
        return NULL;
    w->push = push;
    w->conn = conn;
    memcpy(w->channel, channel, len);
    sp_http_set_ops(conn, &wait_ops, w);
    return w;
}

/* The connection to answer on, or NULL (gone, or answered 503 when the
 * engine could not answer). Frees w. */
static struct sp_http_conn *wait_end(struct wait *w, bool answered)
{
    struct sp_http_conn *conn = w->conn;
    struct sp_push *push = w->push;

    free(w);
    if (conn == NULL)
        return NULL;
    sp_http_set_ops(conn, NULL, NULL);
    if (answered)
        return conn;
    sp_push_publish_refuse(push, conn, 503, sp_hub_error_text(SP_HUB_UNAVAILABLE));
    return NULL;
}

/* ---- one channel ------------------------------------------------------------------------------
 */

static json_t *channel_answer(bool user_count, size_t users, bool subscription_count,
                              size_t subscribers)
{
    json_t *obj = json_pack("{s:b}", "occupied", subscribers > 0 || users > 0);

    if (obj != NULL && user_count)
        json_object_set_new(obj, "user_count", json_integer((json_int_t)users));
    if (obj != NULL && subscription_count)
        json_object_set_new(obj, "subscription_count", json_integer((json_int_t)subscribers));
    return obj;
}

static void on_engine_info(void *arg, const struct sp_engine_channel *info)
{
    struct wait *w = arg;
    bool user_count = w->user_count, subscription_count = w->subscription_count;
    size_t subscribers = w->subscribers;
    struct sp_push *push = w->push;
    struct sp_http_conn *conn = wait_end(w, info->rc != SP_HUB_UNAVAILABLE);

    if (conn != NULL)
        answer(push, conn,
               channel_answer(user_count, info->members, subscription_count, subscribers));
}

void sp_pusher_query_channel(struct sp_push *push, struct sp_http_conn *conn, const char *channel,
                             struct sp_slice query)
{
    char info[INFO_MAX];

    if (!query_param(push, conn, query, "info", info, sizeof(info)))
        return;
    bool user_count = info_wants(info, "user_count");
    bool subscription_count = info_wants(info, "subscription_count");
    size_t subscribers = sp_hub_subscribers(push->hub, channel);
    if (user_count && !is_presence(channel)) {
        sp_push_publish_refuse(push, conn, 400, "user_count is for presence- channels only");
        return;
    }
    if (!user_count || push->shared->engine == NULL) {
        answer(push, conn,
               channel_answer(user_count, user_count ? sp_push_presence_count(push, channel) : 0,
                              subscription_count, subscribers));
        return;
    }
    struct wait *w = wait_new(push, conn, channel);
    if (w == NULL) {
        sp_push_publish_refuse(push, conn, 503, "out of memory");
        return;
    }
    w->user_count = user_count;
    w->subscription_count = subscription_count;
    w->subscribers = subscribers;
    if (sp_engine_channel_info(push->shared->engine, channel, on_engine_info, w) < 0)
        wait_end(w, false);
}

/* ---- the channel list ------------------------------------------------------------------------ */

struct listing {
    json_t *channels;
    bool user_count;
};

static void list_one(void *ctx, const char *channel, size_t subscribers)
{
    struct listing *l = ctx;
    json_t *entry = json_object();

    (void)subscribers;
    if (channel[0] != '#') /* users' own channels are not the app's to list */
        json_object_set_new(l->channels, channel, entry);
    else
        json_decref(entry);
}

static void fill_user_count(const char *channel, json_t *entry, void *ctx)
{
    json_object_set_new(entry, "user_count",
                        json_integer((json_int_t)sp_push_presence_count(ctx, channel)));
}

void sp_pusher_query_channels(struct sp_push *push, struct sp_http_conn *conn,
                              struct sp_slice query)
{
    char prefix[SP_CHANNEL_MAX + 1], info[INFO_MAX];
    struct listing l = {json_object(), false};
    const char *name;
    json_t *entry;

    if (!query_param(push, conn, query, "filter_by_prefix", prefix, sizeof(prefix)) ||
        !query_param(push, conn, query, "info", info, sizeof(info))) {
        json_decref(l.channels);
        return;
    }
    l.user_count = info_wants(info, "user_count");
    if (l.user_count && !is_presence(prefix)) {
        json_decref(l.channels);
        sp_push_publish_refuse(push, conn, 400, "user_count needs filter_by_prefix=presence-");
        return;
    }
    sp_hub_each_occupied(push->hub, prefix, list_one, &l);
    if (l.user_count) { /* after: the presence table is not asked under the hub's lock */
        json_object_foreach(l.channels, name, entry)
        {
            fill_user_count(name, entry, push);
        }
    }
    answer(push, conn, json_pack("{s:o}", "channels", l.channels));
}

/* ---- users ------------------------------------------------------------------------------------
 */

/* The presence table's {"members":[{"user_id",..}]} as Pusher's
 * {"users":[{"id"}]}. */
static json_t *users_answer(const char *members_json)
{
    json_t *doc = json_loads(members_json, 0, NULL), *users = json_array(), *m;
    size_t i;

    json_array_foreach(json_object_get(doc, "members"), i, m)
    {
        json_t *id = json_object_get(m, "user_id");
        if (json_is_string(id))
            json_array_append_new(users, json_pack("{s:O}", "id", id));
    }
    json_decref(doc);
    return json_pack("{s:o}", "users", users);
}

static void on_engine_members(void *arg, const char *json)
{
    struct wait *w = arg;
    struct sp_push *push = w->push;
    struct sp_http_conn *conn = wait_end(w, json != NULL);

    if (conn != NULL)
        answer(push, conn, users_answer(json));
}

void sp_pusher_query_users(struct sp_push *push, struct sp_http_conn *conn, const char *channel)
{
    if (!is_presence(channel)) {
        sp_push_publish_refuse(push, conn, 400, "users are listed for presence- channels only");
        return;
    }
    if (push->shared->engine != NULL) {
        struct wait *w = wait_new(push, conn, channel);
        if (w == NULL)
            sp_push_publish_refuse(push, conn, 503, "out of memory");
        else if (sp_engine_members(push->shared->engine, channel,
                                   push->config->presence.max_members, on_engine_members, w) < 0)
            wait_end(w, false);
        return;
    }
    struct evbuffer *body = evbuffer_new();
    if (body == NULL) {
        sp_push_publish_refuse(push, conn, 503, "out of memory");
        return;
    }
    sp_push_presence_json(push, channel, body);
    evbuffer_add(body, "", 1);
    answer(push, conn, users_answer((const char *)evbuffer_pullup(body, -1)));
    evbuffer_free(body);
}

/* ---- terminating a user's connections ---------------------------------------------------------
 */

static void on_terminate_published(void *arg, int rc, const struct sp_publish_result *res)
{
    struct wait *w = arg;
    struct sp_push *push = w->push;
    struct sp_http_conn *conn = wait_end(w, rc != SP_HUB_UNAVAILABLE);

    (void)res;
    if (conn != NULL)
        answer(push, conn, json_object());
}

void sp_pusher_terminate(struct sp_push *push, struct sp_http_conn *conn, const char *user_id)
{
    char channel[SP_CHANNEL_MAX + 1];
    int n = snprintf(channel, sizeof(channel), SP_PUSHER_USER_CHANNEL "%s", user_id);

    if (n < 0 || (size_t)n >= sizeof(channel) || !sp_hub_channel_name_valid(channel, (size_t)n)) {
        sp_push_publish_refuse(push, conn, 400,
                               "a user id is 1-128 of a-z A-Z 0-9 _ . : @ ~ = + -");
        return;
    }
    struct wait *w = wait_new(push, conn, channel);
    if (w == NULL) {
        sp_push_publish_refuse(push, conn, 503, "out of memory");
        return;
    }
    const struct sp_engine_publish p = {
        .pub = {.channel = channel, .event = SP_PUSHER_TERMINATE_EVENT, .data = "{}", .len = 2}};
    int rc = sp_push_publish(push, &p, on_terminate_published, w);
    if (rc < 0)
        on_terminate_published(w, rc, NULL);
}
