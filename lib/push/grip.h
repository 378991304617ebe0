/* GRIP holds (Pushpin's protocol), subscribers of the channels a proxied
 * backend named in Grip-Channel: a stream hold sends the backend's response,
 * then the http-stream content of every publish; a response hold waits for
 * a publish's http-response or Grip-Timeout. See grip.md. */
#ifndef SP_PUSH_GRIP_H
#define SP_PUSH_GRIP_H

#include "push/transport.h"

struct sp_grip_hold;
struct sp_http_conn;

extern const struct sp_transport_ops sp_grip_transport;

/* A proxied response asked to hold its client; state is the kind's (see
 * sp_push_grip_hold). */
void sp_grip_hold(void *state, struct sp_http_conn *conn, const struct sp_grip_hold *hold);

#endif
