/* WebSocket subscribers (RFC 6455, through http/wsframe): each message a
 * text frame (or an envelope with its id), server pings and an app-level
 * heartbeat, client messages forwarded to the backend when the route says
 * so. */
#ifndef SP_PUSH_WEBSOCKET_H
#define SP_PUSH_WEBSOCKET_H

#include "push/transport.h"

extern const struct sp_transport_ops sp_ws_transport;

#endif
