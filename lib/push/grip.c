/* GRIP (Pushpin's protocol) holds: a proxied backend answered with Grip-Hold,
 * so the client stays connected as a subscriber of the Grip-Channel channels.
 *   stream:   the backend's response goes out, then the http-stream content of
 *             every publish is appended (Grip-Keep-Alive data when idle);
 *   response: the request is held until a publish with an http-response
 *             format answers it, or Grip-Timeout passes and the backend's own
 *             response goes out. */
#include <event2/event_struct.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/base64.h"
#include "push/grip.h"

struct sp_grip;

/* A worker's GRIP holds. */
struct grip_kind {
    struct sp_kind_state base;
    LIST_HEAD(, sp_grip) all;
};

struct sp_grip {
    struct grip_kind *kind;
    LIST_ENTRY(sp_grip) link;
    struct sp_subscription *subs;
    bool stream;
    /* stream holds */
    struct sp_stream *out;
    enum sp_http_stream framing;
    char *keepalive;
    size_t keepalive_len;
    uint64_t keepalive_ms;
    uint64_t retire_ms; /* limits.max_connection_age */
    /* response holds */
    struct sp_http_conn *conn;
    struct event timer;
    int status;
    char *reason;
    struct evbuffer *headers;
    struct evbuffer *body;
};

static void grip_free(struct sp_grip *g)
{
    LIST_REMOVE(g, link);
    g->kind->base.count--;
    sp_subscription_close(g->subs);
    if (!g->stream)
        event_del(&g->timer);
    free(g->keepalive);
    free(g->reason);
    if (g->headers)
        evbuffer_free(g->headers);
    if (g->body)
        evbuffer_free(g->body);
    free(g);
}

/* ---- streams ------------------------------------------------------------------------ */

static int write_piece(struct sp_grip *g, const void *data, size_t len)
{
    return sp_http_stream_write(g->out, g->framing, data, len);
}

static void stream_deliver(void *owner, struct sp_msg *msg)
{
    struct sp_grip *g = owner;
    enum sp_msg_format fmt =
        g->framing == SP_HTTP_STREAM_CHUNKED ? SP_FMT_GRIP_STREAM : SP_FMT_GRIP_CONTENT;

    if (sp_msg_render(msg, fmt).len == 0)
        return; /* no http-stream content for this transport */
    if (sp_push_send_msg(g->kind->base.push, g->out, msg, SP_WIRE(fmt)) < 0) {
        sp_stream_close(g->out);
        grip_free(g);
    }
}

static void stream_deleted(void *owner)
{
    struct sp_grip *g = owner;
    sp_http_stream_end(g->out, g->framing);
    grip_free(g);
}

static void stream_closed(void *ctx, enum sp_stream_end why)
{
    grip_free(ctx);
}

static const struct sp_stream_ops stream_ops = {.closed = stream_closed};

static void hold_stream(struct sp_push *push, struct sp_grip *g, struct sp_http_conn *conn,
                        const struct sp_grip_hold *hold)
{
    enum sp_http_stream framing;

    if (hold->keepalive != NULL && hold->keepalive_len > 0) {
        g->keepalive = malloc(hold->keepalive_len);
        if (g->keepalive) {
            memcpy(g->keepalive, hold->keepalive, hold->keepalive_len);
            g->keepalive_len = hold->keepalive_len;
            g->keepalive_ms = hold->keepalive_ms;
        }
    }
    g->out = sp_http_begin_stream(conn, hold->status, hold->reason, hold->headers, false, NULL,
                                  &framing);
    if (g->out == NULL) {
        sp_http_respond_error(conn, 500, "out of memory");
        grip_free(g);
        return;
    }
    g->framing = framing;
    g->retire_ms = sp_retire_at(sp_now_ms(), sp_push_config(push)->limits.max_connection_age_ms);
    sp_stream_set_ops(g->out, sp_push_config(push)->limits.subscriber_max_unsent, &stream_ops, g);
    size_t len = evbuffer_get_length(hold->body);
    if (len > 0 && write_piece(g, evbuffer_pullup(hold->body, -1), len) < 0) {
        sp_stream_close(g->out);
        grip_free(g);
    }
}

/* ---- responses --------------------------------------------------------------------------- */

static void answer(struct sp_grip *g, int status, const char *reason, struct evbuffer *headers,
                   const void *body, size_t len)
{
    sp_http_set_ops(g->conn, NULL, NULL);
    sp_http_begin(g->conn, status, reason, headers, (int64_t)len);
    sp_http_write(g->conn, body, len);
    sp_http_finish(g->conn);
}

static void response_deliver(void *owner, struct sp_msg *msg)
{
    struct sp_grip *g = owner;
    json_t *fmt = json_object_get(sp_msg_grip(msg), "http-response");
    const char *key;
    json_t *v;

    if (!json_is_object(fmt))
        return;
    struct evbuffer *h = evbuffer_new();
    if (h == NULL)
        return;
    json_t *headers = json_object_get(fmt, "headers");
    json_object_foreach(headers, key, v)
    {
        /* A name or value that could split the head is refused by the HTTP
         * layer; the framing is sidepush's own. */
        if (json_is_string(v) && strcasecmp(key, "Content-Length") != 0 &&
            strcasecmp(key, "Transfer-Encoding") != 0)
            sp_http_add_header(h, key, json_string_value(v), json_string_length(v));
    }
    json_int_t code = json_is_integer(json_object_get(fmt, "code"))
                          ? json_integer_value(json_object_get(fmt, "code"))
                          : 200;
    const char *reason = json_string_value(json_object_get(fmt, "reason"));
    json_t *body = json_object_get(fmt, "body");
    json_t *bin = json_object_get(fmt, "body-bin");
    char *decoded = NULL;
    const char *bytes = "";
    size_t len = 0;
    if (json_is_string(body)) {
        bytes = json_string_value(body);
        len = json_string_length(body);
    } else if (json_is_string(bin) &&
               sp_base64_decode(json_string_value(bin), json_string_length(bin), &decoded, &len) ==
                   0) {
        bytes = decoded;
    }
    if (reason && strpbrk(reason, "\r\n"))
        reason = NULL;
    answer(g, code >= 100 && code <= 999 ? (int)code : 200, reason, h, bytes, len);
    evbuffer_free(h);
    free(decoded);
    grip_free(g);
}

static void response_deleted(void *owner)
{
    struct sp_grip *g = owner;
    sp_http_set_ops(g->conn, NULL, NULL);
    sp_http_respond_error(g->conn, 410, "channel deleted");
    grip_free(g);
}

static void response_timeout(evutil_socket_t fd, short what, void *arg)
{
    struct sp_grip *g = arg;
    size_t len = evbuffer_get_length(g->body);

    /* The backend's own answer, as it gave it with the hold. */
    answer(g, g->status, g->reason, g->headers, len ? evbuffer_pullup(g->body, -1) : NULL, len);
    grip_free(g);
}

static void response_gone(void *ctx)
{
    grip_free(ctx);
}

static const struct sp_http_ops held_ops = {NULL, NULL, response_gone, NULL};

static void hold_response(struct sp_push *push, struct sp_grip *g, struct sp_http_conn *conn,
                          const struct sp_grip_hold *hold)
{
    g->conn = conn;
    g->status = hold->status;
    g->reason = hold->reason ? strdup(hold->reason) : NULL;
    g->headers = evbuffer_new();
    g->body = evbuffer_new();
    if (g->headers == NULL || g->body == NULL) {
        sp_http_respond_error(conn, 500, "out of memory");
        grip_free(g);
        return;
    }
    evbuffer_add_buffer(g->headers, hold->headers);
    evbuffer_add_buffer(g->body, hold->body);
    evtimer_assign(&g->timer, sp_push_base(push), response_timeout, g);
    struct timeval tv = sp_timeval_ms(hold->timeout_ms);
    evtimer_add(&g->timer, &tv);
    sp_http_set_ops(conn, &held_ops, g);
}

/* ---- entry points ------------------------------------------------------------------------- */

void sp_grip_hold(void *state, struct sp_http_conn *conn, const struct sp_grip_hold *hold)
{
    struct grip_kind *kind = state;
    struct sp_push *push = kind->base.push;
    struct sp_grip *g = calloc(1, sizeof(*g));

    if (g == NULL) {
        sp_http_respond_error(conn, 500, "out of memory");
        return;
    }
    g->kind = kind;
    g->stream = hold->stream;
    LIST_INSERT_HEAD(&kind->all, g, link);
    kind->base.count++;
    int rc = sp_subscription_open(
        push, hold->channels, g->stream ? stream_deliver : response_deliver,
        g->stream ? stream_deleted : response_deleted, g, NULL, NULL, &g->subs);
    if (rc < 0) {
        sp_http_respond_error(conn, 502, "backend sent an invalid Grip-Channel");
        grip_free(g);
        return;
    }
    if (g->stream)
        hold_stream(push, g, conn, hold);
    else
        hold_response(push, g, conn, hold);
}

/* A held stream ends as the backend's own stream would: its last chunk. */
static void end_stream_hold(struct sp_grip *g)
{
    if (g->out != NULL)
        sp_http_stream_end(g->out, g->framing);
    grip_free(g);
}

static void grip_tick(void *state, uint64_t now)
{
    struct grip_kind *kind = state;
    struct sp_grip *g, *next;

    for (g = LIST_FIRST(&kind->all); g != NULL; g = next) {
        next = LIST_NEXT(g, link);
        if (g->stream && g->out != NULL && now >= g->retire_ms) {
            sp_push_stats(kind->base.push)->aged_out++;
            end_stream_hold(g);
            continue;
        }
        if (!g->stream || g->out == NULL || g->keepalive == NULL ||
            now - sp_stream_last_write(g->out) < g->keepalive_ms)
            continue;
        if (write_piece(g, g->keepalive, g->keepalive_len) < 0) {
            sp_stream_close(g->out);
            grip_free(g);
        }
    }
}

static void *grip_open(struct sp_push *push)
{
    return sp_kind_state_new(push, sizeof(struct grip_kind));
}

static void grip_close(void *state)
{
    struct grip_kind *kind = state;
    struct sp_grip *g;

    while ((g = LIST_FIRST(&kind->all)) != NULL) {
        if (g->stream && g->out)
            sp_stream_close(g->out);
        else if (!g->stream && g->conn) {
            sp_http_set_ops(g->conn, NULL, NULL);
            sp_http_abort(g->conn);
        }
        grip_free(g);
    }
    free(kind);
}

static bool grip_drain_one(void *state)
{
    struct grip_kind *kind = state;
    struct sp_grip *g = LIST_FIRST(&kind->all);

    if (g == NULL)
        return false;
    if (g->stream) {
        end_stream_hold(g);
    } else {
        response_timeout(-1, 0, g); /* the backend's own answer, now */
    }
    return true;
}

const struct sp_transport_ops sp_grip_transport = {
    .label = "grip",
    .open = grip_open,
    .close = grip_close,
    .tick = grip_tick,
    .drain_one = grip_drain_one,
    .count = sp_kind_state_count,
};
