/* The push side of sidepush: the hub, the subscription transports (SSE,
 * WebSocket, long-poll) on subscribe routes, and the publish API on
 * publish_listen.
 */
#ifndef SP_PUSH_PUSH_H
#define SP_PUSH_PUSH_H

#include <event2/event.h>

#include "config/config.h"
#include "core/log.h"
#include "http/server.h"
#include "net/curlm.h"
#include "net/stream.h"
#include "engine/engine.h"

struct sp_push;

#include "metrics/metrics.h"

struct sp_push_stats {
    uint64_t published;
    uint64_t delivered;
    uint64_t slow_consumers; /* disconnected for passing subscriber_max_unsent */
    uint64_t aged_out;       /* streams ended at limits.max_connection_age */
    uint64_t missed_history; /* subscribers told their cursor's history is gone */
    uint64_t publish_errors;
    uint64_t publish_errors_by_status[6]; /* 400, 401, 404, 405, 413, other */
    struct sp_histogram fanout;           /* one publish handed to every subscriber */
    struct {
        uint64_t subscriptions; /* held now (each worker counts its own up and down) */
        uint64_t signins;
        uint64_t auth_failures;    /* channel and sign-in signatures refused */
        uint64_t client_events[3]; /* relayed, rate_limited, refused */
    } pusher;
    uint64_t users_refused; /* subscribers over limits.max_connections_per_user */
    /* Messages that went out compressed (permessage-deflate): their frames'
     * bytes as rendered, and as sent. */
    uint64_t deflated_messages;
    uint64_t deflate_bytes_before;
    uint64_t deflate_bytes_after;
};

/* What one worker's push has counted, to be summed over the workers. */
struct sp_push_figures {
    struct sp_push_stats stats;
    size_t subscribers[5]; /* SSE, WebSocket, long-poll, GRIP, Pusher */
};

/* sum += f */
void sp_push_figures_add(struct sp_push_figures *sum, const struct sp_push_figures *f);
/* On the push's thread: adds its figures to sum. */
void sp_push_add_figures(const struct sp_push *push, struct sp_push_figures *sum);
/* From any thread: the push families (Prometheus text) from figures summed
 * over every worker, and the hub's channel count. */
void sp_push_metrics(const struct sp_push *push, const struct sp_push_figures *sum,
                     struct evbuffer *out);
struct sp_mailbox;

/* ---- what is process-wide ---------------------------------------------------------------------
 *
 * One per process, made by the app before any worker's push and freed after
 * the last: the hub (one copy of every channel's history for every worker),
 * presence, occupancy, the replay store of signed webhook ids, the engine
 * (Redis) when configured, and the hooks the app plugs in. It runs on one
 * loop, given here: its timers, the engine's connections and the hooks run
 * there, and every worker's push, that loop's own included, reaches it by
 * mail. Functions below are for that loop unless they say otherwise. */
struct sp_push_shared;

struct sp_push_shared_env {
    struct event_base *base;
    struct sp_mailbox *mailbox;     /* the loop's */
    unsigned nworkers;              /* a hub port for each */
    const struct sp_config *config; /* held until the next reconfigure */
    const struct sp_log *log;
};
/* NULL on failure. */
struct sp_push_shared *sp_push_shared_new(const struct sp_push_shared_env *env);
/* After every worker's push. Accepts NULL. */
void sp_push_shared_free(struct sp_push_shared *sh);
/* A reload: channel options, presence and vacancy graces; the redis and
 * webhooks sections take a restart (logged). */
void sp_push_shared_reconfigure(struct sp_push_shared *sh, const struct sp_config *config);
/* What the shared part counted (its own publishes, the engine's), added
 * to sum; and its own families (presence, the engine's), Prometheus text. */
void sp_push_shared_add_figures(const struct sp_push_shared *sh, struct sp_push_figures *sum);
void sp_push_shared_metrics(const struct sp_push_shared *sh, struct evbuffer *out);
/* Redis, or NULL when everything is in memory (or the engine was stopped). */
struct sp_engine *sp_push_shared_engine(const struct sp_push_shared *sh);
/* Frees the engine now: its operations in flight complete (unavailable)
 * while what they call back into still exists. sp_push_shared_free does it
 * too. */
void sp_push_shared_stop_engine(struct sp_push_shared *sh);
/* From any thread: no engine, or the engine is ready for traffic. */
bool sp_push_shared_ready(const struct sp_push_shared *sh);

/* Where a worker's push lives: its loop and what it shares the loop with. */
struct sp_push_worker {
    struct event_base *base;
    struct sp_curlm *curlm;
    struct sp_mailbox *mailbox; /* the worker's: the hub's deliveries arrive there */
    unsigned index;             /* its hub port */
    struct sp_push_shared *shared;
};

/* A worker's push: its subscribers, on its hub port, over the shared part
 * (which must outlive it). NULL on failure. */
struct sp_push *sp_push_new(const struct sp_push_worker *w, const struct sp_config *config,
                            const struct sp_log *log);
/* On the push's own thread (or once every loop has stopped): ends every
 * subscription (their connections close), then frees. */
void sp_push_free(struct sp_push *push);

/* Who a subscriber is, as the backend's forward-auth answer named it: a
 * user id (1-128 printable bytes) and optional info (a JSON object, as
 * text). NULL, or a NULL user_id: anonymous. */
struct sp_identity {
    const char *user_id;
    const char *user_info;
    uint64_t expires_ms; /* a token's exp (ms since the epoch): the stream ends then; 0: never */
};

/* A request on a subscribe route; channel_spec is the expanded channel
 * template (possibly "a,b"). Picks SSE, WebSocket or long-poll. who counts
 * on presence routes (subscribe.presence) and is copied. */
void sp_push_subscribe(struct sp_push *push, const struct sp_route_config *route,
                       const char *channel_spec, struct sp_http_conn *conn,
                       const struct sp_http_request *req, const struct sp_identity *who);

/* A Pusher client's WebSocket handshake on /app/{key} (the pusher
 * section): the Pusher Channels protocol from then on (push/pusher.c). */
void sp_push_pusher_connect(struct sp_push *push, struct sp_http_conn *conn,
                            const struct sp_http_request *req);

/* A request under /apps/ on publish_listen (the pusher section): the Pusher
 * HTTP API (push/pusher_api.c). */
void sp_push_pusher_api(struct sp_push *push, struct sp_http_conn *conn,
                        const struct sp_http_request *req);

/* On the shared loop: a member joined or left a channel (presence), a
 * channel got its first subscriber or lost its last, a Pusher client sent
 * a client event (on the replica it is connected to) or found a cache-
 * channel empty (once a minute per channel and replica). For the
 * backend's webhooks; one hook, NULL removes. */
enum sp_presence_event {
    SP_EVENT_OCCUPIED,
    SP_EVENT_VACATED,
    SP_EVENT_MEMBER_ADDED,
    SP_EVENT_MEMBER_REMOVED,
    SP_EVENT_CLIENT,
    SP_EVENT_CACHE_MISS /* a Pusher client found a cache- channel empty */
};
struct sp_push_event {
    enum sp_presence_event kind;
    const char *channel;
    const char *user_id; /* the member; a client event's sender if known; else NULL */
    /* SP_EVENT_CLIENT: the event's name, its data (text) and the sender */
    const char *event, *data, *socket_id;
};
typedef void (*sp_push_events)(void *ctx, const struct sp_push_event *e);
void sp_push_shared_set_events(struct sp_push_shared *sh, sp_push_events events, void *ctx);

/* From any thread: a channel's presence as JSON (see sp_presence_write_json),
 * and its member count. */
void sp_push_presence_json(struct sp_push *push, const char *channel, struct evbuffer *out);
size_t sp_push_presence_count(struct sp_push *push, const char *channel);

/* rc is SP_HUB_OK with res, or a negative SP_HUB_ error (res NULL). */
typedef void (*sp_push_published)(void *arg, int rc, const struct sp_publish_result *res);

/* Publishes through the engine when there is one (cb runs later), else in
 * the hub with the fan-out timed for the metrics (cb runs before this
 * returns); either way the snapshot, if any, becomes the channel's. Returns
 * 0, or a negative SP_HUB_ error now (cb does not run). */
int sp_push_publish(struct sp_push *push, const struct sp_engine_publish *p, sp_push_published cb,
                    void *arg);

/* On the shared loop: the shared part's engine (sp_push_shared_engine). */
struct sp_engine *sp_push_engine(const struct sp_push *push);

/* Called with a channel's local subscriber count whenever it changes (the
 * pollers start and stop by it). One watcher; NULL removes it. */
typedef void (*sp_push_watch)(void *ctx, const char *channel, size_t subscribers);
void sp_push_shared_set_watch(struct sp_push_shared *sh, sp_push_watch watch, void *ctx);

/* The proxy's response hook through which a backend's GRIP answer holds
 * its client here (push/grip_head.c), and its ctx. */
struct sp_proxy_hook;
const struct sp_proxy_hook *sp_push_proxy_hook(struct sp_push *push, void **ctx);

/* ---- forwarding WebSocket client messages (websocket.forward) -----------------------------
 *
 * The push hands client messages to a forwarder that the app provides (the
 * backend's): the push knows nothing of HTTP requests to the backend. */

struct sp_forward; /* one WebSocket's queue of messages, owned by the forwarder */

/* The backend's answer to one message, in order: a 2xx status with its body,
 * or the status of the failure (0: no answer at all) with no body. */
typedef void (*sp_forward_reply)(void *ws, long status, const char *body, size_t len);

struct sp_forwarder_ops {
    /* NULL when the route forwards nothing (or out of memory). req is the
     * handshake; reply is called with ws for every message. */
    struct sp_forward *(*open)(void *ctx, const struct sp_route_config *route, const char *spec,
                               const struct sp_http_request *req, const char *peer,
                               sp_forward_reply reply, void *ws);
    /* Queues a message. -1 when too many are waiting for the backend. */
    int (*send)(struct sp_forward *f, bool text, const void *data, size_t len);
    /* Drops what is queued or in flight; no reply comes after it. May be
     * called from inside reply. */
    void (*close)(struct sp_forward *f);
};

void sp_push_set_forwarder(struct sp_push *push, const struct sp_forwarder_ops *ops, void *ctx);

/* A request on publish_listen. */
void sp_push_publish_request(struct sp_push *push, struct sp_http_conn *conn,
                             const struct sp_http_request *req);

/* From any thread: the channel's subscribers over every worker now. */
size_t sp_push_channel_subscribers(const struct sp_push *push, const char *channel);

/* False only while Redis is unreachable and redis.required_for_ready is set. */
bool sp_push_engine_ready(const struct sp_push *push);

/* A reload: new requests use config (the caller holds it for as long as
 * this push uses it; what a subscription keeps of its route it copies, or
 * holds: sp_config_hold). */
void sp_push_reconfigure(struct sp_push *push, const struct sp_config *config);

/* SIGTERM: sends every subscriber away properly (SSE: a jittered retry hint
 * and a clean end; WebSocket: 1001; long-poll: 204 with Retry-After),
 * spread evenly over window_ms rather than all at once. */
void sp_push_drain(struct sp_push *push, uint64_t window_ms);
/* Subscribers still connected. */
size_t sp_push_subscribers(const struct sp_push *push);

#endif
