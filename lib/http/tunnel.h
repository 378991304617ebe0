/* Byte-for-byte tunnels: after the backend's 101 to a client's Upgrade
 * (WebSocket or any other protocol), the client's socket and the backend
 * connection are joined and every byte is copied both ways, with
 * backpressure, an idle timeout and a clean close when either side closes
 * (h2o's proxy on_upgrade_complete, nginx's ngx_http_upstream_upgrade).
 *
 * Nothing of a tunnel is pooled: both sockets close with it. Tunnels are not
 * aged by limits.max_connection_age: the protocol is the app's, and
 * sidepush cannot end it politely (as nginx does not). */
#ifndef SP_HTTP_TUNNEL_H
#define SP_HTTP_TUNNEL_H

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <stdint.h>

struct sp_tunnels;

struct sp_tunnel_stats {
    uint64_t opened;
    uint64_t open;
    uint64_t bytes_to_backend;
    uint64_t bytes_to_client;
};

/* buffer_size: bytes queued toward one side before the other is not read;
 * idle_ms: a tunnel through which no byte moved either way this long is
 * closed (0: never), both sides stalled full included; gone (may be NULL)
 * runs after each tunnel ends, so a connection cap can be checked again. */
struct sp_tunnels *sp_tunnels_new(struct event_base *base, size_t buffer_size, uint64_t idle_ms,
                                  void (*gone)(void *ctx), void *gone_ctx);
/* New settings (a reload), for the tunnels open now too: a tunnel idle
 * past the new idle_ms closes at its next check, at once if it is already. */
void sp_tunnels_set(struct sp_tunnels *t, size_t buffer_size, uint64_t idle_ms);
/* Closes every tunnel. Accepts NULL. */
void sp_tunnels_free(struct sp_tunnels *t);
const struct sp_tunnel_stats *sp_tunnels_stats(const struct sp_tunnels *t);

/* Joins client_fd (to_client: bytes already due to it, e.g. the 101 head;
 * from_client: bytes it sent past its request head) with backend (whose
 * input may hold the first bytes of the new protocol). Takes client_fd and
 * backend in every case. Returns 0 or -1 (both closed). */
int sp_tunnel_open(struct sp_tunnels *t, evutil_socket_t client_fd, struct evbuffer *to_client,
                   struct evbuffer *from_client, struct bufferevent *backend);

#endif
