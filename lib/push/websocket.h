/* WebSocket subscribers (RFC 6455, through http/wsframe): each message a
 * text frame (or an envelope with its id), server pings and an app-level
 * heartbeat, client messages forwarded to the backend when the route says
 * so. */
#ifndef SP_PUSH_WEBSOCKET_H
#define SP_PUSH_WEBSOCKET_H

#include "http/wsframe.h"
#include "push/transport.h"

extern const struct sp_transport_ops sp_ws_transport;

/* One unfragmented frame to a WebSocket client. Returns 0, or -1 past the
 * stream's limit (the caller drops the connection). */
int sp_ws_send(struct sp_stream *stream, enum sp_ws_opcode op, const void *data, size_t len);
/* A close frame (code, and reason cut to fit) and the stream's end once it
 * is out: the server closes TCP first, as RFC 6455 §7.1.1 asks. */
void sp_ws_send_close(struct sp_stream *stream, unsigned code, const char *reason);

/* Checks a WebSocket handshake (HTTP/1.1, Connection: Upgrade, version 13,
 * the key, the Origin against cors.allow_origins) and fills accept with
 * Sec-WebSocket-Accept. When it is not acceptable, answers the client
 * itself (400, 403, or 426 with Sec-WebSocket-Version) and returns false.
 * Shared with the protocols spoken over WebSocket (Pusher). */
bool sp_ws_handshake_check(struct sp_push *push, struct sp_http_conn *conn,
                           const struct sp_http_request *req, char accept[29]);

/* permessage-deflate for a connection whose route allows it (enabled):
 * when the client offered what sidepush can meet, sets wire's window and
 * threshold (min_size), lets the reader inflate, and appends the answer
 * header to headers. Otherwise leaves all three as they are: the connection
 * goes uncompressed. */
void sp_ws_deflate_setup(const struct sp_http_request *req, bool enabled, uint64_t min_size,
                         struct sp_wire *wire, struct sp_ws_reader *reader,
                         struct evbuffer *headers);

#endif
