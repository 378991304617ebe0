/* The facade's own files only: push.c, subscriber.c, publish.c,
 * pusher_api.c (the publish APIs), replay.c and shared.c share struct
 * sp_push and struct sp_push_shared. The kinds of subscriber (sse.c,
 * websocket.c, longpoll.c, grip.c, pusher.c) see push/transport.h instead. */
#ifndef SP_PUSH_INTERNAL_H
#define SP_PUSH_INTERNAL_H

#include <event2/buffer.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/queue.h>

#include "engine/engine.h"
#include "channel/hub.h"
#include "channel/occupancy.h"
#include "channel/presence.h"
#include "push/push.h"
#include "push/replay.h"
#include "push/transport.h"

/* What is process-wide (shared.c). The hub and the presence table take
 * calls from any thread (their locks); everything else only on the shared
 * loop (base), where the engine's connections, the grace timers and the
 * app's hooks run, and where the workers mail what they ask of it. */
struct sp_push_shared {
    struct event_base *base;
    struct sp_mailbox *mailbox;     /* of the shared loop */
    const struct sp_config *config; /* held: the latest reload's */
    const struct sp_log *log;
    struct sp_hub *hub;
    struct sp_presence *presence;   /* members of presence channels */
    struct sp_occupancy *occupancy; /* with events: channels with subscribers */
    struct sp_replays *replays;     /* signed webhook ids seen */
    struct sp_engine *engine;       /* Redis, or NULL: everything in memory */
    bool uses_engine;               /* redis.enabled at start (read from any thread) */
    /* what the app plugged in: the pollers' watch, the backend's webhooks */
    sp_push_watch watch;
    void *watch_ctx;
    sp_push_events events;
    void *events_ctx;
    struct sp_push_stats stats;   /* its own publishes: presence joins and leaves */
    atomic_size_t pusher_clients; /* of every worker, for pusher.max_connections */
    struct sp_cache *told_misses; /* cache- channels whose cache_miss was told lately */
    /* limits.max_connections_per_user: user id -> struct user_count, from any worker */
    pthread_mutex_t users_lock;
    struct sp_hmap *users;
};

struct user_count {
    size_t count;
    char id[];
};

/* Publishes through the engine when there is one, else in the hub, counted
 * in stats (see sp_push_publish). On the shared loop. */
int sp_push_shared_publish(struct sp_push_shared *sh, struct sp_push_stats *stats,
                           const struct sp_engine_publish *p, sp_push_published cb, void *arg);

/* A refused publish API request (either API): counted by status (400,
 * 401, 404, 405, 413, the rest as other), then answered with a JSON reason. */
void sp_push_count_publish_error(struct sp_push *push, int status);
void sp_push_publish_refuse(struct sp_push *push, struct sp_http_conn *conn, int status,
                            const char *why);

/* The Pusher API's questions (pusher_query.c), once the request's
 * signature is checked: GET /apps/{id}/channels, /channels/{name},
 * /channels/{name}/users; POST /users/{id}/terminate_connections. */
void sp_pusher_query_channels(struct sp_push *push, struct sp_http_conn *conn,
                              struct sp_slice query);
void sp_pusher_query_channel(struct sp_push *push, struct sp_http_conn *conn, const char *channel,
                             struct sp_slice query);
void sp_pusher_query_users(struct sp_push *push, struct sp_http_conn *conn, const char *channel);
void sp_pusher_terminate(struct sp_push *push, struct sp_http_conn *conn, const char *user_id);

/* One per worker thread. */
struct sp_push {
    struct event_base *base;
    const struct sp_config *config;
    const struct sp_log *log;
    struct sp_push_shared *shared;
    struct sp_mailbox *mailbox; /* this worker's */
    struct sp_hub *hub;         /* the shared one */
    struct sp_hub_port *port;   /* this worker's subscribers */
    struct sp_curlm *curlm;
    struct event *ticker;       /* each kind's tick: keep-alives, pings, ages */
    void *kinds[SP_KIND_COUNT]; /* each kind's subscribers (push/transport.h) */
    struct sp_push_stats stats;
    /* what the app plugged in: the backend's forwarder */
    const struct sp_forwarder_ops *forwarder;
    void *forwarder_ctx;
    /* draining */
    struct event *drainer;
    bool draining;
    size_t drain_total;
    uint64_t drain_started, drain_window_ms;
    size_t drained;
};

#endif
