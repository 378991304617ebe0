/* One interface for the kinds of subscriber (SSE, WebSocket, long-poll,
 * GRIP holds): what the facade does with all the subscribers of a kind on
 * one worker, without knowing what a kind keeps. Each kind's file defines
 * one struct sp_transport_ops and keeps its subscribers in the state its open
 * returns; the facade holds one such state per kind and worker. A new way
 * to subscribe (a protocol spoken over WebSocket, say) is one more. */
#ifndef SP_PUSH_TRANSPORT_H
#define SP_PUSH_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct sp_push;
struct sp_route_config;
struct sp_http_conn;
struct sp_http_request;
struct sp_identity;

/* The kinds, in the order of the metrics' transport label. */
enum sp_kind { SP_KIND_SSE, SP_KIND_WS, SP_KIND_LONGPOLL, SP_KIND_GRIP, SP_KIND_COUNT };

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

#endif
