/* Server-Sent Events subscribers. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "push/sse.h"

struct sp_sse;

/* A worker's SSE subscribers. */
struct sse_kind {
    struct sp_kind_state base;
    LIST_HEAD(, sp_sse) all;
};

struct sp_sse {
    struct sse_kind *kind;
    struct sp_stream *stream;
    struct sp_subscription *subs;
    LIST_ENTRY(sp_sse) link;
    uint64_t keepalive_ms;
    uint64_t retire_ms;          /* limits.max_connection_age */
    uint64_t expires_ms;         /* the token's exp (monotonic ms), or UINT64_MAX */
    enum sp_http_stream framing; /* HTTP/1.1: each event one chunk; 1.0: until the close */
};

static void sse_free(struct sp_sse *s)
{
    LIST_REMOVE(s, link);
    s->kind->base.count--;
    sp_subscription_close(s->subs);
    free(s);
}

/* Writes raw SSE text (already one complete block) as the stream is framed. */
static int write_text(struct sp_sse *s, const char *text)
{
    return sp_http_stream_write(s->stream, s->framing, text, strlen(text));
}

static void end_stream(struct sp_sse *s, bool gracefully)
{
    if (gracefully) {
        sp_http_stream_end(s->stream, s->framing);
    } else {
        sp_stream_close(s->stream);
    }
    sse_free(s);
}

/* Each event comes rendered once for all, chunk framing included. */
static enum sp_msg_format format(const struct sp_sse *s)
{
    return s->framing == SP_HTTP_STREAM_CHUNKED ? SP_FMT_SSE_CHUNKED : SP_FMT_SSE;
}

static void on_deliver(void *owner, struct sp_msg *msg)
{
    struct sp_sse *s = owner;

    struct sp_push *push = s->kind->base.push;

    if (sp_push_send_msg(push, s->stream, msg, SP_WIRE(format(s))) < 0) {
        /* Too far behind: close it; the browser reconnects with Last-Event-ID
         * and gets what it missed from history. */
        sp_log_info(sp_push_log(push), "slow_consumer",
                    "SSE subscriber over limits.subscriber_max_unsent");
        end_stream(s, false);
    }
}

static void on_deleted(void *owner)
{
    end_stream(owner, true);
}

static void on_closed(void *ctx, enum sp_stream_end why)
{
    sse_free(ctx); /* the stream frees itself */
}

static const struct sp_stream_ops stream_ops = {.closed = on_closed};

static struct evbuffer *response_headers(struct sp_push *push, const struct sp_http_request *req)
{
    struct evbuffer *h = evbuffer_new();

    if (h == NULL)
        return NULL;
    evbuffer_add_printf(h, "Content-Type: text/event-stream; charset=utf-8\r\n"
                           "Cache-Control: no-cache\r\n"
                           "X-Accel-Buffering: no\r\n");
    sp_push_cors(push, req, h);
    return h;
}

struct opening {
    struct sp_sse *sse;
    uint64_t retry_ms;
};

/* The retry hint and, with nothing to replay, the position as an id
 * without data: EventSource takes it as its last event id (no event
 * fires), so a cut before the first message reconnects with it. Then the
 * missed-history signal. */
/* On a presence route: who is there, before any message (the joins and
 * leaves that follow are messages of the channel). */
static void write_members(void *ctx, const char *json)
{
    static const char head[] = "event: sidepush-members\ndata: ";
    size_t len = strlen(json);
    char *text = malloc(sizeof(head) + len + 2);

    if (text == NULL)
        return;
    memcpy(text, head, sizeof(head) - 1);
    memcpy(text + sizeof(head) - 1, json, len);
    memcpy(text + sizeof(head) - 1 + len, "\n\n", 3);
    write_text(ctx, text);
    free(text);
}

static int sse_preamble(void *ctx, const char *position, size_t count, bool missed,
                        const char *first)
{
    struct opening *o = ctx;
    char text[256];

    snprintf(text, sizeof(text), "retry: %llu\n%s%s%s\n", (unsigned long long)o->retry_ms,
             count == 0 ? "id: " : "", count == 0 ? position : "", count == 0 ? "\n" : "");
    int rc = write_text(o->sse, text);
    if (rc == 0 && missed) {
        /* EventSource has no notion of a gap; this event is how a page learns
         * that it must reload state (listen for "sidepush-missed"). */
        snprintf(text, sizeof(text), "event: sidepush-missed\ndata: {\"first\":\"%s\"}\n\n", first);
        rc = write_text(o->sse, text);
    }
    if (rc == 0)
        sp_subscription_members(o->sse->subs, write_members, o->sse);
    return rc;
}

static int send_start(struct sp_sse *s, const struct sp_route_config *route,
                      const struct sp_cursor *cur)
{
    struct opening o = {s, route->subscribe.sse.retry_ms};

    return sp_subscription_replay(s->subs, cur, s->stream, SP_WIRE(format(s)), sse_preamble, &o);
}

static void sse_start(void *state, const struct sp_route_config *route, const char *spec,
                      struct sp_http_conn *conn, const struct sp_http_request *req,
                      const struct sp_identity *who)
{
    struct sse_kind *kind = state;
    struct sp_push *push = kind->base.push;
    struct sp_cursor cur;
    struct sp_sse *s = calloc(1, sizeof(*s));

    if (s == NULL) {
        sp_http_respond_error(conn, 500, "out of memory");
        return;
    }
    LIST_INSERT_HEAD(&kind->all, s, link);
    kind->base.count++;
    s->kind = kind;
    s->keepalive_ms = route->subscribe.sse.keepalive_ms;
    s->retire_ms = sp_retire_at(sp_now_ms(), sp_push_config(push)->limits.max_connection_age_ms);
    s->expires_ms = sp_identity_expiry(who);
    /* A browser's EventSource never gives up on a network error but does on
     * any other status, so an unreadable id replays from the start with the
     * missed signal instead of failing the request. */
    if (sp_push_request_cursor(push, req, &cur) < 0)
        cur = (struct sp_cursor){.present = true};
    else if (!cur.present)
        cur = sp_push_start(push, route);
    int rc = sp_subscription_open(push, spec, on_deliver, on_deleted, s,
                                  route->subscribe.presence ? who : NULL, who ? who->user_id : NULL,
                                  &s->subs);
    if (rc < 0) {
        sp_http_respond_error(conn, sp_subscription_error_status(rc), sp_hub_error_text(rc));
        sse_free(s);
        return;
    }
    struct evbuffer *headers = response_headers(push, req);
    enum sp_http_stream framing;
    s->stream =
        headers ? sp_http_begin_stream(conn, 200, NULL, headers, false, NULL, &framing) : NULL;
    if (headers)
        evbuffer_free(headers);
    if (s->stream == NULL) {
        sp_http_respond_error(conn, 500, "out of memory");
        sse_free(s);
        return;
    }
    s->framing = framing;
    sp_stream_set_ops(s->stream, sp_push_config(push)->limits.subscriber_max_unsent, &stream_ops,
                      s);
    if (send_start(s, route, &cur) < 0)
        end_stream(s, false);
    else
        sp_stream_write_now(s->stream);
}

static void send_away(struct sp_sse *s);

static void sse_tick(void *state, uint64_t now)
{
    struct sse_kind *kind = state;
    struct sp_sse *s, *next;

    for (s = LIST_FIRST(&kind->all); s != NULL; s = next) {
        next = LIST_NEXT(s, link);
        if (s->stream != NULL && now >= s->expires_ms) {
            /* EventSource would come back with the same URL and get 401:
             * the page is told first, to fetch a new token and resume. */
            write_text(s, "event: sidepush-token-expired\ndata: {\"error\":\"token expired\"}\n\n");
            end_stream(s, true);
            continue;
        }
        if (s->stream != NULL && now >= s->retire_ms) {
            sp_push_stats(kind->base.push)->aged_out++;
            send_away(s);
            continue;
        }
        if (s->stream == NULL || now - sp_stream_last_write(s->stream) < s->keepalive_ms)
            continue;
        if (write_text(s, ":\n\n") < 0)
            end_stream(s, false);
    }
}

static void *sse_open(struct sp_push *push)
{
    return sp_kind_state_new(push, sizeof(struct sse_kind));
}

static void sse_close(void *state)
{
    struct sse_kind *kind = state;
    struct sp_sse *s;

    while ((s = LIST_FIRST(&kind->all)) != NULL) {
        if (s->stream)
            sp_stream_close(s->stream);
        sse_free(s);
    }
    free(kind);
}

/* A jittered reconnect delay, so the browsers that leave together do not
 * all come back to the next pod at the same moment. The stream then ends
 * cleanly: EventSource reconnects (a 503 would make it give up). */
static void send_away(struct sp_sse *s)
{
    char text[64];

    snprintf(text, sizeof(text), "retry: %u\n\n", 1000 + sp_random() % 9000);
    write_text(s, text);
    end_stream(s, true);
}

static bool sse_drain_one(void *state)
{
    struct sse_kind *kind = state;
    struct sp_sse *s = LIST_FIRST(&kind->all);

    if (s == NULL)
        return false;
    if (s->stream == NULL)
        sse_free(s);
    else
        send_away(s);
    return true;
}

const struct sp_transport_ops sp_sse_transport = {
    .label = "sse",
    .open = sse_open,
    .close = sse_close,
    .start = sse_start,
    .tick = sse_tick,
    .drain_one = sse_drain_one,
    .count = sp_kind_state_count,
};
