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

struct sp_push;

#include "metrics/metrics.h"

struct sp_push_stats {
    uint64_t published;
    uint64_t delivered;
    uint64_t slow_consumers; /* disconnected for passing subscriber_max_unsent */
    uint64_t missed_history; /* subscribers told their cursor's history is gone */
    uint64_t publish_errors;
    uint64_t publish_errors_by_status[6]; /* 400, 401, 404, 405, 413, other */
    struct sp_histogram fanout;           /* one publish handed to every subscriber */
};

/* Writes every push metric (Prometheus text) to out. */
void sp_push_metrics(struct sp_push *push, struct evbuffer *out);

struct sp_push *sp_push_new(struct event_base *base, const struct sp_config *config,
                            struct sp_curlm *curlm, struct sp_flusher *flusher,
                            const struct sp_log *log);
/* Ends every subscription (their connections close), then frees. */
void sp_push_free(struct sp_push *push);

/* A request on a subscribe route; channel_spec is the expanded channel
 * template (possibly "a,b"). Picks SSE, WebSocket or long-poll. */
void sp_push_subscribe(struct sp_push *push, const struct sp_route_config *route,
                       const char *channel_spec, struct sp_http_conn *conn,
                       const struct sp_http_request *req);

/* A request on a poll route; caps are the path's captures. */
void sp_push_poll_subscribe(struct sp_push *push, const struct sp_route_config *route,
                            const struct sp_slice caps[SP_TMPL_MAX_CAPTURES],
                            struct sp_http_conn *conn, const struct sp_http_request *req);

/* A request on a route with `authorize`: asks the backend (or the cache),
 * then continues as sp_push_subscribe / sp_push_poll_subscribe, or answers
 * 401/403/503. caps point into req. */
void sp_push_authorize(struct sp_push *push, const struct sp_route_config *route,
                       const struct sp_slice caps[SP_TMPL_MAX_CAPTURES], const char *spec,
                       struct sp_http_conn *conn, const struct sp_http_request *req);

/* A proxied response asked to hold its client (GRIP). */
struct sp_grip_hold;
void sp_push_grip_hold(struct sp_push *push, struct sp_http_conn *conn,
                       const struct sp_grip_hold *hold);

/* A request on publish_listen. */
void sp_push_publish_request(struct sp_push *push, struct sp_http_conn *conn,
                             const struct sp_http_request *req);

const struct sp_push_stats *sp_push_stats(const struct sp_push *push);

/* False only while Redis is unreachable and redis.required_for_ready is set. */
bool sp_push_engine_ready(const struct sp_push *push);

/* A reload: new requests use config (which must outlive every subscription
 * started under it; the app keeps old configurations). */
void sp_push_reconfigure(struct sp_push *push, const struct sp_config *config);

/* SIGTERM: sends every subscriber away properly (SSE: a jittered retry hint
 * and a clean end; WebSocket: 1001; long-poll: 204 with Retry-After),
 * spread evenly over window_ms rather than all at once. */
void sp_push_drain(struct sp_push *push, uint64_t window_ms);
/* Subscribers still connected. */
size_t sp_push_subscribers(const struct sp_push *push);

#endif
