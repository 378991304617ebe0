/* WebSocket client messages forwarded to the backend (websocket.forward):
 * each message is POSTed, in order and one at a time, to the route's
 * forward path with the handshake's Cookie and Authorization, the channels
 * in Sidepush-Channel. Implements the push's forwarder interface. */
#ifndef SP_BACKEND_WS_FORWARD_H
#define SP_BACKEND_WS_FORWARD_H

#include "backend/request.h"
#include "push/push.h"

/* The operations to hand to sp_push_set_forwarder, with a struct
 * sp_backend as their context. */
extern const struct sp_forwarder_ops sp_ws_forward_ops;

#endif
