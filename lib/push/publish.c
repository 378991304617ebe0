/* The publish API on publish_listen:
 *   POST   /publish/{channel}   body = the message's data, verbatim
 *   POST   /publish             JSON message or {"items": [...]} batch
 *   GET    /channels/{channel}  subscribers, members, buffered messages, ids
 *   GET    /channels/{channel}/presence  the members of a presence channel
 *   DELETE /channels/{channel}  closes its subscribers, drops its history
 */
#include <event2/buffer.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "push/publish_json.h"
#include "push/push-internal.h"
#include "push/webhook_sig.h"

enum target {
    T_CHANNEL_PUBLISH,
    T_JSON_PUBLISH,
};

/* What a request on /channels/{channel} does (A_NONE: it is a publish). */
enum admin_op { A_NONE, A_INFO, A_DELETE, A_PRESENCE };

/* A publish request whose body is still arriving. */
struct pending {
    struct sp_push *push;
    struct sp_http_conn *conn;
    enum target target;
    char channel[SP_CHANNEL_MAX + 1];
    struct evbuffer *body;
    size_t limit;
};

/* ---- answers ------------------------------------------------------------------------------ */

static void respond_json(struct sp_http_conn *conn, int status, json_t *obj)
{
    char *text = obj ? json_dumps(obj, JSON_COMPACT) : NULL;

    if (text == NULL) {
        sp_http_respond_error(conn, 500, "out of memory");
    } else {
        size_t len = strlen(text);
        text[len] = '\n';
        sp_http_respond(conn, status, "application/json", text, len + 1);
    }
    free(text);
    json_decref(obj);
}

/* ---- auth ---------------------------------------------------------------------------------- */

static char *header_text(const struct sp_http_request *req, const char *name)
{
    const struct sp_http_header *h = sp_http_find_header(req, name);
    return h ? strndup(h->value.ptr, h->value.len) : NULL;
}

/* Bearer token; checked before the body is read. */
static bool bearer_ok(struct sp_push *push, const struct sp_http_request *req)
{
    const char *token = push->config->publish_auth.bearer_token;

    return token == NULL || sp_http_bearer_is(req, token);
}

/* Standard Webhooks signature over the body. Returns 0 or an error code;
 * with signatures on, *webhook_id is then the verified id (malloc'd), else
 * NULL. */
static int signature_check(struct sp_push *push, const struct sp_http_request *req,
                           const void *body, size_t len, char **webhook_id)
{
    const char *secret = push->config->publish_auth.hmac_secret;

    *webhook_id = NULL;
    if (secret == NULL)
        return 0;
    char *id = header_text(req, "webhook-id");
    char *ts = header_text(req, "webhook-timestamp");
    char *sig = header_text(req, "webhook-signature");
    int rc = sp_webhook_verify(secret, id, ts, body, len, sig, (int64_t)time(NULL),
                               push->config->publish_auth.timestamp_tolerance_ms / 1000);
    if (rc == 0)
        *webhook_id = id;
    else
        free(id);
    free(ts);
    free(sig);
    return rc;
}

static void respond_unauthorized(struct sp_http_conn *conn, const char *why)
{
    struct evbuffer *h = evbuffer_new();
    json_t *obj = json_pack("{s:s, s:i}", "error", why, "status", 401);
    char *text = obj ? json_dumps(obj, JSON_COMPACT) : NULL;

    if (h && text) {
        evbuffer_add_printf(h, "WWW-Authenticate: Bearer\r\nContent-Type: application/json\r\n");
        sp_http_begin(conn, 401, NULL, h, (int64_t)strlen(text));
        sp_http_write(conn, text, strlen(text));
        sp_http_finish(conn);
    } else {
        sp_http_respond_error(conn, 500, "out of memory");
    }
    if (h)
        evbuffer_free(h);
    free(text);
    json_decref(obj);
}

/* ---- publishing ----------------------------------------------------------------------------- */

static int publish_status(int rc)
{
    switch (rc) {
    case SP_HUB_TOO_BIG:
        return 413;
    case SP_HUB_NO_MEMORY:
    case SP_HUB_UNAVAILABLE:
    case SP_HUB_NOT_REPLICATED:
        return 503;
    default:
        return 400;
    }
}

static json_t *result_json(struct sp_push *push, const char *channel,
                           const struct sp_publish_result *res)
{
    /* With Redis the subscribers are spread over replicas: the answer
     * counts the replicas that had any. */
    json_t *obj =
        json_pack("{s:s, s:s, s:I}", "id", res->id, "channel", channel,
                  push->shared->engine ? "replicas" : "subscribers", (json_int_t)res->subscribers);
    if (obj && res->duplicate)
        json_object_set_new(obj, "duplicate", json_true());
    return obj;
}

static char *dedup_header(const struct sp_http_request *req)
{
    static const char *const names[] = {"Sidepush-Id", "Idempotency-Key", "webhook-id"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        char *v = header_text(req, names[i]);
        if (v != NULL)
            return v;
    }
    return NULL;
}

/* One publish request whose messages are being stored (with Redis, the
 * answers come later; the client may leave meanwhile). */
struct job {
    struct sp_push *push;
    struct sp_http_conn *conn; /* NULL once the client is gone */
    size_t remaining;
    bool single;     /* answer the one result, not {"items": [...]} */
    int status;      /* 202, or the first failure's */
    json_t *results; /* one entry per item */
};

struct job_item {
    struct job *job;
    size_t index;
    char channel[SP_CHANNEL_MAX + 1];
};

static void on_job_client_gone(void *ctx)
{
    ((struct job *)ctx)->conn = NULL;
}

static const struct sp_http_ops job_ops = {NULL, NULL, on_job_client_gone, NULL};

static void job_release(struct job *job)
{
    if (--job->remaining > 0)
        return;
    if (job->conn != NULL) {
        sp_http_set_ops(job->conn, NULL, NULL);
        if (job->single) {
            json_t *one = json_incref(json_array_get(job->results, 0));
            respond_json(job->conn, job->status, one);
        } else {
            respond_json(job->conn, job->status, json_pack("{s:O}", "items", job->results));
        }
    }
    json_decref(job->results);
    free(job);
}

static void item_failed(struct job *job, size_t index, const char *channel, int rc)
{
    int status = publish_status(rc);

    sp_push_count_publish_error(job->push, status);
    /* A batch answers 202 with each item's outcome in place, unless Redis
     * refused some: 503 then tells the publisher to retry (items with an id
     * are stored once however often they are sent). */
    if (job->single ? job->status == 202 : status == 503)
        job->status = status;
    json_t *err = json_pack("{s:s, s:s, s:i}", "channel", channel, "error", sp_hub_error_text(rc),
                            "status", status);
    json_array_set_new(job->results, index, err);
}

static void on_item_published(void *arg, int rc, const struct sp_publish_result *res)
{
    struct job_item *it = arg;
    struct job *job = it->job;

    if (rc == SP_HUB_OK) {
        json_array_set_new(job->results, it->index, result_json(job->push, it->channel, res));
    } else {
        item_failed(job, it->index, it->channel, rc);
    }
    free(it);
    job_release(job);
}

static void job_publish(struct job *job, size_t index, const struct sp_publish *pub)
{
    struct sp_engine_publish ep = {.pub = *pub};
    struct job_item *it = calloc(1, sizeof(*it));

    if (it == NULL) {
        item_failed(job, index, pub->channel, SP_HUB_NO_MEMORY);
        return;
    }
    *it = (struct job_item){job, index, ""};
    snprintf(it->channel, sizeof(it->channel), "%s", pub->channel);
    job->remaining++;
    int rc = sp_push_publish(job->push, &ep, on_item_published, it);
    if (rc < 0) {
        job->remaining--;
        free(it);
        item_failed(job, index, pub->channel, rc);
    }
}

static struct job *job_new(struct sp_push *push, struct sp_http_conn *conn, size_t count,
                           bool single)
{
    struct job *job = calloc(1, sizeof(*job));
    json_t *results = json_array();

    if (job == NULL || results == NULL) {
        free(job);
        json_decref(results);
        return NULL;
    }
    *job = (struct job){push, conn, 1, single, 202, results};
    for (size_t i = 0; i < count; i++)
        json_array_append_new(job->results, json_null());
    sp_http_set_ops(conn, &job_ops, job);
    return job;
}

/* signed_id: the verified webhook-id, which is then the de-duplication id
 * (the unsigned headers could be changed by whoever replays the request). */
static void publish_raw(struct pending *p, const struct sp_http_request *req, const char *body,
                        size_t len, const char *signed_id)
{
    char *event = header_text(req, "Sidepush-Event");
    char *dedup = signed_id ? strdup(signed_id) : dedup_header(req);

    if (event == NULL)
        event = header_text(req, "X-EventSource-Event"); /* Nchan's name for it */
    struct sp_publish pub = {p->channel, event, body, len, dedup, NULL, NULL};
    struct job *job = job_new(p->push, p->conn, 1, true);
    if (job == NULL) {
        sp_push_publish_refuse(p->push, p->conn, 503, "out of memory");
    } else {
        job_publish(job, 0, &pub);
        job_release(job); /* the guard reference: answers now if nothing is in flight */
    }
    free(event);
    free(dedup);
}

/* Validates every item before publishing any, so a bad batch publishes
 * nothing. A signed batch's items without an id of their own are
 * de-duplicated on the webhook-id ("<id>#<index>" in a batch). */
static void publish_batch(struct pending *p, const char *body, size_t len, const char *signed_id)
{
    struct sp_publish_batch batch;
    char err[256];

    if (sp_publish_parse_json(body, len, &batch, err, sizeof(err)) < 0) {
        sp_push_publish_refuse(p->push, p->conn, 400, err);
        return;
    }
    for (size_t i = 0; i < batch.count; i++) {
        const struct sp_publish_item *it = &batch.items[i];
        /* Event names are reported in place, item by item. */
        struct sp_publish pub = {it->channel, NULL, it->data, it->len, NULL, NULL, NULL};
        int rc = sp_hub_check(p->push->hub, &pub);
        if (rc < 0) {
            snprintf(err, sizeof(err), "items[%zu]: %s", i, sp_hub_error_text(rc));
            sp_push_publish_refuse(p->push, p->conn, publish_status(rc),
                                   batch.single ? sp_hub_error_text(rc) : err);
            sp_publish_batch_clear(&batch);
            return;
        }
    }
    struct job *job = job_new(p->push, p->conn, batch.count, batch.single);
    if (job == NULL) {
        sp_push_publish_refuse(p->push, p->conn, 503, "out of memory");
        sp_publish_batch_clear(&batch);
        return;
    }
    for (size_t i = 0; i < batch.count; i++) {
        const struct sp_publish_item *it = &batch.items[i];
        char *derived = NULL;
        if (it->id == NULL && signed_id != NULL &&
            (batch.single ? (derived = strdup(signed_id)) == NULL
                          : asprintf(&derived, "%s#%zu", signed_id, i) < 0))
            derived = NULL;
        struct sp_publish pub = {
            it->channel, it->event, it->data, it->len, it->id ? it->id : derived,
            it->formats, NULL};
        job_publish(job, i, &pub);
        free(derived);
    }
    job_release(job);
    sp_publish_batch_clear(&batch);
}

static void pending_free(struct pending *p)
{
    if (p->body)
        evbuffer_free(p->body);
    free(p);
}

static void publish_body(struct pending *p, const char *signed_id)
{
    const struct sp_http_request *req = sp_http_request(p->conn);
    size_t len = evbuffer_get_length(p->body);
    const char *body = (const char *)evbuffer_pullup(p->body, -1);

    if (body == NULL)
        body = "";
    if (p->target == T_CHANNEL_PUBLISH)
        publish_raw(p, req, body, len, signed_id);
    else
        publish_batch(p, body, len, signed_id);
}

static void claim_start(struct sp_push *push, struct sp_http_conn *conn, struct pending *p,
                        enum admin_op op, const char *channel, char *webhook_id, const void *body,
                        size_t len);

static void body_complete(struct pending *p)
{
    const struct sp_http_request *req = sp_http_request(p->conn);
    size_t len = evbuffer_get_length(p->body);
    const char *body = (const char *)evbuffer_pullup(p->body, -1);
    char *signed_id;
    int rc;

    sp_http_set_ops(p->conn, NULL, NULL);
    if (body == NULL)
        body = "";
    rc = signature_check(p->push, req, body, len, &signed_id);
    if (rc != 0) {
        sp_push_count_publish_error(p->push, 401);
        respond_unauthorized(p->conn, sp_webhook_error_text(rc));
    } else if (signed_id != NULL) {
        claim_start(p->push, p->conn, p, A_NONE, NULL, signed_id, body, len);
        return; /* the claim owns p now */
    } else {
        publish_body(p, NULL);
    }
    pending_free(p);
}

static void on_body(void *ctx)
{
    struct pending *p = ctx;
    struct evbuffer *in = sp_http_body(p->conn);

    if (in != NULL) {
        if (evbuffer_get_length(p->body) + evbuffer_get_length(in) > p->limit) {
            sp_http_set_ops(p->conn, NULL, NULL);
            sp_push_publish_refuse(p->push, p->conn, 413,
                                   p->target == T_CHANNEL_PUBLISH
                                       ? "message is larger than channels.max_message_size"
                                       : "body is larger than publish.max_body_size");
            pending_free(p);
            return;
        }
        evbuffer_add_buffer(p->body, in);
        sp_http_body_taken(p->conn);
    }
    if (sp_http_body_complete(p->conn))
        body_complete(p);
}

static void on_gone(void *ctx)
{
    pending_free(ctx);
}

static const struct sp_http_ops body_ops = {on_body, NULL, on_gone, NULL};

static void start_publish(struct sp_push *push, struct sp_http_conn *conn, enum target target,
                          struct sp_slice channel)
{
    struct pending *p = calloc(1, sizeof(*p));
    size_t limit = target == T_CHANNEL_PUBLISH ? push->config->channels.max_message_size
                                               : push->config->publish.max_body_size;

    if (sp_http_body_kind(conn) == SP_HTTP_BODY_LENGTH && sp_http_body_length(conn) > limit) {
        free(p);
        sp_push_publish_refuse(push, conn, 413,
                               target == T_CHANNEL_PUBLISH
                                   ? "message is larger than channels.max_message_size"
                                   : "body is larger than publish.max_body_size");
        return;
    }
    if (p == NULL || (p->body = evbuffer_new()) == NULL) {
        free(p);
        sp_push_publish_refuse(push, conn, 503, "out of memory");
        return;
    }
    p->push = push;
    p->conn = conn;
    p->target = target;
    p->limit = limit;
    if (channel.len > 0)
        memcpy(p->channel, channel.ptr, channel.len);
    p->channel[channel.len] = '\0';
    if (sp_http_body_complete(conn)) {
        body_complete(p);
        return;
    }
    sp_http_set_ops(conn, &body_ops, p);
    on_body(p); /* bytes that came with the head */
}

/* ---- channels -------------------------------------------------------------------------------- */

/* GET or DELETE /channels/{channel} with Redis: the answer comes later. */
struct admin {
    struct sp_push *push;
    struct sp_http_conn *conn; /* NULL once the client is gone */
    char channel[SP_CHANNEL_MAX + 1];
};

static void on_admin_client_gone(void *ctx)
{
    ((struct admin *)ctx)->conn = NULL;
}

static const struct sp_http_ops admin_ops = {NULL, NULL, on_admin_client_gone, NULL};

static struct admin *admin_new(struct sp_push *push, struct sp_http_conn *conn, const char *channel)
{
    struct admin *a = calloc(1, sizeof(*a));
    if (a == NULL)
        return NULL;
    *a = (struct admin){push, conn, ""};
    snprintf(a->channel, sizeof(a->channel), "%s", channel);
    sp_http_set_ops(conn, &admin_ops, a);
    return a;
}

/* Frees a and copies its channel out. Returns the connection to answer on,
 * or NULL when the client left or Redis was unavailable (answered 503). */
static struct sp_http_conn *admin_finish(struct admin *a, const struct sp_engine_channel *info,
                                         char channel[SP_CHANNEL_MAX + 1])
{
    struct sp_http_conn *conn = a->conn;

    snprintf(channel, SP_CHANNEL_MAX + 1, "%s", a->channel);
    free(a);
    if (conn == NULL)
        return NULL;
    sp_http_set_ops(conn, NULL, NULL);
    if (info != NULL && info->rc != SP_HUB_UNAVAILABLE)
        return conn;
    sp_http_respond_error(conn, 503, sp_hub_error_text(SP_HUB_UNAVAILABLE));
    return NULL;
}

static void on_engine_info(void *arg, const struct sp_engine_channel *info)
{
    struct admin *a = arg;
    struct sp_channel_info local = {0}; /* subscribers are each replica's own */
    char channel[SP_CHANNEL_MAX + 1];

    struct sp_push *push = a->push;

    sp_hub_channel_info(push->hub, a->channel, &local);
    struct sp_http_conn *conn = admin_finish(a, info, channel); /* frees a */
    size_t subscribers = local.subscribers;

    if (conn == NULL)
        return;
    if (info->messages == 0 && subscribers == 0)
        sp_http_respond_error(conn, 404, "no such channel (no subscribers, no messages)");
    else
        respond_json(conn, 200,
                     json_pack("{s:s, s:I, s:I, s:I, s:s?, s:s?}", "channel", channel,
                               "subscribers", (json_int_t)subscribers, "members",
                               (json_int_t)info->members, "messages", (json_int_t)info->messages,
                               "first_id", info->first_id[0] ? info->first_id : NULL, "last_id",
                               info->last_id[0] ? info->last_id : NULL));
}

static void on_engine_delete(void *arg, const struct sp_engine_channel *info)
{
    char channel[SP_CHANNEL_MAX + 1];
    struct sp_http_conn *conn = admin_finish(arg, info, channel);

    if (conn == NULL)
        return;
    if (info->rc == SP_HUB_NO_CHANNEL && info->replicas == 0)
        sp_http_respond_error(conn, 404, "no such channel (no subscribers, no messages)");
    else
        respond_json(
            conn, 200,
            json_pack("{s:s, s:I}", "channel", channel, "replicas", (json_int_t)info->replicas));
}

static void engine_channel(struct sp_push *push, struct sp_http_conn *conn, const char *channel,
                           bool delete)
{
    struct admin *a = admin_new(push, conn, channel);
    int rc;

    if (a == NULL) {
        sp_http_respond_error(conn, 503, "out of memory");
        return;
    }
    rc = delete ? sp_engine_channel_delete(push->shared->engine, channel, on_engine_delete, a)
                : sp_engine_channel_info(push->shared->engine, channel, on_engine_info, a);
    if (rc < 0) {
        char name[SP_CHANNEL_MAX + 1];
        admin_finish(a, NULL, name); /* answers 503 */
    }
}

static void channel_info(struct sp_push *push, struct sp_http_conn *conn, const char *channel)
{
    struct sp_channel_info info;

    /* A pattern is not in Redis: its subscribers are this replica's. */
    if (push->shared->engine != NULL && strchr(channel, '*') == NULL) {
        engine_channel(push, conn, channel, false);
        return;
    }
    if (sp_hub_channel_info(push->hub, channel, &info) < 0) {
        sp_http_respond_error(conn, 404, "no such channel (no subscribers, no messages)");
        return;
    }
    respond_json(conn, 200,
                 json_pack("{s:s, s:I, s:I, s:I, s:s?, s:s?}", "channel", channel, "subscribers",
                           (json_int_t)info.subscribers, "members",
                           (json_int_t)sp_push_presence_count(push, channel), "messages",
                           (json_int_t)info.messages, "first_id",
                           info.first_id[0] ? info.first_id : NULL, "last_id",
                           info.last_id[0] ? info.last_id : NULL));
}

static void channel_delete(struct sp_push *push, struct sp_http_conn *conn, const char *channel)
{
    if (push->shared->engine != NULL) {
        engine_channel(push, conn, channel, true);
        return;
    }
    int closed = sp_hub_channel_delete(push->hub, channel);

    if (closed < 0) {
        sp_http_respond_error(conn, 404, "no such channel (no subscribers, no messages)");
        return;
    }
    respond_json(conn, 200, json_pack("{s:s, s:i}", "channel", channel, "closed", closed));
}

static void on_engine_members(void *arg, const char *json)
{
    char channel[SP_CHANNEL_MAX + 1];
    struct sp_engine_channel up = {.rc = json ? SP_HUB_OK : SP_HUB_UNAVAILABLE};
    struct sp_http_conn *conn = admin_finish(arg, &up, channel);

    if (conn == NULL)
        return;
    struct evbuffer *body = evbuffer_new();
    if (body == NULL || evbuffer_add_printf(body, "%s\n", json) < 0)
        sp_http_respond_error(conn, 503, "out of memory");
    else
        sp_http_respond(conn, 200, "application/json", (const char *)evbuffer_pullup(body, -1),
                        evbuffer_get_length(body));
    if (body)
        evbuffer_free(body);
}

/* The members: this process's, or with Redis the deployment's. */
static void channel_presence(struct sp_push *push, struct sp_http_conn *conn, const char *channel)
{
    if (push->shared->engine != NULL) {
        struct admin *a = admin_new(push, conn, channel);
        char name[SP_CHANNEL_MAX + 1];

        if (a == NULL)
            sp_http_respond_error(conn, 503, "out of memory");
        else if (sp_engine_members(push->shared->engine, channel,
                                   push->config->presence.max_members, on_engine_members, a) < 0)
            admin_finish(a, NULL, name); /* answers 503 */
        return;
    }
    struct evbuffer *body = evbuffer_new();

    if (body == NULL) {
        sp_http_respond_error(conn, 503, "out of memory");
        return;
    }
    sp_push_presence_json(push, channel, body);
    evbuffer_add(body, "\n", 1);
    sp_http_respond(conn, 200, "application/json", (const char *)evbuffer_pullup(body, -1),
                    evbuffer_get_length(body));
    evbuffer_free(body);
}

static void admin_run(struct sp_push *push, struct sp_http_conn *conn, enum admin_op op,
                      const char *channel)
{
    if (op == A_DELETE)
        channel_delete(push, conn, channel);
    else if (op == A_PRESENCE)
        channel_presence(push, conn, channel);
    else
        channel_info(push, conn, channel);
}

/* ---- routing ----------------------------------------------------------------------------- */

static bool channel_path(struct sp_slice path, const char *prefix, struct sp_slice *channel)
{
    size_t n = strlen(prefix);
    if (path.len <= n || memcmp(path.ptr, prefix, n) != 0)
        return false;
    *channel = (struct sp_slice){path.ptr + n, path.len - n};
    return true;
}

static void method_not_allowed(struct sp_push *push, struct sp_http_conn *conn, const char *allow)
{
    char message[128];

    snprintf(message, sizeof(message), "use %s", allow);
    sp_push_count_publish_error(push, 405);
    sp_http_respond_not_allowed(conn, allow, message);
}

void sp_push_publish_request(struct sp_push *push, struct sp_http_conn *conn,
                             const struct sp_http_request *req)
{
    struct sp_slice channel = {NULL, 0};
    bool is_publish = sp_slice_eq(req->path, "/publish") || sp_slice_eq(req->path, "/publish/");
    bool is_channel_publish = !is_publish && channel_path(req->path, "/publish/", &channel);
    bool is_channel = channel_path(req->path, "/channels/", &channel) || is_channel_publish;

    if (!is_publish && !is_channel) {
        sp_push_count_publish_error(push, 404);
        sp_http_respond_error(conn, 404,
                              "no such endpoint: POST /publish, POST /publish/{channel}, "
                              "GET or DELETE /channels/{channel}");
        return;
    }
    if (!bearer_ok(push, req)) {
        sp_push_count_publish_error(push, 401);
        respond_unauthorized(conn, "missing or wrong bearer token");
        return;
    }
    bool presence = !is_channel_publish && channel.len > 9 &&
                    memcmp(channel.ptr + channel.len - 9, "/presence", 9) == 0;
    if (presence)
        channel.len -= 9;
    /* A pattern's subscribers can be counted; nothing else is done to one. */
    bool pattern_info = !is_channel_publish && !presence && sp_slice_eq(req->method, "GET") &&
                        sp_hub_pattern_valid(channel.ptr, channel.len);
    if (is_channel && !pattern_info && !sp_hub_channel_name_valid(channel.ptr, channel.len)) {
        sp_push_publish_refuse(push, conn, 400, sp_hub_error_text(SP_HUB_BAD_CHANNEL));
        return;
    }
    if (is_publish || is_channel_publish) {
        if (!sp_slice_eq(req->method, "POST")) {
            method_not_allowed(push, conn, "POST");
            return;
        }
        start_publish(push, conn, is_publish ? T_JSON_PUBLISH : T_CHANNEL_PUBLISH, channel);
        return;
    }
    char name[SP_CHANNEL_MAX + 1];
    memcpy(name, channel.ptr, channel.len);
    name[channel.len] = '\0';
    /* With signatures required, reading or deleting a channel is signed too
     * (over the empty body). */
    char *signed_id;
    int rc = signature_check(push, req, "", 0, &signed_id);
    if (rc != 0) {
        sp_push_count_publish_error(push, 401);
        respond_unauthorized(conn, sp_webhook_error_text(rc));
        return;
    }
    bool get = sp_slice_eq(req->method, "GET") || sp_slice_eq(req->method, "HEAD");
    enum admin_op op = presence                             ? (get ? A_PRESENCE : A_NONE)
                       : get                                ? A_INFO
                       : sp_slice_eq(req->method, "DELETE") ? A_DELETE
                                                            : A_NONE;
    if (op == A_NONE) {
        free(signed_id);
        method_not_allowed(push, conn, presence ? "GET" : "GET, DELETE");
    } else if (signed_id != NULL) {
        claim_start(push, conn, NULL, op, name, signed_id, "", 0);
    } else {
        admin_run(push, conn, op, name);
    }
}

/* ---- signed requests: each webhook-id is used once ------------------------------------------ */

/* A signed request whose webhook-id is being claimed in the replay store
 * (with Redis the verdict comes later; the client may leave meanwhile). */
struct claim {
    struct sp_push *push;
    struct sp_http_conn *conn; /* NULL once the client is gone */
    struct pending *p;         /* a publish and its body, or NULL */
    enum admin_op op;
    char *webhook_id;
    char channel[SP_CHANNEL_MAX + 1];
};

static void claim_free(struct claim *c)
{
    if (c->p != NULL)
        pending_free(c->p);
    free(c->webhook_id);
    free(c);
}

static void on_claim_client_gone(void *ctx)
{
    ((struct claim *)ctx)->conn = NULL;
}

static const struct sp_http_ops claim_ops = {NULL, NULL, on_claim_client_gone, NULL};

static void on_verdict(void *arg, enum sp_replay_verdict verdict)
{
    struct claim *c = arg;
    struct sp_http_conn *conn = c->conn;

    if (conn == NULL) {
        claim_free(c);
        return;
    }
    sp_http_set_ops(conn, NULL, NULL);
    /* An exact retry (same method, target and body) of a publish or a read
     * goes on: a publish is then a duplicate of the first (its webhook-id is
     * its de-duplication id). Anything else under a used id is a replay. */
    if (verdict == SP_REPLAY_UNAVAILABLE)
        sp_push_publish_refuse(c->push, conn, 503,
                               "the store of used webhook-ids is unavailable; retry later");
    else if (verdict == SP_REPLAY_REUSED)
        sp_push_publish_refuse(c->push, conn, 409,
                               "webhook-id was already used for another request");
    else if (verdict == SP_REPLAY_RETRY && c->op == A_DELETE)
        sp_push_publish_refuse(c->push, conn, 409,
                               "webhook-id was already used (a DELETE is not repeated)");
    else if (c->p != NULL)
        publish_body(c->p, c->webhook_id);
    else
        admin_run(c->push, conn, c->op, c->channel);
    claim_free(c);
}

/* Takes p and webhook_id. */
static void claim_start(struct sp_push *push, struct sp_http_conn *conn, struct pending *p,
                        enum admin_op op, const char *channel, char *webhook_id, const void *body,
                        size_t len)
{
    struct claim *c = calloc(1, sizeof(*c));
    char fingerprint[SP_SHA256_HEX];

    if (c == NULL || sp_replay_fingerprint(sp_http_request(conn), body, len, fingerprint) < 0) {
        free(c);
        free(webhook_id);
        if (p != NULL)
            pending_free(p);
        sp_push_publish_refuse(push, conn, 503, "out of memory");
        return;
    }
    *c = (struct claim){push, conn, p, op, webhook_id, ""};
    if (channel != NULL)
        snprintf(c->channel, sizeof(c->channel), "%s", channel);
    sp_http_set_ops(conn, &claim_ops, c);
    sp_replay_claim(push->shared->replays, webhook_id, fingerprint, on_verdict, c);
}
