/* The Pusher HTTP API on publish_listen (the pusher section), as the
 * server SDKs call it: POST /apps/{id}/events and /apps/{id}/batch_events,
 * the questions and the terminate of pusher_query.c, every request signed
 * (auth_key, auth_timestamp, body_md5, auth_signature). An event is
 * published into the channel like any other publish: native subscribers
 * get it too, and it goes into the channel's history. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "push/push-internal.h"
#include "push/pusher_sign.h"

#define EVENT_NAME_MAX 200

enum api_op { OP_EVENTS, OP_BATCH, OP_CHANNELS, OP_CHANNEL, OP_USERS, OP_TERMINATE };

/* A request whose body is still arriving. */
struct api_request {
    struct sp_push *push;
    struct sp_http_conn *conn;
    enum api_op op;
    struct evbuffer *body;
    char name[SP_CHANNEL_MAX + 1]; /* the channel or user the path names */
};

/* Every publish of one request, answered once the last is done. */
struct api_job {
    struct sp_http_conn *conn; /* NULL once the client is gone */
    size_t remaining;
    int status;    /* 200, or the first failure's */
    size_t events; /* batch: how many {} to answer */
    bool batch;
};

/* ---- answers --------------------------------------------------------------------------------- */

static void answer_json(struct sp_http_conn *conn, int status, const char *json)
{
    sp_http_respond(conn, status, "application/json", json, strlen(json));
}

static void on_job_client_gone(void *ctx)
{
    ((struct api_job *)ctx)->conn = NULL;
}

static const struct sp_http_ops job_ops = {NULL, NULL, on_job_client_gone, NULL};

static void job_release(struct api_job *job)
{
    if (--job->remaining > 0)
        return;
    if (job->conn != NULL) {
        sp_http_set_ops(job->conn, NULL, NULL);
        if (job->status != 200) {
            sp_http_respond_error(job->conn, job->status,
                                  job->status == 503 ? "the engine (Redis) is unavailable"
                                                     : "an event could not be published");
        } else if (!job->batch) {
            answer_json(job->conn, 200, "{}\n");
        } else {
            struct evbuffer *b = evbuffer_new();
            for (size_t i = 0; b != NULL && i < job->events; i++)
                evbuffer_add_printf(b, "%s{}", i ? "," : "{\"batch\":[");
            if (b != NULL) {
                evbuffer_add_printf(b, "%s]}\n", job->events ? "" : "{\"batch\":[");
                answer_json(job->conn, 200, (const char *)evbuffer_pullup(b, -1));
                evbuffer_free(b);
            } else {
                sp_http_respond_error(job->conn, 500, "out of memory");
            }
        }
    }
    free(job);
}

static void on_published(void *arg, int rc, const struct sp_publish_result *res)
{
    struct api_job *job = arg;

    (void)res;
    if (rc != SP_HUB_OK && job->status == 200)
        job->status = rc == SP_HUB_UNAVAILABLE || rc == SP_HUB_NOT_REPLICATED ? 503 : 400;
    job_release(job);
}

/* ---- events ------------------------------------------------------------------------------------
 */

static bool socket_id_valid(const char *s)
{
    const char *dot = strchr(s, '.');

    if (dot == NULL || dot == s || dot[1] == '\0' || strlen(s) > 40)
        return false;
    for (const char *c = s; *c; c++) {
        if (c != dot && (*c < '0' || *c > '9'))
            return false;
    }
    return true;
}

/* One event's channels: "channels" (an array) or "channel" (a string, as
 * pusher-php-server 7.2 and later send a single one). */
static json_t *event_channels(json_t *ev)
{
    json_t *many = json_object_get(ev, "channels"), *one = json_object_get(ev, "channel");

    if (json_is_array(many))
        return json_incref(many);
    if (json_is_string(one))
        return json_pack("[O]", one);
    return NULL;
}

/* Checks one event before anything of the request is published: status 0,
 * or the status and *why. */
static int check_event(struct sp_push *push, json_t *ev, const char **why)
{
    const struct sp_config *c = push->config;
    const char *name = json_string_value(json_object_get(ev, "name"));
    json_t *data = json_object_get(ev, "data");
    json_t *sid = json_object_get(ev, "socket_id");
    json_t *channels = event_channels(ev);
    size_t i, n = json_array_size(channels);
    json_t *ch;
    int status = 0;

    if (!json_is_object(ev) || name == NULL || name[0] == '\0' || strlen(name) > EVENT_NAME_MAX) {
        *why = "an event needs a name of 1-200 characters";
        status = 400;
    } else if (!json_is_string(data)) {
        *why = "an event's data must be a string (the SDKs encode objects as JSON)";
        status = 400;
    } else if (json_string_length(data) > c->pusher.max_event_size) {
        *why = "event data is larger than pusher.max_event_size";
        status = 413;
    } else if (n == 0 || n > c->pusher.max_channels_per_event) {
        *why = "name 1 to pusher.max_channels_per_event channels ('channels' or 'channel')";
        status = 400;
    } else if (sid != NULL && !json_is_null(sid) &&
               (!json_is_string(sid) || !socket_id_valid(json_string_value(sid)))) {
        *why = "socket_id must look like 123.456";
        status = 400;
    }
    json_array_foreach(channels, i, ch)
    {
        const char *s = json_string_value(ch);
        if (status != 0)
            break;
        const struct sp_publish pub = {.channel = s,
                                       .event = name,
                                       .data = json_string_value(data),
                                       .len = json_string_length(data)};
        int rc = s != NULL && strlen(s) <= 164 ? sp_hub_check(push->hub, &pub) : SP_HUB_BAD_CHANNEL;
        if (rc != SP_HUB_OK) {
            *why = sp_hub_error_text(rc);
            status = rc == SP_HUB_TOO_BIG ? 413 : 400;
        } else if (n > 1 && strncmp(s, "private-encrypted-", 18) == 0) {
            *why = "an encrypted channel's event names that channel alone";
            status = 400;
        }
    }
    json_decref(channels);
    return status;
}

static void publish_event(struct sp_push *push, struct api_job *job, json_t *ev)
{
    json_t *channels = event_channels(ev), *ch;
    json_t *data = json_object_get(ev, "data");
    const char *origin = json_string_value(json_object_get(ev, "socket_id"));
    size_t i;

    json_array_foreach(channels, i, ch)
    {
        struct sp_engine_publish p = {
            .pub = {.channel = json_string_value(ch),
                    .event = json_string_value(json_object_get(ev, "name")),
                    .data = json_string_value(data),
                    .len = json_string_length(data),
                    .origin = origin},
        };
        job->remaining++;
        int rc = sp_push_publish(push, &p, on_published, job);
        if (rc < 0)
            on_published(job, rc, NULL);
    }
    json_decref(channels);
}

static void handle_events(struct sp_push *push, struct sp_http_conn *conn, bool batch,
                          const char *body, size_t len)
{
    const struct sp_config *c = push->config;
    json_t *doc = json_loadb(body, len, 0, NULL);
    json_t *events = batch ? json_object_get(doc, "batch") : NULL;
    const char *why = "the body must be a JSON object";
    int status = json_is_object(doc) ? 0 : 400;
    size_t i, n = batch ? json_array_size(events) : 1;
    json_t *ev;

    if (status == 0 && batch &&
        (!json_is_array(events) || n == 0 || n > c->pusher.max_batch_events)) {
        why = "'batch' must hold 1 to pusher.max_batch_events events";
        status = 400;
    }
    for (i = 0; status == 0 && i < n; i++)
        status = check_event(push, batch ? json_array_get(events, i) : doc, &why);
    struct api_job *job = status == 0 ? calloc(1, sizeof(*job)) : NULL;
    if (status == 0 && job == NULL) {
        why = "out of memory";
        status = 503;
    }
    if (status != 0) {
        sp_push_publish_refuse(push, conn, status, why);
        json_decref(doc);
        return;
    }
    *job = (struct api_job){conn, 1, 200, n, batch};
    sp_http_set_ops(conn, &job_ops, job);
    if (batch) {
        json_array_foreach(events, i, ev)
        {
            publish_event(push, job, ev);
        }
    } else {
        publish_event(push, job, doc);
    }
    json_decref(doc);
    job_release(job); /* the guard reference: answers now if nothing is in flight */
}

/* ---- the request --------------------------------------------------------------------------------
 */

static void request_free(struct api_request *r)
{
    if (r->body)
        evbuffer_free(r->body);
    free(r);
}

static void body_complete(struct api_request *r)
{
    const struct sp_http_request *req = sp_http_request(r->conn);
    const struct sp_config *c = r->push->config;
    size_t len = evbuffer_get_length(r->body);
    const char *body = len ? (const char *)evbuffer_pullup(r->body, -1) : "";
    const char *why;

    sp_http_set_ops(r->conn, NULL, NULL);
    if (!c->pusher.enabled) { /* a reload removed the section while the body came */
        sp_push_publish_refuse(r->push, r->conn, 404,
                               "no such app (the pusher section was removed)");
        request_free(r);
        return;
    }
    int rc = sp_pusher_request_check(c->pusher.key, c->pusher.secret, req->method, req->path,
                                     req->query, body, len, (uint64_t)time(NULL),
                                     c->pusher.timestamp_tolerance_ms / 1000, &why);
    if (rc != SP_PUSHER_REQUEST_OK)
        sp_push_publish_refuse(r->push, r->conn, rc == SP_PUSHER_REQUEST_BAD_QUERY ? 400 : 401,
                               why);
    else if (r->op == OP_EVENTS || r->op == OP_BATCH)
        handle_events(r->push, r->conn, r->op == OP_BATCH, body, len);
    else if (r->op == OP_CHANNELS)
        sp_pusher_query_channels(r->push, r->conn, req->query);
    else if (r->op == OP_CHANNEL)
        sp_pusher_query_channel(r->push, r->conn, r->name, req->query);
    else if (r->op == OP_USERS)
        sp_pusher_query_users(r->push, r->conn, r->name);
    else
        sp_pusher_terminate(r->push, r->conn, r->name);
    request_free(r);
}

static void on_body(void *ctx)
{
    struct api_request *r = ctx;
    struct evbuffer *in = sp_http_body(r->conn);

    if (in != NULL) {
        if (evbuffer_get_length(r->body) + evbuffer_get_length(in) >
            r->push->config->publish.max_body_size) {
            sp_http_set_ops(r->conn, NULL, NULL);
            sp_push_publish_refuse(r->push, r->conn, 413,
                                   "body is larger than publish.max_body_size");
            request_free(r);
            return;
        }
        evbuffer_add_buffer(r->body, in);
        sp_http_body_taken(r->conn);
    }
    if (sp_http_body_complete(r->conn))
        body_complete(r);
}

static void on_gone(void *ctx)
{
    request_free(ctx);
}

static const struct sp_http_ops body_ops = {on_body, NULL, on_gone, NULL};

/* /apps/{id}/{what}: what, when id is this app's. */
static bool app_path(const struct sp_config *c, struct sp_slice path, struct sp_slice *what)
{
    size_t id_len = strlen(c->pusher.app_id);

    if (path.len < 6 + id_len + 2 || memcmp(path.ptr, "/apps/", 6) != 0 ||
        memcmp(path.ptr + 6, c->pusher.app_id, id_len) != 0 || path.ptr[6 + id_len] != '/')
        return false;
    *what = (struct sp_slice){path.ptr + 7 + id_len, path.len - 7 - id_len};
    return true;
}

/* Takes prefix off the front of *s; false (s unchanged) when it is not there. */
static bool take(struct sp_slice *s, const char *prefix)
{
    size_t n = strlen(prefix);

    if (s->len < n || memcmp(s->ptr, prefix, n) != 0)
        return false;
    s->ptr += n;
    s->len -= n;
    return true;
}

/* The operation what names, with the channel or user it names decoded into
 * name; -1 when it names none. */
static int api_op(struct sp_slice what, char name[SP_CHANNEL_MAX + 1])
{
    struct sp_slice rest = what;
    const char *slash;
    int op = -1;

    name[0] = '\0';
    if (sp_slice_eq(what, "events"))
        return OP_EVENTS;
    if (sp_slice_eq(what, "batch_events"))
        return OP_BATCH;
    if (sp_slice_eq(what, "channels"))
        return OP_CHANNELS;
    if (take(&rest, "channels/")) {
        op = OP_CHANNEL;
        slash = memchr(rest.ptr, '/', rest.len);
        if (slash != NULL) {
            struct sp_slice tail = {slash, rest.len - (size_t)(slash - rest.ptr)};
            if (!sp_slice_eq(tail, "/users"))
                return -1;
            op = OP_USERS;
            rest.len = (size_t)(slash - rest.ptr);
        }
    } else if (take(&rest, "users/")) {
        slash = memchr(rest.ptr, '/', rest.len);
        struct sp_slice tail = {slash, slash ? rest.len - (size_t)(slash - rest.ptr) : 0};
        if (slash == NULL || !sp_slice_eq(tail, "/terminate_connections"))
            return -1;
        op = OP_TERMINATE;
        rest.len = (size_t)(slash - rest.ptr);
    }
    if (op < 0 || rest.len == 0 || sp_http_query_decode(rest, name, SP_CHANNEL_MAX + 1) <= 0)
        return -1;
    return op;
}

void sp_push_pusher_api(struct sp_push *push, struct sp_http_conn *conn,
                        const struct sp_http_request *req)
{
    const struct sp_config *c = push->config;
    char name[SP_CHANNEL_MAX + 1];
    struct sp_slice what;
    int op;

    if (!app_path(c, req->path, &what)) {
        sp_push_publish_refuse(push, conn, 404, "no such app (pusher.app_id)");
        return;
    }
    if ((op = api_op(what, name)) < 0) {
        sp_push_publish_refuse(push, conn, 404,
                               "no such endpoint: /apps/{id}/events, batch_events, channels, "
                               "channels/{name}, channels/{name}/users, "
                               "users/{id}/terminate_connections");
        return;
    }
    bool post = op == OP_EVENTS || op == OP_BATCH || op == OP_TERMINATE;
    if (!sp_slice_eq(req->method, post ? "POST" : "GET")) {
        sp_push_publish_refuse(push, conn, 405, post ? "use POST" : "use GET");
        return;
    }
    if (sp_http_body_kind(conn) == SP_HTTP_BODY_LENGTH &&
        sp_http_body_length(conn) > c->publish.max_body_size) {
        sp_push_publish_refuse(push, conn, 413, "body is larger than publish.max_body_size");
        return;
    }
    struct api_request *r = calloc(1, sizeof(*r));
    if (r == NULL || (r->body = evbuffer_new()) == NULL) {
        free(r);
        sp_http_respond_error(conn, 503, "out of memory");
        return;
    }
    r->push = push;
    r->conn = conn;
    r->op = (enum api_op)op;
    memcpy(r->name, name, sizeof(name));
    if (sp_http_body_complete(conn)) {
        on_body(r);
        return;
    }
    sp_http_set_ops(conn, &body_ops, r);
    on_body(r);
}
