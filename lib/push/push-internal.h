/* Shared by the push modules only: push.c, subscriber.c, the transports
 * (sse.c, websocket.c, longpoll.c, grip.c), publish.c and replay.c. */
#ifndef SP_PUSH_INTERNAL_H
#define SP_PUSH_INTERNAL_H

#include <event2/buffer.h>
#include <sys/queue.h>

#include "engine/engine.h"
#include "channel/hub.h"
#include "channel/occupancy.h"
#include "channel/presence.h"
#include "push/push.h"
#include "push/replay.h"
#include "push/transport.h"

/* The first member of every kind's state (push/transport.h): the worker's
 * push and the kind's subscribers there, counted as they come and go. */
struct sp_kind_state {
    struct sp_push *push;
    size_t count;
};
/* A zeroed state of size bytes (an empty list is zeroes) for push. */
void *sp_kind_state_new(struct sp_push *push, size_t size);
size_t sp_kind_state_count(const void *state);

/* One per worker thread. The home worker's also holds what is
 * process-wide (the hub, the engine, the replay store, the app's watcher);
 * the others reach those through its mailbox. */
struct sp_push {
    struct event_base *base;
    const struct sp_config *config;
    const struct sp_log *log;
    struct sp_push *home;       /* itself on the home worker */
    struct sp_mailbox *mailbox; /* this worker's */
    struct sp_hub *hub;         /* the home's, shared */
    struct sp_hub_port *port;   /* this worker's subscribers */
    struct sp_engine *engine;   /* home only: Redis, or NULL: everything in memory */
    bool uses_engine;           /* the home has one (redis.enabled at start) */
    struct sp_curlm *curlm;
    struct sp_flusher *flusher;
    struct event *ticker;         /* each kind's tick: keep-alives, pings, ages */
    void *kinds[SP_KIND_COUNT];   /* each kind's subscribers (push/transport.h) */
    struct sp_replays *replays;   /* signed webhook ids seen */
    struct sp_presence *presence; /* the home's: members of presence channels */
    sp_push_events events;        /* home only: occupancy and presence, for webhooks */
    void *events_ctx;
    struct sp_occupancy *occupancy; /* home, with events: channels with subscribers */
    struct sp_push_stats stats;
    /* what the app plugged in (the backend's pollers and forwarder) */
    sp_push_watch watch;
    void *watch_ctx;
    const struct sp_forwarder_ops *forwarder;
    void *forwarder_ctx;
    /* draining */
    struct event *drainer;
    bool draining;
    size_t drain_total;
    uint64_t drain_started, drain_window_ms;
    size_t drained;
};

/* ---- presence and occupancy, on the home worker --------------------------------------- */

/* A member came or went for everyone (the process, or with Redis the
 * deployment), leaving the channel with members: the join/leave message
 * (while within presence.announce_limit) and the events hook. */
void sp_push_tell_member(struct sp_push *home, bool joined, const char *channel,
                         const char *user_id, const char *info, size_t members);
void sp_push_tell_occupancy(struct sp_push *home, bool occupied, const char *channel);

/* ---- subscriptions: one client, one or more channels -------------------------------- */

struct sp_subscription;

typedef void (*sp_subscription_deliver)(void *owner, struct sp_msg *msg);
typedef void (*sp_subscription_deleted)(void *owner);

/* Subscribes to every channel in spec ("a" or "a,b,c"; duplicates merged).
 * Returns 0 and *out, or a negative SP_HUB_ error (SP_HUB_BAD_CHANNEL also
 * for too many channels). */
int sp_subscription_open(struct sp_push *push, const char *spec, sp_subscription_deliver deliver,
                         sp_subscription_deleted deleted, void *owner,
                         const struct sp_identity *member, struct sp_subscription **out);
/* The member list of each presence channel of s, for its stream's opening;
 * write is called once per channel with the JSON text: now, or with Redis
 * (the deployment's list, asked of the home) later, while s is open. */
void sp_subscription_members(struct sp_subscription *s, void (*write)(void *ctx, const char *json),
                             void *ctx);
void sp_subscription_close(struct sp_subscription *s);
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
 * preamble, rendered in fmt. Returns 0, or -1 when the stream is over its
 * limit (the caller ends it) or out of memory. */
int sp_subscription_replay(struct sp_subscription *s, const struct sp_cursor *cur,
                           struct sp_stream *stream, enum sp_msg_format fmt,
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

/* Hands a message to a stream by reference. Returns -1 if the stream is
 * over its unsent limit (the caller ends it as a slow consumer). */
int sp_push_send_msg(struct sp_push *push, struct sp_stream *stream, struct sp_msg *msg,
                     enum sp_msg_format fmt);

#endif
