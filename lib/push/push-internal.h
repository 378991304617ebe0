/* The facade's own files only: push.c, subscriber.c, publish.c and
 * replay.c share struct sp_push. The kinds of subscriber (sse.c,
 * websocket.c, longpoll.c, grip.c) see push/transport.h instead. */
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

#endif
