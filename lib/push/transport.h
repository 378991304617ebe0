/* One interface for the kinds of subscriber (SSE, WebSocket, long-poll,
 * GRIP holds): what the facade does with all the subscribers of a kind on
 * one worker, without knowing what a kind keeps. Each kind's file defines
 * one struct sp_transport_ops and keeps its subscribers in the state its open
 * returns; the facade holds one such state per kind and worker. A new way
 * to subscribe (a protocol spoken over WebSocket, say) is one more. */
#ifndef SP_PUSH_TRANSPORT_H
#define SP_PUSH_TRANSPORT_H

#include <event2/buffer.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "channel/hub.h"
#include "http/server.h"
#include "net/stream.h"
#include "push/push.h"

/* The kinds, in the order of the metrics' transport label. */
enum sp_kind {
    SP_KIND_SSE,
    SP_KIND_WS,
    SP_KIND_LONGPOLL,
    SP_KIND_GRIP,
    SP_KIND_PUSHER,
    SP_KIND_COUNT
};

struct sp_transport_ops {
    const char *label; /* transport="..." in the metrics */
    /* The kind's subscribers on push's worker (push->base is set). NULL on
     * failure. */
    void *(*open)(struct sp_push *push);
    /* Ends every subscriber (their connections close), then frees state. */
    void (*close)(void *state);
    /* A subscribe route's request for this kind, after authorization; who
     * counts on presence routes and is copied. NULL for a kind that routes
     * do not start (GRIP holds come from the proxy). */
    void (*start)(void *state, const struct sp_route_config *route, const char *spec,
                  struct sp_http_conn *conn, const struct sp_http_request *req,
                  const struct sp_identity *who);
    /* Once a second: keep-alives, pings, aged connections. May be NULL. */
    void (*tick)(void *state, uint64_t now);
    /* Sends one subscriber away properly (a drain); false when none is left. */
    bool (*drain_one)(void *state);
    /* Subscribers now. */
    size_t (*count)(const void *state);
};

/* The kinds themselves are declared in their own headers: sse.h,
 * websocket.h, longpoll.h, grip.h. */

/* The first member of every kind's state (push/transport.h): the worker's
 * push and the kind's subscribers there, counted as they come and go. */
struct sp_kind_state {
    struct sp_push *push;
    size_t count;
};
/* A zeroed state of size bytes (an empty list is zeroes) for push. */
void *sp_kind_state_new(struct sp_push *push, size_t size);
size_t sp_kind_state_count(const void *state);

/* ---- what a kind may ask of its worker's push ------------------------------------------ */

const struct sp_config *sp_push_config(const struct sp_push *push);
const struct sp_log *sp_push_log(const struct sp_push *push);
struct event_base *sp_push_base(const struct sp_push *push);
struct sp_hub *sp_push_hub(const struct sp_push *push);
/* The worker's counters, to add to (slow consumers, aged-out streams,
 * deliveries). */
struct sp_push_stats *sp_push_stats(struct sp_push *push);
/* SIGTERM came: answers tell clients to come back (elsewhere). */
bool sp_push_draining(const struct sp_push *push);
/* A client's event, checked already (sp_hub_check): published from the
 * shared loop, where publishes are made (its sender hears nothing back),
 * and told to the backend's webhooks with the sender's user_id (or NULL).
 * Returns 0, or -1 out of memory. */
int sp_push_client_event(struct sp_push *push, const struct sp_publish *pub, const char *user_id);
/* Waiting for channels to be synced with Redis: subscribed there and their
 * history read, so that nothing published from then on is missed and a
 * backlog is worked out from the shared history. done(ctx, ok) runs later
 * on this worker (ok false: not within redis.subscribe_wait), unless
 * cancelled first; the wait is gone once done runs. NULL: out of memory.
 * Only with Redis (sp_push_uses_engine). */
struct sp_sync;
typedef void (*sp_sync_done)(void *ctx, bool ok);
bool sp_push_uses_engine(const struct sp_push *push);
struct sp_sync *sp_push_sync(struct sp_push *push, const char *spec, sp_sync_done done, void *ctx);
/* Accepts NULL. */
void sp_push_sync_cancel(struct sp_sync *s);
/* A Pusher client found the cache- channel empty: the backend's cache_miss
 * webhook, once a minute per channel. */
void sp_push_cache_miss(struct sp_push *push, const char *channel);
/* The origin of a member's own join and leave messages ("u:" and the start
 * of its id's SHA-256: short enough for the Redis head, never a socket_id),
 * by which a Pusher client knows them for its own without reading them. */
#define SP_MEMBER_ORIGIN (2 + 32 + 1)
void sp_push_member_origin(const char *user_id, char out[SP_MEMBER_ORIGIN]);
/* The process's Pusher clients, after delta (+1: one came, -1: one went). */
size_t sp_push_pusher_clients(struct sp_push *push, int delta);
/* The app's WebSocket forwarder and its ctx, or NULL (see push.h). */
const struct sp_forwarder_ops *sp_push_forwarder(const struct sp_push *push, void **ctx);

/* When who's token expires, in sp_now_ms() terms; UINT64_MAX when who
 * (NULL, or named by the backend) has no expiry. */
uint64_t sp_identity_expiry(const struct sp_identity *who);

/* ---- subscriptions: one client, one or more channels -------------------------------- */

struct sp_subscription;

typedef void (*sp_subscription_deliver)(void *owner, struct sp_msg *msg);
typedef void (*sp_subscription_deleted)(void *owner);

/* Subscribes to every channel in spec ("a" or "a,b,c"; duplicates merged).
 * Returns 0 and *out, or a negative SP_HUB_ error (SP_HUB_BAD_CHANNEL also
 * for too many channels). */
int sp_subscription_open(struct sp_push *push, const char *spec, sp_subscription_deliver deliver,
                         sp_subscription_deleted deleted, void *owner,
                         const struct sp_identity *member, const char *user,
                         struct sp_subscription **out);
/* The member list of each presence channel of s, for its stream's opening;
 * write is called once per channel with the JSON text, later (by mail from
 * the shared loop, where the list is made after s's own join; with Redis it
 * is the deployment's), while s is open. */
void sp_subscription_members(struct sp_subscription *s, void (*write)(void *ctx, const char *json),
                             void *ctx);
void sp_subscription_close(struct sp_subscription *s);
/* The HTTP status for an sp_subscription_open or _claim_user error. */
int sp_subscription_error_status(int rc);
/* See sp_hub_backlog(). */
int sp_subscription_backlog(struct sp_subscription *s, const struct sp_cursor *cur,
                            struct sp_msg **out, size_t max, bool *missed);

/* What a stream says before it replays: position is where the client
 * resumes from (see sp_subscription_position), count the messages that
 * follow, first the id of the first of them ("" if none); missed: history
 * after the client's cursor is gone. Returns 0, or -1 to stop. */
typedef int (*sp_replay_preamble)(void *ctx, const char *position, size_t count, bool missed,
                                  const char *first);

/* A stream opening: the backlog after cur (at most 1024 messages), after the
 * preamble, rendered for wire. Returns 0, or -1 when the stream is over its
 * limit (the caller ends it) or out of memory. */
int sp_subscription_replay(struct sp_subscription *s, const struct sp_cursor *cur,
                           struct sp_stream *stream, struct sp_wire wire,
                           sp_replay_preamble preamble, void *ctx);

/* The id a client resumes from to get backlog[0 .. n) and what follows:
 * just before backlog[0], or the newest position when the backlog is empty.
 * Sent when a stream opens, so a client cut before its first message still
 * reconnects with a cursor (and misses nothing published meanwhile). */
void sp_subscription_position(struct sp_subscription *s, struct sp_msg *const *backlog, int n,
                              char out[SP_MSG_ID_MAX]);

/* ---- request helpers ---------------------------------------------------------------- */

/* The resume position a client sent: Last-Event-ID or Sidepush-Cursor
 * header, or last_event_id, lastEventId, evs_last_event_id or cursor query
 * parameter. Returns 0 (possibly with no cursor) or -1 if one was sent but
 * is not an id. */
int sp_push_request_cursor(struct sp_push *push, const struct sp_http_request *req,
                           struct sp_cursor *cur);

/* The starting point for a client without a cursor. */
struct sp_cursor sp_push_start(struct sp_push *push, const struct sp_route_config *route);

/* Appends CORS response headers for this request's Origin (nothing when it
 * is absent or not allowed). */
void sp_push_cors(struct sp_push *push, const struct sp_http_request *req, struct evbuffer *h);
/* True if the request's Origin may open a WebSocket. */
bool sp_push_origin_allowed(struct sp_push *push, const struct sp_http_request *req);

/* Hands a message to a stream by reference, compressed if the wire says so
 * (counted). Returns -1 if the stream is over its unsent limit (the caller
 * ends it as a slow consumer). */
int sp_push_send_msg(struct sp_push *push, struct sp_stream *stream, struct sp_msg *msg,
                     struct sp_wire wire);

#endif
