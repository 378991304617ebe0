#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/hmap.h"
#include "core/log.h"
#include "net/mailbox.h"
#include "push/grip.h"
#include "push/longpoll.h"
#include "push/push-internal.h"
#include "push/sse.h"
#include "push/websocket.h"

#define TICK_MS 1000

/* Indexed by enum sp_kind. */
static const struct sp_transport_ops *const transports[SP_KIND_COUNT] = {
    &sp_sse_transport, &sp_ws_transport, &sp_longpoll_transport, &sp_grip_transport};

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

/* ---- what only the home worker does ------------------------------------------------------ */

/* A channel's occupancy changed (after the vacancy grace): the backend is
 * told, or with Redis the deployment's count, which tells it once for all
 * replicas. */
static void occupancy_changed(void *ctx, const char *channel, bool occupied)
{
    struct sp_push *home = ctx;

    if (home->engine != NULL)
        sp_engine_share_occupancy(home->engine, channel);
    else
        sp_push_tell_occupancy(home, occupied, channel);
}

static uint64_t vacancy_grace(const struct sp_config *c)
{
    return c->webhooks.vacated_grace_ms + c->presence.leave_grace_ms;
}

static void ignore_published(void *arg, int rc, const struct sp_publish_result *res)
{
    (void)arg;
    (void)rc;
    (void)res;
}

/* A member came or went for everyone (this process, or with Redis the
 * deployment): a message of the channel for its subscribers
 * (sidepush-join / sidepush-leave, data {"user_id":..,"user_info":..}), and
 * the events hook for the backend. */
void sp_push_tell_member(struct sp_push *home, bool joined, const char *channel,
                         const char *user_id, const char *info, size_t members)
{
    /* Every join told to every subscriber is N^2 deliveries as N arrive;
     * beyond the limit only the list and the webhooks tell. */
    bool announce = (joined ? members : members + 1) <= home->config->presence.announce_limit;
    json_t *info_doc = announce && info ? json_loads(info, 0, NULL) : NULL;
    json_t *doc = announce ? json_pack("{s:s, s:o}", "user_id", user_id, "user_info",
                                       info_doc ? info_doc : json_null())
                           : NULL;
    char *data = doc ? json_dumps(doc, JSON_COMPACT) : NULL;

    json_decref(doc);
    if (data != NULL) {
        struct sp_engine_publish p = {
            .pub = {.channel = channel,
                    .event = joined ? "sidepush-join" : "sidepush-leave",
                    .data = data,
                    .len = strlen(data)},
        };
        if (sp_push_publish(home, &p, ignore_published, NULL) < 0)
            sp_log_warn(home->log, "presence_publish_failed", "%s: %s not told", channel,
                        joined ? "a join" : "a leave");
    }
    free(data);
    if (home->events != NULL)
        home->events(home->events_ctx, joined ? SP_EVENT_MEMBER_ADDED : SP_EVENT_MEMBER_REMOVED,
                     channel, user_id);
}

void sp_push_tell_occupancy(struct sp_push *home, bool occupied, const char *channel)
{
    if (home->events != NULL)
        home->events(home->events_ctx, occupied ? SP_EVENT_OCCUPIED : SP_EVENT_VACATED, channel,
                     NULL);
}

/* This process's members changed. With Redis the replica's share is
 * updated, and Redis says whether the deployment's changed. */
static void presence_changed(void *ctx, enum sp_presence_change change, const char *channel,
                             const char *user_id, const char *info)
{
    struct sp_push *home = ctx;

    if (home->engine != NULL)
        sp_engine_share_member(home->engine, channel, user_id);
    else if (change != SP_PRESENCE_COUNTED)
        sp_push_tell_member(home, change == SP_PRESENCE_JOINED, channel, user_id, info,
                            sp_presence_count(home->presence, channel));
}

void sp_push_set_events(struct sp_push *push, sp_push_events events, void *ctx)
{
    push->events = events;
    push->events_ctx = ctx;
    if (events != NULL && push->occupancy == NULL) {
        push->occupancy =
            sp_occupancy_new(push->base, vacancy_grace(push->config), occupancy_changed, push);
        if (push->engine != NULL && push->occupancy != NULL)
            sp_engine_share_occupancies(push->engine, push->occupancy);
    }
}

void sp_push_presence_json(struct sp_push *push, const char *channel, struct evbuffer *out)
{
    sp_presence_write_json(push->home->presence, channel, push->config->presence.max_members, out);
}

size_t sp_push_presence_count(struct sp_push *push, const char *channel)
{
    return sp_presence_count(push->home->presence, channel);
}

/* A channel gained its first subscriber or lost its last: the engine's
 * subscriptions in Redis and the app's watcher (the pollers) follow the
 * count as it is now. */
static void watch_now(struct sp_push *home, const char *channel)
{
    size_t count = sp_hub_subscribers(home->hub, channel);

    if (home->watch != NULL)
        home->watch(home->watch_ctx, channel, count);
    if (home->engine != NULL)
        sp_engine_watch(home->engine, channel, count);
    if (home->occupancy != NULL)
        sp_occupancy_count(home->occupancy, channel, count);
}

struct watch_mail {
    struct sp_mail mail;
    struct sp_push *home;
    char channel[];
};

static void watch_mail_run(struct sp_mail *mail)
{
    struct watch_mail *w = (struct watch_mail *)mail;
    watch_now(w->home, w->channel);
    free(w);
}

static void mail_free(struct sp_mail *mail)
{
    free(mail);
}

/* The hub's watch, on the thread of the worker whose subscriber came or
 * went: the home acts on it now, any other worker mails it home. */
static void watch(void *arg, unsigned port, const char *channel, size_t count)
{
    struct sp_push *home = arg;
    size_t len = strlen(channel) + 1;

    (void)count;
    if (port == 0) {
        watch_now(home, channel);
        return;
    }
    struct watch_mail *w = malloc(sizeof(*w) + len);
    if (w == NULL)
        return; /* out of memory: the pollers and Redis follow at the next change */
    w->home = home;
    memcpy(w->channel, channel, len);
    sp_mailbox_post(home->mailbox, &w->mail, watch_mail_run, mail_free);
}

void sp_push_set_watch(struct sp_push *push, sp_push_watch fn, void *ctx)
{
    push->watch = fn;
    push->watch_ctx = ctx;
}

void sp_push_set_forwarder(struct sp_push *push, const struct sp_forwarder_ops *ops, void *ctx)
{
    push->forwarder = ops;
    push->forwarder_ctx = ctx;
}

struct sp_engine *sp_push_engine(const struct sp_push *push)
{
    return push->engine;
}

void sp_push_stop_engine(struct sp_push *push)
{
    sp_engine_free(push->engine);
    push->engine = NULL;
}

static struct sp_hub_options hub_options(const struct sp_config *config)
{
    return (struct sp_hub_options){
        .history = config->channels.history,
        .history_ttl_ms = config->channels.history_ttl_ms,
        .max_message_size = config->channels.max_message_size,
    };
}

static void engine_told_member(void *ctx, bool joined, const char *channel, const char *user_id,
                               const char *info, size_t members)
{
    sp_push_tell_member(ctx, joined, channel, user_id, info, members);
}

static void engine_told_occupancy(void *ctx, bool occupied, const char *channel)
{
    sp_push_tell_occupancy(ctx, occupied, channel);
}

static struct sp_engine *engine_new(struct sp_push *home)
{
    const struct sp_engine_env env = {
        .base = home->base,
        .log = home->log,
        .config = home->config,
        .hub = home->hub,
        .presence = home->presence,
        .events = {engine_told_member, engine_told_occupancy, home},
    };
    return sp_engine_new(&env);
}

/* The process-wide part, on the home worker. */
static int home_new(struct sp_push *push, unsigned nworkers)
{
    const struct sp_hub_options hub = hub_options(push->config);

    push->home = push;
    push->hub = sp_hub_new(push->base, &hub, nworkers);
    push->replays = sp_replays_new(push);
    push->presence =
        sp_presence_new(push->base, push->config->presence.leave_grace_ms, presence_changed, push);
    if (push->hub == NULL || push->replays == NULL || push->presence == NULL)
        return -1;
    if (push->config->redis.enabled && (push->engine = engine_new(push)) == NULL)
        return -1;
    sp_hub_set_watch(push->hub, watch, push);
    return 0;
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
    push->uses_engine = config->redis.enabled;
    if (w->home == NULL ? home_new(push, w->nworkers) < 0 : (push->home = w->home, 0))
        goto fail;
    push->presence = push->home->presence;
    push->hub = push->home->hub;
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
    if (push->home == push) {
        if (push->hub)
            sp_hub_set_watch(push->hub, NULL, NULL);
        sp_push_stop_engine(push);
        sp_replays_free(push->replays);
        sp_presence_free(push->presence);
        sp_occupancy_free(push->occupancy);
        sp_hub_free(push->hub);
    }
    free(push);
}

size_t sp_push_channel_subscribers(const struct sp_push *push, const char *channel)
{
    return sp_hub_subscribers(push->hub, channel);
}

bool sp_push_engine_ready(const struct sp_push *push)
{
    return push->home->engine == NULL || sp_engine_ready_for_traffic(push->home->engine);
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

/* A subscriber waiting for its channels to be synced with Redis. */
struct channel_wait {
    struct sp_push *push;
    const struct sp_route_config *route; /* its configuration held */
    struct sp_http_conn *conn;
    struct sp_engine_wait *wait; /* on the home worker */
    struct remote_wait *remote;  /* on any other: the request mailed home */
    char *user_id, *user_info;   /* copies of the identity, or NULL */
    char spec[];
};

static void channel_wait_free(struct channel_wait *w)
{
    sp_config_release(w->route->owner);
    free(w->user_id);
    free(w->user_info);
    free(w);
}

/* A wait asked of the home by another worker, mailed there and back. Only
 * the asking worker touches waiter; home only wait and ok. */
struct remote_wait {
    struct sp_ask ask;
    struct sp_push *from;
    struct channel_wait *waiter; /* NULL once the client has gone */
    struct sp_engine_wait *wait;
    bool ok;
    char spec[];
};

static void on_waiter_gone(void *ctx)
{
    struct channel_wait *w = ctx;

    sp_engine_wait_cancel(w->wait);
    if (w->remote != NULL)
        w->remote->waiter = NULL;
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

    struct sp_identity who = {w->user_id, w->user_info};

    sp_http_set_ops(w->conn, NULL, NULL);
    if (ok)
        start_transport(w->push, w->route, w->spec, w->conn, req, &who);
    else
        engine_unavailable(w->route, w->conn, req);
    channel_wait_free(w);
}

/* Back on the asking worker. */
static void remote_answered(struct sp_ask *ask)
{
    struct remote_wait *r = (struct remote_wait *)ask;

    if (r->waiter != NULL) {
        r->waiter->remote = NULL;
        on_channels_ready(r->waiter, r->ok);
    }
    free(r);
}

static void remote_reply(void *arg, bool ok)
{
    struct remote_wait *r = arg;

    r->ok = ok;
    sp_ask_answer(&r->ask);
}

static void remote_dropped(struct sp_ask *ask)
{
    free(ask);
}

/* On the home worker. */
static void remote_asked(struct sp_ask *ask)
{
    struct remote_wait *r = (struct remote_wait *)ask;
    struct sp_push *home = r->from->home;
    int rc = home->engine ? sp_engine_wait(home->engine, r->spec, remote_reply, r, &r->wait) : -1;

    if (rc != 0)
        remote_reply(r, rc > 0);
}

static int ask_home(struct sp_push *push, struct channel_wait *w)
{
    size_t len = strlen(w->spec) + 1;
    struct remote_wait *r = calloc(1, sizeof(*r) + len);

    if (r == NULL)
        return -1;
    r->from = push;
    r->waiter = w;
    memcpy(r->spec, w->spec, len);
    w->remote = r;
    sp_ask_post(&r->ask, push->home->mailbox, push->mailbox, remote_asked, remote_answered,
                remote_dropped);
    return 0;
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
    if (!push->uses_engine) {
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
    *w = (struct channel_wait){push, route, conn, NULL, NULL, NULL, NULL};
    sp_config_hold(route->owner);
    strcpy(w->spec, spec);
    if (who != NULL && who->user_id != NULL &&
        ((w->user_id = strdup(who->user_id)) == NULL ||
         (who->user_info != NULL && (w->user_info = strdup(who->user_info)) == NULL))) {
        channel_wait_free(w);
        sp_http_respond_error(conn, 503, "out of memory");
        return;
    }
    int rc = push->home != push ? ask_home(push, w)
             : push->engine != NULL
                 ? sp_engine_wait(push->engine, spec, on_channels_ready, w, &w->wait)
                 : 1;
    if (rc == 0) {
        sp_http_set_ops(conn, &waiter_ops, w);
        return;
    }
    channel_wait_free(w);
    if (rc > 0)
        start_transport(push, route, spec, conn, req, who);
    else
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

static void set_snapshot(struct sp_push *push, const struct sp_engine_publish *p,
                         const struct sp_publish_result *res)
{
    const void *data = p->snapshot == SP_SNAPSHOT_SELF ? p->pub.data : p->snapshot_data;
    size_t len = p->snapshot == SP_SNAPSHOT_SELF ? p->pub.len : p->snapshot_len;

    if (p->snapshot == SP_SNAPSHOT_NONE || res->duplicate)
        return;
    /* New subscribers get the whole current state under the id of the last
     * change, so resuming from it afterwards is exact. */
    struct sp_msg *snap =
        sp_msg_new(p->pub.channel, res->seq, res->id, p->pub.event, data, len, sp_now_ms());
    if (snap != NULL) {
        sp_hub_set_snapshot(push->hub, p->pub.channel, snap);
        sp_msg_unref(snap);
    }
}

int sp_push_publish(struct sp_push *push, const struct sp_engine_publish *p, sp_push_published cb,
                    void *arg)
{
    struct sp_publish_result res;
    struct timespec a, b;

    if (push->engine != NULL)
        return sp_engine_publish(push->engine, p, cb, arg);
    clock_gettime(CLOCK_MONOTONIC, &a);
    int rc = sp_hub_publish(push->hub, &p->pub, &res);
    clock_gettime(CLOCK_MONOTONIC, &b);
    if (rc != SP_HUB_OK)
        return rc;
    if (!res.duplicate) {
        push->stats.published++;
        sp_histogram_observe(&push->stats.fanout,
                             (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9);
    }
    set_snapshot(push, p, &res);
    cb(arg, SP_HUB_OK, &res);
    return 0;
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

    if (push->engine != NULL)
        sp_engine_add_figures(push->engine, &mine.stats.published, &mine.stats.fanout);
    for (int k = 0; k < SP_KIND_COUNT; k++)
        mine.subscribers[k] = transports[k]->count(push->kinds[k]);
    sp_push_figures_add(sum, &mine);
}

void sp_push_home_metrics(const struct sp_push *home, struct evbuffer *out)
{
    sp_metric_one(out, "sidepush_presence_members", "gauge",
                  "Members of presence channels (distinct users per channel), summed.",
                  (double)sp_presence_total(home->presence));
    sp_metric_one(out, "sidepush_presence_channels", "gauge", "Presence channels with members.",
                  (double)sp_presence_rooms(home->presence));
    if (home->engine != NULL)
        sp_engine_metrics(home->engine, out);
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
    sp_metric_histogram(out, "sidepush_fanout_duration_seconds",
                        "Time to store a publish and mail it to every worker with subscribers.",
                        &st->fanout);
}

void sp_push_reconfigure(struct sp_push *push, const struct sp_config *config)
{
    const struct sp_hub_options hub = hub_options(config);
    const struct sp_config *old = push->config;

    push->config = config;
    if (push->home != push)
        return;
    if (old->redis.enabled != config->redis.enabled ||
        (config->redis.enabled && (strcmp(old->redis.url, config->redis.url) != 0 ||
                                   strcmp(old->redis.key_prefix, config->redis.key_prefix) != 0)))
        sp_log_warn(push->log, "reload",
                    "changes to the redis section take effect after a restart");
    if (old->webhooks.enabled != config->webhooks.enabled)
        sp_log_warn(push->log, "reload",
                    "adding or removing the webhooks section takes effect after a restart");
    sp_hub_set_options(push->hub, &hub);
    if (push->engine != NULL)
        sp_engine_reconfigure(push->engine, config);
    sp_presence_set_grace(push->presence, config->presence.leave_grace_ms);
    if (push->occupancy != NULL)
        sp_occupancy_set_grace(push->occupancy, vacancy_grace(config));
}

const struct sp_proxy_hook *sp_push_proxy_hook(struct sp_push *push, void **ctx)
{
    *ctx = push->kinds[SP_KIND_GRIP];
    return &sp_grip_proxy_hook;
}
