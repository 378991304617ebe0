/* Pusher Channels clients (protocol 7, pusher-js and Laravel Echo) on
 * /app/{key}: one more kind of subscriber, over the WebSocket code. */
#ifndef SP_PUSH_PUSHER_H
#define SP_PUSH_PUSHER_H

#include "push/transport.h"

extern const struct sp_transport_ops sp_pusher_transport;

#endif
