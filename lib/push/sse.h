/* Server-Sent Events subscribers: a text/event-stream response, chunked
 * for HTTP/1.1, each message one event (id, event, data lines), comment
 * keep-alives, a retry hint; resume from Last-Event-ID or a query
 * parameter. */
#ifndef SP_PUSH_SSE_H
#define SP_PUSH_SSE_H

#include "push/transport.h"

extern const struct sp_transport_ops sp_sse_transport;

#endif
