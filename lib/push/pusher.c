/* Pusher Channels clients (protocol 7) over the WebSocket code: the
 * handshake on /app/{key}, pusher:connection_established with a socket_id,
 * the client's frames, pings both ways, aging, drain and the kind's
 * interface (push/transport.h). A connection's channels are
 * pusher_channel.c's. Messages go out in the SP_FMT_PUSHER rendering, made
 * once per message. */
#include <jansson.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/parser.h"
#include "http/wsframe.h"
#include "push/pusher-internal.h"
#include "push/websocket.h"
static void conn_free(struct sp_pusher *p);

/* ---- sending ------------------------------------------------------------------------------ */

static int send_text(struct sp_pusher *p, const char *text, size_t len)
{
    return sp_ws_send(p->stream, SP_WS_OP_TEXT, text, len);
}

/* Sends {"event":event,"channel":channel,"data":data} (channel may be
 * NULL); data is sent as a JSON string (protocol 7 double-encodes it) when
 * string_data, else as it is. Takes data. */
int sp_pusher_send_event(struct sp_pusher *p, const char *event, const char *channel, json_t *data,
                         bool string_data)
{
    char *inner = string_data ? json_dumps(data, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    json_t *obj = json_pack("{s:s}", "event", event);
    int rc = -1;

    if (obj != NULL && channel != NULL)
        json_object_set_new(obj, "channel", json_string(channel));
    if (obj != NULL && data != NULL && (string_data ? inner != NULL : true))
        json_object_set_new(obj, "data", string_data ? json_string(inner) : json_incref(data));
    char *text = obj ? json_dumps(obj, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    if (text != NULL)
        rc = send_text(p, text, strlen(text));
    free(text);
    free(inner);
    json_decref(obj);
    json_decref(data);
    return rc;
}

/* pusher:error; code 0 sends null (an error that closes nothing). */
int sp_pusher_send_error(struct sp_pusher *p, unsigned code, const char *message)
{
    json_t *data = json_pack("{s:s}", "message", message);

    if (data != NULL)
        json_object_set_new(data, "code", code ? json_integer(code) : json_null());
    return sp_pusher_send_event(p, "pusher:error", NULL, data, false);
}

/* A close frame with a Pusher code, after a pusher:error saying why; the
 * stream ends once both are out. */
static void close_with(struct sp_pusher *p, unsigned code, const char *reason)
{
    if (code >= 4000)
        sp_pusher_send_error(p, code, reason);
    sp_ws_send_close(p->stream, code, reason);
    conn_free(p);
}

void sp_pusher_abort(struct sp_pusher *p)
{
    if (p->in_reader) {
        p->send_failed = true;
        return;
    }
    sp_stream_close(p->stream);
    conn_free(p);
}

void sp_pusher_close(struct sp_pusher *p, unsigned code, const char *reason)
{
    if (p->in_reader) {
        if (p->want_close == 0) {
            p->want_close = code;
            p->want_reason = reason;
        }
        return;
    }
    close_with(p, code, reason);
}

/* ---- frames from the client ----------------------------------------------------------------- */

/* data of a pusher: event: an object, or (some clients) the same as a
 * JSON string. */
static json_t *event_data(json_t *msg)
{
    json_t *data = json_object_get(msg, "data");

    if (json_is_string(data))
        return json_loads(json_string_value(data), 0, NULL);
    return json_incref(data);
}

static void on_event(struct sp_pusher *p, json_t *msg)
{
    const char *event = json_string_value(json_object_get(msg, "event"));
    json_t *data;

    if (event == NULL) {
        sp_pusher_send_error(p, 0, "a message needs an event");
        return;
    }
    if (strcmp(event, "pusher:ping") == 0) {
        if (sp_pusher_send_event(p, "pusher:pong", NULL, json_object(), false) < 0)
            sp_pusher_abort(p);
    } else if (strcmp(event, "pusher:pong") == 0) {
        p->ping_sent = 0;
    } else if (strcmp(event, "pusher:subscribe") == 0) {
        data = event_data(msg);
        sp_pusher_subscribe(p, data);
        json_decref(data);
    } else if (strcmp(event, "pusher:unsubscribe") == 0) {
        data = event_data(msg);
        sp_pusher_unsubscribe(p, data);
        json_decref(data);
    } else if (strcmp(event, "pusher:signin") == 0) {
        data = event_data(msg);
        sp_pusher_signin(p, data);
        json_decref(data);
    } else if (has_prefix(event, "client-")) {
        sp_pusher_client_event(p, event, msg);
    }
    /* Other pusher: events (signin, watchlist) and unknown ones: ignored,
     * as Pusher ignores what it does not know. */
}

static void on_message(void *ctx, bool text, const uint8_t *data, size_t len)
{
    struct sp_pusher *p = ctx;

    if (!text) {
        sp_pusher_close(p, SP_WS_CLOSE_UNSUPPORTED, "binary frames are not part of the protocol");
        return;
    }
    json_t *msg = json_loadb((const char *)data, len, 0, NULL);
    if (!json_is_object(msg))
        sp_pusher_send_error(p, 0, "a message must be a JSON object");
    else
        on_event(p, msg);
    json_decref(msg);
}

static void on_ping(void *ctx, const uint8_t *data, size_t len)
{
    struct sp_pusher *p = ctx;

    if (sp_ws_send(p->stream, SP_WS_OP_PONG, data, len) < 0)
        sp_pusher_abort(p);
}

static void on_pong(void *ctx, const uint8_t *data, size_t len)
{
    (void)data;
    (void)len;
    ((struct sp_pusher *)ctx)->ping_sent = 0;
}

static void on_close(void *ctx, unsigned code, const char *reason, size_t len)
{
    (void)reason;
    (void)len;
    sp_pusher_close(ctx, code == 1005 ? SP_WS_CLOSE_NORMAL : code, "");
}

static const struct sp_ws_reader_events reader_events = {on_message, on_ping, on_pong, on_close};

static void on_readable(void *ctx, const uint8_t *data, size_t len)
{
    struct sp_pusher *p = ctx;

    p->last_heard = sp_now_ms();
    p->ping_sent = 0; /* any frame shows the client is there */
    p->in_reader = true;
    int rc = sp_ws_reader_feed(p->reader, data, len);
    p->in_reader = false;
    if (p->send_failed) {
        sp_pusher_abort(p);
    } else if (rc != 0) {
        close_with(p, (unsigned)rc,
                   rc == SP_WS_CLOSE_BAD_DATA   ? "invalid UTF-8"
                   : rc == SP_WS_CLOSE_TOO_BIG  ? "message too big (pusher.max_event_size)"
                   : rc == SP_WS_CLOSE_INTERNAL ? "out of memory"
                                                : "protocol error");
    } else if (p->want_close) {
        close_with(p, p->want_close, p->want_reason);
    }
}

static void on_stream_closed(void *ctx, enum sp_stream_end why)
{
    (void)why;
    conn_free(ctx);
}

static const struct sp_stream_ops stream_ops = {.readable = on_readable,
                                                .closed = on_stream_closed};

/* ---- lifecycle --------------------------------------------------------------------------------
 */

static void conn_free(struct sp_pusher *p)
{
    struct pchan *c;

    while ((c = p->channels) != NULL) {
        p->channels = c->next;
        sp_pusher_channel_free(c);
    }
    free(p->user_id);
    LIST_REMOVE(p, link);
    p->kind->base.count--;
    sp_push_pusher_clients(push_of(p), -1);
    sp_ws_reader_free(p->reader);
    free(p);
}

/* Once a second: a silent client is pinged after pusher.activity_timeout
 * and closed (4201) pusher.pong_timeout after that; an aged connection is
 * sent to reconnect (4200); after a reload that removed the pusher section,
 * every client is closed as an unknown app's (4001). */
static void pusher_tick(void *state, uint64_t now)
{
    struct pusher_kind *kind = state;
    const struct sp_config *config = sp_push_config(kind->base.push);
    struct sp_pusher *p, *next;

    if (config->pusher.enabled && config->pusher.subscription_count)
        sp_pusher_tell_counts(kind);
    for (p = LIST_FIRST(&kind->all); p != NULL; p = next) {
        next = LIST_NEXT(p, link);
        if (!config->pusher.enabled) {
            close_with(p, CLOSE_UNKNOWN_APP,
                       "the pusher section was removed from the "
                       "configuration");
        } else if (now >= p->retire_ms) {
            sp_push_stats(kind->base.push)->aged_out++;
            close_with(p, CLOSE_RECONNECT, "connection age limit: reconnect");
        } else if (p->ping_sent != 0 && now - p->ping_sent >= config->pusher.pong_timeout_ms) {
            close_with(p, CLOSE_PONG_TIMEOUT, "Pong reply not received");
        } else if (p->ping_sent == 0 && now - p->last_heard >= config->pusher.activity_timeout_ms) {
            p->ping_sent = now;
            if (sp_pusher_send_event(p, "pusher:ping", NULL, json_object(), false) < 0)
                sp_pusher_abort(p);
        }
    }
}

static void *pusher_open(struct sp_push *push)
{
    struct pusher_kind *kind = sp_kind_state_new(push, sizeof(struct pusher_kind));

    if (kind != NULL && ((kind->counts = sp_hmap_new()) == NULL ||
                         RAND_bytes((unsigned char *)&kind->prefix, sizeof(kind->prefix)) != 1)) {
        sp_hmap_free(kind->counts);
        free(kind);
        return NULL;
    }
    if (kind != NULL)
        kind->prefix &= 0x7fffffff;
    return kind;
}

static void pusher_close_all(void *state)
{
    struct pusher_kind *kind = state;
    struct sp_pusher *p;

    while ((p = LIST_FIRST(&kind->all)) != NULL) {
        sp_stream_close(p->stream);
        conn_free(p);
    }
    sp_pusher_counts_free(kind);
    free(kind);
}

static bool pusher_drain_one(void *state)
{
    struct pusher_kind *kind = state;
    struct sp_pusher *p = LIST_FIRST(&kind->all);

    if (p == NULL)
        return false;
    close_with(p, CLOSE_RECONNECT, "server shutting down: reconnect");
    return true;
}

/* ---- the handshake ----------------------------------------------------------------------------
 */

/* What is wrong with a request for /app/{key}?protocol=N, as a close code
 * (0: nothing). */
static unsigned app_error(const struct sp_config *config, const struct sp_http_request *req,
                          const char **why)
{
    struct sp_slice key = {req->path.ptr + 5, req->path.len - 5}; /* after "/app/" */
    char protocol[16];
    int n = sp_http_query_get(req->query, "protocol", protocol, sizeof(protocol));

    if (!sp_slice_eq(key, config->pusher.key)) {
        *why = "App key not in this cluster (pusher.key)";
        return CLOSE_UNKNOWN_APP;
    }
    if (n == SP_HTTP_QUERY_ABSENT) {
        *why = "No protocol version supplied";
        return CLOSE_NO_PROTOCOL;
    }
    char *end;
    long version = strtol(protocol, &end, 10);
    if (n <= 0 || *end != '\0') {
        *why = "Invalid version string format";
        return CLOSE_BAD_VERSION;
    }
    if (version < 5 || version > 7) {
        *why = "Unsupported protocol version (this server speaks 5-7)";
        return CLOSE_UNSUPPORTED_PROTOCOL;
    }
    return 0;
}

static int send_established(struct sp_pusher *p, const struct sp_config *config)
{
    json_t *data = json_pack("{s:s, s:I}", "socket_id", p->socket_id, "activity_timeout",
                             (json_int_t)(config->pusher.activity_timeout_ms / 1000));
    return sp_pusher_send_event(p, "pusher:connection_established", NULL, data, true);
}

static struct sp_pusher *conn_new(struct pusher_kind *kind, const struct sp_config *config)
{
    struct sp_pusher *p = calloc(1, sizeof(*p));

    if (p == NULL)
        return NULL;
    p->kind = kind;
    LIST_INSERT_HEAD(&kind->all, p, link);
    kind->base.count++;
    sp_push_pusher_clients(kind->base.push, +1);
    p->last_heard = sp_now_ms();
    p->retire_ms = sp_retire_at(p->last_heard, config->limits.max_connection_age_ms);
    snprintf(p->socket_id, sizeof(p->socket_id), "%u.%u", (unsigned)kind->prefix,
             (unsigned)++kind->next);
    /* A client's frames carry one event each; channel_data and the event's
     * own fields come on top of its data. */
    p->reader = sp_ws_reader_new(config->pusher.max_event_size + 4096, &reader_events, p);
    p->wire = SP_WIRE(SP_FMT_PUSHER);
    if (p->reader == NULL) {
        conn_free(p);
        return NULL;
    }
    return p;
}

static void pusher_start(void *state, const struct sp_route_config *route, const char *spec,
                         struct sp_http_conn *conn, const struct sp_http_request *req,
                         const struct sp_identity *who)
{
    struct pusher_kind *kind = state;
    struct sp_push *push = kind->base.push;
    const struct sp_config *config = sp_push_config(push);
    struct evbuffer *leftover = evbuffer_new(), *headers = evbuffer_new();
    enum sp_http_stream framing;
    const char *why = NULL;
    unsigned refuse = app_error(config, req, &why);
    char accept[29];
    struct sp_pusher *p;

    (void)route;
    (void)spec;
    (void)who;
    if (leftover == NULL || headers == NULL) {
        sp_http_respond_error(conn, 500, "out of memory");
        goto done;
    }
    if (!sp_ws_handshake_check(push, conn, req, accept))
        goto done;
    if ((p = conn_new(kind, config)) == NULL) {
        sp_http_respond_error(conn, 500, "out of memory");
        goto done;
    }
    evbuffer_add_printf(headers,
                        "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                        "Sec-WebSocket-Accept: %s\r\n",
                        accept);
    sp_ws_deflate_setup(req, config->pusher.compression, config->pusher.compression_min_size,
                        &p->wire, p->reader, headers);
    p->stream = sp_http_begin_stream(conn, 101, NULL, headers, true, leftover, &framing);
    if (p->stream == NULL) {
        sp_http_respond_error(conn, 500, "out of memory");
        conn_free(p);
        goto done;
    }
    sp_stream_set_ops(p->stream, config->limits.subscriber_max_unsent, &stream_ops, p);
    /* A wrong key or protocol is told over the WebSocket, as Pusher does:
     * pusher-js acts on the close code, not on an HTTP status. */
    if (refuse == 0 && config->pusher.max_connections != 0 &&
        sp_push_pusher_clients(push, 0) > config->pusher.max_connections) {
        refuse = CLOSE_OVER_CAPACITY;
        why = "Over capacity (pusher.max_connections): try again later";
    }
    if (refuse != 0) {
        close_with(p, refuse, why);
        goto done;
    }
    if (send_established(p, config) < 0) {
        sp_pusher_abort(p);
        goto done;
    }
    sp_stream_write_now(p->stream);
    size_t n = evbuffer_get_length(leftover);
    if (n > 0)
        on_readable(p, evbuffer_pullup(leftover, -1), n);
done:
    if (leftover)
        evbuffer_free(leftover);
    if (headers)
        evbuffer_free(headers);
}

const struct sp_transport_ops sp_pusher_transport = {
    .label = "pusher",
    .open = pusher_open,
    .close = pusher_close_all,
    .start = pusher_start,
    .tick = pusher_tick,
    .drain_one = pusher_drain_one,
    .count = sp_kind_state_count,
};
