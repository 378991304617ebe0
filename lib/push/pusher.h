/* Pusher Channels clients (protocol 7, pusher-js and Laravel Echo) on
 * /app/{key}: one more kind of subscriber, over the WebSocket code. */
#ifndef SP_PUSH_PUSHER_H
#define SP_PUSH_PUSHER_H

#include "push/transport.h"

extern const struct sp_transport_ops sp_pusher_transport;

/* A signed-in user's channel: #server-to-user-{id}. */
#define SP_PUSHER_USER_CHANNEL "#server-to-user-"
/* Published on a user's channel by POST /apps/{id}/users/{id}/terminate_connections:
 * that user's connections close (4009). */
#define SP_PUSHER_TERMINATE_EVENT "sidepush-terminate"

#endif
