#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/hmap.h"
#include "core/log.h"
#include "net/mailbox.h"
#include "push/grip.h"
#include "push/longpoll.h"
#include "push/pusher.h"
#include "push/push-internal.h"
#include "push/sse.h"
#include "push/websocket.h"

#define TICK_MS 1000

/* Indexed by enum sp_kind. */
static const struct sp_transport_ops *const transports[SP_KIND_COUNT] = {
    &sp_sse_transport, &sp_ws_transport, &sp_longpoll_transport, &sp_grip_transport,
    &sp_pusher_transport};

_Static_assert(SP_KIND_COUNT == sizeof(((struct sp_push_figures *)0)->subscribers) /
                                    sizeof(((struct sp_push_figures *)0)->subscribers[0]),
               "a count of subscribers for every kind");

/* ---- lifecycle --------------------------------------------------------------------------- */

void *sp_kind_state_new(struct sp_push *push, size_t size)
{
    struct sp_kind_state *state = calloc(1, size);

    if (state != NULL)
        state->push = push;
    return state;
}

size_t sp_kind_state_count(const void *state)
{
    return ((const struct sp_kind_state *)state)->count;
}

size_t sp_push_pusher_clients(struct sp_push *push, int delta)
{
    if (delta >= 0)
        return atomic_fetch_add(&push->shared->pusher_clients, (size_t)delta) + (size_t)delta;
    return atomic_fetch_sub(&push->shared->pusher_clients, (size_t)-delta) - (size_t)-delta;
}

const struct sp_config *sp_push_config(const struct sp_push *push)
{
    return push->config;
}

const struct sp_log *sp_push_log(const struct sp_push *push)
{
    return push->log;
}

struct event_base *sp_push_base(const struct sp_push *push)
{
    return push->base;
}

struct sp_hub *sp_push_hub(const struct sp_push *push)
{
    return push->hub;
}

struct sp_push_stats *sp_push_stats(struct sp_push *push)
{
    return &push->stats;
}

bool sp_push_draining(const struct sp_push *push)
{
    return push->draining;
}

const struct sp_forwarder_ops *sp_push_forwarder(const struct sp_push *push, void **ctx)
{
    *ctx = push->forwarder_ctx;
    return push->forwarder;
}

static void tick(evutil_socket_t fd, short what, void *arg)
{
    struct sp_push *push = arg;
    uint64_t now = sp_now_ms();

    for (int k = 0; k < SP_KIND_COUNT; k++) {
        if (transports[k]->tick != NULL)
            transports[k]->tick(push->kinds[k], now);
    }
}

void sp_push_presence_json(struct sp_push *push, const char *channel, struct evbuffer *out)
{
    sp_presence_write_json(push->shared->presence, channel, push->config->presence.max_members,
                           out);
}

size_t sp_push_presence_count(struct sp_push *push, const char *channel)
{
    return sp_presence_count(push->shared->presence, channel);
}

void sp_push_set_forwarder(struct sp_push *push, const struct sp_forwarder_ops *ops, void *ctx)
{
    push->forwarder = ops;
    push->forwarder_ctx = ctx;
}

struct sp_engine *sp_push_engine(const struct sp_push *push)
{
    return push->shared->engine;
}

struct sp_push *sp_push_new(const struct sp_push_worker *w, const struct sp_config *config,
                            const struct sp_log *log)
{
    struct sp_push *push = calloc(1, sizeof(*push));
    struct timeval every = sp_timeval_ms(TICK_MS);

    if (push == NULL)
        return NULL;
    push->base = w->base;
    push->config = config;
    push->log = log;
    push->curlm = w->curlm;
    push->mailbox = w->mailbox;
    push->shared = w->shared;
    push->hub = w->shared->hub;
    push->port = sp_hub_port_new(push->hub, w->index, w->mailbox);
    push->ticker = event_new(w->base, -1, EV_PERSIST, tick, push);
    for (int k = 0; k < SP_KIND_COUNT; k++) {
        if ((push->kinds[k] = transports[k]->open(push)) == NULL)
            goto fail;
    }
    if (push->port == NULL || push->ticker == NULL || event_add(push->ticker, &every) < 0)
        goto fail;
    return push;
fail:
    sp_push_free(push);
    return NULL;
}

void sp_push_free(struct sp_push *push)
{
    if (push == NULL)
        return;
    for (int k = 0; k < SP_KIND_COUNT; k++) {
        if (push->kinds[k] != NULL)
            transports[k]->close(push->kinds[k]);
    }
    if (push->ticker)
        event_free(push->ticker);
    if (push->drainer)
        event_free(push->drainer);
    sp_hub_port_free(push->port);
    free(push);
}

size_t sp_push_channel_subscribers(const struct sp_push *push, const char *channel)
{
    return sp_hub_subscribers(push->hub, channel);
}

bool sp_push_engine_ready(const struct sp_push *push)
{
    return sp_push_shared_ready(push->shared);
}

/* ---- choosing a transport ---------------------------------------------------------------- */

static void preflight(struct sp_push *push, struct sp_http_conn *conn,
                      const struct sp_http_request *req)
{
    struct evbuffer *h = evbuffer_new();

    if (h == NULL) {
        sp_http_respond_error(conn, 500, "out of memory");
        return;
    }
    sp_push_cors(push, req, h);
    evbuffer_add_printf(h,
                        "Access-Control-Allow-Methods: GET, OPTIONS\r\n"
                        "Access-Control-Allow-Headers: Last-Event-ID, Sidepush-Cursor, "
                        "Cache-Control, Prefer\r\n"
                        "Access-Control-Max-Age: %llu\r\n",
                        (unsigned long long)(push->config->cors.max_age_ms / 1000));
    sp_http_begin(conn, 204, NULL, h, 0);
    sp_http_finish(conn);
    evbuffer_free(h);
}

static bool wants_sse(const struct sp_http_request *req)
{
    const struct sp_http_header *accept = sp_http_find_header(req, "Accept");
    return accept != NULL &&
           memmem(accept->value.ptr, accept->value.len, "text/event-stream", 17) != NULL;
}

static bool wants_websocket(const struct sp_http_request *req)
{
    return sp_http_request_has_token(req, "Upgrade", "websocket");
}

static void start_kind(struct sp_push *push, enum sp_kind kind, const struct sp_route_config *route,
                       const char *spec, struct sp_http_conn *conn,
                       const struct sp_http_request *req, const struct sp_identity *who)
{
    transports[kind]->start(push->kinds[kind], route, spec, conn, req, who);
}

static void start_transport(struct sp_push *push, const struct sp_route_config *route,
                            const char *spec, struct sp_http_conn *conn,
                            const struct sp_http_request *req, const struct sp_identity *who)
{
    unsigned offered = route->subscribe.transports;
    bool streams = wants_websocket(req) || (wants_sse(req) && (offered & SP_TRANSPORT_SSE));

    /* A stream takes the socket over after its head, so a body would be
     * read as the next request (or the first WebSocket frames). */
    if (streams && sp_http_has_body(conn)) {
        sp_http_respond_error(conn, 400, "a subscription request carries no body");
        return;
    }
    if (wants_websocket(req)) {
        if (offered & SP_TRANSPORT_WEBSOCKET)
            start_kind(push, SP_KIND_WS, route, spec, conn, req, who);
        else
            sp_http_respond_error(conn, 400, "this route does not offer WebSocket");
    } else if (wants_sse(req) && (offered & SP_TRANSPORT_SSE)) {
        start_kind(push, SP_KIND_SSE, route, spec, conn, req, who);
    } else if (offered & SP_TRANSPORT_LONGPOLL) {
        start_kind(push, SP_KIND_LONGPOLL, route, spec, conn, req, who);
    } else {
        sp_http_respond_error(conn, 406,
                              (offered & SP_TRANSPORT_SSE)
                                  ? "this route offers Server-Sent Events: send "
                                    "Accept: text/event-stream"
                                  : "this route offers WebSocket only");
    }
}

void sp_push_pusher_connect(struct sp_push *push, struct sp_http_conn *conn,
                            const struct sp_http_request *req)
{
    start_kind(push, SP_KIND_PUSHER, NULL, NULL, conn, req, NULL);
}

/* ---- waiting for channels to be synced with Redis --------------------------------------- */

/* A wait asked of the engine, on the shared loop, by mail there and back
 * (from every worker alike). Only the asking worker touches done and ctx;
 * the shared loop only wait and ok. */
struct sp_sync {
    struct sp_ask ask;
    struct sp_push *from;
    sp_sync_done done; /* NULL once cancelled: the answer, when it comes, is dropped */
    void *ctx;
    struct sp_engine_wait *wait;
    bool ok;
    char spec[];
};

/* Back on the asking worker. */
static void sync_answered(struct sp_ask *ask)
{
    struct sp_sync *s = (struct sp_sync *)ask;

    if (s->done != NULL)
        s->done(s->ctx, s->ok);
    free(s);
}

static void sync_reply(void *arg, bool ok)
{
    struct sp_sync *s = arg;

    s->ok = ok;
    sp_ask_answer(&s->ask);
}

static void sync_dropped(struct sp_ask *ask)
{
    free(ask);
}

/* On the shared loop. */
static void sync_asked(struct sp_ask *ask)
{
    struct sp_sync *s = (struct sp_sync *)ask;
    struct sp_engine *engine = s->from->shared->engine;
    int rc = engine ? sp_engine_wait(engine, s->spec, sync_reply, s, &s->wait) : -1;

    if (rc != 0)
        sync_reply(s, rc > 0);
}

bool sp_push_uses_engine(const struct sp_push *push)
{
    return push->shared->uses_engine;
}

struct sp_sync *sp_push_sync(struct sp_push *push, const char *spec, sp_sync_done done, void *ctx)
{
    size_t len = strlen(spec) + 1;
    struct sp_sync *s = calloc(1, sizeof(*s) + len);

    if (s == NULL)
        return NULL;
    s->from = push;
    s->done = done;
    s->ctx = ctx;
    memcpy(s->spec, spec, len);
    sp_ask_post(&s->ask, push->shared->mailbox, push->mailbox, sync_asked, sync_answered,
                sync_dropped);
    return s;
}

void sp_push_sync_cancel(struct sp_sync *s)
{
    if (s != NULL)
        s->done = NULL;
}

/* A subscriber waiting for its channels to be synced with Redis. */
struct channel_wait {
    struct sp_push *push;
    const struct sp_route_config *route; /* its configuration held */
    struct sp_http_conn *conn;
    struct sp_sync *sync;
    char *user_id, *user_info; /* copies of the identity, or NULL */
    uint64_t expires_ms;
    char spec[];
};

static void channel_wait_free(struct channel_wait *w)
{
    sp_config_release(w->route->owner);
    free(w->user_id);
    free(w->user_info);
    free(w);
}

static void on_waiter_gone(void *ctx)
{
    struct channel_wait *w = ctx;

    sp_push_sync_cancel(w->sync);
    channel_wait_free(w);
}

static const struct sp_http_ops waiter_ops = {NULL, NULL, on_waiter_gone, NULL};

/* Redis did not come back within redis.subscribe_wait. EventSource gives up
 * for good on any status but 200, so SSE gets a stream that only says when
 * to come back; the others get 503. */
static void engine_unavailable(const struct sp_route_config *route, struct sp_http_conn *conn,
                               const struct sp_http_request *req)
{
    char retry[48];

    if (wants_sse(req) && !wants_websocket(req)) {
        int n = snprintf(retry, sizeof(retry), "retry: %llu\n\n",
                         (unsigned long long)route->subscribe.sse.retry_ms);
        sp_http_respond(conn, 200, "text/event-stream", retry, (size_t)n);
    } else
        sp_http_respond_error(conn, 503, sp_hub_error_text(SP_HUB_UNAVAILABLE));
}

static void on_channels_ready(void *arg, bool ok)
{
    struct channel_wait *w = arg;
    const struct sp_http_request *req = sp_http_request(w->conn);

    struct sp_identity who = {w->user_id, w->user_info, w->expires_ms};

    sp_http_set_ops(w->conn, NULL, NULL);
    if (ok)
        start_transport(w->push, w->route, w->spec, w->conn, req, &who);
    else
        engine_unavailable(w->route, w->conn, req);
    channel_wait_free(w);
}

void sp_push_subscribe(struct sp_push *push, const struct sp_route_config *route, const char *spec,
                       struct sp_http_conn *conn, const struct sp_http_request *req,
                       const struct sp_identity *who)
{
    if (sp_slice_eq(req->method, "OPTIONS")) {
        preflight(push, conn, req);
        return;
    }
    if (!sp_slice_eq(req->method, "GET")) {
        sp_http_respond_not_allowed(conn, "GET, OPTIONS", "subscribe with GET");
        return;
    }
    if (!push->shared->uses_engine) {
        start_transport(push, route, spec, conn, req, who);
        return;
    }
    /* With Redis, a channel's history is read from its stream before the
     * subscriber's backlog is worked out from it. */
    struct channel_wait *w = calloc(1, sizeof(*w) + strlen(spec) + 1);
    if (w == NULL) {
        sp_http_respond_error(conn, 503, "out of memory");
        return;
    }
    *w = (struct channel_wait){push, route, conn, NULL, NULL, NULL, who ? who->expires_ms : 0};
    sp_config_hold(route->owner);
    strcpy(w->spec, spec);
    if (who != NULL && who->user_id != NULL &&
        ((w->user_id = strdup(who->user_id)) == NULL ||
         (who->user_info != NULL && (w->user_info = strdup(who->user_info)) == NULL))) {
        channel_wait_free(w);
        sp_http_respond_error(conn, 503, "out of memory");
        return;
    }
    if ((w->sync = sp_push_sync(push, spec, on_channels_ready, w)) != NULL) {
        sp_http_set_ops(conn, &waiter_ops, w);
        return;
    }
    channel_wait_free(w);
    sp_http_respond_error(conn, 503, "out of memory");
}

/* ---- draining ---------------------------------------------------------------------------- */

#define DRAIN_TICK_MS 100

size_t sp_push_subscribers(const struct sp_push *push)
{
    size_t n = 0;

    for (int k = 0; k < SP_KIND_COUNT; k++)
        n += transports[k]->count(push->kinds[k]);
    return n;
}

static bool drain_one(struct sp_push *push)
{
    /* Rotate over the kinds so each is spread over the whole window. */
    for (size_t i = 0; i < SP_KIND_COUNT; i++) {
        size_t k = (push->drained + i) % SP_KIND_COUNT;
        if (transports[k]->drain_one(push->kinds[k])) {
            push->drained++;
            return true;
        }
    }
    return false;
}

static void drain_tick(evutil_socket_t fd, short what, void *arg)
{
    struct sp_push *push = arg;
    uint64_t elapsed = sp_now_ms() - push->drain_started;
    /* How many should be gone by now, on a straight line over the window. */
    size_t due = push->drain_window_ms == 0 || elapsed >= push->drain_window_ms
                     ? push->drain_total
                     : (size_t)((double)push->drain_total * (double)elapsed /
                                (double)push->drain_window_ms) +
                           1;
    while (push->drained < due && drain_one(push))
        ;
    if (sp_push_subscribers(push) == 0)
        event_del(push->drainer);
}

void sp_push_drain(struct sp_push *push, uint64_t window_ms)
{
    struct timeval tick = {0, DRAIN_TICK_MS * 1000};

    /* A second call (SIGTERM after the admin's POST /drain) plans again:
     * whoever subscribed since goes too, over the new window. */
    push->draining = true;
    push->drained = 0;
    push->drain_total = sp_push_subscribers(push);
    push->drain_started = sp_now_ms();
    /* Leave the last fifth of the grace for the final bytes to go out. */
    push->drain_window_ms = window_ms * 4 / 5;
    if (push->drainer == NULL)
        push->drainer = event_new(push->base, -1, EV_PERSIST, drain_tick, push);
    if (push->drainer == NULL || event_add(push->drainer, &tick) < 0) {
        while (drain_one(push))
            ;
        return;
    }
    drain_tick(-1, 0, push);
}

/* ---- publishing and metrics -------------------------------------------------------------- */

void sp_push_count_publish_error(struct sp_push *push, int status)
{
    static const int statuses[] = {400, 401, 404, 405, 413};
    size_t i = 0;

    while (i < 5 && statuses[i] != status)
        i++;
    push->stats.publish_errors_by_status[i]++;
    push->stats.publish_errors++;
}

void sp_push_publish_refuse(struct sp_push *push, struct sp_http_conn *conn, int status,
                            const char *why)
{
    sp_push_count_publish_error(push, status);
    sp_http_respond_error(conn, status, why);
}

int sp_push_publish(struct sp_push *push, const struct sp_engine_publish *p, sp_push_published cb,
                    void *arg)
{
    return sp_push_shared_publish(push->shared, &push->stats, p, cb, arg);
}

void sp_push_figures_add(struct sp_push_figures *sum, const struct sp_push_figures *f)
{
    const struct sp_push_stats *a = &f->stats;
    struct sp_push_stats *b = &sum->stats;

    b->published += a->published;
    b->delivered += a->delivered;
    b->slow_consumers += a->slow_consumers;
    b->aged_out += a->aged_out;
    b->missed_history += a->missed_history;
    b->users_refused += a->users_refused;
    b->deflated_messages += a->deflated_messages;
    b->deflate_bytes_before += a->deflate_bytes_before;
    b->deflate_bytes_after += a->deflate_bytes_after;
    b->pusher.subscriptions += a->pusher.subscriptions;
    b->pusher.signins += a->pusher.signins;
    b->pusher.auth_failures += a->pusher.auth_failures;
    for (int i = 0; i < 3; i++)
        b->pusher.client_events[i] += a->pusher.client_events[i];
    b->publish_errors += a->publish_errors;
    for (int i = 0; i < 6; i++)
        b->publish_errors_by_status[i] += a->publish_errors_by_status[i];
    sp_histogram_add(&b->fanout, &a->fanout);
    for (int k = 0; k < SP_KIND_COUNT; k++)
        sum->subscribers[k] += f->subscribers[k];
}

void sp_push_add_figures(const struct sp_push *push, struct sp_push_figures *sum)
{
    struct sp_push_figures mine = {.stats = push->stats};

    for (int k = 0; k < SP_KIND_COUNT; k++)
        mine.subscribers[k] = transports[k]->count(push->kinds[k]);
    sp_push_figures_add(sum, &mine);
}

static void pusher_metrics(const struct sp_push_figures *sum, struct evbuffer *out)
{
    static const char *const results[] = {"relayed", "rate_limited", "refused"};
    char labels[32];

    sp_metric_one(out, "sidepush_pusher_connections", "gauge", "Pusher protocol clients connected.",
                  (double)sum->subscribers[SP_KIND_PUSHER]);
    sp_metric_one(out, "sidepush_pusher_subscriptions", "gauge",
                  "Channels Pusher clients are subscribed to, summed over the clients.",
                  (double)sum->stats.pusher.subscriptions);
    sp_metric_one(out, "sidepush_pusher_signins_total", "counter", "Pusher clients signed in.",
                  (double)sum->stats.pusher.signins);
    sp_metric_one(out, "sidepush_pusher_auth_failures_total", "counter",
                  "Pusher channel authorizations and sign-ins refused for their signature.",
                  (double)sum->stats.pusher.auth_failures);
    sp_metric_head(out, "sidepush_pusher_client_events_total", "counter",
                   "Pusher client events, by what became of them.");
    for (int i = 0; i < 3; i++) {
        snprintf(labels, sizeof(labels), "result=\"%s\"", results[i]);
        sp_metric_value(out, "sidepush_pusher_client_events_total", labels,
                        (double)sum->stats.pusher.client_events[i]);
    }
}

void sp_push_metrics(const struct sp_push *push, const struct sp_push_figures *sum,
                     struct evbuffer *out)
{
    static const char *const reasons[] = {"bad_request",        "unauthorized", "not_found",
                                          "method_not_allowed", "too_large",    "other"};
    const struct sp_push_stats *st = &sum->stats;
    char labels[64];

    sp_metric_head(out, "sidepush_subscribers", "gauge", "Subscribers connected, by transport.");
    for (int k = 0; k < SP_KIND_COUNT; k++) {
        snprintf(labels, sizeof(labels), "transport=\"%s\"", transports[k]->label);
        sp_metric_value(out, "sidepush_subscribers", labels, (double)sum->subscribers[k]);
    }
    sp_metric_one(out, "sidepush_channels", "gauge", "Channels with subscribers or history.",
                  (double)sp_hub_channel_count(push->hub));
    sp_metric_one(out, "sidepush_messages_published_total", "counter", "Messages published.",
                  (double)st->published);
    sp_metric_one(out, "sidepush_messages_delivered_total", "counter",
                  "Messages handed to subscribers.", (double)st->delivered);
    /* No message is ever dropped for one subscriber: a slow one is
     * disconnected and resumes from history; what history no longer holds
     * is reported to it, and counted here. */
    sp_metric_one(out, "sidepush_missed_history_total", "counter",
                  "Subscribers told that history after their cursor is gone.",
                  (double)st->missed_history);
    sp_metric_one(out, "sidepush_slow_consumer_disconnects_total", "counter",
                  "Subscribers disconnected for passing limits.subscriber_max_unsent.",
                  (double)st->slow_consumers);
    sp_metric_one(out, "sidepush_user_connections_refused_total", "counter",
                  "Subscribers refused (429) at limits.max_connections_per_user.",
                  (double)st->users_refused);
    sp_metric_one(out, "sidepush_streams_aged_out_total", "counter",
                  "Streams ended (to reconnect, maybe elsewhere) at limits.max_connection_age.",
                  (double)st->aged_out);
    sp_metric_head(out, "sidepush_publish_errors_total", "counter",
                   "Refused publish API requests, by reason.");
    for (int i = 0; i < 6; i++) {
        snprintf(labels, sizeof(labels), "reason=\"%s\"", reasons[i]);
        sp_metric_value(out, "sidepush_publish_errors_total", labels,
                        (double)st->publish_errors_by_status[i]);
    }
    sp_metric_one(out, "sidepush_websocket_deflated_messages_total", "counter",
                  "Messages sent to WebSocket subscribers compressed (permessage-deflate).",
                  (double)st->deflated_messages);
    sp_metric_head(out, "sidepush_websocket_deflate_bytes_total", "counter",
                   "Frame bytes of the messages sent compressed, before and after compression.");
    sp_metric_value(out, "sidepush_websocket_deflate_bytes_total", "stage=\"before\"",
                    (double)st->deflate_bytes_before);
    sp_metric_value(out, "sidepush_websocket_deflate_bytes_total", "stage=\"after\"",
                    (double)st->deflate_bytes_after);
    sp_metric_histogram(out, "sidepush_fanout_duration_seconds",
                        "Time to store a publish and mail it to every worker with subscribers.",
                        &st->fanout);
    if (push->config->pusher.enabled)
        pusher_metrics(sum, out);
}

void sp_push_reconfigure(struct sp_push *push, const struct sp_config *config)
{
    push->config = config;
}

const struct sp_proxy_hook *sp_push_proxy_hook(struct sp_push *push, void **ctx)
{
    *ctx = push->kinds[SP_KIND_GRIP];
    return &sp_grip_proxy_hook;
}
