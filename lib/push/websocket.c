/* WebSocket subscribers (RFC 6455): the handshake, then published messages
 * out as text frames, pings both ways, the close handshake, and optionally
 * the client's own messages forwarded to the backend as HTTP POSTs. */
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/base64.h"
#include "core/template.h"
#include "http/wsdeflate.h"
#include "http/wsframe.h"

#include "push/websocket.h"

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define ENVELOPE_PROTOCOL "sidepush-envelope"

struct sp_ws;

/* A worker's WebSocket subscribers. */
struct ws_kind {
    struct sp_kind_state base;
    LIST_HEAD(, sp_ws) all;
};

struct sp_ws {
    struct ws_kind *kind;
    struct sp_stream *stream;
    struct sp_subscription *subs;
    struct sp_ws_reader *reader;
    LIST_ENTRY(sp_ws) link;
    struct sp_wire wire; /* the format, and compression if negotiated */
    bool envelope;
    bool in_reader;   /* inside sp_ws_reader_feed: freeing must wait */
    bool send_failed; /* output over its limit: drop the connection */
    bool awaiting_pong;
    unsigned want_close; /* close code to send once out of the reader */
    const char *want_reason;
    uint64_t ping_interval_ms;
    uint64_t last_ping;
    uint64_t retire_ms;             /* limits.max_connection_age */
    uint64_t expires_ms;            /* the token's exp (monotonic ms), or UINT64_MAX */
    const char *heartbeat;          /* in config */
    const struct sp_config *config; /* held: the route's, whatever reloads came since */
    struct sp_forward *forward;     /* client messages to the backend, or NULL */
};

/* A token's end: the page fetches a new one and reconnects (4000-4999 are
 * the application's; 4401 reads as HTTP's 401). */
#define CLOSE_TOKEN_EXPIRED 4401

static void ws_free(struct sp_ws *ws);

/* The forwarder of a WebSocket that has a forward (the push had one). */
static const struct sp_forwarder_ops *forwarder(const struct sp_ws *ws)
{
    void *ctx;
    return sp_push_forwarder(ws->kind->base.push, &ctx);
}

/* ---- sending ------------------------------------------------------------------------ */

int sp_ws_send(struct sp_stream *stream, enum sp_ws_opcode op, const void *data, size_t len)
{
    uint8_t head[SP_WS_MAX_HEADER];
    size_t n = sp_ws_frame_header(head, op, true, len);

    if (sp_stream_write(stream, head, n) < 0 || (len > 0 && sp_stream_write(stream, data, len) < 0))
        return -1;
    return 0;
}

void sp_ws_send_close(struct sp_stream *stream, unsigned code, const char *reason)
{
    uint8_t payload[125];
    size_t len = strlen(reason);

    if (len > sizeof(payload) - 2)
        len = sizeof(payload) - 2;
    payload[0] = (uint8_t)(code >> 8);
    payload[1] = (uint8_t)code;
    memcpy(payload + 2, reason, len);
    sp_ws_send(stream, SP_WS_OP_CLOSE, payload, len + 2);
    sp_stream_end(stream);
}

static int send_frame(struct sp_ws *ws, enum sp_ws_opcode op, const void *data, size_t len)
{
    return sp_ws_send(ws->stream, op, data, len);
}

/* Sends a close frame (code and reason) and ends the connection once it is
 * out; the server closes TCP first, as RFC 6455 §7.1.1 asks. */
static void close_with(struct sp_ws *ws, unsigned code, const char *reason)
{
    sp_ws_send_close(ws->stream, code, reason);
    ws_free(ws);
}

/* Drops the connection at once (its output is over the limit). Inside the
 * frame reader's callbacks only a mark is left; on_readable acts on it. */
static void ws_abort(struct sp_ws *ws)
{
    if (ws->in_reader) {
        ws->send_failed = true;
        return;
    }
    sp_stream_close(ws->stream);
    ws_free(ws);
}

static void ws_close(struct sp_ws *ws, unsigned code, const char *reason)
{
    if (ws->in_reader) {
        if (ws->want_close == 0) {
            ws->want_close = code;
            ws->want_reason = reason;
        }
        return;
    }
    close_with(ws, code, reason);
}

/* A JSON control message for envelope clients ("sidepush-missed", errors). */
static int send_notice(struct sp_ws *ws, const char *json)
{
    return send_frame(ws, SP_WS_OP_TEXT, json, strlen(json));
}

/* ---- hub callbacks --------------------------------------------------------------------- */

static void on_deliver(void *owner, struct sp_msg *msg)
{
    struct sp_ws *ws = owner;

    if (sp_push_send_msg(ws->kind->base.push, ws->stream, msg, ws->wire) < 0) {
        sp_log_info(sp_push_log(ws->kind->base.push), "slow_consumer",
                    "WebSocket subscriber over limits.subscriber_max_unsent");
        ws_abort(ws); /* its buffer is full: no room for a close frame */
    }
}

static void on_deleted(void *owner)
{
    ws_close(owner, SP_WS_CLOSE_NORMAL, "channel deleted");
}

/* ---- forwarding client messages to the backend ------------------------------------------ */

/* The backend's answer to one of this client's messages: its body goes back
 * to the client (text if it is UTF-8), a failure as a sidepush-error event;
 * the connection stays either way. */
static void on_forward_reply(void *ctx, long status, const char *body, size_t len)
{
    struct sp_ws *ws = ctx;
    char notice[256];
    int rc = 0;

    if (status < 200 || status > 299) {
        snprintf(notice, sizeof(notice),
                 "{\"event\":\"sidepush-error\",\"data\":{\"error\":\"%s\",\"status\":%ld}}",
                 status == 0 ? "backend unreachable" : "backend refused the message",
                 status == 0 ? 502L : status);
        rc = send_notice(ws, notice);
    } else if (len > 0) {
        uint32_t utf8 = 0;
        bool text = sp_utf8_feed(&utf8, (const uint8_t *)body, len) && utf8 == 0;
        rc = send_frame(ws, text ? SP_WS_OP_TEXT : SP_WS_OP_BINARY, body, len);
    }
    if (rc < 0)
        ws_abort(ws);
}

/* ---- frames from the client ------------------------------------------------------------- */

static void on_message(void *ctx, bool text, const uint8_t *data, size_t len)
{
    struct sp_ws *ws = ctx;

    if (text && ws->heartbeat[0] != '\0' && len == strlen(ws->heartbeat) &&
        memcmp(data, ws->heartbeat, len) == 0) {
        if (send_frame(ws, SP_WS_OP_TEXT, "pong", 4) < 0)
            ws_abort(ws);
        return;
    }
    if (ws->forward != NULL && forwarder(ws)->send(ws->forward, text, data, len) < 0)
        ws_close(ws, 1013, "too many messages waiting for the backend");
    /* Without forwarding, client messages have nowhere to go: ignored. */
}

static void on_ping(void *ctx, const uint8_t *data, size_t len)
{
    struct sp_ws *ws = ctx;
    if (send_frame(ws, SP_WS_OP_PONG, data, len) < 0)
        ws_abort(ws);
}

static void on_pong(void *ctx, const uint8_t *data, size_t len)
{
    ((struct sp_ws *)ctx)->awaiting_pong = false;
}

static void on_close(void *ctx, unsigned code, const char *reason, size_t len)
{
    /* Echo the client's code (RFC 6455 §5.5.1); 1005 means it gave none. */
    ws_close(ctx, code == 1005 ? SP_WS_CLOSE_NORMAL : code, "");
}

static const struct sp_ws_reader_events reader_events = {on_message, on_ping, on_pong, on_close};

static void on_readable(void *ctx, const uint8_t *data, size_t len)
{
    struct sp_ws *ws = ctx;

    ws->in_reader = true;
    int rc = sp_ws_reader_feed(ws->reader, data, len);
    ws->in_reader = false;
    if (ws->send_failed) {
        ws_abort(ws);
    } else if (rc != 0) {
        const char *why = rc == SP_WS_CLOSE_BAD_DATA   ? "invalid UTF-8"
                          : rc == SP_WS_CLOSE_TOO_BIG  ? "message too big"
                          : rc == SP_WS_CLOSE_INTERNAL ? "out of memory"
                                                       : "protocol error";
        close_with(ws, (unsigned)rc, why);
    } else if (ws->want_close) {
        close_with(ws, ws->want_close, ws->want_reason);
    }
}

static void on_stream_closed(void *ctx, enum sp_stream_end why)
{
    ws_free(ctx);
}

static const struct sp_stream_ops stream_ops = {.readable = on_readable,
                                                .closed = on_stream_closed};

/* ---- lifecycle --------------------------------------------------------------------------- */

static void ws_free(struct sp_ws *ws)
{
    LIST_REMOVE(ws, link);
    ws->kind->base.count--;
    sp_subscription_close(ws->subs);
    sp_ws_reader_free(ws->reader);
    if (ws->forward != NULL)
        forwarder(ws)->close(ws->forward);
    sp_config_release(ws->config);
    free(ws);
}

static void ws_tick(void *state, uint64_t now)
{
    struct ws_kind *kind = state;
    struct sp_ws *ws, *next;

    for (ws = LIST_FIRST(&kind->all); ws != NULL; ws = next) {
        next = LIST_NEXT(ws, link);
        if (ws->stream != NULL && now >= ws->expires_ms) {
            close_with(ws, CLOSE_TOKEN_EXPIRED, "token expired");
            continue;
        }
        if (ws->stream != NULL && now >= ws->retire_ms) {
            sp_push_stats(kind->base.push)->aged_out++;
            close_with(ws, SP_WS_CLOSE_RESTART, "connection age limit: reconnect");
            continue;
        }
        if (ws->stream == NULL || now - ws->last_ping < ws->ping_interval_ms)
            continue;
        if (ws->awaiting_pong) {
            close_with(ws, SP_WS_CLOSE_GOING_AWAY, "ping timeout");
            continue;
        }
        ws->last_ping = now;
        ws->awaiting_pong = true;
        if (send_frame(ws, SP_WS_OP_PING, "", 0) < 0)
            ws_abort(ws);
    }
}

static void *ws_open(struct sp_push *push)
{
    return sp_kind_state_new(push, sizeof(struct ws_kind));
}

static void ws_close_all(void *state)
{
    struct ws_kind *kind = state;
    struct sp_ws *ws;

    while ((ws = LIST_FIRST(&kind->all)) != NULL) {
        if (ws->stream)
            sp_stream_close(ws->stream);
        ws_free(ws);
    }
    free(kind);
}

/* ---- handshake ---------------------------------------------------------------------------- */

/* Sec-WebSocket-Accept for key, or -1 if the key is not base64 of 16 bytes. */
static int accept_key(struct sp_slice key, char out[29])
{
    unsigned char raw[24];
    unsigned char digest[SHA_DIGEST_LENGTH];
    char buf[64 + sizeof(WS_GUID)];

    if (key.len != 24 || key.ptr[22] != '=' || key.ptr[23] != '=' ||
        EVP_DecodeBlock(raw, (const unsigned char *)key.ptr, 24) != 18)
        return -1;
    memcpy(buf, key.ptr, 24);
    memcpy(buf + 24, WS_GUID, sizeof(WS_GUID) - 1);
    SHA1((const unsigned char *)buf, 24 + sizeof(WS_GUID) - 1, digest);
    sp_base64_encode(digest, SHA_DIGEST_LENGTH, out);
    return 0;
}

bool sp_ws_handshake_check(struct sp_push *push, struct sp_http_conn *conn,
                           const struct sp_http_request *req, char accept[29])
{
    const struct sp_http_header *version = sp_http_find_header(req, "Sec-WebSocket-Version");
    const struct sp_http_header *key = sp_http_find_header(req, "Sec-WebSocket-Key");

    if (req->minor_version != 1) {
        sp_http_respond_error(conn, 400, "WebSocket needs HTTP/1.1");
        return false;
    }
    if (!sp_http_request_has_token(req, "Connection", "upgrade")) {
        sp_http_respond_error(conn, 400, "WebSocket handshake without Connection: Upgrade");
        return false;
    }
    if (version == NULL || !sp_slice_eq(version->value, "13")) {
        struct evbuffer *h = evbuffer_new();
        static const char body[] = "{\"error\":\"only WebSocket version 13 is supported\","
                                   "\"status\":426}\n";
        if (h == NULL) {
            sp_http_respond_error(conn, 500, "out of memory");
            return false;
        }
        evbuffer_add_printf(h, "Sec-WebSocket-Version: 13\r\nContent-Type: application/json\r\n"
                               "Upgrade: websocket\r\n");
        sp_http_begin(conn, 426, NULL, h, sizeof(body) - 1);
        sp_http_write(conn, body, sizeof(body) - 1);
        sp_http_finish(conn);
        evbuffer_free(h);
        return false;
    }
    if (key == NULL || accept_key(key->value, accept) < 0) {
        sp_http_respond_error(conn, 400, "Sec-WebSocket-Key must be base64 of 16 bytes");
        return false;
    }
    if (!sp_push_origin_allowed(push, req)) {
        sp_http_respond_error(conn, 403, "origin not allowed (cors.allow_origins)");
        return false;
    }
    return true;
}

void sp_ws_deflate_setup(const struct sp_http_request *req, bool enabled, uint64_t min_size,
                         struct sp_wire *wire, struct sp_ws_reader *reader,
                         struct evbuffer *headers)
{
    struct sp_ws_deflate d;
    char answer[SP_WS_DEFLATE_ANSWER_MAX];

    if (!enabled)
        return;
    /* Several header lines are one list (RFC 9110 §5.3): the first
     * acceptable offer in order wins. */
    for (size_t i = 0; i < req->nheaders; i++) {
        if (!sp_slice_caseeq(req->headers[i].name, "Sec-WebSocket-Extensions") ||
            !sp_ws_deflate_negotiate(req->headers[i].value, &d, answer))
            continue;
        wire->deflate_bits = d.server_bits;
        wire->deflate_min = min_size > UINT32_MAX ? UINT32_MAX : (uint32_t)min_size;
        sp_ws_reader_set_deflate(reader, d.client_bits, d.client_no_context);
        evbuffer_add_printf(headers, "Sec-WebSocket-Extensions: %s\r\n", answer);
        return;
    }
}

static bool offers_envelope(const struct sp_http_request *req)
{
    const struct sp_http_header *p = sp_http_find_header(req, "Sec-WebSocket-Protocol");
    return p != NULL && sp_http_list_has_token(p->value, ENVELOPE_PROTOCOL);
}

/* Envelope clients get their position first (so a client cut before any
 * message resumes), then the missed-history signal. */
/* {"channel":..,"count":..,"members":[..]} becomes the notice
 * {"event":"sidepush-members","channel":..,...}. */
static void send_members(void *ctx, const char *json)
{
    static const char head[] = "{\"event\":\"sidepush-members\",";
    size_t len = strlen(json);
    char *text = len > 1 ? malloc(sizeof(head) + len) : NULL;

    if (text == NULL)
        return;
    memcpy(text, head, sizeof(head) - 1);
    memcpy(text + sizeof(head) - 1, json + 1, len); /* past its "{", with its NUL */
    send_notice(ctx, text);
    free(text);
}

static int ws_preamble(void *ctx, const char *position, size_t count, bool missed,
                       const char *first)
{
    struct sp_ws *ws = ctx;
    char notice[160];
    int rc = 0;

    if (!ws->envelope)
        return 0;
    snprintf(notice, sizeof(notice), "{\"event\":\"sidepush-open\",\"id\":\"%s\"}", position);
    rc = send_notice(ws, notice);
    if (rc == 0 && missed) {
        snprintf(notice, sizeof(notice), "{\"event\":\"sidepush-missed\",\"first\":\"%s\"}", first);
        rc = send_notice(ws, notice);
    }
    if (rc == 0)
        sp_subscription_members(ws->subs, send_members, ws);
    return rc;
}

static int send_backlog(struct sp_ws *ws, const struct sp_cursor *cur)
{
    return sp_subscription_replay(ws->subs, cur, ws->stream, ws->wire, ws_preamble, ws);
}

static void ws_start(void *state, const struct sp_route_config *route, const char *spec,
                     struct sp_http_conn *conn, const struct sp_http_request *req,
                     const struct sp_identity *who)
{
    struct ws_kind *kind = state;
    struct sp_push *push = kind->base.push;
    char accept[29];
    struct sp_cursor cur;
    struct sp_ws *ws;
    struct evbuffer *leftover = NULL, *headers = NULL;
    enum sp_http_stream framing;

    if (!sp_ws_handshake_check(push, conn, req, accept))
        return;
    if (sp_push_request_cursor(push, req, &cur) < 0)
        cur = (struct sp_cursor){.present = true}; /* replay what there is, flag the gap */
    else if (!cur.present)
        cur = sp_push_start(push, route);
    ws = calloc(1, sizeof(*ws));
    if (ws == NULL) {
        sp_http_respond_error(conn, 500, "out of memory");
        return;
    }
    LIST_INSERT_HEAD(&kind->all, ws, link);
    kind->base.count++;
    ws->kind = kind;
    bool chosen_envelope = offers_envelope(req);
    ws->envelope = route->subscribe.websocket.envelope || chosen_envelope;
    ws->wire = SP_WIRE(ws->envelope ? SP_FMT_WS_ENVELOPE : SP_FMT_WS);
    ws->ping_interval_ms = route->subscribe.websocket.ping_interval_ms;
    ws->last_ping = sp_now_ms();
    ws->retire_ms = sp_retire_at(ws->last_ping, sp_push_config(push)->limits.max_connection_age_ms);
    ws->expires_ms = sp_identity_expiry(who);
    ws->config = sp_config_hold(route->owner);
    ws->heartbeat = route->subscribe.websocket.heartbeat;
    void *fw_ctx;
    const struct sp_forwarder_ops *fw = sp_push_forwarder(push, &fw_ctx);
    if (fw != NULL && route->subscribe.websocket.forward != NULL &&
        (ws->forward = fw->open(fw_ctx, route, spec, req, sp_http_peer(conn), on_forward_reply,
                                ws)) == NULL) {
        sp_http_respond_error(conn, 500, "out of memory");
        ws_free(ws);
        return;
    }
    ws->reader = sp_ws_reader_new(route->subscribe.websocket.max_message_size, &reader_events, ws);
    int rc = sp_subscription_open(push, spec, on_deliver, on_deleted, ws,
                                  route->subscribe.presence ? who : NULL, who ? who->user_id : NULL,
                                  &ws->subs);
    if (rc < 0 || ws->reader == NULL) {
        sp_http_respond_error(conn, rc < 0 ? sp_subscription_error_status(rc) : 500,
                              rc < 0 ? sp_hub_error_text(rc) : "out of memory");
        ws_free(ws);
        return;
    }
    leftover = evbuffer_new();
    headers = evbuffer_new();
    if (headers != NULL) {
        evbuffer_add_printf(headers,
                            "Upgrade: websocket\r\n"
                            "Connection: Upgrade\r\n"
                            "Sec-WebSocket-Accept: %s\r\n",
                            accept);
        if (chosen_envelope)
            evbuffer_add_printf(headers, "Sec-WebSocket-Protocol: " ENVELOPE_PROTOCOL "\r\n");
        sp_ws_deflate_setup(req, route->subscribe.websocket.compression,
                            route->subscribe.websocket.compression_min_size, &ws->wire, ws->reader,
                            headers);
    }
    if (leftover != NULL && headers != NULL)
        ws->stream = sp_http_begin_stream(conn, 101, NULL, headers, true, leftover, &framing);
    if (ws->stream == NULL) {
        sp_http_respond_error(conn, 500, "out of memory");
        ws_free(ws);
        goto done;
    }
    sp_stream_set_ops(ws->stream, sp_push_config(push)->limits.subscriber_max_unsent, &stream_ops,
                      ws);
    if (send_backlog(ws, &cur) < 0) {
        ws_abort(ws);
        goto done;
    }
    sp_stream_write_now(ws->stream);
    /* Frames the client sent right behind its handshake. */
    size_t n = evbuffer_get_length(leftover);
    if (n > 0)
        on_readable(ws, evbuffer_pullup(leftover, -1), n);
done:
    if (leftover)
        evbuffer_free(leftover);
    if (headers)
        evbuffer_free(headers);
}

static bool ws_drain_one(void *state)
{
    struct ws_kind *kind = state;
    struct sp_ws *ws = LIST_FIRST(&kind->all);

    if (ws == NULL)
        return false;
    if (ws->stream == NULL)
        ws_free(ws);
    else
        close_with(ws, SP_WS_CLOSE_GOING_AWAY, "server shutting down");
    return true;
}

const struct sp_transport_ops sp_ws_transport = {
    .label = "websocket",
    .open = ws_open,
    .close = ws_close_all,
    .start = ws_start,
    .tick = ws_tick,
    .drain_one = ws_drain_one,
    .count = sp_kind_state_count,
};
